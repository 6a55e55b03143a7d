/*
 * procfs_fdinfo.c - /proc/PID/fdinfo/FD: a descriptor's offset, flags and
 * locks, the process a pidfd refers to, the watches and marks of inotify
 * and fanotify descriptors and the items of epoll sets (their lines are
 * fields after blanks, read by line_hex, line_num and line_handle).
 */
#include <errno.h>
#include "procfs.h"
#include "procfs_text.h"
#include "sys.h"
#include "util.h"

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
	const char *e, *w = co_word(p, &e); /* "1:" */
	w = co_word(e, &e);
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
	co_word(e, &e);		/* ADVISORY */
	w = co_word(e, &e);	/* READ or WRITE */
	l->write = *w == 'W';
	co_word(e, &e);		/* pid */
	co_word(e, &e);		/* device:inode */
	w = co_word(e, &e);
	l->start = co_strtoul(w, 0, 10);
	w = co_word(e, &e);
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
	const char *f = co_status_value(buf, "flags");
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
	const char *v = co_status_value(buf, "Pid");
	if (!v)
		return -EIO;
	*pid = *v == '-' ? -(int)co_strtoul(v + 1, 0, 10) : (int)co_strtoul(v, 0, 10);
	return 0;
}

int co_fdinfo(int pid, int fd, uint64_t *pos, uint32_t *flags)
{
	return co_fdinfo_locks(pid, fd, pos, flags, NULL, 0, NULL, NULL);
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

/* The same where VALUE may follow the key after blanks (epoll pads its fields), in base */
static uint64_t line_num(const char *p, const char *eol, const char *key, int base)
{
	size_t klen = co_strlen(key);
	for (p++; p + klen <= eol; p++)
		if ((p[-1] == ' ' || p[-1] == '\t') && !co_memcmp(p, key, klen)) {
			for (p += klen; p < eol && (*p == ' ' || *p == '\t'); p++)
				;
			return co_strtoul(p, 0, base);
		}
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

/*
 * The next line at or after *p that starts with prefix: its start, its end
 * in *eol, and *p moved past it; NULL at the end of the text.
 */
static const char *next_line_with(const char **p, const char *prefix, const char **eol)
{
	const char *s = *p;
	for (;;) {
		const char *e = s;
		while (*e && *e != '\n')
			e++;
		if (co_startswith(s, prefix)) {
			*eol = e;
			*p = *e ? e + 1 : e;
			return s;
		}
		if (!*e)
			return NULL;
		s = e + 1;
	}
}

int co_inotify_next(const char **p, struct co_inotify_line *l)
{
	const char *eol, *s = next_line_with(p, "inotify wd:", &eol);
	if (!s)
		return 0;
	co_memset(l, 0, sizeof(*l));
	/* every number of the line is hexadecimal, wd too */
	l->wd = (int)co_strtoul(s + 11, 0, 16);
	l->ino = line_hex(s, eol, "ino:");
	l->sdev = (uint32_t)line_hex(s, eol, "sdev:");
	l->mask = (uint32_t)line_hex(s, eol, "mask:");
	l->handle_type = (int)line_hex(s, eol, "fhandle-type:");
	l->handle_bytes = line_handle(s, eol, l->handle, sizeof(l->handle));
	return 1;
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
	const char *eol, *s = next_line_with(p, "fanotify ", &eol);
	if (!s)
		return 0;
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
	return 1;
}

/*
 * fs/eventpoll.c: one line per item, "tfd: %8d events: %8x data: %16llx
 * pos:%lli ino:%lx sdev:%x" (tfd decimal, the rest hexadecimal).
 */
int co_epoll_next(const char **p, struct co_epoll_line *l)
{
	const char *eol, *s = next_line_with(p, "tfd:", &eol);
	if (!s)
		return 0;
	co_memset(l, 0, sizeof(*l));
	const char *v = s + 4;
	while (v < eol && (*v == ' ' || *v == '\t'))
		v++;
	const char *end;
	unsigned long tfd = co_strtoul(v, &end, 10);
	l->tfd = end > v && tfd <= 0x7fffffff ? (int)tfd : -1;
	l->events = (uint32_t)line_num(s, eol, "events:", 16);
	l->data = line_num(s, eol, "data:", 16);
	l->ino = line_num(s, eol, "ino:", 16);
	l->sdev = (uint32_t)line_num(s, eol, "sdev:", 16);
	return 1;
}
