/*
 * dirty.h - tracking the pages a process writes between checkpoints
 * (agent side; see dirty.c and dirty_int.h).
 */
#ifndef COHORT_DIRTY_H
#define COHORT_DIRTY_H

#include <stdint.h>

enum co_dirty_method { CO_DIRTY_NONE = 0, CO_DIRTY_UFFD_WP = 1, CO_DIRTY_HASH = 3 };

/* What this kernel offers (probed once). */
int co_dirty_method(void);
const char *co_dirty_name(int method);

/*
 * With every other thread parked: collect the pages written since the last
 * collection and start tracking anew, for the snapshot of generation gen.
 * Returns the generation the written set is relative to, or 0 when it is
 * unusable (first collection, no tracking, too many ranges): then the
 * image must be a full one.
 */
uint64_t co_dirty_collect(uint64_t gen);

/* After a collection, for the image writer: */
int co_dirty_region_tracked(uint64_t start, uint64_t end); /* [start,end) inside a region tracked since before */
/*
 * The last collection (its generation; 0: none, or a method that cannot
 * say what follows), and whether [start, end) is the same mapping as at
 * collection since, when that was the one before the last: not unmapped
 * and mapped again since, by any call.  mem.c takes such a region's
 * madvise flags from what smaps said at that pause.
 */
uint64_t co_dirty_last(void);
int co_dirty_region_kept(uint64_t since, uint64_t start, uint64_t end);
/* Tests (CO_PREP_TEST_HELD_GAP): the armed pre-copy's held list loses the middle half of its longest range. */
void co_dirty_test_held_gap(void);
/* The agent's own mappings of this (record, page lists), kept out of images: how many, at most 3. */
int co_dirty_areas(uint64_t *lo, uint64_t *hi);

/*
 * The image writer: at the start, whether the image can be incremental
 * against parent (the parent, or 0); for every page it saves, whether the
 * parent image's copy can stand for it (tracked: its region is tracked);
 * at the end, the image of gen is complete.
 */
uint64_t co_dirty_begin_image(uint64_t parent);
int co_dirty_page_kept(int stream, uint64_t addr, int tracked);
void co_dirty_image_done(uint64_t gen);
/*
 * For the writer's plan, before it writes: whether co_dirty_page_kept
 * would say 1 (a page of huge pages: 0), and co_dirty_lean_kept of a run;
 * nothing is noted.
 */
int co_dirty_page_maybe_kept(uint64_t addr, int tracked);
int co_dirty_lean_maybe_kept(uint64_t start, uint64_t end);

/*
 * Lean snapshots of an incremental image.  Before the snapshot fork, with
 * the written set just collected: leave the long unwritten stretches of
 * large anonymous regions out of the fork (MADV_DONTFORK), so that it
 * copies the page tables of what the image needs only; none of the
 * regions holding an address of keep (the manager's stack) is touched.
 * Returns how many stretches were left out.  After the fork the parent
 * puts them back (co_dirty_lean_end), before the program runs again.  In
 * the snapshot, co_dirty_lean_held says whether addr lies in a left-out
 * stretch (*in_lean) and if so whether the parent image holds its page:
 * the page is unwritten, so that decides whether the image refers to it.
 * Without a fork (fork 0: an image written in the process, its program
 * parked throughout) the stretches are only noted, and the writer passes
 * over them the same way: their pages are neither read nor looked up in
 * the page map.  co_dirty_lean_end then forgets them, after the image.
 */
int co_dirty_lean_begin(const uint64_t *keep, int nkeep, int fork);
void co_dirty_lean_end(void);
int co_dirty_lean_held(int stream, uint64_t addr, int *in_lean);
/*
 * The same for a run: 0 when addr lies in no left-out stretch; else the
 * end of the run from addr whose pages are all left out and alike held
 * (*held) or not.
 */
uint64_t co_dirty_lean_run(int stream, uint64_t addr, int *held);
/*
 * [start, end), such a run held by the parent: 1 when every page of it is
 * kept, as co_dirty_page_kept would say of each (and noted so, as it
 * would); 0 when not all are (the caller asks page by page).
 */
int co_dirty_lean_kept(int stream, uint64_t start, uint64_t end);
/* In the snapshot (or the image written in place): was all of [start, end) left out by one stretch? */
int co_dirty_lean_covers(uint64_t start, uint64_t end);

/*
 * In the manager thread, with a descriptor table of its own (the program
 * never sees what it opens): make the descriptors and mappings the
 * tracking needs.  The userfaultfd, which must outlive the manager for
 * the tracking to go on, is handed to the coordinator between checkpoints
 * (co_dirty_uffd) and back at the next one (co_dirty_adopt_uffd).
 */
void co_dirty_setup(void);
int co_dirty_uffd(void);
void co_dirty_adopt_uffd(int fd);

/*
 * Before quiescing, with the program running: start tracking new regions
 * (see dirty_wp.c); arming: a pre-copy is armed next, which reads only
 * what is tracked by then.
 */
void co_dirty_prepare(int arming);

/*
 * Pre-copy of a full image.  With the program running, co_dirty_precopy_arm
 * starts tracking anew as generation id and lists as held the pages that
 * are there now, in readable tracked regions: the coordinator then reads
 * them through /proc/PID/mem while the program still runs, and the image
 * taken in the pause is an incremental one against id (only the pages
 * written since, with a lean snapshot), which the coordinator merges with
 * the pre-copy into the full image.  0 armed, -1 not possible here.
 */
int co_dirty_precopy_arm(uint64_t id);
/* Can the next image build on generation parent (its tracking started there, its image finished)? */
int co_dirty_based_on(uint64_t parent);
/* Memory whose pages go into the image and whose writes are tracked (struct co_mapent of procfs.h). */
struct co_mapent;
int co_dirty_trackable(const struct co_mapent *e);

/*
 * Huge pages (see dirty_thp.c): in the snapshot's writer, once its image is
 * written and its copy of the program's memory dropped, the huge pages its
 * fork split in the program (pidfd) are made huge again, one block at a time
 * at SCHED_FIFO 1 with 1 ms between, for 10 s at most, with process_madvise(MADV_COLLAPSE).
 */
void co_dirty_recollapse(int pidfd);

/* The descriptors the tracking has open in the manager (at most 4), kept out of images; how many. */
int co_dirty_fds(int *out);
/* Where those descriptors are kept (3 pointers): the manager moves them off the program's numbers. */
int co_dirty_fd_refs(int **out);
/* The manager is closing its descriptor table: the tracking's descriptors are gone. */
void co_dirty_drop_fds(void);

/*
 * Drop the record: in a forked child (unmap: its copies of the mappings)
 * or after a restart (nothing of it came back: unmap = 0).  No descriptor
 * is closed: the tracking's were the manager's, never in the program's table.
 */
void co_dirty_forget(int unmap);

#endif
