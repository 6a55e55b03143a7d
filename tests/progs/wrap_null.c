/*
 * wrap_null: every function the agent wraps (src/agent/wrap*.c), called with
 * NULL, partly NULL and invalid pointers and with edge values, must answer
 * as glibc and the kernel answer without cohort: the same return value and
 * the same errno, never a crash.  A round makes every call and prints one
 * line per call ("ROUND what = RET ERRNO"), then waits the way make's
 * jobserver and readline do, in select() and pselect() with NULL sets
 * (and in sleeps whose rem is the request itself, or invalid), where the
 * harness's checkpoints land, and waits for the largest time there is
 * until the program's own SIGALRM ends them (EINTR, as natively).  A
 * thread waits in sigwait() on every signal all along.  The output must
 * equal a native run's.
 *
 * Invalid pointers are a PROT_NONE page ("bad") and pointers to the last 4
 * bytes of a readable page ("tail4"): the kernel answers EFAULT for both
 * (and reads a set of 64 bits at "tail8", the last 8 bytes, whole).
 * Only calls that glibc itself does not dereference are made with them
 * (glibc faults on a bad select() timeout, sigaction() act, ...: a crash
 * there is glibc's answer, with or without cohort).
 *
 * Signal 62 is the agent's checkpoint signal under cohort (an ordinary
 * real-time signal natively): setting, blocking and waiting for it must
 * look the same.
 */
#include "common.h"
#include <dirent.h>
#include <linux/aio_abi.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/times.h>
#include <sys/sem.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000 /* glibc sets it on every action it installs */
#endif
#define ROUNDS 14
#define SIG_AGENT 62

static int round_no;
static char *bad, *tail4, *tail8;
static int pr, pw;		/* a pipe, nothing ever written: pr never ready, pw always */
static int qr, qw;		/* the writer thread's pipe */
static int ep, ep_empty;	/* epoll: pw ready for writing; nothing */
static sem_t go, sem0;
static int semset;		/* a SysV set of one semaphore, 0 between the calls */
static volatile sig_atomic_t usr1_seen;
static const struct timespec zero_ts = { 0, 0 };
/* NULL where glibc's headers declare an argument nonnull: the kernel still answers */
static void *volatile null_ptr;
#define NUL ((void *)null_ptr)

static void on_usr1(int sig) { (void)sig; usr1_seen++; }
static void on_62(int sig) { (void)sig; }
static void on_winch(int sig) { (void)sig; }

static void out(const char *what, long r, int err)
{
	const char *e = err ? strerrorname_np(err) : "0";
	printf("%d %s = %ld %s\n", round_no, what, r, e ? e : "?");
}

/* Make one call with errno cleared, print its result and errno. */
#define CALL(what, expr)                              \
	do {                                          \
		errno = 0;                            \
		long r_ = (long)(expr);               \
		out(what, r_, errno);                 \
	} while (0)

static const char *hname(void (*h)(int))
{
	if (h == SIG_DFL)
		return "DFL";
	if (h == SIG_IGN)
		return "IGN";
	if (h == SIG_ERR)
		return "ERR";
	if (h == on_62)
		return "on_62";
	if (h == on_usr1)
		return "on_usr1";
	if (h == on_winch)
		return "on_winch";
	return "other";
}

static sigset_t set_of(int a, int b)
{
	sigset_t s;
	sigemptyset(&s);
	if (a)
		sigaddset(&s, a);
	if (b)
		sigaddset(&s, b);
	return s;
}

/* ---- sleeps ---- */

static void sleeps(void)
{
	struct timespec t = { 0, 1000 }, neg_ns = { 0, -1 }, neg_s = { -1, 0 }, big_ns = { 0, 1000000000 };
	CALL("nanosleep(NULL, NULL)", nanosleep(NULL, NULL));
	CALL("nanosleep(bad, NULL)", nanosleep((void *)bad, NULL));
	CALL("nanosleep(tail4, NULL)", nanosleep((void *)tail4, NULL));
	CALL("nanosleep({0,-1}, NULL)", nanosleep(&neg_ns, NULL));
	CALL("nanosleep({-1,0}, NULL)", nanosleep(&neg_s, NULL));
	CALL("nanosleep({0,1e9}, NULL)", nanosleep(&big_ns, NULL));
	CALL("nanosleep(1us, bad)", nanosleep(&t, (void *)bad));
	CALL("nanosleep(1us, NULL)", nanosleep(&t, NULL));
	CALL("nanosleep(1us, &itself)", nanosleep(&t, &t));
	printf("%d   request after = {%ld,%ld}\n", round_no, (long)t.tv_sec, t.tv_nsec);
	CALL("clock_nanosleep(MONO, 0, NULL, NULL)", clock_nanosleep(CLOCK_MONOTONIC, 0, NULL, NULL));
	CALL("clock_nanosleep(MONO, ABS, bad, NULL)", clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, (void *)bad, NULL));
	CALL("clock_nanosleep(12345, 0, 1us, NULL)", clock_nanosleep(12345, 0, &t, NULL));
	CALL("clock_nanosleep(THREAD_CPUTIME, 0, 1us, NULL)", clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &t, NULL));
	CALL("clock_nanosleep(MONO, ABS, {0,0}, NULL)", clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &zero_ts, NULL));
	CALL("clock_nanosleep(REALTIME, 0, {0,-1}, NULL)", clock_nanosleep(CLOCK_REALTIME, 0, &neg_ns, NULL));
	CALL("clock_nanosleep(BOOTTIME, 0, 1us, bad)", clock_nanosleep(CLOCK_BOOTTIME, 0, &t, (void *)bad));
	CALL("usleep(0)", usleep(0));
	CALL("sleep(0)", sleep(0));
}

/* ---- poll, select, epoll ---- */

static void polls(void)
{
	struct pollfd neg = { -1, POLLIN, 0 }, w = { pw, POLLOUT, 0 };
	struct timespec neg_ns = { 0, -1 };
	sigset_t ours = set_of(SIG_AGENT, SIGUSR2), none = set_of(0, 0);
	CALL("poll(NULL, 0, 0)", poll(NULL, 0, 0));
	CALL("poll(NULL, 1, 0)", poll(NUL, 1, 0));
	CALL("poll(bad, 1, 0)", poll((void *)bad, 1, 0));
	CALL("poll(tail4, 1, 0)", poll((void *)tail4, 1, 0));
	CALL("poll(NULL, 1<<30, 0)", poll(NUL, 1u << 30, 0));
	CALL("poll({-1}, 1, 0)", poll(&neg, 1, 0));
	CALL("poll({pw OUT}, 1, -1)", poll(&w, 1, -1));
	CALL("ppoll(NULL, 0, {0,0}, NULL)", ppoll(NULL, 0, &zero_ts, NULL));
	CALL("ppoll(NULL, 0, {0,0}, bad)", ppoll(NULL, 0, &zero_ts, (void *)bad));
	CALL("ppoll(NULL, 0, {0,0}, tail4)", ppoll(NULL, 0, &zero_ts, (void *)tail4));
	CALL("ppoll(NULL, 0, {0,-1}, NULL)", ppoll(NULL, 0, &neg_ns, NULL));
	CALL("ppoll(NULL, 1, {0,0}, NULL)", ppoll(NUL, 1, &zero_ts, NULL));
	CALL("ppoll(NULL, 0, {0,0}, {62,USR2})", ppoll(NULL, 0, &zero_ts, &ours));
	raise(SIGUSR1); /* blocked: pending until a mask lets it in */
	CALL("ppoll(NULL, 0, NULL, {}) + USR1", ppoll(NULL, 0, NULL, &none));
}

