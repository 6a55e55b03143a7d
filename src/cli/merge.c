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
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "progress.h"
#include "res.h"
#include "util.h"

/* fill err, evaluate to -1 */
#define MERR(...) co_err(err, errlen, __VA_ARGS__)

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

/*
 * Close the streams.  failed: a reader stopped with the message in err;
 * what a stream's decompression found (zstd, compressed offset) replaces it.
 */
static int close_image(struct image_in *in, int failed, char *err, size_t errlen)
{
	for (int k = 0; k < in->n; k++)
		failed |= co_img_close(in->fd[k], err, errlen) != 0;
	in->n = 0;
	return failed ? -1 : 0;
}

/* Open image and its page streams; its process record goes to proc, every head is checked. */
/* want: what the images must be bound to (stream set here); NULL: anything (a pre-copy's) */
static int open_image(const char *image, struct image_in *in, struct co_proc *proc, const struct co_bind *want,
		      char *err, size_t errlen)
{
	in->n = 0;
	for (int k = 0; k == 0 || k < (int)proc->streams; k++) {
		struct co_head h;
		char plain[PATH_MAX];
		co_stream_path(plain, PATH_MAX, image, k);
		if ((in->fd[k] = co_img_open(plain, &in->r[k], in->path[k], PATH_MAX, err, errlen)) < 0) {
			close_image(in, 1, err, errlen);
			return -1;
		}
		in->n++;
		if (co_r_expect(&in->r[k], CO_R_HEAD, &h, sizeof(h)) ||
		    (k == 0 && co_r_expect(&in->r[0], CO_R_PROC, proc, sizeof(*proc)))) {
			MERR("%s", in->r[k].err);
			close_image(in, 1, err, errlen);
			return -1;
		}
		struct co_bind b = want ? *want : (struct co_bind){ 0, 0, 0, 0 };
		b.stream = (uint32_t)k;
		if (co_head_check(&in->r[k], &h, k ? CO_KIND_PAGES : CO_KIND_PROCESS, want ? &b : NULL)) {
			MERR("%s", in->r[k].err);
			close_image(in, 1, err, errlen);
			return -1;
		}
		if (proc->streams < 1 || proc->streams > CO_STREAMS) {
			MERR("%s: a process image of %u page streams, not 1 to %d", in->path[k], proc->streams, CO_STREAMS);
			close_image(in, 1, err, errlen);
			return -1;
		}
	}
	return 0;
}

/* ---- a process's chain of images, read as one ---- */

/*
 * A layer is one process image seen as a cursor over its pages in address
 * order.  A full image has data for all its pages.  An incremental image
 * has data for the pages written since its parent generation and, in parent
 * maps, lists the pages it keeps from the layer below: the parent's image,
 * itself full or another incremental layered over its own parent.  Asked
 * for a range of pages, a layer answers each page from the newest image
 * that has its data, and every image is still read once: requests come in
 * address order (page data is in address order within and across the
 * page streams of an image), and a layer reads, checks and drops the data
 * of the pages it passes over.
 */
struct layer {
	struct image_in in;
	struct layer *below;		/* where the kept pages are; NULL: a full image */
	int k;				/* current stream */
	int loaded;			/* a batch is loaded and its data record open */
	struct co_pagemap kept, own;	/* the batch: pages kept from below, pages whose data follows */
	uint32_t ik, io;		/* next run of kept and of own */
	uint64_t done;			/* pages of that run already passed */
	int scratch;			/* a pre-copy, read once: what is read is given back (punched out) */
	uint64_t given_back;		/* scratch: bytes of its current stream punched out so far */
};

static char buf[1 << 20];

struct co_progress *co_merge_progress;

/* Move n payload bytes of r's current record to w; with w NULL only read (and check) them. */
static int move_bytes(struct co_reader *r, struct co_writer *w, uint64_t n, char *err, size_t errlen)
{
	while (n) {
		uint64_t k = n < sizeof(buf) ? n : sizeof(buf);
		if (co_r_read(r, buf, k))
			return MERR("%s", r->err);
		if (w) {
			co_w_put(w, buf, k);
			co_progress_add(co_merge_progress, k); /* the full image written so far */
		}
		n -= k;
	}
	return 0;
}

