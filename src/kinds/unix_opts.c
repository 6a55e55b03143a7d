/*
 * unix_opts.c - the options of a Unix socket (struct co_usopts): read at
 * a checkpoint through the coordinator's own descriptor of it
 * (pidfd_getfd), given back at a restart in init once the socket has its
 * shape, before anything is queued on it again.  Each option given back
 * is read again and must be what the checkpoint read: what cannot be
 * made so (a buffer above net.core.wmem_max without CAP_NET_ADMIN, a
 * priority or mark that needs it) fails the restart in one line, never
 * a socket that silently behaves otherwise.  An option already as
 * recorded on the new socket is left alone (SO_BUF_LOCK says whether
 * the program set its buffers).  While the queues are put back, their
 * senders have the biggest send buffer we may give them, and their own
 * once all is queued (co_unix_refill_begin, _end).
 *
 * A socket filter (SO_ATTACH_FILTER, SO_ATTACH_BPF) is not given back:
 * such a socket is refused at the checkpoint (co_unix_filter), before
 * its queue is read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/net_tstamp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include "kinds/unix_int.h"

/* newer than some headers */
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

/* Records written before the options end where they begin: the reader takes those as they are (records.c). */
_Static_assert(offsetof(struct co_usock, opts) == 296, "co_usock's options follow the fields of older records");

/* The options that are on or off, each read and set as an int: its bit, its name, and its value on a new socket. */
static const struct onoff {
	uint32_t bit;
	int opt;
	const char *name;
	int dflt;
} onoffs[] = {
	{ CO_USO_PASSSEC, SO_PASSSEC, "SO_PASSSEC", 0 },
	{ CO_USO_KEEPALIVE, SO_KEEPALIVE, "SO_KEEPALIVE", 0 },
	{ CO_USO_OOBINLINE, SO_OOBINLINE, "SO_OOBINLINE", 0 },
	{ CO_USO_PASSPIDFD, SO_PASSPIDFD, "SO_PASSPIDFD", 0 },
	{ CO_USO_PASSRIGHTS, SO_PASSRIGHTS, "SO_PASSRIGHTS", 1 },
	{ CO_USO_RCVMARK, SO_RCVMARK, "SO_RCVMARK", 0 },
	{ CO_USO_RCVPRIORITY, SO_RCVPRIORITY, "SO_RCVPRIORITY", 0 },
	/*
	 * the four ways of SO_TIMESTAMP, as they read: old or new (the last
	 * set says), micro or nanoseconds (a _NEW socket in nanoseconds reads
	 * 1 for both new ways).  Set in this order (set_stamps) they end as
	 * they were: each way in microseconds turns nanoseconds off, each in
	 * nanoseconds on.
	 */
	{ CO_USO_TSTAMP, SO_TIMESTAMP_OLD, "SO_TIMESTAMP", 0 },
	{ CO_USO_TSTAMPNS, SO_TIMESTAMPNS_OLD, "SO_TIMESTAMPNS", 0 },
	{ CO_USO_TSTAMP_NEW, SO_TIMESTAMP_NEW, "SO_TIMESTAMP_NEW", 0 },
	{ CO_USO_TSTAMPNS_NEW, SO_TIMESTAMPNS_NEW, "SO_TIMESTAMPNS_NEW", 0 },
};
#define N_ONOFF (sizeof(onoffs) / sizeof(onoffs[0]))
#define STAMPS (CO_USO_TSTAMP | CO_USO_TSTAMPNS | CO_USO_TSTAMP_NEW | CO_USO_TSTAMPNS_NEW)

static int get_int(int s, int opt, int *v)
{
	socklen_t l = sizeof(*v);
	*v = 0;
	return getsockopt(s, SOL_SOCKET, opt, v, &l);
}

/* ---- checkpoint ---- */

/*
 * A socket filter attached to s (the kernel keeps a classic one's
 * instructions, which SO_GET_FILTER counts; an eBPF program it does not
 * give out: EACCES): why it is refused, into why; 0 when there is none.
 */
int co_unix_filter(int s, char *why, size_t n)
{
	socklen_t len = 0;
	if (getsockopt(s, SOL_SOCKET, SO_GET_FILTER, NULL, &len) < 0 && errno == EACCES) {
		snprintf(why, n, "with an eBPF socket filter attached (SO_ATTACH_BPF), which cohort cannot restore");
		return -1;
	}
	if (len > 0) {
		snprintf(why, n, "with a socket filter of %u instructions attached (SO_ATTACH_FILTER), which cohort "
			 "cannot restore", (unsigned)len);
		return -1;
	}
	return 0;
}

