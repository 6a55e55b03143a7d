/*
 * filler_index.c - the filler's index (filler.c): which page of the
 * restored process each entry is, where its data lies in which image of
 * the chain, and which entries are still to come.
 *
 * The chain below the restored image is indexed first (pindex.c: on a
 * migration's target while the rounds came in, in a spare filler while it
 * waited for its hand-over, or here), the restored image's own pages last:
 * only those and what they change are worked on once the program waits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/filler_int.h"
#include "image.h"
#include "util.h"

static const struct co_filler_cfg *cfg;

static void open_slot(int slot, const char *image, int k)
{
	fx.src_name[slot] = malloc(strlen(image) + 16);
	if (!fx.src_name[slot])
		fill_fail("out of memory");
	co_stream_path(fx.src_name[slot], strlen(image) + 16, image, k);
	fx.src_fd[slot] = open(fx.src_name[slot], O_RDONLY | O_CLOEXEC);
	if (fx.src_fd[slot] < 0)
		fill_fail("cannot open %s: %s", fx.src_name[slot], strerror(errno));
}

/*
 * The chain's index below the restored image, oldest image first: as a
 * migration's target built it ahead (the receiver we were forked from),
 * or folded here.  NULL with err when it cannot be.
 */
static struct co_pindex *index_below(const struct co_filler_layer *layers, int nl, int pid, char *err,
				     size_t errlen)
{
	static struct co_bind binds[CO_CHAIN_MAX];
	for (int p = 0; p < nl; p++)
		binds[p] = layers[nl - 1 - p].bind;
	struct co_pindex *x = co_pindex_take(pid, binds, nl - 1);
	if (x)
		co_trace("filler of pid %d: %d images indexed ahead, %u pages", pid, x->nl, x->n);
	else if (!(x = calloc(1, sizeof(*x))))
		return co_err(err, errlen, "out of memory for the page index"), NULL;
	x->pid = pid;
	for (int p = x->nl; p < nl - 1; p++) {
		const struct co_filler_layer *l = &layers[nl - 1 - p];
		if (co_pindex_fold(x, l->image, &l->bind, NULL, 0, err, errlen))
			return NULL;
		co_trace("filler of pid %d: layer %d indexed, %u pages so far", pid, nl - 1 - p, x->n);
	}
	if (!x->pos) { /* laid out in the fill's order now, as a migration's target does ahead */
		if (co_pindex_layout(x))
			return co_err(err, errlen, "out of memory for the page index"), NULL;
		co_trace("filler of pid %d: the %d layers below laid out", pid, nl - 1);
	}
	return x;
}

/*
 * A spare filler (coord/lazy.c) does, while it waits for its hand-over,
 * what needs no more than its process's images: the index below the
 * restored image, and the restored image's pages read (its lazy regions,
 * which leave some out, come with the hand-over).  A failure is said when
 * the filler runs, as it would have been then.
 */
static struct {
	int pid, nl;		/* for whom (pid 0: nobody) */
	struct co_pindex *x;
	char err[1024];		/* what failed, or empty */
} early;

void co_filler_early(const struct co_filler_layer *layers, int nl, int pid)
{
	early.pid = pid;
	early.nl = nl;
	early.x = index_below(layers, nl, pid, early.err, sizeof(early.err));
	if (early.x && co_pindex_read_top(early.x, layers[0].image, &layers[0].bind, early.err, sizeof(early.err)))
		early.x = NULL;
	else if (early.x)
		co_trace("filler of pid %d: layer 0 read ahead", pid);
}

/* The chain's index (index_below), done early or now; the restored image's own pages (of lazy regions only) into *t. */
static struct co_pindex *build_index(struct co_pindex_top *t)
{
	char err[1024];
	struct co_pindex *x;
	if (early.pid == cfg->pid && early.nl == cfg->nlayers) {
		if (!early.x)
			fill_fail("%s", early.err);
		x = early.x;
	} else if (!(x = index_below(cfg->layers, cfg->nlayers, cfg->pid, err, sizeof(err)))) {
		fill_fail("%s", err);
	}
	if (co_pindex_fold_top(x, cfg->layers[0].image, &cfg->layers[0].bind, cfg->ranges, cfg->nranges, t, err,
			       sizeof(err)))
		fill_fail("%s", err);
	co_trace("filler of pid %d: layer 0 indexed, %u pages of its own", cfg->pid, t->n);
	return x;
}

/*
 * Below the restored image, what it changes, span by span (t->drop or
 * t->eager: lo, hi pairs of the index's entries by address): each entry
 * still to come taken off; one of a region restored eagerly goes on
 * fx.e_eager.
 */
