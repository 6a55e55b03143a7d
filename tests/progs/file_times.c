/*
 * file_times: the restore writes back files the group writes (a copy of
 * each, taken at the checkpoint): their mtime and atime must be those of
 * the checkpoint, not of the restore.  A file open for writing and one
 * mapped shared-writable, their times set (utimensat) to fixed values
 * after each change; every step checks content and times.
 */
#include "common.h"
#include "exact.h"

#define STEPS 14

static int wfd;
static unsigned char *shm;
static char wpath[PATH_MAX], mpath[PATH_MAX];

static void set_times(const char *path, int step, int k)
{
	struct timespec ts[2] = { { 1000000000 + step * 10 + k, 123456789 }, { 1100000000 + step * 10 + k, 987654321 } };
	SYSCHK(utimensat(AT_FDCWD, path, ts, 0));
}

static void check_times(const char *path, int step, int k)
{
	struct stat st;

	SYSCHK(stat(path, &st));
	CHECK(st.st_atim.tv_sec == 1000000000 + step * 10 + k && st.st_atim.tv_nsec == 123456789,
	      "step %d: atime of %s is %ld.%09ld", step, path, (long)st.st_atim.tv_sec, st.st_atim.tv_nsec);
	CHECK(st.st_mtim.tv_sec == 1100000000 + step * 10 + k && st.st_mtim.tv_nsec == 987654321,
	      "step %d: mtime of %s is %ld.%09ld", step, path, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

int main(void)
{
	char dir[PATH_MAX], buf[16], want[16];

	t_init("file_times");
	t_mkworkdir(dir, sizeof(dir), "file_times");
	t_fmt(wpath, sizeof(wpath), "%s/written", dir);
	t_fmt(mpath, sizeof(mpath), "%s/mapped", dir);
	wfd = SYSCHK(open(wpath, O_CREAT | O_TRUNC | O_RDWR, 0600));
	int mfd = SYSCHK(open(mpath, O_CREAT | O_TRUNC | O_RDWR, 0600));
	SYSCHK(ftruncate(mfd, PG));
	shm = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	CHECK(shm != MAP_FAILED, "mmap: %s", strerror(errno));
	close(mfd);
	for (int s = 0; s < STEPS; s++) {
		t_fmt(want, sizeof(want), "step %04d", s);
		t_write_all(wfd, want, 9, (off_t)(s * 9));
		memcpy(shm + s * 9, want, 9);
		SYSCHK(msync(shm, PG, MS_SYNC));
		for (int k = 0; k <= s; k++) {
			t_fmt(want, sizeof(want), "step %04d", k);
			t_read_all(wfd, buf, 9, (off_t)(k * 9));
			CHECK(memcmp(buf, want, 9) == 0, "step %d: %s: piece %d differs", s, wpath, k);
			CHECK(memcmp(shm + k * 9, want, 9) == 0, "step %d: %s: piece %d differs", s, mpath, k);
		}
		set_times(wpath, s, 0);
		set_times(mpath, s, 1);
		x_step(s, 100);
		check_times(wpath, s, 0);
		check_times(mpath, s, 1);
	}
	printf("RESULT file_times ok\n");
	return 0;
}
