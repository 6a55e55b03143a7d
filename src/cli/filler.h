/*
 * filler.h - the page filler of a lazy restart (filler.c): a child of the
 * coordinator (coord/lazy.c) that brings the pages of one restored
 * process's lazy regions through its userfaultfd.
 */
#ifndef COHORT_FILLER_H
#define COHORT_FILLER_H

#include <stddef.h>
#include <stdint.h>
#include "image.h"

/*
 * Where page data may still be on its way: a migration's post-copy
 * (postcopy.c) leaves holes in the stop's page streams that fill while
 * the program runs.  Before reading bytes [off, off + n) of the image
 * file open on fd the filler asks ready(): 1 they are in place; 0 not yet
 * (demand: a fault waits, so they are asked for first); -1 never (why()
 * says why, NULL when another filler has said it).  wait() waits up to
 * ms for more to come.  ready NULL: every byte is in place.
 */
struct co_page_source {
	int (*ready)(void *ctx, int fd, uint64_t off, uint64_t n, int demand);
	void (*wait)(void *ctx, int ms);
	const char *(*why)(void *ctx);
	void *ctx;
};

/* One image of the process: gen-N's, or an older one of its chain (chain.c). */
struct co_filler_layer {
	const char *image;	/* the page streams are named after it */
	struct co_bind bind;	/* its generation's group and number */
};

struct co_filler_cfg {
	int uffd;		/* the process's userfaultfd (src/restore/lazy.c) */
	int held_sock;		/* where the userfaultfds of children forked meanwhile go, for the coordinator to hold */
	int pid;		/* its pid in the group, for messages and the images' binding */
	int host_pid;		/* ... and here (its /proc/PID/mem) */
	int announce;		/* send CO_M_REPLY on held_sock once the pages restored eagerly are in place */
	int streams;		/* page streams of layers[0] */
	/*
	 * Its images, newest first: the restored one, then (an incremental
	 * restarted from its chain) its parent's and so on to a full one.
	 */
	const struct co_filler_layer *layers;
	int nlayers;
	const uint64_t *ranges;	/* the lazy regions: start, end pairs, in address order */
	int nranges;
	struct co_page_source source; /* .ready NULL: the image's files are whole */
	int checked;		/* every byte of the files was checked as it arrived (a migration's target) */
	int slow_ms;		/* tests only (COHORT_LAZY_SLOW): a pause after each MiB of the background fill */
	const char *hold;	/* tests only (COHORT_LAZY_HOLD): the background fill waits until this file exists */
};

/*
 * Fill, then exit: 0 once every page is in place, 1 (after one line on
 * stderr) on any failure, CO_FILLER_GONE (saying nothing) when its process
 * ended before its eager pages were written: the restore failed, or was
 * ended, and whoever did that says why.
 */
#define CO_FILLER_GONE 3
void co_filler_main(const struct co_filler_cfg *c) __attribute__((noreturn));
/*
 * In a spare filler before its hand-over: what the filler of pid, with
 * these layers, can do before its regions are known (filler.c).
 */
void co_filler_early(const struct co_filler_layer *layers, int nl, int pid);

#endif
