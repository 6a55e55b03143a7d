/*
 * lazy.c - the restorer's side of a lazy restart (`cohort restart --lazy`):
 * the pages of a process's private anonymous regions are not read into
 * place; the regions are registered with a userfaultfd instead, and the
 * descriptor goes to a page filler outside the group (src/cli/filler.c, a
 * child of the coordinator), which answers the program's faults from the
 * image and fills the rest in the background.  The program never sees the
 * descriptor.
 *
 * Two userfaultfds, one after the other:
 *
 *   - the probe (co_lazy_begin), before any page is read: each candidate
 *     region is registered with it, so that a region the kernel will not
 *     register is known before its pages are passed over, and is read as
 *     without --lazy (eager).  It has no UFFD_FEATURE_EVENT_FORK, so the
 *     children this restorer forks from its memory (restorer.c,
 *     fork_children) get the regions unregistered: they see zeros where
 *     the pages are still to come, and read their own pages from their
 *     own image (pages.c compares with the parent's: no sharing there).
 *   - the filler's (co_lazy_handoff), once the children are made: with
 *     the events the filler needs to stay right as the program changes
 *     its memory (fork, mremap, MADV_DONTNEED, munmap).  The regions move
 *     from the probe to it, and it goes to the coordinator on a connection
 *     of its own (CO_M_LAZY, SCM_RIGHTS).  From the moment it is sent, a
 *     fault in a lazy region waits for the filler.
 *
 * Nothing between the two registrations touches a lazy page: the
 * restorer reads no page there and the program does not run yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>
#include <sys/mman.h>
#include <sys/un.h>
#include "proto.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#define LAZY_EVENTS (UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | \
		     UFFD_FEATURE_EVENT_UNMAP)

static uint8_t lazy[CO_MAX_VMAS];
static int probe = -1;

/*
 * A userfaultfd with these features, or -errno.  Not UFFD_USER_MODE_ONLY:
 * a fault the kernel takes on the program's behalf (read(2) into a page
 * still to come) must wait for the page too, not fail with EFAULT; where
 * only user-mode ones are allowed the restart is eager.
 */
static int new_uffd(const struct co_rstctx *rc, int slot, uint64_t features)
{
	long fd = co_uffd_new(O_CLOEXEC | O_NONBLOCK, features);
	if (fd < 0)
		return (int)fd;
	/* among the restorer's own descriptors, out of the program's way (restorer.c) */
	long hi = co_fcntl((int)fd, F_DUPFD_CLOEXEC, rc->fd_base + slot);
	co_close((int)fd);
	return (int)hi;
}

static int reg(int fd, const struct co_vma *v)
{
	struct uffdio_register r = { { v->start, v->end - v->start }, UFFDIO_REGISTER_MODE_MISSING, 0 };
	return co_sys3(SYS_ioctl, fd, UFFDIO_REGISTER, (long)&r) < 0 ? -1 : 0;
}

/*
 * May region i come lazily?  Private anonymous memory mapped anew (not
 * kept from the parent, whose pages pages.c compares), not the stack
 * that grows down (the kernel grows it under the registration, for
 * nothing) and not one that holds no page of the image.
 */
static int candidate(const struct co_rstctx *rc, int i, const uint8_t *kept)
{
	const struct co_vma *v = &rc->vmas[i];
	return !rc->lazy_none && co_vma_lazy_kind(v) && !kept[i];
}

int co_lazy_begin(struct co_rstctx *rc, const uint8_t *kept)
{
	rc->lazy = 0;
	rc->parent_left = 0;
	co_memset(lazy, 0, sizeof(lazy)); /* a forked child's copy says what its parent's regions were */
	if (probe >= 0) { /* a child forked by its restored parent: the parent's probe is not ours */
		co_close(probe);
		probe = -1;
	}
	if (!rc->want_lazy || rc->compressed)
		return 0;
	/*
	 * A migration's post-copy (want_lazy 2): the image lacks the pages of
	 * the regions the source took for lazy (src/cli/postcopy.c), which may
	 * not be read here: lazy, or the restore fails (and the migration with
	 * it, safely: the group resumes at the source).
	 */
	int must = rc->want_lazy == 2;
	/* the filler's features must be there too, else it could not keep the pages right */
	int check = new_uffd(rc, 24, LAZY_EVENTS);
	if (check < 0)
		return must ? co_err(rc->err, rc->errlen, "post-copy: no userfaultfd here (errno %d)", -check) : 0;
	co_close(check);
	probe = new_uffd(rc, 24, UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP);
	if (probe < 0)
		return must ? co_err(rc->err, rc->errlen, "post-copy: no userfaultfd here (errno %d)", -probe) : 0;
	int n = 0;
	for (int i = 0; i < rc->nvmas; i++) {
		int c = n < CO_LAZY_MAX_RANGES && candidate(rc, i, kept);
		lazy[i] = c && reg(probe, &rc->vmas[i]) == 0;
		if (c && !lazy[i] && must)
			return co_err(rc->err, rc->errlen, "post-copy: region %lx-%lx cannot be registered with a "
				      "userfaultfd, and its pages are not here", (unsigned long)rc->vmas[i].start,
				      (unsigned long)rc->vmas[i].end);
		n += lazy[i];
		rc->lazy |= lazy[i];
	}
	rc->lazy_vma = lazy;
	if (!rc->lazy) {
		co_close(probe);
		probe = -1;
	}
	return 0;
}

