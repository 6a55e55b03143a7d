/*
 * epoll_items: the items of an epoll set must come back watching the
 * files they watched, with the numbers they were added with, their events
 * and data, and report exactly what they reported.
 *
 * The set holds (data: what it watches):
 *   0x33  a pipe, EPOLLONESHOT, fired once (so disabled: fdinfo events
 *         40000000), then its writer closed: the read end has a byte and a
 *         hang-up, and the item must still report nothing (it came back
 *         enabled once, and reported EPOLLHUP);
 *   0x44  an eventfd, EPOLLONESHOT|EPOLLET, fired once (c0000000);
 *   0x11  a pipe holding a byte, added as fd A; A closed since (a duplicate
 *         keeps the pipe open elsewhere) and taken by
 *   0xe1  an eventfd, added as A too (it came back watching the eventfd);
 *   0x55  a signalfd (SIGUSR1), added as fd S, which is now on another
 *         number, while S is
 *   0x22  a pipe's read end, added as S too (the lowest number then) and
 *         moved to another number: nothing is on S now (the item came back
 *         missing: its EPOLL_CTL_ADD failed).
 * At every step: the fdinfo and kcmp(KCMP_EPOLL_TFD) say each item
 * watches its file (epoll_check.h), only 0x11 is ready; a byte in the
 * second pipe, a count in the eventfd, a SIGUSR1 each make exactly their
 * item ready too, until taken back.
 *
 * With the argument "gone" the set watches a pipe whose only descriptor
 * is in flight on a Unix socket (no process holds it): it prints "ready",
 * waits for go.1 (common.h: the checkpoint must be refused meanwhile),
 * takes the descriptor back and checks the item still watches it.  With
 * "idle", a fired EPOLLONESHOT item watches an empty pipe (ready for
 * nothing: it cannot be made to fire at a restart): "ready", go.1, then
 * the item must still be disabled, and fire once re-armed.
 *
 * Output: "step N ok" lines and a RESULT line.
 */
#include "common.h"
#include "epoll_check.h"
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#define STEPS 14
#define IN_ERR_HUP (EPOLLIN | EPOLLERR | EPOLLHUP)

static int ep;

static void add(int fd, uint32_t events, uint64_t data)
{
	struct epoll_event e = { .events = events, .data.u64 = data };
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0, "add fd %d (data %#llx): %s", fd, (unsigned long long)data,
	      strerror(errno));
}

/* An EPOLLONESHOT item just added fires once: the kernel disables it */
static void fire(uint64_t data)
{
	struct epoll_event e;
	CHECK(epoll_wait(ep, &e, 1, 0) == 1 && e.data.u64 == data, "item %#llx did not fire", (unsigned long long)data);
}

static void put(int fd, uint64_t v)
{
	CHECK(write(fd, &v, sizeof(v)) == (ssize_t)sizeof(v), "write fd %d: %s", fd, strerror(errno));
}

/* The descriptor passed on socket s (SCM_RIGHTS), or -1 to receive one */
static int pass_fd(int s, int fd)
{
	char b = 'f', cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &b, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	if (fd >= 0) {
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
		CHECK(sendmsg(s, &mh, 0) == 1, "sendmsg: %s", strerror(errno));
		return fd;
	}
	CHECK(recvmsg(s, &mh, 0) == 1, "recvmsg: %s", strerror(errno));
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	CHECK(c && c->cmsg_type == SCM_RIGHTS, "no descriptor received");
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* "gone": the watched pipe only in flight while the checkpoint is refused */
static void gone(void)
{
	int p[2], sv[2];
	SYSCHK(pipe(p));
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	int tfd = p[0];
	add(tfd, EPOLLIN, 0x66);
	pass_fd(sv[0], p[0]);
	close(p[0]);
	printf("ready\n");
	t_wait_go(1);
	int r = pass_fd(sv[1], -1);
	struct ep_want w[] = { { 0x66, r, tfd, IN_ERR_HUP } };
	ep_items("back", ep, w, 1, NULL);
	ep_ready("back, empty", ep, 0, NULL, NULL);
	put(p[1], 1);
	ep_ready("back, written", ep, 1, (uint64_t[]){ 0x66 }, (uint32_t[]){ EPOLLIN });
	printf("step 0 ok\nRESULT ok\n");
}

/* "idle": a fired EPOLLONESHOT item on an empty pipe while the checkpoint is refused */
static void idle(void)
{
	int p[2];
	uint64_t v;
	SYSCHK(pipe(p));
	add(p[0], EPOLLIN | EPOLLONESHOT, 0x77);
	put(p[1], 1);
	fire(0x77);
	CHECK(read(p[0], &v, sizeof(v)) == (ssize_t)sizeof(v), "read: %s", strerror(errno));
	printf("ready\n");
	t_wait_go(1);
	struct ep_want w[] = { { 0x77, p[0], p[0], EPOLLONESHOT } };
	ep_items("after", ep, w, 1, NULL);
	put(p[1], 1);
	ep_ready("after, written", ep, 0, NULL, NULL);
	struct epoll_event e = { .events = EPOLLIN | EPOLLONESHOT, .data.u64 = 0x77 };
	SYSCHK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e));
	ep_ready("re-armed", ep, 1, (uint64_t[]){ 0x77 }, (uint32_t[]){ EPOLLIN });
	printf("step 0 ok\nRESULT ok\n");
}

