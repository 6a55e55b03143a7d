/*
 * procfs.c - /proc parsing for the agent, the restorer and the CLI: small
 * files read whole, /proc/PID/stat and status (ids, credentials, state),
 * the numbered entries of /proc directories (threads, descriptors), the
 * namespaces and root of a process, and what a migration compares.  The
 * memory map is read in procfs_maps.c, descriptors' fdinfo in
 * procfs_fdinfo.c, mountinfo and cgroup in procfs_mount.c: one file per
 * kind of text, so that each stays small; together they are the only
 * place /proc text is parsed (procfs.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include "procfs.h"
#include "procfs_text.h"
#include "sys.h"
#include "util.h"

long co_read_small(const char *path, char *buf, size_t n)
{
	int fd = (int)co_open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	size_t got = 0;
	while (got + 1 < n) {
		long r = co_read(fd, buf + got, n - 1 - got);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
	}
	co_close(fd);
	buf[got] = 0;
	return got;
}

int co_stat_fields(const char *path, uint64_t *out, int first, int count)
{
	char buf[2048];
	if (co_read_small(path, buf, sizeof(buf)) <= 0)
		return -EIO;
	/* field 2 (comm) ends at the last ')' */
	const char *p = buf, *close = 0;
	for (const char *q = buf; *q; q++)
		if (*q == ')')
			close = q;
	if (!close)
		return -EIO;
	p = close + 2; /* field 3 starts here */
	int field = 3;
	while (*p && field < first + count) {
		const char *tok = p;
		while (*p && *p != ' ')
			p++;
		if (field >= first) {
			int neg = *tok == '-';
			uint64_t v = co_strtoul(tok + neg, 0, 10);
			out[field - first] = neg ? -v : v;
		}
		if (*p)
			p++;
		field++;
	}
	return field == first + count ? 0 : -EIO;
}

/* The value of the "Key:" line of a status-style text, past its blanks; NULL when absent (procfs_text.h). */
const char *co_status_value(const char *buf, const char *key)
{
	size_t kl = co_strlen(key);
	for (const char *p = buf; *p;) {
		if (co_strncmp(p, key, kl) == 0 && p[kl] == ':') {
			p += kl + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
		while (*p && *p != '\n')
			p++;
		if (*p)
			p++;
	}
	return 0;
}

int co_read_number(const char *path, int64_t *v)
{
	char buf[32];
	long r = co_read_small(path, buf, sizeof(buf));
	if (r <= 0)
		return r < 0 ? (int)r : -EINVAL;
	const char *p = buf + (buf[0] == '-'), *end;
	uint64_t u = co_strtoul(p, &end, 10);
	if (end == p || (*end && *end != '\n'))
		return -EINVAL;
	*v = buf[0] == '-' ? -(int64_t)u : (int64_t)u;
	return 0;
}

uint64_t co_status_hex(const char *buf, const char *key)
{
	const char *v = co_status_value(buf, key);
	return v ? co_strtoul(v, 0, 16) : 0;
}

long co_status_field(const char *buf, const char *key)
{
	const char *v = co_status_value(buf, key);
	return v ? (long)co_strtoul(v, 0, 10) : -1;
}

long co_status_octal(const char *buf, const char *key)
{
	const char *v = co_status_value(buf, key);
	return v ? (long)co_strtoul(v, 0, 8) : -1;
}

long co_status_umask(const char *buf)
{
	return co_status_octal(buf, "Umask");
}

/* Last number of a line like "NSpid:\t7\t2": the innermost namespace's. */
static long last_number(const char *buf, const char *key)
{
	const char *v = co_status_value(buf, key);
	long last = -1;
	while (v && *v && *v != '\n') {
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v < '0' || *v > '9')
			break;
		last = (long)co_strtoul(v, &v, 10);
	}
	return last;
}

