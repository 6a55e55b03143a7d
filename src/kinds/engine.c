/*
 * engine.c - what the processes of a group share, captured once (see
 * kinds.h): the references (process, fd) -> object, their identity, the
 * dump of each object by its kind, the links to its holders; at a restart
 * the objects made once in init and the plan that hands them out.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "procfs.h"
#include "util.h"

/* Every kind the engine captures: adding a kind is one row here (and its file). */
static const struct co_kind_ops *const kinds[] = {
	&co_pipe_ops, &co_file_ops, &co_dir_ops, &co_ghost_ops, &co_shm_ops, &co_eventfd_ops, &co_signalfd_ops,
	&co_timerfd_ops, &co_epoll_ops, &co_unix_ops, &co_inotify_ops, &co_pty_ops, &co_pts_ops,
	&co_fanotify_ops,
};

const struct co_kind_ops *co_kind_ops(uint32_t kind)
{
	for (size_t i = 0; i < CO_ARRAY_LEN(kinds); i++)
		if (kinds[i]->kind == kind)
			return kinds[i];
	return NULL;
}

/* ---- dump ---- */

/* (+ 1: the descriptor being looked at, when every slot is taken: ref_add refuses it) */
static struct co_ref refs[CO_MAX_REFS + 1];
static int nrefs;

int co_ref_grab(const struct co_ref *r)
{
	int pfd = (int)syscall(SYS_pidfd_open, r->host, 0);
	if (pfd < 0)
		return -1;
	int fd = (int)syscall(SYS_pidfd_getfd, pfd, r->fd, 0);
	close(pfd);
	return fd;
}

int co_ref_slot(const struct co_kdump *d, const struct co_ref *r)
{
	for (int s = 0; d->table && !r->inflight && s < CO_TABLE_SLOTS; s++)
		if (d->table->p[s].host_pid == r->host)
			return s;
	return -1;
}

uint64_t co_ref_maker(const struct co_kdump *d, int first)
{
	const struct co_ref *r = &d->refs[first];
	for (int j = 0; j < first; j++) {
		const struct co_ref *q = &d->refs[j];
		if (q->obj == j && q->kind == r->kind && q->dev == r->dev && q->ino == r->ino)
			return (uint64_t)j + 1;
	}
	return 0;
}

int co_ref_fdinfo(struct co_kdump *d, int i, char *buf, size_t n)
{
	const struct co_ref *r = &d->refs[i];
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/fdinfo/%d", r->host, r->fd);
	if (co_read_small(p, buf, n) > 0)
		return 0;
	snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read %s", r->pid, r->fd, r->path);
	return -1;
}

