/*
 * shared.c - what the processes of a group share, captured once.
 *
 * Dump (coordinator, while every member is parked): pipes with the bytes
 * in them (tee(2) copies without consuming), open file descriptions held
 * by more than one process (grouped with kcmp), shared memory objects
 * (read through /proc/PID/map_files), and a copy of every regular file the
 * group has open for writing or maps shared-writable, so that a restart
 * after a crash finds the files as they were at the checkpoint.  All of it
 * goes into shared.img (and files/) of the generation.
 *
 * Restore (the group's init, before any process exists): files are put
 * back, every object is created once on a descriptor that each restorer
 * inherits, and a plan says which descriptor of which process, and which
 * shared mapping, each one becomes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "procfs.h"
#include "res.h"
#include "util.h"

#define MAX_REFS 8192

struct ref {
	int pid, host, fd;
	uint64_t dev, ino, pos;
	uint32_t flags;
	int kind;		/* 1 pipe, 2 regular file */
	int group;		/* regular files: index of the first ref sharing its description */
	char path[CO_PATH];
};

static struct ref refs[MAX_REFS];
static int nrefs;

static int is_outside_stdio(const struct co_table *t, const struct stat *st)
{
	for (int i = 0; i < 3; i++)
		if (t->stdio[i].valid && t->stdio[i].dev == st->st_dev && t->stdio[i].ino == st->st_ino)
			return 1;
	return 0;
}

static void collect_fds(const struct co_shared_member *m, const struct co_table *t, const char *skip_dir)
{
	size_t skip_len = strlen(skip_dir);
	char dpath[64];
	snprintf(dpath, sizeof(dpath), "/proc/%d/fd", m->host_pid);
	DIR *d = opendir(dpath);
	for (struct dirent *e; d && (e = readdir(d)) && nrefs < MAX_REFS;) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		struct ref *r = &refs[nrefs];
		char p[128];
		struct stat st;
		r->fd = atoi(e->d_name);
		snprintf(p, sizeof(p), "%s/%s", dpath, e->d_name);
		ssize_t l = readlink(p, r->path, sizeof(r->path) - 1);
		r->path[l > 0 ? l : 0] = 0;
		if (stat(p, &st) < 0 || is_outside_stdio(t, &st))
			continue;
		/* the images the agents are writing right now */
		if (!strncmp(r->path, skip_dir, skip_len) && r->path[skip_len] == '/')
			continue;
		if (S_ISFIFO(st.st_mode))
			r->kind = 1;
		else if (S_ISREG(st.st_mode) && st.st_nlink > 0)
			r->kind = 2;
		else
			continue;
		r->pid = m->pid;
		r->host = m->host_pid;
		r->dev = st.st_dev;
		r->ino = st.st_ino;
		r->group = nrefs;
		co_fdinfo(m->host_pid, r->fd, &r->pos, &r->flags);
		nrefs++;
	}
	if (d)
		closedir(d);
}

static int write_pipe(struct co_writer *w, struct ref *r)
{
	char p[128];
	snprintf(p, sizeof(p), "/proc/%d/fd/%d", r->host, r->fd);
	struct co_pipe cp = { .ino = r->ino };
	int fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int cap = fcntl(fd, F_GETPIPE_SZ);
	cp.capacity = cap > 0 ? (uint32_t)cap : 65536;
	for (int i = 0; i < nrefs; i++)
		if (refs[i].kind == 1 && refs[i].ino == r->ino) {
			if ((refs[i].flags & O_ACCMODE) == O_WRONLY)
				cp.wflags = refs[i].flags & O_NONBLOCK;
			else
				cp.rflags = refs[i].flags & O_NONBLOCK;
		}
	/* copy what is buffered without taking it out */
	int tmp[2];
	static char data[1 << 20];
	ssize_t n = 0;
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) == 0) {
		fcntl(tmp[1], F_SETPIPE_SZ, (int)cp.capacity);
		n = tee(fd, tmp[1], cp.capacity, SPLICE_F_NONBLOCK);
		n = n > 0 ? read(tmp[0], data, (size_t)n) : 0;
		close(tmp[0]);
		close(tmp[1]);
	}
	close(fd);
	if (n < 0)
		n = 0;
	co_w_begin(w, CO_R_PIPE, sizeof(cp) + (uint64_t)n, 0);
	co_w_put(w, &cp, sizeof(cp));
	co_w_put(w, data, (uint64_t)n);
	return co_w_end(w);
}

