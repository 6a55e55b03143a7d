/*
 * inotify_kind: two inotify descriptors whose watches and queued events
 * must survive checkpoints and restarts (src/kinds/inotify.c).
 *   A (IN_NONBLOCK): a directory watched for create, delete and
 *     close-write, a file for close-write, and a watch removed between
 *     them (a gap in the wds).  Its events are read at once each step
 *     (a checkpoint waits while they are queued: cohort cannot make
 *     create or delete events again).
 *   B (IN_CLOEXEC, blocking): a directory and a file in it watched for
 *     modify (and attrib), another file for attrib, with a gap too.  Each
 *     step makes its events, then sleeps 150 ms before reading them: a
 *     checkpoint then finds them queued, and a restart must give them
 *     back, in order, with the same wd, mask, cookie and name.
 * Every step checks the descriptors' flags and every event.
 * With the argument "hold": a create event left unread in A while it
 * waits for go.1, A made and read with raw system calls as Go does (its
 * agent cannot hold its events: a checkpoint must be refused, and leave
 * them queued).
 */
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include "common.h"
#include "exact.h"

#define STEPS 30

struct want {
	int wd;
	uint32_t mask;
	const char *name;
};

static int A, B;
static int raw;	/* "hold": A made and read with raw system calls, as Go does */
static char dir[PATH_MAX], adir[PATH_MAX], ddir[PATH_MAX], fpath[PATH_MAX], qpath[PATH_MAX];
static uint64_t sum = 1469598103934665603ULL;

static void mkfile(const char *path)
{
	close(SYSCHK(open(path, O_CREAT | O_WRONLY, 0644)));
}

static int add(int fd, const char *path, uint32_t mask, int wd)
{
	int got = SYSCHK(inotify_add_watch(fd, path, mask));
	CHECK(got == wd, "watch of %s is wd %d, expected %d", path, got, wd);
	return got;
}

/* Read exactly the events w[0..n) from fd (which must hold no more), and fold them into sum. */
static void expect(int fd, const char *what, const struct want *w, int n, int step)
{
	char buf[4096] __attribute__((aligned(8)));
	int queued = 0;
	SYSCHK(ioctl(fd, FIONREAD, &queued));
	CHECK(queued > 0, "step %d: %s: no event queued", step, what);
	ssize_t got = SYSCHK(raw && fd == A ? syscall(SYS_read, fd, buf, sizeof(buf)) : read(fd, buf, sizeof(buf)));
	CHECK(got == queued, "step %d: %s: read %zd bytes of %d queued", step, what, got, queued);
	int k = 0;
	for (ssize_t off = 0; off < got; k++) {
		const struct inotify_event *e = (const void *)(buf + off);
		const char *name = e->len ? e->name : "";
		CHECK(k < n, "step %d: %s: an extra event wd %d mask %#x name '%s'", step, what, e->wd, e->mask, name);
		CHECK(e->wd == w[k].wd && e->mask == w[k].mask && e->cookie == 0 && !strcmp(name, w[k].name),
		      "step %d: %s: event %d is wd %d mask %#x cookie %u name '%s', expected wd %d mask %#x name '%s'",
		      step, what, k, e->wd, e->mask, e->cookie, name, w[k].wd, w[k].mask, w[k].name);
		sum = t_fnv(sum, &e->wd, sizeof(e->wd));
		sum = t_fnv(sum, &e->mask, sizeof(e->mask));
		sum = t_fnv(sum, name, strlen(name));
		off += (ssize_t)(sizeof(*e) + e->len);
	}
	CHECK(k == n, "step %d: %s: %d events, expected %d", step, what, k, n);
}

static void flags_are(int fd, int fl, int fdfl, const char *what, int step)
{
	int got = SYSCHK(fcntl(fd, F_GETFL)) & (O_NONBLOCK | O_ACCMODE);
	int gotfd = SYSCHK(fcntl(fd, F_GETFD));
	CHECK(got == fl, "step %d: %s: status flags %#o, expected %#o", step, what, got, fl);
	CHECK(gotfd == fdfl, "step %d: %s: descriptor flags %d, expected %d", step, what, gotfd, fdfl);
}

