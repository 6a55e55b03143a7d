/*
 * subreaper LIST CMD [ARGS...] - not a test program but a tool of the tests
 * (tests/cases/restart_fail.sh): runs CMD as a child subreaper, so that
 * every process CMD leaves behind, however deep, becomes our child.  When
 * CMD has ended, it waits up to 3 s for the others to end, writes those
 * still there to LIST ("PID COMM" a line; the file is empty when nothing
 * was left), kills them, and exits with CMD's status (128+N for a signal).
 * CMD gets SIGINT and SIGQUIT back to default: a shell starts background
 * jobs with them ignored, and a test sends them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Our children now (orphans reparented to us); their pids into out. */
static int children(pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	int n = 0;
	pid_t self = getpid();
	for (struct dirent *e; d && (e = readdir(d)) && n < max;) {
		char path[300], buf[512];
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t got = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[got] = 0;
		char *p = strrchr(buf, ')'); /* past the command name, which may hold anything */
		int ppid;
		char state;
		if (p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 && ppid == self && state != 'Z')
			out[n++] = atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: subreaper LIST CMD [ARGS...]\n");
		return 2;
	}
	FILE *list = fopen(argv[1], "w");
	if (!list || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		perror("subreaper");
		return 2;
	}
	pid_t cmd = fork();
	if (cmd == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	int st;
	while (waitpid(cmd, &st, 0) < 0 && errno == EINTR)
		;
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	static pid_t left[256];
	int n = 0;
	for (int i = 0; i < 60; i++) { /* 3 s */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		n = children(left, 256);
		if (!n)
			break;
		struct timespec t = { 0, 50000000 };
		nanosleep(&t, NULL);
	}
	for (int i = 0; i < n; i++) {
		char path[64], comm[64] = "?";
		snprintf(path, sizeof(path), "/proc/%d/comm", left[i]);
		FILE *f = fopen(path, "r");
		if (f && fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		if (f)
			fclose(f);
		fprintf(list, "%d %s\n", left[i], comm);
		kill(left[i], SIGKILL);
	}
	fclose(list);
	while (n && waitpid(-1, NULL, 0) > 0)
		;
	return rc;
}