/* Read the rest of r's current record and check its trailer. */
static int finish_record(struct co_reader *r, char *err, size_t errlen)
{
	if (move_bytes(r, NULL, r->left, err, errlen))
		return -1;
	return co_r_finish(r) ? MERR("%s", r->err) : 0;
}

/* The lower of kept->runs[i] and own->runs[j]; NULL when both lists are done.  *is_own: from own. */
static const struct co_run *lower_run(const struct co_pagemap *kept, uint32_t i, const struct co_pagemap *own,
				      uint32_t j, int *is_own)
{
	*is_own = j < own->nruns && (i >= kept->nruns || own->runs[j].addr < kept->runs[i].addr);
	if (*is_own)
		return &own->runs[j];
	return i < kept->nruns ? &kept->runs[i] : NULL;
}

/* Runs that go up in address order, are not empty and add up to npages: the cursor relies on it. */
static int map_ok(const struct co_pagemap *pm)
{
	uint64_t n = 0, end = 0;
	if (pm->nruns > CO_MAX_RUNS)
		return 0;
	for (uint32_t i = 0; i < pm->nruns; i++) {
		const struct co_run *r = &pm->runs[i];
		if (r->addr < end || r->addr % CO_PAGE || !r->npages || r->npages > (UINT64_MAX - r->addr) / CO_PAGE)
			return 0;
		end = r->addr + r->npages * CO_PAGE;
		n += r->npages;
	}
	return n == pm->npages;
}

/* Load the batch whose first record (parent map or page map) r has just read, up to its data. */
static int read_batch(struct layer *l, struct co_reader *r, char *err, size_t errlen)
{
	l->kept.nruns = 0;
	l->kept.npages = 0;
	if (r->hdr.type == CO_R_PARENTMAP) {
		if (!l->below)
			return MERR("%s: byte %lu: a parent map in an image that should be full", r->name,
				    (unsigned long)r->rec_off);
		if (co_r_payload(r, &l->kept, sizeof(l->kept)) || co_r_expect(r, CO_R_PAGEMAP, &l->own, sizeof(l->own)))
			return MERR("%s", r->err);
	} else if (co_r_payload(r, &l->own, sizeof(l->own))) {
		return MERR("%s", r->err);
	}
	int e = co_r_next(r);
	if (e < 0)
		return MERR("%s", r->err);
	if (!e || !map_ok(&l->kept) || !map_ok(&l->own) || r->hdr.type != CO_R_PAGEDATA ||
	    r->hdr.len != l->own.npages * CO_PAGE)
		return MERR("%s: byte %lu: page data does not match its page map", r->name, (unsigned long)r->rec_off);
	l->loaded = 1;
	l->ik = l->io = 0;
	l->done = 0;
	return 0;
}

/*
 * Done with the batch: read the rest of its data (checked).  A scratch
 * image gives back the memory (tmpfs) or disk of what was read: the full
 * image being written takes about as much, and reusing pages just freed
 * is far cheaper here than touching new ones.
 */
static void give_back(struct layer *l, int now)
{
	const struct co_reader *r = &l->in.r[l->k];
	uint64_t upto = r->off & ~(uint64_t)(CO_PAGE - 1);
	if (!l->scratch || upto < l->given_back + (now ? CO_PAGE : (4u << 20)))
		return;
	/*
	 * A page data record can be the whole pre-copy: given back as it is
	 * read, not at its end.  Through a descriptor that may write (the
	 * reader's is read-only, and fallocate refused it: EBADF).
	 */
	int fd = open(l->in.path[l->k], O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)upto);
		close(fd);
	}
	l->given_back = upto;
}

static int end_batch(struct layer *l, char *err, size_t errlen)
{
	struct co_reader *r = &l->in.r[l->k];
	l->loaded = 0;
	int e = finish_record(r, err, errlen);
	if (!e)
		give_back(l, 1);
	return e;
}

