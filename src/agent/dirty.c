/*
 * dirty.c - which pages a process wrote since its last checkpoint, for
 * incremental images.  Agent side only (the coordinator asks co_dirty_method
 * and co_dirty_trackable); the restorer never needs it.
 *
 * Method: userfaultfd write-protection in asynchronous mode (Linux 6.7+).
 * Every tracked region is registered with a userfaultfd in WP mode and
 * write-protected; a write to a protected page is resolved inside the
 * kernel, which just clears the page's protection bit: no message, no
 * signal, no visible fault, and /proc/PID/maps shows the protections the
 * program set.  At the next checkpoint one PAGEMAP_SCAN ioctl per region
 * reports the pages whose bit is clear (PAGE_IS_WRITTEN) and protects them
 * again (PM_SCAN_WP_MATCHING), atomically.  A page faulted in later is
 * reported as written too, which is what an image needs.
 *
 * A region counts as tracked when it lies inside a region tracked at the
 * previous collection and is still registered (see was_tracked); anything
 * mapped or moved since is new and all its pages count as written.  The
 * whole record lives in one private mapping that images skip; after a fork
 * or a restart it is dropped and the next image of that process is a full
 * one.
 *
 * All of this runs in the manager thread with the other threads parked.
 */
#ifndef COHORT_RESTORER
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include "dirty.h"
#include "res.h"
#include "procfs.h"
#include "sys.h"
#include "util.h"
#include "xxh64.h"
#include <stdlib.h>

/* Newer than the 6.1 headers of this system: declared here, probed at run time. */
#define CO_UFFD_FEATURE_WP_ASYNC (1ULL << 15)
#define CO_UFFDIO_REGISTER_MODE_WP (1ULL << 1)
#define CO_UFFDIO_WRITEPROTECT_MODE_WP (1ULL << 0)
#define CO_UFFDIO_API 0xc018aa3fUL	     /* _IOWR(0xAA, 0x3F, struct uffdio_api) */
#define CO_UFFDIO_REGISTER 0xc020aa00UL	     /* _IOWR(0xAA, 0x00, struct uffdio_register) */
#define CO_UFFDIO_UNREGISTER 0x8010aa01UL    /* _IOR(0xAA, 0x01, struct uffdio_range) */
#define CO_UFFDIO_WRITEPROTECT 0xc018aa06UL /* _IOWR(0xAA, 0x06, struct uffdio_writeprotect) */
#define CO_PAGEMAP_SCAN 0xc0606610UL	     /* _IOWR('f', 16, struct pm_scan_arg) */
#define CO_PAGE_IS_WPALLOWED (1ULL << 0)
#define CO_PAGE_IS_WRITTEN (1ULL << 1)
#define CO_PAGE_IS_PRESENT (1ULL << 3)
#define CO_PAGE_IS_SWAPPED (1ULL << 4)
#define CO_PAGE_IS_HUGE (1ULL << 6)
#define CO_MADV_COLLAPSE 25 /* Linux 6.1 */
#define HUGE_PAGE (2ULL << 20)
#define CO_PM_SCAN_WP_MATCHING (1ULL << 0)

struct uffd_api { uint64_t api, features, ioctls; };
struct uffd_range { uint64_t start, len; };
struct uffd_register { struct uffd_range range; uint64_t mode, ioctls; };
struct uffd_wp { struct uffd_range range; uint64_t mode; };
struct page_region { uint64_t start, end, categories; };
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

#define MAX_LEAN 256
#define LEAN_MIN_REGION (4ULL << 20) /* smaller regions (libraries' data, small heaps) stay whole */
#define LEAN_MIN_SPAN (1ULL << 20)   /* shorter unwritten stretches are not worth a cut */

/* The record: two region lists (previous, current) and the written ranges. */
#define MAX_REGIONS 8192
#define MAX_HUGE (1 << 16)
#define MAX_WRITTEN (1 << 20)
struct region { uint64_t start, end; };
struct record {
	uint64_t gen;			/* generation whose snapshot started this tracking, 0: none */
	int nprev, ncur;
	struct region prev[MAX_REGIONS];
	struct region cur[MAX_REGIONS];	/* after a collection: regions tracked from now on */
	struct region old[MAX_REGIONS];	/* after a collection: regions that were tracked before it */
	int nold;
	struct region pre[MAX_REGIONS];	/* registered ahead of the pause by co_dirty_prepare */
	int npre;
	struct region cand[MAX_REGIONS];	/* tracked regions a lean snapshot may leave out in part */
	int ncand;
	struct region lean[MAX_LEAN];	/* left out of the snapshot: unwritten since the parent */
	int nlean;
	int overflow;			/* a list filled up: this collection is unusable */
	uint64_t nwritten;
	struct region written[MAX_WRITTEN];
	/*
	 * The pages the parent image holds.  Only those can be left to it:
	 * this does not depend on how the kernel marks pages that appear
	 * without a write (zero pages, collapsed huge pages).
	 */
	uint64_t nheld_prev;
	struct region held_prev[MAX_WRITTEN];
	/*
	 * A pre-copy's pages a lean snapshot must still copy: those swapped
	 * out when it was armed (or uffd-wp markers of pages never touched,
	 * which look the same and which the fork drops), and regions then
	 * unreadable.  The pre-copy reads neither; the snapshot sees which
	 * are real.
	 */
	uint64_t nnolean;
	struct region nolean[MAX_WRITTEN];
	/*
	 * Regions whose huge pages are kept ("Huge pages" below): compared by
	 * page hashes, never write-protected.  thp: as of the last
	 * collection; thp_next: as co_dirty_prepare classified them (valid
	 * while thp_fresh); huge: the 2 MiB blocks of those that were mapped
	 * huge then, made huge again by the snapshot's writer once it is done
	 * (co_dirty_recollapse).
	 */
	int nthp, nthp_next, thp_fresh;
	struct region thp[MAX_REGIONS];
	struct region thp_next[MAX_REGIONS];
	uint64_t nhuge;
	struct region huge[MAX_HUGE];
};

