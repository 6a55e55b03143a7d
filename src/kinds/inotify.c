/*
 * inotify.c - an inotify descriptor: its watches (wd, mask, and the path
 * of the watched inode, found from the file handle its fdinfo shows) and
 * the events queued at the checkpoint.  One object per open file
 * description.
 *
 * Watches come back in the order of their wd, since inotify_add_watch
 * hands out increasing ones: the gaps (watches the program removed) are
 * filled with watches on a memfd of init's, removed at once.
 *
 * Queued events: reading them consumes them, and the kernel has no way to
 * queue one.  Two ways keep them (issue 13):
 *
 * 1. The agent holds them (src/agent/inotify.c), when the object has one
 *    descriptor, which the program made or reads through libc (the agent
 *    lists it in the process table, co_iheld).  Here, in the pause: a
 *    marker event is made behind the queued ones (an IN_ATTRIB on one
 *    watch, by setting its file's times to the ones it has; a watch whose
 *    mask lacks IN_ATTRIB has it for that moment), and the agent is told
 *    to take the bytes queued before it.  It does at DUMP, before the
 *    snapshot (so they are in the image; at RELEASE when the checkpoint
 *    fails before), and hands them out itself: read, readv and FIONREAD
 *    answer as the kernel would, and poll, epoll and select see the
 *    descriptor readable by the marker, which the agent swallows when it
 *    has handed out the rest.  At a restart init makes the marker again
 *    on the new object (the record keeps its wd).  Every kind of event
 *    comes back so, exactly (cookies, names, order, overflow), in the
 *    running program after a live checkpoint too.
 * 2. Otherwise (several descriptors, or one made and read with raw system
 *    calls, as Go does) only what can be made again is kept: the
 *    checkpoint reads the queue (through a descriptor of its own:
 *    pidfd_getfd) and makes each event happen again on the watched file
 *    by a harmless action that produces exactly it: an IN_MODIFY by
 *    truncating the file to the size it has, an IN_ATTRIB by setting its
 *    times to the ones it has.  This is done twice: at once, so that the
 *    running program finds its queue as it was, and at the restart, in
 *    init, on the new watches.  Before acting, the events one action will
 *    make (on the file's own watch, and on its directory's, with its name)
 *    are predicted and must be the next ones of the queue; else the
 *    checkpoint is refused in one line.  Which events a queue may hold
 *    must be decided before reading it: when some watch may produce
 *    others (or is IN_ONESHOT), a queue that is not empty (FIONREAD) is
 *    not read and the checkpoint tries again in a moment (CO_BUSY), while
 *    the program reads its queue; after about a second it fails, naming
 *    the descriptor.  An IN_IGNORED (a watch the program removed, not read
 *    yet) is made again at a restart by removing the filler of its wd;
 *    the running program loses it (a warning says so).
 *
 * Why the agent and not more actions: create, delete and move events
 * cannot be made without doing what they tell of, and a queue read is
 * gone; the agent already answers for the program's calls (wrap.c), and
 * its memory is part of the image.  The marker is the one real event it
 * costs: the descriptor must be readable for poll and epoll, which only
 * the kernel can say.  A program reading with raw system calls would get
 * the marker and not the held events: so the agent holds events only of
 * descriptors it has seen made or read through libc, and refuses the
 * others as before.  (CRIU drops queued inotify events, with a warning:
 * criu/fsnotify.c, "inotify events will be dropped"; its issue 48.)
 *
 * A watch's path needs open_by_handle_at, that is CAP_DAC_READ_SEARCH:
 * without it the checkpoint is refused in one line.  A search by inode in
 * what the process has open would find a watched directory only by chance
 * (a program watches paths it seldom holds open), so it is not tried.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "procfs.h"

#define MAX_WATCHES 4096
#define MAX_QUEUE (1 << 19)	/* bytes of queued events a checkpoint keeps */
#define MAX_OBJS 256		/* inotify objects of a group, at a restart */
#define REMADE (IN_MODIFY | IN_ATTRIB)	/* the events cohort can make again */

