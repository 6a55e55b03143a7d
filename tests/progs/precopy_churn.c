/*
 * precopy_churn: memory that changes shape all the time, for checkpoints
 * taken while it runs (the pre-copy of a full image reads memory the
 * program is busy mapping, unmapping, dropping, moving and protecting).
 *
 *   precopy_churn [ITERATIONS]      (default 1000, one every millisecond)
 *
 * Two threads, each with 8 slots of private anonymous memory (1 to 8 MiB, growing up to 16).
 * In iteration i a thread draws one operation from its own fixed-seed PRNG:
 * map an empty slot and fill every page, unmap a slot, drop a stretch with
 * MADV_DONTNEED (zero pages, not read again until the next check of the
 * slot), make a stretch PROT_NONE (for up to 25 iterations), rewrite a few
 * pages, or grow a slot with mremap (it may move; the new tail is zero).
 * Every page's expected version is kept in the thread's own table; the
 * slot an operation touched is checked word by word right after it, all
 * slots every 50 iterations, and any difference ends the program with a
 * message.  The operations depend only on i, never on timing, so the
 * final line, "RESULT <hash of every slot's pages>", is the same in every
 * run, checkpointed and restarted or not.  Thread 0 prints "halfway" at
 * half its iterations: a test can end its checkpoints there.
 *
 * Under a test's gates (common.h) each thread, at half its iterations,
 * churns scratch slots of its own the same way (their pages checked as
 * the others) until the file "halfway" exists, then unmaps them and goes
 * on: a test takes as many checkpoints of the churn as it needs however
 * slow the machine, with half the program still to run after them, and
 * the program's own work (what a straight run does) can be small.
 */
#include "common.h"
#include <pthread.h>
#include <sys/mman.h>

#define PAGE 4096ul
#define SLOTS 8
#define MAX_PAGES 4096ul /* 16 MiB: a slot grown by mremap stays below */
#define V_ZERO 0xffffffffu

struct slot {
	unsigned char *p;
	size_t npages;
	size_t none_at, none_len; /* a PROT_NONE stretch, until the next iteration */
	uint32_t ver[MAX_PAGES];
};

/* what one operation did to a slot: on a failure, those that met the page are shown */
struct op_note {
	long it;
	int k, op;
	uintptr_t lo, hi; /* the slot after it (before it, for an unmap) */
};
#define HISTORY 4096

struct worker {
	int id;
	long iters;
	uint64_t rng;
	uint64_t result;
	struct slot s[SLOTS];
	long nhist;
	struct op_note hist[HISTORY];
};

static void note_op(struct worker *w, long it, int k, int op, const void *p, size_t npages)
{
	w->hist[w->nhist++ % HISTORY] =
		(struct op_note){ it, k, op, (uintptr_t)p, (uintptr_t)p + npages * PAGE };
}

/* the operations (of every worker) that met the page at p, oldest first, on stderr */
static struct worker *all_workers[4];
static void show_history(const void *p)
{
	static const char *names[] = { "map/fill", "unmap", "drop", "protect", "rewrite", "grow" };
	for (int n = 0; n < 4; n++) {
		struct worker *w = all_workers[n];
		for (long i = w && w->nhist > HISTORY ? w->nhist - HISTORY : 0; w && i < w->nhist; i++) {
			const struct op_note *o = &w->hist[i % HISTORY];
			if (o->lo <= (uintptr_t)p && (uintptr_t)p < o->hi)
				fprintf(stderr, "  thread %d iteration %ld: %s slot %d, %#lx-%#lx\n", w->id, o->it,
					names[o->op], o->k, (unsigned long)o->lo, (unsigned long)o->hi);
		}
	}
}

static uint64_t word0(int id, int slot, size_t page, uint32_t ver)
{
	return t_mix(((uint64_t)id << 60) ^ ((uint64_t)slot << 52) ^ ((uint64_t)page << 32) ^ ver) | 1;
}

static void fill(struct worker *w, int k, size_t page, uint32_t ver)
{
	uint64_t *q = (uint64_t *)(w->s[k].p + page * PAGE), x = word0(w->id, k, page, ver);
	for (size_t i = 0; i < PAGE / 8; i++)
		q[i] = x + i;
	w->s[k].ver[page] = ver;
}

static void check_slot(struct worker *w, int k, long it)
{
	struct slot *s = &w->s[k];
	for (size_t pg = 0; pg < s->npages; pg++) {
		const uint64_t *q = (const uint64_t *)(s->p + pg * PAGE);
		uint64_t x = s->ver[pg] == V_ZERO ? 0 : word0(w->id, k, pg, s->ver[pg]);
		for (size_t i = 0; i < PAGE / 8; i++)
			if (q[i] != (s->ver[pg] == V_ZERO ? 0 : x + i)) {
				show_history(q);
				FAIL("thread %d iteration %ld: slot %d page %zu (at %p) word %zu is %llx, expected version %u",
				     w->id, it, k, pg, (const void *)q, i, (unsigned long long)q[i], s->ver[pg]);
			}
	}
}

static void writable(struct slot *s)
{
	SYSCHK(mprotect(s->p + s->none_at * PAGE, s->none_len * PAGE, PROT_READ | PROT_WRITE));
	s->none_len = 0;
}

static size_t draw(struct worker *w, size_t n) { return n ? (size_t)(t_rand(&w->rng) % n) : 0; }