/* The options every kernel cohort runs on reads; 0, or -1 with the one that could not be read in why. */
static int read_values(int s, struct co_usopts *u, char *why, size_t n)
{
	struct timeval rt, st;
	struct linger lg;
	struct so_timestamping ts = { 0, 0 }, tsn = { 0, 0 };
	socklen_t lr = sizeof(rt), ls = sizeof(st), ll = sizeof(lg), lt = sizeof(ts), ltn = sizeof(tsn);
	int mark = 0;
	const char *bad = getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &rt, &lr) < 0		? "SO_RCVTIMEO"
			  : getsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &st, &ls) < 0	? "SO_SNDTIMEO"
			  : get_int(s, SO_SNDBUF, &u->sndbuf) < 0			? "SO_SNDBUF"
			  : get_int(s, SO_RCVBUF, &u->rcvbuf) < 0			? "SO_RCVBUF"
			  : get_int(s, SO_RCVLOWAT, &u->rcvlowat) < 0			? "SO_RCVLOWAT"
			  : get_int(s, SO_PRIORITY, &u->priority) < 0			? "SO_PRIORITY"
			  : get_int(s, SO_MARK, &mark) < 0				? "SO_MARK"
			  : getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &ll) < 0		? "SO_LINGER"
			  : getsockopt(s, SOL_SOCKET, SO_TIMESTAMPING_OLD, &ts, &lt) < 0 ? "SO_TIMESTAMPING"
											: NULL;
	if (bad) {
		snprintf(why, n, "whose option %s cannot be read: %s", bad, strerror(errno));
		return -1;
	}
	u->rcvtimeo[0] = rt.tv_sec;
	u->rcvtimeo[1] = rt.tv_usec;
	u->sndtimeo[0] = st.tv_sec;
	u->sndtimeo[1] = st.tv_usec;
	u->mark = (uint32_t)mark;
	u->linger[0] = lg.l_onoff;
	u->linger[1] = lg.l_linger;
	u->tsflags = (uint32_t)ts.flags;
	u->bind_phc = ts.bind_phc;
	/* SO_TIMESTAMPING_NEW shows the flags only when they were set so (the cmsgs the program gets differ) */
	if (ts.flags && getsockopt(s, SOL_SOCKET, SO_TIMESTAMPING_NEW, &tsn, &ltn) == 0 && tsn.flags == ts.flags) {
		u->bools |= CO_USO_TSING_NEW;
		u->known |= CO_USO_TSING_NEW;
	}
	return 0;
}

int co_unix_opts_read(int s, struct co_usock *o, char *why, size_t n)
{
	struct co_usopts *u = &o->opts;
	memset(u, 0, sizeof(*u));
	if (read_values(s, u, why, n) < 0)
		return -1;
	/* newer than some kernels: one that cannot be read is left as a restart makes it */
	if (get_int(s, SO_BUF_LOCK, &u->buflock) < 0)
		u->buflock = -1;
	for (size_t i = 0; i < N_ONOFF; i++) {
		int v;
		if (get_int(s, onoffs[i].opt, &v) < 0)
			continue;
		u->known |= onoffs[i].bit;
		if (v)
			u->bools |= onoffs[i].bit;
	}
	o->flags |= CO_USF_OPTS;
	return 0;
}

/* ---- restart ---- */

