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
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <signal.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/ioctl.h>
#ifndef TFD_IOC_SET_TICKS /* <linux/timerfd.h> clashes with <fcntl.h> */
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif
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
#include "kinds/classify.h"
#include "procfs.h"
#include "res.h"
#include "util.h"

#define MAX_REFS 8192

struct ref {
	int pid, host, fd;
	uint64_t dev, ino, pos;
	uint32_t flags;
	int kind;		/* enum co_obj_kind */
	int group;		/* regular files: index of the first ref sharing its description */
	char path[CO_PATH];
};

static struct ref refs[MAX_REFS];
static int nrefs;

static int grab(const struct ref *r);

/* SO_DOMAIN of another process's socket, for the classifier; -1 if it cannot be told */
static int sock_domain(const struct ref *r)
{
	int s = grab(r), dom = -1;
	socklen_t l = sizeof(dom);
	if (s >= 0 && getsockopt(s, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0)
		dom = -1;
	if (s >= 0)
		close(s);
	return dom;
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
		struct co_fdstat cs = { st.st_mode, st.st_nlink, r->path, -1 };
		r->pid = m->pid;
		r->host = m->host_pid;
		if (S_ISSOCK(st.st_mode))
			cs.domain = sock_domain(r);
		r->kind = (int)co_fd_classify(&cs);
		/* regular files too: a description two processes hold is made once */
		if (!co_obj_group_wide((uint32_t)r->kind) && r->kind != CO_OBJ_FILE)
			continue;
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
		if (refs[i].kind == CO_OBJ_PIPE && refs[i].ino == r->ino) {
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
	/* a named FIFO (not "pipe:[ino]", not deleted) comes back at its path */
	if (r->path[0] == '/' && !co_endswith(r->path, " (deleted)"))
		cp.pathlen = (uint32_t)strlen(r->path);
	co_w_begin(w, CO_R_PIPE, sizeof(cp) + cp.pathlen + (uint64_t)n, 0);
	co_w_put(w, &cp, sizeof(cp));
	co_w_put(w, r->path, cp.pathlen);
	co_w_put(w, data, (uint64_t)n);
	return co_w_end(w);
}

/* Copy len bytes between descriptors: in the kernel when it can, else through a buffer. */
static int copy_bytes(int in, int out, uint64_t len)
{
	static char buf[1 << 20];
	while (len) {
		ssize_t k = copy_file_range(in, NULL, out, NULL, len, 0);
		if (k < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
			ssize_t r = read(in, buf, len < sizeof(buf) ? len : sizeof(buf));
			k = r > 0 ? write(out, buf, (size_t)r) : r;
			if (r > 0 && k != r)
				return -1;
		}
		if (k <= 0)
			return k == 0 ? 0 : -1; /* 0: the file shrank meanwhile */
		len -= (uint64_t)k;
	}
	return 0;
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
	int ok = out >= 0 && copy_bytes(in, out, (uint64_t)st.st_size) == 0;
	close(in);
	if (out >= 0)
		close(out);
	if (!ok)
		return -1;
	return co_w_rec(w, CO_R_FCOPY, &fc, __builtin_offsetof(struct co_fcopy, path) + strlen(fc.path) + 1);
}

static size_t page_part(ssize_t left)
{
	return left < (ssize_t)CO_PAGE ? (size_t)left : CO_PAGE;
}

static int all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/*
 * A shared memory object: from fd, an open map_files or fd entry of it
 * (mem_at 0), or from fd = /proc/PID/mem, where the object is mapped at
 * mem_at with e->off as its offset.  The first skips the object's holes;
 * the second cannot see them and leaves out the pages that read as zeros.
 */
static int write_shm_from(struct co_writer *w, int fd, uint64_t mem_at, const struct co_mapent *e)
{
	struct stat st;
	uint64_t size = mem_at ? e->off + (e->end - e->start) : (fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0);
	struct co_shm sh = { .dev = e->dev, .ino = e->ino, .size = size };
	snprintf(sh.name, sizeof(sh.name), "%s", e->path);
	co_w_rec(w, CO_R_SHM, &sh, sizeof(sh));
	static char buf[1 << 20];
	for (off_t off = mem_at ? (off_t)e->off : 0; off < (off_t)size;) {
		off_t data = mem_at ? off : lseek(fd, off, SEEK_DATA);
		if (data < 0)
			break;
		off_t hole = mem_at ? (off_t)size : lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > (off_t)size)
			hole = (off_t)size;
		for (off_t at = data; at < hole;) {
			size_t n = (size_t)(hole - at) < sizeof(buf) ? (size_t)(hole - at) : sizeof(buf);
			ssize_t k = pread(fd, buf, n, mem_at ? (off_t)(mem_at + (uint64_t)at - e->off) : at);
			if (k <= 0 && mem_at)
				return -1;
			if (k <= 0)
				break;
			for (ssize_t p = 0; p < k; p += CO_PAGE) {
				/* one record per run of pages worth keeping (from mem: not all zeros) */
				ssize_t q = p;
				while (q < k && !(mem_at && all_zero(buf + q, page_part(k - q))))
					q += CO_PAGE;
				if (q > k)
					q = k;
				if (q > p) {
					uint64_t o = (uint64_t)(at + p);
					co_w_begin(w, CO_R_SHMDATA, sizeof(o) + (uint64_t)(q - p), 1);
					co_w_put(w, &o, sizeof(o));
					co_w_put(w, buf + p, (uint64_t)(q - p));
					co_w_end(w);
				}
				p = q;
			}
			at += k;
		}
		off = hole;
	}
	return w->err;
}

/* A shared memory object, read through src: a /proc map_files or fd entry. */
static int write_shm(struct co_writer *w, const char *src, const struct co_mapent *e)
{
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = write_shm_from(w, fd, 0, e);
	close(fd);
	return r;
}

/*
 * A shared mapping with no descriptor left: /proc/PID/map_files needs
 * CAP_CHECKPOINT_RESTORE in the first user namespace, which a group
 * started without privileges lacks; /proc/PID/mem reads the same memory
 * through the mapping.
 */
static int write_shm_mapped(struct co_writer *w, pid_t host_pid, const struct co_mapent *e)
{
	char src[64];
	snprintf(src, sizeof(src), "/proc/%d/map_files/%lx-%lx", (int)host_pid, (unsigned long)e->start,
		 (unsigned long)e->end);
	uint64_t mem_at = 0;
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == EPERM) {
		snprintf(src, sizeof(src), "/proc/%d/mem", (int)host_pid);
		fd = open(src, O_RDONLY | O_CLOEXEC);
		mem_at = e->start;
	}
	if (fd < 0)
		return -1;
	int r = write_shm_from(w, fd, mem_at, e);
	close(fd);
	return r;
}

