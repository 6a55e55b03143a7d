/*
 * pty.c - pseudo-terminals the group opens itself.  The group has a devpts
 * of its own (nsinit.c mounts one over /dev/pts, with /dev/ptmx bound to
 * its ptmx, at run and at every restart), so a pty's index is the group's
 * and can be had again: the kernel hands out the lowest free index, and
 * init opens /dev/ptmx until it gets the one it needs (as CRIU does),
 * closing the others after.
 *
 * Two kinds.  The master (CO_OBJ_PTMX, one object per open file
 * description) is the pty itself, record CO_R_PTY: the slave's termios and
 * window size (which the kernel reads and sets through the master), the
 * lock, packet mode, exclusive mode (read on a slave), whether the slave
 * was closed for good (the master then reads EIO), and the session whose
 * controlling terminal it is with that session's foreground process group.
 * Each open file description of the slave (CO_OBJ_PTS, late: after every
 * master) is a co_sobj naming its pty, opened again from the master
 * (TIOCGPTPEER), so no path is needed.  A slave whose master the group
 * does not hold is refused.
 *
 * Queued bytes, once every object is written: what the slave side will
 * read (read out of the slave switched for a moment to non-canonical
 * mode) and what the master side will (read out of the master); reading
 * consumes them, so they are put back at once for the running program and
 * again at the restart.  Putting back uses TIOCSTI, which hands bytes to
 * the receiving side's line discipline synchronously (input with echo,
 * signals and input processing off, so that nothing is echoed or cooked
 * twice; output into the master's own queue, past output processing).
 * TIOCSTI needs CAP_SYS_ADMIN: without it the bytes are written from the
 * other side with the same settings off, and the receiving queue is
 * waited for (up to a second).  In packet mode the status byte waiting for
 * the master's reader is read first (a read of data would return it) and
 * made again by doing on the slave what sets each of its bits
 * (status_again, status_stop).  The master's own termios cannot be kept,
 * nor need to be: the kernel reads and sets the slave's when given the
 * master, so no program can change them.
 *
 * The controlling terminal: the session leader takes it again right after
 * its setsid() (CO_PLAN_CTTY, before it makes children, which inherit
 * it), and a member of the foreground group, once in its group, makes it
 * the foreground (CO_PLAN_FGPG).  See restorer.c, become_process.
 */
#define _GNU_SOURCE
#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "procfs.h"

_Static_assert(sizeof(struct termios2) <= sizeof(((struct co_pty *)0)->termios), "termios2 fits");

#define PTY_QUEUE (1 << 18)	/* bytes a checkpoint keeps of each direction of a pty */
#define PTY_MAX 1024		/* ptys of a group, at a restart */
#define PTY_INDEX_MAX 4096	/* how far init opens /dev/ptmx for an index */

/* ---- dump ---- */

/* The pty index of refs[i] (master: TIOCGPTN; slave: its device number), -1 if it cannot be told. */
static int ref_index(const struct co_kdump *d, int i)
{
	int f = co_ref_grab(&d->refs[i]), idx = -1;
	struct stat st;
	if (f < 0)
		return -1;
	if (d->refs[i].kind == CO_OBJ_PTMX && ioctl(f, TIOCGPTN, &idx) < 0)
		idx = -1;
	else if (d->refs[i].kind == CO_OBJ_PTS && fstat(f, &st) == 0)
		idx = (int)((major(st.st_rdev) - 136) * 256 + minor(st.st_rdev));
	close(f);
	return idx;
}

/* The first reference of the other kind on the same devpts with the same index (kind: what to look for), or -1. */
static int pty_peer_ref(const struct co_kdump *d, int first, uint32_t kind)
{
	int idx = ref_index(d, first);
	for (int k = 0; idx >= 0 && k < d->nrefs; k++)
		if (d->refs[k].kind == kind && d->refs[k].dev == d->refs[first].dev && ref_index(d, k) == idx)
			return k;
	return -1;
}

/* The group's pid of host process host, 0 if it is not a member. */
static int member_pid(const struct co_kdump *d, int host)
{
	for (int i = 0; i < d->nmembers; i++)
		if (d->members[i].host_pid == host)
			return d->members[i].pid;
	return 0;
}

