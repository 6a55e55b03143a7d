/*
 * pages.c - the pages of the address space.  Dump: the regions mem.c
 * listed are split between CO_STREAMS streams written in parallel, each
 * page that cannot be had again from elsewhere (see mem.c) written from
 * where it is, runs of pages in a page map record followed by their data.
 * Restore: the streams read in parallel straight into the regions mem.c
 * has mapped again.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include "agent/dirty.h"
#include "agent/manager.h"
#include "procfs.h"
#include "res.h"
#include "helper.h"
#include "sys.h"
#include "util.h"

#ifndef COHORT_RESTORER
/*
 * Page data goes out in CO_STREAMS streams written in parallel (the image
 * file and proc-PID.p1.img), each with its own writer, run collector and
 * bounce buffer.  The regions are split between them by page count, one
 * region at most being cut in two.
 */
struct stream {
	struct co_dumpctx *d;
	struct co_writer *w;
	int pmfd;
	int vol;			/* pages of the agent's own memory: bounce them */
	int drop;			/* a snapshot's copy of the program's memory: drop what is written */
	int behind;			/* a region restored lazily at a post-copy's target: not written (co_w_skip) */
	uint64_t drop_from;		/* up to where it is dropped */
	uint64_t bytes;
	int failed;
	uint32_t nranges;
	struct { uint32_t vma; uint64_t lo, hi; } ranges[CO_MAX_VMAS / 2 + 2];
	struct co_pagemap pm;
	struct co_pagemap kept;		/* incremental: pages whose data the parent image holds */
	uint64_t ent[8192];		/* pagemap entries of one window */
	unsigned char core[8192];	/* mincore of one window */
	char bounce[65536];
	char err[256];
};

static struct stream streams[CO_STREAMS];
#define WINDOW 8192 /* pages looked at per pagemap read */
static uint64_t vma_pages[CO_MAX_VMAS];	/* pages of each region the image holds (plan_streams) */
static int plan_written;		/* the streams share the pages written out, not all (plan_streams) */
static int swap_on;			/* the system has swap: see is_marker */

/* Is swap configured (a line after the header of /proc/swaps)?  When unsure, yes. */
static int swap_configured(void)
{
	char buf[512];
	long n = co_read_small("/proc/swaps", buf, sizeof(buf));
	if (n <= 0)
		return 1;
	for (long i = 0; i < n - 1; i++)
		if (buf[i] == '\n')
			return 1;
	return 0;
}

/*
 * Is pagemap entry e, which looks swapped out, the uffd-wp marker the
 * tracking (dirty_wp.c) leaves on a page never touched in a write-protected
 * region?  A marker holds nothing of the program's: in anonymous memory a
 * read maps the zero page there, in a file mapping the file's page, which
 * the restore maps again (the caller saves a deleted file's).  Saved, each
 * would be a page of zeros in the image for every page the program has
 * reserved and not used (a GiB for Node: thread stacks, V8's heap).  Only
 * the process itself has markers, the snapshot fork drops them: this is
 * for --stop.  Privileged, the swap type shows (31: a marker).  Otherwise
 * a marker cannot be told from a swapped-out page, except on a system
 * without swap; a page being migrated looks swapped out too, but mincore
 * (incore) says it is in memory, which a marker never is.
 */
static int is_marker(uint64_t e, int incore)
{
	if ((e & (CO_PM_SWAP | CO_PM_UFFD_WP)) != (CO_PM_SWAP | CO_PM_UFFD_WP))
		return 0;
	uint64_t swp = e & CO_PM_SWP_FIELDS;
	if (swp)
		return (swp & 0x1f) == 0x1f;
	return !incore && !swap_on;
}

/*
 * The agent's own memory (its statics, the writer's buffer, the manager's
 * stack) changes while it is being written: such pages go through a bounce
 * buffer so that what is hashed is what is written.  The program's memory
 * is frozen and goes straight from where it is.
 */
static int is_volatile(struct co_dumpctx *d, const struct co_vma *v)
{
	for (int i = 0; i < d->nvol; i++)
		if (d->vol[i] >= v->start && d->vol[i] < v->end)
			return 1;
	return 0;
}

static const char *vma_name(const struct co_vma *v)
{
	return v->path[0] ? v->path : "(anonymous)";
}

/* Shared memory is captured once for the group by the coordinator (shared.img); an aio ring is its record. */
static int has_pages(const struct co_vma *v)
{
	return v->kind != CO_V_SPECIAL && v->kind != CO_V_SHANON && v->kind != CO_V_AIO &&
	       !(v->kind == CO_V_FILE && (v->flags & CO_VF_SHARED));
}

/* Write the collected runs: a page map record, then their pages, page-aligned. */
static int flush_runs(struct stream *s)
{
	struct co_pagemap *pm = &s->pm;
	if (!pm->nruns && !s->d->parent)
		return 0;
	size_t len = __builtin_offsetof(struct co_pagemap, runs) + pm->nruns * sizeof(struct co_run);
	co_w_rec(s->w, CO_R_PAGEMAP, pm, len);
	/* no padding for nothing */
	co_w_begin_flags(s->w, CO_R_PAGEDATA, pm->npages * CO_PAGE, pm->npages != 0, s->behind ? CO_RF_BEHIND : 0);
	for (uint32_t i = 0; i < pm->nruns; i++) {
		uint64_t addr = pm->runs[i].addr, n = pm->runs[i].npages * CO_PAGE;
		if (!s->vol) {
			if (s->behind)
				co_w_skip(s->w, n);
			else
				co_w_put(s->w, (void *)addr, n);
			continue;
		}
		for (uint64_t done = 0; done < n; done += sizeof(s->bounce)) {
			uint64_t k = n - done < sizeof(s->bounce) ? n - done : sizeof(s->bounce);
			co_memcpy(s->bounce, (void *)(addr + done), k);
			co_w_put(s->w, s->bounce, k);
		}
	}
	co_w_end(s->w);
	s->bytes += pm->npages * CO_PAGE;
	pm->nruns = 0;
	pm->npages = 0;
	return s->w->err ? co_err(s->err, sizeof(s->err), "pid %d: writing page data failed (errno %d)",
				  s->d->pid, -s->w->err) : 0;
}