static int shm_path(const char *p)
{
	return !strcmp(p, "/dev/zero (deleted)") || !strncmp(p, "/memfd:", 7) || !strncmp(p, "/SYSV", 5) ||
	       (p[0] == '/' && co_endswith(p, " (deleted)"));
}

/* ---- eventfd, signalfd, timerfd, epoll, Unix sockets ---- */

/* A descriptor of another process, for looking at it (pidfd_getfd). */
static int grab(const struct ref *r)
{
	int pfd = (int)syscall(SYS_pidfd_open, r->host, 0);
	if (pfd < 0)
		return -1;
	int fd = (int)syscall(SYS_pidfd_getfd, pfd, r->fd, 0);
	close(pfd);
	return fd;
}

static int fdinfo_of(const struct ref *r, char *buf, size_t n)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/fdinfo/%d", r->host, r->fd);
	return co_read_small(p, buf, n) > 0 ? 0 : -1;
}

/* "(sec, nsec)" after key, as timerfd's fdinfo shows it */
static uint64_t pair_ns(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);
	unsigned long long a = 0, b = 0;
	if (p)
		sscanf(p + strlen(key), " (%llu, %llu)", &a, &b);
	return a * 1000000000ULL + b;
}

struct upeer {
	uint32_t ino, peer, state;
	int named;
};
static struct upeer upeers[MAX_REFS];
static int nupeers;

