/*
 * unix.c - Unix sockets of every shape: one object per socket inode.
 *
 * Dump.  The kernel's sock_diag says of every Unix socket its type,
 * state, peer (by inode), name, socket file (UDIAG_SHOW_VFS), shutdown
 * state and, for a listener, the clients whose connections wait in its
 * backlog (UDIAG_SHOW_ICONS) in order.  The first Unix object of a dump
 * decides the shape of all of them (plan_one) and writes their records
 * (CO_R_USOCK) in the order a restart makes them: sockets made alone
 * (bound, listening, datagram), pairs, accepted connections (the client,
 * then the accepted end), the connections in each backlog in its order.
 * Their queues follow once every object exists (unix_queue.c).
 *
 * Restore (init): unix_restore.c.
 *
 * Refused in one line (process, descriptor, what): a stream connected
 * outside the group (unless `checkpoint --reconnect-outside`: connected
 * afresh to the peer's name at a restart), a socket connected to an
 * unnamed one outside, a connection from outside waiting in a backlog or
 * accepted from one, a name relative to a working directory, a backlog
 * connection with data queued in a live checkpoint when its listener's
 * socket file is gone, a socket filter attached (unix_opts.c).  A path
 * several sockets have comes back on each (share_names); an abstract one
 * on the first only.  Options: unix_opts.c.
 *
 * Backlogs.  Data queued on a connection waiting in a backlog can be read
 * only by accepting it: take_backlog accepts all of them (they become
 * objects of the dump whose clients connect again at a restart), and when
 * the group outlives the checkpoint (a live one; a --kill one that fails)
 * they go back behind markers that the agent's accept hands them out for
 * (unix_backlog.c, src/agent/accept.c); markers found in a backlog are
 * taken apart, so an image never holds one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>
#include "kinds/unix_int.h"
#include "proto.h"

/* ---- every Unix socket, as the kernel lists it ---- */

struct usk {
	uint32_t ino, peer, state, type, shut, rq, wq;
	uint32_t vfs_ino, vfs_dev;	/* its socket file (a path name) */
	uint32_t icon, nicons;		/* its backlog's clients: icons[icon ..] */
	uint32_t namelen;
	char name[108];
};
#define MAX_USK 65536
static struct usk usk[MAX_USK];
static int nusk;
static uint32_t icons[MAX_USK];
static int nicons;

static void usk_attr(struct usk *u, const struct rtattr *a)
{
	const void *v = RTA_DATA(a);
	size_t len = RTA_PAYLOAD(a);
	switch (a->rta_type) {
	case UNIX_DIAG_NAME:
		u->namelen = (uint32_t)(len < sizeof(u->name) ? len : sizeof(u->name));
		memcpy(u->name, v, u->namelen);
		break;
	case UNIX_DIAG_PEER:
		memcpy(&u->peer, v, 4);
		break;
	case UNIX_DIAG_VFS:
		memcpy(&u->vfs_ino, v, 4);
		memcpy(&u->vfs_dev, (const char *)v + 4, 4);
		break;
	case UNIX_DIAG_SHUTDOWN:
		u->shut = *(const uint8_t *)v;
		break;
	case UNIX_DIAG_RQLEN:
		memcpy(&u->rq, v, 4);
		memcpy(&u->wq, (const char *)v + 4, 4);
		break;
	case UNIX_DIAG_ICONS:
		u->icon = (uint32_t)nicons;
		for (size_t i = 0; i + 4 <= len && nicons < MAX_USK; i += 4, u->nicons++)
			memcpy(&icons[nicons++], (const char *)v + i, 4);
		break;
	}
}

