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
 *    The socket calls the kernel never restarts once a timeout is set on the
 *    socket (SO_RCVTIMEO, SO_SNDTIMEO) are made again the same way
 *    (wrap_sock.c).
 * 2. The checkpoint signal itself is hidden (wrap_signal.c).
 * 3. The agent keeps no descriptor in the program's table (its manager
 *    thread has a table of its own, and only during a checkpoint): close,
 *    close_range, closefrom, dup2 and dup3 are the program's; their
 *    wrappers (inotify.c) only note what the calls end: the agent's view
 *    of an inotify descriptor, the dnotify watches on a file (dnotify.c,
 *    which notes fcntl's F_NOTIFY).
 * 4. madvise(2) flags the kernel keeps per region (MADV_DONTFORK, ...) are
 *    noted, so that a checkpoint knows it must look for them; so are locks
 *    (mlock, mlock2, mlockall, MAP_LOCKED) and the mmap flags smaps shows
 *    (MAP_NORESERVE, MAP_GROWSDOWN), and mlockall's flags for the future.
 * 5. Every program the group execs or spawns keeps the agent (wrap_exec.c).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
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
	co_wrap_sock_init();
	co_cpuclock_init();
	co_wrap_env_init();
}

/* ---- the caller's arguments ---- */

/*
 * Copy n bytes from or to the caller's memory as the kernel copies a
 * system call's argument: 0, or -1 where the kernel would answer EFAULT.
 * A wrapper must not fault on a pointer the program got wrong: what it
 * cannot read goes to the real call untouched, which answers as it would
 * without us; what it cannot write is the EFAULT the kernel would give.
 * (process_vm_readv/writev on ourselves: the kernel copies, and reports a
 * fault.)
 */
int co_user_copy(void *dst, const void *src, size_t n, int to_user)
{
	if (!(to_user ? dst : src))
		return -1;
	struct iovec here = { to_user ? (void *)src : dst, n }, there = { to_user ? dst : (void *)src, n };
	long r = co_sys6(to_user ? SYS_process_vm_writev : SYS_process_vm_readv, co_getpid(), (long)&here, 1,
			 (long)&there, 1, 0);
	if (r == -ENOSYS || r == -EPERM) {
		/* forbidden here (a seccomp filter): copy it ourselves, as before */
		memcpy(dst, src, n);
		return 0;
	}
	return r == (long)n ? 0 : -1;
}

static int peek(void *dst, const void *src, size_t n)
{
	return co_user_copy(dst, src, n, 0);
}

/* ---- time helpers ---- */

#define TS_MAX ((time_t)0x7fffffffffffffffLL)

/*
 * The time on c, asked of the kernel (an invalid clock is the real call's
 * to report).  Not through the vDSO: it reads the TSC, which a thread
 * may have made fault (prctl PR_SET_TSC, PR_TSC_SIGSEGV) and then sleep
 * by a system call, which must not die of our reading.
 */
static struct timespec ts_now(clockid_t c)
{
	struct timespec t = { 0, 0 };
	co_clock_gettime(c, &t);
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
	case MADV_NORMAL: /* (clears MADV_SEQUENTIAL and MADV_RANDOM) */
	case MADV_DONTFORK: case MADV_DOFORK: case MADV_WIPEONFORK: case MADV_KEEPONFORK:
	case MADV_DONTDUMP: case MADV_DODUMP: case MADV_HUGEPAGE: case MADV_NOHUGEPAGE:
	case MADV_SEQUENTIAL: case MADV_RANDOM: case MADV_MERGEABLE: case MADV_UNMERGEABLE:
		return 1;
	default:
		return 0;
	}
}

/*
 * A call that may change a region's flags: noted before it (a checkpoint
 * that parks us in between reads smaps) and after it (one that parked us
 * before the call, and read the flags of then, must not be taken as
 * still true at the next: mem.c, co_mem_collect).
 */
static void advice_noted(void)
{
	co_agent.advice = 1;
	__atomic_add_fetch(&co_agent.advice_epoch, 1, __ATOMIC_SEQ_CST);
}