static void selects(void)
{
	struct timeval tz = { 0, 0 }, neg_s = { -1, 0 }, neg_us = { 0, -1 };
	struct timespec neg_ns = { 0, -1 };
	fd_set r, w, x;
	sigset_t ours = set_of(SIG_AGENT, 0), none = set_of(0, 0);
	int closed = dup(pr);
	close(closed);

	CALL("select(0, NULL, NULL, NULL, 0)", select(0, NULL, NULL, NULL, &tz));
	CALL("select(-1, NULL, NULL, NULL, 0)", select(-1, NULL, NULL, NULL, &tz));
	CALL("select(1, bad, NULL, NULL, 0)", select(1, (void *)bad, NULL, NULL, &tz));
	CALL("select(1, NULL, bad, NULL, 0)", select(1, NULL, (void *)bad, NULL, &tz));
	CALL("select(1, NULL, NULL, bad, 0)", select(1, NULL, NULL, (void *)bad, &tz));
	CALL("select(32, tail4, NULL, NULL, 0)", select(32, (void *)tail4, NULL, NULL, &tz));
	memset(tail8, 0, 8);
	CALL("select(64, tail8, NULL, NULL, 0)", select(64, (void *)tail8, NULL, NULL, &tz));
	CALL("select(2000, NULL, NULL, NULL, 0)", select(2000, NULL, NULL, NULL, &tz));
	CALL("select(INT_MAX, NULL, NULL, NULL, 0)", select(INT_MAX, NULL, NULL, NULL, &tz));
	/* the kernel reads nfds bits, up to its descriptor table's size: give it them all */
	static unsigned long zeros[4096 / 64];
	memset(zeros, 0, sizeof(zeros));
	CALL("select(2000, zeros, NULL, NULL, 0)", select(2000, (fd_set *)zeros, NULL, NULL, &tz));
	CALL("select(0, NULL, NULL, NULL, {-1,0})", select(0, NULL, NULL, NULL, &neg_s));
	CALL("select(0, NULL, NULL, NULL, {0,-1})", select(0, NULL, NULL, NULL, &neg_us));
	FD_ZERO(&w);
	FD_SET(pw, &w);
	CALL("select(pw+1, NULL, &w, NULL, NULL)", select(pw + 1, NULL, &w, NULL, NULL));
	printf("%d   w has pw: %d\n", round_no, FD_ISSET(pw, &w));
	FD_ZERO(&r);
	FD_ZERO(&x);
	FD_SET(pr, &r);
	FD_SET(pr, &x);
	CALL("select(pr+1, &r, NULL, &x, 0)", select(pr + 1, &r, NULL, &x, &tz));
	printf("%d   r has pr: %d, x has pr: %d\n", round_no, FD_ISSET(pr, &r), FD_ISSET(pr, &x));
	FD_ZERO(&r);
	FD_SET(closed, &r);
	CALL("select(closed+1, &r, NULL, NULL, 0)", select(closed + 1, &r, NULL, NULL, &tz));

	CALL("pselect(0, NULL, NULL, NULL, 0, NULL)", pselect(0, NULL, NULL, NULL, &zero_ts, NULL));
	CALL("pselect(-1, NULL, NULL, NULL, 0, NULL)", pselect(-1, NULL, NULL, NULL, &zero_ts, NULL));
	CALL("pselect(1, bad, NULL, NULL, 0, NULL)", pselect(1, (void *)bad, NULL, NULL, &zero_ts, NULL));
	CALL("pselect(0, NULL, NULL, NULL, 0, bad)", pselect(0, NULL, NULL, NULL, &zero_ts, (void *)bad));
	CALL("pselect(0, NULL, NULL, NULL, 0, tail4)", pselect(0, NULL, NULL, NULL, &zero_ts, (void *)tail4));
	CALL("pselect(0, NULL, NULL, NULL, {0,-1}, NULL)", pselect(0, NULL, NULL, NULL, &neg_ns, NULL));
	CALL("pselect(5000, NULL, NULL, NULL, 0, NULL)", pselect(5000, NULL, NULL, NULL, &zero_ts, NULL));
	FD_ZERO(&w);
	FD_SET(pw, &w);
	CALL("pselect(pw+1, NULL, &w, NULL, 0, {62})", pselect(pw + 1, NULL, &w, NULL, &zero_ts, &ours));
	printf("%d   w has pw: %d\n", round_no, FD_ISSET(pw, &w));
	raise(SIGUSR1);
	CALL("pselect(0, NULL, NULL, NULL, NULL, {}) + USR1", pselect(0, NULL, NULL, NULL, NULL, &none));
}

static void epolls(void)
{
	struct epoll_event ev[4];
	volatile int minus1 = -1, int_max = INT_MAX; /* (the compiler warns of them as constants) */
	sigset_t ours = set_of(SIG_AGENT, SIGUSR2), none = set_of(0, 0);
	CALL("epoll_wait(ep, ev, 0, 0)", epoll_wait(ep, ev, 0, 0));
	CALL("epoll_wait(ep, ev, -1, 0)", epoll_wait(ep, ev, minus1, 0));
	CALL("epoll_wait(ep, NULL, 0, 0)", epoll_wait(ep, NULL, 0, 0));
	CALL("epoll_wait(ep, ev, INT_MAX, 0)", epoll_wait(ep, ev, int_max, 0));
	CALL("epoll_wait(-1, ev, 1, 0)", epoll_wait(-1, ev, 1, 0));
	CALL("epoll_wait(empty, bad, 1, 0)", epoll_wait(ep_empty, (void *)bad, 1, 0));
	CALL("epoll_wait(ep, bad, 1, 0)", epoll_wait(ep, (void *)bad, 1, 0));
	CALL("epoll_wait(ep, tail4, 1, 0)", epoll_wait(ep, (void *)tail4, 1, 0));
	CALL("epoll_wait(ep, ev, 4, -1)", epoll_wait(ep, ev, 4, -1));
	CALL("epoll_pwait(ep, ev, 1, 0, NULL)", epoll_pwait(ep, ev, 1, 0, NULL));
	CALL("epoll_pwait(ep, ev, 1, 0, bad)", epoll_pwait(ep, ev, 1, 0, (void *)bad));
	CALL("epoll_pwait(ep, ev, 0, 0, bad)", epoll_pwait(ep, ev, 0, 0, (void *)bad));
	CALL("epoll_pwait(ep, ev, 0, 0, NULL)", epoll_pwait(ep, ev, 0, 0, NULL));
	CALL("epoll_pwait(empty, ev, 1, 0, tail4)", epoll_pwait(ep_empty, ev, 1, 0, (void *)tail4));
	CALL("epoll_pwait(empty, ev, 1, 0, {62,USR2})", epoll_pwait(ep_empty, ev, 1, 0, &ours));
	raise(SIGUSR1);
	CALL("epoll_pwait(empty, ev, 1, -1, {}) + USR1", epoll_pwait(ep_empty, ev, 1, -1, &none));
}

