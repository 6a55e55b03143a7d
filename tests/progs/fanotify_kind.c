/*
 * fanotify_kind: two fanotify groups whose flags and marks must survive
 * checkpoints and restarts (src/kinds/fanotify.c).
 *   A (FAN_CLASS_NOTIF, FAN_NONBLOCK | FAN_CLOEXEC, events opened
 *     O_RDONLY): a directory marked for modify and close-write of its
 *     children; in it a file whose own mark ignores modify (the older
 *     FAN_MARK_IGNORED_MASK, surviving modify) and one that ignores
 *     close-write (FAN_MARK_IGNORE); a file elsewhere marked for modify;
 *     and, as root with a mount of its own (a tmpfs at
 *     $COHORT_TEST_TMP.mnt, which the test mounts), a mount mark for
 *     close-write and a filesystem mark for modify on it.
 *   B (FAN_REPORT_FID, blocking): the directory marked for create and
 *     delete of subdirectories, the file elsewhere for modify; its events
 *     name files by handle.
 * Every step makes file events and reads them at once: each event's pid
 * must be ours, each descriptor (A) must refer to the file acted on, open
 * read-only, each handle (B) must be the file's, and the events of each
 * file must be exactly those its marks ask for.  The descriptors' flags
 * are checked each step.
 * With "fid": group B alone (a user without CAP_SYS_ADMIN may make it).
 *   C (FAN_CLASS_CONTENT, as root): a file marked for open-perm; each step
 *     a child opens it, C allows or denies it, and the child sees which.
 *   D (FAN_REPORT_MNT, as root): our mount namespace marked for mounts
 *     attached and detached; each step mounts a tmpfs and unmounts it.
 * With "hold": an event of A left unread until go.1 (a checkpoint must be
 * refused, and leave it queued); with "perm": a permission event of a
 * process outside the group read and not answered until go.1 (refused);
 * with "perm_child": the same asked by a child of ours, which cannot park
 * while it waits (refused after the checkpoint's tries), then "answered"
 * and a wait for go.2 (a checkpoint then succeeds).
 */
#include "common.h"
#include "exact.h"
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>

#define STEPS 30
#define MAXF 8

#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x00000400
#endif
/* mount namespace marks (Linux 6.14), newer than these headers */
#ifndef FAN_REPORT_MNT
#define FAN_REPORT_MNT 0x00004000
#define FAN_MARK_MNTNS 0x00000110
#define FAN_MNT_ATTACH 0x01000000
#define FAN_MNT_DETACH 0x02000000
#define FAN_EVENT_INFO_TYPE_MNT 7
struct fanotify_event_info_mnt {
	struct fanotify_event_info_header hdr;
	uint64_t mnt_id;
};
#endif
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U
#endif

/* A file a step acts on, and the events its marks must give it (A by inode, B by handle). */
struct file {
	const char *what;
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
	uint32_t want, got;
	struct {
		struct file_handle h;
		unsigned char b[MAX_HANDLE_SZ];
	} fh;
};

static int A = -1, B, C = -1, D = -1;	/* C: permission events, D: mount events (root) */
static int fid_only;	/* "fid": only B, which a user without CAP_SYS_ADMIN may make */
static int mounted;	/* root, and $COHORT_TEST_TMP.mnt is a mount: mount and filesystem marks */
static char dir[PATH_MAX], ddir[PATH_MAX], mnt[PATH_MAX], mnt2[PATH_MAX];
static struct file f_perm, f_child, f_skip, f_skip2, f_other, f_mnt, h_dir, h_other;
static uint64_t sum = 1469598103934665603ULL;
static char says_a[2048], says_b[2048], says_c[512], says_d[512];	/* the groups' fdinfo as made (group_says) */

static void mkfile(const char *path)
{
	close(SYSCHK(open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644)));
}

static void file_at(struct file *f, const char *what, const char *path)
{
	struct stat st;
	int mnt_id;
	f->what = what;
	t_fmt(f->path, sizeof(f->path), "%s", path);
	SYSCHK(stat(path, &st));
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->fh.h.handle_bytes = MAX_HANDLE_SZ;
	SYSCHK(name_to_handle_at(AT_FDCWD, path, &f->fh.h, &mnt_id, 0));
}

/* Write a byte to f (modify), then close it (close-write). */
static void touch_write(const struct file *f, int s)
{
	int fd = SYSCHK(open(f->path, O_WRONLY));
	t_write_all(fd, "x", 1, s);
	close(fd);
}