/* After such a call: noted again, and the kernel's answer r as the C library gives it (-1 and errno). */
static long advised(long r)
{
	advice_noted();
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

EXPORT int madvise(void *addr, size_t len, int advice)
{
	if (!sticky_advice(advice)) {
		long r = co_sys3(SYS_madvise, (long)addr, (long)len, advice);
		return r < 0 ? (errno = (int)-r, -1) : 0;
	}
	advice_noted();
	return (int)advised(co_sys3(SYS_madvise, (long)addr, (long)len, advice));
}

/*
 * The C library's posix_madvise calls the kernel itself, not madvise:
 * its NORMAL, RANDOM and SEQUENTIAL are flags as madvise's.  As there,
 * POSIX_MADV_DONTNEED does nothing (the kernel's MADV_DONTNEED drops
 * pages, which POSIX's must not), and the error is returned, not set.
 */
EXPORT int posix_madvise(void *addr, size_t len, int advice)
{
	if (advice == POSIX_MADV_DONTNEED)
		return 0;
	int sticky = sticky_advice(advice);
	if (sticky)
		advice_noted();
	long r = co_sys3(SYS_madvise, (long)addr, (long)len, advice);
	if (sticky)
		advice_noted();
	return r < 0 ? (int)-r : 0;
}

/*
 * Locks and mmap flags are VmFlags too (lo, lf, nr, gd): a checkpoint
 * reads smaps once the program has used one.  mlockall's MCL_FUTURE (and
 * MCL_ONFAULT) hold for regions not mapped yet, which only the call
 * tells: noted for the image (co_agent.mlockall), as the kernel keeps
 * them, every mlockall replacing them, munlockall clearing them.
 */
EXPORT int mlock(const void *addr, size_t len)
{
	advice_noted();
	return (int)advised(co_sys3(SYS_mlock2, (long)addr, (long)len, 0));
}

EXPORT int mlock2(const void *addr, size_t len, unsigned int flags)
{
	advice_noted();
	return (int)advised(co_sys3(SYS_mlock2, (long)addr, (long)len, (long)flags));
}

EXPORT int munlock(const void *addr, size_t len)
{
	advice_noted();
	return (int)advised(co_sys2(SYS_munlock, (long)addr, (long)len));
}

EXPORT int mlockall(int flags)
{
	advice_noted();
	long r = co_sys1(SYS_mlockall, flags);
	if (r == 0)
		co_agent.mlockall = (flags & MCL_FUTURE) ? (uint32_t)flags & (MCL_FUTURE | MCL_ONFAULT) : 0;
	return (int)advised(r);
}

EXPORT int munlockall(void)
{
	advice_noted();
	long r = co_sys0(SYS_munlockall);
	if (r == 0)
		co_agent.mlockall = 0;
	return (int)advised(r);
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int noted = flags & (MAP_LOCKED | MAP_NORESERVE | MAP_GROWSDOWN);
	if (noted)
		advice_noted();
	long r = co_sys6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, (long)off);
	if (noted)
		advice_noted();
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return MAP_FAILED;
	}
	return (void *)r;
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

/* ---- raw system calls made through syscall(3) ---- */

#include <linux/aio_abi.h>
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

/* The kernel's result r as syscall(3) returns it. */
static long sys_result(long r)
{
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}


/* A close through syscall(3) (close, dup2 or dup3 over a descriptor, close_range) ends the dnotify watches of what it closes. */
static long raw_close(long n, const long *a)
{
	unsigned lo = (unsigned)a[n == SYS_dup2 || n == SYS_dup3], hi = n == SYS_close_range ? (unsigned)a[1] : lo;
	int closes = n == SYS_close || (n == SYS_close_range ? !(a[2] & (CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE)) &&
							     lo <= hi
							   : a[0] != a[1]);
	struct co_dnotify_close c = { 0, 0, 0 };
	if (closes)
		co_dnotify_closing(&c, lo, hi);
	long r = co_sys6(n, a[0], a[1], a[2], a[3], a[4], a[5]);
	co_dnotify_closed(&c, n == SYS_close ? r != -EBADF : r >= 0);
	if (n == SYS_close_range && r == 0 && (a[2] & CLOSE_RANGE_UNSHARE))
		co_dnotify_unshare();
	return sys_result(r);
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
	return sys_result(r);
}

