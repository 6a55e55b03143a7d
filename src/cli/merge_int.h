/*
 * merge_int.h - what the merge's files share (merge.c, merge_pages.c,
 * merge_dir.c), and no other file: the chain of a generation being merged.
 */
#ifndef COHORT_MERGE_INT_H
#define COHORT_MERGE_INT_H

#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include "cli.h"

/* fill err, evaluate to -1 */
#define MERR(...) co_err(err, errlen, __VA_ARGS__)

#define MAX_LAYERS CO_CHAIN_MAX /* images merged in one pass; a longer chain is merged in steps */

/*
 * The generations a merge of gen-N reads, newest first: gen-N, the
 * incremental generations before it, and the newest full image of the
 * chain (gen-B, or the merged full-B), with their manifests.
 */
struct chain {
	int n;
	int scratch_base;		/* its oldest image is a pre-copy: scratch (see struct layer, merge_pages.c) */
	struct chain_gen {
		uint64_t gen;
		char dir[PATH_MAX];
		struct co_manifest m;
		int np;
		struct co_mproc p[CO_TABLE_SLOTS];
	} g[MAX_LAYERS];
};

static inline int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* merge_pages.c: the buffer records are copied through (and files, when a link cannot be made) */
extern char co_merge_buf[1 << 20];
/* merge_pages.c: process pid's entry in a generation of the chain (not a zombie's), or NULL */
const struct co_mproc *co_chain_find_proc(const struct chain_gen *g, int pid);
/* merge_pages.c: the full image of process mp of gen-N, written to full (and its page streams); compress: as .zst */
int co_merge_proc(const struct chain *c, const struct co_mproc *mp, const char *full, int compress, char *err,
		  size_t errlen);

#endif
