/*
 * mem_shared_twice: one object mapped shared twice, read-only first (in
 * the order /proc/PID/maps and the group's processes come) and then
 * read-write; the checkpoint must keep what the read-write one writes.
 *   ONE, the file "twice.one" in $COHORT_TEST_TMP: mapped read-only and,
 *     just above it, read-write, by this process (its descriptors closed);
 *     a page written through the read-write mapping each step must show
 *     in the read-only one and in the file (pread);
 *   TWO, the file "twice.two": mapped read-only by this process and
 *     read-write by its child, which writes a page each step (the pipes
 *     pace them); the parent reads it through its mapping and the file;
 *   MEM, a memfd "twice": its first page mapped read-only, and its pages
 *     1 to 3 read-write just above it, its descriptor closed; a page of
 *     the read-write window written each step.
 * Every byte of every mapping and file is checked at every step, and that
 * the mappings are where they were (maps: permissions, offset, path).
 * While the group is down the test overwrites both files (their size and
 * mtime kept): the restart must give them back as the checkpoint saw
 * them.
 *
 * Output (the parent's): "step N ok" lines and a RESULT line.
 */
#include "common.h"
#include "exact.h"
#include <sys/wait.h>

#define STEPS 24
#define NPG 4

enum { ONE, TWO, MEM, NOBJ };
static unsigned char *ro[NOBJ], *rw[NOBJ];
static char path[2][PATH_MAX];
static int fd_two;
static int vers[NOBJ][NPG];	/* the version of each page of each object */

/* the object's page p as written last */
static uint64_t seed(int o, int p) { return x_seed((uint64_t)o + 1, (uint64_t)p, (uint64_t)vers[o][p]); }

/* [ro | rw] next to each other: ro maps pages [0, nro) of fd, rw pages [rw_off, rw_off + nrw) */
static void map_pair(int o, int ro_fd, int rw_fd, int nro, int rw_off, int nrw)
{
	unsigned char *at = mmap(NULL, (size_t)(nro + nrw) * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(at != MAP_FAILED, "mmap: %s", strerror(errno));
	ro[o] = mmap(at, (size_t)nro * PG, PROT_READ, MAP_SHARED | MAP_FIXED, ro_fd, 0);
	rw[o] = mmap(at + nro * PG, (size_t)nrw * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, rw_fd,
		     (off_t)rw_off * (off_t)PG);
	CHECK(ro[o] != MAP_FAILED && rw[o] != MAP_FAILED, "mmap object %d: %s", o, strerror(errno));
}

static int new_file(int o)
{
	t_fmt(path[o], sizeof(path[o]), "%s/twice.%s", t_tmpdir(), o == ONE ? "one" : "two");
	int fd = SYSCHK(open(path[o], O_RDWR | O_CREAT | O_TRUNC, 0600));
	unsigned char buf[PG];
	for (int p = 0; p < NPG; p++) {
		x_fill(buf, seed(o, p));
		t_write_all(fd, buf, PG, (off_t)(p * PG));
	}
	return fd;
}

/* maps shows region m (npg pages at file page off) with these permissions */
static void check_region(const unsigned char *m, int npg, int off, const char *perms, const char *want_path,
			 const char *who, int step)
{
	struct x_map xm;
	CHECK(x_maps_find(m, &xm), "%s step %d: %p is not mapped", who, step, (const void *)m);
	CHECK(xm.start == (unsigned long)m && xm.end == (unsigned long)m + (unsigned long)npg * PG &&
	      xm.off == (unsigned long)off * PG && !strcmp(xm.perms, perms) && !strcmp(xm.path, want_path),
	      "%s step %d: maps shows %lx-%lx %s %lx %s, expected %p-%p %s %lx %s", who, step, xm.start, xm.end,
	      xm.perms, xm.off, xm.path, (const void *)m, (const void *)(m + npg * PG), perms,
	      (unsigned long)off * PG, want_path);
}

/* every page of a file object: through the mapping m (pages from..to) and the file */
static void check_pages(int o, const unsigned char *m, int from, int to, const char *what, const char *who, int step)
{
	for (int p = from; p < to; p++) {
		long d = x_diff(m + (p - from) * PG, seed(o, p));
		CHECK(d < 0, "%s step %d: %s: page %d differs at byte %ld", who, step, what, p, d);
	}
	if (o == MEM)
		return;
	unsigned char buf[PG];
	int fd = SYSCHK(open(path[o], O_RDONLY));
	for (int p = 0; p < NPG; p++) {
		t_read_all(fd, buf, PG, (off_t)(p * PG));
		long d = x_diff(buf, seed(o, p));
		CHECK(d < 0, "%s step %d: %s: page %d of the file differs at byte %ld", who, step, path[o], p, d);
	}
	close(fd);
}

static void check_parent(int step)
{
	check_region(ro[ONE], NPG, 0, "r--s", path[ONE], "parent", step);
	check_region(rw[ONE], NPG, 0, "rw-s", path[ONE], "parent", step);
	check_pages(ONE, ro[ONE], 0, NPG, "ONE read-only", "parent", step);
	check_pages(ONE, rw[ONE], 0, NPG, "ONE read-write", "parent", step);
	check_region(ro[TWO], NPG, 0, "r--s", path[TWO], "parent", step);
	check_pages(TWO, ro[TWO], 0, NPG, "TWO read-only", "parent", step);
	check_region(ro[MEM], 1, 0, "r--s", "/memfd:twice (deleted)", "parent", step);
	check_region(rw[MEM], NPG - 1, 1, "rw-s", "/memfd:twice (deleted)", "parent", step);
	check_pages(MEM, ro[MEM], 0, 1, "MEM read-only", "parent", step);
	check_pages(MEM, rw[MEM], 1, NPG, "MEM read-write", "parent", step);
}

static void xfer(int fd, int *v, int out)
{
	ssize_t n;
	do
		n = out ? write(fd, v, sizeof(*v)) : read(fd, v, sizeof(*v));
	while (n < 0 && errno == EINTR);
	CHECK(n == sizeof(*v), "pipe %s: %s", out ? "write" : "read", n < 0 ? strerror(errno) : "short");
}

/* the child: TWO read-write; each step it writes page s % NPG, version s */
static void child(int in, int out)
{
	rw[TWO] = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd_two, 0);
	CHECK(rw[TWO] != MAP_FAILED, "child: mmap %s: %s", path[TWO], strerror(errno));
	close(fd_two);
	for (int s = 1;; s++) {
		int v;
		xfer(in, &v, 0);
		if (v < 0)
			_exit(0);
		CHECK(v == s, "child: step %d, the parent says %d", s, v);
		check_region(rw[TWO], NPG, 0, "rw-s", path[TWO], "child", s);
		check_pages(TWO, rw[TWO], 0, NPG, "TWO read-write", "child", s - 1);
		vers[TWO][s % NPG] = s;
		x_fill(rw[TWO] + (s % NPG) * PG, seed(TWO, s % NPG));
		xfer(out, &v, 1);
	}
}

