/*
 * procfs_mount.c - /proc/PID/mountinfo and /proc/PID/cgroup: where a
 * cgroup hierarchy, a mount or a filesystem is mounted, and the lines of
 * a process's cgroup file.
 */
#include <errno.h>
#include "procfs.h"
#include "procfs_text.h"
#include "sys.h"
#include "util.h"

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
		f[k] = co_word(p, &e);
		p = e;
	}
	return p;
}

/* The mount point f[4] of such a line into out: 0, or -ENOENT when it does not fit. */
static int mount_point(const char *point, char *out, size_t n)
{
	const char *pe;
	co_word(point, &pe);
	size_t len = (size_t)(pe - point);
	if (len >= n)
		return -ENOENT;
	co_memcpy(out, point, len);
	out[len] = 0;
	return 0;
}

/* One line of a mountinfo text: where it starts and ends, its first five fields, where the rest begins. */
struct mount_line {
	const char *start, *eol, *rest;
	const char *f[5];
};

/*
 * The mount point of the first line of the mountinfo file at path that
 * match(line, arg) accepts, into out: 0, or -ENOENT when none does (or it
 * does not fit).  One walk for every question asked of mountinfo.
 */
static int find_mount(const char *path, int (*match)(const struct mount_line *l, const void *arg), const void *arg,
		      char *out, size_t n)
{
	static char buf[65536];
	if (co_read_small(path, buf, sizeof(buf)) <= 0)
		return -ENOENT;
	for (const char *line = buf; *line;) {
		struct mount_line l = { .start = line, .eol = line };
		while (*l.eol && *l.eol != '\n')
			l.eol++;
		l.rest = mount_fields(line, l.f);
		if (match(&l, arg))
			return mount_point(l.f[4], out, n);
		line = *l.eol ? l.eol + 1 : l.eol;
	}
	return -ENOENT;
}

struct cgroup_want {
	const char *ctl;
	size_t ctl_len;
};

/* "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS...] - FSTYPE SOURCE SUPEROPTS": a whole hierarchy of w's controllers */
static int cgroup_line(const struct mount_line *l, const void *arg)
{
	const struct cgroup_want *w = arg;
	const char *dash = l->rest, *eol = l->eol, *const *f = l->f, *e;
	while (dash < eol && !(dash[0] == ' ' && dash[1] == '-' && dash[2] == ' '))
		dash++;
	if (dash >= eol)
		return 0;
	const char *type = co_word(dash + 3, &e), *type_end = e, *src_end, *opts;
	co_word(e, &src_end);
	opts = co_word(src_end, &e);
	size_t tlen = (size_t)(type_end - type);
	int v2 = tlen == 7 && !co_memcmp(type, "cgroup2", 7), v1 = tlen == 6 && !co_memcmp(type, "cgroup", 6);
	return f[3][0] == '/' && f[3][1] == ' ' &&
	       (w->ctl_len ? v1 && has_all(opts, (size_t)(e - opts), w->ctl, w->ctl_len) : v2);
}

int co_cgroup_mount(const char *ctl, size_t ctl_len, char *out, size_t n)
{
	struct cgroup_want w = { ctl, ctl_len };
	return find_mount("/proc/self/mountinfo", cgroup_line, &w, out, n);
}

/* "ID PARENT MAJ:MIN ROOT POINT ...": the mount of that ID */
static int id_line(const struct mount_line *l, const void *arg)
{
	return co_strtoul(l->start, 0, 10) == *(const uint32_t *)arg;
}

int co_mount_point_by_id(int pid, uint32_t mnt_id, char *out, size_t n)
{
	char path[64];
	co_fmt(path, sizeof(path), "/proc/%d/mountinfo", pid);
	/* the mount point as the process sees it */
	return find_mount(path, id_line, &mnt_id, out, n);
}

/* "ID PARENT MAJ:MIN ROOT POINT ...": a mount of the root of filesystem want (MAJ:MIN): every inode is under it */
static int dev_line(const struct mount_line *l, const void *arg)
{
	const char *want = arg, *const *f = l->f;
	size_t wlen = co_strlen(want);
	return !co_memcmp(f[2], want, wlen) && f[2][wlen] == ' ' && f[3][0] == '/' && f[3][1] == ' ';
}

int co_dev_mount(unsigned major, unsigned minor, char *out, size_t n)
{
	char want[32];
	co_fmt(want, sizeof(want), "%u:%u", major, minor);
	return find_mount("/proc/self/mountinfo", dev_line, want, out, n);
}
