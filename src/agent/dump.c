/*
 * dump.c - write this process's image, with every other thread parked.
 * Order of records: head, process, threads, timers, SEM_UNDO adjustments,
 * descriptors, regions, aio rings, the copy-on-write map, pages, end
 * (docs/image-format.md).  Nothing here allocates.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <time.h>
#include "agent.h"
#include "dirty.h"
#include "manager.h"
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

static char wbuf[1 << 18], wbuf1[1 << 18];
static struct co_writer writer, writer1;
static struct co_dumpctx dc;
static const struct co_thread *trecs[CO_MAX_THREADS];
static int data_marker = 1; /* lives in .data, which is mapped apart from .bss */

/* From DUMP: the descriptors whose regular file the group shares (co_dump_shared). */
static int shared_fds[CO_MAX_FDS], nshared_fds;

const char *co_dump_shared(const char *text)
{
	const char *p = text;
	nshared_fds = 0;
	while (*p >= '0' && *p <= '9') {
		uint64_t v = 0;
		while (*p >= '0' && *p <= '9' && v <= 0x7fffffff)
			v = v * 10 + (uint64_t)(*p++ - '0');
		if (nshared_fds == CO_MAX_FDS || v > 0x7fffffff)
			return 0;
		shared_fds[nshared_fds++] = (int)v;
		if (*p == ',')
			p++;
	}
	return *p == ';' ? p + 1 : 0;
}

/*
 * Look at everything before writing anything: an unsupported object fails
 * early.  With a snapshot this runs in the process, before the fork: the
 * snapshot of a lean fork lacks part of the memory map it must describe.
 */
int co_dump_begin(char *err, size_t errlen)
{
	co_memset(&dc, 0, sizeof(dc));
	dc.err = err;
	dc.errlen = errlen;
	dc.pid = co_agent.pid;
	dc.sig = co_agent.sig;
	dc.shared_fds = shared_fds;
	dc.nshared_fds = nshared_fds;
	dc.stdio = co_agent.table ? co_agent.table->stdio : 0;
	dc.stdio_marks = co_agent.table && co_agent.slot >= 0 ? co_agent.table->p[co_agent.slot].stdio_fd : 0;
	dc.nskip_fd = co_agent_fds(dc.skip_fd);
	if (co_agent.table) {
		dc.skip_lo[dc.nskip] = (uint64_t)co_agent.table;
		dc.skip_hi[dc.nskip++] = (uint64_t)co_agent.table + CO_PAGE_ALIGN(sizeof(struct co_table));
	}
	dc.nskip += co_dirty_areas(&dc.skip_lo[dc.nskip], &dc.skip_hi[dc.nskip]);
	/* the writer may find it cannot build on the parent after all (page hashes missing) */
	co_agent.incr_parent = co_dirty_begin_image(co_agent.incr_parent);
	dc.parent = co_agent.incr_parent;
	dc.behind = co_agent.behind;
	dc.agent_info = (uint64_t)&co_agent.resume;
	dc.pending = co_agent.shared_pending;
	dc.npending = co_agent.nshared_pending;
	dc.advice = co_agent.advice;
	dc.advice_epoch = co_agent.advice_epoch;
	dc.flags_gen = co_dirty_last();
	dc.region_kept = co_dirty_region_kept;
	dc.mlockall = co_agent.mlockall;
	dc.ppid = co_agent.ppid;
	dc.pgid = co_agent.pgid;
	dc.sid = co_agent.sid;
	dc.root = co_agent.root;
	char comm[32];
	if (co_read_small("/proc/self/comm", comm, sizeof(comm)) > 0) {
		comm[co_strlen(comm) - 1] = 0;
		co_strlcpy(dc.comm, comm, sizeof(dc.comm));
	}
	int here;
	dc.vol[dc.nvol++] = (uint64_t)&here; /* the manager's stack */
	dc.vol[dc.nvol++] = (uint64_t)&data_marker;
	dc.vol[dc.nvol++] = (uint64_t)&co_agent;
	dc.vol[dc.nvol++] = (uint64_t)wbuf;
	dc.vol[dc.nvol++] = (uint64_t)wbuf1;
	dc.vol[dc.nvol++] = (uint64_t)&dc;

	dc.cpu = *co_cpuclock_saved(); /* noted when the last thread parked (co_quiesce) */
	for (int i = 0; i < co_agent.nthreads; i++)
		trecs[i] = &co_agent.threads[i].rec;
	if (co_threads_check(&dc, trecs, co_agent.nthreads) || co_dnotify_collect(&dc) || co_pattrs_collect(&dc) || co_timers_collect(&dc) || co_semundo_collect(&dc) || co_files_collect(&dc) ||
	    co_mem_collect(&dc) || co_aio_collect(&dc))
		return -1;
	co_pages_note_shared(&dc);
	return 0;
}

int co_dump_recollect_timers(void)
{
	return co_timers_collect(&dc);
}

/*
 * Write the image begun by co_dump_begin through fds[k], stream k's file
 * (proc-PID.img, then its page streams), which the coordinator made in the
 * generation's directory dir and sent with DUMP: a process that changed
 * its uid may not create files there.  dir only names them in messages.
 * The files
 * are closed here; after a failure the coordinator removes them with the
 * generation.
 */
