/*
 * file.c - regular files with a name.  Each process image keeps its own
 * descriptors of them (src/res/files.c: path, flags, offset); what this
 * kind adds is what the group has in common:
 *   - an open file description that more than one process holds (one
 *     offset, moved by all of them): one CO_R_SFILE, opened once by init,
 *     handed to every holder by the plan;
 *   - a copy (CO_R_FCOPY, in files/) of every file the group may write
 *     (opened for writing, or mapped shared and writable), put back before
 *     anything else at a restart, so that a restart after a crash finds
 *     the files as they were at the checkpoint.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "util.h"

int co_copy_bytes(int in, int out, uint64_t len)
{
	static char buf[1 << 20];
	while (len) {
		ssize_t k = copy_file_range(in, NULL, out, NULL, len, 0);
		if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
			ssize_t r = read(in, buf, len < sizeof(buf) ? len : sizeof(buf));
			k = r > 0 ? write(out, buf, (size_t)r) : r;
			if (r > 0 && k != r)
				return -1;
		}
		if (k <= 0)
			return k == 0 ? 0 : -1; /* 0: the file shrank meanwhile */
		len -= (uint64_t)k;
	}
	return 0;
}

/* The written files copied in this dump (d->ncopied of them), by identity: each is copied once. */
static uint64_t copied_dev[CO_MAX_REFS], copied_ino[CO_MAX_REFS];

/*
 * Open a file to read without moving its atime (O_NOATIME: allowed to
 * its owner and to CAP_FOWNER; anyone else reads it as the kernel lets).
 */
static int open_noatime(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
	return fd < 0 && errno == EPERM ? open(path, O_RDONLY | O_CLOEXEC) : fd;
}

int co_file_copy(struct co_kdump *d, const char *path)
{
	int in = open_noatime(path);
	if (in < 0)
		return 0; /* gone or unreadable: nothing to keep */
	struct stat st;
	fstat(in, &st);
	struct co_fcopy fc;
	memset(&fc, 0, sizeof(fc));
	fc.size = (uint64_t)st.st_size;
	fc.mode = st.st_mode & 07777;
	snprintf(fc.copy, sizeof(fc.copy), "%d", d->ncopies++);
	snprintf(fc.path, sizeof(fc.path), "%s", path);
	char out_path[PATH_MAX];
	snprintf(out_path, sizeof(out_path), "%s/files", d->dir);
	mkdir(out_path, 0700);
	snprintf(out_path, sizeof(out_path), "%s/files/%s", d->dir, fc.copy);
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ok = out >= 0 && co_copy_bytes(in, out, (uint64_t)st.st_size) == 0;
	close(in);
	if (out >= 0)
		close(out);
	if (!ok)
		return -1;
	/* the times as they were before our read (which O_NOATIME may not have kept from the atime) */
	struct co_ftimes ft = { st.st_atim.tv_sec, st.st_atim.tv_nsec, st.st_mtim.tv_sec, st.st_mtim.tv_nsec };
	if (co_w_rec(d->w, CO_R_FCOPY, &fc, __builtin_offsetof(struct co_fcopy, path) + strlen(fc.path) + 1))
		return -1;
	return co_w_rec(d->w, CO_R_FTIMES, &ft, sizeof(ft));
}

/* A file some descriptor may write: copied once per dump (by dev and inode). */
static int copy_written(struct co_kdump *d, int first)
{
	const struct co_ref *r = &d->refs[first];
	for (int k = 0; k < d->ncopied; k++)
		if (copied_dev[k] == r->dev && copied_ino[k] == r->ino)
			return 0;
	if (co_file_copy(d, r->path) < 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: cannot copy %s", r->pid, r->fd, r->path);
		return -1;
	}
	copied_dev[d->ncopied] = r->dev;
	copied_ino[d->ncopied++] = r->ino;
	return 0;
}

static int file_dump(struct co_kdump *d, int first, uint64_t *id)
{
	const struct co_ref *r = &d->refs[first];
	int writer = 0, others = 0;
	CO_FOR_HOLDERS(d, first, k) {
		writer |= (d->refs[k].flags & O_ACCMODE) != O_RDONLY;
		others |= d->refs[k].host != r->host;
	}
	if (writer && copy_written(d, first) < 0)
		return -1;
	if (!others)
		return 0; /* one process's own: its image has it */
	struct co_sfile sf;
	memset(&sf, 0, sizeof(sf));
	sf.id = (uint64_t)first + 1;
	sf.pos = r->pos;
	sf.flags = r->flags;
	snprintf(sf.path, sizeof(sf.path), "%s", r->path);
	co_w_rec(d->w, CO_R_SFILE, &sf, __builtin_offsetof(struct co_sfile, path) + strlen(sf.path) + 1);
	*id = sf.id;
	return 1;
}

/* The path of the last file put back: the CO_R_FTIMES record after its copy gives it its times. */
static char put_path[CO_PATH];

/* A copy's name, as co_file_copy makes it: a number, nothing that could lead out of files/. */
static int copy_name_ok(const char *name)
{
	if (!*name)
		return 0;
	for (; *name; name++)
		if (*name < '0' || *name > '9')
			return 0;
	return 1;
}

