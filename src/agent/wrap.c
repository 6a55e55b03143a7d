/*
 * wrap.c - what the program must not notice.
 *
 * 1. The checkpoint signal interrupts blocking calls.  Calls the kernel can
 *    restart (read, write, accept, wait, untimed futex waits) restart by
 *    themselves under SA_RESTART.  The ones that always fail with EINTR
 *    after a handler (sleeps, poll, select, epoll, sigtimedwait, sigwait,
 *    pause, timed semaphore waits) are wrapped here: when the checkpoint handler
 *    ran in this thread during the call (co_epoch() moved: also when the
 *    coordinator stopped a thread with ptrace), the call is
 *    made again with what is left of its timeout.  Deadlines are kept on
 *    CLOCK_MONOTONIC, which the group's time namespace carries across a
 *    restart, so a timeout keeps its remaining time.
 * 2. The checkpoint signal itself is hidden (wrap_signal.c).
 * 3. The agent keeps no descriptor in the program's table (its manager
 *    thread has a table of its own, and only during a checkpoint): close,
 *    close_range, closefrom and dup2 are the program's, unwrapped.
 * 4. madvise(2) flags the kernel keeps per region (MADV_DONTFORK, ...) are
 *    noted, so that a checkpoint knows it must look for them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <semaphore.h>
#include <spawn.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/sem.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "agent.h"
#include "dirty.h"
#include "res.h"
#include "sys.h"

DECL(int, nanosleep, const struct timespec *, struct timespec *);
DECL(int, clock_nanosleep, clockid_t, int, const struct timespec *, struct timespec *);
DECL(int, poll, struct pollfd *, nfds_t, int);
DECL(int, ppoll, struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
DECL(int, select, int, fd_set *, fd_set *, fd_set *, struct timeval *);
DECL(int, pselect, int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
DECL(int, epoll_wait, int, struct epoll_event *, int, int);
DECL(int, epoll_pwait, int, struct epoll_event *, int, int, const sigset_t *);
DECL(int, sigtimedwait, const sigset_t *, siginfo_t *, const struct timespec *);
DECL(int, sigwaitinfo, const sigset_t *, siginfo_t *);
DECL(int, sigsuspend, const sigset_t *);
DECL(int, sem_timedwait, sem_t *, const struct timespec *);
DECL(int, sem_clockwait, sem_t *, clockid_t, const struct timespec *);
DECL(int, semop, int, struct sembuf *, size_t);
DECL(int, semtimedop, int, struct sembuf *, size_t, const struct timespec *);
DECL(int, msgsnd, int, const void *, size_t, int);
DECL(ssize_t, msgrcv, int, void *, size_t, long, int);
DECL(int, pthread_sigmask, int, const sigset_t *, sigset_t *);

void co_wrap_env_init(void);

void co_wrap_init(void)
{
	LOAD(nanosleep);
	LOAD(clock_nanosleep);
	LOAD(poll);
	LOAD(ppoll);
	LOAD(select);
	LOAD(pselect);
	LOAD(epoll_wait);
	LOAD(epoll_pwait);
	LOAD(sigtimedwait);
	LOAD(sigwaitinfo);
	LOAD(sigsuspend);
	LOAD(sem_timedwait);
	LOAD(semop);
	LOAD(semtimedop);
	LOAD(msgsnd);
	LOAD(msgrcv);
	LOAD(sem_clockwait);
	LOAD(pthread_sigmask);
	co_wrap_signal_init();
	co_cpuclock_init();
	co_wrap_env_init();
}

/* ---- the caller's arguments ---- */

/*
 * Read n bytes of the caller's memory as the kernel reads a system call's
 * argument: 0, or -1 where the kernel would answer EFAULT.  A wrapper
 * must not fault on a pointer the program got wrong: what it cannot read
 * goes to the real call untouched, which answers as it would without us.
 * (process_vm_readv on ourselves: the kernel copies, and reports a fault.)
 */
static int peek(void *dst, const void *src, size_t n)
{
	if (!src)
		return -1;
	struct iovec here = { dst, n }, there = { (void *)src, n };
	long r = co_sys6(SYS_process_vm_readv, co_getpid(), (long)&here, 1, (long)&there, 1, 0);
	if (r == -ENOSYS || r == -EPERM) {
		/* forbidden here (a seccomp filter): read it ourselves, as before */
		memcpy(dst, src, n);
		return 0;
	}
	return r == (long)n ? 0 : -1;
}

