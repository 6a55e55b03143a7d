/*
 * pipe.c - pipes and named FIFOs: one object per pipe inode, both ends
 * made at once.  Dump: the capacity, each end's status flags (O_NONBLOCK,
 * O_ASYNC, ...), a FIFO's path,
 * and the bytes buffered (tee(2) copies them without consuming).
 * Restore: pipe(2), or the FIFO opened again at its path, refilled.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "kinds/kinds.h"
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

static int pipe_dump(struct co_kdump *d, int first, uint64_t *id)
{
	const struct co_ref *r = &d->refs[first];
	char p[128];
	snprintf(p, sizeof(p), "/proc/%d/fd/%d", r->host, r->fd);
	struct co_pipe cp = { .ino = r->ino };
	if (ends_agree(d, first) < 0)
		return -1;
	int fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		goto gone;
	int cap = fcntl(fd, F_GETPIPE_SZ);
	cp.capacity = cap > 0 ? (uint32_t)cap : 65536;
	CO_FOR_HOLDERS(d, first, k) {
		if ((d->refs[k].flags & O_ACCMODE) == O_WRONLY)
			cp.wflags = d->refs[k].flags & CO_FL_STATUS;
		else
			cp.rflags = d->refs[k].flags & CO_FL_STATUS;
	}
	/* copy what is buffered without taking it out */
	int tmp[2];
	static char data[1 << 20];
	ssize_t n = 0;
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) == 0) {
		fcntl(tmp[1], F_SETPIPE_SZ, (int)cp.capacity);
		n = tee(fd, tmp[1], cp.capacity, SPLICE_F_NONBLOCK);
		n = n > 0 ? read(tmp[0], data, (size_t)n) : 0;
		close(tmp[0]);
		close(tmp[1]);
	}
	close(fd);
	if (n < 0)
		n = 0;
	/* a named FIFO (not "pipe:[ino]", not deleted) comes back at its path */
	if (r->path[0] == '/' && !co_endswith(r->path, " (deleted)"))
		cp.pathlen = (uint32_t)strlen(r->path);
	co_w_begin(d->w, CO_R_PIPE, sizeof(cp) + cp.pathlen + (uint64_t)n, 0);
	co_w_put(d->w, &cp, sizeof(cp));
	co_w_put(d->w, r->path, cp.pathlen);
	co_w_put(d->w, data, (uint64_t)n);
	if (co_w_end(d->w) < 0)
		goto gone;
	*id = r->ino;
	return 1;
gone:
	snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read pipe:[%llu]", r->pid, r->fd, (unsigned long long)r->ino);
	return -1;
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

static int pipe_restore(struct co_krestore *x, unsigned type, const void *payload, uint64_t len)
{
	(void)type;
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
	fcntl(p[1], F_SETPIPE_SZ, (int)cp->capacity);
	uint64_t n = len - sizeof(*cp) - cp->pathlen;
	if (n && write(p[1], rest + cp->pathlen, n) != (ssize_t)n)
		return co_kerr(x, "cannot refill pipe:[%llu]: %s", (unsigned long long)cp->ino, strerror(errno));
	fcntl(p[0], F_SETFL, (int)cp->rflags);
	fcntl(p[1], F_SETFL, (int)cp->wflags);
	return co_made_add(x, CO_OBJ_PIPE, cp->ino, p[0], p[1], 0);
}

static void pipe_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	(void)type;
	const struct co_pipe *cp = p;
	snprintf(out, n, "inode %llu, capacity %u, %llu bytes buffered%s, flags %o (read end) %o (write end)",
		 (unsigned long long)cp->ino, cp->capacity, (unsigned long long)(len - sizeof(*cp) - cp->pathlen),
		 cp->pathlen ? " (FIFO)" : "", cp->rflags, cp->wflags);
}

const struct co_kind_ops co_pipe_ops = {
	.kind = CO_OBJ_PIPE, .identity = CO_ID_INODE,
	.dump = pipe_dump, .end = pipe_end, .restore = pipe_restore, .describe = pipe_describe,
};