/* The file of A's event descriptor fd: checked read-only, or a failure. */
static struct file *file_of_fd(int fd, struct file **fs, int n, int step)
{
	struct stat st;
	SYSCHK(fstat(fd, &st));
	int fl = SYSCHK(fcntl(fd, F_GETFL));
	CHECK((fl & O_ACCMODE) == O_RDONLY, "step %d: A: an event's descriptor is open %#o, expected read-only", step, fl);
	for (int i = 0; i < n; i++)
		if (fs[i]->dev == st.st_dev && fs[i]->ino == st.st_ino)
			return fs[i];
	char link[64], path[PATH_MAX] = "?";
	t_fmt(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t len = readlink(link, path, sizeof(path) - 1);
	path[len > 0 ? len : 1] = 0;
	FAIL("step %d: A: an event on a file no step acted on: %s", step, path);
}

/* The file of B's event info (after the metadata m): its handle checked, or a failure. */
static struct file *file_of_fid(const struct fanotify_event_metadata *m, struct file **fs, int n, int step)
{
	const struct fanotify_event_info_fid *fid = (const void *)(m + 1);
	CHECK(m->event_len > sizeof(*m) + sizeof(*fid) && fid->hdr.info_type == FAN_EVENT_INFO_TYPE_FID,
	      "step %d: B: an event without a file id (info type %d)", step, fid->hdr.info_type);
	const struct file_handle *h = (const void *)fid->handle;
	for (int i = 0; i < n; i++)
		if (fs[i]->fh.h.handle_type == h->handle_type && fs[i]->fh.h.handle_bytes == h->handle_bytes &&
		    !memcmp(fs[i]->fh.h.f_handle, h->f_handle, h->handle_bytes))
			return fs[i];
	FAIL("step %d: B: an event on a file handle no step acted on", step);
}

/*
 * Read every event of group fd (A: by descriptor; B: by handle) until its
 * queue is empty, adding each one's mask to its file's; then each file of
 * fs must have got exactly what it wants.  Folded into sum.
 */
static void expect(int fd, const char *what, struct file **fs, int n, int step)
{
	char buf[8192] __attribute__((aligned(8)));
	int queued = 0;
	for (int i = 0; i < n; i++)
		fs[i]->got = 0;
	while (SYSCHK(ioctl(fd, FIONREAD, &queued)) == 0 && queued > 0) {
		ssize_t len = SYSCHK(read(fd, buf, sizeof(buf)));
		const struct fanotify_event_metadata *m = (const void *)buf;
		for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			CHECK(m->vers == FANOTIFY_METADATA_VERSION, "step %d: %s: metadata version %d", step, what, m->vers);
			CHECK(m->pid == getpid(), "step %d: %s: an event of pid %d, expected ours (%d)", step, what, m->pid,
			      getpid());
			struct file *f;
			if (fd == A) {
				CHECK(m->fd >= 0, "step %d: A: an event without a descriptor (%d)", step, m->fd);
				f = file_of_fd(m->fd, fs, n, step);
				close(m->fd);
			} else {
				CHECK(m->fd == FAN_NOFD, "step %d: B: an event with a descriptor (%d)", step, m->fd);
				f = file_of_fid(m, fs, n, step);
			}
			f->got |= (uint32_t)m->mask;
		}
	}
	for (int i = 0; i < n; i++) {
		CHECK(fs[i]->got == fs[i]->want, "step %d: %s: %s (%s) got events %#x, expected %#x", step, what,
		      fs[i]->what, fs[i]->path, fs[i]->got, fs[i]->want);
		sum = t_fnv(sum, &fs[i]->got, sizeof(fs[i]->got));
	}
}

static void flags_are(int fd, int fl, int fdfl, const char *what, int step)
{
	int got = SYSCHK(fcntl(fd, F_GETFL)) & (O_NONBLOCK | O_ACCMODE);
	int gotfd = SYSCHK(fcntl(fd, F_GETFD));
	CHECK(got == fl, "step %d: %s: status flags %#o, expected %#o", step, what, got, fl);
	CHECK(gotfd == fdfl, "step %d: %s: descriptor flags %d, expected %d", step, what, gotfd, fdfl);
}

/*
 * What fdinfo says of group fd, without what names the objects (inode,
 * device, mount id, handle, which a restart may change): its flags, then
 * each mark's kind, flags and masks, in the kernel's order.
 */