/* ---- time helpers ---- */

#define TS_MAX ((time_t)0x7fffffffffffffffLL)

/* The time on c; errno stays as it was (an invalid clock is the real call's to report). */
static struct timespec ts_now(clockid_t c)
{
	struct timespec t = { 0, 0 };
	int e = errno;
	if (clock_gettime(c, &t) < 0)
		errno = e;
	return t;
}

/* a + b for times the kernel accepted (b >= 0): saturates instead of overflowing */
static struct timespec ts_add(struct timespec a, struct timespec b)
{
	if (b.tv_sec > TS_MAX - a.tv_sec - 1)
		return (struct timespec){ TS_MAX, 999999999 };
	a.tv_sec += b.tv_sec;
	a.tv_nsec += b.tv_nsec;
	if (a.tv_nsec >= 1000000000) {
		a.tv_sec++;
		a.tv_nsec -= 1000000000;
	}
	return a;
}

/* deadline - now on c, never below zero */
static struct timespec ts_left(struct timespec deadline, clockid_t c)
{
	struct timespec n = ts_now(c), r;
	r.tv_sec = deadline.tv_sec - n.tv_sec;
	r.tv_nsec = deadline.tv_nsec - n.tv_nsec;
	if (r.tv_nsec < 0) {
		r.tv_sec--;
		r.tv_nsec += 1000000000;
	}
	if (r.tv_sec < 0)
		r.tv_sec = r.tv_nsec = 0;
	return r;
}

/*
 * A relative timeout (ppoll, pselect, sigtimedwait, semtimedop) for a call
 * made again after our signal: what is left of it, counted from the first
 * try.  It is read only once the kernel has taken it (the call came back
 * with EINTR): then it is readable and valid.  NULL stays NULL (no limit).
 */
struct rel_timeout {
	const struct timespec *want, *arg;	/* the caller's; the one to pass now */
	struct timespec t0, deadline, left;
};

static void rel_start(struct rel_timeout *t, const struct timespec *tmo)
{
	t->want = t->arg = tmo;
	t->t0 = ts_now(CLOCK_MONOTONIC);
}

static void rel_again(struct rel_timeout *t)
{
	if (!t->want)
		return;
	if (t->arg == t->want)
		t->deadline = ts_add(t->t0, *t->want);
	t->left = ts_left(t->deadline, CLOCK_MONOTONIC);
	t->arg = &t->left;
}

