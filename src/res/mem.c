/*
 * mem.c - the address space.  Dump: list the regions from /proc/self/maps,
 * then write the pages that cannot be had again from elsewhere: every
 * resident or swapped page of private anonymous memory, the copied-on-write
 * pages of private file mappings (the rest comes back from the file), and
 * the resident pages of shared anonymous memory.  Restore: unmap all that
 * is not the restorer, move the kernel's special mappings ([vdso], [vvar],
 * ...) to their recorded places, map every region at its address and read
 * its pages straight into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include "agent/dirty.h"
#include "procfs.h"
#include "res.h"
#include "helper.h"
#include "sys.h"
#include "util.h"


#ifndef COHORT_RESTORER
static struct co_vma vmas[CO_MAX_VMAS];

static int skipped(struct co_dumpctx *d, uint64_t start)
{
	for (int i = 0; i < d->nskip; i++)
		if (start >= d->skip_lo[i] && start < d->skip_hi[i])
			return 1;
	return 0;
}

/* Decide how a region is saved and restored. */
static int classify(struct co_dumpctx *d, const struct co_mapent *e, struct co_vma *v)
{
	const char *p = e->path;
	v->start = e->start;
	v->end = e->end;
	v->pgoff = e->off;
	v->prot = e->prot;
	v->flags = e->shared ? CO_VF_SHARED : 0;
	v->dev = e->dev;
	v->ino = e->ino;
	co_strlcpy(v->path, p, sizeof(v->path));
	if (!p[0] || co_startswith(p, "[anon:")) {
		v->kind = e->shared ? CO_V_SHANON : CO_V_ANON;
	} else if (co_startswith(p, "[heap]")) {
		v->kind = CO_V_ANON;
		v->flags |= CO_VF_HEAP;
	} else if (co_startswith(p, "[stack")) {
		v->kind = CO_V_ANON;
		v->flags |= CO_VF_STACK | (co_strcmp(p, "[stack]") == 0 ? CO_VF_GROWSDOWN : 0);
	} else if (p[0] == '[') {
		v->kind = CO_V_SPECIAL;
	} else if (p[0] != '/') {
		return DERR(d, "pid %d: region %lx-%lx: unsupported mapping of %s", d->pid,
			    (unsigned long)e->start, (unsigned long)e->end, p);
	} else if (co_endswith(p, " (deleted)") || co_startswith(p, "/memfd:") ||
		   co_startswith(p, "/SYSV")) {
		/* the file cannot be opened again: its content goes into the image */
		v->kind = e->shared ? CO_V_SHANON : CO_V_DELETED;
	} else if (co_startswith(p, "/dev/") && e->ino && co_strcmp(p, "/dev/zero") != 0 &&
		   !co_startswith(p, "/dev/shm/")) {
		/* (POSIX shared memory in /dev/shm is files, reopened by path like any other) */
		return DERR(d, "pid %d: region %lx-%lx: unsupported device mapping %s", d->pid,
			    (unsigned long)e->start, (unsigned long)e->end, p);
	} else {
		v->kind = CO_V_FILE;
	}
	return 0;
}

/* A shared file mapping without PROT_WRITE: only smaps says whether mprotect may make it writable. */
static int needs_maywrite(const struct co_vma *v)
{
	return v->kind == CO_V_FILE && (v->flags & CO_VF_SHARED) && !(v->prot & PROT_WRITE);
}

/*
 * One pass over maps (smaps = 0) or smaps; sets *want_smaps when maps did
 * not say all that is needed.  smaps is read when the program has set
 * madvise flags (agent.h), which only smaps shows.  With a snapshot this
 * runs before any lean snapshot marks stretches MADV_DONTFORK (dirty_lean.c):
 * the flags read here are the program's own.
 */
