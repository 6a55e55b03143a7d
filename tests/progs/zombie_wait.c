/*
 * zombie_wait (application group): zombies, sessions and process groups
 * across checkpoint/restart.
 *   - child 1 exits at once with status 42, child 2 kills itself with
 *     SIGTERM; neither is waited for until the end (~3.5 s later, after the
 *     harness's checkpoints). Every step the parent looks at both with
 *     waitid(WNOWAIT) (which does not reap) and checks the exit status and
 *     signal are still there;
 *   - child 3 calls setsid() and forks a grandchild that stays in that
 *     session but moves to a process group of its own (setpgid(0, 0)).
 *     Child 3 and the grandchild check at every step that getpgrp(),
 *     getsid(0) and getppid() are unchanged; the parent checks getpgid() and
 *     getsid() of both from outside, and its own getpgrp()/getsid(0)/getppid().
 *     Both run until the parent closes the "quit" pipe (they wait for it in
 *     poll() with a 100 ms timeout, checking between).
 * At the end the parent reaps everything and prints the statuses: child 1
 * exited 42, child 2 was killed by signal 15, child 3 exited 8 after reaping
 * the grandchild's exit status 7. No pid or id is ever printed.
 */
#include "common.h"
#include <poll.h>
#include <sys/wait.h>

#define STEPS 14
#define STEP_MS 250
#define SUB_MS 100

struct ids {
	pid_t pgrp, sid, ppid;
};

static void ids_get(struct ids *x)
{
	x->pgrp = getpgrp();
	x->sid = getsid(0);
	x->ppid = getppid();
}

static void ids_check(const struct ids *x, const char *who, int step)
{
	struct ids now;

	ids_get(&now);
	CHECK(now.pgrp == x->pgrp, "%s, step %d: getpgrp() %d, was %d", who, step, (int)now.pgrp, (int)x->pgrp);
	CHECK(now.sid == x->sid, "%s, step %d: getsid(0) %d, was %d", who, step, (int)now.sid, (int)x->sid);
	CHECK(now.ppid == x->ppid, "%s, step %d: getppid() %d, was %d", who, step, (int)now.ppid, (int)x->ppid);
}

/* wait up to SUB_MS for the quit pipe; 1 when it is closed */
static int quit_now(int qfd, const char *who)
{
	struct pollfd p = { qfd, POLLIN, 0 };
	int r = poll(&p, 1, SUB_MS);

	if (r < 0 && errno == EINTR)
		FAIL("%s: poll interrupted (EINTR)", who);
	CHECK(r >= 0, "%s: poll: %s", who, strerror(errno));
	if (r == 0)
		return 0;
	char c;
	CHECK(read(qfd, &c, 1) == 0, "%s: data in the quit pipe", who);
	return 1;
}

static void grandchild(pid_t session, int qfd)
{
	struct t_ident id;
	struct ids x;

	t_ident_init(&id);
	ids_get(&x);
	CHECK(x.pgrp == getpid(), "grandchild: not leader of its process group");
	CHECK(x.sid == session, "grandchild: session %d, expected %d", (int)x.sid, (int)session);
	for (int i = 0; !quit_now(qfd, "grandchild"); i++) {
		t_ident_check(&id);
		ids_check(&x, "grandchild", i);
	}
	_exit(7);
}

