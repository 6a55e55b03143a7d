/*
 * dirty_hash.c - the last resort: page hashes (COHORT_DIRTY=page-hash, or
 * no write-protection here), and the regions of huge pages the
 * write-protection leaves alone (dirty_thp.c).
 *
 * Without write-protection the image writer hashes every page it saves
 * (XXH64) and compares it with the hash the parent image's writer stored
 * for the same address: equal means unchanged.  Two lists, used in turn:
 * the writer reads the parent's and fills the other.  Nothing of this runs
 * in the pause; the cost is reading all memory at every image, in the
 * snapshot child.  A 64-bit hash collision would keep a changed page: with
 * XXH64 the odds are about 2^-64 per page.
 */
#include <errno.h>
#include <sys/mman.h>
#include "dirty_int.h"
#include "sys.h"
#include "xxh64.h"

struct hash_area *hashes;
static uint64_t hash_gen;			/* generation of the last collection */
static int prev_list = -1, cur_list = -1;	/* in the image writer */

/* Shared memory between the process and its snapshot child: a memfd named
 * cohort-agent-*, which the coordinator knows is no memory of the program's. */
int map_shared(const char *name, uint64_t size, void **out)
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

int hash_map(void)
{
	if (!hashes && map_shared("cohort-agent-hashes", HASH_SIZE, (void **)&hashes))
		hashes = 0;
	return hashes ? 0 : -1;
}

void hash_off(void)
{
	prev_list = cur_list = -1;
}

int hash_on(void)
{
	return hashes && cur_list >= 0;
}

/* The image's list starts empty; 1 when the parent's list is there to compare with, 0 not, -1 no lists. */
int hash_begin(uint64_t parent)
{
	hash_off();
	if (!hashes)
		return -1;
	prev_list = list_of(parent);
	cur_list = prev_list == 0 ? 1 : 0;
	hashes->complete[cur_list] = 0;
	for (int k = 0; k < CO_STREAMS; k++)
		hashes->n[cur_list][k] = 0;
	return prev_list >= 0;
}

int hash_kept(int stream, uint64_t addr, int tracked)
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

void hash_image_done(uint64_t gen)
{
	if (hashes && cur_list >= 0)
		__atomic_store_n(&hashes->complete[cur_list], gen, __ATOMIC_RELEASE);
}

void hash_forget(void)
{
	hashes = 0;
	hash_gen = 0;
}

/* ---- the method: every page hashed ---- */

static uint64_t collect(uint64_t gen)
{
	if (hash_map())
		return 0;
	uint64_t base = hash_gen;
	hash_gen = gen;
	return base && list_of(base) >= 0 ? base : 0;
}

static int based_on(uint64_t parent)
{
	return parent && hashes && hash_gen == parent && list_of(parent) >= 0;
}

static int no_precopy(uint64_t id)
{
	(void)id;
	return -1;
}

/* without the parent's hashes the image is a full one */
static uint64_t begin_image(uint64_t parent)
{
	return hash_begin(parent) == 1 ? parent : 0;
}

static int page_kept(int stream, uint64_t addr, int tracked)
{
	return hash_on() ? hash_kept(stream, addr, tracked) : 0;
}

/* the hashes compare contents wherever they are */
static int region_tracked(uint64_t start, uint64_t end)
{
	(void)start;
	(void)end;
	return 1;
}

static void nothing(void)
{
}

static int no_lean(const uint64_t *keep, int nkeep, int fork)
{
	(void)keep;
	(void)nkeep;
	(void)fork;
	return 0;
}

const struct co_dirty_ops co_dirty_hash_ops = {
	.setup = nothing,
	.collect = collect,
	.based_on = based_on,
	.precopy_arm = no_precopy,
	.begin_image = begin_image,
	.page_kept = page_kept,
	.region_tracked = region_tracked,
	.lean_begin = no_lean,
};
