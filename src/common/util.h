/*
 * util.h - freestanding helpers shared by the agent, the restorer and the
 * CLI: memory and string routines and a tiny printf-like formatter that
 * never allocates (usable with other threads parked holding libc locks).
 */
#ifndef COHORT_UTIL_H
#define COHORT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define CO_PAGE 4096UL
#define CO_PAGE_ALIGN(x) (((x) + CO_PAGE - 1) & ~(CO_PAGE - 1))
#define CO_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void co_memcpy(void *d, const void *s, size_t n);
void co_memset(void *d, int c, size_t n);
int co_memcmp(const void *a, const void *b, size_t n);
size_t co_strlen(const char *s);
int co_strcmp(const char *a, const char *b);
int co_strncmp(const char *a, const char *b, size_t n);
int co_startswith(const char *s, const char *prefix);
int co_endswith(const char *s, const char *suffix);
/* Copy at most n-1 bytes and terminate; returns the length copied. */
size_t co_strlcpy(char *d, const char *s, size_t n);

/* Parse an unsigned number in the given base; *end gets the first byte after it. */
unsigned long co_strtoul(const char *s, const char **end, int base);

/*
 * Format into buf (always terminated, truncated if needed).  Supports
 * %s %d %u %x %ld %lu %lx %c %% and %p.  Returns the length written.
 */
size_t co_vfmt(char *buf, size_t n, const char *fmt, va_list ap);
size_t co_fmt(char *buf, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Move descriptor fd (closed) to a new number far above the program's
 * (1000 and up, or just under a low RLIMIT_NOFILE); fd itself when that
 * fails, negative fd as given.  The agent keeps its own descriptors there.
 */
int co_fd_high(int fd);
/*
 * A new userfaultfd (flags: O_CLOEXEC, O_NONBLOCK), its API handshake done
 * with every one of features: its descriptor, or -errno (-EOPNOTSUPP: a
 * feature missing).  Where vm.unprivileged_userfaultfd forbids the system
 * call, through /dev/userfaultfd.  Not UFFD_USER_MODE_ONLY.
 */
long co_uffd_new(int flags, uint64_t features);

/* Format a message into err and return -1, for "return co_err(...)". */
/*
 * open(path, flags | O_NOFOLLOW, mode) for a file a restart writes or
 * creates where another user may have put a symbolic link: path must be
 * absolute, without "." or ".." components; the directories on the way
 * are followed through a link only when root or we own it; the last
 * component never (-ELOOP).  The descriptor, or -errno.
 */
long co_open_nofollow(const char *path, int flags, int mode);
int co_err(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
