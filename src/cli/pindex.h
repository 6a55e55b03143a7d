/*
 * pindex.h - the page index of a lazy restart (pindex.c): where each page
 * of one process comes from, the newest image of its chain that holds it.
 * The page filler (filler.c) builds it at the restart; a migration's
 * target (receive.c) builds all of it but the stop's own layer while the
 * rounds come in, and the filler, forked from it, starts from that.
 */
#ifndef COHORT_PINDEX_H
#define COHORT_PINDEX_H

#include <limits.h>
#include <stdint.h>
#include "image.h"

/* A page data record that holds indexed pages: its stream (slot) and where its data lies there. */
struct co_pindex_rec {
	uint32_t slot;		/* layer * CO_STREAMS + its stream in the layer's image */
	uint64_t off, len, seq;
	uint32_t e0, e1;	/* its entries in the fill's order (co_pindex_layout) */
};

/* One image of the chain, oldest first. */
struct co_pindex_layer {
	char path[PATH_MAX];	/* the process image; its page streams are named after it */
	struct co_bind bind;	/* its generation's group and number */
	uint32_t streams;
};

#define CO_PINDEX_LAYERS 64	/* CO_CHAIN_MAX */

struct co_pindex {
	int pid;
	int nl;
	struct co_pindex_layer l[CO_PINDEX_LAYERS];
	/* every page indexed, in address order: its address, its data (offset | slot), its record */
	uint32_t n, cap;
	uint64_t *at, *off;
	uint32_t *rec;
	uint64_t *at2, *off2;	/* the next fold's, swapped with the above: no allocation per layer */
	uint32_t *rec2, cap2;
	struct co_pindex_rec *recs;
	uint32_t nrecs, cap_recs;
	/*
	 * The fill's order (co_pindex_layout): record by record, each record's
	 * pages front to back.  Entry i (by address) is at pos[i]; there, its
	 * data (roff) and address (rat).  NULL pos: not laid out (since the
	 * last fold); else for the laid_recs records before the top's.
	 */
	uint32_t *pos;
	uint64_t *roff, *rat;
	size_t lay_bytes;	/* of roff and rat each: in use (populated when laid out) */
	size_t lay_resv;	/* ... and mapped: room for a top to come without a move (co_pindex_extend) */
	uint32_t laid_recs;
};

/*
 * Fold the image at path (its generation's bind, pid in x->pid) into x, as
 * the newest layer: its own pages (only those in ranges when ranges is
 * not NULL: the restored image, whose other pages the restorer reads),
 * and of the pages below those its parent maps leave to it.  A full image
 * starts x afresh.  0, or -1 with err (x is then to be dropped).
 */
int co_pindex_fold(struct co_pindex *x, const char *path, const struct co_bind *bind, const uint64_t *ranges,
		   int nranges, char *err, size_t errlen);
void co_pindex_free(struct co_pindex *x);

/*
 * The restored image, the newest layer, folded onto x without a new
 * index (the filler puts the result straight into its own order): its own
 * pages in ranges (by address: at[ord[i]], i < n; valid until the next
 * fold).  What changes below it, as spans of x's entries (by address: lo,
 * hi pairs), so that the cost follows the layer, not the index below:
 * drop, those it no longer leaves to the images below (outside its
 * parent maps, or held by itself); eager, those outside ranges (pages of
 * regions restored eagerly, of which some may be dropped too).  0, or -1
 * with err.
 */
struct co_pindex_top {
	const uint64_t *at, *off;
	const uint32_t *rec, *ord;
	uint32_t n;
	uint32_t *drop, *eager;	/* spans: lo, hi pairs */
	uint32_t ndrop, neager, cap_drop, cap_eager;
};
int co_pindex_fold_top(struct co_pindex *x, const char *path, const struct co_bind *bind, const uint64_t *ranges,
		       int nranges, struct co_pindex_top *t, char *err, size_t errlen);
/*
 * Read the image at path, the top layer to come, before its lazy regions
 * are known (a spare filler waiting for its hand-over, coord/lazy.c):
 * every page it holds.  co_pindex_fold_top of the same path then only
 * leaves out those outside its ranges.  0, or -1 with err.
 */
int co_pindex_read_top(struct co_pindex *x, const char *path, const struct co_bind *bind, char *err, size_t errlen);
/* Lay x out in the fill's order (above); 0, or -1 out of memory. */
int co_pindex_layout(struct co_pindex *x);
/* Room in roff and rat for more entries after the n laid out; 0 or -1. */
int co_pindex_extend(struct co_pindex *x, uint32_t more);
/* n bytes for an array written at once, its pages populated in one call (never freed: the filler exits) */
void *co_pindex_alloc(size_t n);

/* Is page a in one of the n ranges (start, end pairs in address order)? */
int co_pindex_in(const uint64_t *ranges, int n, uint64_t a);

/* Sort ord[0..n) by at[] (a few ascending runs: merged pairwise). */
int co_pindex_sort(uint32_t *ord, uint32_t n, const uint64_t *at);

/*
 * A migration's target, as each generation before the stop is checked:
 * fold each process image of generation dir (not yet committed: its
 * files keep their names) into that process's index built ahead.  Never
 * fails: an image it cannot fold leaves that process without one.
 */
void co_pindex_ahead(const char *dir);
/* The index built ahead for pid, if its layers are those (oldest first), or NULL.  Taken: not kept here. */
struct co_pindex *co_pindex_take(int pid, const struct co_bind *binds, int n);

#endif