/* SO_DOMAIN of another process's socket, for the classifier; -1 if it cannot be told */
static int sock_domain(const struct co_ref *r)
{
	int s = co_ref_grab(r), dom = -1;
	socklen_t l = sizeof(dom);
	if (s >= 0 && getsockopt(s, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0)
		dom = -1;
	if (s >= 0)
		close(s);
	return dom;
}

/* The object refs[i] refers to: the first earlier reference with the same identity, else i. */
static int identity(int i)
{
	const struct co_ref *r = &refs[i];
	const struct co_kind_ops *ops = co_kind_ops(r->kind);
	for (int j = 0; j < i; j++) {
		const struct co_ref *q = &refs[j];
		if (q->kind != r->kind || q->dev != r->dev || q->ino != r->ino)
			continue;
		if (ops->identity == CO_ID_INODE ||
		    syscall(SYS_kcmp, q->host, r->host, KCMP_FILE, q->fd, r->fd) == 0)
			return q->obj;
	}
	return i;
}

/*
 * A file under a process's /proc directory that member m's descriptor r
 * has read part-way (co_proc_text): its next read after a restart would
 * go on in other text (a line cut, a region never seen), so the
 * checkpoint waits until it is read through or closed (CO_BUSY: the
 * coordinator tries again).  Opened only for writing, or at its start, it
 * comes back as it is.  A file of another of the process's threads waits
 * the same way, wherever it is read (below).
 */
static int proc_read_midway(struct co_ref *r, const char *fdlink, char *err, size_t errlen)
{
	struct statfs fs;
	uint64_t pos = 0;
	uint32_t flags = 0;
	int pid, tid, n = 0;
	/*
	 * A file of one of its threads but the first (/proc/PID/task/TID/...,
	 * as /proc/thread-self/status opens): that thread comes back after
	 * the descriptors, so the file could not be opened again then (the
	 * restart failed, ENOENT).  Such a file is open for a moment: the
	 * checkpoint waits for its close the same way.
	 */
	if (sscanf(r->path, "/proc/%d/task/%d/%n", &pid, &tid, &n) == 2 && n > 0 && tid != pid &&
	    statfs(fdlink, &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC) {
		snprintf(err, errlen, "pid %d: fd %d (%s) is a file of another of its threads, which comes back only "
			 "after the descriptors", r->pid, r->fd, r->path);
		return CO_BUSY;
	}
	if (!co_proc_text(r->path) || statfs(fdlink, &fs) < 0 || fs.f_type != PROC_SUPER_MAGIC ||
	    co_fdinfo(r->host, r->fd, &pos, &flags) < 0 || pos == 0 || (flags & O_ACCMODE) == O_WRONLY)
		return 0;
	snprintf(err, errlen, "pid %d: fd %d (%s) was being read, up to byte %llu: the rest would be "
		 "other text after a restart", r->pid, r->fd, r->path, (unsigned long long)pos);
	return CO_BUSY;
}

/*
 * refs[nrefs], filled, becomes a reference with its identity: 0, or -1
 * (err filled) when every slot is taken.  A reference left out would be
 * silently wrong at a restart: the description of a file or directory
 * several processes hold reopened by each of them, a pipe missing from
 * the plan.
 */
static int ref_add(char *err, size_t errlen)
{
	const struct co_ref *r = &refs[nrefs];
	if (nrefs == CO_MAX_REFS) {
		snprintf(err, errlen, "pid %d: %s%d: %s: the group holds more than %d descriptors of the objects cohort "
			 "records for the whole group (files, directories, pipes, sockets, ...), more than it can record",
			 r->pid, r->fd == CO_PLAN_CWD ? "working directory " : "fd ", r->fd == CO_PLAN_CWD ? 0 : r->fd,
			 r->path, CO_MAX_REFS);
		return -1;
	}
	refs[nrefs].obj = identity(nrefs);
	nrefs++;
	return 0;
}

/*
 * The working directory of member m when it was removed: a reference of
 * its own (fd CO_PLAN_CWD), made again at a restart with the deleted
 * directories it may also hold open (file.c); a live one is a path in the
 * process image.  0, or -1 (err filled).
 */
static int collect_cwd(const struct co_shared_member *m, char *err, size_t errlen)
{
	char p[64], link[CO_PATH];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/%d/cwd", m->host_pid);
	ssize_t l = readlink(p, link, sizeof(link) - 1);
	if (l <= 0 || stat(p, &st) < 0)
		return 0;
	link[l] = 0;
	struct co_fdstat cs = { st.st_mode, st.st_nlink, link, -1, st.st_rdev };
	if (co_fd_classify(&cs) != CO_OBJ_DELETED)
		return 0;
	struct co_ref *r = &refs[nrefs];
	*r = (struct co_ref){ .pid = m->pid, .host = m->host_pid, .fd = CO_PLAN_CWD, .dev = st.st_dev,
			      .ino = st.st_ino, .flags = O_RDONLY | O_DIRECTORY, .kind = CO_OBJ_DELETED };
	memcpy(r->path, link, (size_t)l + 1);
	return ref_add(err, errlen);
}

/* Every descriptor of member m that refers to an object the engine captures; -1 or CO_BUSY (err filled) */
static int collect_fds(const struct co_shared_member *m, const struct co_table *t, const char *skip_dir,
		       char *err, size_t errlen)
{
	int busy = 0, full = 0;
	size_t skip_len = strlen(skip_dir);
	char dpath[64];
	snprintf(dpath, sizeof(dpath), "/proc/%d/fd", m->host_pid);
	DIR *d = opendir(dpath);
	for (struct dirent *e; d && !full && (e = readdir(d));) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		struct co_ref *r = &refs[nrefs];
		char p[128];
		struct stat st;
		r->fd = atoi(e->d_name);
		r->inflight = 0;
		if (r->fd == m->agent_fd)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dpath, e->d_name);
		ssize_t l = readlink(p, r->path, sizeof(r->path) - 1);
		r->path[l > 0 ? l : 0] = 0;
		if (stat(p, &st) < 0 || co_stdio_slot(t->stdio, m->stdio_marks, r->fd, st.st_dev, st.st_ino) >= 0)
			continue;
		/* the images the agents are writing right now */
		if (!strncmp(r->path, skip_dir, skip_len) && r->path[skip_len] == '/')
			continue;
		r->pid = m->pid;
		r->host = m->host_pid;
		if (S_ISREG(st.st_mode) && !busy && (busy = proc_read_midway(r, p, err, errlen)))
			continue;
		struct co_fdstat cs = { st.st_mode, st.st_nlink, r->path, S_ISSOCK(st.st_mode) ? sock_domain(r) : -1,
					st.st_rdev };
		r->kind = co_fd_classify(&cs);
		if (!co_kind_ops(r->kind))
			continue; /* the process image keeps it (or the agent refused it) */
		/* deleted under this name, linked under another: copied and reopened there (the agent refuses if none) */
		if (r->kind == CO_OBJ_FILE && co_endswith(r->path, " (deleted)"))
			co_find_link(r->path, st.st_dev, st.st_ino, r->path, sizeof(r->path));
		r->dev = st.st_dev;
		r->ino = st.st_ino;
		co_fdinfo(m->host_pid, r->fd, &r->pos, &r->flags);
		full = ref_add(err, errlen);
	}
	if (d)
		closedir(d);
	if (full || collect_cwd(m, err, errlen))
		return -1; /* (not CO_BUSY: trying again would not help) */
	return busy;
}

