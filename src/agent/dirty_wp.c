/*
 * dirty_wp.c - which pages a process wrote since its last checkpoint, by
 * userfaultfd write-protection in asynchronous mode (Linux 6.7+).
 *
 * Every tracked region is registered with a userfaultfd in WP mode and
 * write-protected; a write to a protected page is resolved inside the
 * kernel, which just clears the page's protection bit: no message, no
 * signal, no visible fault, and /proc/PID/maps shows the protections the
 * program set.  At the next checkpoint one PAGEMAP_SCAN ioctl per region
 * reports the pages whose bit is clear (PAGE_IS_WRITTEN) and protects them
 * again (PM_SCAN_WP_MATCHING), atomically.  A page faulted in later is
 * reported as written too, which is what an image needs.
 *
 * A region counts as tracked when it lies inside a region tracked at the
 * previous collection and is still registered (see was_tracked); anything
 * mapped or moved since is new and all its pages count as written.  The
 * whole record lives in one private mapping that images skip; after a fork
 * or a restart it is dropped and the next image of that process is a full
 * one.
 *
 * All of this runs in the manager thread: the collection of an image
 * with the other threads parked; prepare and a pre-copy's arming while
 * they run, where nothing may change the memory map under them (prepare
 * holds them a moment for its registrations).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include "agent.h"
#include "dirty_int.h"
#include "sys.h"

struct record *rec;
struct held_area *held;
int uffd = -1;
int pm_fd = -1, maps_fd = -1;
int smaps_fd = -1;
static struct co_maps maps;
static struct co_mapent ent;

static int contains(const char *s, const char *w)
{
	size_t n = co_strlen(w);
	for (; *s; s++)
		if (!co_memcmp(s, w, n))
			return 1;
	return 0;
}

/*
 * Private anonymous memory, readable, large: a lean snapshot may leave its
 * unwritten stretches out of the fork.  Nothing the image writer touches
 * itself lives in such a region except the manager's stack, which the
 * caller excludes by address.
 */
static int lean_kind(const struct co_mapent *e)
{
	const char *p = e->path;
	return !e->shared && (e->prot & PROT_READ) && e->end - e->start >= LEAN_MIN_REGION &&
	       (!p[0] || co_strcmp(p, "[heap]") == 0 || co_startswith(p, "[anon:"));
}

/* Does a range of list (sorted, disjoint) meet [start, end)? */
static int meets(const struct region *list, uint64_t n, uint64_t start, uint64_t end)
{
	uint64_t i = first_after(list, n, start);
	return i < n && list[i].start < end;
}

/* Is [start, end) still registered for write-protection?  One page is enough to ask. */
static int wp_registered(int pm, uint64_t start, uint64_t end)
{
	struct page_region r;
	struct pm_scan_arg a = { .size = sizeof(a), .start = start, .end = end, .vec = (uint64_t)&r, .vec_len = 1,
				 .max_pages = 1, .category_mask = CO_PAGE_IS_WPALLOWED,
				 .return_mask = CO_PAGE_IS_WPALLOWED };
	return co_sys3(SYS_ioctl, pm, CO_PAGEMAP_SCAN, (long)&a) == 1;
}

/*
 * Were the writes to [start, end) tracked since the previous collection?
 * It must lie inside a region tracked then, and still be registered: a
 * part of a region that was unmapped, re-protected or cut keeps its
 * registration, while anything mapped or moved (mremap drops it) since,
 * even at a place that was tracked before, does not.
 */
static int was_tracked(int pm, uint64_t start, uint64_t end)
{
	return covered(rec->prev, (uint64_t)rec->nprev, start, end) && wp_registered(pm, start, end);
}

/*
 * One PAGEMAP_SCAN walk over [start, end) for the pages with all the
 * categories of `all` and any of `any` (PAGE_IS_*): each range found goes
 * to fn with those of its categories (fn NULL: none), and with
 * PM_SCAN_WP_MATCHING in flags the pages found are protected again in the
 * same walk.  -1 when the walk fails.
 */
