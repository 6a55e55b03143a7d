/*
 * sysv_huge: a SysV shared memory segment of one huge page (SHM_HUGETLB)
 * that the program keeps but does not attach between its steps: nothing
 * maps it when a checkpoint comes, and its mode shows permission bits
 * only, so a checkpoint that asked nothing more made it again as a
 * segment of 4 KiB pages.  Refused (tests/cases/exact_mem.sh); the
 * program runs on.
 *
 * The segment is made, attached, every 4 KiB page of it filled with its
 * pattern (exact.h), detached; "ready"; it waits for go.1; then at every
 * step attaches it, checks the mapping's page size (smaps KernelPageSize,
 * the pool's Hugepagesize) and every page (page s%64 at version s once
 * step s has written it), writes page s%64 again, detaches.  At the end
 * the segment is removed (IPC_RMID: a native run leaves no huge page
 * behind).  Output: "step N ok" lines and a RESULT line.
 */
#include "common.h"
#include "exact.h"
#include <sys/shm.h>

#define STEPS 12

static size_t huge;
static int vers[1024];

static size_t meminfo_kib(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	size_t v = 0;
	CHECK(f, "/proc/meminfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtoul(line + strlen(key), NULL, 10);
	fclose(f);
	return v;
}

/* smaps KernelPageSize of the mapping at p, in KiB */
static size_t page_kib(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	size_t v = 0;
	int in = 0;
	CHECK(f, "/proc/self/smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) /* a region's first line (no field name parses so) */
			in = lo == (unsigned long)p;
		else if (in && !strncmp(line, "KernelPageSize:", 15))
			v = strtoul(line + 15, NULL, 10);
	}
	fclose(f);
	return v;
}

static void visit(int id, int s)
{
	unsigned char *m = shmat(id, NULL, 0);
	CHECK(m != (void *)-1, "step %d: shmat: %s", s, strerror(errno));
	CHECK(page_kib(m) * 1024 == huge, "step %d: the segment's pages are of %zu KiB, not %zu", s, page_kib(m),
	      huge / 1024);
	for (size_t p = 0; p < huge / PG; p++) {
		long off = x_diff(m + p * PG, x_seed(9, p, (uint64_t)vers[p]));
		CHECK(off < 0, "step %d: page %zu differs at byte %ld", s, p, off);
	}
	if (s > 0) {
		vers[s % 64] = s;
		x_fill(m + (s % 64) * PG, x_seed(9, (uint64_t)(s % 64), (uint64_t)s));
	}
	SYSCHK(shmdt(m));
}

int main(void)
{
	t_init("sysv_huge");
	huge = meminfo_kib("Hugepagesize:") * 1024;
	CHECK(huge >= 64 * PG && huge / PG <= 1024, "Hugepagesize %zu", huge);
	int id = shmget(IPC_PRIVATE, huge, IPC_CREAT | SHM_HUGETLB | 0600);
	CHECK(id >= 0, "shmget(SHM_HUGETLB): %s (HugePages_Free %zu)", strerror(errno), meminfo_kib("HugePages_Free:"));
	unsigned char *m = shmat(id, NULL, 0);
	CHECK(m != (void *)-1, "shmat: %s", strerror(errno));
	for (size_t p = 0; p < huge / PG; p++)
		x_fill(m + p * PG, x_seed(9, p, 0));
	SYSCHK(shmdt(m));
	visit(id, 0);
	printf("ready\n");
	t_wait_go(1);
	for (int s = 1; s <= STEPS; s++) {
		visit(id, s);
		x_step(s, 100);
	}
	SYSCHK(shmctl(id, IPC_RMID, NULL));
	printf("RESULT ok\n");
	return 0;
}
