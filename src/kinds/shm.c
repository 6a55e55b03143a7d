/*
 * shm.c - shared memory: memfds the processes hold as descriptors, and
 * shared memory they only map (shmem, SysV, /dev/zero, deleted files),
 * found in /proc/PID/maps.  Dump: the object's size, its data (holes
 * skipped), and for a memfd what memfd_create made it with: its name,
 * mode, seals (CO_R_SHM, then CO_R_SHMDATA runs); a held memfd has one
 * CO_R_SHM per open file description (kcmp), the first of its inode
 * carrying the object, each other one only a description of it (the
 * deleted files of file.c do the same).  Restore: one memfd per object,
 * named as it was; the plan names it (CO_PLAN_SHM) for the restorers'
 * mappings (src/res/mem.c); each description is opened again through
 * /proc/self/fd with its own flags and offset and handed to its holders.
 * Mode and seals go on once every record is read (restore_done).  The
 * scan of every process's maps also refuses memory of the huge page pool
 * (hugetlb), shared or private, and copies the files mapped writable.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "procfs.h"
#include "util.h"

/* (kernel 6.3; older headers lack them) */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

/*
 * Objects written in this dump (d->nshm), by device and inode: each once,
 * whether held or only mapped; and the files mapped writable, copied once.
 */
static uint64_t shm_dev[CO_MAX_REFS], shm_ino[CO_MAX_REFS];
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
 * The name a memfd was given, from its link or maps path "/memfd:NAME
 * (deleted)" (a memfd never has a link): 1, or 0 when path is not a
 * memfd's.
 */
static int memfd_name(const char *path, char *name, size_t n)
{
	if (!co_startswith(path, "/memfd:"))
		return 0;
	size_t l = strlen(path + 7);
	if (co_endswith(path, " (deleted)"))
		l -= 10;
	if (l >= n)
		return 0;
	memcpy(name, path + 7, l);
	name[l] = 0;
	return 1;
}

/*
 * What memfd_create made the object with, as far as fd (an open file of
 * it; -1: none, it is read through /proc/PID/mem) shows it: its name
 * (from link), mode and seals.  MFD_NOEXEC_SEAL shows as F_SEAL_EXEC on a
 * mode without x bits; made so again (or made executable, then given its
 * mode, then sealed: the same), F_SEAL_EXEC adds no write seal, as it
 * would on an executable one.
 */
static void shm_fill(struct co_shm *sh, int fd, const char *link)
{
	struct stat st;
	int seals = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
	if (seals >= 0) {
		sh->sealing = 1;
		sh->seals = (uint32_t)seals;
	}
	if (!memfd_name(link, sh->mname, sizeof(sh->mname)))
		return; /* other shared memory: made as before */
	sh->known = CO_SHM_NAMED;
	if (fd < 0 || fstat(fd, &st) < 0)
		return;
	sh->known |= CO_SHM_MODE;
	sh->mode = st.st_mode & 07777;
	if (seals >= 0 && (seals & F_SEAL_EXEC) && !(sh->mode & 0111))
		sh->mfd = MFD_NOEXEC_SEAL;
}

static int write_rec(struct co_writer *w, const struct co_shm *sh)
{
	return co_w_rec(w, CO_R_SHM, sh, offsetof(struct co_shm, mname) + strlen(sh->mname) + 1);
}

/* The record of object e (sh: the description it is, or none; the rest filled here), size set. */
static int write_head(struct co_writer *w, const struct co_mapent *e, int fd, const char *link, struct co_shm *sh)
{
	sh->dev = e->dev;
	sh->ino = e->ino;
	snprintf(sh->name, sizeof(sh->name), "%s", e->path);
	shm_fill(sh, fd, link);
	return write_rec(w, sh);
}

/*
 * A shared memory object from fd, an open map_files or fd entry of it.
 * sh: the description it is (or none), the rest filled here; link: the
 * object's path as its /proc link shows it (not escaped, as maps does a
 * name's new lines).
 */
