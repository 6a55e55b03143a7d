/*
 * pindex.c - the page index of a lazy restart: for each page of one
 * process that a page filler brings, the newest image of its chain that
 * holds it (docs/architecture.md, "A lazy restart", *From a chain*).
 *
 * Built oldest image first, each layer folded onto the index of those
 * below it: the layer's own pages, plus those of the index below that its
 * parent maps leave to its parent (every one of which must be there, as
 * the merge checks); what it neither holds nor leaves is gone (a hole, an
 * unmapped or dropped page).  Each fold copies the index below run by
 * run, whole stretches at a time (an image leaves nearly all memory to
 * its parent), so a layer costs its records and runs plus one copy of the
 * index below.  The index is then laid out in the order the filler reads
 * the records (co_pindex_layout).
 *
 * So all of it but the restored image's own layer can be built before
 * the restart: a migration's target folds each generation as it is
 * checked (co_pindex_ahead), and at the stop the filler, forked from the
 * receiver, folds the stop's image alone onto what it inherits
 * (co_pindex_take).  A plain `restart --lazy` folds the whole chain in its
 * filler, the same way.  Only the records' framing and the page maps are
 * read here; each page data record's checksum is checked by the filler
 * when it reads the record (filler.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/pindex.h"
#include "res.h"
#include "util.h"

#define PAGE 4096ULL

/* What the layer being folded holds and leaves: its own pages (file order), its parent maps' runs. */
static struct {
	uint64_t *at, *off;
	uint32_t *rec, *ord;
	uint32_t n, cap, cap_ord;
	struct co_run *runs;
	uint32_t nruns, cap_runs;
} L;

static int grow(void **p, uint32_t *cap, uint32_t have, size_t size)
{
	if (have < *cap)
		return 0;
	uint32_t c = *cap ? *cap * 2 : 4096;
	void *q = realloc(*p, (size_t)c * size);
	if (!q)
		return -1;
	*p = q;
	*cap = c;
	return 0;
}

