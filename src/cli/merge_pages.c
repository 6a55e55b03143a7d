/*
 * merge_pages.c - the page merge of one process: its chain of images read
 * as one (struct layer, each image a cursor over its pages, read once
 * front to back and checked record by record), written as one full
 * image (co_merge_proc); and a pre-copy merged with the snapshot's image
 * that was taken against it (co_merge_precopy).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "merge_int.h"
#include "progress.h"
#include "res.h"
#include "util.h"

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

char co_merge_buf[1 << 20];

/* Move n payload bytes of r's current record to w; with w NULL only read (and check) them. */
static int move_bytes(struct co_reader *r, struct co_writer *w, uint64_t n, char *err, size_t errlen)
{
	while (n) {
		uint64_t k = n < sizeof(co_merge_buf) ? n : sizeof(co_merge_buf);
		if (co_r_read(r, co_merge_buf, k))
			return MERR("%s", r->err);
		if (w) {
			co_w_put(w, co_merge_buf, k);
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

const struct co_mproc *co_chain_find_proc(const struct chain_gen *g, int pid)
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
		if (j + 1 == c->n || !(mp = co_chain_find_proc(&c->g[j + 1], pid)))
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
int co_merge_proc(const struct chain *c, const struct co_mproc *mp, const char *full, int compress, char *err,
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
	if (co_merge_proc(&c, &c.g[0].p[0], out, 0, err, errlen))
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