/* One inotify object, as the dump reads it or as init makes it again. */
struct iobj {
	uint64_t id;
	int fd;			/* restore: the new object */
	int nw;
	struct co_iwatch *w;	/* by wd */
	char *ev;		/* the queued events */
	size_t evlen;
	int next_wd;		/* restore: the wd the next inotify_add_watch gives */
	int marker;		/* its agent holds its events: the watch of the marker event (0: not) */
	uint32_t taken;		/* the bytes of events its agent took at this checkpoint */
};

/* An event one action makes. */
struct pev {
	int wd;
	uint32_t mask;
	const char *name;	/* "" for the watched inode's own */
};

enum how { LIVE, RESTORE };

static const struct co_iwatch *watch_wd(const struct iobj *o, int wd)
{
	for (int i = 0; i < o->nw; i++)
		if (o->w[i].wd == wd)
			return &o->w[i];
	return NULL;
}

static const struct co_iwatch *watch_at(const struct iobj *o, const struct stat *st)
{
	for (int i = 0; i < o->nw; i++)
		if (o->w[i].dev == (uint64_t)st->st_dev && o->w[i].ino == (uint64_t)st->st_ino)
			return &o->w[i];
	return NULL;
}

/* The watch of o on the directory path is in (it hears of path by name), or NULL. */
static const struct co_iwatch *dir_watch(const struct iobj *o, const char *path)
{
	char up[CO_PATH];
	struct stat ds;
	snprintf(up, sizeof(up), "%s", path);
	char *slash = strrchr(up, '/');
	if (!slash)
		return NULL;
	*(slash == up ? slash + 1 : slash) = 0;
	return strcmp(up, path) && stat(up, &ds) == 0 ? watch_at(o, &ds) : NULL;
}