/* Write the collected runs of unchanged pages: a parent map record, no data. */
static int flush_kept(struct stream *s)
{
	struct co_pagemap *pm = &s->kept;
	size_t len = __builtin_offsetof(struct co_pagemap, runs) + pm->nruns * sizeof(struct co_run);
	co_w_rec(s->w, CO_R_PARENTMAP, pm, len);
	pm->nruns = 0;
	pm->npages = 0;
	return s->w->err ? co_err(s->err, sizeof(s->err), "pid %d: writing the parent map failed (errno %d)",
				  s->d->pid, -s->w->err) : 0;
}

/* The n pages at addr to the runs of pm: 1 when that needs a run and there is no room. */
static int add_runs(struct co_pagemap *pm, uint64_t addr, uint64_t n)
{
	struct co_run *last = pm->nruns ? &pm->runs[pm->nruns - 1] : 0;
	if (last && last->addr + last->npages * CO_PAGE == addr) {
		last->npages += n;
	} else {
		if (pm->nruns == CO_MAX_RUNS)
			return 1;
		pm->runs[pm->nruns].addr = addr;
		pm->runs[pm->nruns].npages = n;
		pm->nruns++;
	}
	pm->npages += n;
	return 0;
}

static int add_run(struct co_pagemap *pm, uint64_t addr)
{
	return add_runs(pm, addr, 1);
}

/*
 * Write what is collected.  An incremental image goes in batches, each a
 * parent map, a page map and its data (any of them may be empty), covering
 * one stretch of addresses: the merge reads both lists of a batch before
 * its data and walks them in address order.
 */
static int flush_batch(struct stream *s)
{
	if (!s->d->parent)
		return flush_runs(s);
	if (!s->kept.nruns && !s->pm.nruns)
		return 0;
	return flush_kept(s) || flush_runs(s);
}

/*
 * A snapshot child holds the program's memory copy-on-write: every page the
 * running program writes while the snapshot still shares it is copied (and
 * a huge page split into small ones first).  So once a stretch is written
 * to the image, the child drops its own mapping of it (MADV_DONTNEED in
 * the child's address space: the program keeps its pages), and a page the
 * program writes after that is its own again.  It never reads those pages
 * again.  Only the program's private anonymous memory, never the agent's
 * own (volatile) memory, which the writer itself uses; and never without a
 * snapshot (--stop writes the live process).
 */
static void drop_written(struct stream *s, uint64_t to)
{
	if (!s->drop || to <= s->drop_from)
		return;
	co_sys3(SYS_madvise, (long)s->drop_from, (long)(to - s->drop_from), MADV_DONTNEED);
	s->drop_from = to;
}

/* Pages collected before a batch is written: 8 MiB, so that a snapshot drops what it wrote as it goes. */
#define BATCH_PAGES 2048

/* A page the image holds: its data (written since the parent, or a full image), or a reference to the parent's. */
static int add_page(struct stream *s, uint64_t addr, int kept)
{
	struct co_pagemap *pm = kept ? &s->kept : &s->pm;
	if ((!s->drop || s->pm.npages + s->kept.npages < BATCH_PAGES) && add_run(pm, addr) == 0)
		return 0;
	if (flush_batch(s))
		return -1;
	drop_written(s, addr);
	return add_run(pm, addr);
}

/* n pages at addr the parent holds, kept: as add_page for each, batch by batch. */
static int add_kept(struct stream *s, uint64_t addr, uint64_t n)
{
	while (n) {
		uint64_t have = s->pm.npages + s->kept.npages;
		uint64_t room = !s->drop ? n : have < BATCH_PAGES ? BATCH_PAGES - have : 0;
		uint64_t k = n < room ? n : room;
		if (!k || add_runs(&s->kept, addr, k)) {
			if (flush_batch(s))
				return -1;
			drop_written(s, addr);
			continue;
		}
		addr += k * CO_PAGE;
		n -= k;
	}
	return 0;
}

static void count_run(uint64_t n, int kept);
/* A page of the counting pass (plan_streams). */
static int count_page(struct stream *s, uint64_t addr, int kept)
{
	(void)s;
	(void)addr;
	count_run(1, kept);
	return 0;
}

/*
 * The n pages at a, all in stretches a lean snapshot left out (it does not
 * map them: their page map says nothing), each held by the parent or not
 * (co_dirty_lean_held): a held one is unwritten, the parent's page; one
 * not held was never there.  Asked run by run, not page by page: most of
 * the memory of an incremental is such stretches.
 */
static int lean_pages(struct stream *s, uint64_t a, uint64_t n, int (*fn)(struct stream *, uint64_t, int))
{
	int k = (int)(s - streams);
	for (uint64_t addr = a, end = a + n * CO_PAGE; addr < end;) {
		int held = 0;
		uint64_t run = co_dirty_lean_run(k, addr, &held);
		if (run <= addr) /* (the caller saw the whole window left out) */
			return co_err(s->err, sizeof(s->err), "pid %d: page %lx is in no left-out stretch", s->d->pid,
				      (unsigned long)addr);
		run = run < end ? run : end;
		if (held && fn == add_page && co_dirty_lean_kept(k, addr, run)) {
			if (add_kept(s, addr, (run - addr) / CO_PAGE))
				return -1;
			addr = run;
			continue;
		}
		if (!held) { /* never there: nothing to save */
			addr = run;
			continue;
		}
		if (fn == count_page) {
			count_run((run - addr) / CO_PAGE, plan_written && co_dirty_lean_maybe_kept(addr, run));
			addr = run;
			continue;
		}
		for (; addr < run; addr += CO_PAGE)
			if (fn(s, addr, co_dirty_page_kept(k, addr, 1)))
				return -1;
	}
	return 0;
}

