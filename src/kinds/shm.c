/*
 * shm.c - shared memory: memfds the processes hold as descriptors (one
 * object per inode), and shared memory they only map (shmem, SysV,
 * /dev/zero, deleted files), found in /proc/PID/maps.  Dump: the object's
 * size and its data, holes skipped (CO_R_SHM, then CO_R_SHMDATA runs).
 * Restore: one memfd per object; the plan names it (CO_PLAN_SHM) for the
 * restorers' mappings (src/res/mem.c) and as the descriptor of holders.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "procfs.h"
#include "util.h"

/* Objects written in this dump (d->nshm), by inode: each once, whether held or only mapped. */
static uint64_t shm_ino[CO_MAX_REFS];
/* of them, the memfds sealed with F_SEAL_FUTURE_WRITE (their seals come back before any mapping) */
static uint8_t shm_future[CO_MAX_REFS];

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
 * Bytes [from, size) of fd as records of type (u64 offset, then bytes):
 * from a file (mem_at 0), its holes skipped (SEEK_DATA, SEEK_HOLE); from
 * fd = /proc/PID/mem, where offset from is mapped at mem_at, which cannot
 * show the holes, leaving out the pages that read as zeros.
 */
int co_write_runs(struct co_writer *w, unsigned type, int fd, uint64_t mem_at, uint64_t from, uint64_t size)
{
	static char buf[1 << 20];
	for (off_t off = (off_t)from; off < (off_t)size;) {
		off_t data = mem_at ? off : lseek(fd, off, SEEK_DATA);
		if (data < 0)
			break;
		off_t hole = mem_at ? (off_t)size : lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > (off_t)size)
			hole = (off_t)size;
		for (off_t at = data; at < hole;) {
			size_t n = (size_t)(hole - at) < sizeof(buf) ? (size_t)(hole - at) : sizeof(buf);
			ssize_t k = pread(fd, buf, n, mem_at ? (off_t)(mem_at + (uint64_t)at - from) : at);
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
					co_w_begin(w, type, sizeof(o) + (uint64_t)(q - p), 1);
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
	return w->err ? -1 : 0;
}

/*
 * A shared memory object: from fd, an open map_files or fd entry of it
 * (mem_at 0), or from fd = /proc/PID/mem, where the object is mapped at
 * mem_at with e->off as its offset (co_write_runs).
 */
static int write_shm_from(struct co_writer *w, int fd, uint64_t mem_at, const struct co_mapent *e)
{
	struct stat st;
	uint64_t size = mem_at ? e->off + (e->end - e->start) : (fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0);
	struct co_shm sh = { .dev = e->dev, .ino = e->ino, .size = size };
	/* a memfd's seals (through /proc/PID/mem there is no file to ask) */
	int seals = mem_at ? -1 : fcntl(fd, F_GET_SEALS);
	if (seals >= 0) {
		sh.sealing = 1;
		sh.seals = (uint32_t)seals;
	}
	snprintf(sh.name, sizeof(sh.name), "%s", e->path);
	co_w_rec(w, CO_R_SHM, &sh, sizeof(sh));
	return co_write_runs(w, CO_R_SHMDATA, fd, mem_at, mem_at ? e->off : 0, size);
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

/* 0: not written yet; 1: written; 2: written, and sealed with F_SEAL_FUTURE_WRITE */
static int seen(const struct co_kdump *d, uint64_t ino)
{
	for (int k = 0; k < d->nshm; k++)
		if (shm_ino[k] == ino)
			return 1 + shm_future[k];
	return 0;
}

/* A memfd some process holds: read through its /proc fd entry. */
static int shm_dump(struct co_kdump *d, int first, uint64_t *id)
{
	const struct co_ref *r = &d->refs[first];
	struct co_mapent e;
	char src[128];
	memset(&e, 0, sizeof(e));
	e.dev = r->dev;
	e.ino = r->ino;
	snprintf(e.path, sizeof(e.path), "%s", r->path);
	snprintf(src, sizeof(src), "/proc/%d/fd/%d", r->host, r->fd);
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || write_shm_from(d->w, fd, 0, &e) < 0) {
		if (fd >= 0)
			close(fd);
		snprintf(d->err, d->errlen, "pid %d: fd %d: cannot read %s", r->pid, r->fd, r->path);
		return -1;
	}
	int seals = fcntl(fd, F_GET_SEALS);
	close(fd);
	if (d->nshm < CO_MAX_REFS) {
		shm_future[d->nshm] = seals > 0 && (seals & F_SEAL_FUTURE_WRITE);
		shm_ino[d->nshm++] = r->ino;
	}
	*id = r->ino;
	return 1;
}

static int shm_path(const char *p)
{
	return !strcmp(p, "/dev/zero (deleted)") || !strncmp(p, "/memfd:", 7) || !strncmp(p, "/SYSV", 5) ||
	       (p[0] == '/' && co_endswith(p, " (deleted)"));
}

int co_shm_dump_mappings(struct co_kdump *d, const struct co_shared_member *m, int n)
{
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
			/* a SysV segment is the group's IPC namespace's, made once with its id (sysv.c) */
			if (co_startswith(e.path, "/SYSV"))
				continue;
			/* an aio ring is its process's (the agent's CO_R_AIO record, or private memory: mem.c) */
			if (!strcmp(e.path, CO_AIO_RING_NAME))
				continue;
			int s = seen(d, e.ino);
			/* the seal comes back before the restorer maps: a writable mapping could not be made again */
			if (s == 2 && (e.prot & PROT_WRITE)) {
				snprintf(d->err, d->errlen, "pid %d: region %lx-%lx: %s is mapped writable and sealed with "
					 "F_SEAL_FUTURE_WRITE, which cohort cannot restore", m[i].pid, (unsigned long)e.start,
					 (unsigned long)e.end, e.path);
				co_maps_close(&maps);
				return -1;
			}
			if (s || d->nshm == CO_MAX_REFS)
				continue;
			shm_future[d->nshm] = 0;
			shm_ino[d->nshm++] = e.ino;
			int bad = 0;
			if (shm_path(e.path)) {
				bad = write_shm_mapped(d->w, m[i].host_pid, &e) < 0;
				if (bad)
					snprintf(d->err, d->errlen, "pid %d: cannot read shared memory %s", m[i].pid, e.path);
			} else if (e.path[0] == '/' && (e.prot & PROT_WRITE)) {
				bad = co_file_copy(d, e.path) < 0;
				if (bad)
					snprintf(d->err, d->errlen, "pid %d: cannot copy %s", m[i].pid, e.path);
			}
			if (bad) {
				co_maps_close(&maps);
				return -1;
			}
		}
		co_maps_close(&maps);
	}
	return 0;
}