static const char *event_name(uint32_t mask)
{
	static const struct { uint32_t bit; const char *name; } names[] = {
		{ IN_ACCESS, "access" }, { IN_MODIFY, "modify" }, { IN_ATTRIB, "attrib" },
		{ IN_CLOSE_WRITE, "close-write" }, { IN_CLOSE_NOWRITE, "close-nowrite" }, { IN_OPEN, "open" },
		{ IN_MOVED_FROM, "moved-from" }, { IN_MOVED_TO, "moved-to" }, { IN_CREATE, "create" },
		{ IN_DELETE, "delete" }, { IN_DELETE_SELF, "delete-self" }, { IN_MOVE_SELF, "move-self" },
		{ IN_UNMOUNT, "unmount" }, { IN_Q_OVERFLOW, "queue-overflow" }, { IN_IGNORED, "ignored" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (mask & names[i].bit)
			return names[i].name;
	return "?";
}

/*
 * The events that making e again makes: the action's file in *target and
 * its stat in *st, the events into out (the directory's first, as the
 * kernel queues them).  How many, or -1 with *why.
 */
static int predict(const struct iobj *o, const struct inotify_event *e, struct pev out[2], char *target, size_t tn,
		   struct stat *st, const char **why)
{
	uint32_t bit = e->mask & ~(uint32_t)IN_ISDIR;
	const struct co_iwatch *w = watch_wd(o, e->wd), *dir = NULL;
	const char *name;
	if ((bit != IN_MODIFY && bit != IN_ATTRIB) || e->cookie) {
		*why = "cohort makes again only modify and attrib events";
		return -1;
	}
	if (!w) {
		*why = "its watch is gone";
		return -1;
	}
	if (e->len && e->name[0]) {
		snprintf(target, tn, "%s/%s", w->path, e->name);
		dir = w;
		name = e->name;
	} else {
		/* the directory the watched file is in may be watched too: it hears of it by name */
		snprintf(target, tn, "%s", w->path);
		name = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
		dir = dir_watch(o, w->path);
	}
	if (lstat(target, st) < 0) {
		*why = "its file is gone";
		return -1;
	}
	if (bit == IN_MODIFY && !S_ISREG(st->st_mode)) {
		*why = "its file is not a regular file";
		return -1;
	}
	uint32_t isdir = S_ISDIR(st->st_mode) ? IN_ISDIR : 0;
	const struct co_iwatch *self = watch_at(o, st);
	int k = 0;
	if (dir && (dir->mask & bit))
		out[k++] = (struct pev){ dir->wd, bit | isdir, name };
	if (self && (self->mask & bit))
		out[k++] = (struct pev){ self->wd, bit | isdir, "" };
	return k;
}

/* Is the event at off the one p says? */
static int same(const struct iobj *o, size_t off, const struct pev *p)
{
	const struct inotify_event *e = (const void *)(o->ev + off);
	if (off + sizeof(*e) > o->evlen || off + sizeof(*e) + e->len > o->evlen)
		return 0;
	const char *name = e->len ? e->name : "";
	return e->wd == p->wd && e->mask == p->mask && !e->cookie && strnlen(name, e->len) == strlen(p->name) &&
	       !strncmp(name, p->name, strlen(p->name));
}

/* The harmless action that makes event bit on target again (st: target as it is). */
static int act(uint32_t bit, const char *target, const struct stat *st)
{
	if (bit == IN_MODIFY)
		return truncate(target, st->st_size);
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	return utimensat(AT_FDCWD, target, ts, AT_SYMLINK_NOFOLLOW);
}

/*
 * The watch to make the marker on (see the top): not IN_ONESHOT, its
 * file where its path says, and no watch of o on its directory that
 * hears of attrib events (the marker is one event); one that has
 * IN_ATTRIB in its mask first (its mask is not touched).  NULL: none.
 */
static const struct co_iwatch *marker_watch(const struct iobj *o)
{
	const struct co_iwatch *best = NULL;
	for (int i = 0; i < o->nw; i++) {
		const struct co_iwatch *w = &o->w[i], *dir;
		struct stat st;
		if ((w->mask & IN_ONESHOT) || lstat(w->path, &st) < 0 || (uint64_t)st.st_ino != w->ino ||
		    (uint64_t)st.st_dev != w->dev)
			continue;
		if ((dir = dir_watch(o, w->path)) && dir != w && (dir->mask & IN_ATTRIB))
			continue;
		if (!best || ((w->mask & IN_ATTRIB) && !(best->mask & IN_ATTRIB)))
			best = w;
	}
	return best;
}

/*
 * The marker: one IN_ATTRIB of watch w on the inotify object fd, by
 * setting its file's times to the ones it has; a watch whose mask lacks
 * IN_ATTRIB has it for that moment only.  0 with the event's mask in
 * *made (when not NULL), or -1 with *why.
 */
static int make_marker(int fd, const struct co_iwatch *w, uint32_t *made, const char **why)
{
	struct stat st;
	uint32_t mask = w->mask & ~(uint32_t)(IN_MASK_ADD | IN_MASK_CREATE);
	int wide = !(mask & IN_ATTRIB);
	if (lstat(w->path, &st) < 0) {
		*why = "its file is gone";
		return -1;
	}
	if (S_ISLNK(st.st_mode))
		mask |= IN_DONT_FOLLOW; /* the watch is on the link itself */
	if (wide && inotify_add_watch(fd, w->path, mask | IN_ATTRIB) != w->wd) {
		*why = "its watch does not take attrib events";
		return -1;
	}
	int r = act(IN_ATTRIB, w->path, &st), e = errno;
	if (made)
		*made = IN_ATTRIB | (S_ISDIR(st.st_mode) ? IN_ISDIR : 0);
	if (wide && inotify_add_watch(fd, w->path, mask) != w->wd) {
		*why = "its mask cannot be put back";
		return -1;
	}
	if (r < 0)
		*why = strerror(e);
	return r;
}

/*
 * Make the queued events of o happen again, in their order: on the
 * running program's object (LIVE, at the checkpoint) or on the new one
 * (RESTORE, in init).  0, or -1 with err (what names the descriptor) at
 * the first event that cannot be made again: the events before it are.
 */
static int replay(struct iobj *o, enum how how, const char *what, char *err, size_t n)
{
	int lost = 0;
	for (size_t off = 0; off + sizeof(struct inotify_event) <= o->evlen;) {
		const struct inotify_event *e = (const void *)(o->ev + off);
		const char *why = NULL;
		char target[CO_PATH + NAME_MAX + 2];
		struct stat st;
		struct pev p[2];
		if (e->mask == IN_IGNORED && !watch_wd(o, e->wd) && e->wd > 0) {
			/* a removed watch's notice: at a restart, the removal of its filler */
			if (how == LIVE)
				lost++;
			else if (inotify_rm_watch(o->fd, e->wd) < 0)
				why = "its watch cannot be removed again";
			off += sizeof(*e) + e->len;
			if (!why)
				continue;
		}
		int k = why ? -1 : predict(o, e, p, target, sizeof(target), &st, &why);
		size_t at = off;
		for (int i = 0; i < k && !why; i++) {
			if (!same(o, at, &p[i]))
				why = "making it again would make other events";
			else
				at += sizeof(*e) + ((const struct inotify_event *)(o->ev + at))->len;
		}
		if (!why && k == 0)
			why = "no watch would hear of it again";
		if (!why && act(e->mask & ~(uint32_t)IN_ISDIR, target, &st) < 0)
			why = strerror(errno);
		if (why) {
			const struct co_iwatch *w = watch_wd(o, e->wd);
			snprintf(err, n, "%s: queued %s event%s%.*s%s of watch %d (%s) cannot be made again: %s%s", what,
				 event_name(e->mask), e->len ? " \"" : "", (int)strnlen(e->name, e->len),
				 e->len ? e->name : "", e->len ? "\"" : "", e->wd, w ? w->path : "removed", why,
				 how == LIVE ? " (the program loses the events from this one on)" : "");
			return -1;
		}
		off = at;
	}
	if (lost)
		co_warn("warning: %s: the checkpoint read %d notice%s of a removed watch (IN_IGNORED), which the running "
			"program will not read", what, lost, lost > 1 ? "s" : "");
	return 0;
}

/* ---- dump ---- */

int co_handle_path(uint32_t sdev, uint64_t ino, int type, const uint8_t *handle, uint32_t bytes, char *path,
		   uint64_t *dev, const char **why)
{
	unsigned maj = sdev >> 20, min = sdev & 0xfffff;
	char mnt[CO_PATH], proc[64];
	struct stat st;
	struct {
		struct file_handle h;
		unsigned char b[MAX_HANDLE_SZ];
	} fh;
	path[0] = 0;
	if (!bytes || bytes > MAX_HANDLE_SZ) {
		*why = "the kernel shows no file handle for it";
		return -1;
	}
	if (co_dev_mount(maj, min, mnt, sizeof(mnt)) < 0) {
		*why = "no mount of its filesystem is in sight";
		return -1;
	}
	int mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* not O_PATH: open_by_handle_at refuses it */
	fh.h.handle_bytes = bytes;
	fh.h.handle_type = type;
	memcpy(fh.h.f_handle, handle, bytes);
	int f = mfd < 0 ? -1 : open_by_handle_at(mfd, &fh.h, O_PATH | O_CLOEXEC);
	int e = errno;
	if (mfd >= 0)
		close(mfd);
	if (f < 0) {
		static char msg[96];
		snprintf(msg, sizeof(msg), "its file handle does not open: %s", strerror(e));
		*why = e == EPERM ? "finding its path needs CAP_DAC_READ_SEARCH, which cohort lacks" : msg;
		return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f);
	ssize_t len = readlink(proc, path, CO_PATH - 1);
	close(f);
	path[len > 0 ? len : 0] = 0;
	/* a path that is not the inode's now (deleted, or elsewhere in another mount) would mark another file */
	if (len <= 0 || path[0] != '/' || stat(path, &st) < 0 || (uint64_t)st.st_ino != ino || major(st.st_dev) != maj ||
	    minor(st.st_dev) != min) {
		*why = "it has no path that leads to it";
		return -1;
	}
	*dev = (uint64_t)st.st_dev;
	return 0;
}

/* The path of the watched inode of fdinfo line l, into w (its wd, mask, device, inode); -1 with why. */
static int watch_path(const struct co_inotify_line *l, struct co_iwatch *w, const char **why)
{
	*w = (struct co_iwatch){ .wd = l->wd, .mask = l->mask, .ino = l->ino };
	return co_handle_path(l->sdev, l->ino, l->handle_type, l->handle, l->handle_bytes, w->path, &w->dev, why);
}

static int by_wd(const void *a, const void *b)
{
	return ((const struct co_iwatch *)a)->wd - ((const struct co_iwatch *)b)->wd;
}

/* The watches of refs[first] from its fdinfo into o, by wd; -1 with err. */
static int read_watches(struct co_kdump *d, int first, struct iobj *o)
{
	static char info[1 << 20];
	const struct co_ref *r = &d->refs[first];
	struct co_inotify_line l;
	if (co_ref_fdinfo(d, first, info, sizeof(info)) < 0)
		return -1;
	for (const char *p = info; co_inotify_next(&p, &l);) {
		const char *why = NULL;
		if (o->nw == MAX_WATCHES) {
			snprintf(d->err, d->errlen, "pid %d: fd %d: inotify: more than %d watches", r->pid, r->fd, MAX_WATCHES);
			return -1;
		}
		if (watch_path(&l, &o->w[o->nw], &why) < 0) {
			snprintf(d->err, d->errlen, "pid %d: fd %d: inotify watch %d (inode %llu): %s", r->pid, r->fd, l.wd,
				 (unsigned long long)l.ino, why);
			return -1;
		}
		o->nw++;
	}
	qsort(o->w, (size_t)o->nw, sizeof(o->w[0]), by_wd);
	return 0;
}

/* A watch that may queue events cohort cannot make again, or NULL. */
static const struct co_iwatch *unsure_watch(const struct iobj *o)
{
	for (int i = 0; i < o->nw; i++)
		if ((o->w[i].mask & IN_ALL_EVENTS & ~(uint32_t)REMADE) || (o->w[i].mask & IN_ONESHOT))
			return &o->w[i];
	return NULL;
}

/*
 * The entry of the process table by which the agent of refs[first]'s
 * holder may hold its events: the object has one descriptor, the program
 * made it and reads it through libc.  NULL with *why.
 */
static struct co_iheld *held_by_agent(struct co_kdump *d, int first, const char **why)
{
	const struct co_ref *r = &d->refs[first];
	int n = 0;
	CO_FOR_HOLDERS(d, first, k)
		n++;
	*why = "more than one descriptor refers to it";
	if (n != 1 || r->inflight || !d->table)
		return NULL;
	int s = co_ref_slot(d, r);
	for (int i = 0; s >= 0 && i < CO_IHELD; i++)
		if (d->table->iheld[s][i].fd1 == r->fd + 1)
			return &d->table->iheld[s][i];
	*why = "the program did not make it, or does not read it, through libc";
	return NULL;
}

/*
 * Queued events (queued bytes, on our descriptor fd of the object) left
 * to the agent of h: the marker made behind them, and the agent told how
 * many bytes to take.  0, or -1 / CO_BUSY with err.
 */
static int leave_to_agent(struct co_kdump *d, const struct co_ref *r, struct iobj *o, int fd, int queued,
			  struct co_iheld *h)
{
	const struct co_iwatch *w = marker_watch(o);
	const char *why = NULL;
	if (h->held + (uint64_t)queued > CO_IHELD_BYTES) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: inotify: %d bytes of events queued and %u held by its agent, "
			 "more than the %d it holds", r->pid, r->fd, queued, h->held, CO_IHELD_BYTES);
		return CO_BUSY;
	}
	if (!w) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: inotify: %d bytes of events queued, and no watch to make "
			 "its marker event on", r->pid, r->fd, queued);
		return CO_BUSY;
	}
	uint32_t mask = 0;
	int after = 0;
	if (make_marker(fd, w, &mask, &why) < 0 || ioctl(fd, FIONREAD, &after) < 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: inotify: the marker event on watch %d (%s): %s", r->pid, r->fd,
			 w->wd, w->path, why ? why : strerror(errno));
		return -1;
	}
	/*
	 * The kernel merges an event into the last queued one when they are the
	 * same (a touch of the marker's file, or the marker of the checkpoint
	 * before): that one is left as the marker, the agent takes the others.
	 */
	h->merged = after == queued;
	h->take = (uint32_t)queued - (h->merged ? (uint32_t)sizeof(struct inotify_event) : 0);
	h->mask = mask;
	h->wd = w->wd;
	o->marker = w->wd;
	o->taken = (uint32_t)queued;
	return 0;
}

