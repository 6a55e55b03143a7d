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
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_FILE (1ULL << 61)

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
	} else if (co_startswith(p, "/dev/") && e->ino && co_strcmp(p, "/dev/zero") != 0) {
		return DERR(d, "pid %d: region %lx-%lx: unsupported device mapping %s", d->pid,
			    (unsigned long)e->start, (unsigned long)e->end, p);
	} else {
		v->kind = CO_V_FILE;
	}
	return 0;
}

int co_mem_collect(struct co_dumpctx *d)
{
	static struct co_maps m;
	static struct co_mapent e;
	int n = 0, r;
	if (co_maps_open(&m, "/proc/self/maps"))
		return DERR(d, "pid %d: cannot read /proc/self/maps", d->pid);
	while ((r = co_maps_next(&m, &e)) == 1) {
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
		n++;
	}
	co_maps_close(&m);
	d->nvmas = (uint32_t)n;
	return 0;
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

static struct co_pagemap pm;
static int pm_volatile;

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

static void put_bounced(struct co_dumpctx *d, uint64_t addr, uint64_t len)
{
	static char bounce[65536];
	for (uint64_t done = 0; done < len; done += sizeof(bounce)) {
		uint64_t n = len - done < sizeof(bounce) ? len - done : sizeof(bounce);
		co_memcpy(bounce, (void *)(addr + done), n);
		co_w_put(d->w, bounce, n);
	}
}

/* Write the collected runs: a page map record, then their pages, page-aligned. */
static int flush_runs(struct co_dumpctx *d)
{
	if (!pm.nruns)
		return 0;
	size_t len = __builtin_offsetof(struct co_pagemap, runs) + pm.nruns * sizeof(struct co_run);
	co_w_rec(d->w, CO_R_PAGEMAP, &pm, len);
	co_w_begin(d->w, CO_R_PAGEDATA, pm.npages * CO_PAGE, 1);
	for (uint32_t i = 0; i < pm.nruns; i++) {
		if (pm_volatile)
			put_bounced(d, pm.runs[i].addr, pm.runs[i].npages * CO_PAGE);
		else
			co_w_put(d->w, (void *)pm.runs[i].addr, pm.runs[i].npages * CO_PAGE);
	}
	co_w_end(d->w);
	d->page_bytes += pm.npages * CO_PAGE;
	pm.nruns = 0;
	pm.npages = 0;
	return d->w->err ? DERR(d, "pid %d: writing page data failed (errno %d)", d->pid, -d->w->err) : 0;
}

static int add_page(struct co_dumpctx *d, uint64_t addr)
{
	struct co_run *last = pm.nruns ? &pm.runs[pm.nruns - 1] : 0;
	if (last && last->addr + last->npages * CO_PAGE == addr) {
		last->npages++;
	} else {
		if (pm.nruns == CO_MAX_RUNS && flush_runs(d))
			return -1;
		pm.runs[pm.nruns].addr = addr;
		pm.runs[pm.nruns].npages = 1;
		pm.nruns++;
	}
	pm.npages++;
	return 0;
}

#define WINDOW 8192 /* pages looked at per pagemap read */

static int dump_region(struct co_dumpctx *d, int pmfd, const struct co_vma *v)
{
	static uint64_t ent[WINDOW];
	static unsigned char core[WINDOW];
	pm_volatile = is_volatile(d, v);
	for (uint64_t a = v->start; a < v->end; a += WINDOW * CO_PAGE) {
		uint64_t n = (v->end - a) / CO_PAGE;
		if (n > WINDOW)
			n = WINDOW;
		long r = co_pread(pmfd, ent, n * 8, (long)(a / CO_PAGE * 8));
		if (r != (long)(n * 8))
			return DERR(d, "pid %d: cannot read the page map at %lx", d->pid, (unsigned long)a);
		if (v->kind == CO_V_SHANON && co_mincore((void *)a, n * CO_PAGE, core) < 0)
			co_memset(core, 1, n);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t e = ent[i];
			int save;
			switch (v->kind) {
			case CO_V_FILE:
				save = (e & PM_SWAP) || ((e & PM_PRESENT) && !(e & PM_FILE));
				break;
			case CO_V_SHANON:
				save = (e & (PM_PRESENT | PM_SWAP)) || (core[i] & 1);
				break;
			default:
				save = (e & (PM_PRESENT | PM_SWAP)) != 0;
				break;
			}
			if (save && add_page(d, a + i * CO_PAGE))
				return -1;
		}
	}
	/* the region's runs go out now: its protection may be lifted only meanwhile */
	return flush_runs(d);
}

