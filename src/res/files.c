/*
 * files.c - file descriptors: regular files and directories (path, flags,
 * offset), character devices, the group's outside stdio, and descriptors
 * that share one open file description (found with kcmp).  What a
 * descriptor is comes from the one classifier (src/kinds/classify.c); the
 * objects the group shares (pipes, Unix sockets, eventfds, files and
 * directories deleted while open, the open file description of a file or
 * directory several processes hold, ...) are recorded here only as
 * CO_FD_SHARED with their kind: the coordinator captures them once
 * (src/kinds/) and the restorer takes them from init's plan.  A file
 * deleted under the name it was opened by but linked under another comes
 * back through that other name (co_find_link), or the checkpoint stops.
 * Every other kind stops the checkpoint with a message naming the
 * process, the descriptor and the kind.  Images written before deleted
 * files were captured for the group hold their content here
 * (CO_FD_DELETED, CO_R_FILEDATA): the restorer still reads them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include "kinds/classify.h"
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#ifndef COHORT_RESTORER
static struct co_fd fds[CO_MAX_FDS];
static int nfds;		/* described by the last collect */
/* the file locks held through them, in the order of fds (a lock shows on every descriptor it is held through) */
static struct co_lock locks[CO_MAX_LOCKS];
static int nlocks;
/* the SIGIO owners and signals set on them, in the order of fds */
static struct co_fdowner owners[CO_MAX_FDS];
static int nowners;
static uint64_t fd_dev[CO_MAX_FDS], fd_ino[CO_MAX_FDS];
/* what the regular files reopened by path were (image.h: struct co_fstamp), in the order of fds */
static struct co_fstamp stamps[CO_MAX_FDS];

static int is_skipped(struct co_dumpctx *d, int fd)
{
	for (int i = 0; i < d->nskip_fd; i++)
		if (d->skip_fd[i] == fd)
			return 1;
	return 0;
}

/* What an unsupported descriptor is, for the message: "socket (not a Unix socket)", "[inotify]", ... */
static const char *kind_name(uint32_t kind, const char *link)
{
	if (kind == CO_OBJ_OTHER && co_startswith(link, "anon_inode:"))
		return link + 11;
	return co_obj_name(kind);
}

/* Is fd one whose open file the coordinator recorded for the group (DUMP's list)? */
/*
 * memfd_secret(2): memory even the kernel does not map, which no process
 * but its holders can read, a checkpoint included.  /proc shows it as a
 * file "/secretmem (deleted)" that is still linked; the filesystem's
 * magic number tells it from a file of that name.
 */
#define CO_SECRETMEM_MAGIC 0x5345434dL
static int is_secretmem(int fd, const char *path)
{
	struct statfs sfs;
	return co_strcmp(path, "/secretmem (deleted)") == 0 && co_sys2(SYS_fstatfs, fd, (long)&sfs) == 0 &&
	       (long)sfs.f_type == CO_SECRETMEM_MAGIC;
}

static int group_holds(const struct co_dumpctx *d, int fd)
{
	for (int i = 0; i < d->nshared_fds; i++)
		if (d->shared_fds[i] == fd)
			return 1;
	return 0;
}

/* SO_DOMAIN of a socket of ours (AF_UNIX is 1), -1 if it cannot be told */
static int sock_domain(int fd)
{
	int dom = -1;
	unsigned len = sizeof(dom);
	if (co_sys5(SYS_getsockopt, fd, 1 /* SOL_SOCKET */, 39 /* SO_DOMAIN */, (long)&dom, (long)&len) < 0)
		return -1;
	return dom;
}

/*
 * A namespace descriptor comes back as the process's own namespace of its
 * type (/proc/self/ns/NAME, opened again by the restored process: its
 * group's namespaces then, or the restart's); one of another process's
 * cannot be found again.  0 with f->path set, or -1.
 */
