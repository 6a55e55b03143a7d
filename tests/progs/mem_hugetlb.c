/*
 * mem_hugetlb: memory of huge pages from the hugetlb pool (MAP_HUGETLB,
 * MFD_HUGETLB), which a restart cannot simply map as 4 KiB pages.
 *   "shared": two huge pages MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB,
 *     shared with a child forked after: each writes a page in turn (the
 *     pipes pace them) and the other must read it;
 *   "private": a huge page MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB;
 *   "memfd": a huge page of a memfd made with MFD_HUGETLB, mapped
 *     MAP_PRIVATE, its descriptor closed;
 *   "sysv": a SysV shared memory segment of a huge page (SHM_HUGETLB),
 *     attached, and removed at once (IPC_RMID: no run that fails leaves
 *     it behind, pinning a huge page; a removed segment still attached is
 *     refused too, but cohort looks at the mappings first).
 * At every step: /proc/self/maps (the region's bounds, permissions and
 * path: "/anon_hugepage (deleted)", "/memfd:huge private (deleted)",
 * "/SYSV00000000 (deleted)"),
 * smaps KernelPageSize (the pool's page size, Hugepagesize in
 * /proc/meminfo) and VmFlags ht, every byte.  The checkpoint must refuse
 * (tests/cases/exact_mem.sh): the program prints "ready" once its memory
 * is set up and waits for go.1 before its steps.  A mapping the pool
 * cannot give fails the program: the test makes sure the pool has pages.
 *
 * Output (the parent's): "step N ok" lines and a RESULT line.
 */
#include "common.h"
#include "exact.h"
#include <sys/shm.h>

#define STEPS 16

static unsigned char *mem;
static size_t huge, len;
static const char *mode, *want_path, *want_perms;
static int shm_id = -1;
static int vers[64];	/* the version of each 4 KiB page of the first huge page written so far */

/* page p of the first huge page (4 KiB pages 0..63 are written, in turn) and the last page of each huge page */
static uint64_t seed(int p) { return x_seed(5, (uint64_t)p, (uint64_t)vers[p]); }

static void check(const char *who, int step)
{
	struct x_map xm;
	long kps = x_smaps_kib(mem, "KernelPageSize:");
	CHECK((size_t)kps * 1024 == huge, "%s step %d: KernelPageSize %ld kB, expected %zu kB", who, step, kps,
	      huge / 1024);
	CHECK(x_vmflag(mem, "ht"), "%s step %d: VmFlags lack ht (hugetlb)", who, step);
	CHECK(x_maps_find(mem, &xm), "%s step %d: the memory is not mapped", who, step);
	int same = xm.start == (unsigned long)mem && xm.end == (unsigned long)mem + len &&
		   !strcmp(xm.perms, want_perms) && !strcmp(xm.path, want_path);
	CHECK(same, "%s step %d: maps shows %lx-%lx %s %s, expected %p-%p %s %s", who, step, xm.start, xm.end,
	      xm.perms, xm.path, (void *)mem, (void *)(mem + len), want_perms, want_path);
	for (int p = 0; p < 64; p++) {
		long d = x_diff(mem + p * PG, seed(p));
		CHECK(d < 0, "%s step %d: page %d differs at byte %ld", who, step, p, d);
	}
	for (size_t h = 0; h < len / huge; h++) {
		long d = x_diff(mem + (h + 1) * huge - PG, x_seed(6, h, 0));
		CHECK(d < 0, "%s step %d: the last page of huge page %zu differs at byte %ld", who, step, h, d);
	}
}

/* page p, version v */
static void write_page(int p, int v)
{
	vers[p] = v;
	x_fill(mem + p * PG, seed(p));
}

static void xfer(int fd, int *v, int out)
{
	ssize_t n;
	do
		n = out ? write(fd, v, sizeof(*v)) : read(fd, v, sizeof(*v));
	while (n < 0 && errno == EINTR);
	CHECK(n == sizeof(*v), "pipe %s: %s", out ? "write" : "read", n < 0 ? strerror(errno) : "short");
}

