/*
 * dir_shared: directories whose open file description a parent and its
 * child share (opened, read part-way, then fork): one read position, one
 * set of status flags, one SIGIO owner for both, across checkpoints and
 * restarts; and within one process, a dup of a directory descriptor.
 *
 *   Two directories of NAMES entries each: one on the test's file system
 *   (ext4 here: its positions are hash cookies), opened O_DIRECTORY, and
 *   one on tmpfs (/dev/shm), opened O_RDONLY alone (F_GETFL shows no
 *   O_DIRECTORY, and must not after a restart).  For each:
 *     sh   the description parent and child share, read in turns, a few
 *          entries a turn (one getdents64 per entry);
 *     dup  a dup of sh, made before the fork: the parent reads through sh
 *          and dup in turn, and both must always be at one position;
 *     own  the parent's own description of the same directory (the
 *          child closes its copy at once), read an entry a step: it must
 *          not move with sh, nor sh with it.
 *   And an O_PATH descriptor of the first directory, made before the fork.
 * At every turn the side that reads checks that the position (lseek
 * SEEK_CUR, through sh and dup) is where the other side left it (told
 * through a pipe), and that each entry it reads is the next one of the
 * listing read through a description of its own at the start (the union
 * of what both read, in order, is the listing, no entry twice; then
 * the end of the directory, where the side that reads it puts sh back at
 * 0 and the next round begins: a checkpoint always finds it being read).
 * The child sets O_NONBLOCK and O_NOATIME on sh at even steps and clears
 * them at odd ones (O_ASYNC does not stay on a directory, which has no
 * fasync), and makes itself or the parent sh's SIGIO owner in turn: the
 * parent reads both back.  The child checks with kcmp(KCMP_FILE) that
 * its sh, dup and O_PATH descriptors are the parent's descriptions, and
 * that the parent's own is not.
 *
 * Output (the parent's): "step N ok" lines, RESULT.
 *
 * With "proc": what init could not open again before the processes are
 * back, which the checkpoint must refuse: /proc/self/fd (a directory)
 * and /proc/self/status (a file), opened, then fork.  The program prints
 * "proc directory shared" and waits for go.1; both close the directory,
 * "proc file shared", go.2; both close the file, "proc closed", go.3;
 * RESULT.
 *
 * With "many": more descriptors of objects the group shares than cohort
 * records for a group (8192), which the checkpoint must refuse: MANY
 * directories (each its own inode: the descriptions of one inode are
 * told apart by kcmp, one against each other), opened, then two children
 * forked (3 * MANY descriptors).  Every one is checked with kcmp to be
 * the same description in the three; "many shared", go.1; all but KEPT
 * closed in the three, checked again, "many closed", go.2; checked
 * again, RESULT.
 */
#include "common.h"
#include <limits.h>
#include <linux/kcmp.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define NAMES 72
#define ENTRIES (NAMES + 2)	/* and "." and ".." */
#define PER_TURN 3		/* entries each side reads a turn */
#define STEPS 30
/* the ends of the directory read through sh: PER_TURN before the fork, then 2 * PER_TURN a step, a turn each end */
#define ROUNDS ((PER_TURN + 2 * PER_TURN * STEPS) / (ENTRIES + 1))
#define BUF 40			/* one entry per getdents64 ("e-NNNN": 32 bytes, "." and "..": 24) */

struct dir {
	char path[PATH_MAX];
	int sh, dup, own;		/* own: the parent's alone (the child closes it) */
	int oflags;			/* sh's F_GETFL at the start */
	char names[ENTRIES][16];	/* the listing, in the order getdents64 gives it */
	int at;				/* entries of the listing read through sh in this round (both sides) */
	int rounds;			/* times the end was read through sh, and sh put back at 0 */
	off_t pos;			/* where the last turn left sh */
	int own_at, own_rounds;
	off_t own_pos;
};

static struct dir dirs[2];
static int opath;

/* What one side tells the other after its turn. */
struct word {
	int step;		/* -1: the end */
	int at[2];
	int rounds[2];
	off_t pos[2];
};

static void put(int fd, const struct word *w)
{
	CHECK(write(fd, w, sizeof(*w)) == (ssize_t)sizeof(*w), "write fd %d: %s", fd, strerror(errno));
}

/* The other side's word (its end: a failure, said by it). */
static void take(int fd, struct word *w)
{
	ssize_t n = read(fd, w, sizeof(*w));
	if (n == 0)
		_exit(1);
	CHECK(n == (ssize_t)sizeof(*w), "read fd %d: %s", fd, strerror(errno));
}

