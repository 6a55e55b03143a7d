/*
 * incr_family: members that come and go, and memory unmapped and mapped
 * again, along a chain of incremental checkpoints (test incr_unmerged_group).
 *
 *   incr_family [STEPS]          (default 6, 5..200)
 *
 * Three processes, each with a region of its own that it fills when it is
 * born (version: the step of its birth, 0 at the start) and in which, in
 * every later step s it lives through, it writes a deterministic
 * pseudo-random 2% of the pages with version s:
 *   - the parent P, 16 MiB.  At step 2 it unmaps 1 MiB in the middle (the
 *     hole); at step 4 it maps fresh anonymous memory there again
 *     (MAP_FIXED) and writes only its even pages: the odd ones must read
 *     zero, not what the hole held before step 2;
 *   - child A, 4 MiB, forked at the start; at step 4 it exits with status
 *     3, and P leaves it a zombie until the end (looked at every step with
 *     waitid(WNOWAIT));
 *   - child B, 4 MiB, forked at step 3, i.e. born in the middle of a chain
 *     (its first image is full, the later ones incremental).
 * Each child also checks, every step, its copy of P's region as it was at
 * the fork.  The children act on a command byte from P on a pipe each (the
 * step, or 0 to finish) and answer with the pages they wrote, so that when
 * P prints
 *     STEP s pages K
 * (K: distinct pages written in step s, by all) every process has done
 * step s and checked all its memory, and waits: P for the file
 * "$COHORT_TEST_TMP/go.s" (t_wait_go), the children in read() on their pipe.
 * At the end B sends the FNV-1a of its region; P reaps both and prints
 * "RESULT <FNV-1a of P's region, B's hash, A's exit status>".
 */
#include "common.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096ul
#define P_PAGES 4096ul			/* 16 MiB */
#define C_PAGES 1024ul			/* 4 MiB */
#define HOLE_AT 1792ul			/* P's hole: pages [HOLE_AT, HOLE_AT + HOLE_PAGES) */
#define HOLE_PAGES 256ul
#define STEP_HOLE 2
#define STEP_REFILL 4
#define STEP_B_BORN 3
#define STEP_A_EXIT 4
#define A_STATUS 3
#define MAX_STEPS 200			/* versions must fit below ZERO */
#define ZERO 0xfe			/* expected: a page of zeros */
#define UNMAPPED 0xff			/* expected: not mapped */

struct region {
	int id;				/* seeds page contents and draws: 1 P, 2 A, 3 B */
	int born;			/* the step it was filled in */
	size_t pages;
	unsigned char *base;
	unsigned char exp[P_PAGES];	/* expected version of each page (or ZERO, UNMAPPED) */
};

static struct region rp = { 1, 0, P_PAGES, NULL, { 0 } };
static struct region rc;		/* the child's own region (A or B) */

static uint64_t page_seed(int id, size_t page, int ver)
{
	return t_mix(((uint64_t)id << 56) ^ ((uint64_t)(unsigned)ver << 32) ^ (uint64_t)page) | 1;
}