/*
 * The queued events of refs[first]: left to its agent, or into o (read
 * through a descriptor of ours); -1 with err, or CO_BUSY.
 */
static int read_queue(struct co_kdump *d, int first, struct iobj *o)
{
	const struct co_ref *r = &d->refs[first];
	const struct co_iwatch *w = unsure_watch(o);
	const char *why = "";
	struct co_iheld *h = NULL;
	int fd = co_ref_grab(r), queued = 0;
	if (fd < 0 || ioctl(fd, FIONREAD, &queued) < 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: inotify: cannot take its queue: %s", r->pid, r->fd,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int bad = 0;
	if (queued > 0)
		h = held_by_agent(d, first, &why);
	if (h && (w || h->held)) {
		bad = leave_to_agent(d, r, o, fd, queued, h);
	} else if (queued > 0 && w) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: inotify: %d bytes of events queued, and watch %d (%s, mask %#x) "
			 "may have queued some cohort cannot make again (only modify and attrib), nor its agent hold "
			 "(%s): the program has not read them", r->pid, r->fd, queued, w->wd, w->path, w->mask, why);
		bad = CO_BUSY;
	} else if (queued > MAX_QUEUE) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: inotify: %d bytes of events queued, more than the %d cohort "
			 "keeps", r->pid, r->fd, queued, MAX_QUEUE);
		bad = -1;
	}
	while (!bad && !o->taken && o->evlen < (size_t)queued) {
		ssize_t got = read(fd, o->ev + o->evlen, (size_t)MAX_QUEUE - o->evlen);
		if (got <= 0) {
			/* read: nothing is lost yet only when nothing was read */
			snprintf(d->err, d->errlen, "pid %d: fd %d: inotify: reading its queue: %s", r->pid, r->fd,
				 got < 0 ? strerror(errno) : "it ended");
			bad = -1;
		} else {
			o->evlen += (size_t)got;
		}
	}
	close(fd);
	return bad;
}

