/*
 * precopy.c - a process's memory read ahead of a full checkpoint, while
 * the program still runs.
 *
 * Forking the snapshot of a full image copies the page tables of all its
 * memory (about 20 ms per GiB here), and that fork is the pause.  Instead,
 * a process whose image would be full arms a pre-copy (dirty.h): from that
 * moment its writes are tracked, and it notes which pages it has.  Then the
 * coordinator reads every page the process has now through /proc/PID/mem
 * into an image of its own (a process record and pages, nothing else):
 * the pre-copy.  The image taken in the pause is incremental against it,
 * with a lean snapshot that copies the page tables of the written pages
 * only, and co_merge_precopy (merge.c) makes the full image of the two.
 *
 * It reads the pages still write-protected (the uffd-wp bit of
 * /proc/PID/pagemap): those the process noted and has not written since
 * the arming.  A page written since is in the image of the pause anyway,
 * and so is all memory the process does not write-protect (regions of
 * huge pages, compared by page hashes: dirty_thp.c), which reading here would
 * only copy twice.  A page it noted and can no longer be read here was
 * unmapped since (then the image of the pause does not need it).  A page
 * read here while the program writes it may be torn: it was written, and
 * the image of the pause has it too.  Should the two disagree anyway, the
 * merge finds the page missing and the checkpoint fails; nothing is
 * guessed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "agent/dirty.h"
#include "procfs.h"
#include "util.h"

#define STAGE_PAGES 2048 /* 8 MiB of pages per page record */

static char stage[STAGE_PAGES * CO_PAGE];
static uint64_t ent[STAGE_PAGES];
static struct co_pagemap pm; /* the pages in stage */
static char wbuf[1 << 20];
static uint64_t total;

/* The staged pages as one page map and its data. */
static int flush(struct co_writer *w)
{
	if (!pm.npages)
		return 0;
	co_w_rec(w, CO_R_PAGEMAP, &pm, __builtin_offsetof(struct co_pagemap, runs) + pm.nruns * sizeof(struct co_run));
	co_w_begin(w, CO_R_PAGEDATA, pm.npages * CO_PAGE, 1);
	co_w_put(w, stage, pm.npages * CO_PAGE);
	co_w_end(w);
	total += pm.npages;
	pm.npages = 0;
	pm.nruns = 0;
	return w->err;
}

/* Stage n pages at addr, read from mem; pages that cannot be read (unmapped since) are left out. */
static int stage_run(struct co_writer *w, int mem, uint64_t addr, uint64_t n)
{
	while (n) {
		if (pm.nruns == CO_MAX_RUNS || pm.npages == STAGE_PAGES)
			if (flush(w))
				return -1;
		uint64_t k = n < STAGE_PAGES - pm.npages ? n : STAGE_PAGES - pm.npages;
		ssize_t got = pread(mem, stage + pm.npages * CO_PAGE, k * CO_PAGE, (off_t)addr);
		if (got < (ssize_t)CO_PAGE) {
			/* not even the first page: leave it out, try the next */
			addr += CO_PAGE;
			n--;
			continue;
		}
		k = (uint64_t)got / CO_PAGE;
		struct co_run *last = pm.nruns ? &pm.runs[pm.nruns - 1] : NULL;
		if (last && last->addr + last->npages * CO_PAGE == addr)
			last->npages += k;
		else
			pm.runs[pm.nruns++] = (struct co_run){ addr, k };
		pm.npages += k;
		addr += k * CO_PAGE;
		n -= k;
	}
	return 0;
}

/*
 * A page to read: in memory and still write-protected (see above), or
 * swapped out.  A page-table entry that looks swapped out may be a
 * marker instead (the uffd-wp marker of a page
 * never touched, a guard page), type 31 in the swap fields, which show
 * only to a privileged reader: reading a marker would map the zero page
 * into the program.  Unprivileged, swapped-out pages are left out; the
 * process did not count them as held either (dirty_wp.c), and a page that
 * went out to swap between the arming and this read fails the merge.
 */
static int wanted(uint64_t e)
{
	uint64_t swp = e & ((1ULL << 55) - 1);
	return ((e & CO_PM_PRESENT) && (e & CO_PM_UFFD_WP)) || ((e & CO_PM_SWAP) && swp && (swp & 0x1f) != 0x1f);
}

/* Stage the pages of [start, end) that are there (in memory or swapped out). */
static int copy_region(struct co_writer *w, int pmfd, int mem, uint64_t start, uint64_t end)
{
	for (uint64_t a = start; a < end;) {
		uint64_t n = (end - a) / CO_PAGE < STAGE_PAGES ? (end - a) / CO_PAGE : STAGE_PAGES;
		ssize_t got = pread(pmfd, ent, n * sizeof(ent[0]), (off_t)(a / CO_PAGE * sizeof(ent[0])));
		if (got <= 0)
			return 0; /* gone since: nothing of it is needed */
		n = (uint64_t)got / sizeof(ent[0]);
		for (uint64_t i = 0; i < n;) {
			if (!wanted(ent[i])) {
				i++;
				continue;
			}
			uint64_t j = i;
			while (j < n && wanted(ent[j]))
				j++;
			if (stage_run(w, mem, a + i * CO_PAGE, j - i))
				return -1;
			i = j;
		}
		a += n * CO_PAGE;
	}
	return 0;
}

int64_t co_precopy(const char *path, int pid, int host_pid, char *err, size_t errlen)
{
	static struct co_maps maps;
	static struct co_mapent e;
	static struct co_proc proc;
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/maps", host_pid);
	if (co_maps_open(&maps, p) < 0)
		return co_err(err, errlen, "pid %d: cannot read %s: %s", pid, p, strerror(errno));
	snprintf(p, sizeof(p), "/proc/%d/pagemap", host_pid);
	int pmfd = open(p, O_RDONLY | O_CLOEXEC), mem = -1, fd = -1, r = -1;
	if (pmfd >= 0) {
		snprintf(p, sizeof(p), "/proc/%d/mem", host_pid);
		mem = open(p, O_RDONLY | O_CLOEXEC);
	}
	if (mem < 0) {
		/* p names the one that failed */
		co_err(err, errlen, "pid %d: cannot open %s: %s", pid, p, strerror(errno));
		goto out;
	}
	fd = co_img_create(path, 0, err, errlen);
	if (fd < 0)
		goto out;
	struct co_writer w;
	co_w_init(&w, fd, wbuf, sizeof(wbuf));
	co_w_head(&w, CO_KIND_PROCESS, NULL); /* a pre-copy: merged into the generation's image, not bound */
	memset(&proc, 0, sizeof(proc));
	proc.pid = pid;
	proc.streams = 1;
	co_w_rec(&w, CO_R_PROC, &proc, sizeof(proc));
	pm.npages = 0;
	pm.nruns = 0;
	total = 0;
	r = 0;
	while (!r && co_maps_next(&maps, &e) == 1)
		if (co_dirty_trackable(&e))
			r = copy_region(&w, pmfd, mem, e.start, e.end);
	r = r || flush(&w);
	struct co_end end = { w.seq + 1, total * CO_PAGE };
	co_w_rec(&w, CO_R_END, &end, sizeof(end));
	if (!r && co_w_flush(&w))
		r = -1;
	if (w.err)
		co_err(err, errlen, "pid %d: writing %s: %s", pid, path, strerror(-w.err));
out:
	if (fd >= 0 && co_img_finish(fd, err, errlen) < 0)
		r = -1;
	if (mem >= 0)
		close(mem);
	if (pmfd >= 0)
		close(pmfd);
	co_maps_close(&maps);
	return r < 0 ? -1 : (int64_t)total;
}
