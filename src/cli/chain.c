/*
 * chain.c - may `restart --lazy` of an incremental generation run straight
 * from its chain, without merging full-N first?
 *
 * The restorer reads an incremental image as it reads a full one, but
 * for the pages its parent map records leave to the parent: those it has
 * no data for.  The page filler (filler.c) brings them from the newest
 * image of the chain that holds them: those of lazy regions as any lazy
 * page, those of the regions restored eagerly (the program's data, a
 * child's regions kept from its parent, ...) written into place before
 * the program runs.  So a process needs a filler: at least one region
 * the restorer will surely make lazy (src/restore/lazy.c, candidate()):
 * private anonymous, neither shared nor growing down, no page shared
 * copy-on-write there (a child may keep it from its restored parent,
 * mem.c).  And its image and every older one down the chain must be
 * uncompressed (the filler reads them with pread), and we root (the
 * filler writes through /proc/PID/mem).
 *
 * Where any of it does not hold, the restart merges full-N first, as
 * before.  Only the records' framing is read here, not their checksums:
 * the restorer and the filler check every record they use.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "cli.h"
#include "res.h"
#include "util.h"

/* A region of the image, and whether the restorer will surely restore it lazily. */
struct region {
	uint64_t start, end;
	int lazy;
};

static struct region regs[CO_MAX_VMAS];
static int nregs;

static void add_region(const struct co_vma *v)
{
	if (nregs < CO_MAX_VMAS)
		regs[nregs++] = (struct region){ v->start, v->end, co_vma_lazy_kind(v) };
}

/* Pages shared copy-on-write: their regions may be kept from a restored parent, so read eagerly. */
static void not_lazy(const struct co_pagemap *pm)
{
	for (uint32_t i = 0; i < pm->nruns && i < CO_MAX_RUNS; i++)
		for (int k = 0; k < nregs; k++)
			if (pm->runs[i].addr < regs[k].end && pm->runs[i].addr + pm->runs[i].npages * CO_PAGE > regs[k].start)
				regs[k].lazy = 0;
}

/* Is a region of the image surely restored lazily, hence a filler to come for its process? */
static int filler_comes(void)
{
	for (int k = 0; k < nregs; k++)
		if (regs[k].lazy)
			return 1;
	return 0;
}

/*
 * Stream k of the image: 1 decided (a filler comes), 0 nothing against
 * it here, -1 with why.  Stream 0 opens with the process's metadata (the
 * process record, its regions, its copy-on-write map) before any page
 * record: past it, a process with a region surely lazy has its filler,
 * which brings whatever the parent maps leave to the parent, and nothing
 * more need be read (at a migration's stop that was ~500 records read
 * one by one, the most of the restart's chain decision).  Without one,
 * every parent map is looked at: one that leaves a page to the parent
 * needs the filler that will not come.
 */
static int scan_stream(const char *image, int k, uint32_t *streams, char *why, size_t whylen)
{
	static struct co_reader r;
	static struct co_pagemap pm;
	static struct co_vma v;
	static struct co_proc proc;
	char path[PATH_MAX + 16];
	co_stream_path(path, sizeof(path), image, k);
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = -1;
	if (fd < 0)
		return co_err(why, whylen, "cannot open %s", path);
	co_r_init(&r, fd, path);
	for (;;) {
		int e = co_r_next(&r);
		if (e <= 0) {
			co_err(why, whylen, "%s", e < 0 ? r.err : "image ends before its end record");
			break;
		}
		unsigned t = r.hdr.type;
		if (t == CO_R_END) {
			ret = 0;
			break;
		}
		if ((t == CO_R_PAGEMAP || t == CO_R_PARENTMAP || t == CO_R_PAGEDATA) && filler_comes()) {
			ret = 1;
			break;
		}
		int fail = 0;
		if (t == CO_R_PROC && !k) {
			fail = co_r_payload(&r, &proc, sizeof(proc));
			*streams = proc.streams < 1 ? 1 : proc.streams;
		} else if (t == CO_R_VMA && !k) {
			fail = co_r_payload(&r, &v, sizeof(v));
			if (!fail)
				add_region(&v);
		} else if (t == CO_R_COWMAP) {
			fail = co_r_payload(&r, &pm, sizeof(pm));
			if (!fail)
				not_lazy(&pm);
		} else if (t == CO_R_PARENTMAP) { /* its count of runs, not the runs */
			fail = co_r_read(&r, &pm, offsetof(struct co_pagemap, runs)) || co_r_skip(&r, r.left) ||
			       co_r_finish(&r);
			if (!fail && pm.nruns) {
				co_err(why, whylen, "%s: pages kept in the parent image, and no region restored lazily", path);
				break;
			}
		} else { /* passed over, unread: whoever uses it checks it */
			fail = co_r_skip(&r, r.left) || co_r_finish(&r);
		}
		if (fail) {
			co_err(why, whylen, "%s", r.err);
			break;
		}
	}
	close(fd);
	return ret;
}