static int write_shm_from(struct co_writer *w, int fd, const struct co_mapent *e, const char *link, struct co_shm *sh)
{
	struct stat st;
	sh->size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	write_head(w, e, fd, link, sh);
	return co_write_runs(w, CO_R_SHMDATA, fd, 0, 0, sh->size);
}

/*
 * The windows the group's shared mappings show of object e, through
 * /proc/PID/mem: with size, only how far the farthest reaches (size's
 * maximum); else their data (co_write_runs), each window once per mapping
 * (several of one part hold the same bytes).  0, or -1.
 */
static int each_window(struct co_kdump *d, const struct co_mapent *e, uint64_t *size)
{
	static struct co_maps maps;
	static struct co_mapent x;
	char p[64];
	int bad = 0;
	for (int i = 0; i < d->nmembers && !bad; i++) {
		int mem = -1;
		snprintf(p, sizeof(p), "/proc/%d/maps", d->members[i].host_pid);
		if (co_maps_open(&maps, p))
			continue;
		while (!bad && co_maps_next(&maps, &x) == 1) {
			uint64_t end = x.off + (x.end - x.start);
			if (!x.shared || x.dev != e->dev || x.ino != e->ino)
				continue;
			if (size) {
				*size = end > *size ? end : *size;
				continue;
			}
			if (mem < 0) {
				snprintf(p, sizeof(p), "/proc/%d/mem", d->members[i].host_pid);
				mem = open(p, O_RDONLY | O_CLOEXEC);
			}
			bad = mem < 0 || co_write_runs(d->w, CO_R_SHMDATA, mem, x.start, x.off, end) < 0;
		}
		co_maps_close(&maps);
		if (mem >= 0)
			close(mem);
	}
	return bad ? -1 : 0;
}

/*
 * A shared memory object no process holds, read through its mappings
 * (/proc/PID/mem): its size as far as the farthest mapping reaches, its
 * data what any mapping shows (one mapping may show only a part).
 */
static int write_shm_windows(struct co_kdump *d, const struct co_mapent *e, const char *link, struct co_shm *sh)
{
	sh->size = 0;
	if (each_window(d, e, &sh->size) < 0 || write_head(d->w, e, -1, link, sh) < 0)
		return -1;
	return each_window(d, e, NULL);
}

/*
 * Is the memfd on hugetlbfs (made with MFD_HUGETLB)?  Such a one takes
 * huge pages from the pool, which a restart may not have, its size in
 * whole huge pages, its data written through a mapping (pwrite cannot):
 * cohort does not make one again.  fd: an open file of it; -1 (read
 * through /proc/PID/mem): dev, from maps, is not the device every other
 * memfd is on.
 */
static int on_hugetlb(int fd, uint64_t dev)
{
	static uint64_t shmem_dev;
	static int probed;
	struct statfs fs;
	struct stat st;
	if (fd >= 0)
		return fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC;
	if (!probed) {
		int m = (int)syscall(SYS_memfd_create, "cohort-probe", MFD_CLOEXEC);
		if (m >= 0 && fstat(m, &st) == 0)
			shmem_dev = co_maps_dev(major(st.st_dev), minor(st.st_dev)), probed = 1;
		if (m >= 0)
			close(m);
	}
	return probed && dev != shmem_dev;
}

/*
 * A shared mapping with no descriptor left: /proc/PID/map_files needs
 * CAP_CHECKPOINT_RESTORE in the first user namespace, which a group
 * started without privileges lacks; /proc/PID/mem reads the same memory
 * through the mapping (a memfd's mode and seals are then not known: it
 * is made as before, with its name).  0, or -1 with err filled.
 */