static int ms_left(struct timespec deadline)
{
	struct timespec l = ts_left(deadline, CLOCK_MONOTONIC);
	if (l.tv_sec >= 0x7fffffff / 1000)
		return 0x7fffffff;
	long long ms = (long long)l.tv_sec * 1000 + (l.tv_nsec + 999999) / 1000000;
	return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

static struct timespec ms_deadline(int ms)
{
	struct timespec d = { ms / 1000, (long)(ms % 1000) * 1000000 };
	return ts_add(ts_now(CLOCK_MONOTONIC), d);
}

/* A call interrupted by our checkpoint, to be made again. */
#define AGAIN(r, epoch) ((r) < 0 && errno == EINTR && co_epoch() != (epoch))

/*
 * A signal set without our signal; returns set itself when it has none,
 * and when it cannot be read (the kernel answers EFAULT for it).  The
 * kernel reads the first 8 bytes of a set: those are copied.
 */
const sigset_t *co_without_ours(const sigset_t *set, sigset_t *copy)
{
	int s = co_wrap_sig();
	if (!set || !s)
		return set;
	memset(copy, 0, sizeof(*copy));
	if (peek(copy, set, 8) < 0 || !sigismember(copy, s))
		return set;
	sigdelset(copy, s);
	return copy;
}

/* ---- sleeps ---- */

/*
 * The clock a relative sleep's deadline is kept on.  The wall clocks jump
 * by the downtime across a restart and the group's monotonic clock does
 * not; the kernel measures a relative CLOCK_REALTIME sleep on the
 * monotonic clock anyway.
 */
static clockid_t deadline_clock(clockid_t clk)
{
	return clk == CLOCK_REALTIME || clk == CLOCK_TAI ? CLOCK_MONOTONIC : clk;
}

/*
 * clock_nanosleep, made again for what is left when our checkpoint
 * interrupts it.  The kernel gets the caller's own arguments, so that it
 * checks them (EINVAL, EFAULT) and writes rem itself when a signal of the
 * program interrupts.  The request is read before the call (rem may be
 * the request itself), and rem, which the kernel writes when we interrupt,
 * is put back: a completed sleep leaves it untouched.  An unwritable rem
 * turns our interruption into EFAULT: without us the sleep would go on.
 */
static int sleep_call(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
	struct timespec want, rem0, deadline = { 0, 0 }, left, kabs;
	int rel = !(flags & TIMER_ABSTIME);
	if (peek(&want, req, sizeof(want)) < 0)
		return REAL(clock_nanosleep)(clk, flags, req, rem);
	int keep_rem = rel && rem && peek(&rem0, rem, sizeof(rem0)) == 0;
	clockid_t dclk = rel ? deadline_clock(clk) : clk;
	struct timespec t0 = ts_now(dclk);
	const struct timespec *arg = req;
	for (;;) {
		/* a CPU clock's deadline, as the kernel counts it since the last restart (cpuclock.c) */
		if (!rel && co_cpuclock_to_kernel(clk, &want, &kabs))
			arg = &kabs;
		uint64_t e = co_epoch();
		int r = REAL(clock_nanosleep)(clk, flags, arg, rem);
		if (co_epoch() == e || !(r == EINTR || (r == EFAULT && rel && rem)))
			return r;
		if (keep_rem && r == EINTR)
			*rem = rem0;
		if (rel) {
			/* the kernel accepted the request: it is a valid time */
			if (arg == req)
				deadline = ts_add(t0, want);
			left = ts_left(deadline, dclk);
			arg = &left;
		}
	}
}

EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
	ENSURE(clock_nanosleep);
	return sleep_call(clk, flags, req, rem);
}

/* glibc's nanosleep is a relative CLOCK_REALTIME clock_nanosleep */
EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
	ENSURE(clock_nanosleep);
	int r = sleep_call(CLOCK_REALTIME, 0, req, rem);
	if (r) {
		errno = r;
		return -1;
	}
	return 0;
}

EXPORT int usleep(useconds_t us)
{
	struct timespec t = { us / 1000000, (long)(us % 1000000) * 1000 };
	return nanosleep(&t, 0);
}

/* as glibc's: the whole seconds not slept, and errno untouched when it slept them all */
EXPORT unsigned sleep(unsigned s)
{
	int saved = errno;
	struct timespec t = { s, 0 };
	if (nanosleep(&t, &t) < 0)
		return (unsigned)t.tv_sec;
	errno = saved;
	return 0;
}

/* ---- waiting for descriptors ---- */

/*
 * The first call passes the caller's timeout as it is; only a call our
 * checkpoint interrupted is made again, with what is left of it.
 */
EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	ENSURE(poll);
	struct timespec deadline = ms_deadline(timeout > 0 ? timeout : 0);
	int ms = timeout;
	for (;;) {
		uint64_t e = co_epoch();
		int r = REAL(poll)(fds, n, ms);
		if (!AGAIN(r, e))
			return r;
		ms = timeout < 0 ? -1 : ms_left(deadline);
	}
}

/*
 * ppoll and pselect: glibc copies the timeout before the system call (and
 * faults on one it cannot read, with or without us), so once a call is
 * back with EINTR the timeout is known to be readable and valid.
 */
EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask)
{
	ENSURE(ppoll);
	sigset_t copy;
	mask = co_without_ours(mask, &copy);
	struct rel_timeout rt;
	rel_start(&rt, tmo);
	for (;;) {
		uint64_t e = co_epoch();
		int r = REAL(ppoll)(fds, n, rt.arg, mask);
		if (!AGAIN(r, e))
			return r;
		rel_again(&rt);
	}
}

