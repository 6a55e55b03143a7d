/*
 * dirty_method.c - which way of tracking written pages this kernel offers
 * (co_dirty_method), and which memory is tracked (co_dirty_trackable): the
 * agent's choice, and what the coordinator shows (status) and pre-copies
 * (precopy.c), which is why the CLI links this file alone of dirty*.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include "dirty_int.h"
#include "sys.h"

static int method = -1;

/* Can this kernel do asynchronous write-protection? */
int co_dirty_uffd_open(void)
{
	int fd = (int)co_sys1(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	/*
	 * Without CAP_SYS_PTRACE (a process that changed its uid) and with
	 * vm.unprivileged_userfaultfd 0, only one that leaves the kernel's own
	 * faults alone may be had; asynchronous write-protection never passes
	 * a fault on, so it works the same.
	 */
	if (fd == -EPERM)
		fd = (int)co_sys1(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */);
	if (fd < 0)
		return -1;
	struct uffd_api api = { 0xAA, CO_UFFD_FEATURE_WP_ASYNC, 0 };
	if (co_sys3(SYS_ioctl, fd, CO_UFFDIO_API, (long)&api) < 0) {
		co_close(fd);
		return -1;
	}
	/* keep it far above the program's descriptors */
	return co_fd_high(fd);
}

int co_dirty_method(void)
{
	if (method >= 0)
		return method;
	/* COHORT_DIRTY=page-hash|none picks a method (tests, or a kernel whose uffd-wp misbehaves) */
	const char *want = getenv("COHORT_DIRTY");
	if (want && !co_strcmp(want, "page-hash"))
		return method = CO_DIRTY_HASH;
	if (want && !co_strcmp(want, "none"))
		return method = CO_DIRTY_NONE;
	int fd = co_dirty_uffd_open();
	int pm = co_proc_self_open("pagemap");
	/* PAGEMAP_SCAN with no output is a cheap probe of the ioctl itself */
	struct pm_scan_arg a = { .size = sizeof(a), .start = 0, .end = 0 };
	int scan = pm >= 0 && co_sys3(SYS_ioctl, pm, CO_PAGEMAP_SCAN, (long)&a) >= 0;
	/* without write-protection, compare page hashes: it costs reading every page at each image */
	method = fd >= 0 && scan ? CO_DIRTY_UFFD_WP : CO_DIRTY_HASH;
	if (fd >= 0)
		co_close(fd);
	if (pm >= 0)
		co_close(pm);
	return method;
}

const char *co_dirty_name(int m)
{
	return m == CO_DIRTY_UFFD_WP ? "uffd-wp" : m == CO_DIRTY_HASH ? "page-hash" : "none";
}

/* Private, writable-by-copy memory: its pages go into the image. */
int co_dirty_private_kind(const struct co_mapent *e)
{
	if (e->shared || co_strcmp(e->path, "[vsyscall]") == 0)
		return 0;
	if (e->path[0] == '[')
		return co_startswith(e->path, "[heap]") || co_startswith(e->path, "[stack") ||
		       co_startswith(e->path, "[anon:");
	return 1;
}

/*
 * Private memory whose writes are tracked.  Not PROT_NONE: nothing can
 * write there, and write-protecting it would fill its page tables with
 * uffd-wp markers, one per page (V8 reserves a GiB of address space so:
 * 2 MiB of page tables, 25 ms per GiB to protect, and more for every
 * snapshot fork to walk).  Such a region is registered without being
 * protected (see register_only); a part of it made accessible later is a
 * region not tracked yet, saved whole at the next image and tracked from
 * there.  A tracked region made PROT_NONE is saved whole while it is.
 */
int co_dirty_trackable(const struct co_mapent *e)
{
	return e->prot && co_dirty_private_kind(e);
}