int co_ns_ids(int host_pid, struct co_nsids *o)
{
	char path[64], buf[4096];
	co_fmt(path, sizeof(path), "/proc/%d/status", host_pid);
	if (co_read_small(path, buf, sizeof(buf)) <= 0)
		return -1;
	const char *st = co_status_value(buf, "State");
	o->state = st ? *st : '?';
	o->pid = (int)last_number(buf, "NSpid");
	o->pgid = (int)last_number(buf, "NSpgid");
	o->sid = (int)last_number(buf, "NSsid");
	o->host_ppid = (int)co_status_field(buf, "PPid");
	uint64_t ec = 0;
	co_fmt(path, sizeof(path), "/proc/%d/stat", host_pid);
	o->exit_code = co_stat_fields(path, &ec, 52, 1) == 0 ? (int)ec : 0;
	return o->pid > 0 ? 0 : -1;
}

/* Up to max unsigned numbers of the "Key:" line into out; how many, -E2BIG beyond max, -EINVAL when absent. */
static int status_numbers(const char *buf, const char *key, uint32_t *out, int max)
{
	const char *v = co_status_value(buf, key);
	int n = 0;
	if (!v)
		return -EINVAL;
	for (;;) {
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v < '0' || *v > '9')
			break;
		if (n == max)
			return -E2BIG;
		const char *start = v;
		uint64_t x = co_strtoul(v, &v, 10);
		if (v == start || x > 0xffffffffULL)
			return -EINVAL;
		out[n++] = (uint32_t)x;
	}
	return *v == '\n' || *v == 0 ? n : -EINVAL;
}

int co_status_creds(const char *buf, uint32_t uid[4], uint32_t gid[4], uint32_t *groups, int max)
{
	if (status_numbers(buf, "Uid", uid, 4) != 4 || status_numbers(buf, "Gid", gid, 4) != 4)
		return -EINVAL;
	return status_numbers(buf, "Groups", groups, max);
}

/* The Uid, Gid, Groups and Cap* lines of /proc/PID/task/TID/status, one after another, in out. */
static int task_creds(int host, int tid, char *out, size_t size)
{
	char path[64], buf[8192];
	co_fmt(path, sizeof(path), "/proc/%d/task/%d/status", host, tid);
	if (co_read_small(path, buf, sizeof(buf)) <= 0)
		return -ESRCH;
	size_t len = 0;
	out[0] = 0;
	for (const char *p = buf; *p;) {
		size_t n = 0;
		while (p[n] && p[n] != '\n')
			n++;
		n += p[n] == '\n';
		if (co_startswith(p, "Uid:") || co_startswith(p, "Gid:") || co_startswith(p, "Groups:") ||
		    co_startswith(p, "Cap")) {
			if (len + n >= size)
				return -E2BIG;
			co_memcpy(out + len, p, n);
			out[len += n] = 0;
		}
		p += n;
	}
	return 0;
}

/*
 * fn(num, arg) for each entry of /proc/PID/DIR (task, fdinfo) until one
 * answers non-zero: that answer, 0 when none did, or -errno.  However many
 * there are: a scan that gave up past a table's size would find nothing.
 */
static int each_entry(int pid, const char *dir, int (*fn)(int, void *), void *arg)
{
	char path[64];
	co_fmt(path, sizeof(path), "/proc/%d/%s", pid, dir);
	int dfd = (int)co_open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0)
		return dfd;
	int r = co_dir_each(dfd, fn, arg);
	co_close(dfd);
	return r;
}

struct odd_creds {
	int host;
	char first[4096];
};

/* a thread gone meanwhile has no ids to restore */
static int odd_creds(int tid, void *arg)
{
	struct odd_creds *a = arg;
	char other[4096];
	return tid != a->host && task_creds(a->host, tid, other, sizeof(other)) == 0 && co_strcmp(a->first, other)
		       ? tid
		       : 0;
}

int co_each_fd(int pid, int (*fn)(int fd, void *arg), void *arg)
{
	return each_entry(pid, "fd", fn, arg);
}

int co_each_task(int pid, int (*fn)(int tid, void *arg), void *arg)
{
	return each_entry(pid, "task", fn, arg);
}

