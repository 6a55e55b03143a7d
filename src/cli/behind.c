/*
 * behind.c - the page data a post-copy stop writes behind
 * (docs/architecture.md, "Migration", *Post-copy*).
 *
 * The stop of `migrate --postcopy` is a checkpoint with CO_CKPT_BEHIND:
 * each member writes its image itself, the page data of its private
 * anonymous regions and their checksums left out (the record's header
 * says CO_RF_BEHIND; the file has a hole there, src/res/pages.c), and it
 * stays parked, never to run here again: the stop writes nothing in
 * proportion to the memory.  Its memory is what that data is: it is read
 * here through /proc/PID/mem (which reads what the process itself may
 * not: FOLL_FORCE) and written into its place, by the migration as it
 * pushes each piece to the target (postcopy.c; a record's checksum, which
 * needs the whole record, once its last bytes go), or by the coordinator
 * when the migration has gone (coord/hold.c).  Only then is the
 * generation committed and the group ended.  The target checks every
 * record it uses, as for any lazy restart.
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
#include "xxh64.h"

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

/* Room for one more of n items of size each in *v (cap of them): 0, or -1 out of memory. */
static int grow(void **v, uint32_t n, uint32_t *cap, size_t size)
{
	if (n < *cap)
		return 0;
	uint32_t c = *cap ? *cap * 2 : 64;
	void *p = realloc(*v, c * size);
	if (!p)
		return -1;
	*v = p;
	*cap = c;
	return 0;
}

int co_behind_add(struct co_behind_runs *rs, uint64_t off, uint64_t len, uint64_t addr)
{
	if (grow((void **)&rs->r, rs->n, &rs->cap, sizeof(*rs->r)))
		return -1;
	rs->r[rs->n].off = off;
	rs->r[rs->n].len = len;
	rs->r[rs->n++].addr = addr;
	return 0;
}

int co_behind_add_rec(struct co_behind_runs *rs, uint64_t off, uint64_t len, uint64_t seq, uint32_t r0)
{
	if (grow((void **)&rs->rec, rs->nrec, &rs->caprec, sizeof(*rs->rec)))
		return -1;
	rs->rec[rs->nrec++] = (struct co_behind_rec){ off, len, seq, r0, rs->n - r0 };
	return 0;
}

/* len bytes at addr of memory mem into fd at off (h: hashed too, unless NULL). */
static int write_run(int mem, uint64_t addr, int fd, uint64_t off, uint64_t len, struct co_xxh64 *h, uint64_t *bytes,
		     char *err, size_t errlen)
{
	static char buf[1 << 20];
	for (uint64_t o = 0; o < len; o += sizeof(buf)) {
		size_t n = len - o < sizeof(buf) ? (size_t)(len - o) : sizeof(buf);
		if (co_behind_copy(mem, addr + o, fd, off + o, buf, n, err, errlen))
			return -1;
		if (h)
			co_xxh64_update(h, buf, n);
		*bytes += n;
	}
	return 0;
}

/* A record's checksum, written at byte at of its image (after its payload). */
static int put_sum(int fd, uint64_t at, uint64_t sum, char *err, size_t errlen)
{
	if (pwrite(fd, &sum, sizeof(sum), (off_t)at) != (ssize_t)sizeof(sum))
		return snprintf(err, errlen, "cannot write a checksum at byte %llu of an image: %s", (unsigned long long)at,
				strerror(errno)), -1;
	return 0;
}

int co_behind_record(int mem, int fd, const struct co_run *runs, uint32_t n, uint64_t off, uint64_t seq,
		     uint64_t *bytes, char *err, size_t errlen)
{
	struct co_xxh64 h;
	co_rec_sum_init(&h, seq, CO_R_PAGEDATA);
	uint64_t at = off;
	for (uint32_t i = 0; i < n; i++) {
		if (write_run(mem, runs[i].addr, fd, at, runs[i].npages * CO_PAGE, &h, bytes, err, errlen))
			return -1;
		at += runs[i].npages * CO_PAGE;
	}
	uint64_t sum = co_xxh64_digest(&h);
	return put_sum(fd, at, sum, err, errlen);
}

/*
 * Record k's checksum, hashed from its payload in fd (all of it there by
 * now: co_behind_overlay), written into fd after it and into buf where it
 * overlaps [off, off + len).
 */
static int overlay_sum(const struct co_behind_runs *rs, uint32_t k, int fd, uint64_t off, char *buf, uint64_t len,
		       char *err, size_t errlen)
{
	static char data[1 << 20];
	const struct co_behind_rec *c = &rs->rec[k];
	struct co_xxh64 h;
	co_rec_sum_init(&h, c->seq, CO_R_PAGEDATA);
	for (uint64_t o = 0; o < c->len; o += sizeof(data)) {
		size_t n = c->len - o < sizeof(data) ? (size_t)(c->len - o) : sizeof(data);
		if (pread(fd, data, n, (off_t)(c->off + o)) != (ssize_t)n)
			return snprintf(err, errlen, "cannot read page data at byte %llu of an image: %s",
					(unsigned long long)(c->off + o), strerror(errno)), -1;
		co_xxh64_update(&h, data, n);
	}
	uint64_t sum = co_xxh64_digest(&h), t = c->off + c->len;
	if (put_sum(fd, t, sum, err, errlen))
		return -1;
	for (uint64_t b = 0; b < sizeof(sum); b++)
		if (t + b >= off && t + b < off + len)
			buf[t + b - off] = ((const char *)&sum)[b];
	return 0;
}

/* The first record whose checksum ends after off. */
static uint32_t first_rec(const struct co_behind_runs *rs, uint64_t off)
{
	uint32_t lo = 0, hi = rs->nrec;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (rs->rec[mid].off + rs->rec[mid].len + 8 <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

long co_behind_rec_at(const struct co_behind_runs *rs, uint64_t off, uint64_t len)
{
	uint32_t k = first_rec(rs, off);
	return k < rs->nrec && rs->rec[k].off + rs->rec[k].len < off + len ? (long)k : -1;
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
	for (uint32_t k = first_rec(rs, off); k < rs->nrec && rs->rec[k].off + rs->rec[k].len < off + len; k++)
		if (overlay_sum(rs, k, fd, off, buf, len, err, errlen))
			return -1;
	return 0;
}

int co_behind_write_all(const struct co_behind_runs *rs, int fd, uint64_t *bytes, char *err, size_t errlen)
{
	static struct co_run runs[CO_MAX_RUNS];
	for (uint32_t k = 0; k < rs->nrec; k++) {
		const struct co_behind_rec *c = &rs->rec[k];
		uint32_t n = 0;
		for (uint32_t i = c->r0; i < c->r0 + c->nr && n < CO_MAX_RUNS; i++)
			runs[n++] = (struct co_run){ rs->r[i].addr, rs->r[i].len / CO_PAGE };
		if (co_behind_record(rs->mem, fd, runs, n, c->off, c->seq, bytes, err, errlen))
			return -1;
	}
	return 0;
}

/* Every page data record of one stream written behind (payload and checksum), from memory mem. */
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
		if (r.hdr.type == CO_R_PAGEDATA && (r.hdr.flags & CO_RF_BEHIND) && r.hdr.len)
			bad = co_behind_record(mem, fd, pm.runs, pm.nruns, r.off, r.hdr.seq, bytes, err, errlen);
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
