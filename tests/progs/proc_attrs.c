/*
 * proc_attrs: attributes the kernel keeps for a process and for each
 * thread, set up once and checked at every step by the thread they belong
 * to; a restore must bring every one back as it was.
 *
 * Process: interval timers (ITIMER_REAL periodic, counting its SIGALRMs;
 * ITIMER_VIRTUAL and ITIMER_PROF armed far ahead), oom_score_adj, child
 * subreaper (an orphan made at each step must be reparented to us and be
 * reaped by us), THP disabled.
 * Threads: A nice 7, timer slack, CPU affinity {0}, parent-death signal
 * SIGUSR2 (caught: it must never arrive); B SCHED_BATCH nice 3; C (when
 * permitted) SCHED_FIFO priority 10; the main thread no_new_privs and
 * the ADDR_NO_RANDOMIZE personality, which the others do not have; the
 * others block SIGALRM, which the main thread alone takes.
 *
 * Output: "step N ok" lines and a RESULT line; any difference is a FAIL
 * on stderr and exit 1.
 */
#include "common.h"
#include "sched_attr.h"
#include <sched.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>

#define STEPS 24
#define SLACK_NS 123456UL

static volatile sig_atomic_t alarms, deaths;
static int rt_ok;		/* SCHED_FIFO was permitted (straight run and cohort alike as root) */
static int checked[3];		/* rounds each thread has checked its attributes */

static void on_alarm(int s) { (void)s; alarms++; }
static void on_death(int s) { (void)s; deaths++; }

static void set_sched(uint32_t policy, int nice, uint32_t prio)
{
	struct sched_attr_k a = { .size = sizeof(a), .policy = policy, .nice = nice, .priority = prio };
	if (syscall(SYS_sched_setattr, 0, &a, 0) != 0) {
		CHECK(policy == SCHED_FIFO && errno == EPERM, "sched_setattr(%u): %s", policy, strerror(errno));
		return;
	}
	if (policy == SCHED_FIFO)
		rt_ok = 1;
}

static int my_nice(void)
{
	errno = 0;
	int n = getpriority(PRIO_PROCESS, (id_t)t_gettid());
	CHECK(errno == 0, "getpriority: %s", strerror(errno));
	return n;
}

/* What every thread but the main one shares: no no_new_privs, the default personality. */
static void check_common(const char *who)
{
	CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0, "%s: no_new_privs set", who);
	CHECK(personality(0xffffffff) == 0, "%s: personality %#x", who, personality(0xffffffff));
	sigset_t m;
	CHECK(pthread_sigmask(SIG_BLOCK, NULL, &m) == 0 && sigismember(&m, SIGALRM), "%s: SIGALRM not blocked", who);
}

static void *thread_a(void *arg)
{
	(void)arg;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	CHECK(setpriority(PRIO_PROCESS, (id_t)t_gettid(), 7) == 0, "setpriority: %s", strerror(errno));
	CHECK(prctl(PR_SET_TIMERSLACK, SLACK_NS, 0, 0, 0) == 0, "PR_SET_TIMERSLACK");
	CHECK(sched_setaffinity(0, sizeof(one), &one) == 0, "sched_setaffinity: %s", strerror(errno));
	CHECK(prctl(PR_SET_PDEATHSIG, SIGUSR2, 0, 0, 0) == 0, "PR_SET_PDEATHSIG");
	for (;;) {
		cpu_set_t got;
		int sig = 0;
		CHECK(my_nice() == 7, "thread A: nice %d, expected 7", my_nice());
		CHECK((unsigned long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) == SLACK_NS, "thread A: timer slack %d",
		      prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0));
		CHECK(sched_getaffinity(0, sizeof(got), &got) == 0 && CPU_EQUAL(&got, &one),
		      "thread A: CPU affinity changed (%d CPUs)", CPU_COUNT(&got));
		CHECK(prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0) == 0 && sig == SIGUSR2, "thread A: parent-death signal %d",
		      sig);
		check_common("thread A");
		__atomic_add_fetch(&checked[0], 1, __ATOMIC_SEQ_CST);
		t_sleep_ms(10);
	}
	return NULL;
}