/*
 * Is host process host the session leader leader or one of its
 * descendants?  Only those have the terminal at a restart: the restorers
 * fork them from the leader's line after it took the terminal back.
 */
static int descends_from(int host, int leader)
{
	for (int depth = 0; depth < 64 && host > 1; depth++) {
		struct co_nsids ids;
		if (host == leader)
			return 1;
		if (co_ns_ids(host, &ids) < 0)
			return 0;
		host = ids.host_ppid;
	}
	return 0;
}

/*
 * The foreground process group fg_host (a number on the host) in the
 * group: its pgid there and its first member in the session sid (leader
 * sid_host) forked from the leader's line, which sets it back at a
 * restart.  0, or -1 when no such member is in it.
 */
static int foreground(const struct co_kdump *d, int fg_host, int sid, int sid_host, struct co_pty *p)
{
	for (int i = 0; i < d->nmembers; i++) {
		char path[64];
		uint64_t pg = 0;
		struct co_nsids ids;
		snprintf(path, sizeof(path), "/proc/%d/stat", d->members[i].host_pid);
		if (co_stat_fields(path, &pg, 5, 1) < 0 || (int)pg != fg_host ||
		    co_ns_ids(d->members[i].host_pid, &ids) < 0 || ids.sid != sid ||
		    !descends_from(d->members[i].host_pid, sid_host))
			continue;
		if (!p->fg_by || ids.pid < p->fg_by) {
			p->fg = ids.pgid;
			p->fg_by = ids.pid;
		}
	}
	return p->fg_by ? 0 : -1;
}

/* The session the pty is the controlling terminal of, and its foreground group; 0, or -1 with err. */
static int pty_session(struct co_kdump *d, int first, int m, struct co_pty *p)
{
	const struct co_ref *r = &d->refs[first];
	int sid = 0, fg = 0;
	if (ioctl(m, TIOCGSID, &sid) < 0 || sid <= 0)
		return 0; /* the controlling terminal of no session */
	p->sid = member_pid(d, sid);
	if (!p->sid) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: the pseudo-terminal /dev/pts/%u is the controlling terminal "
			 "of a session outside the group (host pid %d), which cohort cannot restore", r->pid, r->fd,
			 p->index, sid);
		return -1;
	}
	if (ioctl(m, TIOCGPGRP, &fg) < 0 || fg <= 0 || fg == sid)
		return 0;
	if (foreground(d, fg, p->sid, sid, p) < 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: the foreground process group of /dev/pts/%u (host %d) has "
			 "no process forked from its session leader's line in the group, which cohort cannot restore",
			 r->pid, r->fd, p->index, fg);
		return -1;
	}
	return 0;
}

static int pty_dump(struct co_kdump *d, int first, uint64_t *id)
{
	const struct co_ref *r = &d->refs[first];
	struct co_pty p = { .id = (uint64_t)first + 1, .flags = r->flags & CO_FL_STATUS };
	int m = co_ref_grab(r), idx = -1, lock = 0, pkt = 0;
	struct termios2 t;
	struct winsize ws;
	if (m < 0 || ioctl(m, TIOCGPTN, &idx) < 0 || ioctl(m, TIOCGPTLCK, &lock) < 0 || ioctl(m, TIOCGPKT, &pkt) < 0 ||
	    ioctl(m, TCGETS2, &t) < 0 || ioctl(m, TIOCGWINSZ, &ws) < 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read the pseudo-terminal %s: %s", r->pid, r->fd, r->path,
			 strerror(errno));
		if (m >= 0)
			close(m);
		return -1;
	}
	p.index = (uint32_t)idx;
	p.locked = lock != 0;
	p.packet = pkt != 0;
	memcpy(p.termios, &t, sizeof(t));
	memcpy(p.winsize, &ws, sizeof(p.winsize));
	struct pollfd pf = { m, POLLIN, 0 };
	p.hup = poll(&pf, 1, 0) == 1 && (pf.revents & POLLHUP);
	/* exclusive mode belongs to the slave: read on one the group holds */
	int k = pty_peer_ref(d, first, CO_OBJ_PTS), s = k >= 0 ? co_ref_grab(&d->refs[k]) : -1, excl = 0;
	if (s >= 0 && ioctl(s, TIOCGEXCL, &excl) == 0)
		p.excl = excl != 0;
	if (s >= 0)
		close(s);
	int bad = pty_session(d, first, m, &p);
	close(m);
	if (bad)
		return -1;
	*id = p.id;
	return co_w_rec(d->w, CO_R_PTY, &p, sizeof(p)) ? -1 : 1;
}

