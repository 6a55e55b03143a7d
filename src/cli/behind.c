/*
 * behind.c - the page data a post-copy stop writes behind
 * (docs/architecture.md, "Migration", *Post-copy*).
 *
 * The stop of `migrate --postcopy` is a checkpoint with CO_CKPT_BEHIND:
 * each member writes its image itself, the page data of its private
 * anonymous regions hashed from its memory but not written (the record's
 * header says CO_RF_BEHIND; the file has a hole there, src/res/pages.c),
 * and it stays parked, never to run here again.  Its memory is what that
 * data is: it is read here through /proc/PID/mem (which reads what the
 * process itself may not: FOLL_FORCE) and written into its place, by the
 * migration as it pushes each piece to the target (postcopy.c), or by the
 * coordinator when the migration has gone (coord/checkpoint.c).  Only
 * then is the generation committed and the group ended.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "behind.h"
#include "res.h"

int co_behind_host(const char *dir, int pid, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int p, h, host = -1;
	snprintf(path, sizeof(path), "%s/%s", dir, CO_BEHIND_PIDS);
	FILE *f = fopen(path, "re");
	if (!f)
		return snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno)), -1;
	while (host < 0 && fscanf(f, "%d %d", &p, &h) == 2)
		if (p == pid)
			host = h;
	fclose(f);
	if (host < 0)
		snprintf(err, errlen, "%s: pid %d is not listed", path, pid);
	return host;
}

int co_behind_mem(int host_pid, char *err, size_t errlen)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", host_pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		snprintf(err, errlen, "cannot open %s (the memory of a process of the stop): %s", path, strerror(errno));
	return fd;
}

int co_behind_copy(int mem, uint64_t addr, int fd, uint64_t off, void *buf, size_t n, char *err, size_t errlen)
{
	ssize_t r = pread(mem, buf, n, (off_t)addr);
	if (r != (ssize_t)n)
		return snprintf(err, errlen, "cannot read %zu bytes of a parked process's memory at %llx: %s", n,
				(unsigned long long)addr, r < 0 ? strerror(errno) : "it is gone"), -1;
	if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
		return snprintf(err, errlen, "cannot write page data at byte %llu of an image: %s",
				(unsigned long long)off, strerror(errno)), -1;
	return 0;
}

int co_behind_add(struct co_behind_runs *rs, uint64_t off, uint64_t len, uint64_t addr)
{
	if (rs->n == rs->cap) {
		uint32_t cap = rs->cap ? rs->cap * 2 : 64;
		void *r = realloc(rs->r, cap * sizeof(*rs->r));
		if (!r)
			return -1;
		rs->r = r;
		rs->cap = cap;
	}
	rs->r[rs->n].off = off;
	rs->r[rs->n].len = len;
	rs->r[rs->n++].addr = addr;
	return 0;
}

int co_behind_write(int mem, uint64_t addr, int fd, uint64_t off, uint64_t len, uint64_t *bytes, char *err,
		    size_t errlen)
{
	static char buf[1 << 20];
	for (uint64_t o = 0; o < len; o += sizeof(buf)) {
		size_t n = len - o < sizeof(buf) ? (size_t)(len - o) : sizeof(buf);
		if (co_behind_copy(mem, addr + o, fd, off + o, buf, n, err, errlen))
			return -1;
		*bytes += n;
	}
	return 0;
}

int co_behind_overlay(const struct co_behind_runs *rs, int fd, uint64_t off, char *buf, uint64_t len, uint64_t *bytes,
		      char *err, size_t errlen)
{
	uint32_t lo = 0, hi = rs->n;
	while (lo < hi) { /* the first run that ends after off */
		uint32_t mid = lo + (hi - lo) / 2;
		if (rs->r[mid].off + rs->r[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (uint32_t k = lo; k < rs->n && rs->r[k].off < off + len; k++) {
		uint64_t a = rs->r[k].off > off ? rs->r[k].off : off;
		uint64_t b = rs->r[k].off + rs->r[k].len < off + len ? rs->r[k].off + rs->r[k].len : off + len;
		if (co_behind_copy(rs->mem, rs->r[k].addr + (a - rs->r[k].off), fd, a, buf + (a - off), b - a, err, errlen))
			return -1;
		*bytes += b - a;
	}
	return 0;
}

/* Every run of the page data records of one stream written behind, from memory mem. */
static int fill_stream(const char *path, int mem, uint64_t *bytes, char *err, size_t errlen)
{
	static struct co_reader r;
	static struct co_pagemap pm;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : (snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno)), -1);
	co_r_init(&r, fd, path);
	int e, bad = 0;
	while (!bad && (e = co_r_next(&r)) == 1 && r.hdr.type != CO_R_END) {
		if (r.hdr.type == CO_R_PAGEMAP) {
			bad = co_r_payload(&r, &pm, sizeof(pm)) || pm.nruns > CO_MAX_RUNS;
			continue;
		}
		if (r.hdr.type != CO_R_PAGEDATA || !(r.hdr.flags & CO_RF_BEHIND)) {
			bad = co_r_skip(&r, r.hdr.len) || co_r_finish(&r);
			continue;
		}
		uint64_t at = r.off;
		for (uint32_t i = 0; i < pm.nruns && !bad; i++) {
			bad = co_behind_write(mem, pm.runs[i].addr, fd, at, pm.runs[i].npages * CO_PAGE, bytes, err, errlen);
			at += pm.runs[i].npages * CO_PAGE;
		}
		bad = bad || co_r_skip(&r, r.hdr.len) || co_r_finish(&r);
	}
	close(fd);
	if ((bad || e < 0) && !err[0])
		snprintf(err, errlen, "%s", r.err[0] ? r.err : "damaged image");
	return bad || e < 0 ? -1 : 0;
}

int co_behind_fill_proc(const char *dir, int pid, int host_pid, uint64_t *bytes, char *err, size_t errlen)
{
	char image[PATH_MAX], path[PATH_MAX];
	err[0] = 0;
	int mem = co_behind_mem(host_pid, err, errlen);
	if (mem < 0)
		return -1;
	snprintf(image, sizeof(image), "%s/proc-%d.img", dir, pid);
	int bad = 0;
	for (int k = 0; k < CO_STREAMS && !bad; k++) {
		co_stream_path(path, sizeof(path), image, k);
		bad = fill_stream(path, mem, bytes, err, errlen);
	}
	close(mem);
	return bad;
}