int co_pindex_in(const uint64_t *ranges, int n, uint64_t a)
{
	int lo = 0, hi = n;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (ranges[2 * mid + 1] <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && a >= ranges[2 * lo];
}

/*
 * Sort the entries ord[0..n) by their address at[].  They come in a few
 * ascending runs (each image's page records are in address order), so
 * the runs are merged pairwise, bottom up: O(n log runs).  On the
 * program's way back at a restart: qsort took 23 ms for 1 GiB here.
 */
int co_pindex_sort(uint32_t *ord, uint32_t n, const uint64_t *at)
{
	static uint32_t *tmp, *run, cap;
	if (n < 2)
		return 0;
	if (cap < n + 1) {
		free(tmp);
		free(run);
		tmp = malloc((n + 1) * sizeof(*tmp));
		run = malloc((n + 2) * sizeof(*run));
		cap = tmp && run ? n + 1 : 0;
		if (!cap)
			return -1;
	}
	uint32_t nrun = 0;
	run[nrun++] = 0;
	for (uint32_t i = 1; i < n; i++)
		if (at[ord[i]] < at[ord[i - 1]])
			run[nrun++] = i;
	run[nrun] = n;
	uint32_t *from = ord, *to = tmp;
	while (nrun > 1) {
		uint32_t m = 0;
		for (uint32_t r = 0; r < nrun; r += 2) {
			uint32_t lo = run[r], mid = run[r + 1], hi = r + 2 <= nrun ? run[r + 2] : mid;
			uint32_t i = lo, j = mid, o = lo;
			while (i < mid && j < hi)
				to[o++] = at[from[j]] < at[from[i]] ? from[j++] : from[i++];
			while (i < mid)
				to[o++] = from[i++];
			while (j < hi)
				to[o++] = from[j++];
			run[m++] = lo;
		}
		run[m] = n;
		nrun = m;
		uint32_t *t = from;
		from = to;
		to = t;
	}
	if (from != ord)
		memcpy(ord, from, n * sizeof(*ord));
	return 0;
}

static int add_rec(struct co_pindex *x, const struct co_pindex_rec *rc)
{
	if (grow((void **)&x->recs, &x->cap_recs, x->nrecs, sizeof(*x->recs)))
		return -1;
	x->recs[x->nrecs++] = *rc;
	return 0;
}

/* L's arrays for n pages */
static int room(uint64_t n)
{
	uint64_t *at = realloc(L.at, n * sizeof(*at));
	if (at)
		L.at = at;
	uint64_t *off = realloc(L.off, n * sizeof(*off));
	if (off)
		L.off = off;
	uint32_t *rec = realloc(L.rec, n * sizeof(*rec));
	if (rec)
		L.rec = rec;
	if (!at || !off || !rec)
		return -1;
	L.cap = (uint32_t)n;
	return 0;
}

static int add_own(uint64_t a, uint64_t off, uint32_t rec)
{
	uint32_t c1 = L.cap, c2 = L.cap, c3 = L.cap;
	if (L.n == L.cap && (grow((void **)&L.at, &c1, L.n, sizeof(*L.at)) || grow((void **)&L.off, &c2, L.n, sizeof(*L.off)) ||
			     grow((void **)&L.rec, &c3, L.n, sizeof(*L.rec))))
		return -1;
	L.cap = c1;
	L.at[L.n] = a;
	L.off[L.n] = off;
	L.rec[L.n++] = rec;
	return 0;
}

static int add_runs(const struct co_pagemap *pm)
{
	for (uint32_t i = 0; i < pm->nruns; i++) {
		if (grow((void **)&L.runs, &L.cap_runs, L.nruns, sizeof(*L.runs)))
			return -1;
		L.runs[L.nruns++] = pm->runs[i];
	}
	return 0;
}

/*
 * Page map and page data records of stream k of the layer's image (the
 * process image's first, up to them; its process record gives *streams
 * and the generation it was built on, *parent).
 */
static int read_stream(struct co_pindex *x, const char *path, int k, const struct co_bind *bind,
		       const uint64_t *ranges, int nranges, uint32_t *streams, uint64_t *parent, char *err,
		       size_t errlen)
{
	static struct co_reader r;
	static struct co_pagemap pm;
	static struct co_proc proc;
	char name[PATH_MAX + 16];
	struct co_head h;
	struct co_bind want = *bind;
	uint32_t slot = (uint32_t)x->nl * CO_STREAMS + (uint32_t)k;
	want.pid = x->pid;
	want.stream = (uint32_t)k;
	co_stream_path(name, sizeof(name), path, k);
	int fd = open(name, O_RDONLY | O_CLOEXEC), ret = -1;
	if (fd < 0)
		return co_err(err, errlen, "cannot open %s: %s", name, strerror(errno));
	co_r_init(&r, fd, name);
	/* room for as many pages as the file could hold: the arrays grow once, not page by page */
	struct stat st;
	uint64_t most = fstat(fd, &st) == 0 ? (uint64_t)st.st_size / PAGE + L.n : 0;
	if (most > L.cap && most < UINT32_MAX && room(most)) {
		co_err(err, errlen, "out of memory for the page index");
		close(fd);
		return -1;
	}
	if (co_r_expect(&r, CO_R_HEAD, &h, sizeof(h)) || co_head_check(&r, &h, k ? CO_KIND_PAGES : CO_KIND_PROCESS, &want))
		goto out;
	for (;;) {
		int e = co_r_next(&r);
		if (e <= 0) {
			if (!e)
				co_err(r.err, sizeof(r.err), "%s: image ends before its end record", name);
			goto out;
		}
		if (r.hdr.type == CO_R_END)
			break;
		if (r.hdr.type == CO_R_PROC && !k) {
			if (co_r_payload(&r, &proc, sizeof(proc)))
				goto out;
			*streams = proc.streams < 1 ? 1 : proc.streams;
			*parent = proc.parent;
			continue;
		}
		if (r.hdr.type == CO_R_PARENTMAP) { /* pages whose data an older image holds */
			if (co_r_payload(&r, &pm, sizeof(pm)))
				goto out;
			if (pm.nruns > CO_MAX_RUNS || !x->nl) {
				co_err(r.err, sizeof(r.err), "%s: byte %lu: a parent map the filler cannot follow", name,
				       (unsigned long)r.rec_off);
				goto out;
			}
			if (add_runs(&pm))
				goto oom;
			continue;
		}
		if (r.hdr.type != CO_R_PAGEMAP) { /* the metadata the restorer read */
			if (co_r_finish(&r))
				goto out;
			continue;
		}
		if (co_r_payload(&r, &pm, sizeof(pm)))
			goto out;
		if (pm.nruns > CO_MAX_RUNS) {
			co_err(r.err, sizeof(r.err), "%s: byte %lu: page map has %u runs", name, (unsigned long)r.rec_off,
			       pm.nruns);
			goto out;
		}
		if (co_r_next(&r) != 1 || r.hdr.type != CO_R_PAGEDATA || r.hdr.len != pm.npages * PAGE) {
			if (!r.err[0])
				co_err(r.err, sizeof(r.err), "%s: page data does not match its page map", name);
			goto out;
		}
		uint32_t id = x->nrecs, before = L.n;
		uint64_t off = r.off;
		for (uint32_t i = 0; i < pm.nruns; i++)
			for (uint64_t p = 0; p < pm.runs[i].npages; p++, off += PAGE) {
				uint64_t a = pm.runs[i].addr + p * PAGE;
				if ((!ranges || co_pindex_in(ranges, nranges, a)) && add_own(a, off | slot, id))
					goto oom;
			}
		if (L.n > before && add_rec(x, &(struct co_pindex_rec){ slot, r.off, r.hdr.len, r.hdr.seq, 0, 0 }))
			goto oom;
		/* its data: read when it is filled, and its checksum checked then */
		if (co_r_skip(&r, r.hdr.len) || co_r_finish(&r))
			goto out;
	}
	ret = 0;
	goto done;
oom:
	co_err(r.err, sizeof(r.err), "out of memory for the page index");
out:
	co_err(err, errlen, "%s", r.err);
done:
	close(fd);
	return ret;
}

static int by_addr(const void *a, const void *b)
{
	uint64_t x = ((const struct co_run *)a)->addr, y = ((const struct co_run *)b)->addr;
	return x < y ? -1 : x > y;
}

/* Reset x to no layer at all (a full image comes). */
static void reset(struct co_pindex *x)
{
	free(x->pos);
	x->pos = NULL;
	x->nl = 0;
	x->n = 0;
	x->nrecs = 0;
}

/* Are the layer's own pages in address order as read (one stream, its records in order)? */
static int in_order(void)
{
	for (uint32_t i = 1; i < L.n; i++)
		if (L.at[i] <= L.at[i - 1])
			return 0;
	return 1;
}

/*
 * The first entry of x from i on whose page is at or after a (x->n: none).
 * Galloping from i: the next run's stretch mostly begins a few entries on.
 */
static uint32_t at_or_after(const struct co_pindex *x, uint32_t i, uint64_t a)
{
	uint32_t lo = i, hi = x->n, step = 1;
	while (lo + step < hi && x->at[lo + step] < a) {
		lo += step;
		step *= 2;
	}
	if (lo + step < hi)
		hi = lo + step + 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (x->at[mid] < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The pages the layer's parent maps leave to the image below: how many (*want); their runs must not overlap. */
static int runs_pages(const char *below, uint64_t *want, char *err, size_t errlen)
{
	if (L.nruns > 1)
		qsort(L.runs, L.nruns, sizeof(*L.runs), by_addr);
	for (uint32_t i = 0; i < L.nruns; i++) {
		if (i && L.runs[i].addr < L.runs[i - 1].addr + L.runs[i - 1].npages * PAGE)
			return co_err(err, errlen, "%s: its parent maps overlap at %lx", below, (unsigned long)L.runs[i].addr);
		*want += L.runs[i].npages;
	}
	return 0;
}

/*
 * The new index: the layer's own pages and, of the index below, those in
 * its parent maps' runs (every page of each run must be there).  Both in
 * address order, merged; a page the layer holds itself wins.
 */
static int merge_layer(struct co_pindex *x, const char *below, char *err, size_t errlen)
{
	uint64_t want = 0, got = 0;
	if (runs_pages(below, &want, err, errlen))
		return -1;
	if (!x->n && !L.nruns && in_order()) { /* the first layer, in order already: its arrays are the index */
		uint64_t *at = x->at, *off = x->off;
		uint32_t *rec = x->rec, cap = x->cap;
		x->at = L.at, x->off = L.off, x->rec = L.rec, x->cap = L.cap, x->n = L.n;
		L.at = at, L.off = off, L.rec = rec, L.cap = cap, L.n = 0;
		free(x->pos);
		x->pos = NULL;
		return 0;
	}
	uint32_t need = L.n + x->n + 1;
	if (x->cap2 < need) {
		free(x->at2);
		free(x->off2);
		free(x->rec2);
		x->at2 = malloc(need * sizeof(*x->at2));
		x->off2 = malloc(need * sizeof(*x->off2));
		x->rec2 = malloc(need * sizeof(*x->rec2));
		x->cap2 = need;
		if (!x->at2 || !x->off2 || !x->rec2) {
			x->cap2 = 0;
			return co_err(err, errlen, "out of memory for the page index");
		}
	}
	uint64_t *at = x->at2, *off = x->off2;
	uint32_t *rec = x->rec2;
	uint32_t n = 0, o = 0, from = 0;
	/*
	 * Run by run: the stretch of the index below that the run covers goes
	 * across whole (memcpy: an image leaves nearly all memory to its
	 * parent, in long stretches), cut where one of the layer's own pages
	 * comes between; a page both hold is the layer's.
	 */
	for (uint32_t w = 0; w <= L.nruns; w++) {
		uint32_t lo = x->n, hi = x->n;
		if (w < L.nruns) {
			lo = at_or_after(x, from, L.runs[w].addr);
			hi = at_or_after(x, lo, L.runs[w].addr + L.runs[w].npages * PAGE);
			got += hi - lo;
			from = hi;
		}
		for (uint32_t j = lo;;) {
			while (o < L.n && (j == hi || L.at[L.ord[o]] <= x->at[j])) {
				if (j == hi && w < L.nruns && L.at[L.ord[o]] >= L.runs[w].addr + L.runs[w].npages * PAGE)
					break; /* after this run: with the next */
				uint32_t e = L.ord[o++];
				if (j < hi && x->at[j] == L.at[e]) /* held here too: the newer wins */
					j++;
				at[n] = L.at[e];
				off[n] = L.off[e];
				rec[n++] = L.rec[e];
			}
			if (j == hi)
				break;
			uint32_t k = o < L.n ? at_or_after(x, j, L.at[L.ord[o]]) : hi;
			k = k < hi ? k : hi;
			memcpy(at + n, x->at + j, (k - j) * sizeof(*at));
			memcpy(off + n, x->off + j, (k - j) * sizeof(*off));
			memcpy(rec + n, x->rec + j, (k - j) * sizeof(*rec));
			n += k - j;
			j = k;
		}
	}
	x->at2 = x->at;
	x->off2 = x->off;
	x->rec2 = x->rec;
	x->cap2 = x->cap;
	x->at = at;
	x->off = off;
	x->rec = rec;
	x->cap = need;
	x->n = n;
	free(x->pos); /* laid out no more */
	x->pos = NULL;
	if (got != want)
		return co_err(err, errlen, "%s: holds %lu of the %lu pages an image built on it leaves to it", below,
			      (unsigned long)got, (unsigned long)want);
	return 0;
}

/* Read the layer's image into L (its own pages sorted by address, its parent maps' runs); its streams. */
static int read_layer(struct co_pindex *x, const char *path, const struct co_bind *bind, const uint64_t *ranges,
		      int nranges, uint32_t *streams, char *err, size_t errlen)
{
	uint64_t parent = 0;
	*streams = 1;
	L.n = L.nruns = 0;
	if (x->nl >= CO_PINDEX_LAYERS)
		return co_err(err, errlen, "%s: a chain longer than %d", path, CO_PINDEX_LAYERS);
	for (uint32_t k = 0; k < *streams; k++) {
		if (k >= CO_STREAMS)
			return co_err(err, errlen, "%s: more page streams than %d", path, CO_STREAMS);
		if (read_stream(x, path, (int)k, bind, ranges, nranges, streams, &parent, err, errlen))
			return -1;
		if (!k && !parent && x->nl) { /* a full image: what was below counts no more */
			reset(x);
			L.n = L.nruns = 0;
			k = (uint32_t)-1; /* read again as the first layer (its slots) */
			continue;
		}
	}
	/* built on the image below it, as the merge checks (merge.c, open_layers) */
	if (parent && (!x->nl || parent != x->l[x->nl - 1].bind.generation))
		return co_err(err, errlen, "%s: built on generation %lu, not on the image below it in the chain", path,
			      (unsigned long)parent);
	/* its own pages by address: each stream's are in order, the streams' interleave */
	if (L.n > L.cap_ord) {
		free(L.ord);
		L.ord = malloc(L.n * sizeof(*L.ord));
		L.cap_ord = L.ord ? L.n : 0;
		if (!L.ord)
			return co_err(err, errlen, "out of memory for the page index");
	}
	for (uint32_t i = 0; i < L.n; i++)
		L.ord[i] = i;
	if (co_pindex_sort(L.ord, L.n, L.at))
		return co_err(err, errlen, "out of memory for the page index");
	return 0;
}

static void add_layer(struct co_pindex *x, const char *path, const struct co_bind *bind, uint32_t streams)
{
	struct co_pindex_layer *l = &x->l[x->nl++];
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->bind = *bind;
	l->streams = streams;
}

int co_pindex_fold(struct co_pindex *x, const char *path, const struct co_bind *bind, const uint64_t *ranges,
		   int nranges, char *err, size_t errlen)
{
	uint32_t streams;
	if (read_layer(x, path, bind, ranges, nranges, &streams, err, errlen) ||
	    merge_layer(x, x->nl ? x->l[x->nl - 1].path : path, err, errlen))
		return -1;
	add_layer(x, path, bind, streams);
	return 0;
}

/* Add span [lo, hi) of entries to *v (lo, hi pairs), joined to the last one where it goes on from it. */
static int add_span(uint32_t **v, uint32_t *n, uint32_t *cap, uint32_t lo, uint32_t hi)
{
	if (lo >= hi)
		return 0;
	if (*n && (*v)[2 * *n - 1] == lo) {
		(*v)[2 * *n - 1] = hi;
		return 0;
	}
	uint32_t c = *cap;
	if (grow((void **)v, &c, *n, 2 * sizeof(**v)))
		return -1;
	*cap = c;
	(*v)[2 * *n] = lo;
	(*v)[2 * *n + 1] = hi;
	(*n)++;
	return 0;
}

/*
 * What the layer in L changes in the index below it (x), as spans of its
 * entries (t->drop): those outside its parent maps' runs (every page of
 * each run must be there), and those it holds itself (the newer wins).
 * Looked up by address (galloping): its runs and pages, not x's entries.
 */
static int mark_dropped(const struct co_pindex *x, const char *below, struct co_pindex_top *t, char *err,
			size_t errlen)
{
	uint64_t want = 0, got = 0;
	if (runs_pages(below, &want, err, errlen))
		return -1;
	uint32_t from = 0;
	for (uint32_t w = 0; w < L.nruns; w++) {
		uint32_t lo = at_or_after(x, from, L.runs[w].addr);
		uint32_t hi = at_or_after(x, lo, L.runs[w].addr + L.runs[w].npages * PAGE);
		if (add_span(&t->drop, &t->ndrop, &t->cap_drop, from, lo))
			return co_err(err, errlen, "out of memory for the page index");
		got += hi - lo;
		from = hi;
	}
	if (add_span(&t->drop, &t->ndrop, &t->cap_drop, from, x->n))
		return co_err(err, errlen, "out of memory for the page index");
	for (uint32_t o = 0, j = 0; o < L.n; o++) {
		uint64_t a = L.at[L.ord[o]];
		j = at_or_after(x, j, a);
		if (j < x->n && x->at[j] == a && add_span(&t->drop, &t->ndrop, &t->cap_drop, j, j + 1))
			return co_err(err, errlen, "out of memory for the page index");
	}
	if (got != want)
		return co_err(err, errlen, "%s: holds %lu of the %lu pages an image built on it leaves to it", below,
			      (unsigned long)got, (unsigned long)want);
	return 0;
}

/* The entries of x outside the n ranges (t->eager): before the first, between two, after the last. */
static int mark_eager(const struct co_pindex *x, const uint64_t *ranges, int n, struct co_pindex_top *t)
{
	uint32_t from = 0;
	for (int g = 0; g < n; g++) {
		uint32_t lo = at_or_after(x, from, ranges[2 * g]);
		if (add_span(&t->eager, &t->neager, &t->cap_eager, from, lo))
			return -1;
		from = at_or_after(x, lo, ranges[2 * g + 1]);
	}
	return add_span(&t->eager, &t->neager, &t->cap_eager, from, x->n);
}

/* The top layer read ahead into L (co_pindex_read_top): its image, and its streams. */
static struct {
	int on;
	char path[PATH_MAX];
	uint32_t streams;
} top_read;

int co_pindex_read_top(struct co_pindex *x, const char *path, const struct co_bind *bind, char *err, size_t errlen)
{
	top_read.on = 0;
	if ((size_t)snprintf(top_read.path, sizeof(top_read.path), "%s", path) >= sizeof(top_read.path))
		return co_err(err, errlen, "%s: path too long", path);
	if (read_layer(x, path, bind, NULL, 0, &top_read.streams, err, errlen))
		return -1;
	top_read.on = 1;
	return 0;
}

/* L, read with every page (co_pindex_read_top), as read_layer would have read it within the ranges. */
static int keep_in(const uint64_t *ranges, int nranges)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < L.n; i++) {
		if (ranges && !co_pindex_in(ranges, nranges, L.at[i]))
			continue;
		L.at[n] = L.at[i];
		L.off[n] = L.off[i];
		L.rec[n++] = L.rec[i];
	}
	L.n = n;
	for (uint32_t i = 0; i < n; i++)
		L.ord[i] = i;
	return co_pindex_sort(L.ord, n, L.at);
}

int co_pindex_fold_top(struct co_pindex *x, const char *path, const struct co_bind *bind, const uint64_t *ranges,
		       int nranges, struct co_pindex_top *t, char *err, size_t errlen)
{
	uint32_t streams;
	t->ndrop = t->neager = 0;
	if (top_read.on && !strcmp(top_read.path, path)) {
		top_read.on = 0;
		streams = top_read.streams;
		if (keep_in(ranges, nranges))
			return co_err(err, errlen, "out of memory for the page index");
	} else if (read_layer(x, path, bind, ranges, nranges, &streams, err, errlen)) {
		return -1;
	}
	if (mark_dropped(x, x->nl ? x->l[x->nl - 1].path : path, t, err, errlen))
		return -1;
	if (mark_eager(x, ranges, nranges, t))
		return co_err(err, errlen, "out of memory for the page index");
	add_layer(x, path, bind, streams);
	t->at = L.at;
	t->off = L.off;
	t->rec = L.rec;
	t->ord = L.ord;
	t->n = L.n;
	return 0;
}

/*
 * A large array the caller writes at once: its pages populated in one
 * call rather than faulted in one by one (on the program's way back).
 * Never freed: the filler exits when it is done.
 */
void *co_pindex_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void co_pindex_free(struct co_pindex *x)
{
	if (!x)
		return;
	free(x->at);
	free(x->off);
	free(x->rec);
	free(x->at2);
	free(x->off2);
	free(x->rec2);
	free(x->recs);
	free(x->pos);
	if (x->lay_resv) {
		munmap(x->roff, x->lay_resv);
		munmap(x->rat, x->lay_resv);
	}
	free(x);
}

/* ---- the fill's order ---- */

static int lay_by_off(const void *a, const void *b)
{
	uint64_t x = ((const uint64_t *)a)[0], y = ((const uint64_t *)b)[0];
	return x < y ? -1 : x > y;
}

/* Record r's pages, should its page map's runs not be in address order: placed by their offset instead. */
static int lay_record(struct co_pindex *x, uint32_t r)
{
	const struct co_pindex_rec *rc = &x->recs[r];
	uint64_t (*t)[2] = malloc((rc->e1 - rc->e0) * sizeof(*t));
	if (!t)
		return -1;
	uint32_t k = 0;
	for (uint32_t i = 0; i < x->n; i++)
		if (x->rec[i] == r)
			t[k][0] = x->off[i], t[k++][1] = i;
	qsort(t, k, sizeof(*t), lay_by_off);
	for (uint32_t j = 0; j < k; j++) {
		uint32_t i = (uint32_t)t[j][1], p = rc->e0 + j;
		x->pos[i] = p;
		x->roff[p] = x->off[i];
		x->rat[p] = x->at[i];
	}
	free(t);
	return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* A mapping of resv bytes, its first n populated (written at once by the caller). */
static void *lay_map(size_t n, size_t resv)
{
	void *p = mmap(NULL, resv, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p != MAP_FAILED)
		madvise(p, n, MADV_POPULATE_WRITE); /* only saves faults: may fail on an old kernel */
	return p;
}

/*
 * roff and rat hold n + more entries.  Mapped with room to spare (half as
 * many again, and 1 MiB), not populated: the stop's own entries, appended
 * in the filler forked from a migration's target, find their room there,
 * with no move of the index below (inherited, its page tables copied).
 */
int co_pindex_extend(struct co_pindex *x, uint32_t more)
{
	size_t want = ((size_t)x->n + more + 1) * sizeof(uint64_t);
	want = (want + PAGE - 1) & ~(PAGE - 1);
	if (want <= x->lay_resv) {
		if (want > x->lay_bytes)
			x->lay_bytes = want;
		return 0;
	}
	size_t resv = (want + want / 2 + (1 << 20) + PAGE - 1) & ~(PAGE - 1);
	void *a = x->lay_resv ? mremap(x->roff, x->lay_resv, resv, MREMAP_MAYMOVE) : lay_map(want, resv);
	if (a == MAP_FAILED)
		return -1;
	if (x->lay_resv)
		x->roff = a; /* moved, maybe: the old address may be gone */
	void *b = x->lay_resv ? mremap(x->rat, x->lay_resv, resv, MREMAP_MAYMOVE) : lay_map(want, resv);
	if (b == MAP_FAILED) { /* roff's mapping is the larger now: its tail stays mapped (only the reserve goes) */
		if (!x->lay_resv)
			munmap(a, resv);
		return -1;
	}
	x->roff = a;
	x->rat = b;
	x->lay_bytes = want;
	x->lay_resv = resv;
	return 0;
}

int co_pindex_layout(struct co_pindex *x)
{
	uint32_t *next = calloc(x->nrecs + 1, sizeof(*next));
	free(x->pos);
	x->pos = malloc((x->n + 1) * sizeof(*x->pos));
	if (!next || !x->pos || co_pindex_extend(x, 0)) {
		free(next);
		return -1;
	}
	for (uint32_t i = 0; i < x->n; i++)
		next[x->rec[i]]++;
	for (uint32_t r = 0, p = 0; r < x->nrecs; r++) {
		x->recs[r].e0 = p;
		p += next[r];
		x->recs[r].e1 = p;
		next[r] = x->recs[r].e0;
	}
	for (uint32_t i = 0; i < x->n; i++) {
		uint32_t p = next[x->rec[i]]++;
		x->pos[i] = p;
		x->roff[p] = x->off[i];
		x->rat[p] = x->at[i];
	}
	free(next);
	for (uint32_t r = 0; r < x->nrecs; r++)
		for (uint32_t p = x->recs[r].e0 + 1; p < x->recs[r].e1; p++)
			if (x->roff[p] < x->roff[p - 1]) {
				if (lay_record(x, r))
					return -1;
				break;
			}
	x->laid_recs = x->nrecs;
	return 0;
}

/* ---- built ahead, on a migration's target ---- */

#define AHEAD_MAX 256
static struct co_pindex *ahead[AHEAD_MAX];
static int nahead;

static struct co_pindex *ahead_of(int pid, int make)
{
	for (int i = 0; i < nahead; i++)
		if (ahead[i]->pid == pid)
			return ahead[i];
	if (!make || nahead == AHEAD_MAX)
		return NULL;
	struct co_pindex *x = calloc(1, sizeof(*x));
	if (x) {
		x->pid = pid;
		ahead[nahead++] = x;
	}
	return x;
}

static void forget(struct co_pindex *x)
{
	for (int i = 0; i < nahead; i++)
		if (ahead[i] == x) {
			ahead[i] = ahead[--nahead];
			break;
		}
	co_pindex_free(x);
}

void co_pindex_ahead(const char *dir)
{
	static struct co_manifest m;
	static struct co_mproc p[CO_TABLE_SLOTS];
	char err[1024], path[PATH_MAX];
	int n;
	if (co_read_manifest(dir, &m, p, CO_TABLE_SLOTS, &n, err, sizeof(err)))
		return;
	for (int i = 0; i < n; i++) {
		if (p[i].flags & CO_MP_ZOMBIE)
			continue;
		struct co_pindex *x = ahead_of(p[i].pid, 1);
		if (!x)
			continue;
		struct co_bind b = { m.group_id, m.generation, 0, 0 };
		snprintf(path, sizeof(path), "%s/%s", dir, p[i].image);
		/* a compressed image is read whole by its restorer, never by a filler */
		if ((p[i].flags & CO_MP_COMPRESSED) || co_pindex_fold(x, path, &b, NULL, 0, err, sizeof(err)) ||
		    co_pindex_layout(x))
			forget(x);
	}
}

struct co_pindex *co_pindex_take(int pid, const struct co_bind *binds, int n)
{
	struct co_pindex *x = ahead_of(pid, 0);
	if (!x || x->nl != n)
		return NULL;
	for (int j = 0; j < n; j++)
		if (x->l[j].bind.generation != binds[j].generation || x->l[j].bind.group_id != binds[j].group_id)
			return NULL;
	for (int i = 0; i < nahead; i++)
		if (ahead[i] == x)
			ahead[i] = ahead[--nahead];
	return x;
}
