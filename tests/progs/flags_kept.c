/*
 * flags_kept: a region's madvise flags must come back as they are at the
 * checkpoint, also when a checkpoint takes them from the pause before
 * (src/res/mem.c, known_flags) and a call no wrapper of the agent sees
 * mapped the region anew at the same place since.
 *
 *   flags_kept [STEPS]      (default 8; after step s it prints
 *                           "STEP s pages K" and waits for
 *                           $COHORT_TEST_TMP/go.s, as incr_pages does)
 *
 * Regions of 16 pages (D: 4), each with a hole on both sides so that no
 * two merge, their flags set through the C library (the agent's wrappers):
 *   A  read-write, MADV_DONTFORK; at step 2 unmapped and mapped again at
 *      the same place by raw system calls (no wrapper sees them): no flag;
 *   B  PROT_NONE, MADV_DONTDUMP; at step 3 mapped again by raw calls
 *      (PROT_NONE, no flag);
 *   C  read-write, MADV_WIPEONFORK; at step 4 replaced by a raw MAP_FIXED
 *      mapping over it: no flag;
 *   D  read-write, mlock'ed (lo); at step 5 munlock'ed (the C library's);
 *   E  read-write, MADV_DONTDUMP throughout;
 *   F  read-write, MADV_RANDOM (rr); at step 6 posix_madvise
 *      POSIX_MADV_NORMAL (which the C library does by a system call of its
 *      own);
 *   G  read-write, posix_madvise POSIX_MADV_SEQUENTIAL (sr); at step 7
 *      madvise MADV_NORMAL.
 * (With 8 steps, nothing but that call changes between two checkpoints
 * taken after steps 5, 6 and 7.)
 * Every step writes one page of each read-write region (its version: the
 * step), then checks every page of every region and the VmFlags of each
 * (dc, dd, wf, lo, rr, sr where they belong at that step and nowhere else).  Any
 * mismatch: stderr and exit 1.  At the end "RESULT flags_kept STEPS HASH".
 */
#include "common.h"
#include "exact.h"

#define NPG 16
#define DPG 4
#define SLOT (64 * PG)

enum { RA, RB, RC, RD, RE, RF, RG, NREG };
static const char *names[NREG] = { "A", "B", "C", "D", "E", "F", "G" };
static unsigned char *reg[NREG];
static int npages[NREG] = { NPG, NPG, NPG, DPG, NPG, NPG, NPG };
static int ver[NREG][NPG]; /* the step that wrote each page last (0: never) */

/* A system call no wrapper of the agent's sees (the C library's own are such). */
static long raw6(long n, long a, long b, long c, long d, long e, long f)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(r) : "0"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}