/* A select() timeout glibc accepted (both fields >= 0; microseconds may exceed a second). */
static struct timespec tv_span(struct timeval tv)
{
	struct timespec d = { tv.tv_usec / 1000000, (long)(tv.tv_usec % 1000000) * 1000 };
	return ts_add((struct timespec){ tv.tv_sec, 0 }, d);
}

/* What is left until deadline, rounded up to whole microseconds: never early. */
static struct timeval tv_left(struct timespec deadline)
{
	struct timespec l = ts_left(deadline, CLOCK_MONOTONIC);
	struct timeval tv = { l.tv_sec, (l.tv_nsec + 999) / 1000 };
	if (tv.tv_usec == 1000000 && tv.tv_sec < TS_MAX) {
		tv.tv_sec++;
		tv.tv_usec = 0;
	}
	return tv;
}

/*
 * A select() that fails with EINTR found nothing ready, and the kernel
 * leaves the sets as the caller gave them (it writes them back only on
 * success): the call is made again with the same sets, any of them NULL,
 * and the time left.  glibc reads *tv and writes what is left into it.
 */
EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv)
{
	ENSURE(select);
	struct timeval want;
	if (tv && peek(&want, tv, sizeof(want)) < 0)
		return REAL(select)(n, r, w, x, tv); /* glibc's answer to a timeout it cannot read */
	struct timespec t0 = ts_now(CLOCK_MONOTONIC), deadline = { 0, 0 };
	for (int again = 0;; again = 1) {
		uint64_t e = co_epoch();
		int res = REAL(select)(n, r, w, x, tv);
		if (!AGAIN(res, e))
			return res;
		if (tv) {
			if (!again)
				deadline = ts_add(t0, tv_span(want));
			*tv = tv_left(deadline);
		}
	}
}

EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *x, const struct timespec *tmo, const sigset_t *mask)
{
	ENSURE(pselect);
	sigset_t copy;
	mask = co_without_ours(mask, &copy);
	struct rel_timeout rt;
	rel_start(&rt, tmo);
	for (;;) {
		uint64_t e = co_epoch();
		int res = REAL(pselect)(n, r, w, x, rt.arg, mask);
		if (!AGAIN(res, e))
			return res;
		rel_again(&rt);
	}
}

EXPORT int epoll_wait(int ep, struct epoll_event *ev, int max, int timeout)
{
	ENSURE(epoll_wait);
	struct timespec deadline = ms_deadline(timeout > 0 ? timeout : 0);
	int ms = timeout;
	for (;;) {
		uint64_t e = co_epoch();
		int r = REAL(epoll_wait)(ep, ev, max, ms);
		if (!AGAIN(r, e))
			return r;
		ms = timeout < 0 ? -1 : ms_left(deadline);
	}
}

EXPORT int epoll_pwait(int ep, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
	ENSURE(epoll_pwait);
	sigset_t copy;
	mask = co_without_ours(mask, &copy);
	struct timespec deadline = ms_deadline(timeout > 0 ? timeout : 0);
	int ms = timeout;
	for (;;) {
		uint64_t e = co_epoch();
		int r = REAL(epoll_pwait)(ep, ev, max, ms, mask);
		if (!AGAIN(r, e))
			return r;
		ms = timeout < 0 ? -1 : ms_left(deadline);
	}
}

/* ---- waiting for signals ---- */

/* The kernel reads *tmo: once a call is back with EINTR, the timeout is known to be valid. */
EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *tmo)
{
	ENSURE(sigtimedwait);
	sigset_t copy;
	set = co_without_ours(set, &copy);
	struct rel_timeout rt;
	rel_start(&rt, tmo);
	for (;;) {
		uint64_t e = co_epoch();
		int r = REAL(sigtimedwait)(set, info, rt.arg);
		if (!AGAIN(r, e))
			return r;
		rel_again(&rt);
	}
}

EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
	return sigtimedwait(set, info, 0);
}

/*
 * glibc's sigwait calls its own sigtimedwait, past the wrapper above: a
 * daemon's signal thread waiting on the full set took the checkpoint
 * signal for one of its own.  As glibc's: repeated on EINTR (here also
 * after our checkpoint), the error number returned.
 */
