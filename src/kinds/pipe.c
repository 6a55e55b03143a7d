/*
 * pipe.c - pipes and named FIFOs: one object per pipe inode, both ends
 * made at once.  Dump: the capacity, each end's status flags (O_NONBLOCK,
 * O_ASYNC, ...), a FIFO's path, and the bytes buffered (tee(2) copies
 * them without consuming), as much as the pipe holds (up to
 * fs.pipe-max-size, which root may raise): in the pipe's record when
 * they fit, else in CO_R_PIPEDATA records, one per packet of a
 * packet-mode (O_DIRECT) pipe.  Restore: pipe(2), or the FIFO opened
 * again at its path, given its capacity and refilled, packet by packet.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kinds/kinds.h"
#include "procfs.h"
#include "util.h"

/*
 * Each end comes back as one open file description, whose status flags
 * all its holders share.  A FIFO opened more than once for one end (or a
 * pipe end reopened through /proc) has several: with different flags they
 * cannot come back so, and the checkpoint is refused.  0, or -1.
 */
static int ends_agree(struct co_kdump *d, int first)
{
	CO_FOR_HOLDERS(d, first, k) {
		const struct co_ref *a = &d->refs[k];
		CO_FOR_HOLDERS(d, first, j) {
			const struct co_ref *b = &d->refs[j];
			if (j >= k)
				break;
			if ((a->flags & O_ACCMODE) != (b->flags & O_ACCMODE) ||
			    (a->flags & CO_FL_STATUS) == (b->flags & CO_FL_STATUS))
				continue;
			snprintf(d->err, d->errlen, "pid %d: fd %d: %s is open for %s with flags %o here and %o in pid "
				 "%d fd %d: cohort cannot restore two open file descriptions of one end with different flags", a->pid, a->fd, a->path,
				 (a->flags & O_ACCMODE) == O_WRONLY ? "writing" : "reading", a->flags & CO_FL_STATUS,
				 b->flags & CO_FL_STATUS, b->pid, b->fd);
			return -1;
		}
	}
	return 0;
}

/* The most bytes of a pipe one record carries: well within what a restart reads at once (engine.c). */
#define PIPE_CHUNK (512u << 10)

/*
 * What the pipe fd holds, copied by tee(2) (it stays there) into a pipe
 * of ours, tmp, as large: its length in *n.  The copy must be whole: a
 * pipe of ours that could not be grown so far (fs.pipe-max-size, the
 * user's pipe pages) takes only part of it.  0, or -1 with err.
 */
static int pipe_copy(struct co_kdump *d, const struct co_ref *r, int fd, uint32_t cap, int tmp[2], size_t *n)
{
	int queued = 0;
	*n = 0;
	if (ioctl(fd, FIONREAD, &queued) < 0 || queued < 0)
		goto gone;
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) < 0)
		goto gone;
	if (!queued)
		return 0;
	int grown = fcntl(tmp[1], F_SETPIPE_SZ, (int)cap), e = errno;
	ssize_t k = tee(fd, tmp[1], (size_t)queued, SPLICE_F_NONBLOCK);
	if (k != queued) {
		e = grown < 0 ? e : errno;
		snprintf(d->err, d->errlen, "pid %d: fd %d: pipe:[%llu] holds %d bytes, which cohort cannot copy: %s%s",
			 r->pid, r->fd, (unsigned long long)r->ino, queued,
			 grown < 0 ? "no pipe of its own can be made as large: " : k < 0 ? "tee: " : "tee copied less",
			 grown < 0 || k < 0 ? strerror(e) : "");
		return -1;
	}
	*n = (size_t)queued;
	return 0;
gone:
	snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read pipe:[%llu]: %s", r->pid, r->fd,
		 (unsigned long long)r->ino, strerror(errno));
	return -1;
}

/*
 * The next piece of the copy, up to want bytes, into buf; *packet: it is
 * one packet.  A read of a packet (written in packet mode, O_DIRECT)
 * returns that packet alone: each read of a pipe whose writer is in
 * packet mode (wpacket) is one, and in another pipe a read that comes
 * back short stopped at one (written before the writer left packet mode,
 * or by one gone).  A piece longer than a page read so is plain bytes
 * and a packet together, which cannot be told apart: the checkpoint is
 * refused.  The bytes read, or -1 with err.
 */
