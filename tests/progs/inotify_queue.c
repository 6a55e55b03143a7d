/*
 * inotify_queue: events cohort cannot make again (create, close-write,
 * moves with their cookies, delete, open, access, close-nowrite) queued at
 * a checkpoint must be read after it, exactly (src/agent/inotify.c).
 * One blocking inotify descriptor: a directory w watched for create,
 * delete, moves, close-write and attrib, a removed watch (a gap in the
 * wds), a file f watched for open, access and close-nowrite.  Each round
 * makes in w: c<r> created and written, renamed to m<r>, d<r> created and
 * removed, m<r> moved out of w; f opened, read, closed; in round 1, w's
 * mode changed last (an event the same as the marker, which the kernel
 * merges into it).  Then it prints "queued <r>" and waits for
 * go.<r> (a checkpoint comes meanwhile) before it reads, and checks:
 * epoll, poll and select see the descriptor readable, FIONREAD counts the
 * bytes, a read with too small a buffer fails EINVAL, one into NULL EFAULT
 * (and loses the first event, as the kernel does), readv and read give
 * every other event (wd, mask, cookies pairing the moves, name with the
 * kernel's len), then nothing is left (FIONREAD 0, not readable), and a
 * new event made after that is read with a blocking read, alone.
 */
#include <limits.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/uio.h>
#include "common.h"

#define ROUNDS 3
#define WD_DIR 1
#define WD_FILE 3

struct want {
	int wd;
	uint32_t mask;
	char name[32];
	int pair; /* the cookie: 0 none, else events with the same pair share one */
};

static int I, E;
static char dir[PATH_MAX], wdir[PATH_MAX], odir[PATH_MAX], fpath[PATH_MAX];
static uint64_t sum = 1469598103934665603ULL;

static void in_w(char *out, const char *name)
{
	t_fmt(out, PATH_MAX, "%s/%s", wdir, name);
}

static void mkfile(const char *path, int bytes)
{
	int fd = SYSCHK(open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644));
	if (bytes)
		t_write_all(fd, "xxxxxxxx", (size_t)bytes, 0);
	SYSCHK(close(fd));
}

/* The kernel's len for a name: NUL included, rounded up to the event size (16). */
static uint32_t name_len(const char *name)
{
	size_t n = strlen(name);
	return n ? (uint32_t)((n + 1 + sizeof(struct inotify_event) - 1) / sizeof(struct inotify_event) *
			      sizeof(struct inotify_event))
		 : 0;
}

/* Check the events in buf (got bytes) against w[*k...]; cookies[pair] learns each pair's cookie. */
static void check_events(const char *buf, ssize_t got, const struct want *w, int n, int *k, uint32_t *cookies, int r)
{
	for (ssize_t off = 0; off < got; (*k)++) {
		const struct inotify_event *e = (const void *)(buf + off);
		const char *name = e->len ? e->name : "";
		CHECK(*k < n, "round %d: an extra event wd %d mask %#x name '%s'", r, e->wd, e->mask, name);
		const struct want *x = &w[*k];
		CHECK(e->wd == x->wd && e->mask == x->mask && !strcmp(name, x->name) && e->len == name_len(x->name),
		      "round %d: event %d is wd %d mask %#x name '%s' len %u, expected wd %d mask %#x name '%s' len %u", r,
		      *k, e->wd, e->mask, name, e->len, x->wd, x->mask, x->name, name_len(x->name));
		if (!x->pair) {
			CHECK(e->cookie == 0, "round %d: event %d has cookie %u", r, *k, e->cookie);
		} else {
			CHECK(e->cookie != 0, "round %d: move event %d has no cookie", r, *k);
			if (!cookies[x->pair])
				cookies[x->pair] = e->cookie;
			CHECK(e->cookie == cookies[x->pair], "round %d: event %d: cookie %u, its pair's is %u", r, *k,
			      e->cookie, cookies[x->pair]);
		}
		sum = t_fnv(sum, &e->wd, sizeof(e->wd));
		sum = t_fnv(sum, &e->mask, sizeof(e->mask));
		sum = t_fnv(sum, &e->len, sizeof(e->len));
		sum = t_fnv(sum, name, strlen(name));
		off += (ssize_t)(sizeof(*e) + e->len);
	}
}

static int queued(void)
{
	int q = -1;
	SYSCHK(ioctl(I, FIONREAD, &q));
	return q;
}

