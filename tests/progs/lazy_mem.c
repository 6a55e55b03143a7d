/*
 * lazy_mem: memory that a lazy restart (`cohort restart --lazy`) brings in
 * while the program already runs, and what the program does to it then.
 *
 *   lazy_mem [MIB [PROCS [STEPS]]]   (defaults 256, 1, 40)
 *
 * Each process (PROCS: the first forks the others before anything is
 * written) keeps five private anonymous regions of MIB/PROCS MiB in all,
 * each page in a pattern of its region and its place.  Every step, first
 * (right after a restart: while pages are still to come):
 *   - drops 64 pages of one region (MADV_DONTNEED): they must read zeros,
 *     never the image's page;
 *   - writes 32 pages of another again (a write fault on a missing page);
 *   - moves region 1 to a new address (mremap);
 *   - at step 3, unmaps the second half of region 4;
 *   - forks a child that checks every page of its own copy and exits;
 * then checks every page itself, and prints "step N ok" (the first
 * process; the others only say at the end whether they failed).
 */
#include "common.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096UL
#define NREG 5

static struct reg {
	unsigned char *base;
	unsigned long pages;
	unsigned char *zero;	/* page dropped: reads zeros */
} R[NREG];
static int me;			/* which process: its patterns are its own */

static void pattern(int r, unsigned long p, unsigned char *out)
{
	memset(out, (int)((r * 37 + p * 13 + (unsigned long)me * 101) & 0xff), PG);
	uint64_t tag = 0xc0ffee0000000000ULL ^ ((uint64_t)me << 48) ^ ((uint64_t)r << 40) ^ p;
	memcpy(out, &tag, 8);
	tag = ~tag;
	memcpy(out + PG - 8, &tag, 8);
}

static void fill(int r, unsigned long from, unsigned long n)
{
	for (unsigned long p = from; p < from + n; p++) {
		pattern(r, p, R[r].base + p * PG);
		R[r].zero[p] = 0;
	}
}

/* Every page as it must be: 0 when all are, else 1 with what differs on stderr. */
static int check(const char *who, int step)
{
	static unsigned char want[PG], zeros[PG];
	for (int r = 0; r < NREG; r++)
		for (unsigned long p = 0; p < R[r].pages; p++) {
			const unsigned char *w = zeros;
			if (!R[r].zero[p]) {
				pattern(r, p, want);
				w = want;
			}
			if (memcmp(R[r].base + p * PG, w, PG)) {
				/* what is there instead: zeros, or another page's pattern (its tag says whose) */
				const unsigned char *got = R[r].base + p * PG;
				uint64_t tag;
				memcpy(&tag, got, 8);
				fprintf(stderr, "lazy_mem: %s, step %d: region %d page %lu is not what it must be (%s); "
					"it holds %s (tag %016llx)\n", who, step, r, p,
					R[r].zero[p] ? "dropped: zeros" : "the pattern",
					memcmp(got, zeros, PG) ? "something else" : "zeros", (unsigned long long)tag);
				return 1;
			}
		}
	return 0;
}

static void step(int k)
{
	/* drop 64 pages of one region */
	int r = k % NREG;
	if (R[r].pages > 64) {
		unsigned long at = ((unsigned long)k * 97) % (R[r].pages - 64);
		CHECK(madvise(R[r].base + at * PG, 64 * PG, MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
		memset(R[r].zero + at, 1, 64);
	}
	/* write 32 pages of another again */
	r = (k + 2) % NREG;
	if (R[r].pages > 32)
		fill(r, ((unsigned long)k * 131) % (R[r].pages - 32), 32);
	/* move region 1 */
	size_t len = R[1].pages * PG;
	void *to = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(to != MAP_FAILED, "mmap: %s", strerror(errno));
	void *moved = mremap(R[1].base, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	CHECK(moved == to, "mremap: %s", strerror(errno));
	R[1].base = moved;
	/* unmap half of region 4, once */
	if (k == 3) {
		unsigned long half = R[4].pages / 2;
		CHECK(munmap(R[4].base + half * PG, (R[4].pages - half) * PG) == 0, "munmap: %s", strerror(errno));
		R[4].pages = half;
	}
	/* a child checks its own copy */
	pid_t c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0)
		_exit(check("a child", k) ? 3 : 0);
	int st;
	CHECK(waitpid(c, &st, 0) == c, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "step %d: the child found its memory wrong (status %#x)", k, st);
	CHECK(check("the process", k) == 0, "step %d: its memory is wrong", k);
}

int main(int argc, char **argv)
{
	t_prog = "lazy_mem";
	unsigned long mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	int procs = argc > 2 ? atoi(argv[2]) : 1, steps = argc > 3 ? atoi(argv[3]) : 40;
	pid_t kids[8];
	int nkids = 0;
	for (int i = 1; i < procs && i < 9; i++) {
		pid_t p = fork();
		CHECK(p >= 0, "fork: %s", strerror(errno));
		if (p == 0) {
			me = i;
			nkids = 0;
			break;
		}
		kids[nkids++] = p;
	}
	/* sizes: 1/2, 1/4, 1/8, 1/16, 1/16 of this process's share */
	unsigned long pages = mib * 256 / (unsigned long)procs;
	unsigned long part[NREG] = { pages / 2, pages / 4, pages / 8, pages / 16, pages / 16 };
	for (int r = 0; r < NREG; r++) {
		R[r].pages = part[r];
		R[r].base = mmap(NULL, part[r] * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		R[r].zero = calloc(part[r], 1);
		CHECK(R[r].base != MAP_FAILED && R[r].zero, "mmap: %s", strerror(errno));
		fill(r, 0, part[r]);
	}
	if (me == 0) {
		printf("filled\n");
		fflush(stdout);
	}
	for (int k = 0; k < steps; k++) {
		step(k);
		if (me == 0) {
			printf("step %d ok\n", k);
			fflush(stdout);
		}
		usleep(60000);
	}
	if (me)
		return 0;
	int bad = 0;
	for (int i = 0; i < nkids; i++) {
		int st;
		CHECK(waitpid(kids[i], &st, 0) == kids[i], "waitpid: %s", strerror(errno));
		bad += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	printf("RESULT %s procs=%d steps=%d\n", bad ? "BAD" : "ok", procs, steps);
	return bad ? 1 : 0;
}
