/*
 * rseq_own [raw] (tests/cases/exact_attrs.sh): rseq areas the program
 * registers itself, with a signature of its own, glibc's registration
 * turned off (GLIBC_TUNABLES=glibc.pthread.rseq=0: __rseq_size is 0).
 *
 * The main thread and a second thread each register their own area
 * (thread-local), through syscall(2); a child forked after that has the
 * main thread's registration by inheritance (it never registers).  At
 * every step each of the three checks that the kernel holds exactly its
 * registration:
 *   - rseq on its area with its length and signature answers EBUSY
 *     (registered, with the same address, length and signature), with
 *     another signature EPERM, on another area EINVAL;
 *   - a critical section of its own (a descriptor in __rseq_cs, an abort
 *     handler behind the signature) is aborted by the kernel when a timer
 *     signal (or a preemption) comes in the middle of it: the kernel uses
 *     the area and accepts the signature (unregistered, it would spin on
 *     for seconds and end);
 *   - the kernel wrote the area's cpu_id and cpu_id_start since (both the
 *     same CPU, a CPU of this machine).
 * A lost registration fails the first of these; one made again with
 * another signature, the second and the abort (the kernel kills a thread
 * whose abort handler has another signature).
 *
 * With "raw", the main thread registers with a raw system call (inline
 * assembly, which the agent cannot see), prints "registered" and waits
 * for the test (t_wait_go 1), which finds the checkpoint refused; it then
 * registers again through syscall(2), has the child do the same, prints
 * "switched", waits (t_wait_go 2), and runs the steps.
 * Output: "step N ok" per step, then RESULT.
 */
#include "common.h"
#include <sys/wait.h>

#define OWN_SIG 0x0fc0ffeeU
#define OWN_SIG_S "0x0fc0ffee"
#define STEPS 30
#define RSEQ_UNREGISTER 1
#define SPINS 4000000000UL /* a few seconds at most: the timer comes after 2 ms */

struct own_rseq {
	uint32_t cpu_id_start, cpu_id;
	uint64_t rseq_cs;
	uint32_t flags, node_id, mm_cid, pad;
} __attribute__((aligned(32)));

static __thread struct own_rseq area, other;
static __thread timer_t tick;
extern const unsigned int __rseq_size __attribute__((weak));
static long ncpu;

static long rseq_sys(void *a, uint32_t len, int flags, uint32_t sig)
{
	return syscall(SYS_rseq, a, len, flags, sig);
}

/* The same without the C library: -errno on failure. */
static long rseq_raw(void *a, uint32_t len, int flags, uint32_t sig)
{
	long r;
	register long r10 __asm__("r10") = (long)sig;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "0"((long)SYS_rseq), "D"(a), "S"((long)len), "d"((long)flags), "r"(r10)
			 : "rcx", "r11", "memory");
	return r;
}

/*
 * A critical section [1, 2) of the area rs: spins counting down, so that
 * a signal comes in the middle of it.  1 when the kernel aborted it (to
 * 4, behind the signature), 0 when it ran to its end.
 */
static __attribute__((noinline)) int cs_run(struct own_rseq *rs, unsigned long spins)
{
	int aborted;
	__asm__ volatile(".pushsection __rseq_cs, \"aw\"\n\t"
			 ".balign 32\n\t"
			 "3:\n\t"
			 ".long 0, 0\n\t"
			 ".quad 1f, 2f - 1f, 4f\n\t"
			 ".popsection\n\t"
			 "leaq 3b(%%rip), %%rax\n\t"
			 "movq %%rax, %[cs]\n\t"
			 "1:\n\t"
			 "subq $1, %[n]\n\t"
			 "jnz 1b\n\t"
			 "2:\n\t"
			 "movl $0, %[ab]\n\t"
			 "jmp 5f\n\t"
			 ".long " OWN_SIG_S "\n\t"
			 "4:\n\t"
			 "movl $1, %[ab]\n\t"
			 "5:\n\t"
			 "movq $0, %[cs]\n\t"
			 : [ab] "=&r"(aborted), [n] "+r"(spins), [cs] "=m"(rs->rseq_cs)
			 :
			 : "rax", "memory", "cc");
	return aborted;
}

static void on_tick(int s)
{
	(void)s;
}

/* This thread's timer, whose signal comes to it alone. */
static void tick_setup(void)
{
	struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR1 };
	ev._sigev_un._tid = t_gettid();
	SYSCHK(timer_create(CLOCK_MONOTONIC, &ev, &tick));
}

static void own_register(const char *who, int raw)
{
	long r = raw ? rseq_raw(&area, sizeof(area), 0, OWN_SIG) : rseq_sys(&area, sizeof(area), 0, OWN_SIG);
	CHECK(r == 0, "%s: rseq register: %s", who, strerror(raw ? (int)-r : errno));
}

