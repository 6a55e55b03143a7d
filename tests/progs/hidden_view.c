/*
 * hidden_view: what a program sees of itself must be what it made.  It
 * opens three descriptors (a file, a pipe) and starts two threads, then at
 * every step, across live checkpoints and restarts, compares
 *   - the numbers listed in /proc/self/fd (less the listing's own),
 *   - every descriptor fcntl(F_GETFD) finds from 0 to the limit,
 *   - the entries of /proc/self/task and Threads: in /proc/self/status,
 *   - waitid(P_ALL, __WALL): it has no child process
 * with what it opened and started.  A difference that lasts (an agent's
 * descriptor or thread while the program runs) fails; one that is gone
 * within half a second (a checkpoint in progress) is waited out.
 * It starts with closefrom(3), so that only 0-2 are inherited.
 * Output: one deterministic line a step.
 */
#include "common.h"
#include <dirent.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define STEPS 60
#define NTHREADS 2

static int mine[8], nmine;
static volatile int stop;

static void *idle_thread(void *arg)
{
	(void)arg;
	while (!stop)
		t_sleep_ms(20);
	return NULL;
}

static int is_mine(int fd)
{
	for (int i = 0; i < nmine; i++)
		if (mine[i] == fd)
			return 1;
	return 0;
}

/* What differs from the expected view, in why; 0 when nothing does. */
static int look(char *why, size_t n)
{
	why[0] = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		FAIL("opendir /proc/self/fd: %s", strerror(errno));
	int self = dirfd(d), seen = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		int fd = atoi(e->d_name);
		if (fd == self)
			continue;
		if (fd > 2 && !is_mine(fd)) {
			char link[256] = "";
			char p[64];
			snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
			ssize_t l = readlink(p, link, sizeof(link) - 1);
			link[l > 0 ? l : 0] = 0;
			snprintf(why, n, "/proc/self/fd lists fd %d (%s), which the program never opened", fd, link);
			closedir(d);
			return 1;
		}
		seen++;
	}
	closedir(d);
	if (seen != 3 + nmine) {
		snprintf(why, n, "/proc/self/fd lists %d descriptors, expected %d", seen, 3 + nmine);
		return 1;
	}
	struct rlimit rl;
	SYSCHK(getrlimit(RLIMIT_NOFILE, &rl));
	for (int fd = 3; fd < (int)rl.rlim_cur && fd < 65536; fd++) {
		int open_now = fcntl(fd, F_GETFD) >= 0;
		if (open_now != is_mine(fd)) {
			snprintf(why, n, "fcntl(%d, F_GETFD) %s", fd, open_now ? "finds a descriptor the program never opened" : "fails on the program's own descriptor");
			return 1;
		}
	}
	int tasks = 0;
	d = opendir("/proc/self/task");
	if (!d)
		FAIL("opendir /proc/self/task: %s", strerror(errno));
	for (struct dirent *e; (e = readdir(d));)
		tasks += e->d_name[0] >= '0' && e->d_name[0] <= '9';
	closedir(d);
	if (tasks != 1 + NTHREADS) {
		snprintf(why, n, "/proc/self/task lists %d threads, the program started %d", tasks, 1 + NTHREADS);
		return 1;
	}
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		FAIL("fopen /proc/self/status: %s", strerror(errno));
	char line[256];
	int threads = -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Threads:", 8))
			threads = atoi(line + 8);
	fclose(f);
	if (threads != 1 + NTHREADS) {
		snprintf(why, n, "/proc/self/status says Threads: %d, the program has %d", threads, 1 + NTHREADS);
		return 1;
	}
	/* it started no process: a wait for any child of any kind finds none (an image writer is not ours) */
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT | __WALL) == 0 || errno != ECHILD) {
		snprintf(why, n, "waitid(P_ALL, __WALL) finds a child (pid %d) of a program that started none", (int)si.si_pid);
		return 1;
	}
	return 0;
}

static void check(int step)
{
	char why[512];
	/* a checkpoint in progress may show for a moment: never for half a second */
	for (int i = 0; i < 250; i++) {
		if (!look(why, sizeof(why)))
			return;
		t_sleep_ms(2);
	}
	FAIL("step %d: %s", step, why);
}

int main(void)
{
	t_init("hidden_view");
	closefrom(3); /* whatever the caller left open: the view starts at 0-2 */
	char path[512];
	t_fmt(path, sizeof(path), "%s/hidden_view.dat", t_tmpdir());
	mine[nmine++] = SYSCHK(open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	int p[2];
	SYSCHK(pipe(p));
	mine[nmine++] = p[0];
	mine[nmine++] = p[1];
	pthread_t th[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		CHECK(pthread_create(&th[i], NULL, idle_thread, NULL) == 0, "pthread_create");
	uint64_t h = T_FNV_INIT;
	for (int s = 0; s < STEPS; s++) {
		check(s);
		h = t_fnv_u64(h, (uint64_t)s * 13 + 5);
		printf("step %d ok: fds 0-2 and %d of its own, %d threads\n", s, nmine, 1 + NTHREADS);
		t_sleep_ms(100);
	}
	stop = 1;
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	unlink(path);
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
