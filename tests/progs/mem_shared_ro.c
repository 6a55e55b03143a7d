/*
 * mem_shared_ro: shared memory mapped read-only, which mprotect may or may
 * not make writable, as the kernel decided when it was mapped (VmFlags
 * "mw", VM_MAYWRITE: the file was open for writing and not sealed).
 *   A memfd "ro open": mapped PROT_READ through a read-only reopen of it
 *     (/proc/self/fd, then closed); its creator's read-write descriptor
 *     writes a page each step, which the mapping must show;
 *   B memfd "sealed write": filled, sealed F_SEAL_WRITE, then mapped
 *     PROT_READ, its descriptor closed;
 *   C memfd "sealed future": filled, sealed F_SEAL_FUTURE_WRITE, then
 *     mapped PROT_READ; its descriptor kept (a pwrite through it fails
 *     with EPERM, and so does a writable mmap of it);
 *   D a /dev/shm file opened O_RDONLY and mapped, still linked, written
 *     each step through a read-write descriptor;
 *   E a /dev/shm file opened O_RDONLY, mapped, closed and unlinked;
 *   F memfd "may write": mapped PROT_READ through its read-write
 *     descriptor (then closed): mprotect can make it writable (and back).
 * At every step, for each: /proc/self/maps (permissions r--s, path; not
 * E's: a shared deleted file comes back as a memfd "cohort-shm"),
 * whether smaps VmFlags has mw, what mprotect(PROT_READ | PROT_WRITE)
 * does (EACCES for A to E, as before the checkpoint), every byte.
 * With "premapped" (the checkpoint must refuse): G, a memfd mapped
 * PROT_READ from its read-write descriptor and then sealed
 * F_SEAL_FUTURE_WRITE (a restart seals before it maps, and could not make
 * it as it was: mprotect can make it writable), "ready", then the program
 * waits for go.1 and runs its steps.
 *
 * Output: "step N ok" lines and a RESULT line.
 */
#include "common.h"
#include "exact.h"
#include <sys/mman.h>

#define STEPS 24
#define NPG 2
#define SIZE (NPG * PG)

enum { A, B, C, D, E, F, G, NOBJ };
static const char *const names[NOBJ] = { "ro open", "sealed write", "sealed future", "devshm ro", "devshm deleted",
					 "may write", "premapped future" };
static unsigned char *map[NOBJ];
static unsigned char want[NOBJ][SIZE];
static int a_fd, c_fd, d_fd, g_fd;
static char d_path[PATH_MAX], e_path[PATH_MAX];
static int premapped;

static void fill(int o, int ver)
{
	for (int p = 0; p < NPG; p++)
		x_fill(want[o] + p * PG, x_seed((uint64_t)o, (uint64_t)p, (uint64_t)ver));
}

static int new_memfd(int o, unsigned flags)
{
	int fd = SYSCHK(memfd_create(names[o], flags));
	fill(o, 0);
	t_write_all(fd, want[o], SIZE, 0);
	return fd;
}

static unsigned char *map_ro(int fd, const char *what)
{
	unsigned char *m = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap %s: %s", what, strerror(errno));
	return m;
}

