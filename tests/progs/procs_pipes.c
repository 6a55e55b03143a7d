/*
 * procs_pipes (needs group support: several processes and pipes created
 * inside the group): a parent with two children connected by pipes; child 1
 * is multi-threaded and has a grandchild of its own (which lives until child
 * 1 quits: it closes a pipe the grandchild polls). Every step the parent
 * sends a task to each child and blocks reading the replies; replies carry
 * the child's getpid()/getppid() which must match what fork() returned and
 * the parent's pid. At the end the parent tells the children to quit and
 * blocks in waitpid(); exit statuses (3, 4, and the grandchild's 5 as
 * collected by child 1) must be as expected.
 */
#include "common.h"
#include <poll.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define STEPS 10

struct req {
	int32_t step;	/* -1 = quit */
	uint64_t arg;
};
struct rep {
	int32_t step;
	int32_t pid, ppid;
	int32_t extra;	/* child 1: thread counter / grandchild status */
	uint64_t result;
};

static pid_t parent_pid;

static uint64_t work(int child, uint64_t arg)
{
	uint64_t h = arg;

	for (int i = 0; i < 1000; i++)
		h = t_mix(h + (uint64_t)child);
	return h;
}

static atomic_int child_thread_ticks;
static atomic_int child_thread_stop;

static void *child_thread(void *arg)
{
	struct t_ident id;

	(void)arg;
	t_ident_init(&id);
	while (!atomic_load(&child_thread_stop)) {
		t_sleep_ms(50);
		t_ident_check(&id);
		atomic_fetch_add(&child_thread_ticks, 1);
	}
	return NULL;
}

static int do_read(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0 && errno == EINTR)
			FAIL("read interrupted (EINTR)");
		CHECK(n >= 0, "read: %s", strerror(errno));
		if (n == 0)
			return 0;
		got += (size_t)n;
	}
	return 1;
}

static void child_main(int idx, int rfd, int wfd)
{
	struct t_ident id;
	pthread_t th;
	pid_t grandchild = -1;
	int life[2] = { -1, -1 };

	t_ident_init(&id);
	if (idx == 1) {
		/* the grandchild lives until child 1 quits (closes its end of this pipe), whatever the pace */
		SYSCHK(pipe(life));
		grandchild = SYSCHK(fork());
		if (grandchild == 0) {
			pid_t me = getpid();
			close(life[1]);
			for (;;) {
				struct pollfd p = { life[0], POLLIN, 0 };
				int r = poll(&p, 1, 250);
				if (r < 0 && errno == EINTR)
					FAIL("grandchild: poll interrupted (EINTR)");
				CHECK(r >= 0, "grandchild: poll: %s", strerror(errno));
				CHECK(getpid() == me, "grandchild pid changed");
				CHECK(getppid() == id.pid, "grandchild: parent changed");
				if (r == 1) {
					char b;
					CHECK(read(life[0], &b, 1) == 0, "grandchild: child 1 wrote to its pipe");
					_exit(5);
				}
			}
		}
		close(life[0]);
		CHECK(pthread_create(&th, NULL, child_thread, NULL) == 0, "pthread_create");
	}
	for (;;) {
		struct req rq;
		struct rep rp;

		if (!do_read(rfd, &rq, sizeof(rq)))
			FAIL("child %d: parent closed the pipe", idx);
		t_ident_check(&id);
		CHECK(getppid() == parent_pid, "child %d: getppid() %d != %d", idx, (int)getppid(), (int)parent_pid);
		memset(&rp, 0, sizeof(rp));
		rp.step = rq.step;
		rp.pid = getpid();
		rp.ppid = getppid();
		if (rq.step < 0) {
			if (idx == 1) {
				int st;
				atomic_store(&child_thread_stop, 1);
				CHECK(pthread_join(th, NULL) == 0, "join");
				close(life[1]);
				pid_t w = waitpid(grandchild, &st, 0);
				if (w < 0 && errno == EINTR)
					FAIL("child 1: waitpid interrupted (EINTR)");
				CHECK(w == grandchild, "child 1: waitpid: %s", strerror(errno));
				rp.extra = WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
			}
			t_write_all(wfd, &rp, sizeof(rp), -1);
			_exit(3 + idx);
		}
		rp.result = work(idx, rq.arg);
		rp.extra = idx == 1 ? (atomic_load(&child_thread_ticks) > 0) : 0;
		t_write_all(wfd, &rp, sizeof(rp), -1);
	}
}

int main(void)
{
	struct t_ident id;
	int to_child[2][2], from_child[2][2];
	pid_t kids[2];
	uint64_t h = T_FNV_INIT;

	t_init("procs_pipes");
	t_ident_init(&id);
	parent_pid = getpid();
	for (int c = 0; c < 2; c++) {
		SYSCHK(pipe(to_child[c]));
		SYSCHK(pipe(from_child[c]));
		fflush(stdout);
		kids[c] = SYSCHK(fork());
		if (kids[c] == 0) {
			close(to_child[c][1]);
			close(from_child[c][0]);
			if (c == 1) {
				close(to_child[0][1]);
				close(from_child[0][0]);
			}
			child_main(c, to_child[c][0], from_child[c][1]);
		}
		close(to_child[c][0]);
		close(from_child[c][1]);
	}

	for (int s = 0; s < STEPS; s++) {
		t_ident_check(&id);
		for (int c = 0; c < 2; c++) {
			struct req rq = { .step = s, .arg = (uint64_t)s * 1000 + (uint64_t)c };
			t_write_all(to_child[c][1], &rq, sizeof(rq), -1);
		}
		for (int c = 0; c < 2; c++) {
			struct rep rp;
			CHECK(do_read(from_child[c][0], &rp, sizeof(rp)), "child %d died", c);
			CHECK(rp.step == s, "child %d answered step %d", c, rp.step);
			CHECK(rp.pid == kids[c], "child %d reports pid %d, fork returned %d", c, rp.pid, (int)kids[c]);
			CHECK(rp.ppid == parent_pid, "child %d reports ppid %d", c, rp.ppid);
			CHECK(rp.result == work(c, (uint64_t)s * 1000 + (uint64_t)c), "child %d: wrong result", c);
			h = t_fnv_u64(h, rp.result);
		}
		printf("step %d ok h=%llu\n", s, (unsigned long long)h);
		t_sleep_ms(300);
	}
	/* a test's end gate (common.h) holds the group here, every process of it still there */
	t_end_gate_now();
	int extra1 = -1;
	for (int c = 0; c < 2; c++) {
		struct req rq = { .step = -1, .arg = 0 };
		struct rep rp;
		t_write_all(to_child[c][1], &rq, sizeof(rq), -1);
		CHECK(do_read(from_child[c][0], &rp, sizeof(rp)), "child %d died before quitting", c);
		if (c == 1)
			extra1 = rp.extra;
	}
	for (int c = 0; c < 2; c++) {
		int st;
		pid_t w = waitpid(kids[c], &st, 0);
		if (w < 0 && errno == EINTR)
			FAIL("waitpid interrupted (EINTR)");
		CHECK(w == kids[c], "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3 + c, "child %d: status %#x", c, st);
	}
	CHECK(extra1 == 5, "grandchild exit status %d", extra1);
	printf("children exited 3 4, grandchild 5\n");
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