/* ---- waiting for signals ---- */

static void sigwaits(void)
{
	sigset_t usr2 = set_of(SIGUSR2, 0), ours = set_of(SIG_AGENT, SIGUSR2), none = set_of(0, 0);
	struct timespec neg_ns = { 0, -1 };
	CALL("sigtimedwait(NULL, NULL, 0)", sigtimedwait(NUL, NULL, &zero_ts));
	CALL("sigtimedwait(bad, NULL, 0)", sigtimedwait((void *)bad, NULL, &zero_ts));
	CALL("sigtimedwait(tail4, NULL, 0)", sigtimedwait((void *)tail4, NULL, &zero_ts));
	CALL("sigtimedwait({USR2}, NULL, bad)", sigtimedwait(&usr2, NULL, (void *)bad));
	CALL("sigtimedwait({USR2}, NULL, {0,-1})", sigtimedwait(&usr2, NULL, &neg_ns));
	CALL("sigtimedwait({USR2}, NULL, 0)", sigtimedwait(&usr2, NULL, &zero_ts));
	CALL("sigtimedwait({62,USR2}, NULL, 0)", sigtimedwait(&ours, NULL, &zero_ts));
	raise(SIGUSR2);
	CALL("sigtimedwait({USR2}, NULL, NULL) + USR2", sigtimedwait(&usr2, NULL, NULL));
	raise(SIGUSR2);
	CALL("sigtimedwait({62,USR2}, bad, 0) + USR2", sigtimedwait(&ours, (void *)bad, &zero_ts));
	CALL("sigwaitinfo(NULL, NULL)", sigwaitinfo(NUL, NULL));
	CALL("sigwaitinfo(bad, NULL)", sigwaitinfo((void *)bad, NULL));
	raise(SIGUSR2);
	CALL("sigwaitinfo({62,USR2}, NULL) + USR2", sigwaitinfo(&ours, NULL));
	int sig = -1;
	CALL("sigwait(NULL, &sig)", sigwait(NUL, &sig));
	raise(SIGUSR2);
	CALL("sigwait({62,USR2}, &sig) + USR2", sigwait(&ours, &sig));
	printf("%d   sig %d\n", round_no, sig);
	CALL("sigsuspend(NULL)", sigsuspend(NUL));
	CALL("sigsuspend(bad)", sigsuspend((void *)bad));
	CALL("sigsuspend(tail4)", sigsuspend((void *)tail4));
	raise(SIGUSR1);
	CALL("sigsuspend({}) + USR1", sigsuspend(&none));
	raise(SIGUSR1);
	CALL("sigsuspend({62}) + USR1", sigsuspend(&ours));
}

/* ---- dispositions and masks ---- */

static void print_action(const char *what, int sig)
{
	struct sigaction q;
	memset(&q, 0, sizeof(q));
	int r = sigaction(sig, NULL, &q);
	printf("%d   %s: %d %s flags %#x mask KILL %d USR1 %d WINCH %d 62 %d\n", round_no, what, r,
	       hname(q.sa_handler), (unsigned)q.sa_flags & (SA_SIGINFO | SA_RESTART | SA_RESTORER | SA_NODEFER |
							    SA_RESETHAND | SA_ONSTACK),
	       sigismember(&q.sa_mask, SIGKILL), sigismember(&q.sa_mask, SIGUSR1), sigismember(&q.sa_mask, SIGWINCH),
	       sigismember(&q.sa_mask, SIG_AGENT));
}

static void actions(void)
{
	struct sigaction act, old;
	memset(&act, 0, sizeof(act));
	memset(&old, 0, sizeof(old));
	act.sa_handler = SIG_IGN;
	CALL("sigaction(0, NULL, NULL)", sigaction(0, NULL, NULL));
	CALL("sigaction(65, NULL, NULL)", sigaction(65, NULL, NULL));
	CALL("sigaction(32, NULL, NULL)", sigaction(32, NULL, NULL));
	CALL("sigaction(KILL, &ign, NULL)", sigaction(SIGKILL, &act, NULL));
	CALL("sigaction(KILL, NULL, &old)", sigaction(SIGKILL, NULL, &old));
	CALL("sigaction(USR2, NULL, NULL)", sigaction(SIGUSR2, NULL, NULL));
	CALL("sigaction(62, NULL, NULL)", sigaction(SIG_AGENT, NULL, NULL));
	/* odd rounds: a handler with flags and a mask; even rounds: SIG_IGN */
	if (round_no % 2) {
		act.sa_handler = on_62;
		act.sa_flags = SA_RESTART | SA_NODEFER;
		sigemptyset(&act.sa_mask);
		sigaddset(&act.sa_mask, SIGKILL);
		sigaddset(&act.sa_mask, SIGUSR1);
		sigaddset(&act.sa_mask, SIG_AGENT);
	}
	CALL("sigaction(62, &act, &old)", sigaction(SIG_AGENT, &act, &old));
	printf("%d   old 62: %s\n", round_no, hname(old.sa_handler));
	print_action("62 now", SIG_AGENT);
	CALL("signal(0, IGN) is ERR", signal(0, SIG_IGN) == SIG_ERR);
	CALL("signal(65, IGN) is ERR", signal(65, SIG_IGN) == SIG_ERR);
	CALL("signal(USR2, ERR) is ERR", signal(SIGUSR2, SIG_ERR) == SIG_ERR);
	CALL("signal(62, ERR) is ERR", signal(SIG_AGENT, SIG_ERR) == SIG_ERR);
	errno = 0;
	void (*was)(int) = signal(SIG_AGENT, round_no % 2 ? SIG_DFL : on_62);
	printf("%d signal(62) = %s %s\n", round_no, hname(was), errno ? strerrorname_np(errno) : "0");
	print_action("62 after signal()", SIG_AGENT);
	errno = 0;
	was = signal(SIGWINCH, round_no % 2 ? on_winch : SIG_DFL);
	printf("%d signal(WINCH) = %s %s\n", round_no, hname(was), errno ? strerrorname_np(errno) : "0");
	print_action("WINCH after signal()", SIGWINCH);
}