/* One line: which socket, which option, what it is instead (or why it cannot be set); -1. */
#define FAILED(x, id, fmt, ...) \
	co_kerr(x, "the Unix socket %llu cannot have its options back: " fmt, (unsigned long long)(id), ##__VA_ARGS__)

/*
 * An int option opt to want: left alone when it is so already, else set
 * and read again.  0; 1 when it reads otherwise after the set (*got: what
 * it reads); -1 when a call fails (errno).
 */
static int set_int(int s, int opt, int want, int *got)
{
	if (get_int(s, opt, got) == 0 && *got == want)
		return 0;
	if (setsockopt(s, SOL_SOCKET, opt, &want, sizeof(want)) < 0 || get_int(s, opt, got) < 0)
		return -1;
	return *got != want;
}

static int int_opt(struct co_krestore *x, uint64_t id, int s, int opt, const char *name, int want)
{
	int got = 0, r = set_int(s, opt, want, &got), e = errno;
	if (r == 0)
		return 0;
	if (r > 0)
		return FAILED(x, id, "%s is %d, not %d", name, got, want);
	return FAILED(x, id, "%s %d: %s%s", name, want, strerror(e), e == EPERM ? " (the value needs CAP_NET_ADMIN)" : "");
}

/*
 * A buffer size (SO_SNDBUF, SO_RCVBUF) as the checkpoint read it, which
 * is twice what the program asked for: half of it asked again, through
 * the FORCE option when the sysctl max (the other name) is lower and we
 * may (CAP_NET_ADMIN).
 */
static int buf_opt(struct co_krestore *x, uint64_t id, int s, int opt, int force, const char *name, const char *sysctl,
		   int want)
{
	int got = 0;
	if (get_int(s, opt, &got) == 0 && got == want)
		return 0;
	int half = want / 2;
	if (want <= 0 || (want & 1))
		return FAILED(x, id, "%s of %d bytes, which no setsockopt gives (the kernel doubles what it is asked)",
			      name, want);
	if (setsockopt(s, SOL_SOCKET, opt, &half, sizeof(half)) == 0 && get_int(s, opt, &got) == 0 && got == want)
		return 0;
	if (setsockopt(s, SOL_SOCKET, force, &half, sizeof(half)) == 0 && get_int(s, opt, &got) == 0 && got == want)
		return 0;
	return FAILED(x, id, "%s of %d bytes: it is %d (%s is lower, and %sFORCE needs CAP_NET_ADMIN)", name, want, got,
		      sysctl, name);
}

static int timeo_opt(struct co_krestore *x, uint64_t id, int s, int opt, const char *name, const int64_t *want)
{
	struct timeval tv, got = { 0, 0 };
	socklen_t l = sizeof(got);
	tv.tv_sec = (time_t)want[0];
	tv.tv_usec = (suseconds_t)want[1];
	if (getsockopt(s, SOL_SOCKET, opt, &got, &l) == 0 && got.tv_sec == tv.tv_sec && got.tv_usec == tv.tv_usec)
		return 0;
	l = sizeof(got);
	if (setsockopt(s, SOL_SOCKET, opt, &tv, sizeof(tv)) == 0 && getsockopt(s, SOL_SOCKET, opt, &got, &l) == 0 &&
	    got.tv_sec == tv.tv_sec && got.tv_usec == tv.tv_usec)
		return 0;
	return FAILED(x, id, "%s of %lld.%06lld s: it is %lld.%06lld s", name, (long long)want[0], (long long)want[1],
		      (long long)got.tv_sec, (long long)got.tv_usec);
}

/*
 * SO_LINGER: the kernel keeps the time only while lingering is on, so a
 * time with lingering off (as it reads after the program turned it off)
 * is set on, then off.
 */
static int linger_opt(struct co_krestore *x, uint64_t id, int s, const int32_t *want)
{
	struct linger on = { 1, want[1] }, w = { want[0], want[1] }, got = { 0, 0 };
	socklen_t l = sizeof(got);
	if (getsockopt(s, SOL_SOCKET, SO_LINGER, &got, &l) == 0 && got.l_onoff == w.l_onoff && got.l_linger == w.l_linger)
		return 0;
	l = sizeof(got);
	if ((w.l_linger == got.l_linger || setsockopt(s, SOL_SOCKET, SO_LINGER, &on, sizeof(on)) == 0) &&
	    setsockopt(s, SOL_SOCKET, SO_LINGER, &w, sizeof(w)) == 0 && getsockopt(s, SOL_SOCKET, SO_LINGER, &got, &l) == 0 &&
	    got.l_onoff == w.l_onoff && got.l_linger == w.l_linger)
		return 0;
	return FAILED(x, id, "SO_LINGER on %d for %d s: it is on %d for %d s", w.l_onoff, w.l_linger, got.l_onoff,
		      got.l_linger);
}

/*
 * The time stamps: SO_TIMESTAMPING's flags first, then the way of
 * SO_TIMESTAMP that reads 1 (each way resets what the one before chose:
 * old or new cmsgs, micro or nanoseconds); set_onoff then checks that
 * every way reads as recorded.
 */
static int set_stamps(struct co_krestore *x, const struct co_usock *o, int s)
{
	const struct co_usopts *u = &o->opts;
	struct so_timestamping ts = { (int)u->tsflags, u->bind_phc }, got = { 0, 0 };
	int opt = u->bools & CO_USO_TSING_NEW ? SO_TIMESTAMPING_NEW : SO_TIMESTAMPING_OLD, one = 1;
	socklen_t l = sizeof(got);
	if ((getsockopt(s, SOL_SOCKET, opt, &got, &l) < 0 || got.flags != ts.flags || got.bind_phc != ts.bind_phc) &&
	    setsockopt(s, SOL_SOCKET, opt, &ts, sizeof(ts)) < 0)
		return FAILED(x, o->id, "SO_TIMESTAMPING flags %#x: %s", u->tsflags, strerror(errno));
	l = sizeof(got);
	if (getsockopt(s, SOL_SOCKET, opt, &got, &l) < 0 || got.flags != ts.flags || got.bind_phc != ts.bind_phc)
		return FAILED(x, o->id, "SO_TIMESTAMPING flags %#x (PHC %d): they are %#x (PHC %d)", u->tsflags,
			      u->bind_phc, (unsigned)got.flags, got.bind_phc);
	for (size_t i = 0; i < N_ONOFF; i++)
		if ((onoffs[i].bit & STAMPS & u->bools) &&
		    setsockopt(s, SOL_SOCKET, onoffs[i].opt, &one, sizeof(one)) < 0)
			return FAILED(x, o->id, "%s: %s", onoffs[i].name, strerror(errno));
	return 0;
}

/*
 * The options on or off: each recorded one must read so (the time
 * stamps are set by set_stamps, only checked here).  One this kernel
 * does not know is fine as long as it was as a new socket has it.
 */
static int set_onoff(struct co_krestore *x, const struct co_usock *o, int s)
{
	const struct co_usopts *u = &o->opts;
	for (size_t i = 0; i < N_ONOFF; i++) {
		const struct onoff *b = &onoffs[i];
		int want = (u->bools & b->bit) != 0, got = 0;
		if (!(u->known & b->bit))
			continue;
		if (b->bit & STAMPS) {
			if (get_int(s, b->opt, &got) < 0 ? want != b->dflt : got != want)
				return FAILED(x, o->id, "%s reads %d, not %d", b->name, got, want);
			continue;
		}
		if (get_int(s, b->opt, &got) < 0 && errno == ENOPROTOOPT && want == b->dflt)
			continue;
		if (int_opt(x, o->id, s, b->opt, b->name, want) < 0)
			return -1;
	}
	return 0;
}

/* What an image says of the options, checked before any is used: a damaged record is named as such. */
static int check_record(struct co_krestore *x, const struct co_usock *o)
{
	const struct co_usopts *u = &o->opts;
	if ((u->known & ~(uint32_t)(CO_USO_ALL)) || (u->bools & ~u->known))
		return co_kbad(x, "unix socket %llu: options %#x of which %#x read", (unsigned long long)o->id, u->bools,
			       u->known);
	if (u->rcvtimeo[0] < 0 || u->rcvtimeo[1] < 0 || u->rcvtimeo[1] >= 1000000 || u->sndtimeo[0] < 0 ||
	    u->sndtimeo[1] < 0 || u->sndtimeo[1] >= 1000000)
		return co_kbad(x, "unix socket %llu: a time-out of %lld.%06lld or %lld.%06lld s", (unsigned long long)o->id,
			       (long long)u->rcvtimeo[0], (long long)u->rcvtimeo[1], (long long)u->sndtimeo[0],
			       (long long)u->sndtimeo[1]);
	if ((u->linger[0] != 0 && u->linger[0] != 1) || u->buflock < -1 || u->buflock > 3)
		return co_kbad(x, "unix socket %llu: SO_LINGER on %d, SO_BUF_LOCK %d", (unsigned long long)o->id,
			       u->linger[0], u->buflock);
	return 0;
}

int co_unix_opts_set(struct co_krestore *x, int s, const struct co_usock *o)
{
	const struct co_usopts *u = &o->opts;
	uint64_t id = o->id;
	if (!(o->flags & CO_USF_OPTS))
		return 0; /* an older image: as a new socket has them */
	if (check_record(x, o) < 0)
		return -1;
	if (buf_opt(x, id, s, SO_SNDBUF, SO_SNDBUFFORCE, "SO_SNDBUF", "net.core.wmem_max", u->sndbuf) < 0 ||
	    buf_opt(x, id, s, SO_RCVBUF, SO_RCVBUFFORCE, "SO_RCVBUF", "net.core.rmem_max", u->rcvbuf) < 0)
		return -1;
	/* after the sizes, which lock them: the lock as the program left it */
	if (u->buflock >= 0 && int_opt(x, id, s, SO_BUF_LOCK, "SO_BUF_LOCK", u->buflock) < 0)
		return -1;
	if (timeo_opt(x, id, s, SO_RCVTIMEO, "SO_RCVTIMEO", u->rcvtimeo) < 0 ||
	    timeo_opt(x, id, s, SO_SNDTIMEO, "SO_SNDTIMEO", u->sndtimeo) < 0)
		return -1;
	if (int_opt(x, id, s, SO_RCVLOWAT, "SO_RCVLOWAT", u->rcvlowat) < 0 ||
	    int_opt(x, id, s, SO_PRIORITY, "SO_PRIORITY", u->priority) < 0 ||
	    int_opt(x, id, s, SO_MARK, "SO_MARK", (int)u->mark) < 0)
		return -1;
	if (linger_opt(x, id, s, u->linger) < 0 || set_stamps(x, o, s) < 0 || set_onoff(x, o, s) < 0)
		return -1;
	return 0;
}

/*
 * While init puts the queues back, a socket that sends them has the
 * biggest send buffer it may have: what a queue holds went in under its
 * sender's buffer as it was then, which the program may have lowered
 * since, or whose sender (a peer that closed) is a socket of init's own;
 * and what a stream held in many writes comes back in few, counted
 * otherwise.  Each socket of the group gets its own size (and lock) back
 * once all is queued (co_unix_refill_end): the kernel lets a buffer be
 * lowered below what it holds.
 */
static struct refill {
	uint64_t id;
	int sndbuf, buflock;	/* as co_unix_opts_set left them (a new socket's in an older image) */
} refill[CO_MAX_REFS];
static int nrefill;

void co_unix_raise_sndbuf(int s)
{
	int big = INT_MAX / 2;
	if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) < 0)
		setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)); /* up to net.core.wmem_max */
}

