/*
 * blocked_threads: threads the checkpoint signal cannot reach, because they
 * block every signal with calls the agent never sees (tests/cases/park.sh).
 *
 *   raw      blocks all signals with a raw rt_sigprocmask system call; each
 *            step it waits for the main thread on a condition variable,
 *            sleeps 2 ms with a raw nanosleep (inline system call, repeated
 *            with what is left when it fails with EINTR, as a careful
 *            program does after a SIGSTOP), waits 1 ms in a raw timed futex
 *            wait, and answers with a value computed from the step.
 *   timer    a timer_create(SIGEV_THREAD) one-shot timer armed by the main
 *            thread every step (1 ms); its callback runs in a thread of
 *            glibc's timer helper (which blocks every signal and waits in
 *            an internal sigwaitinfo), counts and posts a semaphore.
 *   waiter   blocks all signals (raw rt_sigprocmask) and waits in
 *            sigwaitinfo() for SIGRTMIN+2, which the main thread queues
 *            to it with pthread_sigqueue() every step, carrying the step
 *            number.
 *   aio      an aio_read() of a file every step: glibc's aio helper
 *            threads block every signal and wait a second for more work.
 *   sigwait  the daemon's signal thread: blocks every signal
 *            (pthread_sigmask) and waits in sigwait() on the full set;
 *            the main thread sends the process SIGUSR2 every step.
 * Every step each thread checks, with a raw rt_sigprocmask query, that its
 * mask is still exactly what it set; the main thread checks the counts and
 * values and prints one line.  Output depends on nothing but the steps.
 */
#include "common.h"
#include <aio.h>
#include <linux/futex.h>
#include <semaphore.h>
#include <stdatomic.h>

#define STEPS 60

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int want_step, raw_done;
static uint64_t raw_value;
static atomic_int timer_count;
static sem_t timer_sem, waiter_sem;
static atomic_int waiter_step, sigwait_count;
static sem_t sigwait_sem;
static int SIG_FEED;

static long raw_syscall(long n, long a, long b, long c, long d)
{
	long r;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall" : "=a"(r) : "0"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
	return r;
}

static uint64_t raw_getmask(void)
{
	uint64_t m = 0;
	long r = raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&m, 8);
	if (r < 0)
		FAIL("raw rt_sigprocmask query: %ld", r);
	return m;
}

/* Block every signal the kernel lets us block, as glibc's helpers do: past any wrapper. */
static uint64_t raw_block_all(void)
{
	uint64_t all = ~0ULL;
	long r = raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, 0, 8);
	if (r < 0)
		FAIL("raw rt_sigprocmask: %ld", r);
	return raw_getmask();
}

static void raw_sleep_ms(long ms)
{
	struct timespec req = { 0, ms * 1000000L }, rem;
	for (;;) {
		long r = raw_syscall(SYS_nanosleep, (long)&req, (long)&rem, 0, 0);
		if (r == 0)
			return;
		if (r != -EINTR)
			FAIL("raw nanosleep: %ld", r);
		req = rem;
	}
}

static uint64_t value_of(int step)
{
	return t_mix(0xb10c0000ULL + (uint64_t)step);
}