int scan(int pm, uint64_t start, uint64_t end, uint64_t flags, uint64_t all, uint64_t any,
	 void (*fn)(const struct page_region *))
{
	static struct page_region out[512];
	for (uint64_t at = start; at < end;) {
		struct pm_scan_arg a = { .size = sizeof(a), .flags = flags, .start = at, .end = end,
					 .vec = (uint64_t)out, .vec_len = CO_ARRAY_LEN(out), .category_mask = all,
					 .category_anyof_mask = any, .return_mask = all | any };
		long got = co_sys3(SYS_ioctl, pm, CO_PAGEMAP_SCAN, (long)&a);
		if (got < 0)
			return -1;
		for (long i = 0; i < got && fn; i++)
			fn(&out[i]);
		if (a.walk_end <= at)
			return -1;
		at = a.walk_end;
	}
	return 0;
}

static void note_written(const struct page_region *r)
{
	if (list_add(rec->written, &rec->nwritten, MAX_WRITTEN, r->start, r->end))
		rec->overflow = 1;
}

/*
 * PAGEMAP_SCAN [start, end): append the written pages to rec->written
 * (note), protecting them again in the same walk.  Without note the walk
 * only protects again: the region counts as written whole anyway.
 */
static int scan_written(int pm, uint64_t start, uint64_t end, int note)
{
	return scan(pm, start, end, CO_PM_SCAN_WP_MATCHING, CO_PAGE_IS_WRITTEN, 0, note ? note_written : 0);
}

/*
 * Register [start, end) for write-protection.  This changes the memory
 * map (a region registered differently from its neighbour is a mapping of
 * its own), so it is done only where no thread of the program runs: in
 * the pause, or in prepare's hold.  A range read from /proc/self/maps a
 * moment before, while the program ran, may no longer be one mapping: a
 * region grown by mremap since would be cut in two, and the program's
 * next mremap of it fail (EFAULT).
 */
static int register_wp(uint64_t start, uint64_t end)
{
	struct uffd_register r = { { start, end - start }, CO_UFFDIO_REGISTER_MODE_WP, 0 };
	return co_sys3(SYS_ioctl, uffd, CO_UFFDIO_REGISTER, (long)&r) < 0 ? -1 : 0;
}

/* Write-protect [start, end), registered: the page tables only, the memory map stays as it is. */
static int protect(uint64_t start, uint64_t end)
{
	struct uffd_wp w = { { start, end - start }, CO_UFFDIO_WRITEPROTECT_MODE_WP };
	return co_sys3(SYS_ioctl, uffd, CO_UFFDIO_WRITEPROTECT, (long)&w) < 0 ? -1 : 0;
}

/* Register [start, end) for write-protection and protect all of it (in the pause). */
static int protect_new(uint64_t start, uint64_t end)
{
	return register_wp(start, end) == 0 ? protect(start, end) : -1;
}

/*
 * The record (between two inaccessible guard pages, so that it stays a
 * region of its own: merged with a neighbour of the program's it would be
 * tracked and saved with it), the userfaultfd and the shared list of held
 * pages.  0 when all three are there.
 */
static int tracking_init(void)
{
	if (!rec) {
		long p = co_mmap(0, REC_SIZE + 2 * CO_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p < 0 && p > -4096)
			return -1;
		if (co_mprotect((void *)(p + CO_PAGE), REC_SIZE, PROT_READ | PROT_WRITE) < 0) {
			co_munmap((void *)p, REC_SIZE + 2 * CO_PAGE);
			return -1;
		}
		rec = (struct record *)(p + CO_PAGE);
	}
	if (uffd < 0 && (uffd = co_dirty_uffd_open()) < 0)
		return -1;
	if (!held && map_shared("cohort-agent-held", HELD_SIZE, (void **)&held))
		return -1;
	return 0;
}

