/*
 * dir_pos: directories read part-way, a few entries per step, as readdir
 * does once its buffer is used up: one on the test's file system (ext4
 * here: its positions are hash cookies, not counts) and one on tmpfs
 * (/dev/shm).  A restart must put each descriptor back at its position:
 * at the start of every step the position must be the one the last step
 * left, and at the end every entry must have been seen exactly once.
 * Output: per step the entries read so far; then RESULT.
 */
#include "common.h"
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>

#define NAMES 1200
#define BUF 2048 /* bytes per getdents64: ~60 entries */

struct dir {
	char path[PATH_MAX];
	int fd;
	off_t pos;			/* where the last step left it */
	unsigned char seen[NAMES + 2];	/* e-NNNN, then "." and ".." */
	int total, done;
};

static struct dir dirs[2];

/* base/dir_pos.TAG.ID, ID the inode of the test's own directory: two runs at once do not meet in /dev/shm */
static void make_dir(struct dir *d, const char *base, const char *tag)
{
	char p[PATH_MAX + 16];
	struct stat st;
	SYSCHK(stat(t_tmpdir(), &st));
	snprintf(d->path, sizeof(d->path), "%s/dir_pos.%s.%llu.%d", base, tag, (unsigned long long)st.st_ino,
		 (int)getpid());
	SYSCHK(mkdir(d->path, 0700));
	for (int i = 0; i < NAMES; i++) {
		snprintf(p, sizeof(p), "%s/e-%04d", d->path, i);
		SYSCHK(close(SYSCHK(open(p, O_CREAT | O_WRONLY, 0600))));
	}
	d->fd = SYSCHK(open(d->path, O_RDONLY | O_DIRECTORY));
}

/* The slot of entry name, or -1 for a name the directory should not hold. */
static int slot(const char *name)
{
	int i;
	char end;
	if (!strcmp(name, "."))
		return NAMES;
	if (!strcmp(name, ".."))
		return NAMES + 1;
	if (sscanf(name, "e-%4d%c", &i, &end) == 1 && i >= 0 && i < NAMES)
		return i;
	return -1;
}

/* One getdents64 of d: its entries marked seen, each exactly once. */
static void read_some(struct dir *d)
{
	static char buf[BUF];
	off_t at = lseek(d->fd, 0, SEEK_CUR);
	CHECK(at == d->pos, "%s: the read position is %lld, the last step left it at %lld", d->path, (long long)at,
	      (long long)d->pos);
	long n = syscall(SYS_getdents64, d->fd, buf, sizeof(buf));
	CHECK(n >= 0, "getdents64 %s: %s", d->path, strerror(errno));
	if (n == 0)
		d->done = 1;
	for (long o = 0; o < n;) {
		struct dirent64 *e = (struct dirent64 *)(buf + o);
		int k = slot(e->d_name);
		CHECK(k >= 0, "%s: an entry %s it never held", d->path, e->d_name);
		CHECK(!d->seen[k], "%s: entry %s read a second time (after %d entries)", d->path, e->d_name, d->total);
		d->seen[k] = 1;
		d->total++;
		o += e->d_reclen;
	}
	d->pos = lseek(d->fd, 0, SEEK_CUR);
}

static void remove_dir(struct dir *d)
{
	char p[PATH_MAX + 16];
	close(d->fd);
	for (int i = 0; i < NAMES; i++) {
		snprintf(p, sizeof(p), "%s/e-%04d", d->path, i);
		SYSCHK(unlink(p));
	}
	SYSCHK(rmdir(d->path));
}

int main(void)
{
	t_init("dir_pos");
	make_dir(&dirs[0], t_tmpdir(), "disk");
	make_dir(&dirs[1], "/dev/shm", "tmpfs");
	for (int s = 0; !dirs[0].done || !dirs[1].done; s++) {
		for (int k = 0; k < 2; k++)
			if (!dirs[k].done)
				read_some(&dirs[k]);
		printf("step %d ok: %d and %d entries read\n", s, dirs[0].total, dirs[1].total);
		fflush(stdout);
		t_sleep_ms(150);
	}
	for (int k = 0; k < 2; k++) {
		CHECK(dirs[k].total == NAMES + 2, "%s: %d entries read, it holds %d", dirs[k].path, dirs[k].total, NAMES + 2);
		remove_dir(&dirs[k]);
	}
	printf("RESULT %d entries in each\n", NAMES + 2);
	return 0;
}
