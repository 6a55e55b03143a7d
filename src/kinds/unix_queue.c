/*
 * unix_queue.c - what is queued on a Unix socket: every message (a stream:
 * its bytes, up to each message that passes descriptors), peeked in
 * order with SO_PEEK_OFF through a descriptor of the coordinator's own
 * (pidfd_getfd), never taken, with its sender's address (datagrams), its
 * credentials (SCM_CREDENTIALS, when the socket has SO_PASSCRED) and the
 * descriptors it passes (SCM_RIGHTS).  Peeking gives the coordinator
 * copies of those: before any object is dumped they become references of
 * the dump (co_ref_inflight), captured by their own kinds like any
 * descriptor of the group, so that a pipe or a socket only in flight is
 * an object too; one of a kind cohort cannot restore refuses the
 * checkpoint.  Each message is one CO_R_USMSG, sent again at a restart
 * with what it passed, in place, from the socket that sent it.
 *
 * A datagram or seqpacket message is one peek: exact.  On a stream, a
 * peek (like a read) glues the bytes queued before a message that passes
 * descriptors to it, and the kernel shows no more than that: where that
 * message began can be told only by reading the bytes.  A checkpoint with
 * --kill does read a stream that passes descriptors (q_take: the group
 * ends with it); a live one peeks, and those bytes come back as part of
 * the message (a reader that read exactly up to it gets the descriptors
 * with that read instead of the next).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/kcmp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include "kinds/unix_int.h"
#include "proto.h"

#define MAX_PASS 253	/* SCM_MAX_FD: the most one message can pass */

/* One message peeked: its bytes, passed descriptors (our copies), credentials, sender. */
struct qmsg {
	ssize_t len;
	int fds[MAX_PASS], nfds;
	int creds;
	struct ucred cred;
	uint32_t namelen;
	char name[108];
};
static char qdata[1 << 18];

static void q_drop_fds(struct qmsg *m)
{
	for (int i = 0; i < m->nfds; i++)
		close(m->fds[i]);
	m->nfds = 0;
}

struct queue {
	int s, old_off;
	int stream;	/* SOCK_STREAM (a peek is cut at a message passing descriptors: it must be whole) */
	int off;	/* bytes peeked so far */
	int take;	/* read it (see q_take), not peek */
	int pending;	/* q_take: the first byte of a message passing descriptors, read: the next message */
	struct qmsg next;
	char next_byte;
};

static int q_open(const struct co_ref *r, struct queue *q)
{
	int zero = 0;
	socklen_t l = sizeof(q->old_off);
	memset(q, 0, sizeof(*q));
	q->old_off = -1;
	q->s = co_ref_grab(r);
	if (q->s < 0)
		return -1;
	getsockopt(q->s, SOL_SOCKET, SO_PEEK_OFF, &q->old_off, &l);
	setsockopt(q->s, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero));
	int type = 0;
	l = sizeof(type);
	getsockopt(q->s, SOL_SOCKET, SO_TYPE, &type, &l);
	q->stream = type == SOCK_STREAM;
	return 0;
}

/* The program's own peek offset back. */
static void q_close(struct queue *q)
{
	if (q->pending)
		q_drop_fds(&q->next);
	setsockopt(q->s, SOL_SOCKET, SO_PEEK_OFF, &q->old_off, sizeof(q->old_off));
	close(q->s);
}

/*
 * One recvmsg of up to size bytes into buf: a peek at q->off, or (take) a
 * read; m gets its length, passed descriptors (our copies), credentials,
 * sender.  Its length; 0 at the end; -1 truncated.
 */