static int pts_dump(struct co_kdump *d, int first, uint64_t *id)
{
	const struct co_ref *r = &d->refs[first];
	int k = pty_peer_ref(d, first, CO_OBJ_PTMX);
	if (k < 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: %s is a pseudo-terminal whose master the group does not hold, "
			 "which cohort cannot restore", r->pid, r->fd, r->path);
		return -1;
	}
	struct co_sobj o = { .kind = CO_OBJ_PTS, .id = (uint64_t)first + 1, .a = r->flags & O_ACCMODE,
			     .b = (uint64_t)d->refs[k].obj + 1, .c = (uint64_t)ref_index(d, first) };
	*id = o.id;
	return co_sobj_write(d, first, &o);
}

/* ---- queued bytes: read out, put back ---- */

static void nap_ms(void)
{
	struct timespec ms = { 0, 1000000 };
	nanosleep(&ms, NULL);
}

/*
 * What the slave side will read: with the slave non-canonical for a moment
 * (MIN 0, TIME 0: a read never waits) every byte is readable, a partial
 * line too; then its settings back.  A read that finds nothing first lets
 * the kernel finish handing it what the master wrote.  Bytes, or -1.
 */
static long read_input(int s, const struct termios2 *t, char *buf, size_t max)
{
	struct termios2 raw = *t;
	raw.c_lflag &= ~(tcflag_t)ICANON;
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	if (ioctl(s, TCSETS2, &raw) < 0)
		return -1;
	size_t n = 0;
	ssize_t got;
	while (n < max && (got = read(s, buf + n, max - n)) > 0)
		n += (size_t)got;
	ioctl(s, TCSETS2, t);
	errno = EFBIG; /* more than a checkpoint keeps */
	return n < max ? (long)n : -1;
}

/* What the master side will read (a packet-mode read's first byte is its status, not data).  Bytes, or -1. */
static long read_output(int m, int packet, char *buf, size_t max)
{
	size_t n = 0;
	for (;;) {
		struct pollfd pf = { m, POLLIN, 0 };
		int q = 0;
		poll(&pf, 1, 0); /* with nothing to read, lets the kernel finish handing over what the slave wrote */
		if (ioctl(m, FIONREAD, &q) < 0 || q <= 0)
			return (long)n;
		char tmp[4097];
		size_t want = (size_t)q < sizeof(tmp) - 1 ? (size_t)q : sizeof(tmp) - 1;
		ssize_t got = read(m, tmp, want + (packet ? 1 : 0));
		if (got <= 0)
			return (long)n;
		size_t skip = packet ? 1 : 0;
		if ((size_t)got <= skip)
			continue;
		if (n + (size_t)got - skip > max) {
			errno = EFBIG; /* more than a checkpoint keeps */
			return -1;
		}
		memcpy(buf + n, tmp + skip, (size_t)got - skip);
		n += (size_t)got - skip;
	}
}

/* Until fd's queue holds want bytes (FIONREAD), a second at most. */
static void wait_queue(int fd, int want)
{
	for (int ms = 0; ms < 1000; ms++) {
		struct pollfd pf = { fd, POLLIN, 0 };
		int q = 0;
		poll(&pf, 1, 0);
		if (ioctl(fd, FIONREAD, &q) < 0 || q >= want)
			return;
		nap_ms();
	}
}

/* Each byte handed to fd's line discipline (TIOCSTI) until one is refused (no CAP_SYS_ADMIN): how many were. */
static size_t stuff(int fd, const char *buf, size_t n)
{
	size_t i = 0;
	while (i < n && ioctl(fd, TIOCSTI, buf + i) == 0)
		i++;
	return i;
}

/*
 * Bytes the slave side will read, back into its queue as they were: no
 * echo (it was echoed when typed), no signals, no input processing (it
 * was processed) but flow control, canonical or not as it was, so that
 * lines are lines.
 */
