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

static void visit(int id, int s)
{
	unsigned char *m = shmat(id, NULL, 0);
	CHECK(m != (void *)-1, "step %d: shmat: %s", s, strerror(errno));
	size_t kib = (size_t)x_smaps_kib(m, "KernelPageSize:");
	CHECK(kib * 1024 == huge, "step %d: the segment's pages are of %zu KiB, not %zu", s, kib, huge / 1024);
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
	huge = x_meminfo_kib("Hugepagesize:") * 1024;
	CHECK(huge >= 64 * PG && huge / PG <= 1024, "Hugepagesize %zu", huge);
	int id = shmget(IPC_PRIVATE, huge, IPC_CREAT | SHM_HUGETLB | 0600);
	CHECK(id >= 0, "shmget(SHM_HUGETLB): %s (HugePages_Free %zu)", strerror(errno), x_meminfo_kib("HugePages_Free:"));
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
