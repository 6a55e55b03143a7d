/*
 * Helpers of the exactness test programs (tests/cases/exact_mem.sh):
 * page patterns, and what /proc/self/maps, smaps and pagemap say about an
 * address.  Each program includes it after common.h.
 */
#ifndef COHORT_TEST_EXACT_H
#define COHORT_TEST_EXACT_H

#include <limits.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#define PG 4096ul

/* The page pattern of (object, page, version): every 8 bytes differ. */
static inline uint64_t x_seed(uint64_t obj, uint64_t page, uint64_t ver)
{
	return t_mix((obj << 48) ^ (page << 16) ^ ver);
}

static inline void x_fill(void *p, uint64_t sd)
{
	uint64_t *w = p;

	for (size_t i = 0; i < PG / 8; i++)
		w[i] = sd ^ (i * 0x2545f4914f6cdd1dull);
}

/* First byte offset where page p differs from the pattern sd, or -1. */
static inline long x_diff(const void *p, uint64_t sd)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < PG / 8; i++)
		if (w[i] != (sd ^ (i * 0x2545f4914f6cdd1dull)))
			return (long)(i * 8);
	return -1;
}

/* First byte offset where p is not zero, or -1. */
static inline long x_nonzero(const void *p, size_t len)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len; i++)
		if (c[i])
			return (long)i;
	return -1;
}

/*
 * A /proc text file read whole at once, as a stream to parse: read through
 * stdio 4 KiB at a time, a program that looks at smaps at every step is
 * mostly in the middle of a read on a busy machine, and a checkpoint that
 * catches it there waits (and gives up after a second: the rest would be
 * other text after a restart).  Read in one go, the file is open for a
 * moment.  The next call reuses the buffer: fclose the stream first.
 */
static inline FILE *x_proc_fopen(const char *path)
{
	static char *buf;
	static size_t cap;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	for (;;) {
		if (len + 65536 > cap) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
			CHECK(buf, "no memory for %s", path);
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r >= 0, "read %s: %s", path, strerror(errno));
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = 0;
	return fmemopen(buf, len + 1, "r");
}

/* The /proc/meminfo field key ("Hugepagesize:"), in KiB (0: none). */
static inline size_t x_meminfo_kib(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	size_t v = 0, k = strlen(key);
	CHECK(f, "open /proc/meminfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, k))
			v = strtoul(line + k, NULL, 10);
	fclose(f);
	return v;
}

/*
 * The smaps line starting with key ("KernelPageSize:", "VmFlags:") of the
 * region holding addr, into line (PATH_MAX + 128 bytes); fails the program
 * when there is none.  Returns what follows the key.
 */
static inline char *x_smaps_line(const void *addr, const char *key, char *line)
{
	FILE *f = x_proc_fopen("/proc/self/smaps");
	int in = 0, found = 0;
	size_t k = strlen(key);
	CHECK(f, "open /proc/self/smaps: %s", strerror(errno));
	while (!found && fgets(line, PATH_MAX + 128, f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = s <= (unsigned long)addr && (unsigned long)addr < e;
			continue;
		}
		found = in && !strncmp(line, key, k);
	}
	fclose(f);
	CHECK(found, "no smaps %s for %p", key, addr);
	return line + k;
}

/* The smaps field key ("KernelPageSize:") of the region holding addr, in KiB. */
static inline long x_smaps_kib(const void *addr, const char *key)
{
	char line[PATH_MAX + 128];
	return strtol(x_smaps_line(addr, key, line), NULL, 10);
}

/* One line of /proc/self/maps: the one holding addr. */
struct x_map {
	unsigned long start, end, off, ino;
	unsigned int major, minor;
	char perms[5];
	char path[PATH_MAX];
};

static inline int x_maps_find(const void *addr, struct x_map *m)
{
	FILE *f = x_proc_fopen("/proc/self/maps");
	char line[PATH_MAX + 128];
	int found = 0;

	CHECK(f, "open /proc/self/maps: %s", strerror(errno));
	while (!found && fgets(line, sizeof(line), f)) {
		int n = 0;

		if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu %n", &m->start, &m->end, m->perms, &m->off,
			   &m->major, &m->minor, &m->ino, &n) < 7)
			continue;
		if (m->start <= (unsigned long)addr && (unsigned long)addr < m->end) {
			char *s = line + n;
			s[strcspn(s, "\n")] = 0;
			snprintf(m->path, sizeof(m->path), "%s", s);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

/* Number of lines of /proc/self/maps. */
static inline long x_maps_count(void)
{
	FILE *f = x_proc_fopen("/proc/self/maps");
	long n = 0;
	int c;

	CHECK(f, "open /proc/self/maps: %s", strerror(errno));
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Does the smaps VmFlags line of the region holding addr have code ("dd")? */
static inline int x_vmflag(const void *addr, const char *code)
{
	char line[PATH_MAX + 128];
	for (char *t = strtok(x_smaps_line(addr, "VmFlags:", line), " \n"); t; t = strtok(NULL, " \n"))
		if (strcmp(t, code) == 0)
			return 1;
	return 0;
}

/* The /proc/self/pagemap entry of addr (bit 56: mapped by this process only). */
static inline uint64_t x_pagemap(const void *addr)
{
	int fd = SYSCHK(open("/proc/self/pagemap", O_RDONLY));
	uint64_t e = 0;

	t_read_all(fd, &e, 8, (off_t)((unsigned long)addr / PG * 8));
	close(fd);
	return e;
}
#define X_PM_PRESENT (1ull << 63)
#define X_PM_EXCLUSIVE (1ull << 56)

/* Step lines: "step N ok", a pause between steps so that checkpoints fall inside. */
static inline void x_step(int s, long ms)
{
	printf("step %d ok\n", s);
	t_sleep_ms(ms);
}

#endif
