/*
 * dirty_int.h - the tracking of written pages, inside (dirty*.c): what the
 * methods share.  The record of regions and pages lives in the agent's own
 * mappings; one method's functions (struct co_dirty_ops) are chosen once,
 * from co_dirty_method(), as Redis's ae.c picks its event backend.
 *
 *   dirty.c         the interface of dirty.h: the method's ops, the common state
 *   dirty_method.c  which method this kernel offers, what memory is tracked (the CLI links it too)
 *   dirty_wp.c      userfaultfd write-protection and PAGEMAP_SCAN
 *   dirty_thp.c     regions of huge pages under write-protection: compared by hashes, collapsed again
 *   dirty_lean.c    lean snapshots of an incremental image
 *   dirty_hash.c    page hashes: the last resort, and the huge-page regions of dirty_thp.c
 */
#ifndef COHORT_DIRTY_INT_H
#define COHORT_DIRTY_INT_H

#include <stdint.h>
#include "dirty.h"
#include "procfs.h"
#include "res.h"
#include "util.h"

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
	/*
	 * The regions that are the same mappings as at the collection before
	 * the last (kept_since), for mem.c, which takes their flags from what
	 * smaps said then (co_dirty_region_kept): registered with the
	 * userfaultfd then and still, which a region mapped anew, even at the
	 * same place and by a call no wrapper sees, is not.  The tracked ones
	 * are those of old; the PROT_NONE ones, registered without being
	 * protected (register_only), have lists of their own as the tracked
	 * have prev, cur and pre.
	 */
	uint64_t kept_since;
	int nkept, nnone_prev, nnone_cur, nnone_pre;
	struct region kept[MAX_REGIONS];
	struct region none_prev[MAX_REGIONS], none_cur[MAX_REGIONS], none_pre[MAX_REGIONS];
	struct region lean[MAX_LEAN];	/* left out of the snapshot: unwritten since the parent */
	int nlean;
	int lean_marked;		/* ... by MADV_DONTFORK (a fork); else only noted (an image written in place) */
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
	 * Regions whose huge pages are kept ("Huge pages", dirty_thp.c): compared by
	 * page hashes, never write-protected.  thp: as of the last
	 * collection; thp_next: as co_dirty_prepare classified them (valid
	 * while thp_fresh); huge: the 2 MiB blocks of those that were mapped
	 * huge then, made huge again by the snapshot's writer once it is done
	 * (co_dirty_recollapse).
	 */
	int nthp, nthp_next, thp_fresh;
	uint64_t classified_ns;	/* when classify last read smaps (CLOCK_MONOTONIC; 0: never) */
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
#define HELD_SIZE CO_PAGE_ALIGN(sizeof(struct held_area))

/* The page hashes (dirty_hash.c): two lists per stream, used in turn. */
#define MAX_HASHED (1 << 22)
struct hashed {
	uint64_t addr, hash;
};
struct hash_area {
	uint64_t complete[2];			/* generation each list describes (0: none) */
	uint64_t n[2][CO_STREAMS];
	struct hashed e[2][CO_STREAMS][MAX_HASHED];
};

/* One method's side of the interface (dirty.h), chosen once (dirty.c). */
struct co_dirty_ops {
	void (*setup)(void);
	void (*prepare)(int arming);	/* NULL: nothing to do before the pause */
	uint64_t (*collect)(uint64_t gen);
	int (*based_on)(uint64_t parent);
	int (*precopy_arm)(uint64_t id);
	uint64_t (*begin_image)(uint64_t parent);
	int (*page_kept)(int stream, uint64_t addr, int tracked);
	int (*page_maybe_kept)(uint64_t addr, int tracked); /* NULL: never */
	int (*region_tracked)(uint64_t start, uint64_t end);
	int (*region_kept)(uint64_t since, uint64_t start, uint64_t end); /* NULL: never */
	int (*lean_begin)(const uint64_t *keep, int nkeep, int fork);
};
extern const struct co_dirty_ops co_dirty_wp_ops, co_dirty_hash_ops;

