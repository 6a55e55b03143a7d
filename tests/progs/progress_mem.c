/*
 * progress_mem: argv[1] MiB (default 256) of memory worth writing, for the
 * progress test: it fills the memory with a per-page pattern, prints
 * "filled", waits for $COHORT_TEST_TMP/go.1 (checkpoints and restarts
 * happen meanwhile), checks every page and prints RESULT.
 */
#include "common.h"
#include <sys/mman.h>

#define PG 4096ul

static uint64_t seed(size_t page) { return t_mix(page * 0x9e3779b97f4a7c15ull + 7); }

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 256;
	t_init("progress_mem");
	CHECK(mib >= 1 && mib <= 4096, "bad size %zu", mib);
	size_t pages = (mib << 20) / PG;
	uint64_t *mem = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED, "mmap: %s", strerror(errno));
	for (size_t p = 0; p < pages; p++)
		for (size_t i = 0; i < PG / 8; i++)
			mem[p * (PG / 8) + i] = seed(p) + i;
	printf("filled %zu MiB\n", mib);
	t_wait_go(1);
	uint64_t h = T_FNV_INIT;
	for (size_t p = 0; p < pages; p++) {
		for (size_t i = 0; i < PG / 8; i++)
			CHECK(mem[p * (PG / 8) + i] == seed(p) + i, "page %zu word %zu corrupted", p, i);
		h = t_fnv_u64(h, mem[p * (PG / 8) + p % (PG / 8)]);
	}
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
