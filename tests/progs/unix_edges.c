/*
 * unix_edges - what a Unix socket holds at the edges, at every checkpoint
 * (src/kinds/unix_queue.c, unix.c; issue 13):
 *  - datagrams of no bytes between others, on a datagram pair and on a
 *    seqpacket pair: each must come back in place (a read returns 0 for
 *    it, then the next message; then nothing, EAGAIN), one at the head
 *    too that the program has peeked at (as to learn its size);
 *  - the program's own SO_PEEK_OFF, on a stream and on a datagram socket,
 *    part-way through what is queued: the next peek goes on from there;
 *  - SO_PASSCRED off stays off (the checkpoint sets it for a moment);
 *  - a path two sockets have: a listener whose file was removed (with a
 *    connection accepted from it) and the one bound there after it; a
 *    datagram socket likewise, with a sender connected to the first:
 *    both keep the name, new clients reach the second, the first's
 *    connections go on.
 * Every step reads the previous step's messages and queues its own.  Prints
 * "step N ok" and a RESULT.
 */
#include "common.h"
#include <sys/socket.h>
#include <sys/un.h>

#define STEPS 12

static uint64_t h = T_FNV_INIT;

/* The next message on s: exactly text ("" for one of no bytes). */
static void expect_msg(int s, const char *text, const char *what)
{
	char buf[64];
	ssize_t r = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	CHECK(r == (ssize_t)strlen(text) && !memcmp(buf, text, (size_t)r), "%s: expected \"%s\" (%zu bytes), got %zd (%s)",
	      what, text, strlen(text), r, r < 0 ? strerror(errno) : "");
	h = t_fnv(h, buf, (size_t)r);
	h = t_fnv_u64(h, (uint64_t)r);
}

static void expect_empty(int s, const char *what)
{
	char c;
	ssize_t r = recv(s, &c, 1, MSG_DONTWAIT);
	CHECK(r < 0 && errno == EAGAIN, "%s: more queued than sent (%zd)", what, r);
}

/* Messages of step k on s (datagram or seqpacket): two of bytes, two of none. */
static void send_four(int s, int k)
{
	char t[32];
	snprintf(t, sizeof(t), "one %d", k);
	SYSCHK(send(s, t, strlen(t), 0));
	SYSCHK(send(s, "", 0, 0));
	snprintf(t, sizeof(t), "two %d", k);
	SYSCHK(send(s, t, strlen(t), 0));
	SYSCHK(send(s, "", 0, 0));
}

static void read_four(int s, int k, const char *what)
{
	char t[32];
	snprintf(t, sizeof(t), "one %d", k);
	expect_msg(s, t, what);
	expect_msg(s, "", what);
	snprintf(t, sizeof(t), "two %d", k);
	expect_msg(s, t, what);
	expect_msg(s, "", what);
}

/*
 * s has SO_PEEK_OFF, left past the last message peeked (3 bytes each):
 * the one step k queues is peeked from there, the oldest read.
 */
static void peek_step(int w, int s, int k, const char *what)
{
	char t[8], buf[8];
	int off = -2;
	socklen_t l = sizeof(off);
	SYSCHK(getsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &off, &l));
	CHECK(off == (k ? 3 : 0), "%s: SO_PEEK_OFF is %d, not %d", what, off, k ? 3 : 0);
	snprintf(t, sizeof(t), "P%02d", k);
	SYSCHK(send(w, t, 3, 0));
	ssize_t r = recv(s, buf, 3, MSG_PEEK | MSG_DONTWAIT);
	CHECK(r == 3 && !memcmp(buf, t, 3), "%s: a peek at the offset gave %zd bytes \"%.*s\", not \"%s\"", what, r,
	      (int)(r > 0 ? r : 0), buf, t);
	if (k > 0) {
		snprintf(t, sizeof(t), "P%02d", k - 1);
		r = recv(s, buf, 3, MSG_DONTWAIT);
		CHECK(r == 3 && !memcmp(buf, t, 3), "%s: expected \"%s\"", what, t);
	}
	h = t_fnv(h, buf, 3);
}

/* The two sockets of one path (see the head), and what is connected to the first. */
struct shared {
	struct sockaddr_un sa, da;
	int l1, l2, c1, a1;	/* listeners, the first's client and its accepted end */
	int d1, d2, tx;		/* datagram sockets, tx connected to d1 */
};

static void bind_path(int s, const struct sockaddr_un *a)
{
	SYSCHK(bind(s, (const struct sockaddr *)a, sizeof(*a)));
}

static void shared_make(struct shared *z)
{
	char dir[512];
	t_mkworkdir(dir, sizeof(dir), "unix_edges");
	CHECK(strlen(dir) + 8 < sizeof(z->sa.sun_path), "%s: too long a path for a socket", dir);
	z->sa = z->da = (struct sockaddr_un){ .sun_family = AF_UNIX };
	snprintf(z->sa.sun_path, sizeof(z->sa.sun_path), "%.100s/l.sock", dir);
	snprintf(z->da.sun_path, sizeof(z->da.sun_path), "%.100s/d.sock", dir);
	unlink(z->sa.sun_path);
	unlink(z->da.sun_path);
	z->l1 = SYSCHK(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0));
	bind_path(z->l1, &z->sa);
	SYSCHK(listen(z->l1, 4));
	z->c1 = SYSCHK(socket(AF_UNIX, SOCK_STREAM, 0));
	SYSCHK(connect(z->c1, (struct sockaddr *)&z->sa, sizeof(z->sa)));
	z->a1 = SYSCHK(accept(z->l1, NULL, NULL));
	SYSCHK(unlink(z->sa.sun_path));
	z->l2 = SYSCHK(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0));
	bind_path(z->l2, &z->sa);
	SYSCHK(listen(z->l2, 4));
	z->d1 = SYSCHK(socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0));
	bind_path(z->d1, &z->da);
	z->tx = SYSCHK(socket(AF_UNIX, SOCK_DGRAM, 0));
	SYSCHK(connect(z->tx, (struct sockaddr *)&z->da, sizeof(z->da)));
	SYSCHK(unlink(z->da.sun_path));
	z->d2 = SYSCHK(socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0));
	bind_path(z->d2, &z->da);
}

