/*
 * cgroup.c - the cgroups of a process, in every hierarchy (cgroup v2 and
 * any v1 ones mounted).
 *
 * Dump (the manager, before a snapshot is forked: co_cgroup_collect):
 * /proc/self/cgroup as it is, and /proc/1/cgroup, the group's init's,
 * which are the cgroups cohort started the group in.  A process whose
 * threads are not all in its cgroups (a threaded cgroup, a v1 tasks
 * file) is refused: one set is restored per process.
 *
 * Restore (the restorer, once its image's metadata is read and before its
 * memory is, so that the memory is charged where it was:
 * co_cgroup_restore), for each hierarchy:
 *   - in init's cgroup then: in the restart's init's (where the restorer
 *     already is, unless its parent restorer moved first);
 *   - in a cgroup below init's (one the group made for itself): the same
 *     path below the restart's init's, made if it is missing, as an empty
 *     directory: none of its settings (cgroup.subtree_control, limits
 *     such as memory.max or pids.max, cgroup.type, weights) comes back;
 *   - anywhere else: that cgroup, which must exist.
 * The restorer moves itself (writes 0 to cgroup.procs) with the program's
 * groups and filesystem ids, as it opens the program's files: a process
 * gets only into cgroups it could move itself into (the kernel checks the
 * writer's rights on the file and on the common ancestor's).  What cannot
 * be done fails the restart in one line naming the process, the cgroup
 * and the hierarchy.
 */
#include <errno.h>
#include <fcntl.h>
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#ifndef COHORT_RESTORER
struct odd_thread {
	const char *own;
	char buf[sizeof(((struct co_pattrs *)0)->cgroup)];
};

/* a thread gone meanwhile is in no cgroup to restore */
static int odd_thread(int tid, void *arg)
{
	struct odd_thread *o = arg;
	char path[64];
	co_fmt(path, sizeof(path), "/proc/self/task/%d/cgroup", tid);
	return co_read_small(path, o->buf, sizeof(o->buf)) > 0 && co_strcmp(o->buf, o->own) ? tid : 0;
}

int co_cgroup_collect(struct co_dumpctx *d)
{
	struct co_pattrs *a = &d->attrs;
	long n = co_read_small("/proc/self/cgroup", a->cgroup, sizeof(a->cgroup));
	long b = co_read_small("/proc/1/cgroup", a->cgroup_base, sizeof(a->cgroup_base));
	if (n <= 0 || b <= 0) {
		/* no cgroups to see (a /proc without them): none recorded, the restart's stay */
		a->cgroup[0] = a->cgroup_base[0] = 0;
		return 0;
	}
	if (n >= (long)sizeof(a->cgroup) - 1 || b >= (long)sizeof(a->cgroup_base) - 1)
		return DERR(d, "pid %d: its cgroup paths (/proc/self/cgroup, /proc/1/cgroup) are longer than the %zu bytes "
			    "cohort records", d->pid, sizeof(a->cgroup) - 2);
	static struct odd_thread o;
	o.own = a->cgroup;
	int dfd = (int)co_open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	int tid = dfd < 0 ? 0 : co_dir_each(dfd, odd_thread, &o);
	if (dfd >= 0)
		co_close(dfd);
	if (tid > 0)
		return DERR(d, "pid %d: its thread %d is in other cgroups than the process (a threaded cgroup or a v1 "
			    "tasks file): cohort restores the cgroups of a process, not of each thread", d->pid, tid);
	return 0;
}
#else /* the restorer */

/* The line of hierarchy ctl in a cgroup text: 1 with it in *l, 0 when there is none. */
static int line_of(const char *text, const struct co_cgline *ctl, struct co_cgline *l)
{
	const char *p = text;
	while (co_cgroup_next(&p, l) > 0)
		if (l->ctl_len == ctl->ctl_len && !co_memcmp(l->ctl, ctl->ctl, ctl->ctl_len))
			return 1;
	return 0;
}

/* Whether path (len bytes) is base or below it; *rest is what follows base ("" or "/..."). */
static int below(const char *path, size_t len, const struct co_cgline *base, const char **rest)
{
	size_t bl = base->path_len == 1 && base->path[0] == '/' ? 0 : base->path_len; /* "/": every path */
	if (len < bl || co_memcmp(path, base->path, bl) || (len > bl && path[bl] != '/'))
		return 0;
	*rest = path + bl;
	return 1;
}

