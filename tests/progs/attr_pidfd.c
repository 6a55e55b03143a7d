/*
 * attr_pidfd: pidfds of processes of the group must come back referring
 * to the same (restored) processes, on the same numbers, with their flags.
 *
 * The process holds a pidfd of a live child A (pidfd_open; a second one
 * PIDFD_NONBLOCK without close-on-exec on fd 40), of a child Z that has
 * exited with status 7 and is not waited for (clone's CLONE_PIDFD), of
 * itself, and a PIDFD_THREAD one of its main thread.  At every step:
 * each pidfd's fdinfo names its pid, A is alive (not readable, signal 0
 * accepted, a waitid on the non-blocking one answers EAGAIN), Z is
 * readable and waitid(P_PIDFD, WNOWAIT) tells its status, a SIGUSR1 sent
 * through the pidfd of itself arrives once, and the flags are as set.  At
 * the end A is ended through its pidfd and both children are reaped
 * through theirs.
 *
 * With the argument "reaped" it holds only the pidfd of a child already
 * waited for, which cannot be restored: it prints "ready", waits for
 * go.1 (common.h), then checks that pidfd at each step (tests/cases/
 * exact_attrs.sh: the checkpoint must be refused).
 *
 * Output: "step N ok" lines and a RESULT line; any difference is a FAIL
 * on stderr and exit 1.
 */
#include "common.h"
#include <poll.h>
#include <sched.h>
#include <sys/wait.h>

#define STEPS 30
#define PIDFD_NB O_NONBLOCK
#define PIDFD_THR O_EXCL /* PIDFD_THREAD, Linux 6.9 */
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1++; }

static int pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

static int send_sig(int pfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0);
}

/* "Pid:" and "flags:" of a descriptor's fdinfo */
static void fdinfo(int fd, long *pid, unsigned long *flags)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "r");
	CHECK(f, "open %s: %s", path, strerror(errno));
	*pid = -100;
	*flags = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Pid:", 4))
			*pid = strtol(line + 4, NULL, 10);
		if (!strncmp(line, "flags:", 6))
			*flags = strtoul(line + 6, NULL, 8);
	}
	fclose(f);
}

static void check_pidfd(int fd, pid_t pid, unsigned flags, int cloexec, const char *what)
{
	long p;
	unsigned long fl;
	fdinfo(fd, &p, &fl);
	CHECK(p == pid, "%s: fd %d refers to pid %ld, expected %d", what, fd, p, (int)pid);
	CHECK((fl & (PIDFD_NB | PIDFD_THR)) == flags, "%s: fd %d flags %lo, expected %o", what, fd,
	      fl & (PIDFD_NB | PIDFD_THR), flags);
	int fdf = fcntl(fd, F_GETFD);
	CHECK(fdf >= 0 && !!(fdf & FD_CLOEXEC) == cloexec, "%s: fd %d close-on-exec %d", what, fd, fdf);
}

static int readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int r = poll(&p, 1, 0);
	CHECK(r >= 0, "poll: %s", strerror(errno));
	return r == 1 && (p.revents & POLLIN);
}

static int zombie_fn(void *arg)
{
	(void)arg;
	_exit(7);
}

static void reaped(void)
{
	pid_t c = fork();
	CHECK(c >= 0, "fork");
	if (c == 0)
		_exit(3);
	int pfd = pidfd_open(c, 0), st;
	CHECK(pfd >= 0, "pidfd_open: %s", strerror(errno));
	CHECK(waitpid(c, &st, 0) == c, "waitpid");
	printf("ready\n");
	fflush(stdout);
	t_wait_go(1);
	for (int s = 0; s < 4; s++) {
		long p;
		unsigned long fl;
		fdinfo(pfd, &p, &fl);
		CHECK(p == -1 && readable(pfd) && send_sig(pfd, 0) == -1 && errno == ESRCH,
		      "the pidfd of the reaped child: pid %ld", p);
		printf("step %d ok\n", s);
		fflush(stdout);
		t_sleep_ms(20);
	}
	printf("RESULT attr_pidfd reaped ok\n");
}

