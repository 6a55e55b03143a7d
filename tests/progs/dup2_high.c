/*
 * dup2_high: a program that puts descriptors on high numbers and then
 * closes everything above 2 without asking libc.  It dup2()s a file of its
 * own onto 1000..1010 (where an agent might keep its descriptors) and checks
 * at every step that each still is that file; then it closes every
 * descriptor above 2 with a raw close_range system call (as a static
 * runtime would: no wrapper sees it), checks that nothing is left open
 * and that the lowest free descriptor is 3, and goes on.  The harness
 * checkpoints it (live and --kill) and restarts it in both phases.
 */
#include "common.h"
#include <sys/resource.h>

#define LO 1000
#define HI 1010
#define STEPS 50
#define CLOSE_AT 14

static long raw3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

static ino_t ino_of(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return 0;
	return st.st_ino;
}

int main(void)
{
	t_init("dup2_high");
	struct rlimit rl;
	SYSCHK(getrlimit(RLIMIT_NOFILE, &rl));
	CHECK(rl.rlim_cur > HI, "descriptor limit %llu too low for the test", (unsigned long long)rl.rlim_cur);
	char path[512];
	t_fmt(path, sizeof(path), "%s/dup2_high.dat", t_tmpdir());
	int f = SYSCHK(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
	ino_t ino = ino_of(f);
	for (int k = LO; k <= HI; k++)
		CHECK(dup2(f, k) == k, "dup2(%d, %d): %s", f, k, strerror(errno));
	SYSCHK(close(f));
	printf("dup2 onto %d..%d ok\n", LO, HI);
	uint64_t h = T_FNV_INIT;
	for (int s = 0; s < STEPS; s++) {
		if (s < CLOSE_AT) {
			for (int k = LO; k <= HI; k++)
				CHECK(ino_of(k) == ino, "step %d: fd %d is no longer the program's file", s, k);
			char c = (char)('a' + s % 26);
			CHECK(pwrite(LO + s % (HI - LO + 1), &c, 1, s) == 1, "step %d: pwrite: %s", s, strerror(errno));
		} else {
			if (s == CLOSE_AT) {
				long r = raw3(SYS_close_range, 3, ~0U, 0);
				CHECK(r == 0, "raw close_range(3, ~0U, 0): %ld", r);
				for (int fd = 3; fd < (int)rl.rlim_cur && fd < 65536; fd++)
					CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF, "fd %d still open after close_range", fd);
				printf("raw close_range(3, ~0U) closed everything above 2\n");
			}
			int n = SYSCHK(open("/dev/null", O_RDONLY));
			CHECK(n == 3, "step %d: the lowest free descriptor is %d, not 3", s, n);
			for (int fd = 4; fd < (int)rl.rlim_cur && fd < 65536; fd++)
				CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF, "step %d: fd %d is open, the program opened only 3", s, fd);
			SYSCHK(close(n));
		}
		h = t_fnv_u64(h, (uint64_t)s * 11 + 3);
		printf("step %d ok\n", s);
		t_sleep_ms(100);
	}
	unlink(path);
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