int co_ref_inflight(struct co_kdump *d, int fd, int how)
{
	struct co_ref *r = &refs[nrefs];
	char p[64];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	if (nrefs == CO_MAX_REFS || fstat(fd, &st) < 0) {
		snprintf(d->err, d->errlen, "more than %d descriptors in the group and in flight", CO_MAX_REFS);
		close(fd);
		return -1;
	}
	*r = (struct co_ref){ .pid = 0, .host = getpid(), .fd = fd, .dev = st.st_dev, .ino = st.st_ino, .inflight = how };
	ssize_t l = readlink(p, r->path, sizeof(r->path) - 1);
	r->path[l > 0 ? l : 0] = 0;
	struct co_fdstat cs = { st.st_mode, st.st_nlink, r->path, S_ISSOCK(st.st_mode) ? sock_domain(r) : -1,
				st.st_rdev };
	r->kind = co_fd_classify(&cs);
	if (!co_kind_ops(r->kind)) { /* the caller names where it was: err is only what it is */
		snprintf(d->err, d->errlen, "%s (%s)", co_obj_name(r->kind), r->path);
		close(fd);
		return -1;
	}
	co_fdinfo(r->host, fd, &r->pos, &r->flags);
	r->obj = identity(nrefs);
	d->nrefs = ++nrefs;
	return nrefs - 1;
}

/* The copies of descriptors in flight the dump made its own: closed once it ends (the references stay: co_shared_files). */
static void close_inflight(void)
{
	for (int i = 0; i < nrefs; i++)
		if (refs[i].inflight && refs[i].fd >= 0) {
			close(refs[i].fd);
			refs[i].fd = -1;
		}
}