/* Every Unix socket's peer and name, from the kernel's sock_diag. */
static int unix_peers(void)
{
	int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (s < 0)
		return -1;
	struct {
		struct nlmsghdr nh;
		struct unix_diag_req r;
	} req = { { sizeof(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0 },
		  { .sdiag_family = AF_UNIX, .udiag_states = ~0U, .udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_NAME } };
	if (send(s, &req, sizeof(req), 0) < 0) {
		close(s);
		return -1;
	}
	static char buf[65536];
	nupeers = 0;
	for (;;) {
		ssize_t n = recv(s, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				close(s);
				return 0;
			}
			struct unix_diag_msg *m = NLMSG_DATA(h);
			if (nupeers == MAX_REFS)
				continue;
			struct upeer *u = &upeers[nupeers++];
			memset(u, 0, sizeof(*u));
			u->ino = m->udiag_ino;
			u->state = m->udiag_state;
			int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
				if (a->rta_type == UNIX_DIAG_PEER)
					memcpy(&u->peer, RTA_DATA(a), sizeof(u->peer));
				else if (a->rta_type == UNIX_DIAG_NAME)
					u->named = 1;
			}
		}
	}
	close(s);
	return 0;
}

static struct upeer *upeer_of(uint64_t ino)
{
	for (int i = 0; i < nupeers; i++)
		if (upeers[i].ino == ino)
			return &upeers[i];
	return NULL;
}

/* Queued data a socket will read: peeked in order, without taking it. */
static int write_sockdata(struct co_writer *w, const struct ref *r)
{
	int s = grab(r);
	if (s < 0)
		return -1;
	int zero = 0, off = -1;
	static char buf[1 << 17];
	setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero));
	int ret = 0;
	for (;;) {
		/* with room for ancillary data: descriptors in flight must not be dropped unseen */
		char cbuf[CMSG_SPACE(64 * sizeof(int))];
		struct iovec iov = { buf + 8, sizeof(buf) - 8 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(s, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n <= 0)
			break;
		int passed = (mh.msg_flags & MSG_CTRUNC) != 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				/* peeking gave us copies of them: not ours to keep */
				int *fds = (int *)CMSG_DATA(c);
				for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++)
					close(fds[k]);
				passed = 1;
			}
		if (passed) {
			ret = -2;
			break;
		}
		memcpy(buf, &r->ino, 8);
		co_w_rec(w, CO_R_SOCKDATA, buf, (uint64_t)n + 8);
	}
	setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	close(s);
	return ret;
}

