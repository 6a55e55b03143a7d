/* procfs.c - /proc parsing for the agent, the restorer and the CLI. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "procfs.h"
#include "sys.h"
#include "util.h"

uint64_t co_maps_dev(uint64_t major, uint64_t minor)
{
	return (major << 8) | minor;
}

int co_maps_open(struct co_maps *m, const char *path)
{
	m->fd = (int)co_open(path, O_RDONLY | O_CLOEXEC, 0);
	m->kept = 0;
	m->len = m->pos = 0;
	m->eof = 0;
	return m->fd < 0 ? m->fd : 0;
}

int co_maps_reread(struct co_maps *m, int fd)
{
	long r = co_lseek(fd, 0, SEEK_SET);
	m->fd = r < 0 ? -1 : fd;
	m->kept = 1;
	m->len = m->pos = 0;
	m->eof = 0;
	return r < 0 ? (int)r : 0;
}

void co_maps_close(struct co_maps *m)
{
	if (m->fd >= 0 && !m->kept)
		co_close(m->fd);
	m->fd = -1;
}

/* Make sure a whole line is buffered; returns its length or 0 at the end. */
static size_t fill_line(struct co_maps *m)
{
	for (;;) {
		for (size_t i = m->pos; i < m->len; i++)
			if (m->buf[i] == '\n')
				return i - m->pos + 1;
		if (m->eof)
			return m->len - m->pos;
		/* compact and read more */
		co_memcpy(m->buf, m->buf + m->pos, m->len - m->pos);
		m->len -= m->pos;
		m->pos = 0;
		if (m->len == sizeof(m->buf))
			return m->len; /* absurdly long line: take it as is */
		long r = co_read(m->fd, m->buf + m->len, sizeof(m->buf) - m->len);
		if (r <= 0)
			m->eof = 1;
		else
			m->len += r;
	}
}

int co_maps_next(struct co_maps *m, struct co_mapent *e)
{
	size_t n = fill_line(m);
	if (!n)
		return 0;
	const char *p = m->buf + m->pos, *end = p + n;
	m->pos += n;

	e->start = co_strtoul(p, &p, 16);
	e->end = co_strtoul(p + 1, &p, 16);
	p++;
	e->prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) |
		  (p[2] == 'x' ? PROT_EXEC : 0);
	e->shared = p[3] == 's';
	p += 5;
	e->off = co_strtoul(p, &p, 16);
	uint64_t maj = co_strtoul(p + 1, &p, 16);
	uint64_t min = co_strtoul(p + 1, &p, 16);
	e->dev = co_maps_dev(maj, min);
	e->ino = co_strtoul(p + 1, &p, 10);
	while (p < end && *p == ' ')
		p++;
	size_t len = end - p;
	if (len && p[len - 1] == '\n')
		len--;
	if (len >= sizeof(e->path))
		len = sizeof(e->path) - 1;
	co_memcpy(e->path, p, len);
	e->path[len] = 0;
	return 1;
}

/* "Key:   123 kB" at p (n bytes): 1 and its number when the line has that key */
static int smaps_field(const char *p, size_t n, const char *key, uint64_t *out)
{
	size_t k = co_strlen(key);
	if (n <= k || co_memcmp(p, key, k))
		return 0;
	const char *q = p + k;
	while (q < p + n && *q == ' ')
		q++;
	*out = co_strtoul(q, 0, 10);
	return 1;
}

/* The VmFlags a region gets from madvise(2), as smaps names them (proc(5)), and "may write". */
static const struct { char code[3]; uint32_t flag; } advice_codes[] = {
	{ "dc", CO_VF_DONTFORK }, { "wf", CO_VF_WIPEONFORK }, { "dd", CO_VF_DONTDUMP },
	{ "hg", CO_VF_HUGEPAGE }, { "nh", CO_VF_NOHUGEPAGE }, { "sr", CO_VF_SEQUENTIAL },
	{ "rr", CO_VF_RANDOM }, { "mw", CO_VF_MAYWRITE },
};

