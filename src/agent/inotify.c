/*
 * inotify.c - queued inotify events the agent holds for the program
 * (issue 13; the coordinator's side, and why it is done this way, is in
 * src/kinds/inotify.c).
 *
 * The kernel cannot be handed an event, and create, delete and move
 * events cannot be made again without doing what they tell of.  So for a
 * descriptor the program made through libc (inotify_init, inotify_init1),
 * or read through libc (made through a libc handle no preloaded library
 * sees, as Python's ctypes does), the agent takes the events the
 * coordinator finds queued at a checkpoint (at DUMP, before the snapshot:
 * they are in the image) and hands them out itself, as the kernel would:
 *
 * - read (and readv, __read_chk) returns held events first, as many whole
 *   ones as fit; EINVAL when the first does not fit, EFAULT (and that
 *   event gone) when it cannot be copied out;
 * - ioctl FIONREAD counts them;
 * - poll, epoll and select see the descriptor readable because the
 *   coordinator (and init, at a restart) made one real event behind them,
 *   the marker: an IN_ATTRIB of watch `marker`, without a name.  The
 *   first such event read from the kernel afterwards is swallowed (one
 *   that happened for real meanwhile is the same bytes): in the read that
 *   hands out the last held events when it has room, else in the next.
 *   A read blocked in the kernel across the checkpoint (restarted there
 *   by SA_RESTART, or by the restorer) gets the held events first, what
 *   the kernel gave it behind them (after_kernel; not so for readv).
 *
 * What the agent knows of a descriptor is per number: close, close_range,
 * closefrom, dup2 and dup3 onto it forget it; a forked child forgets all
 * (the coordinator then finds the descriptor held twice, and does not ask
 * the agent).  A descriptor made and read with raw system calls (Go) is
 * not listed: a checkpoint that finds events it cannot make again queued
 * on it is refused (src/kinds/inotify.c).  Not seen either: reads through
 * syscall(SYS_read) or io_uring of a listed descriptor while it has held
 * events (they would get the marker), and an exec before the held events
 * are read (they are gone with the old program's memory).
 *
 * The wrappers' fast path is a byte of read_map and one load (nheld 0).
 * The held events change with every signal blocked and a lock taken; the
 * manager lists and takes them only with every program thread parked.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "agent.h"
#include "sys.h"
#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

/* One descriptor the program made or read through libc. */
struct held {
	int fd1;		/* 1 + the descriptor; 0: a free slot */
	int marker;		/* the wd of the marker event queued in the kernel behind the held events; 0: none */
	uint32_t off, len;	/* the held events: ev[off, len) */
	char ev[CO_IHELD_BYTES];
};

static struct held held[CO_IHELD];
static int nheld;		/* slots in use: 0 is the wrappers' fast path */
static int lock_word;
/* Descriptors (by number) the program read through libc since it opened them: 1 */
#define READ_MAP 4096
static unsigned char read_map[READ_MAP];

DECL(int, inotify_init, void);
DECL(int, inotify_init1, int);
DECL(ssize_t, read, int, void *, size_t);
DECL(ssize_t, readv, int, const struct iovec *, int);
DECL(ssize_t, __read_chk, int, void *, size_t, size_t);
DECL(int, ioctl, int, unsigned long, void *);
DECL(int, close, int);
DECL(int, dup2, int, int);
DECL(int, dup3, int, int, int);
DECL(int, close_range, unsigned, unsigned, int);
DECL(void, closefrom, int);

#define EV_SIZE(e) (sizeof(struct inotify_event) + (e)->len)

/*
 * The slot of a new descriptor fd (a free one, or none: the descriptor is
 * not listed, and a checkpoint finds it as one made with raw system calls).
 * The lock is held, or every program thread parked.
 */
static void new_slot(int fd)
{
	for (int i = 0; i < CO_IHELD; i++)
		if (!held[i].fd1) {
			held[i].fd1 = fd + 1;
			held[i].marker = 0;
			held[i].off = held[i].len = 0;
			__atomic_add_fetch(&nheld, 1, __ATOMIC_RELEASE);
			return;
		}
}