/* The kernel's list, once per dump; 0, or -1. */
static int unix_list(void)
{
	int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s < 0)
		return -1;
	struct {
		struct nlmsghdr nh;
		struct unix_diag_req r;
	} req = { { sizeof(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0 },
		  { .sdiag_family = AF_UNIX, .udiag_states = ~0U,
		    .udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN } };
	if (send(s, &req, sizeof(req), 0) < 0) {
		close(s);
		return -1;
	}
	static char buf[65536];
	nusk = nicons = 0;
	for (;;) {
		ssize_t n = recv(s, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				close(s);
				return h->nlmsg_type == NLMSG_DONE ? 0 : -1;
			}
			struct unix_diag_msg *m = NLMSG_DATA(h);
			if (nusk == MAX_USK) {
				close(s);
				return -1;
			}
			struct usk *u = &usk[nusk++];
			memset(u, 0, sizeof(*u));
			u->ino = m->udiag_ino;
			u->state = m->udiag_state;
			u->type = m->udiag_type;
			int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len))
				usk_attr(u, a);
		}
	}
	close(s);
	return 0;
}

static struct usk *usk_of(uint64_t ino)
{
	for (int i = 0; ino && i < nusk; i++)
		if (usk[i].ino == ino)
			return &usk[i];
	return NULL;
}

/* ---- the shape of each object ---- */

static struct uplan {
	struct co_usock o;
	int planned;		/* 1: o is this dump's */
	int written;
	uint32_t client;	/* an embryo (a backlog's connection we accepted): its client's inode */
} plan[CO_MAX_REFS];

const struct co_usock *co_unix_planned(int k)
{
	return plan[k].planned ? &plan[k].o : NULL;
}

/* The object (its first ref) of the Unix socket inode ino in this dump, or -1 (outside the group). */
int co_unix_ref(const struct co_kdump *d, uint64_t ino)
{
	for (int k = 0; ino && k < d->nrefs; k++)
		if (d->refs[k].kind == CO_OBJ_USOCK && d->refs[k].ino == ino)
			return d->refs[k].obj;
	return -1;
}

/*
 * The one socket that can send to the datagram or seqpacket socket
 * refs[k]: its peer in the group, connected back to it, neither shut down
 * that way (a send of the peer's, without an address, lands in k's
 * queue as the program's did).  Its object, or -1.
 */
int co_unix_only_sender(const struct co_kdump *d, int k)
{
	const struct usk *u = d->refs[k].inflight == CO_INFLIGHT_EMBRYO ? NULL : usk_of(d->refs[k].ino);
	const struct usk *p = u ? usk_of(u->peer) : NULL;
	if (!p || p->peer != u->ino || (u->shut & 1) || (p->shut & 2))
		return -1;
	return co_unix_ref(d, p->ino);
}

static int first_unix(const struct co_kdump *d, int first)
{
	for (int k = 0; k < first; k++)
		if (d->refs[k].kind == CO_OBJ_USOCK)
			return 0;
	return 1;
}

int co_unix_named(const struct co_kdump *d, const char *name, uint32_t namelen)
{
	for (int k = 0; namelen && k < d->nrefs; k++) {
		const struct co_usock *o = co_unix_planned(k);
		if (o && d->refs[k].obj == k && o->how != CO_US_ACCEPT && !(o->flags & CO_USF_NONAME) &&
		    o->namelen == namelen && !memcmp(o->name, name, namelen))
			return k;
	}
	return -1;
}

/* The listener (in the group or not) whose backlog holds the connection of client ino, or NULL. */
static const struct usk *waiting_in(uint32_t ino)
{
	for (int i = 0; i < nusk; i++)
		for (uint32_t j = 0; usk[i].state == ST_LISTEN && j < usk[i].nicons; j++)
			if (icons[usk[i].icon + j] == ino)
				return &usk[i];
	return NULL;
}

/* A listener anywhere bound to name: a socket with that name was accepted from it. */
static int listener_named(const char *name, uint32_t namelen)
{
	for (int i = 0; namelen && i < nusk; i++)
		if (usk[i].state == ST_LISTEN && usk[i].namelen == namelen && !memcmp(usk[i].name, name, namelen))
			return 1;
	return 0;
}

/* A listener of the group bound to u's name, from which u was accepted: its object, or -1. */
static int accepted_from(const struct co_kdump *d, const struct usk *u)
{
	for (int k = 0; u->namelen && k < d->nrefs; k++) {
		const struct usk *l = d->refs[k].obj == k && d->refs[k].kind == CO_OBJ_USOCK ? usk_of(d->refs[k].ino) : NULL;
		if (l && l->state == ST_LISTEN && l->namelen == u->namelen && !memcmp(l->name, u->name, u->namelen))
			return k;
	}
	return -1;
}