/* The advice bits of a "VmFlags: rd wr mr mw me dc" line of n bytes. */
static uint32_t parse_vmflags(const char *p, size_t n)
{
	uint32_t flags = 0;
	for (size_t i = 8; i + 2 <= n; i++) {
		if (p[i] == ' ' || p[i] == '\n')
			continue;
		for (size_t k = 0; k < CO_ARRAY_LEN(advice_codes); k++)
			if (p[i] == advice_codes[k].code[0] && p[i + 1] == advice_codes[k].code[1])
				flags |= advice_codes[k].flag;
		i += 2; /* past the code and the blank after it */
	}
	return flags;
}

int co_smaps_next(struct co_maps *m, struct co_mapent *e, struct co_smaps_info *si)
{
	int r = co_maps_next(m, e);
	si->rss_kib = si->anon_huge_kib = 0;
	si->thp_eligible = 0;
	si->advice = 0;
	if (r != 1)
		return r;
	/* "Key: value" lines (a capital first) up to VmFlags, the last; a header line is the next region's */
	for (size_t n; (n = fill_line(m)) != 0 && m->buf[m->pos] >= 'A' && m->buf[m->pos] <= 'Z';) {
		const char *p = m->buf + m->pos;
		m->pos += n;
		uint64_t v;
		if (smaps_field(p, n, "Rss:", &v))
			si->rss_kib = v;
		else if (smaps_field(p, n, "AnonHugePages:", &v))
			si->anon_huge_kib = v;
		else if (smaps_field(p, n, "THPeligible:", &v))
			si->thp_eligible = v != 0;
		else if (n >= 8 && co_strncmp(p, "VmFlags:", 8) == 0) {
			si->advice = parse_vmflags(p, n);
			break;
		}
	}
	return 1;
}

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

static const char *status_value(const char *buf, const char *key)
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

static const char *word(const char *p, const char **end);

int co_cgroup_next(const char **p, struct co_cgline *l)
{
	const char *s = *p;
	if (!*s)
		return 0;
	const char *c1 = s;
	while (*c1 && *c1 != ':' && *c1 != '\n')
		c1++;
	const char *c2 = *c1 == ':' ? c1 + 1 : c1;
	while (*c2 && *c2 != ':' && *c2 != '\n')
		c2++;
	if (*c1 != ':' || *c2 != ':')
		return -EINVAL;
	const char *e = c2 + 1;
	while (*e && *e != '\n')
		e++;
	*l = (struct co_cgline){ c1 + 1, c2 + 1, (size_t)(c2 - c1 - 1), (size_t)(e - c2 - 1) };
	*p = *e ? e + 1 : e;
	return 1;
}

/* Whether the comma-separated list opts holds every item of the comma-separated ctl. */
static int has_all(const char *opts, size_t olen, const char *ctl, size_t clen)
{
	for (size_t i = 0; i < clen;) {
		size_t j = i;
		while (j < clen && ctl[j] != ',')
			j++;
		int found = 0;
		for (size_t a = 0; a < olen && !found;) {
			size_t b = a;
			while (b < olen && opts[b] != ',')
				b++;
			found = b - a == j - i && !co_memcmp(opts + a, ctl + i, j - i);
			a = b + 1;
		}
		if (!found)
			return 0;
		i = j + 1;
	}
	return 1;
}

/*
 * The first five fields of a /proc/self/mountinfo line ("ID PARENT
 * MAJ:MIN ROOT POINT ..."), into f; returns where the rest begins.
 */
static const char *mount_fields(const char *line, const char *f[5])
{
	const char *p = line, *e = line;
	for (int k = 0; k < 5; k++) {
		f[k] = word(p, &e);
		p = e;
	}
	return p;
}

/* The mount point f[4] of such a line into out: 0, or -ENOENT when it does not fit. */
static int mount_point(const char *point, char *out, size_t n)
{
	const char *pe;
	word(point, &pe);
	size_t len = (size_t)(pe - point);
	if (len >= n)
		return -ENOENT;
	co_memcpy(out, point, len);
	out[len] = 0;
	return 0;
}

