/*
 * sysv_undo (application group): SysV semaphore adjustments (SEM_UNDO)
 * held across checkpoints, given back by the kernel when their process
 * exits after a restart (issue 13).
 * Each round, on a set A of 5 semaphores (5 3 7 10 1 by SETALL, which also
 * clears what the parent held from the round before) and a set B of one:
 * - the parent takes 1 of A3 with SEM_UNDO (its own: a forked child must
 *   not inherit it);
 * - child H takes 1 of A0 and 4 of A3 with SEM_UNDO (semop), 2 more into
 *   A1 with SEM_UNDO from a second thread (semtimedop: threads share the
 *   undo list), 1 of B0 with SEM_UNDO, then through syscall(SYS_semop)
 *   gives 1 back to A3 with SEM_UNDO and adds 1 to A2 without; a
 *   grandchild it forks and waits for gives nothing back when it exits;
 *   then it execs itself (the kernel keeps its adjustments across exec),
 *   and two threads of the new program take and give back A4 (1, a lock) with
 *   SEM_UNDO all along, one holding it while the other waits in semop:
 *   the checkpoints find them there, or just done;
 * - the parent removes B (H's adjustment on it is gone: a restart must
 *   not look for it);
 * - child C takes 2 of A2 with SEM_UNDO, then the parent sets A2 to 20
 *   (SETVAL clears C's adjustment in the kernel: C's exit changes
 *   nothing);
 * - H and C hold what they took for HOLD_MS (the checkpoints and restarts
 *   come then), and exit without releasing anything.
 * The parent checks every value while they hold (4 5 20 6) and after each
 * exit (after H's the kernel gave back exactly H's: 5 3 20 9 and the lock
 * free; A2 stays 20 after C's).  Output: two lines per round, then RESULT.
 */
#include "common.h"
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define ROUNDS 2
#define HOLD_MS 2500 /* the checkpoints of the tests come in the first round's */

static int seta, setb;

static void get_all(unsigned short v[4])
{
	unsigned short all[5];
	SYSCHK(semctl(seta, 0, GETALL, all));
	memcpy(v, all, 4 * sizeof(v[0]));
}

static void expect(const char *when, int r, int a0, int a1, int a2, int a3)
{
	unsigned short v[4];
	get_all(v);
	CHECK(v[0] == a0 && v[1] == a1 && v[2] == a2 && v[3] == a3, "round %d, %s: A is %u %u %u %u, not %d %d %d %d", r,
	      when, v[0], v[1], v[2], v[3], a0, a1, a2, a3);
}

static void op(int set, unsigned short num, short val, short flg)
{
	struct sembuf b = { num, val, flg };
	CHECK(semop(set, &b, 1) == 0, "semop on set %d semaphore %u by %d: %s", set, num, val, strerror(errno));
}

static void *second_thread(void *arg)
{
	(void)arg;
	struct sembuf b = { 1, 2, SEM_UNDO };
	struct timespec t = { 1, 0 };
	CHECK(semtimedop(seta, &b, 1, &t) == 0, "semtimedop from a second thread: %s", strerror(errno));
	return NULL;
}

/* Take A4 and give it back, for ever: one of the two threads holds it, the other waits in semop. */
static void *churn(void *arg)
{
	(void)arg;
	for (;;) {
		op(seta, 4, -1, SEM_UNDO);
		usleep(200);
		op(seta, 4, 1, SEM_UNDO);
	}
	return NULL;
}

static void holder_h(int ready)
{
	struct sembuf two[2] = { { 0, -1, SEM_UNDO }, { 3, -4, SEM_UNDO } };
	CHECK(semop(seta, two, 2) == 0, "H: semop: %s", strerror(errno));
	pthread_t t;
	CHECK(pthread_create(&t, NULL, second_thread, NULL) == 0, "pthread_create");
	pthread_join(t, NULL);
	op(setb, 0, -1, SEM_UNDO);
	struct sembuf more[2] = { { 3, 1, SEM_UNDO }, { 2, 1, 0 } };
	CHECK(syscall(SYS_semop, seta, more, 2) == 0, "H: syscall(SYS_semop): %s", strerror(errno));
	pid_t g = SYSCHK(fork());
	if (g == 0)
		_exit(0); /* no adjustment of its own: its exit gives nothing back */
	int st;
	SYSCHK(waitpid(g, &st, 0));
	char a[16], r[16];
	snprintf(a, sizeof(a), "%d", seta);
	snprintf(r, sizeof(r), "%d", ready);
	execl("/proc/self/exe", "sysv_undo", "h", a, r, (char *)NULL);
	FAIL("exec: %s", strerror(errno));
}