/*
 * Call fn for every page of [lo, hi) of v that the image must hold, with
 * kept = 1 for a page of an incremental image that was not written since
 * the parent generation (its data stays in the parent's image).
 */
static int scan_pages(struct stream *s, const struct co_vma *v, uint64_t lo, uint64_t hi,
		      int (*fn)(struct stream *, uint64_t, int))
{
	int tracked = s->d->parent && v->kind != CO_V_SHANON && co_dirty_region_tracked(v->start, v->end);
	for (uint64_t a = lo; a < hi; a += WINDOW * CO_PAGE) {
		uint64_t n = (hi - a) / CO_PAGE;
		if (n > WINDOW)
			n = WINDOW;
		if (tracked && co_dirty_lean_covers(a, a + n * CO_PAGE)) {
			if (lean_pages(s, a, n, fn))
				return -1;
			continue;
		}
		long r = co_pread(s->pmfd, s->ent, n * 8, (long)(a / CO_PAGE * 8));
		if (r != (long)(n * 8))
			return co_err(s->err, sizeof(s->err), "pid %d: cannot read the page map at %lx", s->d->pid,
				      (unsigned long)a);
		/* mincore: for shared memory always, elsewhere once the window has a possible marker */
		int have_core = v->kind == CO_V_SHANON;
		if (have_core && co_mincore((void *)a, n * CO_PAGE, s->core) < 0)
			co_memset(s->core, 1, n);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t e = s->ent[i];
			int save;
			/* no record says "guard here": refused, while the program still runs, rather than read (SIGSEGV) */
			if (e & CO_PM_GUARD)
				return co_err(s->err, sizeof(s->err),
					      "pid %d: region %lx-%lx %s: guard page (MADV_GUARD_INSTALL) at %lx cannot be "
					      "saved", s->d->pid, (unsigned long)v->start, (unsigned long)v->end, vma_name(v),
					      (unsigned long)(a + i * CO_PAGE));
			if (!have_core && (e & CO_PM_UFFD_WP) && (e & CO_PM_SWAP)) {
				if (co_mincore((void *)a, n * CO_PAGE, s->core) < 0)
					co_memset(s->core, 1, n);
				have_core = 1;
			}
			switch (v->kind) {
			case CO_V_FILE:
				save = (e & CO_PM_SWAP) || ((e & CO_PM_PRESENT) && !(e & CO_PM_FILE));
				break;
			case CO_V_SHANON:
				save = (e & (CO_PM_PRESENT | CO_PM_SWAP)) || (s->core[i] & 1);
				break;
			default:
				save = (e & (CO_PM_PRESENT | CO_PM_SWAP)) != 0;
				break;
			}
			/* a marker where there is no file behind reads zero; in a file mapping, the file's page */
			if (save && (v->kind == CO_V_ANON || v->kind == CO_V_FILE) && is_marker(e, s->core[i] & 1))
				save = 0;
			uint64_t addr = a + i * CO_PAGE;
			int in_lean = 0, held = tracked ? co_dirty_lean_held((int)(s - streams), addr, &in_lean) : 0;
			if (in_lean)
				save = held; /* left out of a lean snapshot: unwritten, so the parent's page or none */
			/* the counting pass only counts: the decision is made (and recorded) once, when writing */
			if (save && fn(s, addr,
				       fn == add_page ? co_dirty_page_kept((int)(s - streams), addr, tracked)
						      : plan_written && co_dirty_page_maybe_kept(addr, tracked)))
				return -1;
		}
	}
	return 0;
}

/* Write one stream's ranges; run by the manager and by the helper thread. */
static void write_stream(void *arg)
{
	struct stream *s = arg;
	for (uint32_t i = 0; i < s->nranges && !s->failed; i++) {
		const struct co_vma *v = &s->d->vmas[s->ranges[i].vma];
		s->vol = is_volatile(s->d, v);
		s->drop = s->d->snapshot && !s->vol && v->kind == CO_V_ANON;
		s->drop_from = s->ranges[i].lo;
		/*
		 * A post-copy stop: the pages of a region the target may take
		 * lazily, and their checksum, are written later from the
		 * parked process (the migration's source, src/cli/behind.c); never
		 * the agent's own memory, which changes meanwhile.  A batch
		 * is one region's (flushed at its end), so a record is all
		 * behind or not at all.
		 */
		s->behind = s->d->behind && !s->vol && !s->d->forked && co_vma_lazy_kind(v);
		s->failed = scan_pages(s, v, s->ranges[i].lo, s->ranges[i].hi, add_page) || flush_batch(s);
		if (!s->failed)
			drop_written(s, s->ranges[i].hi);
	}
}

/*
 * The counting pass: counted, the pages the image holds; weighed, those
 * that the streams share out.  Every page weighs, so that the merged full
 * image's streams (which follow this image's) are balanced for its
 * restore; but only the pages written out when the program waits for them
 * (an incremental image written in place, a migration's stop above all),
 * so that both writers copy their share, where the band of pages written
 * since the parent would all have gone to one.
 */
static uint64_t counted, weighed;
static void count_run(uint64_t n, int kept)
{
	counted += n;
	weighed += kept ? 0 : n;
}

/*
 * Where in [lo, hi) of v (whose weight reaches want) the weight from lo
 * reaches want, to 16 pages: halved until then, a window of the page map
 * at most twice over.  A stop's band of written pages can lie in one
 * window.  *cut the end of that stretch, *seen grows by the weight up to it.
 */
