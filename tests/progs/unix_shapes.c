/*
 * unix_shapes - Unix sockets of every shape, checked in every detail at
 * every step (so after each restart):
 *   - a stream listener bound to a path (mode 0640), with two fresh
 *     connections left in its backlog every step, the first with data
 *     queued (unless UNIX_SHAPES_LIVE is set: a live checkpoint cannot
 *     read that without accepting it), accepted the next step: order,
 *     data, names (getsockname of the accepted end, getpeername of the
 *     client) and both directions checked;
 *   - a seqpacket listener on an abstract name, one connection in its
 *     backlog every step, two messages from it once accepted (unless
 *     UNIX_SHAPES_LIVE);
 *   - an accepted stream connection kept all along, with data queued both
 *     ways at every checkpoint;
 *   - stream, seqpacket and datagram socket pairs with messages queued
 *     both ways (boundaries checked by their sizes);
 *   - a datagram socket bound to a path, with messages queued from a
 *     connected unnamed client, an unconnected sender and a named sender
 *     (recvfrom's addresses checked);
 *   - a datagram socket whose file was unlinked, its connected client
 *     still sending to it (the file must stay absent);
 *   - a stream pair with one half shut down and "bye" still unread;
 *   - a datagram pair whose receiver has SO_PASSCRED, a message queued:
 *     the option stays, the message's credentials keep uid and gid (the
 *     pid is the sender's, or after a restart 1: see src/kinds/unix_queue.c).
 * Prints "step N ok" and a RESULT that hashes everything read.
 */
#include "common.h"
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define STEPS 12

static uint64_t h = T_FNV_INIT;
static char dir[4096];

static socklen_t addr(struct sockaddr_un *a, const char *name, int abstract)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	size_t n = strlen(name);
	CHECK(n + 2 < sizeof(a->sun_path), "name too long: %s", name);
	memcpy(a->sun_path + (abstract ? 1 : 0), name, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 1 : 0) + (abstract ? 0 : 1));
}

static void path_of(char *out, const char *base)
{
	t_fmt(out, 4096, "%s/%s", dir, base);
}

static int bound(int type, const char *base, int abstract)
{
	struct sockaddr_un a;
	char p[4096];
	path_of(p, base);
	int s = SYSCHK(socket(AF_UNIX, type, 0));
	if (!abstract)
		unlink(p);
	socklen_t l = addr(&a, abstract ? base : p, abstract);
	SYSCHK(bind(s, (struct sockaddr *)&a, l));
	return s;
}

static int connected(int type, const char *base, int abstract)
{
	struct sockaddr_un a;
	char p[4096];
	path_of(p, base);
	int s = SYSCHK(socket(AF_UNIX, type, 0));
	socklen_t l = addr(&a, abstract ? base : p, abstract);
	SYSCHK(connect(s, (struct sockaddr *)&a, l));
	return s;
}

/* the name a socket has (self) or is connected to (peer) is base */
static void check_name(int s, int peer, const char *base, int abstract, const char *what)
{
	struct sockaddr_un a, want;
	char p[4096];
	socklen_t l = sizeof(a);
	path_of(p, base);
	socklen_t wl = addr(&want, abstract ? base : p, abstract);
	SYSCHK(peer ? getpeername(s, (struct sockaddr *)&a, &l) : getsockname(s, (struct sockaddr *)&a, &l));
	CHECK(l == wl && memcmp(&a, &want, l) == 0, "%s: %s name is not %s (length %u, want %u)", what,
	      peer ? "peer" : "own", base, (unsigned)l, (unsigned)wl);
}

static void sendm(int s, const char *fmt, int step, int k)
{
	char m[64];
	int n = snprintf(m, sizeof(m), fmt, step, k);
	CHECK(send(s, m, (size_t)n, MSG_NOSIGNAL) == n, "send \"%s\": %s", m, strerror(errno));
}