/* base/dir_shared.TAG.INO.PID: two runs at once do not meet in /dev/shm */
static void make_dir(struct dir *d, const char *base, const char *tag, int flags)
{
	char p[PATH_MAX + 16];
	struct stat st;
	SYSCHK(stat(t_tmpdir(), &st));
	t_fmt(d->path, sizeof(d->path), "%s/dir_shared.%s.%llu.%d", base, tag, (unsigned long long)st.st_ino,
	      (int)getpid());
	SYSCHK(mkdir(d->path, 0700));
	for (int i = 0; i < NAMES; i++) {
		t_fmt(p, sizeof(p), "%s/e-%04d", d->path, i);
		SYSCHK(close(SYSCHK(open(p, O_CREAT | O_WRONLY, 0600))));
	}
	d->sh = SYSCHK(open(d->path, flags));
	d->oflags = SYSCHK(fcntl(d->sh, F_GETFL));
	CHECK(!!(d->oflags & O_DIRECTORY) == !!(flags & O_DIRECTORY), "%s: F_GETFL %#o after open with %#o", d->path,
	      d->oflags, flags);
}

/* One getdents64 of fd: 1 with its entry's name, 0 at the end. */
static int next_name(int fd, const char *path, char *name, size_t n)
{
	/* the kernel's struct linux_dirent64, its name as long as the buffer lets it be */
	static union {
		struct {
			uint64_t ino;
			int64_t off;
			unsigned short reclen;
			unsigned char type;
			char name[BUF - 19];
		} e;
		char buf[BUF];
	} u;
	long r = syscall(SYS_getdents64, fd, u.buf, sizeof(u.buf));
	CHECK(r >= 0, "getdents64 %s: %s", path, strerror(errno));
	if (r == 0)
		return 0;
	CHECK(u.e.reclen == r, "getdents64 %s: %ld bytes, one entry of %u expected", path, r, u.e.reclen);
	t_fmt(name, n, "%.*s", (int)sizeof(u.e.name), u.e.name);
	return 1;
}

/* The listing, through a description of its own: every name once, in the order the kernel gives. */
static void list(struct dir *d)
{
	int seen[ENTRIES] = { 0 }, fd = SYSCHK(open(d->path, O_RDONLY | O_DIRECTORY)), i = 0;
	char name[64];
	for (; next_name(fd, d->path, name, sizeof(name)); i++) {
		int k, slot;
		char end;
		CHECK(i < ENTRIES, "%s: more than %d entries", d->path, ENTRIES);
		if (!strcmp(name, "."))
			slot = NAMES;
		else if (!strcmp(name, ".."))
			slot = NAMES + 1;
		else if (sscanf(name, "e-%4d%c", &k, &end) == 1 && k >= 0 && k < NAMES)
			slot = k;
		else
			FAIL("%s: an entry %s it never held", d->path, name);
		CHECK(!seen[slot], "%s: entry %s listed twice", d->path, name);
		seen[slot] = 1;
		t_fmt(d->names[i], sizeof(d->names[i]), "%s", name);
	}
	CHECK(i == ENTRIES, "%s: %d entries listed, it holds %d", d->path, i, ENTRIES);
	close(fd);
}

static off_t pos_of(int fd, const char *what, const char *path, int step)
{
	off_t at = lseek(fd, 0, SEEK_CUR);
	CHECK(at >= 0, "step %d: %s: lseek %s: %s", step, what, path, strerror(errno));
	return at;
}

/* sh and dup are both where the other side left sh. */
static void check_pos(const struct dir *d, off_t want, const char *who, int step)
{
	off_t a = pos_of(d->sh, "sh", d->path, step), b = pos_of(d->dup, "dup", d->path, step);
	CHECK(a == want, "step %d: %s: %s: the shared description is at %lld, the other side left it at %lld", step,
	      who, d->path, (long long)a, (long long)want);
	CHECK(b == want, "step %d: %s: %s: the dup of the shared description is at %lld, the shared one at %lld",
	      step, who, d->path, (long long)b, (long long)want);
}

/*
 * One turn's entries through sh (or, in the parent, sh and dup in turn):
 * each the next of the listing.  At the end of the directory, sh goes
 * back to its start (rewinddir) for another round: whenever a checkpoint
 * comes, the directory is being read.
 */