static int narrow_cut(struct stream *s0, const struct co_vma *v, uint64_t lo, uint64_t hi, uint64_t want,
		      uint64_t *cut, uint64_t *seen)
{
	while (hi - lo > 16 * CO_PAGE) {
		uint64_t mid = lo + (hi - lo) / CO_PAGE / 2 * CO_PAGE;
		weighed = 0;
		if (scan_pages(s0, v, lo, mid, count_page))
			return -1;
		if (weighed >= want) {
			hi = mid;
		} else {
			want -= weighed;
			*seen += weighed;
			lo = mid;
		}
	}
	weighed = 0;
	if (scan_pages(s0, v, lo, hi, count_page))
		return -1;
	*seen += weighed;
	*cut = hi;
	return 0;
}

/*
 * Split the regions between the streams by their weight (count_run); a
 * region that holds pages goes to one stream or is cut between two.
 */
static int plan_streams(struct co_dumpctx *d, int nstreams)
{
	static uint64_t per_vma[CO_MAX_VMAS];
	uint64_t total = 0;
	struct stream *s0 = &streams[0];
	plan_written = d->parent && !d->forked;
	for (uint32_t i = 0; i < d->nvmas; i++) {
		counted = weighed = 0;
		if (has_pages(&d->vmas[i]) && scan_pages(s0, &d->vmas[i], d->vmas[i].start, d->vmas[i].end, count_page))
			return -1;
		vma_pages[i] = counted;
		per_vma[i] = weighed;
		total += weighed;
	}
	uint64_t share = (total + nstreams - 1) / nstreams, acc = 0;
	int k = 0;
	for (uint32_t i = 0; i < d->nvmas; i++) {
		const struct co_vma *v = &d->vmas[i];
		if (!vma_pages[i])
			continue;
		uint64_t lo = v->start;
		while (k < nstreams - 1 && acc + per_vma[i] > share * (uint64_t)(k + 1)) {
			/* cut this region where stream k has its share: find that page */
			uint64_t want = share * (uint64_t)(k + 1) - acc, seen = 0, cut = v->end;
			for (uint64_t a = lo; a < v->end; a += WINDOW * CO_PAGE) {
				uint64_t n = (v->end - a) / CO_PAGE;
				n = n > WINDOW ? WINDOW : n;
				weighed = 0;
				if (scan_pages(s0, v, a, a + n * CO_PAGE, count_page))
					return -1;
				if (seen + weighed >= want) {
					if (narrow_cut(s0, v, a, a + n * CO_PAGE, want - seen, &cut, &seen))
						return -1;
					break;
				}
				seen += weighed;
			}
			struct stream *s = &streams[k];
			s->ranges[s->nranges].vma = i;
			s->ranges[s->nranges].lo = lo;
			s->ranges[s->nranges++].hi = cut;
			acc += seen;
			per_vma[i] -= seen;
			lo = cut;
			k++;
		}
		if (lo < v->end) {
			struct stream *s = &streams[k];
			s->ranges[s->nranges].vma = i;
			s->ranges[s->nranges].lo = lo;
			s->ranges[s->nranges++].hi = v->end;
			acc += per_vma[i];
		}
	}
	return 0;
}


/*
 * Regions without PROT_READ that hold pages are made readable while they
 * are written.  Those that hold none (reservations: V8 keeps a GiB of
 * address space PROT_NONE) are left alone: nothing is read there, and
 * mprotect could fail on them for no use.
 */
static int readable_all(struct co_dumpctx *d, int on)
{
	for (uint32_t i = 0; i < d->nvmas; i++) {
		const struct co_vma *v = &d->vmas[i];
		if (!has_pages(v) || (v->prot & PROT_READ) || !vma_pages[i])
			continue;
		long r = co_mprotect((void *)v->start, v->end - v->start, (int)v->prot | (on ? PROT_READ : 0));
		if (r && on)
			return DERR(d, "pid %d: region %lx-%lx %s cannot be made readable to be saved (mprotect errno %d)",
				    d->pid, (unsigned long)v->start, (unsigned long)v->end, vma_name(v), (int)-r);
	}
	return 0;
}

/*
 * In a snapshot child: is every region that holds pages there?  One the
 * fork left out (MADV_DONTFORK the agent did not see: set without the C
 * library's madvise, see wrap.c) would otherwise go into the image
 * without its pages.  The stretches a lean snapshot left out are not
 * missing: the parent image holds their pages.  One read of our own maps.
 */
static int snapshot_complete(struct co_dumpctx *d)
{
	static struct co_maps m;
	static struct co_mapent e;
	if (co_maps_open(&m, "/proc/self/maps"))
		return DERR(d, "pid %d: cannot read the snapshot's /proc/self/maps", d->pid);
	int have = co_maps_next(&m, &e) == 1, r = 0;
	for (uint32_t i = 0; i < d->nvmas && !r; i++) {
		const struct co_vma *v = &d->vmas[i];
		for (uint64_t a = v->start; has_pages(v) && a < v->end && !r;) {
			while (have && e.end <= a)
				have = co_maps_next(&m, &e) == 1;
			if (have && e.start <= a) {
				a = e.end;
				continue;
			}
			uint64_t gap = have && e.start < v->end ? e.start : v->end;
			if (!co_dirty_lean_covers(a, gap))
				r = DERR(d, "pid %d: region %lx-%lx %s is missing from the snapshot (MADV_DONTFORK set "
					    "without the C library's madvise?); 'cohort checkpoint --stop' saves it from "
					    "the process itself", d->pid, (unsigned long)v->start, (unsigned long)v->end,
					 vma_name(v));
			a = gap;
		}
	}
	co_maps_close(&m);
	return r;
}

/*
 * A private mapping of a file that cannot be opened again (deleted, a
 * memfd, a shm object unlinked) comes back as anonymous memory, so every
 * page of it must be in the image: also those the program never touched,
 * which read the file's content and which the page map shows absent.  So
 * they are faulted in, readable, first (MADV_POPULATE_READ, Linux 5.14):
 * the page map then shows them present.  The populate stops with EFAULT
 * at the file's end; the pages past it stay out and come back as zeros.
 * An unreadable region is made readable for the moment.
 */