static int own_ns(struct co_fd *f, const struct stat *st)
{
	static const char *const names[] = { "cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time",
					     "time_for_children", "user", "uts" };
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char p[64];
		struct stat ns;
		co_fmt(p, sizeof(p), "/proc/self/ns/%s", names[i]);
		if (co_sys4(SYS_newfstatat, AT_FDCWD, (long)p, (long)&ns, 0) == 0 && ns.st_dev == st->st_dev &&
		    ns.st_ino == st->st_ino) {
			co_strlcpy(f->path, p, sizeof(f->path));
			return 0;
		}
	}
	return -1;
}

/*
 * What a regular file reopened by path is now, for the restart to find the
 * same file there (struct co_fstamp).  Not one opened for writing: the
 * checkpoint copies that (src/kinds/file.c), and a restart puts the copy
 * back, times and all, before anything opens it.  Nor one the kernel makes
 * (/proc/2/status is new in the restarted process).
 */
static void stamp(struct co_fstamp *s, const struct co_fd *f, const struct stat *st)
{
	if ((f->flags & O_ACCMODE) != O_RDONLY || !S_ISREG(st->st_mode) || co_path_kernel_made(f->path))
		return;
	*s = (struct co_fstamp){ 1, 0, (uint64_t)st->st_size, st->st_mtim.tv_sec, st->st_mtim.tv_nsec, st->st_dev,
				 st->st_ino };
}