static void one_step(struct worker *w, long it)
{
	int k = (int)draw(w, SLOTS), op = (int)draw(w, 6);
	/* PROT_NONE stretches stay for a while: writable again every 25 iterations, or when their slot is next */
	for (int j = 0; j < SLOTS; j++)
		if ((j == k || it % 25 == 0) && w->s[j].none_len)
			writable(&w->s[j]);
	struct slot *s = &w->s[k];
	uint32_t ver = (uint32_t)it;
	if (!s->p)
		op = 0;
	switch (op) {
	case 0: /* map (or refill) */
		if (!s->p) {
			s->npages = 256 + draw(w, 1792);
			void *m = mmap(NULL, s->npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
			s->p = m;
		}
		for (size_t pg = 0; pg < s->npages; pg++)
			fill(w, k, pg, ver);
		break;
	case 1: /* unmap */
		note_op(w, it, k, op, s->p, s->npages);
		SYSCHK(munmap(s->p, s->npages * PAGE));
		s->p = NULL;
		s->npages = 0;
		return;
	case 2: { /* drop a stretch: zero, and not read until the next check of this slot */
		size_t at = draw(w, s->npages), n = 1 + draw(w, s->npages - at);
		SYSCHK(madvise(s->p + at * PAGE, n * PAGE, MADV_DONTNEED));
		note_op(w, it, k, op, s->p + at * PAGE, n);
		for (size_t pg = at; pg < at + n; pg++)
			s->ver[pg] = V_ZERO;
		return;
	}
	case 3: { /* a stretch unreadable until the next iteration */
		size_t at = draw(w, s->npages), n = 1 + draw(w, s->npages - at);
		SYSCHK(mprotect(s->p + at * PAGE, n * PAGE, PROT_NONE));
		note_op(w, it, k, op, s->p + at * PAGE, n);
		s->none_at = at;
		s->none_len = n;
		return;
	}
	case 4: /* rewrite a few pages */
		for (int j = 0; j < 16; j++)
			fill(w, k, draw(w, s->npages), ver);
		break;
	case 5: { /* grow; it may move, the new tail reads zero */
		size_t more = 1 + draw(w, 512);
		if (s->npages + more > MAX_PAGES)
			more = MAX_PAGES - s->npages;
		void *m = mremap(s->p, s->npages * PAGE, (s->npages + more) * PAGE, MREMAP_MAYMOVE);
		if (m == MAP_FAILED)
			t_show_maps(s->p, s->npages * PAGE); /* (EFAULT: the slot is not one mapping) */
		CHECK(m != MAP_FAILED, "mremap of slot %d at %p: %s", k, (void *)s->p, strerror(errno));
		s->p = m;
		for (size_t pg = s->npages; pg < s->npages + more; pg++)
			s->ver[pg] = V_ZERO;
		s->npages += more;
		break;
	}
	}
	note_op(w, it, k, op, s->p, s->npages);
	check_slot(w, k, it);
}

/*
 * At the gate "halfway": worker id churns scratch slots (worker 2 + id,
 * another PRNG; its pages another pattern) until it opens, then unmaps
 * them: nothing of them is in the result.
 */
static void churn_at_halfway(int id)
{
	static struct worker scratch[2];
	struct worker *w = &scratch[id];
	all_workers[2 + id] = w;
	w->id = 2 + id;
	w->rng = t_mix(0xc4u + (uint64_t)id);
	t_gate_arrive("halfway");
	for (long it = 1; !t_gate_open("halfway"); it++) {
		one_step(w, it);
		t_sleep_ms(1);
	}
	for (int k = 0; k < SLOTS; k++)
		if (w->s[k].p) {
			if (w->s[k].none_len)
				writable(&w->s[k]);
			check_slot(w, k, 0);
			SYSCHK(munmap(w->s[k].p, w->s[k].npages * PAGE));
			w->s[k].p = NULL;
		}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (long it = 1; it <= w->iters; it++) {
		one_step(w, it);
		if (it % 50 == 0)
			for (int k = 0; k < SLOTS; k++)
				if (w->s[k].p && !w->s[k].none_len)
					check_slot(w, k, it);
		t_sleep_ms(1);
		if (it == w->iters / 2) { /* the test's storm ends here (tests/cases/storm.sh) */
			if (w->id == 0) {
				printf("halfway\n");
				fflush(stdout);
			}
			churn_at_halfway(w->id);
		}
	}
	uint64_t h = T_FNV_INIT;
	for (int k = 0; k < SLOTS; k++) {
		struct slot *s = &w->s[k];
		if (s->none_len)
			writable(s);
		if (!s->p)
			continue;
		check_slot(w, k, w->iters);
		h = t_fnv_u64(h, s->npages);
		h = t_fnv(h, s->p, s->npages * PAGE);
	}
	w->result = h;
	return NULL;
}

int main(int argc, char **argv)
{
	static struct worker w[2];
	long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
	t_init("precopy_churn");
	CHECK(iters > 0, "usage: precopy_churn [ITERATIONS]");
	pthread_t th[2];
	for (int i = 0; i < 2; i++) {
		w[i].id = i;
		all_workers[i] = &w[i];
		w[i].iters = iters;
		w[i].rng = t_mix(0x5eedull + (uint64_t)i);
		CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0, "pthread_create");
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("RESULT %016llx %016llx\n", (unsigned long long)w[0].result, (unsigned long long)w[1].result);
	return 0;
}
