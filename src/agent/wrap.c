/*
 * wrap.c - what the program must not notice.
 *
 * 1. The checkpoint signal interrupts blocking calls.  Calls the kernel can
 *    restart (read, write, accept, wait, untimed futex waits) restart by
 *    themselves under SA_RESTART.  The ones that always fail with EINTR
 *    after a handler (sleeps, poll, select, epoll, sigtimedwait, pause,
 *    timed semaphore waits) are wrapped here: when the checkpoint handler
 *    ran in this thread during the call (co_tls_epoch moved), the call is
 *    made again with what is left of its timeout.  Deadlines are kept on
 *    CLOCK_MONOTONIC, which the group's time namespace carries across a
 *    restart, so a timeout keeps its remaining time.
 * 2. The checkpoint signal itself is hidden: the program cannot block it,
 *    catch it, wait for it or read it from a signalfd, and queries report
 *    what the program set.
 * 3. The agent's control socket cannot be closed by the program.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <semaphore.h>
#include <spawn.h>
#include <stdlib.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "agent.h"
#include "dirty.h"
#include "sys.h"

#define EXPORT __attribute__((visibility("default")))

#define REAL(name) real_##name
#define DECL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__)

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
DECL(int, sigaction, int, const struct sigaction *, struct sigaction *);
DECL(int, sigprocmask, int, const sigset_t *, sigset_t *);
DECL(int, pthread_sigmask, int, const sigset_t *, sigset_t *);
DECL(int, signalfd, int, const sigset_t *, int);
DECL(int, close, int);

void co_wrap_env_init(void);

static void *next(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

void co_wrap_init(void)
{
#define LOAD(name) real_##name = next(#name)
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
	LOAD(sem_clockwait);
	LOAD(sigaction);
	LOAD(sigprocmask);
	LOAD(pthread_sigmask);
	LOAD(signalfd);
	LOAD(close);
	co_wrap_env_init();
}

/* Functions can be called before our constructor ran (other constructors). */
#define ENSURE(name)                                   \
	do {                                           \
		if (!real_##name)                      \
			real_##name = next(#name);     \
	} while (0)

static int our_sig(void)
{
	return co_agent.active ? co_agent.sig : 0;
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
#define AGAIN(r, epoch) ((r) < 0 && errno == EINTR && co_tls_epoch != (epoch))

/*
 * A signal set without our signal; returns set itself when it has none,
 * and when it cannot be read (the kernel answers EFAULT for it).  The
 * kernel reads the first 8 bytes of a set: those are copied.
 */
static const sigset_t *without_ours(const sigset_t *set, sigset_t *copy)
{
	int s = our_sig();
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
	struct timespec want, rem0, deadline = { 0, 0 }, left;
	int rel = !(flags & TIMER_ABSTIME);
	if (peek(&want, req, sizeof(want)) < 0)
		return REAL(clock_nanosleep)(clk, flags, req, rem);
	int keep_rem = rel && rem && peek(&rem0, rem, sizeof(rem0)) == 0;
	clockid_t dclk = rel ? deadline_clock(clk) : clk;
	struct timespec t0 = ts_now(dclk);
	const struct timespec *arg = req;
	for (;;) {
		unsigned e = co_tls_epoch;
		int r = REAL(clock_nanosleep)(clk, flags, arg, rem);
		if (co_tls_epoch == e || !(r == EINTR || (r == EFAULT && rel && rem)))
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
		unsigned e = co_tls_epoch;
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
	mask = without_ours(mask, &copy);
	struct timespec t0 = ts_now(CLOCK_MONOTONIC), deadline = { 0, 0 }, left;
	const struct timespec *arg = tmo;
	for (;;) {
		unsigned e = co_tls_epoch;
		int r = REAL(ppoll)(fds, n, arg, mask);
		if (!AGAIN(r, e))
			return r;
		if (tmo) {
			if (arg == tmo)
				deadline = ts_add(t0, *tmo);
			left = ts_left(deadline, CLOCK_MONOTONIC);
			arg = &left;
		}
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
		unsigned e = co_tls_epoch;
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
	mask = without_ours(mask, &copy);
	struct timespec t0 = ts_now(CLOCK_MONOTONIC), deadline = { 0, 0 }, left;
	const struct timespec *arg = tmo;
	for (;;) {
		unsigned e = co_tls_epoch;
		int res = REAL(pselect)(n, r, w, x, arg, mask);
		if (!AGAIN(res, e))
			return res;
		if (tmo) {
			if (arg == tmo)
				deadline = ts_add(t0, *tmo);
			left = ts_left(deadline, CLOCK_MONOTONIC);
			arg = &left;
		}
	}
}

EXPORT int epoll_wait(int ep, struct epoll_event *ev, int max, int timeout)
{
	ENSURE(epoll_wait);
	struct timespec deadline = ms_deadline(timeout > 0 ? timeout : 0);
	int ms = timeout;
	for (;;) {
		unsigned e = co_tls_epoch;
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
	mask = without_ours(mask, &copy);
	struct timespec deadline = ms_deadline(timeout > 0 ? timeout : 0);
	int ms = timeout;
	for (;;) {
		unsigned e = co_tls_epoch;
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
	set = without_ours(set, &copy);
	struct timespec t0 = ts_now(CLOCK_MONOTONIC), deadline = { 0, 0 }, left;
	const struct timespec *arg = tmo;
	for (;;) {
		unsigned e = co_tls_epoch;
		int r = REAL(sigtimedwait)(set, info, arg);
		if (!AGAIN(r, e))
			return r;
		if (tmo) {
			if (arg == tmo)
				deadline = ts_add(t0, *tmo);
			left = ts_left(deadline, CLOCK_MONOTONIC);
			arg = &left;
		}
	}
}

EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info)
{
	return sigtimedwait(set, info, 0);
}

/*
 * glibc's sigwait calls its own sigtimedwait, past the wrapper above: a
 * thread in sigwait() on a full set (a daemon's signal thread) would take
 * the checkpoint signal as its own, and never park.  It is glibc's loop
 * over ours: EINTR repeats, an error is returned (and left in errno).
 */
EXPORT int sigwait(const sigset_t *set, int *sig)
{
	int r;
	do
		r = sigtimedwait(set, NULL, NULL);
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
	mask = without_ours(mask, &copy);
	for (;;) {
		unsigned e = co_tls_epoch;
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
		unsigned e = co_tls_epoch;
		int r = REAL(sem_timedwait)(s, abs);
		if (!AGAIN(r, e))
			return r;
	}
}

EXPORT int sem_clockwait(sem_t *s, clockid_t c, const struct timespec *abs)
{
	ENSURE(sem_clockwait);
	for (;;) {
		unsigned e = co_tls_epoch;
		int r = REAL(sem_clockwait)(s, c, abs);
		if (!AGAIN(r, e))
			return r;
	}
}

/* ---- hiding the checkpoint signal ---- */

/* What the program believes about our signal. */
static struct sigaction shadow_action;
static __thread int shadow_blocked __attribute__((tls_model("initial-exec")));

/*
 * Our signal's action lives in shadow_action, kept as glibc and the kernel
 * would keep it: glibc installs every action with SA_RESTORER, the kernel
 * drops SIGKILL and SIGSTOP from the mask.  (The restorer reported is the
 * program's own, not glibc's.)  glibc reads act and writes old itself,
 * faulting where they are bad: so do we.
 */
EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	ENSURE(sigaction);
	if (!sig || sig != our_sig())
		return REAL(sigaction)(sig, act, old);
	struct sigaction was = shadow_action;
	if (act) {
		shadow_action = *act;
		shadow_action.sa_flags |= 0x04000000; /* SA_RESTORER */
		sigdelset(&shadow_action.sa_mask, SIGKILL);
		sigdelset(&shadow_action.sa_mask, SIGSTOP);
	}
	if (old)
		*old = was;
	return 0;
}

/*
 * glibc's signal() calls its own sigaction, past this wrapper: it stays
 * glibc's for every signal but ours, which gets what glibc's would set
 * (the BSD semantics: the signal blocked in its handler, SA_RESTART).
 */
DECL(sighandler_t, signal, int, sighandler_t);
EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	ENSURE(signal);
	if (!sig || sig != our_sig())
		return REAL(signal)(sig, h);
	if (h == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sigaddset(&sa.sa_mask, sig);
	sa.sa_flags = SA_RESTART;
	sigaction(sig, &sa, &old);
	return old.sa_handler;
}

/*
 * sigprocmask and pthread_sigmask never block our signal; the program's
 * wish is kept in shadow_blocked and reported back in old.  glibc reads
 * the new set itself (and faults on a bad one, with or without us).
 */
static int mask_call(int (*real)(int, const sigset_t *, sigset_t *), int how, const sigset_t *set,
		     sigset_t *old)
{
	int s = our_sig();
	sigset_t copy;
	int was = shadow_blocked;
	if (s && set && sigismember(set, s)) {
		if (how == SIG_BLOCK || how == SIG_SETMASK)
			shadow_blocked = 1;
		else if (how == SIG_UNBLOCK)
			shadow_blocked = 0;
	} else if (s && set && how == SIG_SETMASK) {
		shadow_blocked = 0;
	}
	int r = real(how, without_ours(set, &copy), old);
	if (r == 0 && old && s) {
		if (was)
			sigaddset(old, s);
		else
			sigdelset(old, s);
	}
	return r;
}

EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	ENSURE(sigprocmask);
	return mask_call(REAL(sigprocmask), how, set, old);
}

EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	ENSURE(pthread_sigmask);
	return mask_call(REAL(pthread_sigmask), how, set, old);
}

EXPORT int signalfd(int fd, const sigset_t *mask, int flags)
{
	ENSURE(signalfd);
	sigset_t copy;
	return REAL(signalfd)(fd, without_ours(mask, &copy), flags);
}

/* ---- the agent's descriptors ---- */

int co_is_agent_fd(int fd)
{
	int fds[CO_AGENT_MAX_FDS], n = co_agent_fds(fds);
	for (int i = 0; i < n; i++)
		if (fds[i] == fd)
			return 1;
	return 0;
}

EXPORT int close(int fd)
{
	ENSURE(close);
	if (co_is_agent_fd(fd))
		return 0;
	return REAL(close)(fd);
}

static int sys_result(long r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return (int)r;
}

/*
 * Daemons and runtimes close every descriptor above 2 (closefrom, Python's
 * closerange, posix_spawn's addclosefrom): the ranges are closed around
 * the agent's own, as close() passes them by.  What the kernel refuses
 * (first > last, unknown flags) it refuses whole, closing nothing: so the
 * kernel judges a reversed range as it is, and a range of only our
 * descriptors by an empty one past the end.
 */
EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	if (first > last)
		return sys_result(co_sys3(SYS_close_range, first, last, flags));
	int fds[CO_AGENT_MAX_FDS], n = co_agent_fds(fds), calls = 0;
	unsigned int lo = first;
	long r = 0;
	for (int i = 0; i < n && r == 0 && lo <= last; i++) {
		unsigned int fd = (unsigned int)fds[i];
		if (fd < lo || fd > last)
			continue;
		if (fd > lo) {
			r = co_sys3(SYS_close_range, lo, fd - 1, flags);
			calls++;
		}
		lo = fd + 1;
	}
	if (r == 0 && lo <= last && lo >= first) {
		r = co_sys3(SYS_close_range, lo, last, flags);
		calls++;
	}
	if (!calls)
		r = co_sys3(SYS_close_range, ~0U, ~0U, flags);
	return sys_result(r);
}

EXPORT void closefrom(int lowfd)
{
	close_range(lowfd < 0 ? 0 : (unsigned int)lowfd, ~0U, 0);
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
	if (n == SYS_close_range)
		return close_range((unsigned int)a[0], (unsigned int)a[1], (int)a[2]);
	if (n == SYS_close)
		return close((int)a[0]);
	int op = (int)(a[1] & FUTEX_CMD_MASK);
	/* a timeout we cannot read goes to the kernel as it is (EFAULT), never retried */
	struct timespec want, t0 = { 0, 0 }, deadline = { 0, 0 }, left;
	int relative = n == SYS_futex && op == FUTEX_WAIT && a[3] && peek(&want, (void *)a[3], sizeof(want)) == 0;
	if (relative)
		t0 = ts_now(CLOCK_MONOTONIC);
	for (int again = 0;; again = 1) {
		unsigned e = co_tls_epoch;
		long r = co_sys6(n, a[0], a[1], a[2], a[3], a[4], a[5]);
		if (r == -EINTR && co_tls_epoch != e && n == SYS_futex) {
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


static char env_preload[4200], env_sock[300], env_sig[32];

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
 * out (n + 4 slots) gets env plus our variables where env lacks them (an
 * emptied environment, or one rebuilt by the program).  The socket and
 * signal always come from the agent, not from env: after a restart the
 * environment in memory still names the old coordinator's socket.  No
 * malloc: this also runs in vfork children.
 */
static char **with_agent(char *const env[], char **out)
{
	size_t n = 0;
	int ours = co_agent.active || env_preload[0];
	if (co_agent.active) {
		co_fmt(env_sock, sizeof(env_sock), "COHORT_SOCK=%s", co_agent.sock_path);
		co_fmt(env_sig, sizeof(env_sig), "COHORT_SIG=%d", co_agent.sig);
	}
	for (; env && *env; env++)
		if (!ours || !(env_is(*env, "COHORT_SOCK") || env_is(*env, "COHORT_SIG")))
			out[n++] = *env;
	if (ours) {
		if (env_preload[0] && !env_has(env, env_preload))
			out[n++] = env_preload;
		if (env_sock[0])
			out[n++] = env_sock;
		if (env_sig[0])
			out[n++] = env_sig;
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
	int sig = our_sig();
	if (sig > 0) {
		set = 1ULL << (sig - 1);
		co_sigprocmask(SIG_BLOCK, &set, &old);
	}
	return old;
}

static int exec_unguard(int r, uint64_t old)
{
	int e = errno;
	if (our_sig() > 0)
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
	/*
	 * glibc ends the child with a thread exit when fn returns: with the
	 * agent's manager thread alive, that would leave a zombie leader its
	 * parent cannot reap.  The whole process ends, as it did without us.
	 */
	_exit(c.fn(c.arg));
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
	if (!c)
		return REAL(clone)(fn, stack, flags, arg, ptid, tls, ctid);
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
	char *env[env_count(envp) + 4];
	uint64_t old = exec_guard();
	return exec_unguard(REAL(execve)(path, argv, with_agent(envp, env)), old);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	ENSURE(execvpe);
	char *env[env_count(envp) + 4];
	uint64_t old = exec_guard();
	return exec_unguard(REAL(execvpe)(file, argv, with_agent(envp, env)), old);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	ENSURE(fexecve);
	char *env[env_count(envp) + 4];
	uint64_t old = exec_guard();
	return exec_unguard(REAL(fexecve)(fd, argv, with_agent(envp, env)), old);
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
	char *env[env_count(envp) + 4];
	return REAL(posix_spawn)(pid, path, fa, attr, argv, with_agent(envp, env));
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ENSURE(posix_spawnp);
	char *env[env_count(envp) + 4];
	return REAL(posix_spawnp)(pid, file, fa, attr, argv, with_agent(envp, env));
}