static void print_mask(const char *what)
{
	sigset_t m;
	sigemptyset(&m);
	int r = sigprocmask(SIG_BLOCK, NULL, &m);
	printf("%d   %s: %d USR1 %d USR2 %d 62 %d\n", round_no, what, r, sigismember(&m, SIGUSR1),
	       sigismember(&m, SIGUSR2), sigismember(&m, SIG_AGENT));
}

static void masks(void)
{
	sigset_t s62 = set_of(SIG_AGENT, 0), usr2 = set_of(SIGUSR2, 0), old;
	sigemptyset(&old);
	CALL("sigprocmask(BLOCK, NULL, NULL)", sigprocmask(SIG_BLOCK, NULL, NULL));
	CALL("sigprocmask(99, &set, NULL)", sigprocmask(99, &usr2, NULL));
	CALL("sigprocmask(99, NULL, &old)", sigprocmask(99, NULL, &old));
	CALL("sigprocmask(BLOCK, NULL, bad)", sigprocmask(SIG_BLOCK, NULL, (void *)bad));
	CALL("sigprocmask(BLOCK, NULL, tail4)", sigprocmask(SIG_BLOCK, NULL, (void *)tail4));
	CALL("pthread_sigmask(BLOCK, NULL, bad)", pthread_sigmask(SIG_BLOCK, NULL, (void *)bad));
	CALL("pthread_sigmask(99, &set, NULL)", pthread_sigmask(99, &usr2, NULL));
	CALL("pthread_sigmask(99, {62}, NULL)", pthread_sigmask(99, &s62, NULL));
	print_mask("mask");
	CALL("sigprocmask(BLOCK, {62}, &old)", sigprocmask(SIG_BLOCK, &s62, &old));
	printf("%d   old had 62: %d\n", round_no, sigismember(&old, SIG_AGENT));
	print_mask("mask with 62 blocked");
	CALL("pthread_sigmask(99, NULL, &old)", pthread_sigmask(99, NULL, &old));
	printf("%d   old had 62: %d\n", round_no, sigismember(&old, SIG_AGENT));
	CALL("pthread_sigmask(UNBLOCK, {62}, NULL)", pthread_sigmask(SIG_UNBLOCK, &s62, NULL));
	print_mask("mask with 62 unblocked");
}

static void signalfds(void)
{
	sigset_t usr2 = set_of(SIGUSR2, 0), ours = set_of(SIG_AGENT, SIGUSR2);
	CALL("signalfd(-1, NULL, 0)", signalfd(-1, NUL, 0));
	CALL("signalfd(-1, bad, 0)", signalfd(-1, (void *)bad, 0));
	CALL("signalfd(-1, tail4, 0)", signalfd(-1, (void *)tail4, 0));
	CALL("signalfd(-1, {USR2}, 0x7)", signalfd(-1, &usr2, 0x7));
	CALL("signalfd(-2, {USR2}, 0)", signalfd(-2, &usr2, 0));
	CALL("signalfd(pr, {USR2}, 0)", signalfd(pr, &usr2, 0));
	errno = 0;
	int fd = signalfd(-1, &ours, SFD_CLOEXEC);
	printf("%d signalfd(-1, {62,USR2}, CLOEXEC) >= 0: %d %s\n", round_no, fd >= 0, errno ? strerrorname_np(errno) : "0");
	CHECK(fd >= 0, "signalfd: %s", strerror(errno));
	raise(SIGUSR2);
	struct signalfd_siginfo si;
	ssize_t n = read(fd, &si, sizeof(si));
	printf("%d   read %zd signo %u\n", round_no, n, n == (ssize_t)sizeof(si) ? si.ssi_signo : 0);
	CALL("close(signalfd)", close(fd));
}

/* ---- descriptors ---- */

static void closes(void)
{
	CALL("close(-1)", close(-1));
	CALL("close(INT_MAX)", close(INT_MAX));
	CALL("close_range(5, 3, 0)", close_range(5, 3, 0));
	CALL("close_range(~0, ~0, 0)", close_range(~0U, ~0U, 0));
	CALL("close_range(3, 3, 0x8000)", close_range(3, 3, 0x8000));
	CALL("close_range(500, 600, CLOEXEC)", close_range(500, 600, CLOSE_RANGE_CLOEXEC));
	/* around the agent's own descriptors (near 1000 under cohort): refused alike */
	int einval = 0;
	for (unsigned fd = 990; fd < 1030; fd++)
		einval += close_range(fd, fd, 0x8000) < 0 && errno == EINVAL;
	printf("%d close_range(fd, fd, 0x8000) for fd 990..1029: %d EINVAL\n", round_no, einval);
	CALL("close_range(990, 1029, 0x8000)", close_range(990, 1029, 0x8000));
	CALL("close_range(1029, 990, 0)", close_range(1029, 990, 0));
	CALL("syscall(close_range, 5, 3, 0)", syscall(SYS_close_range, 5, 3, 0));
	CALL("syscall(close, -1)", syscall(SYS_close, -1));
	CALL("syscall(dup2, -1, 500)", syscall(SYS_dup2, -1, 500));
	CALL("syscall(dup3, 500, 500, 0)", syscall(SYS_dup3, 500, 500, 0));
	CALL("dup3(500, 500, 0)", dup3(500, 500, 0));
}

/*
 * fcntl's F_NOTIFY (dnotify.c), on an empty directory of our own (no
 * event comes: a SIGIO would end the program), DN_MULTISHOT (a checkpoint
 * refuses a one-shot watch); the other commands go to glibc's, their
 * argument passed as glibc reads it
 */