/* Load l's next batch that has pages, passing other records (checked); 0 ok, 1 no pages left, -1 error. */
static int next_batch(struct layer *l, char *err, size_t errlen)
{
	if (l->loaded && end_batch(l, err, errlen))
		return -1;
	while (l->k < l->in.n) {
		struct co_reader *r = &l->in.r[l->k];
		int e = co_r_next(r);
		if (e <= 0)
			return e < 0 ? MERR("%s", r->err)
				     : MERR("%s: byte %lu: the image ends before its end record", r->name,
					    (unsigned long)r->off);
		if (r->hdr.type == CO_R_PARENTMAP || r->hdr.type == CO_R_PAGEMAP) {
			if (read_batch(l, r, err, errlen))
				return -1;
			if (l->kept.nruns || l->own.nruns)
				return 0;
			if (end_batch(l, err, errlen))
				return -1;
			continue;
		}
		if (finish_record(r, err, errlen))
			return -1;
		if (r->hdr.type == CO_R_END) {
			l->k++;
			l->given_back = 0;
		}
	}
	return 1;
}

/* Pass n pages of the current run of l's batch. */
static void advance(struct layer *l, int own, uint64_t n)
{
	const struct co_run *run = own ? &l->own.runs[l->io] : &l->kept.runs[l->ik];
	l->done += n;
	if (l->done == run->npages) {
		*(own ? &l->io : &l->ik) += 1;
		l->done = 0;
	}
}

/* Write l's pages [addr, addr + npages) to w, each from the newest image that has its data. */
static int layer_copy(struct layer *l, uint64_t addr, uint64_t npages, struct co_writer *w, char *err, size_t errlen)
{
	while (npages) {
		int own;
		const struct co_run *run = l->loaded ? lower_run(&l->kept, l->ik, &l->own, l->io, &own) : NULL;
		if (!run) {
			int e = next_batch(l, err, errlen);
			if (e < 0)
				return -1;
			if (e > 0)
				return MERR("%s: page %lx is missing (an image built on this one keeps it)",
					    l->in.path[l->in.n - 1], (unsigned long)addr);
			continue;
		}
		struct co_reader *r = &l->in.r[l->k];
		uint64_t at = run->addr + l->done * CO_PAGE, left = run->npages - l->done, n;
		if (at > addr)
			return MERR("%s: byte %lu: page %lx is missing (an image built on this one keeps it)", r->name,
				    (unsigned long)r->rec_off, (unsigned long)addr);
		if (at < addr) { /* pages nobody asks for: the data of newer images replaces them */
			n = (addr - at) / CO_PAGE < left ? (addr - at) / CO_PAGE : left;
			if (own && move_bytes(r, NULL, n * CO_PAGE, err, errlen))
				return -1;
		} else {
			n = npages < left ? npages : left;
			int e = own ? move_bytes(r, w, n * CO_PAGE, err, errlen)
				    : layer_copy(l->below, addr, n, w, err, errlen);
			if (e)
				return -1;
			if (own)
				give_back(l, 0);
			addr += n * CO_PAGE;
			npages -= n;
		}
		advance(l, own, n);
	}
	return 0;
}

/* Read l to its end, so that every record of every input is checked. */
static int drain(struct layer *l, char *err, size_t errlen)
{
	int e;
	while ((e = next_batch(l, err, errlen)) == 0)
		;
	return e < 0 ? -1 : 0;
}

/* ---- one process image ---- */

#define MAX_LAYERS CO_CHAIN_MAX /* images merged in one pass; a longer chain is merged in steps */

/*
 * The generations a merge of gen-N reads, newest first: gen-N, the
 * incremental generations before it, and the newest full image of the
 * chain (gen-B, or the merged full-B), with their manifests.
 */
struct chain {
	int n;
	int scratch_base;		/* its oldest image is a pre-copy: scratch (see struct layer) */
	struct chain_gen {
		uint64_t gen;
		char dir[PATH_MAX];
		struct co_manifest m;
		int np;
		struct co_mproc p[CO_TABLE_SLOTS];
	} g[MAX_LAYERS];
};

