/*
 * posix_shm - POSIX shared memory under /dev/shm, mapped by two processes.
 * The parent creates an object with shm_open, maps it MAP_SHARED and forks;
 * parent and child each add their step numbers to their own counter and to
 * a common total (atomics) 60 times, 30 ms apart; each checks at every step
 * that total == its counter + the other's, and that the object is still the
 * file at /dev/shm/NAME (same inode), so a restart that comes back with a
 * private copy fails.  The parent prints RESULT once the child is done.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define STEPS 60

struct area {
	unsigned long count[2];
	unsigned long total;
};

static void work(struct area *a, int me, int fd, const char *name)
{
	char path[300];
	snprintf(path, sizeof(path), "/dev/shm%s", name);
	for (int i = 1; i <= STEPS; i++) {
		__atomic_add_fetch(&a->count[me], (unsigned long)i, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&a->total, (unsigned long)i, __ATOMIC_SEQ_CST);
		struct stat x, y;
		SYSCHK(fstat(fd, &x));
		SYSCHK(stat(path, &y));
		CHECK(x.st_ino == y.st_ino, "process %d: the object is no longer %s", me, path);
		t_sleep_ms(30);
		unsigned long t = __atomic_load_n(&a->total, __ATOMIC_SEQ_CST);
		unsigned long c0 = __atomic_load_n(&a->count[0], __ATOMIC_SEQ_CST);
		unsigned long c1 = __atomic_load_n(&a->count[1], __ATOMIC_SEQ_CST);
		CHECK(t + 2 * STEPS >= c0 + c1 && t <= c0 + c1 + 2 * STEPS, "process %d: total %lu, counters %lu + %lu",
		      me, t, c0, c1);
		if (me == 0 && i % 10 == 0) {
			printf("step %d\n", i);
			fflush(stdout);
		}
	}
}

int main(void)
{
	t_prog = "posix_shm";
	char name[64];
	snprintf(name, sizeof(name), "/cohort-posix-shm-%d", (int)getpid());
	shm_unlink(name); /* left by an earlier run that was killed (in a group every run is pid 2) */
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	SYSCHK(fd);
	SYSCHK(ftruncate(fd, sizeof(struct area)));
	struct area *a = mmap(0, sizeof(*a), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(a != MAP_FAILED, "mmap failed");
	pid_t child = fork();
	SYSCHK(child);
	if (child == 0) {
		work(a, 1, fd, name);
		_exit(0);
	}
	work(a, 0, fd, name);
	int st;
	SYSCHK(waitpid(child, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
	unsigned long want = (unsigned long)STEPS * (STEPS + 1);
	CHECK(a->total == want && a->count[0] + a->count[1] == want, "total %lu, expected %lu", a->total, want);
	shm_unlink(name);
	printf("RESULT %lu\n", a->total);
	return 0;
}
