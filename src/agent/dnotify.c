/*
 * dnotify.c - the dnotify watches of this process (fcntl F_NOTIFY on a
 * directory descriptor), kept by the agent.  No kernel interface shows
 * them (not /proc/PID/fdinfo, nor any other file of /proc), so the agent
 * notes what the kernel does with them, and a restart asks for each again.
 *
 * The kernel (fs/notify/dnotify/dnotify.c) keeps one watch per open file
 * and descriptor table:
 *
 * - F_NOTIFY with events, on any descriptor of the file, adds them to the
 *   table's watch on it (or'ed, DN_MULTISHOT too), or makes one, and that
 *   descriptor becomes the one the watch's signals name (si_fd); the first
 *   makes the caller the file's SIGIO owner when it has none;
 * - F_NOTIFY with none (DN_MULTISHOT at most) removes the watch, and so
 *   does any close of any descriptor of the file by the same table: close,
 *   dup2 or dup3 over it, close_range, closedir of a directory stream made
 *   on it, an exec's closing of the close-on-exec ones;
 * - a watch without DN_MULTISHOT goes once it fires;
 * - a forked child's table is a copy with no watch of its parent's (the
 *   child's closes do not touch them); threads share their process's.
 *
 * The table here follows that.  Each change is made with every signal
 * blocked and the lock held, with the call that makes it: F_NOTIFY
 * through fcntl, fcntl64 or syscall(3) (co_dnotify_call); a close through
 * the wrappers of close, dup2, dup3, close_range, closefrom (inotify.c),
 * closedir (here) and syscall(3) (co_dnotify_closing, co_dnotify_closed).
 * Which descriptors are one open file: kcmp(KCMP_FILE).  A vfork child,
 * which shares our memory and not our descriptor table, notes nothing.
 * An exec carries the watches on descriptors it keeps open in the
 * environment (COHORT_DNOTIFY), doubted: an alias of one that the exec
 * closes (close-on-exec) would have removed it.
 *
 * At a checkpoint (co_dnotify_collect) a watch whose descriptor is closed,
 * or names another file now, went with that close (one the agent did not
 * see); the others go into the image (struct co_dnotify, after their
 * descriptor's record: src/res/files.c), and the restorer asks F_NOTIFY
 * again on the same descriptor with the same events, before the SIGIO
 * owners are set back (files.c).  Refused, naming the process and the
 * descriptor: a watch without DN_MULTISHOT (whether it has fired shows
 * nowhere), one the agent is not sure of (carried across an exec; kcmp
 * failing; a close_range of a range too long to compare with), and more
 * watches than the table holds.
 *
 * Not seen: raw F_NOTIFY and close system calls that bypass libc (inline
 * assembly; those made through syscall(3) are seen), and the C library's
 * own closes of a descriptor of a watched file other than closedir's
 * (fclose of an fdopen'ed one): a watch made by the first is lost at a
 * restart; one removed by the second comes back.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "agent.h"
#include "sys.h"
#include "util.h"

#define RANGE_MAX 4096 /* descriptors of a closed range compared with a watch's (others: doubted) */

/* Why the agent cannot be sure of a watch (struct watch, doubt). */
#define DOUBT_EXEC 1	/* carried across an exec */
#define DOUBT_KCMP 2	/* kcmp could not tell whether a descriptor was of its file */
#define DOUBT_RANGE 4	/* a close_range too long to compare with, or one that unshared the table */

/* One watch of this process's descriptor table. */
struct watch {
	int32_t fd;		/* the descriptor its signals name: the last F_NOTIFY's on its file */
	uint32_t mask;		/* DN_* as asked, every F_NOTIFY's on its file or'ed */
	uint64_t dev, ino;	/* its directory */
	uint32_t doubt;		/* DOUBT_*; 0: the agent is sure of it */
};

static struct watch tab[CO_DNOTIFY_MAX];
static int ntab;	/* 0: the wrappers' fast path */
static int overflow;	/* a watch that did not fit: refused at checkpoint */
static int lock_word;	/* taken with every signal blocked */

/* Our process's own call, not a vfork child's (whose descriptor table is another). */
static int mine(void)
{
	return !co_agent.active || co_getpid() == co_agent.pid;
}

static uint64_t lock(void)
{
	uint64_t old = co_block_all();
	co_lock_word(&lock_word);
	return old;
}

static void unlock(uint64_t old)
{
	co_unlock_word(&lock_word);
	co_unblock(old);
}

static void drop(int i)
{
	tab[i] = tab[--ntab];
}

/*
 * Are descriptors a and b (of the calling thread's table) one open file?
 * 1 yes, 0 no (or one is closed), -1 cannot tell.
 */
static int same_file(int a, int b)
{
	if (a == b)
		return 1;
	long tid = co_gettid();
	long r = co_kcmp((int)tid, (int)tid, KCMP_FILE, a, b);
	return r == 0 ? 1 : r > 0 || r == -EBADF ? 0 : -1;
}