static const struct co_mproc *find_proc(const struct chain_gen *g, int pid)
{
	for (int i = 0; i < g->np; i++)
		if (g->p[i].pid == pid && !(g->p[i].flags & CO_MP_ZOMBIE))
			return &g->p[i];
	return NULL;
}

/*
 * Open the images of process mp of gen-N down the chain, as far as its
 * newest full image (the base, or a generation where it was saved whole:
 * new, or restarted since), each layered over the next.  L[0] gets gen-N's
 * image and its process record goes to proc.
 */
static int open_layers(const struct chain *c, const struct co_mproc *mp, struct layer *L, int *nl,
		       struct co_proc *proc, char *err, size_t errlen)
{
	static struct co_proc older;
	int pid = mp->pid;
	for (int j = 0;; j++) {
		struct co_proc *pr = j ? &older : proc;
		char path[PATH_MAX];
		int incr = (mp->flags & CO_MP_INCREMENTAL) != 0;
		uint64_t parent = incr ? c->g[j].m.parent : 0;
		snprintf(path, sizeof(path), "%s/%s", c->g[j].dir, mp->image);
		L[j].loaded = 0;
		L[j].k = 0;
		/* each image is its generation's (a synthetic generation 0: a pre-copy, not bound) */
		struct co_bind want = { c->g[j].m.group_id, c->g[j].m.generation, pid, 0 };
		if (open_image(path, &L[j].in, pr, c->g[j].m.generation ? &want : NULL, err, errlen))
			return -1;
		*nl = j + 1;
		if (pr->pid != pid || pr->parent != parent)
			return MERR("%s: holds pid %d built on generation %llu, expected pid %d built on %llu (0: full)",
				    path, pr->pid, (unsigned long long)pr->parent, pid, (unsigned long long)parent);
		if (!incr)
			break;
		if (j + 1 == c->n || !(mp = find_proc(&c->g[j + 1], pid)))
			return MERR("%s: pid %d is incremental but its parent generation %llu has no image of it",
				    c->g[j].dir, pid, (unsigned long long)parent);
	}
	for (int j = 0; j < *nl; j++) {
		L[j].below = j + 1 < *nl ? &L[j + 1] : NULL;
		L[j].scratch = c->scratch_base && j + 1 == *nl && j > 0;
	}
	return 0;
}

static char wbuf[1 << 20];

/* Write the runs of out as one page map and their data, taken from top; out is emptied. */
static int write_pages(struct layer *top, struct co_pagemap *out, struct co_writer *w, uint64_t *pages, char *err,
		       size_t errlen)
{
	co_w_rec(w, CO_R_PAGEMAP, out, __builtin_offsetof(struct co_pagemap, runs) + out->nruns * sizeof(struct co_run));
	co_w_begin(w, CO_R_PAGEDATA, out->npages * CO_PAGE, 1);
	for (uint32_t i = 0; i < out->nruns; i++)
		if (layer_copy(top, out->runs[i].addr, out->runs[i].npages, w, err, errlen))
			return -1;
	co_w_end(w);
	*pages += out->npages;
	out->nruns = 0;
	out->npages = 0;
	return 0;
}

/*
 * The loaded batch of top as full-image page records: its kept and its own
 * pages together in address order, at most CO_MAX_RUNS runs per page map.
 */
static int merge_batch(struct layer *top, struct co_writer *w, uint64_t *pages, char *err, size_t errlen)
{
	static struct co_pagemap out;
	uint32_t i = 0, j = 0;
	int own;
	out.nruns = 0;
	out.npages = 0;
	for (const struct co_run *run; (run = lower_run(&top->kept, i, &top->own, j, &own));) {
		*(own ? &j : &i) += 1;
		struct co_run *last = out.nruns ? &out.runs[out.nruns - 1] : NULL;
		if (last && last->addr + last->npages * CO_PAGE == run->addr) {
			last->npages += run->npages;
		} else {
			if (out.nruns == CO_MAX_RUNS && write_pages(top, &out, w, pages, err, errlen))
				return -1;
			out.runs[out.nruns++] = *run;
		}
		out.npages += run->npages;
	}
	if (out.nruns && write_pages(top, &out, w, pages, err, errlen))
		return -1;
	return end_batch(top, err, errlen);
}