/* fd's own name (peer: its peer's) is a's path. */
static void name_is(int fd, int peer, const struct sockaddr_un *a, const char *what)
{
	struct sockaddr_un got = { 0 };
	socklen_t l = sizeof(got);
	SYSCHK(peer ? getpeername(fd, (struct sockaddr *)&got, &l) : getsockname(fd, (struct sockaddr *)&got, &l));
	CHECK(!strcmp(got.sun_path, a->sun_path), "%s: named \"%s\", not \"%s\"", what, got.sun_path, a->sun_path);
}

/* Step k: names as they were; a new client reaches the second listener; each first one's link goes on. */
static void shared_step(struct shared *z, int k)
{
	char t[32], buf[32];
	name_is(z->l1, 0, &z->sa, "the first listener");
	name_is(z->l2, 0, &z->sa, "the second listener");
	name_is(z->c1, 1, &z->sa, "the first listener's client");
	name_is(z->d1, 0, &z->da, "the first datagram socket");
	name_is(z->d2, 0, &z->da, "the second datagram socket");
	name_is(z->tx, 1, &z->da, "the first datagram socket's sender");
	int c = SYSCHK(socket(AF_UNIX, SOCK_STREAM, 0));
	SYSCHK(connect(c, (struct sockaddr *)&z->sa, sizeof(z->sa)));
	int a = accept(z->l2, NULL, NULL);
	CHECK(a >= 0, "a new client did not reach the second listener");
	CHECK(accept(z->l1, NULL, NULL) < 0 && errno == EAGAIN, "a new client reached the first listener");
	close(a);
	close(c);
	if (k > 0) { /* what step k-1 sent waits on the first's links */
		snprintf(t, sizeof(t), "c1 %d", k - 1);
		t_read_all(z->a1, buf, strlen(t), -1);
		CHECK(!memcmp(buf, t, strlen(t)), "the first listener's connection lost \"%s\"", t);
		snprintf(t, sizeof(t), "tx %d", k - 1);
		expect_msg(z->d1, t, "the first datagram socket");
		snprintf(t, sizeof(t), "to d2 %d", k - 1);
		expect_msg(z->d2, t, "the second datagram socket");
	}
	snprintf(t, sizeof(t), "c1 %d", k);
	t_write_all(z->c1, t, strlen(t), -1);
	snprintf(t, sizeof(t), "tx %d", k);
	SYSCHK(send(z->tx, t, strlen(t), 0));
	snprintf(t, sizeof(t), "to d2 %d", k);
	int u = SYSCHK(socket(AF_UNIX, SOCK_DGRAM, 0));
	SYSCHK(sendto(u, t, strlen(t), 0, (struct sockaddr *)&z->da, sizeof(z->da)));
	close(u);
}

int main(void)
{
	t_init("unix_edges");
	int d[2], q[2], ps[2], pd[2], z[2], zero = 0;
	SYSCHK(socketpair(AF_UNIX, SOCK_DGRAM, 0, d));
	SYSCHK(socketpair(AF_UNIX, SOCK_DGRAM, 0, z));
	SYSCHK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, q));
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, ps));
	SYSCHK(socketpair(AF_UNIX, SOCK_DGRAM, 0, pd));
	SYSCHK(setsockopt(ps[1], SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)));
	SYSCHK(setsockopt(pd[1], SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)));
	struct shared sh;
	shared_make(&sh);
	for (int s = 0; s < STEPS; s++) {
		int on = -1;
		socklen_t l = sizeof(on);
		SYSCHK(getsockopt(d[1], SOL_SOCKET, SO_PASSCRED, &on, &l));
		CHECK(on == 0, "SO_PASSCRED is on, the program never set it");
		if (s > 0) {
			read_four(d[1], s - 1, "datagram");
			read_four(q[1], s - 1, "seqpacket");
		}
		expect_empty(d[1], "datagram");
		expect_empty(q[1], "seqpacket");
		send_four(d[0], s);
		send_four(q[0], s);
		char t[32], c;
		if (s > 0) {
			expect_msg(z[1], "", "peeked head");
			snprintf(t, sizeof(t), "after %d", s - 1);
			expect_msg(z[1], t, "peeked head");
		}
		expect_empty(z[1], "peeked head");
		snprintf(t, sizeof(t), "after %d", s);
		SYSCHK(send(z[0], "", 0, 0));
		SYSCHK(send(z[0], t, strlen(t), 0));
		CHECK(recv(z[1], &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0, "a peek at a datagram of no bytes");
		peek_step(ps[0], ps[1], s, "stream SO_PEEK_OFF");
		peek_step(pd[0], pd[1], s, "datagram SO_PEEK_OFF");
		shared_step(&sh, s);
		printf("step %d ok\n", s);
		t_sleep_ms(220);
	}
	printf("RESULT %llx\n", (unsigned long long)h);
	return 0;
}