static int put_input(int m, int s, const struct termios2 *t, const char *buf, size_t n)
{
	struct termios2 quiet = *t;
	/* flow control stays: in packet mode a change of it is a status byte for the master's reader */
	quiet.c_iflag &= (tcflag_t)(IXON | IXOFF | IXANY);
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL | ECHOCTL | ECHOKE | ISIG | IEXTEN);
	if (ioctl(s, TCSETS2, &quiet) < 0)
		return -1;
	int r = 0;
	size_t done = stuff(s, buf, n);
	if (done < n) {
		r = write(m, buf + done, n - done) == (ssize_t)(n - done) ? 0 : -1;
		/* canonical: FIONREAD counts whole lines only; the rest of a line gets a moment more */
		size_t whole = n;
		while ((t->c_lflag & ICANON) && whole > 0 && buf[whole - 1] != '\n')
			whole--;
		wait_queue(s, (int)whole);
		if (whole < n)
			for (int i = 0; i < 5; i++)
				nap_ms();
	}
	ioctl(s, TCSETS2, t);
	return r;
}

/* Bytes the master side will read, back into its queue: past the slave's output processing (done already). */
static int put_output(int m, int s, const struct termios2 *t, const char *buf, size_t n)
{
	size_t done = stuff(m, buf, n);
	if (done == n)
		return 0;
	struct termios2 plain = *t;
	plain.c_oflag &= ~(tcflag_t)OPOST;
	if (s < 0 || ioctl(s, TCSETS2, &plain) < 0)
		return -1;
	int r = write(s, buf + done, n - done) == (ssize_t)(n - done) ? 0 : -1;
	wait_queue(m, (int)n);
	ioctl(s, TCSETS2, t);
	return r;
}

/* A descriptor of our own on the slave (TIOCGPTPEER, never its controlling terminal), or -1. */
static int peer(int m, int flags)
{
	return ioctl(m, TIOCGPTPEER, flags | O_NOCTTY | O_CLOEXEC);
}

/*
 * The packet-mode status byte waiting for the master's reader (POLLPRI),
 * read: it comes alone, before any data.  0 when none waits.
 */
static int read_status(int m)
{
	struct pollfd pf = { m, POLLPRI, 0 };
	unsigned char st = 0;
	if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLPRI) || read(m, &st, 1) != 1)
		return 0;
	return st;
}

/* Flow control by ^S and ^Q as the kernel tells it (packet mode's DOSTOP and NOSTOP), on or off in t. */
static void set_flow(struct termios2 *t, int on)
{
	if (on) {
		t->c_iflag |= IXON;
		t->c_cc[VSTOP] = 023;
		t->c_cc[VSTART] = 021;
	} else {
		t->c_iflag &= ~(tcflag_t)IXON;
	}
}

/*
 * A status byte st made again for the master's reader by doing on the
 * slave s what sets each bit: flushing its input and its output
 * (FLUSHREAD, FLUSHWRITE: the queues are empty then, their bytes put back
 * after), flow control turned the other way and back (DOSTOP, NOSTOP:
 * the settings end as t), output stopped and started (START).  STOP is
 * status_stop's, once the queued bytes are back.  0, or -1.
 */
static int status_again(int s, const struct termios2 *t, int st)
{
	int r = 0;
	if (st & TIOCPKT_FLUSHREAD)
		r |= ioctl(s, TCFLSH, TCIFLUSH);
	if (st & TIOCPKT_FLUSHWRITE)
		r |= ioctl(s, TCFLSH, TCOFLUSH);
	if (st & (TIOCPKT_DOSTOP | TIOCPKT_NOSTOP)) {
		struct termios2 from = *t, to = *t;
		set_flow(&from, !(st & TIOCPKT_DOSTOP));
		set_flow(&to, (st & TIOCPKT_DOSTOP) != 0);
		r |= ioctl(s, TCSETS2, &from) | ioctl(s, TCSETS2, &to) | ioctl(s, TCSETS2, t);
	}
	if (st & TIOCPKT_START)
		r |= ioctl(s, TCXONC, TCOOFF) | ioctl(s, TCXONC, TCOON);
	return r < 0 ? -1 : 0;
}

/*
 * The STOP bit: output stopped again.  As ^S stops it when the slave has
 * flow control and TIOCSTI may hand it the characters (started with ^Q
 * first: a stopped tty sets no bit), else with TCOOFF.  0, or -1.
 */