EXPORT int sigwait(const sigset_t *set, int *sig)
{
	ENSURE(sigtimedwait);
	sigset_t copy;
	set = co_without_ours(set, &copy);
	int r;
	do
		r = REAL(sigtimedwait)(set, NULL, NULL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno;
	*sig = r;
	return 0;
}

EXPORT int sigsuspend(const sigset_t *mask)
{
	ENSURE(sigsuspend);
	sigset_t copy;
	mask = co_without_ours(mask, &copy);
	for (;;) {
		uint64_t e = co_epoch();
		int r = REAL(sigsuspend)(mask);
		if (!AGAIN(r, e))
			return r;
	}
}

EXPORT int pause(void)
{
	sigset_t cur;
	ENSURE(pthread_sigmask);
	REAL(pthread_sigmask)(SIG_BLOCK, 0, &cur);
	return sigsuspend(&cur);
}

/* ---- semaphores with a deadline ---- */

EXPORT int sem_timedwait(sem_t *s, const struct timespec *abs)
{
	ENSURE(sem_timedwait);
	for (;;) {
		uint64_t e = co_epoch();
		int r = REAL(sem_timedwait)(s, abs);
		if (!AGAIN(r, e))
			return r;
	}
}

EXPORT int sem_clockwait(sem_t *s, clockid_t c, const struct timespec *abs)
{
	ENSURE(sem_clockwait);
	for (;;) {
		uint64_t e = co_epoch();
		int r = REAL(sem_clockwait)(s, c, abs);
		if (!AGAIN(r, e))
			return r;
	}
}

/*
 * SysV IPC: the kernel never restarts semop, semtimedop, msgsnd or msgrcv
 * after a handler (SA_RESTART or not), so a checkpoint would show as
 * EINTR; made again, a semtimedop with what is left of its (relative)
 * timeout.  A call with a SEM_UNDO operation goes through semundo.c,
 * which notes the adjustment.
 */
EXPORT int semop(int id, struct sembuf *ops, size_t n)
{
	ENSURE(semop);
	int undo = co_semundo_wants(ops, n);
	for (;;) {
		uint64_t e = co_epoch();
		int r = undo ? co_semundo_op(id, ops, n, NULL) : REAL(semop)(id, ops, n);
		if (!AGAIN(r, e))
			return r;
	}
}

/* SysV message queues: likewise never restarted by the kernel */
EXPORT int msgsnd(int id, const void *msg, size_t n, int flags)
{
	ENSURE(msgsnd);
	for (;;) {
		uint64_t e = co_epoch();
		int r = REAL(msgsnd)(id, msg, n, flags);
		if (!AGAIN(r, e))
			return r;
	}
}

EXPORT ssize_t msgrcv(int id, void *msg, size_t n, long type, int flags)
{
	ENSURE(msgrcv);
	for (;;) {
		uint64_t e = co_epoch();
		ssize_t r = REAL(msgrcv)(id, msg, n, type, flags);
		if (!AGAIN(r, e))
			return r;
	}
}

EXPORT int semtimedop(int id, struct sembuf *ops, size_t n, const struct timespec *tmo)
{
	ENSURE(semtimedop);
	struct rel_timeout rt;
	rel_start(&rt, tmo);
	int undo = co_semundo_wants(ops, n);
	for (;;) {
		uint64_t e = co_epoch();
		int r = undo ? co_semundo_op(id, ops, n, rt.arg) : REAL(semtimedop)(id, ops, n, rt.arg);
		if (!AGAIN(r, e))
			return r;
		rel_again(&rt);
	}
}

/* ---- madvise flags ---- */

/*
 * Advice that leaves a flag on the region (VmFlags in smaps): a snapshot
 * fork must see through MADV_DONTFORK and MADV_WIPEONFORK, and a restart
 * must ask all of them again.  Finding them means reading /proc/self/smaps
 * in the pause, a walk over every page table (about 4 ms per GiB): only
 * processes that asked for one pay it.  V8 (Node.js) marks its heap
 * MADV_DONTFORK through the C library's madvise.
 */
static int sticky_advice(int advice)
{
	switch (advice) {
	case MADV_DONTFORK: case MADV_DOFORK: case MADV_WIPEONFORK: case MADV_KEEPONFORK:
	case MADV_DONTDUMP: case MADV_DODUMP: case MADV_HUGEPAGE: case MADV_NOHUGEPAGE:
	case MADV_SEQUENTIAL: case MADV_RANDOM:
		return 1;
	default:
		return 0;
	}
}

EXPORT int madvise(void *addr, size_t len, int advice)
{
	if (sticky_advice(advice))
		co_agent.advice = 1; /* first: a checkpoint that parks us in between finds it set */
	long r = co_sys3(SYS_madvise, (long)addr, (long)len, advice);
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return 0;
}

/* ---- raw system calls made through syscall(3) ---- */

#include <linux/futex.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include "sys.h"

/*
 * Programs (and runtimes) wait on futexes through syscall(): a timed
 * FUTEX_WAIT fails with EINTR after any handler.  Retry those the
 * checkpoint interrupted, with the time that is left.
 */
/*
 * syscall(SYS_clone, ...) making a new process, as a fork does: clone
 * without CLONE_VM and without a stack of its own (the child returns from
 * syscall() on its copy of the caller's stack; with another stack it could
 * not return at all, with or without us).  clone3 alike, reading its flags
 * and stack from the caller's struct as the kernel will.
 */
static int raw_fork_call(long n, const long *a)
{
	uint64_t flags = (uint64_t)a[0], stack = (uint64_t)a[1];
	if (n == SYS_clone3) {
		uint64_t ca[6]; /* flags, pidfd, child_tid, parent_tid, exit_signal, stack */
		if ((size_t)a[1] < sizeof(ca) || peek(ca, (void *)a[0], sizeof(ca)))
			return 0; /* the kernel answers EINVAL or EFAULT */
		flags = ca[0];
		stack = ca[5];
	}
	return !(flags & CLONE_VM) && !stack;
}

/* Such a raw fork runs no atfork handlers: the child registers as a forked child does. */
static long raw_fork(long n, const long *a)
{
	co_agent_fork_lock(); /* the child runs co_agent_forked, which sets it free again */
	long r = co_sys6(n, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (r == 0) {
		co_agent_forked();
		return 0;
	}
	co_agent_fork_unlock();
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

EXPORT long syscall(long n, ...)
{
	va_list ap;
	long a[6];
	va_start(ap, n);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (n == SYS_nanosleep)
		return nanosleep((const struct timespec *)a[0], (struct timespec *)a[1]);
	if (n == SYS_fork || ((n == SYS_clone || n == SYS_clone3) && raw_fork_call(n, a)))
		return raw_fork(n, a);
	if (n == SYS_madvise)
		return madvise((void *)a[0], (size_t)a[1], (int)a[2]);
	/* a CPU clock goes on across a restart (cpuclock.c); the kernel answers for the rest, bad pointers too */
	if (n == SYS_clock_gettime && co_cpu_clock((int)a[0]))
		return clock_gettime((clockid_t)a[0], (struct timespec *)a[1]);
	/* the overrun count a checkpoint or restart could not give back to the kernel (timers.c) */
	if (n == SYS_timer_getoverrun) {
		long r = co_sys1(SYS_timer_getoverrun, a[0]);
		if (r < 0) {
			errno = (int)-r;
			return -1;
		}
		return co_timer_overrun((int)a[0], (int)r);
	}
	/* SEM_UNDO adjustments are noted (semundo.c) */
	if (n == SYS_semop)
		return semop((int)a[0], (struct sembuf *)a[1], (size_t)a[2]);
	if (n == SYS_semtimedop)
		return semtimedop((int)a[0], (struct sembuf *)a[1], (size_t)a[2], (const struct timespec *)a[3]);
	int ctl = (int)a[2] & ~0x100; /* IPC_64: a layout; these three have no struct to lay out */
	if (n == SYS_semctl && (ctl == SETVAL || ctl == SETALL || ctl == IPC_RMID))
		return semctl((int)a[0], (int)a[1], (int)a[2], a[3]);
	int op = (int)(a[1] & FUTEX_CMD_MASK);
	/* a timeout we cannot read goes to the kernel as it is (EFAULT), never retried */
	struct timespec want, t0 = { 0, 0 }, deadline = { 0, 0 }, left;
	int relative = n == SYS_futex && op == FUTEX_WAIT && a[3] && peek(&want, (void *)a[3], sizeof(want)) == 0;
	if (relative)
		t0 = ts_now(CLOCK_MONOTONIC);
	for (int again = 0;; again = 1) {
		uint64_t e = co_epoch();
		long r = co_sys6(n, a[0], a[1], a[2], a[3], a[4], a[5]);
		if (r == -EINTR && co_epoch() != e && n == SYS_futex) {
			if (relative) {
				/* the kernel accepted the timeout: a valid time */
				if (!again)
					deadline = ts_add(t0, want);
				left = ts_left(deadline, CLOCK_MONOTONIC);
				a[3] = (long)&left;
			}
			continue;
		}
		if (r < 0 && r > -4096) {
			errno = (int)-r;
			return -1;
		}
		return r;
	}
}

/* ---- keeping the agent in every program the group execs ---- */


static char env_preload[4200], env_sock[300], env_sig[32], env_undo[CO_SEMUNDO_ENV_MAX];

/* Remember what the group's processes must carry across exec. */
void co_wrap_env_init(void)
{
	const char *p = getenv("LD_PRELOAD"), *s = getenv("COHORT_SOCK"), *g = getenv("COHORT_SIG");
	if (p)
		snprintf(env_preload, sizeof(env_preload), "LD_PRELOAD=%s", p);
	if (s)
		snprintf(env_sock, sizeof(env_sock), "COHORT_SOCK=%s", s);
	if (g)
		snprintf(env_sig, sizeof(env_sig), "COHORT_SIG=%s", g);
}

static int env_is(const char *entry, const char *name)
{
	size_t kl = strlen(name);
	return strncmp(entry, name, kl) == 0 && entry[kl] == '=';
}

static int env_has(char *const env[], const char *entry)
{
	size_t kl = strchr(entry, '=') - entry + 1;
	for (; env && *env; env++)
		if (strncmp(*env, entry, kl) == 0)
			return 1;
	return 0;
}

static size_t env_count(char *const env[])
{
	size_t n = 0;
	while (env && env[n])
		n++;
	return n;
}

/*
 * out (n + 5 slots) gets env plus our variables where env lacks them (an
 * emptied environment, or one rebuilt by the program).  The socket and
 * signal always come from the agent, not from env: after a restart the
 * environment in memory still names the old coordinator's socket.  An
 * exec of this process (same) carries its SEM_UNDO adjustments (semundo.c),
 * a new process none.  No malloc: this also runs in vfork children.
 */
static char **with_agent(char *const env[], char **out, int same)
{
	size_t n = 0;
	int ours = co_agent.active || env_preload[0];
	if (co_agent.active) {
		co_fmt(env_sock, sizeof(env_sock), "COHORT_SOCK=%s", co_agent.sock_path);
		co_fmt(env_sig, sizeof(env_sig), "COHORT_SIG=%d", co_agent.sig);
	}
	for (; env && *env; env++)
		if (!ours || !(env_is(*env, "COHORT_SOCK") || env_is(*env, "COHORT_SIG") || env_is(*env, "COHORT_SEMUNDO")))
			out[n++] = *env;
	if (ours) {
		if (env_preload[0] && !env_has(env, env_preload))
			out[n++] = env_preload;
		if (env_sock[0])
			out[n++] = env_sock;
		if (env_sig[0])
			out[n++] = env_sig;
		if (same && co_semundo_env(env_undo, sizeof(env_undo)))
			out[n++] = env_undo;
	}
	out[n] = NULL;
	return out;
}

/*
 * The checkpoint signal must not arrive while a thread is inside execve:
 * the new program starts with default handlers but keeps pending signals,
 * and the real-time default kills it.  So it is blocked across the call
 * (a signal mask survives exec) and the new image's agent unblocks it once
 * its handler is in place; a failed exec gets its mask back and takes the
 * signal then.  The mask is per thread, so this is right in vfork children.
 */
static uint64_t exec_guard(void)
{
	uint64_t set = 0, old = 0;
	int sig = co_wrap_sig();
	if (sig > 0) {
		set = 1ULL << (sig - 1);
		co_sigprocmask(SIG_BLOCK, &set, &old);
	}
	return old;
}

static int exec_unguard(int r, uint64_t old)
{
	int e = errno;
	if (co_wrap_sig() > 0)
		co_sigprocmask(SIG_SETMASK, &old, 0);
	errno = e;
	return r;
}

/*
 * clone(3) of a new process (no CLONE_VM) runs no atfork handlers: the
 * child would run without registering, and the next checkpoint would wait
 * for it.  The child first does what a forked child does, then fn.
 */
#include <sched.h>
DECL(int, clone, int (*)(void *), void *, int, void *, ...);

struct clone_call {
	int (*fn)(void *);
	void *arg;
};

static int clone_child(void *p)
{
	struct clone_call c = *(struct clone_call *)p; /* our copy of the parent's memory */
	co_agent_forked();
	/* glibc ends the child as without us (the agent has no thread that could keep it alive) */
	return c.fn(c.arg);
}

EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	/* the optional arguments, passed on as they are: clone looks at them only as flags say */
	pid_t *ptid = va_arg(ap, pid_t *);
	void *tls = va_arg(ap, void *);
	pid_t *ctid = va_arg(ap, pid_t *);
	va_end(ap);
	ENSURE(clone);
	/* no fn or no stack: glibc's EINVAL; a thread (CLONE_VM): nothing to register */
	struct clone_call *c = !fn || !stack || (flags & CLONE_VM) || !co_agent.active ? NULL : malloc(sizeof(*c));
	if (!c) {
		int r = REAL(clone)(fn, stack, flags, arg, ptid, tls, ctid);
		if (r > 0 && (flags & CLONE_THREAD))
			co_cpuclock_forget(r); /* a new thread: a gone one's CPU-clock offsets are not its own */
		return r;
	}
	c->fn = fn;
	c->arg = arg;
	co_agent_fork_lock(); /* the child runs co_agent_forked, which sets it free again */
	int r = REAL(clone)(clone_child, stack, flags, c, ptid, tls, ctid);
	int e = errno;
	co_agent_fork_unlock();
	free(c);
	errno = e;
	return r;
}

DECL(int, execve, const char *, char *const[], char *const[]);
DECL(int, execvpe, const char *, char *const[], char *const[]);
DECL(int, fexecve, int, char *const[], char *const[]);
DECL(int, posix_spawn, pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
     char *const[], char *const[]);
DECL(int, posix_spawnp, pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
     char *const[], char *const[]);

extern char **environ;

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	ENSURE(execve);
	char *env[env_count(envp) + 5];
	uint64_t old = exec_guard();
	return exec_unguard(REAL(execve)(path, argv, with_agent(envp, env, 1)), old);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	ENSURE(execvpe);
	char *env[env_count(envp) + 5];
	uint64_t old = exec_guard();
	return exec_unguard(REAL(execvpe)(file, argv, with_agent(envp, env, 1)), old);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	ENSURE(fexecve);
	char *env[env_count(envp) + 5];
	uint64_t old = exec_guard();
	return exec_unguard(REAL(fexecve)(fd, argv, with_agent(envp, env, 1)), old);
}

/* The execl family: gather the arguments, then the matching execv. */
#define GATHER(first, ap, argv, extra)                                      \
	size_t argc_ = 1;                                                  \
	va_start(ap, first);                                               \
	while (va_arg(ap, char *))                                         \
		argc_++;                                                   \
	va_end(ap);                                                        \
	char *argv[argc_ + 1];                                             \
	va_start(ap, first);                                               \
	argv[0] = (char *)first;                                           \
	for (size_t i_ = 1; i_ <= argc_; i_++)                             \
		argv[i_] = va_arg(ap, char *);                             \
	extra;                                                             \
	va_end(ap)

EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	GATHER(arg, ap, argv, (void)0);
	return execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	GATHER(arg, ap, argv, (void)0);
	return execvpe(file, argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	char **envp;
	GATHER(arg, ap, argv, envp = va_arg(ap, char **));
	return execve(path, argv, envp);
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ENSURE(posix_spawn);
	char *env[env_count(envp) + 5];
	return REAL(posix_spawn)(pid, path, fa, attr, argv, with_agent(envp, env, 0));
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ENSURE(posix_spawnp);
	char *env[env_count(envp) + 5];
	return REAL(posix_spawnp)(pid, file, fa, attr, argv, with_agent(envp, env, 0));
}