/* mkdir each directory of dir from byte from on (those below the restart's init's cgroup) */
static long make_dirs(char *dir, size_t from)
{
	size_t len = co_strlen(dir);
	for (size_t i = from + 1; i <= len; i++) {
		if (dir[i] != '/' && dir[i])
			continue;
		char c = dir[i];
		dir[i] = 0;
		long r = co_sys3(SYS_mkdirat, -100 /* AT_FDCWD */, (long)dir, 0755);
		dir[i] = c;
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return 0;
}

/* Append len bytes of s to buf (n bytes) at byte at, terminated: the new length, n when it does not fit. */
static size_t append(char *buf, size_t n, size_t at, const char *s, size_t len)
{
	if (at >= n || len >= n - at)
		return n;
	co_memcpy(buf + at, s, len);
	buf[at + len] = 0;
	return at + len;
}

/* Move the calling (only) thread's process into cgroup path of hierarchy l; -errno. */
static long join(const struct co_cgline *l, const char *path, size_t own_from, int own, char *dir, size_t n)
{
	char mnt[CO_PATH];
	if (co_cgroup_mount(l->ctl, l->ctl_len, mnt, sizeof(mnt)))
		return -ENOENT;
	size_t m = append(dir, n, 0, mnt, co_strlen(mnt));
	m = append(dir, n, m, path, co_strlen(path));
	if (append(dir, n, m, "/cgroup.procs", 13) >= n)
		return -ENAMETOOLONG;
	dir[m] = 0;
	long r = own ? make_dirs(dir, co_strlen(mnt) + own_from) : 0;
	dir[m] = '/';
	int fd = r < 0 ? (int)r : (int)co_open(dir, O_WRONLY | O_CLOEXEC, 0);
	dir[m] = 0;
	if (fd < 0)
		return fd;
	r = co_write(fd, "0", 1);
	co_close(fd);
	return r < 0 ? r : 0;
}

int co_cgroup_restore(struct co_rstctx *rc)
{
	const struct co_pattrs *a = &rc->proc->a;
	static char now[sizeof(a->cgroup)], base[sizeof(a->cgroup)], want[CO_PATH], dir[2 * CO_PATH];
	int pid = rc->proc->pid;
	if (!a->cgroup[0] || !a->cgroup_base[0])
		return 0;
	if (co_read_small("/proc/self/cgroup", now, sizeof(now)) <= 0 ||
	    co_read_small("/proc/1/cgroup", base, sizeof(base)) <= 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot read its cgroups (/proc/self/cgroup)", pid);
	const char *p = a->cgroup;
	struct co_cgline l, old, init, cur;
	int k;
	while ((k = co_cgroup_next(&p, &l)) > 0) {
		const char *rest;
		/* below the cgroup the group was started in: the group's own */
		int ours = line_of(a->cgroup_base, &l, &old) && below(l.path, l.path_len, &old, &rest);
		if (ours && !rest[0] && !line_of(base, &l, &init))
			continue; /* it was where the group started, in a hierarchy this machine does not have */
		size_t wl, own_from = 0;
		if (ours && line_of(base, &l, &init)) {
			/* the same path below the restart's init's cgroup ("/": below nothing) */
			own_from = init.path_len == 1 ? 0 : init.path_len;
			wl = append(want, sizeof(want), 0, init.path, own_from);
			wl = append(want, sizeof(want), wl, rest, l.path_len - (size_t)(rest - l.path));
			if (wl == 0)
				wl = append(want, sizeof(want), 0, "/", 1);
		} else {
			wl = append(want, sizeof(want), 0, l.path, l.path_len);
		}
		char ctl[128] = "?";
		if (!append(ctl, sizeof(ctl), 0, l.ctl, l.ctl_len))
			append(ctl, sizeof(ctl), 0, "cgroup v2", 9);
		if (wl >= sizeof(want))
			return co_err(rc->err, rc->errlen, "pid %d: its cgroup in hierarchy %s is too long a path", pid, ctl);
		if (line_of(now, &l, &cur) && cur.path_len == wl && !co_memcmp(cur.path, want, wl))
			continue;
		long r = join(&l, want, own_from, ours, dir, sizeof(dir));
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: cannot move it into cgroup %s (hierarchy %s): %s (errno "
				      "%ld%s)", pid, want, ctl,
				      r == -ENOENT ? "it is gone, or the hierarchy is not mounted" : "refused", -r,
				      co_creds_why(&rc->ids, r));
	}
	return k < 0 ? co_err(rc->err, rc->errlen, "pid %d: damaged cgroup record in its image", pid) : 0;
}
#endif