static int status_stop(int s, const struct termios2 *t)
{
	char go = (char)t->c_cc[VSTART], stop = (char)t->c_cc[VSTOP];
	ioctl(s, TCXONC, TCOON);
	if ((t->c_iflag & IXON) && ioctl(s, TIOCSTI, &go) == 0 && ioctl(s, TIOCSTI, &stop) == 0)
		return 0;
	return ioctl(s, TCXONC, TCOOFF);
}

/* One direction's bytes (or the status byte: in h.status) as a CO_R_PTYDATA record. */
static int write_queue(struct co_writer *w, uint64_t id, int output, const char *bytes, size_t n, int status)
{
	static char rec[sizeof(struct co_ptydata) + PTY_QUEUE];
	struct co_ptydata h = { id, (uint32_t)output, (uint32_t)status };
	memcpy(rec, &h, sizeof(h));
	if (n)
		memcpy(rec + sizeof(h), bytes, n);
	return co_w_rec(w, CO_R_PTYDATA, rec, sizeof(h) + n);
}

/*
 * The bytes queued in the pty refs[first], both directions, and in packet
 * mode the status byte waiting for the master's reader (read first: a
 * read of data would return it), read out in the pause and put back at
 * once for the running program.  The input is read only when the group
 * holds the slave (opening it otherwise, then closing it, would make the
 * master read EIO): without one, a waiting status byte is refused, unless
 * the slave was closed for good (hup: one of our own is opened then).
 */
static int pty_dump_data(struct co_kdump *d, int first, uint64_t id)
{
	static char in[PTY_QUEUE], out[PTY_QUEUE];
	const struct co_ref *r = &d->refs[first];
	int m = co_ref_grab(r), pkt = 0, s = -1;
	struct termios2 t;
	if (m < 0 || ioctl(m, TCGETS2, &t) < 0 || ioctl(m, TIOCGPKT, &pkt) < 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read the pseudo-terminal %s", r->pid, r->fd, r->path);
		if (m >= 0)
			close(m);
		return -1;
	}
	/* a slave of our own; in exclusive mode, without CAP_SYS_ADMIN, one of the group's */
	int k = pty_peer_ref(d, first, CO_OBJ_PTS);
	if (k >= 0 && (s = peer(m, O_RDWR | O_NONBLOCK)) < 0)
		s = co_ref_grab(&d->refs[k]);
	struct pollfd pf = { m, POLLPRI, 0 };
	if (pkt && s < 0 && poll(&pf, 1, 0) == 1 && (pf.revents & POLLPRI) && !(pf.revents & POLLHUP)) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: the pseudo-terminal %s has a packet-mode status byte not read, "
			 "and no process holds its slave, which cohort needs to make it again", r->pid, r->fd, r->path);
		close(m);
		return -1;
	}
	int st = pkt ? read_status(m) : 0;
	if (st && s < 0)
		s = peer(m, O_RDWR | O_NONBLOCK); /* closed for good already */
	long nin = s >= 0 && k >= 0 ? read_input(s, &t, in, sizeof(in)) : 0;
	long nout = nin >= 0 ? read_output(m, pkt, out, sizeof(out)) : 0;
	const char *bad = nin < 0 || nout < 0 ? "cannot read" : NULL;
	/* back at once, whatever comes next: the program runs on (or is killed) with its queues as they were */
	if (st && (s < 0 || status_again(s, &t, st) < 0))
		bad = "cannot put back";
	if (nin > 0 && put_input(m, s, &t, in, (size_t)nin) < 0)
		bad = "cannot put back";
	if (nout > 0 && put_output(m, s, &t, out, (size_t)nout) < 0)
		bad = "cannot put back";
	if ((st & TIOCPKT_STOP) && s >= 0 && status_stop(s, &t) < 0)
		bad = "cannot put back";
	int e = errno;
	if (s >= 0)
		close(s);
	close(m);
	if (bad) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: %s the bytes queued in the pseudo-terminal %s (%s)", r->pid,
			 r->fd, bad, r->path, strerror(e));
		return -1;
	}
	if ((st && write_queue(d->w, id, 2, NULL, 0, st)) ||
	    (nin > 0 && write_queue(d->w, id, 0, in, (size_t)nin, 0)) ||
	    (nout > 0 && write_queue(d->w, id, 1, out, (size_t)nout, 0)))
		return -1;
	return d->w->err;
}

