/*
 * coord/progress.c - progress of a checkpoint, for the client that asked for it.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include "coord.h"
#include "util.h"

struct ckpt_progress P = { .fd = -1 };

/* Bytes done in the current phase, cheaply: a few stat()s or one /proc read. */
static uint64_t progress_done(void)
{
	switch (P.count) {
	case PC_FILES:
		return co_dir_bytes(P.tmp);
	case PC_PRE:
		return co_dir_bytes(pre_dir(P.tmp));
	case PC_JOB_READ:
	case PC_JOB_WRITE:
		return P.job > 0 ? co_proc_io(P.job, P.count == PC_JOB_READ ? "rchar" : "wchar") : 0;
	}
	return 0;
}

/* Never waits: an update the client is not ready for is dropped (progress.c). */
static void progress_send(void)
{
	P.next_ns = co_now_ns(CLOCK_MONOTONIC) + PROGRESS_NS;
	if (co_progress_send(P.fd, P.phase, progress_done(), P.total) < 0)
		P.fd = -1; /* the client is gone */
}

/* From wherever a checkpoint waits (pump): an update when one is due. */
void progress_tick(void)
{
	if (P.fd >= 0 && co_now_ns(CLOCK_MONOTONIC) >= P.next_ns)
		progress_send();
}

/* A new phase, told at once; count: PC_*, total: what its bytes done come to (0: not known). */
void progress_phase(const char *phase, int count, uint64_t total)
{
	if (P.nphases < (int)CO_ARRAY_LEN(P.phase_ns)) {
		P.phase_name[P.nphases] = phase;
		P.phase_ns[P.nphases++] = co_now_ns(CLOCK_MONOTONIC);
	}
	if (P.fd < 0)
		return;
	P.phase = phase;
	P.count = count;
	P.total = total;
	P.job = 0;
	progress_send();
}

/* The checkpoint into tmp begins, for the client on fd; the reply ends the progress (reply()). */
void progress_begin(int fd, unsigned flags, const char *tmp)
{
	P.fd = flags & CO_CKPT_PROGRESS ? fd : -1;
	P.nphases = 0;
	snprintf(P.tmp, sizeof(P.tmp), "%s", tmp);
	progress_phase("preparing", PC_NONE, 0);
}

/*
 * The phases of the checkpoint as JSON, {"preparing":12.5,...}: the time from
 * each phase's start to the next one's (the last one's to end_ns), in ms,
 * counted from start_ns as duration_ms is.  A phase entered twice is
 * reported twice.
 */
const char *phases_json(uint64_t start_ns, uint64_t end_ns, char *out, size_t size)
{
	size_t len = 0;
	len += (size_t)snprintf(out, size, "{");
	for (int i = 0; i < P.nphases && len < size; i++) {
		uint64_t from = P.phase_ns[i] > start_ns ? P.phase_ns[i] : start_ns;
		uint64_t until = i + 1 < P.nphases ? P.phase_ns[i + 1] : end_ns;
		len += (size_t)snprintf(out + len, size - len, "%s\"%s\":%.2f", i ? "," : "", P.phase_name[i],
					until > from ? (double)(until - from) / 1e6 : 0.0);
	}
	if (len < size)
		snprintf(out + len, size - len, "}");
	return out;
}

/* The job child of the phase (run_job): its reads or writes are the bytes done. */
void progress_job(pid_t pid)
{
	P.job = pid;
}

/*
 * What the images of the members will take, roughly: the memory only
 * they hold (RssAnon, and VmSwap swapped out) and shared memory
 * (RssShmem: counted by each process that maps it, saved once).  which:
 * MM_PART the members taking part in the checkpoint, MM_ALL every member
 * (before they are enrolled), MM_PRECOPY the armed ones, and the resident
 * pages of their private file mappings too (RssFile), which a pre-copy
 * reads.
 */
uint64_t members_memory(int which)
{
	uint64_t kb = 0;
	int precopy = which == MM_PRECOPY;
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		char path[64], buf[4096];
		if (c->kind != C_MEMBER || (which != MM_ALL && !c->part) || (precopy && !c->armed))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/status", c->host_pid);
		if (co_read_small(path, buf, sizeof(buf)) <= 0)
			continue;
		long f[3] = { co_status_field(buf, "RssAnon"), co_status_field(buf, "VmSwap"),
			      co_status_field(buf, precopy ? "RssFile" : "RssShmem") };
		for (int k = 0; k < 3; k++)
			kb += f[k] > 0 ? (uint64_t)f[k] : 0;
	}
	return kb * 1024;
}
