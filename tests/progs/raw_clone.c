/*
 * raw_clone: children made with raw clone system calls, as some runtimes
 * and sandboxes make them: syscall(SYS_clone, SIGCHLD, 0, ...) and
 * syscall(SYS_clone3, ...) without CLONE_VM, which run no fork handlers.
 * Each child counts in steps through a pipe to the parent, which checks
 * the counts and the children's exit statuses.  The children must belong
 * to the group (checkpointed and restored with it).  Prints one line per
 * step and RESULT.
 */
#include "common.h"
#include <linux/sched.h>
#include <sys/wait.h>

#define STEPS 60 /* 3.6 s: room for two checkpoints on a busy machine */

/* The child's part: count to STEPS, one number a step, then exit with code. */
static void child(int wfd, int code)
{
	for (int i = 1; i <= STEPS; i++) {
		if (write(wfd, &i, sizeof(i)) != sizeof(i))
			_exit(90);
		t_sleep_ms(60);
	}
	_exit(code);
}

static pid_t raw_clone(void)
{
	return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

static pid_t raw_clone3(void)
{
	struct clone_args ca;
	memset(&ca, 0, sizeof(ca));
	ca.exit_signal = SIGCHLD;
	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

int main(void)
{
	t_init("raw_clone");
	int p[2][2];
	pid_t kid[2];
	for (int k = 0; k < 2; k++) {
		if (pipe(p[k]))
			FAIL("pipe");
		kid[k] = k == 0 ? raw_clone() : raw_clone3();
		if (kid[k] < 0)
			FAIL("clone%s: %s", k ? "3" : "", strerror(errno));
		if (kid[k] == 0) {
			close(p[k][0]);
			child(p[k][1], 20 + k);
		}
		close(p[k][1]);
	}
	for (int s = 1; s <= STEPS; s++) {
		for (int k = 0; k < 2; k++) {
			int v = 0;
			CHECK(read(p[k][0], &v, sizeof(v)) == sizeof(v), "child %d: short read at step %d", k, s);
			CHECK(v == s, "child %d said %d at step %d", k, v, s);
		}
		printf("step %d ok\n", s);
		fflush(stdout);
	}
	for (int k = 0; k < 2; k++) {
		int st;
		CHECK(waitpid(kid[k], &st, 0) == kid[k], "waitpid child %d: %s", k, strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 20 + k, "child %d: status %#x", k, st);
	}
	printf("RESULT two raw clone children counted %d steps and exited 20, 21\n", STEPS);
	return 0;
}
