/*
 * wrap_signal.c - the checkpoint signal hidden from the program: it
 * cannot block it, catch it, wait for it or read it from a signalfd, and
 * sigaction, signal, sigprocmask, pthread_sigmask and signalfd report
 * what the program set (wrap.c has the other wrappers and their rules).
 * And timer_getoverrun answers what it answered before a checkpoint took
 * a timer's signal or a restart made the timer again (timers.c, "Overruns").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "agent.h"
#include "res.h"
#include "sys.h"

DECL(int, sigaction, int, const struct sigaction *, struct sigaction *);
DECL(int, sigprocmask, int, const sigset_t *, sigset_t *);
DECL(int, pthread_sigmask, int, const sigset_t *, sigset_t *);
DECL(int, signalfd, int, const sigset_t *, int);
DECL(int, timer_getoverrun, timer_t);

void co_wrap_signal_init(void)
{
	LOAD(sigaction);
	LOAD(sigprocmask);
	LOAD(pthread_sigmask);
	LOAD(signalfd);
	LOAD(timer_getoverrun);
}

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
	if (!sig || sig != co_wrap_sig())
		return REAL(sigaction)(sig, act, old);
	co_sig_reclaim(); /* what a raw rt_sigaction set since is the program's own */
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

/* See co_sig_reclaim(): the action the kernel had is kept as glibc would report it. */
void co_wrap_adopt(const struct co_ksigaction *ka)
{
	struct sigaction a;
	memset(&a, 0, sizeof(a));
	a.sa_handler = (sighandler_t)ka->handler;
	a.sa_flags = (int)ka->flags;
	a.sa_restorer = (void (*)(void))ka->restorer;
	memcpy(&a.sa_mask, &ka->mask, sizeof(ka->mask));
	shadow_action = a;
}

/*
 * Our signal, sent by the program (or anyone) rather than by our manager:
 * the program's action on it, from our handler, which runs with every
 * signal blocked.  As the kernel would: the handler's sa_mask and the
 * signal itself (unless SA_NODEFER) join the mask the signal interrupted,
 * SA_RESETHAND resets the action first, and the program's handler gets
 * our siginfo and ucontext (what it changes there, rt_sigreturn applies).
 * Ignored and default actions are dropped, as they always were: the
 * default (the end of the program) is never taken for it.
 */
void co_wrap_forward(int sig, void *siginfo, void *uc)
{
	struct sigaction a = shadow_action;
	if (a.sa_handler == SIG_DFL || a.sa_handler == SIG_IGN)
		return;
	if (a.sa_flags & SA_RESETHAND) {
		shadow_action.sa_handler = SIG_DFL;
		shadow_action.sa_flags &= ~(SA_SIGINFO | SA_RESETHAND);
	}
	uint64_t mask, add;
	memcpy(&mask, &((ucontext_t *)uc)->uc_sigmask, sizeof(mask));
	memcpy(&add, &a.sa_mask, sizeof(add));
	mask |= add;
	if (!(a.sa_flags & SA_NODEFER))
		mask |= 1ULL << (sig - 1);
	co_sigprocmask(SIG_SETMASK, &mask, 0);
	if (a.sa_flags & SA_SIGINFO)
		a.sa_sigaction(sig, siginfo, uc);
	else
		a.sa_handler(sig);
	uint64_t all = ~0ULL;
	co_sigprocmask(SIG_SETMASK, &all, 0);
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
	if (!sig || sig != co_wrap_sig())
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
	int s = co_wrap_sig();
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
	int r = real(how, co_without_ours(set, &copy), old);
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
	return REAL(signalfd)(fd, co_without_ours(mask, &copy), flags);
}


/*
 * glibc hands out a timer's kernel id as its timer_t, but for SIGEV_THREAD
 * timers the address of its own record (negative): those go unchanged.
 * Errors are the C library's (EINVAL for a timer that is not one).
 */
EXPORT int timer_getoverrun(timer_t t)
{
	ENSURE(timer_getoverrun);
	int r = REAL(timer_getoverrun)(t);
	if (r < 0 || (intptr_t)t < 0 || (intptr_t)t > INT32_MAX)
		return r;
	return co_timer_overrun((int)(intptr_t)t, r);
}
