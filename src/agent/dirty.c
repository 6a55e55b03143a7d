/*
 * dirty.c - which pages a process wrote since its last checkpoint, for
 * incremental images.  Agent side only; the restorer never needs it.
 *
 * The interface of dirty.h over one method's functions (struct
 * co_dirty_ops), chosen at the first use from co_dirty_method():
 * userfaultfd write-protection with PAGEMAP_SCAN (dirty_wp.c, with the
 * huge-page regions of dirty_thp.c and the lean snapshots of
 * dirty_lean.c), page hashes (dirty_hash.c), or none.  The record of
 * either lives in the agent's own mappings, which images skip
 * (co_dirty_areas), and its descriptors in the manager's table.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include "dirty_int.h"
#include "sys.h"

/* ---- no tracking (COHORT_DIRTY=none): every image is a full one ---- */

static void nothing(void)
{
}

static uint64_t none_collect(uint64_t gen)
{
	(void)gen;
	return 0;
}

static int none_based_on(uint64_t parent)
{
	(void)parent;
	return 0;
}

static int none_precopy_arm(uint64_t id)
{
	(void)id;
	return -1;
}

static uint64_t none_begin_image(uint64_t parent)
{
	hash_off();
	return parent;
}

static int none_page_kept(int stream, uint64_t addr, int tracked)
{
	(void)stream;
	(void)addr;
	(void)tracked;
	return 0;
}

static int none_region_tracked(uint64_t start, uint64_t end)
{
	(void)start;
	(void)end;
	return 0;
}

static int none_lean_begin(const uint64_t *keep, int nkeep, int fork)
{
	(void)keep;
	(void)nkeep;
	(void)fork;
	return 0;
}

static const struct co_dirty_ops none_ops = {
	.setup = nothing,
	.collect = none_collect,
	.based_on = none_based_on,
	.precopy_arm = none_precopy_arm,
	.begin_image = none_begin_image,
	.page_kept = none_page_kept,
	.region_tracked = none_region_tracked,
	.lean_begin = none_lean_begin,
};

/* ---- the interface ---- */

/* The method's functions, chosen once. */
static const struct co_dirty_ops *ops(void)
{
	static const struct co_dirty_ops *o;
	if (!o) {
		int m = co_dirty_method();
		o = m == CO_DIRTY_UFFD_WP ? &co_dirty_wp_ops : m == CO_DIRTY_HASH ? &co_dirty_hash_ops : &none_ops;
	}
	return o;
}

void co_dirty_setup(void)
{
	ops()->setup();
}

void co_dirty_prepare(int arming)
{
	if (ops()->prepare)
		ops()->prepare(arming);
}

uint64_t co_dirty_collect(uint64_t gen)
{
	return ops()->collect(gen);
}

int co_dirty_based_on(uint64_t parent)
{
	return ops()->based_on(parent);
}

int co_dirty_precopy_arm(uint64_t id)
{
	return ops()->precopy_arm(id);
}

uint64_t span_epoch;

uint64_t co_dirty_begin_image(uint64_t parent)
{
	span_epoch++; /* the lists were made anew by the collection */
	return ops()->begin_image(parent);
}

int co_dirty_page_kept(int stream, uint64_t addr, int tracked)
{
	if (stream < 0 || stream >= CO_STREAMS)
		return 0;
	return ops()->page_kept(stream, addr, tracked);
}

int co_dirty_page_maybe_kept(uint64_t addr, int tracked)
{
	return ops()->page_maybe_kept ? ops()->page_maybe_kept(addr, tracked) : 0;
}

int co_dirty_region_tracked(uint64_t start, uint64_t end)
{
	return ops()->region_tracked(start, end);
}

int co_dirty_region_kept(uint64_t since, uint64_t start, uint64_t end)
{
	return ops()->region_kept && ops()->region_kept(since, start, end);
}

uint64_t co_dirty_last(void)
{
	return ops()->region_kept && rec ? rec->gen : 0;
}

int co_dirty_lean_begin(const uint64_t *keep, int nkeep, int fork)
{
	span_epoch++;
	return ops()->lean_begin(keep, nkeep, fork);
}

void co_dirty_image_done(uint64_t gen)
{
	wp_image_done(gen);
	hash_image_done(gen);
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
	hash_forget();
}

