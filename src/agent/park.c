/*
 * park.c (agent) - threads that do not take the checkpoint signal.
 *
 * Threads that did not park at once may block our signal in their own
 * mask with a call we never see (glibc's timer and aio helpers, a raw
 * rt_sigprocmask, the Go runtime's signal thread).  The manager names
 * each one to the coordinator (CO_M_TRACE), which looks at its mask;
 * where our signal is blocked it stops the thread with ptrace, unblocks
 * our signal in its mask, writes both masks into the thread's slot and
 * lets it go (src/cli/park.c): the signal already queued for it arrives
 * and it parks in our handler like any other thread (registers, FPU
 * state, mask, a system call to restart: all as for the others), and the
 * handler puts its mask back when it returns.  A thread that merely had
 * not run yet is looked at again later.
 *
 * Runs in the manager thread, during the quiesce; no allocation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <time.h>
#include "agent.h"
#include "sys.h"
#include "util.h"

/* Threads the coordinator unblocked at the last checkpoint (most often the same helpers again). */
static int traced_last[64], ntraced_last, traced_now[64], ntraced_now;

long co_park_first_ms(int tid)
{
	for (int i = 0; i < ntraced_last; i++)
		if (traced_last[i] == tid)
			return 0;
	return CO_TRACE_AFTER_MS;
}

void co_park_begin(void)
{
	ntraced_now = 0;
}

void co_park_end(void)
{
	co_memcpy(traced_last, traced_now, sizeof(traced_now[0]) * (size_t)ntraced_now);
	ntraced_last = ntraced_now;
}

/*
 * The coordinator's answer to TRACE about thread tid: 0 or 1 (proto.h), -1
 * it cannot (its reason in *m), -2 it gave the checkpoint up, -3 no answer
 * before the deadline (ms since t0).
 */
static int await_traced(int tid, const struct co_timespec *t0, long deadline_ms, const struct co_msgbuf **m)
{
	for (;;) {
		struct co_timespec now;
		co_clock_gettime(CLOCK_MONOTONIC, &now);
		long left = deadline_ms - ((now.sec - t0->sec) * 1000 + (now.nsec - t0->nsec) / 1000000);
		if (left <= 0)
			return -3;
		struct { int fd; short ev, rev; } p = { co_agent.sock, POLLIN, 0 };
		struct co_timespec ts = { left / 1000, (left % 1000) * 1000000 };
		long r = co_sys5(SYS_ppoll, (long)&p, 1, (long)&ts, 0, 8);
		if (r == -EINTR || r == 0)
			continue;
		if (r < 0 || !(*m = co_agent_recv()))
			return -3;
		if ((*m)->m.type == CO_M_TRACED && (*m)->m.a == tid)
			return (*m)->m.b < 0 ? -1 : (int)(*m)->m.b;
		if ((*m)->m.type == CO_M_RELEASE)
			return -2; /* the coordinator gave this checkpoint up */
		/* a late answer to an earlier question: dropped */
	}
}

int co_park_stuck(long ms, const struct co_timespec *t0, long deadline_ms, char *err, size_t errlen)
{
	for (int i = 1; i < co_agent.nthreads; i++) {
		struct co_tslot *t = &co_agent.threads[i];
		if (__atomic_load_n(&t->state, __ATOMIC_ACQUIRE) != CO_TS_SIGNALLED || t->trace_at_ms < 0 ||
		    ms < t->trace_at_ms)
			continue;
		t->pt_check = CO_TRACE_CHECK(t->tid, (uintptr_t)&t->pt_orig);
		if (co_agent_send(CO_M_TRACE, t->tid, (int64_t)(uintptr_t)&t->pt_orig) < 0)
			return co_err(err, errlen, "pid %d: cannot reach the coordinator", co_agent.pid);
		const struct co_msgbuf *m = 0;
		int r = await_traced(t->tid, t0, deadline_ms, &m);
		if (r == 1) {
			t->trace_at_ms = ms + 100; /* not blocked (yet): it may still block it */
			continue;
		}
		t->trace_at_ms = -1;
		if (r == 0) {
			if (ntraced_now < (int)CO_ARRAY_LEN(traced_now))
				traced_now[ntraced_now++] = t->tid;
			continue;
		}
		if (r == -1 && m->m.textlen)
			return co_err(err, errlen, "%s", m->text);
		if (r == -2)
			return co_err(err, errlen, "pid %d: the checkpoint was given up while thread %d was being parked",
				      co_agent.pid, t->tid);
		return co_err(err, errlen,
			      "pid %d: thread %d has not parked, and the coordinator did not answer whether it blocks the "
			      "checkpoint signal %d",
			      co_agent.pid, t->tid, co_agent.sig);
	}
	return 0;
}
