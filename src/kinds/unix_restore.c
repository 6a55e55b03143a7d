/*
 * unix_restore.c - Unix sockets made again at a restart, in init, from
 * the records unix.c wrote in the order they must be made.  Alone:
 * socket, bind (unix_name.c), listen.  Pair: socketpair (the second end
 * waits for its own record).  Client: connect to the listener by its
 * name; accepted: accepted from it at once, so that only the backlog's
 * own connections are left in it.  Then its options (unix_opts.c), and
 * a send buffer big enough for the queues, which unix_queue.c puts back.
 * Once every record is read: the send buffers as they were, datagram
 * sockets connect to their peer's name, shut-down halves are shut down
 * again, names whose file had been removed are removed, the ends of
 * closed peers are closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "kinds/unix_int.h"

/* The second end of each pair made, until its own record comes; and the ends whose peer had closed. */
static struct {
	uint64_t id;
	int fd;
	int orphan;	/* the end of a closed peer: kept to send its data, closed once all is made */
} spare[CO_MAX_REFS];
static int nspare;

/* What waits until every record is read: a datagram connect, a shutdown, a name removed. */
static struct later {
	uint64_t id;
	uint64_t via;		/* the datagram peer to connect to, when in the group */
	int shared;		/* CO_USF_SHARED: base is its own link aside, by which it is reached */
	uint32_t shut, type;
	uint32_t peerlen;
	char peer[108];
	int dfd;		/* the directory of a name to remove, or -1 */
	char base[108];
} later[CO_MAX_REFS];
static int nlater;

int co_unix_orphan_end(uint64_t id)
{
	for (int i = 0; i < nspare; i++)
		if (spare[i].orphan && spare[i].id == id)
			return spare[i].fd;
	return -1;
}