static int refuse(struct co_kdump *d, int k, const char *fmt, const char *what)
{
	const struct co_ref *r = &d->refs[k];
	char line[512];
	snprintf(line, sizeof(line), fmt, what);
	if (r->inflight)
		snprintf(d->err, d->errlen, "a Unix socket in flight (SCM_RIGHTS) %s", line);
	else
		snprintf(d->err, d->errlen, "pid %d: fd %d: unsupported descriptor kind socket (a Unix socket %s)", r->pid,
			 r->fd, line);
	return -1;
}

/* The path of u's name as the group's process of refs[k] sees it (from here), into p. */
static void name_path(const struct co_kdump *d, int k, const struct usk *u, char *p, size_t n)
{
	int host = d->refs[k].inflight && d->nrefs ? d->refs[0].host : d->refs[k].host;
	snprintf(p, n, "/proc/%d/root%.*s", host, (int)u->namelen, u->name);
}

/* Is st u's own socket file? */
static int its_file(const struct stat *st, const struct usk *u)
{
	return S_ISSOCK(st->st_mode) && (uint32_t)st->st_ino == u->vfs_ino && major(st->st_dev) == u->vfs_dev >> 20 &&
	       minor(st->st_dev) == (u->vfs_dev & 0xfffff);
}

/* A path name's socket file: its mode and owner, or gone (CO_USF_UNLINKED: another file, or none, at the path). */
static void name_file(const struct co_kdump *d, int k, const struct usk *u, struct co_usock *o)
{
	char p[sizeof(o->name) + 64];
	struct stat st;
	name_path(d, k, u, p, sizeof(p));
	if (stat(p, &st) == 0 && its_file(&st, u)) {
		o->mode = st.st_mode & 07777;
		o->uid = st.st_uid;
		o->gid = st.st_gid;
	} else {
		o->flags |= CO_USF_UNLINKED;
	}
}

static void set_peername(struct co_usock *o, const struct usk *p)
{
	o->peerlen = p->namelen;
	memcpy(o->peername, p->name, p->namelen);
}

/* A datagram socket: made alone, connected later to its peer's name; a pair when a name is missing. */
static int plan_dgram(struct co_kdump *d, int k, const struct usk *u, struct co_usock *o)
{
	char t[160];
	o->how = CO_US_ALONE;
	if (!u->peer) { /* unnamed with messages its closed peer sent: a pair whose other end goes once they are back */
		if (!u->namelen && u->rq)
			o->how = CO_US_PAIR;
		return 0;
	}
	const struct usk *p = usk_of(u->peer);
	if (co_unix_ref(d, u->peer) >= 0 && p && p->peer == u->ino && (!p->namelen || !u->namelen)) {
		o->how = CO_US_PAIR;
		o->peer = u->peer;
		return 0;
	}
	if (!p || !p->namelen)
		return refuse(d, k, "connected to an unnamed datagram socket%s", co_unix_ref(d, u->peer) >= 0 ? "" : " outside the group");
	if (co_unix_ref(d, u->peer) < 0) {
		o->flags |= CO_USF_OUTSIDE;
		if (p->name[0] != '/' && p->name[0])
			return refuse(d, k, "connected to %s, a name relative to a working directory",
				      co_unix_name_text(p->name, p->namelen, t, sizeof(t)));
	} else {
		o->via = u->peer; /* which socket of the name (another may have it too: share_names) */
	}
	set_peername(o, p);
	return 0;
}

/* A stream or seqpacket socket connected to p outside the group: refused, or connected afresh to p's name. */
static int outside_stream(struct co_kdump *d, int k, struct co_usock *o, const struct usk *p)
{
	char t[160];
	if (!(d->flags & CO_CKPT_RECONNECT))
		return refuse(d, k, "connected to %s outside the group (checkpoint --reconnect-outside connects it "
			      "afresh at a restart)", co_unix_name_text(p->name, p->namelen, t, sizeof(t)));
	o->how = CO_US_ALONE;
	o->peer = 0;
	o->flags |= CO_USF_OUTSIDE;
	set_peername(o, p);
	return 0;
}