/* Does gen-N's image of process p leave pages to its parent only where a filler comes for them? */
static int image_ok(const char *dir, const struct co_mproc *p, char *why, size_t whylen)
{
	char image[PATH_MAX + 80];
	uint32_t streams = 1;
	snprintf(image, sizeof(image), "%s/%s", dir, p->image);
	nregs = 0;
	for (uint32_t k = 0; k < streams && k < CO_STREAMS; k++) {
		int r = scan_stream(image, (int)k, &streams, why, whylen);
		if (r)
			return r < 0 ? -1 : 0;
	}
	return 0;
}

/*
 * Can we make the userfaultfd the restorers will (lazy.c, new_uffd: not
 * user-mode only, the filler's events)?  Where we cannot, they could not
 * either, and the restart would be eager: the chain must be merged.
 */
static int uffd_usable(void)
{
	long fd = co_uffd_new(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
					       UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP);
	if (fd < 0)
		return 0;
	close((int)fd);
	return 1;
}

int co_chain_lazy_ok(const struct co_chain_dirs *c, const struct co_mproc *p, int n, char *why, size_t whylen)
{
	if (!uffd_usable())
		return co_err(why, whylen, "no userfaultfd for a lazy restart here");
	/*
	 * The filler writes the pages of eagerly restored regions through
	 * /proc/PID/mem, which takes ptrace access: Yama (ptrace_scope 1, the
	 * filler is no ancestor of the group's) or a program that made itself
	 * undumpable would refuse a user without CAP_SYS_PTRACE.
	 */
	if (geteuid() != 0)
		return co_err(why, whylen, "not root: the filler may not write the pages restored eagerly");
	static struct co_manifest m;
	static struct co_mproc lp[CO_TABLE_SLOTS];
	static uint8_t down[CO_TABLE_SLOTS]; /* p[i]'s image of this layer is incremental still */
	int ln;
	for (int i = 0; i < n; i++) {
		down[i] = !(p[i].flags & CO_MP_ZOMBIE) && (p[i].flags & CO_MP_INCREMENTAL);
		if (down[i] && (p[i].flags & CO_MP_COMPRESSED))
			return co_err(why, whylen, "the image of pid %d is compressed", p[i].pid);
		if (down[i] && image_ok(c->dir[0], &p[i], why, whylen))
			return -1;
	}
	/* down the chain: each older image the filler reads must be there, and uncompressed */
	for (int j = 1; j < c->n; j++) {
		if (co_read_manifest(c->dir[j], &m, lp, CO_TABLE_SLOTS, &ln, why, whylen))
			return -1;
		for (int i = 0; i < n; i++) {
			if (!down[i])
				continue;
			const struct co_mproc *q = NULL;
			for (int k = 0; k < ln && !q; k++)
				if (lp[k].pid == p[i].pid && !(lp[k].flags & CO_MP_ZOMBIE))
					q = &lp[k];
			if (!q)
				return co_err(why, whylen, "%s has no image of pid %d", c->dir[j], p[i].pid);
			if (q->flags & CO_MP_COMPRESSED)
				return co_err(why, whylen, "%s/%s is compressed", c->dir[j], q->image);
			down[i] = (q->flags & CO_MP_INCREMENTAL) != 0;
		}
	}
	for (int i = 0; i < n; i++)
		if (down[i])
			return co_err(why, whylen, "pid %d: no full image at the end of the chain", p[i].pid);
	return 0;
}
