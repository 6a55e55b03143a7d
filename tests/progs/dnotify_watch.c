/*
 * dnotify_watch [oneshot|exec] (tests/cases/kinds.sh): dnotify watches
 * (fcntl F_NOTIFY), which no file of /proc shows, across checkpoints and
 * restarts.  Four directories under a work directory:
 *   d1  descriptor A and its dup B: F_SETSIG(A, SIG); F_NOTIFY(A,
 *       DN_CREATE | DN_MULTISHOT), then F_NOTIFY(B, DN_DELETE): one watch
 *       (the kernel's per open file and descriptor table) with both
 *       events, whose signals name B (si_fd), SIG with si_code POLL_MSG;
 *       its SIGIO owner is the process (the first F_NOTIFY made it so)
 *   d2  descriptor C: F_NOTIFY(C, DN_MODIFY | DN_MULTISHOT), then
 *       F_NOTIFY(C, 0): no watch; its owner stays the process
 *   d3  descriptor E: watched (DN_CREATE | DN_MULTISHOT), then a dup of
 *       it closed: the close of any descriptor of the file ends the watch
 *   d4  descriptor G: watched likewise, then a directory stream made with
 *       fdopendir on a dup of it, read and closed with closedir: no watch
 * A child forked after that holds copies of every descriptor until the
 * end, and closes none: the watch is the parent's descriptor table's (a
 * child's restorer, forked from its parent's, must not ask for it).
 * At every step, in each directory: a file created, the one before it
 * removed, a file written, a mode changed; exactly the signals of d1's
 * create and delete come, in order, each naming B; SIG is the only
 * signal queued after; the owners and signals of A and C are as set.
 *
 * "oneshot": d1's watch without DN_MULTISHOT (which the kernel drops once
 * it fires, and nothing shows whether it has): "one-shot", and the
 * program waits (t_wait_go 1: the test finds the checkpoint refused);
 * then a create fires it (one signal, none for the next), F_NOTIFY again
 * with DN_MULTISHOT, "multishot", and it waits (t_wait_go 2: checkpoint
 * --kill, restart) before its steps.  "exec": the program execs itself
 * ("exec2") with d1's watch set and B open across the exec (the kernel
 * keeps the watch): "exec'd", and it waits (t_wait_go 1: refused, the
 * agent cannot tell whether the exec's closes ended it); then it removes
 * the watch (F_NOTIFY 0) and makes it again, "again", and waits
 * (t_wait_go 2) before its steps.
 * Output: those lines, "step N ok" per step, then RESULT.
 */
#include "common.h"
#include <dirent.h>
#include <sys/wait.h>

#define STEPS 24
#define SIG (SIGRTMIN + 2)
#define BAND (POLLIN_ | POLLRDNORM_ | POLLMSG_)
#define POLLIN_ 0x1
#define POLLRDNORM_ 0x40
#define POLLMSG_ 0x400
/* the descriptors, at fixed numbers so that an exec'd program finds them */
enum { FD_A = 20, FD_B, FD_C, FD_E, FD_G };

static char work[4096];
static sigset_t sigs;

static int open_dir_at(const char *name, int at)
{
	char p[4200];
	t_fmt(p, sizeof(p), "%s/%s", work, name);
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		FAIL("mkdir %s: %s", p, strerror(errno));
	int fd = SYSCHK(open(p, O_RDONLY | O_DIRECTORY));
	if (fd != at) {
		SYSCHK(dup2(fd, at));
		SYSCHK(close(fd));
	}
	return at;
}

static void path_of(char *p, size_t n, const char *dir, const char *name, int k)
{
	t_fmt(p, n, "%s/%s/%s%d", work, dir, name, k);
}

