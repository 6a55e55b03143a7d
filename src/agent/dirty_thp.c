/*
 * dirty_thp.c - regions of transparent huge pages under the write-protection
 * of dirty_wp.c: compared by page hashes instead (dirty_hash.c), and the
 * blocks a snapshot's fork split made huge again.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <sched.h>
#include "dirty_int.h"
#include "sys.h"

static int thp_mode = -1;

/* How regions of huge pages are tracked (COHORT_DIRTY_THP; see "Huge pages" below). */
int thp_class_mode(void)
{
	if (thp_mode < 0) {
		const char *m = getenv("COHORT_DIRTY_THP");
		thp_mode = m && !co_strcmp(m, "wp") ? THP_WP : m && !co_strcmp(m, "whole") ? THP_WHOLE : THP_HASH;
	}
	return thp_mode;
}

/* ---- huge pages ---- */

/*
 * Write-protection and transparent huge pages do not mix (Linux 6.18,
 * measured with bench/thp_probe.c and bench/thp.sh, docs/benchmarks.md):
 *
 * - Protecting a region keeps its huge pages (UFFDIO_WRITEPROTECT and
 *   PAGEMAP_SCAN with PM_SCAN_WP_MATCHING over a whole PMD-mapped THP set
 *   the bit on the PMD), but in asynchronous mode the first write to a
 *   protected huge page splits its PMD into 512 PTEs, each still
 *   protected: 512 faults per 2 MiB instead of one, and the page stays
 *   split.  The next collection protects the PTEs again, and khugepaged
 *   and MADV_COLLAPSE both refuse a block with any protected PTE, so the
 *   heap stays in small pages for the rest of the run (with TLB misses on
 *   every later access), and every checkpoint interval pays a fault per
 *   4 KiB page written.
 * - Async mode also puts uffd-wp markers into the holes of a protected
 *   region: memory the program touches there later comes in small pages,
 *   never huge.
 * - Synchronous mode resolves a fault on a huge page at PMD granularity
 *   (UFFDIO_WRITEPROTECT of the 2 MiB clears the PMD's bit, no split), but
 *   every fault then waits for a thread of ours to answer, a program whose
 *   writer thread hangs would hang, and PAGEMAP_SCAN cannot report for
 *   such regions: not worth it when the alternative below costs the
 *   running program nothing.
 *
 * So the regions that get huge pages (private anonymous memory the kernel
 * calls THPeligible in /proc/self/smaps, and that is mostly huge or not
 * yet there) are not write-protected at all: they are compared by page
 * hashes, like COHORT_DIRTY=page-hash does for all memory, in the image
 * writer (XXH64 of every page against the parent image's; equal means
 * unchanged, odds of a wrong "equal" about 2^-64 per page).  Between
 * checkpoints the program runs exactly as without cohort.  The price is
 * paid in the snapshot child: it reads those regions whole at every image
 * (about 0.1 s per GiB of CPU), they are forked whole (cheap for PMD-mapped
 * memory: 512 entries fewer per 2 MiB) and not lean.  A region keeps the
 * class while it is eligible, so that a snapshot's copy-on-write splits
 * (below) do not flip it back.
 *
 * The snapshot fork itself splits huge pages: the first write the program
 * makes to a huge page the snapshot child still shares splits its PMD and
 * copies 4 KiB.  So the 2 MiB blocks mapped huge when the checkpoint was
 * prepared are collapsed again (MADV_COLLAPSE, Linux 6.1) once the
 * snapshot child is gone, by the manager thread while the program runs,
 * a few blocks at a time between looks at the control socket; only
 * blocks still wholly present, so that nothing the program dropped is
 * brought back.
 *
 * COHORT_DIRTY_THP=wp keeps the old behaviour (write-protect them too),
 * =whole saves those regions whole in every image instead of hashing them
 * (for comparison; see docs/benchmarks.md).
 */
/* Private anonymous memory (huge pages are had only there). */
static int anon_kind(const struct co_mapent *e)
{
	const char *p = e->path;
	return !e->shared && (!p[0] || co_strcmp(p, "[heap]") == 0 || co_startswith(p, "[anon:"));
}

static void note_huge(const struct page_region *r)
{
	list_add(rec->huge, &rec->nhuge, MAX_HUGE, r->start, r->end); /* full: the rest is not collapsed */
}

/* Stop write-protecting [start, end): unregistering also clears the pages' protection and markers. */
void unprotect(uint64_t start, uint64_t end)
{
	struct uffd_range r = { start, end - start };
	co_sys3(SYS_ioctl, uffd, CO_UFFDIO_UNREGISTER, (long)&r);
}

/*
 * Checkpoints closer than this keep the last classification: a
 * migration's rounds and its stop come every 30-100 ms, and each read of
 * smaps (~8 ms per GiB on a virtual machine here) is time the program
 * writes pages that the stop then carries.  Keeping it stays right: a
 * region classified for huge pages that has none now is compared by
 * hashes, which is right for any region, and one that got huge pages
 * since is write-protected, as a region without them is.
 */
#define RECLASSIFY_NS 1000000000ULL

/*
 * With the program running (co_dirty_prepare): which regions keep their
 * huge pages (rec->thp_next), and which 2 MiB blocks of theirs are huge now.
 * Reading smaps walks the page tables: ~5 ms per GiB of small pages,
 * ~0.2 ms per GiB of huge ones.
 */