/* Page stream top->k of the full image: metadata as it is, pages from the chain. */
static int merge_stream(struct layer *top, struct co_writer *w, char *err, size_t errlen)
{
	struct co_reader *r = &top->in.r[top->k];
	uint64_t pages = 0;
	for (;;) {
		int e = co_r_next(r);
		if (e <= 0)
			return e < 0 ? MERR("%s", r->err)
				     : MERR("%s: byte %lu: the image ends before its end record", r->name,
					    (unsigned long)r->off);
		unsigned t = r->hdr.type;
		if (t == CO_R_END)
			break;
		if (t == CO_R_PARENTMAP || t == CO_R_PAGEMAP) {
			if (read_batch(top, r, err, errlen) || merge_batch(top, w, &pages, err, errlen))
				return -1;
			continue;
		}
		if (t == CO_R_PAGEDATA)
			return MERR("%s: byte %lu: page data without a page map", r->name, (unsigned long)r->rec_off);
		/* metadata (threads, descriptors, file data, regions) as it is */
		co_w_begin(w, t, r->hdr.len, t == CO_R_FILEDATA);
		if (move_bytes(r, w, r->hdr.len, err, errlen) || finish_record(r, err, errlen))
			return -1;
		co_w_end(w);
	}
	if (finish_record(r, err, errlen))
		return -1;
	struct co_end end = { w->seq + 1, pages * CO_PAGE };
	co_w_rec(w, CO_R_END, &end, sizeof(end));
	return 0;
}

/*
 * The full image of process mp of gen-N, written to full (and its page
 * streams); compress: as .zst.
 */
static int merge_proc(const struct chain *c, const struct co_mproc *mp, const char *full, int compress, char *err,
		      size_t errlen)
{
	/* the full image is gen-N's, as its own images were */
	struct co_bind bind = { c->g[0].m.group_id, c->g[0].m.generation, mp->pid, 0 };
	static struct co_proc proc;
	static struct layer L[MAX_LAYERS];
	static char opath[CO_STREAMS][PATH_MAX];
	int ret = -1, nl = 0, nout = 0, ofd[CO_STREAMS] = { -1, -1 };
	if (open_layers(c, mp, L, &nl, &proc, err, errlen))
		goto out;
	int nin = L[0].in.n;
	/* one output stream per input stream */
	struct co_writer w;
	for (nout = 0; nout < nin; nout++) {
		co_stream_path(opath[nout], PATH_MAX, full, nout);
		if ((ofd[nout] = co_img_create(opath[nout], compress, err, errlen)) < 0)
			goto out;
	}
	for (int k = 0; k < nin; k++) {
		co_w_init(&w, ofd[k], wbuf, sizeof(wbuf));
		bind.stream = (uint32_t)k;
		co_w_head(&w, k ? CO_KIND_PAGES : CO_KIND_PROCESS, &bind);
		if (k == 0) {
			proc.parent = 0;
			co_w_rec(&w, CO_R_PROC, &proc, sizeof(proc));
		}
		L[0].k = k;
		if (merge_stream(&L[0], &w, err, errlen))
			goto out;
		if (co_w_flush(&w)) {
			MERR("writing %s: %s", opath[k], strerror(-w.err));
			goto out;
		}
	}
	/* the older images to their end records: every record of every input is checked */
	for (int j = 1; j < nl; j++)
		if (drain(&L[j], err, errlen))
			goto out;
	ret = 0;
out:
	for (int j = 0; j < nl; j++)
		ret |= close_image(&L[j].in, ret, err, errlen);
	for (int k = 0; k < nout; k++)
		ret |= co_img_finish(ofd[k], err, errlen);
	return ret;
}

/*
 * A pre-copied process (precopy.c): dir/image, incremental against id, and
 * predir/image, the pages read ahead, make the full image that replaces
 * dir/image.
 */