int co_unix_refill_begin(struct co_krestore *x, int s, uint64_t id)
{
	struct refill *r = &refill[nrefill];
	if (nrefill == CO_MAX_REFS)
		return co_kbad(x, "more than %d Unix sockets", CO_MAX_REFS);
	r->id = id;
	if (get_int(s, SO_SNDBUF, &r->sndbuf) < 0)
		return co_kerr(x, "the Unix socket %llu: SO_SNDBUF: %s", (unsigned long long)id, strerror(errno));
	if (get_int(s, SO_BUF_LOCK, &r->buflock) < 0)
		r->buflock = -1;
	if (r->sndbuf & 1) /* a default no setsockopt gives again: left as it is */
		return 0;
	nrefill++;
	co_unix_raise_sndbuf(s);
	return 0;
}

int co_unix_refill_end(struct co_krestore *x)
{
	int bad = 0;
	for (int i = 0; i < nrefill && !bad; i++) {
		const struct refill *r = &refill[i];
		int s = co_made_fd(x, CO_OBJ_USOCK, r->id, 0);
		if (s < 0)
			continue;
		bad = buf_opt(x, r->id, s, SO_SNDBUF, SO_SNDBUFFORCE, "SO_SNDBUF", "net.core.wmem_max", r->sndbuf) < 0 ||
		      (r->buflock >= 0 && int_opt(x, r->id, s, SO_BUF_LOCK, "SO_BUF_LOCK", r->buflock) < 0);
	}
	nrefill = 0;
	return bad ? -1 : 0;
}

