/*
 * unix.c - Unix socket pairs whose both ends are in the group: one object
 * per socket inode, its peer named by its inode (sock_diag).  Dump: the
 * type and the peer; once every object is written, the data queued on
 * each socket (peeked in order, without taking it).  Restore: the pair is
 * made with socketpair(2) when its first end comes, the second end waits
 * for its own record; queued data is sent again from the peer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "kinds/kinds.h"

struct upeer {
	uint32_t ino, peer, state;
	int named;
};
static struct upeer upeers[CO_MAX_REFS];
static int nupeers = -1;	/* -1: not listed yet in this dump */

/* Every Unix socket's peer and name, from the kernel's sock_diag. */
static int unix_peers(void)
{
	int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s < 0)
		return -1;
	struct {
		struct nlmsghdr nh;
		struct unix_diag_req r;
	} req = { { sizeof(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0 },
		  { .sdiag_family = AF_UNIX, .udiag_states = ~0U, .udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_NAME } };
	if (send(s, &req, sizeof(req), 0) < 0) {
		close(s);
		return -1;
	}
	static char buf[65536];
	nupeers = 0;
	for (;;) {
		ssize_t n = recv(s, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				close(s);
				return 0;
			}
			struct unix_diag_msg *m = NLMSG_DATA(h);
			if (nupeers == CO_MAX_REFS)
				continue;
			struct upeer *u = &upeers[nupeers++];
			memset(u, 0, sizeof(*u));
			u->ino = m->udiag_ino;
			u->state = m->udiag_state;
			int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
				if (a->rta_type == UNIX_DIAG_PEER)
					memcpy(&u->peer, RTA_DATA(a), sizeof(u->peer));
				else if (a->rta_type == UNIX_DIAG_NAME)
					u->named = 1;
			}
		}
	}
	close(s);
	return 0;
}

static struct upeer *upeer_of(uint64_t ino)
{
	for (int i = 0; i < nupeers; i++)
		if (upeers[i].ino == ino)
			return &upeers[i];
	return NULL;
}

static int unix_dump(struct co_kdump *d, int first, uint64_t *id)
{
	const struct co_ref *r = &d->refs[first];
	/* the kernel's list, once per dump: the first socket is the first object of its kind */
	int listed = 0;
	for (int k = 0; k < first && !listed; k++)
		listed = d->refs[k].kind == CO_OBJ_USOCK;
	if (!listed && unix_peers() < 0) {
		snprintf(d->err, d->errlen, "cannot list Unix sockets (sock_diag)");
		return -1;
	}
	struct upeer *u = upeer_of(r->ino), *p = u ? upeer_of(u->peer) : NULL;
	int in_group = 0;
	for (int k = 0; p && k < d->nrefs && !in_group; k++)
		in_group = d->refs[k].kind == CO_OBJ_USOCK && d->refs[k].ino == p->ino;
	if (!u || u->named || !u->peer || !in_group) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: unsupported descriptor kind socket (a Unix socket that is %s)",
			 r->pid, r->fd,
			 !u ? "unknown to the kernel" : u->named ? "bound to a name" :
			 !u->peer ? "not connected" : "connected outside the group");
		return -1;
	}
	int s = co_ref_grab(r), type = 0;
	socklen_t l = sizeof(type);
	if (s < 0 || getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &l) < 0) {
		if (s >= 0)
			close(s);
		snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read %s", r->pid, r->fd, r->path);
		return -1;
	}
	close(s);
	struct co_sobj o = { .kind = CO_OBJ_USOCK, .id = r->ino, .a = (uint64_t)type, .b = u->peer };
	*id = o.id;
	return co_sobj_write(d, first, &o);
}

/* Queued data a socket will read: peeked in order, without taking it; -2: descriptors in flight. */
static int write_sockdata(struct co_writer *w, const struct co_ref *r)
{
	int s = co_ref_grab(r);
	if (s < 0)
		return -1;
	int zero = 0, off = -1;
	static char buf[1 << 17];
	setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero));
	int ret = 0;
	for (;;) {
		/* with room for ancillary data: descriptors in flight must not be dropped unseen */
		char cbuf[CMSG_SPACE(64 * sizeof(int))];
		struct iovec iov = { buf + 8, sizeof(buf) - 8 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(s, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n <= 0)
			break;
		int passed = (mh.msg_flags & MSG_CTRUNC) != 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				/* peeking gave us copies of them: not ours to keep */
				int *fds = (int *)CMSG_DATA(c);
				for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++)
					close(fds[k]);
				passed = 1;
			}
		if (passed) {
			ret = -2;
			break;
		}
		memcpy(buf, &r->ino, 8);
		co_w_rec(w, CO_R_SOCKDATA, buf, (uint64_t)n + 8);
	}
	setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	close(s);
	return ret;
}

/* Data in flight, once both ends of every socket exist. */
static int unix_dump_data(struct co_kdump *d, int first, uint64_t id)
{
	(void)id;
	const struct co_ref *r = &d->refs[first];
	int e = write_sockdata(d->w, r);
	if (e == -2)
		snprintf(d->err, d->errlen,
			 "pid %d: fd %d: the Unix socket %s has descriptors in flight (SCM_RIGHTS), which "
			 "cohort cannot checkpoint yet",
			 r->pid, r->fd, r->path);
	else if (e < 0)
		snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read queued data", r->pid, r->fd);
	return e < 0 ? -1 : d->w->err;
}

/* The second end of each pair made, until its own record comes: (peer's id, descriptor). */
static struct {
	uint64_t id;
	int fd;
} spare[CO_MAX_REFS];
static int nspare;

static int unix_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	if (type == CO_R_SOCKDATA) {
		uint64_t id;
		memcpy(&id, p, 8);
		/* bytes queued for socket id were sent by its peer: send them again from there */
		uint64_t peer_id = co_made_peer(x, CO_OBJ_USOCK, id);
		int peer = co_made_fd(x, CO_OBJ_USOCK, peer_id, 0);
		if (peer < 0 || send(peer, (const char *)p + 8, len - 8, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)(len - 8))
			return co_kerr(x, "cannot put back data queued on a Unix socket: %s", strerror(errno));
		return 0;
	}
	const struct co_sobj *o = p;
	int f = -1;
	for (int i = 0; i < nspare && f < 0; i++)
		if (spare[i].id == o->id) {
			f = spare[i].fd;
			spare[i] = spare[--nspare];
		}
	if (f < 0) {
		int sv[2];
		if (nspare == CO_MAX_REFS || socketpair(AF_UNIX, (int)o->a, 0, sv) < 0)
			return co_sobj_made(x, o, -1);
		f = sv[0];
		spare[nspare].id = o->b;
		spare[nspare++].fd = sv[1];
	}
	return co_sobj_made(x, o, f);
}

static void unix_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	if (type == CO_R_SOCKDATA) {
		uint64_t id;
		memcpy(&id, p, 8);
		snprintf(out, n, "socket %llu: %llu bytes queued", (unsigned long long)id, (unsigned long long)(len - 8));
		return;
	}
	const struct co_sobj *o = p;
	snprintf(out, n, "unix socket %llu: type %llu, peer %llu", (unsigned long long)o->id, (unsigned long long)o->a,
		 (unsigned long long)o->b);
}

const struct co_kind_ops co_unix_ops = {
	.kind = CO_OBJ_USOCK, .identity = CO_ID_INODE,
	.dump = unix_dump, .dump_data = unix_dump_data, .restore = unix_restore, .describe = unix_describe,
};
