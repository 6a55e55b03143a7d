/*
 * posix_timers: POSIX timers (timer_create) must come back with their ids,
 * clocks, notifications and times (tests/cases/park.sh).
 *
 *   tick     SIGEV_SIGNAL, SIGRTMIN+3 to the process, every 4 ms
 *            (CLOCK_MONOTONIC): its handler counts
 *   thread   SIGEV_THREAD_ID, SIGRTMIN+4 to a worker that waits for it in
 *            sigwaitinfo(), every 6 ms (CLOCK_BOOTTIME), value 4242
 *   far      SIGEV_NONE, once, 1000 s ahead on CLOCK_MONOTONIC: the time
 *            it has left plus the time since it was armed stays 1000 s
 *   idle     created and never armed: stays disarmed
 * Every step waits until tick and thread have fired again, and checks the
 * others; the output depends on nothing but the steps.
 */
#include "common.h"
#include <stdatomic.h>

#define STEPS 120 /* 6 s: a busy machine takes seconds for the checkpoints of park_flow */

static atomic_int ticks, thread_ticks, worker_tid;
static int SIG_TICK, SIG_THREAD;

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIG_TICK && si->si_code == SI_TIMER && si->si_value.sival_int == 33)
		atomic_fetch_add(&ticks, 1);
}

static void *worker(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIG_THREAD);
	sigset_t tick;
	sigemptyset(&tick);
	sigaddset(&tick, SIG_TICK); /* the main thread's to take: no handler interrupts the wait */
	pthread_sigmask(SIG_BLOCK, &tick, NULL);
	atomic_store(&worker_tid, (int)t_gettid());
	for (;;) {
		siginfo_t si;
		int s = sigwaitinfo(&set, &si);
		if (s < 0)
			FAIL("sigwaitinfo: %s", strerror(errno));
		CHECK(s == SIG_THREAD && si.si_code == SI_TIMER && si.si_value.sival_int == 4242,
		      "worker: signal %d code %d value %d", s, si.si_code, si.si_value.sival_int);
		atomic_fetch_add(&thread_ticks, 1);
	}
	return NULL;
}

static void wait_more(atomic_int *c, int than, const char *what, int step)
{
	for (int i = 0; i < 5000 && atomic_load(c) <= than; i++)
		t_sleep_ms(1);
	CHECK(atomic_load(c) > than, "step %d: the %s timer stopped firing", step, what);
}

int main(void)
{
	t_init("posix_timers");
	SIG_TICK = SIGRTMIN + 3;
	SIG_THREAD = SIGRTMIN + 4;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIG_THREAD);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_tick;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	SYSCHK(sigaction(SIG_TICK, &sa, NULL));

	pthread_t th;
	CHECK(pthread_create(&th, NULL, worker, NULL) == 0, "pthread_create");
	for (int i = 0; i < 5000 && !atomic_load(&worker_tid); i++)
		t_sleep_ms(1);
	CHECK(atomic_load(&worker_tid) > 0, "the worker did not start");

	timer_t tick, thr, far, idle;
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIG_TICK;
	ev.sigev_value.sival_int = 33;
	SYSCHK(timer_create(CLOCK_MONOTONIC, &ev, &tick));
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_NONE;
	SYSCHK(timer_create(CLOCK_MONOTONIC, &ev, &far));
	SYSCHK(timer_create(CLOCK_REALTIME, &ev, &idle));

	struct itimerspec its = { { 0, 4000000 }, { 0, 4000000 } };
	SYSCHK(timer_settime(tick, 0, &its, NULL));
	struct itimerspec far_its = { { 0, 0 }, { 1000, 0 } };
	uint64_t far_armed = t_now_ns(CLOCK_MONOTONIC);
	SYSCHK(timer_settime(far, 0, &far_its, NULL));
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev.sigev_signo = SIG_THREAD;
	ev.sigev_value.sival_int = 4242;
	ev._sigev_un._tid = atomic_load(&worker_tid);
	SYSCHK(timer_create(CLOCK_BOOTTIME, &ev, &thr));
	struct itimerspec ti = { { 0, 6000000 }, { 0, 6000000 } };
	SYSCHK(timer_settime(thr, 0, &ti, NULL));

	for (int step = 1; step <= STEPS; step++) {
		wait_more(&ticks, atomic_load(&ticks), "tick", step);
		wait_more(&thread_ticks, atomic_load(&thread_ticks), "thread", step);
		struct itimerspec cur;
		SYSCHK(timer_gettime(far, &cur));
		uint64_t left = (uint64_t)cur.it_value.tv_sec * 1000000000ull + (uint64_t)cur.it_value.tv_nsec;
		uint64_t since = t_now_ns(CLOCK_MONOTONIC) - far_armed;
		int64_t off = (int64_t)(left + since) - 1000000000000LL;
		CHECK(left > 0 && off > -50000000LL && off < 500000000LL,
		      "step %d: the far timer is %lld ms off (left %llu ms)", step, (long long)(off / 1000000),
		      (unsigned long long)(left / 1000000));
		SYSCHK(timer_gettime(idle, &cur));
		CHECK(!cur.it_value.tv_sec && !cur.it_value.tv_nsec, "step %d: the idle timer is armed", step);
		SYSCHK(timer_gettime(tick, &cur));
		CHECK(cur.it_interval.tv_nsec == 4000000, "step %d: the tick timer's interval is %ld ns", step,
		      cur.it_interval.tv_nsec);
		printf("step %d timers ok\n", step);
		t_sleep_ms(50);
	}
	printf("RESULT steps %d\n", STEPS);
	return 0;
}
