/*
 * memfd_state: memfds exactly, each of their open file descriptions on its
 * own, in a parent and its child.
 *
 *   A "state buffer one" (MFD_ALLOW_SEALING), 3 pages and 100 bytes, mode
 *     0640, sealed F_SEAL_GROW | F_SEAL_SHRINK: the creator's description
 *     (read-write, offset 3 + step) and a dup of it (one offset), a
 *     read-only reopen through /proc/self/fd (offset 2 + step: a byte is
 *     read through it each step; pwrite through it fails with EBADF), and
 *     a MAP_SHARED mapping of its first 3 pages whose writes are read
 *     through the descriptors (and pwrites through the mapping);
 *   B "second: no exec" (MFD_NOEXEC_SEAL where the kernel has it, else
 *     MFD_ALLOW_SEALING), one page, mode 0600: its seals exactly as they
 *     were made (F_SEAL_EXEC, and no write or size seal: it is written and
 *     grown and shrunk back at every step), and a reopen O_WRONLY |
 *     O_APPEND (read through it fails with EBADF);
 *   C "family" (no sealing: F_SEAL_SEAL; mode and seals as the kernel
 *     made them, vm.memfd_noexec's), shared with the child since the
 *     fork (one offset: each moves it by one in turn, and each sees the
 *     other's move), and a read-only description of the child's own
 *     (offset 5 + step).
 *   D "mapped only" (MFD_ALLOW_SEALING), 2 pages, mode 0604, sealed
 *     F_SEAL_GROW | F_SEAL_SHRINK, mapped MAP_SHARED and its descriptor
 *     closed: its name in /proc/self/maps, its content (written through
 *     the mapping each step), and where /proc/self/map_files opens
 *     (privileges: as at the start) its mode, size and seals.
 *   E "read only 0400", mode 0400 and its creator's read-write
 *     description, written through it at every step (the restart opens
 *     it again through /proc/self/fd, which asks the mode).
 * At every step: the name each descriptor's link shows ("/memfd:NAME
 * (deleted)"), mode, size, seals (F_GET_SEALS), content (every byte),
 * offsets, access modes and status flags (F_GETFL), inode (the
 * descriptions of one memfd are one file).  With "huge" (the checkpoint
 * must refuse): a hugetlb memfd (MFD_HUGETLB) is made instead, "ready",
 * and the program waits for go.1.
 *
 * Output (the parent's): "step N ok" lines and a RESULT line.
 */
#include "common.h"
#include "exact.h"
#include <sys/wait.h>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#define STEPS 24
#define A_SIZE (3 * PG + 100)
#define C_SIZE 64

static int a, a_dup, a_ro, b, b_wa, c;
static char *map;
static char a_want[A_SIZE], b_want[PG];
static int b_seals, noexec;
static char *d_map, d_want[2 * PG];
static int e;
static char e_want[64];
static int d_files;	/* /proc/self/map_files opens (privileged) */
static unsigned c_mode;
static int c_seals;

/* The link of fd: "/memfd:NAME (deleted)". */
static void check_link(int fd, const char *name, int step)
{
	char p[64], l[512], want[300];
	t_fmt(p, sizeof(p), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, l, sizeof(l) - 1);
	CHECK(n > 0, "step %d: readlink fd %d: %s", step, fd, strerror(errno));
	l[n] = 0;
	t_fmt(want, sizeof(want), "/memfd:%s (deleted)", name);
	CHECK(!strcmp(l, want), "step %d: fd %d is '%s', expected '%s'", step, fd, l, want);
}

/* fd's inode is ref's, with this mode and size. */
static void check_file(int fd, int ref, unsigned mode, off_t size, int step)
{
	struct stat st, sr;
	SYSCHK(fstat(fd, &st));
	SYSCHK(fstat(ref, &sr));
	CHECK(st.st_dev == sr.st_dev && st.st_ino == sr.st_ino, "step %d: fd %d is not the memfd of fd %d", step, fd,
	      ref);
	CHECK((st.st_mode & 07777) == mode, "step %d: fd %d: mode %o, expected %o", step, fd, st.st_mode & 07777, mode);
	CHECK(st.st_size == size, "step %d: fd %d: size %ld, expected %ld", step, fd, (long)st.st_size, (long)size);
}

static void check_flags(int fd, int want, int step)
{
	int fl = fcntl(fd, F_GETFL);
	SYSCHK(fl);
	fl &= O_ACCMODE | O_APPEND | O_NONBLOCK;
	CHECK(fl == want, "step %d: fd %d: flags %o, expected %o", step, fd, fl, want);
}