static ssize_t pipe_piece(struct co_kdump *d, const struct co_ref *r, int src, char *buf, size_t want, int wpacket,
			  int *packet)
{
	ssize_t k = read(src, buf, want);
	if (k <= 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read the copy of pipe:[%llu]: %s", r->pid, r->fd,
			 (unsigned long long)r->ino, k < 0 ? strerror(errno) : "it ends early");
		return -1;
	}
	*packet = wpacket || (size_t)k < want;
	if (*packet && k > sysconf(_SC_PAGESIZE)) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: pipe:[%llu] holds packets (written in O_DIRECT mode) next to "
			 "plain bytes, which cohort cannot tell apart to restore", r->pid, r->fd, (unsigned long long)r->ino);
		return -1;
	}
	return k;
}

/* The pipe's record, with its first n bytes (inlined: plain bytes, all it holds) or without; 0, or -1 with err. */
static int pipe_rec(struct co_kdump *d, const struct co_ref *r, const struct co_pipe *cp, const char *buf, size_t n)
{
	co_w_begin(d->w, CO_R_PIPE, sizeof(*cp) + cp->pathlen + (uint64_t)n, 0);
	co_w_put(d->w, cp, sizeof(*cp));
	co_w_put(d->w, r->path, cp->pathlen);
	co_w_put(d->w, buf, n);
	if (co_w_end(d->w) == 0)
		return 0;
	snprintf(d->err, d->errlen, "pid %d: fd %d: cannot write pipe:[%llu] into the image", r->pid, r->fd,
		 (unsigned long long)r->ino);
	return -1;
}

/* One CO_R_PIPEDATA record: n bytes of the pipe of r, one packet or plain bytes; 0, or -1 with err. */
static int pipe_data_rec(struct co_kdump *d, const struct co_ref *r, const char *buf, size_t n, int packet)
{
	struct co_pipedata pd = { .ino = r->ino, .packet = packet ? 1u : 0u };
	co_w_begin(d->w, CO_R_PIPEDATA, sizeof(pd) + n, 0);
	co_w_put(d->w, &pd, sizeof(pd));
	co_w_put(d->w, buf, n);
	if (co_w_end(d->w) == 0)
		return 0;
	snprintf(d->err, d->errlen, "pid %d: fd %d: cannot write the bytes of pipe:[%llu] into the image", r->pid,
		 r->fd, (unsigned long long)r->ino);
	return -1;
}

/*
 * The pipe's record, then what it holds: n bytes of the copy src.  Plain
 * bytes that fit one record go in the pipe's record itself, as images
 * always had them; else a CO_R_PIPEDATA record per piece, a packet each
 * one.  0, or -1 with err.
 */
static int pipe_write(struct co_kdump *d, const struct co_ref *r, const struct co_pipe *cp, int src, size_t n)
{
	static char buf[PIPE_CHUNK];
	int wpacket = (cp->wflags & O_DIRECT) != 0, packet = 0;
	size_t want = n < sizeof(buf) ? n : sizeof(buf);
	ssize_t k = n ? pipe_piece(d, r, src, buf, want, wpacket, &packet) : 0;
	if (k < 0)
		return -1;
	if (!packet && (size_t)k == n)
		return pipe_rec(d, r, cp, buf, n);
	if (pipe_rec(d, r, cp, buf, 0) < 0)
		return -1;
	for (size_t left = n;;) {
		if (pipe_data_rec(d, r, buf, (size_t)k, packet) < 0)
			return -1;
		left -= (size_t)k;
		if (!left)
			return 0;
		want = left < sizeof(buf) ? left : sizeof(buf);
		if ((k = pipe_piece(d, r, src, buf, want, wpacket, &packet)) < 0)
			return -1;
	}
}