/* One end of a pair: made with its peer, or the one made when the peer came first. */
static int pair_end(const struct co_usock *o, uint32_t type)
{
	for (int i = 0; i < nspare; i++)
		if (!spare[i].orphan && spare[i].id == o->id) {
			int f = spare[i].fd;
			spare[i] = spare[--nspare];
			return f;
		}
	int sv[2];
	if (nspare == CO_MAX_REFS || socketpair(AF_UNIX, (int)type | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	spare[nspare].id = o->peer ? o->peer : o->id;
	spare[nspare].orphan = !o->peer;
	spare[nspare++].fd = sv[1];
	if (!o->peer) /* it sends what its closed peer had sent, and is closed after */
		co_unix_raise_sndbuf(sv[1]);
	return sv[0];
}

socklen_t co_unix_address(uint64_t id, const char *name, uint32_t len, struct sockaddr_un *a)
{
	*a = (struct sockaddr_un){ .sun_family = AF_UNIX };
	for (int i = 0; id && i < nlater; i++)
		if (later[i].id == id && later[i].shared) {
			snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d/%s", later[i].dfd, later[i].base);
			return (socklen_t)SUN_LEN(a);
		}
	memcpy(a->sun_path, name, len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
}

/* s connected to the socket id of the group (0: outside), whose name is name. */
static int connect_to(int s, uint64_t id, const char *name, uint32_t len)
{
	struct sockaddr_un a;
	socklen_t l = co_unix_address(id, name, len, &a);
	return connect(s, (struct sockaddr *)&a, l);
}

/* A CO_R_USOCK: the socket made in its shape, bound, listening, connected. */
static int usock_restore(struct co_krestore *x, const struct co_usock *o)
{
	char t[160];
	int s = -1, one = 1;
	co_unix_name_text(o->name, o->namelen, t, sizeof(t));
	if (o->namelen > sizeof(o->name) || o->peerlen > sizeof(o->peername) || nlater == CO_MAX_REFS)
		return co_kbad(x, "unix socket %llu: a name of %u bytes", (unsigned long long)o->id, o->namelen);
	if (o->how == CO_US_ALONE || o->how == CO_US_CONNECT)
		s = socket(AF_UNIX, (int)o->type | SOCK_CLOEXEC, 0);
	else if (o->how == CO_US_PAIR)
		s = pair_end(o, o->type);
	else if (o->how == CO_US_ACCEPT && (s = co_made_fd(x, CO_OBJ_USOCK, o->via, 0)) >= 0)
		s = accept4(s, NULL, NULL, SOCK_CLOEXEC); /* the connection its client just made */
	else if (o->how != CO_US_ACCEPT)
		return co_kbad(x, "unix socket %llu: unknown shape %u", (unsigned long long)o->id, o->how);
	struct later *l = &later[nlater];
	*l = (struct later){ .id = o->id, .via = o->via, .shared = (o->flags & CO_USF_SHARED) != 0, .shut = o->shut,
			     .type = o->type, .dfd = -1 };
	if (s < 0)
		return co_kerr(x, "recreating the Unix socket %llu (%s): %s", (unsigned long long)o->id, t, strerror(errno));
	if ((o->flags & CO_USF_PASSCRED) && setsockopt(s, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
		goto sys;
	/* the program's peek offset: the queue comes back as it was, so the offset means the same bytes */
	if ((o->flags & CO_USF_PEEKOFF) && setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &o->peek_off, sizeof(o->peek_off)) < 0)
		goto sys;
	if (o->how != CO_US_ACCEPT && o->namelen && !(o->flags & CO_USF_NONAME) &&
	    co_unix_bind(x, s, o, &l->dfd, l->base, sizeof(l->base)) < 0) {
		close(s);
		return -1;
	}
	if (o->state == ST_LISTEN && listen(s, (int)o->backlog) < 0)
		goto sys;
	if (o->peerlen && o->type != SOCK_DGRAM && connect_to(s, o->via, o->peername, o->peerlen) < 0) {
		co_kerr(x, "connecting the Unix socket %llu again to %s: %s", (unsigned long long)o->id,
			co_unix_name_text(o->peername, o->peerlen, t, sizeof(t)), strerror(errno));
		close(s);
		return -1;
	}
	if (o->type == SOCK_DGRAM && o->peerlen && o->how != CO_US_PAIR) {
		l->peerlen = o->peerlen;
		memcpy(l->peer, o->peername, o->peerlen);
	}
	/* its options once it is connected (a client's SO_SNDTIMEO would bound its connect), before its queue */
	if (co_unix_opts_set(x, s, o) < 0 || co_unix_refill_begin(x, s, o->id) < 0) {
		if (l->dfd >= 0)
			close(l->dfd);
		close(s);
		return -1;
	}
	if (l->dfd >= 0 || l->peerlen || l->shut || l->shared)
		nlater++;
	fcntl(s, F_SETFL, (int)(o->fflags & CO_FL_STATUS));
	return co_made_add(x, CO_OBJ_USOCK, o->id, s, -1, o->peer);
sys:
	co_kerr(x, "recreating the Unix socket %llu (%s): %s", (unsigned long long)o->id, t, strerror(errno));
	close(s);
	return -1;
}

/* Images before CO_R_USOCK: a socket pair (co_sobj: a type, b the peer), and its data (u64 id, bytes). */
static int old_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	if (type == CO_R_SOCKDATA) {
		uint64_t id;
		memcpy(&id, p, 8);
		/* bytes queued for socket id were sent by its peer: send them again from there */
		int peer = co_made_fd(x, CO_OBJ_USOCK, co_made_peer(x, CO_OBJ_USOCK, id), 0);
		ssize_t n = peer < 0 ? -1 : send(peer, (const char *)p + 8, len - 8, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0 && n != (ssize_t)(len - 8)) /* errno is not set by a short send */
			return co_kerr(x, "cannot put back data queued on a Unix socket: sent %zd of %llu bytes", n,
				       (unsigned long long)(len - 8));
		if (n < 0)
			return co_kerr(x, "cannot put back data queued on a Unix socket: %s",
				       peer < 0 ? "no peer to send it" : strerror(errno));
		return 0;
	}
	const struct co_sobj *so = p;
	struct co_usock o = { .id = so->id, .peer = so->b };
	return co_sobj_made(x, so, pair_end(&o, (uint32_t)so->a));
}

int co_unix_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	if (type == CO_R_USOCK)
		return usock_restore(x, p);
	if (type == CO_R_USMSG)
		return co_unix_restore_msg(x, p, len);
	return old_restore(x, type, p, len);
}

/* Once every socket and its queue are back: datagram connects, shutdowns, removed names; spares closed. */
int co_unix_restore_done(struct co_krestore *x)
{
	char t[160];
	int bad = co_unix_refill_end(x); /* every queue is back: the send buffers as they were */
	for (int i = 0; i < nlater && !bad; i++) {
		struct later *l = &later[i];
		int s = co_made_fd(x, CO_OBJ_USOCK, l->id, 0);
		if (l->peerlen && connect_to(s, l->via, l->peer, l->peerlen) < 0)
			bad = co_kerr(x, "connecting the Unix socket %llu again to %s: %s", (unsigned long long)l->id,
				      co_unix_name_text(l->peer, l->peerlen, t, sizeof(t)), strerror(errno));
		int how = (l->shut & 3) == 3 ? SHUT_RDWR : l->shut & 1 ? SHUT_RD : SHUT_WR;
		if (!bad && (l->shut & 3) && shutdown(s, how) < 0)
			bad = co_kerr(x, "shutting the Unix socket %llu down again: %s", (unsigned long long)l->id, strerror(errno));
	}
	for (int i = 0; i < nlater; i++) {
		struct later *l = &later[i];
		struct stat st;
		if (l->dfd >= 0 && fstatat(l->dfd, l->base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode))
			unlinkat(l->dfd, l->base, 0);
		if (l->dfd >= 0)
			close(l->dfd);
	}
	nlater = 0;
	int missing = 0;
	for (int i = 0; i < nspare; i++) {
		missing |= !spare[i].orphan;
		close(spare[i].fd);
	}
	nspare = 0;
	co_unix_msg_done();
	if (!bad && missing)
		bad = co_kerr(x, "recreating the group's shared objects: a Unix socket pair whose other end is missing");
	return bad;
}
