/*
 * dirty_lean.c - lean snapshots of an incremental image (dirty.h): the long
 * unwritten stretches of large anonymous regions are left out of the
 * snapshot's fork (MADV_DONTFORK), with write-protection (dirty_wp.c) only.
 */
#include <sys/mman.h>
#include "dirty_int.h"
#include "sys.h"

/* ---- lean snapshots ---- */

static int holds_any(const struct region *r, const uint64_t *addr, int n)
{
	for (int i = 0; i < n; i++)
		if (addr[i] >= r->start && addr[i] < r->end)
			return 1;
	return 0;
}

/*
 * Leave [start, end) out of the next fork, if it is long enough to matter;
 * without a fork (rec->lean_marked 0) it is only noted: the writer passes
 * over it all the same, run by run, without reading its page map.
 */
static void lean_span(uint64_t start, uint64_t end)
{
	if (end <= start || end - start < LEAN_MIN_SPAN || rec->nlean == MAX_LEAN)
		return;
	if (!rec->lean_marked || co_sys3(SYS_madvise, (long)start, (long)(end - start), MADV_DONTFORK) == 0)
		rec->lean[rec->nlean++] = (struct region){ start, end };
}

/*
 * A stretch left out is taken as the parent's pages where the parent's
 * image holds them (held_prev), and as no page at all elsewhere: the
 * writer passes over it without its page map (lean_pages in pages.c).
 * So a page that is there but not held must never be left out: saved
 * nowhere, it would come back as zeros.  Each stretch is therefore cut
 * around what a page-map walk finds in its parts the parent does not
 * hold (pages in memory, or swapped out); the held parts need no walk.
 * Those parts are mostly never-touched reservations, whose walk skips
 * empty page tables whole.  (A page there and not held means the held
 * list missed it, which the writer cannot tell: reading it costs little
 * where it is empty, and saves the page where it is not.)
 */
static uint64_t lean_from; /* where the stretch being cut began */

static void lean_cut(const struct page_region *r)
{
	lean_span(lean_from, r->start);
	lean_from = r->end;
}

static void lean_checked(int pm, uint64_t start, uint64_t end)
{
	const struct region *h = rec->held_prev;
	uint64_t n = rec->nheld_prev, i = first_after(h, n, start), at = start;
	lean_from = start;
	while (at < end) {
		uint64_t hs = i < n && h[i].start < end ? h[i].start : end;
		if (hs > at && (pm < 0 || scan(pm, at, hs, 0, 0, CO_PAGE_IS_PRESENT | CO_PAGE_IS_SWAPPED, lean_cut))) {
			lean_span(lean_from, at); /* not walked: not left out */
			lean_from = hs;
		}
		if (hs >= end)
			break;
		at = h[i].end < end ? h[i].end : end;
		i++;
	}
	lean_span(lean_from, end);
}

/* The next of two sorted lists' ranges (from *i and *j) that starts before end, or NULL; it is passed. */
static const struct region *next_busy(uint64_t *i, uint64_t *j, uint64_t end)
{
	const struct region *a = *i < rec->nwritten ? &rec->written[*i] : 0;
	const struct region *b = *j < rec->nnolean ? &rec->nolean[*j] : 0;
	const struct region *r = a && (!b || a->start <= b->start) ? a : b;
	if (!r || r->start >= end)
		return 0;
	*(r == a ? i : j) += 1;
	return r;
}

int lean_begin(const uint64_t *keep, int nkeep, int fork)
{
	if (!rec)
		return 0;
	rec->nlean = 0;
	rec->lean_marked = fork;
	int pm = pm_fd >= 0 ? pm_fd : co_proc_self_open("pagemap");
	for (int i = 0; i < rec->ncand && rec->nlean < MAX_LEAN; i++) {
		const struct region *c = &rec->cand[i], *b;
		if (holds_any(c, keep, nkeep))
			continue;
		uint64_t w = first_after(rec->written, rec->nwritten, c->start);
		uint64_t v = first_after(rec->nolean, rec->nnolean, c->start), at = c->start;
		/* the gaps inside c between what is written (or must be copied anyway) */
		while ((b = next_busy(&w, &v, c->end)) && rec->nlean < MAX_LEAN) {
			if (b->start > at)
				lean_checked(pm, at, b->start);
			if (b->end > at)
				at = b->end;
		}
		if (at < c->end)
			lean_checked(pm, at, c->end);
	}
	if (pm >= 0 && pm != pm_fd)
		co_close(pm);
	return rec->nlean;
}

void co_dirty_lean_end(void)
{
	if (!rec)
		return;
	for (int i = 0; i < rec->nlean && rec->lean_marked; i++)
		co_sys3(SYS_madvise, (long)rec->lean[i].start, (long)(rec->lean[i].end - rec->lean[i].start),
			MADV_DOFORK);
	rec->nlean = 0;
	rec->nnolean = 0; /* a pre-copy's: used once */
}

int co_dirty_lean_covers(uint64_t start, uint64_t end)
{
	return rec && rec->nlean && covered(rec->lean, (uint64_t)rec->nlean, start, end);
}

uint64_t co_dirty_lean_run(int stream, uint64_t addr, int *held)
{
	static struct span lean[CO_STREAMS], held_prev[CO_STREAMS];
	if (!rec || !rec->nlean || stream < 0 || stream >= CO_STREAMS ||
	    !covered_at(rec->lean, (uint64_t)rec->nlean, addr, &lean[stream]))
		return 0;
	*held = covered_at(rec->held_prev, rec->nheld_prev, addr, &held_prev[stream]);
	return lean[stream].hi < held_prev[stream].hi ? lean[stream].hi : held_prev[stream].hi;
}

int co_dirty_lean_held(int stream, uint64_t addr, int *in_lean)
{
	int held = 0;
	*in_lean = co_dirty_lean_run(stream, addr, &held) != 0;
	return *in_lean && held;
}