static int pipe_dump(struct co_kdump *d, int first, uint64_t *id)
{
	const struct co_ref *r = &d->refs[first];
	char p[128];
	snprintf(p, sizeof(p), "/proc/%d/fd/%d", r->host, r->fd);
	struct co_pipe cp = { .ino = r->ino };
	if (ends_agree(d, first) < 0)
		return -1;
	int fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read pipe:[%llu]", r->pid, r->fd,
			 (unsigned long long)r->ino);
		return -1;
	}
	int cap = fcntl(fd, F_GETPIPE_SZ);
	cp.capacity = cap > 0 ? (uint32_t)cap : 65536;
	CO_FOR_HOLDERS(d, first, k) {
		if ((d->refs[k].flags & O_ACCMODE) == O_WRONLY)
			cp.wflags = d->refs[k].flags & CO_FL_STATUS;
		else
			cp.rflags = d->refs[k].flags & CO_FL_STATUS;
	}
	/* a named FIFO (not "pipe:[ino]", not deleted) comes back at its path */
	if (r->path[0] == '/' && !co_endswith(r->path, " (deleted)"))
		cp.pathlen = (uint32_t)strlen(r->path);
	/* what is buffered, copied without taking it out */
	int tmp[2] = { -1, -1 };
	size_t n;
	int bad = pipe_copy(d, r, fd, cp.capacity, tmp, &n) < 0 || pipe_write(d, r, &cp, tmp[0], n) < 0;
	close(fd);
	if (tmp[0] >= 0) {
		close(tmp[0]);
		close(tmp[1]);
	}
	if (bad)
		return -1;
	*id = r->ino;
	return 1;
}

static uint32_t pipe_end(const struct co_ref *r)
{
	return (r->flags & O_ACCMODE) == O_WRONLY;
}

/*
 * Both ends of the named FIFO at path (made again if it is gone), so that
 * whoever opens the path after the restart meets the same pipe.  Opening
 * it read-write first keeps it from blocking and from losing its data.
 */
static int open_fifo(struct co_krestore *x, const char *path, int p[2])
{
	struct stat st;
	if (stat(path, &st) < 0 && (errno != ENOENT || mkfifo(path, 0600) < 0))
		return co_kerr(x, "cannot make the FIFO %s again: %s", path, strerror(errno));
	if (stat(path, &st) == 0 && !S_ISFIFO(st.st_mode))
		return co_kerr(x, "%s was a FIFO at the checkpoint and is something else now", path);
	int keep = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	p[0] = keep < 0 ? -1 : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	p[1] = p[0] < 0 ? -1 : open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (keep >= 0)
		close(keep);
	if (p[1] < 0) {
		int e = errno;
		if (p[0] >= 0)
			close(p[0]);
		return co_kerr(x, "cannot open the FIFO %s: %s", path, strerror(e));
	}
	/* the ends are handed down: not close-on-exec here (the plan decides) */
	fcntl(p[0], F_SETFD, 0);
	fcntl(p[1], F_SETFD, 0);
	return 0;
}

/*
 * The capacity the pipe had, given back exactly (F_SETPIPE_SZ): a smaller
 * one would hold less than it did, a larger one take more than it would.
 * Beyond fs.pipe-max-size only with CAP_SYS_RESOURCE.  0, or -1 with err.
 */
static int pipe_capacity(struct co_krestore *x, const struct co_pipe *cp, int w)
{
	int got = fcntl(w, F_SETPIPE_SZ, (int)(cp->capacity > INT32_MAX ? INT32_MAX : cp->capacity));
	if (got >= 0 && (uint32_t)got == cp->capacity)
		return 0;
	if (got >= 0)
		return co_kerr(x, "pipe:[%llu] comes back with a capacity of %d bytes, not its %u",
			       (unsigned long long)cp->ino, got, cp->capacity);
	int e = errno;
	int64_t max = 0;
	co_read_number("/proc/sys/fs/pipe-max-size", &max);
	return co_kerr(x, "cannot give pipe:[%llu] its capacity of %u bytes: %s (fs.pipe-max-size is %lld; beyond it "
		       "needs CAP_SYS_RESOURCE)", (unsigned long long)cp->ino, cp->capacity, strerror(e), (long long)max);
}

/*
 * n bytes put back into the pipe through its write end w: one packet
 * (one write in packet mode, O_DIRECT) or plain bytes.  Without blocking:
 * more than the pipe can hold (a damaged image) fails, as does a packet
 * that a write would split (more than a page).  The end's flags are
 * given back.  0, or -1 with err.
 */