/* the child of "shared": after the parent's page of step s, its own */
static void child(int in, int out)
{
	for (int s = 1;; s++) {
		int v;
		xfer(in, &v, 0);
		if (v < 0)
			_exit(0);
		CHECK(v == s, "child: step %d, the parent says %d", s, v);
		vers[(2 * s) % 64] = s;
		check("child", s);
		write_page((2 * s + 1) % 64, s);
		xfer(out, &v, 1);
	}
}

static void map_memory(void)
{
	int shared = !strcmp(mode, "shared"), sysv = !strcmp(mode, "sysv");
	len = (shared ? 2 : 1) * huge;
	if (sysv) {
		shm_id = SYSCHK(shmget(IPC_PRIVATE, len, IPC_CREAT | SHM_HUGETLB | 0600));
		mem = shmat(shm_id, NULL, 0);
		if (mem == (void *)-1)
			mem = MAP_FAILED;
		SYSCHK(shmctl(shm_id, IPC_RMID, NULL));
		want_path = "/SYSV00000000 (deleted)"; /* (on hugetlbfs; shmem shows no " (deleted)") */
	} else if (!strcmp(mode, "memfd")) {
		int fd = SYSCHK(memfd_create("huge private", MFD_HUGETLB));
		SYSCHK(ftruncate(fd, (off_t)len));
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		close(fd);
		want_path = "/memfd:huge private (deleted)";
	} else {
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS |
			   MAP_HUGETLB, -1, 0);
		want_path = "/anon_hugepage (deleted)";
	}
	CHECK(mem != MAP_FAILED, "%s: mmap of %zu bytes of huge pages: %s (HugePages_Free %zu)", mode, len,
	      strerror(errno), x_meminfo_kib("HugePages_Free:"));
	want_perms = shared || sysv ? "rw-s" : "rw-p";
	for (int p = 0; p < 64; p++)
		write_page(p, 0);
	for (size_t h = 0; h < len / huge; h++)
		x_fill(mem + (h + 1) * huge - PG, x_seed(6, h, 0));
}

int main(int argc, char **argv)
{
	int down[2] = { -1, -1 }, up[2] = { -1, -1 }, st;
	pid_t pid = 0;

	t_init("mem_hugetlb");
	mode = argc > 1 ? argv[1] : "";
	CHECK(!strcmp(mode, "shared") || !strcmp(mode, "private") || !strcmp(mode, "memfd") || !strcmp(mode, "sysv"),
	      "usage: mem_hugetlb shared|private|memfd|sysv");
	huge = x_meminfo_kib("Hugepagesize:") * 1024;
	CHECK(huge > PG && huge >= 64 * PG, "Hugepagesize %zu", huge);
	map_memory();
	if (!strcmp(mode, "shared")) {
		SYSCHK(pipe(down));
		SYSCHK(pipe(up));
		pid = SYSCHK(fork());
		if (pid == 0) {
			close(down[1]);
			close(up[0]);
			child(down[0], up[1]);
		}
		close(down[0]);
		close(up[1]);
	}
	check("parent", 0);
	printf("ready\n");
	t_wait_go(1);
	for (int s = 1; s <= STEPS; s++) {
		write_page((2 * s) % 64, s);
		if (pid) {
			int v;
			xfer(down[1], &s, 1);
			xfer(up[0], &v, 0);
			CHECK(v == s, "step %d: the child says %d", s, v);
			vers[(2 * s + 1) % 64] = s;
		}
		check("parent", s);
		x_step(s, 150);
	}
	if (pid) {
		int end = -1;
		xfer(down[1], &end, 1);
		SYSCHK(waitpid(pid, &st, 0));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child ended with status %#x", st);
	}
	if (shm_id >= 0)
		SYSCHK(shmdt(mem));
	printf("RESULT mem_hugetlb %s\n", mode);
	return 0;
}
