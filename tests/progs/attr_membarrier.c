/*
 * attr_membarrier: the membarrier(2) commands a process registered must
 * come back registered after a restart (a JVM registers
 * MEMBARRIER_CMD_PRIVATE_EXPEDITED; unregistered it gets EPERM), and
 * those it did not register must stay unregistered.
 *
 * The parent registers GLOBAL_EXPEDITED, PRIVATE_EXPEDITED and (where the
 * kernel offers it) PRIVATE_EXPEDITED_SYNC_CORE, but not _RSEQ; its
 * child, forked before, registers only PRIVATE_EXPEDITED_RSEQ.  A second
 * thread of the parent spins so that the expedited barriers have another
 * thread to reach.  At every step each process checks what
 * MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3+) says and that every
 * private barrier command answers as its registration says (0, or
 * EPERM; a global one answers 0 to anyone).
 *
 * Output: "step N ok" lines and a RESULT line; any difference is a FAIL
 * on stderr and exit 1.
 */
#include "common.h"
#include <linux/membarrier.h>
#include <sys/wait.h>

#define STEPS 40
#define GET_REGISTRATIONS (1 << 9) /* Linux 6.3; the headers here may be older */

static int membarrier(int cmd)
{
	return (int)syscall(SYS_membarrier, cmd, 0, 0);
}

/* The barrier command each MEMBARRIER_CMD_REGISTER_* bit allows. */
static const struct {
	int reg, cmd;
	const char *name;
} cmds[] = {
	{ MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, MEMBARRIER_CMD_GLOBAL_EXPEDITED, "GLOBAL_EXPEDITED" },
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, MEMBARRIER_CMD_PRIVATE_EXPEDITED, "PRIVATE_EXPEDITED" },
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
	  "PRIVATE_EXPEDITED_SYNC_CORE" },
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ,
	  "PRIVATE_EXPEDITED_RSEQ" },
};

static int supported;	/* MEMBARRIER_CMD_QUERY */

/*
 * Register the commands of want; what GET_REGISTRATIONS says then.  (It
 * says PRIVATE_EXPEDITED too after a registration of _SYNC_CORE or _RSEQ
 * alone, whose PRIVATE_EXPEDITED barrier still answers EPERM.)
 */
static int do_register(int want, const char *who)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if ((want & cmds[i].reg) && (supported & cmds[i].reg))
			CHECK(membarrier(cmds[i].reg) == 0, "%s: register %s: %s", who, cmds[i].name, strerror(errno));
	return membarrier(GET_REGISTRATIONS);
}

/* What the kernel says is registered (shown), and what each barrier command answers. */
static void check(int want, int shown, const char *who)
{
	want &= supported;
	int got = membarrier(GET_REGISTRATIONS);
	CHECK(got == shown, "%s: registered %#x, expected %#x", who, got, shown);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!(supported & cmds[i].cmd))
			continue;
		errno = 0;
		int r = membarrier(cmds[i].cmd);
		/* a global barrier is anyone's to ask for (it reaches the registered processes) */
		if ((want & cmds[i].reg) || cmds[i].cmd == MEMBARRIER_CMD_GLOBAL_EXPEDITED)
			CHECK(r == 0, "%s: %s: %s", who, cmds[i].name, strerror(errno));
		else
			CHECK(r == -1 && errno == EPERM, "%s: %s not registered, but it answered %d (%s)", who,
			      cmds[i].name, r, strerror(errno));
	}
}

static void *spin(void *arg)
{
	volatile uint64_t *n = arg;
	for (;;)
		(*n)++;
	return NULL;
}

int main(void)
{
	t_init("attr_membarrier");
	supported = membarrier(MEMBARRIER_CMD_QUERY);
	CHECK(supported > 0, "membarrier: %s", strerror(errno));
	if (membarrier(GET_REGISTRATIONS) < 0)
		FAIL("MEMBARRIER_CMD_GET_REGISTRATIONS: %s (Linux 6.3 or later needed)", strerror(errno));
	int mine = MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED |
		   MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE;
	int childs = MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ;
	int go[2], done[2];
	CHECK(pipe(go) == 0 && pipe(done) == 0, "pipe");
	pid_t c = fork();
	CHECK(c >= 0, "fork");
	if (c == 0) {
		/* one step per byte from the parent, a byte back when checked; EOF: the end */
		char x;
		close(go[1]);
		close(done[0]);
		check(0, 0, "child");
		int shown = do_register(childs, "child");
		while (read(go[0], &x, 1) == 1) {
			check(childs, shown, "child");
			CHECK(write(done[1], &x, 1) == 1, "child: write");
		}
		_exit(0);
	}
	close(go[0]);
	close(done[1]);
	check(0, 0, "parent");
	int shown = do_register(mine, "parent");
	CHECK(shown == (mine & supported), "parent: registered %#x, expected %#x", shown, mine & supported);
	static uint64_t spins;
	pthread_t t;
	CHECK(pthread_create(&t, NULL, spin, &spins) == 0, "pthread_create");
	for (int s = 0; s < STEPS; s++) {
		char x = (char)s;
		check(mine, shown, "parent");
		CHECK(write(go[1], &x, 1) == 1 && read(done[0], &x, 1) == 1 && x == (char)s, "the child did not check");
		printf("step %d ok\n", s);
		fflush(stdout);
		t_pace_ms(100);
	}
	close(go[1]);
	int st;
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	printf("RESULT attr_membarrier ok\n");
	return 0;
}