static int pipe_refill(struct co_krestore *x, uint64_t ino, int w, const char *p, uint64_t n, int packet)
{
	if (packet && (!n || n > (uint64_t)sysconf(_SC_PAGESIZE)))
		return co_kbad(x, "pipe:[%llu]: a packet of %llu bytes (at most a page)", (unsigned long long)ino,
			       (unsigned long long)n);
	int fl = fcntl(w, F_GETFL);
	if (fl < 0 || fcntl(w, F_SETFL, (fl & ~O_DIRECT) | O_NONBLOCK | (packet ? O_DIRECT : 0)) < 0)
		return co_kerr(x, "cannot refill pipe:[%llu]: %s", (unsigned long long)ino, strerror(errno));
	uint64_t done = 0;
	while (done < n) {
		ssize_t k = write(w, p + done, n - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		done += (uint64_t)k;
		if (packet) /* (atomic: a page at most) */
			break;
	}
	int e = errno;
	fcntl(w, F_SETFL, fl);
	if (done == n)
		return 0;
	return co_kerr(x, "cannot refill pipe:[%llu] with %llu more bytes: %s", (unsigned long long)ino,
		       (unsigned long long)(n - done), e == EAGAIN ? "it is full (more than it held?)" : strerror(e));
}

/* A CO_R_PIPEDATA record: bytes for the pipe made by the CO_R_PIPE before. */
static int pipe_data_restore(struct co_krestore *x, const void *payload, uint64_t len)
{
	const struct co_pipedata *pd = payload;
	if (pd->packet > 1)
		return co_kbad(x, "damaged pipe data record");
	int w = co_made_fd(x, CO_OBJ_PIPE, pd->ino, 1);
	if (w < 0)
		return co_kbad(x, "data for pipe:[%llu], which was not made", (unsigned long long)pd->ino);
	return pipe_refill(x, pd->ino, w, (const char *)(pd + 1), len - sizeof(*pd), (int)pd->packet);
}

static int pipe_restore(struct co_krestore *x, unsigned type, const void *payload, uint64_t len)
{
	if (type == CO_R_PIPEDATA)
		return pipe_data_restore(x, payload, len);
	const struct co_pipe *cp = payload;
	const char *rest = (const char *)payload + sizeof(*cp);
	int p[2];
	if (cp->pathlen >= CO_PATH || sizeof(*cp) + cp->pathlen > len)
		return co_kbad(x, "damaged pipe record");
	if (cp->pathlen) {
		char fifo[CO_PATH];
		memcpy(fifo, rest, cp->pathlen);
		fifo[cp->pathlen] = 0;
		if (open_fifo(x, fifo, p) < 0)
			return -1;
	} else if (pipe(p) < 0) {
		return co_kerr(x, "cannot make a pipe: %s", strerror(errno));
	}
	/* (its bytes: here, or in CO_R_PIPEDATA records next, written with the flags set here) */
	uint64_t n = len - sizeof(*cp) - cp->pathlen;
	int bad = pipe_capacity(x, cp, p[1]);
	if (!bad && (fcntl(p[0], F_SETFL, (int)cp->rflags) < 0 || fcntl(p[1], F_SETFL, (int)cp->wflags) < 0))
		bad = co_kerr(x, "cannot give pipe:[%llu]'s ends their flags %o and %o: %s", (unsigned long long)cp->ino,
			      cp->rflags, cp->wflags, strerror(errno));
	if (!bad)
		bad = pipe_refill(x, cp->ino, p[1], rest + cp->pathlen, n, 0);
	if (bad) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	return co_made_add(x, CO_OBJ_PIPE, cp->ino, p[0], p[1], 0);
}

static void pipe_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	if (type == CO_R_PIPEDATA) {
		const struct co_pipedata *pd = p;
		snprintf(out, n, "inode %llu: %llu bytes%s", (unsigned long long)pd->ino,
			 (unsigned long long)(len - sizeof(*pd)), pd->packet ? ", one packet" : "");
		return;
	}
	const struct co_pipe *cp = p;
	uint64_t head = sizeof(*cp) + cp->pathlen;
	snprintf(out, n, "inode %llu, capacity %u, %llu bytes buffered here%s, flags %o (read end) %o (write end)",
		 (unsigned long long)cp->ino, cp->capacity, (unsigned long long)(len > head ? len - head : 0),
		 cp->pathlen ? " (FIFO)" : "", cp->rflags, cp->wflags);
}

const struct co_kind_ops co_pipe_ops = {
	.kind = CO_OBJ_PIPE, .identity = CO_ID_INODE,
	.dump = pipe_dump, .end = pipe_end, .restore = pipe_restore, .describe = pipe_describe,
};
