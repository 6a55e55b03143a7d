/*
 * deleted_file: creates a file, writes data, unlinks it while open and keeps
 * using it through the fd: pwrite()s into the middle, write()s at the current
 * offset (extending it), reads back everything each step and compares with an
 * in-memory mirror. Also checks st_nlink == 0 and that /proc/self/fd/N reads
 * "... (deleted)". A second file is unlinked while open read-only and only
 * read sequentially.
 */
#include "common.h"
#include <limits.h>

#define STEPS 10
#define INIT_SIZE (64 * 1024)
#define MAXSZ (256 * 1024)

static unsigned char mirror[MAXSZ], tmp[MAXSZ];
static size_t size;

static void check_deleted_link(int fd, const char *path)
{
	char lp[64], target[PATH_MAX + 32];
	const char *suffix = " (deleted)";
	ssize_t n;

	t_fmt(lp, sizeof(lp), "/proc/self/fd/%d", fd);
	n = readlink(lp, target, sizeof(target) - 1);
	CHECK(n > 0, "readlink %s: %s", lp, strerror(errno));
	target[n] = 0;
	/* the restored file may live elsewhere, but it must still be a deleted file */
	CHECK((size_t)n > strlen(suffix) && strcmp(target + n - strlen(suffix), suffix) == 0,
	      "fd %d links to '%s', expected a deleted file (originally '%s')", fd, target, path);
}

int main(void)
{
	struct t_ident id;
	char dir[PATH_MAX], path[PATH_MAX], path2[PATH_MAX];
	uint64_t rs = 99, h = T_FNV_INIT;
	off_t off;
	struct stat st;

	t_init("deleted_file");
	t_ident_init(&id);
	t_mkworkdir(dir, sizeof(dir), "deleted_file");
	t_fmt(path, sizeof(path), "%s/scratch", dir);
	t_fmt(path2, sizeof(path2), "%s/readonly", dir);

	for (size_t i = 0; i < INIT_SIZE; i++)
		mirror[i] = (unsigned char)t_rand(&rs);
	size = INIT_SIZE;
	int fd = SYSCHK(open(path, O_CREAT | O_TRUNC | O_RDWR, 0600));
	t_write_all(fd, mirror, size, -1);
	off = (off_t)size;
	SYSCHK(unlink(path));

	/* read-only deleted file */
	int fd2 = SYSCHK(open(path2, O_CREAT | O_TRUNC | O_WRONLY, 0600));
	for (int s = 0; s < STEPS; s++) {
		char line[32];
		memset(line, 0, sizeof(line));
		snprintf(line, sizeof(line), "readonly line %d", s);
		t_write_all(fd2, line, sizeof(line), -1);
	}
	close(fd2);
	fd2 = SYSCHK(open(path2, O_RDONLY));
	SYSCHK(unlink(path2));

	for (int s = 0; s < STEPS; s++) {
		t_ident_check(&id);
		SYSCHK(fstat(fd, &st));
		CHECK(st.st_nlink == 0, "st_nlink %lu", (unsigned long)st.st_nlink);
		CHECK(st.st_size == (off_t)size, "step %d: size %lld, expected %zu", s, (long long)st.st_size, size);
		CHECK(lseek(fd, 0, SEEK_CUR) == off, "step %d: offset %lld, expected %lld", s,
		      (long long)lseek(fd, 0, SEEK_CUR), (long long)off);
		check_deleted_link(fd, path);
		check_deleted_link(fd2, path2);
		t_read_all(fd, tmp, size, 0);
		CHECK(memcmp(tmp, mirror, size) == 0, "step %d: content of deleted file differs", s);

		/* modify in the middle */
		for (int k = 0; k < 8; k++) {
			size_t at = (size_t)(t_rand(&rs) % (size - 512));
			for (int j = 0; j < 512; j++)
				mirror[at + (size_t)j] = (unsigned char)(t_rand(&rs) >> 13);
			t_write_all(fd, mirror + at, 512, (off_t)at);
		}
		/* extend at the current offset */
		size_t add = 4096 + (size_t)s * 1000;
		for (size_t j = 0; j < add; j++)
			mirror[size + j] = (unsigned char)(s + j * 3);
		t_write_all(fd, mirror + size, add, -1);
		size += add;
		off += (off_t)add;

		/* sequential read of the read-only deleted file */
		char line[32], want[32];
		t_read_all(fd2, line, sizeof(line), -1);
		memset(want, 0, sizeof(want));
		snprintf(want, sizeof(want), "readonly line %d", s);
		CHECK(memcmp(line, want, sizeof(line)) == 0, "step %d: readonly line mismatch", s);

		h = t_fnv(h, mirror, size);
		printf("step %d ok size=%zu h=%llu\n", s, size, (unsigned long long)h);
		t_sleep_ms(300);
	}
	t_read_all(fd, tmp, size, 0);
	CHECK(memcmp(tmp, mirror, size) == 0, "final content differs");
	CHECK(read(fd2, tmp, 1) == 0, "readonly file: expected EOF");
	close(fd);
	close(fd2);
	rmdir(dir);
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
