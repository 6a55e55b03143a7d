/*
 * mem_fork: memory a parent and its child share.
 *   - a MAP_SHARED|MAP_ANONYMOUS region made before the fork: each side
 *     writes a page every step and the other must read it (through the
 *     pipes that pace them), so it must come back one region, not two;
 *   - private anonymous memory filled before the fork: each side writes
 *     some of its pages after the fork, and the other must not see them.
 * With the argument "cow", both also check that the pages neither wrote
 * since the fork are still shared copy-on-write (pagemap: present and not
 * mapped by this process alone), as a restore must bring them back.
 */
#include "common.h"
#include "exact.h"

#define STEPS 16
#define SPG 8
#define PPG 48

static unsigned char *sh, *priv;
static int cow;

static void check_private(const char *who, int step, int mine_from, int mine_to, uint64_t mine_obj)
{
	for (int p = 0; p < PPG; p++) {
		int mine = p >= mine_from && p < mine_to;
		uint64_t sd = mine ? x_seed(mine_obj, (uint64_t)p, 1) : x_seed(9, (uint64_t)p, 0);
		long d = x_diff(priv + p * PG, sd);
		CHECK(d < 0, "%s step %d: private page %d (%s) differs at byte %ld", who, step, p,
		      mine ? "written since the fork" : "from before the fork", d);
		if (cow && p >= 24) {
			uint64_t e = x_pagemap(priv + p * PG);
			CHECK((e & X_PM_PRESENT) && !(e & X_PM_EXCLUSIVE),
			      "%s step %d: private page %d is no longer shared copy-on-write with the other process "
			      "(pagemap %s)", who, step, p, (e & X_PM_PRESENT) ? "exclusive" : "not present");
		}
	}
}

static void xfer(int fd, int *v, int out)
{
	ssize_t n;
	do
		n = out ? write(fd, v, sizeof(*v)) : read(fd, v, sizeof(*v));
	while (n < 0 && errno == EINTR);
	CHECK(n == sizeof(*v), "pipe %s: %s", out ? "write" : "read", n < 0 ? strerror(errno) : "short");
}

static void child(int in, int out)
{
	for (int s = 0; s < STEPS; s++) {
		int v;
		xfer(in, &v, 0);
		CHECK(v == s, "child: step %d, parent says %d", s, v);
		long d = x_diff(sh + (s % SPG) * PG, x_seed(1, (uint64_t)(s % SPG), (uint64_t)s));
		CHECK(d < 0, "child step %d: the parent's write to shared page %d is not seen (byte %ld)", s, s % SPG, d);
		check_private("child", s, 8, 8 + s, 3);
		x_fill(sh + ((s + 4) % SPG) * PG, x_seed(2, (uint64_t)((s + 4) % SPG), (uint64_t)s));
		x_fill(priv + (8 + s) * PG, x_seed(3, (uint64_t)(8 + s), 1));
		xfer(out, &v, 1);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	int down[2], up[2], st;

	t_init("mem_fork");
	cow = argc > 1 && strcmp(argv[1], "cow") == 0;
	sh = mmap(NULL, SPG * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	priv = mmap(NULL, PPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED && priv != MAP_FAILED, "mmap: %s", strerror(errno));
	for (int p = 0; p < PPG; p++)
		x_fill(priv + p * PG, x_seed(9, (uint64_t)p, 0));
	SYSCHK(pipe(down));
	SYSCHK(pipe(up));
	pid_t pid = SYSCHK(fork());
	if (pid == 0) {
		close(down[1]);
		close(up[0]);
		child(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	for (int s = 0; s < STEPS; s++) {
		int v = s;
		check_private("parent", s, 0, s, 4);
		x_fill(sh + (s % SPG) * PG, x_seed(1, (uint64_t)(s % SPG), (uint64_t)s));
		x_fill(priv + s * PG, x_seed(4, (uint64_t)s, 1));
		xfer(down[1], &v, 1);
		xfer(up[0], &v, 0);
		long d = x_diff(sh + ((s + 4) % SPG) * PG, x_seed(2, (uint64_t)((s + 4) % SPG), (uint64_t)s));
		CHECK(d < 0, "parent step %d: the child's write to shared page %d is not seen (byte %ld)", s,
		      (s + 4) % SPG, d);
		x_step(s, 100);
	}
	SYSCHK(waitpid(pid, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child ended with status %#x", st);
	printf("RESULT mem_fork ok\n");
	return 0;
}