static void notifies(void)
{
	char path[4200];
	t_fmt(path, sizeof(path), "%s/wrap_null.notify", t_tmpdir());
	int f = SYSCHK(open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	char dpath[4200];
	t_fmt(dpath, sizeof(dpath), "%s/wrap_null.d", t_tmpdir());
	if (mkdir(dpath, 0700) < 0 && errno != EEXIST)
		FAIL("mkdir %s: %s", dpath, strerror(errno));
	int dir = SYSCHK(open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	CALL("fcntl(-1, F_NOTIFY, DN_CREATE)", fcntl(-1, F_NOTIFY, DN_CREATE));
	CALL("fcntl(file, F_NOTIFY, DN_CREATE)", fcntl(f, F_NOTIFY, DN_CREATE));
	CALL("fcntl(file, F_NOTIFY, 0)", fcntl(f, F_NOTIFY, 0));
	CALL("fcntl(dir, F_NOTIFY, 0)", fcntl(dir, F_NOTIFY, 0));
	CALL("fcntl(dir, F_NOTIFY, DN_MULTISHOT)", fcntl(dir, F_NOTIFY, DN_MULTISHOT));
	CALL("fcntl(dir, F_NOTIFY, DN_ACCESS | DN_MULTISHOT)", fcntl(dir, F_NOTIFY, DN_ACCESS | DN_MULTISHOT));
	CALL("fcntl(dir, F_NOTIFY, 0) again", fcntl(dir, F_NOTIFY, 0));
	CALL("fcntl(dir, F_NOTIFY, 0x40 | DN_MULTISHOT)", fcntl(dir, F_NOTIFY, 0x40 | DN_MULTISHOT));
	CALL("fcntl(dir, F_GETOWN)", fcntl(dir, F_GETOWN) == getpid());
	CALL("fcntl(dir, F_SETOWN, 0)", fcntl(dir, F_SETOWN, 0));
	CALL("fcntl(dir, F_NOTIFY, 0) last", fcntl(dir, F_NOTIFY, 0));
	CALL("fcntl64(-1, F_NOTIFY, DN_CREATE)", fcntl64(-1, F_NOTIFY, DN_CREATE));
	CALL("fcntl64(file, F_NOTIFY, DN_DELETE)", fcntl64(f, F_NOTIFY, DN_DELETE));
	CALL("syscall(fcntl, -1, F_NOTIFY, DN_CREATE)", syscall(SYS_fcntl, -1, F_NOTIFY, DN_CREATE));
	CALL("syscall(fcntl, file, F_NOTIFY, DN_CREATE)", syscall(SYS_fcntl, f, F_NOTIFY, DN_CREATE));
	CALL("fcntl(dir, F_GETFD)", fcntl(dir, F_GETFD));
	CALL("fcntl(-1, F_GETFL)", fcntl(-1, F_GETFL));
	CALL("fcntl(dir, 0x7fff)", fcntl(dir, 0x7fff));
	CALL("fcntl64(file, F_GETFL)", fcntl64(f, F_GETFL) & O_ACCMODE);
	CALL("fcntl(dir, F_GETLK, bad)", fcntl(dir, F_GETLK, (void *)bad));
	CALL("close(dir)", close(dir));
	CALL("close(file)", close(f));
	DIR *d = opendir(dpath);
	CHECK(d != NULL, "opendir %s: %s", dpath, strerror(errno));
	CALL("closedir(dir)", closedir(d));
	unlink(path);
	rmdir(dpath);
}

/* ---- semaphores, futexes, clone ---- */

static int clone_fn(void *arg) { (void)arg; return 0; }

static void others(void)
{
	struct timespec neg_ns = { 0, -1 }, big_ns = { 0, 2000000000 }, t = { 0, 1000 };
	int word = 0;
	CALL("sem_timedwait(&sem0, {0,-1})", sem_timedwait(&sem0, &neg_ns));
	CALL("sem_timedwait(&sem0, {0,0})", sem_timedwait(&sem0, &zero_ts));
	CALL("sem_clockwait(&sem0, 12345, {0,0})", sem_clockwait(&sem0, 12345, &zero_ts));
	CALL("sem_clockwait(&sem0, MONO, {0,2e9})", sem_clockwait(&sem0, CLOCK_MONOTONIC, &big_ns));
	CALL("futex(WAIT, 1, bad)", syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 1, bad, 0, 0));
	CALL("futex(WAIT, 0, bad)", syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, bad, 0, 0));
	CALL("futex(WAIT, 1, NULL)", syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 1, NULL, 0, 0));
	CALL("futex(WAIT, 0, {0,-1})", syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &neg_ns, 0, 0));
	CALL("futex(WAIT, 0, 1us)", syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &t, 0, 0));
	CALL("futex(NULL, WAIT, 0, NULL)", syscall(SYS_futex, NULL, FUTEX_WAIT_PRIVATE, 0, NULL, 0, 0));
	CALL("syscall(nanosleep, NULL, NULL)", syscall(SYS_nanosleep, NULL, NULL));
	CALL("syscall(nanosleep, bad, NULL)", syscall(SYS_nanosleep, bad, NULL));
	static char stack[16384] __attribute__((aligned(16)));
	CALL("clone(NULL, stack, SIGCHLD, NULL)", clone(NULL, stack + sizeof(stack), SIGCHLD, NULL));
	CALL("clone(fn, NULL, SIGCHLD, NULL)", clone(clone_fn, NULL, SIGCHLD, NULL));
}

/* The socket calls made again after a checkpoint (src/agent/wrap_sock.c), on an empty socket pair. */
static void sockets(void)
{
	int sp[2];
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
	CALL("recv(-1, NULL, 0, 0)", recv(-1, NULL, 0, 0));
	CALL("recv(sp, NULL, 8, DONTWAIT)", recv(sp[0], NULL, 8, MSG_DONTWAIT));
	CALL("recvfrom(sp, NULL, 0, DONTWAIT, bad, NULL)", recvfrom(sp[0], NULL, 0, MSG_DONTWAIT, (struct sockaddr *)bad, NULL));
	CALL("recvmsg(sp, NULL, DONTWAIT)", recvmsg(sp[0], NULL, MSG_DONTWAIT));
	CALL("recvmsg(sp, bad, DONTWAIT)", recvmsg(sp[0], (struct msghdr *)bad, MSG_DONTWAIT));
	CALL("recvmmsg(sp, NULL, 1, DONTWAIT, NULL)", recvmmsg(sp[0], NULL, 1, MSG_DONTWAIT, NULL));
	CALL("send(-1, NULL, 1, 0)", send(-1, null_ptr, 1, 0));
	CALL("send(sp, NULL, 1, DONTWAIT)", send(sp[1], null_ptr, 1, MSG_DONTWAIT));
	CALL("sendto(sp, bad, 4, 0, NULL, 0)", sendto(sp[1], bad, 4, 0, NULL, 0));
	CALL("sendmsg(sp, NULL, 0)", sendmsg(sp[1], NULL, 0));
	CALL("sendmmsg(sp, NULL, 1, 0)", sendmmsg(sp[1], NULL, 1, 0));
	CALL("connect(-1, NULL, 0)", connect(-1, NULL, 0));
	CALL("connect(sp, NULL, 0)", connect(sp[0], NULL, 0));
	CALL("write(-1, NULL, 1)", write(-1, null_ptr, 1));
	CALL("write(sp, bad, 4)", write(sp[1], bad, 4));
	CALL("writev(sp, NULL, 1)", writev(sp[1], null_ptr, 1));
	CALL("writev(sp, bad, 1)", writev(sp[1], (const struct iovec *)bad, 1));
	close(sp[0]);
	close(sp[1]);
}