/* A connected stream or seqpacket socket. */
static int plan_stream(struct co_kdump *d, int k, const struct usk *u, struct co_usock *o)
{
	char t[160];
	const struct usk *l = waiting_in(u->ino);
	if (l && co_unix_ref(d, l->ino) < 0) /* in the backlog of a listener outside */
		return outside_stream(d, k, o, l);
	if (l) { /* its connection waits in the backlog of a listener of the group */
		o->how = CO_US_CONNECT;
		o->via = l->ino;
		set_peername(o, l);
		return 0;
	}
	o->how = CO_US_PAIR;
	o->peer = u->peer;
	if (!u->peer) /* its peer closed: a pair whose other end goes once the data it sent is back */
		return 0;
	if (co_unix_ref(d, u->peer) >= 0) {
		int a = accepted_from(d, u);
		if (a >= 0) {
			o->how = CO_US_ACCEPT;
			o->via = d->refs[a].ino;
		}
		return 0;
	}
	const struct usk *p = usk_of(u->peer);
	if (listener_named(u->name, u->namelen)) /* u was accepted from a listener: its client is outside */
		return refuse(d, k, "accepted on %s from a client outside the group",
			      co_unix_name_text(u->name, u->namelen, t, sizeof(t)));
	if (!p || !p->namelen)
		return refuse(d, k, "connected to an unnamed socket outside the group%s", "");
	return outside_stream(d, k, o, p);
}

/*
 * The options of the socket refs[k] into o, read through a descriptor of
 * our own (the queue's reading, done by now, has put back the SO_PEEK_OFF
 * and SO_PASSCRED it changed for a while): 0, or -1 refused (options
 * that cannot be read).
 */
static int plan_opts(struct co_kdump *d, int k, struct co_usock *o)
{
	char why[256];
	int s = co_ref_grab(&d->refs[k]), on = 0, off = -1;
	if (s < 0) {
		snprintf(why, sizeof(why), "whose options cannot be read (pidfd_getfd: %s)", strerror(errno));
		return refuse(d, k, "%s", why);
	}
	socklen_t l = sizeof(on);
	if (getsockopt(s, SOL_SOCKET, SO_PASSCRED, &on, &l) == 0 && on)
		o->flags |= CO_USF_PASSCRED;
	l = sizeof(off);
	if (getsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &off, &l) == 0 && off >= 0) {
		o->flags |= CO_USF_PEEKOFF;
		o->peek_off = off;
	}
	int e = co_unix_opts_read(s, o, why, sizeof(why));
	close(s);
	return e < 0 ? refuse(d, k, "%s", why) : 0;
}

static int plan_one(struct co_kdump *d, int k)
{
	const struct co_ref *r = &d->refs[k];
	struct uplan *pl = &plan[k];
	struct co_usock *o = &pl->o;
	char t[160];
	memset(o, 0, sizeof(*o));
	o->id = r->ino;
	o->fflags = r->flags & CO_FL_STATUS;
	pl->planned = 1;
	pl->written = 0;
	if (plan_opts(d, k, o) < 0)
		return -1;
	if (r->inflight == CO_INFLIGHT_EMBRYO) {
		o->peer = pl->client; /* whose connection makes it again, and sends its data */
		return 0;
	}
	const struct usk *u = usk_of(r->ino);
	if (!u)
		return refuse(d, k, "that the kernel does not list%s (in another network namespace?)", "");
	o->type = u->type;
	o->state = u->state;
	o->shut = u->shut;
	if (u->namelen) {
		if (u->name[0] && u->name[0] != '/')
			return refuse(d, k, "bound to %s, a name relative to a working directory",
				      co_unix_name_text(u->name, u->namelen, t, sizeof(t)));
		o->namelen = u->namelen;
		memcpy(o->name, u->name, u->namelen);
		if (u->name[0])
			name_file(d, k, u, o);
	}
	if (u->state == ST_LISTEN) {
		o->how = CO_US_ALONE;
		o->backlog = u->wq;
		for (uint32_t j = 0; j < u->nicons; j++)
			if (co_unix_ref(d, icons[u->icon + j]) < 0)
				return refuse(d, k, "listening on %s with a connection from outside the group in its backlog",
					      co_unix_name_text(u->name, u->namelen, t, sizeof(t)));
		return 0;
	}
	if (u->type == SOCK_DGRAM)
		return plan_dgram(d, k, u, o);
	if (u->state != ST_ESTABLISHED) {
		o->how = CO_US_ALONE;
		return 0;
	}
	return plan_stream(d, k, u, o);
}

