/*
 * file_tmpfile: files that open(DIR, O_TMPFILE) made, exactly, at every
 * step (tests/cases/exact_mem.sh):
 *   - "nameless": no links, read and written at its offset, with a second
 *     description (opened again through /proc/self/fd, read-only) with its
 *     own offset on the same inode;
 *   - "append": O_WRONLY | O_APPEND, mode 0400, appended to;
 *   - "libc": glibc's tmpfile(3), lines written through its FILE buffer and
 *     fflush'ed, a few bytes left in the buffer between steps;
 *   - "linked": given a name (linkat of /proc/self/fd/N) before the first
 *     checkpoint: the descriptor is the named file;
 *   - "late" and "later": given a name at step LINK_A and LINK_B, after the
 *     first restart of the standard flow and after the last restart of
 *     either flow: the link must succeed (the kernel links only a file
 *     O_TMPFILE made) and the name hold what was written.
 * Each: size, content, offset, mode, links, and the flags F_GETFL gives
 * (with __O_TMPFILE and O_DIRECTORY, as the kernel keeps them, while it
 * has no name; without them once a restart opened it by its name).  A
 * nameless one is "DIR/#INODE (deleted)" in /proc/self/fd, INODE its
 * inode's number (another after a restart: the file is made again).
 */
#include "common.h"
#include "exact.h"

#define STEPS 20
#define LINK_A 5
#define LINK_B 16
#define MAXSZ (64 * 1024)

struct tf {
	const char *what;
	int fd;
	int flags;		/* F_GETFL at the start */
	mode_t mode;
	char dir[PATH_MAX];	/* where it was made */
	char name[PATH_MAX];	/* its name once linked, else "" */
	off_t pos;		/* the descriptor's offset */
	size_t size;		/* the file's (what was flushed, for libc) */
	unsigned char data[MAXSZ];
};

static struct tf nameless, append, libc, linked, late, later;
static struct tf *const all[] = { &nameless, &append, &libc, &linked, &late, &later };
static int second;		/* nameless, opened again read-only: its offset is 16 per step */
static int second_flags;	/* its F_GETFL at the start */
static FILE *lf;		/* libc's FILE */
static size_t pending;		/* bytes in lf's buffer, not in the file yet */
static uint64_t rs = 7, h = T_FNV_INIT;
static unsigned char buf[MAXSZ];

static void make(struct tf *t, const char *what, const char *dir, int flags, mode_t mode)
{
	t->what = what;
	t->mode = mode;
	t_fmt(t->dir, sizeof(t->dir), "%s", dir);
	t->fd = open(dir, O_TMPFILE | flags, mode);
	if (t->fd < 0)
		FAIL("open(%s, O_TMPFILE): %s", dir, strerror(errno));
	t->flags = SYSCHK(fcntl(t->fd, F_GETFL));
	CHECK((t->flags & O_TMPFILE) == O_TMPFILE, "%s: F_GETFL %o has no O_TMPFILE", what, t->flags);
}

/* Give t a name in its directory as a program does: linkat of /proc/self/fd/N. */
static void link_it(struct tf *t)
{
	char self[64];
	t_fmt(self, sizeof(self), "/proc/self/fd/%d", t->fd);
	t_fmt(t->name, sizeof(t->name), "%s/%s.name", t->dir, t->what);
	if (linkat(AT_FDCWD, self, AT_FDCWD, t->name, AT_SYMLINK_FOLLOW) < 0)
		FAIL("%s: linkat of its O_TMPFILE descriptor as %s: %s", t->what, t->name, strerror(errno));
}

/* n bytes more at t's offset (a write: the offset moves), n random */
static void grow(struct tf *t, size_t n)
{
	CHECK(t->pos + n <= MAXSZ, "%s: too big", t->what);
	for (size_t i = 0; i < n; i++)
		t->data[t->pos + (off_t)i] = (unsigned char)t_rand(&rs);
	t_write_all(t->fd, t->data + t->pos, n, -1);
	t->pos += (off_t)n;
	if ((size_t)t->pos > t->size)
		t->size = (size_t)t->pos;
}

/* What /proc/self/fd/FD shows: "DIR/#INODE (deleted)" for a nameless one; once named, that or its name. */
static void check_link(const struct tf *t, int fd, const struct stat *st, int step)
{
	char self[64], shown[PATH_MAX], tmpname[PATH_MAX + 64];
	t_fmt(self, sizeof(self), "/proc/self/fd/%d", fd);
	ssize_t n = SYSCHK(readlink(self, shown, sizeof(shown) - 1));
	shown[n] = 0;
	t_fmt(tmpname, sizeof(tmpname), "%s/#%llu (deleted)", t->dir, (unsigned long long)st->st_ino);
	CHECK(!strcmp(shown, tmpname) || (t->name[0] && !strcmp(shown, t->name)),
	      "step %d: %s: fd %d shows '%s', expected '%s'%s%s", step, t->what, fd, shown, tmpname,
	      t->name[0] ? " or " : "", t->name);
}