/* In each directory: file f<k> made (and written), f<k-1> removed, g's mode changed. */
static void events(int k)
{
	static const char *const dirs[] = { "d1", "d2", "d3", "d4" };
	for (int i = 0; i < 4; i++) {
		char p[4300];
		path_of(p, sizeof(p), dirs[i], "f", k);
		int f = SYSCHK(open(p, O_WRONLY | O_CREAT | O_EXCL, 0600));
		CHECK(write(f, "x", 1) == 1, "write %s: %s", p, strerror(errno));
		SYSCHK(close(f));
		if (k > 0) {
			path_of(p, sizeof(p), dirs[i], "f", k - 1);
			SYSCHK(unlink(p));
		}
		path_of(p, sizeof(p), dirs[i], "f", k);
		SYSCHK(chmod(p, 0640));
	}
}

/* The next queued signal: SIG from d1's watch, naming B (within 5 s when wait). */
static void expect_sig(const char *what, int wait)
{
	siginfo_t si;
	struct timespec t = { wait ? 5 : 0, 0 };
	int s = sigtimedwait(&sigs, &si, &t);
	CHECK(s == SIG, "%s: signal %d (%s), expected %d", what, s, s < 0 ? strerror(errno) : "", SIG);
	CHECK(si.si_code == POLL_MSG && si.si_fd == FD_B && si.si_band == BAND,
	      "%s: si_code %d, si_fd %d, si_band %#lx; expected %d, %d, %#x", what, si.si_code, si.si_fd,
	      (long)si.si_band, POLL_MSG, FD_B, BAND);
}

static void expect_none(const char *what)
{
	siginfo_t si;
	struct timespec t = { 0, 0 };
	int s = sigtimedwait(&sigs, &si, &t);
	CHECK(s < 0 && errno == EAGAIN, "%s: an extra signal %d (si_fd %d)", what, s, s > 0 ? si.si_fd : -1);
	sigset_t pend;
	sigpending(&pend);
	for (int i = 1; i < NSIG; i++)
		CHECK(!sigismember(&pend, i), "%s: signal %d pending", what, i);
}

static void check_owners(const char *what)
{
	CHECK(fcntl(FD_A, F_GETSIG) == SIG && fcntl(FD_B, F_GETSIG) == SIG, "%s: F_GETSIG %d, expected %d", what,
	      fcntl(FD_A, F_GETSIG), SIG);
	CHECK(fcntl(FD_A, F_GETOWN) == getpid(), "%s: A's owner %d, expected the process", what, fcntl(FD_A, F_GETOWN));
	CHECK(fcntl(FD_C, F_GETOWN) == getpid() && fcntl(FD_C, F_GETSIG) == SIG, "%s: C's owner %d signal %d", what,
	      fcntl(FD_C, F_GETOWN), fcntl(FD_C, F_GETSIG));
	CHECK(fcntl(FD_E, F_GETOWN) == getpid() && fcntl(FD_G, F_GETOWN) == getpid(), "%s: E's owner %d, G's %d",
	      what, fcntl(FD_E, F_GETOWN), fcntl(FD_G, F_GETOWN));
}

static void step(int k)
{
	char what[64];
	t_fmt(what, sizeof(what), "step %d", k);
	check_owners(what);
	events(k);
	expect_sig(what, 0); /* d1: created */
	if (k > 0)
		expect_sig(what, 0); /* d1: removed */
	expect_none(what);
}

/* d1's watch as at the top; oneshot: without DN_MULTISHOT */
static void watch_d1(int oneshot)
{
	SYSCHK(fcntl(FD_A, F_SETSIG, SIG));
	SYSCHK(fcntl(FD_A, F_NOTIFY, DN_CREATE | (oneshot ? 0 : DN_MULTISHOT)));
	SYSCHK(fcntl(FD_B, F_NOTIFY, DN_DELETE | (oneshot ? 0 : DN_MULTISHOT)));
}