static void populate_deleted(struct co_dumpctx *d)
{
	for (uint32_t i = 0; i < d->nvmas; i++) {
		const struct co_vma *v = &d->vmas[i];
		long len = (long)(v->end - v->start);
		if (v->kind != CO_V_DELETED)
			continue;
		if (!(v->prot & PROT_READ))
			co_mprotect((void *)v->start, (uint64_t)len, (int)v->prot | PROT_READ);
		co_sys3(SYS_madvise, (long)v->start, len, MADV_POPULATE_READ);
		if (!(v->prot & PROT_READ))
			co_mprotect((void *)v->start, (uint64_t)len, (int)v->prot);
	}
}

int co_mem_dump_pages(struct co_dumpctx *d, struct co_writer **w, int nstreams)
{
	static char helper_stack[1 << 16] __attribute__((aligned(16)));
	static struct co_helper helper;
	int pmfd = co_proc_self_open("pagemap");
	if (pmfd < 0)
		return DERR(d, "pid %d: cannot open /proc/self/pagemap (errno %d)", d->pid, -pmfd);
	/* the streams are static, and after a restart they hold what they held when dumped */
	for (int k = 0; k < nstreams; k++) {
		struct stream *s = &streams[k];
		s->d = d;
		s->w = w[k];
		s->pmfd = pmfd;
		s->bytes = 0;
		s->failed = 0;
		s->nranges = 0;
		s->pm.nruns = 0;
		s->pm.npages = 0;
		s->kept.nruns = 0;
		s->kept.npages = 0;
		s->err[0] = 0;
	}
	d->vol[d->nvol++] = (uint64_t)streams;
	d->vol[d->nvol++] = (uint64_t)helper_stack;
	/* markers are the process's own (is_marker): the snapshot has none */
	swap_on = d->forked ? 1 : swap_configured();
	int ret = d->forked ? snapshot_complete(d) : 0;
	populate_deleted(d);
	co_stamp("pages begun");
	if (!ret && plan_streams(d, nstreams))
		ret = co_err(d->err, d->errlen, "%s", streams[0].err);
	co_stamp("pages planned");
	if (!ret)
		ret = readable_all(d, 1);
	if (!ret) {
		int spawned = nstreams > 1 &&
			      co_spawn(&helper, write_stream, &streams[1], helper_stack + sizeof(helper_stack),
				       sizeof(helper_stack)) == 0;
		if (nstreams > 1 && !spawned)
			write_stream(&streams[1]);
		write_stream(&streams[0]);
		co_stamp("stream 0 written");
		if (spawned)
			co_join(&helper);
		readable_all(d, 0);
	}
	co_close(pmfd);
	for (int k = 0; k < nstreams; k++) {
		d->page_bytes += streams[k].bytes;
		if (streams[k].failed && !ret)
			ret = co_err(d->err, d->errlen, "%s", streams[k].err);
	}
	if (!ret && streams[0].err[0])
		ret = co_err(d->err, d->errlen, "%s", streams[0].err);
	return ret;
}

/*
 * Pages shared copy-on-write since a fork.  In the pause (before a
 * snapshot fork would make every page shared), the pages of private
 * anonymous memory that this process does not map alone are noted: after
 * a fork, those its parent and it have not written since.  The image
 * still holds their data; the record only lets the restorer, which forks
 * this process from its restored parent (restorer.c), keep the parent's
 * page where it has the same content instead of making a copy.  Only a
 * process whose parent is in the group (not init, pid 1) has anything to
 * inherit.  Unprivileged readers see this bit of the page map too (not
 * the frame numbers).  Runs beyond one record's worth are not noted:
 * those pages come back as copies, with the same content.
 */
static struct co_pagemap shared_pm;
static uint64_t shared_ent[WINDOW];

static int may_inherit(const struct co_vma *v)
{
	return v->kind == CO_V_ANON && !(v->flags & CO_VF_GROWSDOWN);
}

/* Add n pages at addr to pm's runs; fresh: the first of a region, which starts a run.  1: no room. */
static int note_shared(struct co_pagemap *pm, uint64_t addr, uint64_t n, int fresh)
{
	struct co_run *last = pm->nruns ? &pm->runs[pm->nruns - 1] : 0;
	if (!fresh && last && last->addr + last->npages * CO_PAGE == addr) {
		last->npages += n;
	} else {
		if (pm->nruns == CO_MAX_RUNS)
			return 1;
		pm->runs[pm->nruns++] = (struct co_run){ addr, n };
	}
	pm->npages += n;
	return 0;
}

void co_pages_note_shared(struct co_dumpctx *d)
{
	shared_pm.nruns = 0;
	shared_pm.npages = 0;
	if (d->ppid <= 1)
		return;
	int pmfd = co_proc_self_open("pagemap");
	if (pmfd < 0)
		return;
	for (uint32_t i = 0; i < d->nvmas; i++) {
		const struct co_vma *v = &d->vmas[i];
		uint32_t first = shared_pm.nruns; /* runs end with their region: the restorer keeps regions whole or not */
		for (uint64_t a = v->start; may_inherit(v) && a < v->end; a += WINDOW * CO_PAGE) {
			uint64_t n = (v->end - a) / CO_PAGE;
			n = n > WINDOW ? WINDOW : n;
			if (co_pread(pmfd, shared_ent, n * 8, (long)(a / CO_PAGE * 8)) != (long)(n * 8))
				break;
			for (uint64_t k = 0; k < n; k++) {
				if ((shared_ent[k] & (CO_PM_PRESENT | CO_PM_EXCLUSIVE)) != CO_PM_PRESENT)
					continue;
				if (note_shared(&shared_pm, a + k * CO_PAGE, 1, shared_pm.nruns == first))
					goto full;
			}
		}
	}
full:
	co_close(pmfd);
}