/* ---- inspect ---- */

void co_unix_opts_text(const struct co_usock *o, char *out, size_t n)
{
	const struct co_usopts *u = &o->opts;
	size_t len;
	out[0] = 0;
	if (!(o->flags & CO_USF_OPTS))
		return;
	len = (size_t)snprintf(out, n, ", SO_RCVTIMEO %lld.%06lld, SO_SNDTIMEO %lld.%06lld, SO_SNDBUF %d, SO_RCVBUF %d, "
				  "SO_BUF_LOCK %d, SO_RCVLOWAT %d, SO_PRIORITY %d, SO_MARK %u, SO_LINGER %d %d, "
				  "SO_TIMESTAMPING %#x", (long long)u->rcvtimeo[0], (long long)u->rcvtimeo[1],
				  (long long)u->sndtimeo[0], (long long)u->sndtimeo[1], u->sndbuf, u->rcvbuf, u->buflock,
				  u->rcvlowat, u->priority, u->mark, u->linger[0], u->linger[1], u->tsflags);
	for (size_t i = 0; i < N_ONOFF && len < n; i++)
		if ((u->known & onoffs[i].bit) && ((u->bools & onoffs[i].bit) != 0) != onoffs[i].dflt)
			len += (size_t)snprintf(out + len, n - len, ", %s %d", onoffs[i].name, !onoffs[i].dflt);
	if (len < n && (u->bools & CO_USO_TSING_NEW))
		snprintf(out + len, n - len, " (SO_TIMESTAMPING_NEW)");
}
