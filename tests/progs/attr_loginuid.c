/*
 * attr_loginuid: the audit login uid (/proc/PID/loginuid) of a process,
 * of its thread and of its child must stay what it was when the program
 * started, across restarts made by callers with other login uids
 * (tests/cases/exact_attrs.sh runs `cohort run` under one, the second
 * restart under another).  The session id (/proc/PID/sessionid) cannot
 * be asked for (a restart that writes the login uid again gets a new one
 * from the kernel): it must be unset exactly when the login uid is, and
 * the same in a process's threads.
 *
 * The process starts a thread and forks a child; each checks its own at
 * every step.  Output: "step N ok" lines and a RESULT line; any
 * difference is a FAIL on stderr and exit 1.  Skipped (the same lines,
 * nothing checked) on a kernel without audit.
 */
#include "common.h"
#include <sys/wait.h>

#define STEPS 60
#define UNSET 4294967295u

static unsigned login0;
static int audit = 1;

/* The number /proc/self/task/TID/NAME holds. */
static unsigned read_task(pid_t tid, const char *name)
{
	char path[96], buf[32];
	t_fmt(path, sizeof(path), "/proc/self/task/%d/%s", (int)tid, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CHECK(n > 0, "read %s", path);
	buf[n] = 0;
	return (unsigned)strtoul(buf, NULL, 10);
}

/* The calling thread's login uid is the start's, its session id set exactly when it is. */
static unsigned check_task(const char *who, int step)
{
	pid_t tid = t_gettid();
	unsigned uid = read_task(tid, "loginuid"), sid = read_task(tid, "sessionid");
	CHECK(uid == login0, "step %d: %s: loginuid %u, expected %u", step, who, uid, login0);
	CHECK((sid == UNSET) == (uid == UNSET), "step %d: %s: sessionid %u with loginuid %u", step, who, sid, uid);
	return sid;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int asked = -1, answered = -1;
static unsigned thread_sid;

/* The thread checks its own when the main thread asks (step by step). */
static void *thread_main(void *arg)
{
	(void)arg;
	for (int s = 0; s < STEPS; s++) {
		pthread_mutex_lock(&mu);
		while (asked < s)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		unsigned sid = check_task("thread", s);
		pthread_mutex_lock(&mu);
		thread_sid = sid;
		answered = s;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

/* The child checks its own at each step, told by the parent through a pipe, and answers. */
static void child_main(int in, int out)
{
	char c;
	for (int s = 0; s < STEPS; s++) {
		CHECK(read(in, &c, 1) == 1, "child: read step %d: %s", s, strerror(errno));
		if (audit)
			check_task("child", s);
		CHECK(write(out, "k", 1) == 1, "child: write");
	}
	_exit(0);
}

int main(void)
{
	t_init("attr_loginuid");
	int fd = open("/proc/self/loginuid", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		audit = 0;
	else
		close(fd);
	if (audit)
		login0 = read_task(t_gettid(), "loginuid");
	int down[2], up[2];
	SYSCHK(pipe(down));
	SYSCHK(pipe(up));
	pid_t child = SYSCHK(fork());
	if (child == 0) {
		close(down[1]);
		close(up[0]);
		child_main(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	pthread_t th;
	if (audit)
		CHECK(pthread_create(&th, NULL, thread_main, NULL) == 0, "pthread_create");
	for (int s = 0; s < STEPS; s++) {
		if (audit) {
			unsigned sid = check_task("main", s);
			pthread_mutex_lock(&mu);
			asked = s;
			pthread_cond_broadcast(&cv);
			while (answered < s)
				pthread_cond_wait(&cv, &mu);
			CHECK(thread_sid == sid, "step %d: the thread's sessionid %u, the process's %u", s, thread_sid, sid);
			pthread_mutex_unlock(&mu);
		}
		char c;
		CHECK(write(down[1], "s", 1) == 1, "write to child");
		CHECK(read(up[0], &c, 1) == 1, "child did not answer step %d", s);
		printf("step %d ok\n", s);
		t_sleep_ms(30);
	}
	if (audit)
		CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	int st;
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %x", st);
	printf("RESULT attr_loginuid ok\n");
	return 0;
}