static void check_pos(int fd, off_t want, int step)
{
	off_t at = lseek(fd, 0, SEEK_CUR);
	CHECK(at == want, "step %d: fd %d at %ld, expected %ld", step, fd, (long)at, (long)want);
}

static void check_content(int fd, const char *want, size_t n, const char *what, int step)
{
	static char got[A_SIZE];
	t_read_all(fd, got, n, 0);
	for (size_t i = 0; i < n; i++)
		CHECK(got[i] == want[i], "step %d: %s: byte %zu is %#x, expected %#x", step, what, i,
		      (unsigned char)got[i], (unsigned char)want[i]);
}

static void check_a(int s)
{
	check_link(a, "state buffer one", s);
	check_link(a_ro, "state buffer one", s);
	check_file(a_ro, a, 0640, A_SIZE, s);
	check_file(a_dup, a, 0640, A_SIZE, s);
	int seals = fcntl(a, F_GET_SEALS);
	CHECK(seals == (F_SEAL_GROW | F_SEAL_SHRINK), "step %d: A's seals %#x, expected %#x", s, seals,
	      F_SEAL_GROW | F_SEAL_SHRINK);
	CHECK(ftruncate(a, A_SIZE + PG) < 0 && errno == EPERM, "step %d: A (F_SEAL_GROW) could grow", s);
	CHECK(ftruncate(a, PG) < 0 && errno == EPERM, "step %d: A (F_SEAL_SHRINK) could shrink", s);
	check_flags(a, O_RDWR, s);
	check_flags(a_dup, O_RDWR, s);
	check_flags(a_ro, O_RDONLY, s);
	CHECK(pwrite(a_ro, "x", 1, 0) < 0 && errno == EBADF, "step %d: A's read-only description could be written", s);
	/* one offset for a and its dup, another for the reopen */
	check_pos(a, 3 + s, s);
	check_pos(a_dup, 3 + s, s);
	check_pos(a_ro, 2 + s, s);
	check_content(a_ro, a_want, A_SIZE, "A", s);
	CHECK(!memcmp(map, a_want, 3 * PG), "step %d: A's mapping differs from its content", s);
}

static void check_b(int s)
{
	check_link(b, "second: no exec", s);
	check_link(b_wa, "second: no exec", s);
	check_file(b, b, 0600, PG, s);
	check_file(b_wa, b, 0600, PG, s);
	int seals = fcntl(b, F_GET_SEALS);
	CHECK(seals == b_seals, "step %d: B's seals %#x, expected %#x", s, seals, b_seals);
	CHECK(!noexec || (seals & F_SEAL_EXEC), "step %d: B (MFD_NOEXEC_SEAL) is not sealed F_SEAL_EXEC", s);
	/* F_SEAL_EXEC keeps the x bits as they are */
	CHECK(!noexec || (fchmod(b, 0700) < 0 && errno == EPERM), "step %d: B (F_SEAL_EXEC) could be made executable", s);
	check_flags(b, O_RDWR, s);
	check_flags(b_wa, O_WRONLY | O_APPEND, s);
	char x;
	CHECK(pread(b_wa, &x, 1, 0) < 0 && errno == EBADF, "step %d: B's write-only description could be read", s);
	check_pos(b, 0, s);
	check_content(b, b_want, PG, "B", s);
	/* no write or size seal came with F_SEAL_EXEC */
	SYSCHK(ftruncate(b, 2 * PG));
	SYSCHK(ftruncate(b, PG));
}

/* D: only mapped; its mode and seals through map_files, where it opens */
static void check_d(int s)
{
	struct x_map m;
	char p[128];
	CHECK(x_maps_find(d_map, &m) && m.start == (unsigned long)d_map && m.end == (unsigned long)d_map + 2 * PG,
	      "step %d: D's mapping is gone or resized", s);
	CHECK(!strcmp(m.path, "/memfd:mapped only (deleted)"), "step %d: D's mapping is of '%s'", s, m.path);
	CHECK(!memcmp(d_map, d_want, sizeof(d_want)), "step %d: D's content differs", s);
	t_fmt(p, sizeof(p), "/proc/self/map_files/%lx-%lx", m.start, m.end);
	int fd = open(p, O_RDONLY);
	CHECK((fd >= 0) == d_files, "step %d: %s opens %s", s, p, fd >= 0 ? "now" : "no longer");
	if (fd < 0)
		return;
	struct stat st;
	SYSCHK(fstat(fd, &st));
	CHECK((st.st_mode & 07777) == 0604 && st.st_size == 2 * PG, "step %d: D: mode %o size %ld, expected 604 %lu", s,
	      st.st_mode & 07777, (long)st.st_size, 2 * PG);
	int seals = fcntl(fd, F_GET_SEALS);
	CHECK(seals == (F_SEAL_GROW | F_SEAL_SHRINK), "step %d: D's seals %#x, expected %#x", s, seals,
	      F_SEAL_GROW | F_SEAL_SHRINK);
	close(fd);
}

