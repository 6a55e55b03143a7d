/*
 * thread_attrs8: attributes image format 8 records, set up once and
 * checked at every step by the thread they belong to; a restore must bring
 * every one back as it was.
 *
 * Thread A: SCHED_IDLE with nice 4 (sched_setattr ignores the nice of
 * SCHED_IDLE: set with setpriority after), the idle I/O class, TSC reads
 * fault (PR_SET_TSC: this thread then makes raw system calls only, the
 * vDSO's clocks read the TSC), machine-check kill early, memory policy
 * MPOL_PREFERRED node 0, utilization clamps 100-900 where the kernel has
 * them.  Thread B: SCHED_FIFO 5 (when permitted) with nice 6, best-effort
 * I/O priority 5, machine-check kill late, MPOL_BIND | MPOL_F_STATIC_NODES
 * node 0.  Main thread: best-effort I/O priority 2, MPOL_INTERLEAVE node 0,
 * KSM merging all memory (PR_SET_MEMORY_MERGE, where the kernel has it),
 * RLIMIT_CORE 12345/54321, RLIMIT_NOFILE soft 1000; as root its hard limit
 * raised to 20000 and RLIMIT_MEMLOCK to 3 MiB/5 MiB (above the shell's: a
 * restart must set them back exactly, not keep its own).  Memory policies
 * only on a kernel with NUMA.
 *
 * "gate" (tests/cases/migrate_sched.sh): after step 8, under the end gate
 * of common.h, it waits at gate "mid" (its threads checking on) until
 * the test opens it.  The main thread's scheduling is the default, and
 * checked as the others' (a migration's stop runs at SCHED_FIFO 1, and
 * none of it may stay).
 *
 * Output: "step N ok" lines and a RESULT line; any difference is a FAIL
 * on stderr and exit 1.
 */
#include "common.h"
#include "sched_attr.h"
#include <sys/prctl.h>
#include <sys/resource.h>

#define STEPS 24
#define IOPRIO(class, data) ((class) << 13 | (data))
#define MPOL_PREFERRED 1
#define MPOL_BIND 2
#define MPOL_INTERLEAVE 3
#define MPOL_F_STATIC_NODES (1 << 15)
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

static int numa_ok, rt_ok, clamp_ok, ksm_ok, root;
static int checked[2];	/* rounds each thread has checked its attributes */

static int my_nice(void)
{
	errno = 0;
	int n = getpriority(PRIO_PROCESS, (id_t)t_gettid());
	CHECK(errno == 0, "getpriority: %s", strerror(errno));
	return n;
}

static int my_ioprio(void) { return (int)syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0); }

static void set_policy(int mode)
{
	unsigned long one = 1;
	if (numa_ok)
		CHECK(syscall(SYS_set_mempolicy, mode, &one, 65) == 0, "set_mempolicy(%#x): %s", mode, strerror(errno));
}

static void check_policy(const char *who, int want)
{
	if (!numa_ok)
		return;
	int mode = -1;
	unsigned long nodes[16] = { 0 };
	CHECK(syscall(SYS_get_mempolicy, &mode, nodes, 1024, 0, 0) == 0, "%s: get_mempolicy: %s", who, strerror(errno));
	CHECK(mode == want && nodes[0] == 1, "%s: memory policy %#x nodes %#lx, expected %#x nodes 0x1", who, mode,
	      nodes[0], want);
}

static void check_mce(const char *who, int want)
{
	int got = prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	CHECK(got == want, "%s: machine-check kill policy %d, expected %d", who, got, want);
}

/* A sleep without the vDSO (thread A: reading the TSC faults) */
static void raw_sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000 };
	syscall(SYS_nanosleep, &ts, NULL);
}

