/*
 * coord/hold_locks.c - a migration's stop and the group's file locks.
 *
 * A file both hosts share (NFS, or one filesystem seen by both) is locked
 * by the group here, parked, while its restore at the target takes the
 * same locks back: there they would fail ("another process holds the
 * file locked") until the group here has ended, which is only after the
 * target has said that every process is back.  So once the stop is
 * committed, and before a byte of it is sent, the coordinator lets go of
 * the group's flock(2) and OFD (F_OFD_SETLK) locks itself: they belong to
 * the open file description, which it reaches through a duplicate of the
 * member's descriptor (pidfd_getfd).  The target then takes them as the
 * restore reaches them.  Should the migration fail, they are taken back
 * here, through the same duplicates, before the group runs on; one that
 * somebody else took meanwhile cannot be, and the group, which would run
 * on believing it holds it, is ended instead (its generation is kept).
 *
 * POSIX (fcntl F_SETLK) locks belong to the process (its descriptor
 * table), and only a thread sharing the table can take or drop one: on
 * our word (POSIX_LOCKS) its agent's manager, which has a table of its
 * own, has one of the parked program threads do it (src/agent/quiesce.c,
 * co_agent.job; src/res/files.c, co_files_posix_set: the locks its last
 * image holds), let go at the stop and taken back the same way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "procfs.h"
#include "coord.h"

#define MAX_HELD 256

/* A lock let go: the duplicate of the descriptor it was held through, and what it was. */
static struct held {
	int dup;
	int pid, fd;		/* the member's, for messages */
	struct co_lock l;
} H[MAX_HELD];
static int nheld;

/* The lock l (of the open file description dup refers to) taken (or let go: unlock), without waiting. */
static int set_lock(int dup, const struct co_lock *l, int unlock)
{
	if (l->kind == CO_LK_FLOCK)
		return flock(dup, unlock ? LOCK_UN : (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB);
	struct flock fl = { .l_type = unlock ? F_UNLCK : l->write ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET,
			    .l_start = (off_t)l->start, .l_len = (off_t)l->len };
	return fcntl(dup, F_OFD_SETLK, &fl);
}

struct each_fd {
	const struct conn *c;
	int stop;		/* no room left: the rest stay as they are */
};

/* Each flock and OFD lock held through descriptor fd of member a->c: let go, remembered. */
static int drop_fd(int fd, void *arg)
{
	struct each_fd *a = arg;
	struct co_lock l[16];
	uint64_t pos;
	uint32_t flags;
	int n = 0;
	const char *other = NULL;
	if (co_fdinfo_locks(a->c->host_pid, fd, &pos, &flags, l, 16, &n, &other) < 0)
		return 0; /* closed meanwhile, or a lease: the restore says what it cannot take */
	for (int i = 0; i < n; i++) {
		if (l[i].kind != CO_LK_FLOCK && l[i].kind != CO_LK_OFD)
			continue;
		if (nheld == MAX_HELD)
			return a->stop = 1;
		int dup = (int)syscall(SYS_pidfd_getfd, a->c->pidfd, fd, 0);
		if (dup < 0)
			continue;
		fcntl(dup, F_SETFD, FD_CLOEXEC);
		if (set_lock(dup, &l[i], 1) < 0) {
			close(dup);
			continue;
		}
		H[nheld++] = (struct held){ dup, a->c->pid, fd, l[i] };
	}
	return 0;
}

/*
 * Member c's POSIX locks let go (take 0) or taken back (1), by its agent's
 * manager (the group is parked): 0, or -errno with what failed in err
 * (-ETIMEDOUT: no answer within a second).
 */
static int posix_locks(struct conn *c, int take, char *err, size_t errlen)
{
	static struct co_msgbuf mb;
	if (co_send(c->fd, CO_M_POSIX_LOCKS, 0, take, 0, NULL, -1))
		return -EPIPE;
	struct pollfd p = { c->fd, POLLIN, 0 };
	if (poll(&p, 1, 1000) != 1 || co_recv(c->fd, &mb, NULL) || mb.m.type != CO_M_POSIX_LOCKS) {
		if (err)
			snprintf(err, errlen, "its agent did not answer");
		return -ETIMEDOUT;
	}
	if (mb.m.a && err)
		snprintf(err, errlen, "%s", mb.text);
	return (int)mb.m.a;
}

/*
 * Whose descriptors to look through: each member said with its image how
 * many flock and OFD locks its descriptors hold (DONE; its agent read
 * them from fdinfo, where a lock shows on every descriptor of its open
 * file description, whoever took it: a parent that has ended, or this
 * coordinator after a migration that failed).  Only those members' fdinfo
 * is read here.  /proc/locks would name them too, but reading it waits
 * for an RCU grace period (its lock is taken for writing): 10-20 ms of
 * the stop on this machine.
 */
void hold_locks_drop(void)
{
	nheld = 0;
	for (int i = 0; i < G.nc; i++) {
		const struct conn *c = &G.c[i];
		if (c->kind != C_MEMBER || !c->part || c->flocks <= 0 || c->pidfd < 0 || c->host_pid <= 0)
			continue;
		struct each_fd a = { c, 0 };
		co_each_fd(c->host_pid, drop_fd, &a);
		if (a.stop)
			break;
	}
	if (nheld)
		co_trace("hold: %d flock and OFD locks let go for the target", nheld);
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		c->posix_let_go = 0;
		if (c->kind == C_MEMBER && c->part && c->posix_locks > 0 && c->fd >= 0)
			c->posix_let_go = posix_locks(c, 0, NULL, 0) == 0;
	}
}

