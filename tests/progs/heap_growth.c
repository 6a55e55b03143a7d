/*
 * heap_growth: lots of malloc/free. The brk heap keeps growing every step
 * (so growth also happens after a restart), is shrunk with malloc_trim on
 * some steps, and large blocks come from mmap. Every live block's contents
 * are verified each step. The program break is checked directly as well:
 * it must not move while the program sleeps, sbrk() must still be able to
 * grow and shrink it, and /proc/self/maps must show the [heap] ending at it.
 */
#include "common.h"
#include <malloc.h>

#define STEPS 10
#define MAXB 60000

struct blk {
	unsigned char *p;
	size_t size;
	uint64_t tag;
};

static struct blk b[MAXB];
static size_t nb;
/* filler blocks that force brk growth; not part of the printed summary */
#define MAXF 4000
static struct blk fl[MAXF];
static size_t nf;
static uint64_t next_tag = 1;

static void fill(struct blk *x)
{
	uint64_t v = t_mix(x->tag);

	for (size_t i = 0; i + 8 <= x->size; i += 8) {
		memcpy(x->p + i, &v, 8);
		v = v * 6364136223846793005ull + 1442695040888963407ull;
	}
	for (size_t i = x->size & ~7ul; i < x->size; i++)
		x->p[i] = (unsigned char)(x->tag + i);
}

static int verify(const struct blk *x)
{
	uint64_t v = t_mix(x->tag), w;

	for (size_t i = 0; i + 8 <= x->size; i += 8) {
		memcpy(&w, x->p + i, 8);
		if (w != v)
			return 0;
		v = v * 6364136223846793005ull + 1442695040888963407ull;
	}
	for (size_t i = x->size & ~7ul; i < x->size; i++)
		if (x->p[i] != (unsigned char)(x->tag + i))
			return 0;
	return 1;
}

static void alloc_one(size_t size)
{
	CHECK(nb < MAXB, "too many blocks");
	struct blk *x = &b[nb++];
	x->size = size;
	x->tag = next_tag++;
	x->p = malloc(size);
	CHECK(x->p, "malloc(%zu) failed", size);
	fill(x);
}

static void free_fraction(uint64_t *rs, unsigned percent)
{
	size_t j = 0;

	for (size_t i = 0; i < nb; i++) {
		if (t_rand(rs) % 100 < percent) {
			free(b[i].p);
		} else {
			b[j++] = b[i];
		}
	}
	nb = j;
}

static uintptr_t page_up(uintptr_t x) { return (x + 4095) & ~(uintptr_t)4095; }

/*
 * The kernel's idea of the break must match the program's: the [heap]
 * mapping(s) must end exactly at the (page-rounded) break. The heap may
 * consist of several adjacent VMAs (e.g. restored part + part grown after a
 * restart) as long as they are contiguous.
 */
static void check_heap_vma(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;
	unsigned long lo = 0, hi = 0;
	uintptr_t brk_now = (uintptr_t)sbrk(0);

	CHECK(f, "maps");
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		if (strstr(line, "[heap]") && sscanf(line, "%lx-%lx", &start, &end) == 2) {
			CHECK(n == 0 || start == hi, "[heap] mappings not contiguous: gap %#lx-%#lx", hi, start);
			if (n++ == 0)
				lo = start;
			hi = end;
		}
	}
	fclose(f);
	CHECK(n > 0, "no [heap] mapping in /proc/self/maps");
	CHECK(hi == page_up(brk_now), "[heap] %#lx-%#lx (%d mappings) ends elsewhere than the program break %#lx", lo,
	      hi, n, (unsigned long)brk_now);
}

static void check_brk_works(void)
{
	const size_t X = 1 << 20;
	unsigned char *cur = sbrk(0);
	unsigned char *p = sbrk((intptr_t)X);

	CHECK(p != (void *)-1, "sbrk(+1MiB) failed: %s", strerror(errno));
	CHECK(p == cur, "sbrk returned %p, break was %p", (void *)p, (void *)cur);
	CHECK(sbrk(0) == cur + X, "break did not move");
	for (size_t i = 0; i < X; i += 512)
		p[i] = (unsigned char)(i >> 9);
	for (size_t i = 0; i < X; i += 512)
		CHECK(p[i] == (unsigned char)(i >> 9), "sbrk memory");
	CHECK(sbrk(-(intptr_t)X) != (void *)-1, "sbrk(-1MiB) failed");
	CHECK(sbrk(0) == cur, "break not restored");
}

int main(void)
{
	struct t_ident id;
	uint64_t rs = 12345;
	void *brk0, *brk_prev;
	size_t trims = 0;

	t_init("heap_growth");
	t_ident_init(&id);
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);	/* fixed: no dynamic threshold */
	mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
	brk0 = sbrk(0);
	brk_prev = brk0;

	for (int s = 0; s < STEPS; s++) {
		t_ident_check(&id);
		CHECK(sbrk(0) == brk_prev, "program break moved while sleeping: %p -> %p", brk_prev, sbrk(0));
		for (size_t i = 0; i < nb; i++)
			CHECK(verify(&b[i]), "step %d: block tag %llu size %zu corrupted", s,
			      (unsigned long long)b[i].tag, b[i].size);
		for (size_t i = 0; i < nf; i++)
			CHECK(verify(&fl[i]), "step %d: filler block %zu corrupted", s, i);

		/* grow: net growth every step */
		void *before = sbrk(0);
		for (int i = 0; i < 3000 + s * 300; i++)
			alloc_one(16 + (size_t)(t_rand(&rs) % 2048));
		for (int i = 0; i < 3; i++)
			alloc_one(200 * 1024 + (size_t)(t_rand(&rs) % (1400 * 1024)));	/* mmap'd */
		/* make sure the brk heap itself grows in every step */
		while ((uintptr_t)sbrk(0) <= (uintptr_t)before) {
			CHECK(nf < MAXF, "step %d: brk heap does not grow (program break stuck at %p)", s, sbrk(0));
			struct blk *x = &fl[nf++];
			x->size = 64 * 1024;
			x->tag = 1000000000ull + nf;
			x->p = malloc(x->size);
			CHECK(x->p, "malloc filler");
			fill(x);
		}

		if (s % 4 == 3) {
			for (size_t i = 0; i < nf; i++)
				free(fl[i].p);
			nf = 0;
			free_fraction(&rs, 70);
			void *b4 = sbrk(0);
			malloc_trim(0);
			if (sbrk(0) < b4)
				trims++;
		} else {
			free_fraction(&rs, 20);
		}
		check_brk_works();
		check_heap_vma();

		uint64_t h = T_FNV_INIT, bytes = 0;
		for (size_t i = 0; i < nb; i++) {
			h = t_fnv_u64(h, b[i].tag);
			h = t_fnv(h, b[i].p + b[i].size / 2, 1);
			bytes += b[i].size;
		}
		printf("step %d ok blocks=%zu bytes=%llu h=%llu\n", s, nb, (unsigned long long)bytes,
		       (unsigned long long)h);
		brk_prev = sbrk(0);
		t_sleep_ms(300);
	}
	for (size_t i = 0; i < nb; i++)
		CHECK(verify(&b[i]), "final: block %zu corrupted", i);
	CHECK((uintptr_t)sbrk(0) > (uintptr_t)brk0, "heap never grew");
	CHECK(trims > 0, "heap never shrank");
	uint64_t h = T_FNV_INIT;
	for (size_t i = 0; i < nb; i++) {
		h = t_fnv(h, b[i].p, b[i].size < 64 ? b[i].size : 64);
		free(b[i].p);
	}
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
