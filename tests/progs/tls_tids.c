/*
 * tls_tids: several threads with __thread data (initialised .tdata and
 * zeroed .tbss), recording pid/tid/pthread_self/TLS addresses/stack/thread
 * name at start and re-checking them every step. Checks that glibc's view
 * of the thread (pthread_kill on pthread_self, which uses glibc's cached tid)
 * agrees with the kernel: a signal sent with pthread_kill(pthread_self())
 * must be handled by the thread whose kernel tid is the recorded one.
 */
#include "common.h"
#include <stdatomic.h>
#include <sys/prctl.h>

#define NTH 5
#define STEPS 10

static __thread uint64_t tls_counter = 0x1234567890abcdefull;	/* .tdata */
static __thread uint32_t tls_arr[64] = { 1, 2, 3, 4, 5, 6, 7, 8 };	/* .tdata */
static __thread char tls_buf[8192];					/* .tbss */
static __thread volatile pid_t tls_sig_tid;				/* set by handler */
static __thread volatile int tls_sig_count;

static pthread_barrier_t bar;
static atomic_ullong global_acc;

struct tinfo {
	int idx;
	pthread_t handle;
	struct t_ident id;
	void *a_counter, *a_arr, *a_buf, *a_errno;
	void *stack_addr;
	size_t stack_size;
	char name[16];
};

static struct tinfo ti[NTH + 1];	/* [NTH] = main thread */

static void on_usr1(int sig)
{
	(void)sig;
	tls_sig_tid = t_gettid();
	tls_sig_count++;
}

static void record(struct tinfo *t)
{
	pthread_attr_t a;

	t_ident_init(&t->id);
	t->a_counter = &tls_counter;
	t->a_arr = tls_arr;
	t->a_buf = tls_buf;
	t->a_errno = &errno;
	CHECK(pthread_getattr_np(pthread_self(), &a) == 0, "pthread_getattr_np");
	CHECK(pthread_attr_getstack(&a, &t->stack_addr, &t->stack_size) == 0, "getstack");
	pthread_attr_destroy(&a);
	if (t->idx < NTH) {
		snprintf(t->name, sizeof(t->name), "tls-worker-%d", t->idx % 10);
		CHECK(pthread_setname_np(pthread_self(), t->name) == 0, "setname");
	} else {
		CHECK(prctl(PR_GET_NAME, t->name) == 0, "PR_GET_NAME");
	}
	/* deterministic per-thread initial content of .tbss */
	for (size_t i = 0; i < sizeof(tls_buf); i++)
		tls_buf[i] = (char)(i * 7 + (size_t)t->idx);
}

static uint64_t expected_counter(int idx, int s)
{
	uint64_t c = 0x1234567890abcdefull;

	for (int k = 0; k <= s; k++)
		c = t_mix(c + (uint64_t)idx * 1000 + (uint64_t)k);
	return c;
}