/* The object being filled by the CO_R_SHMDATA records after its CO_R_SHM. */
static int cur_shm = -1;
/* The objects made, with the seals each gets once filled (a write seal would stop the filling). */
static struct {
	int fd;
	uint32_t seals;
} sealed[CO_MAX_REFS];
static int nsealed;

int co_read_run(struct co_krestore *x, int fd, const void *p, uint64_t len, const char *what)
{
	uint64_t off;
	memcpy(&off, p, sizeof(off));
	if (fd < 0)
		return co_kbad(x, "%s data without its object", what);
	if (pwrite(fd, (const char *)p + 8, len - 8, (off_t)off) != (ssize_t)(len - 8))
		return co_kerr(x, "cannot write %s again: %s", what, strerror(errno));
	return 0;
}

static int shm_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	if (type == CO_R_SHMDATA)
		return co_read_run(x, cur_shm, p, len, "shared memory");
	struct co_shm s0 = { 0 };
	memcpy(&s0, p, len < sizeof(s0) ? len : sizeof(s0)); /* older records end before the seals */
	const struct co_shm *s = &s0;
	int f = (int)syscall(SYS_memfd_create, "cohort-shm", s->sealing ? MFD_ALLOW_SEALING : 0);
	if (f < 0 || ftruncate(f, (off_t)s->size) < 0)
		return co_kerr(x, "cannot make shared memory of %llu bytes: %s", (unsigned long long)s->size,
			       strerror(errno));
	cur_shm = f;
	if (s->sealing && s->seals && nsealed < CO_MAX_REFS)
		sealed[nsealed++] = (typeof(sealed[0])){ f, s->seals };
	struct co_plan_ent pe = { .kind = CO_PLAN_SHM, .src = f, .dev = s->dev, .ino = s->ino };
	if (co_made_add(x, CO_OBJ_SHM, s->ino, f, -1, 0) < 0 || co_plan_add(x, &pe) < 0)
		return -1;
	return 0;
}

static int shm_restore_done(struct co_krestore *x)
{
	for (int i = 0; i < nsealed; i++)
		if (fcntl(sealed[i].fd, F_ADD_SEALS, (int)sealed[i].seals) < 0)
			return co_kerr(x, "cannot seal shared memory again (seals %#x): %s", sealed[i].seals,
				       strerror(errno));
	nsealed = 0;
	return 0;
}

void co_describe_run(const void *p, uint64_t len, char *out, size_t n)
{
	uint64_t off;
	memcpy(&off, p, sizeof(off));
	snprintf(out, n, "%llu bytes at offset %llu", (unsigned long long)(len - 8), (unsigned long long)off);
}

static void shm_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	if (type == CO_R_SHMDATA) {
		co_describe_run(p, len, out, n);
		return;
	}
	struct co_shm s = { 0 };
	memcpy(&s, p, len < sizeof(s) ? len : sizeof(s));
	s.name[sizeof(s.name) - 1] = 0;
	char seals[48] = "";
	if (s.sealing)
		snprintf(seals, sizeof(seals), ", seals %#x", s.seals);
	snprintf(out, n, "inode %llu, %llu bytes %s%s", (unsigned long long)s.ino, (unsigned long long)s.size, s.name,
		 seals);
}

const struct co_kind_ops co_shm_ops = {
	.kind = CO_OBJ_SHM, .identity = CO_ID_INODE,
	.dump = shm_dump, .restore = shm_restore, .restore_done = shm_restore_done, .describe = shm_describe,
};
