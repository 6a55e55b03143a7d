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
 *   still  SIGEV_SIGNAL, SIGRTMIN+3, every 1 ms, taken once with an
 *          overrun (its signal blocked until it had counted some), then
 *          ignored: the kernel keeps that count for timer_getoverrun()
 *          for ever, with no signal queued.
 * A checkpoint may fall anywhere: with tick's signal queued (mostly) or
 * just taken.  An invalid timer gets EINVAL from both calls.  The output
 * depends on nothing but the steps.
 */
#include "common.h"
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>

#define STEPS 80
#define HOLD 12 /* checks of the count, 2 ms apart, between two takes */

static int SIG_TICK, SIG_STILL;

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

static timer_t every_ms(int sig, int value)
{
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = sig;
	ev.sigev_value.sival_int = value;
	timer_t t;
	SYSCHK(timer_create(CLOCK_MONOTONIC, &ev, &t));
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

int main(void)
{
	t_init("timer_overrun");
	SIG_TICK = SIGRTMIN + 2;
	SIG_STILL = SIGRTMIN + 3;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIG_TICK);
	sigaddset(&set, SIG_STILL);
	SYSCHK(sigprocmask(SIG_BLOCK, &set, NULL));

	/* still: one take with a count, then ignored */
	timer_t still = every_ms(SIG_STILL, 3);
	hold_queued(SIG_STILL, 6);
	siginfo_t si;
	take(SIG_STILL, &si);
	int still_count = si.si_overrun;
	CHECK(still_count >= 5, "still: si_overrun %d after 6 ms queued", still_count);
	CHECK(si.si_value.sival_int == 3 && si.si_timerid == kid(still), "still: value %d timer %d",
	      si.si_value.sival_int, si.si_timerid);
	check_count(still, still_count, "still", 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	SYSCHK(sigaction(SIG_STILL, &sa, NULL));
	sigemptyset(&set);
	sigaddset(&set, SIG_STILL);
	SYSCHK(sigprocmask(SIG_UNBLOCK, &set, NULL));

	uint64_t prev = t_now_ns(CLOCK_MONOTONIC); /* before its first expiry */
	timer_t tick = every_ms(SIG_TICK, 2);
	uint64_t seen = hold_queued(SIG_TICK, 3);
	long total = 0;
	for (int step = 1; step <= STEPS; step++) {
		uint64_t before = t_now_ns(CLOCK_MONOTONIC);
		take(SIG_TICK, &si);
		uint64_t after = t_now_ns(CLOCK_MONOTONIC);
		long lo = (long)((before - seen) / 1000000), hi = (long)((after - prev) / 1000000);
		CHECK(si.si_value.sival_int == 2 && si.si_timerid == kid(tick), "step %d: value %d timer %d", step,
		      si.si_value.sival_int, si.si_timerid);
		CHECK(si.si_overrun >= lo && si.si_overrun <= hi,
		      "step %d: si_overrun %d, but the signal was queued for %ld ms before it was taken and %ld ms "
		      "passed since the last one was",
		      step, si.si_overrun, lo, hi);
		total += si.si_overrun + 1;
		prev = before;
		int count = si.si_overrun;
		seen = 0;
		for (int i = 0; i < HOLD; i++) {
			check_count(tick, count, "tick", step);
			check_count(still, still_count, "still", step);
			if (!seen && queued(SIG_TICK))
				seen = t_now_ns(CLOCK_MONOTONIC);
			t_sleep_ms(2);
		}
		if (!seen)
			seen = hold_queued(SIG_TICK, 0);
		printf("step %d overruns ok\n", step);
		fflush(stdout);
	}
	errno = 0;
	CHECK(timer_getoverrun((timer_t)(intptr_t)4242) == -1 && errno == EINVAL, "timer_getoverrun(4242): %s",
	      strerror(errno));
	errno = 0;
	CHECK(syscall(SYS_timer_getoverrun, 4242) == -1 && errno == EINVAL, "syscall(SYS_timer_getoverrun, 4242): %s",
	      strerror(errno));
	CHECK(total >= STEPS, "%ld expiries in %d signals", total, STEPS);
	printf("RESULT steps %d\n", STEPS);
	return 0;
}
