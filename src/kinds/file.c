/*
 * file.c - regular files with a name, and directories.  Each process
 * image keeps its own descriptors of them (src/res/files.c: path, flags,
 * offset); what these kinds add is what the group has in common:
 *   - an open file description that more than one process holds (one
 *     offset, or a directory's read position, moved by all of them; one
 *     set of status flags, one SIGIO owner): one CO_R_SFILE, opened once
 *     by init, handed to every holder by the plan;
 *   - a copy (CO_R_FCOPY, in files/) of every file the group may write
 *     (opened for writing, or mapped shared and writable), put back before
 *     anything else at a restart, so that a restart after a crash finds
 *     the files as they were at the checkpoint.
 * And files and directories deleted while open (no links left, "ghosts"
 * as CRIU calls them), with or without a name in the group, which exist
 * only through the group's descriptors (and working directories): one
 * CO_R_GHOST per open file description.  The first of an inode saves its
 * owner, mode, size and data (CO_R_GHOSTDATA runs, holes left out); init
 * makes it once where it was, removes it again and opens every
 * description of it through /proc/self/fd, so that all of them, in any
 * process, are one file again.  A file open(DIR, O_TMPFILE) made (glibc's
 * tmpfile(3), Python's TemporaryFile) is made so again, never named, so
 * that the program can still link it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "util.h"
#include "xxh64.h"

/* n bytes at off of in to the same offset of out: in the kernel when it can; 1 if in ended first. */
static int copy_run(int in, int out, uint64_t off, uint64_t n)
{
	static char buf[1 << 20];
	while (n) {
		loff_t oi = (loff_t)off, oo = (loff_t)off;
		ssize_t k = copy_file_range(in, &oi, out, &oo, n, 0);
		if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
			ssize_t r = pread(in, buf, n < sizeof(buf) ? n : sizeof(buf), (off_t)off);
			k = r > 0 ? pwrite(out, buf, (size_t)r, (off_t)off) : r;
			if (r > 0 && k != r)
				return -1;
		}
		if (k <= 0)
			return k == 0 ? 1 : -1;
		off += (uint64_t)k;
		n -= (uint64_t)k;
	}
	return 0;
}

/*
 * The first len bytes of in into out (empty), holes left holes: only the
 * runs of data are copied (SEEK_DATA, SEEK_HOLE), then out is given its
 * length.  A sparse file of GiBs with little written (a database's, a
 * download's) took that many GiB of zeros, and as long to write, in the
 * pause.  A file that shrank meanwhile is copied as far as it went.
 */