/* The held events change with every signal blocked (the checkpoint's too) and the lock taken. */
static uint64_t take_lock(void)
{
	uint64_t old = co_block_all();
	while (__atomic_exchange_n(&lock_word, 1, __ATOMIC_ACQUIRE))
		co_sys0(SYS_sched_yield);
	return old;
}

static void drop_lock(uint64_t old)
{
	__atomic_store_n(&lock_word, 0, __ATOMIC_RELEASE);
	co_unblock(old);
}

static struct held *held_of(int fd)
{
	for (int i = 0; i < CO_IHELD && fd >= 0; i++)
		if (held[i].fd1 == fd + 1)
			return &held[i];
	return 0;
}

/* Something to hand out or swallow: the wrappers must step in. */
static int busy(const struct held *h)
{
	return h && (h->len > h->off || h->marker);
}

static void note_made(int fd)
{
	if (fd < 0)
		return;
	uint64_t old = take_lock();
	new_slot(fd);
	drop_lock(old);
}

/* Descriptors lo..hi closed: what was held for them goes. */
static void forget(unsigned lo, unsigned hi)
{
	for (unsigned fd = lo; fd <= hi && fd < READ_MAP; fd++)
		if (read_map[fd])
			read_map[fd] = 0; /* written only then: a close leaves the page as it was */
	if (!__atomic_load_n(&nheld, __ATOMIC_ACQUIRE))
		return;
	uint64_t old = take_lock();
	for (int i = 0; i < CO_IHELD; i++)
		if (held[i].fd1 && (unsigned)(held[i].fd1 - 1) >= lo && (unsigned)(held[i].fd1 - 1) <= hi) {
			held[i].fd1 = 0;
			__atomic_sub_fetch(&nheld, 1, __ATOMIC_RELEASE);
		}
	drop_lock(old);
}

/* The marker in the n bytes of events at buf: swallowed (the rest moved up); the bytes left. */
static size_t swallow_marker(struct held *h, char *buf, size_t n)
{
	for (size_t off = 0; h->marker && off + sizeof(struct inotify_event) <= n;) {
		struct inotify_event e;
		co_memcpy(&e, buf + off, sizeof(e));
		size_t sz = EV_SIZE(&e);
		if (e.wd == h->marker && (e.mask & ~(uint32_t)IN_ISDIR) == IN_ATTRIB && !e.cookie && !e.len) {
			for (size_t k = off; k + sz < n; k++)
				buf[k] = buf[k + sz];
			h->marker = 0;
			return n - sz;
		}
		off += sz;
	}
	return n;
}

/* Bytes queued in the kernel for fd, or 0. */
static int kernel_queued(int fd)
{
	int q = 0;
	return co_sys3(SYS_ioctl, fd, FIONREAD, (long)&q) < 0 ? 0 : q;
}

/* Kernel events into buf (n bytes), the marker swallowed: as read(2) returns. */
static ssize_t kernel_read(struct held *h, int fd, char *buf, size_t n)
{
	for (;;) {
		ssize_t r = REAL(read)(fd, buf, n);
		if (r <= 0)
			return r;
		uint64_t old = take_lock();
		size_t left = swallow_marker(h, buf, (size_t)r);
		drop_lock(old);
		if (left)
			return (ssize_t)left;
		/* it was the marker alone: the program waits (or is told to come back) as if there had been nothing */
		if (!kernel_queued(fd) && (co_fcntl(fd, F_GETFL, 0) & O_NONBLOCK)) {
			errno = EAGAIN;
			return -1;
		}
	}
}

/*
 * read(2) on a descriptor whose events the agent holds: the held ones
 * first, as many whole as fit (EINVAL when the first does not, as the
 * kernel says); once none is left, what the kernel has queued behind
 * them, if it fits, without the marker.
 */
