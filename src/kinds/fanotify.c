/*
 * fanotify.c - a fanotify descriptor: the flags it was made with
 * (fanotify_init's flags and event_f_flags) and its marks, each with a
 * path a restart can mark again.  One object per open file description.
 *
 * Its fdinfo lists the group ("fanotify flags:F event-flags:E") and one
 * line per mark (procfs.c, co_fanotify_next):
 *   - an inode mark names its inode by a file handle: its path is found
 *     as inotify's watches' are (co_handle_path: open_by_handle_at on a
 *     mount of its filesystem, then that descriptor's path, which must
 *     lead to the same inode; CRIU's criu/fsnotify.c does the same);
 *   - a mount mark names its mount by id: its mount point as the holder
 *     sees it (/proc/PID/mountinfo; the group's mount namespace has its
 *     own ids, a restart's another: the path is what stays);
 *   - a filesystem mark names its superblock by device: a mount of that
 *     filesystem's root;
 *   - a mount namespace's mark (FAN_MARK_MNTNS, 6.14) names it by inode:
 *     only the group's own (the holder's), which a restart makes again,
 *     is kept (init marks its own, /proc/self/ns/mnt).
 * A restart makes the group with fanotify_init(flags, event_f_flags) and
 * adds each mark again (FAN_MARK_ADD | its type | FAN_MARK_EVICTABLE as it
 * had, its mask; then its ignored mask, with FAN_MARK_IGNORE or the older
 * FAN_MARK_IGNORED_MASK as it was added, and FAN_MARK_IGNORED_SURV_MODIFY).
 * A mark with no path that leads to it (another mount namespace's), or
 * one cohort does not know, refuses the checkpoint in one line naming
 * process, descriptor and mark.
 *
 * Queued events are not kept: each carries a descriptor the kernel opens
 * for the reader and the pid of who acted, which nothing but that action
 * makes again (inotify's harmless actions would report cohort's pid).  So
 * a queue that is not empty (FIONREAD) makes the checkpoint try again in a
 * moment (CO_BUSY) while the program reads it, and after about a second
 * fail, saying why: the program runs on with its queue untouched (nothing
 * here reads it).  Permission events (FAN_*_PERM, FAN_PRE_ACCESS) the
 * program has read and not yet answered show in neither FIONREAD nor
 * fdinfo, and neither the answer owed nor the process waiting for it
 * could survive a restart: a group with permission marks is checkpointed
 * only when no thread of the machine waits in fanotify for an answer
 * (perm_answered), else the checkpoint tries again, then fails, as for a
 * queue.
 *
 * fanotify_init needs CAP_SYS_ADMIN, except (Linux 5.13 and later) for a
 * group that reports file ids (FAN_REPORT_FID) without permission events,
 * with inode marks only: a restart asks the kernel, and when it says no,
 * fails in one line saying what the group needs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "procfs.h"

#define MAX_MARKS 4096
#define MAX_OBJS 256		/* fanotify objects of a group, at a restart */
/* what asks the program for an answer: FAN_OPEN_PERM, FAN_ACCESS_PERM, FAN_OPEN_EXEC_PERM, FAN_PRE_ACCESS (6.14) */
#define PERM_EVENTS (0x00010000ULL | 0x00020000ULL | 0x00040000ULL | 0x00100000ULL)
#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x00000200
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x00000400
#endif
#ifndef FAN_MARK_MNTNS
#define FAN_MARK_MNTNS 0x00000110
#endif

static const char *type_name(uint32_t type)
{
	return type == CO_FM_INODE ? "inode" : type == CO_FM_MOUNT ? "mount" : type == CO_FM_FILESYSTEM ? "filesystem"
	       : type == CO_FM_MNTNS ? "mount namespace" : "?";
}

/* ---- dump ---- */

/* What names the mark of fdinfo line l in a message: "inode 1234 of device 254:0", "mount 27", ... */
static void mark_name(const struct co_fanotify_line *l, char *out, size_t n)
{
	unsigned maj = l->sdev >> 20, min = l->sdev & 0xfffff;
	if (l->what == CO_FAN_INODE)
		snprintf(out, n, "inode %llu of device %u:%u", (unsigned long long)l->ino, maj, min);
	else if (l->what == CO_FAN_MOUNT)
		snprintf(out, n, "mount %u", l->mnt_id);
	else if (l->what == CO_FAN_FILESYSTEM)
		snprintf(out, n, "filesystem of device %u:%u", maj, min);
	else if (l->what == CO_FAN_MNTNS)
		snprintf(out, n, "mount namespace %llu", (unsigned long long)l->mnt_ns);
	else
		snprintf(out, n, "\"%.100s\"", l->text);
}

