/*
 * mem_many: more regions than a small table holds.  One reservation of
 * 2 * NREG pages, every other page made read-only: NREG + NREG regions
 * (more than 8192), each page with its own content.  Every step checks
 * the count of regions, each page and the protections of a sample, and
 * writes new content into some of the writable pages.
 */
#include "common.h"
#include "exact.h"

#define STEPS 14
#define NREG 5000

static unsigned char *area;
static uint16_t ver[2 * NREG];

static void check_all(int step, long base)
{
	long n = x_maps_count();
	CHECK(n >= base + 2 * NREG - 1, "step %d: %ld regions in /proc/self/maps, expected at least %ld", step, n,
	      base + 2 * NREG - 1);
	for (int p = 0; p < 2 * NREG; p++) {
		long d = x_diff(area + (size_t)p * PG, x_seed(1, (uint64_t)p, ver[p]));
		CHECK(d < 0, "step %d: page %d differs at byte %ld", step, p, d);
	}
	for (int p = 0; p < 2 * NREG; p += 997) {
		struct x_map m;
		CHECK(x_maps_find(area + (size_t)p * PG, &m), "step %d: page %d is not mapped", step, p);
		CHECK(strcmp(m.perms, p % 2 ? "r--p" : "rw-p") == 0 && m.end - m.start == PG,
		      "step %d: page %d is in %lx-%lx %s", step, p, m.start, m.end, m.perms);
	}
}

int main(void)
{
	t_init("mem_many");
	long base = x_maps_count();
	area = mmap(NULL, 2 * NREG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED, "mmap: %s", strerror(errno));
	for (int p = 0; p < 2 * NREG; p++)
		x_fill(area + (size_t)p * PG, x_seed(1, (uint64_t)p, 0));
	for (int p = 1; p < 2 * NREG; p += 2)
		SYSCHK(mprotect(area + (size_t)p * PG, PG, PROT_READ));
	for (int s = 0; s < STEPS; s++) {
		check_all(s, base);
		for (int p = s * 2; p < 2 * NREG; p += 64) {
			ver[p] = (uint16_t)(s + 1);
			x_fill(area + (size_t)p * PG, x_seed(1, (uint64_t)p, ver[p]));
		}
		x_step(s, 100);
	}
	check_all(STEPS, base);
	printf("RESULT mem_many ok\n");
	return 0;
}