static int inotify_dump(struct co_kdump *d, int first, uint64_t *id)
{
	static struct co_iwatch w[MAX_WATCHES];
	static char ev[sizeof(uint64_t) + MAX_QUEUE];
	const struct co_ref *r = &d->refs[first];
	struct iobj o = { .id = (uint64_t)first + 1, .w = w, .ev = ev + sizeof(uint64_t) };
	char what[64];
	int bad = read_watches(d, first, &o);
	if (!bad)
		bad = read_queue(d, first, &o);
	snprintf(what, sizeof(what), "pid %d: fd %d: inotify", r->pid, r->fd);
	/* what was read goes back at once: the group may run on */
	if (bad || (o.evlen && replay(&o, LIVE, what, d->err, d->errlen) < 0))
		return bad ? bad : -1;
	struct co_sobj so = { .kind = CO_OBJ_INOTIFY, .id = o.id, .a = (uint64_t)o.nw, .b = o.evlen, .c = (uint64_t)o.marker,
			      .d = o.taken };
	*id = o.id;
	if (co_sobj_write(d, first, &so) < 0)
		return -1;
	/* the events before the watches: init knows then which gaps an IN_IGNORED needs */
	memcpy(ev, &o.id, sizeof(o.id));
	co_w_rec(d->w, CO_R_IEVENTS, ev, sizeof(uint64_t) + o.evlen);
	for (int i = 0; i < o.nw; i++) {
		w[i].id = o.id;
		co_w_rec(d->w, CO_R_IWATCH, &w[i], sizeof(w[i]));
	}
	return d->w->err ? -1 : 1;
}

