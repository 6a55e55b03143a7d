/*
 * postcopy_int.h - what the two sides of post-copy (postcopy.c, the
 * source; postcopy_target.c, the target) share: the pieces a hole is cut
 * into, the same on both sides.
 */
#ifndef COHORT_POSTCOPY_INT_H
#define COHORT_POSTCOPY_INT_H
#include <stdint.h>
#include "postcopy.h"
#include "proto.h"

#define PIECE (64u << 10)	/* bytes a push or a WANT carries at most: a fault waits for one piece or two */
#define MAX_FILES (CO_TABLE_SLOTS * CO_STREAMS)

/* A piece of a hole: [off, off + len) of file `file`. */
struct piece {
	uint64_t off;
	uint32_t len;
	uint16_t file;
	uint8_t state;		/* target: MISSING, ASKED (a filler waits), WANTED (the WANT went), IN */
	uint8_t sent;		/* source: pushed once */
	uint8_t written;	/* source: its page data written behind is in its file (piece_bytes) */
};
enum { MISSING, ASKED, WANTED, IN };

#define QUIET_MS 120000	/* the other side says nothing and takes nothing for this long: it is gone */

uint32_t co_pc_cut(const struct co_wire_hole *h, uint32_t n, uint16_t f, struct piece *out);
long co_pc_find_piece(const struct piece *p, uint32_t n, uint32_t f, uint64_t off);

#endif