/* The object refs[first], then one link per holder (not the copies of descriptors in flight: no one holds them). */
static int dump_object(struct co_kdump *d, const struct co_kind_ops *ops, int first, uint64_t *id)
{
	int r = ops->dump(d, first, id);
	if (r <= 0)
		return r;
	CO_FOR_HOLDERS(d, first, k) {
		const struct co_ref *h = &refs[k];
		if (h->inflight)
			continue;
		struct co_slink sl = { h->pid, h->fd, h->kind, ops->end ? ops->end(h) : 0, *id };
		co_w_rec(d->w, CO_R_SLINK, &sl, sizeof(sl));
	}
	return d->w->err ? -1 : 1;
}

/* Of each object (by its first reference): 1 when it was recorded for the group, with links to its holders; its id. */
static int dumped[CO_MAX_REFS];
static uint64_t ids[CO_MAX_REFS];

int co_ref_object(struct co_kdump *d, int k, uint64_t *id)
{
	int o = d->refs[k].obj;
	*id = ids[o];
	return dumped[o] > 0;
}

/* What the objects bring that no process holds (descriptors in flight): the list grows as it is walked. */
static int collect_inflight(struct co_kdump *d)
{
	for (int i = 0; i < nrefs; i++) {
		const struct co_kind_ops *ops = co_kind_ops(refs[i].kind);
		if (refs[i].obj == i && ops && ops->collect && ops->collect(d, i) < 0)
			return -1;
	}
	return 0;
}

/* Every object once, in two rounds (the late kinds after the others), then their data; -1 or CO_BUSY (err filled). */
static int dump_objects(struct co_kdump *d)
{
	memset(dumped, 0, sizeof(dumped));
	for (int late = 0; late < 2; late++)
		for (int i = 0; i < nrefs; i++) {
			const struct co_kind_ops *ops = co_kind_ops(refs[i].kind);
			if (refs[i].obj != i || ops->late != late)
				continue;
			dumped[i] = dump_object(d, ops, i, &ids[i]);
			if (dumped[i] < 0)
				return dumped[i]; /* -1, or CO_BUSY: an object that is caught part-way (inotify) */
		}
	for (int i = 0; i < nrefs; i++) {
		const struct co_kind_ops *ops = co_kind_ops(refs[i].kind);
		int r = refs[i].obj == i && dumped[i] > 0 && ops->dump_data ? ops->dump_data(d, i, ids[i]) : 0;
		if (r < 0)
			return r; /* -1, or CO_BUSY (an epoll item caught between firing and being armed again) */
	}
	return 0;
}

void co_shared_settle(int failed)
{
	for (size_t i = 0; i < CO_ARRAY_LEN(kinds); i++)
		if (kinds[i]->settle)
			kinds[i]->settle(failed);
}

int co_shared_files(int pid, int *out, int max)
{
	int n = 0;
	for (int i = 0; i < nrefs; i++)
		if (refs[i].pid == pid && (refs[i].kind == CO_OBJ_FILE || refs[i].kind == CO_OBJ_DIR) &&
		    dumped[refs[i].obj] > 0) {
			if (n == max)
				return -1;
			out[n++] = refs[i].fd;
		}
	return n;
}

int co_sobj_write(struct co_kdump *d, int first, struct co_sobj *o)
{
	o->flags = d->refs[first].flags & CO_FL_STATUS;
	return co_w_rec(d->w, CO_R_SOBJ, o, sizeof(*o)) ? -1 : 1;
}

