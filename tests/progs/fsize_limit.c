/*
 * fsize_limit: a program whose RLIMIT_FSIZE soft limit (1 MiB) is below
 * its image's size (8 MiB of memory): the checkpoint writes the image
 * from inside the process, which must not fail on the program's limit.
 * After each checkpoint the limits are as the program set them (soft 1
 * MiB, the hard one as it was) and still hold for its own writes (EFBIG
 * past 1 MiB, SIGXFSZ ignored); its memory is intact.
 */
#include "common.h"
#include "exact.h"
#include <signal.h>
#include <sys/resource.h>

#define STEPS 10
#define LIMIT (1L << 20)
#define NPG 2048

static unsigned char *mem;
static struct rlimit want;
static char path[PATH_MAX];

static void check_all(int step)
{
	struct rlimit rl;
	SYSCHK(getrlimit(RLIMIT_FSIZE, &rl));
	CHECK(rl.rlim_cur == want.rlim_cur && rl.rlim_max == want.rlim_max,
	      "step %d: RLIMIT_FSIZE is %llu/%llu, expected %llu/%llu", step, (unsigned long long)rl.rlim_cur,
	      (unsigned long long)rl.rlim_max, (unsigned long long)want.rlim_cur, (unsigned long long)want.rlim_max);
	for (int p = 0; p < NPG; p += 7)
		CHECK(x_diff(mem + (size_t)p * PG, x_seed(1, (uint64_t)p, 0)) < 0, "step %d: page %d differs", step, p);
	/* the limit still holds for the program: a write past it fails */
	int fd = SYSCHK(open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600));
	ssize_t w = pwrite(fd, mem, PG, LIMIT);
	CHECK(w < 0 && errno == EFBIG, "step %d: a write past RLIMIT_FSIZE %s", step, w < 0 ? strerror(errno) : "succeeded");
	close(fd);
}

int main(void)
{
	char dir[PATH_MAX];

	t_init("fsize_limit");
	t_mkworkdir(dir, sizeof(dir), "fsize_limit");
	t_fmt(path, sizeof(path), "%s/big", dir);
	signal(SIGXFSZ, SIG_IGN);
	mem = mmap(NULL, (size_t)NPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED, "mmap: %s", strerror(errno));
	for (int p = 0; p < NPG; p++)
		x_fill(mem + (size_t)p * PG, x_seed(1, (uint64_t)p, 0));
	SYSCHK(getrlimit(RLIMIT_FSIZE, &want));
	CHECK(want.rlim_max > LIMIT, "the hard RLIMIT_FSIZE is already %llu", (unsigned long long)want.rlim_max);
	want.rlim_cur = LIMIT;
	SYSCHK(setrlimit(RLIMIT_FSIZE, &want));
	for (int s = 0; s < STEPS; s++) {
		check_all(s);
		x_step(s, 100);
	}
	check_all(STEPS);
	printf("RESULT fsize_limit ok\n");
	return 0;
}
