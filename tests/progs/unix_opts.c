/*
 * unix_opts - the options of Unix sockets of every shape, at every step
 * (so after each restart) read back from the kernel and compared with
 * what they read when the program set them (src/kinds/unix_opts.c):
 * SO_RCVTIMEO, SO_SNDTIMEO, SO_SNDBUF, SO_RCVBUF (and SO_BUF_LOCK, which
 * says whether the program set them: some sockets keep the defaults),
 * SO_RCVLOWAT, SO_PRIORITY, SO_MARK (when it may be set: CAP_NET_ADMIN),
 * SO_LINGER (on; and off with a time kept), SO_TIMESTAMPING, the four
 * ways of SO_TIMESTAMP, and those on or off: SO_PASSSEC, SO_KEEPALIVE,
 * SO_OOBINLINE, SO_PASSCRED, SO_PASSPIDFD, SO_PASSRIGHTS, SO_RCVMARK,
 * SO_RCVPRIORITY (those the kernel knows).  Each socket has values of its
 * own, none a new socket's.  The sockets: stream, datagram and seqpacket
 * pairs; a stream listener bound to a path and a seqpacket one on an
 * abstract name, each with an accepted connection and its client; a
 * client left in the stream listener's backlog (accepted at the end: a
 * new socket's options); a datagram socket bound to a path and a client
 * connected to it; a stream pair whose sender raised SO_SNDBUF to 4 MiB
 * (SO_SNDBUFFORCE when privileged) with 1 MiB queued, and a datagram
 * pair likewise with four datagrams of 160 KiB: more than a new socket's
 * buffer holds, so they come back only with a bigger one; a stream whose
 * sender lowered its buffer to 16 KiB once it had queued 256 KiB (it
 * holds more than its buffer at every checkpoint), and one whose sender
 * closed once it had queued 512 KiB (where the buffer allows less, as
 * much as it allows).
 *
 * Every step, a message both ways on each connection, and a blocking
 * recv (an accept on the seqpacket listener) on one socket of each type
 * that nothing is sent to: it must fail with EAGAIN once the socket's
 * SO_RCVTIMEO has passed (a watchdog of 10 s says it was lost).  At the
 * end what the big pairs queued is read and checked.  Prints "step N ok"
 * and a RESULT, which hashes the messages only: the values and how much
 * is queued depend on the privileges of who runs it (a straight run by
 * root beside the group run by nobody: unix_opts_unprivileged).
 */
#include "common.h"
#include <linux/net_tstamp.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#ifndef SO_RCVMARK
#define SO_RCVMARK 75
#endif
#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_RCVPRIORITY
#define SO_RCVPRIORITY 82
#endif
#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83
#endif

#define STEPS 12
#define BIG (1 << 20)		/* queued on the big stream (at most: as much as its buffer takes) */
#define LOWERED (256 << 10)	/* at most, on the stream whose sender lowered its buffer after */
#define ORPHAN (512 << 10)	/* at most, on the stream whose sender closed */
#define DGRAMS 4		/* datagrams queued on the big datagram pair (at most) */
#define DGRAM_LEN (160 << 10)

static uint64_t h = T_FNV_INIT;

/* The options on or off (an int each); -1 where the kernel does not know one. */
static const struct {
	int opt;
	const char *name;
} onoff[] = {
	{ SO_PASSSEC, "SO_PASSSEC" },		{ SO_KEEPALIVE, "SO_KEEPALIVE" },
	{ SO_OOBINLINE, "SO_OOBINLINE" },	{ SO_PASSCRED, "SO_PASSCRED" },
	{ SO_PASSPIDFD, "SO_PASSPIDFD" },	{ SO_PASSRIGHTS, "SO_PASSRIGHTS" },
	{ SO_RCVMARK, "SO_RCVMARK" },		{ SO_RCVPRIORITY, "SO_RCVPRIORITY" },
	{ SO_TIMESTAMP_OLD, "SO_TIMESTAMP" },	{ SO_TIMESTAMPNS_OLD, "SO_TIMESTAMPNS" },
	{ SO_TIMESTAMP_NEW, "SO_TIMESTAMP_NEW" }, { SO_TIMESTAMPNS_NEW, "SO_TIMESTAMPNS_NEW" },
};
#define NONOFF (int)(sizeof(onoff) / sizeof(onoff[0]))

