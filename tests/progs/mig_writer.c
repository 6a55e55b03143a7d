/*
 * mig_writer (the middle of a pipeline, for migrations with pre-copy
 * rounds): MiB of anonymous memory (argv[1], default 256), every page
 * filled with a pattern of its own version, rewritten steadily while the
 * program runs: PERMILLE per mille of the pages every 100 ms (argv[2],
 * default 10: 1 %), whether lines come or not.  Each line read from stdin
 * goes on to stdout as it came, and at the end of input every page is
 * checked against the version this process wrote last and "mem ok PAGES"
 * printed (or the first page that differs, status 1).  What it writes
 * between lines depends on time; what it prints does not.
 */
#include "common.h"
#include <poll.h>
#include <sys/mman.h>

#define PG 4096ul
#define TICK_MS 10

static unsigned char *mem;
static uint32_t *ver;
static size_t npages;

static void fill(size_t i)
{
	uint64_t *w = (uint64_t *)(mem + i * PG), seed = t_mix(((uint64_t)i << 24) ^ ver[i]);
	for (size_t k = 0; k < PG / 8; k++)
		w[k] = seed + k;
}

static int page_ok(size_t i)
{
	const uint64_t *w = (const uint64_t *)(mem + i * PG);
	uint64_t seed = t_mix(((uint64_t)i << 24) ^ ver[i]);
	for (size_t k = 0; k < PG / 8; k++)
		if (w[k] != seed + k)
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	t_prog = "mig_writer";
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	unsigned permille = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 10;
	npages = (mib << 20) / PG;
	mem = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ver = calloc(npages, sizeof(*ver));
	if (mem == MAP_FAILED || !ver)
		FAIL("cannot map %zu MiB", mib);
	for (size_t i = 0; i < npages; i++)
		fill(i);
	/* pages per tick: permille of them per 100 ms */
	size_t per_tick = npages * permille / 1000 / (100 / TICK_MS) + 1, next = 0;
	char line[4096];
	size_t have = 0;
	for (;;) {
		struct pollfd p = { 0, POLLIN, 0 };
		int r = poll(&p, 1, TICK_MS);
		if (r < 0 && errno != EINTR)
			FAIL("poll: %s", strerror(errno));
		for (size_t k = 0; k < per_tick; k++, next = (next + 7919) % npages) {
			ver[next]++;
			fill(next);
		}
		if (r <= 0)
			continue;
		ssize_t n = read(0, line + have, sizeof(line) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			FAIL("read: %s", strerror(errno));
		if (n == 0)
			break;
		have += (size_t)n;
		/* whole lines on, the rest kept for the next read */
		char *nl = memrchr(line, '\n', have);
		if (nl) {
			size_t whole = (size_t)(nl - line) + 1;
			for (size_t o = 0; o < whole;) {
				ssize_t k = write(1, line + o, whole - o);
				if (k < 0 && errno == EINTR)
					continue;
				if (k <= 0)
					FAIL("write: %s", strerror(errno));
				o += (size_t)k;
			}
			memmove(line, line + whole, have - whole);
			have -= whole;
		} else if (have == sizeof(line)) {
			FAIL("a line longer than %zu bytes", sizeof(line));
		}
	}
	for (size_t i = 0; i < npages; i++)
		if (!page_ok(i))
			FAIL("page %zu is not version %u", i, ver[i]);
	printf("mem ok %zu\n", npages);
	return 0;
}
