/*
 * signals: signal dispositions, masks, alternate stacks and pending signals.
 *   SIGUSR1  SA_SIGINFO|SA_RESTART, sa_mask={SIGUSR2}; raised with raise()
 *            and kill(getpid()) every step; handler checks siginfo and that
 *            SIGUSR2 is blocked while it runs.
 *   SIGUSR2  SA_ONSTACK|SA_RESTART; raised in main (which has a sigaltstack)
 *            and sent with pthread_kill to a worker thread (which has its own
 *            sigaltstack): the handler must run on the right alternate stack.
 *   SIGRTMIN+3 / SIGRTMIN+4 blocked all the time, queued at start (one
 *            process-directed with value 42, two thread-directed with values
 *            7 and 8): must stay pending every step and be delivered in order
 *            (thread queue first: 7, 8, then 42) when unblocked at the end.
 *   SIGWINCH SA_RESETHAND: raised once at step 5, must be SIG_DFL after.
 *   SIGPIPE  SIG_IGN.
 * Every step re-queries all dispositions, the signal masks of both threads,
 * the alternate stacks and the pending set, and compares them with what was
 * recorded at start.
 */
#include "common.h"
#include <stdatomic.h>
#include <sys/mman.h>

#define STEPS 10
#define ALTSZ (64 * 1024)

static int RT3, RT4;
static pid_t pid0;
static volatile sig_atomic_t cnt_usr1, cnt_usr2_main, cnt_winch;
static atomic_int cnt_usr2_worker;
static atomic_int worker_done, worker_ready;
static stack_t alt_main, alt_worker;
static pthread_t main_th, worker_th;
static volatile int rt_seq[8], rt_val[8];
static volatile sig_atomic_t rt_n;

static void hfail(const char *msg)
{
	write(2, "signals: FAILED in handler: ", 28);
	write(2, msg, strlen(msg));
	write(2, "\n", 1);
	_exit(1);
}

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	sigset_t cur;

	(void)uc;
	if (sig != SIGUSR1 || si->si_signo != SIGUSR1)
		hfail("usr1: wrong signo");
	if (si->si_code != SI_TKILL && si->si_code != SI_USER)
		hfail("usr1: unexpected si_code");
	if (si->si_pid != pid0)
		hfail("usr1: si_pid is not our pid");
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	if (!sigismember(&cur, SIGUSR2) || !sigismember(&cur, SIGUSR1))
		hfail("usr1: sa_mask/SIGUSR1 not blocked inside handler");
	cnt_usr1++;
}

static void on_usr2(int sig)
{
	char local;
	stack_t cur;
	const stack_t *want;

	if (sig != SIGUSR2)
		hfail("usr2: wrong signo");
	want = pthread_equal(pthread_self(), worker_th) ? &alt_worker : &alt_main;
	if ((char *)&local < (char *)want->ss_sp || (char *)&local >= (char *)want->ss_sp + want->ss_size)
		hfail("usr2: handler not running on this thread's alternate stack");
	if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_ONSTACK))
		hfail("usr2: sigaltstack does not report SS_ONSTACK");
	if (want == &alt_worker)
		atomic_fetch_add(&cnt_usr2_worker, 1);
	else
		cnt_usr2_main++;
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (rt_n < 8) {
		rt_seq[rt_n] = sig;
		rt_val[rt_n] = si->si_value.sival_int;
	}
	rt_n++;
}

static void on_winch(int sig)
{
	(void)sig;
	cnt_winch++;
}

/* recorded state */
static const int sigs[] = { SIGUSR1, SIGUSR2, SIGPIPE, SIGWINCH, 0, 0 };
#define NSIGS 6
static int sig_list[NSIGS];
static struct sigaction act0[NSIGS];
static sigset_t mask_main0, mask_worker0;

