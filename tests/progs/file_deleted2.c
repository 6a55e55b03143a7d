/*
 * file_deleted2: deleted files, exactly.
 *   - one deleted file opened twice (two open file descriptions, own
 *     offsets): still one file after a restart (same inode; a write
 *     through one is read through the other);
 *   - a file deleted under one name but still linked under another: the
 *     descriptor is that file (same inode as the remaining name, link
 *     count 1, a write through it is read through the name);
 *   - a sparse deleted file: size exact, holes where they were (SEEK_DATA,
 *     SEEK_HOLE) and few blocks;
 *   - owner, group and mode of a deleted file (chown 1234:5678 as root).
 */
#include "common.h"
#include "exact.h"

#define STEPS 14
#define SPARSE (8ul << 20)

static int a1, a2, lk, sp, own;
static char dir[PATH_MAX], linkname[PATH_MAX];

static void check_all(int step)
{
	struct stat s1, s2, sl;
	char buf[16], want[16];

	SYSCHK(fstat(a1, &s1));
	SYSCHK(fstat(a2, &s2));
	CHECK(s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev, "step %d: the two opens of one deleted file are now two files",
	      step);
	CHECK(s1.st_nlink == 0, "step %d: the deleted file has %lu links", step, (unsigned long)s1.st_nlink);
	CHECK(lseek(a1, 0, SEEK_CUR) == 100 + step && lseek(a2, 0, SEEK_CUR) == 200, "step %d: offsets %ld %ld", step,
	      (long)lseek(a1, 0, SEEK_CUR), (long)lseek(a2, 0, SEEK_CUR));
	t_fmt(want, sizeof(want), "a1 step %04d", step);
	t_write_all(a1, want, 12, 4096);
	t_read_all(a2, buf, 12, 4096);
	CHECK(memcmp(buf, want, 12) == 0, "step %d: a write through one open is not read through the other", step);

	SYSCHK(fstat(lk, &s1));
	SYSCHK(stat(linkname, &sl));
	CHECK(s1.st_ino == sl.st_ino && s1.st_dev == sl.st_dev, "step %d: the descriptor is not the file still linked as %s",
	      step, linkname);
	CHECK(s1.st_nlink == 1, "step %d: the linked file has %lu links, expected 1", step, (unsigned long)s1.st_nlink);
	t_fmt(want, sizeof(want), "lk step %04d", step);
	t_write_all(lk, want, 12, 0);
	int fd = SYSCHK(open(linkname, O_RDONLY));
	t_read_all(fd, buf, 12, 0);
	close(fd);
	CHECK(memcmp(buf, want, 12) == 0, "step %d: a write through the descriptor is not in %s", step, linkname);

	SYSCHK(fstat(sp, &s1));
	CHECK(s1.st_size == (off_t)SPARSE + 3, "step %d: sparse file size %ld, expected %lu", step, (long)s1.st_size,
	      SPARSE + 3);
	CHECK(lseek(sp, 0, SEEK_DATA) == (off_t)(SPARSE / 2) && lseek(sp, SPARSE / 2, SEEK_HOLE) == (off_t)(SPARSE / 2 + PG),
	      "step %d: the sparse file's data is at %ld..%ld, expected %lu..%lu", step, (long)lseek(sp, 0, SEEK_DATA),
	      (long)lseek(sp, SPARSE / 2, SEEK_HOLE), SPARSE / 2, SPARSE / 2 + PG);
	CHECK(s1.st_blocks * 512 <= (blkcnt_t)(64 * 1024), "step %d: the sparse file takes %ld bytes of disk", step,
	      (long)s1.st_blocks * 512);
	t_read_all(sp, buf, 3, SPARSE);
	CHECK(memcmp(buf, "end", 3) == 0, "step %d: the sparse file's last bytes differ", step);

	SYSCHK(fstat(own, &s1));
	CHECK((s1.st_mode & 07777) == 0640 && s1.st_uid == 1234 && s1.st_gid == 5678,
	      "step %d: the deleted file's mode %o owner %u:%u, expected 640 1234:5678", step, s1.st_mode & 07777,
	      s1.st_uid, s1.st_gid);
}

int main(void)
{
	char path[PATH_MAX], block[PG];

	t_init("file_deleted2");
	t_mkworkdir(dir, sizeof(dir), "file_deleted2");
	t_fmt(path, sizeof(path), "%s/twice", dir);
	a1 = SYSCHK(open(path, O_CREAT | O_RDWR, 0600));
	a2 = SYSCHK(open(path, O_RDWR));
	memset(block, 'x', sizeof(block));
	t_write_all(a1, block, PG, 0);
	t_write_all(a1, block, PG, PG);
	SYSCHK(lseek(a1, 100, SEEK_SET));
	SYSCHK(lseek(a2, 200, SEEK_SET));
	SYSCHK(unlink(path));

	t_fmt(path, sizeof(path), "%s/first", dir);
	t_fmt(linkname, sizeof(linkname), "%s/second", dir);
	lk = SYSCHK(open(path, O_CREAT | O_RDWR, 0600));
	t_write_all(lk, block, PG, 0);
	SYSCHK(link(path, linkname));
	SYSCHK(unlink(path));

	t_fmt(path, sizeof(path), "%s/sparse", dir);
	sp = SYSCHK(open(path, O_CREAT | O_RDWR, 0600));
	t_write_all(sp, block, PG, SPARSE / 2);
	t_write_all(sp, "end", 3, SPARSE);
	SYSCHK(unlink(path));

	t_fmt(path, sizeof(path), "%s/owned", dir);
	own = SYSCHK(open(path, O_CREAT | O_RDWR, 0600));
	t_write_all(own, block, 100, 0);
	SYSCHK(fchown(own, 1234, 5678));
	SYSCHK(fchmod(own, 0640));
	SYSCHK(unlink(path));

	for (int s = 0; s < STEPS; s++) {
		check_all(s);
		SYSCHK(lseek(a1, 1, SEEK_CUR));
		x_step(s, 100);
	}
	check_all(STEPS);
	printf("RESULT file_deleted2 ok\n");
	return 0;
}
