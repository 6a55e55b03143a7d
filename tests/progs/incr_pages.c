/*
 * incr_pages: a known, small set of pages written between checkpoints, for
 * the incremental checkpoint tests (incr_chain, incr_written, incr_crash).
 *
 *   incr_pages [STEPS] [--no-wait] [--thp]        (STEPS default 6)
 *
 * Maps a 64 MiB anonymous region (R1), fills every page, then runs steps
 * 1..STEPS. In step s it writes a deterministic pseudo-random 1% of R1's
 * pages (a fixed-seed PRNG per step; duplicates possible), each page filled
 * with data derived from (region, page index, s). Besides:
 *   - step 3 maps a NEW 4 MiB region (R2) and writes all 1024 of its pages
 *     (memory that appears after the first checkpoint);
 *   - step 4 unmaps the last 1 MiB of R1 (memory that disappears); from then
 *     on the random pages are drawn from what is left of R1;
 *   - steps after 3 also write 1% of R2's pages;
 *   - step 5 first drops 2 MiB of R1 with MADV_DONTNEED (memory that
 *     becomes zero without a write: pages the parent image holds but a
 *     restart must not bring back); its random pages avoid them, later
 *     steps' may land there.  They are checked from step 6 on: read in
 *     step 5 they would be mapped again (the zero page).
 * After each step it recomputes, from the step history alone, which version
 * every page of every region must hold, compares every word, checks that the
 * unmapped 1 MiB is really unmapped (mincore: ENOMEM), and exits 1 with a
 * message on any mismatch. Then it prints
 *     STEP s pages K
 * (K = the number of distinct pages written in step s, both regions) and
 * waits until the file "$COHORT_TEST_TMP/go.s" exists (t_wait_go, which
 * touches almost no memory), so that a checkpoint taken while it waits sees
 * only the step's pages (and a little stack, stdio and agent memory) as
 * written since the last one.
 * Without COHORT_TEST_TMP, or with --no-wait, it does not wait.
 * At the end it prints "RESULT <FNV-1a of every mapped page of R1 and R2>".
 * With --thp both regions are aligned to 2 MiB and madvise(MADV_HUGEPAGE)d
 * (the pages dropped at step 5 are then one whole huge page); after each
 * step both must still be advised so (VmFlags "hg" in /proc/self/smaps: a
 * restart must advise them again), and it prints to stderr "thp_kib N"
 * (AnonHugePages of /proc/self/smaps_rollup), which depends on the machine
 * and is not part of the compared output.
 */
#include "common.h"
#include <sys/mman.h>

#define PAGE 4096ul
#define R1_PAGES 16384ul		/* 64 MiB */
#define R1_CUT_PAGES 256ul		/* the last 1 MiB, unmapped at step 4 */
#define R2_PAGES 1024ul			/* 4 MiB, mapped at step 3 */
#define STEP_MAP_R2 3
#define STEP_UNMAP 4
#define STEP_DROP 5
#define DROP_FIRST 4096ul		/* R1 pages [4096, 4608) are dropped at step 5 */
#define DROP_PAGES 512ul
#define MAX_STEPS 200			/* versions must fit in a byte */
#define V_ZERO 255			/* the version of a dropped page: all zero */

static unsigned char *r1, *r2;
/* expected version (0 = initial fill, s = written in step s) of each page,
 * recomputed from scratch after every step */
static unsigned char exp1[R1_PAGES], exp2[R2_PAGES];

static int thp;

/* len bytes of fresh anonymous memory; with --thp 2 MiB aligned and madvise(MADV_HUGEPAGE)d */
static unsigned char *map_region(size_t len)
{
	size_t huge = 2ul << 20, extra = thp ? huge : 0;
	unsigned char *raw = mmap(NULL, len + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(raw != MAP_FAILED, "mmap %zu bytes: %s", len, strerror(errno));
	if (!thp)
		return raw;
	unsigned char *p = (unsigned char *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	if (p > raw)
		SYSCHK(munmap(raw, (size_t)(p - raw)));
	if (raw + extra > p)
		SYSCHK(munmap(p + len, (size_t)(raw + extra - p)));
	SYSCHK(madvise(p, len, MADV_HUGEPAGE));
	return p;
}

/* With --thp: the region at p must still be madvise(MADV_HUGEPAGE)d ("hg" in its VmFlags). */
static void check_advised(const unsigned char *p, int s, const char *what)
{
	char line[1024];
	int in = 0, hg = -1;
	FILE *f = fopen("/proc/self/smaps", "r");
	CHECK(f != NULL, "open /proc/self/smaps: %s", strerror(errno));
	while (hg < 0 && fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2)
			in = a <= (unsigned long)p && (unsigned long)p < b;
		else if (in && !strncmp(line, "VmFlags:", 8))
			hg = strstr(line, " hg") != NULL;
	}
	fclose(f);
	CHECK(hg == 1, "after step %d: %s (%p) is no longer madvise(MADV_HUGEPAGE)d (VmFlags of /proc/self/smaps)",
	      s, what, (const void *)p);
}

static void report_thp(int s)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	while (f && fgets(line, sizeof(line), f) && sscanf(line, "AnonHugePages: %ld", &kib) != 1)
		;
	if (f)
		fclose(f);
	fprintf(stderr, "incr_pages: after step %d thp_kib %ld\n", s, kib);
}