/* The kernel took F_NOTIFY arg on fd: the table likewise (lock held). */
static void note(int fd, uint32_t arg)
{
	int removal = !(arg & ~(uint32_t)DN_MULTISHOT), found = 0;
	for (int i = ntab - 1; i >= 0; i--) {
		int s = same_file(tab[i].fd, fd);
		if (s < 0)
			tab[i].doubt |= DOUBT_KCMP;
		if (s <= 0)
			continue;
		if (removal) {
			drop(i);
			continue;
		}
		tab[i].fd = fd;
		tab[i].mask |= arg;
		found = 1;
	}
	if (removal || found)
		return;
	struct stat st;
	if (ntab == CO_DNOTIFY_MAX || co_fstat(fd, &st) < 0) {
		overflow = 1;
		return;
	}
	tab[ntab] = (struct watch){ fd, arg, (uint64_t)st.st_dev, (uint64_t)st.st_ino, 0 };
	__atomic_store_n(&ntab, ntab + 1, __ATOMIC_RELEASE);
}

long co_dnotify_call(int fd, unsigned long arg)
{
	uint64_t old = lock();
	/* the program's own call: __NR_, not SYS_, so that agent-syscalls.sh does not count it as the agent's */
	long r = co_sys3(__NR_fcntl, fd, F_NOTIFY, (long)arg);
	if (r == 0 && mine())
		note(fd, (uint32_t)arg);
	unlock(old);
	return r;
}

/* ---- closes ---- */

/* The watches whose file a close of lo..hi closes: a bit each (lock held). */
static uint64_t closed_by(unsigned lo, unsigned hi)
{
	uint64_t hit = 0;
	for (int i = 0; i < ntab; i++) {
		if ((unsigned)tab[i].fd >= lo && (unsigned)tab[i].fd <= hi) {
			hit |= 1ULL << i;
			continue;
		}
		if (hi - lo >= RANGE_MAX) {
			tab[i].doubt |= DOUBT_RANGE;
			continue;
		}
		for (unsigned k = 0; k <= hi - lo; k++) {
			int s = same_file(tab[i].fd, (int)(lo + k));
			if (s < 0)
				tab[i].doubt |= DOUBT_KCMP;
			if (s > 0)
				hit |= 1ULL << i;
			if (s)
				break;
		}
	}
	return hit;
}

/*
 * Before a call that closes descriptors lo..hi (when it succeeds): when
 * one is of a watched file, the lock is taken with every signal blocked
 * until co_dnotify_closed, so that the close and the watch's end are one
 * step for a checkpoint.  The fast path: no watch.
 */
void co_dnotify_closing(struct co_dnotify_close *c, unsigned lo, unsigned hi)
{
	c->held = 0;
	if (!__atomic_load_n(&ntab, __ATOMIC_ACQUIRE) || !mine())
		return;
	uint64_t old = lock();
	uint64_t hit = closed_by(lo, hi);
	if (!hit) {
		unlock(old);
		return;
	}
	c->held = 1;
	c->old = old;
	c->hit = hit;
}

/* After it: closed, the watches it closed are gone.  errno is left as the call left it. */
void co_dnotify_closed(struct co_dnotify_close *c, int closed)
{
	if (!c->held)
		return;
	for (int i = ntab - 1; closed && i >= 0; i--)
		if (c->hit >> i & 1)
			drop(i);
	unlock(c->old);
}

/*
 * close_range with CLOSE_RANGE_UNSHARE gives the calling thread a table
 * of its own when it shared one (threads), and closes in that: whose
 * watches are whose, and which it ended, is then beyond the agent.
 */
void co_dnotify_unshare(void)
{
	if (!__atomic_load_n(&ntab, __ATOMIC_ACQUIRE) || !mine())
		return;
	uint64_t old = lock();
	for (int i = 0; i < ntab; i++)
		tab[i].doubt |= DOUBT_RANGE;
	unlock(old);
}

/* ---- the wrappers (the close family's are in inotify.c, which wraps them first) ---- */

DECL(int, fcntl, int, int, ...);
DECL(int, fcntl64, int, int, ...);
DECL(int, closedir, DIR *);

/*
 * fcntl as glibc's: the argument read as one pointer-sized word whatever
 * cmd is; F_NOTIFY made here (glibc makes it as a plain system call, no
 * cancellation point), every other command by glibc's own.
 */
EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (cmd == F_NOTIFY) {
		long r = co_dnotify_call(fd, (unsigned long)arg);
		if (r < 0) {
			errno = (int)-r;
			return -1;
		}
		return (int)r;
	}
	ENSURE(fcntl);
	return REAL(fcntl)(fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (cmd == F_NOTIFY)
		return fcntl(fd, cmd, arg);
	ENSURE(fcntl64);
	return REAL(fcntl64)(fd, cmd, arg);
}

