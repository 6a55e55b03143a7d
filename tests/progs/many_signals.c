/*
 * many_signals process|thread N: N real-time signals queued and blocked,
 * each with its own value (SIGRTMIN+1 for the whole process with
 * sigqueue(), or for a second thread with pthread_sigqueue()), and a few
 * standard ones (SIGUSR1 for the process, SIGUSR2 for the thread).  The
 * program prints "ready", waits for go.1, then takes every signal with
 * sigwaitinfo() and checks that exactly the N queued come out, in order,
 * with their values, and the standard ones once each.
 *
 * Few enough, a checkpoint must keep them all; too many to save, it must
 * refuse (tests/cases/exact.sh).
 */
#include "common.h"

static int n_sig;
static sigset_t set;

/* Take what was queued for the calling thread and the process; check every one. */
static void drain(int rt, int std_sig, const char *who)
{
	int got = 0, std_seen = 0;
	struct timespec zero = { 0, 0 };
	for (;;) {
		siginfo_t si;
		int s = sigtimedwait(&set, &si, &zero);
		if (s < 0) {
			CHECK(errno == EAGAIN, "%s: sigtimedwait: %s", who, strerror(errno));
			break;
		}
		if (s == std_sig) {
			std_seen++;
			continue;
		}
		CHECK(s == rt, "%s: signal %d, expected %d", who, s, rt);
		CHECK(si.si_code == SI_QUEUE && si.si_value.sival_int == 1000 + got, "%s: signal %d has value %d code %d",
		      who, got, si.si_value.sival_int, si.si_code);
		got++;
	}
	CHECK(got == n_sig, "%s: %d real-time signals came out of %d queued", who, got, n_sig);
	CHECK(std_seen == 1, "%s: signal %d came %d times", who, std_sig, std_seen);
}

static int thread_mode;
static volatile int queued;	/* the main thread has queued everything */

/* The thread the signals are queued for (thread mode); in process mode it only waits. */
static void *second(void *arg)
{
	(void)arg;
	while (!queued)
		t_sleep_ms(1);
	t_wait_go(1);
	if (thread_mode)
		drain(SIGRTMIN + 1, SIGUSR2, "thread");
	return NULL;
}

int main(int argc, char **argv)
{
	t_init("many_signals");
	CHECK(argc == 3, "usage: many_signals process|thread N");
	int thread = thread_mode = !strcmp(argv[1], "thread");
	n_sig = atoi(argv[2]);
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 1);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0, "pthread_sigmask");
	pthread_t t;
	CHECK(pthread_create(&t, NULL, second, NULL) == 0, "pthread_create");
	for (int i = 0; i < n_sig; i++) {
		union sigval v = { .sival_int = 1000 + i };
		if (thread)
			CHECK(pthread_sigqueue(t, SIGRTMIN + 1, v) == 0, "pthread_sigqueue: %s", strerror(errno));
		else
			CHECK(sigqueue(getpid(), SIGRTMIN + 1, v) == 0, "sigqueue: %s", strerror(errno));
	}
	if (thread) {
		CHECK(pthread_kill(t, SIGUSR2) == 0, "pthread_kill");
	} else {
		CHECK(kill(getpid(), SIGUSR1) == 0 && kill(getpid(), SIGUSR1) == 0, "kill"); /* merged into one */
	}
	queued = 1;
	printf("ready\n");
	fflush(stdout);
	t_wait_go(1);
	CHECK(pthread_join(t, NULL) == 0, "pthread_join");
	if (!thread)
		drain(SIGRTMIN + 1, SIGUSR1, "process");
	printf("RESULT many_signals %s %d ok\n", argv[1], atoi(argv[2]));
	return 0;
}