static ssize_t held_read(struct held *h, int fd, char *buf, size_t n)
{
	size_t got = 0;
	int fault = 0;
	uint64_t old = take_lock();
	while (h->off < h->len) {
		struct inotify_event e;
		co_memcpy(&e, h->ev + h->off, sizeof(e));
		size_t sz = EV_SIZE(&e);
		if (got + sz > n)
			break;
		/* as the kernel: an event it cannot copy out is gone, and the read says EFAULT */
		fault = co_user_copy(buf + got, h->ev + h->off, sz, 1) < 0;
		h->off += (uint32_t)sz;
		if (fault)
			break;
		got += sz;
	}
	int more = h->off < h->len;
	if (!more)
		h->off = h->len = 0;
	drop_lock(old);
	if (fault || (!got && more)) {
		errno = fault ? EFAULT : EINVAL;
		return -1;
	}
	if (!got)
		return kernel_read(h, fd, buf, n);
	/* the last held ones: the marker (and what came after it) read away now, when there is room */
	if (!more && h->marker && n - got >= sizeof(struct inotify_event) && kernel_queued(fd) > 0) {
		ssize_t r = REAL(read)(fd, buf + got, n - got);
		if (r > 0) {
			old = take_lock();
			got += swallow_marker(h, buf + got, (size_t)r);
			drop_lock(old);
		}
	}
	return (ssize_t)got;
}

/* The held events moved to the start of the buffer, where more can follow them. */
static void compact(struct held *h)
{
	if (!h->off)
		return;
	for (uint32_t k = h->off; k < h->len; k++)
		h->ev[k - h->off] = h->ev[k];
	h->len -= h->off;
	h->off = 0;
}

/*
 * A read that went to the kernel (r bytes at buf) while the agent took
 * events: the program was blocked in it, and the kernel restarted it
 * after the checkpoint.  What the kernel gave came after the held events:
 * it goes behind them, without the marker, and the read hands out the
 * held ones first.
 */
static ssize_t after_kernel(int fd, char *buf, size_t n, ssize_t r)
{
	if (r <= 0 || !__atomic_load_n(&nheld, __ATOMIC_ACQUIRE))
		return r;
	struct held *h = held_of(fd);
	if (!busy(h))
		return r;
	uint64_t old = take_lock();
	size_t k = swallow_marker(h, buf, (size_t)r);
	compact(h);
	int room = h->len + k <= sizeof(h->ev);
	if (room) {
		co_memcpy(h->ev + h->len, buf, k);
		h->len += (uint32_t)k;
	}
	drop_lock(old);
	return room ? held_read(h, fd, buf, n) : (ssize_t)k;
}

/* A read through libc: noted, and served when the agent holds something for it. */
static struct held *reading(int fd)
{
	if (fd >= 0 && fd < READ_MAP && !read_map[fd])
		read_map[fd] = 1;
	if (!__atomic_load_n(&nheld, __ATOMIC_ACQUIRE))
		return 0;
	struct held *h = held_of(fd);
	return busy(h) ? h : 0;
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	ENSURE(read);
	struct held *h = reading(fd);
	return h ? held_read(h, fd, buf, n) : after_kernel(fd, buf, n, CO_RESTARTED(ssize_t, REAL(read)(fd, buf, n)));
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	ENSURE(__read_chk);
	struct held *h = n <= buflen ? reading(fd) : 0;
	return h ? held_read(h, fd, buf, n) : after_kernel(fd, buf, n, CO_RESTARTED(ssize_t, REAL(__read_chk)(fd, buf, n, buflen)));
}