int main(int argc, char **argv)
{
	t_init("epoll_items");
	ep = epoll_create1(EPOLL_CLOEXEC);
	SYSCHK(ep);
	if (argc > 1 && !strcmp(argv[1], "gone")) {
		gone();
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "idle")) {
		idle();
		return 0;
	}
	/* the fired EPOLLONESHOT items first: firing one takes whatever else is ready */
	int p3[2];
	SYSCHK(pipe(p3));
	add(p3[0], EPOLLIN | EPOLLONESHOT, 0x33);
	put(p3[1], 3);
	fire(0x33);
	close(p3[1]);
	int e2 = eventfd(1, EFD_NONBLOCK);
	SYSCHK(e2);
	add(e2, EPOLLIN | EPOLLET | EPOLLONESHOT, 0x44);
	fire(0x44);

	/* 0x11 on A, closed, kept as b; the eventfd 0xe1 takes A */
	int p1[2];
	SYSCHK(pipe(p1));
	int a = p1[0];
	add(a, EPOLLIN, 0x11);
	int b = fcntl(a, F_DUPFD, 20);
	SYSCHK(b);
	close(a);
	int e1 = eventfd(0, EFD_NONBLOCK);
	CHECK(e1 == a, "the eventfd is fd %d, not %d", e1, a);
	add(e1, EPOLLIN, 0xe1);
	put(p1[1], 1);

	/* 0x55 a signalfd added as S and moved; 0x22 a pipe added as S too and moved: S left empty */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGUSR1);
	SYSCHK(sigprocmask(SIG_BLOCK, &ss, NULL));
	int s0 = signalfd(-1, &ss, SFD_NONBLOCK);
	SYSCHK(s0);
	add(s0, EPOLLIN, 0x55);
	int sfd = fcntl(s0, F_DUPFD, 30);
	SYSCHK(sfd);
	close(s0);
	int p2[2];
	SYSCHK(pipe(p2));
	CHECK(p2[0] == s0, "the pipe is fd %d, not %d", p2[0], s0);
	add(p2[0], EPOLLIN, 0x22);
	int r2 = fcntl(p2[0], F_DUPFD, 40);
	SYSCHK(r2);
	close(p2[0]);

	struct ep_want want[] = {
		{ 0x33, p3[0], p3[0], EPOLLONESHOT }, { 0x44, e2, e2, EPOLLONESHOT | EPOLLET },
		{ 0x11, b, a, IN_ERR_HUP }, { 0xe1, e1, a, IN_ERR_HUP },
		{ 0x55, sfd, s0, IN_ERR_HUP }, { 0x22, r2, s0, IN_ERR_HUP },
	};
	int n = (int)(sizeof(want) / sizeof(want[0]));
	for (int s = 0; s < STEPS; s++) {
		char when[64];
		uint64_t v;
		struct signalfd_siginfo si;
		t_fmt(when, sizeof(when), "step %d", s);
		ep_items(when, ep, want, n, NULL);
		ep_ready(when, ep, 1, (uint64_t[]){ 0x11 }, (uint32_t[]){ EPOLLIN });
		put(p2[1], (uint64_t)s);
		ep_ready(when, ep, 2, (uint64_t[]){ 0x11, 0x22 }, (uint32_t[]){ EPOLLIN, EPOLLIN });
		CHECK(read(r2, &v, sizeof(v)) == (ssize_t)sizeof(v) && v == (uint64_t)s, "%s: pipe read", when);
		put(e1, 5);
		ep_ready(when, ep, 2, (uint64_t[]){ 0x11, 0xe1 }, (uint32_t[]){ EPOLLIN, EPOLLIN });
		CHECK(read(e1, &v, sizeof(v)) == (ssize_t)sizeof(v) && v == 5, "%s: eventfd read", when);
		SYSCHK(kill(getpid(), SIGUSR1));
		ep_ready(when, ep, 2, (uint64_t[]){ 0x11, 0x55 }, (uint32_t[]){ EPOLLIN, EPOLLIN });
		CHECK(read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si) && si.ssi_signo == SIGUSR1, "%s: signalfd read",
		      when);
		ep_ready(when, ep, 1, (uint64_t[]){ 0x11 }, (uint32_t[]){ EPOLLIN });
		printf("step %d ok\n", s);
		t_pace_ms(100);
	}
	printf("RESULT ok\n");
	return 0;
}
