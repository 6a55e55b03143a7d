/*
 * mirror.c - the program's descriptors, seen from the manager's table.
 *
 * The manager has a descriptor table of its own (CLOSE_RANGE_UNSHARE).
 * With every thread of the program parked it copies the program's
 * descriptors into it at their own numbers, so that the image is described
 * and written from there as if it were the program's table, and a
 * snapshot forked from the manager inherits them.  The program's table is
 * never touched.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>

#include "agent.h"
#include "procfs.h"
#include "sys.h"
#include "util.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

static int self_pidfd = -1;	/* ours, to copy the program's descriptors */

static int prog_fd[CO_MAX_FDS], nprog_fd;

static int is_prog_fd(int fd)
{
	int lo = 0, hi = nprog_fd;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (prog_fd[mid] < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nprog_fd && prog_fd[lo] == fd;
}

/*
 * The program's descriptors at their own numbers (pidfd_getfd on
 * ourselves, close-on-exec as the program has it), once the manager's own
 * (own, and the pidfd) are moved to numbers the program does not use.
 */
int co_mirror_program_fds(int *const *own, int nown, char *errbuf, size_t errlen)
{
	nprog_fd = 0;
	int d = (int)co_open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (d < 0)
		return co_err(errbuf, errlen, "pid %d: cannot list /proc/self/fd (errno %d)", co_agent.pid, -d);
	int n = co_dir_numbers(d, prog_fd, CO_MAX_FDS);
	co_close(d);
	if (n < 0)
		return n == -E2BIG ? co_err(errbuf, errlen, "pid %d: more than %d descriptors", co_agent.pid, CO_MAX_FDS)
				   : co_err(errbuf, errlen, "pid %d: cannot list /proc/self/fd (errno %d)",
					    co_agent.pid, -n);
	nprog_fd = n;
	self_pidfd = (int)co_sys2(SYS_pidfd_open, co_agent.pid, 0);
	if (self_pidfd < 0)
		return co_err(errbuf, errlen, "pid %d: pidfd_open failed (errno %d)", co_agent.pid, -self_pidfd);
	int *all[CO_MIRROR_OWN + 1] = { &self_pidfd };
	int nall = 1;
	for (int k = 0; k < nown && nall < CO_MIRROR_OWN + 1; k++)
		all[nall++] = own[k];
	for (int k = 0; k < nall; k++) {
		if (*all[k] < 0 || !is_prog_fd(*all[k]))
			continue;
		int to = 3;
		while (is_prog_fd(to) || co_fcntl(to, F_GETFD, 0) != -EBADF)
			to++;
		long r = co_sys3(SYS_dup3, *all[k], to, O_CLOEXEC);
		if (r < 0)
			return co_err(errbuf, errlen, "pid %d: no descriptor number free beside the program's (errno %ld)",
				      co_agent.pid, -r);
		co_close(*all[k]);
		*all[k] = to;
	}
	for (int i = 0; i < nprog_fd; i++) {
		int fd = prog_fd[i];
		uint64_t pos;
		uint32_t flags = 0;
		co_fdinfo(0, fd, &pos, &flags);
		long t = co_sys3(SYS_pidfd_getfd, self_pidfd, fd, 0);
		if (t < 0) {
			nprog_fd = i;
			return co_err(errbuf, errlen, "pid %d: fd %d: cannot take a look at it (pidfd_getfd: errno %ld)",
				      co_agent.pid, fd, -t);
		}
		if (t != fd) {
			long r = co_sys3(SYS_dup3, t, fd, flags & O_CLOEXEC);
			co_close((int)t);
			if (r < 0) {
				nprog_fd = i;
				return co_err(errbuf, errlen, "pid %d: fd %d: cannot take a look at it (errno %ld)",
					      co_agent.pid, fd, -r);
			}
		} else if (!(flags & O_CLOEXEC)) {
			co_fcntl(fd, F_SETFD, 0);
		}
	}
	return 0;
}

/* The manager's copies of the program's descriptors go (a snapshot process keeps its own). */
void co_unmirror_program_fds(void)
{
	for (int i = 0; i < nprog_fd; i++)
		co_close(prog_fd[i]);
	nprog_fd = 0;
	if (self_pidfd >= 0)
		co_close(self_pidfd);
	self_pidfd = -1;
}

int co_mirror_pidfd(void)
{
	return self_pidfd;
}

void co_mirror_forget(void)
{
	nprog_fd = 0;
	self_pidfd = -1;
}