static void *raw_thread(void *arg)
{
	(void)arg;
	uint64_t mask = raw_block_all();
	static int futex_word;
	for (int step = 1; step <= STEPS; step++) {
		pthread_mutex_lock(&mu);
		while (want_step < step)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		raw_sleep_ms(2);
		/* a raw timed futex wait that times out: ETIMEDOUT, or EINTR after a stop */
		struct timespec ms1 = { 0, 1000000L };
		long r = raw_syscall(SYS_futex, (long)&futex_word, FUTEX_WAIT_PRIVATE, 0, (long)&ms1);
		if (r != -ETIMEDOUT && r != -EINTR)
			FAIL("raw futex wait: %ld", r);
		uint64_t now = raw_getmask();
		CHECK(now == mask, "raw thread: mask %#llx at step %d, was %#llx", (unsigned long long)now, step,
		      (unsigned long long)mask);
		pthread_mutex_lock(&mu);
		raw_value = value_of(step);
		raw_done = step;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

static void *waiter_thread(void *arg)
{
	(void)arg;
	uint64_t mask = raw_block_all();
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIG_FEED);
	for (int step = 1; step <= STEPS; step++) {
		siginfo_t si;
		int s = sigwaitinfo(&set, &si);
		CHECK(s == SIG_FEED, "sigwaitinfo returned %d (%s)", s, s < 0 ? strerror(errno) : "another signal");
		CHECK(si.si_code == SI_QUEUE && si.si_value.sival_int == step, "waiter: step %d got code %d value %d",
		      step, si.si_code, si.si_value.sival_int);
		uint64_t now = raw_getmask();
		CHECK(now == mask, "waiter: mask %#llx at step %d, was %#llx", (unsigned long long)now, step,
		      (unsigned long long)mask);
		atomic_store(&waiter_step, step);
		sem_post(&waiter_sem);
	}
	return NULL;
}

static void *sigwait_thread(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (int step = 1; step <= STEPS; step++) {
		int sig = 0, r = sigwait(&all, &sig);
		CHECK(r == 0 && sig == SIGUSR2, "sigwait returned %d, signal %d", r, sig);
		atomic_fetch_add(&sigwait_count, 1);
		sem_post(&sigwait_sem);
	}
	return NULL;
}

static void on_timer(union sigval v)
{
	if (v.sival_int != 77)
		FAIL("timer callback: value %d", v.sival_int);
	atomic_fetch_add(&timer_count, 1);
	sem_post(&timer_sem);
}

int main(void)
{
	t_init("blocked_threads");
	SIG_FEED = SIGRTMIN + 2;
	/* the fed signal waits for sigwaitinfo: blocked in every thread */
	sigset_t feed;
	sigemptyset(&feed);
	sigaddset(&feed, SIG_FEED);
	sigaddset(&feed, SIGUSR2); /* the sigwait thread's */
	pthread_sigmask(SIG_BLOCK, &feed, NULL);
	uint64_t main_mask = raw_getmask();
	sem_init(&timer_sem, 0, 0);
	sem_init(&waiter_sem, 0, 0);
	sem_init(&sigwait_sem, 0, 0);

	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = on_timer;
	sev.sigev_value.sival_int = 77;
	timer_t tm;
	SYSCHK(timer_create(CLOCK_MONOTONIC, &sev, &tm));

	pthread_t raw_th, waiter_th, sigwait_th;
	CHECK(pthread_create(&raw_th, NULL, raw_thread, NULL) == 0, "pthread_create");
	CHECK(pthread_create(&waiter_th, NULL, waiter_thread, NULL) == 0, "pthread_create");
	CHECK(pthread_create(&sigwait_th, NULL, sigwait_thread, NULL) == 0, "pthread_create");

	char path[4096];
	t_fmt(path, sizeof(path), "%s/blocked_threads.%d", t_tmpdir(), (int)getpid());
	int afd = SYSCHK(open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	unlink(path);
	for (int step = 1; step <= STEPS; step++) {
		uint64_t v = value_of(step);
		t_write_all(afd, &v, sizeof(v), (off_t)step * 8);
	}

	uint64_t hash = T_FNV_INIT;
	for (int step = 1; step <= STEPS; step++) {
		/* the raw thread */
		pthread_mutex_lock(&mu);
		want_step = step;
		pthread_cond_broadcast(&cv);
		while (raw_done < step)
			pthread_cond_wait(&cv, &mu);
		uint64_t rv = raw_value;
		pthread_mutex_unlock(&mu);
		CHECK(rv == value_of(step), "raw thread value at step %d", step);
		/* the timer: one expiry, one callback */
		struct itimerspec its = { { 0, 0 }, { 0, 1000000L } };
		SYSCHK(timer_settime(tm, 0, &its, NULL));
		while (sem_wait(&timer_sem) < 0)
			CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
		CHECK(atomic_load(&timer_count) == step, "timer callbacks %d at step %d", atomic_load(&timer_count),
		      step);
		/* the waiter */
		union sigval v = { .sival_int = step };
		CHECK(pthread_sigqueue(waiter_th, SIG_FEED, v) == 0, "pthread_sigqueue");
		while (sem_wait(&waiter_sem) < 0)
			CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
		CHECK(atomic_load(&waiter_step) == step, "waiter at step %d, expected %d", atomic_load(&waiter_step),
		      step);
		/* an aio read, done by glibc's helper thread */
		uint64_t got = 0;
		struct aiocb cb;
		memset(&cb, 0, sizeof(cb));
		cb.aio_fildes = afd;
		cb.aio_buf = &got;
		cb.aio_nbytes = sizeof(got);
		cb.aio_offset = (off_t)step * 8;
		SYSCHK(aio_read(&cb));
		const struct aiocb *list[1] = { &cb };
		while (aio_error(&cb) == EINPROGRESS)
			if (aio_suspend(list, 1, NULL) < 0)
				CHECK(errno == EINTR, "aio_suspend: %s", strerror(errno));
		CHECK(aio_return(&cb) == sizeof(got) && got == value_of(step), "aio read at step %d", step);
		/* the sigwait thread */
		SYSCHK(kill(getpid(), SIGUSR2));
		while (sem_wait(&sigwait_sem) < 0)
			CHECK(errno == EINTR, "sem_wait: %s", strerror(errno));
		CHECK(atomic_load(&sigwait_count) == step, "sigwait thread at %d, step %d", atomic_load(&sigwait_count),
		      step);
		CHECK(raw_getmask() == main_mask, "main thread mask changed at step %d", step);
		hash = t_fnv_u64(hash, rv ^ (uint64_t)step);
		printf("step %d raw %016llx timer %d waiter %d sigwait %d\n", step, (unsigned long long)rv,
		       atomic_load(&timer_count), atomic_load(&waiter_step), atomic_load(&sigwait_count));
		t_sleep_ms(50);
	}
	pthread_join(raw_th, NULL);
	pthread_join(waiter_th, NULL);
	pthread_join(sigwait_th, NULL);
	SYSCHK(timer_delete(tm));
	printf("RESULT steps %d hash %016llx\n", STEPS, (unsigned long long)hash);
	return 0;
}