/*
 * Everything the tracking needs before the pause is made here, by the
 * manager thread at the start of a checkpoint, in a descriptor table of
 * its own: nothing it opens takes a number in the program's table (a
 * descriptor created there while the program runs would take the lowest
 * free number for a moment: a program thread doing close(0) then
 * dup2(f, 0) around it would have its new fd 0 closed by us, seen with
 * dash's `cmd <file`).  The userfaultfd comes back from the coordinator,
 * which holds it between checkpoints (co_dirty_adopt_uffd); it is made
 * here only the first time.
 */
static void setup(void)
{
	if (tracking_init())
		return;
	if (pm_fd < 0)
		pm_fd = co_fd_high(co_proc_self_open("pagemap"));
	if (maps_fd < 0)
		maps_fd = co_fd_high((int)co_open("/proc/self/maps", O_RDONLY | O_CLOEXEC, 0));
	/* huge pages to be had: smaps says where, and their regions need the page hashes ("Huge pages") */
	char thp[128];
	if (smaps_fd < 0 && thp_class_mode() != THP_WP &&
	    co_read_small("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof(thp)) > 0 &&
	    !contains(thp, "[never]")) {
		if (hash_map() == 0)
			smaps_fd = co_fd_high((int)co_open("/proc/self/smaps", O_RDONLY | O_CLOEXEC, 0));
	}
}

/* /proc/self/pagemap (returned) and `maps` reading /proc/self/maps from its start. */
static int walk_open(void)
{
	if (pm_fd >= 0 && maps_fd >= 0)
		return co_maps_reread(&maps, maps_fd) < 0 ? -1 : pm_fd;
	/* not set up: only in the pause, where no thread of the program runs */
	int pm = co_proc_self_open("pagemap");
	if (pm >= 0 && co_maps_open(&maps, "/proc/self/maps")) {
		co_close(pm);
		return -1;
	}
	return pm;
}

static void walk_close(int pm)
{
	co_maps_close(&maps);
	if (pm != pm_fd)
		co_close(pm);
}

/* Not the record itself, with its guard pages. */
static int not_ours(const struct co_mapent *e)
{
	uint64_t self_lo = (uint64_t)rec - CO_PAGE, self_hi = (uint64_t)rec + REC_SIZE + CO_PAGE;
	return !(e->start >= self_lo && e->end <= self_hi);
}

/* A region of the program's whose writes are tracked. */
int tracked_kind(const struct co_mapent *e)
{
	return co_dirty_trackable(e) && not_ours(e);
}

/* Append e to list (n entries, in address order) if there is room. */
static void note_region(struct region *list, int *n, const struct co_mapent *e)
{
	if (*n < MAX_REGIONS)
		list[(*n)++] = (struct region){ e->start, e->end };
}

/*
 * Where a collection or prepare runs: in prepare's hold (no thread of the
 * program runs, and no collection follows), in the pause, or in a
 * pre-copy's arming, while the program runs (where nothing is registered).
 */
enum when { IN_HOLD, IN_PAUSE, RUNNING };

/*
 * A PROT_NONE region of the program's is registered with the userfaultfd
 * but not write-protected (no markers).  Registered it must be: the
 * kernel merges neighbouring regions only when their registration is
 * the same, and a program that makes a stretch of a tracked region
 * PROT_NONE and then accessible again expects one region back (mremap
 * of it fails across two: tests/progs/precopy_churn.c), as it gets
 * without the agent.  Returns 1 when e is such a region.  A collection
 * (IN_PAUSE, RUNNING) notes whether the region is the mapping it was at
 * the previous one (rec->kept): registered then (none_prev), and before
 * this call, and not in prepare's hold just before (none_pre: what the
 * hold registered).
 */
static int register_only(int pm, const struct co_mapent *e, enum when when)
{
	if (e->prot || !co_dirty_private_kind(e) || !not_ours(e))
		return 0;
	int was = wp_registered(pm, e->start, e->end);
	if (!was && when != RUNNING && register_wp(e->start, e->end) == 0 && when == IN_HOLD)
		note_region(rec->none_pre, &rec->nnone_pre, e);
	if (when != IN_HOLD) {
		if (was && rec->gen && covered(rec->none_prev, (uint64_t)rec->nnone_prev, e->start, e->end) &&
		    !covered(rec->none_pre, (uint64_t)rec->nnone_pre, e->start, e->end))
			note_region(rec->kept, &rec->nkept, e);
		note_region(rec->none_cur, &rec->nnone_cur, e);
	}
	return 1;
}

/*
 * The bytes of e that prepare would register and protect (not tracked
 * since the last collection), asked with the program running.  PROT_NONE
 * regions (never tracked_kind) and those of kept huge pages cost the
 * pause nothing (their registration changes no page table): left to it.
 */
static uint64_t to_protect(int pm, const struct co_mapent *e)
{
	if (!tracked_kind(e) || thp_region(e->start, e->end))
		return 0;
	return rec->gen && was_tracked(pm, e->start, e->end) ? 0 : e->end - e->start;
}

/*
 * Protecting less than this in the pause costs it less than holding the
 * threads for it beforehand (a hold takes about as long as parking them
 * for the pause: from a fraction of a millisecond to several on a busy
 * machine).
 */
#define HOLD_MIN (64ULL << 20)

/*
 * Before a checkpoint quiesces the program: register and write-protect
 * every region that is not tracked yet.  Protecting a large region walks
 * all its page tables (about 25 ms per GiB here); done in the pause, as
 * the first checkpoint of a process used to, it lengthens the pause by as
 * much.  Registering a region with the userfaultfd changes the memory map
 * (a region registered differently from its neighbour is a mapping of its
 * own), and a range read from /proc/self/maps while the program runs may
 * be stale by then: a region the program grew in place meanwhile was cut
 * in two, and its next mremap failed with EFAULT.  So the registrations
 * are made in a hold of the program's threads (co_hold_threads), and the
 * protection, which changes only page tables, with the program running
 * again; with less than HOLD_MIN of new memory, not worth a hold, the
 * pause does both, unless a pre-copy is armed next (arming): it reads
 * only what is tracked by then.  The regions registered here (rec->pre)
 * are new at the pause: saved whole, and so is any region that meets one
 * then (the program may have grown a tracked region into the place of
 * one it unmapped, whose pages the protection then hid).  Pages written
 * between now and the pause are protected again in the pause by a walk
 * over the written ones only.
 */
static void prepare(int arming)
{
	/*
	 * Nothing is created here: co_dirty_setup opens these only once the
	 * tracking is set up (uffd-wp, record, held lists).  Without them the
	 * pause does this work.
	 */
	if (pm_fd < 0 || maps_fd < 0)
		return;
	int pm = walk_open();
	uint64_t need = 0;
	if (pm < 0)
		return;
	classify(pm);
	rec->npre = 0;
	rec->nnone_pre = 0;
	while (need < HOLD_MIN && co_maps_next(&maps, &ent) == 1)
		need += to_protect(pm, &ent);
	walk_close(pm);
	if (!need || (need < HOLD_MIN && !arming))
		return;
	/* a hold not had (a thread that would not stop within 2 s): the pause does it all */
	static char why[256];
	struct co_timespec t0, t1;
	co_clock_gettime(CLOCK_MONOTONIC, &t0);
	if (co_hold_threads(why, sizeof(why)) < 0 || (pm = walk_open()) < 0) {
		co_release_threads();
		return;
	}
	while (co_maps_next(&maps, &ent) == 1 && rec->npre < MAX_REGIONS) {
		if (register_only(pm, &ent, IN_HOLD) || !tracked_kind(&ent))
			continue;
		if (thp_region(ent.start, ent.end)) {
			/* its huge pages are kept: not write-protected (what protection it had goes now) */
			if (wp_registered(pm, ent.start, ent.end))
				unprotect(ent.start, ent.end);
			continue;
		}
		if (rec->gen && was_tracked(pm, ent.start, ent.end))
			continue;
		if (register_wp(ent.start, ent.end) == 0)
			rec->pre[rec->npre++] = (struct region){ ent.start, ent.end };
	}
	walk_close(pm);
	co_release_threads();
	co_clock_gettime(CLOCK_MONOTONIC, &t1);
	co_agent.prep_hold_ns = (t1.sec - t0.sec) * 1000000000LL + (t1.nsec - t0.nsec);
	/* one that fails (unmapped since) is protected by the pause, which saves all of it anyway */
	for (int i = 0; i < rec->npre; i++)
		protect(rec->pre[i].start, rec->pre[i].end);
}

/* A collection; final: the one of the pause (a pre-copy's arming is not). */
static uint64_t collect(uint64_t gen, int final)
{
	if (tracking_init())
		return 0;
	int pm = walk_open();
	if (pm < 0)
		return 0;
	rec->ncur = 0;
	rec->nold = 0;
	rec->ncand = 0;
	rec->nlean = 0;
	rec->nwritten = 0;
	rec->overflow = 0;
	/* what the last image holds: valid only if that image was finished */
	rec->nheld_prev = 0;
	if (held->complete == rec->gen && rec->gen) {
		for (int k = 0; k < CO_STREAMS; k++) {
			uint64_t n = held->n[k];
			if (n > MAX_HELD || rec->nheld_prev + n > MAX_WRITTEN) {
				rec->overflow = 1;
				break;
			}
			co_memcpy(&rec->held_prev[rec->nheld_prev], held->r[k], n * sizeof(struct region));
			rec->nheld_prev += n;
		}
	} else {
		rec->overflow = 1;
	}
	held->complete = 0;
	for (int k = 0; k < CO_STREAMS; k++)
		held->n[k] = 0;
	rec->nthp = 0;
	rec->nkept = 0;
	rec->nnone_cur = 0;
	enum when when = final ? IN_PAUSE : RUNNING;
	while (co_maps_next(&maps, &ent) == 1) {
		if (register_only(pm, &ent, when) || !tracked_kind(&ent))
			continue;
		if (thp_region(ent.start, ent.end)) {
			/* huge pages kept: compared by hashes in the image writer (unregistered in a pause) */
			if (final && wp_registered(pm, ent.start, ent.end))
				unprotect(ent.start, ent.end);
			if (rec->nthp < MAX_REGIONS) {
				rec->thp[rec->nthp++] = (struct region){ ent.start, ent.end };
				continue;
			}
			/* no room: write-protected after all */
		}
		if (rec->ncur == MAX_REGIONS) {
			rec->overflow = 1;
			break;
		}
		int fresh = meets(rec->pre, (uint64_t)rec->npre, ent.start, ent.end);
		if (fresh && wp_registered(pm, ent.start, ent.end)) {
			/* registered by prepare: new, so written whole, and tracked from here on */
			if (scan_written(pm, ent.start, ent.end, 0) == 0) {
				rec->cur[rec->ncur++] = (struct region){ ent.start, ent.end };
				continue;
			}
		} else if (!fresh && rec->gen && was_tracked(pm, ent.start, ent.end)) {
			if (scan_written(pm, ent.start, ent.end, 1) == 0) {
				rec->old[rec->nold++] = (struct region){ ent.start, ent.end };
				note_region(rec->kept, &rec->nkept, &ent);
				rec->cur[rec->ncur++] = (struct region){ ent.start, ent.end };
				if (lean_kind(&ent))
					rec->cand[rec->ncand++] = (struct region){ ent.start, ent.end };
				continue;
			}
		}
		/*
		 * New, changed, or its scan failed: all its pages count as written.
		 * One that cannot be protected is not tracked: saved whole next time.
		 * While the program runs (an arming) nothing is registered: not
		 * tracked from here, it is new at the pause.
		 */
		if (final && protect_new(ent.start, ent.end) == 0)
			rec->cur[rec->ncur++] = (struct region){ ent.start, ent.end };
	}
	walk_close(pm);
	rec->npre = 0;
	rec->nnone_pre = 0;
	co_memcpy(rec->none_prev, rec->none_cur, (size_t)rec->nnone_cur * sizeof(rec->none_cur[0]));
	rec->nnone_prev = rec->nnone_cur;
	if (final) {
		rec->thp_fresh = 0; /* co_dirty_prepare classifies again for the next checkpoint */
	}
	int usable = rec->gen != 0 && !rec->overflow;
	co_memcpy(rec->prev, rec->cur, rec->ncur * sizeof(rec->cur[0]));
	rec->nprev = rec->ncur;
	uint64_t base = rec->gen;
	rec->kept_since = base; /* (a list cut short: kept lacks regions, never holds a wrong one) */
	rec->gen = gen;
	return usable ? base : 0;
}

static uint64_t collect_final(uint64_t gen)
{
	return collect(gen, 1);
}

/* ---- pre-copy of a full image ---- */

static int based_on(uint64_t parent)
{
	return parent && rec && held && rec->gen == parent && held->complete == parent;
}

/* Arming a pre-copy: a list filled up. */
static int arm_full;

/* Pages in memory are held (the pre-copy reads them); swapped-out ones (or markers) must not be left out. */
static void note_armed(const struct page_region *r)
{
	if (r->categories & CO_PAGE_IS_PRESENT)
		arm_full |= list_add(held->r[0], &held->n[0], MAX_HELD, r->start, r->end);
	else
		arm_full |= list_add(rec->nolean, &rec->nnolean, MAX_WRITTEN, r->start, r->end);
}

static int precopy_arm(uint64_t id)
{
	if (!rec || !held || pm_fd < 0 || maps_fd < 0)
		return -1;
	/* a collection without an image: everything protected, tracking from here */
	collect(id, 0);
	if (rec->ncur == MAX_REGIONS)
		return -1;
	int pm = walk_open();
	if (pm < 0)
		return -1;
	int r = 0;
	rec->nnolean = 0;
	arm_full = 0;
	/* held: the pages in memory, which the pre-copy reads (one walk sorts them from the swapped-out ones) */
	while (r == 0 && !arm_full && co_maps_next(&maps, &ent) == 1) {
		if (!tracked_kind(&ent) || !covered(rec->cur, (uint64_t)rec->ncur, ent.start, ent.end))
			continue;
		if (!(ent.prot & PROT_READ))
			r = list_add(rec->nolean, &rec->nnolean, MAX_WRITTEN, ent.start, ent.end);
		else
			r = scan(pm, ent.start, ent.end, 0, 0, CO_PAGE_IS_PRESENT | CO_PAGE_IS_SWAPPED, note_armed);
	}
	walk_close(pm);
	if (r || arm_full) {
		held->n[0] = 0;
		rec->nnolean = 0;
		return -1;
	}
	__atomic_store_n(&held->complete, id, __ATOMIC_RELEASE);
	return 0;
}

void co_dirty_test_held_gap(void)
{
	uint64_t n = held ? held->n[0] : 0, best = n;
	struct region *r = held ? held->r[0] : 0;
	for (uint64_t i = 0; i < n; i++)
		if ((best == n || r[i].end - r[i].start > r[best].end - r[best].start) && r[i].end - r[i].start >= 64 * CO_PAGE)
			best = i;
	if (best == n || n == MAX_HELD)
		return;
	uint64_t q = (r[best].end - r[best].start) / 4 & ~(uint64_t)(CO_PAGE - 1);
	for (uint64_t i = n; i > best; i--)
		r[i] = r[i - 1];
	r[best].end = r[best].start + q;
	r[best + 1].start = r[best + 1].end - q;
	held->n[0] = n + 1;
}

static int region_tracked(uint64_t start, uint64_t end)
{
	return rec && (covered(rec->old, (uint64_t)rec->nold, start, end) ||
		       covered(rec->thp, (uint64_t)rec->nthp, start, end));
}

/* Is [start, end) the mapping it was at collection since, the one before the last? */
static int region_kept(uint64_t since, uint64_t start, uint64_t end)
{
	return rec && since && rec->kept_since == since && covered(rec->kept, (uint64_t)rec->nkept, start, end);
}

static void note_held(int stream, uint64_t addr)
{
	if (!held)
		return;
	if (held->n[stream] <= MAX_HELD &&
	    list_add(held->r[stream], &held->n[stream], MAX_HELD, addr, addr + CO_PAGE))
		held->n[stream] = MAX_HELD + 1; /* too many: the next image will be full */
}

void wp_image_done(uint64_t gen)
{
	if (held)
		__atomic_store_n(&held->complete, gen, __ATOMIC_RELEASE);
}

/* the regions of huge pages alone are compared by hashes (dirty_thp.c) */
static uint64_t begin_image(uint64_t parent)
{
	if (rec && rec->nthp && thp_class_mode() == THP_HASH)
		hash_begin(parent);
	else
		hash_off();
	return parent;
}

/* Unwritten since the parent image, which holds it (the lists asked through spans of one page stream)? */
static int parent_holds(int stream, uint64_t addr, int tracked)
{
	static struct span written[CO_STREAMS], held_prev[CO_STREAMS];
	/* a page the parent's image does not hold must be saved, written or not */
	return tracked && rec && !covered_at(rec->written, rec->nwritten, addr, &written[stream]) &&
	       covered_at(rec->held_prev, rec->nheld_prev, addr, &held_prev[stream]);
}

static int page_kept(int stream, uint64_t addr, int tracked)
{
	int thp = in_thp(stream, addr);
	if (thp && thp_class_mode() == THP_WHOLE)
		return 0;
	if (thp)
		return hash_on() ? hash_kept(stream, addr, tracked) : 0;
	note_held(stream, addr);
	return parent_holds(stream, addr, tracked);
}

/*
 * The writer's plan, before it writes: would page_kept say so (nothing
 * noted)?  A page of huge pages counts as written (page_kept compares
 * those by hashes as it writes them).  The plan is made before the
 * streams are written, so it asks through stream 0's spans.
 */
static int page_maybe_kept(uint64_t addr, int tracked)
{
	return !in_thp(0, addr) && parent_holds(0, addr, tracked);
}

int co_dirty_lean_maybe_kept(uint64_t start, uint64_t end)
{
	return rec && !meets(rec->thp, (uint64_t)rec->nthp, start, end) && !meets(rec->written, rec->nwritten, start, end) &&
	       covered(rec->held_prev, rec->nheld_prev, start, end);
}

int co_dirty_lean_kept(int stream, uint64_t start, uint64_t end)
{
	if (stream < 0 || stream >= CO_STREAMS || !co_dirty_lean_maybe_kept(start, end))
		return 0;
	if (held && held->n[stream] <= MAX_HELD &&
	    list_add(held->r[stream], &held->n[stream], MAX_HELD, start, end))
		held->n[stream] = MAX_HELD + 1; /* as note_held */
	return 1;
}

const struct co_dirty_ops co_dirty_wp_ops = {
	.setup = setup,
	.prepare = prepare,
	.collect = collect_final,
	.based_on = based_on,
	.precopy_arm = precopy_arm,
	.begin_image = begin_image,
	.page_kept = page_kept,
	.page_maybe_kept = page_maybe_kept,
	.region_tracked = region_tracked,
	.region_kept = region_kept,
	.lean_begin = lean_begin,
};
