/*
 * bigmem: a large anonymous region (default 256 MiB, argv[1] = MiB) filled
 * with a per-page pattern, a 16 GiB MAP_NORESERVE reservation with scattered
 * touched pages, and a 1 GiB PROT_NONE reservation with a few read/write
 * windows. Every step verifies all contents (including pages that must still
 * read as zero) and then rewrites a deterministic subset.
 */
#include "common.h"
#include <sys/mman.h>

#define STEPS 10
#define PG 4096ul
#define SPARSE_SIZE (16ul << 30)
#define SPARSE_PAGES 512
#define RESV_SIZE (1ul << 30)
#define NWIN 6
#define WIN_SIZE (64ul << 10)

static size_t big_size, big_pages, big_used_pages;
static unsigned char *big;
static uint8_t *big_ver;	/* per-page version */
static unsigned char *sparse;
static size_t sparse_idx[SPARSE_PAGES];
static uint8_t sparse_ver[SPARSE_PAGES];
static unsigned char *resv;
static size_t win_off[NWIN];

static inline uint64_t page_seed(uint64_t region, uint64_t idx, uint64_t ver)
{
	return t_mix((region << 56) ^ (idx << 8) ^ ver);
}

static void fill_page(void *p, uint64_t seed)
{
	uint64_t *w = p;

	for (size_t i = 0; i < PG / 8; i++)
		w[i] = seed + i * 0x9e3779b97f4a7c15ull;
}

static int page_ok(const void *p, uint64_t seed)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < PG / 8; i++)
		if (w[i] != seed + i * 0x9e3779b97f4a7c15ull)
			return 0;
	return 1;
}

static int page_zero(const void *p)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < PG / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

static void verify(int s)
{
	for (size_t i = 0; i < big_pages; i++) {
		if (i < big_used_pages)
			CHECK(page_ok(big + i * PG, page_seed(1, i, big_ver[i])), "step %d: big page %zu corrupted", s, i);
		else
			CHECK(page_zero(big + i * PG), "step %d: untouched big page %zu not zero", s, i);
	}
	for (int k = 0; k < SPARSE_PAGES; k++)
		CHECK(page_ok(sparse + sparse_idx[k] * PG, page_seed(2, sparse_idx[k], sparse_ver[k])),
		      "step %d: sparse page %zu corrupted", s, sparse_idx[k]);
	/* some never-touched pages of the sparse region read as zero */
	for (size_t k = 0; k < 64; k++) {
		size_t idx = (size_t)(t_mix(k + 777) % (SPARSE_SIZE / PG));
		int touched = 0;
		for (int j = 0; j < SPARSE_PAGES; j++)
			touched |= sparse_idx[j] == idx;
		if (!touched)
			CHECK(page_zero(sparse + idx * PG), "step %d: untouched sparse page %zu not zero", s, idx);
	}
	for (int w = 0; w < NWIN; w++)
		for (size_t p = 0; p < WIN_SIZE / PG; p++)
			CHECK(page_ok(resv + win_off[w] + p * PG, page_seed(3, (uint64_t)w * 1000 + p, (uint64_t)s)),
			      "step %d: window %d page %zu corrupted", s, w, p);
}

static void mutate(int s)
{
	uint64_t rs = 1000 + (uint64_t)s;

	/* rewrite 1/8 of the used big pages */
	for (size_t n = 0; n < big_used_pages / 8; n++) {
		size_t i = (size_t)(t_rand(&rs) % big_used_pages);
		big_ver[i]++;
		fill_page(big + i * PG, page_seed(1, i, big_ver[i]));
	}
	for (int k = s % 4; k < SPARSE_PAGES; k += 4) {
		sparse_ver[k]++;
		fill_page(sparse + sparse_idx[k] * PG, page_seed(2, sparse_idx[k], sparse_ver[k]));
	}
	for (int w = 0; w < NWIN; w++)
		for (size_t p = 0; p < WIN_SIZE / PG; p++)
			fill_page(resv + win_off[w] + p * PG, page_seed(3, (uint64_t)w * 1000 + p, (uint64_t)s + 1));
}

static uint64_t summary(void)
{
	uint64_t h = T_FNV_INIT;

	h = t_fnv(h, big_ver, big_pages);
	h = t_fnv(h, sparse_ver, sizeof(sparse_ver));
	for (size_t i = 0; i < big_used_pages; i += 97)
		h = t_fnv(h, big + i * PG + (i % 512) * 8, 8);
	return h;
}

int main(int argc, char **argv)
{
	struct t_ident id;
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 256;

	t_init("bigmem");
	t_ident_init(&id);
	CHECK(mib >= 1 && mib <= 4096, "bad size %zu", mib);
	big_size = mib << 20;
	big_pages = big_size / PG;
	big_used_pages = big_pages - big_pages / 16;	/* last 1/16 never touched */

	big = mmap(NULL, big_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(big != MAP_FAILED, "mmap big: %s", strerror(errno));
	big_ver = calloc(big_pages, 1);
	CHECK(big_ver, "calloc");
	for (size_t i = 0; i < big_used_pages; i++)
		fill_page(big + i * PG, page_seed(1, i, 0));

	sparse = mmap(NULL, SPARSE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(sparse != MAP_FAILED, "mmap sparse: %s", strerror(errno));
	uint64_t rs = 42;
	for (int k = 0; k < SPARSE_PAGES; k++) {
		size_t idx;
		int dup;
		do {
			idx = (size_t)(t_rand(&rs) % (SPARSE_SIZE / PG));
			dup = 0;
			for (int j = 0; j < k; j++)
				dup |= sparse_idx[j] == idx;
		} while (dup);
		sparse_idx[k] = idx;
		fill_page(sparse + idx * PG, page_seed(2, idx, 0));
	}

	resv = mmap(NULL, RESV_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(resv != MAP_FAILED, "mmap resv: %s", strerror(errno));
	for (int w = 0; w < NWIN; w++) {
		win_off[w] = (size_t)(w * 157 + 3) * (1ul << 20);
		SYSCHK(mprotect(resv + win_off[w], WIN_SIZE, PROT_READ | PROT_WRITE));
		for (size_t p = 0; p < WIN_SIZE / PG; p++)
			fill_page(resv + win_off[w] + p * PG, page_seed(3, (uint64_t)w * 1000 + p, 0));
	}

	for (int s = 0; s < STEPS; s++) {
		t_ident_check(&id);
		verify(s);
		mutate(s);
		printf("step %d ok sum=%llu\n", s, (unsigned long long)summary());
		t_sleep_ms(280);
	}
	verify(STEPS);
	printf("RESULT %llu\n", (unsigned long long)summary());
	return 0;
}