/* ---- restore, in init ---- */

/* The ptys init made: what is set once every record is read. */
static struct made_pty {
	struct co_pty p;
	int fd;			/* the master */
	int status;		/* the packet-mode status byte it had (its STOP bit is set once all is made) */
} ptys[PTY_MAX];
static int nptys;

static struct made_pty *pty_of(uint64_t id)
{
	for (int i = 0; i < nptys; i++)
		if (ptys[i].p.id == id)
			return &ptys[i];
	return NULL;
}

/* /dev/ptmx (the group's) opened until the kernel hands out index; the others closed.  The master, or -1. */
static int open_index(uint32_t index)
{
	static int extra[PTY_INDEX_MAX];
	int n = 0, m = -1;
	while (n < PTY_INDEX_MAX) {
		int f = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC), got = -1;
		if (f < 0 || ioctl(f, TIOCGPTN, &got) < 0 || got > (int)index) {
			if (f >= 0)
				close(f);
			errno = f < 0 ? errno : EBUSY; /* index is taken */
			break;
		}
		if (got == (int)index) {
			m = f;
			break;
		}
		extra[n++] = f;
	}
	int e = errno;
	while (n > 0)
		close(extra[--n]);
	errno = e;
	return m;
}

static int make_pty(struct co_krestore *x, const struct co_pty *p)
{
	struct termios2 t;
	memcpy(&t, p->termios, sizeof(t));
	int unlock = 0, pkt = (int)p->packet;
	int m = nptys < PTY_MAX ? open_index(p->index) : -1;
	if (m < 0 || ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TCSETS2, &t) < 0 ||
	    ioctl(m, TIOCSWINSZ, p->winsize) < 0 || ioctl(m, TIOCPKT, &pkt) < 0) {
		int e = errno;
		if (m >= 0)
			close(m);
		return co_kerr(x, "recreating the group's pseudo-terminal /dev/pts/%u: %s", p->index, strerror(e));
	}
	fcntl(m, F_SETFL, (int)(p->flags & CO_FL_STATUS));
	ptys[nptys++] = (struct made_pty){ *p, m, 0 };
	if (co_made_add(x, CO_OBJ_PTMX, p->id, m, -1, 0) < 0)
		return -1;
	/* its session's leader takes it back; a member of the foreground group makes its group the foreground */
	struct co_plan_ent ctty = { .pid = p->sid, .kind = CO_PLAN_CTTY, .src = m };
	struct co_plan_ent fg = { .pid = p->fg_by, .kind = CO_PLAN_FGPG, .src = m, .dev = (uint64_t)p->fg };
	if (p->sid > 0 && co_plan_add(x, &ctty) < 0)
		return -1;
	return p->sid > 0 && p->fg > 0 && p->fg_by > 0 ? co_plan_add(x, &fg) : 0;
}

static int put_back(struct co_krestore *x, const struct co_ptydata *h, const char *bytes, size_t n)
{
	struct made_pty *p = pty_of(h->id);
	if (!p)
		return co_kbad(x, "queued bytes of a missing pseudo-terminal %llu", (unsigned long long)h->id);
	struct termios2 t;
	memcpy(&t, p->p.termios, sizeof(t));
	int s = peer(p->fd, O_RDWR | O_NONBLOCK), r = -1;
	if (h->output == 2) /* first, while the queues are empty */
		r = s >= 0 ? status_again(s, &t, (int)h->status) : -1;
	else
		r = h->output ? put_output(p->fd, s, &t, bytes, n) : s >= 0 ? put_input(p->fd, s, &t, bytes, n) : -1;
	if (h->output == 2)
		p->status = (int)h->status;
	int e = errno;
	if (s >= 0)
		close(s);
	if (r < 0 && h->output == 2)
		return co_kerr(x, "cannot make the status byte of /dev/pts/%u again: %s", p->p.index, strerror(e));
	return r < 0 ? co_kerr(x, "cannot put back the %zu bytes queued in /dev/pts/%u: %s", n, p->p.index,
			       strerror(e)) : 0;
}