static void *thread_a(void *arg)
{
	(void)arg;
	struct sched_attr_k s = { .size = sizeof(s), .policy = SCHED_IDLE, .util_min = 100, .util_max = 900,
				  .flags = 0x20 | 0x40 /* SCHED_FLAG_UTIL_CLAMP_MIN, _MAX */ };
	clamp_ok = syscall(SYS_sched_setattr, 0, &s, 0) == 0;
	if (!clamp_ok) {
		s.flags = 0;
		CHECK(syscall(SYS_sched_setattr, 0, &s, 0) == 0, "sched_setattr(SCHED_IDLE): %s", strerror(errno));
	}
	CHECK(setpriority(PRIO_PROCESS, (id_t)t_gettid(), 4) == 0, "setpriority: %s", strerror(errno));
	SYSCHK(syscall(SYS_ioprio_set, 1, 0, IOPRIO(3, 0)));
	SYSCHK(prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0));
	set_policy(MPOL_PREFERRED);
	SYSCHK(prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0));
	for (;;) {
		struct sched_attr_k a;
		int tsc = 0;
		get_sched(&a);
		CHECK(a.policy == SCHED_IDLE, "thread A: policy %u, expected SCHED_IDLE", a.policy);
		if (clamp_ok)
			CHECK(a.util_min == 100 && a.util_max == 900, "thread A: utilization clamps %u-%u, expected 100-900",
			      a.util_min, a.util_max);
		CHECK(my_nice() == 4, "thread A: nice %d, expected 4", my_nice());
		CHECK(my_ioprio() == IOPRIO(3, 0), "thread A: I/O priority %#x, expected %#x", my_ioprio(), IOPRIO(3, 0));
		CHECK(prctl(PR_GET_TSC, &tsc, 0, 0, 0) == 0 && tsc == PR_TSC_SIGSEGV, "thread A: PR_GET_TSC %d", tsc);
		check_mce("thread A", PR_MCE_KILL_EARLY);
		check_policy("thread A", MPOL_PREFERRED);
		__atomic_add_fetch(&checked[0], 1, __ATOMIC_SEQ_CST);
		raw_sleep_ms(10);
	}
	return NULL;
}

static void *thread_b(void *arg)
{
	(void)arg;
	struct sched_attr_k s = { .size = sizeof(s), .policy = SCHED_FIFO, .priority = 5 };
	rt_ok = syscall(SYS_sched_setattr, 0, &s, 0) == 0;
	CHECK(rt_ok || errno == EPERM, "sched_setattr(SCHED_FIFO): %s", strerror(errno));
	CHECK(setpriority(PRIO_PROCESS, (id_t)t_gettid(), 6) == 0, "setpriority: %s", strerror(errno));
	SYSCHK(syscall(SYS_ioprio_set, 1, 0, IOPRIO(2, 5)));
	SYSCHK(prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_LATE, 0, 0));
	set_policy(MPOL_BIND | MPOL_F_STATIC_NODES);
	for (;;) {
		struct sched_attr_k a;
		get_sched(&a);
		CHECK(a.policy == (rt_ok ? SCHED_FIFO : SCHED_OTHER) && a.priority == (rt_ok ? 5u : 0u),
		      "thread B: policy %u priority %u", a.policy, a.priority);
		CHECK(my_nice() == 6, "thread B: nice %d, expected 6", my_nice());
		CHECK(my_ioprio() == IOPRIO(2, 5), "thread B: I/O priority %#x, expected %#x", my_ioprio(), IOPRIO(2, 5));
		check_mce("thread B", PR_MCE_KILL_LATE);
		check_policy("thread B", MPOL_BIND | MPOL_F_STATIC_NODES);
		__atomic_add_fetch(&checked[1], 1, __ATOMIC_SEQ_CST);
		t_sleep_ms(10);
	}
	return NULL;
}

static void check_limit(int res, const char *name, rlim_t cur, rlim_t max)
{
	struct rlimit r;
	SYSCHK(getrlimit(res, &r));
	CHECK(r.rlim_cur == cur && r.rlim_max == max, "%s %llu/%llu, expected %llu/%llu", name,
	      (unsigned long long)r.rlim_cur, (unsigned long long)r.rlim_max, (unsigned long long)cur,
	      (unsigned long long)max);
}

