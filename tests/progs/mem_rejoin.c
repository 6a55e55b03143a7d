/*
 * mem_rejoin: mappings the program split, which must join again after a
 * restart.  A private anonymous mapping cut in parts by mprotect or
 * madvise stays one object for the kernel (one anon_vma): made alike
 * again, the parts merge back into one mapping, and one mremap can grow
 * or move the whole.  A restart that maps the parts so that they can
 * never merge leaves the program's mremap failing with EFAULT.
 *
 * Four regions of 64 pages, each split its own way while the checkpoints
 * may come:
 *   0: a PROT_NONE stretch in the middle
 *   1: a read-only stretch in the middle
 *   2: a stretch with MADV_DONTFORK, and one with MADV_NOHUGEPAGE in a
 *      region that has MADV_HUGEPAGE (where the kernel has huge pages)
 *   3: three stretches: read-only, PROT_NONE, read-only
 * Step s takes region s % 4: makes it whole again, checks that
 * /proc/self/maps shows it as one mapping, grows it by 16 pages with
 * mremap (MREMAP_MAYMOVE: it may move), checks every page (the new ones
 * read zero), writes a new version of each, and splits it again the same
 * way.  Every step checks every page of the others too, and prints
 * "step N ok"; "RESULT ..." at the end.
 */
#include "common.h"
#include "exact.h"

#define NREG 4
#define STEPS 16
#define GROW 16

static unsigned char *reg[NREG];
static size_t npg[NREG];
static uint32_t ver[NREG];
static int huge; /* region 2 has MADV_HUGEPAGE */

/* the stretches of region r: [at, at + len) pages */
static const struct { size_t at, len; } cut[NREG][2] = {
	{ { 20, 10 }, { 0, 0 } },
	{ { 8, 30 }, { 0, 0 } },
	{ { 32, 16 }, { 52, 8 } },
	{ { 4, 6 }, { 40, 12 } },
};

static void split(int r, int undo)
{
	for (int k = 0; k < 2 && cut[r][k].len; k++) {
		unsigned char *p = reg[r] + cut[r][k].at * PG;
		size_t len = cut[r][k].len * PG;
		if (r == 2 && k == 0)
			SYSCHK(madvise(p, len, undo ? MADV_DOFORK : MADV_DONTFORK));
		else if (r == 2)
			(void)(huge && madvise(p, len, undo ? MADV_HUGEPAGE : MADV_NOHUGEPAGE));
		else if (undo)
			SYSCHK(mprotect(p, len, PROT_READ | PROT_WRITE));
		else
			SYSCHK(mprotect(p, len, r == 0 || (r == 3 && k == 1) ? PROT_NONE : PROT_READ));
	}
}

/* pages [from, to) of region r hold version v (0: zeros) */
static void check_pages(int r, size_t from, size_t to, uint32_t v, int step)
{
	static const unsigned char zero[PG];
	for (size_t p = from; p < to; p++) {
		const unsigned char *a = reg[r] + p * PG;
		long d = v ? x_diff(a, x_seed((uint64_t)r, p, v)) : (memcmp(a, zero, PG) ? 0 : -1);
		CHECK(d < 0, "step %d: region %d page %zu differs from version %u at byte %ld", step, r, p, v, d);
	}
}

static void fill(int r, uint32_t v)
{
	for (size_t p = 0; p < npg[r]; p++)
		x_fill(reg[r] + p * PG, x_seed((uint64_t)r, p, v));
	ver[r] = v;
}

static void rejoin_and_grow(int r, int step)
{
	struct x_map m;
	split(r, 1);
	CHECK(x_maps_find(reg[r], &m), "step %d: region %d is not mapped", step, r);
	/* (its neighbours, mapped alike, may be part of the same mapping) */
	CHECK(m.start <= (unsigned long)reg[r] && m.end >= (unsigned long)(reg[r] + npg[r] * PG),
	      "step %d: region %d (%p, %zu pages) made whole again is not one mapping: %lx-%lx", step, r,
	      (void *)reg[r], npg[r], m.start, m.end);
	void *n = mremap(reg[r], npg[r] * PG, (npg[r] + GROW) * PG, MREMAP_MAYMOVE);
	CHECK(n != MAP_FAILED, "step %d: mremap of region %d (%zu pages): %s", step, r, npg[r], strerror(errno));
	reg[r] = n;
	check_pages(r, 0, npg[r], ver[r], step);
	check_pages(r, npg[r], npg[r] + GROW, 0, step);
	npg[r] += GROW;
	fill(r, ver[r] + 1);
	split(r, 0);
}

int main(void)
{
	t_init("mem_rejoin");
	for (int r = 0; r < NREG; r++) {
		npg[r] = 64;
		reg[r] = mmap(NULL, npg[r] * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(reg[r] != MAP_FAILED, "mmap: %s", strerror(errno));
		if (r == 2)
			huge = madvise(reg[r], npg[r] * PG, MADV_HUGEPAGE) == 0;
		fill(r, 1);
		split(r, 0);
	}
	for (int s = 0; s < STEPS; s++) {
		rejoin_and_grow(s % NREG, s);
		for (int r = 0; r < NREG; r++) {
			if (r == 0 || r == 3) { /* (the PROT_NONE stretches cannot be read: checked when whole) */
				split(r, 1);
				check_pages(r, 0, npg[r], ver[r], s);
				split(r, 0);
			} else {
				check_pages(r, 0, npg[r], ver[r], s);
			}
		}
		x_step(s, 100);
	}
	uint64_t h = 0;
	for (int r = 0; r < NREG; r++)
		h = t_mix(h ^ npg[r] ^ ((uint64_t)ver[r] << 32));
	printf("RESULT mem_rejoin %016llx\n", (unsigned long long)h);
	return 0;
}