static int write_shm_mapped(struct co_kdump *d, const struct co_shared_member *m, const struct co_mapent *e,
			    int *future)
{
	char src[64], link[CO_PATH];
	snprintf(src, sizeof(src), "/proc/%d/map_files/%lx-%lx", (int)m->host_pid, (unsigned long)e->start,
		 (unsigned long)e->end);
	int fd = open(src, O_RDONLY | O_CLOEXEC), open_err = errno, r = -1;
	ssize_t l = fd >= 0 ? readlink(src, link, sizeof(link) - 1) : -1;
	if (l > 0)
		link[l] = 0;
	else
		snprintf(link, sizeof(link), "%s", e->path);
	struct co_shm sh;
	memset(&sh, 0, sizeof(sh));
	if (fd >= 0) {
		r = write_shm_from(d->w, fd, e, link, &sh);
		close(fd);
	} else if (open_err == EPERM) {
		r = write_shm_windows(d, e, link, &sh);
	}
	if (r < 0)
		snprintf(d->err, d->errlen, "pid %d: cannot read shared memory %s", m->pid, e->path);
	*future = sh.sealing && (sh.seals & F_SEAL_FUTURE_WRITE);
	return r;
}

/* 0: not written yet; 1: written; 2: written, and sealed with F_SEAL_FUTURE_WRITE */
static int seen(const struct co_kdump *d, uint64_t dev, uint64_t ino)
{
	for (int k = 0; k < d->nshm; k++)
		if (shm_dev[k] == dev && shm_ino[k] == ino)
			return 1 + shm_future[k];
	return 0;
}

/* The object dev, ino written (or copied): 0, or -1 when the table is full (err filled). */
static int remember(struct co_kdump *d, uint64_t dev, uint64_t ino, int future)
{
	if (d->nshm == CO_MAX_REFS) {
		snprintf(d->err, d->errlen, "more than %d shared memory objects and files mapped writable",
			 CO_MAX_REFS);
		return -1;
	}
	shm_dev[d->nshm] = dev;
	shm_ino[d->nshm] = ino;
	shm_future[d->nshm++] = (uint8_t)(future != 0);
	return 0;
}

/* The checkpoint stops: "pid P: fd N: /memfd:NAME (deleted) WHY". */
static int shm_refuse(struct co_kdump *d, const struct co_ref *r, const char *why)
{
	snprintf(d->err, d->errlen, "pid %d: fd %d: %s %s", r->pid, r->fd, r->path, why);
	return -1;
}

/*
 * One open file description of a memfd some process holds (or a message
 * in flight): the first of its inode also carries the object, read
 * through a description of our own (the program's offset stays).
 */
static int shm_dump(struct co_kdump *d, int first, uint64_t *id)
{
	const struct co_ref *r = &d->refs[first];
	struct co_shm sh;
	memset(&sh, 0, sizeof(sh));
	sh.id = *id = (uint64_t)first + 1;
	sh.same_as = co_ref_maker(d, first);
	sh.pos = r->pos;
	sh.oflags = r->flags;
	if (sh.same_as) {
		sh.dev = r->dev;
		sh.ino = r->ino;
		snprintf(sh.name, sizeof(sh.name), "%s", r->path);
		return write_rec(d->w, &sh) ? -1 : 1;
	}
	struct co_mapent e;
	char src[128];
	memset(&e, 0, sizeof(e));
	e.dev = r->dev;
	e.ino = r->ino;
	snprintf(e.path, sizeof(e.path), "%s", r->path);
	snprintf(src, sizeof(src), "/proc/%d/fd/%d", r->host, r->fd);
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && on_hugetlb(fd, 0)) {
		close(fd);
		return shm_refuse(d, r, "is a memfd on hugetlbfs (MFD_HUGETLB), which cohort cannot restore");
	}
	if (fd < 0 || write_shm_from(d->w, fd, &e, r->path, &sh) < 0) {
		if (fd >= 0)
			close(fd);
		return shm_refuse(d, r, "cannot be read");
	}
	close(fd);
	return remember(d, r->dev, r->ino, sh.sealing && (sh.seals & F_SEAL_FUTURE_WRITE)) ? -1 : 1;
}

static int shm_path(const char *p)
{
	return !strcmp(p, "/dev/zero (deleted)") || !strncmp(p, "/memfd:", 7) || !strncmp(p, "/SYSV", 5) ||
	       (p[0] == '/' && co_endswith(p, " (deleted)"));
}

