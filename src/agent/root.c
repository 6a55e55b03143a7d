/*
 * root.c - a process whose root directory is not the group's (chroot).
 *
 * Inside a chroot the agent's paths may not exist: the group's socket,
 * /proc, and the kernel names files relative to the reader's root (d_path:
 * a file under the root as "/x", one outside it from the real root), which
 * an image cannot tell apart.  So the manager thread leaves the chroot for
 * the group's root before it does anything by path: a descriptor table of
 * its own it has already (CLOSE_RANGE_UNSHARE); unshare(CLONE_FS) gives it
 * a root and working directory of its own too, and setns(2) into its own
 * mount namespace (through a pidfd of its process: no /proc needed) sets
 * both to the namespace's root.  From there every path the image records
 * (maps, descriptors, working directory, exe) is absolute from the group's
 * root, the socket and /proc are where they always are, and the program's
 * threads keep their root.  The program's root itself is read once its
 * threads are parked (co_root_note), for the restorer to chroot to last.
 *
 * setns needs CAP_SYS_ADMIN and CAP_SYS_CHROOT: a process that chrooted
 * had the second; the coordinator refuses, before any signal, a chrooted
 * member without both (checkpoint.c, chrooted()).
 *
 * A process that is no manager (a forked child registering in fork(), a
 * program exec'd in the chroot with the agent reachable there) is alone
 * in its process, so it steps out the same way for a moment and back in
 * (co_root_out, co_root_back): fchdir to its old root and chroot(".")
 * give it the very root it had.  Raw system calls only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>

#include "agent.h"
#include "procfs.h"
#include "sys.h"
#include "util.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static int left;	/* the manager has left the program's root for the group's */

/* Set the calling thread's root and working directory to its mount namespace's root: 0 or -errno. */
static long to_ns_root(void)
{
	long pfd = co_sys2(SYS_pidfd_open, co_getpid(), 0);
	if (pfd < 0)
		return pfd;
	long r = co_sys2(SYS_setns, pfd, CLONE_NEWNS);
	co_close((int)pfd);
	return r;
}

int co_root_leave(void)
{
	if (left)
		return 0;
	long r = co_sys1(SYS_unshare, CLONE_FS);
	if (r == 0)
		r = to_ns_root();
	if (r < 0)
		return (int)r;
	left = 1;
	return 0;
}

void co_root_forget(void)
{
	left = 0;
}

/*
 * With the program parked, before the image is taken: its root directory
 * as the group sees it into root ("" when the manager never left: it is
 * the group's), and the manager's working directory and file-creation mask
 * made the program's (they were copied when it left: the program may have
 * changed them since), so that the image, and a snapshot forked from here
 * (whose /proc/self/cwd is its own), record those.  0, or -errno when they
 * cannot be read.
 */
int co_root_note(char *root, size_t n)
{
	root[0] = 0;
	if (!left)
		return 0;
	long l = co_readlink("/proc/self/root", root, n - 1);
	if (l < 0)
		return (int)l;
	root[l] = 0;
	char status[2048];
	long mask = co_read_small("/proc/self/status", status, sizeof(status)) > 0 ? co_status_umask(status) : -1;
	if (mask >= 0)
		co_umask((int)mask);
	int fd = (int)co_open("/proc/self/cwd", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	long r = co_sys1(SYS_fchdir, fd);
	co_close(fd);
	return (int)r;
}

int co_root_out(int back[2])
{
	back[0] = (int)co_open("/", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	back[1] = (int)co_open(".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	/* the way back is tried first, where it changes nothing (a seccomp filter may deny it) */
	long r = back[0] < 0 ? back[0] : back[1] < 0 ? back[1] : co_sys1(SYS_chroot, (long)"/");
	if (r == 0)
		r = co_sys1(SYS_fchdir, back[1]);
	if (r == 0)
		r = to_ns_root();
	if (r == 0)
		return 0;
	for (int i = 0; i < 2; i++)
		if (back[i] >= 0)
			co_close(back[i]);
	return (int)r;
}

void co_root_back(const int back[2])
{
	/* never run on outside the root the program chose */
	if (co_sys1(SYS_fchdir, back[0]) || co_sys1(SYS_chroot, (long)"."))
		co_exit_group(127);
	co_sys1(SYS_fchdir, back[1]);
	co_close(back[0]);
	co_close(back[1]);
}