static size_t r1_live(int step) { return step >= STEP_UNMAP ? R1_PAGES - R1_CUT_PAGES : R1_PAGES; }

static uint64_t page_seed(int region, size_t page, int ver)
{
	return t_mix(((uint64_t)region << 56) ^ ((uint64_t)(unsigned)ver << 32) ^ (uint64_t)page);
}

static void fill_page(unsigned char *base, int region, size_t page, int ver)
{
	uint64_t *w = (uint64_t *)(base + page * PAGE), x = page_seed(region, page, ver) | 1;

	for (size_t i = 0; i < PAGE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

static int page_ok(const unsigned char *base, int region, size_t page, int ver, size_t *bad_word)
{
	const uint64_t *w = (const uint64_t *)(base + page * PAGE);
	uint64_t x = page_seed(region, page, ver) | 1;

	if (ver == V_ZERO) {
		for (size_t i = 0; i < PAGE / 8; i++)
			if (w[i]) {
				*bad_word = i;
				return 0;
			}
		return 1;
	}

	for (size_t i = 0; i < PAGE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (w[i] != x) {
			*bad_word = i;
			return 0;
		}
	}
	return 1;
}

/* Which pages step s writes: calls f(region, page) for every draw, in order.
 * The same function drives the writes and the recomputation. */
#define R1_DRAWS ((R1_PAGES + 99) / 100)
#define R2_DRAWS ((R2_PAGES + 99) / 100)
static void step_pages(int s, void (*f)(int region, size_t page, int s))
{
	uint64_t rs = t_mix(0xc0b0e1ull * 1000 + (uint64_t)s);

	for (size_t i = 0; i < R1_DRAWS; i++) {
		size_t p = (size_t)(t_rand(&rs) % r1_live(s));
		/* the dropped pages stay unwritten in their step: a stretch a lean snapshot leaves out */
		if (s != STEP_DROP || p < DROP_FIRST || p >= DROP_FIRST + DROP_PAGES)
			f(1, p, s);
	}
	if (s == STEP_MAP_R2)
		for (size_t p = 0; p < R2_PAGES; p++)
			f(2, p, s);
	if (s > STEP_MAP_R2) {
		uint64_t rs2 = t_mix(0x2e6102ull * 1000 + (uint64_t)s);
		for (size_t i = 0; i < R2_DRAWS; i++)
			f(2, (size_t)(t_rand(&rs2) % R2_PAGES), s);
	}
}

static void write_one(int region, size_t page, int s) { fill_page(region == 1 ? r1 : r2, region, page, s); }

static void expect_one(int region, size_t page, int s)
{
	if (region == 1)
		exp1[page] = (unsigned char)s;
	else
		exp2[page] = (unsigned char)s;
}

/* Recompute the expected versions after step s from the history, compare
 * every mapped page, return the number of distinct pages written in step s. */
static size_t verify(int s)
{
	size_t k = 0, bw = 0;

	memset(exp1, 0, sizeof(exp1));
	memset(exp2, 0, sizeof(exp2));
	for (int j = 1; j <= s; j++) {
		if (j == STEP_DROP)
			memset(exp1 + DROP_FIRST, V_ZERO, DROP_PAGES);
		step_pages(j, expect_one);
	}

	for (size_t p = 0; p < r1_live(s); p++) {
		/* not read in their step: a read would map the zero page, and a checkpoint must see them absent */
		if (s == STEP_DROP && exp1[p] == V_ZERO)
			continue;
		if (!page_ok(r1, 1, p, exp1[p], &bw))
			FAIL("after step %d: region 1 (64 MiB) page %zu word %zu differs from version %d", s, p, bw,
			     exp1[p]);
		k += exp1[p] == s;
	}
	if (s >= STEP_MAP_R2) {
		CHECK(r2 != NULL, "after step %d: region 2 not mapped", s);
		for (size_t p = 0; p < R2_PAGES; p++) {
			if (!page_ok(r2, 2, p, exp2[p], &bw))
				FAIL("after step %d: region 2 (4 MiB) page %zu word %zu differs from version %d", s, p,
				     bw, exp2[p]);
			k += exp2[p] == s;
		}
	} else {
		CHECK(r2 == NULL, "before step %d: region 2 is already mapped at %p", STEP_MAP_R2, (void *)r2);
	}
	if (s >= STEP_UNMAP) {
		/* the cut-off 1 MiB must stay unmapped (a restart must not bring it back) */
		unsigned char vec[R1_CUT_PAGES];
		errno = 0;
		int r = mincore(r1 + (R1_PAGES - R1_CUT_PAGES) * PAGE, R1_CUT_PAGES * PAGE, vec);
		CHECK(r < 0 && errno == ENOMEM, "after step %d: the unmapped last 1 MiB of region 1 is mapped again "
		      "(mincore returned %d, %s)", s, r, strerror(errno));
	}
	return k;
}

/*
 * [p, p + len) must lie in one mapping: a checkpoint must not leave the
 * program's memory map cut up (an incremental checkpoint leaves unwritten
 * stretches out of its snapshot fork and must put them back).  The region
 * may share its mapping with an equal neighbour.
 */
static void check_whole(const unsigned char *p, size_t len, int s, const char *what)
{
	static char buf[1 << 16];
	int fd = SYSCHK(open("/proc/self/maps", O_RDONLY));
	size_t n = 0;
	ssize_t r;

	while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = 0;
	for (char *l = buf; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		unsigned long a, b;
		if (sscanf(l, "%lx-%lx", &a, &b) == 2 && a <= (unsigned long)p && (unsigned long)p < b) {
			CHECK(b >= (unsigned long)p + len, "after step %d: %s (%p, %zu bytes) is cut at %lx in /proc/self/maps",
			      s, what, (const void *)p, len, b);
			return;
		}
	}
	FAIL("after step %d: %s (%p) is not in /proc/self/maps", s, what, (const void *)p);
}

int main(int argc, char **argv)
{
	struct t_ident id;
	int steps = 6, wait = 1;

	t_init("incr_pages");
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--no-wait")) {
			wait = 0;
		} else if (!strcmp(argv[i], "--thp")) {
			thp = 1;
		} else {
			char *end;
			long v = strtol(argv[i], &end, 10);
			if (*end || v < 1 || v > MAX_STEPS)
				FAIL("usage: incr_pages [STEPS (1..%d)] [--no-wait] [--thp]", MAX_STEPS);
			steps = (int)v;
		}
	}
	t_ident_init(&id);
	CHECK(sysconf(_SC_PAGESIZE) == (long)PAGE, "page size %ld, expected %lu", sysconf(_SC_PAGESIZE), PAGE);

	r1 = map_region(R1_PAGES * PAGE);
	for (size_t p = 0; p < R1_PAGES; p++)
		fill_page(r1, 1, p, 0);
	r2 = NULL;

	for (int s = 1; s <= steps; s++) {
		t_ident_check(&id);
		if (s == STEP_MAP_R2) {
			r2 = map_region(R2_PAGES * PAGE);
		}
		if (s == STEP_UNMAP)
			SYSCHK(munmap(r1 + (R1_PAGES - R1_CUT_PAGES) * PAGE, R1_CUT_PAGES * PAGE));
		if (s == STEP_DROP)
			SYSCHK(madvise(r1 + DROP_FIRST * PAGE, DROP_PAGES * PAGE, MADV_DONTNEED));
		step_pages(s, write_one);
		size_t k = verify(s);
		if (thp) {
			check_advised(r1, s, "region 1");
			if (r2)
				check_advised(r2, s, "region 2");
			report_thp(s);
		}
		printf("STEP %d pages %zu\n", s, k);
		fflush(stdout);
		if (wait)
			t_wait_go(s);
		check_whole(r1, r1_live(s) * PAGE, s, "region 1");
		if (r2)
			check_whole(r2, R2_PAGES * PAGE, s, "region 2");
	}

	t_ident_check(&id);
	verify(steps);
	uint64_t h = T_FNV_INIT;
	for (size_t p = 0; p < r1_live(steps); p++)
		h = t_fnv(h, r1 + p * PAGE, PAGE);
	if (r2)
		for (size_t p = 0; p < R2_PAGES; p++)
			h = t_fnv(h, r2 + p * PAGE, PAGE);
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
