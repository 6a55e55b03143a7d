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
/* Runs of a file written behind, by offset: the bytes of [off, off + len) are at addr in memory mem. */
struct co_behind_runs {
	struct { uint64_t off, len, addr; } *r;
	uint32_t n, cap;
	int mem;
};
/* One more (after the others): 0, or -1 out of memory. */
int co_behind_add(struct co_behind_runs *rs, uint64_t off, uint64_t len, uint64_t addr);
/* len bytes at addr of memory mem written into fd at off (added to *bytes): 0, or -1 with err. */
int co_behind_write(int mem, uint64_t addr, int fd, uint64_t off, uint64_t len, uint64_t *bytes, char *err,
		    size_t errlen);
/*
 * buf holds [off, off + len) of fd as read: where rs has runs, their bytes
 * from memory instead, written into fd too (added to *bytes).  0, or -1.
 */
int co_behind_overlay(const struct co_behind_runs *rs, int fd, uint64_t off, char *buf, uint64_t len, uint64_t *bytes,
		      char *err, size_t errlen);
/*
 * Every page data record written behind (CO_RF_BEHIND) of the image of
 * process pid in dir (each of its streams), from the memory of host_pid,
 * which is parked.  Adds to *bytes.  0, or -1 with err.
 */
int co_behind_fill_proc(const char *dir, int pid, int host_pid, uint64_t *bytes, char *err, size_t errlen);

#endif