void classify(int pm)
{
	static struct co_maps sm;
	static struct co_mapent se;
	struct co_smaps_info si;
	struct timespec now;
	co_clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
	if (rec->classified_ns && ns - rec->classified_ns < RECLASSIFY_NS) {
		rec->thp_fresh = 1;
		return;
	}
	rec->classified_ns = ns;
	rec->nthp_next = 0;
	rec->nhuge = 0;
	rec->thp_fresh = 1;
	if (smaps_fd < 0 || co_maps_reread(&sm, smaps_fd) < 0)
		return;
	int classes = hashes && thp_class_mode() != THP_WP;
	while (co_smaps_next(&sm, &se, &si) == 1) {
		if (!tracked_kind(&se) || !anon_kind(&se))
			continue;
		if (!classes || !si.thp_eligible || rec->nthp_next == MAX_REGIONS)
			continue;
		/* mostly in small pages already (no huge ones to be had, say): write-protected, as before */
		if (!covered(rec->thp, (uint64_t)rec->nthp, se.start, se.end) && si.anon_huge_kib * 2 < si.rss_kib)
			continue;
		rec->thp_next[rec->nthp_next++] = (struct region){ se.start, se.end };
		scan(pm, se.start, se.end, 0, CO_PAGE_IS_HUGE, 0, note_huge);
	}
	co_maps_close(&sm);
}

/* Does [start, end) keep its huge pages (classified so by co_dirty_prepare)? */
int thp_region(uint64_t start, uint64_t end)
{
	return rec->thp_fresh && covered(rec->thp_next, (uint64_t)rec->nthp_next, start, end);
}

/* Is the 2 MiB block at b wholly present in small pages? */
static int block_split(uint64_t b)
{
	struct page_region r[2];
	struct pm_scan_arg a = { .size = sizeof(a), .start = b, .end = b + HUGE_PAGE, .vec = (uint64_t)r,
				 .vec_len = 2, .return_mask = CO_PAGE_IS_PRESENT | CO_PAGE_IS_HUGE };
	return co_sys3(SYS_ioctl, pm_fd, CO_PAGEMAP_SCAN, (long)&a) == 1 && r[0].start == b &&
	       r[0].end == b + HUGE_PAGE && r[0].categories == CO_PAGE_IS_PRESENT;
}

/*
 * In the snapshot's writer, its image written and its copy of the
 * program's memory dropped (mem.c): the program is the only one to map
 * its pages, and the blocks our fork split can be collapsed.  The work is
 * done here with process_madvise(2) on the program's pidfd (MADV_COLLAPSE
 * from another process: Linux 6.1 and CAP_SYS_NICE), so that no thread of
 * the program's exists for it.
 *
 * A collapse holds the program's mmap lock for writing (~0.3 ms per
 * block), and every page fault of the program's threads waits for it.
 * A writer preempted while it holds the lock stops the whole program:
 * at nice 19 on a busy machine that was 6-50 ms (docs/benchmarks.md,
 * "The pause the program sees").  So the writer runs the collapses at
 * SCHED_FIFO 1, where the kernel lets it (the CAP_SYS_NICE the collapse
 * needs anyway): it is never preempted holding the lock, one block at a
 * time with 1 ms of sleep after each (a quarter of a core at most), 10 s
 * in all, then exits.  Where the kernel refuses (no CAP_SYS_NICE, an
 * older kernel) nothing is done: khugepaged collapses the blocks in its
 * own time, nothing being write-protected there.  Only blocks still
 * wholly present, in small pages, are collapsed, so that nothing the
 * program dropped comes back.
 */
void co_dirty_recollapse(int pidfd)
{
	if (!rec || !rec->nhuge || pm_fd < 0 || pidfd < 0)
		return;
	int fifo = 1; /* struct sched_param */
	if (co_sys3(SYS_sched_setscheduler, 0, SCHED_FIFO, (long)&fifo) < 0)
		co_sys3(SYS_setpriority, 0 /* PRIO_PROCESS */, 0, 0); /* at least not below the program */
	struct co_timespec t0, now;
	co_clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t i = 0; i < rec->nhuge; i++) {
		const struct region *h = &rec->huge[i];
		for (uint64_t b = (h->start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1); b + HUGE_PAGE <= h->end; b += HUGE_PAGE) {
			if (!block_split(b))
				continue;
			struct { uint64_t base, len; } v = { b, HUGE_PAGE };
			long r = co_sys5(SYS_process_madvise, pidfd, (long)&v, 1, CO_MADV_COLLAPSE, 0);
			if (r == -EPERM || r == -EINVAL || r == -ENOSYS || r == -ESRCH)
				return; /* not allowed, not supported, or the program is gone */
			struct co_timespec pause = { 0, 1000000 };
			co_sys2(SYS_nanosleep, (long)&pause, 0);
			co_clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.sec - t0.sec > 10)
				return;
		}
	}
}

/* Is addr in a region of huge pages, compared by page hashes?  Asked by page stream (its span). */
int in_thp(int stream, uint64_t addr)
{
	static struct span at[CO_STREAMS];
	return rec && rec->nthp && covered_at(rec->thp, (uint64_t)rec->nthp, addr, &at[stream]);
}

