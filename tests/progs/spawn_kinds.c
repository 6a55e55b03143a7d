/*
 * spawn_kinds - every way of starting a process that issue 3 names, alive
 * at once: clone(3) of a new process (no atfork handlers run), vfork +
 * exec, popen and system.  Each runs for about two seconds, so checkpoints
 * meet all of them; each must be waited for with its own status, and the
 * popen'ed command's output must arrive through its pipe.  A clone child
 * the agent did not see would make a checkpoint wait for it; one left
 * half-alive by the agent would make the final waitpid hang.
 */
#define _GNU_SOURCE
#include "common.h"
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

static char stack[1 << 16] __attribute__((aligned(16)));

static int worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 25; i++)
		t_sleep_ms(100);
	return 7;
}

int main(void)
{
	t_prog = "spawn_kinds";
	pid_t cl = clone(worker, stack + sizeof(stack), SIGCHLD, NULL);
	SYSCHK(cl);
	FILE *p = popen("sleep 2; echo popen-done", "r");
	CHECK(p != NULL, "popen failed");
	pid_t v = vfork();
	if (v == 0) {
		execl("/bin/sh", "sh", "-c", "sleep 2; exit 5", (char *)0);
		_exit(127);
	}
	SYSCHK(v);
	int rs = system("sleep 2; exit 3");
	CHECK(WIFEXITED(rs) && WEXITSTATUS(rs) == 3, "system returned %d", rs);
	puts("system ok");
	char line[64] = "";
	CHECK(fgets(line, sizeof(line), p) != NULL, "nothing came from popen");
	CHECK(!strcmp(line, "popen-done\n"), "popen gave '%s'", line);
	int pr = pclose(p);
	CHECK(WIFEXITED(pr) && WEXITSTATUS(pr) == 0, "pclose returned %d", pr);
	puts("popen ok");
	int st;
	SYSCHK(waitpid(v, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5, "vfork child status %d", st);
	puts("vfork ok");
	SYSCHK(waitpid(cl, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7, "clone child status %d", st);
	puts("clone ok");
	puts("RESULT 7 5 3 popen-done");
	return 0;
}