/* The CPU-time clocks' wrappers (src/agent/cpuclock.c), which add offsets after a restart. */
static void cpuclocks(void)
{
	struct timespec t, neg_ns = { 0, -1 };
	struct rusage ru;
	clockid_t gone = (clockid_t)((unsigned)~999999 << 3 | 2); /* the process clock of a pid nobody has */
	CALL("clock_gettime(PROCESS_CPUTIME, NULL)", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, NUL));
	CALL("clock_gettime(THREAD_CPUTIME, bad)", clock_gettime(CLOCK_THREAD_CPUTIME_ID, (void *)bad));
	CALL("clock_gettime(THREAD_CPUTIME, tail4)", clock_gettime(CLOCK_THREAD_CPUTIME_ID, (void *)tail4));
	CALL("clock_gettime(-1, &t)", clock_gettime(-1, &t));
	CALL("clock_gettime(pid 999999's, &t)", clock_gettime(gone, &t));
	CALL("clock_gettime(-6 (own process), NULL)", clock_gettime(-6, NUL));
	CALL("clock_gettime(-2 (own thread), bad)", clock_gettime(-2, (void *)bad));
	CALL("syscall(clock_gettime, THREAD_CPUTIME, bad)", syscall(SYS_clock_gettime, CLOCK_THREAD_CPUTIME_ID, bad));
	CALL("syscall(clock_gettime, -1, &t)", syscall(SYS_clock_gettime, -1, &t));
	CALL("syscall(clock_gettime, PROCESS_CPUTIME, NULL)", syscall(SYS_clock_gettime, CLOCK_PROCESS_CPUTIME_ID, NULL));
	CALL("getrusage(SELF, NULL)", getrusage(RUSAGE_SELF, NUL));
	CALL("getrusage(THREAD, bad)", getrusage(RUSAGE_THREAD, (void *)bad));
	CALL("getrusage(CHILDREN, tail4)", getrusage(RUSAGE_CHILDREN, (void *)tail4));
	CALL("getrusage(12345, &ru)", getrusage(12345, &ru));
	CALL("times(NULL) is not -1", times(NULL) == (clock_t)-1 ? -1 : 0);
	CALL("clock() is not -1", clock() == (clock_t)-1 ? -1 : 0);
	CALL("clock_nanosleep(PROCESS_CPUTIME, ABS, bad, NULL)",
	     clock_nanosleep(CLOCK_PROCESS_CPUTIME_ID, TIMER_ABSTIME, (void *)bad, NULL));
	CALL("clock_nanosleep(PROCESS_CPUTIME, ABS, {0,-1}, NULL)",
	     clock_nanosleep(CLOCK_PROCESS_CPUTIME_ID, TIMER_ABSTIME, &neg_ns, NULL));
	CALL("clock_nanosleep(PROCESS_CPUTIME, ABS, {0,0}, NULL)",
	     clock_nanosleep(CLOCK_PROCESS_CPUTIME_ID, TIMER_ABSTIME, &zero_ts, NULL));
}

/* SysV semaphores with SEM_UNDO (the agent notes those, src/agent/semundo.c): every answer as the kernel's */
static void sysv_sems(void)
{
	struct timespec neg_ns = { 0, -1 }, t = { 0, 1000 };
	struct sembuf up = { 0, 1, SEM_UNDO }, down = { 0, -1, SEM_UNDO }, nowait = { 0, -1, SEM_UNDO | IPC_NOWAIT };
	struct sembuf big[2] = { { 0, 32767, SEM_UNDO }, { 0, 1, SEM_UNDO } }, far = { 5, 1, SEM_UNDO };
	struct sembuf then_bad[2] = { { 0, 1, SEM_UNDO }, { 7, 1, 0 } };
	CALL("semop(set, NULL, 1)", semop(semset, NUL, 1));
	CALL("semop(set, bad, 1)", semop(semset, (void *)bad, 1));
	CALL("semop(set, tail4, 1)", semop(semset, (void *)tail4, 1));
	CALL("semop(set, undo +1, 0)", semop(semset, &up, 0));
	CALL("semop(-1, undo +1, 1)", semop(-1, &up, 1));
	CALL("semop(set, undo -1 nowait, 1)", semop(semset, &nowait, 1));
	CALL("semop(set, undo on semaphore 5, 1)", semop(semset, &far, 1));
	CALL("semop(set, undo +32767 +1, 2)", semop(semset, big, 2));
	CALL("semop(set, undo +1 then semaphore 7, 2)", semop(semset, then_bad, 2));
	CALL("semtimedop(set, undo -1, 1, bad)", semtimedop(semset, &down, 1, (void *)bad));
	CALL("semtimedop(set, undo -1, 1, {0,-1})", semtimedop(semset, &down, 1, &neg_ns));
	CALL("semtimedop(set, undo -1, 1, 1us)", semtimedop(semset, &down, 1, &t));
	CALL("syscall(semop, set, bad, 1)", syscall(SYS_semop, semset, bad, 1));
	CALL("semop(set, undo +1, 1)", semop(semset, &up, 1));
	CALL("syscall(semtimedop, set, undo -1, 1, NULL)", syscall(SYS_semtimedop, semset, &down, 1, NULL));
	CALL("semctl(set, 0, SETALL, NULL)", semctl(semset, 0, SETALL, NUL));
	CALL("semctl(set, 0, SETALL, bad)", semctl(semset, 0, SETALL, bad));
	CALL("semctl(set, 0, SETVAL, 40000)", semctl(semset, 0, SETVAL, 40000));
	CALL("semctl(set, 5, SETVAL, 1)", semctl(semset, 5, SETVAL, 1));
	CALL("semctl(set, 0, SETVAL, 0)", semctl(semset, 0, SETVAL, 0));
	CALL("syscall(semctl, set, 0, SETVAL, 0)", syscall(SYS_semctl, semset, 0, SETVAL, 0));
	CALL("semctl(-1, 0, IPC_RMID)", semctl(-1, 0, IPC_RMID));
	CALL("semctl(set, 0, GETVAL)", semctl(semset, 0, GETVAL));
}

/*
 * aio system calls through syscall() (the agent notes them, src/agent/aio.c):
 * every answer as the kernel's, with bad arguments and a context made and
 * destroyed in each round
 */