static int collect(struct co_dumpctx *d, int smaps, int *want_smaps)
{
	static struct co_maps m;
	static struct co_mapent e;
	const char *path = smaps ? "/proc/self/smaps" : "/proc/self/maps";
	struct co_smaps_info si = { 0 };
	int n = 0, r;
	if (co_maps_open(&m, path))
		return DERR(d, "pid %d: cannot read %s", d->pid, path);
	while ((r = smaps ? co_smaps_next(&m, &e, &si) : co_maps_next(&m, &e)) == 1) {
		if (co_strcmp(e.path, "[vsyscall]") == 0 || skipped(d, e.start))
			continue;
		if (n == CO_MAX_VMAS) {
			co_maps_close(&m);
			return DERR(d, "pid %d: more than %d memory regions", d->pid, CO_MAX_VMAS);
		}
		if (classify(d, &e, &vmas[n])) {
			co_maps_close(&m);
			return -1;
		}
		if (vmas[n].kind != CO_V_SPECIAL) /* the kernel's own mappings come back as this kernel makes them */
			vmas[n].flags |= si.advice & CO_VF_ADVICE;
		if (needs_maywrite(&vmas[n])) {
			vmas[n].flags |= si.advice & CO_VF_MAYWRITE;
			*want_smaps |= !smaps;
		}
		n++;
	}
	co_maps_close(&m);
	d->nvmas = (uint32_t)n;
	return 0;
}

/*
 * The regions, from /proc/self/maps; from smaps when the program has set
 * madvise flags (agent.h), or maps a file shared without PROT_WRITE,
 * which only smaps shows.  With a snapshot this runs before any lean
 * snapshot marks stretches MADV_DONTFORK (dirty.c): the flags read here
 * are the program's own.
 */
int co_mem_collect(struct co_dumpctx *d)
{
	int want_smaps = 0;
	if (collect(d, d->advice, &want_smaps))
		return -1;
	return want_smaps ? collect(d, 1, &want_smaps) : 0;
}

/*
 * The snapshot fork leaves MADV_DONTFORK regions out of the child (V8 marks
 * its whole heap so, RDMA buffers are) and gives it MADV_WIPEONFORK ones
 * empty; the image must hold them as they are at the pause.  So for the
 * fork they are made to fork like the rest (MADV_DOFORK, MADV_KEEPONFORK),
 * and they get their flags back as soon as it returns, before a thread of
 * the program runs, or forks, again.
 *
 * Why not read them from the parent instead: the fork gives the child the
 * memory of the pause, copy-on-write, for the price of its page tables
 * (about 20 ms per GiB; Node's tens of MiB of heap add well under a
 * millisecond).  Reading them out of the process would either keep the
 * program parked while every page is copied (milliseconds per 10 MiB, and
 * more for swapped-out pages), or, after the release, read memory the
 * program has changed since.  The flags are per region, and two madvise
 * calls per region cost microseconds.
 *
 * The flags are the program's own: co_mem_collect read them before a lean
 * snapshot (dirty_lean.c) marks stretches of its own MADV_DONTFORK, and the lean
 * marks are taken off (MADV_DOFORK) before co_mem_fork_end puts these back,
 * so a stretch inside such a region ends up with the program's flag.
 */
/* The program's fork flags off (normal: the fork copies every region) or back on. */
static void fork_advice(struct co_dumpctx *d, int normal)
{
	for (uint32_t i = 0; i < d->nvmas; i++) {
		const struct co_vma *v = &vmas[i];
		long len = (long)(v->end - v->start);
		/*
		 * A region that cannot be changed is found missing by the writer
		 * (snapshot_complete); putting them back splits what the fork-time
		 * flags merged: never more regions than before.
		 */
		if (v->flags & CO_VF_DONTFORK)
			co_sys3(SYS_madvise, (long)v->start, len, normal ? MADV_DOFORK : MADV_DONTFORK);
		if (v->flags & CO_VF_WIPEONFORK)
			co_sys3(SYS_madvise, (long)v->start, len, normal ? MADV_KEEPONFORK : MADV_WIPEONFORK);
	}
}

void co_mem_fork_begin(struct co_dumpctx *d)
{
	fork_advice(d, 1);
	d->forked = 1;
}

void co_mem_fork_end(struct co_dumpctx *d)
{
	fork_advice(d, 0);
	d->forked = 0;
}