int co_thread_odd_creds(int host)
{
	struct odd_creds a = { .host = host };
	if (task_creds(host, host, a.first, sizeof(a.first)) < 0)
		return -ESRCH;
	return each_entry(host, "task", odd_creds, &a);
}

struct sc_tasks {
	int host, max, n;
	struct co_sctask *out;
};

/* a thread gone meanwhile is left out */
static int sc_task(int tid, void *arg)
{
	struct sc_tasks *a = arg;
	char path[64], buf[8192];
	co_fmt(path, sizeof(path), "/proc/%d/task/%d/status", a->host, tid);
	if (co_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	if (a->n == a->max)
		return -E2BIG;
	struct co_sctask *t = &a->out[a->n++];
	t->host_tid = tid;
	t->tid = (int)last_number(buf, "NSpid");
	t->mode = (int)co_status_field(buf, "Seccomp");
	t->nnp = (int)co_status_field(buf, "NoNewPrivs");
	t->cap_eff = co_status_hex(buf, "CapEff");
	return 0;
}

int co_seccomp_tasks(int host, struct co_sctask *out, int max)
{
	struct sc_tasks a = { host, max, 0, out };
	int r = each_entry(host, "task", sc_task, &a);
	return r < 0 ? r : a.n;
}

/* The identity (device and inode) of /proc/PID/NAME (ns/mnt, root); 0 when it cannot be seen. */
static uint64_t entry_id(int pid, const char *name)
{
	char path[64];
	struct stat st;
	co_fmt(path, sizeof(path), "/proc/%d/%s", pid, name);
	if (co_sys2(SYS_stat, (long)path, (long)&st) < 0)
		return 0;
	return (uint64_t)st.st_dev << 32 ^ (uint64_t)st.st_ino;
}

uint64_t co_ns_inode(int pid, const char *kind)
{
	char path[64];
	struct stat st;
	co_fmt(path, sizeof(path), "/proc/%d/ns/%s", pid, kind);
	return co_sys2(SYS_stat, (long)path, (long)&st) < 0 ? 0 : (uint64_t)st.st_ino;
}

static uint64_t ns_id(int pid, const char *kind)
{
	char name[48];
	co_fmt(name, sizeof(name), "ns/%s", kind);
	return entry_id(pid, name);
}

int co_root_differs(int host, int ref, char *path, size_t n)
{
	uint64_t a = entry_id(host, "root"), b = entry_id(ref, "root");
	if (!a || !b || a == b)
		return 0;
	char link[64];
	co_fmt(link, sizeof(link), "/proc/%d/root", host);
	long r = co_readlink(link, path, n - 1);
	path[r > 0 ? r : 0] = 0;
	return 1;
}

const char *co_ns_differs(int host, int ref)
{
	static const char *const kinds[] = { "user", "mnt", "pid", "pid_for_children", "net", "uts", "ipc",
					     "cgroup", "time", "time_for_children" };
	for (unsigned i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		uint64_t a = ns_id(host, kinds[i]), b = ns_id(ref, kinds[i]);
		if (a && b && a != b)
			return kinds[i];
	}
	return NULL;
}

int (*co_proc_self_fallback)(const char *name);

int co_proc_self_open(const char *name)
{
	char path[64];
	co_fmt(path, sizeof(path), "/proc/self/%s", name);
	int fd = (int)co_open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd == -EACCES && co_proc_self_fallback)
		fd = co_proc_self_fallback(name);
	return fd;
}

/* The next space-separated word at p: its start; *end past it (procfs_text.h). */
const char *co_word(const char *p, const char **end)
{
	while (*p == ' ' || *p == '\t')
		p++;
	const char *e = p;
	while (*e && *e != ' ' && *e != '\t' && *e != '\n')
		e++;
	*end = e;
	return p;
}