/*
 * The image writer (the snapshot child, or the manager with --stop) lists
 * here the pages it saves, one list per page stream; the next collection
 * takes the lists as held_prev.  Shared memory: the child's writes must
 * reach the parent.  `complete` names the generation whose image finished.
 */
#define MAX_HELD (1 << 19)
struct held_area {
	uint64_t complete;
	uint64_t n[CO_STREAMS];
	struct region r[CO_STREAMS][MAX_HELD];
};
static struct held_area *held;
#define HELD_SIZE CO_PAGE_ALIGN(sizeof(struct held_area))

static struct record *rec;
#define REC_SIZE CO_PAGE_ALIGN(sizeof(struct record))
static int uffd = -1;
static int pm_fd = -1, maps_fd = -1;	/* /proc/self/pagemap and maps, the manager's (co_dirty_setup) */
static int smaps_fd = -1;		/* /proc/self/smaps, the manager's when huge pages can be had */
static int method = -1;
static struct co_maps maps;
static struct co_mapent ent;

/* How regions of huge pages are tracked (COHORT_DIRTY_THP; see "Huge pages" below). */
enum { THP_WP = 0, THP_HASH = 1, THP_WHOLE = 2 };
static int thp_mode = -1;

static int thp_class_mode(void)
{
	if (thp_mode < 0) {
		const char *m = getenv("COHORT_DIRTY_THP");
		thp_mode = m && !co_strcmp(m, "wp") ? THP_WP : m && !co_strcmp(m, "whole") ? THP_WHOLE : THP_HASH;
	}
	return thp_mode;
}

static int contains(const char *s, const char *w)
{
	size_t n = co_strlen(w);
	for (; *s; s++)
		if (!co_memcmp(s, w, n))
			return 1;
	return 0;
}