static rlim_t nofile_cur, nofile_max;

static void check_process(void)
{
	int tsc = 0;
	struct sched_attr_k a;
	get_sched(&a);
	CHECK(a.policy == SCHED_OTHER && a.priority == 0 && a.flags == 0, "main thread: policy %u priority %u flags %#llx",
	      a.policy, a.priority, (unsigned long long)a.flags);
	CHECK(my_ioprio() == IOPRIO(2, 2), "main thread: I/O priority %#x, expected %#x", my_ioprio(), IOPRIO(2, 2));
	CHECK(my_nice() == 0, "main thread: nice %d", my_nice());
	CHECK(prctl(PR_GET_TSC, &tsc, 0, 0, 0) == 0 && tsc == PR_TSC_ENABLE, "main thread: PR_GET_TSC %d", tsc);
	check_mce("main thread", PR_MCE_KILL_DEFAULT);
	check_policy("main thread", MPOL_INTERLEAVE);
	if (ksm_ok)
		CHECK(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1, "KSM merging of all memory is off");
	check_limit(RLIMIT_CORE, "RLIMIT_CORE", 12345, 54321);
	check_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", nofile_cur, nofile_max);
	if (root)
		check_limit(RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK", 3 << 20, 5 << 20);
}

int main(int argc, char **argv)
{
	t_init("thread_attrs8");
	root = geteuid() == 0;
	/* "nofile": 20000/20000 (root), a restart with a lower hard limit must fail naming it */
	int nofile = argc > 1 && !strcmp(argv[1], "nofile");
	int gate = argc > 1 && !strcmp(argv[1], "gate");
	int mode = 0;
	unsigned long nodes[16];
	numa_ok = syscall(SYS_get_mempolicy, &mode, nodes, 1024, 0, 0) == 0;
	ksm_ok = prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0;
	CHECK(ksm_ok || errno == EINVAL, "PR_SET_MEMORY_MERGE: %s", strerror(errno));
	struct rlimit core = { 12345, 54321 }, nf, ml = { 3 << 20, 5 << 20 };
	SYSCHK(setrlimit(RLIMIT_CORE, &core));
	SYSCHK(getrlimit(RLIMIT_NOFILE, &nf));
	if (root)
		nf.rlim_max = 20000;
	nf.rlim_cur = nofile ? nf.rlim_max : 1000;
	nofile_cur = nf.rlim_cur;
	nofile_max = nf.rlim_max;
	SYSCHK(setrlimit(RLIMIT_NOFILE, &nf));
	if (root)
		SYSCHK(setrlimit(RLIMIT_MEMLOCK, &ml));
	CHECK(root || !nofile, "nofile needs root");
	SYSCHK(syscall(SYS_ioprio_set, 1, 0, IOPRIO(2, 2)));
	set_policy(MPOL_INTERLEAVE);
	pthread_t t[2];
	void *(*fn[2])(void *) = { thread_a, thread_b };
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, fn[i], NULL) == 0, "pthread_create");
	for (int s = 0; s < STEPS; s++) {
		int seen[2];
		for (int i = 0; i < 2; i++)
			seen[i] = __atomic_load_n(&checked[i], __ATOMIC_SEQ_CST);
		t_sleep_ms(40);
		check_process();
		/* every thread checked itself again */
		for (int i = 0; i < 2; i++)
			while (__atomic_load_n(&checked[i], __ATOMIC_SEQ_CST) == seen[i])
				t_sleep_ms(1);
		printf("step %d ok\n", s);
		fflush(stdout);
		if (gate && s == 8)
			for (t_gate_arrive("mid"); !t_gate_open("mid");)
				t_sleep_ms(10);
	}
	printf("RESULT thread_attrs8 ok\n");
	return 0;
}