static void check_and_step(struct tinfo *t, int s)
{
	char name[16] = { 0 };
	pthread_attr_t a;
	void *sa;
	size_t ss;
	char comm_path[64], comm[32] = { 0 };
	int fd;

	t_ident_check(&t->id);
	CHECK(gettid() == t->id.tid, "glibc gettid() %d != %d", (int)gettid(), (int)t->id.tid);
	CHECK((void *)&tls_counter == t->a_counter && (void *)tls_arr == t->a_arr &&
	      (void *)tls_buf == t->a_buf && (void *)&errno == t->a_errno,
	      "thread %d: TLS addresses changed", t->idx);

	/* glibc's tid (used by pthread_kill) must agree with the kernel's */
	CHECK(pthread_kill(pthread_self(), 0) == 0, "pthread_kill(self, 0) failed");
	int before = tls_sig_count;
	tls_sig_tid = 0;
	CHECK(pthread_kill(pthread_self(), SIGUSR1) == 0, "pthread_kill(self, SIGUSR1)");
	/* SIGUSR1 is unblocked: the handler runs before pthread_kill returns */
	CHECK(tls_sig_count == before + 1, "thread %d: handler did not run (count %d -> %d)", t->idx, before,
	      tls_sig_count);
	CHECK(tls_sig_tid == t->id.tid, "thread %d: signal handled by tid %d, expected %d", t->idx,
	      (int)tls_sig_tid, (int)t->id.tid);

	/* stack and thread name */
	CHECK(pthread_getattr_np(pthread_self(), &a) == 0, "pthread_getattr_np");
	CHECK(pthread_attr_getstack(&a, &sa, &ss) == 0, "getstack");
	pthread_attr_destroy(&a);
	CHECK(sa == t->stack_addr && ss == t->stack_size, "thread %d: stack changed %p+%zu -> %p+%zu", t->idx,
	      t->stack_addr, t->stack_size, sa, ss);
	CHECK(pthread_getname_np(pthread_self(), name, sizeof(name)) == 0, "getname");
	CHECK(strcmp(name, t->name) == 0, "thread %d: name '%s' != '%s'", t->idx, name, t->name);
	snprintf(comm_path, sizeof(comm_path), "/proc/self/task/%d/comm", (int)t->id.tid);
	fd = SYSCHK(open(comm_path, O_RDONLY));
	ssize_t n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	CHECK(n > 0, "read comm");
	if (comm[n - 1] == '\n')
		comm[n - 1] = 0;
	CHECK(strcmp(comm, t->name) == 0, "thread %d: comm '%s' != '%s'", t->idx, comm, t->name);

	/* TLS content */
	CHECK(tls_counter == (s == 0 ? 0x1234567890abcdefull : expected_counter(t->idx, s - 1)),
	      "thread %d: tls_counter corrupted", t->idx);
	for (int i = 0; i < 64; i++) {
		uint32_t e = s == 0 ? (i < 8 ? (uint32_t)i + 1 : 0) : (uint32_t)(t->idx * 100 + (s - 1) * 64 + i);
		CHECK(tls_arr[i] == e, "thread %d: tls_arr[%d]=%u expected %u", t->idx, i, tls_arr[i], e);
	}
	for (size_t i = 0; i < sizeof(tls_buf); i++)
		CHECK(tls_buf[i] == (char)(i * 7 + (size_t)t->idx + (size_t)s), "thread %d: tls_buf[%zu] corrupted",
		      t->idx, i);

	/* mutate deterministically */
	tls_counter = expected_counter(t->idx, s);
	for (int i = 0; i < 64; i++)
		tls_arr[i] = (uint32_t)(t->idx * 100 + s * 64 + i);
	for (size_t i = 0; i < sizeof(tls_buf); i++)
		tls_buf[i]++;
	atomic_fetch_add(&global_acc, tls_counter & 0xffffffffu);
	errno = 1000 + t->idx;	/* errno is TLS too */
}

static void *worker(void *arg)
{
	struct tinfo *t = arg;

	record(t);
	for (int s = 0; s < STEPS; s++) {
		pthread_barrier_wait(&bar);	/* start of step s */
		CHECK(s == 0 || errno == 1000 + t->idx, "thread %d: errno %d", t->idx, errno);
		check_and_step(t, s);
		pthread_barrier_wait(&bar);	/* end of step s */
	}
	return NULL;
}

int main(void)
{
	struct sigaction sa;

	t_init("tls_tids");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	SYSCHK(sigaction(SIGUSR1, &sa, NULL));
	CHECK(pthread_barrier_init(&bar, NULL, NTH + 1) == 0, "barrier");

	ti[NTH].idx = NTH;
	record(&ti[NTH]);
	for (int i = 0; i < NTH; i++) {
		ti[i].idx = i;
		CHECK(pthread_create(&ti[i].handle, NULL, worker, &ti[i]) == 0, "pthread_create");
	}
	for (int s = 0; s < STEPS; s++) {
		pthread_barrier_wait(&bar);
		check_and_step(&ti[NTH], s);
		pthread_barrier_wait(&bar);
		/* distinct TLS blocks per thread */
		for (int i = 0; i < NTH; i++)
			for (int j = i + 1; j <= NTH; j++)
				CHECK(ti[i].a_counter != ti[j].a_counter, "shared TLS");
		printf("step %d ok acc=%llu\n", s, (unsigned long long)atomic_load(&global_acc));
		t_sleep_ms(320);
	}
	for (int i = 0; i < NTH; i++) {
		CHECK(pthread_join(ti[i].handle, NULL) == 0, "join");
	}
	t_ident_check(&ti[NTH].id);
	/* a test's end gate (common.h) holds it before its RESULT: a restart of a generation taken there prints it */
	t_end_gate_now();
	printf("RESULT %llu\n", (unsigned long long)atomic_load(&global_acc));
	return 0;
}