int main(void)
{
	int down[2], up[2], st;

	t_init("mem_shared_twice");
	int one = new_file(ONE);
	int one_ro = SYSCHK(open(path[ONE], O_RDONLY));
	map_pair(ONE, one_ro, one, NPG, 0, NPG);
	close(one);
	close(one_ro);

	fd_two = new_file(TWO);
	int two_ro = SYSCHK(open(path[TWO], O_RDONLY));
	ro[TWO] = mmap(NULL, NPG * PG, PROT_READ, MAP_SHARED, two_ro, 0);
	CHECK(ro[TWO] != MAP_FAILED, "mmap %s: %s", path[TWO], strerror(errno));
	close(two_ro);

	int mem = SYSCHK(memfd_create("twice", 0));
	unsigned char buf[PG];
	for (int p = 0; p < NPG; p++) {
		x_fill(buf, seed(MEM, p));
		t_write_all(mem, buf, PG, (off_t)(p * PG));
	}
	map_pair(MEM, mem, mem, 1, 1, NPG - 1);
	close(mem);
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
	close(fd_two);
	for (int s = 1; s <= STEPS; s++) {
		check_parent(s - 1);
		int p = s % NPG;
		vers[ONE][p] = s;
		x_fill(rw[ONE] + p * PG, seed(ONE, p));
		if (p) {
			vers[MEM][p] = s;
			x_fill(rw[MEM] + (p - 1) * PG, seed(MEM, p));
		}
		xfer(down[1], &s, 1);
		int v;
		xfer(up[0], &v, 0);
		CHECK(v == s, "step %d: the child says %d", s, v);
		vers[TWO][s % NPG] = s;
		check_parent(s);
		x_step(s, 150);
	}
	int end = -1;
	xfer(down[1], &end, 1);
	SYSCHK(waitpid(pid, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child ended with status %#x", st);
	printf("RESULT mem_shared_twice ok\n");
	return 0;
}
