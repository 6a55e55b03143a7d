/*
 * epoll.c - an epoll set: made empty with epoll_create1(2), then its items
 * (fdinfo's "tfd:" lines), one CO_R_EPITEM each.  Dumped after every other
 * object, so that what it watches exists first.  One object per open file
 * description.
 *
 * An item is known by the file it watches and the number that file had
 * when it was added (tfd).  That number says nothing of the file now: it
 * may have been closed since while a duplicate keeps the file open (and
 * the number taken by another file), or the item added by another process
 * that shares the set (a child, whose numbers are its own).  So the file
 * is found with kcmp(KCMP_EPOLL_TFD), which compares the file an item
 * watches with a descriptor of any process (as CRIU's eventpoll.c does):
 *   - a file the group shares (an object of shared.img) is added back in
 *     init, where the object is made, before any process exists
 *     (CO_EPI_OBJECT);
 *   - a descriptor each process makes itself (a character device, the
 *     group's outside stdio, a pidfd), and a signalfd (the epoll is woken
 *     by the signals of the process that added the item: the one that
 *     holds both), is added back by a process that holds both the set and
 *     the file, once its descriptors are back (CO_EPI_PROCESS,
 *     co_plan_epoll);
 *   - a file no process holds any more (only a message in flight does)
 *     refuses the checkpoint, as CRIU does.
 * Either way the item is added with its number tfd, the file put there
 * for the call (co_epoll_add).
 *
 * A fired EPOLLONESHOT item is disabled: fdinfo shows its flags alone,
 * and EPOLL_CTL_ADD cannot make that (it always adds EPOLLERR and
 * EPOLLHUP: it would fire again on a hang-up).  Init makes it fire once
 * instead, asking for every event, before any other item of its set is
 * added (co_epoll_add_disabled): so a file ready for nothing now, another
 * epoll set (ready only once its own items are back), or a descriptor
 * only a process makes refuses the checkpoint.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "procfs.h"

static int epoll_dump(struct co_kdump *d, int first, uint64_t *id)
{
	struct co_sobj o = { .kind = CO_OBJ_EPOLL, .id = (uint64_t)first + 1 };
	*id = o.id;
	return co_sobj_write(d, first, &o);
}

/* ---- dump: which file each item watches ---- */

/* One item of the set refs[first], as fdinfo shows it, and the toff-th item with its number (kcmp's slot). */
struct item {
	const struct co_ref *ep;
	struct co_epoll_line l;
	int toff;
	uint64_t dev;		/* the watched inode's st_dev (fdinfo's sdev is the kernel's dev_t) */
};

/* Is descriptor fd of process host the file the item watches? */
static int watches(const struct item *it, int host, int fd)
{
	struct kcmp_epoll_slot slot = { (uint32_t)it->ep->fd, (uint32_t)it->l.tfd, (uint32_t)it->toff };
	return syscall(SYS_kcmp, host, it->ep->host, KCMP_EPOLL_TFD, fd, &slot) == 0;
}

/* The descriptor of process pid that holds the epoll set refs[first], or -1 */
static int holds_set(const struct co_kdump *d, int first, int pid)
{
	CO_FOR_HOLDERS(d, first, k)
		if (!d->refs[k].inflight && d->refs[k].pid == pid)
			return d->refs[k].fd;
	return -1;
}

/*
 * The reference (not a copy in flight) to the watched file: its index, or
 * -1.  The set's process's descriptor with the item's number is asked
 * first (most often the file: one kcmp); then every reference to that
 * inode (all eventfds, timerfds and the like share one).
 */
static int watched_ref(const struct co_kdump *d, const struct item *it)
{
	for (int guess = 1; guess >= 0; guess--)
		for (int k = 0; k < d->nrefs; k++) {
			const struct co_ref *r = &d->refs[k];
			if (guess && (r->pid != it->ep->pid || r->fd != it->l.tfd))
				continue;
			if (!r->inflight && r->fd >= 0 && r->ino == it->l.ino && r->dev == it->dev &&
			    watches(it, r->host, r->fd))
				return k;
		}
	return -1;
}

/* A member's descriptor that is the watched file (co_each_fd): the search, and what it found */
struct scan {
	const struct co_kdump *d;
	const struct item *it;
	const struct co_shared_member *m;
	int first;		/* the set */
	int pid, fd;		/* found: the last such descriptor seen, */
	int both;		/* 1 when its process holds the set too (the search ends there) */
};

