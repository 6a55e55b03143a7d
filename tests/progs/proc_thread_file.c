/*
 * proc_thread_file: a thread other than the first holds its own
 * /proc/thread-self/status open (/proc/PID/task/TID/status), which the
 * restorer could not open again (that thread comes back after the
 * descriptors): a checkpoint must wait for its close, and be refused in
 * one line while the file stays open (tests/cases/exact_mem.sh).
 *
 * The thread opens the file and says so; the main thread prints "ready",
 * waits for go.1 (common.h), then lets the thread read the file through,
 * check its Pid line names the thread, and close it.  Output: "ready",
 * then "RESULT proc_thread_file ok".
 */
#include "common.h"
#include <pthread.h>

static int ask[2], told[2];

static void *holder(void *arg)
{
	(void)arg;
	int fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open /proc/thread-self/status: %s", strerror(errno));
	char c = 1, buf[8192];
	t_write_all(told[1], &c, 1, -1);
	t_read_all(ask[0], &c, 1, -1);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	CHECK(n > 0, "read the thread's status: %s", strerror(errno));
	buf[n] = 0;
	char want[64];
	t_fmt(want, sizeof(want), "\nPid:\t%ld\n", (long)syscall(SYS_gettid));
	CHECK(strstr(buf, want), "the status file is not the thread's (%s)", want + 1);
	close(fd);
	return NULL;
}

int main(void)
{
	t_prog = "proc_thread_file";
	SYSCHK(pipe(ask));
	SYSCHK(pipe(told));
	pthread_t t;
	CHECK(pthread_create(&t, NULL, holder, NULL) == 0, "pthread_create");
	char c;
	t_read_all(told[0], &c, 1, -1);
	printf("ready\n");
	fflush(stdout);
	t_wait_go(1);
	t_write_all(ask[1], &c, 1, -1);
	CHECK(pthread_join(t, NULL) == 0, "pthread_join");
	printf("RESULT proc_thread_file ok\n");
	return 0;
}
