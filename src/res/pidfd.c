/*
 * pidfd.c - pidfds (pidfd_open, clone's CLONE_PIDFD, PIDFD_THREAD) of
 * processes of the group.  The kernel names one "anon_inode:[pidfd]"
 * (with pidfs too, whose inodes have no file type) and tells in its
 * fdinfo ("Pid:") which process it refers to, in the pid namespace of the
 * /proc read: the group's, in which every process comes back with its
 * pid.  So a pidfd is recorded as that pid with its flags
 * (PIDFD_NONBLOCK, PIDFD_THREAD) and opened again with pidfd_open once
 * the process exists at the restart.  A pidfd of a process outside the
 * group (pid 0 there), or of one that has ended and been waited for (-1),
 * cannot be made again: refused.
 */
#include <errno.h>
#include <fcntl.h>
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#define CO_PIDFD_THREAD O_EXCL	/* Linux 6.9 */

#ifndef COHORT_RESTORER
/* Is tid a thread-group leader (a process), as its /proc status says? */
static int is_leader(int tid)
{
	char path[64], buf[4096];
	co_fmt(path, sizeof(path), "/proc/%d/status", tid);
	return co_read_small(path, buf, sizeof(buf)) > 0 && co_status_field(buf, "Tgid") == tid;
}

int co_pidfd_describe(struct co_dumpctx *d, struct co_fd *f)
{
	int pid = 0;
	if (co_fdinfo_pidfd(f->fd, &pid) < 0)
		return DERR(d, "pid %d: fd %d: cannot read which process its pidfd refers to", d->pid, f->fd);
	if (pid == 0)
		return DERR(d, "pid %d: fd %d: a pidfd of a process outside the group, which cohort cannot restore",
			    d->pid, f->fd);
	if (pid < 0)
		return DERR(d, "pid %d: fd %d: a pidfd of a process that has ended and been waited for, which cohort "
			    "cannot restore", d->pid, f->fd);
	/* the restorer opens them before its own threads exist, and other processes' threads come last */
	if ((f->flags & CO_PIDFD_THREAD) && !is_leader(pid))
		return DERR(d, "pid %d: fd %d: a pidfd of thread %d (PIDFD_THREAD), which cohort cannot restore yet",
			    d->pid, f->fd, pid);
	f->kind = CO_FD_PIDFD;
	f->same_as = pid;
	return 0;
}
#else /* the restorer */

#define CO_MAX_PIDFDS 256
static struct {
	int32_t fd, pid;
	uint32_t flags, cloexec;
} later[CO_MAX_PIDFDS];
static int nlater;

int co_pidfd_later(struct co_rstctx *rc, const struct co_fd *f)
{
	if (nlater == CO_MAX_PIDFDS)
		return co_err(rc->err, rc->errlen, "pid %d: fd %d: more than %d pidfds", rc->proc->pid, f->fd,
			      CO_MAX_PIDFDS);
	later[nlater++] = (typeof(later[0])){ f->fd, f->same_as, f->flags, f->cloexec };
	return 0;
}

void co_pidfds_forget(void)
{
	nlater = 0;
}

/*
 * Each pidfd opened again and put on its number.  The process it refers
 * to is made by its parent's restorer, which may not have come to it yet:
 * waited for, up to 5 s (no restorer waits for another to finish).
 */
int co_pidfds_restore(struct co_rstctx *rc)
{
	for (int i = 0; i < nlater; i++) {
		long fd = -ESRCH;
		for (int tries = 0; fd == -ESRCH && tries < 5000; tries++) {
			fd = co_sys2(SYS_pidfd_open, later[i].pid, later[i].flags & (O_NONBLOCK | CO_PIDFD_THREAD));
			if (fd == -ESRCH) {
				struct co_timespec ms = { 0, 1000000 };
				co_nanosleep(&ms);
			}
		}
		if (fd < 0)
			return co_err(rc->err, rc->errlen, "pid %d: fd %d: cannot open a pidfd of pid %d again (errno %ld%s)",
				      rc->proc->pid, later[i].fd, later[i].pid, -fd,
				      fd == -ESRCH ? ": it does not exist after the restart" : "");
		long r = fd == later[i].fd ? 0 : co_sys3(SYS_dup3, fd, later[i].fd, later[i].cloexec ? O_CLOEXEC : 0);
		if (fd != later[i].fd)
			co_close((int)fd);
		else
			co_fcntl((int)fd, F_SETFD, later[i].cloexec ? FD_CLOEXEC : 0);
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: fd %d: cannot place its pidfd (errno %ld)",
				      rc->proc->pid, later[i].fd, -r);
	}
	return 0;
}
#endif