static int scan_fd(int fd, void *arg)
{
	struct scan *s = arg;
	char p[64];
	struct stat st;
	if (fd == s->m->agent_fd)
		return 0;
	snprintf(p, sizeof(p), "/proc/%d/fd/%d", s->m->host_pid, fd);
	if (stat(p, &st) < 0 || st.st_ino != s->it->l.ino || st.st_dev != s->it->dev ||
	    !watches(s->it, s->m->host_pid, fd))
		return 0;
	s->pid = s->m->pid;
	s->fd = fd;
	s->both = holds_set(s->d, s->first, s->m->pid) >= 0;
	return s->both; /* found one that can add it back: done (else the search goes on) */
}

/* The watched file among every descriptor of every member (the ones the engine does not capture too) */
static void watched_fd(const struct co_kdump *d, int first, const struct item *it, struct scan *s)
{
	*s = (struct scan){ d, it, NULL, first, -1, -1, 0 };
	for (int i = 0; i < d->nmembers && !s->both; i++) {
		s->m = &d->members[i];
		co_each_fd(d->members[i].host_pid, scan_fd, s);
	}
}

/* The holder of the object refs[k] that holds the set too (the set's own process first): its ref, or -1 */
static int holder_with_set(const struct co_kdump *d, int first, int k)
{
	int o = d->refs[k].obj, best = -1;
	CO_FOR_HOLDERS(d, o, h) {
		if (d->refs[h].inflight || holds_set(d, first, d->refs[h].pid) < 0)
			continue;
		if (best < 0 || d->refs[h].pid == d->refs[first].pid)
			best = h;
	}
	return best;
}

/* Can the watched file fire now (refs[k], polled for every event)?  A fired EPOLLONESHOT item is made so. */
static int ready_now(const struct co_ref *r)
{
	int f = co_ref_grab(r);
	if (f < 0)
		return 0;
	struct pollfd p = { f, (short)CO_EPOLL_ANY, 0 };
	int n = poll(&p, 1, 0);
	close(f);
	return n == 1 && p.revents && !(p.revents & POLLNVAL);
}