/* a /dev/shm file of its own: the run's (the native run has another tmpdir) */
static int devshm_file(int o, char *path, size_t n)
{
	struct stat st;
	SYSCHK(stat(t_tmpdir(), &st));
	t_fmt(path, n, "/dev/shm/cohort-mem-shared-ro-%lu-%d-%d", (unsigned long)st.st_ino, (int)getpid(), o);
	int fd = SYSCHK(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
	fill(o, 0);
	t_write_all(fd, want[o], SIZE, 0);
	return fd;
}

static void setup(void)
{
	char p[64];
	a_fd = new_memfd(A, MFD_CLOEXEC);
	t_fmt(p, sizeof(p), "/proc/self/fd/%d", a_fd);
	int ro = SYSCHK(open(p, O_RDONLY));
	map[A] = map_ro(ro, "A (read-only reopen)");
	close(ro);

	int b = new_memfd(B, MFD_ALLOW_SEALING);
	SYSCHK(fcntl(b, F_ADD_SEALS, F_SEAL_WRITE));
	map[B] = map_ro(b, "B (sealed F_SEAL_WRITE)");
	close(b);

	c_fd = new_memfd(C, MFD_ALLOW_SEALING);
	SYSCHK(fcntl(c_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE));
	map[C] = map_ro(c_fd, "C (sealed F_SEAL_FUTURE_WRITE)");

	d_fd = devshm_file(D, d_path, sizeof(d_path));
	ro = SYSCHK(open(d_path, O_RDONLY));
	map[D] = map_ro(ro, d_path);
	close(ro);

	int e = devshm_file(E, e_path, sizeof(e_path));
	close(e);
	ro = SYSCHK(open(e_path, O_RDONLY));
	map[E] = map_ro(ro, e_path);
	close(ro);
	SYSCHK(unlink(e_path));

	int f = new_memfd(F, 0);
	map[F] = map_ro(f, "F (read-write descriptor)");
	close(f);

	if (premapped) {
		g_fd = new_memfd(G, MFD_ALLOW_SEALING);
		map[G] = map_ro(g_fd, "G (read-write descriptor)");
		SYSCHK(fcntl(g_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE));
	}
}

/* what /proc/self/maps names object o */
static void maps_path(int o, char *out, size_t n)
{
	if (o == D)
		t_fmt(out, n, "%s", d_path);
	else if (o == E)
		t_fmt(out, n, "%s (deleted)", e_path);
	else
		t_fmt(out, n, "/memfd:%s (deleted)", names[o]);
}

/* maps, VmFlags mw and what mprotect(PROT_WRITE) does: may write (and back), or EACCES */
static void check_map(int o, int may_write, int step)
{
	struct x_map xm;
	char path[PATH_MAX];
	maps_path(o, path, sizeof(path));
	CHECK(x_maps_find(map[o], &xm), "step %d: %s is not mapped", step, names[o]);
	CHECK(xm.start == (unsigned long)map[o] && xm.end == (unsigned long)map[o] + SIZE,
	      "step %d: %s is mapped at %lx-%lx, expected %p-%p", step, names[o], xm.start, xm.end, (void *)map[o],
	      (void *)(map[o] + SIZE));
	/* (a deleted file comes back as a memfd of another name, its path not checked) */
	CHECK(!strcmp(xm.perms, "r--s") && (o == E || !strcmp(xm.path, path)),
	      "step %d: %s: maps shows %s %s, expected r--s %s", step, names[o], xm.perms, xm.path, path);
	int mw = x_vmflag(map[o], "mw");
	CHECK(mw == may_write, "step %d: %s: VmFlags %s mw (mprotect %s make it writable), expected %s", step,
	      names[o], mw ? "has" : "lacks", mw ? "can" : "cannot", may_write ? "with" : "without");
	if (o == G)
		return; /* (made writable, it could not be sealed as it is) */
	int r = mprotect(map[o], SIZE, PROT_READ | PROT_WRITE);
	if (!may_write) {
		CHECK(r < 0 && errno == EACCES, "step %d: %s: mprotect(PROT_READ | PROT_WRITE): %s, expected EACCES", step,
		      names[o], r ? strerror(errno) : "succeeded");
		return;
	}
	CHECK(r == 0, "step %d: %s: mprotect(PROT_READ | PROT_WRITE): %s", step, names[o], strerror(errno));
	SYSCHK(mprotect(map[o], SIZE, PROT_READ));
}

static void check_all(int step)
{
	for (int o = 0; o < NOBJ; o++) {
		if (o == G && !premapped)
			continue;
		check_map(o, o == F || o == G, step);
		for (int p = 0; p < NPG; p++) {
			long d = x_diff(map[o] + p * PG, x_seed((uint64_t)o, (uint64_t)p, (uint64_t)(o == A || o == D ?
													   step : 0)));
			CHECK(d < 0, "step %d: %s: page %d differs at byte %ld", step, names[o], p, d);
		}
	}
	/* C keeps its seal: no write through the descriptor, no writable mapping */
	char x = 1;
	ssize_t r = pwrite(c_fd, &x, 1, 0);
	CHECK(r < 0 && errno == EPERM, "step %d: pwrite to %s: %s, expected EPERM", step, names[C],
	      r < 0 ? strerror(errno) : "succeeded");
	void *w = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, c_fd, 0);
	CHECK(w == MAP_FAILED && errno == EPERM, "step %d: a writable mmap of %s: %s, expected EPERM", step, names[C],
	      w != MAP_FAILED ? "succeeded" : strerror(errno));
	int seals = fcntl(c_fd, F_GET_SEALS);
	CHECK(seals == F_SEAL_FUTURE_WRITE, "step %d: %s: seals %#x, expected %#x", step, names[C], seals,
	      F_SEAL_FUTURE_WRITE);
}

/* the next version of A's and D's pages, written through their read-write descriptors */
static void write_next(int step)
{
	fill(A, step);
	t_write_all(a_fd, want[A], SIZE, 0);
	fill(D, step);
	t_write_all(d_fd, want[D], SIZE, 0);
}

int main(int argc, char **argv)
{
	t_init("mem_shared_ro");
	premapped = argc > 1 && !strcmp(argv[1], "premapped");
	setup();
	check_all(0);
	if (premapped) {
		printf("ready\n");
		fflush(stdout);
		t_wait_go(1);
	}
	for (int s = 1; s <= STEPS; s++) {
		write_next(s);
		check_all(s);
		x_step(s, 150);
	}
	SYSCHK(unlink(d_path));
	printf("RESULT mem_shared_ro%s\n", premapped ? " premapped" : "");
	return 0;
}
