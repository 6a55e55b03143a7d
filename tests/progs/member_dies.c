/*
 * member_dies (application group): a member of the group is killed from
 * outside between checkpoints. The parent forks 3 workers; every step it
 * sends each worker a task through a pipe and reads the answer through
 * another. The harness (t_member_dies in tests/run.sh) SIGKILLs one worker
 * after the first restart. The parent notices (EOF on the worker's pipe or
 * EPIPE), reaps it with waitpid (which must report SIGKILL), says so on
 * stderr only ("worker N killed ..."), forks a new worker for that index
 * and resends the task, so stdout and the RESULT are the same as in a run
 * without the kill. The next checkpoint and restart must still work.
 * At the end the workers exit with 30+index and the parent checks that.
 * Under the test (common.h's gates) the parent waits before its last step
 * until the file "killed" exists, and before the workers quit until "end".
 */
#include "common.h"
#include <sys/wait.h>

#define NW 3
#define STEPS 14
#define WORK_MS 150
#define STEP_MS 100

struct task {
	int32_t step;	/* -1: quit */
	int32_t idx;
	uint64_t arg;
};
struct answer {
	int32_t step, idx;
	int32_t pid, ppid;
	uint64_t result;
};

static pid_t parent_pid;
static pid_t wpid[NW];
static int to_w[NW] = { -1, -1, -1 }, from_w[NW] = { -1, -1, -1 };
static int kills;

static uint64_t work(int idx, uint64_t arg)
{
	uint64_t h = arg ^ (uint64_t)idx;

	for (int i = 0; i < 5000; i++)
		h = t_mix(h + (uint64_t)i);
	return h;
}

static void worker(int idx, int rfd, int wfd)
{
	struct t_ident id;

	t_ident_init(&id);
	for (;;) {
		struct task t;
		ssize_t n = read(rfd, &t, sizeof(t));

		if (n < 0 && errno == EINTR)
			FAIL("worker %d: read interrupted (EINTR)", idx);
		CHECK(n == (ssize_t)sizeof(t), "worker %d: read task: %zd %s", idx, n,
		      n < 0 ? strerror(errno) : "");
		t_ident_check(&id);
		CHECK(getppid() == parent_pid, "worker %d: getppid() %d, expected %d", idx, (int)getppid(),
		      (int)parent_pid);
		CHECK(t.idx == idx, "worker %d got a task for worker %d", idx, t.idx);
		if (t.step < 0)
			_exit(30 + idx);
		t_sleep_ms(WORK_MS);
		struct answer a = { t.step, idx, getpid(), getppid(), work(idx, t.arg) };
		t_write_all(wfd, &a, sizeof(a), -1);
	}
}

static void spawn(int idx)
{
	int tw[2], fw[2];

	SYSCHK(pipe(tw));
	SYSCHK(pipe(fw));
	fflush(stdout);
	pid_t p = SYSCHK(fork());
	if (p == 0) {
		for (int j = 0; j < NW; j++) {
			if (to_w[j] >= 0)
				close(to_w[j]);
			if (from_w[j] >= 0)
				close(from_w[j]);
		}
		close(tw[1]);
		close(fw[0]);
		worker(idx, tw[0], fw[1]);
	}
	close(tw[0]);
	close(fw[1]);
	to_w[idx] = tw[1];
	from_w[idx] = fw[0];
	wpid[idx] = p;
}

/* worker idx is gone: reap it (it must have been SIGKILLed) and replace it */
static void replace(int idx, int step, const char *how)
{
	int st;
	pid_t w;

	while ((w = waitpid(wpid[idx], &st, 0)) < 0 && errno == EINTR)
		FAIL("waitpid interrupted (EINTR)");
	CHECK(w == wpid[idx], "waitpid worker %d: %s", idx, strerror(errno));
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "worker %d ended (%s) with status %#x, not by SIGKILL", idx,
	      how, st);
	kills++;
	fprintf(stderr, "member_dies: worker %d killed (signal %d) at step %d (%s), respawning it\n", idx,
		WTERMSIG(st), step, how);
	close(to_w[idx]);
	close(from_w[idx]);
	to_w[idx] = from_w[idx] = -1;
	spawn(idx);
}

/* send a task; 0 if the worker is gone */
static int send_task(int idx, const struct task *t)
{
	ssize_t n = write(to_w[idx], t, sizeof(*t));

	if (n < 0 && errno == EPIPE)
		return 0;
	if (n < 0 && errno == EINTR)
		FAIL("write interrupted (EINTR)");
	CHECK(n == (ssize_t)sizeof(*t), "write task to worker %d: %zd %s", idx, n, n < 0 ? strerror(errno) : "");
	return 1;
}

/* read an answer; 0 if the worker is gone */
static int get_answer(int idx, struct answer *a)
{
	char *p = (char *)a;
	size_t got = 0;

	while (got < sizeof(*a)) {
		ssize_t n = read(from_w[idx], p + got, sizeof(*a) - got);
		if (n < 0 && errno == EINTR)
			FAIL("read interrupted (EINTR)");
		CHECK(n >= 0, "read from worker %d: %s", idx, strerror(errno));
		if (n == 0) {
			CHECK(got == 0, "worker %d: partial answer", idx);
			return 0;
		}
		got += (size_t)n;
	}
	return 1;
}

int main(void)
{
	struct t_ident id;
	uint64_t h = T_FNV_INIT;

	t_init("member_dies");
	t_ident_init(&id);
	parent_pid = getpid();
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < NW; i++)
		spawn(i);

	for (int s = 0; s < STEPS; s++) {
		struct task t[NW];
		/* a test's gate (common.h): a step is left for the worker it kills, however slow the machine */
		if (s == STEPS - 1)
			t_gate("killed");
		t_ident_check(&id);
		for (int i = 0; i < NW; i++) {
			t[i] = (struct task){ s, i, (uint64_t)s * 7919 + (uint64_t)i };
			while (!send_task(i, &t[i]))
				replace(i, s, "write: EPIPE");
		}
		for (int i = 0; i < NW; i++) {
			struct answer a;
			while (!get_answer(i, &a)) {
				replace(i, s, "read: EOF");
				while (!send_task(i, &t[i]))
					replace(i, s, "write: EPIPE");
			}
			CHECK(a.step == s && a.idx == i, "worker %d answered step %d as worker %d", i, a.step, a.idx);
			CHECK(a.pid == wpid[i], "worker %d reports pid %d, fork returned %d", i, a.pid, (int)wpid[i]);
			CHECK(a.ppid == parent_pid, "worker %d reports ppid %d", i, a.ppid);
			CHECK(a.result == work(i, t[i].arg), "worker %d: wrong result", i);
			h = t_fnv_u64(h, a.result);
		}
		printf("step %d ok h=%016llx\n", s, (unsigned long long)h);
		t_sleep_ms(STEP_MS);
	}
	/* and its end gate holds the group here, its workers still there */
	t_end_gate_now();
	for (int i = 0; i < NW; i++) {
		struct task q = { -1, i, 0 };
		int st;
		pid_t w;
		CHECK(send_task(i, &q), "worker %d gone at the end", i);
		while ((w = waitpid(wpid[i], &st, 0)) < 0 && errno == EINTR)
			FAIL("waitpid interrupted (EINTR)");
		CHECK(w == wpid[i], "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 30 + i, "worker %d: status %#x", i, st);
	}
	CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "unexpected children left");
	fprintf(stderr, "member_dies: %d worker(s) killed and replaced\n", kills);
	printf("workers exited 30 31 32\n");
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