int co_cgroup_mount(const char *ctl, size_t ctl_len, char *out, size_t n)
{
	static char buf[65536];
	if (co_read_small("/proc/self/mountinfo", buf, sizeof(buf)) <= 0)
		return -ENOENT;
	/* "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS...] - FSTYPE SOURCE SUPEROPTS" */
	for (const char *line = buf; *line;) {
		const char *eol = line, *f[5], *e;
		while (*eol && *eol != '\n')
			eol++;
		const char *dash = mount_fields(line, f);
		while (dash < eol && !(dash[0] == ' ' && dash[1] == '-' && dash[2] == ' '))
			dash++;
		if (dash < eol) {
			const char *type = word(dash + 3, &e), *type_end = e, *src_end, *opts;
			word(e, &src_end);
			opts = word(src_end, &e);
			size_t tlen = (size_t)(type_end - type);
			int v2 = tlen == 7 && !co_memcmp(type, "cgroup2", 7), v1 = tlen == 6 && !co_memcmp(type, "cgroup", 6);
			if (f[3][0] == '/' && f[3][1] == ' ' && (ctl_len ? v1 && has_all(opts, (size_t)(e - opts), ctl, ctl_len) : v2))
				return mount_point(f[4], out, n);
		}
		line = *eol ? eol + 1 : eol;
	}
	return -ENOENT;
}

uint64_t co_status_hex(const char *buf, const char *key)
{
	const char *v = status_value(buf, key);
	return v ? co_strtoul(v, 0, 16) : 0;
}

long co_status_field(const char *buf, const char *key)
{
	const char *v = status_value(buf, key);
	return v ? (long)co_strtoul(v, 0, 10) : -1;
}

long co_status_umask(const char *buf)
{
	const char *v = status_value(buf, "Umask");
	return v ? (long)co_strtoul(v, 0, 8) : -1;
}

