/*
 * lazy_split: one private anonymous mapping that the program splits in
 * four by mprotect (read-only, read-write, read-only, read-write) at the
 * start of each step and makes whole again at its end.  A checkpoint
 * (taken between steps) sees one region, whose pages lie one after the
 * other in the image; after a lazy restart the first step splits it
 * while its pages are still to come, so the filler meets runs of pages,
 * contiguous in memory and in the image, that cross from one mapping
 * into the next.  The kernel copies (UFFDIO_COPY) within one mapping
 * only: such a run must be copied in parts, never taken as gone.
 *
 *   lazy_split [MIB [STEPS]]   (defaults 32, 30)
 *
 * Every step then reads every page (the first after a restart faults
 * them in) and checks it against its pattern, and prints "step N ok".
 */
#include "common.h"
#include <sys/mman.h>

#define PG 4096UL

static unsigned char *base;
static unsigned long pages;

static void pattern(unsigned long p, unsigned char *out)
{
	memset(out, (int)((p * 29 + 7) & 0xff), PG);
	uint64_t tag = 0x5b117000000000ULL ^ p;
	memcpy(out, &tag, 8);
}

static void check(int step)
{
	static unsigned char want[PG];
	for (unsigned long p = 0; p < pages; p++) {
		pattern(p, want);
		if (memcmp(base + p * PG, want, PG)) {
			uint64_t got;
			memcpy(&got, base + p * PG, 8);
			fprintf(stderr, "lazy_split: step %d: page %lu of %lu is wrong (it holds tag %#llx%s)\n", step, p,
				pages, (unsigned long long)got, got ? "" : ": zeros?");
			exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	t_prog = "lazy_split";
	unsigned long mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 32;
	int steps = argc > 2 ? atoi(argv[2]) : 30;
	pages = mib * 256;
	base = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(base != MAP_FAILED, "mmap: %s", strerror(errno));
	for (unsigned long p = 0; p < pages; p++)
		pattern(p, base + p * PG);
	/* quarters: the boundaries fall inside 16-page clusters and 256 KiB chunks, off their edges */
	unsigned long q = pages / 4 + 5;
	printf("filled\n");
	fflush(stdout);
	for (int k = 0; k < steps; k++) {
		CHECK(mprotect(base, q * PG, PROT_READ) == 0, "mprotect: %s", strerror(errno));
		CHECK(mprotect(base + 2 * q * PG, q * PG, PROT_READ) == 0, "mprotect: %s", strerror(errno));
		check(k);
		CHECK(mprotect(base, pages * PG, PROT_READ | PROT_WRITE) == 0, "mprotect: %s", strerror(errno));
		printf("step %d ok\n", k);
		fflush(stdout);
		usleep(50000);
	}
	printf("RESULT ok pages=%lu steps=%d\n", pages, steps);
	return 0;
}