static ssize_t q_recv(struct queue *q, struct qmsg *m, char *buf, size_t size, int take)
{
	union {
		char b[CMSG_SPACE(MAX_PASS * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} cb;
	struct sockaddr_un from;
	struct iovec iov = { buf, size };
	struct msghdr mh = { &from, sizeof(from), &iov, 1, cb.b, sizeof(cb.b), 0 };
	memset(m, 0, sizeof(*m));
	if (!take)
		setsockopt(q->s, SOL_SOCKET, SO_PEEK_OFF, &q->off, sizeof(q->off));
	m->len = recvmsg(q->s, &mh, (take ? 0 : MSG_PEEK) | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (m->len <= 0)
		return 0; /* nothing more (EAGAIN), or a stream's end */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < n && m->nfds < MAX_PASS; i++)
				memcpy(&m->fds[m->nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			memcpy(&m->cred, CMSG_DATA(c), sizeof(m->cred));
			m->creds = 1;
		}
	}
	if (mh.msg_namelen > offsetof(struct sockaddr_un, sun_path)) {
		m->namelen = mh.msg_namelen - (uint32_t)offsetof(struct sockaddr_un, sun_path);
		memcpy(m->name, from.sun_path, m->namelen);
	}
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (q->stream && m->nfds && (size_t)m->len == size && size > 1)) {
		q_drop_fds(m);
		return -1;
	}
	return m->len;
}

/* A stream: whether a message passing descriptors is queued (a peek walks on to the first one whatever its size). */
static int q_passes(struct queue *q)
{
	struct qmsg t;
	char c; /* not into qdata: it may hold the message being made */
	ssize_t n = q_recv(q, &t, &c, 1, 0);
	int passes = n > 0 && t.nfds > 0;
	q_drop_fds(&t);
	return passes;
}

/*
 * The next message of a stream, read (a --kill checkpoint: the group ends
 * with it): a peek or a read glues the bytes before a message passing
 * descriptors to it, and the kernel shows no more; reading one byte at a
 * time, the read that brings the descriptors is that message's first
 * byte.  A message is the bytes from there (or the queue's head) to the
 * next such first byte: where a message passing descriptors ends cannot
 * be seen either, and the bytes after it come back as part of it (a read
 * may then go on past its end, as reads of a stream may; never take the
 * descriptors early).  1, 0 at the end, -1.
 */
static int q_take(struct queue *q, struct qmsg *m)
{
	struct qmsg t;
	memset(m, 0, sizeof(*m));
	if (q->pending) { /* the first byte the last call read, with its descriptors */
		*m = q->next;
		qdata[0] = q->next_byte;
		q->pending = 0;
	}
	if (!q_passes(q)) { /* none further: the rest at once */
		ssize_t n = q_recv(q, &t, qdata + m->len, sizeof(qdata) - (size_t)m->len, 1);
		if (n < 0)
			return -1;
		if (!m->len)
			*m = t;
		else
			m->len += n;
		return m->len > 0;
	}
	while ((size_t)m->len < sizeof(qdata) && q_recv(q, &t, qdata + m->len, 1, 1) == 1) {
		if (t.nfds) {
			q->next = t;
			q->next_byte = qdata[m->len];
			q->pending = 1;
			if (m->len)
				return 1;
			return q_take(q, m); /* it begins at the head */
		}
		if (!m->len) { /* the message's credentials are its first byte's */
			m->creds = t.creds;
			m->cred = t.cred;
		}
		m->len++;
	}
	return m->len > 0;
}

/* The next message into m (bytes in qdata): 1; 0 at the end; -1 too long to read whole. */
static int q_next(struct queue *q, struct qmsg *m)
{
	if (q->take)
		return q_take(q, m);
	ssize_t n = q_recv(q, m, qdata, sizeof(qdata), 0);
	if (n > 0)
		q->off += (int)m->len;
	return n > 0 ? 1 : (int)n;
}

static int queue_err(struct co_kdump *d, int first, const char *what)
{
	const struct co_ref *r = &d->refs[first];
	if (r->inflight)
		snprintf(d->err, d->errlen, "a Unix socket in flight (SCM_RIGHTS): %s", what);
	else
		snprintf(d->err, d->errlen, "pid %d: fd %d: the Unix socket %s: %s", r->pid, r->fd, r->path, what);
	return -1;
}

int co_unix_collect_queue(struct co_kdump *d, int first)
{
	struct queue q;
	struct qmsg m;
	char what[512];
	int e = 0;
	if (q_open(&d->refs[first], &q) < 0)
		return queue_err(d, first, "cannot be read");
	while (!e && (e = q_next(&q, &m)) > 0) {
		e = 0;
		for (int i = 0; i < m.nfds; i++) {
			int k = e ? -1 : co_ref_inflight(d, m.fds[i], CO_INFLIGHT_PASSED);
			if (e)
				close(m.fds[i]);
			else if (k < 0)
				e = -2;
			else if (d->refs[k].kind == CO_OBJ_EPOLL) { /* its items come back in a process that holds it */
				snprintf(d->err, d->errlen, "%s (%s) held by no process", co_obj_name(CO_OBJ_EPOLL), d->refs[k].path);
				e = -2;
			}
		}
	}
	q_close(&q);
	if (e == -2) {
		snprintf(what, sizeof(what), "a descriptor in flight on it (SCM_RIGHTS) is a %s, which cohort cannot restore",
			 d->err);
		return queue_err(d, first, what);
	}
	return e < 0 ? queue_err(d, first, "holds a message too long to read") : 0;
}

/* The reference (made by the collect) that a passed descriptor fd of ours is the same open file as: -1 none. */
static int passed_ref(const struct co_kdump *d, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	for (int k = 0; k < d->nrefs; k++) {
		const struct co_ref *r = &d->refs[k];
		if (r->ino == (uint64_t)st.st_ino && r->dev == (uint64_t)st.st_dev &&
		    syscall(SYS_kcmp, getpid(), r->host, KCMP_FILE, fd, r->fd) == 0)
			return k;
	}
	return -1;
}

/* Who sends m again at a restart, and how (see struct co_usmsg). */
static void sender(const struct co_kdump *d, const struct co_usock *o, const struct qmsg *m, struct co_usmsg *h)
{
	h->from = o->peer;
	if (o->type != SOCK_DGRAM || !o->namelen || (o->flags & CO_USF_NONAME))
		return; /* a stream, or an unnamed datagram socket: from its peer (0: the end of a closed one) */
	int k = co_unix_named(d, m->name, m->namelen);
	h->from = k >= 0 ? d->refs[k].ino : 0;	/* 0: from a socket of init's own, unnamed */
	h->flags |= CO_UM_SENDTO;
	h->namelen = o->namelen;
	memcpy(h->name, o->name, o->namelen);
}

/* The record of m: header, passed objects, bytes; 0, or -1 (err: what). */
static int write_msg(struct co_kdump *d, const struct co_usock *o, struct qmsg *m, char *what, size_t n)
{
	static char rec[sizeof(struct co_usmsg) + MAX_PASS * sizeof(struct co_uspass) + sizeof(qdata)];
	struct co_usmsg h = { .id = o->id, .nfds = (uint32_t)m->nfds };
	sender(d, o, m, &h);
	if (m->creds) {
		h.flags |= CO_UM_CREDS;
		h.pid = m->cred.pid;
		h.uid = m->cred.uid;
		h.gid = m->cred.gid;
	}
	struct co_uspass *ps = (struct co_uspass *)(rec + sizeof(h));
	for (int i = 0; i < m->nfds; i++) {
		int k = passed_ref(d, m->fds[i]);
		const struct co_kind_ops *ops = k >= 0 ? co_kind_ops(d->refs[k].kind) : NULL;
		if (!ops || !co_ref_object(d, k, &ps[i].id)) {
			snprintf(what, n, "a descriptor in flight on it (SCM_RIGHTS) is a %s that cohort does not record "
				 "(%s)", k >= 0 ? co_obj_name(d->refs[k].kind) : "descriptor", k >= 0 ? d->refs[k].path : "?");
			return -1;
		}
		ps[i].kind = d->refs[k].kind;
		ps[i].end = ops->end ? ops->end(&d->refs[k]) : 0;
	}
	memcpy(rec, &h, sizeof(h));
	size_t off = sizeof(h) + (size_t)m->nfds * sizeof(*ps);
	memcpy(rec + off, qdata, (size_t)m->len);
	return co_w_rec(d->w, CO_R_USMSG, rec, off + (uint64_t)m->len) ? -1 : 0;
}

int co_unix_dump_queue(struct co_kdump *d, int first)
{
	const struct co_usock *o = co_unix_planned(first);
	/* a listener has no queue; a stream to a peer outside comes back as a fresh connection: its queue stays behind */
	if (!o || o->state == ST_LISTEN || ((o->flags & CO_USF_OUTSIDE) && o->type != SOCK_DGRAM))
		return 0;
	struct queue q;
	struct qmsg m;
	char what[512] = "cannot be read";
	int e = 0;
	if (q_open(&d->refs[first], &q) < 0)
		return queue_err(d, first, what);
	/* exact places for the descriptors a stream passes, by reading it: only when the group ends with the checkpoint */
	q.take = q.stream && (d->flags & CO_CKPT_KILL) && q_passes(&q);
	while (!e && (e = q_next(&q, &m)) > 0) {
		e = write_msg(d, o, &m, what, sizeof(what));
		q_drop_fds(&m);
	}
	q_close(&q);
	if (e < 0 && strcmp(what, "cannot be read") == 0)
		snprintf(what, sizeof(what), "holds a message too long to read");
	return e < 0 ? queue_err(d, first, what) : d->w->err ? -1 : 0;
}

/* ---- restore ---- */

static int own_sender = -1;	/* init's own datagram socket, unnamed, for messages whose sender is not in the group */

void co_unix_msg_done(void)
{
	if (own_sender >= 0)
		close(own_sender);
	own_sender = -1;
}

int co_unix_restore_msg(struct co_krestore *x, const void *p, uint64_t len)
{
	const struct co_usmsg *h = p;
	if (h->nfds > MAX_PASS || h->namelen > sizeof(h->name) ||
	    len < sizeof(*h) + (uint64_t)h->nfds * sizeof(struct co_uspass))
		return co_kbad(x, "unix message of socket %llu: %u descriptors in %llu bytes", (unsigned long long)h->id,
			       h->nfds, (unsigned long long)len);
	const struct co_uspass *ps = (const void *)(h + 1);
	size_t off = sizeof(*h) + h->nfds * sizeof(*ps);
	int s = h->from ? co_made_fd(x, CO_OBJ_USOCK, h->from, 0) : co_unix_orphan_end(h->id);
	if (s < 0 && !h->from && (h->flags & CO_UM_SENDTO)) {
		if (own_sender < 0)
			own_sender = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		s = own_sender;
	}
	if (s < 0)
		return co_kbad(x, "a message queued on Unix socket %llu has no socket to come from", (unsigned long long)h->id);
	union {
		char b[CMSG_SPACE(MAX_PASS * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} cb;
	memset(&cb, 0, sizeof(cb));
	struct sockaddr_un to = { .sun_family = AF_UNIX };
	memcpy(to.sun_path, h->name, h->namelen);
	struct iovec iov = { (char *)p + off, len - off };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b };
	if (h->flags & CO_UM_SENDTO) {
		mh.msg_name = &to;
		mh.msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + h->namelen);
	}
	struct cmsghdr *c = (struct cmsghdr *)cb.b;
	if (h->nfds) {
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(h->nfds * sizeof(int));
		for (uint32_t i = 0; i < h->nfds; i++) {
			int f = co_made_fd(x, ps[i].kind, ps[i].id, (int)ps[i].end);
			if (f < 0)
				return co_kbad(x, "a message queued on Unix socket %llu passes %s %llu, which is missing",
					       (unsigned long long)h->id, co_obj_name(ps[i].kind), (unsigned long long)ps[i].id);
			memcpy(CMSG_DATA(c) + i * sizeof(int), &f, sizeof(f));
		}
		mh.msg_controllen += CMSG_SPACE(h->nfds * sizeof(int));
		c = (struct cmsghdr *)(cb.b + mh.msg_controllen);
	}
	if (h->flags & CO_UM_CREDS) {
		/* the pid must be a live process of init's namespace: its own; uid and gid as they were */
		struct ucred cr = { getpid(), h->uid, h->gid };
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof(cr));
		memcpy(CMSG_DATA(c), &cr, sizeof(cr));
		mh.msg_controllen += CMSG_SPACE(sizeof(cr));
	}
	if (!mh.msg_controllen)
		mh.msg_control = NULL;
	if (sendmsg(s, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)(len - off))
		return co_kerr(x, "cannot put back a message queued on the Unix socket %llu: %s", (unsigned long long)h->id,
			       strerror(errno));
	return 0;
}