static int pty_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	if (type == CO_R_PTY)
		return make_pty(x, p);
	if (type == CO_R_PTYDATA)
		return put_back(x, p, (const char *)p + sizeof(struct co_ptydata), len - sizeof(struct co_ptydata));
	return co_kbad(x, "unexpected %s record for a pseudo-terminal", co_rec_name(type));
}

/* A slave's open file, from its master: no path, and never init's controlling terminal. */
static int pts_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	int m = co_made_fd(x, CO_OBJ_PTMX, o->b, 0);
	if (m < 0)
		return co_kbad(x, "pty slave %llu of a missing pseudo-terminal", (unsigned long long)o->id);
	return co_sobj_made(x, o, peer(m, (int)(o->a & O_ACCMODE)));
}

/*
 * What would stop the slaves being opened: exclusive mode and the lock,
 * once they are; and a slave closed for good, by opening and closing one
 * (the group holds none then).
 */
static int pty_restore_done(struct co_krestore *x)
{
	for (int i = 0; i < nptys; i++) {
		struct made_pty *p = &ptys[i];
		int one = 1, stop = p->status & TIOCPKT_STOP;
		int s = p->p.excl || p->p.hup || stop ? peer(p->fd, O_RDWR) : -1;
		if ((p->p.excl || p->p.hup || stop) && s < 0)
			return co_kerr(x, "cannot open /dev/pts/%u again: %s", p->p.index, strerror(errno));
		struct termios2 t;
		memcpy(&t, p->p.termios, sizeof(t));
		if (stop && status_stop(s, &t) < 0)
			return co_kerr(x, "cannot stop the output of /dev/pts/%u again: %s", p->p.index, strerror(errno));
		if (p->p.excl && ioctl(s, TIOCEXCL) < 0)
			return co_kerr(x, "cannot set /dev/pts/%u exclusive: %s", p->p.index, strerror(errno));
		if (s >= 0)
			close(s);
		if (p->p.locked && ioctl(p->fd, TIOCSPTLCK, &one) < 0)
			return co_kerr(x, "cannot lock /dev/pts/%u: %s", p->p.index, strerror(errno));
	}
	nptys = 0;
	return 0;
}

/* ---- inspect ---- */

static void pty_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	if (type == CO_R_PTYDATA) {
		const struct co_ptydata *h = p;
		if (h->output == 2)
			snprintf(out, n, "pty %llu: packet-mode status byte %#x not read", (unsigned long long)h->id, h->status);
		else
			snprintf(out, n, "pty %llu: %llu bytes of %s queued", (unsigned long long)h->id,
				 (unsigned long long)(len - sizeof(*h)), h->output ? "output" : "input");
		return;
	}
	const struct co_pty *t = p;
	struct termios2 tio;
	memcpy(&tio, t->termios, sizeof(tio));
	int k = snprintf(out, n, "pty %llu: /dev/pts/%u, %ux%u, %s%s%s%s%s", (unsigned long long)t->id, t->index,
			 t->winsize[0], t->winsize[1], tio.c_lflag & ICANON ? "canonical" : "raw",
			 tio.c_lflag & ECHO ? ", echo" : "", t->packet ? ", packet mode" : "", t->locked ? ", locked" : "",
			 t->excl ? ", exclusive" : "");
	if (t->sid > 0 && k > 0 && (size_t)k < n)
		snprintf(out + k, n - (size_t)k, ", terminal of session %d, foreground %d", t->sid, t->fg ? t->fg : t->sid);
}

static void pts_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	snprintf(out, n, "pty slave %llu: /dev/pts/%llu of pty %llu, %s", (unsigned long long)o->id,
		 (unsigned long long)o->c, (unsigned long long)o->b,
		 (o->a & O_ACCMODE) == O_RDONLY ? "read" : (o->a & O_ACCMODE) == O_WRONLY ? "write" : "read-write");
}

const struct co_kind_ops co_pty_ops = {
	.kind = CO_OBJ_PTMX, .identity = CO_ID_OPENFILE,
	.dump = pty_dump, .dump_data = pty_dump_data, .restore = pty_restore, .restore_done = pty_restore_done,
	.describe = pty_describe,
};

const struct co_kind_ops co_pts_ops = {
	.kind = CO_OBJ_PTS, .identity = CO_ID_OPENFILE, .late = 1,
	.dump = pts_dump, .restore = pts_restore, .describe = pts_describe,
};