static void setup(void)
{
	open_dir_at("d1", FD_A);
	SYSCHK(dup2(FD_A, FD_B));
	open_dir_at("d2", FD_C);
	open_dir_at("d3", FD_E);
	open_dir_at("d4", FD_G);
	SYSCHK(fcntl(FD_C, F_SETSIG, SIG));
	SYSCHK(fcntl(FD_C, F_NOTIFY, DN_MODIFY | DN_MULTISHOT));
	SYSCHK(fcntl(FD_C, F_NOTIFY, 0));
	SYSCHK(fcntl(FD_E, F_SETSIG, SIG));
	SYSCHK(fcntl(FD_E, F_NOTIFY, DN_CREATE | DN_MULTISHOT));
	int e2 = SYSCHK(dup(FD_E));
	SYSCHK(close(e2));
	SYSCHK(fcntl(FD_G, F_SETSIG, SIG));
	SYSCHK(fcntl(FD_G, F_NOTIFY, DN_CREATE | DN_MULTISHOT));
	DIR *d = fdopendir(SYSCHK(dup(FD_G)));
	CHECK(d != NULL, "fdopendir: %s", strerror(errno));
	int n = 0;
	while (readdir(d))
		n++;
	CHECK(n == 2, "d4 has %d entries", n);
	SYSCHK(closedir(d));
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int oneshot = !strcmp(mode, "oneshot"), exec2 = !strcmp(mode, "exec2");
	t_init("dnotify_watch");
	sigemptyset(&sigs);
	sigaddset(&sigs, SIG);
	sigaddset(&sigs, SIGIO);
	sigprocmask(SIG_BLOCK, &sigs, NULL); /* (an exec keeps the mask) */
	t_fmt(work, sizeof(work), "%s/dnotify_watch", t_tmpdir());
	if (!exec2) {
		char cmd[4200];
		t_fmt(cmd, sizeof(cmd), "rm -rf %s", work);
		CHECK(system(cmd) == 0, "%s", cmd);
		SYSCHK(mkdir(work, 0700));
		setup();
		watch_d1(oneshot);
	}
	if (!strcmp(mode, "exec")) {
		check_owners("before the exec");
		execl("/proc/self/exe", argv[0], "exec2", (char *)NULL);
		FAIL("exec: %s", strerror(errno));
	}
	if (exec2) {
		printf("exec'd\n");
		check_owners("exec'd");
		t_wait_go(1);
		SYSCHK(fcntl(FD_B, F_NOTIFY, 0));
		watch_d1(0);
		printf("again\n");
		t_wait_go(2);
	}
	if (oneshot) {
		printf("one-shot\n");
		check_owners("one-shot");
		t_wait_go(1);
		char o[4300];
		path_of(o, sizeof(o), "d1", "o", 1);
		SYSCHK(close(SYSCHK(open(o, O_WRONLY | O_CREAT | O_EXCL, 0600))));
		expect_sig("one-shot", 0); /* d1: created, and the watch gone */
		SYSCHK(unlink(o));
		expect_none("one-shot fired");
		watch_d1(0);
		printf("multishot\n");
		t_wait_go(2);
	}
	pid_t child = SYSCHK(fork());
	if (child == 0)
		for (;;)
			pause(); /* holding every descriptor, until the parent ends it */
	for (int k = 0; k < STEPS; k++) {
		step(k);
		printf("step %d ok\n", k);
		t_pace_ms(150);
	}
	SYSCHK(kill(child, SIGKILL));
	int st;
	CHECK(waitpid(child, &st, 0) == child, "waitpid: %s", strerror(errno));
	/* (closed before their directories go: a checkpoint at the end gate finds none deleted) */
	for (int fd = FD_A; fd <= FD_G; fd++)
		SYSCHK(close(fd));
	char cmd[4200];
	t_fmt(cmd, sizeof(cmd), "rm -rf %s", work);
	CHECK(system(cmd) == 0, "%s", cmd);
	printf("RESULT %d steps, d1 watched, d2 d3 d4 not\n", STEPS);
	return 0;
}