/* The path of the mark of fdinfo line l (held by r) into m; -1 with *why. */
static int mark_path(const struct co_ref *r, const struct co_fanotify_line *l, struct co_fmark *m, const char **why)
{
	struct stat st;
	m->mflags = l->mflags;
	m->mask = l->mask;
	m->ignored = l->ignored;
	m->ino = l->ino;
	switch (l->what) {
	case CO_FAN_INODE:
		m->type = CO_FM_INODE;
		return co_handle_path(l->sdev, l->ino, l->handle_type, l->handle, l->handle_bytes, m->path, &m->dev, why);
	case CO_FAN_MOUNT:
		m->type = CO_FM_MOUNT;
		m->ino = l->mnt_id; /* no inode: the id, for messages and inspect */
		if (co_mount_point_by_id(r->host, l->mnt_id, m->path, sizeof(m->path)) < 0) {
			*why = "its mount is not in the process's mount namespace";
			return -1;
		}
		return 0;
	case CO_FAN_FILESYSTEM:
		m->type = CO_FM_FILESYSTEM;
		if (co_dev_mount(l->sdev >> 20, l->sdev & 0xfffff, m->path, sizeof(m->path)) < 0 || stat(m->path, &st) < 0) {
			*why = "no mount of its filesystem's root is in sight";
			return -1;
		}
		m->dev = (uint64_t)st.st_dev;
		m->ino = (uint64_t)st.st_ino;
		return 0;
	case CO_FAN_MNTNS:
		/* the group's own is made again for its restart: init, which marks it, is in it */
		m->type = CO_FM_MNTNS;
		m->ino = l->mnt_ns;
		if (l->mnt_ns != co_ns_inode(r->host, "mnt")) {
			*why = "it is not the group's mount namespace";
			return -1;
		}
		snprintf(m->path, sizeof(m->path), "/proc/self/ns/mnt");
		return 0;
	}
	*why = "cohort does not know this kind of mark";
	return -1;
}

/* The group's flags and marks of refs[first] from its fdinfo; how many marks, or -1 with err. */
static int read_marks(struct co_kdump *d, int first, struct co_sobj *so, struct co_fmark *marks)
{
	static char info[1 << 20];
	const struct co_ref *r = &d->refs[first];
	struct co_fanotify_line l;
	char name[200];
	int n = 0, k = 0;
	if (co_ref_fdinfo(d, first, info, sizeof(info)) < 0)
		return -1;
	for (const char *p = info; co_fanotify_next(&p, &l);) {
		const char *why = NULL;
		if (l.what == CO_FAN_GROUP) {
			so->a = l.flags;
			so->b = l.event_flags;
			continue;
		}
		k++;
		if (n == MAX_MARKS) {
			snprintf(d->err, d->errlen, "pid %d: fd %d: fanotify: more than %d marks", r->pid, r->fd, MAX_MARKS);
			return -1;
		}
		struct co_fmark *m = &marks[n];
		*m = (struct co_fmark){ .id = so->id };
		if (mark_path(r, &l, m, &why) < 0) {
			mark_name(&l, name, sizeof(name));
			snprintf(d->err, d->errlen, "pid %d: fd %d: fanotify mark %d (%s): %s", r->pid, r->fd, k, name, why);
			return -1;
		}
		if (m->mask & PERM_EVENTS)
			so->d = 1; /* the group may owe answers: see perm_answered */
		n++;
	}
	return n;
}

/*
 * An empty queue, or CO_BUSY with err (the checkpoint tries again while
 * the program reads it): its events cannot be made again.  -1: unreadable.
 */
static int queue_empty(struct co_kdump *d, int first)
{
	const struct co_ref *r = &d->refs[first];
	int fd = co_ref_grab(r), queued = 0;
	if (fd < 0 || ioctl(fd, FIONREAD, &queued) < 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: fanotify: cannot see its queue: %s", r->pid, r->fd,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (queued <= 0)
		return 0;
	snprintf(d->err, d->errlen, "pid %d: fd %d: fanotify: %d bytes of events queued, which cohort cannot make again "
		 "(each carries an open descriptor and the pid of who acted): the program has not read them",
		 r->pid, r->fd, queued);
	return CO_BUSY;
}

/*
 * A group with permission marks owes no answer: no thread of the machine
 * waits in fanotify (the kernel puts the process whose access asks in
 * fanotify_handle_event until the answer comes, from the moment the event
 * is queued, read or not).  Which group a thread waits for shows nowhere,
 * so any waiting thread makes the checkpoint try again (CO_BUSY with err).
 */
static int perm_answered(struct co_kdump *d, int first)
{
	const struct co_ref *r = &d->refs[first];
	int tid = co_thread_waiting_in("fanotify");
	if (tid < 0) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: fanotify: cannot see which threads wait for permission: %s",
			 r->pid, r->fd, strerror(-tid));
		return -1;
	}
	if (tid == 0)
		return 0;
	snprintf(d->err, d->errlen, "pid %d: fd %d: fanotify: thread %d (of the machine) waits for the answer to a "
		 "permission event, of this group or another's: the program has not answered it", r->pid, r->fd, tid);
	return CO_BUSY;
}

