/*
 * unix_backlog.c - a server whose listeners always have connections
 * waiting in their backlogs with data queued, across checkpoints that
 * take them to read that data (src/kinds/unix_backlog.c) and give them
 * back when the group runs on (a live checkpoint, a --kill one that
 * fails), or leave them for a restart.
 *
 * Every step (so after each checkpoint, failed or not, and each restart):
 *   - a new connection (with data) is made to the stream listener first:
 *     it must come after the three the step before left waiting;
 *   - the listener is readable by poll, select and epoll until the last
 *     is accepted, and then not;
 *   - the three are accepted in order, each differently: accept with the
 *     peer's address (its client is bound to a path: the address is that
 *     path), accept4 SOCK_NONBLOCK|SOCK_CLOEXEC with no address,
 *     syscall(SYS_accept4) with room for one byte of the address (the
 *     full length said); each at the lowest free descriptor, with exactly
 *     the flags asked; every byte its client sent is read, in order;
 *     each answers its own client;
 *   - two connections to a seqpacket listener (abstract name) with two
 *     messages each: accepted in order, every message whole;
 *   - then three stream and two seqpacket connections are left waiting,
 *     with data.
 * Prints "step N ok" and a RESULT that hashes everything read.
 */
#include "common.h"
#include <poll.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>

#define STEPS 14
#define K 3	/* stream connections left waiting every step */
#define Q 2	/* seqpacket ones */

static uint64_t h = T_FNV_INIT;
static char dir[4096];
static char abs_name[64];

static socklen_t addr_of(struct sockaddr_un *a, const char *base, int abstract)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (abstract) {
		size_t n = strlen(base);
		memcpy(a->sun_path + 1, base, n);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	}
	t_fmt(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, base);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1);
}

static int connected(int type, const char *base, int abstract, const char *bind_to)
{
	struct sockaddr_un a;
	int s = SYSCHK(socket(AF_UNIX, type, 0));
	if (bind_to) {
		socklen_t l = addr_of(&a, bind_to, 0);
		unlink(a.sun_path);
		SYSCHK(bind(s, (struct sockaddr *)&a, l));
	}
	socklen_t l = addr_of(&a, base, abstract);
	SYSCHK(connect(s, (struct sockaddr *)&a, l));
	return s;
}

static int readable(int l, int ep)
{
	struct pollfd pf = { l, POLLIN, 0 };
	int p = SYSCHK(poll(&pf, 1, 0));
	fd_set r;
	FD_ZERO(&r);
	FD_SET(l, &r);
	struct timeval tv = { 0, 0 };
	int s = SYSCHK(select(l + 1, &r, NULL, NULL, &tv));
	struct epoll_event ev;
	int e = SYSCHK(epoll_wait(ep, &ev, 1, 0));
	CHECK(p == s && s == e, "poll says %d, select %d, epoll %d", p, s, e);
	return p;
}

