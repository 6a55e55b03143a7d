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
 * Where page data comes from: read n bytes of stream k at offset off (the
 * offsets of the image's files, which the index holds).  The image's files
 * by default; a migration's post-copy could fetch them over its stream.
 */
struct co_page_source {
	int (*read)(void *ctx, int stream, uint64_t off, void *p, size_t n);
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
	struct co_page_source source; /* .read NULL: the image's files */
	int slow_ms;		/* tests only (COHORT_LAZY_SLOW): a pause after each MiB of the background fill */
};

/* Fill, then exit: 0 once every page is in place, 1 (after one line on stderr) on any failure. */
void co_filler_main(const struct co_filler_cfg *c) __attribute__((noreturn));

#endif