static void check_file(struct tf *t, int step)
{
	struct stat st, named;
	SYSCHK(fstat(t->fd, &st));
	CHECK(S_ISREG(st.st_mode) && (st.st_mode & 07777) == t->mode, "step %d: %s: mode %o, expected %o", step, t->what,
	      st.st_mode, t->mode);
	CHECK(st.st_nlink == (t->name[0] ? 1u : 0u), "step %d: %s: %lu links", step, t->what, (unsigned long)st.st_nlink);
	CHECK(st.st_size == (off_t)t->size, "step %d: %s: size %ld, expected %zu", step, t->what, (long)st.st_size,
	      t->size);
	CHECK(lseek(t->fd, 0, SEEK_CUR) == t->pos, "step %d: %s: offset %ld, expected %ld", step, t->what,
	      (long)lseek(t->fd, 0, SEEK_CUR), (long)t->pos);
	/* a named one comes back by its name: O_TMPFILE's bits go (they want a directory) */
	int fl = SYSCHK(fcntl(t->fd, F_GETFL)), mask = t->name[0] ? ~O_TMPFILE : ~0;
	CHECK((fl & mask) == (t->flags & mask), "step %d: %s: F_GETFL %o, expected %o", step, t->what, fl & mask,
	      t->flags & mask);
	check_link(t, t->fd, &st, step);
	/* the content, read by a description of its own (the program's may be write-only) */
	char self[64];
	t_fmt(self, sizeof(self), "/proc/self/fd/%d", t->fd);
	int r = SYSCHK(open(t->name[0] ? t->name : self, O_RDONLY));
	SYSCHK(fstat(r, &named));
	CHECK(named.st_dev == st.st_dev && named.st_ino == st.st_ino, "step %d: %s: %s is another file", step, t->what,
	      t->name[0] ? t->name : self);
	t_read_all(r, buf, t->size, 0);
	close(r);
	CHECK(memcmp(buf, t->data, t->size) == 0, "step %d: %s: the content differs", step, t->what);
}

static void check_all(int step)
{
	for (unsigned i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		check_file(all[i], step);
	/* the second description of the nameless one: same inode, its own offset and flags */
	struct stat a, b;
	SYSCHK(fstat(nameless.fd, &a));
	SYSCHK(fstat(second, &b));
	CHECK(a.st_dev == b.st_dev && a.st_ino == b.st_ino, "step %d: the two descriptions of one file are two files",
	      step);
	CHECK(lseek(second, 0, SEEK_CUR) == 16 * step, "step %d: second description at %ld, expected %d", step,
	      (long)lseek(second, 0, SEEK_CUR), 16 * step);
	CHECK(fcntl(second, F_GETFL) == second_flags, "step %d: second description's flags %o, expected %o", step,
	      fcntl(second, F_GETFL), second_flags);
	check_link(&nameless, second, &b, step);
	/* the FILE: its position counts what its buffer holds */
	CHECK(ftell(lf) == (long)(libc.size + pending), "step %d: tmpfile(3) at %ld, expected %zu", step, ftell(lf),
	      libc.size + pending);
}

/* The step's writes: everything moves, every step. */
static void change(int s)
{
	char line[64];
	grow(&nameless, 512 + (size_t)s * 100);
	size_t at = (size_t)(t_rand(&rs) % (nameless.size - 64));
	memset(nameless.data + at, 'a' + s, 64);
	t_write_all(nameless.fd, nameless.data + at, 64, (off_t)at);
	t_read_all(second, buf, 16, -1);
	CHECK(memcmp(buf, nameless.data + 16 * s, 16) == 0, "step %d: read through the second description differs", s);
	grow(&append, 100 + (size_t)s);

	/* the line goes out with the bytes left in the buffer at the step before */
	int n = snprintf(line, sizeof(line), "tmpfile line %d\n", s);
	fputs(line, lf);
	memcpy(libc.data + libc.size + pending, line, (size_t)n);
	CHECK(fflush(lf) == 0, "fflush: %s", strerror(errno));
	libc.size += pending + (size_t)n;
	libc.pos = (off_t)libc.size;
	fputs("pending ", lf);
	memcpy(libc.data + libc.size, "pending ", 8);
	pending = 8;

	grow(&linked, 200);
	grow(&late, 300);
	grow(&later, 50);
	if (s == LINK_A)
		link_it(&late);
	if (s == LINK_B)
		link_it(&later);
	for (unsigned i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		h = t_fnv(h, all[i]->data, all[i]->size);
}

int main(void)
{
	char dir[PATH_MAX], self[64];

	t_init("file_tmpfile");
	t_mkworkdir(dir, sizeof(dir), "file_tmpfile");
	make(&nameless, "nameless", dir, O_RDWR, 0640);
	grow(&nameless, 4096);
	t_fmt(self, sizeof(self), "/proc/self/fd/%d", nameless.fd);
	second = SYSCHK(open(self, O_RDONLY));
	second_flags = SYSCHK(fcntl(second, F_GETFL));
	make(&append, "append", dir, O_WRONLY | O_APPEND, 0400);
	make(&linked, "linked", dir, O_RDWR, 0644);
	grow(&linked, 1000);
	link_it(&linked);
	make(&late, "late", dir, O_RDWR, 0600);
	make(&later, "later", dir, O_RDWR, 0600);
	lf = tmpfile();
	CHECK(lf != NULL, "tmpfile: %s", strerror(errno));
	/* glibc's, in /tmp: the test is of a file O_TMPFILE made */
	libc.what = "libc";
	libc.fd = fileno(lf);
	libc.mode = 0600;
	libc.flags = SYSCHK(fcntl(libc.fd, F_GETFL));
	t_fmt(libc.dir, sizeof(libc.dir), "/tmp");
	CHECK((libc.flags & O_TMPFILE) == O_TMPFILE, "tmpfile(3) did not use O_TMPFILE (F_GETFL %o)", libc.flags);

	for (int s = 0; s < STEPS; s++) {
		check_all(s);
		change(s);
		x_step(s, 250);
	}
	check_all(STEPS);
	/* all closed before the directory goes: a checkpoint at the end gate finds none deleted with it */
	for (unsigned i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (all[i]->name[0])
			SYSCHK(unlink(all[i]->name));
		if (all[i] != &libc)
			close(all[i]->fd);
	}
	fclose(lf);
	close(second);
	rmdir(dir);
	printf("RESULT file_tmpfile %llu\n", (unsigned long long)h);
	return 0;
}
