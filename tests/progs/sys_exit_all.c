/*
 * sys_exit_all: every thread of a process leaves with the raw exit system
 * call (SYS_exit, not exit_group), as runtimes do; the process must then
 * end, and its parent's waitpid() return its status.  The program forks a
 * child that does it (main thread first with 9, its second thread later
 * with 4) and waits for it (at most 10 s), prints the status, runs its
 * steps (where the harness checkpoints it), then does the same itself:
 * its main thread leaves with 7, a second thread after it with 3.  The
 * status of such a process is its last thread's (4 for the child, 3 for
 * itself, natively): `cohort run` must return the same.
 */
#include "common.h"
#include <sys/wait.h>

#define STEPS 40

static void *late_exit(void *arg)
{
	long code = (long)arg;
	t_sleep_ms(200);
	fflush(stdout);
	syscall(SYS_exit, code);
	return NULL;
}

/* The calling process's main thread leaves with main_code, a second thread 200 ms later with thread_code. */
static void __attribute__((noreturn)) all_leave(int main_code, int thread_code)
{
	pthread_t th;
	CHECK(pthread_create(&th, NULL, late_exit, (void *)(long)thread_code) == 0, "pthread_create");
	fflush(stdout);
	syscall(SYS_exit, main_code);
	for (;;)
		pause();
}

static void child_round(const char *when)
{
	fflush(stdout);
	pid_t c = SYSCHK(fork());
	if (c == 0)
		all_leave(9, 4);
	int st = 0;
	pid_t r = 0;
	for (int i = 0; i < 1000 && r == 0; i++) {
		r = waitpid(c, &st, WNOHANG);
		if (r == 0)
			t_sleep_ms(10);
	}
	CHECK(r == c, "%s: the child whose threads all left with SYS_exit did not end within 10 s (waitpid %d: %s)", when,
	      (int)r, r < 0 ? strerror(errno) : "still there");
	printf("%s: child ended, %s %d\n", when, WIFEXITED(st) ? "exit" : "signal",
	       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

int main(void)
{
	t_init("sys_exit_all");
	child_round("first");
	uint64_t h = T_FNV_INIT;
	for (int s = 0; s < STEPS; s++) {
		h = t_fnv_u64(h, (uint64_t)s * 17 + 1);
		printf("step %d ok\n", s);
		t_sleep_ms(100);
	}
	/* a test's end gate (common.h) holds it here: its end is no exit(), the gate at exit never comes */
	t_end_gate_now();
	child_round("last");
	printf("RESULT %016llx\n", (unsigned long long)h);
	all_leave(7, 3);
}
