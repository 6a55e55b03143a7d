/*
 * sig_takeover: a program that takes signal 62 (cohort's default
 * checkpoint signal) for itself with a raw rt_sigaction system call, as the
 * Go runtime and other runtimes do for every signal, past libc and past the
 * agent's wrappers (tests/cases/park.sh).
 *
 * Natively 62 is an ordinary real-time signal.  Every step the program
 * queues it to itself three times (sigqueue, with the step in the value)
 * and checks that its handler ran three times, with its sa_mask (SIGUSR2)
 * blocked, and that sigaction() reports its handler, flags and restorer.
 * Under cohort the checkpoints must go on working and the program must
 * see the same.  It also keeps a second thread busy in a raw nanosleep.
 */
#include "common.h"
#include <stdatomic.h>

#define STEPS 50
#define SIG 62

struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static atomic_int calls, bad;
static volatile int cur_step;

static long raw_syscall(long n, long a, long b, long c, long d)
{
	long r;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall" : "=a"(r) : "0"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
	return r;
}

/* the restorer a handler installed without libc needs */
extern void takeover_restorer(void);
__asm__(".text\n"
	"takeover_restorer:\n"
	"	movq $15, %rax\n"
	"	syscall\n"
	"	hlt\n");

static void on_sig(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	uint64_t m = 0;
	raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&m, 8);
	if (sig != SIG || si->si_signo != SIG || si->si_code != SI_QUEUE || si->si_value.sival_int != cur_step)
		atomic_fetch_add(&bad, 1);
	if (!(m & (1ULL << (SIGUSR2 - 1))))
		atomic_fetch_add(&bad, 100);
	atomic_fetch_add(&calls, 1);
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec ts = { 0, 3000000 }, rem;
		while (raw_syscall(SYS_nanosleep, (long)&ts, (long)&rem, 0, 0) == -EINTR)
			ts = rem;
	}
	return NULL;
}

int main(void)
{
	t_init("sig_takeover");
	struct ksigaction ka = { (void *)on_sig, SA_SIGINFO | SA_RESTART | 0x04000000, (void *)takeover_restorer,
				 1ULL << (SIGUSR2 - 1) };
	long r = raw_syscall(SYS_rt_sigaction, SIG, (long)&ka, 0, 8);
	CHECK(r == 0, "raw rt_sigaction: %ld", r);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, sleeper, NULL) == 0, "pthread_create");
	for (int step = 1; step <= STEPS; step++) {
		cur_step = step;
		struct sigaction now;
		SYSCHK(sigaction(SIG, NULL, &now));
		CHECK(now.sa_sigaction == on_sig, "step %d: sigaction reports handler %p, not the program's", step,
		      (void *)now.sa_sigaction);
		CHECK((now.sa_flags & (SA_SIGINFO | SA_RESTART)) == (SA_SIGINFO | SA_RESTART),
		      "step %d: flags %#x", step, now.sa_flags);
		CHECK(sigismember(&now.sa_mask, SIGUSR2) == 1, "step %d: sa_mask lost SIGUSR2", step);
		int before = atomic_load(&calls);
		for (int k = 0; k < 3; k++) {
			union sigval v = { .sival_int = step };
			SYSCHK(sigqueue(getpid(), SIG, v));
		}
		for (int tries = 0; atomic_load(&calls) < before + 3 && tries < 2000; tries++)
			t_sleep_ms(1);
		CHECK(atomic_load(&calls) == before + 3, "step %d: the handler ran %d times, not 3", step,
		      atomic_load(&calls) - before);
		CHECK(atomic_load(&bad) == 0, "step %d: the handler saw a wrong signal or mask (%d)", step,
		      atomic_load(&bad));
		printf("step %d calls %d\n", step, atomic_load(&calls));
		t_sleep_ms(60);
	}
	printf("RESULT steps %d calls %d\n", STEPS, atomic_load(&calls));
	return 0;
}