int main(int argc, char **argv)
{
	t_init("attr_pidfd");
	if (argc > 1 && !strcmp(argv[1], "reaped")) {
		reaped();
		return 0;
	}
	signal(SIGUSR1, on_usr1);
	int hold[2];
	CHECK(pipe(hold) == 0, "pipe");
	pid_t a = fork();
	CHECK(a >= 0, "fork");
	if (a == 0) {
		char x;
		close(hold[1]);
		read(hold[0], &x, 1); /* until it is ended */
		_exit(0);
	}
	close(hold[0]);
	int pa = pidfd_open(a, 0);
	CHECK(pa >= 0, "pidfd_open(A): %s", strerror(errno));
	int nb = pidfd_open(a, PIDFD_NB);
	CHECK(nb >= 0 && dup2(nb, 40) == 40 && close(nb) == 0, "pidfd_open(A, NONBLOCK): %s", strerror(errno));
	nb = 40; /* dup2 leaves close-on-exec off */
	static char stack[65536];
	int pz = -1;
	pid_t z = clone(zombie_fn, stack + sizeof(stack), CLONE_PIDFD | SIGCHLD, NULL, &pz);
	CHECK(z > 0 && pz >= 0, "clone(CLONE_PIDFD): %s", strerror(errno));
	while (!readable(pz))
		t_sleep_ms(1);
	int ps = pidfd_open(getpid(), 0);
	CHECK(ps >= 0, "pidfd_open(self): %s", strerror(errno));
	int pt = pidfd_open(getpid(), PIDFD_THR);
	CHECK(pt >= 0, "pidfd_open(self, PIDFD_THREAD): %s", strerror(errno));
	for (int s = 0; s < STEPS; s++) {
		check_pidfd(pa, a, 0, 1, "A");
		check_pidfd(nb, a, PIDFD_NB, 0, "A (non-blocking)");
		check_pidfd(pz, z, 0, 1, "Z");
		check_pidfd(ps, getpid(), 0, 1, "self");
		check_pidfd(pt, getpid(), PIDFD_THR, 1, "main thread");
		CHECK(!readable(pa) && send_sig(pa, 0) == 0, "A: not alive through its pidfd: %s", strerror(errno));
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		CHECK(waitid(P_PIDFD, (id_t)nb, &si, WEXITED) == -1 && errno == EAGAIN,
		      "A: waitid on the non-blocking pidfd: %s", strerror(errno));
		memset(&si, 0, sizeof(si));
		CHECK(readable(pz) && waitid(P_PIDFD, (id_t)pz, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		      si.si_pid == z && si.si_code == CLD_EXITED && si.si_status == 7,
		      "Z: waitid pid %d code %d status %d: %s", si.si_pid, si.si_code, si.si_status, strerror(errno));
		int u = usr1;
		CHECK(send_sig(ps, SIGUSR1) == 0, "pidfd_send_signal(self): %s", strerror(errno));
		while (usr1 == u)
			t_sleep_ms(1);
		CHECK(usr1 == u + 1, "SIGUSR1 arrived %d times", usr1 - u);
		printf("step %d ok\n", s);
		fflush(stdout);
		t_sleep_ms(60);
	}
	siginfo_t si;
	CHECK(send_sig(pa, SIGTERM) == 0, "ending A: %s", strerror(errno));
	memset(&si, 0, sizeof(si));
	CHECK(waitid(P_PIDFD, (id_t)pa, &si, WEXITED) == 0 && si.si_pid == a && si.si_code == CLD_KILLED &&
	      si.si_status == SIGTERM, "A: code %d status %d", si.si_code, si.si_status);
	memset(&si, 0, sizeof(si));
	CHECK(waitid(P_PIDFD, (id_t)pz, &si, WEXITED) == 0 && si.si_pid == z && si.si_status == 7, "Z: reaped %d",
	      si.si_pid);
	/*
	 * Both children are gone: their pidfds go too.  On a busy machine the
	 * test's last checkpoint may come only at the end gate (common.h),
	 * and a pidfd of a process waited for is refused (attr_pidfd_refused).
	 */
	close(pa);
	close(nb);
	close(pz);
	printf("RESULT attr_pidfd ok\n");
	return 0;
}