/* readv(2): the kernel reads inotify segment by segment, up to the first one it does not fill. */
EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	ENSURE(readv);
	struct held *h = reading(fd);
	if (!h || cnt < 0 || cnt > IOV_MAX)
		return CO_RESTARTED(ssize_t, REAL(readv)(fd, iov, cnt)); /* (a socket's with a timeout: wrap_sock.c) */
	ssize_t done = 0;
	struct iovec v;
	/* the kernel reads the whole array before any segment */
	for (int i = 0; i < cnt; i++)
		if (co_user_copy(&v, &iov[i], sizeof(v), 0) < 0) {
			errno = EFAULT;
			return -1;
		}
	for (int i = 0; i < cnt; i++) {
		co_memcpy(&v, &iov[i], sizeof(v));
		ssize_t r = held_read(h, fd, v.iov_base, v.iov_len);
		if (r < 0)
			return done ? done : r;
		done += r;
		if ((size_t)r != v.iov_len)
			break;
	}
	return done;
}

/* FIONREAD counts the held events, and not the marker. */
EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	ENSURE(ioctl);
	struct held *h = req == FIONREAD && __atomic_load_n(&nheld, __ATOMIC_ACQUIRE) ? held_of(fd) : 0;
	if (!busy(h))
		return REAL(ioctl)(fd, req, arg);
	int q = 0, r = REAL(ioctl)(fd, FIONREAD, &q);
	if (r < 0)
		return r;
	uint64_t old = take_lock();
	q += (int)(h->len - h->off) - (h->marker && q >= (int)sizeof(struct inotify_event) ? (int)sizeof(struct inotify_event) : 0);
	drop_lock(old);
	co_memcpy(arg, &q, sizeof(q)); /* after the kernel's own: a bad pointer failed there */
	return 0;
}

EXPORT int inotify_init(void)
{
	ENSURE(inotify_init);
	int fd = REAL(inotify_init)();
	note_made(fd);
	return fd;
}

EXPORT int inotify_init1(int flags)
{
	ENSURE(inotify_init1);
	int fd = REAL(inotify_init1)(flags);
	note_made(fd);
	return fd;
}

/* (each also ends the dnotify watches on the files it closes: dnotify.c) */
EXPORT int close(int fd)
{
	ENSURE(close);
	forget((unsigned)fd, (unsigned)fd);
	struct co_dnotify_close c;
	co_dnotify_closing(&c, (unsigned)fd, (unsigned)fd);
	int r = REAL(close)(fd);
	co_dnotify_closed(&c, r == 0 || errno != EBADF); /* (Linux frees the number on any other error) */
	return r;
}

EXPORT int dup2(int from, int to)
{
	ENSURE(dup2);
	struct co_dnotify_close c = { 0, 0, 0 };
	if (from != to)
		co_dnotify_closing(&c, (unsigned)to, (unsigned)to);
	int r = REAL(dup2)(from, to);
	co_dnotify_closed(&c, r >= 0);
	if (r >= 0 && from != to)
		forget((unsigned)to, (unsigned)to);
	return r;
}

EXPORT int dup3(int from, int to, int flags)
{
	ENSURE(dup3);
	struct co_dnotify_close c = { 0, 0, 0 };
	if (from != to)
		co_dnotify_closing(&c, (unsigned)to, (unsigned)to);
	int r = REAL(dup3)(from, to, flags);
	co_dnotify_closed(&c, r >= 0);
	if (r >= 0)
		forget((unsigned)to, (unsigned)to);
	return r;
}

EXPORT int close_range(unsigned lo, unsigned hi, int flags)
{
	ENSURE(close_range);
	struct co_dnotify_close c = { 0, 0, 0 };
	/* (an unshared table is the thread's own: its closes end none of the watches of the one it left) */
	if (!(flags & (CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE)) && lo <= hi)
		co_dnotify_closing(&c, lo, hi);
	int r = REAL(close_range)(lo, hi, flags);
	co_dnotify_closed(&c, r == 0);
	if (r == 0 && (flags & CLOSE_RANGE_UNSHARE))
		co_dnotify_unshare();
	if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC))
		forget(lo, hi);
	return r;
}