int co_dir_each(int dirfd, int (*fn)(int num, void *arg), void *arg)
{
	if (co_lseek(dirfd, 0, 0 /* SEEK_SET */) < 0)
		return -EBADF;
	char buf[4096];
	long got;
	while ((got = co_getdents(dirfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < got;) {
			struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *e =
				(void *)(buf + off);
			off += e->reclen;
			if (e->name[0] < '0' || e->name[0] > '9')
				continue;
			int r = fn((int)co_strtoul(e->name, 0, 10), arg);
			if (r)
				return r;
		}
	}
	return got < 0 ? (int)got : 0;
}

struct numbers {
	int *out;
	int n, max;
};

static int add_number(int num, void *arg)
{
	struct numbers *a = arg;
	if (a->n == a->max)
		return -E2BIG;
	a->out[a->n++] = num;
	return 0;
}

int co_dir_numbers(int dirfd, int *out, int max)
{
	struct numbers a = { out, 0, max };
	int r = co_dir_each(dirfd, add_number, &a);
	if (r)
		return r;
	int n = a.n;
	for (int i = 1; i < n; i++) /* insertion sort: the kernel lists them nearly in order */
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

char co_proc_state(int pid, long *tracer)
{
	char path[64], buf[4096];
	co_fmt(path, sizeof(path), "/proc/%d/status", pid);
	*tracer = 0;
	if (co_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	long t = co_status_field(buf, "TracerPid");
	*tracer = t > 0 ? t : 0;
	return co_status_state(buf);
}

char co_status_state(const char *buf)
{
	const char *v = co_status_value(buf, "State");
	return v ? *v : 0;
}

struct waiting {
	const char *fn;
	int pid;
};

/* Is thread tid (of w->pid) asleep in w->fn?  Its tid then, else 0 */
static int thread_waits(int tid, void *arg)
{
	struct waiting *w = arg;
	char path[64], buf[128];
	co_fmt(path, sizeof(path), "/proc/%d/task/%d/wchan", w->pid, tid);
	long got = co_read_small(path, buf, sizeof(buf));
	return got > 0 && co_startswith(buf, w->fn) ? tid : 0;
}

static int process_waits(int pid, void *arg)
{
	struct waiting *w = arg;
	w->pid = pid;
	int r = each_entry(pid, "task", thread_waits, w);
	return r > 0 ? r : 0; /* a process gone meanwhile is not waiting */
}

int co_task_waiting_in(int pid, int tid, const char *fn)
{
	struct waiting w = { fn, pid };
	return tid ? thread_waits(tid, &w) : process_waits(pid, &w);
}

int co_thread_waiting_in(const char *fn)
{
	struct waiting w = { fn, 0 };
	int dfd = (int)co_open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0)
		return dfd;
	int r = co_dir_each(dfd, process_waits, &w);
	co_close(dfd);
	return r;
}

/* ---- what a migration's target compares with its source (src/cli/receive.c) ---- */

long co_vdso_size(void)
{
	static struct co_maps m;
	struct co_mapent e;
	long size = -ENOENT;
	if (co_maps_open(&m, "/proc/self/maps") < 0)
		return -EIO;
	while (size < 0 && co_maps_next(&m, &e) == 1)
		if (co_strcmp(e.path, "[vdso]") == 0)
			size = (long)(e.end - e.start);
	co_maps_close(&m);
	return size;
}

long co_cpu_flags(char *buf, size_t n)
{
	long got = co_read_small("/proc/cpuinfo", buf, n);
	if (got < 0)
		return got;
	/* the first processor's "flags\t\t: fpu vme ..." line: every processor of x86 Linux has the same */
	for (char *p = buf; *p;) {
		char *eol = p;
		while (*eol && *eol != '\n')
			eol++;
		if (co_strncmp(p, "flags", 5) == 0 && (p[5] == ' ' || p[5] == '\t' || p[5] == ':')) {
			char *v = p + 5;
			while (*v == ' ' || *v == '\t' || *v == ':')
				v++;
			size_t len = (size_t)(eol - v);
			for (size_t i = 0; i < len; i++) /* forward: the line starts after buf */
				buf[i] = v[i];
			buf[len] = 0;
			return (long)len;
		}
		p = *eol ? eol + 1 : eol;
	}
	buf[0] = 0;
	return -ENOENT;
}