int co_shared_dump(const char *dir, uint64_t gen, const struct co_shared_member *m, int n, struct co_table *t,
		   unsigned flags, const int64_t clock_off[2], char *err, size_t errlen)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/shared.img", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	static char buf[1 << 18];
	struct co_writer w;
	co_w_init(&w, fd, buf, sizeof(buf));
	struct co_bind b = { t->group_id, gen, 0, 0 };
	co_w_head(&w, CO_KIND_SHARED, &b);
	struct co_kdump d = { .w = &w, .dir = dir, .refs = refs, .err = err, .errlen = errlen, .members = m,
			      .nmembers = n, .flags = flags, .table = t, .clock_off = { clock_off[0], clock_off[1] } };
	nrefs = 0;
	int busy = 0;
	for (int i = 0; i < n && !busy; i++)
		busy = collect_fds(&m[i], t, dir, err, errlen);
	d.nrefs = nrefs;
	if (busy) {
		close(fd);
		return busy; /* CO_BUSY, or -1: refused */
	}
	int dbad = collect_inflight(&d);
	if (!dbad)
		dbad = dump_objects(&d);
	for (size_t i = 0; !dbad && !(flags & CO_CKPT_KILL) && i < CO_ARRAY_LEN(kinds); i++)
		if (kinds[i]->dumped)
			kinds[i]->dumped();
	if (dbad == CO_BUSY) {
		close_inflight();
		close(fd);
		return CO_BUSY;
	}
	if (dbad < 0 || co_shm_dump_mappings(&d, m, n) < 0 || (n && co_sysv_dump(&d, m[0].host_pid) < 0))
		goto fail;
	struct co_end end = { w.seq + 1, 0 };
	co_w_rec(&w, CO_R_END, &end, sizeof(end));
	if (co_w_flush(&w)) {
		snprintf(err, errlen, "writing %s: %s", path, strerror(-w.err));
		goto fail;
	}
	close_inflight();
	close(fd);
	return 0;
fail:
	if (!err[0])
		snprintf(err, errlen, "writing %s: %s", path, strerror(-w.err));
	close_inflight();
	close(fd);
	return -1;
}

/* ---- restore, in the group's init ---- */

struct made {
	uint32_t kind;
	uint64_t id;
	int fd[2];
	uint64_t peer;		/* Unix sockets: the peer's id */
};

struct co_krestore {
	const char *dir, *path;
	struct co_reader *r;
	char *err;
	size_t errlen;
	struct made *made;
	int nmade;
	struct co_plan_ent *plan;
	int nplan;
	const struct co_manifest *m;	/* the generation's manifest, */
	const struct co_mfile *files;	/* and the files it lists (format 7) */
	int nfiles;
	const struct co_mproc *procs;	/* and its processes */
	int nprocs;
};

const struct co_mproc *co_kprocs(struct co_krestore *x, int *n)
{
	*n = x->nprocs;
	return x->procs;
}

const struct co_mfile *co_kfile(struct co_krestore *x, const char *name, int *listed)
{
	*listed = x->m->nfiles != 0;
	for (int i = 0; i < x->nfiles; i++)
		if (!strcmp(x->files[i].name, name))
			return &x->files[i];
	return NULL;
}

