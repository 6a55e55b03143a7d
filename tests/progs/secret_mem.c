/*
 * secret_mem: memory from memfd_secret(2), which no one but its holder can
 * read, a checkpoint neither: the checkpoint must refuse it in one line,
 * naming the descriptor (argument "fd": the descriptor only) or the
 * region (argument "map": a mapping of it, the descriptor closed), while
 * the program runs on with its content intact.  "probe": exit 0 when the
 * kernel has memfd_secret (Linux 5.14, secretmem enabled), 3 when not.
 * It prints "ready", then waits for go.1 (common.h) before its steps.
 */
#include "common.h"
#include "exact.h"
#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif
#define STEPS 4

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "fd";
	int fd = (int)syscall(SYS_memfd_secret, 0);
	if (strcmp(mode, "probe") == 0)
		return fd >= 0 ? 0 : 3;
	t_init("secret_mem");
	CHECK(fd >= 0, "memfd_secret: %s", strerror(errno));
	SYSCHK(ftruncate(fd, PG));
	unsigned char *m = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap of the secret memory: %s", strerror(errno));
	x_fill(m, x_seed(1, 0, 0));
	if (strcmp(mode, "map") == 0)
		SYSCHK(close(fd));
	else
		SYSCHK(munmap(m, PG)), m = NULL;
	printf("ready\n");
	t_wait_go(1);
	for (int s = 0; s < STEPS; s++) {
		if (m)
			CHECK(x_diff(m, x_seed(1, 0, 0)) < 0, "step %d: the secret memory differs", s);
		else {
			struct stat st;
			SYSCHK(fstat(fd, &st));
			CHECK(st.st_size == PG, "step %d: the secret memory's size is %ld", s, (long)st.st_size);
		}
		x_step(s, 50);
	}
	printf("RESULT secret_mem %s ok\n", mode);
	return 0;
}