static void take_spans(const struct co_pindex *x, const uint32_t *v, uint32_t n, int eager)
{
	for (uint32_t k = 0; k < n; k++)
		for (uint32_t i = v[2 * k]; i < v[2 * k + 1]; i++) {
			uint32_t p = x->pos[i];
			if (!fx.pend0[p])
				continue;
			fx.pend0[p] = 0;
			fx.left0--;
			if (eager)
				fx.e_eager[fx.neager++] = p;
		}
}

/*
 * The entries in the fill's order, record by record (pindex.c,
 * co_pindex_layout: the index below as laid out, ahead on a migration's
 * target), the restored image's own after them.  Which are still to come
 * (fx.pend0): all, less the spans of the index below the restored image
 * drops or that lie outside the lazy regions (those still counting go on
 * fx.e_eager); and by address: the index below as it is (x->pos: its
 * entries by address, in the fill's order), the restored image's own
 * beside it.  So the work here follows the restored image and what it
 * changes, not the whole index below (nothing is merged or copied of it).
 * The files of every layer opened.
 */
static void take_index(struct co_pindex *x, const struct co_pindex_top *t)
{
	uint32_t below = x->n;
	fx.nent = below + t->n;
	if (co_pindex_extend(x, t->n))
		fill_fail("out of memory for the page index");
	fx.e_off = x->roff;
	fx.e_at = x->rat;
	memcpy(fx.e_off + below, t->off, t->n * sizeof(*fx.e_off));
	memcpy(fx.e_at + below, t->at, t->n * sizeof(*fx.e_at));
	fx.recs = malloc((x->nrecs + 1) * sizeof(*fx.recs));
	fx.pend0 = co_pindex_alloc(fx.nent + 1);
	fx.ord_top = malloc((t->n + 1) * sizeof(*fx.ord_top));
	if (!fx.recs || !fx.pend0 || !fx.ord_top)
		fill_fail("out of memory for the page index");
	for (uint32_t r = 0; r < x->laid_recs; r++) {
		const struct co_pindex_rec *rc = &x->recs[r];
		if (rc->e1 > rc->e0)
			fx.recs[fx.nrecs++] = (struct rec){ (int)rc->slot, rc->off, rc->len, rc->seq, rc->e0, rc->e1 };
	}
	/* the restored image's records: its entries, in file order, are each record's together */
	for (uint32_t j = 0; j < t->n;) {
		const struct co_pindex_rec *rc = &x->recs[t->rec[j]];
		uint32_t j1 = j;
		while (j1 < t->n && t->rec[j1] == t->rec[j])
			j1++;
		fx.recs[fx.nrecs++] = (struct rec){ (int)rc->slot, rc->off, rc->len, rc->seq, below + j, below + j1 };
		j = j1;
	}
	fx.rec_ok = calloc(fx.nrecs + 1, 1);
	fx.rec_used = calloc(fx.nrecs + 1, 1);
	if (!fx.rec_ok || !fx.rec_used)
		fill_fail("out of memory for the page index");
	fx.by_rec = 1;
	for (uint32_t r = 0; r < fx.nrecs; r++)
		fx.by_rec &= fx.recs[r].e1 > fx.recs[r].e0 && (!r || fx.recs[r].e0 >= fx.recs[r - 1].e1);
	fx.check_first = !cfg->checked;
	memset(fx.pend0, 1, fx.nent);
	fx.left0 = fx.nent;
	take_spans(x, t->drop, t->ndrop, 0);
	uint32_t most = 0; /* fx.e_eager: as many as the eager spans hold at most */
	for (uint32_t k = 0; k < t->neager; k++)
		most += t->eager[2 * k + 1] - t->eager[2 * k];
	if (!(fx.e_eager = malloc((most + 1) * sizeof(*fx.e_eager))))
		fill_fail("out of memory for the page index");
	take_spans(x, t->eager, t->neager, 1);
	for (uint32_t o = 0; o < t->n; o++)
		fx.ord_top[o] = below + t->ord[o];
	fx.ord_below = x->pos;
	fx.nbelow = below;
	fx.ntop = t->n;
	for (int p = 0; p < x->nl; p++)
		for (uint32_t s = 0; s < x->l[p].streams; s++)
			open_slot(p * CO_STREAMS + (int)s, cfg->layers[x->nl - 1 - p].image, (int)s);
}

void co_fill_index(const struct co_filler_cfg *c)
{
	static struct co_pindex_top top;
	cfg = c;
	take_index(build_index(&top), &top);
}