/* The kernel holds exactly this thread's registration (see the top). */
static void check_reg(const char *who, int s)
{
	errno = 0;
	long r = rseq_sys(&area, sizeof(area), 0, OWN_SIG);
	CHECK(r == -1 && errno == EBUSY, "step %d: %s: rseq on its area: %ld (%s): not registered", s, who, r,
	      strerror(errno));
	r = rseq_sys(&area, sizeof(area), 0, OWN_SIG ^ 1);
	CHECK(r == -1 && errno == EPERM, "step %d: %s: rseq with another signature: %ld (%s), expected EPERM", s,
	      who, r, strerror(errno));
	r = rseq_sys(&other, sizeof(other), 0, OWN_SIG);
	CHECK(r == -1 && errno == EINVAL, "step %d: %s: rseq on another area: %ld (%s), expected EINVAL", s, who,
	      r, strerror(errno));
	/* the timer's signal, blocked elsewhere, comes in the critical section (if preemption does not first) */
	struct itimerspec its = { { 0, 0 }, { 0, 2000000 } }, off = { { 0, 0 }, { 0, 0 } };
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	SYSCHK(timer_settime(tick, 0, &its, NULL));
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	int ab = cs_run(&area, SPINS);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	SYSCHK(timer_settime(tick, 0, &off, NULL));
	CHECK(ab == 1, "step %d: %s: the kernel did not abort its critical section on a signal", s, who);
	uint32_t cpu = area.cpu_id, start = area.cpu_id_start;
	CHECK(cpu == start && (long)cpu < ncpu, "step %d: %s: cpu_id %u, cpu_id_start %u (%ld CPUs)", s, who, cpu,
	      start, ncpu);
}

static pthread_barrier_t bar;
static volatile int done;

static void *worker(void *arg)
{
	(void)arg;
	tick_setup();
	own_register("thread", 0);
	pthread_barrier_wait(&bar);
	for (int s = 0;; s++) {
		pthread_barrier_wait(&bar);
		if (done)
			return NULL;
		check_reg("thread", s);
		pthread_barrier_wait(&bar);
	}
}

/* The child: a byte per step ('s'), or 'r' (register through syscall(2)), or 'q'; answers each with one. */
static void child(int in, int out)
{
	char c;
	tick_setup();
	for (int s = 0; read(in, &c, 1) == 1 && c != 'q';) {
		if (c == 'r') {
			CHECK(rseq_raw(&area, sizeof(area), RSEQ_UNREGISTER, OWN_SIG) == 0, "child: raw unregister");
			own_register("child", 0);
		} else {
			check_reg("child", s++);
		}
		CHECK(write(out, "k", 1) == 1, "child: write: %s", strerror(errno));
	}
	_exit(0);
}

static void ask(int to, int from, char c)
{
	char k;
	CHECK(write(to, &c, 1) == 1 && read(from, &k, 1) == 1 && k == 'k', "the child did not answer '%c'", c);
}

int main(int argc, char **argv)
{
	int raw = argc > 1 && strcmp(argv[1], "raw") == 0;
	t_init("rseq_own");
	CHECK(&__rseq_size && __rseq_size == 0, "glibc registers rseq areas: run with GLIBC_TUNABLES=glibc.pthread.rseq=0");
	ncpu = sysconf(_SC_NPROCESSORS_CONF);
	struct sigaction sa = { .sa_handler = on_tick, .sa_flags = SA_RESTART };
	SYSCHK(sigaction(SIGUSR1, &sa, NULL));
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* (the threads and the child inherit it) */
	tick_setup();
	own_register("main", raw);
	pthread_barrier_init(&bar, NULL, 2);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, worker, NULL) == 0, "pthread_create");
	pthread_barrier_wait(&bar);
	int down[2], up[2];
	SYSCHK(pipe(down));
	SYSCHK(pipe(up));
	pid_t pid = SYSCHK(fork());
	if (pid == 0) {
		close(down[1]);
		close(up[0]);
		child(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	if (raw) {
		printf("registered\n");
		t_wait_go(1);
		CHECK(rseq_raw(&area, sizeof(area), RSEQ_UNREGISTER, OWN_SIG) == 0, "main: raw unregister");
		own_register("main", 0);
		ask(down[1], up[0], 'r');
		printf("switched\n");
		t_wait_go(2);
	}
	for (int s = 0; s < STEPS; s++) {
		check_reg("main", s);
		pthread_barrier_wait(&bar);
		pthread_barrier_wait(&bar);
		ask(down[1], up[0], 's');
		printf("step %d ok\n", s);
		t_pace_ms(150);
	}
	done = 1;
	pthread_barrier_wait(&bar);
	pthread_join(th, NULL);
	CHECK(write(down[1], "q", 1) == 1, "write: %s", strerror(errno));
	int st;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed (status %#x)", st);
	printf("RESULT rseq kept in %d steps\n", STEPS);
	return 0;
}
