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
 * A datagram or seqpacket message is one peek: exact, one of no bytes
 * too (see zm_note).  The kernel marks such a message once peeked and
 * hides it from every later peek at an offset, so a walk that peeked one
 * makes the queue new (q_requeue: read, then sent again in order by the
 * socket's only sender), and the next checkpoint sees it as well.
 *
 * On a stream, a peek (like a read) glues the bytes queued before a
 * message that passes descriptors to it; a peek shows where that message
 * ends, never where it begins (even a peek of one byte walks on to it and
 * brings its descriptors), only reading one byte at a time does.  So a
 * checkpoint reads a stream that passes descriptors (q_take), and the
 * peer sends what was read again: a live checkpoint at once, a --kill
 * one if it fails (co_unix_settle).  A stream whose peer cannot send
 * again (closed, or shut down sending) is peeked, and the bytes before
 * such a message come back as part of it (a reader that read exactly up
 * to it gets the descriptors with that read instead of the next).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include "kinds/unix_int.h"
#include "cli/cli.h"
#include "proto.h"

#define MAX_PASS 253	/* SCM_MAX_FD: the most one message can pass */
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04	/* Linux 6.5 */
#endif

/* One message peeked: its bytes, passed descriptors (our copies), credentials, sender. */
struct qmsg {
	ssize_t len;
	int fds[MAX_PASS], nfds;
	int creds;		/* the program sees cred (its socket has SO_PASSCRED) */
	int got_cred;		/* cred came with it (sent again with it: send_again) */
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
	int first;	/* refs[first]: the socket */
	int s, old_off;
	int stream;	/* SOCK_STREAM (a peek is cut at a message passing descriptors: it must be whole) */
	int own_creds;	/* SO_PASSCRED set by us for the time of the reading (see q_open) */
	int off;	/* bytes peeked so far */
	int take;	/* read it (see q_take), not peek */
	int replay;	/* the dump's walk: the messages of no bytes the collect's noted come back in place */
	int pending;	/* q_take: a byte read that begins the next message (next; with descriptors: to end) */
	ssize_t end;	/* q_take: bytes from the head to the end of the next message passing descriptors (0: none) */
	struct qmsg next;
	char next_byte;
	int sender;	/* a datagram or seqpacket socket: our descriptor of the one that alone sends to it, or -1 */
	uint32_t snamelen;
	char sname[108];	/* the sender's name */
	int zeros;	/* a message of no bytes was peeked (so marked: see zm_note) */
	int foreign;	/* a message whose sender is not q->sender's name */
	/*
	 * An unconnected named datagram socket, which any socket may send to:
	 * its queue is made new message by message from each sender's socket
	 * in the group (its name), or from one of ours (an unnamed sender),
	 * sent to the receiver's name (to) (q_requeue).
	 */
	const struct co_kdump *d;
	int many, to_path;
	struct sockaddr_un to;
	socklen_t tolen;
	int outside;	/* many: a message from a named sender not in the group (cannot be sent again as it) */
};

/*
 * Our descriptor of the socket of r, its peek offset at 0.  A datagram or
 * seqpacket socket gets SO_PASSCRED for the time of the reading: a peek
 * of a message of no bytes returns 0 as the end of a seqpacket queue
 * whose peer is gone does, and only the credentials every message
 * carries tell one from the other.  Its only sender, if it has one
 * (co_unix_only_sender), is grabbed too, for q_requeue.
 */
static int q_open(const struct co_kdump *d, int first, struct queue *q)
{
	int zero = 0, one = 1, on = 0;
	socklen_t l = sizeof(q->old_off);
	memset(q, 0, sizeof(*q));
	q->first = first;
	q->old_off = -1;
	q->sender = -1;
	q->s = co_ref_grab(&d->refs[first]);
	if (q->s < 0)
		return -1;
	getsockopt(q->s, SOL_SOCKET, SO_PEEK_OFF, &q->old_off, &l);
	setsockopt(q->s, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero));
	int type = 0;
	l = sizeof(type);
	getsockopt(q->s, SOL_SOCKET, SO_TYPE, &type, &l);
	q->stream = type == SOCK_STREAM;
	l = sizeof(on);
	if (!q->stream && getsockopt(q->s, SOL_SOCKET, SO_PASSCRED, &on, &l) == 0 && !on)
		q->own_creds = setsockopt(q->s, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0;
	int k = q->stream ? -1 : co_unix_only_sender(d, first);
	if (k >= 0 && (q->sender = co_ref_grab(&d->refs[k])) >= 0) {
		struct sockaddr_un a;
		socklen_t al = sizeof(a);
		if (getsockname(q->sender, (struct sockaddr *)&a, &al) == 0 && al > offsetof(struct sockaddr_un, sun_path))
			q->snamelen = (uint32_t)(al - offsetof(struct sockaddr_un, sun_path));
		memcpy(q->sname, a.sun_path, q->snamelen);
	}
	q->d = d;
	q->to_path = -1;
	if (type == SOCK_DGRAM && q->sender < 0)
		q->many = co_unix_reach_addr(d, first, &q->to, &q->tolen, &q->to_path) == 0;
	return 0;
}

/* The program's own peek offset and SO_PASSCRED back. */
static void q_close(struct queue *q)
{
	int zero = 0;
	if (q->pending)
		q_drop_fds(&q->next);
	if (q->own_creds)
		setsockopt(q->s, SOL_SOCKET, SO_PASSCRED, &zero, sizeof(zero));
	setsockopt(q->s, SOL_SOCKET, SO_PEEK_OFF, &q->old_off, sizeof(q->old_off));
	close(q->s);
	if (q->sender >= 0)
		close(q->sender);
	if (q->to_path >= 0)
		close(q->to_path);
}

/* How q_recv receives: a peek at q->off, a read, a peek at the head (SO_PEEK_OFF off already) */
enum { Q_PEEK, Q_READ, Q_HEAD };

/*
 * One recvmsg of up to size bytes into buf, as how says; m gets its length, passed descriptors (our copies), credentials,
 * sender.  1: a message (of no bytes too, on a datagram or seqpacket
 * socket); 0 at the end; -1 truncated (a read's bytes and descriptors are
 * in m all the same).
 */
static int q_recv(struct queue *q, struct qmsg *m, char *buf, size_t size, int how)
{
	union {
		char b[CMSG_SPACE(MAX_PASS * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} cb;
	struct sockaddr_un from;
	struct iovec iov = { buf, size };
	struct msghdr mh = { &from, sizeof(from), &iov, 1, cb.b, sizeof(cb.b), 0 };
	memset(m, 0, sizeof(*m));
	if (how == Q_PEEK)
		setsockopt(q->s, SOL_SOCKET, SO_PEEK_OFF, &q->off, sizeof(q->off));
	m->len = recvmsg(q->s, &mh, (how == Q_READ ? 0 : MSG_PEEK) | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (m->len < 0 || (m->len == 0 && q->stream))
		return 0; /* nothing more (EAGAIN), or a stream's end */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < n && m->nfds < MAX_PASS; i++)
				memcpy(&m->fds[m->nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			memcpy(&m->cred, CMSG_DATA(c), sizeof(m->cred));
			m->got_cred = 1;
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_PIDFD) {
			/* the program's SO_PASSPIDFD gives us a pidfd of the sender with every peek: not kept */
			int pidfd;
			memcpy(&pidfd, CMSG_DATA(c), sizeof(pidfd));
			if (pidfd >= 0)
				close(pidfd);
		}
	}
	if (m->len == 0 && !m->got_cred)
		return 0; /* a seqpacket's end: a message has credentials (q_open) */
	m->creds = m->got_cred && !q->own_creds; /* with ours, the program does not get them */
	if (mh.msg_namelen > offsetof(struct sockaddr_un, sun_path)) {
		m->namelen = mh.msg_namelen - (uint32_t)offsetof(struct sockaddr_un, sun_path);
		memcpy(m->name, from.sun_path, m->namelen);
	}
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (q->stream && m->nfds && (size_t)m->len == size && size > 1)) {
		if (how != Q_READ) /* what a read took is the caller's, to keep */
			q_drop_fds(m);
		return -1;
	}
	return 1;
}

/* A stream: whether a message passing descriptors is queued (a peek walks on to the first one whatever its size). */
static int q_passes(struct queue *q)
{
	struct qmsg t;
	char c; /* not into qdata: it may hold the message being made */
	int passes = q_recv(q, &t, &c, 1, Q_PEEK) > 0 && t.nfds > 0;
	q_drop_fds(&t);
	return passes;
}

/*
 * A stream read from its head (take): the bytes up to the end of the
 * first message passing descriptors, which a peek shows (it walks on to
 * that message whatever its size and stops at its end; where it begins it
 * does not show).  0 when none is queued (or the peek stopped before one,
 * where the credentials change), -1 when it is too long to peek whole.
 */
static ssize_t q_fp_end(struct queue *q)
{
	struct qmsg t;
	int r = q_recv(q, &t, qdata, sizeof(qdata), Q_PEEK);
	ssize_t end = r > 0 && t.nfds ? t.len : 0;
	q_drop_fds(&t);
	return r < 0 ? -1 : end;
}

static int same_creds(const struct qmsg *a, const struct qmsg *b)
{
	return a->creds == b->creds && (!a->creds || !memcmp(&a->cred, &b->cred, sizeof(a->cred)));
}

/*
 * The next message of a stream, read (unix_dump_queue keeps what it read,
 * for the peer to send it again: see struct kept).  A peek or a read
 * glues the bytes before a message passing descriptors to it; where that
 * message ends a peek shows (q_fp_end), where it begins only reading one
 * byte at a time does: the read that brings the descriptors is its first
 * byte.  (Not a peek of one byte at an offset: with its byte copied, the
 * kernel's peek goes on over the next buffers, copying nothing, to the
 * first that carries descriptors, and brings them; it stops earlier only
 * where the credentials change, with SO_PASSCRED.)  So the messages are
 * exactly the program's: the bytes before (cut where the credentials
 * change), the message with its descriptors, and so on.  1, 0 at the
 * end, -1.
 */
static int q_take(struct queue *q, struct qmsg *m)
{
	struct qmsg t;
	memset(m, 0, sizeof(*m));
	if (q->pending) { /* the byte the last call read: the first of this message */
		*m = q->next;
		qdata[0] = q->next_byte;
		q->pending = 0;
		if (m->nfds) { /* the rest of the message passing descriptors, to its end */
			size_t rest = (size_t)q->end;
			int r = rest ? q_recv(q, &t, qdata + 1, rest, Q_READ) : 1;
			int bad = r <= 0 || (rest && ((size_t)t.len != rest || t.nfds));
			m->len += rest && r != 0 ? t.len : 0;
			if (rest)
				q_drop_fds(&t);
			q->end = 0;
			return bad ? -1 : 1;
		}
	} else if ((q->end = q_fp_end(q)) < 0) {
		return -1;
	}
	if (!q->end) { /* none further: one read (a read stops where the credentials change) */
		int r = q_recv(q, &t, qdata + m->len, sizeof(qdata) - (size_t)m->len, Q_READ);
		if (!m->len)
			*m = t;
		else if (r != 0)
			m->len += t.len;
		return r < 0 ? -1 : m->len > 0;
	}
	while (q->end > 0 && (size_t)m->len < sizeof(qdata)) {
		if (q_recv(q, &t, qdata + m->len, 1, Q_READ) <= 0)
			return -1;
		q->end--;
		if (t.nfds || (m->len && !same_creds(m, &t))) { /* this byte begins the next message */
			q->next = t;
			q->next_byte = qdata[m->len];
			q->pending = 1;
			return m->len ? 1 : q_take(q, m);
		}
		if (!m->len) {
			m->creds = t.creds;
			m->got_cred = t.got_cred;
			m->cred = t.cred;
		}
		m->len++;
	}
	return m->len > 0;
}

/*
 * Datagrams of no bytes.  A peek returns one once: the kernel marks it
 * (skb->peeked) and a peek at an offset passes over a marked one ever
 * after (so that a loop of peeks ends).  So the collect's walk, the
 * first of a checkpoint, notes each one it sees (where: the bytes before
 * it; with its sender, credentials and our copies of its descriptors),
 * and the dump's walk puts it back in its place.  One the program peeked
 * at (at the head: to learn a size) is seen by a peek without an offset.
 * The mark stays: a later checkpoint would not see one that is not at the
 * head by then, so a walk that peeked one makes the queue new after it
 * (q_requeue) where its only sender can send it again; else the next
 * checkpoint misses it (a limit: a socket that others than its peer
 * send to).
 */
static struct zmark {
	int first, off;
	struct qmsg m;
} *zm;
static int nzm, maxzm;

static void zm_drop(void)
{
	for (int i = 0; i < nzm; i++)
		q_drop_fds(&zm[i].m);
	nzm = 0;
}

/*
 * The array p of *max items, n of them in use, with room for one more:
 * itself, or grown by step items (realloc), or NULL (out of memory: p is
 * as it was).
 */
static void *room_for_one(void *p, int n, int *max, int step, size_t size)
{
	if (n < *max)
		return p;
	void *more = realloc(p, (size_t)(*max + step) * size);
	if (more)
		*max += step;
	return more;
}

/* m (of no bytes) noted at q's place, with copies of its descriptors; 0 or -1. */
static int zm_note(const struct queue *q, const struct qmsg *m)
{
	struct zmark *more = room_for_one(zm, nzm, &maxzm, 16, sizeof(*zm));
	if (!more)
		return -1;
	zm = more;
	struct zmark *z = &zm[nzm];
	z->first = q->first;
	z->off = q->off;
	z->m = *m;
	for (int i = 0; i < m->nfds; i++)
		if ((z->m.fds[i] = fcntl(m->fds[i], F_DUPFD_CLOEXEC, 0)) < 0) {
			z->m.nfds = i;
			q_drop_fds(&z->m);
			return -1;
		}
	nzm++;
	return 0;
}

/* What was noted of refs[first]: no more (its queue was made new, its messages are peeked again). */
static void zm_forget(int first)
{
	for (int i = 0; i < nzm; i++)
		if (zm[i].first == first) {
			q_drop_fds(&zm[i].m);
			zm[i].m.len = -1;
		}
}

/* The next noted message of no bytes at q's place, taken into m (its descriptors m's now): 1, or 0. */
static int zm_take(const struct queue *q, struct qmsg *m)
{
	for (int i = 0; i < nzm; i++)
		if (zm[i].first == q->first && zm[i].off == q->off && zm[i].m.len == 0) {
			*m = zm[i].m;
			zm[i].m.len = -1; /* taken */
			zm[i].m.nfds = 0;
			return 1;
		}
	return 0;
}

/* The head of a datagram or seqpacket queue, if it is a message of no bytes, noted (a peek without an offset). */
static int zm_head(struct queue *q)
{
	struct qmsg m;
	int off = -1, r = 0;
	setsockopt(q->s, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	if (!q->stream && q_recv(q, &m, qdata, 0, Q_HEAD) > 0) {
		q->zeros |= m.len == 0;
		r = m.len == 0 ? zm_note(q, &m) : 0;
		q_drop_fds(&m);
	}
	return r;
}

/* The next message into m (bytes in qdata): 1; 0 at the end; -1 too long to read whole. */
static int q_next(struct queue *q, struct qmsg *m)
{
	if (q->take)
		return q_take(q, m);
	if (q->replay && zm_take(q, m))
		return 1;
	int r = q_recv(q, m, qdata, sizeof(qdata), Q_PEEK);
	if (r > 0 && !q->stream) {
		q->zeros |= m->len == 0;
		q->foreign |= m->namelen != q->snamelen || memcmp(m->name, q->sname, m->namelen);
		q->outside |= q->many && m->namelen && co_unix_dgram_named(q->d, m->name, m->namelen) < 0;
	}
	if (r > 0)
		q->off += (int)m->len;
	return r;
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

/*
 * One message sent on s: len bytes, nfds descriptors (SCM_RIGHTS), the
 * credentials cr (SCM_CREDENTIALS; NULL: the sender's own), to the
 * address to (NULL: the peer).  What sendmsg returns.
 */
static ssize_t send_msg(int s, const void *buf, size_t len, const int *fds, uint32_t nfds, const struct ucred *cr,
			const struct sockaddr_un *to, socklen_t tolen)
{
	union {
		char b[CMSG_SPACE(MAX_PASS * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} cb;
	memset(&cb, 0, sizeof(cb));
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_name = (void *)to, .msg_namelen = to ? tolen : 0, .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cb.b };
	struct cmsghdr *c = (struct cmsghdr *)cb.b;
	if (nfds) {
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
		mh.msg_controllen += CMSG_SPACE(nfds * sizeof(int));
		c = (struct cmsghdr *)(cb.b + mh.msg_controllen);
	}
	if (cr) {
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof(*cr));
		memcpy(CMSG_DATA(c), cr, sizeof(*cr));
		mh.msg_controllen += CMSG_SPACE(sizeof(*cr));
	}
	if (!mh.msg_controllen)
		mh.msg_control = NULL;
	return sendmsg(s, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/*
 * m (its bytes in buf) sent again on s, its descriptors with it, with its
 * credentials when they may be given (the sender alive, privilege over
 * it: refused before anything is sent), else the coordinator's.  0, or -1
 * (errno; a part sent is not sent again).
 */
static int send_again(int s, const char *buf, const struct qmsg *m)
{
	ssize_t n = -1;
	if (m->got_cred)
		n = send_msg(s, buf, (size_t)m->len, m->fds, (uint32_t)m->nfds, &m->cred, NULL, 0);
	if (n < 0)
		n = send_msg(s, buf, (size_t)m->len, m->fds, (uint32_t)m->nfds, NULL, NULL, 0);
	if (n >= 0 && n != m->len)
		errno = EAGAIN;
	return n == m->len ? 0 : -1;
}

/*
 * Message m sent again to q's socket as its sender sent it: from the only
 * sender; or (q->many) from the socket of the group bound to the name it
 * came from, else from own (an unnamed sender's: recvfrom shows no name
 * either way), to the receiver's name.
 */
static int send_from(struct queue *q, int own, const char *buf, const struct qmsg *m)
{
	if (!q->many)
		return send_again(q->sender, buf, m);
	int k = m->namelen ? co_unix_dgram_named(q->d, m->name, m->namelen) : -1;
	int s = k >= 0 ? co_ref_grab(&q->d->refs[k]) : own;
	ssize_t n = -1;
	if (s >= 0 && m->got_cred)
		n = send_msg(s, buf, (size_t)m->len, m->fds, (uint32_t)m->nfds, &m->cred, &q->to, q->tolen);
	if (s >= 0 && n < 0)
		n = send_msg(s, buf, (size_t)m->len, m->fds, (uint32_t)m->nfds, NULL, &q->to, q->tolen);
	if (k >= 0 && s >= 0)
		close(s);
	if (n >= 0 && n != m->len)
		errno = EAGAIN;
	return n == m->len ? 0 : -1;
}

/*
 * q's queue made new, so that the messages of no bytes a walk peeked (so
 * marked: see zm_note) are seen by the next checkpoint's walks too: each
 * message read, then all sent again in order, each with its bytes,
 * descriptors and credentials, from its only sender (q->sender), as the
 * program's were: a read after it sees the same messages from the same
 * sender.  The group is stopped: nothing else sends to it meanwhile.  0,
 * or -1 when some could not be put back (named in a warning).
 */
static int q_requeue(struct queue *q, const struct co_ref *r)
{
	struct held {
		struct qmsg m;
		char *bytes;
	} *h = NULL;
	int n = 0, max = 0, e = 0;
	for (;;) {
		struct held *t = room_for_one(h, n, &max, 16, sizeof(*h));
		if (!t) { /* what was read goes behind what was not */
			co_warn("pid %d: fd %d: out of memory making the queue of the Unix socket new: its order "
				"changed", r->pid, r->fd);
			e = -1;
			break;
		}
		h = t;
		if (q_recv(q, &h[n].m, qdata, sizeof(qdata), Q_READ) == 0)
			break;
		h[n].bytes = malloc((size_t)h[n].m.len + 1);
		if (h[n].bytes)
			memcpy(h[n].bytes, qdata, (size_t)h[n].m.len);
		n++;
	}
	/* the program's SO_PASSCRED back first: a message sent without credentials gets them as the program's did */
	int zero = 0;
	if (q->own_creds && setsockopt(q->s, SOL_SOCKET, SO_PASSCRED, &zero, sizeof(zero)) == 0)
		q->own_creds = 0;
	int own = q->many ? socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) : -1;
	for (int i = 0; i < n; i++) {
		struct qmsg *m = &h[i].m;
		if (!h[i].bytes || send_from(q, own, h[i].bytes, m) < 0) {
			co_warn("pid %d: fd %d: a message of %zd bytes queued on the Unix socket, read to be queued again, "
				"could not be put back: %s", r->pid, r->fd, m->len, h[i].bytes ? strerror(errno) : "out of memory");
			e = -1;
		}
		q_drop_fds(m);
		free(h[i].bytes);
	}
	if (own >= 0)
		close(own);
	free(h);
	return e;
}

/* After a walk of q: its queue made new when it must and can be (see zm_note, q_requeue); 0 or -1. */
static int q_made_new(struct queue *q, const struct co_ref *r)
{
	if (!q->zeros || (q->many ? q->outside : q->sender < 0 || q->foreign))
		return 0;
	zm_forget(q->first);
	return q_requeue(q, r);
}

int co_unix_collect_queue(struct co_kdump *d, int first, int first_queue)
{
	struct queue q;
	struct qmsg m;
	char what[512];
	int e = 0;
	if (first_queue)
		zm_drop();
	if (q_open(d, first, &q) < 0)
		return queue_err(d, first, "cannot be read");
	e = zm_head(&q);
	while (!e && (e = q_next(&q, &m)) > 0) {
		e = m.len == 0 && zm_note(&q, &m) < 0 ? -1 : 0;
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
	if (!e && q_made_new(&q, &d->refs[first]) < 0)
		e = -3;
	q_close(&q);
	if (e == -3)
		return queue_err(d, first, "holds messages that could not all be put back after reading them");
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

/*
 * Each message a checkpoint read off a stream (q_take), in order, with
 * the descriptors it passes (ours now) and a descriptor of the peer that
 * sent it.  A live checkpoint has the peer send them again at once, once
 * the queue is read (co_unix_dump_queue); a --kill one keeps them until
 * it ends: committed, they are let go (the group ends); failed, the peer
 * sends them again (co_unix_settle).  So the program, which runs on,
 * reads every byte and descriptor where it was.  The whole queue is read,
 * so that they go back in order.
 */
static struct kept {
	int to;			/* our descriptor of the peer */
	struct qmsg m;		/* its descriptors and credentials */
	char *bytes;
	char who[48];		/* the receiving socket: "pid P: fd F" */
} *kept;
static int nkept, maxkept;

/* m (bytes in qdata) kept, to be sent back from to (our descriptor, duplicated); m's descriptors are the kept's now. */
static int keep(int to, struct qmsg *m, const struct co_ref *r)
{
	struct kept *more = room_for_one(kept, nkept, &maxkept, 64, sizeof(*kept));
	if (!more)
		return -1;
	kept = more;
	struct kept *k = &kept[nkept];
	k->bytes = malloc((size_t)m->len + 1);
	k->to = k->bytes ? fcntl(to, F_DUPFD_CLOEXEC, 0) : -1;
	if (k->to < 0) {
		free(k->bytes);
		return -1;
	}
	memcpy(k->bytes, qdata, (size_t)m->len);
	k->m = *m;
	m->nfds = 0;
	snprintf(k->who, sizeof(k->who), "pid %d: fd %d", r->pid, r->fd);
	nkept++;
	return 0;
}

/* The kept from from on: sent again by their peers (give), or let go; `what` says which read them, for a warning. */
static void kept_end(int from, int give, const char *what)
{
	for (int i = from; i < nkept; i++) {
		struct kept *k = &kept[i];
		if (give && send_again(k->to, k->bytes, &k->m) < 0)
			co_warn("%s: %zd bytes queued on the Unix socket, read by the %s, could not be put back: %s", k->who,
				k->m.len, what, strerror(errno));
		q_drop_fds(&k->m);
		close(k->to);
		free(k->bytes);
	}
	nkept = from;
}

void co_unix_settle(int failed)
{
	zm_drop();
	kept_end(0, failed, "failed checkpoint");
}

/*
 * Our descriptor of the peer of the stream refs[first] (o), which can put
 * back what a checkpoint reads off it: -1 when there is none (its peer
 * closed, or shut down sending).
 */
static int q_giver(struct co_kdump *d, const struct co_usock *o)
{
	int k = o->shut & 1 ? -1 : co_unix_ref(d, o->peer);
	return k >= 0 ? co_ref_grab(&d->refs[k]) : -1;
}

/* A checkpoint that failed reading q: the rest of the queue read and kept too, so that all goes back in order. */
static void q_keep_rest(struct queue *q, int giver, const struct co_ref *r)
{
	struct qmsg m;
	q->take = 1;
	if (q->pending) {
		q->pending = 0;
		qdata[0] = q->next_byte;
		if (keep(giver, &q->next, r) < 0)
			q_drop_fds(&q->next);
	}
	while (q_recv(q, &m, qdata, sizeof(qdata), Q_READ) != 0)
		if (keep(giver, &m, r) < 0)
			q_drop_fds(&m);
}

int co_unix_dump_queue(struct co_kdump *d, int first)
{
	const struct co_usock *o = co_unix_planned(first);
	const struct co_ref *r = &d->refs[first];
	/* a listener has no queue; a stream to a peer outside comes back as a fresh connection: its queue stays behind */
	if (!o || o->state == ST_LISTEN || ((o->flags & CO_USF_OUTSIDE) && o->type != SOCK_DGRAM))
		return 0;
	struct queue q;
	struct qmsg m;
	char what[512] = "cannot be read";
	int e = 0, giver = -1, kept0 = nkept;
	if (q_open(d, first, &q) < 0)
		return queue_err(d, first, what);
	q.replay = 1;
	/*
	 * Exact places for the descriptors a stream passes, by reading it (a
	 * peek cannot tell where such a message begins: see q_take), when what
	 * is read can be put back by the peer (a connection accepted from a
	 * backlog too: its client puts it back before the connection is given
	 * back, unix_backlog.c).
	 */
	if (q.stream && q_passes(&q))
		q.take = (giver = q_giver(d, o)) >= 0;
	while (!e && (e = q_next(&q, &m)) != 0) {
		e = e > 0 ? write_msg(d, o, &m, what, sizeof(what)) : -1;
		/* what was read is kept whatever happens, to go back if the checkpoint fails */
		if (giver >= 0 && (m.len > 0 || m.nfds) && keep(giver, &m, r) < 0)
			e = -1;
		q_drop_fds(&m);
	}
	if (giver >= 0 && e < 0)
		q_keep_rest(&q, giver, r);
	if (giver >= 0)
		close(giver);
	if (!(d->flags & CO_CKPT_KILL)) /* the program runs on at once: what was read goes back now */
		kept_end(kept0, 1, "checkpoint");
	if (!e && q_made_new(&q, r) < 0) {
		e = -1;
		snprintf(what, sizeof(what), "holds messages that could not all be put back after reading them");
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
		if (own_sender < 0 && (own_sender = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) >= 0)
			co_unix_raise_sndbuf(own_sender);
		s = own_sender;
	}
	if (s < 0)
		return co_kbad(x, "a message queued on Unix socket %llu has no socket to come from", (unsigned long long)h->id);
	struct sockaddr_un to;
	socklen_t tolen = co_unix_address(h->id, h->name, h->namelen, &to);
	int fds[MAX_PASS];
	for (uint32_t i = 0; i < h->nfds; i++) {
		fds[i] = co_made_fd(x, ps[i].kind, ps[i].id, (int)ps[i].end);
		if (fds[i] < 0)
			return co_kbad(x, "a message queued on Unix socket %llu passes %s %llu, which is missing",
				       (unsigned long long)h->id, co_obj_name(ps[i].kind), (unsigned long long)ps[i].id);
	}
	/* the pid must be a live process of init's namespace: its own; uid and gid as they were */
	struct ucred cr = { getpid(), h->uid, h->gid };
	ssize_t n = send_msg(s, (const char *)p + off, len - off, fds, h->nfds, h->flags & CO_UM_CREDS ? &cr : NULL,
			     h->flags & CO_UM_SENDTO ? &to : NULL, tolen);
	if (n < 0)
		return co_kerr(x, "cannot put back a message queued on the Unix socket %llu: %s", (unsigned long long)h->id,
			       strerror(errno));
	/* a short send sets no errno: say how far it went (the sender's SO_SNDBUF was full) */
	if (n != (ssize_t)(len - off))
		return co_kerr(x, "cannot put back a message queued on the Unix socket %llu: sent %zd of %llu bytes",
			       (unsigned long long)h->id, n, (unsigned long long)(len - off));
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

/* One message of len bytes passing nfds descriptors, on s (unix_backlog.c's markers): what sendmsg returns. */
ssize_t co_unix_send_fds(int s, const void *buf, size_t len, const int *fds, uint32_t nfds)
{
	return send_msg(s, buf, len, fds, nfds, NULL, NULL, 0);
}