/* Describe one descriptor; 0 ok, -1 unsupported (err filled). */
static int describe(struct co_dumpctx *d, int fd, struct co_fd *f, int n)
{
	char proc[64];
	struct stat st;
	co_memset(f, 0, sizeof(*f));
	co_memset(&stamps[n], 0, sizeof(stamps[n]));
	f->fd = fd;
	f->same_as = -1;
	f->slot = -1;
	co_fmt(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	long l = co_readlink(proc, f->path, sizeof(f->path) - 1);
	f->path[l > 0 ? l : 0] = 0;
	if (co_fstat(fd, &st) < 0)
		return DERR(d, "pid %d: fd %d: cannot stat", d->pid, fd);
	fd_dev[n] = st.st_dev;
	fd_ino[n] = st.st_ino;
	f->mode = st.st_mode;
	struct co_fdstat cs = { st.st_mode, st.st_nlink, f->path, (st.st_mode & S_IFMT) == S_IFSOCK ? sock_domain(fd) : -1,
				st.st_rdev };
	f->obj = co_fd_classify(&cs);
	int got = 0;
	const char *other = "";
	int lr = co_fdinfo_locks(0, fd, &f->pos, &f->flags, locks + nlocks, CO_MAX_LOCKS - nlocks, &got, &other);
	if (lr == -ENOTSUP)
		return DERR(d, "pid %d: fd %d: it holds a %s (%s), which cohort cannot restore yet", d->pid, fd,
			    co_strcmp(other, "LEASE") ? other : "lease", f->path);
	if (lr == -E2BIG)
		return DERR(d, "pid %d: fd %d: more file locks than cohort can save (%d in all)", d->pid, fd,
			    CO_MAX_LOCKS);
	nlocks += got;
	f->cloexec = (co_fcntl(fd, F_GETFD, 0) & FD_CLOEXEC) ? 1 : 0;
	f->flags &= ~(uint32_t)O_CLOEXEC;

	/* a second descriptor for an open file description we already have */
	for (int j = 0; j < n; j++) {
		if (fd_dev[j] == st.st_dev && fd_ino[j] == st.st_ino &&
		    co_kcmp(d->pid, d->pid, KCMP_FILE, fds[j].fd, fd) == 0) {
			f->kind = CO_FD_DUP;
			f->same_as = fds[j].fd;
			return 0;
		}
	}
	int slot = co_stdio_slot(d->stdio, d->stdio_marks, fd, st.st_dev, st.st_ino);
	if (slot >= 0) {
		f->kind = CO_FD_STDIO;
		f->slot = slot;
		return 0;
	}
	if (is_secretmem(fd, f->path))
		return DERR(d, "pid %d: fd %d: secret memory (memfd_secret) cannot be saved", d->pid, fd);
	switch (f->obj) {
	case CO_OBJ_FILE:
		/* deleted under this name, still linked under another: that one shares its writes, a copy would not */
		if (co_endswith(f->path, " (deleted)") &&
		    co_find_link(f->path, st.st_dev, st.st_ino, f->path, sizeof(f->path)) < 0)
			return DERR(d, "pid %d: fd %d: %s is still linked under another name, which cohort cannot find "
				    "near it", d->pid, fd, f->path);
		/* an open file other processes hold too: init opens it once (src/kinds/file.c) */
		f->kind = group_holds(d, fd) ? CO_FD_SHARED : CO_FD_REG;
		if (f->kind == CO_FD_SHARED)
			f->pos = 0; /* the open file's, in shared.img */
		else
			stamp(&stamps[n], f, &st);
		return 0;
	case CO_OBJ_SYMLINK: /* O_PATH | O_NOFOLLOW: reopened so, it is the link again */
		f->kind = CO_FD_REG;
		return 0;
	case CO_OBJ_NS:
		if (own_ns(f, &st) < 0)
			return DERR(d, "pid %d: fd %d: %s is not a namespace of its own, which cohort cannot restore",
				    d->pid, fd, f->path);
		f->kind = CO_FD_REG;
		return 0;
	case CO_OBJ_DIR:
		/*
		 * One open file description other processes hold too (opened,
		 * then fork): one read position, flags and owner for all of
		 * them, so init opens it once (src/kinds/file.c); reopened here
		 * per process, a child's readdir no longer moved its parent's.
		 */
		f->kind = group_holds(d, fd) ? CO_FD_SHARED : CO_FD_REG;
		if (f->kind == CO_FD_SHARED)
			f->pos = 0; /* the open file's, in shared.img */
		return 0;
	case CO_OBJ_CHR:
		f->kind = CO_FD_CHR;
		return 0;
	}
	if (f->obj == CO_OBJ_PIDFD)
		return co_pidfd_describe(d, f);
	/* the coordinator captures these once for the group, with their state and data */
	if (co_obj_group_wide(f->obj)) {
		f->kind = CO_FD_SHARED;
		f->pos = 0; /* the object's, in shared.img */
		return 0;
	}
	return DERR(d, "pid %d: fd %d: unsupported descriptor kind %s (%s)", d->pid, fd,
		    kind_name(f->obj, f->path), f->path);
}

/*
 * The descriptor's SIGIO owner and signal (fdinfo shows neither; fcntl
 * here gives the owner's pid in the group's namespace).  An owner that is
 * gone could not be set again: refused.  0, or -1 with err filled.
 */
static int owner_collect(struct co_dumpctx *d, const struct co_fd *f)
{
	static const char *const types[] = { "thread", "process", "process group" };
	struct { int type, pid; } ow = { 0, 0 };
	long sig = co_fcntl(f->fd, CO_F_GETSIG, 0);
	if (co_fcntl(f->fd, CO_F_GETOWN_EX, (long)&ow) < 0)
		ow.pid = 0; /* O_PATH descriptors have neither */
	if (sig < 0)
		sig = 0;
	if (!ow.pid && !sig)
		return 0;
	long alive = !ow.pid ? 0 : ow.type == 0 ? co_sys2(SYS_tkill, ow.pid, 0)
				     : co_kill(ow.type == 2 ? -ow.pid : ow.pid, 0);
	if (alive == -ESRCH || ow.type < 0 || ow.type > 2)
		return DERR(d, "pid %d: fd %d: its SIGIO owner (%s %d) no longer exists, which cohort cannot restore",
			    d->pid, f->fd, ow.type >= 0 && ow.type <= 2 ? types[ow.type] : "?", ow.pid);
	owners[nowners++] = (struct co_fdowner){ f->fd, ow.type, ow.pid, (int32_t)sig };
	return 0;
}

int co_files_collect(struct co_dumpctx *d)
{
	int dfd = (int)co_open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0)
		return DERR(d, "pid %d: cannot list /proc/self/fd", d->pid);
	/* collect the numbers first, then describe them in ascending order */
	static int nums[CO_MAX_FDS + 1];
	int all = co_dir_numbers(dfd, nums, CO_MAX_FDS + 1), n = 0;
	co_close(dfd);
	if (all < 0)
		return DERR(d, "pid %d: cannot list /proc/self/fd%s", d->pid, all == -E2BIG ? ": too many descriptors" : "");
	for (int i = 0; i < all; i++)
		if (nums[i] != dfd && !is_skipped(d, nums[i]))
			nums[n++] = nums[i];
	if (n > CO_MAX_FDS)
		return DERR(d, "pid %d: more than %d descriptors", d->pid, CO_MAX_FDS);
	nlocks = nowners = 0;
	for (int i = 0; i < n; i++) {
		if (describe(d, nums[i], &fds[i], i))
			return -1;
		/* an owner belongs to the open file description: a dup has its first descriptor's */
		if (fds[i].kind != CO_FD_DUP && owner_collect(d, &fds[i]))
			return -1;
	}
	d->nfds = (uint32_t)n;
	nfds = n;
	return 0;
}