/*
 * Of the noted pages, those the image holds (scan_pages): a page left out
 * of a lean snapshot that the parent's image does not hold either is not
 * in the image (it reads zero), and must not be noted.  Such a page can
 * be present all the same: the zero page a read mapped after the parent's
 * checkpoint found nothing there (write-protected then, so unwritten now),
 * which no process maps alone.  Noted, it made the restorer keep the
 * parent's page at that place: the parent's data in a page that must read
 * zero.  Known only once the lean stretches are (snapshot.c), after the
 * pause noted the runs; a run cut in two needs one more, and runs beyond
 * one record's worth are left out, as co_pages_note_shared leaves them.
 */
static struct co_pagemap held_pm;

static void shared_held_only(const struct co_dumpctx *d)
{
	held_pm.nruns = 0;
	held_pm.npages = 0;
	uint32_t j = 0;
	for (uint32_t k = 0; k < shared_pm.nruns; k++) {
		const struct co_run *run = &shared_pm.runs[k];
		uint64_t end = run->addr + run->npages * CO_PAGE;
		while (j < d->nvmas && d->vmas[j].end <= run->addr)
			j++;
		int tracked = j < d->nvmas && co_dirty_region_tracked(d->vmas[j].start, d->vmas[j].end);
		int fresh = 1; /* each run of the record lies in one region of the image */
		for (uint64_t a = run->addr; a < end;) {
			int held = 1;
			uint64_t to = tracked ? co_dirty_lean_run(0, a, &held) : 0;
			if (to <= a) /* in no left-out stretch: held, page by page */
				to = a + CO_PAGE;
			if (to > end)
				to = end;
			if (held && note_shared(&held_pm, a, (to - a) / CO_PAGE, fresh))
				return;
			fresh = !held;
			a = to;
		}
	}
}

int co_pages_dump_shared(struct co_dumpctx *d)
{
	const struct co_pagemap *pm = &shared_pm;
	if (d->parent && !d->cowmap_all) { /* an incremental image may leave some out */
		shared_held_only(d);
		pm = &held_pm;
	}
	if (!pm->nruns)
		return 0;
	size_t len = __builtin_offsetof(struct co_pagemap, runs) + pm->nruns * sizeof(struct co_run);
	if (co_w_rec(d->w, CO_R_COWMAP, pm, len))
		return DERR(d, "pid %d: writing the copy-on-write map failed", d->pid);
	return 0;
}
#else /* the restorer */

/* One page-data stream being read into place. */
struct pstream {
	struct co_rstctx *rc;
	struct co_reader *r;
	int failed;
	struct co_pagemap pm;
	uint32_t cow;		/* the first run of rc->cow not yet behind the pages being read */
	int last;		/* region_of's last answer */
	char bounce[65536];	/* pages that may be the parent's already */
	char err[512];
};
static struct pstream pstreams[CO_STREAMS];
static struct co_reader readers[CO_STREAMS];

#define PERR(ps, ...) co_err((ps)->err, sizeof((ps)->err), __VA_ARGS__)

/*
 * Of the n pages at addr, how many are alike from the first: all kept
 * from the parent copy-on-write (*inherited = 1, mem.c's find_kept) or
 * none.  A stream reads its runs in address order, so its cursor into
 * rc->cow only moves on.
 */
static uint64_t alike(struct pstream *ps, uint64_t addr, uint64_t n, int *inherited)
{
	const struct co_rstctx *rc = ps->rc;
	while (ps->cow < rc->ncow && rc->cow[ps->cow].addr + rc->cow[ps->cow].npages * CO_PAGE <= addr)
		ps->cow++;
	*inherited = 0;
	if (ps->cow == rc->ncow)
		return n;
	const struct co_run *c = &rc->cow[ps->cow];
	if (c->addr > addr) {
		uint64_t before = (c->addr - addr) / CO_PAGE;
		return before < n ? before : n;
	}
	uint64_t in = (c->addr + c->npages * CO_PAGE - addr) / CO_PAGE;
	*inherited = 1;
	return in < n ? in : n;
}

/*
 * The pages kept from the parent (rc->cow) that a stream read, one bit
 * each, by run (cow_at: a run's first bit).  Those left unread once the
 * streams are done are dropped (drop_unread): the image does not hold
 * them (or leaves them to the chain, whose filler writes them before the
 * program runs), so they must not keep the parent's data.  The image's
 * copy-on-write map lists only pages it holds (co_pages_dump_shared);
 * one written before that rule, or damaged, may list others.
 */
static uint8_t *cow_read;
static uint64_t cow_len;
static uint64_t cow_at[CO_MAX_RUNS + 1];

static void note_read(const struct co_rstctx *rc, uint32_t run, uint64_t addr, uint64_t n)
{
	const struct co_run *c = &rc->cow[run];
	uint64_t b = cow_at[run] + (addr - c->addr) / CO_PAGE;
	for (uint64_t i = b; cow_read && i < b + n; i++)
		__atomic_fetch_or(&cow_read[i / 8], (uint8_t)(1u << (i % 8)), __ATOMIC_RELAXED);
}

/* The bit map for rc's runs: 0, or -1 when it cannot be had (the restore fails). */
static int cow_begin(struct co_rstctx *rc)
{
	uint64_t n = 0;
	for (uint32_t k = 0; k < rc->ncow; k++) {
		cow_at[k] = n;
		n += rc->cow[k].npages;
	}
	cow_read = 0;
	cow_len = (n + 7) / 8 + CO_PAGE;
	if (!n)
		return 0;
	long p = co_mmap(0, cow_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p < 0 && p > -4096)
		return co_err(rc->err, rc->errlen, "pid %d: no memory for the pages kept from its parent (errno %ld)",
			      rc->proc->pid, -p);
	cow_read = (uint8_t *)p;
	return 0;
}