/* The duplicates the flock and OFD locks were let go through, closed. */
static void forget_flocks(void)
{
	for (int i = 0; i < nheld; i++)
		close(H[i].dup);
	nheld = 0;
}

/* 10 ms more, while end (CLOCK_MONOTONIC) has not come: 1, else 0. */
static int a_moment_more(uint64_t end)
{
	if (co_now_ns(CLOCK_MONOTONIC) >= end)
		return 0;
	struct timespec ms = { 0, 10 * 1000000 };
	nanosleep(&ms, NULL);
	return 1;
}

/* How long a lock may stay taken when the group is to run on here: the target's group dies first. */
static int retake_ms(void)
{
	const char *v = getenv("COHORT_LOCK_RETAKE_MS"); /* tests only */
	return v && *v ? atoi(v) : 10000;
}

int hold_locks_retake(char *err, size_t errlen)
{
	uint64_t end = co_now_ns(CLOCK_MONOTONIC) + (uint64_t)retake_ms() * 1000000ULL;
	for (int i = 0; i < nheld; i++) {
		while (set_lock(H[i].dup, &H[i].l, 0) < 0) {
			if ((errno != EAGAIN && errno != EWOULDBLOCK) || !a_moment_more(end)) {
				char file[PATH_MAX] = "?", link[64];
				snprintf(link, sizeof(link), "/proc/self/fd/%d", H[i].dup);
				ssize_t k = readlink(link, file, sizeof(file) - 1);
				file[k > 0 ? k : 1] = 0;
				snprintf(err, errlen, "pid %d, fd %d: its %s lock on %s was taken by another process while "
					 "it migrated, and could not be taken back (%s)", H[i].pid, H[i].fd,
					 H[i].l.kind == CO_LK_FLOCK ? "flock" : "OFD", file, strerror(errno));
				hold_locks_forget();
				return -1;
			}
		}
	}
	forget_flocks();
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		if (!c->posix_let_go)
			continue;
		char what[1100];
		int r;
		while (((r = posix_locks(c, 1, what, sizeof(what))) == -EAGAIN || r == -EACCES) && a_moment_more(end))
			;
		c->posix_let_go = 0;
		if (r)
			return snprintf(err, errlen, "pid %d, %s was taken by another process while it migrated, and "
					"could not be taken back (%s)", c->pid, what, strerror(-r)), -1;
	}
	return 0;
}

void hold_locks_forget(void)
{
	forget_flocks();
	for (int i = 0; i < G.nc; i++)
		G.c[i].posix_let_go = 0;
}
