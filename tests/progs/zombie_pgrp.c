/*
 * zombie_pgrp: zombies in process groups and sessions that have no live
 * process of their own number (tests/cases/overrun.sh, issue 11).  The
 * root R makes
 *   (a) L, a group leader, and Z1, a child of R that joins L's group and
 *       exits; then L exits and is reaped: group L is Z1 alone, a zombie;
 *   (b) A, a live group leader, and B, a child of R that joins A's group
 *       and exits (a shell pipeline whose second command ended first);
 *   (c) S, which makes a session, forks C into it and exits: C lives on in
 *       the session of a zombie (and its group), reparented to init;
 *   (d) H and G, group leaders, M and Z2 joining G's group (Z2 exits),
 *       then G moves to H's group: group G lives on without a process of
 *       its number, while pid G is a live process of group H.
 * At every step R checks each zombie's group and session from outside
 * (getpgid, getsid), that each group answers kill(-pgid, 0), and that
 * waitid(P_PGID, WNOWAIT) finds exactly the zombie of that group; the
 * live ones check their own ids.  At the end R reaps Z1, B and Z2 with
 * waitid(P_PGID), which must return exactly them, and the rest by pid.
 * No pid is printed: the output is the same in a straight run.
 */
#include "common.h"
#include <poll.h>
#include <sys/wait.h>

#define STEPS 16
#define STEP_MS 250

static int q[2]; /* the quit pipe: the root closes its end, the others' poll sees the end */

/* wait up to 100 ms for the quit pipe; 1 when it is closed */
static int quit_now(int qfd, const char *who)
{
	struct pollfd p = { qfd, POLLIN, 0 };
	int r = poll(&p, 1, 100);
	CHECK(r >= 0, "%s: poll: %s", who, strerror(errno));
	return r > 0;
}

/* A live process: its group and session stay what they were until the quit pipe closes. */
static void live(const char *who, int qfd, int code)
{
	pid_t pg = getpgrp(), sid = getsid(0);
	close(q[1]);
	while (!quit_now(qfd, who)) {
		CHECK(getpgrp() == pg, "%s: in group %d, was %d", who, (int)getpgrp(), (int)pg);
		CHECK(getsid(0) == sid, "%s: in session %d, was %d", who, (int)getsid(0), (int)sid);
	}
	_exit(code);
}

/* until kid is a zombie (not reaped) */
static void await_zombie(pid_t kid)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	SYSCHK(waitid(P_PID, (id_t)kid, &si, WEXITED | WNOWAIT));
}

/* a child that joins group g and exits with code */
static pid_t zombie_in(pid_t g, int code)
{
	pid_t z = SYSCHK(fork());
	if (z == 0) {
		SYSCHK(setpgid(0, g));
		_exit(code);
	}
	if (setpgid(z, g) < 0 && errno != EACCES && errno != ESRCH)
		FAIL("setpgid(zombie, %d): %s", (int)g, strerror(errno));
	await_zombie(z);
	return z;
}

/* a live group leader */
static pid_t leader(int qfd, const char *who, int code)
{
	pid_t p = SYSCHK(fork());
	if (p == 0) {
		SYSCHK(setpgid(0, 0));
		live(who, qfd, code);
	}
	if (setpgid(p, p) < 0 && errno != EACCES)
		FAIL("setpgid(%s): %s", who, strerror(errno));
	return p;
}

/* the zombie of group g, exactly z, with its code: WNOWAIT, or reaped */
static void group_zombie(pid_t g, pid_t z, int code, int reap, const char *who, int step)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	int r = waitid(P_PGID, (id_t)g, &si, WEXITED | WNOHANG | (reap ? 0 : WNOWAIT));
	CHECK(r == 0, "step %d: waitid(P_PGID) of %s's group: %s", step, who, strerror(errno));
	CHECK(si.si_pid == z, "step %d: waitid(P_PGID) of %s's group found pid %d, not %s", step, who, (int)si.si_pid,
	      who);
	CHECK(si.si_code == CLD_EXITED && si.si_status == code, "step %d: %s: code %d status %d", step, who, si.si_code,
	      si.si_status);
}