/* The Unix object k of this dump that binds a name at a restart (not an accepted end: it has its listener's), or NULL. */
static struct co_usock *binder(const struct co_kdump *d, int k)
{
	struct co_usock *o = plan[k].planned && d->refs[k].obj == k ? &plan[k].o : NULL;
	return o && o->namelen && o->how != CO_US_ACCEPT ? o : NULL;
}

/*
 * A name several sockets of the group have: a path bound again after the
 * first's file was removed, or an accepted end whose listener is gone.
 * The one whose file is at the path (else the first) keeps it as it is;
 * the others get it at a restart through a file moved aside and back
 * (CO_USF_SHARED, unix_name.c).  An abstract name has no file: it is
 * given back to the first only (CO_USF_NONAME).
 */
static void share_names(struct co_kdump *d)
{
	for (int k = 0; k < d->nrefs; k++) {
		struct co_usock *o = binder(d, k);
		int keeper = -1;
		for (int j = 0; o && j < d->nrefs; j++) {
			const struct co_usock *p = binder(d, j);
			if (p && p->namelen == o->namelen && !memcmp(p->name, o->name, o->namelen) &&
			    (keeper < 0 || ((plan[keeper].o.flags & CO_USF_UNLINKED) && !(p->flags & CO_USF_UNLINKED))))
				keeper = j;
		}
		if (o && keeper != k)
			o->flags |= o->name[0] ? CO_USF_SHARED : CO_USF_NONAME;
	}
}

/* Every Unix object of the dump: its shape, and the names several of them have (share_names). */
static int plan_all(struct co_kdump *d)
{
	for (int k = 0; k < d->nrefs; k++)
		if (d->refs[k].kind == CO_OBJ_USOCK && d->refs[k].obj == k && plan_one(d, k) < 0)
			return -1;
	share_names(d);
	/* the client of an accepted connection connects to the listener (and is accepted at once) */
	for (int k = 0; k < d->nrefs; k++) {
		struct uplan *s = &plan[k];
		if (!s->planned || d->refs[k].obj != k || s->o.how != CO_US_ACCEPT)
			continue;
		struct uplan *c = &plan[co_unix_ref(d, s->o.peer)];
		c->o.how = CO_US_CONNECT;
		c->o.via = s->o.via;
		c->o.peer = s->o.id;
		set_peername(&c->o, usk_of(s->o.via));
	}
	return 0;
}

static int write_one(struct co_kdump *d, int k)
{
	if (plan[k].written++)
		return 0;
	return co_w_rec(d->w, CO_R_USOCK, &plan[k].o, sizeof(plan[k].o));
}

/* The records, in the order a restart makes them (see the head of the file). */
static int write_all(struct co_kdump *d)
{
	for (int pass = 0; pass < 4; pass++)
		for (int k = 0; k < d->nrefs; k++) {
			struct uplan *p = &plan[k];
			if (!p->planned || d->refs[k].obj != k || d->refs[k].inflight == CO_INFLIGHT_EMBRYO)
				continue;
			if ((pass == 0 && p->o.how == CO_US_ALONE) || (pass == 1 && p->o.how == CO_US_PAIR)) {
				write_one(d, k);
			} else if (pass == 2 && p->o.how == CO_US_ACCEPT) {
				write_one(d, co_unix_ref(d, p->o.peer));
				write_one(d, k);
			} else if (pass == 3 && p->o.how == CO_US_ALONE && p->o.state == ST_LISTEN) {
				const struct usk *u = usk_of(p->o.id);
				for (uint32_t j = 0; u && j < u->nicons; j++)
					if (co_unix_ref(d, icons[u->icon + j]) >= 0)
						write_one(d, co_unix_ref(d, icons[u->icon + j]));
			}
		}
	for (int k = 0; k < d->nrefs; k++)
		if (plan[k].planned && d->refs[k].obj == k && d->refs[k].inflight != CO_INFLIGHT_EMBRYO &&
		    !plan[k].written) {
			snprintf(d->err, d->errlen, "pid %d: fd %d: a Unix socket of no shape cohort knows", d->refs[k].pid,
				 d->refs[k].fd);
			return -1;
		}
	return d->w->err ? -1 : 0;
}