/* ---- restore, in init ---- */

static struct iobj *objs[MAX_OBJS];
static int nobjs;

static struct iobj *obj_of(uint64_t id)
{
	for (int i = 0; i < nobjs; i++)
		if (objs[i]->id == id)
			return objs[i];
	return NULL;
}

/* Is an IN_IGNORED of wd queued in o? (its filler stays until the events are made again) */
static int ignored_queued(const struct iobj *o, int wd)
{
	for (size_t off = 0; off + sizeof(struct inotify_event) <= o->evlen;) {
		const struct inotify_event *e = (const void *)(o->ev + off);
		if (e->wd == wd && e->mask == IN_IGNORED)
			return 1;
		off += sizeof(*e) + e->len;
	}
	return 0;
}

/* Fillers for the wds of o below wd that no watch has (a memfd's inode each, never written). */
static int fill_to(struct co_krestore *x, struct iobj *o, int wd)
{
	for (; o->next_wd < wd; o->next_wd++) {
		char p[64];
		int m = memfd_create("cohort-inotify-gap", MFD_CLOEXEC), got = -1;
		snprintf(p, sizeof(p), "/proc/self/fd/%d", m);
		if (m >= 0)
			got = inotify_add_watch(o->fd, p, IN_DELETE_SELF);
		if (m >= 0)
			close(m);
		if (got != o->next_wd)
			return co_kerr(x, "recreating the group's shared objects: inotify %llu: its watch %d came back as %d%s%s",
				       (unsigned long long)o->id, o->next_wd, got, got < 0 ? ": " : "",
				       got < 0 ? strerror(errno) : "");
		if (!ignored_queued(o, got))
			inotify_rm_watch(o->fd, got);
	}
	return 0;
}

