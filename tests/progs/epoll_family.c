/*
 * epoll_family (application group): an epoll set a parent and its child
 * share (inherited), each adding items on files of its own, with the same
 * numbers: the child's items must come back watching the child's files,
 * the parent's the parent's.
 *
 * After the fork the child makes an eventfd (count 1, readable) and adds
 * it (0xc1); the parent makes a pipe, whose read end takes the same
 * number, holding a byte, and adds it (0xa1): two items with that
 * number (after a restart both watched the parent's pipe).  The child
 * also adds a second eventfd as fd M and moves it to another number,
 * leaving M empty (0xc2), and the parent a pidfd of the child (0x99,
 * ready once the child has ended).  At every step the two take turns (a
 * pipe each way, so that their epoll_waits never overlap): each checks
 * the set's fdinfo (all four items) and, for the files it holds, that
 * each item watches them (kcmp(KCMP_EPOLL_TFD), epoll_check.h); each sees
 * 0xa1 and 0xc1 ready, and the child's count in the second eventfd makes
 * 0xc2 ready for both until it takes it back.  At the end the child exits
 * (its eventfds closed: their items go), and the pidfd's item reports it;
 * once the child is waited for the pidfd is closed (and its item goes).
 *
 * Output (the parent's): "step N ok" lines and a RESULT line.
 */
#include "common.h"
#include "epoll_check.h"
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#define STEPS 14
#define IN_ERR_HUP (EPOLLIN | EPOLLERR | EPOLLHUP)

static int ep;

static void add(int fd, uint64_t data)
{
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = data };
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0, "add fd %d (data %#llx): %s", fd, (unsigned long long)data,
	      strerror(errno));
}

static void put(int fd, uint64_t v)
{
	CHECK(write(fd, &v, sizeof(v)) == (ssize_t)sizeof(v), "write fd %d: %s", fd, strerror(errno));
}

static uint64_t take(int fd)
{
	uint64_t v = 0;
	CHECK(read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v), "read fd %d: %s", fd, strerror(errno));
	return v;
}

/* The child's answer on fd from_child, or FAIL if it ends first (its pidfd readable) */
static uint64_t answer(int from_child, int pfd, int s)
{
	struct pollfd p[2] = { { from_child, POLLIN, 0 }, { pfd, POLLIN, 0 } };
	while (poll(p, 2, -1) < 0)
		CHECK(errno == EINTR, "poll: %s", strerror(errno));
	CHECK(p[0].revents & POLLIN, "the child failed at step %d", s);
	return take(from_child);
}

/* Both see the same set: the numbers and files (mine: the ones this process holds, kcmp-checked) */
static struct ep_want want[4];

static void child(int to_parent, int from_parent)
{
	int e1 = eventfd(1, EFD_NONBLOCK);
	SYSCHK(e1);
	add(e1, 0xc1);
	int m = eventfd(0, EFD_NONBLOCK);
	SYSCHK(m);
	add(m, 0xc2);
	int e2 = fcntl(m, F_DUPFD, 50);
	SYSCHK(e2);
	close(m);
	put(to_parent, (uint64_t)e1 << 32 | (uint64_t)m);
	want[1] = (struct ep_want){ 0xc1, e1, e1, IN_ERR_HUP };
	want[2] = (struct ep_want){ 0xc2, e2, m, IN_ERR_HUP };
	for (;;) {
		uint64_t s = take(from_parent);
		if (s == ~0ull)
			_exit(0);
		char when[64];
		t_fmt(when, sizeof(when), "child, step %d", (int)(s & 0xffff));
		/* the parent's numbers come with each turn */
		want[0] = (struct ep_want){ 0xa1, -1, (int)(s >> 16 & 0xffff), IN_ERR_HUP };
		want[3] = (struct ep_want){ 0x99, -1, (int)(s >> 32 & 0xffff), IN_ERR_HUP };
		ep_items(when, ep, want, 4, (int[]){ 0, 1, 1, 0 });
		ep_ready(when, ep, 2, (uint64_t[]){ 0xa1, 0xc1 }, (uint32_t[]){ EPOLLIN, EPOLLIN });
		put(e2, 2);
		ep_ready(when, ep, 3, (uint64_t[]){ 0xa1, 0xc1, 0xc2 }, (uint32_t[]){ EPOLLIN, EPOLLIN, EPOLLIN });
		put(to_parent, s);
		/* the parent sees 0xc2 ready too, then the count is taken back */
		CHECK(take(from_parent) == s, "child: out of step");
		CHECK(take(e2) == 2, "child: eventfd count");
		put(to_parent, s);
	}
}

