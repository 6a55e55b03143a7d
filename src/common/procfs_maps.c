/*
 * procfs_maps.c - /proc/PID/maps and smaps, read a line at a time into a
 * buffer of the caller's (struct co_maps): no allocation, so the agent
 * reads its memory map with the program parked and the restorer without
 * libc.  smaps adds what an image records of a region (its advice bits)
 * and what the tracking of written pages asks (Rss, huge pages).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
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
	/* format 8: KSM, locks (lf: MLOCK_ONFAULT), MAP_NORESERVE, MAP_GROWSDOWN (src/res/mem.c) */
	{ "mg", CO_VF_MERGEABLE }, { "lo", CO_VF_LOCKED }, { "lf", CO_VF_LOCKONFAULT },
	{ "nr", CO_VF_NORESERVE }, { "gd", CO_VF_GROWSDOWN },
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

int co_smaps_find(struct co_maps *m, const char *path, uint64_t start, struct co_mapent *e, struct co_smaps_info *si)
{
	int r = co_maps_open(m, path);
	if (r < 0)
		return r;
	while ((r = co_smaps_next(m, e, si)) == 1 && e->start < start)
		;
	co_maps_close(m);
	return r < 0 ? r : r == 1 && e->start == start;
}
