/*
 * timers.c - POSIX timers (timer_create): id, clock, how they notify (a
 * signal to the process or to one thread, with its value, or nothing), the
 * time left and the interval.
 *
 * Dump: the agent lists /proc/self/timers and asks timer_gettime() for
 * each, in the process itself and before a snapshot is forked (timers are
 * not inherited), with every thread parked.  glibc's SIGEV_THREAD timers
 * are kernel timers that signal its helper thread (SIGEV_THREAD_ID), their
 * value pointing at glibc's own record of the timer in the program's
 * memory, which comes back with the rest.
 * Restore: the restorer's main thread, once every other thread exists
 * (a timer may signal one of them), creates each timer with its id
 * (prctl PR_TIMER_CREATE_RESTORE_IDS, Linux 6.16 and later; before that
 * ids are handed out in order from 0 in a new process, so the restorer
 * takes them in order, creating and deleting fillers for the gaps) and
 * arms it with the time it had left, relative: exact for CLOCK_MONOTONIC
 * and CLOCK_BOOTTIME, whose downtime the group's time namespace hides; a
 * CLOCK_REALTIME timer fires later by the downtime (as timerfd's do).
 * An expiry whose signal was still queued is a queued signal, kept as
 * every other one.
 */
#include <errno.h>
#include <signal.h>
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#define CO_SIGEV_SIGNAL 0
#define CO_SIGEV_NONE 1
#define CO_SIGEV_THREAD_ID 4
#define CO_PR_TIMER_CREATE_RESTORE_IDS 77

struct co_itimerspec {
	struct co_timespec interval, value;
};

/* The kernel's struct sigevent (64 bytes). */
struct co_ksigevent {
	uint64_t value;
	int32_t signo;
	int32_t notify;
	int32_t tid;
	int32_t pad[11];
};

#ifndef COHORT_RESTORER

/* the (signed) number after key, at or after p, in base; p moves past it; -1 without key */
static long field(const char **p, const char *key, int base)
{
	const char *s = *p;
	while (*s && !co_startswith(s, key))
		s++;
	if (!*s) {
		*p = s;
		return -1;
	}
	s += co_strlen(key);
	int neg = *s == '-';
	long v = (long)co_strtoul(s + neg, p, base);
	return neg ? -v : v;
}

int co_timers_collect(struct co_dumpctx *d)
{
	static char buf[65536];
	d->ntimers = 0;
	long n = co_read_small("/proc/self/timers", buf, sizeof(buf));
	if (n <= 0)
		return 0; /* no timers (or no /proc/PID/timers: CONFIG_CHECKPOINT_RESTORE off) */
	if ((size_t)n >= sizeof(buf) - 1)
		return DERR(d, "pid %d: too many POSIX timers to save (/proc/self/timers holds over %lu bytes)", d->pid,
			    (unsigned long)sizeof(buf) - 1);
	for (const char *p = buf; *p;) {
		const char *at = p;
		long id = field(&p, "ID: ", 10);
		if (id < 0)
			break;
		if (d->ntimers == CO_MAX_TIMERS)
			return DERR(d, "pid %d: more than %d POSIX timers", d->pid, CO_MAX_TIMERS);
		struct co_timer *t = &d->timers[d->ntimers];
		co_memset(t, 0, sizeof(*t));
		t->id = (int32_t)id;
		t->signo = (int32_t)field(&p, "signal: ", 10);
		if (*p == '/')
			p++;
		t->value = co_strtoul(p, &p, 16);
		/* notify: signal/pid.N, signal/tid.N (SIGEV_THREAD_ID), none/pid.N */
		while (*p && !co_startswith(p, "notify: "))
			p++;
		if (!*p)
			return DERR(d, "pid %d: cannot read /proc/self/timers near \"%.40s\"", d->pid, at);
		p += 8;
		t->notify = co_startswith(p, "none/") ? CO_SIGEV_NONE : CO_SIGEV_SIGNAL;
		while (*p && *p != '/')
			p++;
		if (co_startswith(p, "/tid.")) {
			t->notify |= CO_SIGEV_THREAD_ID;
			t->tid = (int32_t)co_strtoul(p + 5, &p, 10);
		}
		/* a thread's or process's CPU clock is a negative number */
		t->clock = (int32_t)field(&p, "ClockID: ", 10);
		struct co_itimerspec its;
		long r = co_sys2(SYS_timer_gettime, t->id, (long)&its);
		if (r < 0)
			return DERR(d, "pid %d: timer_gettime of POSIX timer %d failed (errno %ld)", d->pid, t->id, -r);
		t->value_sec = its.value.sec;
		t->value_nsec = its.value.nsec;
		t->interval_sec = its.interval.sec;
		t->interval_nsec = its.interval.nsec;
		d->ntimers++;
	}
	return 0;
}