/* One line that refuses the item, "pid P: fd E: " (the set's) and what: -1 */
static int refuse(struct co_kdump *d, const struct item *it, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(struct co_kdump *d, const struct item *it, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(d->err, d->errlen, "pid %d: fd %d: %s", it->ep->pid, it->ep->fd, what);
	return -1;
}

/* "a fired EPOLLONESHOT item (tfd T) on": the words a refusal of a disabled item starts with */
#define FIRED "epoll has a fired EPOLLONESHOT item (tfd %d) on "
#define NO_FIRE "cohort cannot make it fire once to disable it again"

/*
 * The record of one item: e->how and the file's holder (e->pid, e->fd), its
 * object (kind, id, end) for CO_EPI_OBJECT; 0, or -1 with err (refused).
 */
static int place_item(struct co_kdump *d, int first, const struct item *it, struct co_epitem *e)
{
	int k = watched_ref(d, it), tfd = it->l.tfd, fired = CO_EPOLL_DISABLED(it->l.events);
	uint64_t oid = 0;
	if (k >= 0 && co_ref_object(d, k, &oid) && d->refs[k].kind != CO_OBJ_SIGNALFD) {
		const struct co_ref *r = &d->refs[k];
		const struct co_kind_ops *ops = co_kind_ops(r->kind);
		if (fired && r->kind == CO_OBJ_EPOLL)
			return refuse(d, it, FIRED "another epoll set, ready only once its own items are back: " NO_FIRE,
				      tfd);
		/*
		 * Ready for nothing now: most often a worker busy with what the
		 * item reported, which arms it again when done.  The checkpoint
		 * is tried again a little later (CO_BUSY), and refused only if
		 * it stays so.
		 */
		if (fired && !ready_now(r))
			return refuse(d, it, FIRED "%s, ready for nothing now: " NO_FIRE, tfd, r->path) ? CO_BUSY : 0;
		e->how = CO_EPI_OBJECT;
		e->pid = r->pid, e->fd = r->fd;
		e->kind = r->kind, e->id = oid, e->end = ops && ops->end ? ops->end(r) : 0;
		return 0;
	}
	/* a signalfd, or a descriptor a process makes: added back by one that holds the set too */
	int pid = -1, fd = -1;
	if (k >= 0 && d->refs[k].kind == CO_OBJ_SIGNALFD) {
		int h = holder_with_set(d, first, k);
		if (h < 0)
			return refuse(d, it, "epoll watches a signalfd (tfd %d) that no process holding the epoll holds: "
				      "cohort adds such an item back from a process holding both", tfd);
		pid = d->refs[h].pid, fd = d->refs[h].fd;
	} else {
		struct scan s;
		watched_fd(d, first, it, &s);
		if (s.pid < 0)
			return refuse(d, it, "epoll watches a file (tfd %d) no longer open in the group", tfd);
		if (!s.both)
			return refuse(d, it, "epoll watches pid %d's fd %d (tfd %d), which only that process has back "
				      "after a restart, and it does not hold the epoll", s.pid, s.fd, tfd);
		pid = s.pid, fd = s.fd;
	}
	if (fired)
		return refuse(d, it, FIRED "pid %d's fd %d, which only that process adds back: " NO_FIRE, tfd, pid, fd);
	e->how = CO_EPI_PROCESS;
	e->pid = pid, e->fd = fd;
	return 0;
}

/* How many items before index n have the number tfd (kcmp's toff: the kernel lists them in the same order) */
static int same_number_before(const int *tfds, int n, int tfd)
{
	int c = 0;
	for (int i = 0; i < n; i++)
		c += tfds[i] == tfd;
	return c;
}

#define MAX_ITEMS 16384

/* Each item: which file it watches, and who adds it back (see the top of this file). */
static int epoll_dump_data(struct co_kdump *d, int first, uint64_t id)
{
	static char info[1 << 20];
	static int tfds[MAX_ITEMS];
	const struct co_ref *ep = &d->refs[first];
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", ep->host, ep->fd);
	long got = co_read_small(path, info, sizeof(info));
	if (got <= 0 || ep->inflight) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read %s", ep->pid, ep->fd, ep->path);
		return -1;
	}
	if ((size_t)got >= sizeof(info) - 1) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: an epoll set with more items than cohort reads (%zu bytes "
			 "of fdinfo)", ep->pid, ep->fd, sizeof(info) - 1);
		return -1;
	}
	struct item it = { .ep = ep };
	int n = 0;
	for (const char *p = info; co_epoll_next(&p, &it.l); n++) {
		if (it.l.tfd < 0 || n == MAX_ITEMS) {
			snprintf(d->err, d->errlen, "pid %d: fd %d: %s", ep->pid, ep->fd,
				 n == MAX_ITEMS ? "an epoll set with more items than cohort restores" :
						  "an epoll item cohort cannot read in its fdinfo");
			return -1;
		}
		it.toff = same_number_before(tfds, n, it.l.tfd);
		tfds[n] = it.l.tfd;
		it.dev = makedev(it.l.sdev >> 20, it.l.sdev & 0xfffff);
		struct co_epitem e = { .epoll = id, .events = it.l.events, .data = it.l.data, .tfd = it.l.tfd };
		int r = place_item(d, first, &it, &e);
		if (r < 0)
			return r; /* -1, or CO_BUSY */
		co_w_rec(d->w, CO_R_EPITEM, &e, sizeof(e));
	}
	return d->w->err;
}

/* ---- restore, in init ---- */

/* The items init adds once every object is made and filled (epoll_restore_done). */
static struct co_epitem *items;
static int nitems, room;

static int keep_item(struct co_krestore *x, const struct co_epitem *e)
{
	if (nitems == room) {
		int more = room ? room * 2 : 256;
		struct co_epitem *p = more <= CO_MAX_PLAN ? realloc(items, sizeof(*items) * (size_t)more) : NULL;
		if (!p)
			return co_kbad(x, "more than %d epoll items", room);
		items = p, room = more;
	}
	items[nitems++] = *e;
	return 0;
}

/*
 * An item a process adds back (CO_EPI_PROCESS; an older image's, whose
 * fd is also its number): a plan entry for that process, with its own
 * descriptor of the set.
 */
static int plan_item(struct co_krestore *x, const struct co_epitem *e, int ep)
{
	int tfd = e->how == CO_EPI_OWNER_FD ? e->fd : e->tfd;
	int epfd = co_plan_holder(x, e->pid, ep);
	if (epfd < 0)
		return co_kbad(x, "epoll item of pid %d without its epoll", e->pid);
	if (e->fd < 0 || tfd < 0)
		return co_kbad(x, "epoll item on descriptor %d, added as %d", e->fd, tfd);
	if (CO_EPOLL_DISABLED(e->events))
		return co_kerr(x, "recreating the group's shared objects: epoll %llu: pid %d's item on fd %d is a fired "
			       "EPOLLONESHOT item, which cohort can only make again in init: an image of an older "
			       "cohort, which restored it enabled", (unsigned long long)e->epoll, e->pid, e->fd);
	struct co_plan_ent pe = { .pid = e->pid, .fd = e->fd, .kind = CO_PLAN_EPITEM, .src = epfd, .dev = e->events,
				  .ino = e->data, .tfd = tfd };
	return co_plan_add(x, &pe);
}