struct opts {
	struct timeval rt, st;
	int sndbuf, rcvbuf, buflock, lowat, prio, mark;
	struct linger lg;
	struct so_timestamping ts, tsnew;
	int v[NONOFF];
};

static int get_int(int s, int opt)
{
	int v = 0;
	socklen_t l = sizeof(v);
	return getsockopt(s, SOL_SOCKET, opt, &v, &l) < 0 ? -1 : v;
}

static void get(int s, int opt, void *v, socklen_t n, const char *name)
{
	socklen_t l = n;
	memset(v, 0, n);
	if (getsockopt(s, SOL_SOCKET, opt, v, &l) < 0)
		FAIL("getsockopt %s: %s", name, strerror(errno));
}

static void read_opts(int s, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	get(s, SO_RCVTIMEO, &o->rt, sizeof(o->rt), "SO_RCVTIMEO");
	get(s, SO_SNDTIMEO, &o->st, sizeof(o->st), "SO_SNDTIMEO");
	get(s, SO_SNDBUF, &o->sndbuf, sizeof(int), "SO_SNDBUF");
	get(s, SO_RCVBUF, &o->rcvbuf, sizeof(int), "SO_RCVBUF");
	o->buflock = get_int(s, SO_BUF_LOCK);
	get(s, SO_RCVLOWAT, &o->lowat, sizeof(int), "SO_RCVLOWAT");
	get(s, SO_PRIORITY, &o->prio, sizeof(int), "SO_PRIORITY");
	get(s, SO_MARK, &o->mark, sizeof(int), "SO_MARK");
	get(s, SO_LINGER, &o->lg, sizeof(o->lg), "SO_LINGER");
	get(s, SO_TIMESTAMPING_OLD, &o->ts, sizeof(o->ts), "SO_TIMESTAMPING");
	get(s, SO_TIMESTAMPING_NEW, &o->tsnew, sizeof(o->tsnew), "SO_TIMESTAMPING_NEW");
	for (int i = 0; i < NONOFF; i++)
		o->v[i] = get_int(s, onoff[i].opt);
}

