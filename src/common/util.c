/* util.c - freestanding helpers; see util.h for why they exist. */
#include <errno.h>
#include <fcntl.h>
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "sys.h"
#include "util.h"

#ifndef O_PATH
#define O_PATH 010000000
#endif

int co_fd_high(int fd)
{
	if (fd < 0)
		return fd;
	struct rlimit rl;
	long min = 1000;
	if (co_prlimit(0, RLIMIT_NOFILE, 0, &rl) == 0 && rl.rlim_cur < 1100)
		min = (long)rl.rlim_cur - 24;
	long nfd = co_fcntl(fd, F_DUPFD_CLOEXEC, min < 3 ? 3 : min);
	if (nfd < 0)
		return fd;
	co_close(fd);
	return (int)nfd;
}

void co_memcpy(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;
	/* word copy when both are aligned: the restorer copies megabytes with it */
	if ((((uintptr_t)dp | (uintptr_t)sp) & 7) == 0) {
		for (; n >= 8; n -= 8, dp += 8, sp += 8)
			*(uint64_t *)dp = *(const uint64_t *)sp;
	}
	while (n--)
		*dp++ = *sp++;
}

/*
 * Word stores once aligned: the restorer clears the tail of every page map
 * it reads (co_r_payload: 64 KiB but the runs it holds), and byte by byte
 * a 1 GiB process's 284 maps took ~3 ms of a lazy restart's memory stage.
 */
void co_memset(void *d, int c, size_t n)
{
	unsigned char *dp = d;
	for (; n && ((uintptr_t)dp & 7); n--)
		*dp++ = (unsigned char)c;
	uint64_t w = 0x0101010101010101ULL * (unsigned char)c;
	for (; n >= 8; n -= 8, dp += 8)
		*(uint64_t *)(void *)dp = w;
	while (n--)
		*dp++ = (unsigned char)c;
}

int co_memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

size_t co_strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int co_strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (unsigned char)*a - (unsigned char)*b;
}

int co_strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (unsigned char)*a - (unsigned char)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

int co_startswith(const char *s, const char *prefix)
{
	return co_strncmp(s, prefix, co_strlen(prefix)) == 0;
}

int co_endswith(const char *s, const char *suffix)
{
	size_t a = co_strlen(s), b = co_strlen(suffix);
	return a >= b && co_strcmp(s + a - b, suffix) == 0;
}

size_t co_strlcpy(char *d, const char *s, size_t n)
{
	size_t i = 0;
	if (!n)
		return 0;
	for (; i + 1 < n && s[i]; i++)
		d[i] = s[i];
	d[i] = 0;
	return i;
}

unsigned long co_strtoul(const char *s, const char **end, int base)
{
	unsigned long v = 0;
	for (;; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (d >= base)
			break;
		v = v * base + d;
	}
	if (end)
		*end = s;
	return v;
}

struct out {
	char *buf;
	size_t n, len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->n)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct out *o, unsigned long v, int base, int neg)
{
	char tmp[24];
	int i = 0;
	if (neg)
		put(o, '-');
	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (i)
		put(o, tmp[--i]);
}

size_t co_vfmt(char *buf, size_t n, const char *fmt, va_list ap)
{
	struct out o = { buf, n, 0 };
	for (; *fmt; fmt++) {
		int lng = 0;
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		while (*fmt == 'l' || *fmt == 'z') {
			lng = 1;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			while (*s)
				put(&o, *s++);
			break;
		}
		case 'd': {
			long v = lng ? va_arg(ap, long) : va_arg(ap, int);
			put_num(&o, v < 0 ? -(unsigned long)v : (unsigned long)v, 10, v < 0);
			break;
		}
		case 'u':
			put_num(&o, lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 10, 0);
			break;
		case 'x':
			put_num(&o, lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 16, 0);
			break;
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_num(&o, (unsigned long)va_arg(ap, void *), 16, 0);
			break;
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case '%':
			put(&o, '%');
			break;
		default:
			put(&o, '?');
			break;
		}
	}
	if (n)
		buf[o.len < n ? o.len : n - 1] = 0;
	return o.len < n ? o.len : (n ? n - 1 : 0);
}

size_t co_fmt(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t r = co_vfmt(buf, n, fmt, ap);
	va_end(ap);
	return r;
}

int co_err(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	co_vfmt(err, n, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * One component of a path being walked: a directory, through a symbolic
 * link only when root or we own the link (as fs.protected_symlinks has
 * it: a link another user planted in a shared directory is not followed).
 */
static long walk_dir(int dfd, const char *name)
{
	long fd = co_openat(dfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd != -ELOOP && fd != -ENOTDIR)
		return fd;
	struct stat st;
	if (co_sys4(SYS_newfstatat, dfd, CO_L(name), CO_L(&st), AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
		return fd;
	if (st.st_uid != 0 && st.st_uid != (uid_t)co_sys0(SYS_geteuid))
		return -ELOOP;
	return co_openat(dfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
}

long co_open_nofollow(const char *path, int flags, int mode)
{
	char comp[256];
	if (path[0] != '/')
		return -EINVAL;
	long dfd = co_open("/", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	const char *p = path;
	while (dfd >= 0) {
		while (*p == '/')
			p++;
		size_t n = 0;
		while (p[n] && p[n] != '/')
			n++;
		if (n == 0 || n >= sizeof(comp)) {
			co_close((int)dfd);
			return n ? -ENAMETOOLONG : -EISDIR;
		}
		co_memcpy(comp, p, n);
		comp[n] = 0;
		if (!co_strcmp(comp, ".") || !co_strcmp(comp, "..")) {
			co_close((int)dfd);
			return -EINVAL; /* a path the group had is never that */
		}
		p += n;
		while (*p == '/')
			p++;
		long next = *p ? walk_dir((int)dfd, comp)
			       : co_openat((int)dfd, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
		co_close((int)dfd);
		if (!*p || next < 0)
			return next;
		dfd = next;
	}
	return dfd;
}

long co_uffd_new(int flags, uint64_t features)
{
	long fd = co_sys1(SYS_userfaultfd, flags);
	if (fd == -EPERM) { /* vm.unprivileged_userfaultfd 0: /dev/userfaultfd, where the user may open it */
		long dev = co_open("/dev/userfaultfd", O_RDWR | O_CLOEXEC, 0);
		fd = dev < 0 ? dev : co_sys3(SYS_ioctl, dev, USERFAULTFD_IOC_NEW, flags);
		if (dev >= 0)
			co_close((int)dev);
	}
	if (fd < 0)
		return fd;
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	long r = co_sys3(SYS_ioctl, fd, UFFDIO_API, (long)&api);
	if (r < 0 || (api.features & features) != features) {
		co_close((int)fd);
		return r < 0 ? r : -EOPNOTSUPP;
	}
	return fd;
}
