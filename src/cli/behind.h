/*
 * behind.h - the page data a post-copy stop writes behind (behind.c;
 * docs/architecture.md, "Migration", *Post-copy*).
 */
#ifndef COHORT_BEHIND_H
#define COHORT_BEHIND_H

#include <stddef.h>
#include <stdint.h>

/*
 * In the temporary directory of such a stop, until its commit: "PID HOST"
 * a line, each member's pid in the group and here (the coordinator's).
 */
#define CO_BEHIND_PIDS "behind.pids"
/* The pid here of process pid of the stop in dir (CO_BEHIND_PIDS), or -1 with err. */
int co_behind_host(const char *dir, int pid, char *err, size_t errlen);
/* The memory of process host_pid (this side's pid), to read page data from: an fd, or -1 with err. */
int co_behind_mem(int host_pid, char *err, size_t errlen);
/* n bytes of memory mem at addr into buf, then into fd at off.  0, or -1 with err. */
int co_behind_copy(int mem, uint64_t addr, int fd, uint64_t off, void *buf, size_t n, char *err, size_t errlen);
/*
 * The page data of a file written behind, by offset: runs (the bytes of
 * [off, off + len) are at addr in memory mem) and the records they make
 * up (payload [off, off + len), its checksum the 8 bytes after it).
 */
struct co_behind_rec {
	uint64_t off, len, seq;
	uint32_t r0, nr;	/* its runs */
};
struct co_behind_runs {
	struct { uint64_t off, len, addr; } *r;
	uint32_t n, cap;
	struct co_behind_rec *rec;
	uint32_t nrec, caprec;
	int mem;
};
/* One more run (after the others): 0, or -1 out of memory. */
int co_behind_add(struct co_behind_runs *rs, uint64_t off, uint64_t len, uint64_t addr);
/* One more record (page data record seq at off, len bytes), of the runs from r0 on: 0, or -1. */
int co_behind_add_rec(struct co_behind_runs *rs, uint64_t off, uint64_t len, uint64_t seq, uint32_t r0);
/*
 * buf holds [off, off + len) of fd as read: where rs has runs, their bytes
 * from memory instead, and where a record's checksum lies, that checksum,
 * each written into fd too (the runs added to *bytes).  The checksum is
 * hashed from the record in fd, which must be all there by then (what
 * was pushed, what is committed and the checksum agree, whatever the
 * memory does meanwhile).  0, or -1 with err.
 */
/* The record of rs whose checksum lies in [off, off + len), or -1. */
long co_behind_rec_at(const struct co_behind_runs *rs, uint64_t off, uint64_t len);
int co_behind_overlay(const struct co_behind_runs *rs, int fd, uint64_t off, char *buf, uint64_t len, uint64_t *bytes,
		      char *err, size_t errlen);
/*
 * Page data record seq written behind, now: its n runs from memory mem
 * into fd from off on, then its checksum after them.  0, or -1 with err.
 */
struct co_run;
int co_behind_record(int mem, int fd, const struct co_run *runs, uint32_t n, uint64_t off, uint64_t seq,
		     uint64_t *bytes, char *err, size_t errlen);
/* Each record of rs written into fd now (co_behind_record).  0, or -1 with err. */
int co_behind_write_all(const struct co_behind_runs *rs, int fd, uint64_t *bytes, char *err, size_t errlen);
/*
 * Every page data record written behind (CO_RF_BEHIND) of the image of
 * process pid in dir (each of its streams), payload and checksum, from the
 * memory of host_pid, which is parked.  Adds to *bytes.  0, or -1 with err.
 */
int co_behind_fill_proc(const char *dir, int pid, int host_pid, uint64_t *bytes, char *err, size_t errlen);

#endif
