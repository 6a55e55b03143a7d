/*
 * timer_overrun: POSIX timer overruns across checkpoints and restarts
 * (tests/cases/overrun.sh, issue 11).
 *
 *   tick   SIGEV_SIGNAL, SIGRTMIN+2, every 1 ms on CLOCK_MONOTONIC, its
 *          signal always blocked: it stays queued between the steps, and
 *          counts the expiries in it.  Each step takes it (sigwaitinfo)
 *          and checks its si_overrun against the program's own clock
 *          readings: at least the milliseconds it was seen queued before
 *          the call, at most the milliseconds since the step before took
 *          the last one (the kernel counts scheduled expiries, so both
 *          bounds hold however slow the machine); then, while the next one
 *          is queued, timer_getoverrun() and syscall(SYS_timer_getoverrun)
 *          must answer that si_overrun.
 *   thread tick  the same, SIGEV_THREAD_ID, SIGRTMIN+4 to a worker thread,
 *          which takes its steps beside the main thread's.
 *   still  SIGEV_SIGNAL, SIGRTMIN+3, every 1 ms, taken once with an
 *          overrun (its signal blocked until it had counted some), then
 *          ignored: the kernel keeps that count for timer_getoverrun()
 *          for ever, with no signal queued.
 * A checkpoint may fall anywhere: with tick's signal queued (mostly) or
 * just taken.  An invalid timer gets EINVAL from both calls.  The output
 * depends on nothing but the steps.
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>

/*
 * About 5 s: live_flow's checkpoints each let the program run on while they
 * take up to a second on a loaded machine (40 steps), and with 80 it ended
 * before the last one ("no running group named ...").
 */
#define STEPS 200
#define HOLD 12 /* checks of the count, 2 ms apart, between two takes */

static int SIG_TICK, SIG_STILL, SIG_THREAD;
static timer_t still;
static int still_count;

static int queued(int sig)
{
	sigset_t p;
	SYSCHK(sigpending(&p));
	return sigismember(&p, sig);
}

static int kid(timer_t t)
{
	return (int)(intptr_t)t;
}

/* both ways of asking: the C library's and the raw system call */
static void check_count(timer_t t, int want, const char *who, int step)
{
	int a = timer_getoverrun(t);
	long b = syscall(SYS_timer_getoverrun, kid(t));
	CHECK(a == want && b == want, "step %d: %s: timer_getoverrun %d, syscall %ld, expected %d", step, who, a, b,
	      want);
}

/* one signal of sig, waited for */
static void take(int sig, siginfo_t *si)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	int r;
	while ((r = sigwaitinfo(&set, si)) < 0 && errno == EINTR)
		;
	CHECK(r == sig, "sigwaitinfo: %d (%s)", r, strerror(errno));
	CHECK(si->si_code == SI_TIMER, "signal %d: si_code %d, not SI_TIMER", sig, si->si_code);
}

static timer_t every_ms(struct sigevent *ev)
{
	timer_t t;
	SYSCHK(timer_create(CLOCK_MONOTONIC, ev, &t));
	struct itimerspec its = { { 0, 1000000 }, { 0, 1000000 } };
	SYSCHK(timer_settime(t, 0, &its, NULL));
	return t;
}

/* until sig is queued, then ms more milliseconds: the time it was first seen queued */
static uint64_t hold_queued(int sig, int ms)
{
	while (!queued(sig))
		t_sleep_ms(1);
	uint64_t seen = t_now_ns(CLOCK_MONOTONIC);
	t_sleep_ms(ms);
	return seen;
}

/*
 * The steps of a timer every 1 ms whose signal sig stays queued, for the
 * process (tid 0) or for the calling thread: take it, check its count,
 * hold the next one while checking timer_getoverrun().
 */