int co_merge_precopy(const char *dir, const char *predir, int pid, const char *image, uint64_t id,
		     const struct co_bind *gen, char *err, size_t errlen)
{
	static struct chain c;
	memset(&c, 0, sizeof(c));
	c.n = 2;
	c.scratch_base = 1; /* what the merge has read of the pre-copy is given back as it goes (end_batch) */
	/* the snapshot's image is the generation's; the pre-copy's (generation 0 here) is not bound */
	c.g[0].m.group_id = gen->group_id;
	c.g[0].m.generation = gen->generation;
	snprintf(c.g[0].dir, sizeof(c.g[0].dir), "%s", dir);
	snprintf(c.g[1].dir, sizeof(c.g[1].dir), "%s", predir);
	for (int j = 0; j < 2; j++) {
		struct co_mproc *p = &c.g[j].p[0];
		memset(p, 0, sizeof(*p));
		p->pid = pid;
		p->flags = j ? 0 : CO_MP_INCREMENTAL;
		snprintf(p->image, sizeof(p->image), "%s", image);
		c.g[j].np = 1;
		c.g[j].m.parent = j ? 0 : id;
	}
	char out[PATH_MAX], top[PATH_MAX];
	snprintf(out, sizeof(out), "%s/merged-%s", predir, image);
	snprintf(top, sizeof(top), "%s/%s", dir, image);
	if (merge_proc(&c, &c.g[0].p[0], out, 0, err, errlen))
		return -1;
	/* the page streams first, the image that names them last */
	for (int k = CO_STREAMS - 1; k >= 0; k--) {
		char from[PATH_MAX], to[PATH_MAX];
		co_stream_path(from, sizeof(from), out, k);
		co_stream_path(to, sizeof(to), top, k);
		if (access(from, F_OK) == 0 && rename(from, to) < 0)
			return MERR("cannot rename %s to %s: %s", from, to, strerror(errno));
	}
	return 0;
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
		if ((old = find_proc(base, mp->pid)) && (old->flags & CO_MP_COMPRESSED))
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
		r = merge_proc(c, p, o, p->flags & CO_MP_COMPRESSED, err, errlen);
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
static int stale_tmp(const char *name, void *arg)
{
	(void)arg;
	unsigned long long g;
	int pid;
	return sscanf(name, ".tmp-full-%llu.%d", &g, &pid) == 2 && pid != getpid() && kill(pid, 0) < 0 &&
	       errno == ESRCH;
}

static void remove_stale_tmp(const char *gdir)
{
	co_remove_entries(gdir, stale_tmp, NULL);
}

/* A merged full image whose generation is gone (pruned while it was made). */
static int orphan(const char *name, void *gdir)
{
	unsigned long long g;
	char gen[PATH_MAX];
	if (sscanf(name, "full-%llu", &g) != 1)
		return 0;
	co_gen_dir(gdir, g, gen, sizeof(gen));
	return !exists(gen);
}

static void drop_orphans(const char *gdir)
{
	co_remove_entries(gdir, orphan, (void *)gdir);
}

static int temporary(const char *name, void *arg)
{
	(void)arg;
	return strncmp(name, ".tmp-", 5) == 0;
}

void co_recover_group_dir(const char *gdir)
{
	co_remove_entries(gdir, temporary, NULL);
	/* a full image is only ever needed with its generation (co_prune keeps both) */
	drop_orphans(gdir);
}

#define MAX_GENS 100000
int co_merge_all(const char *gdir, char *err, size_t errlen)
{
	static uint64_t g[MAX_GENS];
	remove_stale_tmp(gdir);
	int n = list_gens(gdir, g, MAX_GENS);
	for (int i = 0; i < n; i++) {
		char out[PATH_MAX], gen[PATH_MAX];
		co_gen_dir(gdir, g[i], gen, sizeof(gen));
		/* one pruned since the list was made (or while it was merged) is no failure */
		if (exists(gen) && co_restore_dir(gdir, g[i], out, sizeof(out), err, errlen) && exists(gen))
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
		/* the generation first: a merge that finds it gone does not make its full image (write_full) */
		co_gen_dir(gdir, g[i], dir, sizeof(dir));
		co_remove_tree(dir);
		co_crash_point("prune");
		co_full_dir(gdir, g[i], dir, sizeof(dir));
		co_remove_tree(dir);
	}
	drop_orphans(gdir);
}
