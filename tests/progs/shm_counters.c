/*
 * shm_counters (application group): shared memory between processes.
 * The parent creates a MAP_SHARED|MAP_ANONYMOUS region (holding a
 * process-shared mutex and counters) and a memfd mapped MAP_SHARED (more
 * counters), then forks 3 children. In lockstep steps (a "go" byte through
 * a pipe to each child, a "done" byte back) every child increments counters
 * in both regions INCS times under the shared mutex, with a deliberately
 * non-atomic read-modify-write that would lose updates without mutual
 * exclusion. After each step the parent checks every counter, that the memfd
 * contents read with pread() equal its mapping, and prints the totals.
 * Children check at every step that the regions still hold what they wrote.
 * At the end the children exit with 20+i and the parent checks the statuses.
 */
#include "common.h"
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define NCHILD 3
#define STEPS 14
#define INCS 20000
#define STEP_MS 250

struct anon_region {
	pthread_mutex_t lock;
	uint64_t total;			/* +1 per increment */
	uint64_t per_child[NCHILD];
	uint64_t racy;			/* read-modify-write with a delay inside */
	uint64_t magic;
};

struct memfd_region {
	uint64_t weighted;		/* + (i+1) per increment of child i */
	uint64_t per_child[NCHILD];
	uint64_t hash[NCHILD];		/* running hash per child */
	uint64_t magic;
};

#define MAGIC_A 0x616e6f6e72656731ull
#define MAGIC_M 0x6d656d6664726567ull

static struct anon_region *A;
static struct memfd_region *M;
static int memfd;

static void child_main(int idx, int go, int done)
{
	struct t_ident id;
	pid_t parent = getppid();
	uint64_t mine = 0, h = T_FNV_INIT;

	t_ident_init(&id);
	for (;;) {
		char cmd;
		ssize_t n = read(go, &cmd, 1);

		if (n < 0 && errno == EINTR)
			FAIL("child %d: read interrupted (EINTR)", idx);
		CHECK(n == 1, "child %d: read go: %zd %s", idx, n, n < 0 ? strerror(errno) : "EOF");
		if (cmd == 'q')
			_exit(20 + idx);
		CHECK(cmd == 'g', "child %d: bad command %d", idx, cmd);
		t_ident_check(&id);
		CHECK(getppid() == parent, "child %d: getppid() changed", idx);
		CHECK(A->magic == MAGIC_A && M->magic == MAGIC_M, "child %d: shared regions damaged", idx);
		CHECK(pthread_mutex_lock(&A->lock) == 0, "lock");
		CHECK(A->per_child[idx] == mine && M->per_child[idx] == mine,
		      "child %d: my counters are %llu/%llu, expected %llu", idx,
		      (unsigned long long)A->per_child[idx], (unsigned long long)M->per_child[idx],
		      (unsigned long long)mine);
		CHECK(M->hash[idx] == h, "child %d: my hash changed", idx);
		CHECK(pthread_mutex_unlock(&A->lock) == 0, "unlock");
		for (int i = 0; i < INCS; i++) {
			int r = pthread_mutex_lock(&A->lock);
			CHECK(r == 0, "child %d: lock: %s", idx, strerror(r));
			A->total++;
			A->per_child[idx]++;
			volatile uint64_t v = A->racy;
			for (int k = 0; k < 3; k++)
				v = v + 0;
			A->racy = v + 1;
			M->weighted += (uint64_t)idx + 1;
			M->per_child[idx]++;
			mine++;
			h = t_fnv_u64(h, mine);
			M->hash[idx] = h;
			r = pthread_mutex_unlock(&A->lock);
			CHECK(r == 0, "child %d: unlock: %s", idx, strerror(r));
		}
		CHECK(write(done, &cmd, 1) == 1, "child %d: write done: %s", idx, strerror(errno));
	}
}

static uint64_t hash_upto(uint64_t n)
{
	uint64_t h = T_FNV_INIT;

	for (uint64_t i = 1; i <= n; i++)
		h = t_fnv_u64(h, i);
	return h;
}