static void session_child(int report_fd, int qfd)
{
	struct t_ident id;
	struct ids x;

	pid_t sid = setsid();
	CHECK(sid == getpid(), "setsid: %s", strerror(errno));
	t_ident_init(&id);
	ids_get(&x);
	CHECK(x.sid == getpid() && x.pgrp == getpid(), "child 3: not a session leader after setsid()");
	/* the grandchild moves to its own group; both sides call setpgid (no race) */
	int ready[2];
	SYSCHK(pipe(ready));
	pid_t g = SYSCHK(fork());
	if (g == 0) {
		close(ready[0]);
		close(report_fd);
		SYSCHK(setpgid(0, 0));
		char c = 'r';
		CHECK(write(ready[1], &c, 1) == 1, "grandchild: write");
		close(ready[1]);
		grandchild(sid, qfd);
	}
	close(ready[1]);
	if (setpgid(g, g) < 0 && errno != EACCES)
		FAIL("setpgid(grandchild): %s", strerror(errno));
	char c;
	CHECK(read(ready[0], &c, 1) == 1, "child 3: grandchild did not start");
	close(ready[0]);
	CHECK(getpgid(g) == g, "child 3: grandchild's group %d", (int)getpgid(g));
	/* tell the parent the grandchild's pid */
	int32_t gp = (int32_t)g;
	CHECK(write(report_fd, &gp, sizeof(gp)) == (ssize_t)sizeof(gp), "child 3: report: %s", strerror(errno));
	close(report_fd);
	for (int i = 0; !quit_now(qfd, "child 3"); i++) {
		t_ident_check(&id);
		ids_check(&x, "child 3", i);
		CHECK(getpgid(g) == g, "child 3, step %d: grandchild's group %d", i, (int)getpgid(g));
		CHECK(getsid(g) == sid, "child 3, step %d: grandchild's session %d", i, (int)getsid(g));
	}
	int st;
	pid_t w;
	while ((w = waitpid(g, &st, 0)) < 0 && errno == EINTR)
		FAIL("child 3: waitpid interrupted (EINTR)");
	CHECK(w == g, "child 3: waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7, "child 3: grandchild status %#x", st);
	_exit(8);
}

/* look at a child's state without reaping it */
static void peek(pid_t kid, int code, int status, const char *who, int step)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	int r = waitid(P_PID, (id_t)kid, &si, WEXITED | WNOHANG | WNOWAIT);
	if (r < 0 && errno == EINTR)
		FAIL("waitid interrupted (EINTR)");
	CHECK(r == 0, "step %d: waitid(%s): %s", step, who, strerror(errno));
	CHECK(si.si_pid == kid, "step %d: %s is not a zombie any more (si_pid %d)", step, who, (int)si.si_pid);
	CHECK(si.si_code == code && si.si_status == status, "step %d: %s: si_code %d si_status %d, expected %d %d",
	      step, who, si.si_code, si.si_status, code, status);
}

int main(void)
{
	struct t_ident id;
	struct ids me;
	siginfo_t si;
	int rep[2], q[2];

	t_init("zombie_wait");
	t_ident_init(&id);
	ids_get(&me);

	fflush(stdout);
	pid_t z1 = SYSCHK(fork());
	if (z1 == 0)
		_exit(42);
	pid_t z2 = SYSCHK(fork());
	if (z2 == 0) {
		signal(SIGTERM, SIG_DFL);
		raise(SIGTERM);
		_exit(99);
	}
	SYSCHK(pipe(rep));
	SYSCHK(pipe(q));
	pid_t s = SYSCHK(fork());
	if (s == 0) {
		close(rep[0]);
		close(q[1]);
		session_child(rep[1], q[0]);
	}
	close(rep[1]);
	close(q[0]);
	int32_t g;
	t_read_all(rep[0], &g, sizeof(g), -1);
	close(rep[0]);
	/* wait (without reaping) until both become zombies */
	memset(&si, 0, sizeof(si));
	SYSCHK(waitid(P_PID, (id_t)z1, &si, WEXITED | WNOWAIT));
	memset(&si, 0, sizeof(si));
	SYSCHK(waitid(P_PID, (id_t)z2, &si, WEXITED | WNOWAIT));
	printf("children started, two of them zombies now\n");

	for (int i = 0; i < STEPS; i++) {
		t_sleep_ms(STEP_MS);
		t_ident_check(&id);
		ids_check(&me, "parent", i);
		peek(z1, CLD_EXITED, 42, "child 1", i);
		peek(z2, CLD_KILLED, SIGTERM, "child 2", i);
		CHECK(getpgid(s) == s && getsid(s) == s, "step %d: child 3 is not leader of its group and session", i);
		CHECK(getpgid(g) == g, "step %d: grandchild's group is %d, not its own", i, (int)getpgid(g));
		CHECK(getsid(g) == s, "step %d: grandchild's session is %d, not child 3's", i, (int)getsid(g));
		printf("step %d ok\n", i);
	}

	close(q[1]); /* child 3 and the grandchild finish */
	int st;
	pid_t w;
	while ((w = waitpid(z1, &st, 0)) < 0 && errno == EINTR)
		FAIL("waitpid interrupted (EINTR)");
	CHECK(w == z1, "waitpid child 1: %s", strerror(errno));
	CHECK(WIFEXITED(st), "child 1: status %#x", st);
	printf("child 1 exited %d\n", WEXITSTATUS(st));
	w = waitpid(z2, &st, 0);
	CHECK(w == z2, "waitpid child 2: %s", strerror(errno));
	CHECK(WIFSIGNALED(st), "child 2: status %#x", st);
	printf("child 2 killed by signal %d\n", WTERMSIG(st));
	w = waitpid(s, &st, 0);
	CHECK(w == s, "waitpid child 3: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 8, "child 3: status %#x (expected exit 8: grandchild exited 7)", st);
	printf("child 3 exited 8 (grandchild exited 7)\n");
	CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "unexpected children left");
	ids_check(&me, "parent", STEPS);
	printf("RESULT ok\n");
	return 0;
}