/* Can this kernel do asynchronous write-protection? */
static int uffd_open(void)
{
	int fd = (int)co_sys1(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	/*
	 * Without CAP_SYS_PTRACE (a process that changed its uid) and with
	 * vm.unprivileged_userfaultfd 0, only one that leaves the kernel's own
	 * faults alone may be had; asynchronous write-protection never passes
	 * a fault on, so it works the same.
	 */
	if (fd == -EPERM)
		fd = (int)co_sys1(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */);
	if (fd < 0)
		return -1;
	struct uffd_api api = { 0xAA, CO_UFFD_FEATURE_WP_ASYNC, 0 };
	if (co_sys3(SYS_ioctl, fd, CO_UFFDIO_API, (long)&api) < 0) {
		co_close(fd);
		return -1;
	}
	/* keep it far above the program's descriptors */
	return co_fd_high(fd);
}

int co_dirty_method(void)
{
	if (method >= 0)
		return method;
	/* COHORT_DIRTY=page-hash|none picks a method (tests, or a kernel whose uffd-wp misbehaves) */
	const char *want = getenv("COHORT_DIRTY");
	if (want && !co_strcmp(want, "page-hash"))
		return method = CO_DIRTY_HASH;
	if (want && !co_strcmp(want, "none"))
		return method = CO_DIRTY_NONE;
	int fd = uffd_open();
	int pm = co_proc_self_open("pagemap");
	/* PAGEMAP_SCAN with no output is a cheap probe of the ioctl itself */
	struct pm_scan_arg a = { .size = sizeof(a), .start = 0, .end = 0 };
	int scan = pm >= 0 && co_sys3(SYS_ioctl, pm, CO_PAGEMAP_SCAN, (long)&a) >= 0;
	/* without write-protection, compare page hashes: it costs reading every page at each image */
	method = fd >= 0 && scan ? CO_DIRTY_UFFD_WP : CO_DIRTY_HASH;
	if (fd >= 0)
		co_close(fd);
	if (pm >= 0)
		co_close(pm);
	return method;
}

const char *co_dirty_name(int m)
{
	return m == CO_DIRTY_UFFD_WP ? "uffd-wp" : m == CO_DIRTY_HASH ? "page-hash" : "none";
}

/* Private, writable-by-copy memory: its pages go into the image. */
static int private_kind(const struct co_mapent *e)
{
	if (e->shared || co_strcmp(e->path, "[vsyscall]") == 0)
		return 0;
	if (e->path[0] == '[')
		return co_startswith(e->path, "[heap]") || co_startswith(e->path, "[stack") ||
		       co_startswith(e->path, "[anon:");
	return 1;
}

/*
 * Private memory whose writes are tracked.  Not PROT_NONE: nothing can
 * write there, and write-protecting it would fill its page tables with
 * uffd-wp markers, one per page (V8 reserves a GiB of address space so:
 * 2 MiB of page tables, 25 ms per GiB to protect, and more for every
 * snapshot fork to walk).  Such a region is registered without being
 * protected (see register_only); a part of it made accessible later is a
 * region not tracked yet, saved whole at the next image and tracked from
 * there.  A tracked region made PROT_NONE is saved whole while it is.
 */
int co_dirty_trackable(const struct co_mapent *e)
{
	return e->prot && private_kind(e);
}

/*
 * Private anonymous memory, readable, large: a lean snapshot may leave its
 * unwritten stretches out of the fork.  Nothing the image writer touches
 * itself lives in such a region except the manager's stack, which the
 * caller excludes by address.
 */
static int lean_kind(const struct co_mapent *e)
{
	const char *p = e->path;
	return !e->shared && (e->prot & PROT_READ) && e->end - e->start >= LEAN_MIN_REGION &&
	       (!p[0] || co_strcmp(p, "[heap]") == 0 || co_startswith(p, "[anon:"));
}

/* Index of the first range of list (sorted, disjoint) that ends after addr. */
static uint64_t first_after(const struct region *list, uint64_t n, uint64_t addr)
{
	uint64_t lo = 0, hi = n;
	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;
		if (list[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Does one region of list (sorted, disjoint) hold all of [start, end)? */
static int covered(const struct region *list, uint64_t n, uint64_t start, uint64_t end)
{
	uint64_t i = first_after(list, n, start);
	return i < n && list[i].start <= start && end <= list[i].end;
}

/* Append [start, end) to list (sorted, n entries, room for max), joining a neighbour; -1 when full. */
static int list_add(struct region *list, uint64_t *n, uint64_t max, uint64_t start, uint64_t end)
{
	struct region *last = *n ? &list[*n - 1] : 0;
	if (last && last->end == start)
		last->end = end;
	else if (*n < max)
		list[(*n)++] = (struct region){ start, end };
	else
		return -1;
	return 0;
}

/* Is [start, end) still registered for write-protection?  One page is enough to ask. */
static int wp_registered(int pm, uint64_t start, uint64_t end)
{
	struct page_region r;
	struct pm_scan_arg a = { .size = sizeof(a), .start = start, .end = end, .vec = (uint64_t)&r, .vec_len = 1,
				 .max_pages = 1, .category_mask = CO_PAGE_IS_WPALLOWED,
				 .return_mask = CO_PAGE_IS_WPALLOWED };
	return co_sys3(SYS_ioctl, pm, CO_PAGEMAP_SCAN, (long)&a) == 1;
}

/*
 * Were the writes to [start, end) tracked since the previous collection?
 * It must lie inside a region tracked then, and still be registered: a
 * part of a region that was unmapped, re-protected or cut keeps its
 * registration, while anything mapped or moved (mremap drops it) since,
 * even at a place that was tracked before, does not.
 */
static int was_tracked(int pm, uint64_t start, uint64_t end)
{
	return covered(rec->prev, (uint64_t)rec->nprev, start, end) && wp_registered(pm, start, end);
}

/*
 * One PAGEMAP_SCAN walk over [start, end) for the pages with all the
 * categories of `all` and any of `any` (PAGE_IS_*): each range found goes
 * to fn with those of its categories (fn NULL: none), and with
 * PM_SCAN_WP_MATCHING in flags the pages found are protected again in the
 * same walk.  -1 when the walk fails.
 */
static int scan(int pm, uint64_t start, uint64_t end, uint64_t flags, uint64_t all, uint64_t any,
		void (*fn)(const struct page_region *))
{
	static struct page_region out[512];
	for (uint64_t at = start; at < end;) {
		struct pm_scan_arg a = { .size = sizeof(a), .flags = flags, .start = at, .end = end,
					 .vec = (uint64_t)out, .vec_len = CO_ARRAY_LEN(out), .category_mask = all,
					 .category_anyof_mask = any, .return_mask = all | any };
		long got = co_sys3(SYS_ioctl, pm, CO_PAGEMAP_SCAN, (long)&a);
		if (got < 0)
			return -1;
		for (long i = 0; i < got && fn; i++)
			fn(&out[i]);
		if (a.walk_end <= at)
			return -1;
		at = a.walk_end;
	}
	return 0;
}

static void note_written(const struct page_region *r)
{
	if (list_add(rec->written, &rec->nwritten, MAX_WRITTEN, r->start, r->end))
		rec->overflow = 1;
}

/*
 * PAGEMAP_SCAN [start, end): append the written pages to rec->written
 * (note), protecting them again in the same walk.  Without note the walk
 * only protects again: the region counts as written whole anyway.
 */
static int scan_written(int pm, uint64_t start, uint64_t end, int note)
{
	return scan(pm, start, end, CO_PM_SCAN_WP_MATCHING, CO_PAGE_IS_WRITTEN, 0, note ? note_written : 0);
}

/* Register [start, end) for write-protection and protect all of it. */
static int protect_new(uint64_t start, uint64_t end)
{
	struct uffd_register r = { { start, end - start }, CO_UFFDIO_REGISTER_MODE_WP, 0 };
	if (co_sys3(SYS_ioctl, uffd, CO_UFFDIO_REGISTER, (long)&r) < 0)
		return -1;
	struct uffd_wp w = { { start, end - start }, CO_UFFDIO_WRITEPROTECT_MODE_WP };
	return co_sys3(SYS_ioctl, uffd, CO_UFFDIO_WRITEPROTECT, (long)&w) < 0 ? -1 : 0;
}

/* ---- the last resort: page hashes ---- */

/*
 * Without write-protection the image writer hashes every page it saves
 * (XXH64) and compares it with the hash the parent image's writer stored
 * for the same address: equal means unchanged.  Two lists, used in turn:
 * the writer reads the parent's and fills the other.  Nothing of this runs
 * in the pause; the cost is reading all memory at every image, in the
 * snapshot child.  A 64-bit hash collision would keep a changed page: with
 * XXH64 the odds are about 2^-64 per page.
 */
#define MAX_HASHED (1 << 22)
struct hashed {
	uint64_t addr, hash;
};
struct hash_area {
	uint64_t complete[2];			/* generation each list describes (0: none) */
	uint64_t n[2][CO_STREAMS];
	struct hashed e[2][CO_STREAMS][MAX_HASHED];
};
static struct hash_area *hashes;
static uint64_t hash_gen;			/* generation of the last collection */
static int prev_list = -1, cur_list = -1;	/* in the image writer */
#define HASH_SIZE CO_PAGE_ALIGN(sizeof(struct hash_area))

/* Shared memory between the process and its snapshot child: a memfd named
 * cohort-agent-*, which the coordinator knows is no memory of the program's. */
static int map_shared(const char *name, uint64_t size, void **out)
{
	int fd = (int)co_sys2(SYS_memfd_create, (long)name, 1 /* MFD_CLOEXEC */);
	long h = fd < 0 || co_sys2(SYS_ftruncate, fd, (long)size) < 0
			 ? -EINVAL
			 : co_mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (fd >= 0)
		co_close(fd);
	if (h < 0 && h > -4096)
		return -1;
	*out = (void *)h;
	return 0;
}

static int list_of(uint64_t gen)
{
	for (int b = 0; b < 2 && gen; b++)
		if (hashes->complete[b] == gen)
			return b;
	return -1;
}

uint64_t co_dirty_begin_image(uint64_t parent)
{
	int m = co_dirty_method();
	prev_list = cur_list = -1;
	/* with write-protection, the regions of huge pages alone are compared by hashes */
	if (m == CO_DIRTY_UFFD_WP && !(rec && rec->nthp && thp_class_mode() == THP_HASH))
		return parent;
	if (m != CO_DIRTY_HASH && m != CO_DIRTY_UFFD_WP)
		return parent;
	if (!hashes)
		return m == CO_DIRTY_HASH ? 0 : parent;
	prev_list = list_of(parent);
	cur_list = prev_list == 0 ? 1 : 0;
	hashes->complete[cur_list] = 0;
	for (int k = 0; k < CO_STREAMS; k++)
		hashes->n[cur_list][k] = 0;
	/* without the parent's hashes those regions are saved whole: the image is still incremental */
	return prev_list >= 0 || m == CO_DIRTY_UFFD_WP ? parent : 0;
}

static int hash_kept(int stream, uint64_t addr, int tracked)
{
	uint64_t h = co_xxh64((const void *)addr, CO_PAGE, 0);
	uint64_t *n = &hashes->n[cur_list][stream];
	if (*n < MAX_HASHED)
		hashes->e[cur_list][stream][(*n)++] = (struct hashed){ addr, h };
	else
		*n = MAX_HASHED + 1; /* too many pages: the next image will be full */
	if (!tracked || prev_list < 0)
		return 0;
	for (int k = 0; k < CO_STREAMS; k++) {
		uint64_t lo = 0, hi = hashes->n[prev_list][k];
		const struct hashed *e = hashes->e[prev_list][k];
		if (hi > MAX_HASHED)
			return 0;
		while (lo < hi) {
			uint64_t mid = (lo + hi) / 2;
			if (e[mid].addr < addr)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < hashes->n[prev_list][k] && e[lo].addr == addr)
			return e[lo].hash == h;
	}
	return 0;
}

/*
 * The record (between two inaccessible guard pages, so that it stays a
 * region of its own: merged with a neighbour of the program's it would be
 * tracked and saved with it), the userfaultfd and the shared list of held
 * pages.  0 when all three are there.
 */
static int tracking_init(void)
{
	if (!rec) {
		long p = co_mmap(0, REC_SIZE + 2 * CO_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p < 0 && p > -4096)
			return -1;
		if (co_mprotect((void *)(p + CO_PAGE), REC_SIZE, PROT_READ | PROT_WRITE) < 0) {
			co_munmap((void *)p, REC_SIZE + 2 * CO_PAGE);
			return -1;
		}
		rec = (struct record *)(p + CO_PAGE);
	}
	if (uffd < 0 && (uffd = uffd_open()) < 0)
		return -1;
	if (!held && map_shared("cohort-agent-held", HELD_SIZE, (void **)&held))
		return -1;
	return 0;
}

/*
 * Everything the tracking needs before the pause is made here, by the
 * manager thread at the start of a checkpoint, in a descriptor table of
 * its own: nothing it opens takes a number in the program's table (a
 * descriptor created there while the program runs would take the lowest
 * free number for a moment: a program thread doing close(0) then
 * dup2(f, 0) around it would have its new fd 0 closed by us, seen with
 * dash's `cmd <file`).  The userfaultfd comes back from the coordinator,
 * which holds it between checkpoints (co_dirty_adopt_uffd); it is made
 * here only the first time.
 */
void co_dirty_setup(void)
{
	if (co_dirty_method() != CO_DIRTY_UFFD_WP || tracking_init())
		return;
	if (pm_fd < 0)
		pm_fd = co_fd_high(co_proc_self_open("pagemap"));
	if (maps_fd < 0)
		maps_fd = co_fd_high((int)co_open("/proc/self/maps", O_RDONLY | O_CLOEXEC, 0));
	/* huge pages to be had: smaps says where, and their regions need the page hashes ("Huge pages") */
	char thp[128];
	if (smaps_fd < 0 && thp_class_mode() != THP_WP &&
	    co_read_small("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof(thp)) > 0 &&
	    !contains(thp, "[never]")) {
		if (!hashes && map_shared("cohort-agent-hashes", HASH_SIZE, (void **)&hashes))
			hashes = 0;
		if (hashes)
			smaps_fd = co_fd_high((int)co_open("/proc/self/smaps", O_RDONLY | O_CLOEXEC, 0));
	}
}

/* /proc/self/pagemap (returned) and `maps` reading /proc/self/maps from its start. */
static int walk_open(void)
{
	if (pm_fd >= 0 && maps_fd >= 0)
		return co_maps_reread(&maps, maps_fd) < 0 ? -1 : pm_fd;
	/* not set up: only in the pause, where no thread of the program runs */
	int pm = co_proc_self_open("pagemap");
	if (pm >= 0 && co_maps_open(&maps, "/proc/self/maps")) {
		co_close(pm);
		return -1;
	}
	return pm;
}

static void walk_close(int pm)
{
	co_maps_close(&maps);
	if (pm != pm_fd)
		co_close(pm);
}

/* Not the record itself, with its guard pages. */
static int not_ours(const struct co_mapent *e)
{
	uint64_t self_lo = (uint64_t)rec - CO_PAGE, self_hi = (uint64_t)rec + REC_SIZE + CO_PAGE;
	return !(e->start >= self_lo && e->end <= self_hi);
}

/* A region of the program's whose writes are tracked. */
static int tracked_kind(const struct co_mapent *e)
{
	return co_dirty_trackable(e) && not_ours(e);
}

/*
 * A PROT_NONE region of the program's is registered with the userfaultfd
 * but not write-protected (no markers).  Registered it must be: the
 * kernel merges neighbouring regions only when their registration is
 * the same, and a program that makes a stretch of a tracked region
 * PROT_NONE and then accessible again expects one region back (mremap
 * of it fails across two: tests/progs/precopy_churn.c), as it gets
 * without the agent.  Returns 1 when e is such a region.
 */
static int register_only(const struct co_mapent *e)
{
	if (e->prot || !private_kind(e) || !not_ours(e))
		return 0;
	struct uffd_register r = { { e->start, e->end - e->start }, CO_UFFDIO_REGISTER_MODE_WP, 0 };
	co_sys3(SYS_ioctl, uffd, CO_UFFDIO_REGISTER, (long)&r);
	return 1;
}

/* ---- huge pages ---- */

/*
 * Write-protection and transparent huge pages do not mix (Linux 6.18,
 * measured with bench/thp_probe.c and bench/thp.sh, docs/benchmarks.md):
 *
 * - Protecting a region keeps its huge pages (UFFDIO_WRITEPROTECT and
 *   PAGEMAP_SCAN with PM_SCAN_WP_MATCHING over a whole PMD-mapped THP set
 *   the bit on the PMD), but in asynchronous mode the first write to a
 *   protected huge page splits its PMD into 512 PTEs, each still
 *   protected: 512 faults per 2 MiB instead of one, and the page stays
 *   split.  The next collection protects the PTEs again, and khugepaged
 *   and MADV_COLLAPSE both refuse a block with any protected PTE, so the
 *   heap stays in small pages for the rest of the run (with TLB misses on
 *   every later access), and every checkpoint interval pays a fault per
 *   4 KiB page written.
 * - Async mode also puts uffd-wp markers into the holes of a protected
 *   region: memory the program touches there later comes in small pages,
 *   never huge.
 * - Synchronous mode resolves a fault on a huge page at PMD granularity
 *   (UFFDIO_WRITEPROTECT of the 2 MiB clears the PMD's bit, no split), but
 *   every fault then waits for a thread of ours to answer, a program whose
 *   writer thread hangs would hang, and PAGEMAP_SCAN cannot report for
 *   such regions: not worth it when the alternative below costs the
 *   running program nothing.
 *
 * So the regions that get huge pages (private anonymous memory the kernel
 * calls THPeligible in /proc/self/smaps, and that is mostly huge or not
 * yet there) are not write-protected at all: they are compared by page
 * hashes, like COHORT_DIRTY=page-hash does for all memory, in the image
 * writer (XXH64 of every page against the parent image's; equal means
 * unchanged, odds of a wrong "equal" about 2^-64 per page).  Between
 * checkpoints the program runs exactly as without cohort.  The price is
 * paid in the snapshot child: it reads those regions whole at every image
 * (about 0.1 s per GiB of CPU), they are forked whole (cheap for PMD-mapped
 * memory: 512 entries fewer per 2 MiB) and not lean.  A region keeps the
 * class while it is eligible, so that a snapshot's copy-on-write splits
 * (below) do not flip it back.
 *
 * The snapshot fork itself splits huge pages: the first write the program
 * makes to a huge page the snapshot child still shares splits its PMD and
 * copies 4 KiB.  So the 2 MiB blocks mapped huge when the checkpoint was
 * prepared are collapsed again (MADV_COLLAPSE, Linux 6.1) once the
 * snapshot child is gone, by the manager thread while the program runs,
 * a few blocks at a time between looks at the control socket; only
 * blocks still wholly present, so that nothing the program dropped is
 * brought back.
 *
 * COHORT_DIRTY_THP=wp keeps the old behaviour (write-protect them too),
 * =whole saves those regions whole in every image instead of hashing them
 * (for comparison; see docs/benchmarks.md).
 */
/* Private anonymous memory (huge pages are had only there). */
static int anon_kind(const struct co_mapent *e)
{
	const char *p = e->path;
	return !e->shared && (!p[0] || co_strcmp(p, "[heap]") == 0 || co_startswith(p, "[anon:"));
}

static void note_huge(const struct page_region *r)
{
	list_add(rec->huge, &rec->nhuge, MAX_HUGE, r->start, r->end); /* full: the rest is not collapsed */
}

/* Stop write-protecting [start, end): unregistering also clears the pages' protection and markers. */
static void unprotect(uint64_t start, uint64_t end)
{
	struct uffd_range r = { start, end - start };
	co_sys3(SYS_ioctl, uffd, CO_UFFDIO_UNREGISTER, (long)&r);
}

/*
 * With the program running (co_dirty_prepare): which regions keep their
 * huge pages (rec->thp_next), and which 2 MiB blocks of theirs are huge now.
 * Reading smaps walks the page tables: ~5 ms per GiB of small pages,
 * ~0.2 ms per GiB of huge ones.
 */
static void classify(int pm)
{
	static struct co_maps sm;
	static struct co_mapent se;
	struct co_smaps_info si;
	rec->nthp_next = 0;
	rec->nhuge = 0;
	rec->thp_fresh = 1;
	if (smaps_fd < 0 || co_maps_reread(&sm, smaps_fd) < 0)
		return;
	int classes = hashes && thp_class_mode() != THP_WP;
	while (co_smaps_next(&sm, &se, &si) == 1) {
		if (!tracked_kind(&se) || !anon_kind(&se))
			continue;
		if (!classes || !si.thp_eligible || rec->nthp_next == MAX_REGIONS)
			continue;
		/* mostly in small pages already (no huge ones to be had, say): write-protected, as before */
		if (!covered(rec->thp, (uint64_t)rec->nthp, se.start, se.end) && si.anon_huge_kib * 2 < si.rss_kib)
			continue;
		rec->thp_next[rec->nthp_next++] = (struct region){ se.start, se.end };
		scan(pm, se.start, se.end, 0, CO_PAGE_IS_HUGE, 0, note_huge);
	}
	co_maps_close(&sm);
}

/* Does [start, end) keep its huge pages (classified so by co_dirty_prepare)? */
static int thp_region(uint64_t start, uint64_t end)
{
	return rec->thp_fresh && covered(rec->thp_next, (uint64_t)rec->nthp_next, start, end);
}

/* Is the 2 MiB block at b wholly present in small pages? */
static int block_split(uint64_t b)
{
	struct page_region r[2];
	struct pm_scan_arg a = { .size = sizeof(a), .start = b, .end = b + HUGE_PAGE, .vec = (uint64_t)r,
				 .vec_len = 2, .return_mask = CO_PAGE_IS_PRESENT | CO_PAGE_IS_HUGE };
	return co_sys3(SYS_ioctl, pm_fd, CO_PAGEMAP_SCAN, (long)&a) == 1 && r[0].start == b &&
	       r[0].end == b + HUGE_PAGE && r[0].categories == CO_PAGE_IS_PRESENT;
}

/*
 * In the snapshot's writer, its image written and its copy of the
 * program's memory dropped (mem.c): the program is the only one to map
 * its pages, and the blocks our fork split can be collapsed.  The work is
 * done here with process_madvise(2) on the program's pidfd (MADV_COLLAPSE
 * from another process: Linux 6.1 and CAP_SYS_NICE), so that no thread of
 * the program's exists for it: the writer lingers after its DONE, at nice
 * 19, with at most 4 collapses (~0.3 ms each) before 3 ms of sleep (a
 * quarter of a core at most) and 10 s in all, then exits.  Where the
 * kernel refuses (no CAP_SYS_NICE, an older kernel) nothing is done:
 * khugepaged collapses the blocks in its own time, nothing being
 * write-protected there.  Only blocks still wholly present, in small
 * pages, are collapsed, so that nothing the program dropped comes back.
 */
void co_dirty_recollapse(int pidfd)
{
	if (!rec || !rec->nhuge || pm_fd < 0 || pidfd < 0)
		return;
	co_sys3(SYS_setpriority, 0 /* PRIO_PROCESS */, 0, 19);
	struct co_timespec t0, now;
	co_clock_gettime(CLOCK_MONOTONIC, &t0);
	int n = 0;
	for (uint64_t i = 0; i < rec->nhuge; i++) {
		const struct region *h = &rec->huge[i];
		for (uint64_t b = (h->start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1); b + HUGE_PAGE <= h->end; b += HUGE_PAGE) {
			if (!block_split(b))
				continue;
			struct { uint64_t base, len; } v = { b, HUGE_PAGE };
			long r = co_sys5(SYS_process_madvise, pidfd, (long)&v, 1, CO_MADV_COLLAPSE, 0);
			if (r == -EPERM || r == -EINVAL || r == -ENOSYS || r == -ESRCH)
				return; /* not allowed, not supported, or the program is gone */
			if (++n % 4)
				continue;
			struct co_timespec pause = { 0, 3 * 1000000 };
			co_sys2(SYS_nanosleep, (long)&pause, 0);
			co_clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.sec - t0.sec > 10)
				return;
		}
	}
}

/*
 * While the program still runs, before a checkpoint quiesces it: register
 * and write-protect every region that is not tracked yet.  Protecting a
 * large region walks all its page tables (about 25 ms per GiB here); done
 * in the pause, as the first checkpoint of a process used to, it lengthens
 * the pause by as much.  Pages written between now and the pause are
 * protected again in the pause by a walk over the written ones only.
 */
void co_dirty_prepare(void)
{
	/*
	 * Nothing is created here: co_dirty_setup opens these only once the
	 * tracking is set up (uffd-wp, record, held lists).  Without them the
	 * pause does this work.
	 */
	if (pm_fd < 0 || maps_fd < 0)
		return;
	int pm = walk_open();
	if (pm < 0)
		return;
	classify(pm);
	rec->npre = 0;
	while (co_maps_next(&maps, &ent) == 1 && rec->npre < MAX_REGIONS) {
		if (register_only(&ent) || !tracked_kind(&ent))
			continue;
		if (thp_region(ent.start, ent.end)) {
			/* its huge pages are kept: not write-protected (what protection it had goes now) */
			if (wp_registered(pm, ent.start, ent.end))
				unprotect(ent.start, ent.end);
			continue;
		}
		if (rec->gen && was_tracked(pm, ent.start, ent.end))
			continue;
		if (protect_new(ent.start, ent.end) == 0)
			rec->pre[rec->npre++] = (struct region){ ent.start, ent.end };
	}
	walk_close(pm);
}

/* A collection; final: the one of the pause (a pre-copy's arming is not). */
static uint64_t collect(uint64_t gen, int final)
{
	int m = co_dirty_method();
	if (m == CO_DIRTY_HASH) {
		if (!hashes && map_shared("cohort-agent-hashes", HASH_SIZE, (void **)&hashes))
			return 0;
		uint64_t base = hash_gen;
		hash_gen = gen;
		return base && list_of(base) >= 0 ? base : 0;
	}
	if (m != CO_DIRTY_UFFD_WP || tracking_init())
		return 0;
	int pm = walk_open();
	if (pm < 0)
		return 0;
	rec->ncur = 0;
	rec->nold = 0;
	rec->ncand = 0;
	rec->nlean = 0;
	rec->nwritten = 0;
	rec->overflow = 0;
	/* what the last image holds: valid only if that image was finished */
	rec->nheld_prev = 0;
	if (held->complete == rec->gen && rec->gen) {
		for (int k = 0; k < CO_STREAMS; k++) {
			uint64_t n = held->n[k];
			if (n > MAX_HELD || rec->nheld_prev + n > MAX_WRITTEN) {
				rec->overflow = 1;
				break;
			}
			co_memcpy(&rec->held_prev[rec->nheld_prev], held->r[k], n * sizeof(struct region));
			rec->nheld_prev += n;
		}
	} else {
		rec->overflow = 1;
	}
	held->complete = 0;
	for (int k = 0; k < CO_STREAMS; k++)
		held->n[k] = 0;
	rec->nthp = 0;
	while (co_maps_next(&maps, &ent) == 1) {
		if (register_only(&ent) || !tracked_kind(&ent))
			continue;
		if (thp_region(ent.start, ent.end)) {
			/* huge pages kept: compared by hashes in the image writer */
			if (wp_registered(pm, ent.start, ent.end))
				unprotect(ent.start, ent.end);
			if (rec->nthp < MAX_REGIONS) {
				rec->thp[rec->nthp++] = (struct region){ ent.start, ent.end };
				continue;
			}
			/* no room: write-protected after all */
		}
		if (rec->ncur == MAX_REGIONS) {
			rec->overflow = 1;
			break;
		}
		if (covered(rec->pre, (uint64_t)rec->npre, ent.start, ent.end) && wp_registered(pm, ent.start, ent.end)) {
			/* protected just before the pause: new, so written whole, and tracked from here on */
			if (scan_written(pm, ent.start, ent.end, 0) == 0) {
				rec->cur[rec->ncur++] = (struct region){ ent.start, ent.end };
				continue;
			}
		} else if (rec->gen && was_tracked(pm, ent.start, ent.end)) {
			if (scan_written(pm, ent.start, ent.end, 1) == 0) {
				rec->old[rec->nold++] = (struct region){ ent.start, ent.end };
				rec->cur[rec->ncur++] = (struct region){ ent.start, ent.end };
				if (lean_kind(&ent))
					rec->cand[rec->ncand++] = (struct region){ ent.start, ent.end };
				continue;
			}
		}
		/*
		 * New, changed, or its scan failed: all its pages count as written.
		 * One that cannot be protected is not tracked: saved whole next time.
		 */
		if (protect_new(ent.start, ent.end) == 0)
			rec->cur[rec->ncur++] = (struct region){ ent.start, ent.end };
	}
	walk_close(pm);
	rec->npre = 0;
	if (final) {
		rec->thp_fresh = 0; /* co_dirty_prepare classifies again for the next checkpoint */
	}
	int usable = rec->gen != 0 && !rec->overflow;
	co_memcpy(rec->prev, rec->cur, rec->ncur * sizeof(rec->cur[0]));
	rec->nprev = rec->ncur;
	uint64_t base = rec->gen;
	rec->gen = gen;
	return usable ? base : 0;
}

uint64_t co_dirty_collect(uint64_t gen)
{
	return collect(gen, 1);
}

/* ---- pre-copy of a full image ---- */

int co_dirty_based_on(uint64_t parent)
{
	if (co_dirty_method() == CO_DIRTY_HASH)
		return parent && hashes && hash_gen == parent && list_of(parent) >= 0;
	return parent && rec && held && rec->gen == parent && held->complete == parent;
}

/* Arming a pre-copy: a list filled up. */
static int arm_full;

/* Pages in memory are held (the pre-copy reads them); swapped-out ones (or markers) must not be left out. */
static void note_armed(const struct page_region *r)
{
	if (r->categories & CO_PAGE_IS_PRESENT)
		arm_full |= list_add(held->r[0], &held->n[0], MAX_HELD, r->start, r->end);
	else
		arm_full |= list_add(rec->nolean, &rec->nnolean, MAX_WRITTEN, r->start, r->end);
}

int co_dirty_precopy_arm(uint64_t id)
{
	if (co_dirty_method() != CO_DIRTY_UFFD_WP || !rec || !held || pm_fd < 0 || maps_fd < 0)
		return -1;
	/* a collection without an image: everything protected, tracking from here */
	collect(id, 0);
	if (rec->ncur == MAX_REGIONS)
		return -1;
	int pm = walk_open();
	if (pm < 0)
		return -1;
	int r = 0;
	rec->nnolean = 0;
	arm_full = 0;
	/* held: the pages in memory, which the pre-copy reads (one walk sorts them from the swapped-out ones) */
	while (r == 0 && !arm_full && co_maps_next(&maps, &ent) == 1) {
		if (!tracked_kind(&ent) || !covered(rec->cur, (uint64_t)rec->ncur, ent.start, ent.end))
			continue;
		if (!(ent.prot & PROT_READ))
			r = list_add(rec->nolean, &rec->nnolean, MAX_WRITTEN, ent.start, ent.end);
		else
			r = scan(pm, ent.start, ent.end, 0, 0, CO_PAGE_IS_PRESENT | CO_PAGE_IS_SWAPPED, note_armed);
	}
	walk_close(pm);
	if (r || arm_full) {
		held->n[0] = 0;
		rec->nnolean = 0;
		return -1;
	}
	__atomic_store_n(&held->complete, id, __ATOMIC_RELEASE);
	return 0;
}

/* ---- lean snapshots ---- */

static int holds_any(const struct region *r, const uint64_t *addr, int n)
{
	for (int i = 0; i < n; i++)
		if (addr[i] >= r->start && addr[i] < r->end)
			return 1;
	return 0;
}

/* Leave [start, end) out of the next fork, if it is long enough to matter. */
static void lean_span(uint64_t start, uint64_t end)
{
	if (end - start < LEAN_MIN_SPAN || rec->nlean == MAX_LEAN)
		return;
	if (co_sys3(SYS_madvise, (long)start, (long)(end - start), MADV_DONTFORK) == 0)
		rec->lean[rec->nlean++] = (struct region){ start, end };
}

/* The next of two sorted lists' ranges (from *i and *j) that starts before end, or NULL; it is passed. */
static const struct region *next_busy(uint64_t *i, uint64_t *j, uint64_t end)
{
	const struct region *a = *i < rec->nwritten ? &rec->written[*i] : 0;
	const struct region *b = *j < rec->nnolean ? &rec->nolean[*j] : 0;
	const struct region *r = a && (!b || a->start <= b->start) ? a : b;
	if (!r || r->start >= end)
		return 0;
	*(r == a ? i : j) += 1;
	return r;
}

int co_dirty_lean_begin(const uint64_t *keep, int nkeep)
{
	if (!rec || co_dirty_method() != CO_DIRTY_UFFD_WP)
		return 0;
	rec->nlean = 0;
	for (int i = 0; i < rec->ncand && rec->nlean < MAX_LEAN; i++) {
		const struct region *c = &rec->cand[i], *b;
		if (holds_any(c, keep, nkeep))
			continue;
		uint64_t w = first_after(rec->written, rec->nwritten, c->start);
		uint64_t v = first_after(rec->nolean, rec->nnolean, c->start), at = c->start;
		/* the gaps inside c between what is written (or must be copied anyway) */
		while ((b = next_busy(&w, &v, c->end)) && rec->nlean < MAX_LEAN) {
			if (b->start > at)
				lean_span(at, b->start);
			if (b->end > at)
				at = b->end;
		}
		if (at < c->end)
			lean_span(at, c->end);
	}
	return rec->nlean;
}

void co_dirty_lean_end(void)
{
	if (!rec)
		return;
	for (int i = 0; i < rec->nlean; i++)
		co_sys3(SYS_madvise, (long)rec->lean[i].start, (long)(rec->lean[i].end - rec->lean[i].start),
			MADV_DOFORK);
	rec->nlean = 0;
	rec->nnolean = 0; /* a pre-copy's: used once */
}

int co_dirty_lean_covers(uint64_t start, uint64_t end)
{
	return rec && rec->nlean && covered(rec->lean, (uint64_t)rec->nlean, start, end);
}

int co_dirty_lean_held(uint64_t addr, int *in_lean)
{
	*in_lean = 0;
	if (!rec || !rec->nlean || !covered(rec->lean, (uint64_t)rec->nlean, addr, addr + 1))
		return 0;
	*in_lean = 1;
	return covered(rec->held_prev, rec->nheld_prev, addr, addr + 1);
}

/* Is addr in a region of huge pages, compared by page hashes? */
static int in_thp(uint64_t addr)
{
	return rec && rec->nthp && covered(rec->thp, (uint64_t)rec->nthp, addr, addr + 1);
}

int co_dirty_region_tracked(uint64_t start, uint64_t end)
{
	if (co_dirty_method() == CO_DIRTY_HASH)
		return 1; /* the hashes compare contents wherever they are */
	return rec && (covered(rec->old, (uint64_t)rec->nold, start, end) ||
		       covered(rec->thp, (uint64_t)rec->nthp, start, end));
}

static void note_held(int stream, uint64_t addr)
{
	if (!held)
		return;
	if (held->n[stream] <= MAX_HELD &&
	    list_add(held->r[stream], &held->n[stream], MAX_HELD, addr, addr + CO_PAGE))
		held->n[stream] = MAX_HELD + 1; /* too many: the next image will be full */
}

void co_dirty_image_done(uint64_t gen)
{
	if (held)
		__atomic_store_n(&held->complete, gen, __ATOMIC_RELEASE);
	if (hashes && cur_list >= 0)
		__atomic_store_n(&hashes->complete[cur_list], gen, __ATOMIC_RELEASE);
}

int co_dirty_page_kept(int stream, uint64_t addr, int tracked)
{
	if (stream < 0 || stream >= CO_STREAMS)
		return 0;
	int thp = co_dirty_method() != CO_DIRTY_HASH && in_thp(addr);
	if (thp && thp_class_mode() == THP_WHOLE)
		return 0;
	if (thp || co_dirty_method() == CO_DIRTY_HASH)
		return hashes && cur_list >= 0 ? hash_kept(stream, addr, tracked) : 0;
	note_held(stream, addr);
	/* a page the parent's image does not hold must be saved, written or not */
	return tracked && rec && !covered(rec->written, rec->nwritten, addr, addr + 1) &&
	       covered(rec->held_prev, rec->nheld_prev, addr, addr + 1);
}

int co_dirty_areas(uint64_t *lo, uint64_t *hi)
{
	int n = 0;
	if (rec) {
		lo[n] = (uint64_t)rec - CO_PAGE; /* with its guard pages */
		hi[n++] = (uint64_t)rec + REC_SIZE + CO_PAGE;
	}
	if (held) {
		lo[n] = (uint64_t)held;
		hi[n++] = (uint64_t)held + HELD_SIZE;
	}
	if (hashes) {
		lo[n] = (uint64_t)hashes;
		hi[n++] = (uint64_t)hashes + HASH_SIZE;
	}
	return n;
}

int co_dirty_fds(int *out)
{
	int n = 0;
	if (uffd >= 0)
		out[n++] = uffd;
	if (pm_fd >= 0)
		out[n++] = pm_fd;
	if (maps_fd >= 0)
		out[n++] = maps_fd;
	if (smaps_fd >= 0)
		out[n++] = smaps_fd;
	return n;
}

int co_dirty_fd_refs(int **out)
{
	out[0] = &uffd;
	out[1] = &pm_fd;
	out[2] = &maps_fd;
	out[3] = &smaps_fd;
	return 4;
}

int co_dirty_uffd(void)
{
	return uffd;
}

void co_dirty_adopt_uffd(int fd)
{
	if (uffd >= 0 && uffd != fd)
		co_close(uffd);
	uffd = fd;
}

void co_dirty_drop_fds(void)
{
	uffd = pm_fd = maps_fd = smaps_fd = -1;
}

void co_dirty_forget(int unmap)
{
	/* the descriptors were the manager's own (gone with it), never the program's: nothing to close */
	co_dirty_drop_fds();
	/* in a forked child the mappings are copies to drop; after a restart they did not come back */
	if (unmap && rec)
		co_munmap((char *)rec - CO_PAGE, REC_SIZE + 2 * CO_PAGE);
	if (unmap && held)
		co_munmap(held, HELD_SIZE);
	if (unmap && hashes)
		co_munmap(hashes, HASH_SIZE);
	rec = 0;
	held = 0;
	hashes = 0;
	hash_gen = 0;
}
#endif
