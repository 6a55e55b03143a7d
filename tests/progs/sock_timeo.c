/*
 * sock_timeo: socket calls that wait with a timeout set on the socket
 * (SO_RCVTIMEO, SO_SNDTIMEO), which the kernel never restarts after a
 * signal handler (signal(7)): with live checkpoints while the program
 * waits in them, each must still end as the kernel ends it without one,
 * with EAGAIN once its timeout ran out, never with EINTR.  Each step
 * waits in recv, recvfrom (as __recv_chk and __recvfrom_chk: this file
 * is built with _FORTIFY_SOURCE), recvmsg and read on an empty stream socket, in send on a full
 * one, in accept on a listener with no client, and in write on the full
 * one; the socket options are checked as they were set, and a message
 * sent each step must arrive whole.  Output: a line per step, then RESULT.
 */
#undef _FORTIFY_SOURCE
#define _FORTIFY_SOURCE 2 /* recv, recvfrom and read of a known buffer go through __recv_chk and the like */
#include "common.h"
#include <limits.h>
#include <sys/socket.h>
#include <sys/un.h>

#define STEPS 12
#define TIMEO_US 60000

static int rx[2], tx[2], lis;
static volatile size_t room = 64; /* not a constant: the fortified calls check it at run time (__recv_chk) */

static void set_timeo(int fd, int opt)
{
	struct timeval tv = { 0, TIMEO_US };
	SYSCHK(setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)));
}

static void check_timeo(int fd, int opt, const char *what)
{
	struct timeval tv;
	socklen_t l = sizeof(tv);
	SYSCHK(getsockopt(fd, SOL_SOCKET, opt, &tv, &l));
	CHECK(tv.tv_sec == 0 && tv.tv_usec == TIMEO_US, "%s: timeout %ld.%06ld s, set %d us", what, (long)tv.tv_sec,
	      (long)tv.tv_usec, TIMEO_US);
}

/* A call that must have waited for its timeout: -1 with EAGAIN, never EINTR. */
static void timed_out(long r, const char *call, int s)
{
	int e = errno;
	CHECK(r < 0, "step %d: %s returned %ld where nothing could come", s, call, r);
	CHECK(e != EINTR, "step %d: %s failed with EINTR (a checkpoint interrupted it)", s, call);
	CHECK(e == EAGAIN, "step %d: %s failed with %s, not EAGAIN", s, call, strerror(e));
}

static void setup(void)
{
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, rx));
	set_timeo(rx[0], SO_RCVTIMEO);
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, tx));
	set_timeo(tx[0], SO_SNDTIMEO);
	/* tx[0]'s way full: a send on it waits */
	int small = 4096;
	SYSCHK(setsockopt(tx[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)));
	SYSCHK(fcntl(tx[0], F_SETFL, O_NONBLOCK));
	static char fill[4096];
	while (send(tx[0], fill, sizeof(fill), 0) > 0)
		;
	CHECK(errno == EAGAIN, "filling the socket: %s", strerror(errno));
	SYSCHK(fcntl(tx[0], F_SETFL, 0));
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/sock_timeo.sock", t_tmpdir());
	unlink(a.sun_path);
	lis = SYSCHK(socket(AF_UNIX, SOCK_STREAM, 0));
	SYSCHK(bind(lis, (struct sockaddr *)&a, sizeof(a)));
	SYSCHK(listen(lis, 4));
	set_timeo(lis, SO_RCVTIMEO);
}

static uint64_t step(int s, uint64_t h)
{
	char buf[64], msg[32];
	check_timeo(rx[0], SO_RCVTIMEO, "the receiving socket");
	check_timeo(tx[0], SO_SNDTIMEO, "the sending socket");
	check_timeo(lis, SO_RCVTIMEO, "the listener");
	timed_out(recv(rx[0], buf, room, 0), "recv", s);
	timed_out(recvfrom(rx[0], buf, room, 0, NULL, NULL), "recvfrom", s);
	struct iovec v = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1 };
	timed_out(recvmsg(rx[0], &mh, 0), "recvmsg", s);
	timed_out(read(rx[0], buf, room), "read", s);
	timed_out(send(tx[0], buf, sizeof(buf), 0), "send", s);
	timed_out(write(tx[0], buf, sizeof(buf)), "write", s);
	timed_out(accept(lis, NULL, NULL), "accept", s);
	/* and what is sent arrives */
	int n = snprintf(msg, sizeof(msg), "message %d", s);
	CHECK(send(rx[1], msg, (size_t)n, 0) == n, "send: %s", strerror(errno));
	ssize_t k = recv(rx[0], buf, sizeof(buf), 0);
	CHECK(k == n && !memcmp(buf, msg, (size_t)n), "step %d: recv returned %zd bytes, not \"%s\"", s, k, msg);
	return t_fnv(h, buf, (size_t)k);
}

int main(void)
{
	t_init("sock_timeo");
	setup();
	uint64_t h = T_FNV_INIT;
	for (int s = 0; s < STEPS; s++) {
		h = step(s, h);
		printf("step %d ok\n", s);
		fflush(stdout);
	}
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