/* Last number of a line like "NSpid:\t7\t2": the innermost namespace's. */
static long last_number(const char *buf, const char *key)
{
	const char *v = status_value(buf, key);
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
	const char *st = status_value(buf, "State");
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
	const char *v = status_value(buf, key);
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

/* The next space-separated word at p: its start; *end past it. */
static const char *word(const char *p, const char **end)
{
	while (*p == ' ' || *p == '\t')
		p++;
	const char *e = p;
	while (*e && *e != ' ' && *e != '\t' && *e != '\n')
		e++;
	*end = e;
	return p;
}

/*
 * One "lock:\t1: POSIX  ADVISORY  WRITE 1234 08:01:1234 0 EOF" line (p
 * after "lock:") into l: 0, or -ENOTSUP with the kind's name in *other.
 */
static int parse_lock(const char *p, int fd, struct co_lock *l, const char **other)
{
	static const struct { const char *name; uint32_t kind; } kinds[] = {
		{ "POSIX", CO_LK_POSIX }, { "FLOCK", CO_LK_FLOCK }, { "OFDLCK", CO_LK_OFD },
	};
	static char name[16];
	const char *e, *w = word(p, &e); /* "1:" */
	w = word(e, &e);
	co_memset(l, 0, sizeof(*l));
	l->fd = fd;
	for (unsigned i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if ((size_t)(e - w) == co_strlen(kinds[i].name) && !co_strncmp(w, kinds[i].name, (size_t)(e - w)))
			l->kind = kinds[i].kind;
	if (!l->kind) {
		size_t n = (size_t)(e - w) < sizeof(name) - 1 ? (size_t)(e - w) : sizeof(name) - 1;
		co_memcpy(name, w, n);
		name[n] = 0;
		*other = name;
		return -ENOTSUP;
	}
	word(e, &e);		/* ADVISORY */
	w = word(e, &e);	/* READ or WRITE */
	l->write = *w == 'W';
	word(e, &e);		/* pid */
	word(e, &e);		/* device:inode */
	w = word(e, &e);
	l->start = co_strtoul(w, 0, 10);
	w = word(e, &e);
	l->len = *w == 'E' ? 0 : co_strtoul(w, 0, 10) - l->start + 1; /* "EOF": to the end */
	return 0;
}

int co_fdinfo_locks(int pid, int fd, uint64_t *pos, uint32_t *flags, struct co_lock *locks, int max, int *nlocks,
		    const char **other)
{
	char path[64], buf[4096];
	if (pid)
		co_fmt(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	else
		co_fmt(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	long got = co_read_small(path, buf, sizeof(buf));
	if (got <= 0)
		return -EBADF;
	long v = co_status_field(buf, "pos");
	*pos = v < 0 ? 0 : (uint64_t)v;
	const char *f = status_value(buf, "flags");
	if (!f)
		return -EIO;
	*flags = (uint32_t)co_strtoul(f, 0, 8); /* octal */
	if (!locks)
		return 0;
	*nlocks = 0;
	for (const char *p = buf; *p;) {
		if (co_startswith(p, "lock:")) {
			if (*nlocks == max)
				return -E2BIG;
			int r = parse_lock(p + 5, fd, &locks[*nlocks], other);
			if (r)
				return r;
			*nlocks += 1;
		}
		while (*p && *p != '\n')
			p++;
		p += *p == '\n';
	}
	/* a full buffer may have cut the list short */
	return (size_t)got + 1 >= sizeof(buf) ? -E2BIG : 0;
}

/*
 * The process a pidfd of this process refers to, as its fdinfo's "Pid:"
 * line tells it in the namespace of this /proc: its pid; 0: a process
 * outside that namespace; -1: one that has ended and been reaped (a
 * zombie still has its pid).  -errno when it cannot be read.
 */
int co_fdinfo_pidfd(int fd, int *pid)
{
	char path[64], buf[1024];
	co_fmt(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (co_read_small(path, buf, sizeof(buf)) <= 0)
		return -EBADF;
	const char *v = status_value(buf, "Pid");
	if (!v)
		return -EIO;
	*pid = *v == '-' ? -(int)co_strtoul(v + 1, 0, 10) : (int)co_strtoul(v, 0, 10);
	return 0;
}

int co_fdinfo(int pid, int fd, uint64_t *pos, uint32_t *flags)
{
	return co_fdinfo_locks(pid, fd, pos, flags, NULL, 0, NULL, NULL);
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
	const char *v = status_value(buf, "State");
	return v ? *v : 0;
}

/* "key:VALUE" within the line [p, eol), VALUE in base; 0 when absent */
static uint64_t line_hex(const char *p, const char *eol, const char *key)
{
	size_t klen = co_strlen(key);
	for (p++; p + klen <= eol; p++)
		if ((p[-1] == ' ' || p[-1] == '\t') && !co_memcmp(p, key, klen))
			return co_strtoul(p + klen, 0, 16);
	return 0;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "f_handle:HEX" within the line [s, eol) into h (at most n bytes): how many */
static uint32_t line_handle(const char *s, const char *eol, uint8_t *h, size_t n)
{
	uint32_t got = 0;
	while (s < eol && !co_startswith(s, "f_handle:"))
		s++;
	if (s < eol)
		for (s += 9; s + 1 < eol && got < n; s += 2) {
			int a = hex_digit(s[0]), b = hex_digit(s[1]);
			if (a < 0 || b < 0)
				break;
			h[got++] = (uint8_t)(a << 4 | b);
		}
	return got;
}

int co_inotify_next(const char **p, struct co_inotify_line *l)
{
	const char *s = *p;
	for (;;) {
		const char *eol = s;
		while (*eol && *eol != '\n')
			eol++;
		if (!co_startswith(s, "inotify wd:")) {
			if (!*eol)
				return 0;
			s = eol + 1;
			continue;
		}
		co_memset(l, 0, sizeof(*l));
		/* every number of the line is hexadecimal, wd too */
		l->wd = (int)co_strtoul(s + 11, 0, 16);
		l->ino = line_hex(s, eol, "ino:");
		l->sdev = (uint32_t)line_hex(s, eol, "sdev:");
		l->mask = (uint32_t)line_hex(s, eol, "mask:");
		l->handle_type = (int)line_hex(s, eol, "fhandle-type:");
		l->handle_bytes = line_handle(s, eol, l->handle, sizeof(l->handle));
		*p = *eol ? eol + 1 : eol;
		return 1;
	}
}

/*
 * fs/notify/fdinfo.c: "fanotify flags:F event-flags:E", then a line per
 * mark, "fanotify ino:I sdev:D mflags:M mask:K ignored_mask:G
 * fhandle-bytes:B fhandle-type:T f_handle:HEX", "fanotify mnt_id:N mflags:
 * ..." , "fanotify sdev:D mflags: ..." or (6.14 and later) "fanotify
 * mnt_ns:N mflags: ..." (N decimal, the namespace's inode).  Any other
 * "fanotify " line is a mark cohort does not know.
 */
int co_fanotify_next(const char **p, struct co_fanotify_line *l)
{
	const char *s = *p;
	for (;;) {
		const char *eol = s;
		while (*eol && *eol != '\n')
			eol++;
		if (!co_startswith(s, "fanotify ")) {
			if (!*eol)
				return 0;
			s = eol + 1;
			continue;
		}
		co_memset(l, 0, sizeof(*l));
		const char *f = s + 9;
		l->what = co_startswith(f, "flags:") ? CO_FAN_GROUP
			  : co_startswith(f, "ino:") ? CO_FAN_INODE
			  : co_startswith(f, "mnt_id:") ? CO_FAN_MOUNT
			  : co_startswith(f, "sdev:") ? CO_FAN_FILESYSTEM
			  : co_startswith(f, "mnt_ns:") ? CO_FAN_MNTNS : CO_FAN_UNKNOWN;
		if (l->what == CO_FAN_MNTNS)
			l->mnt_ns = co_strtoul(f + 7, 0, 10);
		/* line_hex looks after a blank: the first field too */
		l->flags = (uint32_t)line_hex(s, eol, "flags:");
		l->event_flags = (uint32_t)line_hex(s, eol, "event-flags:");
		l->ino = line_hex(s, eol, "ino:");
		l->sdev = (uint32_t)line_hex(s, eol, "sdev:");
		l->mnt_id = (uint32_t)line_hex(s, eol, "mnt_id:");
		l->mflags = (uint32_t)line_hex(s, eol, "mflags:");
		l->mask = line_hex(s, eol, "mask:");
		l->ignored = line_hex(s, eol, "ignored_mask:");
		l->handle_type = (int)line_hex(s, eol, "fhandle-type:");
		l->handle_bytes = line_handle(s, eol, l->handle, sizeof(l->handle));
		size_t len = (size_t)(eol - s) < sizeof(l->text) - 1 ? (size_t)(eol - s) : sizeof(l->text) - 1;
		co_memcpy(l->text, s, len);
		l->text[len] = 0;
		*p = *eol ? eol + 1 : eol;
		return 1;
	}
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

int co_mount_point_by_id(int pid, uint32_t mnt_id, char *out, size_t n)
{
	static char buf[65536];
	char path[64];
	co_fmt(path, sizeof(path), "/proc/%d/mountinfo", pid);
	if (co_read_small(path, buf, sizeof(buf)) <= 0)
		return -ENOENT;
	/* "ID PARENT MAJ:MIN ROOT POINT ...": the mount point as the process sees it */
	for (const char *line = buf; *line;) {
		const char *eol = line, *f[5];
		while (*eol && *eol != '\n')
			eol++;
		mount_fields(line, f);
		if (co_strtoul(line, 0, 10) == mnt_id)
			return mount_point(f[4], out, n);
		line = *eol ? eol + 1 : eol;
	}
	return -ENOENT;
}

int co_dev_mount(unsigned major, unsigned minor, char *out, size_t n)
{
	static char buf[65536];
	char want[32];
	co_fmt(want, sizeof(want), "%u:%u", major, minor);
	size_t wlen = co_strlen(want);
	if (co_read_small("/proc/self/mountinfo", buf, sizeof(buf)) <= 0)
		return -ENOENT;
	/* "ID PARENT MAJ:MIN ROOT POINT ...": a mount of the filesystem's root, so that every inode is under it */
	for (const char *line = buf; *line;) {
		const char *eol = line, *f[5];
		while (*eol && *eol != '\n')
			eol++;
		mount_fields(line, f);
		if (!co_memcmp(f[2], want, wlen) && f[2][wlen] == ' ' && f[3][0] == '/' && f[3][1] == ' ')
			return mount_point(f[4], out, n);
		line = *eol ? eol + 1 : eol;
	}
	return -ENOENT;
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
