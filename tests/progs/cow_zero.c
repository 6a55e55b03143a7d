/*
 * cow_zero: pages that read zero in a process forked from its restored
 * parent must read zero, never the parent's data at the same place.
 *
 *   cow_zero [STEPS]     (at least 4, default 5; after step s the parent
 *                        prints "STEP s pages K" and both wait for
 *                        $COHORT_TEST_TMP/go.s, as incr_pages does)
 *
 * The parent forks the child first; then each maps a region of 16 MiB
 * (at the same address in both: the same calls after the fork) and fills
 * it with a pattern of its own.  The child, at
 *   step 2  drops pages 1000-1063 (MADV_DONTNEED) and does not read them,
 *           and drops pages 2000-2063 and reads them at once (the zero
 *           page is mapped there);
 *   step 3  reads pages 1000-1063: a read fault where an incremental
 *           checkpoint taken at step 2 found nothing maps the zero page,
 *           write-protected (unwritten since);
 *   step 4  writes pages 2010-2013 again.
 * The parent writes nothing after its fill.  An incremental checkpoint at
 * each step leaves the child's unwritten stretches to the one before; the
 * child's region is shared copy-on-write with the parent's where the zero
 * page is mapped (no process maps it alone), and a restore forks the child
 * from its restored parent, keeping the parent's pages there.  Every step
 * both check every page (the child's dropped ones zero), the child says
 * so through a pipe, and the parent prints its line.  Any mismatch:
 * stderr and exit 1.  At the end "RESULT cow_zero STEPS".
 */
#include "common.h"
#include "exact.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define NPAGES 4096UL

static unsigned char *R;
static int child;

/* What page p of the process must hold at step s: its pattern, or zeros. */
static int want(unsigned long p, int s)
{
	if (!child)
		return 0x33;
	if (s >= 2 && p >= 1000 && p < 1064)
		return 0;
	if (s >= 2 && p >= 2000 && p < 2064 && !(s >= 4 && p >= 2010 && p < 2014))
		return 0;
	return 0x77;
}

static void check(int s)
{
	for (unsigned long p = 0; p < NPAGES; p++) {
		int w = want(p, s);
		for (unsigned long b = 0; b < PG; b++)
			if (R[p * PG + b] != w)
				FAIL("%s, step %d: page %lu byte %lu holds %#x, not %#x", child ? "child" : "parent", s, p,
				     b, R[p * PG + b], w);
	}
}

static void touch(unsigned long from, unsigned long n)
{
	volatile unsigned char sum = 0;
	for (unsigned long p = from; p < from + n; p++)
		sum += R[p * PG];
	(void)sum;
}

int main(int argc, char **argv)
{
	t_prog = "cow_zero";
	int steps = argc > 1 ? atoi(argv[1]) : 5, pp[2];
	CHECK(steps >= 4, "at least 4 steps");
	CHECK(pipe(pp) == 0, "pipe: %s", strerror(errno));
	pid_t c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	child = c == 0;
	close(child ? pp[0] : pp[1]); /* the parent sees the child's end */
	R = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(R != MAP_FAILED, "mmap: %s", strerror(errno));
	memset(R, child ? 0x77 : 0x33, NPAGES * PG);
	for (int s = 1; s <= steps; s++) {
		if (child && s == 2) {
			CHECK(madvise(R + 1000 * PG, 64 * PG, MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
			CHECK(madvise(R + 2000 * PG, 64 * PG, MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
			touch(2000, 64);
		}
		if (child && s == 3)
			touch(1000, 64);
		if (child && s == 4)
			memset(R + 2010 * PG, 0x77, 4 * PG);
		/* the pages dropped at step 2 but unread are checked from step 3 on: a read maps them */
		if (s != 2 || !child)
			check(s);
		char b = 's';
		if (child) {
			CHECK(write(pp[1], &b, 1) == 1, "write: %s", strerror(errno));
		} else {
			CHECK(read(pp[0], &b, 1) == 1, "the child ended before its step %d", s);
			printf("STEP %d pages %d\n", s, s == 2 ? 128 : s == 4 ? 4 : 0);
			fflush(stdout);
		}
		t_wait_go(s);
	}
	if (child)
		return 0;
	int st;
	CHECK(waitpid(c, &st, 0) == c, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed (status %#x)", st);
	printf("RESULT cow_zero %d\n", steps);
	return 0;
}