/* the next message on s is exactly this one (a datagram or seqpacket: its whole size) */
static void recvm(int s, const char *fmt, int step, int k, const char *what)
{
	char want[64], got[128];
	int n = snprintf(want, sizeof(want), fmt, step, k);
	ssize_t r = recv(s, got, sizeof(got), MSG_DONTWAIT);
	CHECK(r == n && memcmp(got, want, (size_t)n) == 0, "%s: expected \"%s\", got %zd bytes (%s)", what, want, r,
	      r < 0 ? strerror(errno) : "");
	h = t_fnv(h, got, (size_t)r);
}

/* a stream: exactly len bytes of this text queued */
static void recvs(int s, const char *fmt, int step, int k, const char *what)
{
	char want[64], got[64];
	int n = snprintf(want, sizeof(want), fmt, step, k);
	ssize_t r = recv(s, got, (size_t)n, MSG_DONTWAIT | MSG_WAITALL);
	CHECK(r == n && memcmp(got, want, (size_t)n) == 0, "%s: expected \"%s\", got %zd bytes", what, want, r);
	h = t_fnv(h, got, (size_t)r);
}

static void empty(int s, const char *what)
{
	char c;
	ssize_t r = recv(s, &c, 1, MSG_DONTWAIT | MSG_PEEK);
	CHECK(r < 0 && errno == EAGAIN, "%s: more queued than expected (%zd)", what, r);
}

static int accept_one(int l, const char *what)
{
	struct pollfd pf = { l, POLLIN, 0 };
	CHECK(poll(&pf, 1, 0) == 1, "%s: no connection waiting in the backlog", what);
	return SYSCHK(accept(l, NULL, NULL));
}

static void check_type(int s, int type, const char *what)
{
	int t = 0;
	socklen_t l = sizeof(t);
	SYSCHK(getsockopt(s, SOL_SOCKET, SO_TYPE, &t, &l));
	CHECK(t == type, "%s: type %d, not %d", what, t, type);
}