int co_copy_bytes(int in, int out, uint64_t len)
{
	uint64_t at = 0;
	while (at < len) {
		off_t data = lseek(in, (off_t)at, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* a hole up to the end */
		if (data < 0)
			data = (off_t)at; /* no SEEK_DATA here: all of it */
		if ((uint64_t)data >= len)
			break;
		off_t hole = lseek(in, data, SEEK_HOLE);
		uint64_t end = hole < 0 || (uint64_t)hole > len ? len : (uint64_t)hole;
		int r = copy_run(in, out, (uint64_t)data, end - (uint64_t)data);
		if (r)
			return r < 0 ? -1 : 0;
		at = end;
	}
	return ftruncate(out, (off_t)len);
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

/*
 * What the file of reference r is now (struct co_fstamp), for the restart
 * to open the same file again: through its /proc fd link, when that is
 * still the inode the reference was taken of (not a file the kernel makes:
 * co_path_kernel_made).
 */
static void stamp_of(const struct co_ref *r, struct co_fstamp *s)
{
	char src[64];
	struct stat st;
	if (co_path_kernel_made(r->path))
		return;
	snprintf(src, sizeof(src), "/proc/%d/fd/%d", r->host, r->fd);
	if (stat(src, &st) < 0 || !S_ISREG(st.st_mode) || st.st_dev != r->dev || st.st_ino != r->ino)
		return;
	*s = (struct co_fstamp){ 1, 0, (uint64_t)st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_dev,
				 st.st_ino };
}

/* The process whose /proc directory path is in (/proc/N, /proc/N/...): N, else 0. */
static int proc_pid_of(const char *path)
{
	int n = 0, pid;
	if (sscanf(path, "/proc/%d%n", &pid, &n) != 1 || pid <= 0 || (path[n] && path[n] != '/'))
		return 0;
	return pid;
}

/*
 * Init opens a shared description again before any process of the group
 * is back: one in the /proc directory of a process (its fd or task
 * directory, its status; not init's own, pid 1) cannot be found then
 * (the restart failed, ENOENT).  Refused at checkpoint time, naming it.
 */
static int proc_refuse(struct co_kdump *d, const struct co_ref *r)
{
	int pid = proc_pid_of(r->path);
	if (pid <= 1)
		return 0;
	snprintf(d->err, d->errlen, "pid %d: fd %d: %s, an open file description it shares with another process, is in "
		 "the /proc directory of process %d, which cohort cannot open again before that process is back", r->pid,
		 r->fd, r->path, pid);
	return -1;
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
	if (proc_refuse(d, r) < 0)
		return -1;
	struct co_sfile sf;
	memset(&sf, 0, sizeof(sf));
	sf.id = (uint64_t)first + 1;
	sf.pos = r->pos;
	sf.flags = r->flags;
	sf.obj = r->kind;
	snprintf(sf.path, sizeof(sf.path), "%s", r->path);
	/* a file the group may write is put back from its copy (above), times and all: no stamp */
	struct co_fstamp st = { 0 };
	if (!writer)
		stamp_of(r, &st);
	co_w_path_rec(d->w, CO_R_SFILE, &sf, offsetof(struct co_sfile, path), &st);
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
 * The paths the group's processes had open or mapped, as digests (sorted):
 * a copy is put back only over one of them.  An image names the target of
 * each copy, and images are untrusted input: a forged shared.img alone
 * must not make a restart as root write over any file it likes.
 */
#define MAX_HAD 65536
static uint64_t had[MAX_HAD];
static int nhad = -1; /* not gathered yet */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void had_add(const char *path, size_t max)
{
	if (nhad < MAX_HAD && path[0] == '/')
		had[nhad++] = co_xxh64(path, strnlen(path, max), 0);
}

/* A path a descriptor or mapping of a process image names (co_image_paths). */
static void had_record(unsigned t, const union co_path_rec *u, void *ctx)
{
	(void)ctx;
	if (t == CO_R_FD)
		had_add(u->fd.path, sizeof(u->fd.path));
	else if (t == CO_R_VMA)
		had_add(u->vma.path, sizeof(u->vma.path));
}

/* Add the paths of one process image's descriptors and mappings. */
static int had_of(struct co_krestore *x, const char *image)
{
	char err[512];
	return co_image_paths(co_kdir(x), image, had_record, NULL, err, sizeof(err)) ? co_kerr(x, "%s", err) : 0;
}

/* Whether some process of the generation had path open or mapped (-1: an image could not be read). */
static int group_had(struct co_krestore *x, const char *path)
{
	if (nhad < 0) {
		int n;
		const struct co_mproc *p = co_kprocs(x, &n);
		nhad = 0;
		for (int i = 0; i < n; i++)
			if (!(p[i].flags & CO_MP_ZOMBIE) && had_of(x, p[i].image) < 0)
				return nhad = -1, -1;
		qsort(had, (size_t)nhad, sizeof(had[0]), cmp_u64);
	}
	uint64_t k = co_xxh64(path, strlen(path), 0);
	return bsearch(&k, had, (size_t)nhad, sizeof(had[0]), cmp_u64) != NULL;
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
	int had_it = group_had(x, c->path);
	if (had_it < 0)
		return -1;
	if (!had_it)
		return co_kerr(x, "shared.img: a copy is to be put back over %s, which no process of the generation had "
			       "open or mapped", c->path);
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

/* Who holds the shared file at path: "pid P: fd F: " of the first process image found to, for a message; or "". */
struct holder {
	const char *path;
	int fd;
};

static void holder_record(unsigned t, const union co_path_rec *u, void *ctx)
{
	struct holder *h = ctx;
	if (h->fd < 0 && t == CO_R_FD && u->fd.kind == CO_FD_SHARED &&
	    (u->fd.obj == CO_OBJ_FILE || u->fd.obj == CO_OBJ_DIR) &&
	    strncmp(u->fd.path, h->path, sizeof(u->fd.path)) == 0)
		h->fd = u->fd.fd;
}

static void holder_of(struct co_krestore *x, const char *path, char *out, size_t n)
{
	int np;
	const struct co_mproc *p = co_kprocs(x, &np);
	char err[512];
	out[0] = 0;
	for (int i = 0; i < np; i++) {
		struct holder h = { path, -1 };
		if (p[i].flags & CO_MP_ZOMBIE || co_image_paths(co_kdir(x), p[i].image, holder_record, &h, err, sizeof(err)))
			continue;
		if (h.fd >= 0) {
			snprintf(out, n, "pid %d: fd %d: ", p[i].pid, h.fd);
			return;
		}
	}
}

/*
 * The shared file f just opened is the one the checkpoint saw (its stamp
 * after the path of record p, len bytes; none recorded: no check).  0, or
 * -1 naming a process that holds it, the file and what changed.
 */
static int file_same(struct co_krestore *x, int f, const struct co_sfile *sf, const void *p, uint64_t len)
{
	struct co_fstamp st;
	struct stat now;
	char why[160], who[64];
	co_path_rec_stamp(p, len, offsetof(struct co_sfile, path), &st);
	if (!st.recorded)
		return 0;
	if (fstat(f, &now) < 0)
		return co_kerr(x, "cannot look at %s again: %s", sf->path, strerror(errno));
	if (!co_fstamp_changed(&st, now.st_mode, (uint64_t)now.st_size, now.st_mtim.tv_sec, now.st_mtim.tv_nsec, why,
			       sizeof(why)))
		return 0;
	holder_of(x, sf->path, who, sizeof(who));
	return co_kerr(x, "%s%s changed since the checkpoint %s: cohort cannot restore it", who, sf->path, why);
}

/*
 * A directory's description, opened by its path with the program's flags
 * (F_GETFL reads them back: O_NOFOLLOW, and O_DIRECTORY only when it had
 * it) once an O_PATH look found a directory there, and not a FIFO or a
 * device put in its place, which a plain open would wait on or act on;
 * the two must be one inode.  The descriptor, or -1 with errno.
 */
static int dir_open(const struct co_sfile *sf)
{
	struct stat a, b;
	int look = open(sf->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (look < 0)
		return -1;
	int f = open(sf->path, (int)(co_reopen_flags(sf->flags, 0) & ~(uint32_t)O_CLOEXEC)), e = errno;
	if (f >= 0 && (fstat(look, &a) < 0 || fstat(f, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
		close(f);
		f = -1;
		e = ENOTDIR; /* replaced in between */
	}
	close(look);
	errno = e;
	return f;
}

static int file_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
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
	if (sf.obj && sf.obj != CO_OBJ_FILE && sf.obj != CO_OBJ_DIR)
		return co_kbad(x, "shared file %s of kind %u, neither a file nor a directory", sf.path, sf.obj);
	int dir = sf.obj == CO_OBJ_DIR;
	/* (an O_TMPFILE file linked since: by its name, without O_TMPFILE's flags, which want a directory) */
	int f = dir ? dir_open(&sf) : open(sf.path, (int)(co_reopen_flags(sf.flags, 1) & ~(uint32_t)O_CLOEXEC));
	if (f < 0)
		return co_kerr(x, "cannot reopen %s%s: %s", dir ? "directory " : "", sf.path, strerror(errno));
	if (file_same(x, f, &sf, p, len) < 0) {
		close(f);
		return -1;
	}
	if (sf.flags & O_ASYNC) /* which open ignores */
		fcntl(f, F_SETFL, (int)(sf.flags & CO_FL_STATUS));
	/* (a directory's read position too, on ext4 a hash cookie: see files.c) */
	if (sf.pos && lseek(f, (off_t)sf.pos, SEEK_SET) != (off_t)sf.pos) {
		int e = errno;
		close(f);
		return co_kerr(x, "cannot put %s back at its position %llu: %s", sf.path, (unsigned long long)sf.pos,
			       strerror(e));
	}
	return co_made_add(x, dir ? CO_OBJ_DIR : CO_OBJ_FILE, sf.id, f, -1, 0);
}

static void file_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
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
	char st[128];
	sf.path[sizeof(sf.path) - 1] = 0;
	snprintf(out, n, "id %llu pos %llu flags %o %s%s%s", (unsigned long long)sf.id, (unsigned long long)sf.pos,
		 sf.flags, sf.obj == CO_OBJ_DIR ? "directory " : "", sf.path,
		 co_stamp_text(p, len, offsetof(struct co_sfile, path), st, sizeof(st)));
}

const struct co_kind_ops co_file_ops = {
	.kind = CO_OBJ_FILE, .identity = CO_ID_OPENFILE,
	.dump = file_dump, .restore = file_restore, .describe = file_describe,
};

/*
 * A directory is dumped as a regular file is (never written, so never
 * copied, nor stamped), its CO_R_SFILE marked obj = CO_OBJ_DIR; the
 * record's owner is co_file_ops (records.c), whose restore makes it a
 * CO_OBJ_DIR object for the links of its holders.
 */
const struct co_kind_ops co_dir_ops = {
	.kind = CO_OBJ_DIR, .identity = CO_ID_OPENFILE,
	.dump = file_dump, .restore = file_restore, .describe = file_describe,
};

/* ---- files and directories deleted while open ---- */

/* Where the dump reads reference r: its /proc fd entry, or the process's cwd. */
static void ghost_src(const struct co_ref *r, char *p, size_t n)
{
	if (r->fd == CO_PLAN_CWD)
		snprintf(p, n, "/proc/%d/cwd", r->host);
	else
		snprintf(p, n, "/proc/%d/fd/%d", r->host, r->fd);
}

/* The checkpoint stops: "pid P: fd N: PATH (deleted) WHY" (or "working directory"). */
static int ghost_refuse(struct co_kdump *d, const struct co_ref *r, const char *why)
{
	char what[32];
	if (r->fd == CO_PLAN_CWD)
		snprintf(what, sizeof(what), "working directory");
	else
		snprintf(what, sizeof(what), "fd %d", r->fd);
	snprintf(d->err, d->errlen, "pid %d: %s: %s %s", r->pid, what, r->path, why);
	return -1;
}

/* It is made again where it was: that directory must be there (one deleted with it is not made again). */
static int ghost_where(struct co_kdump *d, const struct co_ref *r, const char *path)
{
	char dir[CO_PATH], why[CO_PATH + 96];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (path[0] != '/' || !slash)
		return ghost_refuse(d, r, "has no path cohort could make it again at");
	slash[slash == dir] = 0;
	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	snprintf(why, sizeof(why), "was deleted with its directory %s, which cohort cannot make again", dir);
	return ghost_refuse(d, r, why);
}

/*
 * Whether the deleted file of refs[first] (at path, st) is one that
 * open(DIR, O_TMPFILE) made: a description of it, any of the group's, has
 * __O_TMPFILE in its flags, or it has the name the kernel gives such a
 * file, "DIR/#INODE" with its own inode number (a description opened
 * again through /proc/self/fd, the first one closed since, has no such
 * flag).  A file of that name that was linked and removed is one too.
 */
static int ghost_tmpfile(const struct co_kdump *d, int first, const char *path, const struct stat *st)
{
	const struct co_ref *r = &d->refs[first];
	if (!S_ISREG(st->st_mode))
		return 0;
	for (int k = first; k < d->nrefs; k++) {
		const struct co_ref *q = &d->refs[k];
		if (q->kind == CO_OBJ_DELETED && q->dev == r->dev && q->ino == r->ino && (q->flags & CO_O_TMPFILE))
			return 1;
	}
	char name[32];
	const char *base = strrchr(path, '/');
	snprintf(name, sizeof(name), "#%llu", (unsigned long long)st->st_ino);
	return base && !strcmp(base + 1, name);
}

static int ghost_dump(struct co_kdump *d, int first, uint64_t *id)
{
	const struct co_ref *r = &d->refs[first];
	char src[64];
	struct stat st;
	struct co_ghost g;
	memset(&g, 0, sizeof(g));
	ghost_src(r, src, sizeof(src));
	if (stat(src, &st) < 0)
		return ghost_refuse(d, r, "cannot be looked at");
	g.id = (uint64_t)first + 1;
	g.same_as = co_ref_maker(d, first);
	g.size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	g.pos = r->pos;
	g.flags = r->flags;
	g.mode = st.st_mode;
	g.uid = st.st_uid;
	g.gid = st.st_gid;
	snprintf(g.path, sizeof(g.path), "%s", r->path);
	if (co_endswith(g.path, " (deleted)"))
		g.path[strlen(g.path) - 10] = 0;
	if (!g.same_as && ghost_where(d, r, g.path) < 0)
		return -1;
	if (!g.same_as && ghost_tmpfile(d, first, g.path, &st))
		g.mode |= CO_GHOST_TMPFILE;
	co_w_rec(d->w, CO_R_GHOST, &g, offsetof(struct co_ghost, path) + strlen(g.path) + 1);
	if (!g.same_as && g.size) {
		/* a description of its own to read it by: the program's offset stays */
		int f = open(src, O_RDONLY | O_CLOEXEC);
		int bad = f < 0 || co_write_runs(d->w, CO_R_GHOSTDATA, f, 0, 0, g.size) < 0;
		if (f >= 0)
			close(f);
		if (bad)
			return ghost_refuse(d, r, "cannot be read");
	}
	*id = g.id;
	return d->w->err ? -1 : 1;
}

/*
 * f, a description just opened with flags, given what open leaves out:
 * O_ASYNC (F_SETFL) and its offset pos (< 0: left at 0).  f, or -1 with
 * errno, f closed.
 */
static int settle_desc(int f, uint32_t flags, int64_t pos)
{
	int bad = (flags & O_ASYNC) && fcntl(f, F_SETFL, (int)(flags & CO_FL_STATUS)) < 0;
	if (!bad && pos > 0 && lseek(f, (off_t)pos, SEEK_SET) != (off_t)pos)
		bad = 1;
	if (bad) {
		int e = errno;
		close(f);
		errno = e;
		return -1;
	}
	return f;
}

int co_reopen(int from, uint32_t flags, int64_t pos)
{
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", from);
	int f = open(self, (int)(flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW | O_CLOEXEC)));
	return f < 0 ? -1 : settle_desc(f, flags, pos);
}

/* The deleted file the CO_R_GHOSTDATA records after its CO_R_GHOST fill (writable). */
static int cur_ghost = -1;

/* A ghost that open(DIR, O_TMPFILE) made: the dump's mark, or (older images) its first description's flags. */
static int ghost_is_tmpfile(const struct co_ghost *g)
{
	return !S_ISDIR(g->mode) && ((g->mode & CO_GHOST_TMPFILE) || (g->flags & CO_O_TMPFILE));
}

/* The flags a description of g is opened with again (a file's without O_TMPFILE's, which want a directory). */
static int ghost_flags(const struct co_ghost *g)
{
	return (int)(co_reopen_flags(g->flags, !S_ISDIR(g->mode)) & ~(uint32_t)O_CLOEXEC);
}

/*
 * Make g's file or directory again where it was (beside it when the name
 * is taken: NAME.cohort-N), and remove it again at once: a descriptor of
 * it (writable, for a file), or -1.
 */
static int ghost_make_named(struct co_krestore *x, const struct co_ghost *g)
{
	char path[CO_PATH + 32];
	int dir = S_ISDIR(g->mode), f = -1;
	snprintf(path, sizeof(path), "%s", g->path);
	for (int i = 0; i < 100; i++) {
		if (!dir)
			f = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		else if (mkdir(path, 0700) == 0 && (f = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			rmdir(path);
		if (f >= 0 || errno != EEXIST)
			break;
		snprintf(path, sizeof(path), "%s.cohort-%d", g->path, i);
	}
	if (f < 0)
		return co_kerr(x, "cannot make deleted %s %s again: %s", dir ? "directory" : "file", g->path,
			       strerror(errno));
	if ((dir ? rmdir(path) : unlink(path)) < 0) {
		int e = errno;
		close(f);
		return co_kerr(x, "cannot make deleted %s %s again: %s", dir ? "directory" : "file", path, strerror(e));
	}
	return f;
}

/*
 * Make g's O_TMPFILE file again as the program made it: nameless, by
 * open(DIR, O_TMPFILE) in its directory.  Only such a file can still be
 * given a name (linkat of /proc/self/fd/N, or AT_EMPTY_PATH: one made and
 * unlinked, ENOENT), and the kernel shows it as "DIR/#INODE (deleted)"
 * again, with the number of its new inode.  When g's description was
 * that open's (its flags have __O_TMPFILE), the open is made with its
 * flags and *own is that description, whose F_GETFL then reads them back
 * as the program saw them (O_NOFOLLOW too, which an open of
 * /proc/self/fd/N cannot have); the writable descriptor returned is
 * another, opened before the file gets its mode.
 * A directory where the kernel cannot make one (EOPNOTSUPP) fails the
 * restart: a file made otherwise could never be linked.
 */
static int ghost_make_tmpfile(struct co_krestore *x, const struct co_ghost *g, int *own)
{
	char dir[CO_PATH];
	snprintf(dir, sizeof(dir), "%s", g->path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return co_kbad(x, "deleted file %s has no directory", g->path);
	slash[slash == dir] = 0;
	int mine = (g->flags & CO_O_TMPFILE) != 0;
	int f = open(dir, (mine ? ghost_flags(g) : O_RDWR | O_CLOEXEC) | O_TMPFILE, 0600);
	if (f < 0)
		return co_kerr(x, "cannot make deleted file %s again: open(%s, O_TMPFILE): %s", g->path, dir,
			       strerror(errno));
	if (!mine)
		return f;
	/* a descriptor to fill it by: the program's may be O_WRONLY, O_APPEND, O_DIRECT */
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", f);
	int w = open(self, O_RDWR | O_CLOEXEC);
	if (w < 0) {
		int e = errno;
		close(f);
		return co_kerr(x, "cannot make deleted file %s again: %s", g->path, strerror(e));
	}
	*own = f;
	return w;
}

/*
 * Make g's file or directory again (an O_TMPFILE file so, others under
 * their name, removed at once) with its size, owner (as far as the
 * restart's credentials allow: without privileges, the restarting
 * user's, or its group when it is one of ours) and mode: a descriptor of
 * it (writable, for a file), or -1.  *own: see ghost_make_tmpfile, else -1.
 */
static int ghost_make(struct co_krestore *x, const struct co_ghost *g, int *own)
{
	*own = -1;
	int f = ghost_is_tmpfile(g) ? ghost_make_tmpfile(x, g, own) : ghost_make_named(x, g);
	if (f < 0)
		return -1;
	if (!S_ISDIR(g->mode) && ftruncate(f, (off_t)g->size) < 0) {
		int e = errno;
		close(f);
		if (*own >= 0)
			close(*own);
		return co_kerr(x, "cannot make deleted file %s again: %s", g->path, strerror(e));
	}
	/* an owner not ours to give: the restarting user's, with the group if it is one of ours */
	if (fchown(f, g->uid, g->gid) < 0)
		(void)!fchown(f, (uid_t)-1, g->gid);
	fchmod(f, g->mode & 07777);
	return f;
}

static int ghost_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	if (type == CO_R_GHOSTDATA)
		return co_read_run(x, cur_ghost, p, len, "a deleted file");
	struct co_ghost g = *(const struct co_ghost *)p;
	g.path[sizeof(g.path) - 1] = 0;
	int from = g.same_as ? co_made_fd(x, CO_OBJ_DELETED, g.same_as, 0) : -1, f = -1;
	if (g.same_as && from < 0)
		return co_kbad(x, "deleted file %s refers to a missing one", g.path);
	if (!g.same_as) {
		if (cur_ghost >= 0)
			close(cur_ghost);
		from = cur_ghost = ghost_make(x, &g, &f);
		if (from < 0)
			return -1;
	}
	/* a description of its own, with its flags and offset, on the one inode (unless ghost_make opened it) */
	int64_t pos = S_ISDIR(g.mode) || g.pos > INT64_MAX ? -1 : (int64_t)g.pos;
	f = f < 0 ? co_reopen(from, (uint32_t)ghost_flags(&g), pos) : settle_desc(f, g.flags, pos);
	if (f < 0)
		return co_kerr(x, "cannot reopen deleted %s %s: %s", S_ISDIR(g.mode) ? "directory" : "file", g.path,
			       strerror(errno));
	return co_made_add(x, CO_OBJ_DELETED, g.id, f, -1, 0);
}

static void ghost_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	if (type == CO_R_GHOSTDATA) {
		co_describe_run(p, len, out, n);
		return;
	}
	struct co_ghost g = *(const struct co_ghost *)p;
	g.path[sizeof(g.path) - 1] = 0;
	char made[96], size[32] = "";
	if (!S_ISDIR(g.mode))
		snprintf(size, sizeof(size), "%llu bytes, ", (unsigned long long)g.size);
	if (g.same_as)
		snprintf(made, sizeof(made), "the inode of id %llu", (unsigned long long)g.same_as);
	else
		snprintf(made, sizeof(made), "%smode %o, owner %u:%u%s", size, g.mode & 07777, g.uid, g.gid,
			 ghost_is_tmpfile(&g) ? ", made by O_TMPFILE" : "");
	snprintf(out, n, "id %llu %s %s, %s, pos %llu flags %o", (unsigned long long)g.id,
		 S_ISDIR(g.mode) ? "directory" : "file", g.path, made, (unsigned long long)g.pos, g.flags);
}

const struct co_kind_ops co_ghost_ops = {
	.kind = CO_OBJ_DELETED, .identity = CO_ID_OPENFILE,
	.dump = ghost_dump, .restore = ghost_restore, .describe = ghost_describe,
};