int main(void)
{
	struct t_ident id;
	int go[NCHILD][2], done[2];
	pid_t kids[NCHILD];
	pthread_mutexattr_t ma;

	t_init("shm_counters");
	t_ident_init(&id);
	A = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(A != MAP_FAILED, "mmap anon: %s", strerror(errno));
	memfd = SYSCHK(memfd_create("shm_counters", 0));
	SYSCHK(ftruncate(memfd, 8192));
	M = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	CHECK(M != MAP_FAILED, "mmap memfd: %s", strerror(errno));
	CHECK(pthread_mutexattr_init(&ma) == 0, "mutexattr_init");
	CHECK(pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) == 0, "setpshared");
	CHECK(pthread_mutex_init(&A->lock, &ma) == 0, "mutex_init");
	A->magic = MAGIC_A;
	M->magic = MAGIC_M;
	for (int c = 0; c < NCHILD; c++)
		M->hash[c] = T_FNV_INIT;

	SYSCHK(pipe(done));
	for (int c = 0; c < NCHILD; c++) {
		SYSCHK(pipe(go[c]));
		fflush(stdout);
		kids[c] = SYSCHK(fork());
		if (kids[c] == 0) {
			for (int j = 0; j <= c; j++)
				close(go[j][1]);
			close(done[0]);
			child_main(c, go[c][0], done[1]);
		}
		close(go[c][0]);
	}
	close(done[1]);

	uint64_t weight_sum = 0;
	for (int c = 0; c < NCHILD; c++)
		weight_sum += (uint64_t)c + 1;
	for (int s = 0; s < STEPS; s++) {
		t_ident_check(&id);
		for (int c = 0; c < NCHILD; c++)
			CHECK(write(go[c][1], "g", 1) == 1, "write go: %s", strerror(errno));
		for (int c = 0; c < NCHILD; c++) {
			char b;
			struct pollfd pfd = { done[0], POLLIN, 0 };
			int pr = poll(&pfd, 1, 20000);
			if (pr < 0 && errno == EINTR)
				FAIL("poll interrupted (EINTR)");
			CHECK(pr == 1, "step %d: no answer from the children after 20 s (one failed?)", s);
			ssize_t n = read(done[0], &b, 1);
			if (n < 0 && errno == EINTR)
				FAIL("read interrupted (EINTR)");
			CHECK(n == 1, "read done: %zd %s", n, n < 0 ? strerror(errno) : "EOF (a child died)");
		}
		uint64_t per = (uint64_t)(s + 1) * INCS;
		CHECK(pthread_mutex_lock(&A->lock) == 0, "lock");
		CHECK(A->magic == MAGIC_A && M->magic == MAGIC_M, "shared regions damaged");
		CHECK(A->total == per * NCHILD, "step %d: anon total %llu, expected %llu", s,
		      (unsigned long long)A->total, (unsigned long long)(per * NCHILD));
		CHECK(A->racy == per * NCHILD, "step %d: racy counter %llu, expected %llu (mutex broken?)", s,
		      (unsigned long long)A->racy, (unsigned long long)(per * NCHILD));
		CHECK(M->weighted == per * weight_sum, "step %d: memfd weighted %llu, expected %llu", s,
		      (unsigned long long)M->weighted, (unsigned long long)(per * weight_sum));
		uint64_t hx = hash_upto(per);
		for (int c = 0; c < NCHILD; c++) {
			CHECK(A->per_child[c] == per, "step %d: anon counter of child %d: %llu", s, c,
			      (unsigned long long)A->per_child[c]);
			CHECK(M->per_child[c] == per, "step %d: memfd counter of child %d: %llu", s, c,
			      (unsigned long long)M->per_child[c]);
			CHECK(M->hash[c] == hx, "step %d: memfd hash of child %d wrong", s, c);
		}
		struct memfd_region copy;
		t_read_all(memfd, &copy, sizeof(copy), 0);
		CHECK(memcmp(&copy, M, sizeof(copy)) == 0,
		      "step %d: memfd read back differs from its mapping: weighted %llu (pread), %llu (mapping)",
		      s, (unsigned long long)copy.weighted, (unsigned long long)M->weighted);
		uint64_t total = A->total, weighted = M->weighted;
		CHECK(pthread_mutex_unlock(&A->lock) == 0, "unlock");
		printf("step %d ok: anon total %llu, memfd weighted %llu, hash %016llx\n", s,
		       (unsigned long long)total, (unsigned long long)weighted, (unsigned long long)hx);
		t_sleep_ms(STEP_MS);
	}
	/* a test's end gate (common.h) holds the group here, the children still there */
	t_end_gate_now();
	for (int c = 0; c < NCHILD; c++)
		CHECK(write(go[c][1], "q", 1) == 1, "write quit: %s", strerror(errno));
	for (int c = 0; c < NCHILD; c++) {
		int st;
		pid_t w = waitpid(kids[c], &st, 0);
		if (w < 0 && errno == EINTR)
			FAIL("waitpid interrupted (EINTR)");
		CHECK(w == kids[c], "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 20 + c, "child %d: status %#x", c, st);
	}
	printf("children exited 20 21 22\n");
	printf("RESULT %llu %llu\n", (unsigned long long)A->total, (unsigned long long)M->weighted);
	return 0;
}