int co_kerr(struct co_krestore *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err, x->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

int co_kbad(struct co_krestore *x, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(x->err, x->errlen, "%s: byte %lu: %s", x->path, (unsigned long)x->r->rec_off, what);
	return -1;
}

const char *co_kdir(struct co_krestore *x)
{
	return x->dir;
}

int co_made_add(struct co_krestore *x, uint32_t kind, uint64_t id, int fd0, int fd1, uint64_t peer)
{
	if (x->nmade == CO_MAX_REFS)
		return co_kbad(x, "more than %d objects", CO_MAX_REFS);
	x->made[x->nmade++] = (struct made){ kind, id, { fd0, fd1 }, peer };
	return 0;
}

static struct made *made_of(struct co_krestore *x, uint32_t kind, uint64_t id)
{
	for (int i = 0; i < x->nmade; i++)
		if (x->made[i].kind == kind && x->made[i].id == id)
			return &x->made[i];
	return NULL;
}

int co_made_fd(struct co_krestore *x, uint32_t kind, uint64_t id, int end)
{
	struct made *m = made_of(x, kind, id);
	return m ? m->fd[end ? 1 : 0] : -1;
}

uint64_t co_made_peer(struct co_krestore *x, uint32_t kind, uint64_t id)
{
	struct made *m = made_of(x, kind, id);
	return m ? m->peer : 0;
}

int co_plan_add(struct co_krestore *x, const struct co_plan_ent *e)
{
	if (x->nplan == CO_MAX_PLAN)
		return co_kbad(x, "more than %d plan entries", CO_MAX_PLAN);
	x->plan[x->nplan++] = *e;
	return 0;
}

int co_plan_holder(struct co_krestore *x, int pid, int src)
{
	for (int i = 0; i < x->nplan; i++)
		if (x->plan[i].kind == CO_PLAN_FD && x->plan[i].pid == pid && x->plan[i].src == src)
			return x->plan[i].fd;
	return -1;
}

int co_sobj_made(struct co_krestore *x, const struct co_sobj *o, int f)
{
	if (f < 0)
		return co_kerr(x, "recreating the group's shared objects: %s %llu: %s", co_obj_name(o->kind),
			       (unsigned long long)o->id, strerror(errno));
	fcntl(f, F_SETFL, (int)(o->flags & CO_FL_STATUS));
	return co_made_add(x, o->kind, o->id, f, -1, o->kind == CO_OBJ_USOCK ? o->b : 0);
}

/*
 * Move every object just below the restorers' own descriptors (the layout
 * of plan.h), out of the program's way, rewrite the plan to match and
 * write it to a memfd below them: *plan_fd.
 */
static int hand_down(struct co_krestore *x, int *plan_fd)
{
	int hi = co_plan_top(), nfds = 0;
	for (int i = 0; i < x->nmade; i++)
		nfds += x->made[i].fd[1] >= 0 ? 2 : 1;
	int lo = hi - nfds, at = lo;
	for (int i = 0; i < x->nmade; i++)
		for (int k = 0; k < 2; k++) {
			int old = x->made[i].fd[k];
			if (old < 0)
				continue;
			if (dup2(old, at) < 0)
				goto sys;
			for (int j = 0; j < x->nplan; j++)
				if (x->plan[j].src == old && x->plan[j].kind != CO_PLAN_EPITEM)
					x->plan[j].src = at;
			if (old != at)
				close(old);
			at++;
		}
	int pf = (int)syscall(SYS_memfd_create, "cohort-plan", 0);
	struct co_plan_hdr ph = { CO_PLAN_MAGIC, (uint32_t)x->nplan, lo, hi };
	size_t n = sizeof(x->plan[0]) * (size_t)x->nplan;
	if (pf < 0 || write(pf, &ph, sizeof(ph)) != sizeof(ph) || write(pf, x->plan, n) != (ssize_t)n)
		goto sys;
	*plan_fd = dup2(pf, lo - 1);
	close(pf);
	return 0;
sys:
	return co_kerr(x, "recreating the group's shared objects: %s", strerror(errno));
}

/* A link: descriptor fd of process pid is the object (kind, id). */
static int restore_link(struct co_krestore *x, const struct co_slink *l)
{
	int src = co_made_fd(x, l->kind, l->id, l->kind == CO_OBJ_PIPE && l->end);
	if (src < 0)
		return co_kbad(x, "descriptor %d of pid %d refers to a missing object", l->fd, l->pid);
	struct co_plan_ent e = { .pid = l->pid, .fd = l->fd, .kind = CO_PLAN_FD, .src = src };
	return co_plan_add(x, &e);
}

/* The part of a shared record's buffer cleared before each record at least: more than any struct of one. */
#define ZERO_KEPT (64u << 10)

int co_shared_restore(const char *dir, int *plan_fd, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct co_reader r;
	/* the file must be this generation's (co_bind): its manifest says which that is */
	static struct co_manifest m;
	static struct co_mproc mp[CO_TABLE_SLOTS];
	static struct co_mfile mf[CO_TABLE_SLOTS * 3 + 4096];
	int nm, nf;
	int mfd = co_open_gen_file(dir, "manifest", path, sizeof(path), &r, err, errlen);
	if (mfd < 0)
		return -1;
	int mbad = co_manifest_read_files(&r, &m, mp, CO_TABLE_SLOTS, &nm, mf, (int)CO_ARRAY_LEN(mf), &nf);
	if (mbad)
		snprintf(err, errlen, "%s", r.err);
	if (co_img_close(mfd, err, errlen) || mbad)
		return -1;
	struct co_bind want = { m.group_id, m.generation, 0, 0 };
	int fd = co_open_gen_file(dir, "shared.img", path, sizeof(path), &r, err, errlen);
	if (fd < 0)
		return -1;
	static struct made made[CO_MAX_REFS];
	static struct co_plan_ent plan[CO_MAX_PLAN];
	struct co_krestore x = { dir, path, &r, err, errlen, made, 0, plan, 0, &m, mf, nf, mp, nm };
	static union {
		struct co_head h;
		struct co_slink l;
		char raw[(1 << 20) + 8192];
	} u;
	static uint64_t cleared; /* how much of u a record may have written (a kind's restore included) */
	for (;;) {
		int e = co_r_next(&r);
		if (e < 0)
			goto bad;
		if (e == 0) {
			snprintf(err, errlen, "%s: ends before its end record", path);
			goto out;
		}
		unsigned t = r.hdr.type;
		uint64_t len = r.hdr.len;
		if (t == CO_R_END) {
			if (co_r_finish(&r))
				goto bad;
			break;
		}
		if (len > sizeof(u)) {
			co_kbad(&x, "record too large");
			goto out;
		}
		/*
		 * A record shorter than its struct reads zeros past its end: u
		 * is kept zero past what each record fills (cleared again
		 * below), where co_r_payload would clear all of its MiB for
		 * each record, 7 ms of a migration's stop in faults and stores.
		 */
		co_memset(&u, 0, cleared);
		cleared = len > ZERO_KEPT ? len : ZERO_KEPT;
		if (co_r_read(&r, &u, len) || co_r_finish(&r))
			goto bad;
		if (len < co_rec_minlen(t)) {
			co_kbad(&x, "%s record of %llu bytes, too short", co_rec_name(t), (unsigned long long)len);
			goto out;
		}
		const struct co_kind_ops *ops = co_rec_ops(t, &u);
		if (t == CO_R_HEAD || r.seq == 1) {
			if (t != CO_R_HEAD) {
				co_kbad(&x, "%s record before the head", co_rec_name(t));
				goto out;
			}
			if (co_head_check(&r, &u.h, CO_KIND_SHARED, &want))
				goto bad;
		} else if (t == CO_R_SLINK) {
			if (restore_link(&x, &u.l) < 0)
				goto out;
		} else if (!ops) {
			co_kbad(&x, "unexpected %s record", co_rec_name(t));
			goto out;
		} else if (ops->restore(&x, t, &u, len) < 0) {
			goto out;
		}
	}
	/* a compressed shared.img: zstd's own verdict on the whole file */
	int zbad = co_img_close(fd, err, errlen);
	fd = -1;
	if (zbad)
		return -1;
	/* the late kinds' after the others' (epoll items: on objects filled, in-flight messages sent) */
	for (int late = 0; late < 2; late++)
		for (size_t i = 0; i < CO_ARRAY_LEN(kinds); i++)
			if (kinds[i]->late == late && kinds[i]->restore_done && kinds[i]->restore_done(&x) < 0)
				return -1;
	return hand_down(&x, plan_fd);
bad:
	snprintf(err, errlen, "%s", r.err);
out:
	/* zstd's finding, when there is one, says more than the record that broke off */
	if (fd >= 0)
		co_img_close(fd, err, errlen);
	return -1;
}