/* Connect to the coordinator's socket as ourselves (not with the program's file ids). */
static int connect_coordinator(struct co_rstctx *rc, const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	co_strlcpy(sa.sun_path, sock, sizeof(sa.sun_path));
	int fd = (int)co_sys3(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	long own = co_creds_files(&rc->ids, 0);
	long r = own ? own : co_sys3(SYS_connect, fd, (long)&sa, sizeof(sa));
	co_creds_files(&rc->ids, 1);
	if (r < 0) {
		co_close(fd);
		return (int)r;
	}
	return fd;
}

/*
 * The filler's userfaultfd, its lazy regions moved to it, to the
 * coordinator.  Without lazy regions, when pages were left to the parent
 * image (pages.c, parent_pages), it goes all the same, registered nowhere:
 * what the filler is for then is writing those pages before the program
 * runs.
 */
int co_lazy_handoff(struct co_rstctx *rc, const char *sock)
{
	if (!rc->lazy && !rc->parent_left)
		return 0;
	int fd = new_uffd(rc, 25, LAZY_EVENTS);
	if (fd < 0)
		return co_err(rc->err, rc->errlen, "lazy restore: cannot make the filler's userfaultfd (errno %d)", -fd);
	for (int i = 0; i < rc->nvmas; i++) {
		const struct co_vma *v = &rc->vmas[i];
		if (!lazy[i])
			continue;
		struct uffdio_range range = { v->start, v->end - v->start };
		co_sys3(SYS_ioctl, probe, UFFDIO_UNREGISTER, (long)&range);
		if (reg(fd, v))
			return co_err(rc->err, rc->errlen, "lazy restore: region %lx-%lx cannot be registered with the "
				      "filler's userfaultfd", (unsigned long)v->start, (unsigned long)v->end);
	}
	if (probe >= 0)
		co_close(probe);
	probe = -1;
	int s = connect_coordinator(rc, sock);
	if (s < 0) {
		co_close(fd);
		return co_err(rc->err, rc->errlen, "lazy restore: cannot connect to the coordinator at %s (errno %d)",
			      sock, -s);
	}
	/* the lazy regions (the filler brings pages there only), and the descriptor */
	static struct co_msgbuf out;
	uint64_t *ranges = (uint64_t *)(void *)out.text;
	uint32_t n = 0;
	for (int i = 0; i < rc->nvmas; i++)
		if (lazy[i]) {
			ranges[2 * n] = rc->vmas[i].start;
			ranges[2 * n + 1] = rc->vmas[i].end;
			n++;
		}
	out.m = (struct co_msg){ .type = CO_M_LAZY, .a = rc->proc->pid, .b = rc->proc->streams,
				 .textlen = n * 16 };
	struct iovec iov;
	struct msghdr mh;
	char cbuf[CO_FRAME_CBUF];
	/* from here the descriptor rides in the socket's queue: ours can go at once */
	co_frame(&mh, &iov, &out, sizeof(out.m) + n * 16, cbuf, &fd, 1);
	long r;
	do
		r = co_sys3(SYS_sendmsg, s, (long)&mh, MSG_NOSIGNAL);
	while (r == -EINTR);
	co_close(fd);
	/*
	 * Its answer: the filler runs, and checkpoints wait for it.  Before
	 * that the program must not run (its agent would register, and a
	 * checkpoint could begin with the descriptor still in the queue).  No
	 * answer (the coordinator refused it): the restore fails, rather than
	 * the kernel answering faults with zeros once the descriptor is gone.
	 */
	static struct co_msg ans;
	long got = 0;
	if (r >= 0)
		do
			got = co_read(s, &ans, sizeof(ans));
		while (got == -EINTR);
	co_close(s);
	if (r < 0)
		return co_err(rc->err, rc->errlen, "lazy restore: cannot hand the userfaultfd to the coordinator "
			      "(errno %ld)", -r);
	if (got < (long)sizeof(ans) || ans.type != CO_M_REPLY || ans.a)
		return co_err(rc->err, rc->errlen, "lazy restore: the coordinator did not take the userfaultfd");
	return 0;
}