/* the message queued on s (SO_PASSCRED) comes with our uid and gid */
static void check_creds(int s, int step)
{
	int on = 0;
	socklen_t ol = sizeof(on);
	SYSCHK(getsockopt(s, SOL_SOCKET, SO_PASSCRED, &on, &ol));
	CHECK(on, "SO_PASSCRED is gone");
	char buf[64], want[64];
	union {
		char b[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b, .msg_controllen = sizeof(cb.b) };
	ssize_t r = recvmsg(s, &mh, MSG_DONTWAIT);
	int n = snprintf(want, sizeof(want), "cred %d %d", step, 0);
	CHECK(r == n && !memcmp(buf, want, (size_t)n), "credentials message: %zd bytes", r);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	CHECK(c && c->cmsg_type == SCM_CREDENTIALS, "no credentials with the message");
	struct ucred cr;
	memcpy(&cr, CMSG_DATA(c), sizeof(cr));
	CHECK(cr.uid == getuid() && cr.gid == getgid() && cr.pid > 0, "credentials pid %d uid %u gid %u", (int)cr.pid,
	      (unsigned)cr.uid, (unsigned)cr.gid);
	h = t_fnv(h, buf, (size_t)r);
}

int main(void)
{
	t_init("unix_shapes");
	t_mkworkdir(dir, sizeof(dir), "unix_shapes");
	int live = getenv("UNIX_SHAPES_LIVE") != NULL;
	char abs_name[64], p[4096];
	snprintf(abs_name, sizeof(abs_name), "cohort-shapes-%llx", (unsigned long long)t_fnv(T_FNV_INIT, dir, strlen(dir)));

	int L = bound(SOCK_STREAM, "l.sock", 0);
	SYSCHK(listen(L, 8));
	path_of(p, "l.sock");
	SYSCHK(chmod(p, 0640));
	int A = bound(SOCK_SEQPACKET, abs_name, 1);
	SYSCHK(listen(A, 4));
	/* an accepted connection kept all along */
	int kc = connected(SOCK_STREAM, "l.sock", 0);
	int ks = accept_one(L, "kept");
	int ps[2], pq[2], pd[2], hf[2], pc[2], one = 1;
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, ps));
	SYSCHK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pq));
	SYSCHK(socketpair(AF_UNIX, SOCK_DGRAM, 0, pd));
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, hf));
	SYSCHK(socketpair(AF_UNIX, SOCK_DGRAM, 0, pc));
	SYSCHK(setsockopt(pc[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
	t_write_all(hf[0], "bye", 3, -1);
	SYSCHK(shutdown(hf[0], SHUT_WR));
	int D = bound(SOCK_DGRAM, "d.sock", 0);
	int E = connected(SOCK_DGRAM, "d.sock", 0);
	int F = SYSCHK(socket(AF_UNIX, SOCK_DGRAM, 0));
	int G = bound(SOCK_DGRAM, "g.sock", 0);
	int U = bound(SOCK_DGRAM, "u.sock", 0);
	int V = connected(SOCK_DGRAM, "u.sock", 0);
	path_of(p, "u.sock");
	SYSCHK(unlink(p));
	struct sockaddr_un da;
	char dp[4096];
	path_of(dp, "d.sock");
	socklen_t dl = addr(&da, dp, 0);
	int bl[3] = { -1, -1, -1 };

	for (int s = 0; s < STEPS; s++) {
		/* every detail of the shapes */
		int on = 0;
		socklen_t ol = sizeof(on);
		SYSCHK(getsockopt(L, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol));
		CHECK(on == 1, "the listener does not listen");
		check_type(L, SOCK_STREAM, "listener");
		check_type(A, SOCK_SEQPACKET, "abstract listener");
		check_type(pq[0], SOCK_SEQPACKET, "seqpacket pair");
		check_type(pd[1], SOCK_DGRAM, "datagram pair");
		check_name(L, 0, "l.sock", 0, "listener");
		check_name(A, 0, abs_name, 1, "abstract listener");
		check_name(ks, 0, "l.sock", 0, "accepted");
		check_name(kc, 1, "l.sock", 0, "client");
		check_name(D, 0, "d.sock", 0, "datagram socket");
		check_name(E, 1, "d.sock", 0, "its client");
		check_name(U, 0, "u.sock", 0, "unlinked datagram socket");
		check_name(V, 1, "u.sock", 0, "its client");
		struct stat st;
		path_of(p, "l.sock");
		SYSCHK(stat(p, &st));
		CHECK(S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0640, "l.sock has mode %o", st.st_mode);
		path_of(p, "u.sock");
		CHECK(stat(p, &st) < 0 && errno == ENOENT, "the unlinked socket's file is back");
		/* the half shut down: "bye" then nothing, writes from it refused, the other way open */
		char c[4];
		CHECK(recv(hf[1], c, sizeof(c), MSG_PEEK | MSG_DONTWAIT) == 3 && !memcmp(c, "bye", 3), "bye is not queued");
		CHECK(send(hf[0], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno == EPIPE, "the shut half can send");
		sendm(hf[1], "back %d %d", s, 0);
		recvs(hf[0], "back %d %d", s, 0, "the open half");

		if (s > 0) {
			/* what the previous step queued, in both directions */
			recvs(ks, "kept c->s %d %d", s - 1, 0, "kept (server)");
			recvs(kc, "kept s->c %d %d", s - 1, 0, "kept (client)");
			recvs(ps[1], "pair %d %d", s - 1, 0, "stream pair 1");
			recvs(ps[0], "pair %d %d", s - 1, 1, "stream pair 0");
			for (int k = 0; k < 2; k++) {
				recvm(pq[1], "seq %d %d", s - 1, k, "seqpacket pair 1");
				recvm(pq[0], "seq %d %d", s - 1, k + 2, "seqpacket pair 0");
				recvm(pd[1], "dg %d %d", s - 1, k, "datagram pair 1");
				recvm(pd[0], "dg %d %d", s - 1, k + 2, "datagram pair 0");
			}
			/* the named datagram socket: from its client (unnamed), F (unnamed), G (named) */
			const char *from[3] = { NULL, NULL, "g.sock" };
			for (int k = 0; k < 3; k++) {
				struct sockaddr_un a;
				socklen_t al = sizeof(a);
				char m[64], want[64];
				ssize_t r = recvfrom(D, m, sizeof(m), MSG_DONTWAIT, (struct sockaddr *)&a, &al);
				int n = snprintf(want, sizeof(want), "to d %d %d", s - 1, k);
				CHECK(r == n && !memcmp(m, want, (size_t)n), "d.sock: message %d of step %d: %zd bytes", k, s - 1, r);
				if (from[k]) {
					char gp[4096];
					path_of(gp, from[k]);
					CHECK(al == offsetof(struct sockaddr_un, sun_path) + strlen(gp) + 1 && !strcmp(a.sun_path, gp),
					      "d.sock: message %d comes from %.*s, not %s", k, (int)(al - 2), a.sun_path, gp);
				} else {
					CHECK(al == 0, "d.sock: message %d has a sender's name", k);
				}
				h = t_fnv(h, m, (size_t)r);
			}
			recvm(U, "to u %d %d", s - 1, 0, "unlinked datagram socket");
			check_creds(pc[1], s - 1);
			/* the backlogs: in order, with their data */
			int a0 = accept_one(L, "backlog 0"), a1 = accept_one(L, "backlog 1"), a2 = accept_one(A, "abstract backlog");
			check_name(a0, 0, "l.sock", 0, "accepted from the backlog");
			check_name(bl[0], 1, "l.sock", 0, "backlog client");
			check_name(a2, 0, abs_name, 1, "accepted from the abstract backlog");
			if (!live)
				recvs(a0, "waiting %d %d", s - 1, 0, "backlog 0");
			empty(a0, "backlog 0");
			empty(a1, "backlog 1");
			for (int k = 0; k < 2 && !live; k++)
				recvm(a2, "seqwait %d %d", s - 1, k, "abstract backlog");
			empty(a2, "abstract backlog");
			sendm(a0, "hello %d %d", s, 0);
			recvs(bl[0], "hello %d %d", s, 0, "backlog client 0");
			sendm(bl[1], "hi %d %d", s, 1);
			recvs(a1, "hi %d %d", s, 1, "accepted 1");
			close(a0), close(a1), close(a2);
			for (int k = 0; k < 3; k++)
				close(bl[k]);
		}
		empty(ks, "kept (server)");
		empty(kc, "kept (client)");
		empty(D, "d.sock");
		empty(U, "unlinked datagram socket");

		/* queue for the next step, and leave connections in the backlogs */
		sendm(kc, "kept c->s %d %d", s, 0);
		sendm(ks, "kept s->c %d %d", s, 0);
		sendm(ps[0], "pair %d %d", s, 0);
		sendm(ps[1], "pair %d %d", s, 1);
		for (int k = 0; k < 2; k++) {
			sendm(pq[0], "seq %d %d", s, k);
			sendm(pq[1], "seq %d %d", s, k + 2);
			sendm(pd[0], "dg %d %d", s, k);
			sendm(pd[1], "dg %d %d", s, k + 2);
		}
		sendm(E, "to d %d %d", s, 0);
		char m[64];
		int n = snprintf(m, sizeof(m), "to d %d %d", s, 1);
		CHECK(sendto(F, m, (size_t)n, 0, (struct sockaddr *)&da, dl) == n, "sendto d.sock: %s", strerror(errno));
		n = snprintf(m, sizeof(m), "to d %d %d", s, 2);
		CHECK(sendto(G, m, (size_t)n, 0, (struct sockaddr *)&da, dl) == n, "sendto d.sock: %s", strerror(errno));
		sendm(V, "to u %d %d", s, 0);
		sendm(pc[0], "cred %d %d", s, 0);
		bl[0] = connected(SOCK_STREAM, "l.sock", 0);
		if (!live)
			sendm(bl[0], "waiting %d %d", s, 0);
		bl[1] = connected(SOCK_STREAM, "l.sock", 0);
		bl[2] = connected(SOCK_SEQPACKET, abs_name, 1);
		for (int k = 0; k < 2 && !live; k++)
			sendm(bl[2], "seqwait %d %d", s, k);
		printf("step %d ok\n", s);
		t_sleep_ms(200);
	}
	char c[8];
	CHECK(recv(hf[1], c, sizeof(c), 0) == 3 && recv(hf[1], c, sizeof(c), 0) == 0, "bye, then the end");
	printf("RESULT %llx\n", (unsigned long long)h);
	return 0;
}