/* exactly n bytes of want from s (waiting for them), then none for now */
static void expect(int s, const char *want, size_t n, const char *what)
{
	char buf[256];
	size_t got = 0;
	while (got < n) {
		struct pollfd pf = { s, POLLIN, 0 };
		CHECK(poll(&pf, 1, 5000) == 1, "%s: %zu of %zu bytes came", what, got, n);
		ssize_t r = recv(s, buf + got, n - got, 0);
		CHECK(r > 0, "%s: recv: %zd (%s) after %zu of %zu bytes", what, r, strerror(errno), got, n);
		got += (size_t)r;
	}
	CHECK(!memcmp(buf, want, n), "%s: got '%.*s', want '%.*s'", what, (int)n, buf, (int)n, want);
	CHECK(recv(s, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN, "%s: more than was sent", what);
	h = t_fnv(h, buf, n);
}

/* what client k of step s sends: three messages, one stream of bytes */
static size_t sent(char *out, size_t n, int s, int k)
{
	size_t len = 0;
	for (int m = 0; m < 3; m++)
		len += (size_t)snprintf(out + len, n - len, "step %d conn %d msg %d;", s, k, m);
	return len;
}

/* the lowest free descriptor now: where an accept must put its connection */
static int lowest_free(void)
{
	int d = SYSCHK(dup(0));
	close(d);
	return d;
}

static void check_flags(int fd, int nonblock, int cloexec, const char *what)
{
	int fl = SYSCHK(fcntl(fd, F_GETFL)), fd_fl = SYSCHK(fcntl(fd, F_GETFD));
	CHECK(!!(fl & O_NONBLOCK) == nonblock && !!(fd_fl & FD_CLOEXEC) == cloexec, "%s: O_NONBLOCK %d, FD_CLOEXEC %d",
	      what, !!(fl & O_NONBLOCK), !!(fd_fl & FD_CLOEXEC));
}

/* the three stream connections of step s, and the late one behind them */
static void take_streams(int L, int ep, int s, int *cl, int late)
{
	char want[256], p[4096];
	int a[K];
	for (int k = 0; k < K; k++) {
		CHECK(readable(L, ep) == 1, "step %d: the listener is not readable with connection %d waiting", s, k);
		int at = lowest_free();
		struct sockaddr_un pa;
		memset(&pa, 0, sizeof(pa));
		socklen_t pl = sizeof(pa);
		if (k == 0) {
			a[k] = SYSCHK(accept(L, (struct sockaddr *)&pa, &pl));
			t_fmt(p, sizeof(p), "%s/c%d.sock", dir, s - 1);
			CHECK(pl == offsetof(struct sockaddr_un, sun_path) + strlen(p) + 1 && !strcmp(pa.sun_path, p),
			      "step %d: accept's peer address is not its client's %s (length %u)", s, p, (unsigned)pl);
			check_flags(a[k], 0, 0, "accept");
		} else if (k == 1) {
			a[k] = SYSCHK(accept4(L, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
			check_flags(a[k], 1, 1, "accept4 SOCK_NONBLOCK|SOCK_CLOEXEC");
		} else {
			pl = 1;
			a[k] = (int)SYSCHK(syscall(SYS_accept4, L, (struct sockaddr *)&pa, &pl, 0));
			CHECK(pl == sizeof(sa_family_t) && pa.sun_path[0] == 0, "step %d: syscall(SYS_accept4): length %u",
			      s, (unsigned)pl);
			check_flags(a[k], 0, 0, "syscall(SYS_accept4)");
		}
		CHECK(a[k] == at, "step %d: connection %d accepted at fd %d, not the lowest free %d", s, k, a[k], at);
		expect(a[k], want, sent(want, sizeof(want), s - 1, k), "a connection from the backlog");
	}
	int b = SYSCHK(accept(L, NULL, NULL));
	int n = snprintf(want, sizeof(want), "late %d", s);
	expect(b, want, (size_t)n, "the connection made after the checkpoint");
	CHECK(readable(L, ep) == 0, "step %d: the listener is readable with its backlog empty", s);
	for (int k = 0; k < K; k++) {
		n = snprintf(want, sizeof(want), "reply %d %d", s, k);
		CHECK(send(a[k], want, (size_t)n, 0) == n, "reply: %s", strerror(errno));
		expect(cl[k], want, (size_t)n, "the reply to a client");
		close(a[k]);
		close(cl[k]);
	}
	close(b);
	close(late);
}

static void take_seqpackets(int A, int s)
{
	for (int k = 0; k < Q; k++) {
		int a = SYSCHK(accept(A, NULL, NULL));
		for (int m = 0; m < 2; m++) {
			char buf[64], want[64];
			int n = snprintf(want, sizeof(want), "seq %d %d %d", s - 1, k, m);
			ssize_t r = recv(a, buf, sizeof(buf), MSG_DONTWAIT);
			CHECK(r == n && !memcmp(buf, want, (size_t)n), "seqpacket %d message %d of step %d: %zd bytes", k, m,
			      s - 1, r);
			h = t_fnv(h, buf, (size_t)r);
		}
		close(a);
	}
}

int main(void)
{
	t_init("unix_backlog");
	t_mkworkdir(dir, sizeof(dir), "unix_backlog");
	snprintf(abs_name, sizeof(abs_name), "cohort-backlog-%llx", (unsigned long long)t_fnv(T_FNV_INIT, dir, strlen(dir)));
	struct sockaddr_un a;
	socklen_t al = addr_of(&a, "l.sock", 0);
	unlink(a.sun_path);
	int L = SYSCHK(socket(AF_UNIX, SOCK_STREAM, 0));
	SYSCHK(bind(L, (struct sockaddr *)&a, al));
	SYSCHK(listen(L, 16));
	int A = SYSCHK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
	al = addr_of(&a, abs_name, 1);
	SYSCHK(bind(A, (struct sockaddr *)&a, al));
	SYSCHK(listen(A, 8));
	int ep = SYSCHK(epoll_create1(EPOLL_CLOEXEC));
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = L };
	SYSCHK(epoll_ctl(ep, EPOLL_CTL_ADD, L, &ev));
	int cl[K], sq[Q];

	for (int s = 0; s < STEPS; s++) {
		if (s > 0) {
			/* made after the checkpoint that may have come: it must come after the waiting ones */
			int late = connected(SOCK_STREAM, "l.sock", 0, NULL);
			char m[32];
			int n = snprintf(m, sizeof(m), "late %d", s);
			CHECK(send(late, m, (size_t)n, 0) == n, "late: %s", strerror(errno));
			take_streams(L, ep, s, cl, late);
			take_seqpackets(A, s);
			for (int k = 0; k < Q; k++)
				close(sq[k]);
		}
		CHECK(readable(L, ep) == 0, "step %d: the listener is readable before any connection", s);
		/* leave connections waiting, with data */
		for (int k = 0; k < K; k++) {
			char b[32], m[256];
			t_fmt(b, sizeof(b), "c%d.sock", s);
			cl[k] = connected(SOCK_STREAM, "l.sock", 0, k == 0 ? b : NULL);
			size_t n = sent(m, sizeof(m), s, k);
			CHECK(send(cl[k], m, n, 0) == (ssize_t)n, "send: %s", strerror(errno));
		}
		for (int k = 0; k < Q; k++) {
			sq[k] = connected(SOCK_SEQPACKET, abs_name, 1, NULL);
			for (int m = 0; m < 2; m++) {
				char b[64];
				int n = snprintf(b, sizeof(b), "seq %d %d %d", s, k, m);
				CHECK(send(sq[k], b, (size_t)n, 0) == n, "send seqpacket: %s", strerror(errno));
			}
		}
		printf("step %d ok\n", s);
		fflush(stdout);
		t_sleep_ms(200);
	}
	printf("RESULT %llx\n", (unsigned long long)h);
	return 0;
}