int main(void)
{
	t_init("epoll_family");
	int up[2], down[2];
	SYSCHK(pipe(up));
	SYSCHK(pipe(down));
	ep = epoll_create1(EPOLL_CLOEXEC);
	SYSCHK(ep);
	pid_t c = fork();
	SYSCHK(c);
	/* (the ends each does not use stay open: the next numbers are the same in both) */
	if (c == 0)
		child(up[1], down[0]);
	uint64_t nums = take(up[0]);
	int ce1 = (int)(nums >> 32), cm = (int)(nums & 0xffffffff);
	int p[2];
	SYSCHK(pipe(p));
	CHECK(p[0] == ce1, "the pipe is fd %d, the child's eventfd %d", p[0], ce1);
	add(p[0], 0xa1);
	put(p[1], 1);
	int pfd = (int)syscall(SYS_pidfd_open, c, 0);
	SYSCHK(pfd);
	add(pfd, 0x99);
	want[0] = (struct ep_want){ 0xa1, p[0], p[0], IN_ERR_HUP };
	want[1] = (struct ep_want){ 0xc1, -1, ce1, IN_ERR_HUP };
	want[2] = (struct ep_want){ 0xc2, -1, cm, IN_ERR_HUP };
	want[3] = (struct ep_want){ 0x99, pfd, pfd, IN_ERR_HUP };
	for (int s = 0; s < STEPS; s++) {
		char when[64];
		t_fmt(when, sizeof(when), "step %d", s);
		ep_items(when, ep, want, 4, (int[]){ 1, 0, 0, 1 });
		ep_ready(when, ep, 2, (uint64_t[]){ 0xa1, 0xc1 }, (uint32_t[]){ EPOLLIN, EPOLLIN });
		/* the child's turn: it checks, then counts in its second eventfd */
		uint64_t turn = (uint64_t)pfd << 32 | (uint64_t)p[0] << 16 | (uint64_t)s;
		put(down[1], turn);
		CHECK(answer(up[0], pfd, s) == turn, "the child is out of step at step %d", s);
		ep_ready(when, ep, 3, (uint64_t[]){ 0xa1, 0xc1, 0xc2 }, (uint32_t[]){ EPOLLIN, EPOLLIN, EPOLLIN });
		put(down[1], turn);
		CHECK(answer(up[0], pfd, s) == turn, "the child is out of step at step %d", s);
		printf("step %d ok\n", s);
		t_pace_ms(100);
	}
	put(down[1], ~0ull);
	/* ended, not yet waited for: its eventfds are closed (their items went with them), its pidfd is ready */
	siginfo_t si;
	SYSCHK(waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT));
	CHECK(si.si_code == CLD_EXITED && si.si_status == 0, "child failed");
	ep_items("end", ep, (struct ep_want[]){ want[0], want[3] }, 2, NULL);
	ep_ready("end", ep, 2, (uint64_t[]){ 0xa1, 0x99 }, (uint32_t[]){ EPOLLIN, EPOLLIN });
	CHECK(waitpid(c, NULL, 0) == c, "waitpid: %s", strerror(errno));
	/* a pidfd of a process waited for cannot be restored: a last checkpoint at the end gate must not meet it */
	close(pfd);
	ep_items("end, pidfd closed", ep, want, 1, NULL);
	printf("RESULT ok\n");
	return 0;
}
