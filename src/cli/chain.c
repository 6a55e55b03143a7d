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
 * the program runs.  The restorer hands a process that left pages to the
 * parent to a filler whether any of its regions is lazy or not
 * (src/restore/lazy.c, co_lazy_handoff).  So what must hold is that the
 * restorers can make the filler's userfaultfd, that we are root (the
 * filler writes through /proc/PID/mem), and that the image and every
 * older one down the chain are uncompressed (the filler reads them with
 * pread).
 *
 * Where any of it does not hold, the restart merges full-N first, as
 * before.  Nothing of the images but their manifests is read here: the
 * restorer and the filler check every record they use.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "res.h"
#include "util.h"

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