static int unix_dump(struct co_kdump *d, int first, uint64_t *id)
{
	*id = d->refs[first].ino;
	if (first_unix(d, first) && (plan_all(d) < 0 || write_all(d) < 0))
		return -1;
	return 1;
}

/*
 * How the coordinator connects to listener u again, to give back what it
 * takes from its backlog (unix_backlog.c): *path an O_PATH descriptor of
 * its socket file (checked to be its own), or -1 for an abstract name.
 * 0, or -1 when it cannot (its file is gone).
 */
static int reach(const struct co_kdump *d, int first, const struct usk *u, int *path)
{
	char p[sizeof(u->name) + 64];
	struct stat st;
	*path = -1;
	if (!u->namelen || !u->name[0])
		return u->namelen ? 0 : -1;
	name_path(d, first, u, p, sizeof(p));
	*path = open(p, O_PATH | O_CLOEXEC);
	if (*path >= 0 && fstat(*path, &st) == 0 && its_file(&st, u))
		return 0;
	if (*path >= 0)
		close(*path);
	*path = -1;
	return -1;
}

/* Does every process holding listener refs[first] accept through the agent's wrappers (co_pentry.accepts)? */
static int accepts_through_agent(const struct co_kdump *d, int first)
{
	CO_FOR_HOLDERS(d, first, k) {
		int s = d->refs[k].inflight ? -2 : co_ref_slot(d, &d->refs[k]);
		if (s == -1 || (s >= 0 && !__atomic_load_n(&d->table->p[s].accepts, __ATOMIC_ACQUIRE)))
			return 0;
	}
	return 1;
}

/*
 * The datagram socket of the group bound to name (namelen bytes), as the
 * kernel lists it (so before any plan): its object, or -1.  The sender of
 * a message that came from that name (q_requeue).
 */
int co_unix_dgram_named(const struct co_kdump *d, const char *name, uint32_t namelen)
{
	for (int k = 0; namelen && k < d->nrefs; k++) {
		const struct co_ref *r = &d->refs[k];
		const struct usk *u = r->kind == CO_OBJ_USOCK && r->obj == k && r->inflight != CO_INFLIGHT_EMBRYO
					      ? usk_of(r->ino) : NULL;
		if (u && u->type == SOCK_DGRAM && u->namelen == namelen && !memcmp(u->name, name, namelen))
			return k;
	}
	return -1;
}

/*
 * Where the coordinator sends to the datagram socket refs[k] by its name,
 * to make its queue new when any socket may send to it (unix_queue.c's
 * q_requeue): an abstract name as it is, a path through an O_PATH
 * descriptor of its own socket file (*path, the caller's to close), as
 * "/proc/self/fd/N", so that nothing planted at the path is reached.  0,
 * or -1: no name, its file gone, or connected (then only its peer may
 * send to it, which co_unix_only_sender covers).
 */
int co_unix_reach_addr(const struct co_kdump *d, int k, struct sockaddr_un *a, socklen_t *alen, int *path)
{
	const struct usk *u = d->refs[k].inflight == CO_INFLIGHT_EMBRYO ? NULL : usk_of(d->refs[k].ino);
	*path = -1;
	if (!u || u->peer || !u->namelen || reach(d, k, u, path) < 0)
		return -1;
	if (*path >= 0) {
		*alen = co_unix_via_path(*path, a);
		return 0;
	}
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, u->name, u->namelen);
	*alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + u->namelen);
	return 0;
}