/* closedir closes the stream's descriptor, which fdopendir may have made of a watched file. */
EXPORT int closedir(DIR *d)
{
	ENSURE(closedir);
	struct co_dnotify_close c = { 0, 0, 0 };
	DIR *dd = d;
	__asm__("" : "+r"(dd)); /* (declared nonnull, and glibc's answers EINVAL to NULL all the same) */
	int fd = dd ? dirfd(dd) : -1;
	if (fd >= 0)
		co_dnotify_closing(&c, (unsigned)fd, (unsigned)fd);
	int r = REAL(closedir)(d);
	co_dnotify_closed(&c, r == 0 || errno != EBADF);
	return r;
}

/* ---- the agent's life ---- */

/* A forked child: a table of its own, with none of its parent's watches. */
void co_dnotify_forked(void)
{
	ntab = 0;
	overflow = 0;
	lock_word = 0;
}

#define ENV_NAME "COHORT_DNOTIFY"

/*
 * For an exec of this very process: COHORT_DNOTIFY=fd.mask.dev.ino,...
 * in buf (the watches on descriptors the exec keeps: a close-on-exec one
 * goes with its watch), or 0 when there is none.  In the exec wrappers,
 * without malloc.
 */
size_t co_dnotify_env(char *buf, size_t n)
{
	if (!__atomic_load_n(&ntab, __ATOMIC_ACQUIRE) || !co_agent.active || co_getpid() != co_agent.pid)
		return 0;
	uint64_t old = lock();
	size_t len = 0;
	for (int i = 0; i < ntab; i++) {
		long fl = co_fcntl(tab[i].fd, F_GETFD, 0);
		if (fl < 0 || (fl & FD_CLOEXEC))
			continue;
		if (!len)
			len = co_fmt(buf, n, "%s=", ENV_NAME);
		len += co_fmt(buf + len, n - len, "%d.%u.%lu.%lu,", tab[i].fd, tab[i].mask, (unsigned long)tab[i].dev,
			      (unsigned long)tab[i].ino);
	}
	if (overflow)
		len += co_fmt(buf + len, n - len, "%s-,", len ? "" : ENV_NAME "=");
	unlock(old);
	return len + 1 < n ? len : 0; /* (cut short: none carried, and the new program's checkpoints know of none) */
}

/* In a program just exec'd, before it registers: the watches the one before it had, doubted. */
void co_dnotify_from_env(void)
{
	const char *p = getenv(ENV_NAME);
	if (!p)
		return;
	while (*p) {
		if (*p == '-' || ntab == CO_DNOTIFY_MAX) {
			overflow = 1;
			break;
		}
		struct watch *w = &tab[ntab];
		w->fd = (int32_t)co_strtoul(p, &p, 10);
		p += *p == '.';
		w->mask = (uint32_t)co_strtoul(p, &p, 10);
		p += *p == '.';
		w->dev = co_strtoul(p, &p, 10);
		p += *p == '.';
		w->ino = co_strtoul(p, &p, 10);
		w->doubt = DOUBT_EXEC;
		ntab++;
		if (*p != ',')
			break;
		p++;
	}
	unsetenv(ENV_NAME);
}

/* ---- the checkpoint (the manager, every program thread parked; the program's descriptors mirrored) ---- */

static const char *doubt_why(uint32_t doubt)
{
	return doubt & DOUBT_EXEC   ? "set before an exec, which closed the close-on-exec descriptors"
	       : doubt & DOUBT_KCMP ? "on a file kcmp could not compare another descriptor with when it was closed"
				    : "on a file a close_range may have closed (a range too long to compare, or an "
				      "unshared table)";
}

int co_dnotify_collect(struct co_dumpctx *d)
{
	d->ndnotify = 0;
	if (__atomic_load_n(&lock_word, __ATOMIC_ACQUIRE))
		return DERR(d, "pid %d: a thread was stopped while it noted a dnotify watch; checkpoint again", d->pid);
	if (overflow)
		return DERR(d, "pid %d: dnotify watches (fcntl F_NOTIFY) on more directories than cohort keeps (%d)",
			    d->pid, CO_DNOTIFY_MAX);
	for (int i = 0; i < ntab; i++) {
		const struct watch *w = &tab[i];
		struct stat st;
		/* closed since, or another file now: the watch went with that close */
		if (co_fstat(w->fd, &st) < 0 || (uint64_t)st.st_dev != w->dev || (uint64_t)st.st_ino != w->ino)
			continue;
		if (w->doubt)
			return DERR(d, "pid %d: fd %d: a dnotify watch (fcntl F_NOTIFY) %s: cohort cannot tell whether "
				    "the kernel still has it", d->pid, w->fd, doubt_why(w->doubt));
		if (!(w->mask & DN_MULTISHOT))
			return DERR(d, "pid %d: fd %d: a one-shot dnotify watch (fcntl F_NOTIFY without DN_MULTISHOT), "
				    "which the kernel drops once it fires, and nothing shows whether it has: cohort "
				    "cannot restore it", d->pid, w->fd);
		d->dnotify[d->ndnotify++] = (struct co_dnotify){ w->fd, w->mask };
	}
	return 0;
}
