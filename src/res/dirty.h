/*
 * dirty.h - tracking the pages a process writes between checkpoints
 * (agent side; see dirty.c).
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
int co_dirty_fd(void);					   /* the userfaultfd, kept out of images */
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
 * Drop the record: in a forked child (close_fd: its copy of the descriptor)
 * or after a restart (nothing of it came back: close_fd = 0).
 */
void co_dirty_forget(int close_fd);

#endif
