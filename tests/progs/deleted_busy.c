/*
 * deleted_busy: rewrites a file it has unlinked, as fast as it can, and at
 * every round checks that the file still holds what it wrote last (its
 * memory says which version that was).  A checkpoint that saved the file's
 * content a moment after the program went on would restore a newer version
 * than the program's memory: the first check after the restart fails.
 */
#include "common.h"
#include <fcntl.h>

#define STEPS 40
#define ROUNDS 20000
#define SIZE (16 * 1024)

static unsigned char buf[SIZE], back[SIZE];

static void fill(uint64_t v)
{
	for (size_t i = 0; i < SIZE; i += 8)
		memcpy(buf + i, &(uint64_t){ t_mix(v * 4096 + i) }, 8);
}

int main(void)
{
	t_init("deleted_busy");
	char dir[4096], path[4200];
	t_mkworkdir(dir, sizeof(dir), "deleted_busy");
	t_fmt(path, sizeof(path), "%s/gone", dir);
	int fd = SYSCHK(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
	SYSCHK(unlink(path));
	uint64_t v = 0;
	fill(v);
	CHECK(pwrite(fd, buf, SIZE, 0) == SIZE, "pwrite: %s", strerror(errno));
	uint64_t h = T_FNV_INIT;
	for (int s = 0; s < STEPS; s++) {
		for (int r = 0; r < ROUNDS; r++) {
			/* the file holds version v, the last one written */
			CHECK(pread(fd, back, SIZE, 0) == SIZE, "pread: %s", strerror(errno));
			fill(v);
			CHECK(!memcmp(back, buf, SIZE), "step %d: the deleted file does not hold version %llu", s,
			      (unsigned long long)v);
			v++;
			fill(v);
			CHECK(pwrite(fd, buf, SIZE, 0) == SIZE, "pwrite: %s", strerror(errno));
		}
		h = t_fnv_u64(h, v);
		printf("step %d ok: version %llu\n", s, (unsigned long long)v);
		fflush(stdout);

	}
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