static int fanotify_dump(struct co_kdump *d, int first, uint64_t *id)
{
	static struct co_fmark marks[MAX_MARKS];
	struct co_sobj so = { .kind = CO_OBJ_FANOTIFY, .id = (uint64_t)first + 1 };
	int n = read_marks(d, first, &so, marks);
	if (n < 0)
		return -1;
	int bad = queue_empty(d, first);
	if (!bad && so.d)
		bad = perm_answered(d, first);
	if (bad)
		return bad;
	so.c = (uint64_t)n;
	*id = so.id;
	if (co_sobj_write(d, first, &so) < 0)
		return -1;
	/* fdinfo lists the newest mark first: the oldest is added first again, so that the list comes back the same */
	for (int i = n - 1; i >= 0; i--)
		co_w_rec(d->w, CO_R_FMARK, &marks[i], sizeof(marks[i]));
	return d->w->err ? -1 : 1;
}

/* ---- restore, in init ---- */

static struct {
	uint64_t id;
	int fd;
	int marks;		/* added so far, for messages */
} objs[MAX_OBJS];
static int nobjs;

static int new_group(struct co_krestore *x, const struct co_sobj *so)
{
	if (nobjs == MAX_OBJS)
		return co_kbad(x, "more than %d fanotify objects", MAX_OBJS);
	/* the flags as recorded (fdinfo shows them); close-on-exec for init's own copy */
	int fd = fanotify_init((unsigned)so->a, (unsigned)so->b);
	if (fd < 0 && errno == EPERM)
		return co_kerr(x, "recreating the group's shared objects: fanotify %llu (flags %#llx): fanotify_init needs "
			       "CAP_SYS_ADMIN, which the restart lacks (without it only a group reporting file ids, "
			       "FAN_REPORT_FID, without permission events, Linux 5.13 and later)",
			       (unsigned long long)so->id, (unsigned long long)so->a);
	if (fd >= 0)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (co_sobj_made(x, so, fd) < 0)
		return -1;
	objs[nobjs].id = so->id;
	objs[nobjs].fd = fd;
	objs[nobjs++].marks = 0;
	return 0;
}

static int add_mark(struct co_krestore *x, const struct co_fmark *m)
{
	int i = 0;
	while (i < nobjs && objs[i].id != m->id)
		i++;
	if (i == nobjs)
		return co_kbad(x, "fanotify mark of a missing fanotify object %llu", (unsigned long long)m->id);
	unsigned base = FAN_MARK_ADD | (m->mflags & FAN_MARK_EVICTABLE);
	struct stat st;
	base |= m->type == CO_FM_MOUNT ? FAN_MARK_MOUNT : m->type == CO_FM_FILESYSTEM ? FAN_MARK_FILESYSTEM
		: m->type == CO_FM_MNTNS ? FAN_MARK_MNTNS : 0;
	if (m->type == CO_FM_INODE && lstat(m->path, &st) == 0 && S_ISLNK(st.st_mode))
		base |= FAN_MARK_DONT_FOLLOW; /* the mark was on the link itself */
	unsigned ign = base | (m->mflags & FAN_MARK_IGNORE ? FAN_MARK_IGNORE : FAN_MARK_IGNORED_MASK) |
		       (m->mflags & FAN_MARK_IGNORED_SURV_MODIFY);
	objs[i].marks++;
	if ((m->mask && fanotify_mark(objs[i].fd, base, m->mask, AT_FDCWD, m->path) < 0) ||
	    (m->ignored && fanotify_mark(objs[i].fd, ign, m->ignored, AT_FDCWD, m->path) < 0))
		return co_kerr(x, "recreating the group's shared objects: fanotify %llu: mark %d (%s %.*s, mask %#llx, "
			       "ignored %#llx): %s", (unsigned long long)m->id, objs[i].marks, type_name(m->type), CO_PATH,
			       m->path, (unsigned long long)m->mask, (unsigned long long)m->ignored, strerror(errno));
	return 0;
}

static int fanotify_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	(void)len;
	return type == CO_R_SOBJ ? new_group(x, p) : add_mark(x, p);
}

static void fanotify_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	(void)len;
	if (type == CO_R_SOBJ) {
		const struct co_sobj *o = p;
		snprintf(out, n, "fanotify %llu: flags %#llx event-flags %#llx, %llu marks%s", (unsigned long long)o->id,
			 (unsigned long long)o->a, (unsigned long long)o->b, (unsigned long long)o->c,
			 o->d ? ", permission events" : "");
	} else {
		const struct co_fmark *m = p;
		snprintf(out, n, "fanotify %llu: %s mark mask %#llx ignored %#llx mflags %#x %.*s", (unsigned long long)m->id,
			 type_name(m->type), (unsigned long long)m->mask, (unsigned long long)m->ignored, m->mflags, CO_PATH,
			 m->path);
	}
}

const struct co_kind_ops co_fanotify_ops = {
	.kind = CO_OBJ_FANOTIFY, .identity = CO_ID_OPENFILE,
	.dump = fanotify_dump, .restore = fanotify_restore, .describe = fanotify_describe,
};
