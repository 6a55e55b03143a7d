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
 * A one-shot timer's signal still queued is a queued signal, kept as every
 * other one; a periodic timer's own queued signal, and the overrun count
 * timer_getoverrun() answers, see "Overruns" below.
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

static int64_t ns_of(const struct co_timespec *t)
{
	return t->sec * 1000000000LL + t->nsec;
}

static struct co_timespec ts_of(int64_t ns)
{
	struct co_timespec t = { ns / 1000000000LL, ns % 1000000000LL };
	if (t.nsec < 0) {
		t.nsec += 1000000000LL;
		t.sec--;
	}
	return t;
}

/*
 * A timer's signal (si_code SI_TIMER): 1 with its timer's id and overrun
 * count (x86-64 siginfo: si_errno, si_code, a pad, si_timerid, si_overrun).
 */
static int timer_signal(const struct co_siginfo *si, int32_t *id, int32_t *overrun)
{
	const int32_t *w = (const int32_t *)si->rest;
	*id = w[3];
	*overrun = w[4];
	return w[1] == -2 /* SI_TIMER */;
}

/* The clocks whose timers can be armed at a time in the past, as the overrun count needs. */
static int plain_clock(int clock)
{
	return clock == 0 /* REALTIME */ || clock == 1 /* MONOTONIC */ || clock == 7 /* BOOTTIME */;
}

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

/*
 * The next timer of a /proc/self/timers text at *p into t (id, signal,
 * value, notification, clock): 1, 0 at the end, -1 when it cannot be read.
 */
static int next_timer(const char **p, struct co_timer *t)
{
	long id = field(p, "ID: ", 10);
	if (id < 0)
		return 0;
	co_memset(t, 0, sizeof(*t));
	t->id = (int32_t)id;
	t->signo = (int32_t)field(p, "signal: ", 10);
	if (**p == '/')
		(*p)++;
	t->value = co_strtoul(*p, p, 16);
	/* notify: signal/pid.N, signal/tid.N (SIGEV_THREAD_ID), none/pid.N */
	while (**p && !co_startswith(*p, "notify: "))
		(*p)++;
	if (!**p)
		return -1;
	*p += 8;
	t->notify = co_startswith(*p, "none/") ? CO_SIGEV_NONE : CO_SIGEV_SIGNAL;
	while (**p && **p != '/')
		(*p)++;
	if (co_startswith(*p, "/tid.")) {
		t->notify |= CO_SIGEV_THREAD_ID;
		t->tid = (int32_t)co_strtoul(*p + 5, p, 10);
	}
	/* a thread's or process's CPU clock is a negative number */
	t->clock = (int32_t)field(p, "ClockID: ", 10);
	return 1;
}

/*
 * Overruns.  The kernel counts a periodic timer's expiries in its one
 * queued signal and computes the count when the signal is taken: that
 * becomes the signal's si_overrun and what timer_getoverrun() answers
 * until the next is taken.  Taking the queue at a checkpoint would change
 * both, and a restart cannot set the count.  So a timer's own signal found
 * in the queue is not put back as a copy: the timer is armed again at its
 * first expiry, in the past, and queues its signal itself at once; taken
 * later, it counts every expiry since that first one, as if nothing had
 * happened (and a restart arms the new timer so, co_timers_restore).
 * Until then the kernel answers 0 to timer_getoverrun(), so a note here
 * (our memory, which a restart brings back) has the count the program had,
 * and co_timer_overrun() answers with it while the signal stays queued.
 */
struct ovr_note {
	int32_t id, n, signo, tid;	/* tid: the thread the signal is queued for, 0: the process */
	int64_t base;			/* the first expiry, on the timer's clock */
	int used;
};
static struct ovr_note notes[64];

static struct ovr_note *note_of(int id)
{
	for (unsigned i = 0; i < CO_ARRAY_LEN(notes); i++)
		if (__atomic_load_n(&notes[i].used, __ATOMIC_ACQUIRE) == 1 && notes[i].id == id)
			return &notes[i];
	return 0;
}