static void *thread_b(void *arg)
{
	(void)arg;
	set_sched(SCHED_BATCH, 3, 0);
	for (;;) {
		struct sched_attr_k a;
		get_sched(&a);
		CHECK(a.policy == SCHED_BATCH && a.nice == 3, "thread B: policy %u nice %d, expected SCHED_BATCH 3",
		      a.policy, a.nice);
		check_common("thread B");
		__atomic_add_fetch(&checked[1], 1, __ATOMIC_SEQ_CST);
		t_sleep_ms(10);
	}
	return NULL;
}

static void *thread_c(void *arg)
{
	(void)arg;
	set_sched(SCHED_FIFO, 0, 10);
	for (;;) {
		struct sched_attr_k a;
		get_sched(&a);
		if (rt_ok)
			CHECK(a.policy == SCHED_FIFO && a.priority == 10, "thread C: policy %u priority %u, expected "
			      "SCHED_FIFO 10", a.policy, a.priority);
		else
			CHECK(a.policy == SCHED_OTHER, "thread C: policy %u", a.policy);
		check_common("thread C");
		__atomic_add_fetch(&checked[2], 1, __ATOMIC_SEQ_CST);
		t_sleep_ms(10);
	}
	return NULL;
}

/*
 * ITIMER_REAL as it stands, and whether its SIGALRM is pending.  0 left is
 * the kernel's answer between an expiry and the taking of its SIGALRM
 * (the timer is rearmed as the signal is taken), which a busy machine
 * stretches: then the signal is pending.  Only the main thread takes it
 * (the others block it from their start), and it blocks it here, so that
 * nobody takes it between the two looks: 0 left and nothing pending is a
 * timer that will never fire again.  (sigpending shows blocked signals
 * only: with SIGALRM unblocked, "pending" was never seen, and a straight
 * run on a busy machine failed with "ITIMER_REAL left 0.000000".)
 */
static int itimer_due;
static void get_real_timer(struct itimerval *v)
{
	sigset_t alrm, pend, old;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	CHECK(pthread_sigmask(SIG_BLOCK, &alrm, &old) == 0, "pthread_sigmask");
	CHECK(!sigismember(&old, SIGALRM), "main thread: SIGALRM blocked");
	CHECK(getitimer(ITIMER_REAL, v) == 0, "getitimer: %s", strerror(errno));
	itimer_due = v->it_value.tv_sec == 0 && v->it_value.tv_usec == 0 && sigpending(&pend) == 0 &&
		     sigismember(&pend, SIGALRM);
	CHECK(pthread_sigmask(SIG_UNBLOCK, &alrm, NULL) == 0, "pthread_sigmask");
}

static void check_process(void)
{
	struct itimerval v;
	get_real_timer(&v);
	CHECK(v.it_interval.tv_sec == 0 && v.it_interval.tv_usec == 20000,
	      "ITIMER_REAL interval %ld.%06ld, expected 0.020000", (long)v.it_interval.tv_sec, (long)v.it_interval.tv_usec);
	CHECK(v.it_value.tv_sec == 0 && ((v.it_value.tv_usec > 0 && v.it_value.tv_usec <= 20000) || itimer_due),
	      "ITIMER_REAL left %ld.%06ld%s", (long)v.it_value.tv_sec, (long)v.it_value.tv_usec,
	      v.it_value.tv_sec || v.it_value.tv_usec ? "" : ", and no SIGALRM pending");
	CHECK(getitimer(ITIMER_VIRTUAL, &v) == 0 && v.it_interval.tv_sec == 0 && v.it_interval.tv_usec == 0 &&
	      v.it_value.tv_sec > 900 && v.it_value.tv_sec <= 1000,
	      "ITIMER_VIRTUAL interval %ld left %ld s, expected 0 and 900-1000", (long)v.it_interval.tv_sec,
	      (long)v.it_value.tv_sec);
	CHECK(getitimer(ITIMER_PROF, &v) == 0 && v.it_interval.tv_sec == 7 && v.it_interval.tv_usec == 0 &&
	      v.it_value.tv_sec > 400 && v.it_value.tv_sec <= 500,
	      "ITIMER_PROF interval %ld left %ld s, expected 7 and 400-500", (long)v.it_interval.tv_sec,
	      (long)v.it_value.tv_sec);
	char buf[32];
	FILE *f = fopen("/proc/self/oom_score_adj", "r");
	CHECK(f && fgets(buf, sizeof(buf), f), "cannot read oom_score_adj");
	fclose(f);
	CHECK(atoi(buf) == 345, "oom_score_adj %d, expected 345", atoi(buf));
	int sub = 0;
	CHECK(prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0) == 0 && sub == 1, "not a child subreaper (%d)", sub);
	CHECK(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "huge pages not disabled");
	CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "main thread: no_new_privs lost");
	CHECK(personality(0xffffffff) == ADDR_NO_RANDOMIZE, "main thread: personality %#x", personality(0xffffffff));
	CHECK(deaths == 0, "a parent-death signal arrived");
}

