/*
 * mem_private: private mappings whose pages are partly the file's and
 * partly the program's, for every kind of file behind them:
 *   0 a regular file (still linked);
 *   1 a file deleted while mapped, its size not a page multiple (the tail
 *     of the last page reads zeros);
 *   2 a memfd written with write(2), mapped private, descriptor closed;
 *   3 a POSIX shared memory object (MAP_PRIVATE of shmem), written
 *     through a shared mapping before the private one was made.
 * Each mapping has pages the program wrote (their own version), pages it
 * only read and pages it does not touch before the end; every step checks
 * every byte of the pages below UNTOUCHED against the model, then writes
 * one more page of each; the last check reads all of them.
 */
#include "common.h"
#include "exact.h"

#define STEPS 16
#define NPG 48
#define NOBJ 4
#define UNTOUCHED 32 /* pages from here on are read only at the end */

static unsigned char *map[NOBJ];
static int ver[NOBJ][NPG];	/* 0: the file's content; n > 0: the program's version n */
static size_t tail = PG / 2;	/* object 1: bytes of its last page inside the file */
static const char *names[NOBJ] = { "file", "deleted file", "memfd", "shm object" };

static void write_obj(int fd, int obj)
{
	unsigned char buf[PG];

	for (int p = 0; p < NPG; p++) {
		x_fill(buf, x_seed((uint64_t)obj, (uint64_t)p, 0));
		t_write_all(fd, buf, PG, (off_t)(p * PG));
	}
}

static unsigned char *map_private(int fd)
{
	void *m = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);

	CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
	return m;
}

static void setup(void)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int fd;

	t_mkworkdir(dir, sizeof(dir), "mem_private");
	t_fmt(path, sizeof(path), "%s/regular", dir);
	fd = SYSCHK(open(path, O_CREAT | O_TRUNC | O_RDWR, 0600));
	write_obj(fd, 0);
	map[0] = map_private(fd);
	close(fd);

	t_fmt(path, sizeof(path), "%s/deleted", dir);
	fd = SYSCHK(open(path, O_CREAT | O_TRUNC | O_RDWR, 0600));
	write_obj(fd, 1);
	SYSCHK(ftruncate(fd, (off_t)((NPG - 1) * PG + tail)));
	map[1] = map_private(fd);
	close(fd);
	SYSCHK(unlink(path));

	fd = SYSCHK(memfd_create("mem_private", 0));
	write_obj(fd, 2);
	map[2] = map_private(fd);
	close(fd);

	char shm[64];
	t_fmt(shm, sizeof(shm), "/mem_private.%d", (int)getpid());
	fd = SYSCHK(shm_open(shm, O_CREAT | O_EXCL | O_RDWR, 0600));
	SYSCHK(ftruncate(fd, NPG * PG));
	unsigned char *sh = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(sh != MAP_FAILED, "mmap shared: %s", strerror(errno));
	for (int p = 0; p < NPG; p++)
		x_fill(sh + p * PG, x_seed(3, (uint64_t)p, 0));
	munmap(sh, NPG * PG);
	map[3] = map_private(fd);
	close(fd);
	SYSCHK(shm_unlink(shm));
}

static void check_all(int step, int npg)
{
	for (int o = 0; o < NOBJ; o++)
		for (int p = 0; p < npg; p++) {
			const unsigned char *pg = map[o] + p * PG;
			long d;

			if (o == 1 && p == NPG - 1 && ver[o][p] == 0) {
				unsigned char want[PG];
				x_fill(want, x_seed(1, (uint64_t)p, 0));
				memset(want + tail, 0, PG - tail);
				CHECK(memcmp(pg, want, PG) == 0, "step %d: %s page %d (the file's, partly past its end) differs",
				      step, names[o], p);
				continue;
			}
			d = x_diff(pg, x_seed((uint64_t)o, (uint64_t)p, (uint64_t)ver[o][p]));
			CHECK(d < 0, "step %d: %s page %d (%s) differs at byte %ld", step, names[o], p,
			      ver[o][p] ? "the program's" : "the file's", d);
		}
}

int main(void)
{
	t_init("mem_private");
	setup();
	volatile unsigned char sink = 0;
	for (int o = 0; o < NOBJ; o++)
		for (int p = 8; p < 12; p++) /* read, never written: the file's pages, mapped */
			sink ^= map[o][p * PG];
	(void)sink;
	for (int s = 0; s < STEPS; s++) {
		check_all(s, UNTOUCHED);
		/* the program writes page s/2 (twice each: a second version over a first) of each mapping */
		for (int o = 0; o < NOBJ; o++) {
			int p = s / 2;
			ver[o][p] = s + 1;
			x_fill(map[o] + p * PG, x_seed((uint64_t)o, (uint64_t)p, (uint64_t)ver[o][p]));
		}
		x_step(s, 100);
	}
	check_all(STEPS, NPG); /* the first read of the untouched pages, after the last restart */
	printf("RESULT mem_private ok\n");
	return 0;
}