static void aio_calls(void)
{
	aio_context_t ctx = 0, some = 1;
	struct timespec neg_ns = { 0, -1 }, t = { 0, 1000 };
	struct io_event ev[4];
	char buf[8];
	int z = SYSCHK(open("/dev/zero", O_RDONLY | O_CLOEXEC));
	struct iocb cb = { .aio_lio_opcode = IOCB_CMD_PREAD, .aio_fildes = (uint32_t)z,
			   .aio_buf = (uint64_t)(uintptr_t)buf, .aio_nbytes = sizeof(buf) };
	struct iocb *one[1] = { &cb }, *then_null[2] = { &cb, NULL }, *nulls[1] = { NULL };
	CALL("syscall(io_setup, 0, &ctx)", syscall(SYS_io_setup, 0, &ctx));
	CALL("syscall(io_setup, 1, NULL)", syscall(SYS_io_setup, 1, NUL));
	CALL("syscall(io_setup, 1, bad)", syscall(SYS_io_setup, 1, bad));
	CALL("syscall(io_setup, 1, &nonzero)", syscall(SYS_io_setup, 1, &some));
	CALL("syscall(io_setup, 3, &ctx)", syscall(SYS_io_setup, 3, &ctx));
	CALL("syscall(io_submit, ctx, 1, NULL)", syscall(SYS_io_submit, ctx, 1, NUL));
	CALL("syscall(io_submit, ctx, 1, bad)", syscall(SYS_io_submit, ctx, 1, bad));
	CALL("syscall(io_submit, ctx, 1, {NULL})", syscall(SYS_io_submit, ctx, 1, nulls));
	CALL("syscall(io_submit, ctx, -1, one)", syscall(SYS_io_submit, ctx, -1L, one));
	CALL("syscall(io_submit, 0, 1, one)", syscall(SYS_io_submit, 0, 1, one));
	CALL("syscall(io_submit, ctx, 2, {cb, NULL})", syscall(SYS_io_submit, ctx, 2, then_null));
	CALL("syscall(io_getevents, ctx, 1, 1, NULL, NULL)", syscall(SYS_io_getevents, ctx, 1, 1, NUL, NUL));
	CALL("syscall(io_getevents, ctx, 2, 1, ev, NULL)", syscall(SYS_io_getevents, ctx, 2, 1, ev, NUL));
	CALL("syscall(io_getevents, ctx, 1, 1, ev, bad)", syscall(SYS_io_getevents, ctx, 1, 1, ev, bad));
	CALL("syscall(io_getevents, ctx, 1, 1, ev, {0,-1})", syscall(SYS_io_getevents, ctx, 1, 1, ev, &neg_ns));
	CALL("syscall(io_getevents, ctx, 2, 4, ev, 1us)", syscall(SYS_io_getevents, ctx, 2, 4, ev, &t));
	CALL("syscall(io_getevents, ctx, 1, 4, ev, 1us)", syscall(SYS_io_getevents, ctx, 1, 4, ev, &t));
	CALL("syscall(io_submit, ctx, 1, one)", syscall(SYS_io_submit, ctx, 1, one));
	CALL("syscall(io_pgetevents, ctx, 1, 4, ev, NULL, NULL)",
	     syscall(SYS_io_pgetevents, ctx, 1, 4, ev, NUL, NUL));
	CALL("syscall(io_pgetevents, ctx, 0, 4, ev, {0,0}, bad)",
	     syscall(SYS_io_pgetevents, ctx, 0, 4, ev, &zero_ts, bad));
	sigset_t ours = set_of(SIG_AGENT, SIGUSR2);
	struct { sigset_t *mask; size_t size; } usig = { &ours, 8 }, usig_bad = { (sigset_t *)bad, 8 };
	CALL("syscall(io_pgetevents, ctx, 1, 4, ev, 1us, {62 and USR2})",
	     syscall(SYS_io_pgetevents, ctx, 1, 4, ev, &t, &usig));
	CALL("syscall(io_pgetevents, ctx, 1, 4, ev, 1us, {bad})",
	     syscall(SYS_io_pgetevents, ctx, 1, 4, ev, &t, &usig_bad));
	CALL("syscall(io_cancel, ctx, &cb, ev)", syscall(SYS_io_cancel, ctx, &cb, ev));
	CALL("syscall(io_destroy, 0)", syscall(SYS_io_destroy, 0));
	CALL("syscall(io_destroy, ctx)", syscall(SYS_io_destroy, ctx));
	CALL("syscall(io_destroy, ctx)", syscall(SYS_io_destroy, ctx));
	close(z);
}

/* ---- waiting where the checkpoints land ---- */

static void *writer(void *arg)
{
	(void)arg;
	/* the program's timer is the main thread's */
	sigset_t alrm = set_of(SIGALRM, 0);
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	for (int i = 0; i < ROUNDS; i++) {
		while (sem_wait(&go) < 0)
			CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
		t_sleep_ms(40);
		char c = (char)i;
		t_write_all(qw, &c, 1, -1);
	}
	return NULL;
}

/*
 * The program's own signal ends the longest waits: a thread sends SIGALRM
 * to the main thread every 20 ms while it waits (until it is back; one
 * that comes before the wait began is simply handled).  Not an interval
 * timer: cohort does not bring those back yet.
 */
static sem_t arm, idle;
static atomic_int waiting;
static pthread_t main_th;
static void on_alrm(int sig) { (void)sig; }

static void *alarmer(void *arg)
{
	(void)arg;
	sigset_t alrm = set_of(SIGALRM, 0);
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	for (;;) {
		while (sem_wait(&arm) < 0)
			CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
		do {
			t_sleep_ms(20);
			if (atomic_load(&waiting))
				pthread_kill(main_th, SIGALRM);
		} while (atomic_load(&waiting));
		sem_post(&idle);
	}
	return NULL;
}

static void arm_alarm(void)
{
	atomic_store(&waiting, 1);
	sem_post(&arm);
}

/*
 * A daemon's signal thread: every signal blocked, sigwait() on all of
 * them, across every checkpoint.  It must get the USR2 main sends it each
 * round, and nothing else (never the checkpoint signal).
 */
static pthread_t waiter_th;
static atomic_int waited;

static void *sigwaiter(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		int sig = 0, r = sigwait(&all, &sig);
		CHECK(r == 0 && sig == SIGUSR2, "sigwait(every signal) = %d, signal %d", r, sig);
		atomic_fetch_add(&waited, 1);
	}
	return NULL;
}

/* until the sender has stopped: no SIGALRM comes after */
static void disarm_alarm(void)
{
	int e = errno;
	atomic_store(&waiting, 0);
	while (sem_wait(&idle) < 0)
		CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
	errno = e;
}

static uint64_t since(uint64_t t0) { return (t_now_ns(CLOCK_MONOTONIC) - t0) / 1000000; }