/* The state (dirty_wp.c): the record, the held lists, the manager's descriptors. */
extern struct record *rec;
#define REC_SIZE CO_PAGE_ALIGN(sizeof(struct record))
extern struct held_area *held;
extern int uffd;
extern int pm_fd, maps_fd;	/* /proc/self/pagemap and maps, the manager's (co_dirty_setup) */
extern int smaps_fd;		/* /proc/self/smaps, the manager's when huge pages can be had */

/* Index of the first range of list (sorted, disjoint) that ends after addr. */
static inline uint64_t first_after(const struct region *list, uint64_t n, uint64_t addr)
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
static inline int covered(const struct region *list, uint64_t n, uint64_t start, uint64_t end)
{
	uint64_t i = first_after(list, n, start);
	return i < n && list[i].start <= start && end <= list[i].end;
}

/*
 * The image writer asks of every page of the memory whether lists hold
 * it (the written ranges, the pages the parent holds, the lean stretches,
 * the regions of huge pages): a quarter of a million pages per GiB, each
 * a binary search, twice per image (counting, writing), which took longer
 * than writing an incremental's pages.  It asks in address order, so a
 * span remembers the stretch around the last answer (inside a range of
 * the list, or in the gap between two) and answers from it until the
 * address leaves it.  One span per list and page stream (the streams are
 * written in parallel); span_epoch, moved on whenever a list may have
 * changed (co_dirty_begin_image, co_dirty_lean_begin), makes every span
 * look again.
 */
struct span {
	const struct region *list;
	uint64_t epoch, lo, hi;
	int in;
};
extern uint64_t span_epoch;

/* Does a range of list (sorted, disjoint, n entries) hold addr?  As covered(list, n, addr, addr + 1). */
static inline int covered_at(const struct region *list, uint64_t n, uint64_t addr, struct span *c)
{
	if (c->list == list && c->epoch == span_epoch && addr >= c->lo && addr < c->hi)
		return c->in;
	uint64_t i = first_after(list, n, addr);
	c->list = list;
	c->epoch = span_epoch;
	c->in = i < n && list[i].start <= addr;
	c->lo = c->in ? list[i].start : i ? list[i - 1].end : 0;
	c->hi = c->in ? list[i].end : i < n ? list[i].start : UINT64_MAX;
	return c->in;
}

/* Append [start, end) to list (sorted, n entries, room for max), joining a neighbour; -1 when full. */
static inline int list_add(struct region *list, uint64_t *n, uint64_t max, uint64_t start, uint64_t end)
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

/* dirty_method.c */
int co_dirty_uffd_open(void);
int co_dirty_private_kind(const struct co_mapent *e);

/* dirty_wp.c */
int scan(int pm, uint64_t start, uint64_t end, uint64_t flags, uint64_t all, uint64_t any,
	 void (*fn)(const struct page_region *));
int tracked_kind(const struct co_mapent *e);
void wp_image_done(uint64_t gen);

/* dirty_thp.c: how regions of huge pages are tracked (COHORT_DIRTY_THP; see "Huge pages" there) */
enum { THP_WP = 0, THP_HASH = 1, THP_WHOLE = 2 };
int thp_class_mode(void);
void classify(int pm);
int thp_region(uint64_t start, uint64_t end);
int in_thp(int stream, uint64_t addr);
void unprotect(uint64_t start, uint64_t end);

/* dirty_hash.c: the lists of page hashes, for either method */
extern struct hash_area *hashes;
#define HASH_SIZE CO_PAGE_ALIGN(sizeof(struct hash_area))
int map_shared(const char *name, uint64_t size, void **out);
int hash_map(void);				/* 0 when the lists are there */
int hash_begin(uint64_t parent);		/* 1: the parent's list is there, 0: not, -1: no lists */
void hash_off(void);				/* no hashes in this image */
int hash_on(void);				/* the image hashes its pages */
int hash_kept(int stream, uint64_t addr, int tracked);
void hash_image_done(uint64_t gen);
void hash_forget(void);

/* dirty_lean.c */
int lean_begin(const uint64_t *keep, int nkeep, int fork);

#endif
