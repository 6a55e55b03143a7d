/*
 * child_exec (application group): children that exec a new program.
 *   phase 1: fork + execve("/proc/self/exe", {"child_exec", "helper", ...})
 *            with an EMPTY environment (the agent must survive that);
 *   phase 2: posix_spawn of the same helper with the environment
 *            {"CHILD_EXEC_MODE=two"} only.
 * The helper (this program in "helper" mode) checks that its environment
 * is what it was given (none of the parent's variables), runs a thread, and
 * prints a line every ~220 ms to its stdout, a pipe to the parent; it checks
 * its pid/tid and its parent at every line, and exits with 9 (phase 1) or
 * 10 (phase 2). The parent relays every line it reads, then waits for the
 * child and checks its exit status.
 */
#include "common.h"
#include <spawn.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define LINES 8
#define LINE_MS 220

extern char **environ;

static atomic_int ticks;
static atomic_int stop;

static void *ticker(void *arg)
{
	struct t_ident id;

	(void)arg;
	t_ident_init(&id);
	while (!atomic_load(&stop)) {
		t_sleep_ms(20);
		t_ident_check(&id);
		atomic_fetch_add(&ticks, 1);
	}
	return NULL;
}

static int helper(int argc, char **argv)
{
	struct t_ident id;
	pthread_t th;

	t_init("child_exec helper");
	CHECK(argc == 4, "helper: %d arguments", argc);
	int phase = atoi(argv[2]);
	pid_t parent = (pid_t)atoi(argv[3]);
	CHECK(phase == 1 || phase == 2, "helper: phase %d", phase);
	CHECK(getppid() == parent, "helper: getppid() %d, parent said %d", (int)getppid(), (int)parent);
	/* none of the parent's variables may be there */
	CHECK(!getenv("COHORT_TEST_TMP") && !getenv("PATH") && !getenv("HOME"),
	      "helper %d: the parent's environment leaked into the exec'd program", phase);
	if (phase == 2) {
		const char *m = getenv("CHILD_EXEC_MODE");
		CHECK(m && !strcmp(m, "two"), "helper 2: CHILD_EXEC_MODE is %s", m ? m : "(unset)");
	} else {
		CHECK(!getenv("CHILD_EXEC_MODE"), "helper 1: CHILD_EXEC_MODE set");
	}
	t_ident_init(&id);
	CHECK(pthread_create(&th, NULL, ticker, NULL) == 0, "pthread_create");
	uint64_t h = T_FNV_INIT;
	for (int i = 0; i < LINES; i++) {
		t_sleep_ms(LINE_MS);
		t_ident_check(&id);
		CHECK(getppid() == parent, "helper %d: parent changed", phase);
		h = t_fnv_u64(h, (uint64_t)(phase * 1000 + i));
		printf("helper %d line %d h=%016llx\n", phase, i, (unsigned long long)h);
	}
	atomic_store(&stop, 1);
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	CHECK(atomic_load(&ticks) > 0, "helper %d: thread never ran", phase);
	printf("helper %d done\n", phase);
	return 8 + phase;
}

/* relay the child's lines, wait for it, check its status; returns a hash */
static uint64_t collect(int phase, pid_t kid, int rfd, const struct t_ident *id)
{
	FILE *f = fdopen(rfd, "r");
	char line[256];
	int n = 0;
	uint64_t h = T_FNV_INIT;

	CHECK(f != NULL, "fdopen: %s", strerror(errno));
	for (;;) {
		errno = 0;
		if (!fgets(line, sizeof(line), f)) {
			CHECK(!ferror(f), "reading the child's output: %s", strerror(errno));
			break;
		}
		t_ident_check(id);
		CHECK(strchr(line, '\n') != NULL, "line %d from child %d not terminated", n, phase);
		h = t_fnv(h, line, strlen(line));
		printf("child %d says: %s", phase, line);
		n++;
	}
	fclose(f);
	CHECK(n == LINES + 1, "child %d printed %d lines, expected %d", phase, n, LINES + 1);
	int st;
	pid_t w = waitpid(kid, &st, 0);
	if (w < 0 && errno == EINTR)
		FAIL("waitpid interrupted (EINTR)");
	CHECK(w == kid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 8 + phase, "child %d: status %#x, expected exit %d", phase, st,
	      8 + phase);
	printf("child %d exited %d\n", phase, WEXITSTATUS(st));
	return h;
}

int main(int argc, char **argv)
{
	struct t_ident id;
	char ppid_s[32];
	int p[2];
	uint64_t h = T_FNV_INIT;

	if (argc > 1 && !strcmp(argv[1], "helper"))
		return helper(argc, argv);
	t_init("child_exec");
	t_ident_init(&id);
	CHECK(getenv("COHORT_TEST_TMP") || getenv("PATH"), "parent has an empty environment?");
	t_fmt(ppid_s, sizeof(ppid_s), "%d", (int)getpid());

	/* phase 1: fork + execve with an empty environment */
	SYSCHK(pipe(p));
	fflush(stdout);
	pid_t kid = SYSCHK(fork());
	if (kid == 0) {
		char *av[] = { "child_exec", "helper", "1", ppid_s, NULL };
		char *ev[] = { NULL };
		close(p[0]);
		if (dup2(p[1], 1) < 0)
			_exit(126);
		close(p[1]);
		execve("/proc/self/exe", av, ev);
		fprintf(stderr, "child_exec: execve /proc/self/exe: %s\n", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	h = t_fnv_u64(h, collect(1, kid, p[0], &id));

	/* phase 2: posix_spawn with a one-variable environment */
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
	exe[n] = 0;
	SYSCHK(pipe(p));
	posix_spawn_file_actions_t fa;
	CHECK(posix_spawn_file_actions_init(&fa) == 0, "file_actions_init");
	CHECK(posix_spawn_file_actions_addclose(&fa, p[0]) == 0, "addclose");
	CHECK(posix_spawn_file_actions_adddup2(&fa, p[1], 1) == 0, "adddup2");
	CHECK(posix_spawn_file_actions_addclose(&fa, p[1]) == 0, "addclose");
	char *av2[] = { "child_exec", "helper", "2", ppid_s, NULL };
	char *ev2[] = { "CHILD_EXEC_MODE=two", NULL };
	fflush(stdout);
	int r = posix_spawn(&kid, exe, &fa, NULL, av2, ev2);
	CHECK(r == 0, "posix_spawn %s: %s", exe, strerror(r));
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	h = t_fnv_u64(h, collect(2, kid, p[0], &id));

	t_ident_check(&id);
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
