/*
 * pgrp_orphan - a process group whose leader is gone.  The root makes a
 * pipe and forks L; L makes itself a group leader, forks two members (they
 * are in L's group) and exits; the root reaps L.  The members, now orphans,
 * check at every step that they are still in group L and that the group
 * answers a signal 0, and report their steps through the pipe; the root
 * adds up what arrives until both have finished.  A restart that puts the
 * members anywhere but in group L fails.
 */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

#define STEPS 100 /* 3 s: room for two checkpoints on a busy machine */

static void member(int id, pid_t group, int out)
{
	for (int i = 1; i <= STEPS; i++) {
		CHECK(getpgid(0) == group, "member %d: in group %d, expected %d", id, (int)getpgid(0), (int)group);
		CHECK(kill(-group, 0) == 0, "member %d: group %d does not answer: %s", id, (int)group, strerror(errno));
		unsigned v = (unsigned)(id * 1000 + i);
		CHECK(write(out, &v, sizeof(v)) == sizeof(v), "member %d: write failed", id);
		t_sleep_ms(30);
	}
	_exit(0);
}

int main(void)
{
	t_prog = "pgrp_orphan";
	int p[2];
	SYSCHK(pipe(p));
	pid_t leader = fork();
	SYSCHK(leader);
	if (leader == 0) {
		close(p[0]);
		SYSCHK(setpgid(0, 0));
		for (int id = 1; id <= 2; id++) {
			pid_t m = fork();
			SYSCHK(m);
			if (m == 0)
				member(id, getpgid(0), p[1]); /* the group is L's */
		}
		_exit(0);
	}
	close(p[1]);
	int st;
	SYSCHK(waitpid(leader, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "leader failed");
	unsigned long long sum = 0;
	unsigned v, n = 0, last[3] = { 0, 0, 0 };
	ssize_t r;
	while ((r = read(p[0], &v, sizeof(v))) == sizeof(v)) {
		unsigned id = v / 1000, step = v % 1000;
		CHECK(id >= 1 && id <= 2 && step == last[id] + 1, "got %u after step %u of member %u", v, last[id], id);
		last[id] = step;
		sum += v;
		if (++n % 20 == 0) {
			printf("%u reports\n", n);
			fflush(stdout);
		}
	}
	CHECK(r == 0 && last[1] == STEPS && last[2] == STEPS, "members stopped at %u and %u", last[1], last[2]);
	printf("RESULT %llu\n", sum);
	return 0;
}