int co_timers_dump(struct co_dumpctx *d)
{
	for (int i = 0; i < d->ntimers; i++)
		if (co_w_rec(d->w, CO_R_TIMER, &d->timers[i], sizeof(d->timers[i])))
			return DERR(d, "pid %d: writing POSIX timer %d failed", d->pid, d->timers[i].id);
	return 0;
}

#else /* the restorer */

static int thread_restored(struct co_rstctx *rc, int tid)
{
	for (int i = 0; i < rc->nthreads; i++)
		if (rc->threads[i].tid == tid)
			return 1;
	return 0;
}

static long create(struct co_rstctx *rc, const struct co_timer *t, int32_t *id)
{
	struct co_ksigevent ev;
	co_memset(&ev, 0, sizeof(ev));
	ev.value = t->value;
	ev.signo = t->signo;
	ev.notify = t->notify;
	ev.tid = t->tid;
	/* a thread that had exited gets no signal: the timer still counts, silently */
	if ((t->notify & CO_SIGEV_THREAD_ID) && !thread_restored(rc, t->tid)) {
		ev.notify = CO_SIGEV_NONE;
		ev.tid = 0;
	}
	return co_sys3(SYS_timer_create, t->clock, (long)&ev, (long)id);
}

int co_timers_restore(struct co_rstctx *rc)
{
	if (!rc->ntimers)
		return 0;
	int by_id = co_prctl(CO_PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0;
	/* without it: in order of id, fillers taking the ids in between */
	for (int i = 1; i < rc->ntimers; i++)
		for (int j = i; j > 0 && rc->timers[j - 1].id > rc->timers[j].id; j--) {
			struct co_timer x = rc->timers[j];
			rc->timers[j] = rc->timers[j - 1];
			rc->timers[j - 1] = x;
		}
	static int32_t fillers[4096];
	int nfill = 0;
	long r = 0;
	for (int i = 0; i < rc->ntimers; i++) {
		const struct co_timer *t = &rc->timers[i];
		int32_t id = t->id;
		r = create(rc, t, &id);
		/* ids in order: one below the wanted id is a filler (never armed), kept until the end */
		while (!by_id && r >= 0 && id < t->id && nfill < (int)CO_ARRAY_LEN(fillers)) {
			fillers[nfill++] = id;
			r = create(rc, t, &id);
		}
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: cannot recreate POSIX timer %d (clock %d, errno %ld)",
				      rc->proc->pid, t->id, t->clock, -r);
		if (id != t->id)
			return co_err(rc->err, rc->errlen,
				      "pid %d: POSIX timer %d came back as timer %d (this kernel cannot choose timer ids)",
				      rc->proc->pid, t->id, id);
		struct co_itimerspec its = { { t->interval_sec, t->interval_nsec }, { t->value_sec, t->value_nsec } };
		if ((its.value.sec || its.value.nsec) && (r = co_sys4(SYS_timer_settime, id, 0, (long)&its, 0)) < 0)
			return co_err(rc->err, rc->errlen, "pid %d: cannot arm POSIX timer %d (errno %ld)", rc->proc->pid,
				      t->id, -r);
	}
	for (int i = 0; i < nfill; i++)
		co_sys1(SYS_timer_delete, fillers[i]);
	if (by_id)
		co_prctl(CO_PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
	return 0;
}
#endif