static void raw_map(unsigned char *at, int pages, int prot, int unmap_first)
{
	if (unmap_first)
		CHECK(raw6(SYS_munmap, (long)at, pages * (long)PG, 0, 0, 0, 0) == 0, "raw munmap of %p failed", at);
	long r = raw6(SYS_mmap, (long)at, pages * (long)PG, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(r == (long)at, "raw mmap at %p: %ld", at, r);
}

/* Does region i have VmFlags code at step s? */
static int want_flag(int i, const char *code, int s)
{
	switch (i) {
	case RA: return !strcmp(code, "dc") && s < 2;
	case RB: return !strcmp(code, "dd") && s < 3;
	case RC: return !strcmp(code, "wf") && s < 4;
	case RD: return !strcmp(code, "lo") && s < 5;
	case RE: return !strcmp(code, "dd");
	case RF: return !strcmp(code, "rr") && s < 6;
	case RG: return !strcmp(code, "sr") && s < 7;
	}
	return 0;
}

static void check(int s)
{
	static const char *codes[] = { "dc", "dd", "wf", "lo", "rr", "sr" };
	for (int i = 0; i < NREG; i++) {
		for (int c = 0; c < 6; c++) {
			int has = x_vmflag(reg[i], codes[c]), want = want_flag(i, codes[c], s);
			CHECK(has == want, "step %d: region %s %s VmFlag %s", s, names[i], has ? "has" : "lacks",
			      codes[c]);
		}
		if (i == RB)
			continue;
		for (int p = 0; p < npages[i]; p++) {
			long d = x_diff(reg[i] + p * PG, x_seed((uint64_t)i, (uint64_t)p, (uint64_t)ver[i][p]));
			CHECK(d < 0, "step %d: region %s page %d (version %d) differs at byte %ld", s, names[i], p,
			      ver[i][p], d);
		}
	}
	struct x_map m;
	CHECK(x_maps_find(reg[RB], &m) && strcmp(m.perms, "---p") == 0, "step %d: region B is not PROT_NONE", s);
}

static void write_page(int i, int p, int v)
{
	ver[i][p] = v;
	x_fill(reg[i] + p * PG, x_seed((uint64_t)i, (uint64_t)p, (uint64_t)v));
}

int main(int argc, char **argv)
{
	int steps = argc > 1 ? atoi(argv[1]) : 8;
	t_init("flags_kept");
	unsigned char *base = mmap(NULL, (NREG + 1) * SLOT, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(base != MAP_FAILED, "mmap: %s", strerror(errno));
	SYSCHK(munmap(base, (NREG + 1) * SLOT));
	for (int i = 0; i < NREG; i++) {
		reg[i] = base + (size_t)i * SLOT + 24 * PG;
		int prot = i == RB ? PROT_NONE : PROT_READ | PROT_WRITE;
		void *m = mmap(reg[i], npages[i] * PG, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		CHECK(m == reg[i], "mmap of %s: %s", names[i], strerror(errno));
		for (int p = 0; i != RB && p < npages[i]; p++)
			write_page(i, p, 0);
	}
	SYSCHK(madvise(reg[RA], NPG * PG, MADV_DONTFORK));
	SYSCHK(madvise(reg[RB], NPG * PG, MADV_DONTDUMP));
	SYSCHK(madvise(reg[RC], NPG * PG, MADV_WIPEONFORK));
	SYSCHK(mlock(reg[RD], DPG * PG));
	SYSCHK(madvise(reg[RE], NPG * PG, MADV_DONTDUMP));
	SYSCHK(madvise(reg[RF], NPG * PG, MADV_RANDOM));
	CHECK(posix_madvise(reg[RG], NPG * PG, POSIX_MADV_SEQUENTIAL) == 0, "posix_madvise failed");
	check(0);
	uint64_t h = T_FNV_INIT;
	for (int s = 1; s <= steps; s++) {
		int k = 0;
		if (s == 2) {
			raw_map(reg[RA], NPG, PROT_READ | PROT_WRITE, 1);
			for (int p = 0; p < NPG; p++, k++)
				write_page(RA, p, s);
		} else if (s == 3) {
			raw_map(reg[RB], NPG, PROT_NONE, 1);
		} else if (s == 4) {
			raw_map(reg[RC], NPG, PROT_READ | PROT_WRITE, 0);
			for (int p = 0; p < NPG; p++, k++)
				write_page(RC, p, s);
		} else if (s == 5) {
			SYSCHK(munlock(reg[RD], DPG * PG));
		} else if (s == 6) {
			CHECK(posix_madvise(reg[RF], NPG * PG, POSIX_MADV_NORMAL) == 0, "posix_madvise failed");
		} else if (s == 7) {
			SYSCHK(madvise(reg[RG], NPG * PG, MADV_NORMAL));
		}
		for (int i = 0; i < NREG; i++) {
			if (i == RB)
				continue;
			write_page(i, s % npages[i], s);
			k++;
		}
		check(s);
		for (int i = 0; i < NREG; i++)
			for (int p = 0; p < npages[i]; p++)
				h = t_fnv_u64(h, (uint64_t)ver[i][p]);
		printf("STEP %d pages %d\n", s, k);
		fflush(stdout);
		t_wait_go(s);
	}
	printf("RESULT flags_kept %d %016llx\n", steps, (unsigned long long)h);
	return 0;
}