void co_unix_describe_msg(const void *p, uint64_t len, char *out, size_t n)
{
	const struct co_usmsg *h = p;
	char to[180] = "", name[160], passed[256] = "", creds[96] = "";
	size_t o = 0;
	const struct co_uspass *ps = (const void *)(h + 1);
	uint32_t nfds = len >= sizeof(*h) + (uint64_t)h->nfds * sizeof(*ps) ? h->nfds : 0;
	for (uint32_t i = 0; i < nfds && o + 48 < sizeof(passed); i++)
		o += (size_t)snprintf(passed + o, sizeof(passed) - o, "%s%s %llu%s", i ? ", " : ", passes ",
				      co_obj_name(ps[i].kind), (unsigned long long)ps[i].id,
				      ps[i].kind == CO_OBJ_PIPE ? (ps[i].end ? " (write end)" : " (read end)") : "");
	if (h->flags & CO_UM_SENDTO)
		snprintf(to, sizeof(to), " to %s", co_unix_name_text(h->name, h->namelen < 108 ? h->namelen : 108, name, sizeof(name)));
	if (h->flags & CO_UM_CREDS)
		snprintf(creds, sizeof(creds), ", credentials pid %d uid %u gid %u", h->pid, h->uid, h->gid);
	uint64_t head = sizeof(*h) + (uint64_t)nfds * sizeof(*ps);
	snprintf(out, n, "socket %llu: %llu bytes from socket %llu%s%s%s", (unsigned long long)h->id,
		 (unsigned long long)(len > head ? len - head : 0), (unsigned long long)h->from, to, passed, creds);
}