/* Is I readable now, as epoll, poll and select see it (all three must agree)? */
static int readable(int r)
{
	struct epoll_event ev;
	struct pollfd p = { I, POLLIN, 0 };
	fd_set set;
	struct timeval tv = { 0, 0 };
	FD_ZERO(&set);
	FD_SET(I, &set);
	int e = SYSCHK(epoll_wait(E, &ev, 1, 0));
	int pl = SYSCHK(poll(&p, 1, 0));
	int s = SYSCHK(select(I + 1, &set, NULL, NULL, &tv));
	CHECK(e == pl && pl == s, "round %d: epoll says %d, poll %d, select %d", r, e, pl, s);
	CHECK(!e || (ev.events & EPOLLIN), "round %d: epoll event %#x", r, ev.events);
	return e;
}

static void setup(void)
{
	char p[PATH_MAX];
	t_mkworkdir(dir, sizeof(dir), "inotify_queue");
	t_fmt(wdir, sizeof(wdir), "%s/w", dir);
	t_fmt(odir, sizeof(odir), "%s/out", dir);
	t_fmt(fpath, sizeof(fpath), "%s/f", dir);
	t_fmt(p, sizeof(p), "%s/gone", dir);
	CHECK(mkdir(wdir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", wdir, strerror(errno));
	CHECK(mkdir(odir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", odir, strerror(errno));
	mkfile(fpath, 8);
	mkfile(p, 0);
	I = SYSCHK(inotify_init1(IN_CLOEXEC));
	int wd = SYSCHK(inotify_add_watch(I, wdir, IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB));
	CHECK(wd == WD_DIR, "watch of %s is wd %d", wdir, wd);
	SYSCHK(inotify_rm_watch(I, SYSCHK(inotify_add_watch(I, p, IN_ATTRIB))));
	wd = SYSCHK(inotify_add_watch(I, fpath, IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE));
	CHECK(wd == WD_FILE, "watch of %s is wd %d", fpath, wd);
	/* the removed watch's notice, read as the program reads: through libc */
	char buf[256] __attribute__((aligned(8)));
	ssize_t got = SYSCHK(read(I, buf, sizeof(buf)));
	const struct inotify_event *e = (const void *)buf;
	CHECK(got == sizeof(*e) && e->wd == 2 && e->mask == IN_IGNORED, "the removed watch's notice: %zd bytes", got);
	unlink(p);
	E = SYSCHK(epoll_create1(EPOLL_CLOEXEC));
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = I };
	SYSCHK(epoll_ctl(E, EPOLL_CTL_ADD, I, &ev));
}

/* What round r makes: the events, into w (their count). */
static int make(int r, struct want *w)
{
	char c[16], m[16], d[32], pc[PATH_MAX], pm[PATH_MAX], pd[PATH_MAX], out[PATH_MAX], b[8];
	t_fmt(c, sizeof(c), "c%d", r);
	t_fmt(m, sizeof(m), "moved-%d", r);
	t_fmt(d, sizeof(d), "d%d-a-longer-name", r); /* 17 bytes and its NUL: a len of 32 */
	in_w(pc, c);
	in_w(pm, m);
	in_w(pd, d);
	t_fmt(out, sizeof(out), "%s/%s", odir, m);
	mkfile(pc, 3);
	SYSCHK(rename(pc, pm));
	mkfile(pd, 0);
	SYSCHK(unlink(pd));
	SYSCHK(rename(pm, out));
	SYSCHK(unlink(out));
	int fd = SYSCHK(open(fpath, O_RDONLY));
	SYSCHK(read(fd, b, 4));
	SYSCHK(close(fd));
	/* round 1 ends with w's own attrib event: the marker's very bytes, which the kernel merges into it */
	if (r == 1)
		SYSCHK(chmod(wdir, 0750));
	int n = 0;
	w[n++] = (struct want){ WD_DIR, IN_CREATE, "", 0 };
	w[n++] = (struct want){ WD_DIR, IN_CLOSE_WRITE, "", 0 };
	w[n++] = (struct want){ WD_DIR, IN_MOVED_FROM, "", 1 };
	w[n++] = (struct want){ WD_DIR, IN_MOVED_TO, "", 1 };
	w[n++] = (struct want){ WD_DIR, IN_CREATE, "", 0 };
	w[n++] = (struct want){ WD_DIR, IN_CLOSE_WRITE, "", 0 };
	w[n++] = (struct want){ WD_DIR, IN_DELETE, "", 0 };
	w[n++] = (struct want){ WD_DIR, IN_MOVED_FROM, "", 2 };
	w[n++] = (struct want){ WD_FILE, IN_OPEN, "", 0 };
	w[n++] = (struct want){ WD_FILE, IN_ACCESS, "", 0 };
	w[n++] = (struct want){ WD_FILE, IN_CLOSE_NOWRITE, "", 0 };
	if (r == 1)
		w[n++] = (struct want){ WD_DIR, IN_ATTRIB | IN_ISDIR, "", 0 };
	const char *names[] = { c, c, c, m, d, d, d, m };
	for (int i = 0; i < 8; i++)
		snprintf(w[i].name, sizeof(w[i].name), "%s", names[i]);
	return n;
}

static int bytes_of(const struct want *w, int n)
{
	int b = 0;
	for (int i = 0; i < n; i++)
		b += (int)(sizeof(struct inotify_event) + name_len(w[i].name));
	return b;
}

static void round_trip(int r)
{
	struct want w[16];
	uint32_t cookies[3] = { 0, 0, 0 };
	char buf[4096] __attribute__((aligned(8)));
	int n = make(r, w), k = 0, total = bytes_of(w, n);
	printf("queued %d\n", r);
	fflush(stdout);
	t_wait_go(r);

	CHECK(readable(r) == 1, "round %d: the descriptor is not readable", r);
	CHECK(queued() == total, "round %d: FIONREAD says %d bytes, expected %d", r, queued(), total);
	/* too small for the first event (32 bytes with its name) */
	errno = 0;
	CHECK(read(I, buf, sizeof(struct inotify_event) + 4) < 0 && errno == EINVAL,
	      "round %d: a read with too small a buffer did not fail EINVAL (%s)", r, strerror(errno));
	/* a buffer the kernel cannot write to: EFAULT, and the first event is gone (the kernel's way) */
	char *volatile nowhere = NULL; /* not a constant: the compiler would see a NULL it must not get */
	errno = 0;
	CHECK(read(I, nowhere, sizeof(buf)) < 0 && errno == EFAULT, "round %d: a read into NULL did not fail EFAULT (%s)",
	      r, strerror(errno));
	k = 1;
	total -= bytes_of(w, 1);
	CHECK(queued() == total, "round %d: FIONREAD says %d bytes after EFAULT, expected %d", r, queued(), total);
	/* readv: the first segment takes two events exactly, the second three more (not a fourth) */
	int two = bytes_of(w + 1, 2);
	struct iovec iov[2] = { { buf, (size_t)two }, { buf + two, (size_t)bytes_of(w + 3, 3) + 8 } };
	ssize_t got = SYSCHK(readv(I, iov, 2));
	CHECK(got == bytes_of(w + 1, 5), "round %d: readv gave %zd bytes, expected %d", r, got, bytes_of(w + 1, 5));
	check_events(buf, got, w, n, &k, cookies, r);
	CHECK(queued() == total - (int)got, "round %d: FIONREAD says %d bytes after readv, expected %d", r, queued(),
	      total - (int)got);
	CHECK(readable(r) == 1, "round %d: the descriptor is not readable with events left", r);
	got = SYSCHK(read(I, buf, sizeof(buf)));
	check_events(buf, got, w, n, &k, cookies, r);
	CHECK(k == n, "round %d: %d events, expected %d", r, k, n);
	CHECK(cookies[1] != cookies[2], "round %d: two moves share cookie %u", r, cookies[1]);
	CHECK(queued() == 0, "round %d: FIONREAD says %d bytes when all was read", r, queued());
	CHECK(readable(r) == 0, "round %d: the descriptor is readable when all was read", r);

	/* it goes on: a new event, read with a blocking read */
	char p[PATH_MAX], nm[16];
	t_fmt(nm, sizeof(nm), "n%d", r);
	in_w(p, nm);
	int fd = SYSCHK(open(p, O_CREAT | O_RDONLY, 0644));
	SYSCHK(close(fd));
	SYSCHK(unlink(p));
	struct want x[2] = { { WD_DIR, IN_CREATE, "", 0 }, { WD_DIR, IN_DELETE, "", 0 } };
	snprintf(x[0].name, sizeof(x[0].name), "%s", nm);
	snprintf(x[1].name, sizeof(x[1].name), "%s", nm);
	k = 0;
	got = SYSCHK(read(I, buf, sizeof(buf)));
	check_events(buf, got, x, 2, &k, cookies, r);
	if (k < 2) {
		got = SYSCHK(read(I, buf, sizeof(buf)));
		check_events(buf, got, x, 2, &k, cookies, r);
	}
	CHECK(queued() == 0 && readable(r) == 0, "round %d: events left after the new ones", r);
	printf("round %d ok\n", r);
	fflush(stdout);
}

int main(void)
{
	t_init("inotify_queue");
	setup();
	for (int r = 1; r <= ROUNDS; r++)
		round_trip(r);
	printf("RESULT inotify_queue ok %016llx\n", (unsigned long long)sum);
	return 0;
}