/*
 * Memory of the hugetlb pool: anonymous (MAP_HUGETLB), a memfd made with
 * MFD_HUGETLB, a SysV segment made with SHM_HUGETLB (these two on
 * hugetlbfs, not on the device of every other memfd and segment).  A
 * restart would need the pool's pages, and would make it as memory of
 * 4 KiB pages: refused, shared or private.
 */
static int huge_pages(const struct co_mapent *e)
{
	return !strcmp(e->path, "/anon_hugepage (deleted)") ||
	       ((co_startswith(e->path, "/memfd:") || co_startswith(e->path, "/SYSV")) && on_hugetlb(-1, e->dev));
}

int co_shm_hugetlb_at(uint64_t start)
{
	static struct co_maps m;
	static struct co_mapent e;
	int r = co_maps_open(&m, "/proc/self/maps");
	if (r < 0)
		return r;
	int found = 0, huge = 0;
	while (!found && co_maps_next(&m, &e) == 1)
		if (e.start == start)
			found = 1, huge = huge_pages(&e);
	co_maps_close(&m);
	return found ? huge : -ENOENT;
}

/*
 * Can mprotect make region e of m writable (smaps VmFlags mw)?  Read only
 * for the rare region that needs it (smaps walks the page tables of every
 * region); unknown: it can.
 */
static int may_write(const struct co_shared_member *m, const struct co_mapent *e)
{
	static struct co_maps sm;
	static struct co_mapent se;
	struct co_smaps_info si;
	char p[64];
	if (e->prot & PROT_WRITE)
		return 1;
	snprintf(p, sizeof(p), "/proc/%d/smaps", m->host_pid);
	return co_smaps_find(&sm, p, e->start, &se, &si) != 1 || (si.advice & CO_VF_MAYWRITE);
}

static int region_refuse(struct co_kdump *d, const struct co_shared_member *m, const struct co_mapent *e,
			 const char *why)
{
	snprintf(d->err, d->errlen, "pid %d: region %lx-%lx: %s %s, which cohort cannot restore", m->pid,
		 (unsigned long)e->start, (unsigned long)e->end, e->path, why);
	return -1;
}

/*
 * One region of member m: the object it maps written once, by device and
 * inode (whichever mapping of it comes first: the object is read whole,
 * or through every mapping of it), a file mapped writable copied once (by
 * its first writable mapping: a read-only one before it leaves it to
 * that one, which once left it uncopied).  0, or -1 with err filled.
 */
static int dump_mapping(struct co_kdump *d, const struct co_shared_member *m, const struct co_mapent *e)
{
	if (huge_pages(e))
		return region_refuse(d, m, e, "is huge page memory (hugetlb)");
	/* the agent's own shared mappings (process table, page lists) are not the program's */
	if (!e->shared || co_startswith(e->path, "/memfd:cohort-agent-"))
		return 0;
	/* a SysV segment is the group's IPC namespace's, made once with its id (sysv.c) */
	if (co_startswith(e->path, "/SYSV"))
		return 0;
	/* an aio ring is its process's (the agent's CO_R_AIO record, or private memory: mem.c) */
	if (!strcmp(e->path, CO_AIO_RING_NAME))
		return 0;
	int s = seen(d, e->dev, e->ino), future = 0;
	if (!s && shm_path(e->path)) {
		if (write_shm_mapped(d, m, e, &future) < 0 || remember(d, e->dev, e->ino, future) < 0)
			return -1;
		s = 1 + future;
	} else if (!s && e->path[0] == '/' && (e->prot & PROT_WRITE)) {
		if (co_file_copy(d, e->path) < 0) {
			snprintf(d->err, d->errlen, "pid %d: cannot copy %s", m->pid, e->path);
			return -1;
		}
		return remember(d, e->dev, e->ino, 0);
	}
	/* the seal comes back before the restorer maps: a mapping that is or may become writable cannot be made again */
	if (s == 2 && (e->prot & PROT_WRITE))
		return region_refuse(d, m, e, "is mapped writable and sealed with F_SEAL_FUTURE_WRITE");
	if (s == 2 && may_write(m, e))
		return region_refuse(d, m, e, "is mapped where mprotect can make it writable and sealed with "
				     "F_SEAL_FUTURE_WRITE");
	return 0;
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
		int bad = 0;
		while (!bad && co_maps_next(&maps, &e) == 1)
			bad = dump_mapping(d, &m[i], &e) < 0;
		co_maps_close(&maps);
		if (bad)
			return -1;
	}
	return 0;
}