/*
 * Connecting or sending to "/proc/self/fd/N" of an O_PATH descriptor of a
 * socket file reaches that very socket: nothing planted at its path since
 * (a link elsewhere) is followed.
 */
socklen_t co_unix_via_path(int path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d", path);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
}

/*
 * The connections waiting in the backlog of listener refs[first], when
 * one holds data (or is a marker of connections given back before: its
 * client is gone): the data can be read only by accepting them.  They are
 * accepted through our copy of the listener and become objects of the
 * dump (embryos) whose clients connect again at a restart; a marker's
 * connection is taken in its place, its client put in the marker's
 * place of the backlog's list.  The program gets them back behind
 * markers when the group outlives the checkpoint (unix_backlog.c); a
 * live checkpoint that could not give them back refuses first.
 */
static int take_backlog(struct co_kdump *d, int first, const struct usk *u)
{
	int want = 0, path = -1;
	char t[160];
	for (uint32_t j = 0; j < u->nicons; j++) {
		const struct usk *c = usk_of(icons[u->icon + j]);
		want |= !c || c->wq > 0;
	}
	if (!want)
		return 0;
	co_unix_name_text(u->name, u->namelen, t, sizeof(t));
	if (reach(d, first, u, &path) < 0 && !(d->flags & CO_CKPT_KILL))
		return refuse(d, first, "listening on %s with data queued on a connection in its backlog, which cohort "
			      "reads only by accepting it, and cannot give back (its socket file is gone; checkpoint --kill)", t);
	if (!(d->flags & CO_CKPT_KILL) && !accepts_through_agent(d, first))
		return refuse(d, first, "listening on %s with data queued on a connection in its backlog, which cohort "
			      "reads only by accepting it, and gives back through the program's accept in libc, which this "
			      "program has not called yet (raw system calls would get cohort's marker; checkpoint --kill)", t);
	int l = co_ref_grab(&d->refs[first]);
	int from = l >= 0 ? co_unix_backlog_begin(d, first, fcntl(l, F_DUPFD_CLOEXEC, 3), path, (int)u->type) : -1;
	if (l < 0 && path >= 0)
		close(path);
	for (uint32_t j = 0; from >= 0 && j < u->nicons; j++) {
		struct pollfd pf = { l, POLLIN, 0 };
		int a = poll(&pf, 1, 0) == 1 ? co_unix_unmark(d, accept4(l, NULL, NULL, SOCK_CLOEXEC)) : -1;
		if (a >= 0 && co_unix_backlog_add(from, a) < 0) {
			close(a);
			a = -1;
		}
		struct stat st;
		const struct usk *c = a >= 0 && !icons[u->icon + j] && fstat(a, &st) == 0 ? usk_of(st.st_ino) : NULL;
		if (c) /* a marker's: its real client */
			icons[u->icon + j] = c->peer;
		int k = a >= 0 ? co_ref_inflight(d, a, CO_INFLIGHT_EMBRYO) : -1;
		if (k < 0)
			from = -1;
		else
			plan[k].client = icons[u->icon + j];
	}
	if (l >= 0)
		close(l);
	if (from < 0)
		return refuse(d, first, "listening on %s whose backlog cannot be read", t);
	return 0;
}

/* Refused before anything of it is read or taken: a socket with a filter attached, which is not given back. */
static int no_filter(struct co_kdump *d, int first)
{
	char why[256];
	int s = co_ref_grab(&d->refs[first]); /* none: plan_opts refuses it */
	int e = s >= 0 ? co_unix_filter(s, why, sizeof(why)) : 0;
	if (s >= 0)
		close(s);
	return e < 0 ? refuse(d, first, "%s", why) : 0;
}

static int unix_collect(struct co_kdump *d, int first)
{
	const struct co_ref *r = &d->refs[first];
	if (first_unix(d, first) && unix_list() < 0) {
		snprintf(d->err, d->errlen, "cannot list Unix sockets (sock_diag)");
		return -1;
	}
	if (no_filter(d, first) < 0)
		return -1;
	const struct usk *u = r->inflight == CO_INFLIGHT_EMBRYO ? NULL : usk_of(r->ino);
	if (u && u->state == ST_LISTEN && u->nicons && take_backlog(d, first, u) < 0)
		return -1;
	return u && u->state == ST_LISTEN ? 0 : co_unix_collect_queue(d, first, first_unix(d, first));
}

