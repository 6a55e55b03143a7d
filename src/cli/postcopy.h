/*
 * postcopy.h - `cohort migrate --postcopy` (postcopy.c): the stop's page
 * data of lazy regions stays out of the stream (its files go sparse) and
 * follows once the group runs at the target, pushed in file order by the
 * source, the pieces a fault waits for first (docs/architecture.md,
 * "Migration", *Post-copy*).
 */
#ifndef COHORT_POSTCOPY_H
#define COHORT_POSTCOPY_H

#include <stddef.h>
#include <stdint.h>
#include "cli/filler.h"
#include "wire.h"

/* ---- the source ---- */

/*
 * The page data generation dir leaves to post-copy: in each process
 * image's page streams (not compressed ones), the payload of the page
 * data of every region the target restores lazily (co_vma_lazy_kind, and
 * no page shared copy-on-write with a parent there: the restorer may keep
 * such a region from the parent and read it eagerly).  A stop written
 * behind: its page data there is read from the parked group's memory as
 * it is pushed; elsewhere it is written now.  0, or -1 with err.
 */
int co_postcopy_plan(const char *dir, char *err, size_t errlen);
/* The holes of file name of that generation (NULL: sent whole). */
const struct co_wire_hole *co_postcopy_holes(const char *name, uint32_t *n);

struct co_postcopy_stats {
	uint64_t bytes;		/* pushed (the pieces asked for twice count twice) */
	uint64_t requests;	/* WANTs answered */
	uint64_t behind;	/* page data written behind at the stop, read from the parked group's memory */
	uint64_t requests_behind; /* WANTs for pieces not written yet: answered from that memory */
};
/*
 * The next message from the target, which must be op (READY, RUNNING):
 * the WANTs before it answered (a fault during the restore there).  0, or
 * -1 with err.
 */
int co_postcopy_until(struct co_wire *w, unsigned op, struct co_postcopy_stats *st, char *err, size_t errlen);
/*
 * Once the group runs at the target: every piece pushed, in file order,
 * a WANT answered before the next; until the target says DONE.  0, or -1
 * with err (the connection lost, an ABORT).
 */
int co_postcopy_serve(struct co_wire *w, struct co_postcopy_stats *st, char *err, size_t errlen);

/*
 * The stop was written behind (CO_CKPT_BEHIND, behind.c): every piece of
 * page data not pushed (and written) yet written from the parked group's
 * memory, for its commit.  0, or -1 with err.
 */
int co_postcopy_fill_rest(struct co_postcopy_stats *st, char *err, size_t errlen);

/* ---- the target ---- */

/*
 * A sparse file of the last generation has come (numbered as they come):
 * kept for the table; digest: the manifest's, checked once it is filled
 * (NULL: the manifest lists none, as for process images: their records'
 * checksums are what the fillers and the restorer check).
 */
int co_postcopy_note(const char *name, const struct co_wire_hole *holes, uint32_t n, const uint64_t *digest,
		     char *err, size_t errlen);
/* How many sparse files have come (0: not a post-copy). */
int co_postcopy_files(void);
/*
 * The generation is committed in gen_dir: the table of pieces every page
 * filler waits on, shared (forked fillers and the receiver inherit it).
 * 0, or -1 with err.
 */
int co_postcopy_map(const char *gen_dir, char *err, size_t errlen);
/*
 * Before the restart: a process of its own takes the stream w and
 * receives the pieces (faults during the restore ask for them too).  0,
 * or -1.  From then on the receiver speaks on the stream through it:
 */
int co_postcopy_start(struct co_wire *w);
/* READY (procs), then GO: 0; -1 with why (the stream lost, an ABORT) */
int co_postcopy_ready(int64_t procs, char *why, size_t n);
/* RUNNING: the pieces still to come keep coming */
void co_postcopy_running(int64_t procs);
/* the migration failed before the group ran: ABORT (why), and that process ends */
void co_postcopy_abort(const char *why);
/* In a page filler's child, before it closes what it does not need: the wakeup of the receiver onto fd (0; -1: no post-copy). */
int co_postcopy_filler_fd(int fd);
/* The filler's page source: waits for the pieces of the sparse files ({0}: no post-copy). */
struct co_page_source co_postcopy_source(void);
/*
 * The group has ended here: wait for that process.  0 when every piece
 * came (or there was no post-copy); -1 otherwise, said in one line
 * unless a filler said it.
 */
int co_postcopy_finish(void);
/* Test hook: the sparse files, as "NAME SIZE ALLOCATED" lines, into path (COHORT_POSTCOPY_HOLES). */
void co_postcopy_report(const char *gen_dir, const char *path);

#endif