static int set_eq(const sigset_t *a, const sigset_t *b)
{
	for (int s = 1; s < 65; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return 0;
	return 1;
}

static void check_act(int i, const struct sigaction *want)
{
	struct sigaction cur;

	SYSCHK(sigaction(sig_list[i], NULL, &cur));
	CHECK((void *)cur.sa_sigaction == (void *)want->sa_sigaction, "signal %d: handler changed", sig_list[i]);
	CHECK(cur.sa_flags == want->sa_flags, "signal %d: sa_flags %#x != %#x", sig_list[i], cur.sa_flags,
	      want->sa_flags);
	CHECK(set_eq(&cur.sa_mask, &want->sa_mask), "signal %d: sa_mask changed", sig_list[i]);
}

static void check_alt(const stack_t *want, const char *who)
{
	stack_t cur;

	SYSCHK(sigaltstack(NULL, &cur));
	CHECK(cur.ss_sp == want->ss_sp && cur.ss_size == want->ss_size && cur.ss_flags == 0,
	      "%s: sigaltstack changed: %p+%zu flags %d", who, cur.ss_sp, cur.ss_size, cur.ss_flags);
}

static void *worker(void *arg)
{
	struct t_ident id;
	sigset_t m;

	(void)arg;
	t_ident_init(&id);
	SYSCHK(sigaltstack(&alt_worker, NULL));
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &m, NULL);
	pthread_sigmask(SIG_BLOCK, NULL, &mask_worker0);
	atomic_store(&worker_ready, 1);
	while (!atomic_load(&worker_done)) {
		t_sleep_ms(20);
		t_ident_check(&id);
		pthread_sigmask(SIG_BLOCK, NULL, &m);
		CHECK(set_eq(&m, &mask_worker0), "worker: signal mask changed");
		check_alt(&alt_worker, "worker");
	}
	return NULL;
}