static int unix_dump_data(struct co_kdump *d, int first, uint64_t id)
{
	(void)id;
	return co_unix_dump_queue(d, first);
}

/* A live checkpoint has peeked every queue: the connections taken from backlogs go back at once. */
static void unix_dumped(void)
{
	co_unix_backlog_give(1);
}

/* The checkpoint has ended: what it read off streams, and the backlogs' connections, given back or let go. */
static void unix_settle(int failed)
{
	co_unix_settle(failed);
	co_unix_backlog_give(failed);
}

/* ---- inspect ---- */

static void unix_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	if (type == CO_R_USMSG) {
		co_unix_describe_msg(p, len, out, n);
		return;
	}
	if (type == CO_R_SOCKDATA) {
		uint64_t id;
		memcpy(&id, p, 8);
		snprintf(out, n, "socket %llu: %llu bytes queued", (unsigned long long)id, (unsigned long long)(len - 8));
		return;
	}
	if (type != CO_R_USOCK) {
		const struct co_sobj *o = p;
		snprintf(out, n, "unix socket %llu: type %llu, peer %llu", (unsigned long long)o->id,
			 (unsigned long long)o->a, (unsigned long long)o->b);
		return;
	}
	static const char *const hows[] = { "?", "alone", "pair", "client", "accepted" };
	static const char *const types[] = { "?", "stream", "datagram", "?", "?", "seqpacket" };
	const struct co_usock *o = p;
	char name[160], peer[160];
	/* lengths from an image are not trusted: a damaged one is shown, not read past */
	co_unix_name_text(o->name, o->namelen < sizeof(o->name) ? o->namelen : sizeof(o->name), name, sizeof(name));
	co_unix_name_text(o->peername, o->peerlen < sizeof(o->peername) ? o->peerlen : sizeof(o->peername), peer,
			  sizeof(peer));
	char file[64] = "", peek[32] = "", opts[512];
	co_unix_opts_text(o, opts, sizeof(opts));
	if (o->flags & CO_USF_PEEKOFF)
		snprintf(peek, sizeof(peek), ", SO_PEEK_OFF %d", o->peek_off);
	if (o->namelen && o->name[0] && !(o->flags & CO_USF_UNLINKED))
		snprintf(file, sizeof(file), " (mode %o uid %u gid %u)", o->mode, o->uid, o->gid);
	snprintf(out, n, "%llu: %s %s%s, name %s%s%s%s, peer %llu, via %llu%s%s, shutdown %s%s%s%s%s", (unsigned long long)o->id,
		 o->type < 6 ? types[o->type] : "?", o->how < 5 ? hows[o->how] : "?",
		 o->state == ST_LISTEN ? " listening" : "", name, o->flags & CO_USF_UNLINKED ? " (unlinked)" : "",
		 o->flags & CO_USF_NONAME ? " (not given back)" : o->flags & CO_USF_SHARED ? " (another's too)" : "", file, (unsigned long long)o->peer, (unsigned long long)o->via,
		 o->peerlen ? ", connects to " : "", o->peerlen ? peer : "",
		 (o->shut & 3) == 3 ? "both" : o->shut & 1 ? "read" : o->shut & 2 ? "write" : "none",
		 o->flags & CO_USF_OUTSIDE ? ", peer outside the group" : "",
		 o->flags & CO_USF_PASSCRED ? ", SO_PASSCRED" : "", peek, opts);
}

const struct co_kind_ops co_unix_ops = {
	.kind = CO_OBJ_USOCK, .identity = CO_ID_INODE, .collect = unix_collect,
	.dump = unix_dump, .dump_data = unix_dump_data, .restore = co_unix_restore, .restore_done = co_unix_restore_done,
	.describe = unix_describe, .settle = unix_settle, .dumped = unix_dumped,
};
