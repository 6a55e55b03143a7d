/*
 * dump.c - write this process's image, with every other thread parked.
 * Order of records: head, process, threads, descriptors, regions, pages,
 * end (docs/image-format.md).  Nothing here allocates.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <time.h>
#include "agent.h"
#include "res.h"
#include "sys.h"
#include "util.h"

static char wbuf[1 << 18];
static struct co_writer writer;
static struct co_dumpctx dc;
static const struct co_thread *trecs[CO_MAX_THREADS];
static int data_marker = 1; /* lives in .data, which is mapped apart from .bss */

int co_dump_process(const char *dir, uint64_t *bytes, char *err, size_t errlen)
{
	char path[CO_PATH + 64];
	co_memset(&dc, 0, sizeof(dc));
	dc.err = err;
	dc.errlen = errlen;
	dc.pid = co_agent.pid;
	dc.sig = co_agent.sig;
	dc.stdio = co_agent.table ? co_agent.table->stdio : 0;
	dc.skip_fd[dc.nskip_fd++] = co_agent.sock;
	if (co_agent.table) {
		dc.skip_lo[dc.nskip] = (uint64_t)co_agent.table;
		dc.skip_hi[dc.nskip++] = (uint64_t)co_agent.table + CO_PAGE_ALIGN(sizeof(struct co_table));
	}
	dc.agent_info = (uint64_t)&co_agent.resume;
	static struct co_siginfo shared[2 * CO_MAX_PENDING];
	dc.pending = shared;
	dc.npending = co_signals_collect(shared, 2 * CO_MAX_PENDING, co_agent.sig, 0);
	int here;
	dc.vol[dc.nvol++] = (uint64_t)&here; /* the manager's stack */
	dc.vol[dc.nvol++] = (uint64_t)&data_marker;
	dc.vol[dc.nvol++] = (uint64_t)&co_agent;
	dc.vol[dc.nvol++] = (uint64_t)wbuf;
	dc.vol[dc.nvol++] = (uint64_t)&dc;

	/* look at everything before writing anything: an unsupported object fails early */
	if (co_files_collect(&dc) || co_mem_collect(&dc))
		return -1;

	co_fmt(path, sizeof(path), "%s/proc-%d.img", dir, dc.pid);
	int fd = (int)co_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return co_err(err, errlen, "pid %d: cannot create %s (errno %d)", dc.pid, path, -fd);
	dc.skip_fd[dc.nskip_fd++] = fd;
	co_w_init(&writer, fd, wbuf, sizeof(wbuf));
	dc.w = &writer;

	struct co_head h;
	co_memset(&h, 0, sizeof(h));
	co_strlcpy(h.magic, CO_IMG_MAGIC, sizeof(h.magic));
	h.version = CO_IMG_VERSION;
	h.kind = CO_KIND_PROCESS;
	struct co_timespec ts;
	co_clock_gettime(CLOCK_REALTIME, &ts);
	h.created_ns = (uint64_t)ts.sec * 1000000000ULL + (uint64_t)ts.nsec;
	co_w_rec(&writer, CO_R_HEAD, &h, sizeof(h));

	for (int i = 0; i < co_agent.nthreads; i++)
		trecs[i] = &co_agent.threads[i].rec;
	int r = co_proc_dump(&dc, co_agent.nthreads) || co_threads_dump(&dc, trecs, co_agent.nthreads) ||
		co_files_dump(&dc) || co_mem_dump_vmas(&dc) || co_mem_dump_pages(&dc);
	if (!r) {
		struct co_end end = { writer.seq + 1, dc.page_bytes };
		co_w_rec(&writer, CO_R_END, &end, sizeof(end));
		if (co_w_flush(&writer))
			r = co_err(err, errlen, "pid %d: writing %s failed (errno %d)", dc.pid, path, -writer.err);
	}
	co_close(fd);
	if (r) {
		co_unlink(path);
		return -1;
	}
	*bytes = writer.off;
	return 0;
}