static void group_says(int fd, char *out, size_t n)
{
	char path[64], buf[8192];
	t_fmt(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int f = SYSCHK(open(path, O_RDONLY));
	ssize_t len = SYSCHK(read(f, buf, sizeof(buf) - 1));
	close(f);
	buf[len] = 0;
	size_t at = 0;
	out[0] = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, "fanotify ", 9))
			continue;
		char *m = strstr(line, "mflags:"), *fl = strstr(line, "flags:");
		const char *kind = strstr(line, " ino:") ? "inode" : strstr(line, "mnt_id:") ? "mount"
				   : strstr(line, "mnt_ns:") ? "mount namespace" : "fs";
		char *cut = m ? strstr(m, " fhandle-bytes:") : NULL;
		if (cut)
			*cut = 0;
		at += (size_t)snprintf(out + at, n > at ? n - at : 0, "%s;", m ? m : fl);
		if (m)
			at += (size_t)snprintf(out + at, n > at ? n - at : 0, "%s;", kind);
	}
}

/* Is path a mount of its own (its device is not its parent's)? */
static int own_mount(const char *path)
{
	char up[PATH_MAX];
	struct stat a, b;
	t_fmt(up, sizeof(up), "%s/..", path);
	return stat(path, &a) == 0 && stat(up, &b) == 0 && a.st_dev != b.st_dev;
}

