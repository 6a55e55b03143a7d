/*
 * merge.c - incremental generations and their merged full images.
 *
 * An incremental generation IMAGES/NAME/gen-N holds, per process, the
 * complete metadata and the data of the pages written since its parent
 * generation; parent map records list the pages whose data stays in the
 * parent's image.  Merging makes IMAGES/NAME/full-N, a full image of the
 * same state: metadata and written pages from gen-N, unchanged pages from
 * the chain of images below it, down to the newest full image there is
 * (gen-B of a full generation, or the full-B of an incremental one).
 * Nothing committed is ever changed: full-N is written into
 * .tmp-full-N.PID, fsynced and renamed, and files that do not change
 * (shared objects, file copies, images of processes saved whole) are hard
 * links.  Every record read is checked against its checksum, so a damaged
 * input fails the merge instead of spreading into the full image.
 *
 * One pass over the chain: each of its images is read once, front to
 * back, and full-N is the only image written (no intermediate full-K; a
 * chain longer than MAX_LAYERS is merged in steps).  The background merge, which folds each
 * new incremental into the full image of its parent, is the same pass
 * over a chain of two.
 *
 * Three files: merge.c walks a generation's chain and writes full-N (links
 * for what does not change, the manifest, the commit); merge_pages.c is
 * the page merge of one process over its chain of images; merge_dir.c
 * keeps the group's directory: the background merge of every generation,
 * the recovery at a start, the pruning.  merge_int.h is what they share.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "merge_int.h"
#include "progress.h"
#include "res.h"
#include "util.h"

struct co_progress *co_merge_progress;

/* ---- whole generations ---- */