/*
 * How many flock and OFD locks (posix: POSIX locks) the last collect found
 * (each time it is held through a descriptor): told to the coordinator
 * with DONE, which lets go of them at a migration's stop
 * (coord/hold_locks.c) and so looks only at the members that hold some.
 */
int co_files_flocks(int posix)
{
	int n = 0;
	for (int i = 0; i < nlocks; i++)
		n += posix ? locks[i].kind == CO_LK_POSIX : locks[i].kind == CO_LK_FLOCK || locks[i].kind == CO_LK_OFD;
	return n;
}

/*
 * A migration's hold: the process's POSIX locks that its image holds let
 * go (take 0) or taken back (1, without waiting).  A POSIX lock belongs to
 * the process's descriptor table, and only a thread sharing it can take or
 * drop one: a parked program thread, on the manager's word (quiesce.c,
 * co_agent.job), through the descriptor the lock was seen on (closing one
 * would drop every lock the process holds on the file).  Async-signal-safe.
 * 0, or -errno with what failed in err.
 */
int co_files_posix_set(int take, char *err, size_t errlen)
{
	for (int i = 0; i < nlocks; i++) {
		const struct co_lock *l = &locks[i];
		if (l->kind != CO_LK_POSIX)
			continue;
		struct flock fl = { .l_type = !take ? F_UNLCK : l->write ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET,
				    .l_start = (off_t)l->start, .l_len = (off_t)l->len };
		long r = co_fcntl(l->fd, F_SETLK, (long)&fl);
		if (r < 0 && take) {
			const char *path = "";
			for (int k = 0; k < nfds; k++)
				if (fds[k].fd == l->fd)
					path = fds[k].path;
			co_fmt(err, errlen, "fd %d: its POSIX %s lock on %s, bytes %lu+%lu", l->fd,
			       l->write ? "write" : "read", path, (unsigned long)l->start, (unsigned long)l->len);
			return (int)r;
		}
	}
	return 0;
}