static int add_watch(struct co_krestore *x, const struct co_iwatch *w)
{
	struct iobj *o = obj_of(w->id);
	struct stat st;
	if (!o || o->nw == MAX_WATCHES)
		return co_kbad(x, "inotify watch %d of %s inotify object %llu", w->wd, o ? "a full" : "a missing",
			       (unsigned long long)w->id);
	if (w->wd < o->next_wd)
		return co_kbad(x, "inotify watch %d out of order", w->wd);
	if (fill_to(x, o, w->wd) < 0)
		return -1;
	int got = inotify_add_watch(o->fd, w->path, w->mask & ~(uint32_t)(IN_MASK_ADD | IN_MASK_CREATE));
	if (got != w->wd)
		return co_kerr(x, "recreating the group's shared objects: inotify %llu: watch %d (%.*s) came back as %d%s%s",
			       (unsigned long long)o->id, w->wd, CO_PATH, w->path, got, got < 0 ? ": " : "",
			       got < 0 ? strerror(errno) : "");
	o->next_wd = got + 1;
	o->w[o->nw] = *w;
	o->w[o->nw].path[CO_PATH - 1] = 0;
	/* its inode now, for the events made again */
	if (stat(w->path, &st) == 0) {
		o->w[o->nw].dev = (uint64_t)st.st_dev;
		o->w[o->nw].ino = (uint64_t)st.st_ino;
	}
	o->nw++;
	return 0;
}

static int new_obj(struct co_krestore *x, const struct co_sobj *so)
{
	if (nobjs == MAX_OBJS)
		return co_kbad(x, "more than %d inotify objects", MAX_OBJS);
	struct iobj *o = calloc(1, sizeof(*o));
	if (!o || !(o->w = calloc(MAX_WATCHES, sizeof(*o->w))))
		return co_kerr(x, "recreating the group's shared objects: out of memory");
	o->id = so->id;
	o->next_wd = 1;
	o->marker = (int)so->c;
	o->fd = inotify_init1(IN_CLOEXEC);
	if (co_sobj_made(x, so, o->fd) < 0)
		return -1;
	objs[nobjs++] = o;
	return 0;
}