static void ticks(int sig, int value, pid_t tid, int print)
{
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = tid ? SIGEV_THREAD_ID : SIGEV_SIGNAL;
	ev.sigev_signo = sig;
	ev.sigev_value.sival_int = value;
	ev._sigev_un._tid = tid;
	uint64_t prev = t_now_ns(CLOCK_MONOTONIC); /* before its first expiry */
	timer_t tick = every_ms(&ev);
	uint64_t seen = hold_queued(sig, 3);
	const char *who = tid ? "thread tick" : "tick";
	siginfo_t si;
	long total = 0;
	for (int step = 1; step <= STEPS; step++) {
		uint64_t before = t_now_ns(CLOCK_MONOTONIC);
		take(sig, &si);
		uint64_t after = t_now_ns(CLOCK_MONOTONIC);
		long lo = (long)((before - seen) / 1000000), hi = (long)((after - prev) / 1000000);
		CHECK(si.si_value.sival_int == value && si.si_timerid == kid(tick), "step %d: %s: value %d timer %d", step,
		      who, si.si_value.sival_int, si.si_timerid);
		CHECK(si.si_overrun >= lo && si.si_overrun <= hi,
		      "step %d: %s: si_overrun %d, but the signal was queued for %ld ms before it was taken and %ld ms "
		      "passed since the last one was",
		      step, who, si.si_overrun, lo, hi);
		total += si.si_overrun + 1;
		prev = before;
		int count = si.si_overrun;
		seen = 0;
		for (int i = 0; i < HOLD; i++) {
			check_count(tick, count, who, step);
			check_count(still, still_count, "still", step);
			if (!seen && queued(sig))
				seen = t_now_ns(CLOCK_MONOTONIC);
			t_sleep_ms(2);
		}
		if (!seen)
			seen = hold_queued(sig, 0);
		if (print) {
			printf("step %d overruns ok\n", step);
			fflush(stdout);
		}
	}
	CHECK(total >= STEPS, "%s: %ld expiries in %d signals", who, total, STEPS);
}

static uint64_t ns_of(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

/*
 * still made, taken once, then ignored and unblocked: 1.  Ignoring and
 * unblocking are two calls, and an expiry between them is queued (a
 * blocked signal is never ignored) and taken by the unblock, which counts
 * anew: the kernel's doing, on a loaded machine that preempts us there.
 * So both calls must fall before the next expiry (read on the timer's own
 * phase, before them); else 0, with still deleted and its signal blocked
 * and back to its default, to be made again.
 */
static int make_still(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIG_STILL);
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIG_STILL;
	ev.sigev_value.sival_int = 3;
	still = every_ms(&ev);
	hold_queued(SIG_STILL, 6);
	siginfo_t si;
	take(SIG_STILL, &si);
	still_count = si.si_overrun;
	CHECK(still_count >= 5, "still: si_overrun %d after 6 ms queued", still_count);
	CHECK(si.si_value.sival_int == 3 && si.si_timerid == kid(still), "still: value %d timer %d",
	      si.si_value.sival_int, si.si_timerid);
	check_count(still, still_count, "still", 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	uint64_t now = t_now_ns(CLOCK_MONOTONIC);
	struct itimerspec its;
	SYSCHK(timer_gettime(still, &its));
	uint64_t due = now + ns_of(&its.it_value); /* at or before the next expiry */
	sa.sa_handler = SIG_IGN;
	SYSCHK(sigaction(SIG_STILL, &sa, NULL));
	SYSCHK(sigprocmask(SIG_UNBLOCK, &set, NULL));
	if (t_now_ns(CLOCK_MONOTONIC) < due)
		return 1;
	SYSCHK(sigprocmask(SIG_BLOCK, &set, NULL));
	sa.sa_handler = SIG_DFL;
	SYSCHK(sigaction(SIG_STILL, &sa, NULL));
	SYSCHK(timer_delete(still));
	return 0;
}

static void *worker(void *arg)
{
	(void)arg;
	ticks(SIG_THREAD, 4, t_gettid(), 0);
	return NULL;
}

int main(void)
{
	t_init("timer_overrun");
	SIG_TICK = SIGRTMIN + 2;
	SIG_STILL = SIGRTMIN + 3;
	SIG_THREAD = SIGRTMIN + 4;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIG_TICK);
	sigaddset(&set, SIG_STILL);
	sigaddset(&set, SIG_THREAD);
	SYSCHK(sigprocmask(SIG_BLOCK, &set, NULL));

	/* still: one take with a count, then ignored */
	int tries = 0;
	while (!make_still())
		CHECK(++tries < 100, "still: an expiry came between SIG_IGN and the unblock %d times", tries);
	/* its next expiry, ignored, stops it; one while a mask blocked it (pthread_create's) would count anew */
	t_sleep_ms(3);
	check_count(still, still_count, "still", 0);

	pthread_t th;
	CHECK(pthread_create(&th, NULL, worker, NULL) == 0, "pthread_create");
	ticks(SIG_TICK, 2, 0, 1);
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	errno = 0;
	CHECK(timer_getoverrun((timer_t)(intptr_t)4242) == -1 && errno == EINVAL, "timer_getoverrun(4242): %s",
	      strerror(errno));
	errno = 0;
	CHECK(syscall(SYS_timer_getoverrun, 4242) == -1 && errno == EINVAL, "syscall(SYS_timer_getoverrun, 4242): %s",
	      strerror(errno));
	printf("RESULT steps %d\n", STEPS);
	return 0;
}