int co_files_dump(struct co_dumpctx *d)
{
	int l = 0, o = 0;
	for (uint32_t i = 0; i < d->nfds; i++) {
		const struct co_fd *f = &fds[i];
		if (co_w_path_rec(d->w, CO_R_FD, f, __builtin_offsetof(struct co_fd, path), &stamps[i]))
			return DERR(d, "pid %d: writing descriptor %d failed", d->pid, f->fd);
		for (; l < nlocks && locks[l].fd == f->fd; l++)
			if (co_w_rec(d->w, CO_R_LOCK, &locks[l], sizeof(locks[l])))
				return DERR(d, "pid %d: writing a lock of descriptor %d failed", d->pid, f->fd);
		for (; o < nowners && owners[o].fd == f->fd; o++)
			if (co_w_rec(d->w, CO_R_FDOWNER, &owners[o], sizeof(owners[o])))
				return DERR(d, "pid %d: writing the owner of descriptor %d failed", d->pid, f->fd);
		/* its dnotify watch, which the agent noted (src/agent/dnotify.c) */
		for (int k = 0; k < d->ndnotify; k++)
			if (d->dnotify[k].fd == f->fd && co_w_rec(d->w, CO_R_DNOTIFY, &d->dnotify[k], sizeof(d->dnotify[k])))
				return DERR(d, "pid %d: writing the dnotify watch of descriptor %d failed", d->pid, f->fd);
	}
	return 0;
}
#else /* the restorer */

/* Images written before deleted files were the group's: the content follows, recreated under its old name, opened, unlinked. */
static int reopen_deleted(struct co_rstctx *rc, const struct co_fd *f)
{
	struct co_reader *r = rc->r;
	if (co_r_next(r) != 1 || r->hdr.type != CO_R_FILEDATA)
		return co_err(rc->err, rc->errlen, "%s", r->err[0] ? r->err : "deleted file content missing");
	char path[CO_PATH + 32];
	co_strlcpy(path, f->path, sizeof(path));
	int tmp = (int)co_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (int)(f->mode & 07777));
	for (int i = 0; tmp == -EEXIST && i < 100; i++) {
		co_fmt(path, sizeof(path), "%s.cohort-%d", f->path, i);
		tmp = (int)co_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (int)(f->mode & 07777));
	}
	if (tmp < 0)
		return co_err(rc->err, rc->errlen, "fd %d: cannot recreate deleted file %s (errno %d%s)",
			      f->fd, f->path, -tmp, co_creds_why(&rc->ids, tmp));
	while (r->left) {
		uint64_t n = r->left < rc->scratch_len ? r->left : rc->scratch_len;
		if (co_r_read(r, rc->scratch, n) || co_write(tmp, rc->scratch, n) != (long)n) {
			co_close(tmp);
			co_unlink(path);
			return co_err(rc->err, rc->errlen, "%s", r->err[0] ? r->err : "cannot write deleted file");
		}
	}
	co_close(tmp);
	if (co_r_finish(r)) {
		co_unlink(path);
		return co_err(rc->err, rc->errlen, "%s", r->err);
	}
	int fd = (int)co_open(path, (int)co_reopen_flags(f->flags, 1), 0);
	co_unlink(path);
	return fd;
}

/*
 * The file locks, once the process has all its descriptors and nothing of
 * the restorer's closes one of its files any more (closing any
 * descriptor of a file drops the process's POSIX locks on it).  A lock
 * another process has taken meanwhile fails the restart, naming it.
 */
int co_locks_restore(struct co_rstctx *rc)
{
	static const char *const names[] = { "", "POSIX", "flock", "OFD" };
	for (int i = 0; i < rc->nlocks; i++) {
		const struct co_lock *l = &rc->locks[i];
		long r;
		if (l->kind == CO_LK_FLOCK) {
			r = co_sys2(SYS_flock, l->fd, (l->write ? 2 /* LOCK_EX */ : 1 /* LOCK_SH */) | 4 /* LOCK_NB */);
		} else if (l->kind == CO_LK_POSIX || l->kind == CO_LK_OFD) {
			/* the kernel's struct flock */
			struct { short type, whence; long start, len; int pid; } fl = {
				l->write ? 1 /* F_WRLCK */ : 0 /* F_RDLCK */, 0 /* SEEK_SET */, (long)l->start, (long)l->len, 0
			};
			r = co_fcntl(l->fd, l->kind == CO_LK_OFD ? 37 /* F_OFD_SETLK */ : F_SETLK, (long)&fl);
		} else {
			return co_err(rc->err, rc->errlen, "pid %d: fd %d: unknown lock kind %u in image", rc->proc->pid,
				      l->fd, l->kind);
		}
		if (r < 0)
			return co_err(rc->err, rc->errlen,
				      "pid %d: fd %d: cannot take its %s %s lock on bytes %lu+%lu back (errno %ld%s)",
				      rc->proc->pid, l->fd, names[l->kind], l->write ? "write" : "read",
				      (unsigned long)l->start, (unsigned long)l->len, -r,
				      r == -EAGAIN || r == -EWOULDBLOCK ? ": another process holds the file locked" : "");
	}
	return 0;
}

