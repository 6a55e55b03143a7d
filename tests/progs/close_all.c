/*
 * close_all: a daemon's start-up, closing every descriptor above 2 in the
 * three ways programs do it: closefrom(3), close_range(3, ~0U, 0) (also as
 * a raw syscall(2)) and a loop of close() up to the descriptor limit.  Its
 * own descriptors opened before must be gone (EBADF), those opened after
 * must work, and the program must stay checkpointable: the harness
 * checkpoints and restarts it after the closing.  Output: one line a step.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/resource.h>

#define STEPS 10

static void open_some(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		fds[i] = SYSCHK(open("/dev/null", O_RDONLY));
}

static void all_gone(const int *fds, int n, const char *how)
{
	for (int i = 0; i < n; i++)
		CHECK(fcntl(fds[i], F_GETFD) < 0 && errno == EBADF, "%s left fd %d open", how, fds[i]);
}

int main(void)
{
	t_init("close_all");
	int fds[4];
	open_some(fds, 4);
	closefrom(3);
	all_gone(fds, 4, "closefrom(3)");
	open_some(fds, 4);
	SYSCHK(close_range(3, ~0U, 0));
	all_gone(fds, 4, "close_range(3, ~0U, 0)");
	open_some(fds, 4);
	SYSCHK(syscall(SYS_close_range, 3, ~0U, 0));
	all_gone(fds, 4, "syscall(SYS_close_range)");
	open_some(fds, 4);
	struct rlimit rl;
	SYSCHK(getrlimit(RLIMIT_NOFILE, &rl));
	for (int fd = 3; fd < (int)rl.rlim_cur; fd++)
		close(fd);
	all_gone(fds, 4, "close() of every fd");
	printf("closed everything above 2 four ways\n");
	fflush(stdout);
	uint64_t h = T_FNV_INIT;
	for (int s = 0; s < STEPS; s++) {
		int f = SYSCHK(open("/dev/null", O_RDONLY));
		CHECK(f == 3, "step %d: the lowest free descriptor is %d, not 3", s, f);
		SYSCHK(close(f));
		h = t_fnv_u64(h, (uint64_t)s * 7 + 1);
		printf("step %d ok\n", s);
		fflush(stdout);
		t_sleep_ms(200);
	}
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