static void setup(void)
{
	char p[PATH_MAX];
	const char *tmp = getenv("COHORT_TEST_TMP");
	t_mkworkdir(dir, sizeof(dir), "fanotify_kind");
	t_fmt(ddir, sizeof(ddir), "%s/d", dir);
	CHECK(mkdir(ddir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", ddir, strerror(errno));
	t_fmt(mnt, sizeof(mnt), "%s.mnt", tmp ? tmp : "/nonexistent");
	mounted = geteuid() == 0 && own_mount(mnt);
	const char *names[] = { "d/f", "d/skip", "d/skip2", "g" };
	struct file *fs[] = { &f_child, &f_skip, &f_skip2, &f_other };
	for (int i = 0; i < 4; i++) {
		t_fmt(p, sizeof(p), "%s/%s", dir, names[i]);
		mkfile(p);
		file_at(fs[i], names[i], p);
	}
	file_at(&h_dir, "d", ddir);
	h_other = f_other;
	if (mounted) {
		t_fmt(p, sizeof(p), "%s/m", mnt);
		mkfile(p);
		file_at(&f_mnt, "m (mount)", p);
	}

	if (fid_only)
		goto fid;
	A = SYSCHK(fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE));
	SYSCHK(fanotify_mark(A, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD, AT_FDCWD, ddir));
	SYSCHK(fanotify_mark(A, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_MODIFY, AT_FDCWD,
			     f_skip.path));
	SYSCHK(fanotify_mark(A, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY, FAN_CLOSE_WRITE, AT_FDCWD,
			     f_skip2.path));
	SYSCHK(fanotify_mark(A, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, f_other.path));
	f_child.want = FAN_MODIFY | FAN_CLOSE_WRITE;
	f_skip.want = FAN_CLOSE_WRITE;
	f_skip2.want = FAN_MODIFY;
	f_other.want = FAN_MODIFY;
	if (mounted) {
		SYSCHK(fanotify_mark(A, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE, AT_FDCWD, mnt));
		SYSCHK(fanotify_mark(A, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_MODIFY, AT_FDCWD, mnt));
		f_mnt.want = FAN_MODIFY | FAN_CLOSE_WRITE;
	}

	group_says(A, says_a, sizeof(says_a));
fid:
	/* what a user without CAP_SYS_ADMIN may make (Linux 5.13 and later) */
	B = SYSCHK(fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID, O_RDONLY));
	SYSCHK(fanotify_mark(B, FAN_MARK_ADD, FAN_CREATE | FAN_DELETE | FAN_ONDIR, AT_FDCWD, ddir));
	SYSCHK(fanotify_mark(B, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, h_other.path));
	h_dir.want = FAN_CREATE | FAN_DELETE | FAN_ONDIR;
	h_other.want = FAN_MODIFY;
	group_says(B, says_b, sizeof(says_b));
	if (geteuid() == 0 && !fid_only) {
		/* a group that is asked: opening f_perm waits for its answer */
		t_fmt(p, sizeof(p), "%s/p", dir);
		mkfile(p);
		file_at(&f_perm, "p", p);
		C = SYSCHK(fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY));
		SYSCHK(fanotify_mark(C, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, p));
		group_says(C, says_c, sizeof(says_c));
		/* a group that hears of mounts in our mount namespace: a tmpfs mounted and unmounted each step */
		t_fmt(mnt2, sizeof(mnt2), "%s/m2", dir);
		CHECK(mkdir(mnt2, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", mnt2, strerror(errno));
		D = SYSCHK(fanotify_init(FAN_REPORT_MNT | FAN_NONBLOCK, 0));
		SYSCHK(fanotify_mark(D, FAN_MARK_ADD | FAN_MARK_MNTNS, FAN_MNT_ATTACH | FAN_MNT_DETACH, AT_FDCWD,
				     "/proc/self/ns/mnt"));
		group_says(D, says_d, sizeof(says_d));
	}
	sum = t_fnv(sum, says_a, strlen(says_a));
	sum = t_fnv(sum, says_c, strlen(says_c));
	sum = t_fnv(sum, says_d, strlen(says_d));
	sum = t_fnv(sum, says_b, strlen(says_b));
}

/* Each group's flags and marks as they were made */
static void groups_same(int s)
{
	char now[2048] = "";
	if (A >= 0)
		group_says(A, now, sizeof(now));
	CHECK(!strcmp(now, says_a), "step %d: A's fdinfo says %s, it said %s", s, now, says_a);
	group_says(B, now, sizeof(now));
	CHECK(!strcmp(now, says_b), "step %d: B's fdinfo says %s, it said %s", s, now, says_b);
	if (C < 0)
		return;
	group_says(C, now, sizeof(now));
	CHECK(!strcmp(now, says_c), "step %d: C's fdinfo says %s, it said %s", s, now, says_c);
	group_says(D, now, sizeof(now));
	CHECK(!strcmp(now, says_d), "step %d: D's fdinfo says %s, it said %s", s, now, says_d);
}

/*
 * Read C's next permission event (blocking): it must be pid's, asking
 * to open f_perm, through a read-only descriptor; the event's descriptor
 * into *fd.  Its response id.
 */
static int asked(pid_t pid, int step)
{
	char buf[4096] __attribute__((aligned(8)));
	ssize_t len = SYSCHK(read(C, buf, sizeof(buf)));
	const struct fanotify_event_metadata *m = (const void *)buf;
	CHECK(FAN_EVENT_OK(m, len) && !FAN_EVENT_OK(FAN_EVENT_NEXT(m, len), len - (ssize_t)m->event_len),
	      "step %d: C: %zd bytes read, not one event", step, len);
	CHECK(m->mask == FAN_OPEN_PERM, "step %d: C: event mask %#llx, expected open-perm", step,
	      (unsigned long long)m->mask);
	CHECK(m->pid == pid, "step %d: C: an event of pid %d, expected %d", step, m->pid, pid);
	struct file *fs[] = { &f_perm };
	file_of_fd(m->fd, fs, 1, step);
	return m->fd;
}

static void answer(int fd, uint32_t how)
{
	struct fanotify_response r = { .fd = fd, .response = how };
	CHECK(write(C, &r, sizeof(r)) == sizeof(r), "C: answering: %s", strerror(errno));
	close(fd);
}

/* A child opens f_perm; C allows it on odd steps and denies it on even ones, and the child sees that */
static void perm_round(int s)
{
	pid_t pid = SYSCHK(fork());
	if (pid == 0) {
		int f = open(f_perm.path, O_RDONLY);
		_exit(f >= 0 ? 0 : errno == EPERM ? 1 : 2);
	}
	answer(asked(pid, s), s & 1 ? FAN_ALLOW : FAN_DENY);
	int st;
	SYSCHK(waitpid(pid, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == (s & 1 ? 0 : 1), "step %d: C: the child's open %s (status %#x)", s,
	      s & 1 ? "was not allowed" : "was not denied", st);
	sum = t_fnv(sum, &st, sizeof(st));
}

/*
 * A tmpfs mounted on mnt2 and unmounted: D hears of both, by its mount id
 * (the native run, in the machine's namespace, hears of others' mounts
 * too: left out)
 */
static void mount_round(int s)
{
	struct statx sx;
	char buf[4096] __attribute__((aligned(8)));
	SYSCHK(mount("fanotify_kind", mnt2, "tmpfs", 0, "size=64k"));
	SYSCHK(statx(AT_FDCWD, mnt2, 0, STATX_MNT_ID_UNIQUE, &sx));
	SYSCHK(umount(mnt2));
	uint32_t got = 0;
	ssize_t len;
	while ((len = read(D, buf, sizeof(buf))) > 0) {
		const struct fanotify_event_metadata *m = (const void *)buf;
		for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			const struct fanotify_event_info_mnt *i = (const void *)(m + 1);
			CHECK(m->event_len >= sizeof(*m) + sizeof(*i) && i->hdr.info_type == FAN_EVENT_INFO_TYPE_MNT,
			      "step %d: D: an event without a mount id (info type %d)", s, i->hdr.info_type);
			if (i->mnt_id == sx.stx_mnt_id)
				got |= (uint32_t)m->mask;
		}
	}
	CHECK(len < 0 && errno == EAGAIN, "step %d: D: reading: %s", s, len < 0 ? strerror(errno) : "end of file");
	CHECK(got == (FAN_MNT_ATTACH | FAN_MNT_DETACH), "step %d: D: mount %llu got events %#x, expected %#x", s,
	      (unsigned long long)sx.stx_mnt_id, got, FAN_MNT_ATTACH | FAN_MNT_DETACH);
	sum = t_fnv(sum, &got, sizeof(got));
}

static void step(int s)
{
	char p[PATH_MAX];
	groups_same(s);
	if (A >= 0)
		flags_are(A, O_RDWR | O_NONBLOCK, FD_CLOEXEC, "A", s);
	flags_are(B, O_RDWR, 0, "B", s);

	struct file *fa[] = { &f_child, &f_skip, &f_skip2, &f_other, &f_mnt };
	int na = mounted ? 5 : 4;
	for (int i = 0; i < na; i++)
		touch_write(fa[i], s);
	/* a directory made and removed in d: B hears of both, A of neither */
	t_fmt(p, sizeof(p), "%s/c%d", ddir, s);
	SYSCHK(mkdir(p, 0755));
	SYSCHK(rmdir(p));
	struct file *fb[] = { &h_dir, &h_other };
	expect(B, "B", fb, 2, s);
	if (C >= 0)
		perm_round(s);
	if (D >= 0)
		mount_round(s);
	if (A < 0)
		return;
	expect(A, "A", fa, na, s);
	char c;
	CHECK(read(A, &c, 1) < 0 && errno == EAGAIN, "step %d: A: reading the empty queue did not fail EAGAIN", s);
}

/* An event of A left unread until go.1: then read, intact */
static void hold(void)
{
	touch_write(&f_other, 0);
	printf("ready\n");
	t_wait_go(1);
	struct file *fa[] = { &f_other };
	expect(A, "A, held", fa, 1, 0);
	printf("RESULT fanotify_kind held ok\n");
}

/*
 * A permission event of a process outside (the test opens
 * $COHORT_TEST_TMP/p) read and left unanswered until go.1: then allowed
 */
static void perm(int by_child)
{
	char p[PATH_MAX];
	t_fmt(p, sizeof(p), "%s/p", t_tmpdir());
	mkfile(p);
	file_at(&f_perm, "p", p);
	int fd = SYSCHK(fanotify_init(FAN_CLASS_CONTENT, O_RDONLY));
	SYSCHK(fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, p));
	printf("ready\n");
	fflush(stdout);
	pid_t child = 0;
	if (by_child && (child = SYSCHK(fork())) == 0) {
		int f = open(p, O_RDONLY);
		_exit(f >= 0 ? 0 : 1);
	}
	char buf[4096] __attribute__((aligned(8)));
	ssize_t len = SYSCHK(read(fd, buf, sizeof(buf)));
	const struct fanotify_event_metadata *m = (const void *)buf;
	CHECK(FAN_EVENT_OK(m, len) && m->mask == FAN_OPEN_PERM, "perm: not an open-perm event");
	CHECK(!child || m->pid == child, "perm: an event of pid %d, expected our child %d", m->pid, (int)child);
	struct file *fs[] = { &f_perm };
	file_of_fd(m->fd, fs, 1, 0);
	printf("asked\n");
	fflush(stdout);
	t_wait_go(1);
	struct fanotify_response r = { .fd = m->fd, .response = FAN_ALLOW };
	SYSCHK(write(fd, &r, sizeof(r)));
	close(m->fd);
	if (child) {
		int st;
		SYSCHK(waitpid(child, &st, 0));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "perm: the child's open was not allowed (status %#x)", st);
		printf("answered\n");
		fflush(stdout);
		t_wait_go(2);
	}
	printf("RESULT fanotify_kind perm%s ok\n", child ? "_child" : "");
}

int main(int argc, char **argv)
{
	t_init("fanotify_kind");
	fid_only = argc > 1 && !strcmp(argv[1], "fid");
	setup();
	if (argc > 1 && !strcmp(argv[1], "hold")) {
		hold();
		return 0;
	}
	if (argc > 1 && (!strcmp(argv[1], "perm") || !strcmp(argv[1], "perm_child"))) {
		perm(!strcmp(argv[1], "perm_child"));
		return 0;
	}
	for (int s = 0; s < STEPS; s++) {
		step(s);
		x_step(s, 100);
	}
	printf("RESULT fanotify_kind ok %016llx%s%s\n", (unsigned long long)sum, mounted ? " with mount marks" : "",
	       C >= 0 ? " with permission events" : "");
	return 0;
}
