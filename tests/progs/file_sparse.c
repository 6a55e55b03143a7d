/*
 * file_sparse: a sparse file of 2 GiB open for writing, with a few
 * records written far apart and holes everywhere else, as a database or
 * a download leaves one.  cohort copies each file the group may write into
 * the generation and puts the copy back at a restart: the holes must stay
 * holes (the file takes a few MiB on disk, not 2 GiB), and every byte must
 * read as before: each record where it was, zeros between.  Each step
 * writes one more record and checks all of them, the size and the space
 * the file takes.  Output: a line per step, then RESULT.
 */
#include "common.h"
#include <limits.h>
#include <sys/stat.h>

#define SIZE (2ull << 30)
#define STEPS 12
#define GAP (160ull << 20)	/* between two records */
#define REC 4096
#define MOST_ON_DISK (8ull << 20) /* the file's blocks: records and file system overhead, far below SIZE */

static int fd;
static char path[PATH_MAX];

static void record(char *buf, int s)
{
	for (int i = 0; i < REC; i++)
		buf[i] = (char)t_mix((uint64_t)s * REC + (uint64_t)i);
}

/* Records 0..last where they were, the bytes on either side of each zero, the size and blocks as expected. */
static uint64_t check_all(int last)
{
	static char want[REC], got[REC];
	uint64_t h = T_FNV_INIT;
	for (int s = 0; s <= last; s++) {
		off_t at = (off_t)(GAP * (uint64_t)s + 4096);
		record(want, s);
		CHECK(pread(fd, got, REC, at) == REC, "pread record %d: %s", s, strerror(errno));
		CHECK(!memcmp(got, want, REC), "record %d is not what was written", s);
		h = t_fnv(h, got, REC);
		char z[64];
		CHECK(pread(fd, z, sizeof(z), at + REC) == (ssize_t)sizeof(z), "pread after record %d", s);
		for (size_t i = 0; i < sizeof(z); i++)
			CHECK(z[i] == 0, "byte %zu after record %d is %d, not 0 (a hole)", i, s, z[i]);
		CHECK(pread(fd, z, sizeof(z), at - (off_t)sizeof(z)) == (ssize_t)sizeof(z), "pread before record %d", s);
		for (size_t i = 0; i < sizeof(z); i++)
			CHECK(z[i] == 0, "byte %zu before record %d is %d, not 0 (a hole)", i, s, z[i]);
	}
	struct stat st;
	SYSCHK(fstat(fd, &st));
	CHECK((uint64_t)st.st_size == SIZE, "the file is %lld bytes, not %llu", (long long)st.st_size, SIZE);
	CHECK((uint64_t)st.st_blocks * 512 <= MOST_ON_DISK,
	      "the file takes %llu bytes on disk: its holes were filled with zeros", (unsigned long long)st.st_blocks * 512);
	return h;
}

int main(void)
{
	t_init("file_sparse");
	snprintf(path, sizeof(path), "%s/file_sparse.data", t_tmpdir());
	fd = SYSCHK(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
	SYSCHK(ftruncate(fd, (off_t)SIZE));
	static char buf[REC];
	uint64_t h = 0;
	for (int s = 0; s < STEPS; s++) {
		record(buf, s);
		CHECK(pwrite(fd, buf, REC, (off_t)(GAP * (uint64_t)s + 4096)) == REC, "pwrite record %d: %s", s,
		      strerror(errno));
		h = check_all(s);
		printf("step %d ok %016llx\n", s, (unsigned long long)h);
		fflush(stdout);
		t_sleep_ms(250);
	}
	close(fd);
	SYSCHK(unlink(path));
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