/* E: mode 0400, its description read-write */
static void check_e(int s)
{
	check_link(e, "read only 0400", s);
	check_file(e, e, 0400, sizeof(e_want), s);
	check_flags(e, O_RDWR, s);
	check_pos(e, s, s);
	check_content(e, e_want, sizeof(e_want), "E", s);
}

/* A step's changes: A through the mapping and a pwrite, B through a pwrite; offsets moved */
static void change(int s)
{
	map[PG + s] = a_want[PG + s] = (char)('a' + s);
	a_want[2 * PG + 7] = (char)s;
	t_write_all(a, &a_want[2 * PG + 7], 1, 2 * PG + 7);
	CHECK(map[2 * PG + 7] == (char)s, "step %d: a pwrite to A is not in its mapping", s);
	a_want[3 * PG + s] = (char)(0x80 | s);
	t_write_all(a_dup, &a_want[3 * PG + s], 1, 3 * PG + s);
	SYSCHK(lseek(a_dup, 1, SEEK_CUR));
	char x;
	CHECK(read(a_ro, &x, 1) == 1 && x == a_want[2 + s], "step %d: read through A's reopen", s);
	b_want[s] = (char)('B' + s);
	t_write_all(b, &b_want[s], 1, s);
	d_map[PG + 3 * s] = d_want[PG + 3 * s] = (char)('D' + s);
	e_want[s] = (char)('E' + s);
	t_write_all(e, &e_want[s], 1, -1);
}

static void put(int fd, int v)
{
	CHECK(write(fd, &v, sizeof(v)) == (ssize_t)sizeof(v), "write fd %d: %s", fd, strerror(errno));
}

/* The other process's word (its end: a failure, said by it) */
static int take(int fd)
{
	int v = -1;
	ssize_t n = read(fd, &v, sizeof(v));
	if (n == 0)
		_exit(1);
	CHECK(n == (ssize_t)sizeof(v), "read fd %d: %s", fd, strerror(errno));
	return v;
}

/* The child: at each step, after the parent moved C's offset, checks it and moves it again. */
static void child(int from_parent, int to_parent)
{
	char p[64];
	t_fmt(p, sizeof(p), "/proc/self/fd/%d", c);
	int own = SYSCHK(open(p, O_RDONLY));
	SYSCHK(lseek(own, 5, SEEK_SET));
	put(to_parent, 0);
	for (int s;;) {
		s = take(from_parent);
		if (s < 0)
			_exit(0);
		check_link(c, "family", s);
		check_link(own, "family", s);
		check_file(own, c, c_mode, C_SIZE, s);
		CHECK(fcntl(c, F_GET_SEALS) == c_seals, "step %d: C's seals %#x, expected %#x", s, fcntl(c, F_GET_SEALS),
		      c_seals);
		check_pos(c, 10 + 2 * s + 1, s);
		check_pos(own, 5 + s, s);
		check_flags(own, O_RDONLY, s);
		check_flags(c, O_RDWR, s);
		CHECK(pwrite(own, "x", 1, 0) < 0 && errno == EBADF, "step %d: the child's read-only description of C "
		      "could be written", s);
		char x;
		CHECK(read(own, &x, 1) == 1 && x == (char)(5 + s), "step %d: the child read %d from C", s, x);
		SYSCHK(lseek(c, 1, SEEK_CUR));
		put(to_parent, s);
	}
}

/* "huge": a hugetlb memfd, which the checkpoint refuses (go.1 lets the program end) */
static int huge(void)
{
	int h = memfd_create("huge one", MFD_HUGETLB);
	if (h < 0)
		printf("no hugetlb memfd here\n");
	printf("ready\n");
	t_wait_go(1);
	if (h >= 0)
		close(h);
	printf("RESULT memfd_state huge\n");
	return 0;
}