/* Copy a file the group writes into files/, for a restart after a crash. */
static int copy_file(struct co_writer *w, const char *dir, const char *path, int *ncopies)
{
	int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return 0; /* gone or unreadable: nothing to keep */
	struct stat st;
	fstat(in, &st);
	struct co_fcopy fc;
	memset(&fc, 0, sizeof(fc));
	fc.size = (uint64_t)st.st_size;
	fc.mode = st.st_mode & 07777;
	snprintf(fc.copy, sizeof(fc.copy), "%d", (*ncopies)++);
	snprintf(fc.path, sizeof(fc.path), "%s", path);
	char out_path[PATH_MAX];
	snprintf(out_path, sizeof(out_path), "%s/files", dir);
	mkdir(out_path, 0700);
	snprintf(out_path, sizeof(out_path), "%s/files/%s", dir, fc.copy);
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ok = out >= 0;
	for (off_t left = st.st_size; ok && left > 0;) {
		ssize_t k = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
		if (k <= 0)
			ok = 0;
		left -= k;
	}
	close(in);
	if (out >= 0)
		close(out);
	if (!ok)
		return -1;
	return co_w_rec(w, CO_R_FCOPY, &fc, __builtin_offsetof(struct co_fcopy, path) + strlen(fc.path) + 1);
}

static int write_shm(struct co_writer *w, int host, const struct co_mapent *e)
{
	char p[128];
	snprintf(p, sizeof(p), "/proc/%d/map_files/%lx-%lx", host, (unsigned long)e->start, (unsigned long)e->end);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	fstat(fd, &st);
	struct co_shm sh = { .dev = e->dev, .ino = e->ino, .size = (uint64_t)st.st_size };
	snprintf(sh.name, sizeof(sh.name), "%s", e->path);
	co_w_rec(w, CO_R_SHM, &sh, sizeof(sh));
	static char buf[1 << 20];
	for (off_t off = 0; off < st.st_size;) {
		off_t data = lseek(fd, off, SEEK_DATA);
		if (data < 0)
			break;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > st.st_size)
			hole = st.st_size;
		for (off_t at = data; at < hole;) {
			size_t n = (size_t)(hole - at) < sizeof(buf) ? (size_t)(hole - at) : sizeof(buf);
			ssize_t k = pread(fd, buf, n, at);
			if (k <= 0)
				break;
			uint64_t o = (uint64_t)at;
			co_w_begin(w, CO_R_SHMDATA, sizeof(o) + (uint64_t)k, 1);
			co_w_put(w, &o, sizeof(o));
			co_w_put(w, buf, (uint64_t)k);
			co_w_end(w);
			at += k;
		}
		off = hole;
	}
	close(fd);
	return w->err;
}

static int shm_path(const char *p)
{
	return !strcmp(p, "/dev/zero (deleted)") || !strncmp(p, "/memfd:", 7) || !strncmp(p, "/SYSV", 5) ||
	       (p[0] == '/' && co_endswith(p, " (deleted)"));
}

