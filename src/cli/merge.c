/*
 * merge.c - incremental generations and their merged full images.
 *
 * An incremental generation IMAGES/NAME/gen-N holds, per process, the
 * complete metadata and the data of the pages written since its parent
 * generation; parent map records list the pages whose data stays in the
 * parent's image.  Merging makes IMAGES/NAME/full-N, a full image of the
 * same state: metadata and written pages from gen-N, unchanged pages from
 * the parent's full image (gen-P when P is full, else full-P, built first
 * if missing).  Nothing committed is ever changed: full-N is written into
 * .tmp-full-N.PID, fsynced and renamed, and files that do not change
 * (shared objects, file copies, images of processes saved whole) are hard
 * links.  Every record read is checked against its checksum, so a damaged
 * input fails the merge instead of spreading into the full image.
 *
 * Both images are read once, front to back: page data is in address order
 * within and across the page streams of an image, so a single cursor walks
 * the parent while the incremental's batches are merged into it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "res.h"
#include "util.h"

/* fill err, evaluate to -1 */
#define MERR(...) merr(err, errlen, __VA_ARGS__)
__attribute__((format(printf, 3, 4))) static int merr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int co_full_dir(const char *gdir, uint64_t gen, char *out, size_t n)
{
	return snprintf(out, n, "%s/full-%06llu", gdir, (unsigned long long)gen) >= (int)n ? -1 : 0;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

int co_generation_usable(const char *gdir, uint64_t gen)
{
	char dir[PATH_MAX], err[256];
	static struct co_manifest m;
	static struct co_mproc p[CO_TABLE_SLOTS];
	int n;
	co_gen_dir(gdir, gen, dir, sizeof(dir));
	return co_read_manifest(dir, &m, p, CO_TABLE_SLOTS, &n, err, sizeof(err)) == 0;
}

/* ---- a process image being read, with its page streams ---- */

struct image_in {
	int n;				/* streams open */
	int fd[CO_STREAMS];
	char path[CO_STREAMS][PATH_MAX];
	struct co_reader r[CO_STREAMS];
};

static void close_image(struct image_in *in)
{
	for (int k = 0; k < in->n; k++)
		close(in->fd[k]);
	in->n = 0;
}

/* Open image and its page streams; its process record goes to proc, every head is checked. */
static int open_image(const char *image, struct image_in *in, struct co_proc *proc, char *err, size_t errlen)
{
	in->n = 0;
	for (int k = 0; k == 0 || k < (int)proc->streams; k++) {
		struct co_head h;
		co_stream_path(in->path[k], PATH_MAX, image, k);
		if ((in->fd[k] = open(in->path[k], O_RDONLY | O_CLOEXEC)) < 0) {
			MERR("%s: %s", in->path[k], strerror(errno));
			close_image(in);
			return -1;
		}
		co_r_init(&in->r[k], in->fd[k], in->path[k]);
		in->n++;
		if (co_r_expect(&in->r[k], CO_R_HEAD, &h, sizeof(h)) ||
		    (k == 0 && co_r_expect(&in->r[0], CO_R_PROC, proc, sizeof(*proc)))) {
			MERR("%s", in->r[k].err);
			close_image(in);
			return -1;
		}
		if (h.kind != (k ? CO_KIND_PAGES : CO_KIND_PROCESS) || h.version != CO_IMG_VERSION ||
		    proc->streams < 1 || proc->streams > CO_STREAMS) {
			MERR("%s: not a process image of this format", in->path[k]);
			close_image(in);
			return -1;
		}
	}
	return 0;
}

/* ---- the parent's pages, walked once in address order ---- */

struct cursor {
	struct image_in in;
	int k;				/* current stream */
	struct co_pagemap pm;
	uint32_t run;			/* current run of pm */
	uint64_t done;			/* pages of it already passed */
	int loaded;			/* pm is loaded and its data record open */
};

static char buf[1 << 20];

/* Load the next page map of the parent; 0 ok, 1 no more pages, -1 error. */
static int cur_load(struct cursor *c, char *err, size_t errlen)
{
	for (;;) {
		if (c->k >= c->in.n)
			return 1;
		struct co_reader *r = &c->in.r[c->k];
		if (c->loaded && co_r_finish(r))
			return MERR("%s", r->err);
		c->loaded = 0;
		int e = co_r_next(r);
		if (e <= 0)
			return MERR("%s", e < 0 ? r->err : "parent image ends before its end record");
		unsigned t = r->hdr.type;
		if (t == CO_R_END) {
			if (co_r_finish(r))
				return MERR("%s", r->err);
			c->k++;
			continue;
		}
		if (t == CO_R_PARENTMAP)
			return MERR("%s: byte %lu: the parent image is itself incremental", r->name,
				    (unsigned long)r->rec_off);
		if (t != CO_R_PAGEMAP) { /* metadata of stream 0: not needed here */
			if (co_r_finish(r))
				return MERR("%s", r->err);
			continue;
		}
		if (co_r_payload(r, &c->pm, sizeof(c->pm)))
			return MERR("%s", r->err);
		if (c->pm.nruns > CO_MAX_RUNS || co_r_next(r) != 1 || r->hdr.type != CO_R_PAGEDATA ||
		    r->hdr.len != c->pm.npages * CO_PAGE)
			return MERR("%s: byte %lu: page data does not match its page map", r->name,
				    (unsigned long)r->rec_off);
		c->loaded = 1;
		c->run = 0;
		c->done = 0;
		if (c->pm.nruns)
			return 0;
	}
}

/* Pass n bytes of the current data record (still checked). */
static int cur_skip(struct co_reader *r, uint64_t n, char *err, size_t errlen)
{
	while (n) {
		uint64_t k = n < sizeof(buf) ? n : sizeof(buf);
		if (co_r_read(r, buf, k))
			return MERR("%s", r->err);
		n -= k;
	}
	return 0;
}

/* Copy the parent's pages [addr, addr + npages) to w. */
static int cur_copy(struct cursor *c, uint64_t addr, uint64_t npages, struct co_writer *w, char *err, size_t errlen)
{
	while (npages) {
		if (!c->loaded || c->run >= c->pm.nruns) {
			int e = cur_load(c, err, errlen);
			if (e < 0)
				return -1;
			if (e > 0)
				return MERR("page %lx of the incremental image is missing from its parent image",
					    (unsigned long)addr);
			continue;
		}
		struct co_reader *r = &c->in.r[c->k];
		const struct co_run *run = &c->pm.runs[c->run];
		uint64_t at = run->addr + c->done * CO_PAGE, left = run->npages - c->done;
		if (at + left * CO_PAGE <= addr) {
			if (cur_skip(r, left * CO_PAGE, err, errlen))
				return -1;
			c->run++;
			c->done = 0;
			continue;
		}
		if (at < addr) {
			uint64_t k = (addr - at) / CO_PAGE;
			if (cur_skip(r, k * CO_PAGE, err, errlen))
				return -1;
			c->done += k;
			continue;
		}
		if (at > addr)
			return MERR("%s: page %lx of the incremental image is missing from its parent image", r->name,
				    (unsigned long)addr);
		uint64_t k = npages < left ? npages : left;
		if (k > sizeof(buf) / CO_PAGE)
			k = sizeof(buf) / CO_PAGE;
		if (co_r_read(r, buf, k * CO_PAGE))
			return MERR("%s", r->err);
		co_w_put(w, buf, k * CO_PAGE);
		c->done += k;
		addr += k * CO_PAGE;
		npages -= k;
		if (c->done == run->npages) {
			c->run++;
			c->done = 0;
		}
	}
	return 0;
}

/* ---- one process image ---- */

struct seg {
	uint64_t addr, npages;
	int kept;
};
static struct seg segs[2 * CO_MAX_RUNS];
static struct co_pagemap kept, written, out;

/* Copy n payload bytes of the current record of r to w. */
static int copy_payload(struct co_reader *r, struct co_writer *w, uint64_t n, char *err, size_t errlen)
{
	while (n) {
		uint64_t k = n < sizeof(buf) ? n : sizeof(buf);
		if (co_r_read(r, buf, k))
			return MERR("%s", r->err);
		co_w_put(w, buf, k);
		n -= k;
	}
	return co_r_finish(r) ? MERR("%s", r->err) : 0;
}

/* Write the segments [from, to) as one page map and its data. */
static int write_chunk(struct co_reader *ir, struct cursor *pc, struct co_writer *w, int from, int to, char *err,
		       size_t errlen)
{
	out.nruns = 0;
	out.npages = 0;
	for (int i = from; i < to; i++) {
		struct co_run *last = out.nruns ? &out.runs[out.nruns - 1] : 0;
		if (last && last->addr + last->npages * CO_PAGE == segs[i].addr)
			last->npages += segs[i].npages;
		else
			out.runs[out.nruns++] = (struct co_run){ segs[i].addr, segs[i].npages };
		out.npages += segs[i].npages;
	}
	co_w_rec(w, CO_R_PAGEMAP, &out, __builtin_offsetof(struct co_pagemap, runs) + out.nruns * sizeof(struct co_run));
	co_w_begin(w, CO_R_PAGEDATA, out.npages * CO_PAGE, 1);
	for (int i = from; i < to; i++) {
		if (segs[i].kept) {
			if (cur_copy(pc, segs[i].addr, segs[i].npages, w, err, errlen))
				return -1;
			continue;
		}
		for (uint64_t left = segs[i].npages * CO_PAGE; left;) {
			uint64_t k = left < sizeof(buf) ? left : sizeof(buf);
			if (co_r_read(ir, buf, k))
				return MERR("%s", ir->err);
			co_w_put(w, buf, k);
			left -= k;
		}
	}
	co_w_end(w);
	return 0;
}

/* One batch of the incremental (parent map, page map, data): merged in address order. */
static int merge_batch(struct co_reader *ir, struct cursor *pc, struct co_writer *w, uint64_t *pages, char *err,
		       size_t errlen)
{
	if (co_r_payload(ir, &kept, sizeof(kept)))
		return MERR("%s", ir->err);
	if (co_r_expect(ir, CO_R_PAGEMAP, &written, sizeof(written)))
		return MERR("%s", ir->err);
	if (kept.nruns > CO_MAX_RUNS || written.nruns > CO_MAX_RUNS || co_r_next(ir) != 1 ||
	    ir->hdr.type != CO_R_PAGEDATA || ir->hdr.len != written.npages * CO_PAGE)
		return MERR("%s: byte %lu: page data does not match its page map", ir->name, (unsigned long)ir->rec_off);
	int n = 0;
	uint32_t i = 0, j = 0;
	while (i < kept.nruns || j < written.nruns) {
		int take_kept = j >= written.nruns || (i < kept.nruns && kept.runs[i].addr < written.runs[j].addr);
		const struct co_run *r = take_kept ? &kept.runs[i++] : &written.runs[j++];
		segs[n++] = (struct seg){ r->addr, r->npages, take_kept };
	}
	/* a chunk may hold at most CO_MAX_RUNS runs: one segment is at most one run */
	for (int from = 0; from < n; from += CO_MAX_RUNS) {
		int to = from + CO_MAX_RUNS < n ? from + CO_MAX_RUNS : n;
		if (write_chunk(ir, pc, w, from, to, err, errlen))
			return -1;
	}
	*pages += kept.npages + written.npages;
	return co_r_finish(ir) ? MERR("%s", ir->err) : 0;
}

static char wbuf[1 << 20];

/* full = incr (metadata, written pages) + parent (the pages it kept). */
static int merge_proc(const char *incr, const char *parent, const char *full, char *err, size_t errlen)
{
	static struct co_proc proc, pproc;
	static struct cursor pc;
	static struct image_in ii;
	static char opath[CO_STREAMS][PATH_MAX];
	memset(&pc, 0, sizeof(pc));
	int ret = -1, nout = 0, ofd[CO_STREAMS] = { -1, -1 };
	if (open_image(incr, &ii, &proc, err, errlen))
		return -1;
	if (open_image(parent, &pc.in, &pproc, err, errlen))
		goto out;
	if (pproc.pid != proc.pid || pproc.parent) {
		MERR("%s: not the full image of pid %d", parent, proc.pid);
		goto out;
	}
	int nin = ii.n;
	/* one output stream per input stream */
	struct co_writer w;
	for (nout = 0; nout < nin; nout++) {
		co_stream_path(opath[nout], PATH_MAX, full, nout);
		if ((ofd[nout] = open(opath[nout], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
			MERR("%s: %s", opath[nout], strerror(errno));
			goto out;
		}
	}
	for (int k = 0; k < nin; k++) {
		co_w_init(&w, ofd[k], wbuf, sizeof(wbuf));
		co_w_head(&w, k ? CO_KIND_PAGES : CO_KIND_PROCESS);
		uint64_t pages = 0;
		struct co_reader *r = &ii.r[k];
		if (k == 0) {
			proc.parent = 0;
			co_w_rec(&w, CO_R_PROC, &proc, sizeof(proc));
		}
		for (;;) {
			int e = co_r_next(r);
			if (e <= 0) {
				MERR("%s", e < 0 ? r->err : "incremental image ends before its end record");
				goto out;
			}
			unsigned t = r->hdr.type;
			if (t == CO_R_END) {
				if (co_r_finish(r)) {
					MERR("%s", r->err);
					goto out;
				}
				break;
			}
			if (t == CO_R_PARENTMAP) {
				if (merge_batch(r, &pc, &w, &pages, err, errlen))
					goto out;
				continue;
			}
			/*
			 * Anything else as it is: metadata (threads, descriptors, file
			 * data, regions), and page maps without a parent map.
			 */
			if (t == CO_R_PAGEDATA)
				pages += r->hdr.len / CO_PAGE;
			co_w_begin(&w, t, r->hdr.len, t == CO_R_PAGEDATA || t == CO_R_FILEDATA);
			if (copy_payload(r, &w, r->hdr.len, err, errlen))
				goto out;
			co_w_end(&w);
		}
		struct co_end end = { w.seq + 1, pages * CO_PAGE };
		co_w_rec(&w, CO_R_END, &end, sizeof(end));
		if (co_w_flush(&w)) {
			MERR("writing %s: %s", opath[k], strerror(-w.err));
			goto out;
		}
	}
	ret = 0;
out:
	close_image(&ii);
	close_image(&pc.in);
	for (int k = 0; k < nout; k++)
		close(ofd[k]);
	return ret;
}

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
			while (in >= 0 && o >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
				if (write(o, buf, (size_t)n) != n)
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

/* Build full-N from gen-N (incremental) and the full image of its parent. */
static int merge_gen(const char *gdir, uint64_t gen, int depth, char *err, size_t errlen);

int co_restore_dir_depth(const char *gdir, uint64_t gen, char *out, size_t n, int depth, char *err, size_t errlen)
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
	if (depth > 100000)
		return MERR("%s: the chain of incremental generations does not end", dir);
	return merge_gen(gdir, gen, depth + 1, err, errlen);
}

int co_restore_dir(const char *gdir, uint64_t gen, char *out, size_t n, char *err, size_t errlen)
{
	return co_restore_dir_depth(gdir, gen, out, n, 0, err, errlen);
}

static int merge_gen(const char *gdir, uint64_t gen, int depth, char *err, size_t errlen)
{
	static struct co_mproc p[CO_TABLE_SLOTS], bp[CO_TABLE_SLOTS];
	struct co_manifest m, bm;
	int np, nbp;
	char dir[PATH_MAX], base[PATH_MAX], tmp[PATH_MAX], full[PATH_MAX];
	co_gen_dir(gdir, gen, dir, sizeof(dir));
	if (read_manifest_of(dir, &m, p, &np, err, errlen))
		return -1;
	/* the parent's full image first (it may need a merge of its own, which reuses p and bp) */
	if (co_restore_dir_depth(gdir, m.parent, base, sizeof(base), depth, err, errlen))
		return -1;
	if (read_manifest_of(dir, &m, p, &np, err, errlen) || read_manifest_of(base, &bm, bp, &nbp, err, errlen))
		return -1;
	co_full_dir(gdir, gen, full, sizeof(full));
	snprintf(tmp, sizeof(tmp), "%s/.tmp-full-%06llu.%d", gdir, (unsigned long long)gen, (int)getpid());
	co_remove_tree(tmp);
	if (mkdir(tmp, 0700) < 0)
		return MERR("cannot create %s: %s", tmp, strerror(errno));
	struct skipset ss = { p, np };
	int r = link_tree(dir, tmp, skip_merged, &ss, err, errlen);
	for (int i = 0; i < np && !r; i++) {
		if (!(p[i].flags & CO_MP_INCREMENTAL))
			continue;
		int b = -1;
		for (int k = 0; k < nbp && b < 0; k++)
			if (bp[k].pid == p[i].pid && !(bp[k].flags & CO_MP_ZOMBIE))
				b = k;
		if (b < 0) {
			r = MERR("%s: pid %d is incremental but its parent generation %llu has no image of it", dir,
				 p[i].pid, (unsigned long long)m.parent);
			break;
		}
		char in[PATH_MAX], par[PATH_MAX], o[PATH_MAX];
		snprintf(in, sizeof(in), "%s/%s", dir, p[i].image);
		snprintf(par, sizeof(par), "%s/%s", base, bp[b].image);
		snprintf(o, sizeof(o), "%s/%s", tmp, p[i].image);
		r = merge_proc(in, par, o, err, errlen);
		if (!r) {
			struct stat st, st1;
			char o1[PATH_MAX];
			co_stream_path(o1, sizeof(o1), o, 1);
			p[i].bytes = (stat(o, &st) == 0 ? (uint64_t)st.st_size : 0) +
				     (stat(o1, &st1) == 0 ? (uint64_t)st1.st_size : 0);
			p[i].flags &= ~(uint32_t)CO_MP_INCREMENTAL;
		}
	}
	if (!r) {
		m.kind = CO_GEN_MERGED;
		m.bytes = 0;
		for (int i = 0; i < np; i++)
			m.bytes += p[i].bytes;
		if (co_write_manifest(tmp, &m, p, np) < 0)
			r = MERR("cannot write the manifest in %s: %s", tmp, strerror(errno));
	}
	if (!r && co_commit_dir(tmp, full, gdir, err, errlen) < 0) {
		/* another merge of the same generation may have got there first */
		r = exists(full) ? 0 : -1;
	}
	if (r || exists(tmp))
		co_remove_tree(tmp);
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The generations in gdir, oldest first; returns how many (at most max). */
static int list_gens(const char *gdir, uint64_t *g, int max)
{
	DIR *d = opendir(gdir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d)) && n < max;) {
		unsigned long long v;
		char tail;
		if (sscanf(e->d_name, "gen-%llu%c", &v, &tail) == 1)
			g[n++] = v;
	}
	if (d)
		closedir(d);
	qsort(g, (size_t)n, sizeof(*g), cmp_u64);
	return n;
}

/* Leftovers of merges that were killed half-way: their pid is gone. */
static void remove_stale_tmp(const char *gdir)
{
	DIR *d = opendir(gdir);
	for (struct dirent *e; d && (e = readdir(d));) {
		unsigned long long g;
		int pid;
		if (sscanf(e->d_name, ".tmp-full-%llu.%d", &g, &pid) == 2 && pid != getpid() &&
		    kill(pid, 0) < 0 && errno == ESRCH) {
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", gdir, e->d_name);
			co_remove_tree(p);
		}
	}
	if (d)
		closedir(d);
}

#define MAX_GENS 100000
int co_merge_all(const char *gdir, char *err, size_t errlen)
{
	static uint64_t g[MAX_GENS];
	remove_stale_tmp(gdir);
	int n = list_gens(gdir, g, MAX_GENS);
	for (int i = 0; i < n; i++) {
		char out[PATH_MAX];
		if (co_restore_dir(gdir, g[i], out, sizeof(out), err, errlen))
			return -1;
	}
	return 0;
}

/* Kind and parent of generation g; -1 when it cannot be read. */
static int gen_kind(const char *gdir, uint64_t g, uint64_t *parent)
{
	static struct co_manifest m;
	static struct co_mproc p[CO_TABLE_SLOTS];
	char dir[PATH_MAX], err[256];
	int n;
	co_gen_dir(gdir, g, dir, sizeof(dir));
	if (co_read_manifest(dir, &m, p, CO_TABLE_SLOTS, &n, err, sizeof(err)))
		return -1;
	*parent = m.parent;
	return (int)m.kind;
}

void co_prune(const char *gdir, unsigned keep)
{
	static uint64_t g[MAX_GENS];
	static unsigned char need[MAX_GENS];
	int n = list_gens(gdir, g, MAX_GENS);
	if (n <= (int)keep)
		return;
	memset(need, 0, (size_t)n);
	for (int i = n - (int)keep; i < n; i++) {
		/* a kept generation needs its chain of parents until a full image */
		for (int k = i; k >= 0;) {
			need[k] = 1;
			uint64_t parent = 0;
			char full[PATH_MAX];
			co_full_dir(gdir, g[k], full, sizeof(full));
			if (gen_kind(gdir, g[k], &parent) != CO_GEN_INCREMENTAL || exists(full))
				break;
			int j = k - 1;
			while (j >= 0 && g[j] != parent)
				j--;
			k = j;
		}
	}
	for (int i = 0; i < n; i++) {
		if (need[i])
			continue;
		char dir[PATH_MAX];
		co_full_dir(gdir, g[i], dir, sizeof(dir));
		co_remove_tree(dir);
		co_gen_dir(gdir, g[i], dir, sizeof(dir));
		co_remove_tree(dir);
	}
}