/*
 * The aio calls are noted (aio.c).  io_getevents and io_pgetevents fail
 * with EINTR after any handler, and may come back with fewer than min_nr
 * events when one ran: a wait our checkpoint cut short goes on with what
 * is left, for the events still wanted, until its timeout (a[4], relative).
 * io_pgetevents' mask (a[5]: { mask, size }) loses our signal, as ppoll's.
 */
static long aio_syscall(long n, const long *a)
{
	if (n != SYS_io_getevents && n != SYS_io_pgetevents)
		return sys_result(co_aio_call(n, a));
	long b[6] = { a[0], a[1], a[2], a[3], a[4], a[5] }, got = 0;
	struct { const sigset_t *mask; size_t size; } usig;
	sigset_t copy;
	if (n == SYS_io_pgetevents && peek(&usig, (void *)a[5], sizeof(usig)) == 0 &&
	    co_without_ours(usig.mask, &copy) != usig.mask) {
		usig.mask = &copy;
		b[5] = (long)&usig;
	}
	struct rel_timeout t;
	rel_start(&t, (const struct timespec *)a[4]);
	for (;;) {
		uint64_t e = co_epoch();
		long r = co_aio_call(n, b);
		int cut = co_epoch() != e && (r == -EINTR || (r >= 0 && got + r < a[1]));
		got += r > 0 ? r : 0;
		if (!cut)
			return got ? got : sys_result(r);
		rel_again(&t);
		if (t.arg && !t.arg->tv_sec && !t.arg->tv_nsec)
			return got; /* its time is up */
		b[1] = a[1] - got > 0 ? a[1] - got : 0;
		b[2] = a[2] - got;
		b[3] = a[3] + got * (long)sizeof(struct io_event);
		b[4] = (long)t.arg;
	}
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
	/* calls that change a region's flags (VmFlags): noted as their wrappers note them */
	if (n == SYS_mlock)
		return mlock((const void *)a[0], (size_t)a[1]);
	if (n == SYS_mlock2)
		return mlock2((const void *)a[0], (size_t)a[1], (unsigned)a[2]);
	if (n == SYS_munlock)
		return munlock((const void *)a[0], (size_t)a[1]);
	if (n == SYS_mlockall)
		return mlockall((int)a[0]);
	if (n == SYS_munlockall)
		return munlockall();
	if (n == SYS_mmap && ((int)a[3] & (MAP_LOCKED | MAP_NORESERVE | MAP_GROWSDOWN))) {
		void *p = mmap((void *)a[0], (size_t)a[1], (int)a[2], (int)a[3], (int)a[4], (off_t)a[5]);
		return p == MAP_FAILED ? -1 : (long)p;
	}
	/* dnotify watches are noted (dnotify.c) */
	if (n == SYS_fcntl && (int)a[1] == F_NOTIFY)
		return sys_result(co_dnotify_call((int)a[0], (unsigned long)a[2]));
	if (n == SYS_close || n == SYS_dup2 || n == SYS_dup3 || n == SYS_close_range)
		return raw_close(n, a);
	/* an rseq area of the program's own is noted, to be found at a checkpoint (threads.c) */
	if (n == SYS_rseq)
		return sys_result(co_rseq_call(a));
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
	if ((n >= SYS_io_setup && n <= SYS_io_submit) || n == SYS_io_pgetevents)
		return aio_syscall(n, a);
	/* a connection a checkpoint gave back behind a marker (accept.c) */
	if (n == SYS_accept)
		return accept((int)a[0], (struct sockaddr *)a[1], (socklen_t *)a[2]);
	if (n == SYS_accept4)
		return accept4((int)a[0], (struct sockaddr *)a[1], (socklen_t *)a[2], (int)a[3]);
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
		return sys_result(r);
	}
}