static int was_read(uint64_t bit)
{
	return (cow_read[bit / 8] >> (bit % 8)) & 1;
}

/* Drop the kept pages no stream read, in stretches. */
static void drop_unread(struct co_rstctx *rc)
{
	for (uint32_t k = 0; cow_read && k < rc->ncow; k++) {
		const struct co_run *c = &rc->cow[k];
		for (uint64_t i = 0; i < c->npages;) {
			uint64_t j = i;
			if (was_read(cow_at[k] + i)) {
				i++;
				continue;
			}
			while (j < c->npages && !was_read(cow_at[k] + j))
				j++;
			co_sys3(SYS_madvise, (long)(c->addr + i * CO_PAGE), (long)((j - i) * CO_PAGE), MADV_DONTNEED);
			i = j;
		}
	}
	if (cow_read)
		co_munmap(cow_read, cow_len);
	cow_read = 0;
}

/*
 * Pages the process may have from its parent: each is read aside and
 * written into place only where the parent's differs, so that the same
 * page stays shared copy-on-write (and a page that differs after all
 * still comes back exact).
 */
static int read_inherited(struct pstream *ps, uint64_t addr, uint64_t n)
{
	uint64_t per = sizeof(ps->bounce) / CO_PAGE;
	while (n) {
		uint64_t k = n < per ? n : per;
		if (co_r_read(ps->r, ps->bounce, k * CO_PAGE))
			return -1;
		for (uint64_t i = 0; i < k; i++) {
			char *page = (char *)(addr + i * CO_PAGE);
			if (co_memcmp(page, ps->bounce + i * CO_PAGE, CO_PAGE))
				co_memcpy(page, ps->bounce + i * CO_PAGE, CO_PAGE);
		}
		addr += k * CO_PAGE;
		n -= k;
	}
	return 0;
}

/* The pages of one run, straight into place but those that may be the parent's. */
static int read_run(struct pstream *ps, const struct co_run *run)
{
	uint64_t addr = run->addr, left = run->npages;
	while (left) {
		int inherited;
		uint64_t k = alike(ps, addr, left, &inherited);
		if (inherited ? read_inherited(ps, addr, k) : co_r_read(ps->r, (void *)addr, k * CO_PAGE))
			return -1;
		if (inherited)
			note_read(ps->rc, ps->cow, addr, k);
		addr += k * CO_PAGE;
		left -= k;
	}
	return 0;
}

static int holds(const struct co_rstctx *rc, int k, uint64_t addr, uint64_t n)
{
	return rc->vmas[k].kind != CO_V_SPECIAL && addr >= rc->vmas[k].start && addr + n * CO_PAGE <= rc->vmas[k].end;
}

/*
 * The region of rc that holds the n pages at addr wholly (not a special
 * one): its index + 1, or 0.  The runs come in address order, mostly many
 * to a region (a parent map of an incremental image leaves thousands of
 * runs to the parent): the region of the last call is tried first, which
 * took a scan of every region per run from 23 ms to nothing for 1 GiB.
 */
static int region_of(struct pstream *ps, uint64_t addr, uint64_t n)
{
	const struct co_rstctx *rc = ps->rc;
	if (ps->last && ps->last <= rc->nvmas && holds(rc, ps->last - 1, addr, n))
		return ps->last;
	for (int k = 0; k < rc->nvmas; k++)
		if (holds(rc, k, addr, n))
			return ps->last = k + 1;
	return 0;
}

/*
 * The current page map or parent map record into ps->pm: as co_r_payload,
 * but what lies past the runs the record holds is not cleared (nothing
 * reads runs past nruns): clearing the 64 KiB table for each of the
 * hundreds of maps of a 1 GiB image was ~1 ms of a lazy restart.  Runs a
 * damaged record counts but lacks read as zeros, as before.
 */
static int read_map(struct pstream *ps)
{
	struct co_reader *r = ps->r;
	struct co_pagemap *pm = &ps->pm;
	const uint64_t head = __builtin_offsetof(struct co_pagemap, runs);
	uint64_t max = r->hdr.len < head ? head : r->hdr.len < sizeof(*pm) ? r->hdr.len : sizeof(*pm);
	if (co_r_payload(r, pm, max))
		return PERR(ps, "%s", r->err);
	uint64_t have = (max - head) / sizeof(struct co_run);
	if (pm->nruns > have && pm->nruns <= CO_MAX_RUNS)
		co_memset(&pm->runs[have], 0, (pm->nruns - have) * sizeof(struct co_run));
	return 0;
}

/*
 * An incremental image restarted lazily from its chain (restart --lazy,
 * src/cli/chain.c): the pages a parent map leaves to the parent's image
 * have no data here; the filler brings them from the chain, those of
 * lazy regions as it brings any, the others written into place before
 * the program runs (co_lazy_handoff waits for that).  So there must be a
 * filler, lazy regions or not: noted here (parent_left), it is made at
 * the hand-over even for a process whose regions are all eager (a bash
 * whose every page is shared with a child it just forked).
 */
static int parent_pages(struct pstream *ps)
{
	struct co_rstctx *rc = ps->rc;
	struct co_reader *r = ps->r;
	struct co_pagemap *pm = &ps->pm;
	if (read_map(ps))
		return -1;
	for (uint32_t i = 0; i < pm->nruns && i < CO_MAX_RUNS; i++) {
		int k = region_of(ps, pm->runs[i].addr, pm->runs[i].npages);
		if (!k || !rc->want_lazy || rc->compressed)
			return PERR(ps, "%s: byte %lu: pages at %lx are in the parent generation's image and no page filler "
				    "comes for them", r->name, (unsigned long)r->rec_off, (unsigned long)pm->runs[i].addr);
	}
	if (pm->nruns)
		rc->parent_left = 1; /* only ever set (the streams are read side by side) */
	return 0;
}