#define SAME(field, fmt)                                                                                            \
	CHECK(now.field == want->field, "%s: %s is " fmt ", not " fmt " as set", what, #field, now.field, want->field)

/* s's options read now must be want, field by field. */
static void check_opts(int s, const struct opts *want, const char *what)
{
	struct opts now;
	read_opts(s, &now);
	SAME(rt.tv_sec, "%ld");
	SAME(rt.tv_usec, "%ld");
	SAME(st.tv_sec, "%ld");
	SAME(st.tv_usec, "%ld");
	SAME(sndbuf, "%d");
	SAME(rcvbuf, "%d");
	SAME(buflock, "%d");
	SAME(lowat, "%d");
	SAME(prio, "%d");
	SAME(mark, "%d");
	SAME(lg.l_onoff, "%d");
	SAME(lg.l_linger, "%d");
	SAME(ts.flags, "%d");
	SAME(ts.bind_phc, "%d");
	SAME(tsnew.flags, "%d");
	for (int i = 0; i < NONOFF; i++)
		CHECK(now.v[i] == want->v[i], "%s: %s is %d, not %d as set", what, onoff[i].name, now.v[i], want->v[i]);
}

/* An option the kernel may not know (or, SO_MARK, let us set): set if it can be. */
static void try_int(int s, int opt, int v)
{
	setsockopt(s, SOL_SOCKET, opt, &v, sizeof(v));
}

static void set_int(int s, int opt, int v, const char *name)
{
	if (setsockopt(s, SOL_SOCKET, opt, &v, sizeof(v)) < 0)
		FAIL("setsockopt %s %d: %s", name, v, strerror(errno));
}

/*
 * Socket i's options, each its own: time-outs of tens of ms (multiples of
 * 20 ms: exact at any HZ of 100, 250, 1000), buffers (unless i % 6 == 5:
 * a new socket's, unlocked; i % 6 == 4: set, then only SO_SNDBUF's lock
 * kept), and the rest by i.
 */
static void set_opts(int s, int i)
{
	struct timeval rt = { 0, 40000 + 20000 * (i % 8) }, st = { 1 + i % 3, 20000 * (i % 5 + 1) };
	SYSCHK(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt)));
	SYSCHK(setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof(st)));
	if (i % 6 != 5) {
		set_int(s, SO_SNDBUF, 30000 + 7000 * i, "SO_SNDBUF");
		set_int(s, SO_RCVBUF, 34000 + 6000 * i, "SO_RCVBUF");
	}
	if (i % 6 == 4)
		try_int(s, SO_BUF_LOCK, 1);
	set_int(s, SO_RCVLOWAT, 2 + i % 5, "SO_RCVLOWAT");
	set_int(s, SO_PRIORITY, 1 + i % 6, "SO_PRIORITY");
	try_int(s, SO_MARK, 100 + i); /* CAP_NET_ADMIN: else it stays 0, as the check expects */
	struct linger on = { 1, 3 + i }, off = { 0, 5 + i };
	if (i % 3 != 2)
		SYSCHK(setsockopt(s, SOL_SOCKET, SO_LINGER, &on, sizeof(on)));
	if (i % 3 == 1) /* off, its time kept */
		SYSCHK(setsockopt(s, SOL_SOCKET, SO_LINGER, &off, sizeof(off)));
	if (i % 5 == 0)
		set_int(s, i % 2 ? SO_TIMESTAMPING_NEW : SO_TIMESTAMPING_OLD,
			SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE, "SO_TIMESTAMPING");
	/* after SO_TIMESTAMPING, which each of these would make old or new (so none where it is set) */
	static const int stamps[] = { 0, SO_TIMESTAMP_OLD, SO_TIMESTAMPNS_OLD, SO_TIMESTAMP_NEW, SO_TIMESTAMPNS_NEW };
	if (stamps[i % 5])
		set_int(s, stamps[i % 5], 1, "SO_TIMESTAMP");
	set_int(s, SO_PASSSEC, i % 2, "SO_PASSSEC");
	set_int(s, SO_KEEPALIVE, i % 2 == 0, "SO_KEEPALIVE");
	set_int(s, SO_OOBINLINE, i % 3 == 0, "SO_OOBINLINE");
	set_int(s, SO_PASSCRED, i % 4 == 3, "SO_PASSCRED");
	try_int(s, SO_PASSPIDFD, i % 4 == 1);
	try_int(s, SO_PASSRIGHTS, i % 5 != 2);
	try_int(s, SO_RCVMARK, i % 4 == 3);
	try_int(s, SO_RCVPRIORITY, i % 4 == 2);
}

/* ---- the sockets ---- */

enum { SP0, SP1, DP0, DP1, QP0, QP1, LS, LC, LA, QLS, QLC, QLA, DB, DC, BL, BP0, BP1, GP0, GP1, LP0, LP1, OP0, NSOCK };
static const char *const names[NSOCK] = {
	"stream pair 0", "stream pair 1", "datagram pair 0", "datagram pair 1", "seqpacket pair 0", "seqpacket pair 1",
	"stream listener", "its client", "its accepted end", "seqpacket listener", "its client", "its accepted end",
	"bound datagram socket", "its connected client", "client in the backlog", "big stream's receiver",
	"big stream's sender", "big datagram pair's receiver", "big datagram pair's sender",
	"receiver of a sender that lowered its buffer", "sender that lowered its buffer", "receiver of a closed sender",
};
static int fd[NSOCK];
static struct opts want[NSOCK];