int main(void)
{
	t_init("zombie_pgrp");
	int cp[2], done[2];
	SYSCHK(pipe(q));
	SYSCHK(pipe(cp));
	SYSCHK(pipe(done));
	fflush(stdout);

	/* (a) group L, whose leader is gone, has only the zombie Z1 */
	int lgo[2];
	SYSCHK(pipe(lgo));
	pid_t l = SYSCHK(fork());
	if (l == 0) {
		close(lgo[1]);
		SYSCHK(setpgid(0, 0));
		char c;
		while (read(lgo[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(lgo[0]);
	if (setpgid(l, l) < 0 && errno != EACCES)
		FAIL("setpgid(L): %s", strerror(errno));
	pid_t z1 = zombie_in(l, 11);
	close(lgo[1]);
	int st;
	SYSCHK(waitpid(l, &st, 0));

	/* (b) a live leader A and the zombie B of its group */
	pid_t a = leader(q[0], "A", 21);
	pid_t b = zombie_in(a, 12);

	/* (c) the zombie session leader S and C, alive in its session */
	pid_t s = SYSCHK(fork());
	if (s == 0) {
		SYSCHK(setsid());
		pid_t c = SYSCHK(fork());
		if (c == 0) {
			close(cp[0]);
			close(cp[1]);
			close(done[0]);
			live("C", q[0], 22); /* done[1] stays open until C ends */
		}
		CHECK(write(cp[1], &c, sizeof(c)) == (ssize_t)sizeof(c), "S: write");
		_exit(13);
	}
	pid_t c;
	t_read_all(cp[0], &c, sizeof(c), -1);
	close(done[1]);
	await_zombie(s);

	/* (d) G lends its number to the group of M and Z2, and moves to H's */
	pid_t h = leader(q[0], "H", 23);
	pid_t g = SYSCHK(fork());
	if (g == 0) { /* only the parent moves it: twice, in this order */
		close(q[1]);
		while (!quit_now(q[0], "G"))
			;
		_exit(24);
	}
	SYSCHK(setpgid(g, g));
	pid_t m = SYSCHK(fork());
	if (m == 0) {
		SYSCHK(setpgid(0, g));
		live("M", q[0], 25);
	}
	if (setpgid(m, g) < 0 && errno != EACCES)
		FAIL("setpgid(M): %s", strerror(errno));
	pid_t z2 = zombie_in(g, 14);
	SYSCHK(setpgid(g, h));
	close(q[0]);
	printf("started: three zombies in groups, one leading a session\n");

	for (int i = 0; i < STEPS; i++) {
		fflush(stdout);
		t_sleep_ms(STEP_MS);
		CHECK(getpgid(z1) == l, "step %d: Z1 is in group %d, not L's (%d)", i, (int)getpgid(z1), (int)l);
		CHECK(kill(-l, 0) == 0, "step %d: group L does not answer: %s", i, strerror(errno));
		group_zombie(l, z1, 11, 0, "Z1", i);
		CHECK(getpgid(b) == a, "step %d: B is in group %d, not A's (%d)", i, (int)getpgid(b), (int)a);
		group_zombie(a, b, 12, 0, "B", i);
		CHECK(getsid(s) == s && getpgid(s) == s, "step %d: S leads session %d, group %d", i, (int)getsid(s),
		      (int)getpgid(s));
		CHECK(getsid(c) == s, "step %d: C is in session %d, not S's (%d)", i, (int)getsid(c), (int)s);
		CHECK(getpgid(c) == s, "step %d: C is in group %d, not S's (%d)", i, (int)getpgid(c), (int)s);
		CHECK(kill(-s, 0) == 0, "step %d: group S does not answer: %s", i, strerror(errno));
		CHECK(getpgid(g) == h, "step %d: G is in group %d, not H's (%d)", i, (int)getpgid(g), (int)h);
		CHECK(getpgid(m) == g && getpgid(z2) == g, "step %d: M and Z2 are in groups %d and %d, not G (%d)", i,
		      (int)getpgid(m), (int)getpgid(z2), (int)g);
		CHECK(kill(-g, 0) == 0, "step %d: group G does not answer: %s", i, strerror(errno));
		group_zombie(g, z2, 14, 0, "Z2", i);
		printf("step %d ok\n", i);
	}

	group_zombie(l, z1, 11, 1, "Z1", STEPS);
	CHECK(kill(-l, 0) < 0 && errno == ESRCH, "group L answers once Z1 is reaped");
	group_zombie(a, b, 12, 1, "B", STEPS);
	group_zombie(g, z2, 14, 1, "Z2", STEPS);
	close(q[1]);
	static const struct { const char *who; int code; } kids[] = { { "A", 21 }, { "S", 13 }, { "H", 23 },
								    { "G", 24 }, { "M", 25 } };
	pid_t pids[] = { a, s, h, g, m };
	for (int i = 0; i < 5; i++) {
		SYSCHK(waitpid(pids[i], &st, 0));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == kids[i].code, "%s ended with status %#x", kids[i].who, st);
	}
	char x;
	CHECK(read(done[0], &x, 1) == 0, "C: data on its pipe"); /* C has ended */
	CHECK(waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD, "a child is left");
	printf("RESULT zombies 11 12 13 14, live 21 22 23 24 25\n");
	return 0;
}
