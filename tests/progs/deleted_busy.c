/*
 * deleted_busy: rewrites a file it has unlinked, as fast as it can, and at
 * every round checks that the file still holds what it wrote last (its
 * memory says which version that was).  A checkpoint that saved the file's
 * content a moment after the program went on would restore a newer version
 * than the program's memory: the first check after the restart fails.
 *
 * Under a test's gates (common.h, tests/cases/crash.sh): after step
 * GATE_STEP it rewrites the file on (scratch versions, which the output
 * does not count) until the file "checkpointed" exists, and writes its
 * counted version back before it goes on, so that the test's checkpoint
 * finds it rewriting however slow the machine; and it waits at its end,
 * before its RESULT line, until "end" exists.  The rounds of a step are
 * few (a straight run is short on a busy machine too): the gate, not the
 * length of the steps, keeps the checkpoint within the run.
 */
#include "common.h"
#include <fcntl.h>

#define STEPS 40
#define ROUNDS 1000
#define GATE_STEP 8
#define SIZE (16 * 1024)
#define SCRATCH (1ull << 48) /* versions written at the gate: never a counted one */

static unsigned char buf[SIZE], back[SIZE];
static int fd;
static uint64_t cur; /* the version the file holds */

static void fill(uint64_t v)
{
	for (size_t i = 0; i < SIZE; i += 8)
		memcpy(buf + i, &(uint64_t){ t_mix(v * 4096 + i) }, 8);
}

/* one round: the file must hold version cur; it gets version next */
static void round_to(int s, uint64_t next)
{
	CHECK(pread(fd, back, SIZE, 0) == SIZE, "pread: %s", strerror(errno));
	fill(cur);
	CHECK(!memcmp(back, buf, SIZE), "step %d: the deleted file does not hold version %llu", s,
	      (unsigned long long)cur);
	cur = next;
	fill(cur);
	CHECK(pwrite(fd, buf, SIZE, 0) == SIZE, "pwrite: %s", strerror(errno));
}

int main(void)
{
	t_init("deleted_busy");
	char dir[4096], path[4200];
	t_mkworkdir(dir, sizeof(dir), "deleted_busy");
	t_fmt(path, sizeof(path), "%s/gone", dir);
	fd = SYSCHK(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
	SYSCHK(unlink(path));
	uint64_t v = 0; /* the counted versions: the output */
	fill(v);
	CHECK(pwrite(fd, buf, SIZE, 0) == SIZE, "pwrite: %s", strerror(errno));
	uint64_t h = T_FNV_INIT;
	for (int s = 0; s < STEPS; s++) {
		for (int r = 0; r < ROUNDS; r++)
			round_to(s, ++v);
		if (s == GATE_STEP) {
			t_gate_arrive("checkpointed");
			for (uint64_t k = 1; !t_gate_open("checkpointed"); k++)
				round_to(s, SCRATCH + k);
			round_to(s, v);
		}
		h = t_fnv_u64(h, v);
		printf("step %d ok: version %llu\n", s, (unsigned long long)v);
		fflush(stdout);
	}
	t_end_gate_now();
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
