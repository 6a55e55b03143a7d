/*
 * grow_inplace: regions born and grown in place without pause, for
 * checkpoints taken while it runs.  A checkpoint that changes the memory
 * map under the program (registering a region it read from
 * /proc/self/maps a moment before, which the program has grown since)
 * cuts one of its mappings in two, and the program's next mremap of it
 * fails with EFAULT, as it never does without cohort.
 *
 *   grow_inplace [CYCLES [small]]      (default 40 after the gate)
 *
 * Two threads, each in cycles: map one page where there is room, then grow
 * it by one page at a time with mremap in place (no MREMAP_MAYMOVE) up to
 * 4 MiB, writing each new page and checking every page of the region
 * every 64 pages, then unmap it.  A growth refused for want of room
 * (ENOMEM: something else was mapped above) ends the cycle early; any
 * other failure, or a page that reads wrong, ends the program with a
 * message naming the region and the lines of /proc/self/maps it spans.
 *
 * Under a test's gates (common.h) the threads cycle at the gate "churn"
 * until it opens (as many checkpoints as the test wants meet them), and
 * thread 0 maps 96 MiB anew each cycle there, unless "small"; then
 * each runs CYCLES more, whose pages make the final line, "RESULT <hash>",
 * the same in every run.  Without the gates they run CYCLES cycles only.
 */
#include "common.h"
#include <pthread.h>
#include <sys/mman.h>

#define PAGE 4096ul
#define MAX_PAGES 1024ul

static uint64_t pattern(int id, long cycle, size_t page)
{
	return t_mix(((uint64_t)id << 56) ^ ((uint64_t)cycle << 20) ^ page) | 1;
}

static void fill(unsigned char *p, int id, long cycle, size_t page)
{
	uint64_t *q = (uint64_t *)(p + page * PAGE), x = pattern(id, cycle, page);
	for (size_t i = 0; i < PAGE / 8; i++)
		q[i] = x + i;
}

static void check(const unsigned char *p, size_t npages, int id, long cycle)
{
	for (size_t pg = 0; pg < npages; pg++) {
		const uint64_t *q = (const uint64_t *)(p + pg * PAGE);
		uint64_t x = pattern(id, cycle, pg);
		for (size_t i = 0; i < PAGE / 8; i++)
			if (q[i] != x + i) {
				t_show_maps(p, npages * PAGE);
				FAIL("thread %d cycle %ld: page %zu of the region at %p word %zu is %llx, expected %llx", id,
				     cycle, pg, (const void *)p, i, (unsigned long long)q[i], (unsigned long long)(x + i));
			}
	}
}

/*
 * One cycle; its pages' hash (their number and contents) into *h.  The
 * place is where a 4 MiB mapping would go: room above it, unless the
 * other thread maps something there meanwhile (then the growth stops).
 */
static void cycle(int id, long c, uint64_t *h)
{
	unsigned char *p = MAP_FAILED;
	while (p == MAP_FAILED) {
		void *room = mmap(NULL, MAX_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(room != MAP_FAILED, "mmap: %s", strerror(errno));
		SYSCHK(munmap(room, MAX_PAGES * PAGE));
		p = mmap(room, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		/* (taken by the other thread meanwhile: look again) */
		CHECK(p != MAP_FAILED || errno == EEXIST, "mmap at %p: %s", room, strerror(errno));
	}
	fill(p, id, c, 0);
	size_t n = 1;
	while (n < MAX_PAGES) {
		void *q = mremap(p, n * PAGE, (n + 1) * PAGE, 0);
		if (q == MAP_FAILED && errno == ENOMEM)
			break;
		if (q == MAP_FAILED)
			t_show_maps(p, (n + 1) * PAGE); /* (EFAULT: the region is not one mapping) */
		CHECK(q != MAP_FAILED, "thread %d cycle %ld: mremap of the region at %p from %zu to %zu pages: %s", id,
		      c, (void *)p, n, n + 1, strerror(errno));
		CHECK(q == p, "mremap without MREMAP_MAYMOVE moved the region from %p to %p", (void *)p, q);
		fill(p, id, c, n++);
		if (n % 64 == 0)
			check(p, n, id, c);
	}
	check(p, n, id, c);
	if (h) /* its first page: how far it grew depends on the other thread */
		*h = t_fnv(*h, p, PAGE);
	SYSCHK(munmap(p, n * PAGE));
}

struct worker {
	int id;
	long cycles;
	uint64_t result;
};

/*
 * Thread 0 at the gate: a 96 MiB region mapped anew each cycle (its first
 * and last pages written, and checked before it goes), so that every
 * checkpoint meets enough new memory to register it ahead of the pause,
 * holding the threads (dirty_wp.c), while the growing goes on: the hold
 * is where the registrations must be right.
 */
#define BALLAST (96ul << 20)
static void ballast(unsigned char **b, long c, int anew)
{
	if (*b) {
		CHECK(((uint64_t *)*b)[0] == pattern(7, c - 1, 0) &&
			      ((uint64_t *)(*b + BALLAST - PAGE))[0] == pattern(7, c - 1, BALLAST / PAGE - 1),
		      "the 96 MiB region at %p lost what cycle %ld wrote", (void *)*b, c - 1);
		SYSCHK(munmap(*b, BALLAST));
		*b = NULL;
	}
	if (!anew)
		return;
	*b = mmap(NULL, BALLAST, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(*b != MAP_FAILED, "mmap of 96 MiB: %s", strerror(errno));
	((uint64_t *)*b)[0] = pattern(7, c, 0);
	((uint64_t *)(*b + BALLAST - PAGE))[0] = pattern(7, c, BALLAST / PAGE - 1);
}

static int small; /* no 96 MiB region at the gate */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned char *b = NULL;
	long g = 1; /* the cycles at the gate */
	t_gate_arrive("churn");
	for (; !t_gate_open("churn"); g++) {
		if (w->id == 0 && !small)
			ballast(&b, g, 1);
		cycle(w->id, g, NULL);
	}
	ballast(&b, g, 0); /* checked, and gone */
	uint64_t h = T_FNV_INIT;
	for (long c = 1; c <= w->cycles; c++)
		cycle(w->id, c, &h);
	w->result = h;
	return NULL;
}

int main(int argc, char **argv)
{
	static struct worker w[2];
	long cycles = argc > 1 ? strtol(argv[1], NULL, 10) : 40;
	small = argc > 2 && !strcmp(argv[2], "small");
	t_init("grow_inplace");
	CHECK(cycles > 0 && (argc < 3 || small), "usage: grow_inplace [CYCLES [small]]");
	printf("growing\n");
	fflush(stdout);
	pthread_t th[2];
	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){ .id = i, .cycles = cycles };
		CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0, "pthread_create");
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("RESULT %016llx %016llx\n", (unsigned long long)w[0].result, (unsigned long long)w[1].result);
	return 0;
}