static int epoll_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	(void)len;
	if (type == CO_R_SOBJ)
		return co_sobj_made(x, p, epoll_create1(0));
	const struct co_epitem *e = p;
	int ep = co_made_fd(x, CO_OBJ_EPOLL, e->epoll, 0);
	if (ep < 0)
		return co_kbad(x, "epoll item of a missing epoll %llu", (unsigned long long)e->epoll);
	if (e->how == CO_EPI_OWNER_FD || e->how == CO_EPI_PROCESS)
		return plan_item(x, e, ep);
	if (e->how != CO_EPI_OBJECT || e->tfd < 0 || e->end > 1 || co_made_fd(x, e->kind, e->id, (int)e->end) < 0)
		return co_kbad(x, "epoll item (how %u, tfd %d) of a missing object: %s %llu", e->how, e->tfd,
			       co_obj_name(e->kind), (unsigned long long)e->id);
	return keep_item(x, e);
}

/*
 * The items of the objects, once every object is made and filled (unix
 * queues, inotify events: this runs after the other kinds' restore_done):
 * the fired EPOLLONESHOT ones first, each made to fire while it is the
 * only one of its set that can, then the others.
 */
static int epoll_restore_done(struct co_krestore *x)
{
	int bad = 0;
	co_plan_top(); /* the soft descriptor limit raised: a number may be above the default one */
	for (int pass = 0; pass < 2 && !bad; pass++)
		for (int i = 0; i < nitems && !bad; i++) {
			const struct co_epitem *e = &items[i];
			if (CO_EPOLL_DISABLED(e->events) != !pass)
				continue;
			int ep = co_made_fd(x, CO_OBJ_EPOLL, e->epoll, 0);
			int f = co_made_fd(x, e->kind, e->id, (int)e->end);
			long r = pass ? co_epoll_add(ep, f, e->tfd, e->events, e->data)
				      : co_epoll_add_disabled(ep, f, e->tfd, e->events, e->data);
			if (r < 0)
				bad = co_kerr(x, "recreating the group's shared objects: epoll %llu: its %sitem on %s %llu "
					      "(added as %d, events %#x) %s: %s", (unsigned long long)e->epoll,
					      pass ? "" : "fired EPOLLONESHOT ", co_obj_name(e->kind),
					      (unsigned long long)e->id, e->tfd, e->events,
					      pass ? "cannot be added back" : "cannot be made to fire to disable it again",
					      r == -EAGAIN ? "its file is ready for nothing"
					      : r == -EPERM && (e->events & CO_EPOLLWAKEUP) ? "EPOLLWAKEUP needs CAP_BLOCK_SUSPEND"
										 : strerror((int)-r));
		}
	free(items);
	items = NULL;
	nitems = room = 0;
	return bad;
}

static void epoll_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	if (type == CO_R_SOBJ) {
		snprintf(out, n, "epoll %llu", (unsigned long long)((const struct co_sobj *)p)->id);
		return;
	}
	const struct co_epitem *e = p;
	if (len < sizeof(*e) || e->how == CO_EPI_OWNER_FD)
		snprintf(out, n, "epoll %llu watches pid %d fd %d events %#x data %#llx", (unsigned long long)e->epoll,
			 e->pid, e->fd, e->events, (unsigned long long)e->data);
	else if (e->how == CO_EPI_OBJECT)
		snprintf(out, n, "epoll %llu watches %s %llu%s (pid %d fd %d) added as %d, events %#x data %#llx",
			 (unsigned long long)e->epoll, co_obj_name(e->kind), (unsigned long long)e->id,
			 e->kind == CO_OBJ_PIPE ? (e->end ? " write end" : " read end") : "", e->pid, e->fd, e->tfd,
			 e->events, (unsigned long long)e->data);
	else
		snprintf(out, n, "epoll %llu watches pid %d fd %d added as %d, events %#x data %#llx, added back by "
			 "that process", (unsigned long long)e->epoll, e->pid, e->fd, e->tfd, e->events,
			 (unsigned long long)e->data);
}

const struct co_kind_ops co_epoll_ops = {
	.kind = CO_OBJ_EPOLL, .identity = CO_ID_OPENFILE, .late = 1,
	.dump = epoll_dump, .dump_data = epoll_dump_data, .restore = epoll_restore,
	.restore_done = epoll_restore_done, .describe = epoll_describe,
};