/* Whether signal sig is queued for thread tid (0: for the process). */
static int queued_for(int sig, int tid)
{
	char path[64], buf[2048];
	if (tid)
		co_fmt(path, sizeof(path), "/proc/self/task/%d/status", tid);
	else
		co_strlcpy(path, "/proc/self/status", sizeof(path));
	return sig >= 1 && sig <= 64 && co_read_small(path, buf, sizeof(buf)) > 0 &&
	       (co_status_hex(buf, tid ? "SigPnd" : "ShdPnd") >> (sig - 1) & 1);
}

/* The note of timer id while it holds (the kernel's count is still 0 and the signal queued), else none. */
static struct ovr_note *live_note(int id, int kernel)
{
	struct ovr_note *o = note_of(id);
	if (o && (kernel != 0 || !queued_for(o->signo, o->tid))) {
		__atomic_store_n(&o->used, 0, __ATOMIC_RELEASE);
		o = 0;
	}
	return o;
}

int co_timer_overrun(int id, int kernel)
{
	if (kernel < 0)
		return kernel;
	const struct ovr_note *o = live_note(id, kernel);
	return o ? o->n : kernel;
}

static int pre_lock;

void co_timers_forked(void)
{
	for (unsigned i = 0; i < CO_ARRAY_LEN(notes); i++)
		notes[i].used = 0; /* a child has no timers */
	pre_lock = 0;	   /* (another thread of the parent may have held it) */
}

/* Threads take their queues at once, in their handlers (a signal stack may be small): one buffer, in turn. */
static char pre_buf[16384];

void co_timers_pre(struct co_timer_pre *pre, uint64_t queued)
{
	struct co_timer t;
	pre->n = 0;
	if (!queued)
		return;
	while (__atomic_exchange_n(&pre_lock, 1, __ATOMIC_ACQUIRE))
		co_sys0(SYS_sched_yield);
	const char *p = pre_buf;
	if (co_read_small("/proc/self/timers", pre_buf, sizeof(pre_buf)) <= 0)
		pre_buf[0] = 0;
	while (pre->n < (int)CO_ARRAY_LEN(pre->t) && next_timer(&p, &t) == 1) {
		if (t.signo < 1 || t.signo > 64 || !(queued >> (t.signo - 1) & 1) || !plain_clock(t.clock))
			continue;
		pre->t[pre->n].id = t.id;
		pre->t[pre->n].clock = t.clock;
		pre->t[pre->n].retaken = 0;
		pre->t[pre->n++].overrun = co_timer_overrun(t.id, (int)co_sys1(SYS_timer_getoverrun, t.id));
	}
	__atomic_store_n(&pre_lock, 0, __ATOMIC_RELEASE);
}