static int dump_write(const int *fds, const char *dir, uint64_t *bytes);

/*
 * The image is written from inside the process, under the program's
 * RLIMIT_FSIZE: a soft limit below the image's size failed the write
 * (EFBIG, SIGXFSZ).  The writer raises it to the hard limit while it
 * writes and puts it back after (the process record keeps the program's:
 * co_proc_dump).  The program sees nothing: it is parked, or this is the
 * snapshot child, whose limits are its own.
 */
static void fsize_raise(void)
{
	struct rlimit rl;
	dc.fsize_raised = 0;
	if (co_prlimit(0, RLIMIT_FSIZE, 0, &rl) || rl.rlim_cur >= rl.rlim_max)
		return;
	dc.fsize.cur = rl.rlim_cur;
	dc.fsize.max = rl.rlim_max;
	rl.rlim_cur = rl.rlim_max;
	dc.fsize_raised = co_prlimit(0, RLIMIT_FSIZE, &rl, 0) == 0;
}

static void fsize_back(void)
{
	struct rlimit rl = { dc.fsize.cur, dc.fsize.max };
	if (dc.fsize_raised)
		co_prlimit(0, RLIMIT_FSIZE, &rl, 0);
	dc.fsize_raised = 0;
}

/* "failed (errno 27)" says little: EFBIG is the program's file size limit */
static int write_failed(const char *path, int e)
{
	struct rlimit rl = { 0, 0 };
	co_prlimit(0, RLIMIT_FSIZE, 0, &rl);
	if (e == EFBIG && rl.rlim_cur != RLIM_INFINITY)
		return co_err(dc.err, dc.errlen, "pid %d: writing %s failed: the program's RLIMIT_FSIZE (%lu, hard "
			      "limit) is below the image's size", dc.pid, path, (unsigned long)rl.rlim_cur);
	return co_err(dc.err, dc.errlen, "pid %d: writing %s failed (errno %d)", dc.pid, path, e);
}

int co_dump_write(const int *fds, const char *dir, uint64_t *bytes)
{
	fsize_raise();
	int r = dump_write(fds, dir, bytes);
	fsize_back();
	return r;
}

static int dump_write(const int *fds, const char *dir, uint64_t *bytes)
{
	char path[CO_PATH + 64], path1[CO_PATH + 64];
	dc.cowmap_all = co_agent.cowmap_all;
	co_fmt(path, sizeof(path), "%s/proc-%d.img", dir, dc.pid);
	co_stream_path(path1, sizeof(path1), path, 1);
	int fd = fds[0], fd1 = fds[1], sfd = fds[CO_STREAMS]; /* sfd: seccomp filters from the coordinator, or -1 */
	dc.skip_fd[dc.nskip_fd++] = fd;
	dc.skip_fd[dc.nskip_fd++] = fd1;
	if (sfd >= 0)
		dc.skip_fd[dc.nskip_fd++] = sfd;
	co_w_init(&writer, fd, wbuf, sizeof(wbuf));
	co_w_init(&writer1, fd1, wbuf1, sizeof(wbuf1));
	dc.w = &writer;
	dc.nstreams = CO_STREAMS;
	struct co_writer *ws[CO_STREAMS] = { &writer, &writer1 };

	/* bound to this group, generation, process and stream (image.h) */
	struct co_bind b = { co_agent.table ? co_agent.table->group_id : 0, co_agent.generation, dc.pid, 0 };
	co_w_head(&writer, CO_KIND_PROCESS, &b);
	b.stream = 1;
	co_w_head(&writer1, CO_KIND_PAGES, &b);
	for (int i = 0; i < co_agent.nthreads; i++)
		trecs[i] = &co_agent.threads[i].rec;
	int r = co_proc_dump(&dc, co_agent.nthreads) || co_threads_dump(&dc, trecs, co_agent.nthreads) ||
		co_seccomp_dump(&dc, sfd) || co_timers_dump(&dc) || co_semundo_dump(&dc) || co_files_dump(&dc);
	r = r || co_mem_dump_vmas(&dc) || co_aio_dump(&dc) || co_pages_dump_shared(&dc);
	co_stamp("metadata");
	r = r || co_mem_dump_pages(&dc, ws, CO_STREAMS);
	co_stamp("pages");
	for (int k = 0; k < CO_STREAMS && !r; k++) {
		struct co_end end = { ws[k]->seq + 1, 0 };
		co_w_rec(ws[k], CO_R_END, &end, sizeof(end));
		if (co_w_flush(ws[k]))
			r = write_failed(k ? path1 : path, -ws[k]->err);
	}
	co_close(fd);
	co_close(fd1);
	if (sfd >= 0)
		co_close(sfd);
	if (r)
		return -1;
	*bytes = writer.off + writer1.off;
	co_dirty_image_done(co_agent.generation);
	return 0;
}

/*
 * In the snapshot child, first.  (Its SysV segments were left out of the
 * fork: co_mem_fork_begin.)
 */
void co_dump_from_snapshot(void)
{
	dc.snapshot = 1;
}

void co_dump_fork_begin(void)
{
	co_mem_fork_begin(&dc);
}

void co_dump_fork_end(void)
{
	co_mem_fork_end(&dc);
}
