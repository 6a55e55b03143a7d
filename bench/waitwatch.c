/*
 * waitwatch - where a program's threads wait: every 0.5 ms, the state of
 * each thread of PID (/proc/PID/task/TID/stat) and, for a thread in
 * uninterruptible sleep, the innermost frame of its kernel stack
 * (/proc/PID/task/TID/stack, root only), and for a thread that spent most
 * of the last interval ready to run but not running (its run queue delay,
 * /proc/PID/task/TID/schedstat, grew by 0.4 ms or more) the word
 * "runqueue": the machine's cores were busy elsewhere.  Prints one line
 * per such wait as it is seen ("SECONDS TID WHAT", SECONDS on
 * CLOCK_REALTIME so that bench/gap.sh can put it beside the checkpoints
 * it ran), until PID is gone or SECS have passed.
 *
 * usage: waitwatch PID SECS
 *
 * The sleeping states S and I are the program's own waits and are not
 * printed, nor is the agent's manager thread (it exists only in the
 * pause, which pause_ms counts); R (runnable) is not a wait on cohort.  Not part of `make check`.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Read a small /proc file whole; -1 if it is gone. */
static int slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return (int)n;
}

/* The innermost kernel function a thread waits in ("lock_mm_and_find_vma"). */
static void wait_frame(int pid, const char *tid, char *out, size_t len)
{
	char path[320], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/task/%s/stack", pid, tid);
	snprintf(out, len, "?");
	if (slurp(path, buf, sizeof(buf)) <= 0)
		return;
	char *fn = strchr(buf, ' '); /* "[<0>] function+0x9e/0x5a0" */
	if (!fn)
		return;
	fn++;
	fn[strcspn(fn, "+\n")] = 0;
	snprintf(out, len, "%s", fn);
}

/* Run queue delays seen last, by thread id (a small open table). */
static struct { int tid; unsigned long long delay; } seen[1024];

/* Did thread tid wait for a core for most of the last interval? */
static int queued(int pid, const char *tid)
{
	char path[320], buf[128];
	snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", pid, tid);
	unsigned long long run, delay;
	if (slurp(path, buf, sizeof(buf)) <= 0 || sscanf(buf, "%llu %llu", &run, &delay) != 2)
		return 0;
	int t = atoi(tid), h = t % 1024;
	while (seen[h].tid && seen[h].tid != t)
		h = (h + 1) % 1024;
	int first = seen[h].tid == 0, grew = !first && delay - seen[h].delay >= 400000;
	seen[h].tid = t;
	seen[h].delay = delay;
	return grew;
}

/* One look at every thread; 0 once the process is gone. */
static int sample(int pid)
{
	char path[320], buf[1024], frame[128];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	double t = now();
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", pid, e->d_name);
		if (slurp(path, buf, sizeof(buf)) <= 0)
			continue;
		char *paren = strrchr(buf, ')'); /* the name may hold spaces */
		if (strstr(buf, "(cohort-agent)"))
			continue; /* the agent's manager thread, there only in the pause */
		if (queued(pid, e->d_name))
			printf("%.4f %s runqueue\n", t, e->d_name);
		if (!paren || paren[1] != ' ' || paren[2] != 'D')
			continue;
		wait_frame(pid, e->d_name, frame, sizeof(frame));
		printf("%.4f %s %s\n", t, e->d_name, frame);
	}
	closedir(d);
	fflush(stdout);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: waitwatch PID SECS\n");
		return 2;
	}
	int pid = atoi(argv[1]);
	double end = now() + atof(argv[2]);
	struct timespec half = { 0, 500000 };
	while (now() < end && sample(pid))
		nanosleep(&half, 0);
	return 0;
}