/*
 * The copy goes back over the file, which the restart opens without
 * following a symbolic link someone may have put in its place
 * (co_open_nofollow): images are untrusted input.
 */
static int put_back(struct co_krestore *x, const struct co_fcopy *c)
{
	char src[PATH_MAX];
	if (!copy_name_ok(c->copy))
		return co_kerr(x, "shared.img: the copy of %s is named '%s', not a file of files/", c->path, c->copy);
	snprintf(src, sizeof(src), "%s/files/%s", co_kdir(x), c->copy);
	snprintf(put_path, sizeof(put_path), "%s", c->path);
	/* a copy is checked against its manifest's digest before anything is written over the file */
	char rel[64];
	int listed;
	uint64_t d = 0;
	snprintf(rel, sizeof(rel), "files/%s", c->copy);
	const struct co_mfile *mf = co_kfile(x, rel, &listed);
	if (listed && !mf)
		return co_kerr(x, "%s: the copy of %s is not listed in the generation's manifest", src, c->path);
	if (mf && (mf->flags & CO_MF_DIGEST) && (co_file_digest(src, &d) || d != mf->digest))
		return co_kerr(x, "%s: the copy of %s is not what the manifest says (digest %016llx, expected %016llx)",
			       src, c->path, (unsigned long long)d, (unsigned long long)mf->digest);
	int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int out = -1, e = errno;
	if (in >= 0) {
		long r = co_open_nofollow(c->path, O_WRONLY | O_CREAT | O_TRUNC, (int)(c->mode & 07777));
		out = r < 0 ? -1 : (int)r;
		e = r < 0 ? (int)-r : 0;
	}
	int ok = out >= 0 && co_copy_bytes(in, out, c->size) == 0;
	if (out >= 0)
		e = errno;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	struct stat st;
	if (!ok && in >= 0 && out < 0 && (e == ELOOP || (lstat(c->path, &st) == 0 && S_ISLNK(st.st_mode))))
		return co_kerr(x, "cannot put back %s as it was at the checkpoint: a symbolic link is in its place, "
			       "or another user's on its way (not followed)", c->path);
	return ok ? 0 : co_kerr(x, "cannot put back %s as it was at the checkpoint: %s", c->path, strerror(e));
}

/*
 * The times of the file just put back, once nothing at the restore writes
 * it any more (the restorers only open and map it, with O_NOATIME where
 * they may).  The path, not a descriptor: the copy is closed.
 */
static int put_times(struct co_krestore *x, const struct co_ftimes *t)
{
	if (!put_path[0])
		return co_kbad(x, "file times without a file copy before them");
	struct timespec ts[2] = { { t->atime_sec, t->atime_nsec }, { t->mtime_sec, t->mtime_nsec } };
	if (utimensat(AT_FDCWD, put_path, ts, AT_SYMLINK_NOFOLLOW) < 0) /* never a link planted since */
		return co_kerr(x, "cannot set the times of %s back: %s", put_path, strerror(errno));
	put_path[0] = 0;
	return 0;
}

static int file_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	(void)len;
	if (type == CO_R_FCOPY) {
		struct co_fcopy c = *(const struct co_fcopy *)p;
		c.path[sizeof(c.path) - 1] = 0;
		c.copy[sizeof(c.copy) - 1] = 0;
		return put_back(x, &c);
	}
	if (type == CO_R_FTIMES)
		return put_times(x, p);
	struct co_sfile sf = *(const struct co_sfile *)p;
	sf.path[sizeof(sf.path) - 1] = 0;
	int f = open(sf.path, (int)(sf.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC)));
	if (f < 0)
		return co_kerr(x, "cannot reopen %s: %s", sf.path, strerror(errno));
	if (sf.flags & O_ASYNC) /* which open ignores */
		fcntl(f, F_SETFL, (int)(sf.flags & CO_FL_STATUS));
	lseek(f, (off_t)sf.pos, SEEK_SET);
	return co_made_add(x, CO_OBJ_FILE, sf.id, f, -1, 0);
}

static void file_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	(void)len;
	if (type == CO_R_FCOPY) {
		struct co_fcopy c = *(const struct co_fcopy *)p;
		c.path[sizeof(c.path) - 1] = 0;
		c.copy[sizeof(c.copy) - 1] = 0;
		snprintf(out, n, "%s (%llu bytes) as files/%s", c.path, (unsigned long long)c.size, c.copy);
		return;
	}
	if (type == CO_R_FTIMES) {
		const struct co_ftimes *t = p;
		snprintf(out, n, "atime %lld.%09lld mtime %lld.%09lld", (long long)t->atime_sec, (long long)t->atime_nsec,
			 (long long)t->mtime_sec, (long long)t->mtime_nsec);
		return;
	}
	struct co_sfile sf = *(const struct co_sfile *)p;
	sf.path[sizeof(sf.path) - 1] = 0;
	snprintf(out, n, "id %llu pos %llu flags %o %s", (unsigned long long)sf.id, (unsigned long long)sf.pos, sf.flags,
		 sf.path);
}

const struct co_kind_ops co_file_ops = {
	.kind = CO_OBJ_FILE, .identity = CO_ID_OPENFILE,
	.dump = file_dump, .restore = file_restore, .describe = file_describe,
};