/* Page map (and parent map) and page data records until the end record. */
static int read_pages(struct pstream *ps)
{
	struct co_rstctx *rc = ps->rc;
	struct co_reader *r = ps->r;
	struct co_pagemap *pm = &ps->pm;
	for (;;) {
		int e = co_r_next(r);
		if (e <= 0)
			return PERR(ps, "%s", e < 0 ? r->err : "image ends before its end record");
		if (r->hdr.type == CO_R_END)
			return co_r_finish(r) ? PERR(ps, "%s", r->err) : 0;
		if (r->hdr.type == CO_R_PARENTMAP) {
			if (parent_pages(ps))
				return -1;
			continue;
		}
		if (r->hdr.type != CO_R_PAGEMAP)
			return PERR(ps, "%s: byte %lu: unexpected %s record among pages", r->name,
				    (unsigned long)r->rec_off, co_rec_name(r->hdr.type));
		if (read_map(ps))
			return -1;
		if (pm->nruns > CO_MAX_RUNS)
			return PERR(ps, "%s: byte %lu: page map has %u runs", r->name, (unsigned long)r->rec_off,
				    pm->nruns);
		if (co_r_next(r) != 1 || r->hdr.type != CO_R_PAGEDATA || r->hdr.len != pm->npages * CO_PAGE)
			return PERR(ps, "%s", r->err[0] ? r->err : "page data does not match its page map");
		for (uint32_t i = 0; i < pm->nruns; i++) {
			const struct co_run *run = &pm->runs[i];
			int k = region_of(ps, run->addr, run->npages);
			if (!k)
				return PERR(ps, "%s: byte %lu: pages at %lx lie outside every region", r->name,
					    (unsigned long)r->rec_off, (unsigned long)run->addr);
			/* a lazy region's pages are the filler's to bring, and to check (src/cli/filler.c) */
			int skip = rc->lazy && rc->lazy_vma[k - 1];
			if (skip ? co_r_skip(r, run->npages * CO_PAGE) : read_run(ps, run))
				return PERR(ps, "%s", r->err);
		}
		if (co_r_finish(r))
			return PERR(ps, "%s", r->err);
	}
}

static void read_stream(void *arg)
{
	struct pstream *ps = arg;
	ps->failed = read_pages(ps) != 0;
}

/*
 * Open page stream k (k > 0) of the image and check its head.  name gets
 * the stored file's name, for messages: a compressed stream is opened as a
 * FIFO elsewhere but is the .zst file to whoever reads the message.
 */
static int open_stream(struct co_rstctx *rc, int k, char *name, size_t n)
{
	char path[CO_PATH + 16];
	co_stream_path(path, sizeof(path), rc->image, k);
	co_stream_path(name, n, rc->shown, k);
	if (rc->compressed)
		co_strlcpy(name + co_strlen(name), ".zst", n - co_strlen(name));
	/* an image file: opened as the restorer, not as the program whose files it opens meanwhile */
	int fd = co_creds_files(&rc->ids, 0);
	if (!fd) {
		fd = (int)co_open(path, O_RDONLY | O_CLOEXEC, 0);
		long back = co_creds_files(&rc->ids, 1);
		if (back && fd >= 0) {
			co_close(fd);
			fd = (int)back;
		}
	}
	if (fd < 0)
		return co_err(rc->err, rc->errlen, "cannot open %s (errno %d)", name, -fd);
	long hi = co_fcntl(fd, F_DUPFD_CLOEXEC, rc->fd_base + 16 + k);
	co_close(fd);
	co_r_init(&readers[k], (int)hi, name);
	readers[k].decompressed = rc->compressed;
	struct co_head h;
	struct co_bind want = rc->bind;
	want.pid = rc->proc->pid;
	want.stream = (uint32_t)k;
	if (co_r_expect(&readers[k], CO_R_HEAD, &h, sizeof(h)) ||
	    co_head_check(&readers[k], &h, CO_KIND_PAGES, &want))
		return co_err(rc->err, rc->errlen, "%s", readers[k].err);
	return 0;
}

/* Read every page stream into place, the extra ones on helper threads. */
int co_pages_restore(struct co_rstctx *rc)
{
	static char paths[CO_STREAMS][CO_PATH + 32];
	static struct co_helper helpers[CO_STREAMS];
	int n = (int)rc->proc->streams;
	if (n < 1)
		n = 1;
	if (n > CO_STREAMS)
		return co_err(rc->err, rc->errlen, "image has %d page streams, this restorer reads %d", n, CO_STREAMS);
	for (int k = 1; k < n; k++)
		if (open_stream(rc, k, paths[k], sizeof(paths[k])))
			return -1;
	if (cow_begin(rc))
		return -1;
	for (int k = 0; k < n; k++) {
		pstreams[k].rc = rc;
		pstreams[k].r = k ? &readers[k] : rc->r;
		pstreams[k].failed = 0;
		pstreams[k].cow = 0;
		pstreams[k].last = 0;
		pstreams[k].err[0] = 0;
	}
	/*
	 * Each helper gets 64 KiB at the top of the scratch area as its stack,
	 * [top - k * 64 KiB, top - (k - 1) * 64 KiB): the stack is named by its
	 * lowest address (it was named by its highest, and the helper's frames
	 * overwrote what the restorer keeps above the scratch area: the end of
	 * the last thread's record).
	 */
	for (int k = 1; k < n; k++)
		if (co_spawn(&helpers[k], read_stream, &pstreams[k], rc->scratch + rc->scratch_len - k * 65536, 65536))
			read_stream(&pstreams[k]);
	read_stream(&pstreams[0]);
	for (int k = 1; k < n; k++) {
		co_join(&helpers[k]);
		co_close(readers[k].fd);
	}
	for (int k = 0; k < n; k++)
		if (pstreams[k].failed)
			return co_err(rc->err, rc->errlen, "%s", pstreams[k].err);
	drop_unread(rc);
	return 0;
}
#endif