/*
 * A format-8 object in init's table of made objects: by the id of the
 * description that made it (0: shared memory only mapped).  No link names
 * this kind: links name the descriptions (CO_OBJ_SHM, by id), or in older
 * images the object (CO_OBJ_SHM, by inode).
 */
#define SHM_OBJECT (CO_OBJ_SHM | 0x10000u)

/* The object being filled by the CO_R_SHMDATA records after its CO_R_SHM. */
static int cur_shm = -1;
/* The objects made, with the mode and seals each gets once filled (a write seal would stop the filling). */
static struct {
	int fd;
	uint32_t sealing, seals;
	uint32_t moded, mode;
} made[CO_MAX_REFS];
static int nmade;

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

/*
 * memfd_create as the object was made: its name; executable or not as
 * recorded (MFD_EXEC asked for, where vm.memfd_noexec would make it
 * MFD_NOEXEC_SEAL otherwise; a kernel before 6.3 knows neither, and makes
 * every memfd executable).  Older records: "cohort-shm", as before.
 */
static int shm_create(const struct co_shm *s)
{
	const char *name = (s->known & CO_SHM_NAMED) ? s->mname : "cohort-shm";
	unsigned fl = s->sealing ? MFD_ALLOW_SEALING : 0;
	if (s->known & CO_SHM_MODE)
		fl |= (s->mfd & MFD_NOEXEC_SEAL) ? MFD_NOEXEC_SEAL : MFD_EXEC;
	int f = (int)syscall(SYS_memfd_create, name, fl);
	if (f < 0 && errno == EINVAL && (fl & MFD_EXEC))
		f = (int)syscall(SYS_memfd_create, name, fl & ~MFD_EXEC);
	return f;
}

/* A description of the object made on obj (-1: missing), with its own flags and offset, for its holders. */
static int shm_desc(struct co_krestore *x, const struct co_shm *s, int obj)
{
	if (obj < 0)
		return co_kbad(x, "shared memory description %llu refers to a missing one (%llu)",
			       (unsigned long long)s->id, (unsigned long long)s->same_as);
	if (s->pos > INT64_MAX)
		return co_kbad(x, "shared memory description %llu at offset %llu", (unsigned long long)s->id,
			       (unsigned long long)s->pos);
	int f = co_reopen(obj, s->oflags, (int64_t)s->pos);
	if (f < 0)
		return co_kerr(x, "cannot open %s again (flags %o, offset %llu): %s", s->name, s->oflags,
			       (unsigned long long)s->pos, strerror(errno));
	return co_made_add(x, CO_OBJ_SHM, s->id, f, -1, 0);
}