static void setup(void)
{
	char p[PATH_MAX];
	t_mkworkdir(dir, sizeof(dir), "inotify_kind");
	t_fmt(adir, sizeof(adir), "%s/a", dir);
	t_fmt(ddir, sizeof(ddir), "%s/d", dir);
	t_fmt(fpath, sizeof(fpath), "%s/d/f", dir);
	t_fmt(qpath, sizeof(qpath), "%s/q", dir);
	CHECK(mkdir(adir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", adir, strerror(errno));
	CHECK(mkdir(ddir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", ddir, strerror(errno));
	SYSCHK(truncate(fpath, 0) == 0 || errno == ENOENT ? 0 : -1);
	mkfile(fpath);
	mkfile(qpath);
	t_fmt(p, sizeof(p), "%s/gone", dir);
	mkfile(p);

	A = SYSCHK(raw ? (int)syscall(SYS_inotify_init1, IN_NONBLOCK) : inotify_init1(IN_NONBLOCK));
	add(A, adir, IN_CREATE | IN_DELETE | IN_CLOSE_WRITE, 1);
	SYSCHK(inotify_rm_watch(A, add(A, p, IN_MODIFY, 2)));
	add(A, qpath, IN_CLOSE_WRITE, 3);
	struct want ign = { 2, IN_IGNORED, "" };
	expect(A, "A's removed watch", &ign, 1, -1);

	B = SYSCHK(inotify_init1(IN_CLOEXEC));
	add(B, ddir, IN_MODIFY | IN_ATTRIB, 1);
	SYSCHK(inotify_rm_watch(B, add(B, p, IN_ATTRIB, 2)));
	add(B, fpath, IN_MODIFY, 3);
	add(B, qpath, IN_ATTRIB, 4);
	expect(B, "B's removed watch", &ign, 1, -1);
	unlink(p);
}

static void step(int s)
{
	char n[32], p[PATH_MAX];
	flags_are(A, O_RDONLY | O_NONBLOCK, 0, "A", s);
	flags_are(B, O_RDONLY, FD_CLOEXEC, "B", s);

	/* A: a file made, written to and removed in its directory; its other file closed after writing */
	t_fmt(n, sizeof(n), "n%d", s);
	t_fmt(p, sizeof(p), "%s/%s", adir, n);
	mkfile(p);
	SYSCHK(unlink(p));
	close(SYSCHK(open(qpath, O_WRONLY)));
	struct want wa[] = { { 1, IN_CREATE, n }, { 1, IN_CLOSE_WRITE, n }, { 1, IN_DELETE, n }, { 3, IN_CLOSE_WRITE, "" } };
	expect(A, "A", wa, 4, s);
	char c;
	CHECK(read(A, &c, 1) < 0 && errno == EAGAIN, "step %d: A: reading the empty queue did not fail EAGAIN", s);

	/* B: f written (its directory hears too), q's and f's modes changed; read only 150 ms later */
	int fd = SYSCHK(open(fpath, O_WRONLY));
	t_write_all(fd, "x", 1, s);
	SYSCHK(chmod(qpath, s & 1 ? 0600 : 0640));
	SYSCHK(chmod(fpath, s & 1 ? 0600 : 0640));
	t_sleep_ms(150);
	close(fd);
	struct want wb[] = { { 1, IN_MODIFY, "f" }, { 3, IN_MODIFY, "" }, { 4, IN_ATTRIB, "" }, { 1, IN_ATTRIB, "f" } };
	expect(B, "B", wb, 4, s);
	struct stat st;
	SYSCHK(stat(fpath, &st));
	CHECK(st.st_size == s + 1, "step %d: f has %lld bytes, expected %d", s, (long long)st.st_size, s + 1);
}

/* A file made in A's directory, its events left queued until go.1: then read, intact */
static void hold(void)
{
	char p[PATH_MAX];
	t_fmt(p, sizeof(p), "%s/held", adir);
	mkfile(p);
	printf("ready\n");
	t_wait_go(1);
	struct want w[] = { { 1, IN_CREATE, "held" }, { 1, IN_CLOSE_WRITE, "held" } };
	expect(A, "A, held", w, 2, 0);
	SYSCHK(unlink(p));
	printf("RESULT inotify_kind held ok\n");
}

int main(int argc, char **argv)
{
	t_init("inotify_kind");
	raw = argc > 1 && !strcmp(argv[1], "hold");
	setup();
	if (raw) {
		hold();
		return 0;
	}
	for (int s = 0; s < STEPS; s++) {
		step(s);
		x_step(s, 10);
	}
	printf("RESULT inotify_kind ok %016llx\n", (unsigned long long)sum);
	return 0;
}