static socklen_t addr(struct sockaddr_un *a, const char *name, int abstract)
{
	size_t n = strlen(name);
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	CHECK(n + 2 < sizeof(a->sun_path), "name too long: %s", name);
	memcpy(a->sun_path + (abstract ? 1 : 0), name, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static void pair(int type, int a, int b)
{
	int sv[2];
	SYSCHK(socketpair(AF_UNIX, type, 0, sv));
	fd[a] = sv[0];
	fd[b] = sv[1];
}

/* Listener l bound to name, its client c connected and accepted as a. */
static void listening(int type, const char *name, int abstract, int l, int c, int a)
{
	struct sockaddr_un sa;
	socklen_t len = addr(&sa, name, abstract);
	fd[l] = SYSCHK(socket(AF_UNIX, type, 0));
	SYSCHK(bind(fd[l], (struct sockaddr *)&sa, len));
	SYSCHK(listen(fd[l], 8));
	fd[c] = SYSCHK(socket(AF_UNIX, type, 0));
	SYSCHK(connect(fd[c], (struct sockaddr *)&sa, len));
	fd[a] = SYSCHK(accept(fd[l], NULL, NULL));
}

static char big[BIG];
static size_t big_queued, lowered_queued, orphan_queued;
static int ndgrams;
static int new_sndbuf;	/* a new socket's SO_SNDBUF: what each big queue holds more than */

/* s's send buffer raised to 4 MiB: beyond net.core.wmem_max when privileged (SO_SNDBUFFORCE), else up to it. */
static void raise_sndbuf(int s)
{
	int v = 4 << 20;
	if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
		set_int(s, SO_SNDBUF, v, "SO_SNDBUF");
}

/* Up to len bytes of big queued on stream s, as many as its buffer takes: more than a new socket's would; how many. */
static size_t fill(int s, size_t len, const char *what)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(s, big + off, len - off, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			break;
		CHECK(n > 0, "%s: queueing after %zu bytes: %s", what, off, strerror(errno));
		off += (size_t)n;
	}
	CHECK(off > (size_t)new_sndbuf, "%s: only %zu bytes queued", what, off);
	return off;
}

/*
 * What the big pairs queue, once their senders' buffers are raised: up
 * to 1 MiB on a stream, 4 datagrams of 160 KiB; 256 KiB on a stream whose
 * sender then lowers its buffer to 16 KiB (it holds more than that at
 * every checkpoint); 512 KiB on a stream whose sender then closes.
 */
static void queue_big(void)
{
	int s = SYSCHK(socket(AF_UNIX, SOCK_STREAM, 0));
	new_sndbuf = get_int(s, SO_SNDBUF);
	close(s);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (char)(i * 7 + i / 4096);
	raise_sndbuf(fd[BP1]);
	big_queued = fill(fd[BP1], BIG, names[BP1]);
	raise_sndbuf(fd[GP1]);
	while (ndgrams < DGRAMS && send(fd[GP1], big + ndgrams, DGRAM_LEN, MSG_DONTWAIT) == DGRAM_LEN)
		ndgrams++;
	CHECK(errno == EAGAIN || ndgrams == DGRAMS, "queueing datagram %d: %s", ndgrams, strerror(errno));
	CHECK(ndgrams * DGRAM_LEN > new_sndbuf, "only %d big datagrams queued", ndgrams);
	raise_sndbuf(fd[LP1]);
	lowered_queued = fill(fd[LP1], LOWERED, names[LP1]);
	set_int(fd[LP1], SO_SNDBUF, 8192, "SO_SNDBUF");
	int sv[2];
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	fd[OP0] = sv[0];
	set_opts(fd[OP0], OP0);
	raise_sndbuf(sv[1]);
	orphan_queued = fill(sv[1], ORPHAN, "the closed sender");
	close(sv[1]);
}

static void setup(void)
{
	char dir[512], p[600];
	t_mkworkdir(dir, sizeof(dir), "unix_opts");
	pair(SOCK_STREAM, SP0, SP1);
	pair(SOCK_DGRAM, DP0, DP1);
	pair(SOCK_SEQPACKET, QP0, QP1);
	t_fmt(p, sizeof(p), "%s/l.sock", dir);
	unlink(p);
	listening(SOCK_STREAM, p, 0, LS, LC, LA);
	struct sockaddr_un sa;
	socklen_t len = addr(&sa, p, 0);
	fd[BL] = SYSCHK(socket(AF_UNIX, SOCK_STREAM, 0));
	SYSCHK(connect(fd[BL], (struct sockaddr *)&sa, len));
	t_fmt(p, sizeof(p), "%s/q", dir); /* abstract: the directory makes it the run's own */
	listening(SOCK_SEQPACKET, p, 1, QLS, QLC, QLA);
	t_fmt(p, sizeof(p), "%s/d.sock", dir);
	unlink(p);
	len = addr(&sa, p, 0);
	fd[DB] = SYSCHK(socket(AF_UNIX, SOCK_DGRAM, 0));
	SYSCHK(bind(fd[DB], (struct sockaddr *)&sa, len));
	fd[DC] = SYSCHK(socket(AF_UNIX, SOCK_DGRAM, 0));
	SYSCHK(connect(fd[DC], (struct sockaddr *)&sa, len));
	pair(SOCK_STREAM, BP0, BP1);
	pair(SOCK_DGRAM, GP0, GP1);
	pair(SOCK_STREAM, LP0, LP1);
	for (int i = 0; i < OP0; i++) /* OP0: made by queue_big */
		set_opts(fd[i], i);
	queue_big();
	for (int i = 0; i < NSOCK; i++)
		read_opts(fd[i], &want[i]);
}

/* What a new socket of each has: none of socket i's options may be (but those a socket of i % 6 == 5 keeps). */
static void differ_from_new(void)
{
	struct opts fresh;
	int s = SYSCHK(socket(AF_UNIX, SOCK_STREAM, 0));
	read_opts(s, &fresh);
	close(s);
	for (int i = 0; i < NSOCK; i++) {
		const struct opts *w = &want[i];
		CHECK(w->rt.tv_usec != fresh.rt.tv_usec && w->st.tv_sec != fresh.st.tv_sec && w->lowat != fresh.lowat &&
			      w->prio != fresh.prio,
		      "%s: an option as a new socket has it", names[i]);
		CHECK(i % 6 == 5 || (w->sndbuf != fresh.sndbuf && w->rcvbuf != fresh.rcvbuf), "%s: buffers as new ones",
		      names[i]);
	}
}

/* ---- each step ---- */

static volatile sig_atomic_t alarmed;
static void on_alarm(int sig)
{
	(void)sig;
	alarmed = 1;
}

/*
 * A blocking recv (accept on a listener) on socket i, which nothing is
 * sent to: EAGAIN once its SO_RCVTIMEO has passed.  The watchdog (10 s)
 * says it was lost.  An EINTR not the watchdog's makes the call again:
 * a checkpoint's signal ends a call with a socket time-out so (the kernel
 * does not restart those, and src/agent/wrap.c does not make them again
 * yet), which is not what this program checks.
 */
static void times_out(int i, int listener)
{
	char c;
	ssize_t r;
	alarmed = 0;
	alarm(10);
	do
		r = listener ? accept(fd[i], NULL, NULL) : recv(fd[i], &c, 1, 0);
	while (r < 0 && errno == EINTR && !alarmed);
	int e = errno;
	alarm(0);
	CHECK(!alarmed, "%s: a blocking %s still waited after 10 s: its SO_RCVTIMEO of %ld us was lost", names[i],
	      listener ? "accept" : "recv", (long)want[i].rt.tv_usec);
	CHECK(r < 0 && e == EAGAIN, "%s: a blocking %s returned %zd (%s), not EAGAIN", names[i],
	      listener ? "accept" : "recv", r, r < 0 ? strerror(e) : "");
}

/* A message from socket a to b (each way): all of it there at once. */
static void exchange(int a, int b, int k)
{
	char t[32], buf[32];
	int n = snprintf(t, sizeof(t), "%s %d", names[a], k);
	CHECK(send(fd[a], t, (size_t)n, 0) == n, "%s: send: %s", names[a], strerror(errno));
	ssize_t r = recv(fd[b], buf, sizeof(buf), MSG_DONTWAIT);
	CHECK(r == n && !memcmp(buf, t, (size_t)n), "%s: got %zd bytes, not \"%s\" (%s)", names[b], r, t,
	      r < 0 ? strerror(errno) : "");
	h = t_fnv(h, buf, (size_t)r);
}

static void step(int k)
{
	static const int streams[] = { SP0, SP1, LC, LA }, dgrams[] = { DP0, DP1, DB, GP1 }, seqs[] = { QP0, QP1, QLC, QLA };
	for (int i = 0; i < NSOCK; i++)
		check_opts(fd[i], &want[i], names[i]);
	static const struct {
		int fd;
		const size_t *len;
	} held[] = { { BP0, &big_queued }, { LP0, &lowered_queued }, { OP0, &orphan_queued } };
	for (int i = 0; i < 3; i++) {
		int q = -1;
		CHECK(ioctl(fd[held[i].fd], FIONREAD, &q) == 0 && q == (int)*held[i].len, "%s: %d bytes queued, not %zu",
		      names[held[i].fd], q, *held[i].len);
	}
	times_out(streams[k % 4], 0);
	times_out(dgrams[k % 4], 0);
	if (k % 5 == 4)
		times_out(QLS, 1);
	else
		times_out(seqs[k % 4], 0);
	exchange(SP0, SP1, k);
	exchange(SP1, SP0, k);
	exchange(DP0, DP1, k);
	exchange(DP1, DP0, k);
	exchange(QP0, QP1, k);
	exchange(QP1, QP0, k);
	exchange(LC, LA, k);
	exchange(LA, LC, k);
	exchange(QLC, QLA, k);
	exchange(QLA, QLC, k);
	exchange(DC, DB, k);
}

/* The len bytes queued on stream i: big's first ones, in order; then nothing (eof: the end of a closed sender). */
static void drain(int i, size_t len, int eof)
{
	static char got[BIG];
	size_t off = 0;
	while (off < len) {
		ssize_t n = recv(fd[i], got + off, len - off, MSG_DONTWAIT);
		CHECK(n > 0, "%s: %zd after %zu bytes (%s)", names[i], n, off, n < 0 ? strerror(errno) : "");
		off += (size_t)n;
	}
	CHECK(!memcmp(got, big, len), "%s: the bytes queued changed", names[i]);
	ssize_t n = recv(fd[i], got, 1, MSG_DONTWAIT);
	CHECK(eof ? n == 0 : n < 0 && errno == EAGAIN, "%s: more than %zu bytes queued (%zd)", names[i], len, n);
}

/* The end: what the big pairs queued, in order; the backlog's client accepted with a new socket's options. */
static void finish(void)
{
	static char got[DGRAM_LEN + 1];
	drain(BP0, big_queued, 0);
	drain(LP0, lowered_queued, 0);
	drain(OP0, orphan_queued, 1);
	for (int d = 0; d < ndgrams; d++) {
		ssize_t n = recv(fd[GP0], got, sizeof(got), MSG_DONTWAIT);
		CHECK(n == DGRAM_LEN && !memcmp(got, big + d, DGRAM_LEN), "big datagram %d: %zd bytes (%s)", d, n,
		      n < 0 ? strerror(errno) : "");
	}
	CHECK(recv(fd[GP0], got, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "more than %d big datagrams", ndgrams);
	struct opts fresh;
	int s = SYSCHK(socket(AF_UNIX, SOCK_STREAM, 0));
	read_opts(s, &fresh);
	close(s);
	s = SYSCHK(accept(fd[LS], NULL, NULL));
	check_opts(s, &fresh, "the connection accepted from the backlog");
	close(s);
}

int main(void)
{
	t_init("unix_opts");
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART: the watchdog ends a blocked call */
	sigaction(SIGALRM, &sa, NULL);
	setup();
	differ_from_new();
	for (int k = 0; k < STEPS; k++) {
		step(k);
		printf("step %d ok\n", k);
		t_sleep_ms(150);
	}
	finish();
	printf("RESULT %llx\n", (unsigned long long)h);
	return 0;
}