static void read_turn(struct dir *d, int both, const char *who, int step)
{
	char name[64];
	for (int i = 0; i < PER_TURN; i++) {
		int fd = both && (i & 1) ? d->dup : d->sh;
		if (!next_name(fd, d->path, name, sizeof(name))) {
			CHECK(d->at == ENTRIES, "step %d: %s: %s: the end of the directory after %d entries, it holds %d",
			      step, who, d->path, d->at, ENTRIES);
			CHECK(lseek(fd, 0, SEEK_SET) == 0, "step %d: %s: %s: lseek to 0: %s", step, who, d->path,
			      strerror(errno));
			d->at = 0;
			d->rounds++;
			continue;
		}
		CHECK(d->at < ENTRIES, "step %d: %s: %s: entry %s read after all %d", step, who, d->path, name, ENTRIES);
		CHECK(!strcmp(name, d->names[d->at]), "step %d: %s: %s: read %s as entry %d, the listing has %s there",
		      step, who, d->path, name, d->at, d->names[d->at]);
		d->at++;
	}
	d->pos = pos_of(d->sh, "sh", d->path, step);
}

/* The parent's own description: one entry a step, where it left it, unmoved by the shared one. */
static void read_own(struct dir *d, int step)
{
	char name[64];
	off_t at = pos_of(d->own, "own", d->path, step);
	CHECK(at == d->own_pos, "step %d: %s: the parent's own description is at %lld, it left it at %lld", step,
	      d->path, (long long)at, (long long)d->own_pos);
	if (d->own_at < ENTRIES) {
		CHECK(next_name(d->own, d->path, name, sizeof(name)), "step %d: %s: the parent's own description ended "
		      "after %d entries", step, d->path, d->own_at);
		CHECK(!strcmp(name, d->names[d->own_at]), "step %d: %s: the parent's own description read %s as entry "
		      "%d, the listing has %s there", step, d->path, name, d->own_at, d->names[d->own_at]);
		d->own_at++;
	} else {
		CHECK(!next_name(d->own, d->path, name, sizeof(name)), "step %d: %s: the parent's own description read "
		      "%s after all %d entries", step, d->path, name, ENTRIES);
		SYSCHK(lseek(d->own, 0, SEEK_SET));
		d->own_at = 0;
		d->own_rounds++;
	}
	d->own_pos = pos_of(d->own, "own", d->path, step);
}

static void to_word(struct word *w, int step)
{
	w->step = step;
	for (int k = 0; k < 2; k++) {
		w->at[k] = dirs[k].at;
		w->rounds[k] = dirs[k].rounds;
		w->pos[k] = dirs[k].pos;
	}
}

static void from_word(const struct word *w, const char *who, int step)
{
	for (int k = 0; k < 2; k++) {
		dirs[k].at = w->at[k];
		dirs[k].rounds = w->rounds[k];
		check_pos(&dirs[k], w->pos[k], who, step);
		dirs[k].pos = w->pos[k];
	}
}

/* What the child sets on sh at step s: status flags, and the SIGIO owner. */
static int step_flags(int s)
{
	return s % 2 ? 0 : O_NONBLOCK | O_NOATIME;
}

static pid_t step_owner(int s, pid_t parent, pid_t child)
{
	return s % 2 ? parent : child;
}

/* kcmp(KCMP_FILE) of the parent's fd a and our fd b: 1 when one open file description. */
static int same_desc(pid_t parent, int a, int b, int step)
{
	long r = syscall(SYS_kcmp, parent, getpid(), KCMP_FILE, a, b);
	CHECK(r >= 0, "step %d: kcmp: %s", step, strerror(errno));
	return r == 0;
}

static void child_checks(pid_t parent, int step)
{
	for (int k = 0; k < 2; k++) {
		const struct dir *d = &dirs[k];
		CHECK(same_desc(parent, d->sh, d->sh, step), "step %d: child: %s: its shared descriptor is not the "
		      "parent's description", step, d->path);
		CHECK(same_desc(parent, d->dup, d->sh, step), "step %d: child: %s: its shared descriptor is not the "
		      "parent's dup's description", step, d->path);
		CHECK(same_desc(parent, d->sh, d->dup, step), "step %d: child: %s: its dup is not the parent's shared "
		      "description", step, d->path);
		CHECK(!same_desc(parent, d->own, d->sh, step), "step %d: child: %s: the parent's own description is "
		      "the shared one", step, d->path);
	}
	CHECK(same_desc(parent, opath, opath, step), "step %d: child: the O_PATH descriptor %d is not the parent's "
	      "description", step, opath);
}