/* H after its exec (main's "h SETA READY"): the lock's threads, then it holds. */
static void holder_h_exec(char **argv)
{
	seta = atoi(argv[2]);
	pthread_t t;
	for (int k = 0; k < 2; k++)
		CHECK(pthread_create(&t, NULL, churn, NULL) == 0, "pthread_create");
	CHECK(write(atoi(argv[3]), "h", 1) == 1, "write");
	t_sleep_ms(HOLD_MS);
	_exit(0); /* without giving anything back: the kernel does */
}

static void holder_c(int ready, int go)
{
	op(seta, 2, -2, SEM_UNDO);
	CHECK(write(ready, "c", 1) == 1, "write");
	char c;
	CHECK(read(go, &c, 1) == 1, "read");
	t_sleep_ms(HOLD_MS);
	_exit(0);
}

static pid_t spawn(int which, int ready, int go)
{
	pid_t p = SYSCHK(fork());
	if (p)
		return p;
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* a native run that fails leaves no child behind */
	if (which == 'h')
		holder_h(ready);
	holder_c(ready, go);
	return 0;
}

static void await(int ready, char want)
{
	char c = 0;
	CHECK(read(ready, &c, 1) == 1 && c == want, "waiting for %c: got %c", want, c);
}

static void reap(pid_t p, const char *who)
{
	int st;
	SYSCHK(waitpid(p, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s ended with status %#x", who, st);
}

static uint64_t round_of(int r, uint64_t h)
{
	unsigned short init[5] = { 5, 3, 7, 10, 1 };
	SYSCHK(semctl(seta, 0, SETALL, init));
	setb = SYSCHK(semget(IPC_PRIVATE, 1, 0600));
	SYSCHK(semctl(setb, 0, SETVAL, 1));
	op(seta, 3, -1, SEM_UNDO); /* the parent's own */
	int rp[2], gp[2];
	SYSCHK(pipe(rp));
	SYSCHK(pipe(gp));
	pid_t hp = spawn('h', rp[1], gp[0]);
	await(rp[0], 'h');
	expect("H holds", r, 4, 5, 8, 6);
	SYSCHK(semctl(setb, 0, IPC_RMID));
	pid_t cp = spawn('c', rp[1], gp[0]);
	await(rp[0], 'c');
	expect("C holds", r, 4, 5, 6, 6);
	SYSCHK(semctl(seta, 2, SETVAL, 20));
	CHECK(write(gp[1], "g", 1) == 1, "write");
	unsigned short v[4];
	get_all(v);
	printf("round %d: held %u %u %u %u\n", r, v[0], v[1], v[2], v[3]);
	fflush(stdout);
	h = t_fnv(h, v, sizeof(v));
	reap(hp, "H");
	expect("H exited", r, 5, 3, 20, 9);
	int lock = SYSCHK(semctl(seta, 4, GETVAL));
	CHECK(lock == 1, "round %d, H exited: the lock A4 is %d, not 1", r, lock);
	reap(cp, "C");
	expect("C exited", r, 5, 3, 20, 9);
	get_all(v);
	printf("round %d: after the exits %u %u %u %u\n", r, v[0], v[1], v[2], v[3]);
	fflush(stdout);
	for (int k = 0; k < 2; k++) {
		close(rp[k]);
		close(gp[k]);
	}
	return t_fnv(h, v, sizeof(v));
}

int main(int argc, char **argv)
{
	t_init("sysv_undo");
	if (argc == 4 && strcmp(argv[1], "h") == 0)
		holder_h_exec(argv);
	seta = SYSCHK(semget(IPC_PRIVATE, 5, 0600));
	uint64_t h = T_FNV_INIT;
	for (int r = 0; r < ROUNDS; r++)
		h = round_of(r, h);
	SYSCHK(semctl(seta, 0, IPC_RMID));
	printf("RESULT sysv_undo %016llx\n", (unsigned long long)h);
	return 0;
}
