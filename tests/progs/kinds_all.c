/*
 * kinds_all (application group): one descriptor of every kind the group
 * shares, all held by a parent and its forked child at once, each in use
 * at every step: a pipe (the parent sends the step number), an eventfd
 * (added to each step, drained by the parent after epoll says it is
 * readable), a signalfd (SIGUSR1, blocked: the child queues one per step,
 * read by the parent a step later), a timerfd armed an hour away, an epoll
 * set watching the eventfd, a Unix socket pair (the child's answer each
 * step), a memfd mapped shared (a counter both add to) and a regular file
 * opened once before the fork (one open file description: the child
 * writes 8 bytes a step through it, the parent checks the shared offset).
 * `cohort inspect` of its images must name the kind of every descriptor.
 * Output: one line per step, then RESULT.
 */
#include "common.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#define STEPS 20
#define STEP_MS 100

int main(void)
{
	t_init("kinds_all");
	int pp[2], sv[2];
	CHECK(pipe(pp) == 0, "pipe: %s", strerror(errno));
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", strerror(errno));
	int efd = eventfd(0, EFD_NONBLOCK);
	CHECK(efd >= 0, "eventfd: %s", strerror(errno));
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGUSR1);
	CHECK(sigprocmask(SIG_BLOCK, &ss, NULL) == 0, "sigprocmask: %s", strerror(errno));
	int sfd = signalfd(-1, &ss, SFD_NONBLOCK);
	CHECK(sfd >= 0, "signalfd: %s", strerror(errno));
	int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
	struct itimerspec hour = { { 0, 0 }, { 3600, 0 } };
	CHECK(tfd >= 0 && timerfd_settime(tfd, 0, &hour, NULL) == 0, "timerfd: %s", strerror(errno));
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 77 };
	CHECK(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0, "epoll: %s", strerror(errno));
	int mfd = memfd_create("kinds_all", 0);
	CHECK(mfd >= 0 && ftruncate(mfd, 4096) == 0, "memfd: %s", strerror(errno));
	volatile uint64_t *counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	CHECK(counter != MAP_FAILED, "mmap: %s", strerror(errno));
	char path[4096];
	t_fmt(path, sizeof(path), "%s/kinds_all.%d", t_tmpdir(), (int)getpid());
	int ffd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(ffd >= 0, "open %s: %s", path, strerror(errno));

	pid_t child = fork();
	CHECK(child >= 0, "fork: %s", strerror(errno));
	if (child == 0) {
		for (int s = 0; s < STEPS; s++) {
			uint8_t b;
			CHECK(read(pp[0], &b, 1) == 1 && b == s, "child: pipe read at step %d", s);
			uint64_t rec = (uint64_t)s * 1000 + 7;
			CHECK(write(ffd, &rec, sizeof(rec)) == (ssize_t)sizeof(rec), "child: file write: %s", strerror(errno));
			__atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
			CHECK(kill(getppid(), SIGUSR1) == 0, "child: kill: %s", strerror(errno));
			CHECK(write(sv[1], &b, 1) == 1, "child: socket write: %s", strerror(errno));
		}
		_exit(0);
	}
	for (int s = 0; s < STEPS; s++) {
		uint8_t b = (uint8_t)s;
		uint64_t one = 1, got = 0;
		CHECK(write(efd, &one, sizeof(one)) == (ssize_t)sizeof(one), "eventfd write: %s", strerror(errno));
		struct epoll_event out;
		CHECK(epoll_wait(ep, &out, 1, 1000) == 1 && out.data.u64 == 77, "epoll: eventfd not ready at step %d", s);
		CHECK(read(efd, &got, sizeof(got)) == (ssize_t)sizeof(got) && got == 1, "eventfd: count %llu at step %d",
		      (unsigned long long)got, s);
		CHECK(write(pp[1], &b, 1) == 1, "pipe write: %s", strerror(errno));
		uint8_t ack;
		CHECK(read(sv[0], &ack, 1) == 1 && ack == b, "socket: no answer at step %d", s);
		__atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
		CHECK(*counter == 2 * (uint64_t)(s + 1), "shared counter %llu at step %d", (unsigned long long)*counter, s);
		off_t at = lseek(ffd, 0, SEEK_CUR);
		CHECK(at == (off_t)(8 * (s + 1)), "shared file offset %lld at step %d", (long long)at, s);
		printf("step %d ok\n", s);
		t_sleep_ms(STEP_MS);
	}
	int status;
	CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed");
	int sigs = 0;
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		sigs += si.ssi_signo == SIGUSR1;
	CHECK(sigs >= 1, "signalfd: no SIGUSR1 queued");
	struct itimerspec left;
	CHECK(timerfd_gettime(tfd, &left) == 0 && left.it_value.tv_sec > 3000, "timerfd: %lld s left",
	      (long long)left.it_value.tv_sec);
	unlink(path);
	printf("RESULT ok\n");
	return 0;
}