static void child(int from_parent, int to_parent)
{
	pid_t parent = getppid(), me = getpid();
	struct word w;
	for (;;) {
		take(from_parent, &w);
		int s = w.step;
		if (s < 0)
			_exit(0);
		from_word(&w, "child", s);
		child_checks(parent, s);
		for (int k = 0; k < 2; k++) {
			struct dir *d = &dirs[k];
			read_turn(d, 0, "child", s);
			SYSCHK(fcntl(d->sh, F_SETFL, d->oflags | step_flags(s)));
			SYSCHK(fcntl(d->sh, F_SETOWN, step_owner(s, parent, me)));
		}
		to_word(&w, s);
		put(to_parent, &w);
	}
}

/* "proc": a /proc directory, then a /proc file, that parent and child share (see the top) */
static int proc_mode(void)
{
	int down[2], up[2], st;
	struct word w = { 0 };
	int dfd = SYSCHK(open("/proc/self/fd", O_RDONLY | O_DIRECTORY)), sfd = SYSCHK(open("/proc/self/status", O_RDONLY));
	SYSCHK(pipe(down));
	SYSCHK(pipe(up));
	pid_t kid = SYSCHK(fork());
	if (kid == 0) {
		/* word 1: close the directory, 2: the file, -1: the end */
		for (;;) {
			take(down[0], &w);
			if (w.step < 0)
				_exit(0);
			close(w.step == 1 ? dfd : sfd);
			put(up[1], &w);
		}
	}
	printf("proc directory shared\n");
	t_wait_go(1);
	close(dfd);
	w.step = 1;
	put(down[1], &w);
	take(up[0], &w);
	printf("proc file shared\n");
	t_wait_go(2);
	close(sfd);
	w.step = 2;
	put(down[1], &w);
	take(up[0], &w);
	printf("proc closed\n");
	t_wait_go(3);
	w.step = -1;
	put(down[1], &w);
	SYSCHK(waitpid(kid, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child ended with status %#x", st);
	printf("RESULT proc\n");
	return 0;
}

/* "many": see the top */
#define MANY 2800
#define KEPT 100

/* Each of the first n descriptors of set is one description in parent and child kid (kcmp). */
static void many_check(const int *set, int n, pid_t kid, const char *when)
{
	for (int i = 0; i < n; i++) {
		long r = syscall(SYS_kcmp, getpid(), kid, KCMP_FILE, set[i], set[i]);
		CHECK(r == 0, "%s: fd %d is %s in child %d", when, set[i], r < 0 ? strerror(errno) : "another description",
		      (int)kid);
	}
}

static int many_mode(void)
{
	static int set[MANY];
	int down[2][2], up[2][2], st;
	pid_t kids[2];
	struct rlimit rl;
	struct word w = { 0 };
	SYSCHK(getrlimit(RLIMIT_NOFILE, &rl));
	CHECK(rl.rlim_max >= MANY + 64, "RLIMIT_NOFILE's hard limit is %lu, below %d", (unsigned long)rl.rlim_max,
	      MANY + 64);
	if (rl.rlim_cur < MANY + 64) {
		rl.rlim_cur = MANY + 64;
		SYSCHK(setrlimit(RLIMIT_NOFILE, &rl));
	}
	char dir[PATH_MAX], p[PATH_MAX + 16];
	t_mkworkdir(dir, sizeof(dir), "dir_shared_many");
	for (int i = 0; i < MANY; i++) {
		t_fmt(p, sizeof(p), "%s/m-%04d", dir, i);
		SYSCHK(mkdir(p, 0700));
		set[i] = SYSCHK(open(p, O_RDONLY | O_DIRECTORY));
	}
	for (int k = 0; k < 2; k++) {
		SYSCHK(pipe(down[k]));
		SYSCHK(pipe(up[k]));
		kids[k] = SYSCHK(fork());
		if (kids[k] == 0) {
			/* word 1: close all but KEPT; -1: the end */
			for (;;) {
				take(down[k][0], &w);
				if (w.step < 0)
					_exit(0);
				for (int i = KEPT; i < MANY; i++)
					close(set[i]);
				put(up[k][1], &w);
			}
		}
	}
	for (int k = 0; k < 2; k++)
		many_check(set, MANY, kids[k], "after the fork");
	printf("many shared\n");
	t_wait_go(1);
	for (int k = 0; k < 2; k++)
		many_check(set, MANY, kids[k], "after go.1");
	for (int i = KEPT; i < MANY; i++)
		close(set[i]);
	w.step = 1;
	for (int k = 0; k < 2; k++) {
		put(down[k][1], &w);
		take(up[k][0], &w);
		many_check(set, KEPT, kids[k], "all but the first closed");
	}
	printf("many closed\n");
	t_wait_go(2);
	w.step = -1;
	for (int k = 0; k < 2; k++) {
		many_check(set, KEPT, kids[k], "after go.2");
		put(down[k][1], &w);
		SYSCHK(waitpid(kids[k], &st, 0));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d ended with status %#x", k, st);
	}
	for (int i = 0; i < MANY; i++) {
		if (i < KEPT)
			close(set[i]);
		t_fmt(p, sizeof(p), "%s/m-%04d", dir, i);
		SYSCHK(rmdir(p));
	}
	SYSCHK(rmdir(dir));
	printf("RESULT many\n");
	return 0;
}

int main(int argc, char **argv)
{
	int down[2], up[2], st;
	struct word w;

	t_init("dir_shared");
	if (argc > 1 && !strcmp(argv[1], "proc"))
		return proc_mode();
	if (argc > 1 && !strcmp(argv[1], "many"))
		return many_mode();
	make_dir(&dirs[0], t_tmpdir(), "disk", O_RDONLY | O_DIRECTORY);
	make_dir(&dirs[1], "/dev/shm", "tmpfs", O_RDONLY);
	for (int k = 0; k < 2; k++) {
		struct dir *d = &dirs[k];
		list(d);
		d->dup = SYSCHK(dup(d->sh));
		/* read part-way before the fork: the child inherits a description that has moved */
		read_turn(d, 1, "parent", -1);
	}
	opath = SYSCHK(open(dirs[0].path, O_PATH | O_DIRECTORY));
	for (int k = 0; k < 2; k++)
		dirs[k].own = SYSCHK(open(dirs[k].path, dirs[k].oflags));
	SYSCHK(pipe(down));
	SYSCHK(pipe(up));
	pid_t kid = SYSCHK(fork());
	if (kid == 0) {
		close(down[1]);
		close(up[0]);
		/* the parent's own descriptions are the parent's alone (their numbers kept, for kcmp) */
		for (int k = 0; k < 2; k++)
			close(dirs[k].own);
		child(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);

	for (int s = 0; s < STEPS; s++) {
		for (int k = 0; k < 2; k++) {
			struct dir *d = &dirs[k];
			check_pos(d, d->pos, "parent", s);
			read_turn(d, 1, "parent", s);
			read_own(d, s);
		}
		to_word(&w, s);
		put(down[1], &w);
		take(up[0], &w);
		CHECK(w.step == s, "the child failed at step %d", s);
		from_word(&w, "parent", s);
		for (int k = 0; k < 2; k++) {
			const struct dir *d = &dirs[k];
			int fl = SYSCHK(fcntl(d->sh, F_GETFL)), want = d->oflags | step_flags(s);
			CHECK(fl == want, "step %d: parent: %s: F_GETFL %#o, the child set %#o", s, d->path, fl, want);
			fl = SYSCHK(fcntl(d->dup, F_GETFL));
			CHECK(fl == want, "step %d: parent: %s: F_GETFL of the dup %#o, the child set %#o", s, d->path, fl,
			      want);
			fl = SYSCHK(fcntl(d->own, F_GETFL));
			CHECK(fl == d->oflags, "step %d: parent: %s: F_GETFL of its own description %#o, it opened it "
			      "with %#o", s, d->path, fl, d->oflags);
			pid_t ow = (pid_t)SYSCHK(fcntl(d->sh, F_GETOWN)), wo = step_owner(s, getpid(), kid);
			CHECK(ow == wo, "step %d: parent: %s: the SIGIO owner is %d, the child made it %d", s, d->path,
			      (int)ow, (int)wo);
		}
		printf("step %d ok\n", s);
		fflush(stdout);
		t_sleep_ms(150);
	}
	for (int k = 0; k < 2; k++)
		CHECK(dirs[k].rounds == ROUNDS && dirs[k].own_rounds == 0, "%s: read %d times through the shared "
		      "description, %d through the parent's own; expected %d and 0", dirs[k].path, dirs[k].rounds,
		      dirs[k].own_rounds, ROUNDS);
	w.step = -1;
	put(down[1], &w);
	SYSCHK(waitpid(kid, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child ended with status %#x", st);
	char p[PATH_MAX + 16];
	for (int k = 0; k < 2; k++) {
		close(dirs[k].sh);
		close(dirs[k].dup);
		close(dirs[k].own);
		for (int i = 0; i < NAMES; i++) {
			t_fmt(p, sizeof(p), "%s/e-%04d", dirs[k].path, i);
			SYSCHK(unlink(p));
		}
		SYSCHK(rmdir(dirs[k].path));
	}
	printf("RESULT %d entries in each, read %d times by parent and child in turn\n", ENTRIES, ROUNDS);
	return 0;
}