/* The object of a record: made, sized, kept for its data, mode and seals, and named in the plan; its fd or -1. */
static int shm_make(struct co_krestore *x, const struct co_shm *s, int v8)
{
	if (s->mfd & ~MFD_NOEXEC_SEAL)
		return co_kbad(x, "shared memory with unknown memfd flags %#x", s->mfd);
	if (nmade == CO_MAX_REFS)
		return co_kbad(x, "more than %d shared memory objects", CO_MAX_REFS);
	int f = shm_create(s);
	if (f < 0 || ftruncate(f, (off_t)s->size) < 0) {
		int e = errno;
		if (f >= 0)
			close(f);
		return co_kerr(x, "cannot make shared memory %s of %llu bytes again: %s", s->name,
			       (unsigned long long)s->size, strerror(e));
	}
	cur_shm = f;
	made[nmade++] = (typeof(made[0])){ f, s->sealing, s->seals, s->known & CO_SHM_MODE, s->mode & 07777 };
	struct co_plan_ent pe = { .kind = CO_PLAN_SHM, .src = f, .dev = s->dev, .ino = s->ino };
	/* what links name: in older images the object by its inode */
	if (co_made_add(x, v8 ? SHM_OBJECT : CO_OBJ_SHM, v8 ? s->id : s->ino, f, -1, 0) < 0 ||
	    co_plan_add(x, &pe) < 0)
		return -1;
	return f;
}

static int shm_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	if (type == CO_R_SHMDATA)
		return co_read_run(x, cur_shm, p, len, "shared memory");
	struct co_shm s = { 0 };
	memcpy(&s, p, len < sizeof(s) ? len : sizeof(s)); /* older records end before the seals, or the name */
	s.name[sizeof(s.name) - 1] = 0;
	s.mname[sizeof(s.mname) - 1] = 0;
	int v8 = len > offsetof(struct co_shm, known);
	if (s.same_as) {
		cur_shm = -1; /* no data follows a description */
		return shm_desc(x, &s, co_made_fd(x, SHM_OBJECT, s.same_as, 0));
	}
	int f = shm_make(x, &s, v8);
	if (f < 0)
		return -1;
	return s.id ? shm_desc(x, &s, f) : 0;
}

/*
 * Once every description is open (a reopen through /proc/self/fd asks the
 * mode: a read-write description of a 0400 memfd would need
 * CAP_DAC_OVERRIDE): each object's mode, then its seals (F_SEAL_EXEC keeps
 * the x bits as they are; added on an executable one, it adds the write
 * seals).
 */
static int shm_restore_done(struct co_krestore *x)
{
	for (int i = 0; i < nmade; i++) {
		if (made[i].moded && fchmod(made[i].fd, made[i].mode) < 0)
			return co_kerr(x, "cannot give shared memory its mode %o again: %s", made[i].mode, strerror(errno));
		if (made[i].sealing && made[i].seals && fcntl(made[i].fd, F_ADD_SEALS, (int)made[i].seals) < 0)
			return co_kerr(x, "cannot seal shared memory again (seals %#x): %s", made[i].seals,
				       strerror(errno));
	}
	nmade = 0;
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
	s.mname[sizeof(s.mname) - 1] = 0;
	char seals[48] = "", memfd[320] = "", desc[96] = "";
	if (s.id)
		snprintf(desc, sizeof(desc), "description %llu flags %o pos %llu, ", (unsigned long long)s.id, s.oflags,
			 (unsigned long long)s.pos);
	if (s.same_as) {
		snprintf(out, n, "%sof the object of %llu, inode %llu", desc, (unsigned long long)s.same_as,
			 (unsigned long long)s.ino);
		return;
	}
	if (s.sealing)
		snprintf(seals, sizeof(seals), ", seals %#x", s.seals);
	if (s.known & CO_SHM_NAMED)
		snprintf(memfd, sizeof(memfd), ", memfd '%s'", s.mname);
	if (s.known & CO_SHM_MODE)
		snprintf(memfd + strlen(memfd), sizeof(memfd) - strlen(memfd), " mode %o%s", s.mode,
			 (s.mfd & MFD_NOEXEC_SEAL) ? " MFD_NOEXEC_SEAL" : "");
	snprintf(out, n, "%sinode %llu, %llu bytes %s%s%s", desc, (unsigned long long)s.ino, (unsigned long long)s.size,
		 s.name, seals, memfd);
}

const struct co_kind_ops co_shm_ops = {
	.kind = CO_OBJ_SHM, .identity = CO_ID_OPENFILE,
	.dump = shm_dump, .restore = shm_restore, .restore_done = shm_restore_done, .describe = shm_describe,
};