EXPORT void closefrom(int lo)
{
	ENSURE(closefrom);
	struct co_dnotify_close c = { 0, 0, 0 };
	if (lo >= 0)
		co_dnotify_closing(&c, (unsigned)lo, ~0U);
	REAL(closefrom)(lo);
	co_dnotify_closed(&c, 1);
	forget((unsigned)lo, ~0U);
}

/* ---- the checkpoint (the manager thread, every program thread parked) ---- */

/* Is fd (of the program's table) an inotify descriptor? */
static int is_inotify(int fd)
{
	char p[48], link[32];
	co_fmt(p, sizeof(p), "/proc/self/fd/%d", fd);
	long n = co_readlink(p, link, sizeof(link) - 1);
	if (n <= 0)
		return 0;
	link[n] = 0;
	return !co_strcmp(link, "anon_inode:inotify");
}

/*
 * At park: the descriptors the coordinator may ask about, and what is
 * held for each.  Those the program made through libc, and those it read
 * through libc that are inotify descriptors (made through a libc it
 * reached by dlsym, as Python's ctypes does): the program reads them
 * through our wrappers.
 */
void co_inotify_publish(void)
{
	if (!co_agent.table || co_agent.slot < 0)
		return;
	for (int fd = 0; fd < READ_MAP && nheld < CO_IHELD; fd++)
		if (read_map[fd] && !held_of(fd) && is_inotify(fd))
			new_slot(fd);
	struct co_iheld *t = co_agent.table->iheld[co_agent.slot];
	for (int i = 0; i < CO_IHELD; i++)
		t[i] = (struct co_iheld){ .fd1 = held[i].fd1, .held = held[i].len - held[i].off };
}

/*
 * At DUMP (or RELEASE, when the checkpoint failed before it): the bytes
 * the coordinator left queued before its marker are taken, through a
 * descriptor of the manager's own.  When the kernel merged the marker into
 * the last queued event (the same bytes), that one stays queued as the
 * marker and the agent holds a copy of it, unless it was the marker of
 * the checkpoint before (no event of the program's).  An error leaves the
 * events in the kernel, where the program reads them still.
 */
static void take_one(struct held *h, struct co_iheld *t, int self)
{
	int fd = self < 0 ? -1 : (int)co_sys3(SYS_pidfd_getfd, self, h->fd1 - 1, 0);
	uint32_t take = t->take;
	compact(h);
	while (fd >= 0 && take && h->len + take <= sizeof(h->ev)) {
		long r = co_read(fd, h->ev + h->len, take);
		if (r <= 0)
			break;
		/* the old marker, if it was queued still: not an event of the program's */
		h->len += (uint32_t)swallow_marker(h, h->ev + h->len, (size_t)r);
		take -= (uint32_t)r;
	}
	struct inotify_event copy = { .wd = t->wd, .mask = t->mask };
	if (t->merged && !h->marker && h->len + sizeof(copy) <= sizeof(h->ev)) {
		co_memcpy(h->ev + h->len, &copy, sizeof(copy));
		h->len += (uint32_t)sizeof(copy);
	}
	h->marker = t->wd;
	if (fd >= 0)
		co_close(fd);
}

void co_inotify_take(void)
{
	if (!co_agent.table || co_agent.slot < 0)
		return;
	struct co_iheld *t = co_agent.table->iheld[co_agent.slot];
	int self = -1;
	for (int i = 0; i < CO_IHELD; i++) {
		if (!t[i].wd || !held[i].fd1 || held[i].fd1 != t[i].fd1)
			continue;
		if (self < 0)
			self = (int)co_sys2(SYS_pidfd_open, co_agent.pid, 0);
		take_one(&held[i], &t[i], self);
		t[i].wd = 0;
		t[i].take = 0;
	}
	if (self >= 0)
		co_close(self);
}

/* A forked child: its parent's descriptors are its parent's to read. */
void co_inotify_forked(void)
{
	for (int i = 0; i < CO_IHELD; i++)
		held[i].fd1 = held[i].marker = 0; /* not the events themselves: pages of their own, untouched */
	nheld = 0;
	lock_word = 0;
}