/* A note for timer id: its own slot, else a free one (threads take theirs at once; 2: being filled). */
static struct ovr_note *new_note(int id)
{
	struct ovr_note *o = note_of(id);
	for (unsigned i = 0; !o && i < CO_ARRAY_LEN(notes); i++)
		if (__atomic_compare_exchange_n(&notes[i].used, &(int){ 0 }, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			o = &notes[i];
	return o;
}

int co_timer_taken(const struct co_siginfo *si, struct co_timer_pre *pre, int own)
{
	int32_t id, m;
	if (!timer_signal(si, &id, &m))
		return 0;
	int k = 0;
	while (k < pre->n && pre->t[k].id != id)
		k++;
	if (k == pre->n)
		return 0;
	/* the first expiry from the next one due: now read on either side of the time left */
	struct co_itimerspec its;
	struct co_timespec t0, t1;
	co_clock_gettime(pre->t[k].clock, &t0);
	if (co_sys2(SYS_timer_gettime, id, (long)&its) < 0 || !ns_of(&its.interval))
		return 0; /* a one-shot timer counts nothing more: the copy put back is exact */
	co_clock_gettime(pre->t[k].clock, &t1);
	int64_t iv = ns_of(&its.interval), now = ns_of(&t0) + (ns_of(&t1) - ns_of(&t0)) / 2;
	struct ovr_note *o = pre->t[k].retaken ? note_of(id) : new_note(id);
	if (!o)
		return 0;
	if (!pre->t[k].retaken) {
		o->id = id;
		o->n = pre->t[k].overrun;
		o->signo = si->signo;
		o->tid = own ? (int)co_gettid() : 0;
		o->base = now + ns_of(&its.value) - ((int64_t)m + 1) * iv;
		__atomic_store_n(&o->used, 1, __ATOMIC_RELEASE);
	}
	struct co_itimerspec again = { its.interval, ts_of(o->base) };
	co_sys4(SYS_timer_settime, id, 1 /* TIMER_ABSTIME */, (long)&again, 0);
	/* the expiry is in the past: the signal is queued at once, before we look at the queue again */
	for (int i = 0; i < 1000 && !queued_for(si->signo, o->tid); i++) {
		struct co_timespec us = { 0, 100000 };
		co_nanosleep(&us);
	}
	int first = !pre->t[k].retaken;
	pre->t[k].retaken = 1;
	return first ? 1 : 2;
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
	const char *p = buf;
	for (;;) {
		const char *at = p;
		if (d->ntimers == CO_MAX_TIMERS && field(&at, "ID: ", 10) >= 0)
			return DERR(d, "pid %d: more than %d POSIX timers", d->pid, CO_MAX_TIMERS);
		at = p;
		struct co_timer *t = &d->timers[d->ntimers];
		int r = next_timer(&p, t);
		if (r < 0)
			return DERR(d, "pid %d: cannot read /proc/self/timers near \"%.40s\"", d->pid, at);
		if (r == 0)
			break;
		struct co_itimerspec its;
		long e = co_sys2(SYS_timer_gettime, t->id, (long)&its);
		if (e < 0)
			return DERR(d, "pid %d: timer_gettime of POSIX timer %d failed (errno %ld)", d->pid, t->id, -e);
		t->value_sec = its.value.sec;
		t->value_nsec = its.value.nsec;
		t->interval_sec = its.interval.sec;
		t->interval_nsec = its.interval.nsec;
		int kernel = (int)co_sys1(SYS_timer_getoverrun, t->id);
		const struct ovr_note *o = kernel >= 0 ? live_note(t->id, kernel) : 0;
		t->overrun = o ? o->n : kernel > 0 ? kernel : 0;
		if (o && plain_clock(t->clock)) {
			struct co_timespec now;
			co_clock_gettime(t->clock, &now);
			t->flags |= CO_TIMER_PENDING;
			t->base_ns = o->base;
			t->at_ns = ns_of(&now);
		}
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

static struct co_siginfo foreign[8];
static int nforeign;

/* Whether the program leaves signal sig ignored (it is never queued for it, but to a mask that blocks it). */
static int ignored(int sig)
{
	struct co_ksigaction a;
	if (co_sigaction(sig, 0, &a) < 0)
		return 0;
	unsigned long h = (unsigned long)a.handler;
	return h == 1 /* SIG_IGN */ || (h == 0 && (sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH));
}

/*
 * A timer whose signal the program ignores stops at its next expiry (the
 * kernel keeps it aside until the signal is wanted again), as it had: a
 * signal of it queued instead, to a mask that blocks it (ours, or the
 * checkpoint handler's the program comes back through) would be taken
 * when the program's mask comes back, and that would count anew.  So the
 * next expiry comes now, unblocked, when it is near.
 */
static void park_ignored(int id)
{
	struct co_itimerspec its;
	if (co_sys2(SYS_timer_gettime, id, (long)&its) < 0 || ns_of(&its.value) > 50000000)
		return;
	struct co_timespec nap = ts_of(ns_of(&its.value) + 200000);
	co_nanosleep(&nap);
}

/*
 * Timer id (created, not armed) counted n overruns when its signal was last
 * taken: armed so that its first expiry was n + 1 intervals before the next
 * one due, it queues its signal at once, and taking it here makes the
 * kernel count n, as timer_getoverrun() answered before.  The next one due
 * (left from now, then every interval: the same phase) must still be ahead
 * when we take it, or the count is one more: one due within 200 us is let
 * pass first.
 */
static long count_overruns(const struct co_timer *t, int64_t left, int64_t iv)
{
	uint64_t set = 1ULL << (t->signo - 1);
	int ign = ignored(t->signo);
	struct co_timespec now;
	co_clock_gettime(t->clock, &now);
	int64_t due = ns_of(&now) + left;
	for (int tries = 0; tries < 8; tries++) {
		co_sys4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&set, 0, 8);
		co_clock_gettime(t->clock, &now);
		int64_t l = ((due - ns_of(&now)) % iv + iv) % iv;
		if (l < 200000) {
			struct co_timespec pass = ts_of(l + 50000);
			co_nanosleep(&pass);
			continue;
		}
		struct co_itimerspec its = { ts_of(iv), ts_of(ns_of(&now) + l - ((int64_t)t->overrun + 1) * iv) };
		long r = co_sys4(SYS_timer_settime, t->id, 1 /* TIMER_ABSTIME */, (long)&its, 0);
		if (r < 0)
			return r;
		struct co_siginfo si;
		int32_t id, m;
		struct co_timespec wait = { 1, 0 };
		while ((r = co_sys4(SYS_rt_sigtimedwait, (long)&set, (long)&si, (long)&wait, 8)) > 0 &&
		       (!timer_signal(&si, &id, &m) || id != t->id))
			if (nforeign < (int)CO_ARRAY_LEN(foreign))
				foreign[nforeign++] = si;
		/* an ignored signal: unblocked, so that an expiry before the program runs is ignored as it would be */
		if (ign)
			co_sys4(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&set, 0, 8);
		if (r > 0 && ign)
			park_ignored(t->id);
		if (r > 0 && co_sys1(SYS_timer_getoverrun, t->id) == t->overrun)
			return 0;
	}
	return 0; /* the count as it came */
}

/*
 * Arm a recreated timer: a timer whose own signal was queued queues it
 * again at once, counting from the same first expiry (for CLOCK_MONOTONIC
 * and CLOCK_BOOTTIME the very time: the group's time namespace carries
 * them over; CLOCK_REALTIME as long before now as it was before the
 * checkpoint); a timer with a count to give back that the main thread may
 * take gets it (count_overruns); the rest with the time it had left.
 */
static long arm(const struct co_rstctx *rc, const struct co_timer *t)
{
	struct co_itimerspec its = { { t->interval_sec, t->interval_nsec }, { t->value_sec, t->value_nsec } };
	int64_t iv = ns_of(&its.interval);
	int periodic = iv > 0 && plain_clock(t->clock) && t->signo >= 1 && t->signo <= 64 && !(t->notify & CO_SIGEV_NONE);
	if (periodic && (t->flags & CO_TIMER_PENDING)) {
		int64_t base = t->base_ns;
		if (t->clock == 0) {
			struct co_timespec now;
			co_clock_gettime(t->clock, &now);
			base = ns_of(&now) - (t->at_ns - t->base_ns);
		}
		its.value = ts_of(base);
		return co_sys4(SYS_timer_settime, t->id, 1 /* TIMER_ABSTIME */, (long)&its, 0);
	}
	int ours = !(t->notify & CO_SIGEV_THREAD_ID) || t->tid == rc->proc->pid;
	if (periodic && t->overrun > 0 && ours && ns_of(&its.value) > 0)
		return count_overruns(t, ns_of(&its.value), iv);
	if (!its.value.sec && !its.value.nsec)
		return 0;
	return co_sys4(SYS_timer_settime, t->id, 0, (long)&its, 0);
}

int co_timer_requeued(const struct co_rstctx *rc, const struct co_siginfo *si)
{
	int32_t id, m;
	if (!timer_signal(si, &id, &m))
		return 0;
	for (int i = 0; i < rc->ntimers; i++)
		if (rc->timers[i].id == id && (rc->timers[i].flags & CO_TIMER_PENDING))
			return 1;
	return 0;
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
		if ((r = arm(rc, t)) < 0)
			return co_err(rc->err, rc->errlen, "pid %d: cannot arm POSIX timer %d (errno %ld)", rc->proc->pid,
				      t->id, -r);
	}
	for (int i = 0; i < nfill; i++)
		co_sys1(SYS_timer_delete, fillers[i]);
	/* signals of other timers that came while one was armed for its count: queued again, as copies */
	for (int i = 0; i < nforeign; i++)
		co_sys3(SYS_rt_sigqueueinfo, rc->proc->pid, foreign[i].signo, (long)&foreign[i]);
	if (by_id)
		co_prctl(CO_PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
	return 0;
}
#endif