/* An orphan: a child forks a grandchild and exits; the grandchild must become ours, and we reap it. */
static void orphan(void)
{
	int hold[2], tell[2];
	CHECK(pipe(hold) == 0 && pipe(tell) == 0, "pipe");
	pid_t c = fork();
	CHECK(c >= 0, "fork");
	if (c == 0) {
		pid_t g = fork();
		if (g == 0) {
			char x;
			close(hold[1]);
			read(hold[0], &x, 1); /* until we close the pipe */
			_exit(0);
		}
		write(tell[1], &g, sizeof(g));
		_exit(g > 0 ? 0 : 1);
	}
	pid_t g = 0;
	int st;
	close(tell[1]);
	CHECK(read(tell[0], &g, sizeof(g)) == sizeof(g) && g > 0, "no grandchild");
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
	close(tell[0]);
	close(hold[0]);
	close(hold[1]);
	/* reaped by us only if it was reparented to us */
	CHECK(waitpid(g, &st, 0) == g, "the orphan %d was not reparented to the subreaper: %s", g, strerror(errno));
}

int main(void)
{
	t_init("proc_attrs");
	signal(SIGALRM, on_alarm);
	signal(SIGUSR2, on_death);
	struct itimerval real = { { 0, 20000 }, { 0, 20000 } }, virt = { { 0, 0 }, { 1000, 0 } },
			 prof = { { 7, 0 }, { 500, 0 } };
	CHECK(setitimer(ITIMER_REAL, &real, NULL) == 0 && setitimer(ITIMER_VIRTUAL, &virt, NULL) == 0 &&
	      setitimer(ITIMER_PROF, &prof, NULL) == 0, "setitimer: %s", strerror(errno));
	FILE *f = fopen("/proc/self/oom_score_adj", "w");
	CHECK(f && fprintf(f, "345\n") > 0 && fclose(f) == 0, "cannot set oom_score_adj");
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, "PR_SET_CHILD_SUBREAPER");
	CHECK(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0, "PR_SET_THP_DISABLE");
	pthread_t t[3];
	void *(*fn[3])(void *) = { thread_a, thread_b, thread_c };
	/* the threads block SIGALRM (inherited): the main thread alone takes it (get_real_timer) */
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	CHECK(pthread_sigmask(SIG_BLOCK, &alrm, NULL) == 0, "pthread_sigmask");
	for (int i = 0; i < 3; i++)
		CHECK(pthread_create(&t[i], NULL, fn[i], NULL) == 0, "pthread_create");
	CHECK(pthread_sigmask(SIG_UNBLOCK, &alrm, NULL) == 0, "pthread_sigmask");
	/* the main thread's own, after the others exist (they would inherit them) */
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
	CHECK(personality(ADDR_NO_RANDOMIZE) != -1, "personality");
	for (int s = 0; s < STEPS; s++) {
		int seen[3], a0 = alarms;
		for (int i = 0; i < 3; i++)
			seen[i] = __atomic_load_n(&checked[i], __ATOMIC_SEQ_CST);
		t_sleep_ms(60);
		check_process();
		orphan();
		/* every thread checked itself again, and the periodic timer ticked */
		for (int i = 0; i < 3; i++)
			while (__atomic_load_n(&checked[i], __ATOMIC_SEQ_CST) == seen[i])
				t_sleep_ms(1);
		while (alarms == a0)
			t_sleep_ms(1);
		printf("step %d ok\n", s);
		fflush(stdout);
	}
	printf("RESULT proc_attrs ok\n");
	return 0;
}