int co_mem_dump_vmas(struct co_dumpctx *d)
{
	for (uint32_t i = 0; i < d->nvmas; i++) {
		size_t len = __builtin_offsetof(struct co_vma, path) + co_strlen(vmas[i].path) + 1;
		if (co_w_rec(d->w, CO_R_VMA, &vmas[i], len))
			return DERR(d, "pid %d: writing region records failed", d->pid);
	}
	return 0;
}

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

/* Shared memory is captured once for the group by the coordinator (shared.img). */
static int has_pages(const struct co_vma *v)
{
	return v->kind != CO_V_SPECIAL && v->kind != CO_V_SHANON &&
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
	co_w_begin(s->w, CO_R_PAGEDATA, pm->npages * CO_PAGE, pm->npages != 0); /* no padding for nothing */
	for (uint32_t i = 0; i < pm->nruns; i++) {
		uint64_t addr = pm->runs[i].addr, n = pm->runs[i].npages * CO_PAGE;
		if (!s->vol) {
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

static int add_run(struct co_pagemap *pm, uint64_t addr)
{
	struct co_run *last = pm->nruns ? &pm->runs[pm->nruns - 1] : 0;
	if (last && last->addr + last->npages * CO_PAGE == addr) {
		last->npages++;
	} else {
		if (pm->nruns == CO_MAX_RUNS)
			return 1;
		pm->runs[pm->nruns].addr = addr;
		pm->runs[pm->nruns].npages = 1;
		pm->nruns++;
	}
	pm->npages++;
	return 0;
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
			int in_lean = 0, held = tracked ? co_dirty_lean_held(addr, &in_lean) : 0;
			if (in_lean)
				save = held; /* left out of a lean snapshot: unwritten, so the parent's page or none */
			/* the counting pass only counts: the decision is made (and recorded) once, when writing */
			if (save && fn(s, addr, fn == add_page && co_dirty_page_kept((int)(s - streams), addr, tracked)))
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
		const struct co_vma *v = &vmas[s->ranges[i].vma];
		s->vol = is_volatile(s->d, v);
		s->drop = s->d->snapshot && !s->vol && v->kind == CO_V_ANON;
		s->drop_from = s->ranges[i].lo;
		s->failed = scan_pages(s, v, s->ranges[i].lo, s->ranges[i].hi, add_page) || flush_batch(s);
		if (!s->failed)
			drop_written(s, s->ranges[i].hi);
	}
}

static uint64_t counted;
/* Every page counts: the streams are balanced for the merged full image and its restore. */
static int count_page(struct stream *s, uint64_t addr, int kept)
{
	(void)s;
	(void)addr;
	(void)kept;
	counted++;
	return 0;
}

/* Split the regions between the streams, by the pages each will write. */
static int plan_streams(struct co_dumpctx *d, int nstreams)
{
	static uint64_t per_vma[CO_MAX_VMAS];
	uint64_t total = 0;
	struct stream *s0 = &streams[0];
	for (uint32_t i = 0; i < d->nvmas; i++) {
		counted = 0;
		if (has_pages(&vmas[i]) && scan_pages(s0, &vmas[i], vmas[i].start, vmas[i].end, count_page))
			return -1;
		per_vma[i] = vma_pages[i] = counted;
		total += counted;
	}
	uint64_t share = (total + nstreams - 1) / nstreams, acc = 0;
	int k = 0;
	for (uint32_t i = 0; i < d->nvmas; i++) {
		const struct co_vma *v = &vmas[i];
		if (!per_vma[i])
			continue;
		uint64_t lo = v->start;
		while (k < nstreams - 1 && acc + per_vma[i] > share * (uint64_t)(k + 1)) {
			/* cut this region where stream k has its share: find that page */
			uint64_t want = share * (uint64_t)(k + 1) - acc, seen = 0, cut = v->end;
			for (uint64_t a = lo; a < v->end; a += WINDOW * CO_PAGE) {
				uint64_t n = (v->end - a) / CO_PAGE;
				n = n > WINDOW ? WINDOW : n;
				counted = 0;
				if (scan_pages(s0, v, a, a + n * CO_PAGE, count_page))
					return -1;
				if (seen + counted >= want) {
					cut = a + n * CO_PAGE;
					seen += counted;
					break;
				}
				seen += counted;
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
		const struct co_vma *v = &vmas[i];
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
		const struct co_vma *v = &vmas[i];
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
		const struct co_vma *v = &vmas[i];
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
	if (!ret && plan_streams(d, nstreams))
		ret = co_err(d->err, d->errlen, "%s", streams[0].err);
	if (!ret)
		ret = readable_all(d, 1);
	if (!ret) {
		int spawned = nstreams > 1 &&
			      co_spawn(&helper, write_stream, &streams[1], helper_stack + sizeof(helper_stack),
				       sizeof(helper_stack)) == 0;
		if (nstreams > 1 && !spawned)
			write_stream(&streams[1]);
		write_stream(&streams[0]);
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
#else /* the restorer */

static int is_special_name(const char *p)
{
	return p[0] == '[' && !co_startswith(p, "[heap]") && !co_startswith(p, "[stack") &&
	       !co_startswith(p, "[anon:");
}

struct cur_map {
	uint64_t start, end;
	char name[24];
};
static struct cur_map cur[256];
static int ncur;

/* Our own mappings as the kernel set them up for the restorer. */
static int read_own_maps(struct co_rstctx *rc)
{
	static struct co_maps m;
	static struct co_mapent e;
	ncur = 0;
	if (co_maps_open(&m, "/proc/self/maps"))
		return co_err(rc->err, rc->errlen, "cannot read /proc/self/maps");
	while (co_maps_next(&m, &e) == 1 && ncur < (int)CO_ARRAY_LEN(cur)) {
		cur[ncur].start = e.start;
		cur[ncur].end = e.end;
		co_strlcpy(cur[ncur].name, e.path, sizeof(cur[ncur].name));
		ncur++;
	}
	co_maps_close(&m);
	return 0;
}

static struct cur_map *find_cur(const char *name)
{
	for (int i = 0; i < ncur; i++)
		if (co_strcmp(cur[i].name, name) == 0)
			return &cur[i];
	return 0;
}

int co_mem_check(struct co_rstctx *rc)
{
	if (read_own_maps(rc))
		return -1;
	int nspecial_img = 0;
	for (int i = 0; i < rc->nvmas; i++) {
		struct co_vma *v = &rc->vmas[i];
		if (v->start < rc->zone + rc->zone_len && v->end > rc->zone)
			return co_err(rc->err, rc->errlen,
				      "pid %d: region %lx-%lx overlaps the restorer's working area %lx-%lx",
				      rc->proc->pid, (unsigned long)v->start, (unsigned long)v->end,
				      (unsigned long)rc->zone, (unsigned long)(rc->zone + rc->zone_len));
		if (v->kind != CO_V_SPECIAL)
			continue;
		nspecial_img++;
		struct cur_map *c = find_cur(v->path);
		if (!c)
			return co_err(rc->err, rc->errlen,
				      "pid %d: this kernel has no %s mapping: restart on the kernel the checkpoint was taken on",
				      rc->proc->pid, v->path);
		if (c->end - c->start != v->end - v->start)
			return co_err(rc->err, rc->errlen,
				      "pid %d: %s is %lu bytes here but %lu in the image: restart on the kernel the checkpoint was taken on",
				      rc->proc->pid, v->path, (unsigned long)(c->end - c->start),
				      (unsigned long)(v->end - v->start));
	}
	int nspecial_here = 0;
	for (int i = 0; i < ncur; i++)
		nspecial_here += is_special_name(cur[i].name) && co_strcmp(cur[i].name, "[vsyscall]") != 0;
	if (nspecial_here != nspecial_img)
		return co_err(rc->err, rc->errlen,
			      "pid %d: this kernel's special mappings differ from the image's: restart on the kernel the checkpoint was taken on",
			      rc->proc->pid);
	return 0;
}

/* Unmap everything but the restorer's area, and park the special mappings inside it. */
static int clear_address_space(struct co_rstctx *rc, uint64_t park)
{
	if (read_own_maps(rc))
		return -1;
	for (int i = 0; i < ncur; i++) {
		struct cur_map *c = &cur[i];
		if (c->start >= rc->zone && c->end <= rc->zone + rc->zone_len)
			continue;
		if (co_strcmp(c->name, "[vsyscall]") == 0)
			continue;
		if (is_special_name(c->name)) {
			long r = co_mremap((void *)c->start, c->end - c->start, c->end - c->start,
					   MREMAP_MAYMOVE | MREMAP_FIXED, (void *)park);
			if (r < 0)
				return co_err(rc->err, rc->errlen, "cannot move %s (errno %ld)", c->name, -r);
			c->end = park + (c->end - c->start);
			c->start = park;
			park = c->end + CO_PAGE;
			continue;
		}
		co_munmap((void *)c->start, c->end - c->start);
	}
	return 0;
}

static int map_region(struct co_rstctx *rc, const struct co_vma *v)
{
	uint64_t len = v->end - v->start;
	int prot = PROT_READ | PROT_WRITE;
	long r;
	switch (v->kind) {
	case CO_V_SPECIAL: {
		struct cur_map *c = find_cur(v->path);
		r = co_mremap((void *)c->start, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)v->start);
		break;
	}
	case CO_V_ANON:
	case CO_V_DELETED:
		r = co_mmap((void *)v->start, len, prot,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
				    ((v->flags & CO_VF_GROWSDOWN) ? MAP_GROWSDOWN : 0),
			    -1, 0);
		break;
	case CO_V_SHANON: {
		int fd = co_plan_shm(rc, v->dev, v->ino);
		if (fd < 0)
			return co_err(rc->err, rc->errlen, "pid %d: region %lx-%lx: shared memory %s is missing from the group's shared objects",
				      rc->proc->pid, (unsigned long)v->start, (unsigned long)v->end, v->path);
		r = co_mmap((void *)v->start, len, (int)v->prot, MAP_SHARED | MAP_FIXED, fd, (long)v->pgoff);
		break;
	}
	case CO_V_FILE: {
		int shared = v->flags & CO_VF_SHARED;
		/* read-write also when mprotect may make it writable later, as before the checkpoint */
		int rw = shared && ((v->prot & PROT_WRITE) || (v->flags & CO_VF_MAYWRITE));
		/* mmap moves the atime (as the program's own mapping did, long before): not where we may keep it */
		int fd = (int)co_open(v->path, (rw ? O_RDWR : O_RDONLY) | CO_O_NOATIME, 0);
		if (fd == -EPERM)
			fd = (int)co_open(v->path, rw ? O_RDWR : O_RDONLY, 0);
		if (fd < 0)
			return co_err(rc->err, rc->errlen, "pid %d: region %lx-%lx: cannot open %s (errno %d%s)",
				      rc->proc->pid, (unsigned long)v->start, (unsigned long)v->end, v->path, -fd,
				      co_creds_why(&rc->ids, fd));
		r = co_mmap((void *)v->start, len, shared ? (int)v->prot : prot,
			    (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED, fd, (long)v->pgoff);
		co_close(fd);
		break;
	}
	default:
		return co_err(rc->err, rc->errlen, "pid %d: unknown region kind %u in image", rc->proc->pid, v->kind);
	}
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot map region %lx-%lx %s (errno %ld)",
			      rc->proc->pid, (unsigned long)v->start, (unsigned long)v->end, v->path, -r);
	return 0;
}

/* One page-data stream being read into place. */
struct pstream {
	struct co_rstctx *rc;
	struct co_reader *r;
	int failed;
	struct co_pagemap pm;
	char err[512];
};
static struct pstream pstreams[CO_STREAMS];
static struct co_reader readers[CO_STREAMS];

#define PERR(ps, ...) co_err((ps)->err, sizeof((ps)->err), __VA_ARGS__)

/* Page map and page data records until the end record. */
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
		if (r->hdr.type != CO_R_PAGEMAP)
			return PERR(ps, "%s: byte %lu: unexpected %s record among pages", r->name,
				    (unsigned long)r->rec_off, co_rec_name(r->hdr.type));
		if (co_r_payload(r, pm, sizeof(*pm)))
			return PERR(ps, "%s", r->err);
		if (pm->nruns > CO_MAX_RUNS)
			return PERR(ps, "%s: byte %lu: page map has %u runs", r->name, (unsigned long)r->rec_off,
				    pm->nruns);
		if (co_r_next(r) != 1 || r->hdr.type != CO_R_PAGEDATA || r->hdr.len != pm->npages * CO_PAGE)
			return PERR(ps, "%s", r->err[0] ? r->err : "page data does not match its page map");
		for (uint32_t i = 0; i < pm->nruns; i++) {
			const struct co_run *run = &pm->runs[i];
			int inside = 0;
			for (int k = 0; k < rc->nvmas && !inside; k++)
				inside = rc->vmas[k].kind != CO_V_SPECIAL && run->addr >= rc->vmas[k].start &&
					 run->addr + run->npages * CO_PAGE <= rc->vmas[k].end;
			if (!inside)
				return PERR(ps, "%s: byte %lu: pages at %lx lie outside every region", r->name,
					    (unsigned long)r->rec_off, (unsigned long)run->addr);
			if (co_r_read(r, (void *)run->addr, run->npages * CO_PAGE))
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
	if (co_r_expect(&readers[k], CO_R_HEAD, &h, sizeof(h)))
		return co_err(rc->err, rc->errlen, "%s", readers[k].err);
	if (h.kind != CO_KIND_PAGES || !CO_IMG_VERSION_OK(h.version))
		return co_err(rc->err, rc->errlen, "%s: not a page stream of this image format", name);
	return 0;
}

/* Read every page stream into place, the extra ones on helper threads. */
static int read_all_pages(struct co_rstctx *rc)
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
	for (int k = 0; k < n; k++) {
		pstreams[k].rc = rc;
		pstreams[k].r = k ? &readers[k] : rc->r;
		pstreams[k].failed = 0;
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
	return 0;
}

/*
 * Ask again what the program had asked madvise for the region (its VmFlags
 * at the checkpoint, CO_VF_ADVICE), so that a fork after the restart
 * leaves out what it left out before.  A kernel that refuses one (no
 * transparent huge pages, say) runs the program without it, as it would
 * have run there from the start.  Only the bits in `which`: the huge page
 * advice goes before the pages are read in (huge ones come back huge), the
 * rest after (the page readers must see every region).
 */
#define CO_VF_THP_ADVICE (CO_VF_HUGEPAGE | CO_VF_NOHUGEPAGE)
static void advise_again(const struct co_vma *v, uint32_t which)
{
	static const struct { uint32_t flag; int advice; } adv[] = {
		{ CO_VF_DONTFORK, MADV_DONTFORK }, { CO_VF_WIPEONFORK, MADV_WIPEONFORK },
		{ CO_VF_DONTDUMP, MADV_DONTDUMP }, { CO_VF_HUGEPAGE, MADV_HUGEPAGE },
		{ CO_VF_NOHUGEPAGE, MADV_NOHUGEPAGE }, { CO_VF_SEQUENTIAL, MADV_SEQUENTIAL },
		{ CO_VF_RANDOM, MADV_RANDOM },
	};
	for (unsigned k = 0; k < CO_ARRAY_LEN(adv); k++)
		if (v->flags & which & adv[k].flag)
			co_sys3(SYS_madvise, (long)v->start, (long)(v->end - v->start), adv[k].advice);
}

int co_mem_restore(struct co_rstctx *rc)
{
	uint64_t park = rc->zone + rc->zone_len - (1 << 20);
	if (clear_address_space(rc, park))
		return -1;
	for (int i = 0; i < rc->nvmas; i++) {
		if (map_region(rc, &rc->vmas[i]))
			return -1;
		if (rc->vmas[i].kind != CO_V_SPECIAL)
			advise_again(&rc->vmas[i], CO_VF_THP_ADVICE);
	}
	if (read_all_pages(rc))
		return -1;
	for (int i = 0; i < rc->nvmas; i++) {
		const struct co_vma *v = &rc->vmas[i];
		if (v->kind == CO_V_SPECIAL)
			continue;
		if (!(v->flags & CO_VF_SHARED))
			co_mprotect((void *)v->start, v->end - v->start, (int)v->prot);
		advise_again(v, CO_VF_ADVICE & ~CO_VF_THP_ADVICE);
	}
	return 0;
}
#endif