static int write_objects(struct co_writer *w, char *err, size_t errlen)
{
	char info[4096];
	int have_peers = 0;
	/* group the descriptors of each object: sockets by inode, the others by description */
	for (int i = 0; i < nrefs; i++) {
		struct ref *r = &refs[i];
		if (r->kind < CO_OBJ_EVENTFD)
			continue;
		r->group = i;
		for (int j = 0; j < i; j++) {
			if (refs[j].kind != r->kind)
				continue;
			if (r->kind == CO_OBJ_USOCK ? refs[j].ino == r->ino
						    : syscall(SYS_kcmp, refs[j].host, r->host, KCMP_FILE, refs[j].fd, r->fd) == 0) {
				r->group = refs[j].group;
				break;
			}
		}
	}
	for (int pass = 0; pass < 2; pass++) /* epoll objects after what they watch */
		for (int i = 0; i < nrefs; i++) {
			struct ref *r = &refs[i];
			if (r->kind < CO_OBJ_EVENTFD || r->group != i || (r->kind == CO_OBJ_EPOLL) != pass)
				continue;
			struct co_sobj o = { .kind = (uint32_t)r->kind, .flags = r->flags & O_NONBLOCK,
					     .id = r->kind == CO_OBJ_USOCK ? r->ino : (uint64_t)i + 1 };
			if (fdinfo_of(r, info, sizeof(info)) < 0)
				goto gone;
			switch (r->kind) {
			case CO_OBJ_EVENTFD:
				o.a = co_status_hex(info, "eventfd-count");
				o.b = (uint64_t)co_status_field(info, "eventfd-semaphore") == 1;
				break;
			case CO_OBJ_SIGNALFD:
				o.a = co_status_hex(info, "sigmask");
				break;
			case CO_OBJ_TIMERFD:
				o.a = (uint64_t)co_status_field(info, "clockid");
				o.b = pair_ns(info, "it_value:");
				o.c = pair_ns(info, "it_interval:");
				o.d = (uint64_t)co_status_field(info, "ticks");
				break;
			case CO_OBJ_USOCK: {
				if (!have_peers && unix_peers() < 0) {
					snprintf(err, errlen, "cannot list Unix sockets (sock_diag)");
					return -1;
				}
				have_peers = 1;
				struct upeer *u = upeer_of(r->ino), *p = u ? upeer_of(u->peer) : NULL;
				int in_group = 0;
				for (int k = 0; p && k < nrefs && !in_group; k++)
					in_group = refs[k].kind == CO_OBJ_USOCK && refs[k].ino == p->ino;
				if (!u || u->named || !u->peer || !in_group) {
					snprintf(err, errlen,
						 "pid %d: fd %d: unsupported descriptor kind socket (a Unix socket that is %s)",
						 r->pid, r->fd,
						 !u ? "unknown to the kernel" : u->named ? "bound to a name" :
						 !u->peer ? "not connected" : "connected outside the group");
					return -1;
				}
				int s = grab(r), type = 0;
				socklen_t l = sizeof(type);
				if (s < 0 || getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &l) < 0) {
					if (s >= 0)
						close(s);
					goto gone;
				}
				close(s);
				o.a = (uint64_t)type;
				o.b = u->peer;
				break;
			}
			}
			co_w_rec(w, CO_R_SOBJ, &o, sizeof(o));
			for (int j = i; j < nrefs; j++)
				if (refs[j].kind == r->kind && refs[j].group == i) {
					struct co_slink sl = { refs[j].pid, refs[j].fd, (uint32_t)r->kind, 0, o.id };
					co_w_rec(w, CO_R_SLINK, &sl, sizeof(sl));
				}
			if (r->kind == CO_OBJ_EPOLL) {
				/* each watched descriptor, by its number in the epoll owner's process */
				for (const char *p = strstr(info, "tfd:"); p; p = strstr(p + 4, "tfd:")) {
					int tfd = 0;
					unsigned ev = 0;
					unsigned long long data = 0;
					sscanf(p, "tfd: %d events: %x data: %llx", &tfd, &ev, &data);
					struct co_epitem it = { o.id, r->pid, tfd, ev, 0, data };
					co_w_rec(w, CO_R_EPITEM, &it, sizeof(it));
				}
			}
			continue;
gone:
			snprintf(err, errlen, "pid %d: fd %d: cannot read %s", r->pid, r->fd, r->path);
			return -1;
		}
	/* data in flight, once both ends of every socket exist */
	for (int i = 0; i < nrefs; i++)
		if (refs[i].kind == CO_OBJ_USOCK && refs[i].group == i) {
			int e = write_sockdata(w, &refs[i]);
			if (e == -2) {
				snprintf(err, errlen,
					 "pid %d: fd %d: the Unix socket %s has descriptors in flight (SCM_RIGHTS), which "
					 "cohort cannot checkpoint yet",
					 refs[i].pid, refs[i].fd, refs[i].path);
				return -1;
			}
			if (e < 0) {
				snprintf(err, errlen, "pid %d: fd %d: cannot read queued data", refs[i].pid, refs[i].fd);
				return -1;
			}
		}
	return w->err;
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
	co_w_head(&w, CO_KIND_SHARED);

	nrefs = 0;
	for (int i = 0; i < n; i++)
		collect_fds(&m[i], t, dir);
	int ncopies = 0;
	static uint64_t copied_dev[MAX_REFS], copied_ino[MAX_REFS];
	int ncopied = 0;
	for (int i = 0; i < nrefs; i++) {
		struct ref *r = &refs[i];
		int first = 1;
		if (r->kind != CO_OBJ_PIPE && r->kind != CO_OBJ_FILE)
			continue;
		for (int j = 0; j < i; j++)
			if (refs[j].kind == r->kind && refs[j].dev == r->dev && refs[j].ino == r->ino) {
				if (r->kind == CO_OBJ_PIPE) {
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
		if (r->kind == CO_OBJ_PIPE) {
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
		if (r->kind != CO_OBJ_FILE || r->group != i)
			continue;
		int others = 0;
		for (int j = i + 1; j < nrefs; j++)
			others += refs[j].kind == CO_OBJ_FILE && refs[j].group == i;
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
			if (refs[j].kind == CO_OBJ_FILE && refs[j].group == i) {
				struct co_slink sl = { refs[j].pid, refs[j].fd, CO_OBJ_FILE, 0, sf.id };
				co_w_rec(&w, CO_R_SLINK, &sl, sizeof(sl));
			}
	}
	if (write_objects(&w, err, errlen) < 0)
		goto fail;
	/* shared memory: memfd descriptors first, then mappings */
	static uint64_t shm_ino[MAX_REFS];
	int nshm = 0;
	for (int i = 0; i < nrefs; i++) {
		struct ref *r = &refs[i];
		if (r->kind != CO_OBJ_SHM)
			continue;
		int seen = 0;
		for (int k = 0; k < nshm && !seen; k++)
			seen = shm_ino[k] == r->ino;
		if (!seen) {
			struct co_mapent e;
			char src[128];
			memset(&e, 0, sizeof(e));
			e.dev = r->dev;
			e.ino = r->ino;
			snprintf(e.path, sizeof(e.path), "%s", r->path);
			snprintf(src, sizeof(src), "/proc/%d/fd/%d", r->host, r->fd);
			if (write_shm(&w, src, &e) < 0) {
				snprintf(err, errlen, "pid %d: fd %d: cannot read %s", r->pid, r->fd, r->path);
				goto fail;
			}
			shm_ino[nshm++] = r->ino;
		}
		struct co_slink sl = { r->pid, r->fd, CO_OBJ_SHM, 0, r->ino };
		co_w_rec(&w, CO_R_SLINK, &sl, sizeof(sl));
	}
	for (int i = 0; i < n; i++) {
		char mp[64];
		static struct co_maps maps;
		static struct co_mapent e;
		snprintf(mp, sizeof(mp), "/proc/%d/maps", m[i].host_pid);
		if (co_maps_open(&maps, mp))
			continue;
		while (co_maps_next(&maps, &e) == 1) {
			/* the agent's own shared mappings (process table, page lists) are not the program's */
			if (!e.shared || co_startswith(e.path, "/memfd:cohort-agent-"))
				continue;
			int seen = 0;
			for (int k = 0; k < nshm && !seen; k++)
				seen = shm_ino[k] == e.ino;
			if (seen || nshm == MAX_REFS)
				continue;
			shm_ino[nshm++] = e.ino;
			if (shm_path(e.path)) {
				if (write_shm_mapped(&w, m[i].host_pid, &e) < 0) {
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
	uint64_t peer;		/* Unix sockets: the peer's id */
};

struct spare {
	uint64_t id;
	int fd;
};

static int find_made(const struct made *m, int n, int kind, uint64_t id, int end)
{
	for (int i = 0; i < n; i++)
		if (m[i].kind == kind && m[i].id == id)
			return m[i].fd[end];
	return -1;
}

/* The descriptor of the other end of Unix socket id. */
static int sock_peer_of(const struct made *m, int n, uint64_t id)
{
	for (int i = 0; i < n; i++)
		if (m[i].kind == CO_OBJ_USOCK && m[i].id == id)
			for (int k = 0; k < n; k++)
				if (m[k].kind == CO_OBJ_USOCK && m[k].id == m[i].peer)
					return m[k].fd[0];
	return -1;
}

/*
 * Both ends of the named FIFO at path (made again if it is gone), so that
 * whoever opens the path after the restart meets the same pipe.  Opening
 * it read-write first keeps it from blocking and from losing its data.
 */
static int open_fifo(const char *path, int p[2], char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0 && (errno != ENOENT || mkfifo(path, 0600) < 0)) {
		snprintf(err, errlen, "cannot make the FIFO %s again: %s", path, strerror(errno));
		return -1;
	}
	if (stat(path, &st) == 0 && !S_ISFIFO(st.st_mode)) {
		snprintf(err, errlen, "%s was a FIFO at the checkpoint and is something else now", path);
		return -1;
	}
	int keep = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	p[0] = keep < 0 ? -1 : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	p[1] = p[0] < 0 ? -1 : open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (keep >= 0)
		close(keep);
	if (p[1] < 0) {
		snprintf(err, errlen, "cannot open the FIFO %s: %s", path, strerror(errno));
		if (p[0] >= 0)
			close(p[0]);
		return -1;
	}
	/* the ends are handed down: not close-on-exec here (the plan decides) */
	fcntl(p[0], F_SETFD, 0);
	fcntl(p[1], F_SETFD, 0);
	return 0;
}

int co_shared_restore(const char *dir, int *plan_fd, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct co_reader r;
	int fd = co_open_gen_file(dir, "shared.img", path, sizeof(path), &r, err, errlen);
	if (fd < 0)
		return -1;
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
		struct co_sobj o;
		struct co_epitem e;
		char raw[(1 << 20) + 8192];
	} u;
	static struct spare spare[MAX_REFS];
	int nspare = 0;
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
			if (u.h.kind != CO_KIND_SHARED || !CO_IMG_VERSION_OK(u.h.version)) {
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
			if (copy_bytes(in, out, u.c.size) < 0) {
				snprintf(err, errlen, "cannot put back %s as it was at the checkpoint: %s", u.c.path,
					 strerror(errno));
				goto out;
			}
			close(in);
			close(out);
			break;
		}
		case CO_R_PIPE: {
			int p[2];
			if (u.p.pathlen >= PATH_MAX || sizeof(struct co_pipe) + u.p.pathlen > len) {
				snprintf(err, errlen, "%s: byte %lu: damaged pipe record", path, (unsigned long)r.rec_off);
				goto out;
			}
			if (u.p.pathlen) {
				char fifo[PATH_MAX];
				memcpy(fifo, u.raw + sizeof(struct co_pipe), u.p.pathlen);
				fifo[u.p.pathlen] = 0;
				if (open_fifo(fifo, p, err, errlen) < 0)
					goto out;
			} else if (pipe(p) < 0) {
				goto sys;
			}
			fcntl(p[1], F_SETPIPE_SZ, (int)u.p.capacity);
			uint64_t n = len - sizeof(struct co_pipe) - u.p.pathlen;
			if (n && write(p[1], u.raw + sizeof(struct co_pipe) + u.p.pathlen, n) != (ssize_t)n)
				goto sys;
			fcntl(p[0], F_SETFL, (int)u.p.rflags);
			fcntl(p[1], F_SETFL, (int)u.p.wflags);
			*m = (struct made){ CO_OBJ_PIPE, u.p.ino, 0, 0, { p[0], p[1] }, 0 };
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
			*m = (struct made){ CO_OBJ_FILE, u.f.id, 0, 0, { f, -1 }, 0 };
			nmade++;
			break;
		}
		case CO_R_SHM: {
			int f = (int)syscall(SYS_memfd_create, "cohort-shm", 0);
			if (f < 0 || ftruncate(f, (off_t)u.s.size) < 0)
				goto sys;
			*m = (struct made){ CO_OBJ_SHM, u.s.ino, u.s.dev, u.s.ino, { f, -1 }, 0 };
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
		case CO_R_SOBJ: {
			int f = -1, nb = (u.o.flags & O_NONBLOCK) ? O_NONBLOCK : 0;
			switch (u.o.kind) {
			case CO_OBJ_EVENTFD:
				f = eventfd((unsigned)u.o.a, u.o.b ? EFD_SEMAPHORE : 0);
				break;
			case CO_OBJ_SIGNALFD: {
				sigset_t ss;
				sigemptyset(&ss);
				for (int sig = 1; sig <= 64; sig++)
					if (u.o.a & (1ULL << (sig - 1)))
						sigaddset(&ss, sig);
				f = signalfd(-1, &ss, 0);
				break;
			}
			case CO_OBJ_TIMERFD: {
				f = timerfd_create((int)u.o.a, 0);
				/*
				 * A periodic timer that expired shows 0 ns left: the
				 * kernel moves it on only when it is read.  It comes
				 * back one interval from its next expiry, with the
				 * expirations nobody read yet (TFD_IOC_SET_TICKS).
				 */
				uint64_t left = u.o.b ? u.o.b : u.o.c;
				struct itimerspec its = { { (time_t)(u.o.c / 1000000000ULL), (long)(u.o.c % 1000000000ULL) },
							  { (time_t)(left / 1000000000ULL), (long)(left % 1000000000ULL) } };
				if (f >= 0 && left)
					timerfd_settime(f, 0, &its, NULL);
				if (f >= 0 && u.o.d && ioctl(f, TFD_IOC_SET_TICKS, &u.o.d) < 0)
					co_warn("warning: a timerfd comes back without its %llu unread expirations: %s",
						(unsigned long long)u.o.d, strerror(errno));
				break;
			}
			case CO_OBJ_EPOLL:
				f = epoll_create1(0);
				break;
			case CO_OBJ_USOCK: {
				/* the pair is made when its first end comes; the second end waits in `spare` */
				for (int i = 0; i < nspare && f < 0; i++)
					if (spare[i].id == u.o.id) {
						f = spare[i].fd;
						spare[i] = spare[--nspare];
					}
				if (f < 0) {
					int sv[2];
					if (socketpair(AF_UNIX, (int)u.o.a, 0, sv) < 0 || nspare == MAX_REFS)
						goto sys;
					f = sv[0];
					spare[nspare++] = (struct spare){ u.o.b, sv[1] };
				}
				break;
			}
			}
			if (f < 0)
				goto sys;
			fcntl(f, F_SETFL, nb);
			*m = (struct made){ (int)u.o.kind, u.o.id, 0, 0, { f, -1 }, u.o.b };
			nmade++;
			break;
		}
		case CO_R_EPITEM: {
			/*
			 * An epoll item is known by the descriptor number it was added
			 * with, so the process adds it itself, with its own numbers,
			 * once its descriptors are back.
			 */
			int ep = find_made(made, nmade, CO_OBJ_EPOLL, u.e.epoll, 0), epfd = -1;
			for (int i = 0; i < nplan && epfd < 0; i++)
				if (plan[i].kind == CO_PLAN_FD && plan[i].pid == u.e.pid && plan[i].src == ep)
					epfd = plan[i].fd;
			if (ep < 0 || epfd < 0) {
				snprintf(err, errlen, "%s: byte %lu: epoll item of pid %d without its epoll", path,
					 (unsigned long)r.rec_off, u.e.pid);
				goto out;
			}
			plan[nplan++] = (struct co_plan_ent){ .pid = u.e.pid, .fd = u.e.fd, .kind = CO_PLAN_EPITEM,
							      .src = epfd, .dev = u.e.events, .ino = u.e.data };
			break;
		}
		case CO_R_SOCKDATA: {
			uint64_t id;
			memcpy(&id, u.raw, 8);
			/* bytes queued for socket id were sent by its peer: send them again from there */
			int peer = sock_peer_of(made, nmade, id);
			if (peer < 0 || send(peer, u.raw + 8, len - 8, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)(len - 8)) {
				snprintf(err, errlen, "cannot put back data queued on a Unix socket: %s", strerror(errno));
				goto out;
			}
			break;
		}
		case CO_R_SLINK: {
			int src = find_made(made, nmade, (int)u.l.kind, u.l.id,
					    u.l.kind == CO_OBJ_PIPE && u.l.end ? 1 : 0);
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
	/* a compressed shared.img: zstd's own verdict on the whole file */
	int zbad = co_img_close(fd, err, errlen);
	fd = -1;
	if (zbad)
		return -1;

	/*
	 * Move every object just below the restorers' own descriptors (the
	 * layout of kinds/plan.h), out of the program's way, and rewrite the
	 * plan to match.
	 */
	int hi = co_plan_top(), nfds = 0;
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
				if (plan[j].src == old && plan[j].kind != CO_PLAN_EPITEM)
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
	/* zstd's finding, when there is one, says more than the record that broke off */
	if (fd >= 0)
		co_img_close(fd, err, errlen);
	return -1;
}