static void *alloc_stack(void)
{
	void *p = mmap(NULL, ALTSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(p != MAP_FAILED, "mmap");
	return p;
}

int main(void)
{
	struct t_ident id;
	struct sigaction sa;
	sigset_t m;

	t_init("signals");
	t_ident_init(&id);
	pid0 = getpid();
	main_th = pthread_self();
	RT3 = SIGRTMIN + 3;
	RT4 = SIGRTMIN + 4;
	memcpy(sig_list, sigs, sizeof(sigs));
	sig_list[4] = RT3;
	sig_list[5] = RT4;

	alt_main = (stack_t){ .ss_sp = alloc_stack(), .ss_size = ALTSZ, .ss_flags = 0 };
	alt_worker = (stack_t){ .ss_sp = alloc_stack(), .ss_size = ALTSZ, .ss_flags = 0 };
	SYSCHK(sigaltstack(&alt_main, NULL));

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	SYSCHK(sigaction(SIGUSR1, &sa, NULL));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	SYSCHK(sigaction(SIGUSR2, &sa, NULL));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	SYSCHK(sigaction(SIGPIPE, &sa, NULL));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_winch;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	SYSCHK(sigaction(SIGWINCH, &sa, NULL));

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_rt;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	SYSCHK(sigaction(RT3, &sa, NULL));
	SYSCHK(sigaction(RT4, &sa, NULL));

	/* block the RT signals in all threads and queue them */
	sigemptyset(&m);
	sigaddset(&m, RT3);
	sigaddset(&m, RT4);
	pthread_sigmask(SIG_BLOCK, &m, NULL);
	SYSCHK(sigqueue(getpid(), RT3, (union sigval){ .sival_int = 42 }));
	CHECK(pthread_sigqueue(pthread_self(), RT4, (union sigval){ .sival_int = 7 }) == 0, "pthread_sigqueue");
	CHECK(pthread_sigqueue(pthread_self(), RT4, (union sigval){ .sival_int = 8 }) == 0, "pthread_sigqueue");

	for (int i = 0; i < NSIGS; i++)
		SYSCHK(sigaction(sig_list[i], NULL, &act0[i]));
	pthread_sigmask(SIG_BLOCK, NULL, &mask_main0);

	CHECK(pthread_create(&worker_th, NULL, worker, NULL) == 0, "pthread_create");
	while (!atomic_load(&worker_ready))
		t_sleep_ms(1);

	for (int s = 0; s < STEPS; s++) {
		t_ident_check(&id);
		/* dispositions, masks, alternate stack, pending set */
		for (int i = 0; i < NSIGS; i++) {
			if (sig_list[i] == SIGWINCH && s > 5) {
				struct sigaction cur;
				SYSCHK(sigaction(SIGWINCH, NULL, &cur));
				CHECK(cur.sa_handler == SIG_DFL, "SIGWINCH not reset by SA_RESETHAND");
				continue;
			}
			check_act(i, &act0[i]);
		}
		pthread_sigmask(SIG_BLOCK, NULL, &m);
		CHECK(set_eq(&m, &mask_main0), "main: signal mask changed");
		check_alt(&alt_main, "main");
		SYSCHK(sigpending(&m));
		for (int sig = 1; sig < 65; sig++)
			if (sig < SIGRTMIN || (sig >= RT3 - 3 && sig <= RT4))	/* the signals this test uses */
				CHECK(sigismember(&m, sig) == (sig == RT3 || sig == RT4), "step %d: signal %d pending=%d", s,
				      sig, sigismember(&m, sig));
		CHECK(rt_n == 0, "blocked RT signal was delivered");

		/* synchronous signals to self */
		int c1 = cnt_usr1, c2 = cnt_usr2_main;
		CHECK(raise(SIGUSR1) == 0, "raise");
		CHECK(cnt_usr1 == c1 + 1, "SIGUSR1 via raise not handled exactly once");
		SYSCHK(kill(getpid(), SIGUSR1));
		CHECK(cnt_usr1 == c1 + 2, "SIGUSR1 via kill not handled exactly once");
		CHECK(raise(SIGUSR2) == 0, "raise");
		CHECK(cnt_usr2_main == c2 + 1, "SIGUSR2 not handled exactly once");
		if (s == 5) {
			CHECK(raise(SIGWINCH) == 0, "raise");
			CHECK(cnt_winch == 1, "SIGWINCH not handled");
		}

		/* signal to the worker, handled on its alternate stack */
		int w = atomic_load(&cnt_usr2_worker);
		CHECK(pthread_kill(worker_th, SIGUSR2) == 0, "pthread_kill");
		for (int k = 0; k < 5000 && atomic_load(&cnt_usr2_worker) == w; k++)
			t_sleep_ms(1);
		CHECK(atomic_load(&cnt_usr2_worker) == w + 1, "worker did not handle SIGUSR2 exactly once");

		printf("step %d ok usr1=%d usr2=%d worker=%d winch=%d\n", s, (int)cnt_usr1, (int)cnt_usr2_main,
		       atomic_load(&cnt_usr2_worker), (int)cnt_winch);
		t_sleep_ms(300);
	}
	atomic_store(&worker_done, 1);
	CHECK(pthread_join(worker_th, NULL) == 0, "join");

	/* deliver the queued RT signals */
	sigemptyset(&m);
	sigaddset(&m, RT3);
	sigaddset(&m, RT4);
	pthread_sigmask(SIG_UNBLOCK, &m, NULL);
	CHECK(rt_n == 3, "expected 3 queued RT signals, got %d", (int)rt_n);
	/* thread-directed signals are dequeued before process-directed ones */
	CHECK(rt_seq[0] == RT4 && rt_val[0] == 7, "RT signal 0: sig %d val %d", rt_seq[0], rt_val[0]);
	CHECK(rt_seq[1] == RT4 && rt_val[1] == 8, "RT signal 1: sig %d val %d", rt_seq[1], rt_val[1]);
	CHECK(rt_seq[2] == RT3 && rt_val[2] == 42, "RT signal 2: sig %d val %d", rt_seq[2], rt_val[2]);
	SYSCHK(sigpending(&m));
	for (int sig = 1; sig < 65; sig++)
		if (sig < SIGRTMIN || (sig >= RT3 - 3 && sig <= RT4))
			CHECK(!sigismember(&m, sig), "signal %d still pending", sig);
	printf("RESULT usr1=%d usr2=%d worker=%d rt=%d,%d,%d\n", (int)cnt_usr1, (int)cnt_usr2_main,
	       atomic_load(&cnt_usr2_worker), rt_val[0], rt_val[1], rt_val[2]);
	return 0;
}