int co_shared_dump(const char *dir, const struct co_shared_member *m, int n, const struct co_table *t,
		   char *err, size_t errlen)
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
	struct co_head h = { .version = CO_IMG_VERSION, .kind = CO_KIND_SHARED, .created_ns = co_now_ns(CLOCK_REALTIME) };
	co_strlcpy(h.magic, CO_IMG_MAGIC, sizeof(h.magic));
	co_w_rec(&w, CO_R_HEAD, &h, sizeof(h));

	nrefs = 0;
	for (int i = 0; i < n; i++)
		collect_fds(&m[i], t, dir);
	int ncopies = 0;
	static uint64_t copied_dev[MAX_REFS], copied_ino[MAX_REFS];
	int ncopied = 0;
	for (int i = 0; i < nrefs; i++) {
		struct ref *r = &refs[i];
		int first = 1;
		for (int j = 0; j < i; j++)
			if (refs[j].kind == r->kind && refs[j].dev == r->dev && refs[j].ino == r->ino) {
				if (r->kind == 1) {
					first = 0;
					break;
				}
				/* regular files: the same open file description in another process? */
				if (refs[j].host != r->host &&
				    syscall(SYS_kcmp, refs[j].host, r->host, KCMP_FILE, refs[j].fd, r->fd) == 0) {
					r->group = refs[j].group;
					first = 0;
					break;
				}
			}
		if (r->kind == 1) {
			if (first && write_pipe(&w, r) < 0) {
				snprintf(err, errlen, "pid %d: fd %d: cannot read pipe:[%llu]", r->pid, r->fd,
					 (unsigned long long)r->ino);
				goto fail;
			}
			struct co_slink sl = { r->pid, r->fd, CO_OBJ_PIPE, (r->flags & O_ACCMODE) == O_WRONLY, r->ino };
			co_w_rec(&w, CO_R_SLINK, &sl, sizeof(sl));
			continue;
		}
		/* regular file: keep a copy if the group may write it */
		if ((r->flags & O_ACCMODE) != O_RDONLY) {
			int done = 0;
			for (int k = 0; k < ncopied && !done; k++)
				done = copied_dev[k] == r->dev && copied_ino[k] == r->ino;
			if (!done) {
				if (copy_file(&w, dir, r->path, &ncopies) < 0) {
					snprintf(err, errlen, "pid %d: fd %d: cannot copy %s", r->pid, r->fd, r->path);
					goto fail;
				}
				copied_dev[ncopied] = r->dev;
				copied_ino[ncopied++] = r->ino;
			}
		}
	}
	/* open file descriptions that more than one process holds */
	for (int i = 0; i < nrefs; i++) {
		struct ref *r = &refs[i];
		if (r->kind != 2 || r->group != i)
			continue;
		int others = 0;
		for (int j = i + 1; j < nrefs; j++)
			others += refs[j].kind == 2 && refs[j].group == i;
		if (!others)
			continue;
		struct co_sfile sf;
		memset(&sf, 0, sizeof(sf));
		sf.id = (uint64_t)i + 1;
		sf.pos = r->pos;
		sf.flags = r->flags;
		snprintf(sf.path, sizeof(sf.path), "%s", r->path);
		co_w_rec(&w, CO_R_SFILE, &sf, __builtin_offsetof(struct co_sfile, path) + strlen(sf.path) + 1);
		for (int j = i; j < nrefs; j++)
			if (refs[j].kind == 2 && refs[j].group == i) {
				struct co_slink sl = { refs[j].pid, refs[j].fd, CO_OBJ_FILE, 0, sf.id };
				co_w_rec(&w, CO_R_SLINK, &sl, sizeof(sl));
			}
	}
	/* shared memory, and files mapped shared and writable */
	static uint64_t shm_dev[MAX_REFS], shm_ino[MAX_REFS];
	int nshm = 0;
	for (int i = 0; i < n; i++) {
		char mp[64];
		static struct co_maps maps;
		static struct co_mapent e;
		snprintf(mp, sizeof(mp), "/proc/%d/maps", m[i].host_pid);
		if (co_maps_open(&maps, mp))
			continue;
		while (co_maps_next(&maps, &e) == 1) {
			if (!e.shared)
				continue;
			int seen = 0;
			for (int k = 0; k < nshm && !seen; k++)
				seen = shm_dev[k] == e.dev && shm_ino[k] == e.ino;
			if (seen || nshm == MAX_REFS)
				continue;
			shm_dev[nshm] = e.dev;
			shm_ino[nshm++] = e.ino;
			if (shm_path(e.path)) {
				if (write_shm(&w, m[i].host_pid, &e) < 0) {
					snprintf(err, errlen, "pid %d: cannot read shared memory %s", m[i].pid, e.path);
					co_maps_close(&maps);
					goto fail;
				}
			} else if (e.path[0] == '/' && (e.prot & PROT_WRITE)) {
				if (copy_file(&w, dir, e.path, &ncopies) < 0) {
					snprintf(err, errlen, "pid %d: cannot copy %s", m[i].pid, e.path);
					co_maps_close(&maps);
					goto fail;
				}
			}
		}
		co_maps_close(&maps);
	}
	struct co_end end = { w.seq + 1, 0 };
	co_w_rec(&w, CO_R_END, &end, sizeof(end));
	if (co_w_flush(&w)) {
		snprintf(err, errlen, "writing %s: %s", path, strerror(-w.err));
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

/* ---- restore, in the group's init ---- */

struct made {
	int kind;
	uint64_t id, dev, ino;
	int fd[2];
};

int co_shared_restore(const char *dir, int *plan_fd, char *err, size_t errlen)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/shared.img", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct co_reader r;
	co_r_init(&r, fd, path);
	static struct made made[MAX_REFS];
	static struct co_plan_ent plan[CO_MAX_PLAN];
	int nmade = 0, nplan = 0;
	static union {
		struct co_head h;
		struct co_pipe p;
		struct co_sfile f;
		struct co_fcopy c;
		struct co_shm s;
		struct co_slink l;
		char raw[(1 << 20) + 64];
	} u;
	int cur_shm = -1;
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
		if (len > sizeof(u) || nmade == MAX_REFS || nplan == CO_MAX_PLAN) {
			snprintf(err, errlen, "%s: byte %lu: record too large", path, (unsigned long)r.rec_off);
			goto out;
		}
		if (co_r_payload(&r, &u, sizeof(u)))
			goto bad;
		struct made *m = &made[nmade];
		switch (t) {
		case CO_R_HEAD:
			if (u.h.kind != CO_KIND_SHARED || u.h.version != CO_IMG_VERSION) {
				snprintf(err, errlen, "%s: not a shared-objects image of this format", path);
				goto out;
			}
			break;
		case CO_R_FCOPY: {
			char src[PATH_MAX];
			u.c.path[sizeof(u.c.path) - 1] = 0;
			snprintf(src, sizeof(src), "%s/files/%s", dir, u.c.copy);
			int in = open(src, O_RDONLY | O_CLOEXEC);
			int out = open(u.c.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, u.c.mode);
			if (in < 0 || out < 0) {
				snprintf(err, errlen, "cannot put back %s as it was at the checkpoint: %s", u.c.path,
					 strerror(errno));
				goto out;
			}
			for (uint64_t left = u.c.size; left;) {
				ssize_t k = copy_file_range(in, NULL, out, NULL, left, 0);
				if (k <= 0)
					break;
				left -= (uint64_t)k;
			}
			close(in);
			close(out);
			break;
		}
		case CO_R_PIPE: {
			int p[2];
			if (pipe(p) < 0)
				goto sys;
			fcntl(p[1], F_SETPIPE_SZ, (int)u.p.capacity);
			uint64_t n = len - sizeof(struct co_pipe);
			if (n && write(p[1], u.raw + sizeof(struct co_pipe), n) != (ssize_t)n)
				goto sys;
			fcntl(p[0], F_SETFL, (int)u.p.rflags);
			fcntl(p[1], F_SETFL, (int)u.p.wflags);
			*m = (struct made){ CO_OBJ_PIPE, u.p.ino, 0, 0, { p[0], p[1] } };
			nmade++;
			break;
		}
		case CO_R_SFILE: {
			u.f.path[sizeof(u.f.path) - 1] = 0;
			int f = open(u.f.path, (int)(u.f.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC)));
			if (f < 0) {
				snprintf(err, errlen, "cannot reopen %s: %s", u.f.path, strerror(errno));
				goto out;
			}
			lseek(f, (off_t)u.f.pos, SEEK_SET);
			*m = (struct made){ CO_OBJ_FILE, u.f.id, 0, 0, { f, -1 } };
			nmade++;
			break;
		}
		case CO_R_SHM: {
			int f = (int)syscall(SYS_memfd_create, "cohort-shm", 0);
			if (f < 0 || ftruncate(f, (off_t)u.s.size) < 0)
				goto sys;
			*m = (struct made){ CO_OBJ_SHM, 0, u.s.dev, u.s.ino, { f, -1 } };
			cur_shm = f;
			plan[nplan++] = (struct co_plan_ent){ .kind = CO_PLAN_SHM, .src = f, .dev = u.s.dev, .ino = u.s.ino };
			nmade++;
			break;
		}
		case CO_R_SHMDATA: {
			uint64_t off;
			memcpy(&off, u.raw, sizeof(off));
			if (cur_shm < 0 || pwrite(cur_shm, u.raw + 8, len - 8, (off_t)off) != (ssize_t)(len - 8))
				goto sys;
			break;
		}
		case CO_R_SLINK: {
			int src = -1;
			for (int i = 0; i < nmade && src < 0; i++)
				if (made[i].kind == (int)u.l.kind && made[i].id == u.l.id)
					src = made[i].fd[u.l.kind == CO_OBJ_PIPE ? (u.l.end ? 1 : 0) : 0];
			if (src < 0) {
				snprintf(err, errlen, "%s: byte %lu: descriptor %d of pid %d refers to a missing object", path,
					 (unsigned long)r.rec_off, u.l.fd, u.l.pid);
				goto out;
			}
			plan[nplan++] = (struct co_plan_ent){ .pid = u.l.pid, .fd = u.l.fd, .kind = CO_PLAN_FD, .src = src };
			break;
		}
		default:
			snprintf(err, errlen, "%s: byte %lu: unexpected %s record", path, (unsigned long)r.rec_off,
				 co_rec_name(t));
			goto out;
		}
	}
	close(fd);

	/*
	 * Move every object just below the restorers' own descriptors (the hard
	 * limit minus 64, as co_proc_restore_early() computes it), out of the
	 * program's way, and rewrite the plan to match.
	 */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max > (1 << 20))
		rl.rlim_max = 1 << 20;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	int hi = (int)rl.rlim_cur - 64, nfds = 0;
	for (int i = 0; i < nmade; i++)
		nfds += made[i].fd[1] >= 0 ? 2 : 1;
	int lo = hi - nfds, at = lo;
	for (int i = 0; i < nmade; i++)
		for (int k = 0; k < 2; k++) {
			int old = made[i].fd[k];
			if (old < 0)
				continue;
			if (dup2(old, at) < 0)
				goto sys;
			for (int j = 0; j < nplan; j++)
				if (plan[j].src == old)
					plan[j].src = at;
			if (old != at)
				close(old);
			at++;
		}
	int pf = (int)syscall(SYS_memfd_create, "cohort-plan", 0);
	struct co_plan_hdr ph = { CO_PLAN_MAGIC, (uint32_t)nplan, lo, hi };
	if (pf < 0 || write(pf, &ph, sizeof(ph)) != sizeof(ph) ||
	    write(pf, plan, sizeof(plan[0]) * (size_t)nplan) != (ssize_t)(sizeof(plan[0]) * (size_t)nplan))
		goto sys;
	int pf2 = dup2(pf, lo - 1);
	close(pf);
	*plan_fd = pf2;
	return 0;
bad:
	snprintf(err, errlen, "%s", r.err);
	goto out;
sys:
	snprintf(err, errlen, "recreating the group's shared objects: %s", strerror(errno));
out:
	close(fd);
	return -1;
}