static int inotify_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	if (type == CO_R_SOBJ)
		return new_obj(x, p);
	if (type == CO_R_IWATCH)
		return add_watch(x, p);
	uint64_t id;
	memcpy(&id, p, sizeof(id));
	struct iobj *o = obj_of(id);
	if (!o || o->ev)
		return co_kbad(x, "inotify events of %s inotify object %llu", o ? "a second record of" : "a missing",
			       (unsigned long long)id);
	o->evlen = len - sizeof(id);
	if (!(o->ev = malloc(o->evlen + 1)))
		return co_kerr(x, "recreating the group's shared objects: out of memory");
	memcpy(o->ev, (const char *)p + sizeof(id), o->evlen);
	return 0;
}

/* Once every watch is back: the fillers' notices read away, then the queued events made again. */
static int inotify_restore_done(struct co_krestore *x)
{
	static char junk[1 << 16];
	for (int i = 0; i < nobjs; i++) {
		struct iobj *o = objs[i];
		int max = 0, queued = 0;
		for (size_t off = 0; off + sizeof(struct inotify_event) <= o->evlen;) {
			const struct inotify_event *e = (const void *)(o->ev + off);
			if (e->mask == IN_IGNORED && e->wd > max)
				max = e->wd;
			off += sizeof(*e) + e->len;
		}
		if (fill_to(x, o, max + 1) < 0)
			return -1;
		while (ioctl(o->fd, FIONREAD, &queued) == 0 && queued > 0)
			if (read(o->fd, junk, sizeof(junk)) <= 0)
				break;
		char what[96], err[1024];
		snprintf(what, sizeof(what), "recreating the group's shared objects: inotify %llu", (unsigned long long)o->id);
		if (o->evlen && replay(o, RESTORE, what, err, sizeof(err)) < 0)
			return co_kerr(x, "%s", err);
		/* the events its agent holds: the marker that makes the descriptor readable (see the top) */
		const struct co_iwatch *w = o->marker ? watch_wd(o, o->marker) : NULL;
		const char *why = "its watch is not in the image";
		if (o->marker && (!w || make_marker(o->fd, w, NULL, &why) < 0))
			return co_kerr(x, "%s: the marker event on watch %d (%s): %s", what, o->marker, w ? w->path : "?", why);
	}
	return 0;
}

static void inotify_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	if (type == CO_R_SOBJ) {
		const struct co_sobj *o = p;
		size_t at = (size_t)snprintf(out, n, "inotify %llu: %llu watches, %llu bytes of events queued",
					     (unsigned long long)o->id, (unsigned long long)o->a, (unsigned long long)o->b);
		if (o->c && at < n)
			snprintf(out + at, n - at, ", %llu held by its process's agent (marker event on watch %llu)",
				 (unsigned long long)o->d, (unsigned long long)o->c);
	} else if (type == CO_R_IWATCH) {
		const struct co_iwatch *w = p;
		snprintf(out, n, "inotify %llu: watch %d mask %#x %.*s", (unsigned long long)w->id, w->wd, w->mask, CO_PATH,
			 w->path);
	} else {
		uint64_t id;
		size_t k = 0, at = 0;
		memcpy(&id, p, sizeof(id));
		at = (size_t)snprintf(out, n, "inotify %llu:", (unsigned long long)id);
		for (size_t off = sizeof(id); off + sizeof(struct inotify_event) <= len && at < n; k++) {
			const struct inotify_event *e = (const void *)((const char *)p + off);
			if (k < 8)
				at += (size_t)snprintf(out + at, n - at, " wd %d %s%s%.*s%s", e->wd, event_name(e->mask),
						       e->len ? " \"" : "", (int)strnlen(e->name, e->len),
						       e->len ? e->name : "", e->len ? "\"" : "");
			off += sizeof(*e) + e->len;
		}
		if (k == 0 || k > 8)
			snprintf(out + at, n > at ? n - at : 0, " %zu events queued", k);
	}
}

const struct co_kind_ops co_inotify_ops = {
	.kind = CO_OBJ_INOTIFY, .identity = CO_ID_OPENFILE,
	.dump = inotify_dump, .restore = inotify_restore, .restore_done = inotify_restore_done,
	.describe = inotify_describe,
};