/* Hard-link (or copy) what does not change from src into dst; skip(name) leaves a file out. */
static int link_tree(const char *src, const char *dst, int (*skip)(const char *, void *), void *arg, char *err,
		     size_t errlen)
{
	DIR *d = opendir(src);
	if (!d)
		return MERR("%s: %s", src, strerror(errno));
	int ret = 0;
	for (struct dirent *e; !ret && (e = readdir(d));) {
		if (e->d_name[0] == '.' || (skip && skip(e->d_name, arg)))
			continue;
		char s[PATH_MAX], t[PATH_MAX];
		snprintf(s, sizeof(s), "%s/%s", src, e->d_name);
		snprintf(t, sizeof(t), "%s/%s", dst, e->d_name);
		struct stat st;
		if (lstat(s, &st) < 0) {
			ret = MERR("%s: %s", s, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			ret = mkdir(t, 0700) < 0 ? MERR("%s: %s", t, strerror(errno)) : link_tree(s, t, 0, 0, err, errlen);
		} else if (link(s, t) < 0) {
			int in = open(s, O_RDONLY | O_CLOEXEC), o = open(t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			ssize_t n = 0;
			while (in >= 0 && o >= 0 && (n = read(in, co_merge_buf, sizeof(co_merge_buf))) > 0)
				if (write(o, co_merge_buf, (size_t)n) != n)
					n = -1;
			if (in < 0 || o < 0 || n < 0)
				ret = MERR("cannot copy %s to %s: %s", s, t, strerror(errno));
			if (in >= 0)
				close(in);
			if (o >= 0)
				close(o);
		}
	}
	closedir(d);
	return ret;
}

struct skipset {
	const struct co_mproc *p;
	int n;
};

/* The manifest is rewritten, and the images of incremental processes are merged. */
static int skip_merged(const char *name, void *arg)
{
	const struct skipset *s = arg;
	if (!strcmp(name, "manifest"))
		return 1;
	for (int i = 0; i < s->n; i++) {
		char pre[80];
		if (!(s->p[i].flags & CO_MP_INCREMENTAL))
			continue;
		snprintf(pre, sizeof(pre), "proc-%d.", s->p[i].pid);
		if (!strncmp(name, pre, strlen(pre)))
			return 1;
	}
	return 0;
}

static int read_manifest_of(const char *dir, struct co_manifest *m, struct co_mproc *p, int *n, char *err,
			    size_t errlen)
{
	return co_read_manifest(dir, m, p, CO_TABLE_SLOTS, n, err, errlen);
}

/*
 * The chain of gen-N (incremental, without full-N): its generations back to
 * the newest full image, an older incremental's full-K counting as one.
 * 0 done, 1 longer than MAX_LAYERS (c has the newest MAX_LAYERS, all
 * incremental), -1 error.
 */
static int chain_resolve(const char *gdir, uint64_t gen, struct chain *c, char *err, size_t errlen)
{
	for (c->n = 0; c->n < MAX_LAYERS; c->n++) {
		struct chain_gen *g = &c->g[c->n];
		g->gen = gen;
		/* below gen-N, an incremental generation's full-K ends the chain like a full generation */
		co_full_dir(gdir, gen, g->dir, sizeof(g->dir));
		if (!c->n || !exists(g->dir)) {
			co_gen_dir(gdir, gen, g->dir, sizeof(g->dir));
			if (!exists(g->dir))
				return MERR("generation %llu is not in %s", (unsigned long long)gen, gdir);
		}
		if (read_manifest_of(g->dir, &g->m, g->p, &g->np, err, errlen))
			return -1;
		/* the parent its child was taken against (a merged full-K is made of that gen-K) */
		uint64_t want = c->n ? c->g[c->n - 1].m.parent_digest : 0, got = 0;
		char mpath[PATH_MAX + 16];
		snprintf(mpath, sizeof(mpath), "%s/manifest", g->dir);
		if (want && !strncmp(g->dir + strlen(gdir), "/gen-", 5) && (co_file_digest(mpath, &got) || got != want))
			return MERR("%s: not the parent generation %s was taken against (its manifest's digest is "
				    "%016llx, expected %016llx)", g->dir, c->g[c->n - 1].dir, (unsigned long long)got,
				    (unsigned long long)want);
		if (g->m.kind != CO_GEN_INCREMENTAL) {
			c->n++;
			return 0;
		}
		if (!g->m.parent || g->m.parent >= gen)
			return MERR("%s: its parent generation %llu is not an older one", g->dir,
				    (unsigned long long)g->m.parent);
		gen = g->m.parent;
	}
	return 1;
}

int co_chain_dirs(const char *gdir, uint64_t gen, struct co_chain_dirs *out, char *err, size_t errlen)
{
	static struct chain c;
	int r = chain_resolve(gdir, gen, &c, err, errlen);
	if (r)
		return r;
	out->n = c.n;
	for (int i = 0; i < c.n; i++)
		snprintf(out->dir[i], sizeof(out->dir[i]), "%s", c.g[i].dir);
	return 0;
}

/*
 * About what the full images of c's incremental processes take: what their
 * newest full images below take (each process keeps its size, roughly).
 * Compressed, those sizes are not what is written: 0, not known.
 */
static uint64_t full_estimate(const struct chain *c)
{
	const struct chain_gen *top = &c->g[0], *base = &c->g[c->n - 1];
	uint64_t total = 0;
	for (int i = 0; i < top->np; i++) {
		const struct co_mproc *mp = &top->p[i], *old;
		if (!(mp->flags & CO_MP_INCREMENTAL))
			continue;
		if ((old = co_chain_find_proc(base, mp->pid)) && (old->flags & CO_MP_COMPRESSED))
			return 0;
		total += old ? old->bytes : 0;
	}
	return total;
}

/* Write full-N for the chain c: links for what does not change, one pass over the chain per incremental process. */
static int write_full(const char *gdir, struct chain *c, char *err, size_t errlen)
{
	struct chain_gen *top = &c->g[0];
	char tmp[PATH_MAX], full[PATH_MAX];
	if (co_merge_progress)
		co_progress_set(co_merge_progress, "merging incrementals", 0, full_estimate(c));
	co_full_dir(gdir, top->gen, full, sizeof(full));
	snprintf(tmp, sizeof(tmp), "%s/.tmp-full-%06llu.%d", gdir, (unsigned long long)top->gen, (int)getpid());
	co_remove_tree(tmp);
	if (mkdir(tmp, 0700) < 0)
		return MERR("cannot create %s: %s", tmp, strerror(errno));
	struct skipset ss = { top->p, top->np };
	int r = link_tree(top->dir, tmp, skip_merged, &ss, err, errlen);
	for (int i = 0; i < top->np && !r; i++) {
		struct co_mproc *p = &top->p[i];
		if (!(p->flags & CO_MP_INCREMENTAL))
			continue;
		char o[PATH_MAX];
		snprintf(o, sizeof(o), "%s/%s", tmp, p->image);
		/* a compressed incremental makes a compressed full image: disk use stays what it was */
		r = co_merge_proc(c, p, o, p->flags & CO_MP_COMPRESSED, err, errlen);
		if (!r) {
			p->bytes = co_img_bytes(o);
			p->flags &= ~(uint32_t)CO_MP_INCREMENTAL;
		}
	}
	if (!r) {
		top->m.kind = CO_GEN_MERGED;
		top->m.bytes = 0;
		for (int i = 0; i < top->np; i++)
			top->m.bytes += top->p[i].bytes;
		if (co_write_manifest(tmp, &top->m, top->p, top->np) < 0)
			r = MERR("cannot write the manifest in %s: %s", tmp, strerror(errno));
	}
	/* pruned meanwhile (co_prune runs beside the merge): its full image would be of nothing */
	char gen[PATH_MAX];
	co_gen_dir(gdir, top->gen, gen, sizeof(gen));
	if (!r && !exists(gen)) {
		co_remove_tree(tmp);
		return 0;
	}
	if (!r)
		co_crash_point("merge");
	if (!r && co_commit_dir(tmp, full, gdir, err, errlen) < 0) {
		/* another merge of the same generation may have got there first */
		r = exists(full) ? 0 : -1;
	}
	if (r || exists(tmp))
		co_remove_tree(tmp);
	return r;
}

/*
 * Build full-N (gen-N incremental) in one pass over its chain.  A chain
 * longer than MAX_LAYERS is merged in steps, oldest part first: each step
 * commits the full image of the oldest generation it can reach.
 */
static int build_full(const char *gdir, uint64_t gen, char *err, size_t errlen)
{
	static struct chain c;
	uint64_t target = gen;
	for (;;) {
		int r = chain_resolve(gdir, target, &c, err, errlen);
		if (r == 1) {
			target = c.g[MAX_LAYERS - 1].gen;
			continue;
		}
		if (r || write_full(gdir, &c, err, errlen))
			return -1;
		if (target == gen)
			return 0;
		target = gen;
	}
}

int co_restore_dir(const char *gdir, uint64_t gen, char *out, size_t n, char *err, size_t errlen)
{
	static struct co_manifest m;
	static struct co_mproc p[CO_TABLE_SLOTS];
	int np;
	char dir[PATH_MAX];
	co_gen_dir(gdir, gen, dir, sizeof(dir));
	if (!exists(dir))
		return MERR("generation %llu is not in %s", (unsigned long long)gen, gdir);
	if (read_manifest_of(dir, &m, p, &np, err, errlen))
		return -1;
	if (m.kind != CO_GEN_INCREMENTAL) {
		snprintf(out, n, "%s", dir);
		return 0;
	}
	co_full_dir(gdir, gen, out, n);
	if (exists(out))
		return 0;
	return build_full(gdir, gen, err, errlen);
}