/*
 * The SIGIO owners and signals.  An owner must exist to be set: another
 * process of the group may not be back yet (each makes its children
 * first, then restores itself), a thread of another process not before
 * that process's threads; so a missing one is waited for, up to ten
 * seconds.
 */
int co_owners_restore(struct co_rstctx *rc)
{
	for (int i = 0; i < rc->nowners; i++) {
		const struct co_fdowner *o = &rc->owners[i];
		struct { int type, pid; } ow = { o->type, o->pid };
		long r = co_fcntl(o->fd, CO_F_SETSIG, o->sig);
		for (int ms = 0; !r && o->pid; ms++) {
			r = co_fcntl(o->fd, CO_F_SETOWN_EX, (long)&ow);
			if (r != -ESRCH || ms == 10000)
				break;
			struct co_timespec one = { 0, 1000000 };
			co_nanosleep(&one);
		}
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: fd %d: cannot give its SIGIO owner (%d) and signal %d "
				      "back (errno %ld)", rc->proc->pid, o->fd, o->pid, o->sig, -r);
	}
	return 0;
}

/*
 * F_NOTIFY again with the events the program had asked for, on the
 * descriptor its signals named: one watch for this descriptor table and
 * the open file, as the kernel had.  The first F_NOTIFY on a file makes
 * the caller its SIGIO owner when it has none: taken away again here,
 * co_owners_restore (after this) sets the owner the checkpoint saw.
 */
int co_dnotify_restore(struct co_rstctx *rc)
{
	for (int i = 0; i < rc->ndnotify; i++) {
		const struct co_dnotify *w = &rc->dnotify[i];
		long r = co_fcntl(w->fd, CO_F_NOTIFY, (long)w->mask);
		if (r == 0)
			r = co_fcntl(w->fd, F_SETOWN, 0);
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: fd %d: cannot make its dnotify watch again (F_NOTIFY "
				      "0x%x: errno %ld)", rc->proc->pid, w->fd, w->mask, -r);
	}
	return 0;
}

long co_files_chdir(struct co_rstctx *rc, const char *cwd)
{
	/* a deleted one: the directory init made again and removed (src/kinds/file.c) */
	int dir = co_plan_fd(rc, rc->proc->pid, CO_PLAN_CWD);
	if (dir >= 0)
		return co_sys1(SYS_fchdir, dir);
	return cwd[0] ? co_chdir(cwd) : 0;
}

int co_file_same(struct co_rstctx *rc, int fd, const struct co_fstamp *st, const char *what)
{
	struct stat now;
	char why[160];
	if (!st->recorded)
		return 0; /* an older image, or a file the group may write (copied, put back already) */
	long r = co_fstat(fd, &now);
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: %s: cannot look at it (errno %ld)", rc->proc->pid, what, -r);
	if (!co_fstamp_changed(st, now.st_mode, (uint64_t)now.st_size, now.st_mtim.tv_sec, now.st_mtim.tv_nsec, why,
			       sizeof(why)))
		return 0;
	return co_err(rc->err, rc->errlen, "pid %d: %s changed since the checkpoint %s: cohort cannot restore it",
		      rc->proc->pid, what, why);
}

