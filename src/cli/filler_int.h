/*
 * filler_int.h - what the two halves of the filler share: the index
 * (filler_index.c builds it, before the filler serves anything) and the
 * fill (filler.c, which serves faults and fills from it).
 */
#ifndef COHORT_FILLER_INT_H
#define COHORT_FILLER_INT_H

#include <stdint.h>
#include "cli/cli.h"
#include "cli/filler.h"
#include "cli/pindex.h"
#include "res.h"

#define FILL_SLOTS (CO_CHAIN_MAX * CO_STREAMS)

/* A page data record that holds pages of lazy regions. */
struct rec {
	int stream;		/* layer * CO_STREAMS + its stream in the layer's image */
	uint64_t off, len;	/* its data in the stream's file */
	uint64_t seq;
	uint32_t e0, e1;	/* its entries */
};

/*
 * Every page the filler may bring (entry e), as co_fill_index leaves it;
 * the fill then only takes entries off (pend0, e_eager) and follows the
 * pages' moves (e_at).
 */
struct fill_index {
	int src_fd[FILL_SLOTS];		/* the page streams of every layer, open */
	char *src_name[FILL_SLOTS];
	uint64_t *e_off;		/* entry -> offset of its data | slot (< PAGE) */
	uint64_t *e_at;			/* entry -> its page's address at the restore */
	uint32_t *e_eager;		/* the entries of regions restored eagerly: written before the program runs */
	uint32_t neager;
	uint32_t nent;
	struct rec *recs;
	uint32_t nrecs;
	uint8_t *rec_ok;		/* record -> its checksum checked */
	uint8_t *rec_used;		/* record -> pages of it went in before it was checked */
	int by_rec;			/* the records' entries ascend, so rec_of() finds an entry's */
	int check_first;		/* those are checked first (images from disk: !cfg->checked) */
	/* the process's own space, ready before it is made: its entries still to come, and by address */
	uint8_t *pend0;
	uint64_t left0;
	uint32_t *ord_below, *ord_top, nbelow, ntop;
};

extern struct fill_index fx;

/* One line on stderr naming the process, then exit 1: the coordinator ends the group. */
void fill_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* fx for the filler of c: its chain's index (ahead, co_filler_early, or now) and its own image's pages. */
void co_fill_index(const struct co_filler_cfg *c);

#endif