static void waits(void)
{
	/* a sleep whose rem is its own request: untouched when it completes */
	struct timespec ts = { 0, 30000000 };
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);
	CHECK(nanosleep(&ts, &ts) == 0, "nanosleep(&ts, &ts): %s", strerror(errno));
	CHECK(since(t0) >= 30, "nanosleep(30 ms) returned after %llu ms", (unsigned long long)since(t0));
	CHECK(ts.tv_sec == 0 && ts.tv_nsec == 30000000, "nanosleep changed its request to {%ld,%ld}", (long)ts.tv_sec,
	      ts.tv_nsec);
	/* an invalid rem is only written when a signal interrupts */
	ts.tv_nsec = 20000000;
	t0 = t_now_ns(CLOCK_MONOTONIC);
	CHECK(nanosleep(&ts, (void *)bad) == 0, "nanosleep(20 ms, bad): %s", strerror(errno));
	CHECK(since(t0) >= 20, "nanosleep(20 ms, bad) returned after %llu ms", (unsigned long long)since(t0));

	/* make's jobserver and readline: select and pselect with NULL sets, a timeout */
	fd_set r;
	FD_ZERO(&r);
	FD_SET(pr, &r);
	struct timeval tv = { 0, 60000 };
	t0 = t_now_ns(CLOCK_MONOTONIC);
	int n = select(pr + 1, &r, NULL, NULL, &tv);
	CHECK(n == 0, "select(pr+1, &r, NULL, NULL, 60 ms) = %d: %s", n, strerror(errno));
	CHECK(since(t0) >= 60, "select(60 ms) returned after %llu ms", (unsigned long long)since(t0));
	CHECK(!FD_ISSET(pr, &r) && tv.tv_sec == 0 && tv.tv_usec == 0, "select: set or timeout left behind");
	FD_SET(pr, &r);
	ts.tv_nsec = 60000000;
	t0 = t_now_ns(CLOCK_MONOTONIC);
	n = pselect(pr + 1, &r, NULL, NULL, &ts, NULL);
	CHECK(n == 0, "pselect(pr+1, &r, NULL, NULL, 60 ms, NULL) = %d: %s", n, strerror(errno));
	CHECK(since(t0) >= 60, "pselect(60 ms) returned after %llu ms", (unsigned long long)since(t0));
	CHECK(!FD_ISSET(pr, &r) && ts.tv_nsec == 60000000, "pselect: set left behind or timeout changed");

	/* without a timeout, until the writer thread writes (in 40 ms) */
	sem_post(&go);
	FD_ZERO(&r);
	FD_SET(qr, &r);
	n = round_no % 2 ? select(qr + 1, &r, NULL, NULL, NULL) : pselect(qr + 1, &r, NULL, NULL, NULL, NULL);
	CHECK(n == 1 && FD_ISSET(qr, &r), "%s(qr+1, &r, NULL, NULL, NULL) = %d: %s", round_no % 2 ? "select" : "pselect",
	      n, strerror(errno));
	char c;
	t_read_all(qr, &c, 1, -1);
	CHECK(c == (char)round_no, "the writer wrote %d in round %d", c, round_no);

	/* the longest waits there are, ended by the program's own timer (SIGALRM, 20 ms) */
	struct timespec huge = { (time_t)INT64_MAX, 999999999 }, rem = { 0, 0 };
	arm_alarm();
	n = nanosleep(&huge, &rem);
	disarm_alarm();
	CHECK(n < 0 && errno == EINTR, "nanosleep(largest time): %s", strerror(errno));
	CHECK(rem.tv_sec > 1000000000, "nanosleep(largest time): rem %ld s", (long)rem.tv_sec);
	arm_alarm();
	n = clock_nanosleep(CLOCK_REALTIME, 0, &huge, NULL);
	disarm_alarm();
	CHECK(n == EINTR, "clock_nanosleep(REALTIME, largest time): %s", strerror(n));
	arm_alarm();
	tv = (struct timeval){ (time_t)INT64_MAX, 999999 };
	n = select(0, NULL, NULL, NULL, &tv);
	disarm_alarm();
	CHECK(n < 0 && errno == EINTR, "select(largest time) = %d: %s", n, strerror(errno));
	arm_alarm();
	n = poll(NULL, 0, INT_MAX);
	disarm_alarm();
	CHECK(n < 0 && errno == EINTR, "poll(INT_MAX ms) = %d: %s", n, strerror(errno));

	/* the signal thread's one signal of the round */
	CHECK(pthread_kill(waiter_th, SIGUSR2) == 0, "pthread_kill");
	while (atomic_load(&waited) != round_no + 1)
		t_sleep_ms(1);

	/* nothing at all: a plain wait */
	tv = (struct timeval){ 0, 30000 };
	t0 = t_now_ns(CLOCK_MONOTONIC);
	CHECK(select(0, NULL, NULL, NULL, &tv) == 0, "select(0, NULL, NULL, NULL, 30 ms): %s", strerror(errno));
	CHECK(since(t0) >= 30, "select(30 ms) returned after %llu ms", (unsigned long long)since(t0));
	printf("%d waited ok\n", round_no);
}

static void setup(void)
{
	char *pages = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(pages != MAP_FAILED, "mmap: %s", strerror(errno));
	SYSCHK(mprotect(pages + 4096, 4096, PROT_NONE));
	bad = pages + 4096;
	tail4 = bad - 4;
	tail8 = bad - 8;
	int p[2];
	SYSCHK(pipe(p));
	pr = p[0];
	pw = p[1];
	SYSCHK(pipe(p));
	qr = p[0];
	qw = p[1];
	ep = SYSCHK(epoll_create1(EPOLL_CLOEXEC));
	ep_empty = SYSCHK(epoll_create1(EPOLL_CLOEXEC));
	struct epoll_event e = { .events = EPOLLOUT, .data.fd = pw };
	SYSCHK(epoll_ctl(ep, EPOLL_CTL_ADD, pw, &e));
	SYSCHK(sem_init(&go, 0, 0));
	SYSCHK(sem_init(&sem0, 0, 0));
	SYSCHK(sem_init(&arm, 0, 0));
	SYSCHK(sem_init(&idle, 0, 0));
	semset = SYSCHK(semget(IPC_PRIVATE, 1, 0600));
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	SYSCHK(sigaction(SIGUSR1, &sa, NULL));
	sa.sa_handler = on_alrm;
	SYSCHK(sigaction(SIGALRM, &sa, NULL));
	/* USR1 and USR2 are blocked but for the masks some calls pass */
	sigset_t m = set_of(SIGUSR1, SIGUSR2);
	SYSCHK(sigprocmask(SIG_BLOCK, &m, NULL));
}

int main(void)
{
	t_init("wrap_null");
	setup();
	pthread_t th, al;
	main_th = pthread_self();
	CHECK(pthread_create(&th, NULL, writer, NULL) == 0, "pthread_create");
	CHECK(pthread_create(&al, NULL, alarmer, NULL) == 0, "pthread_create");
	CHECK(pthread_create(&waiter_th, NULL, sigwaiter, NULL) == 0, "pthread_create");
	for (round_no = 0; round_no < ROUNDS; round_no++) {
		int seen = usr1_seen;
		sleeps();
		polls();
		selects();
		epolls();
		sigwaits();
		actions();
		masks();
		signalfds();
		closes();
		notifies();
		others();
		sockets();
		cpuclocks();
		sysv_sems();
		aio_calls();
		CHECK(usr1_seen == seen + 5, "round %d: SIGUSR1 handled %d times, not 5", round_no, usr1_seen - seen);
		waits();
	}
	pthread_join(th, NULL);
	SYSCHK(semctl(semset, 0, IPC_RMID));
	printf("RESULT wrap_null %d rounds\n", ROUNDS);
	return 0;
}