static void fill_page(struct region *r, size_t page, int ver)
{
	uint64_t *w = (uint64_t *)(r->base + page * PAGE), x = page_seed(r->id, page, ver);

	for (size_t i = 0; i < PAGE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

/* 1 when the page holds what exp says; *bad: the first word that differs */
static int page_ok(const struct region *r, size_t page, size_t *bad)
{
	const uint64_t *w = (const uint64_t *)(r->base + page * PAGE);
	uint64_t x = page_seed(r->id, page, r->exp[page]);

	for (size_t i = 0; i < PAGE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (w[i] != (r->exp[page] == ZERO ? 0 : x)) {
			*bad = i;
			return 0;
		}
	}
	return 1;
}

static int in_hole(const struct region *r, size_t p) { return r == &rp && p >= HOLE_AT && p < HOLE_AT + HOLE_PAGES; }

/*
 * Step s (> r->born) of region r: what changes, in r->exp, and with
 * write != 0 also in memory.  The same function drives the writes and the
 * recomputation of what every page must hold.
 */
static void step_apply(struct region *r, int s, int write)
{
	unsigned char *hole = r->base + HOLE_AT * PAGE;

	if (r == &rp && s == STEP_HOLE) {
		if (write)
			SYSCHK(munmap(hole, HOLE_PAGES * PAGE));
		memset(r->exp + HOLE_AT, UNMAPPED, HOLE_PAGES);
	}
	if (r == &rp && s == STEP_REFILL) {
		if (write)
			CHECK(mmap(hole, HOLE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				   -1, 0) == hole, "mmap over the hole: %s", strerror(errno));
		memset(r->exp + HOLE_AT, ZERO, HOLE_PAGES);
		for (size_t p = HOLE_AT; p < HOLE_AT + HOLE_PAGES; p += 2) {
			if (write)
				fill_page(r, p, s);
			r->exp[p] = (unsigned char)s;
		}
	}
	uint64_t rs = t_mix(0xfa311eull * 1000 + (uint64_t)(r->id * MAX_STEPS + s));
	for (size_t i = 0; i < r->pages / 50; i++) {
		size_t p = (size_t)(t_rand(&rs) % r->pages);
		if (r->exp[p] == UNMAPPED)
			continue;
		if (write)
			fill_page(r, p, s);
		r->exp[p] = (unsigned char)s;
	}
}

/* Recompute what r must hold after step s from its history alone, compare every page; pages of version s. */
static size_t verify(struct region *r, int s, const char *who)
{
	size_t k = 0, bad = 0;

	memset(r->exp, r->born, r->pages);
	for (int j = r->born + 1; j <= s; j++)
		step_apply(r, j, 0);
	for (size_t p = 0; p < r->pages; p++) {
		if (r->exp[p] == UNMAPPED)
			continue;
		if (!page_ok(r, p, &bad))
			FAIL("%s, step %d: region %d page %zu word %zu differs from version %d%s", who, s, r->id, p, bad,
			     r->exp[p], in_hole(r, p) ? " (in the hole)" : "");
		k += r->exp[p] == s;
	}
	if (r == &rp && s >= STEP_HOLE && s < STEP_REFILL) {
		unsigned char vec[HOLE_PAGES];
		errno = 0;
		int e = mincore(r->base + HOLE_AT * PAGE, HOLE_PAGES * PAGE, vec);
		CHECK(e < 0 && errno == ENOMEM, "%s, step %d: the hole is mapped (mincore returned %d, %s)", who, s, e,
		      strerror(errno));
	}
	return k;
}

static uint64_t region_hash(const struct region *r)
{
	uint64_t h = T_FNV_INIT;

	for (size_t p = 0; p < r->pages; p++)
		if (r->exp[p] != UNMAPPED)
			h = t_fnv(h, r->base + p * PAGE, PAGE);
	return h;
}

static void map_region(struct region *r, int id, int born, size_t pages)
{
	r->id = id;
	r->born = born;
	r->pages = pages;
	r->base = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(r->base != MAP_FAILED, "mmap %zu pages: %s", pages, strerror(errno));
	for (size_t p = 0; p < pages; p++)
		fill_page(r, p, born);
}

/* A child: its region, steps on command; P's region as of step `pv` is checked every step. */
static void child(int id, int born, int pv, int cmd, int reply, int exit_at)
{
	char who[16];

	t_fmt(who, sizeof(who), "child %c", id == 2 ? 'A' : 'B');
	map_region(&rc, id, born, C_PAGES);
	for (;;) {
		unsigned char s;
		t_read_all(cmd, &s, 1, -1);
		if (s == 0) {
			uint64_t h = region_hash(&rc);
			t_write_all(reply, &h, sizeof(h), -1);
			_exit(0);
		}
		if (s > born && s != exit_at)
			step_apply(&rc, s, 1);
		uint32_t k = s == exit_at ? 0 : (uint32_t)verify(&rc, s, who);
		verify(&rp, pv, who);
		t_write_all(reply, &k, sizeof(k), -1);
		if (s == exit_at)
			_exit(A_STATUS);
	}
}

struct kid {
	pid_t pid;
	int cmd, reply;
};

static struct kid spawn(int id, int born, int exit_at)
{
	int c[2], r[2];

	SYSCHK(pipe(c));
	SYSCHK(pipe(r));
	fflush(stdout);
	pid_t pid = SYSCHK(fork());
	if (pid == 0) {
		close(c[1]);
		close(r[0]);
		child(id, born, born ? born - 1 : 0, c[0], r[1], exit_at);
	}
	close(c[0]);
	close(r[1]);
	return (struct kid){ pid, c[1], r[0] };
}

/* A must stay a zombie that exited with A_STATUS (waitid WNOWAIT does not reap it). */
static void check_zombie(pid_t a, int s, int block)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	SYSCHK(waitid(P_PID, (id_t)a, &si, WEXITED | WNOWAIT | (block ? 0 : WNOHANG)));
	CHECK(si.si_pid == a && si.si_code == CLD_EXITED && si.si_status == A_STATUS,
	      "step %d: child A is not a zombie with status %d (pid %d code %d status %d)", s, A_STATUS,
	      (int)si.si_pid, si.si_code, si.si_status);
}

int main(int argc, char **argv)
{
	struct t_ident id;
	int steps = 6;

	t_init("incr_family");
	if (argc > 1) {
		char *end;
		long v = strtol(argv[1], &end, 10);
		if (*end || v < STEP_A_EXIT + 1 || v > MAX_STEPS)
			FAIL("usage: incr_family [STEPS (%d..%d)]", STEP_A_EXIT + 1, MAX_STEPS);
		steps = (int)v;
	}
	t_ident_init(&id);
	map_region(&rp, 1, 0, P_PAGES);
	struct kid a = spawn(2, 0, STEP_A_EXIT), b = { 0, -1, -1 };

	for (int s = 1; s <= steps; s++) {
		t_ident_check(&id);
		if (s == STEP_B_BORN)
			b = spawn(3, STEP_B_BORN, 0);
		unsigned char cmd = (unsigned char)s;
		if (s <= STEP_A_EXIT)
			t_write_all(a.cmd, &cmd, 1, -1);
		if (s >= STEP_B_BORN)
			t_write_all(b.cmd, &cmd, 1, -1);
		step_apply(&rp, s, 1);
		size_t k = verify(&rp, s, "parent");
		uint32_t kc;
		if (s <= STEP_A_EXIT) {
			t_read_all(a.reply, &kc, sizeof(kc), -1);
			k += kc;
		}
		if (s >= STEP_B_BORN) {
			t_read_all(b.reply, &kc, sizeof(kc), -1);
			k += kc;
		}
		if (s >= STEP_A_EXIT)
			check_zombie(a.pid, s, s == STEP_A_EXIT);
		printf("STEP %d pages %zu\n", s, k);
		fflush(stdout);
		t_wait_go(s);
	}

	t_ident_check(&id);
	verify(&rp, steps, "parent");
	unsigned char quit = 0;
	uint64_t hb;
	t_write_all(b.cmd, &quit, 1, -1);
	t_read_all(b.reply, &hb, sizeof(hb), -1);
	int st_a, st_b;
	CHECK(waitpid(a.pid, &st_a, 0) == a.pid, "waitpid A: %s", strerror(errno));
	CHECK(waitpid(b.pid, &st_b, 0) == b.pid, "waitpid B: %s", strerror(errno));
	CHECK(WIFEXITED(st_a) && WEXITSTATUS(st_a) == A_STATUS, "child A: wait status %#x", st_a);
	CHECK(WIFEXITED(st_b) && WEXITSTATUS(st_b) == 0, "child B: wait status %#x", st_b);
	uint64_t h = t_fnv_u64(t_fnv_u64(region_hash(&rp), hb), (uint64_t)WEXITSTATUS(st_a));
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
