/*
 * ctl.c - the framing of the control socket, used by the coordinator, the
 * clients (checkpoint, status, kill, list) and, in C, by nobody else: the
 * agent speaks the same protocol with its own async-signal-safe code.
 *
 * The socket is SOCK_SEQPACKET, so a message arrives whole: a struct co_msg
 * and its text, with at most CO_MSG_FDS descriptors attached.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "cli.h"

int co_send(int fd, unsigned type, unsigned flags, int64_t a, int64_t b, const char *text, int passfd)
{
	return co_send_fds(fd, type, flags, a, b, text, &passfd, passfd >= 0 ? 1 : 0);
}

int co_send_fds(int fd, unsigned type, unsigned flags, int64_t a, int64_t b, const char *text, const int *fds,
		int nfds)
{
	static struct co_msgbuf mb;
	memset(&mb.m, 0, sizeof(mb.m));
	mb.m.type = type;
	mb.m.flags = flags;
	mb.m.a = a;
	mb.m.b = b;
	size_t n = text ? strlen(text) : 0;
	if (n >= sizeof(mb.text))
		n = sizeof(mb.text) - 1;
	memcpy(mb.text, text ? text : "", n);
	mb.m.textlen = (uint32_t)n;
	struct iovec iov;
	struct msghdr mh;
	char cbuf[CO_FRAME_CBUF];
	co_frame(&mh, &iov, &mb, sizeof(mb.m) + n, cbuf, fds, nfds);
	ssize_t r;
	do
		r = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : 0;
}

static void close_fd(int fd)
{
	close(fd);
}

int co_recv(int fd, struct co_msgbuf *mb, int *passfd)
{
	char cbuf[CO_FRAME_CBUF];
	struct iovec iov = { mb, sizeof(*mb) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t r;
	do
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < (ssize_t)sizeof(mb->m))
		return -1;
	size_t tl = mb->m.textlen < sizeof(mb->text) ? mb->m.textlen : sizeof(mb->text) - 1;
	if ((size_t)r < sizeof(mb->m) + tl)
		tl = (size_t)r - sizeof(mb->m);
	mb->text[tl] = 0;
	int got = -1;
	co_unframe_fds(&mh, &got, passfd ? 1 : 0, close_fd);
	if (passfd)
		*passfd = got;
	return 0;
}

static char untrusted[640]; /* why the last co_connect_group returned CO_UNTRUSTED */

const char *co_connect_why(void)
{
	return untrusted;
}

int co_run_root_check(char *why, size_t n)
{
	const char *root = co_run_root();
	struct stat st;
	if (lstat(root, &st) < 0)
		return errno == ENOENT ? 0 : (snprintf(why, n, "cannot look at the run directory %s: %s", root,
						       strerror(errno)), -1);
	if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode))
		return snprintf(why, n, "the run directory %s is %s, not a directory: refusing it", root,
				S_ISLNK(st.st_mode) ? "a symbolic link" : "a file"), -1;
	if (st.st_uid != geteuid())
		return snprintf(why, n, "the run directory %s belongs to uid %u, not to you: refusing it (set "
				"COHORT_RUN_DIR, or XDG_RUNTIME_DIR, to a directory of yours)", root,
				(unsigned)st.st_uid), -1;
	if (st.st_mode & 022)
		return snprintf(why, n, "the run directory %s is writable by others (%04o): refusing it", root,
				(unsigned)(st.st_mode & 07777)), -1;
	return 0;
}

/*
 * The peer must be our own uid or root: a socket another user put where
 * ours would be (a run directory made before us) must never hear our
 * requests, nor its replies be believed.
 */
static int peer_trusted(int fd, const char *path)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return snprintf(untrusted, sizeof(untrusted), "cannot tell who serves %s: %s", path, strerror(errno)),
		       0;
	if (cr.uid != geteuid() && cr.uid != 0)
		return snprintf(untrusted, sizeof(untrusted),
				"%s is served by uid %u (pid %d), not by you or root: refusing to talk to it", path,
				(unsigned)cr.uid, (int)cr.pid),
		       0;
	return 1;
}

int co_connect_group(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s/ctl.sock", co_run_root(), name) >=
	    sizeof(sa.sun_path))
		co_die("run directory path too long: %s", co_run_root());
	if (co_run_root_check(untrusted, sizeof(untrusted)))
		return CO_UNTRUSTED;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	if (!peer_trusted(fd, sa.sun_path)) {
		close(fd);
		return CO_UNTRUSTED;
	}
	return fd;
}