int main(int argc, char **argv)
{
	int down[2], up[2], st;

	t_init("memfd_state");
	if (argc > 1 && !strcmp(argv[1], "huge"))
		return huge();
	for (size_t i = 0; i < sizeof(a_want); i++)
		a_want[i] = (char)t_mix(i);
	a = SYSCHK(memfd_create("state buffer one", MFD_ALLOW_SEALING | MFD_CLOEXEC));
	t_write_all(a, a_want, A_SIZE, 0);
	SYSCHK(fchmod(a, 0640));
	SYSCHK(fcntl(a, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK));
	SYSCHK(lseek(a, 3, SEEK_SET));
	a_dup = SYSCHK(dup(a));
	char p[64];
	t_fmt(p, sizeof(p), "/proc/self/fd/%d", a);
	a_ro = SYSCHK(open(p, O_RDONLY));
	SYSCHK(lseek(a_ro, 2, SEEK_SET));
	map = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	CHECK(map != MAP_FAILED, "mmap A: %s", strerror(errno));

	b = memfd_create("second: no exec", MFD_NOEXEC_SEAL);
	noexec = b >= 0;
	if (b < 0)
		b = SYSCHK(memfd_create("second: no exec", MFD_ALLOW_SEALING));
	memset(b_want, 'b', sizeof(b_want));
	t_write_all(b, b_want, PG, 0);
	SYSCHK(fchmod(b, 0600));
	b_seals = fcntl(b, F_GET_SEALS);
	t_fmt(p, sizeof(p), "/proc/self/fd/%d", b);
	b_wa = SYSCHK(open(p, O_WRONLY | O_APPEND));

	int d = SYSCHK(memfd_create("mapped only", MFD_ALLOW_SEALING));
	SYSCHK(ftruncate(d, 2 * PG));
	SYSCHK(fchmod(d, 0604));
	d_map = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
	CHECK(d_map != MAP_FAILED, "mmap D: %s", strerror(errno));
	SYSCHK(fcntl(d, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK));
	close(d);
	for (size_t i = 0; i < sizeof(d_want); i++)
		d_map[i] = d_want[i] = (char)(t_mix(i + 1000) | 1);
	t_fmt(p, sizeof(p), "/proc/self/map_files/%lx-%lx", (unsigned long)d_map, (unsigned long)d_map + 2 * PG);
	d = open(p, O_RDONLY);
	d_files = d >= 0;
	if (d >= 0)
		close(d);

	e = SYSCHK(memfd_create("read only 0400", 0));
	memset(e_want, 'e', sizeof(e_want));
	t_write_all(e, e_want, sizeof(e_want), 0);
	SYSCHK(fchmod(e, 0400));

	c = SYSCHK(memfd_create("family", 0));
	char cb[C_SIZE];
	for (int i = 0; i < C_SIZE; i++)
		cb[i] = (char)i;
	t_write_all(c, cb, C_SIZE, 0);
	SYSCHK(lseek(c, 10, SEEK_SET));
	/* as the kernel makes it (vm.memfd_noexec may seal it F_SEAL_EXEC, mode 0666) */
	struct stat cst;
	SYSCHK(fstat(c, &cst));
	c_mode = cst.st_mode & 07777;
	c_seals = SYSCHK(fcntl(c, F_GET_SEALS));
	SYSCHK(pipe(down));
	SYSCHK(pipe(up));
	pid_t kid = SYSCHK(fork());
	if (kid == 0) {
		close(down[1]);
		close(up[0]);
		child(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	take(up[0]);

	for (int s = 0; s < STEPS; s++) {
		check_a(s);
		check_b(s);
		check_d(s);
		check_e(s);
		check_pos(c, 10 + 2 * s, s);
		SYSCHK(lseek(c, 1, SEEK_CUR));
		put(down[1], s);
		CHECK(take(up[0]) == s, "the child failed at step %d", s);
		check_pos(c, 10 + 2 * s + 2, s);
		change(s);
		x_step(s, 100);
	}
	check_a(STEPS);
	check_b(STEPS);
	check_d(STEPS);
	check_e(STEPS);
	put(down[1], -1);
	SYSCHK(waitpid(kid, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child ended with status %#x", st);
	printf("RESULT memfd_state ok (%s)\n", noexec ? "noexec" : "no MFD_NOEXEC_SEAL");
	return 0;
}