int co_mem_dump_pages(struct co_dumpctx *d)
{
	/* pm is static, and after a restart it holds whatever it held when dumped */
	pm.nruns = 0;
	pm.npages = 0;
	int pmfd = (int)co_open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC, 0);
	if (pmfd < 0)
		return DERR(d, "pid %d: cannot open /proc/self/pagemap", d->pid);
	int ret = 0;
	for (uint32_t i = 0; i < d->nvmas && !ret; i++) {
		const struct co_vma *v = &vmas[i];
		if (v->kind == CO_V_SPECIAL || (v->kind == CO_V_FILE && (v->flags & CO_VF_SHARED)))
			continue;
		int unreadable = !(v->prot & PROT_READ);
		if (unreadable && co_mprotect((void *)v->start, v->end - v->start, (int)v->prot | PROT_READ)) {
			ret = DERR(d, "pid %d: region %lx-%lx cannot be made readable", d->pid,
				   (unsigned long)v->start, (unsigned long)v->end);
			break;
		}
		ret = dump_region(d, pmfd, v);
		if (unreadable)
			co_mprotect((void *)v->start, v->end - v->start, (int)v->prot);
	}
	co_close(pmfd);
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
	case CO_V_SHANON:
		r = co_mmap((void *)v->start, len, prot, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		break;
	case CO_V_FILE: {
		int shared = v->flags & CO_VF_SHARED;
		int fd = (int)co_open(v->path, (shared && (v->prot & PROT_WRITE)) ? O_RDWR : O_RDONLY, 0);
		if (fd < 0)
			return co_err(rc->err, rc->errlen, "pid %d: region %lx-%lx: cannot open %s (errno %d)",
				      rc->proc->pid, (unsigned long)v->start, (unsigned long)v->end, v->path, -fd);
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

static struct co_pagemap pm;

/* Page map and page data records until the end record. */
static int read_pages(struct co_rstctx *rc)
{
	struct co_reader *r = rc->r;
	for (;;) {
		int e = co_r_next(r);
		if (e <= 0)
			return co_err(rc->err, rc->errlen, "%s", e < 0 ? r->err : "image ends before its end record");
		if (r->hdr.type == CO_R_END)
			return co_r_finish(r) ? co_err(rc->err, rc->errlen, "%s", r->err) : 0;
		if (r->hdr.type != CO_R_PAGEMAP)
			return co_err(rc->err, rc->errlen, "%s: byte %lu: unexpected %s record among pages",
				      r->name, (unsigned long)r->rec_off, co_rec_name(r->hdr.type));
		if (co_r_payload(r, &pm, sizeof(pm)))
			return co_err(rc->err, rc->errlen, "%s", r->err);
		if (pm.nruns > CO_MAX_RUNS)
			return co_err(rc->err, rc->errlen, "%s: byte %lu: page map has %u runs",
				      r->name, (unsigned long)r->rec_off, pm.nruns);
		if (co_r_next(r) != 1 || r->hdr.type != CO_R_PAGEDATA || r->hdr.len != pm.npages * CO_PAGE)
			return co_err(rc->err, rc->errlen, "%s", r->err[0] ? r->err : "page data does not match its page map");
		for (uint32_t i = 0; i < pm.nruns; i++) {
			const struct co_run *run = &pm.runs[i];
			int inside = 0;
			for (int k = 0; k < rc->nvmas && !inside; k++)
				inside = run->addr >= rc->vmas[k].start &&
					 run->addr + run->npages * CO_PAGE <= rc->vmas[k].end;
			if (!inside)
				return co_err(rc->err, rc->errlen, "%s: byte %lu: pages at %lx lie outside every region",
					      r->name, (unsigned long)r->rec_off, (unsigned long)run->addr);
			if (co_r_read(r, (void *)run->addr, run->npages * CO_PAGE))
				return co_err(rc->err, rc->errlen, "%s", r->err);
		}
		if (co_r_finish(r))
			return co_err(rc->err, rc->errlen, "%s", r->err);
	}
}

int co_mem_restore(struct co_rstctx *rc)
{
	uint64_t park = rc->zone + rc->zone_len - (1 << 20);
	if (clear_address_space(rc, park))
		return -1;
	for (int i = 0; i < rc->nvmas; i++)
		if (map_region(rc, &rc->vmas[i]))
			return -1;
	if (read_pages(rc))
		return -1;
	for (int i = 0; i < rc->nvmas; i++) {
		const struct co_vma *v = &rc->vmas[i];
		if (v->kind == CO_V_SPECIAL || (v->kind == CO_V_FILE && (v->flags & CO_VF_SHARED)))
			continue;
		co_mprotect((void *)v->start, v->end - v->start, (int)v->prot);
	}
	return 0;
}
#endif