int co_files_restore_one(struct co_rstctx *rc, const struct co_fd *f, const struct co_fstamp *st)
{
	int fd;
	int shared = co_plan_fd(rc, rc->proc->pid, f->fd);
	if (shared >= 0) {
		/* one open file description for the whole group, made by init */
		long r = co_sys3(SYS_dup3, shared, f->fd, f->cloexec ? O_CLOEXEC : 0);
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: fd %d: cannot place shared descriptor (errno %ld)",
				      rc->proc->pid, f->fd, -r);
		return 0;
	}
	if (f->kind == CO_FD_SHARED)
		return co_err(rc->err, rc->errlen, "pid %d: fd %d: %s is missing from the group's shared objects",
			      rc->proc->pid, f->fd, f->path);
	switch (f->kind) {
	case CO_FD_DUP:
		fd = f->same_as;
		break;
	case CO_FD_STDIO:
		fd = rc->stdio[f->slot];
		break;
	case CO_FD_PIDFD:
		return co_pidfd_later(rc, f); /* once every process of the group exists */
	case CO_FD_DELETED:
		fd = reopen_deleted(rc, f);
		if (fd < 0)
			return -1;
		break;
	case CO_FD_REG:
	case CO_FD_CHR:
		/* an O_TMPFILE file linked since comes back by its name: its flags without O_TMPFILE's (ENOTDIR) */
		fd = (int)co_open(f->path, (int)co_reopen_flags(f->flags, S_ISREG(f->mode)), 0);
		if (fd < 0)
			return co_err(rc->err, rc->errlen, "pid %d: fd %d: cannot reopen %s (errno %d%s)",
				      rc->proc->pid, f->fd, f->path, -fd, co_creds_why(&rc->ids, fd));
		if (st->recorded) {
			char what[CO_PATH + 16];
			co_fmt(what, sizeof(what), "fd %d: %s", f->fd, f->path);
			if (co_file_same(rc, fd, st, what)) {
				co_close(fd);
				return -1;
			}
		}
		break;
	default:
		return co_err(rc->err, rc->errlen, "pid %d: fd %d: unknown descriptor kind %u in image",
			      rc->proc->pid, f->fd, f->kind);
	}
	/* open ignores O_ASYNC: F_SETFL sets it (the owner and signal come with the threads: co_owners_restore) */
	if ((f->kind == CO_FD_REG || f->kind == CO_FD_CHR || f->kind == CO_FD_DELETED) && (f->flags & O_ASYNC))
		co_fcntl(fd, F_SETFL, (long)(f->flags & CO_FL_STATUS));
	if (fd != f->fd) {
		long r = co_sys3(SYS_dup3, fd, f->fd, f->cloexec ? O_CLOEXEC : 0);
		if (f->kind != CO_FD_DUP && f->kind != CO_FD_STDIO)
			co_close(fd);
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: fd %d: cannot place descriptor (errno %ld)",
				      rc->proc->pid, f->fd, -r);
	} else {
		co_fcntl(fd, F_SETFD, f->cloexec ? FD_CLOEXEC : 0);
	}
	/*
	 * A directory too: its position is where a readdir goes on (on ext4 a
	 * hash cookie, not a count); at 0 again the program would read every
	 * entry a second time.  A position that does not take is said.
	 */
	if ((f->kind == CO_FD_REG || f->kind == CO_FD_DELETED) && f->pos) {
		long at = co_lseek(f->fd, (long)f->pos, SEEK_SET);
		if (at != (long)f->pos)
			return co_err(rc->err, rc->errlen, "pid %d: fd %d: %s cannot be put back at its position %llu "
				      "(lseek: %ld)", rc->proc->pid, f->fd, f->path, (unsigned long long)f->pos, at);
	}
	return 0;
}
#endif
