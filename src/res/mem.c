/*
 * mem.c - the address space's regions.  Dump: list the regions from
 * /proc/self/maps (smaps when their madvise flags matter) and decide how
 * each is saved: private anonymous memory and the copied-on-write pages
 * of private file mappings go into the image (pages.c writes them; the
 * rest of a file mapping comes back from the file), shared memory into
 * the group's shared.img.  Restore: unmap all that is not the restorer,
 * move the kernel's special mappings ([vdso], [vvar], ...) to their
 * recorded places, map every region at its address, have pages.c read
 * the pages straight into place, then give each region its protections
 * and madvise flags back.  A process forked from its restored parent
 * keeps the parent's memory where it shared pages with it copy-on-write
 * at the checkpoint (find_kept).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "agent/dirty.h"
#include "agent/manager.h"
#include "kinds/classify.h"
#include "procfs.h"
#include "res.h"
#include "helper.h"
#include "sys.h"
#include "util.h"


#ifndef COHORT_RESTORER
static struct co_vma vmas[CO_MAX_VMAS];
/* what the files mapped were (image.h: struct co_fstamp), in the order of vmas */
static struct co_fstamp stamps[CO_MAX_VMAS];
/* what smaps said of the flags of vmas[i] (co_smaps_info.advice), read or known (see co_mem_collect) */
static uint32_t vadvice[CO_MAX_VMAS];

static int skipped(struct co_dumpctx *d, uint64_t start)
{
	for (int i = 0; i < d->nskip; i++)
		if (start >= d->skip_lo[i] && start < d->skip_hi[i])
			return 1;
	return 0;
}

/*
 * A SysV shm segment comes back attached with shmat (map_region), which
 * maps it whole: a region that is only part of its attachment (after an
 * mprotect or munmap of part of it) is refused.  The region's inode is
 * the segment's id.
 */
static int sysv_whole(struct co_dumpctx *d, const struct co_mapent *e)
{
	struct shmid_ds ds;
	long r = co_sys3(SYS_shmctl, (long)e->ino, IPC_STAT, (long)&ds);
	uint64_t len = (ds.shm_segsz + CO_PAGE - 1) & ~(uint64_t)(CO_PAGE - 1);
	if (r < 0)
		return DERR(d, "pid %d: region %lx-%lx: cannot read sysv shm segment %lu (errno %ld)", d->pid,
			    (unsigned long)e->start, (unsigned long)e->end, (unsigned long)e->ino, -r);
	if (e->off || e->end - e->start != len)
		return DERR(d, "pid %d: region %lx-%lx is part of sysv shm segment %lu attached at %lx: cohort restores "
			    "only whole attachments", d->pid, (unsigned long)e->start, (unsigned long)e->end,
			    (unsigned long)e->ino, (unsigned long)(e->start - e->off));
	return 0;
}

/* Decide how a region is saved and restored. */
static int classify(struct co_dumpctx *d, const struct co_mapent *e, struct co_vma *v)
{
	const char *p = e->path;
	v->start = e->start;
	v->end = e->end;
	v->pgoff = e->off;
	v->prot = e->prot;
	v->flags = e->shared ? CO_VF_SHARED : 0;
	v->dev = e->dev;
	v->ino = e->ino;
	co_strlcpy(v->path, p, sizeof(v->path));
	if (!p[0] || co_startswith(p, "[anon:")) {
		v->kind = e->shared ? CO_V_SHANON : CO_V_ANON;
	} else if (co_startswith(p, "[heap]")) {
		v->kind = CO_V_ANON;
		v->flags |= CO_VF_HEAP;
	} else if (co_startswith(p, "[stack")) {
		v->kind = CO_V_ANON;
		v->flags |= CO_VF_STACK | (co_strcmp(p, "[stack]") == 0 ? CO_VF_GROWSDOWN : 0);
	} else if (p[0] == '[') {
		v->kind = CO_V_SPECIAL;
	} else if (co_strcmp(p, CO_AIO_RING_NAME) == 0) {
		/*
		 * io_setup's ring: made again at its address from its record
		 * (src/agent/aio.c reads it, src/res/aio.c).  A process forked
		 * from one with a context has only a copy of the ring's memory,
		 * which it can read and nothing more: it comes back as private
		 * memory with that content.
		 */
		v->kind = co_aio_ring_kind(e->start);
		if (v->kind != CO_V_AIO)
			v->flags &= ~(uint32_t)CO_VF_SHARED;
	} else if (p[0] != '/') {
		return DERR(d, "pid %d: region %lx-%lx: unsupported mapping of %s", d->pid,
			    (unsigned long)e->start, (unsigned long)e->end, p);
	} else if (co_strcmp(p, "/secretmem (deleted)") == 0 && e->shared) {
		/* memfd_secret(2): its pages cannot be read, ours neither (src/res/files.c) */
		return DERR(d, "pid %d: region %lx-%lx: secret memory (memfd_secret) cannot be saved", d->pid,
			    (unsigned long)e->start, (unsigned long)e->end);
	} else if (co_endswith(p, " (deleted)") || co_startswith(p, "/memfd:") ||
		   co_startswith(p, "/SYSV")) {
		/* the file cannot be opened again: its content goes into the image */
		v->kind = e->shared ? CO_V_SHANON : CO_V_DELETED;
		if (e->shared && co_startswith(p, "/SYSV"))
			return sysv_whole(d, e);
	} else if (co_startswith(p, "/dev/") && e->ino && co_strcmp(p, "/dev/zero") != 0 &&
		   !co_startswith(p, "/dev/shm/")) {
		/* (POSIX shared memory in /dev/shm is files, reopened by path like any other) */
		return DERR(d, "pid %d: region %lx-%lx: unsupported device mapping %s", d->pid,
			    (unsigned long)e->start, (unsigned long)e->end, p);
	} else {
		v->kind = CO_V_FILE;
	}
	return 0;
}

/*
 * A shared file mapping, or shared memory (not a SysV segment: attached
 * again read-only as it was), without PROT_WRITE: only smaps says whether
 * mprotect may make it writable.
 */
static int needs_maywrite(const struct co_vma *v)
{
	return (v->kind == CO_V_FILE || (v->kind == CO_V_SHANON && !co_startswith(v->path, "/SYSV"))) &&
	       (v->flags & CO_VF_SHARED) && !(v->prot & PROT_WRITE);
}

/*
 * What the file of region n is now, for the restart to map the same file
 * (struct co_fstamp): its size and mtime, when the path leads to the
 * inode maps names (the path is the group's: root.c).  Not a file the
 * region may write (shared, writable now or after an mprotect): the
 * checkpoint copies it (src/kinds/shm.c) and a restart puts it back,
 * times and all, before anything maps it; nor one the kernel makes (a
 * sysfs file mapped).  The regions of one file come one after the other
 * (a library's four): one stat for them.
 */
static void stamp_region(int n)
{
	const struct co_vma *v = &vmas[n], *prev = n ? &vmas[n - 1] : 0;
	struct co_fstamp *s = &stamps[n];
	struct stat st;
	co_memset(s, 0, sizeof(*s));
	if (v->kind != CO_V_FILE || ((v->flags & CO_VF_SHARED) && ((v->prot & PROT_WRITE) || (v->flags & CO_VF_MAYWRITE))) ||
	    co_path_kernel_made(v->path))
		return;
	if (prev && stamps[n - 1].recorded && prev->dev == v->dev && prev->ino == v->ino &&
	    co_strcmp(prev->path, v->path) == 0) {
		*s = stamps[n - 1];
		return;
	}
	if (co_sys4(SYS_newfstatat, AT_FDCWD, (long)v->path, (long)&st, 0) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_ino != v->ino)
		return; /* (another inode: the file was moved or replaced since it was mapped; no check) */
	*s = (struct co_fstamp){ 1, 0, (uint64_t)st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_dev,
				 st.st_ino };
}

/*
 * Region v's flags from what smaps said of it (advice: CO_VF_ADVICE and
 * CO_VF_MAYWRITE bits; from_smaps 0: maps was read, which says nothing of
 * them, and *want_smaps is set where only smaps can tell).
 */
static void vma_flags(struct co_vma *v, uint32_t advice, int from_smaps, int *want_smaps)
{
	if (v->kind != CO_V_SPECIAL) /* the kernel's own mappings come back as this kernel makes them */
		v->flags |= advice & CO_VF_VMFLAGS;
	if (needs_maywrite(v)) {
		/* (a file mapping says it may, shared memory that it may not: what older images lack comes back as then) */
		if (v->kind == CO_V_FILE)
			v->flags |= advice & CO_VF_MAYWRITE;
		else if (from_smaps && !(advice & CO_VF_MAYWRITE))
			v->flags |= CO_VF_NOMAYWRITE;
		*want_smaps |= !from_smaps;
	}
}

/*
 * One pass over maps (smaps = 0) or smaps; sets *want_smaps when maps did
 * not say all that is needed.  smaps is read when the program has set
 * madvise flags (agent.h), which only smaps shows.  With a snapshot this
 * runs before any lean snapshot marks stretches MADV_DONTFORK (dirty_lean.c):
 * the flags read here are the program's own.
 */
static int collect(struct co_dumpctx *d, int smaps, int *want_smaps)
{
	static struct co_maps m;
	static struct co_mapent e;
	const char *path = smaps ? "/proc/self/smaps" : "/proc/self/maps";
	struct co_smaps_info si = { 0 };
	int n = 0, r;
	if (co_maps_open(&m, path))
		return DERR(d, "pid %d: cannot read %s", d->pid, path);
	while ((r = smaps ? co_smaps_next(&m, &e, &si) : co_maps_next(&m, &e)) == 1) {
		if (co_strcmp(e.path, "[vsyscall]") == 0 || skipped(d, e.start))
			continue;
		if (n == CO_MAX_VMAS) {
			co_maps_close(&m);
			return DERR(d, "pid %d: more than %d memory regions", d->pid, CO_MAX_VMAS);
		}
		if (classify(d, &e, &vmas[n])) {
			co_maps_close(&m);
			return -1;
		}
		vma_flags(&vmas[n], si.advice, smaps, want_smaps);
		vadvice[n] = si.advice;
		stamp_region(n);
		n++;
	}
	co_maps_close(&m);
	d->nvmas = (uint32_t)n;
	return 0;
}

/*
 * The regions, from /proc/self/maps; from smaps when the program has set
 * madvise flags (agent.h), or maps a file or shared memory shared without
 * PROT_WRITE (whether mprotect may make it writable), which only smaps
 * shows.  With a snapshot this runs before any lean snapshot marks
 * stretches MADV_DONTFORK (dirty.c): the flags read here are the
 * program's own.
 *
 * Reading smaps walks every page table (~4 ms per GiB, ten on a slow
 * virtual machine), and a process that has set a madvise flag would pay
 * it in every pause, a migration's stop included.  Two ways around it:
 *
 * The flags of the last pause (known[]).  A region's flags change only by
 * a call: madvise, mlock and the rest, which the wrappers count
 * (co_agent.advice_epoch), or one no wrapper sees that maps it anew (the
 * C library's own mmap or mremap, at the same place maybe).  The write
 * tracker tells the second: every private region is registered with its
 * userfaultfd, which a new mapping is not, and co_dirty_region_kept says
 * which regions were registered at the last pause and still are.  So when
 * no wrapper call came between, every region lying in one of the last
 * pause and kept has that one's flags, and smaps is not read.  Any other
 * region (shared memory, which nothing registers, a new one, a grown
 * stack) and smaps is read after all.
 *
 * Else smaps is read beside the pause's other work: co_mem_early_begin
 * starts, first thing in the pause, a process sharing our memory
 * (CLONE_VM; its own descriptor table, so that the program's shows
 * nothing) that reads smaps while this thread collects the threads, the
 * written pages and the descriptors; co_mem_collect then reads maps
 * (fast) and takes each region's flags from that read.  The program is
 * parked meanwhile, but the collection itself may register a new region
 * for write tracking, which can split or merge regions: a region whose
 * bounds the early read does not have exactly is read from smaps again,
 * as before.
 */
struct early_vma {
	uint64_t start, end;
	uint32_t advice;
};
static struct early_vma early[CO_MAX_VMAS];
static int nearly;
static long early_pid;		/* the reader, running; 0 none */
static int early_ok;		/* its list is complete */
static char early_stack[16384] __attribute__((aligned(64)));

/* The regions' flags as the last pause found them, and when: */
static struct early_vma known[CO_MAX_VMAS];
static int nknown;
static uint64_t known_gen;	/* the write tracker's collection then (0: none known) */
static uint32_t known_epoch;	/* co_agent.advice_epoch then */
static int known_try;		/* this pause: no reader, the flags are to come from known[] */

/*
 * Every region's flags, from /proc/self/smaps, into list: how many, or -1
 * when it could not be read whole.  m and e: the caller's (static: the
 * early reader has a small stack), so that the reader and the manager
 * never share a buffer.
 */
static int smaps_flags(struct co_maps *m, struct co_mapent *e, struct early_vma *list)
{
	struct co_smaps_info si;
	int n = 0, r;
	if (co_maps_open(m, "/proc/self/smaps"))
		return -1; /* (self is us, and our memory is the program's) */
	while ((r = co_smaps_next(m, e, &si)) == 1 && n < CO_MAX_VMAS)
		list[n++] = (struct early_vma){ e->start, e->end, si.advice };
	co_maps_close(m);
	return r == 0 ? n : -1;
}

static void early_read(void *arg)
{
	(void)arg;
	static struct co_maps m;
	static struct co_mapent e;
	early_ok = 0;
	int n = smaps_flags(&m, &e, early);
	nearly = n > 0 ? n : 0;
	early_ok = n >= 0;
}

void co_mem_early_begin(int advice, uint32_t epoch, uint64_t last)
{
	early_ok = 0;
	known_try = advice && nknown && known_gen && known_gen == last && known_epoch == epoch;
	if (!advice || known_try || early_pid > 0)
		return;
	struct clone_args ca;
	co_memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_VM; /* no exit signal: the program's SIGCHLD hears nothing */
	ca.stack = (uint64_t)early_stack;
	ca.stack_size = sizeof(early_stack);
	long pid = co_clone3_thread(&ca, sizeof(ca), early_read, 0);
	early_pid = pid > 0 ? pid : 0;
}

/* Wait for the reader, if one runs: 1 when its list may be used. */
int co_mem_early_end(void)
{
	if (early_pid <= 0)
		return 0;
	struct { int32_t signo, err, code, pad, pid, uid, status; char rest[100]; } si;
	while (co_sys5(SYS_waitid, P_PID, early_pid, (long)&si, WEXITED | __WALL, 0) == -EINTR)
		;
	early_pid = 0;
	return __atomic_load_n(&early_ok, __ATOMIC_ACQUIRE);
}

/*
 * While the program runs, right after a pre-copy's arming collection
 * (gen): the flags read for the pause that follows to take, as it would
 * take those of a pause (known_flags; its regions kept since that
 * collection).  The pause of a first, full image then reads no smaps
 * either.  epoch: the wrappers' count, read before smaps is: a call that
 * changes a flag while it is read moves it on after.
 */
void co_mem_flags_ahead(int advice, uint32_t epoch, uint64_t gen)
{
	static struct co_maps m;
	static struct co_mapent e;
	nknown = 0;
	int n = advice && gen ? smaps_flags(&m, &e, known) : -1;
	if (n < 0)
		return;
	nknown = n;
	known_gen = gen;
	known_epoch = epoch;
}

/* Region i has the flags smaps gave as advice. */
static void set_flags(uint32_t i, uint32_t advice)
{
	int unused = 0;
	vma_flags(&vmas[i], advice, 1, &unused);
	vadvice[i] = advice;
	/* a file the region may write is copied, not stamped (stamp_region, which maps alone could not tell) */
	if (vmas[i].flags & CO_VF_MAYWRITE)
		co_memset(&stamps[i], 0, sizeof(stamps[i]));
}

/* The flags of every region collected from maps, from the early read: 0, or -1 where one's bounds differ. */
static int early_flags(struct co_dumpctx *d)
{
	int k = 0;
	for (uint32_t i = 0; i < d->nvmas; i++) {
		struct co_vma *v = &vmas[i];
		while (k < nearly && early[k].start < v->start)
			k++;
		if (k == nearly || early[k].start != v->start || early[k].end != v->end)
			return -1;
		set_flags(i, early[k].advice);
	}
	return 0;
}

/*
 * The flags of every region from the last pause's: 0, or -1 where a
 * region is not wholly inside one of then, or is not the same mapping.
 * The kernel's own (vdso) take none.
 */
static int known_flags(struct co_dumpctx *d)
{
	int k = 0;
	for (uint32_t i = 0; i < d->nvmas; i++) {
		struct co_vma *v = &vmas[i];
		vadvice[i] = 0;
		if (v->kind == CO_V_SPECIAL)
			continue;
		while (k < nknown && known[k].end <= v->start)
			k++;
		if (k == nknown || known[k].start > v->start || known[k].end < v->end || !d->region_kept ||
		    !d->region_kept(known_gen, v->start, v->end))
			return -1;
		set_flags(i, known[k].advice);
	}
	return 0;
}

/* The flags just found for every region are the ones the next pause may take (known_flags). */
static void remember(struct co_dumpctx *d, int read)
{
	nknown = 0;
	if (!read || !d->flags_gen)
		return;
	for (uint32_t i = 0; i < d->nvmas; i++)
		known[i] = (struct early_vma){ vmas[i].start, vmas[i].end, vadvice[i] };
	nknown = (int)d->nvmas;
	known_gen = d->flags_gen;
	known_epoch = d->advice_epoch;
}

int co_mem_collect(struct co_dumpctx *d)
{
	int want_smaps = 0;
	d->vmas = vmas;
	int early_there = co_mem_early_end(), try_known = known_try;
	known_try = 0;
	int smaps_first = d->advice && !early_there && !try_known;
	if (collect(d, smaps_first, &want_smaps))
		return -1;
	if (smaps_first) {
		remember(d, 1);
		return 0;
	}
	if (try_known && known_flags(d) == 0) {
		co_stamp("regions, their flags as at the last pause");
		remember(d, 1);
		return 0;
	}
	if (early_there && early_flags(d) == 0) {
		co_stamp("regions, their flags read beside");
		remember(d, 1);
		return 0;
	}
	if (!want_smaps && !early_there && !try_known) {
		remember(d, 0); /* (no flags asked: none known) */
		return 0;
	}
	int r = collect(d, 1, &want_smaps);
	remember(d, r == 0);
	return r;
}

/*
 * The snapshot fork leaves MADV_DONTFORK regions out of the child (V8 marks
 * its whole heap so, RDMA buffers are) and gives it MADV_WIPEONFORK ones
 * empty; the image must hold them as they are at the pause.  So for the
 * fork they are made to fork like the rest (MADV_DOFORK, MADV_KEEPONFORK),
 * and they get their flags back as soon as it returns, before a thread of
 * the program runs, or forks, again.
 *
 * Why not read them from the parent instead: the fork gives the child the
 * memory of the pause, copy-on-write, for the price of its page tables
 * (about 20 ms per GiB; Node's tens of MiB of heap add well under a
 * millisecond).  Reading them out of the process would either keep the
 * program parked while every page is copied (milliseconds per 10 MiB, and
 * more for swapped-out pages), or, after the release, read memory the
 * program has changed since.  The flags are per region, and two madvise
 * calls per region cost microseconds.
 *
 * The flags are the program's own: co_mem_collect read them before a lean
 * snapshot (dirty_lean.c) marks stretches of its own MADV_DONTFORK, and the lean
 * marks are taken off (MADV_DOFORK) before co_mem_fork_end puts these back,
 * so a stretch inside such a region ends up with the program's flag.
 */
/* The program's fork flags off (normal: the fork copies every region) or back on. */
static void fork_advice(struct co_dumpctx *d, int normal)
{
	for (uint32_t i = 0; i < d->nvmas; i++) {
		const struct co_vma *v = &vmas[i];
		long len = (long)(v->end - v->start);
		/*
		 * SysV segments are the coordinator's to save: the snapshot is
		 * made without them.  A fork counts an attachment more until the
		 * child detaches, and the program, running again at once, read
		 * that count with IPC_STAT (shm_nattch) on a busy machine.
		 */
		if (v->kind == CO_V_SHANON && co_startswith(v->path, "/SYSV")) {
			if (!(v->flags & CO_VF_DONTFORK))
				co_sys3(SYS_madvise, (long)v->start, len, normal ? MADV_DONTFORK : MADV_DOFORK);
			continue;
		}
		/*
		 * A region that cannot be changed is found missing by the writer
		 * (snapshot_complete); putting them back splits what the fork-time
		 * flags merged: never more regions than before.
		 */
		if (v->flags & CO_VF_DONTFORK)
			co_sys3(SYS_madvise, (long)v->start, len, normal ? MADV_DOFORK : MADV_DONTFORK);
		if (v->flags & CO_VF_WIPEONFORK)
			co_sys3(SYS_madvise, (long)v->start, len, normal ? MADV_KEEPONFORK : MADV_WIPEONFORK);
	}
}

void co_mem_fork_begin(struct co_dumpctx *d)
{
	fork_advice(d, 1);
	d->forked = 1;
}

void co_mem_fork_end(struct co_dumpctx *d)
{
	fork_advice(d, 0);
	d->forked = 0;
}

int co_mem_dump_vmas(struct co_dumpctx *d)
{
	for (uint32_t i = 0; i < d->nvmas; i++) {
		if (co_w_path_rec(d->w, CO_R_VMA, &vmas[i], __builtin_offsetof(struct co_vma, path), &stamps[i]))
			return DERR(d, "pid %d: writing region records failed", d->pid);
	}
	return 0;
}

#else /* the restorer */

static int is_special_name(const char *p)
{
	return p[0] == '[' && !co_startswith(p, "[heap]") && !co_startswith(p, "[stack") &&
	       !co_startswith(p, "[anon:");
}

/* The kernel's special mappings ([vdso], [vvar], ...) where they are now. */
struct cur_map {
	uint64_t start, end;
	char name[24];
};
static struct cur_map cur[64];
static int ncur;

static int read_own_maps(struct co_rstctx *rc)
{
	static struct co_maps m;
	static struct co_mapent e;
	ncur = 0;
	if (co_maps_open(&m, "/proc/self/maps"))
		return co_err(rc->err, rc->errlen, "cannot read /proc/self/maps");
	while (co_maps_next(&m, &e) == 1)
		if (is_special_name(e.path) && ncur < (int)CO_ARRAY_LEN(cur)) {
			cur[ncur].start = e.start;
			cur[ncur].end = e.end;
			co_strlcpy(cur[ncur].name, e.path, sizeof(cur[ncur].name));
			ncur++;
		}
	co_maps_close(&m);
	return 0;
}

static struct cur_map *find_cur(const char *name)
{
	for (int i = 0; i < ncur; i++)
		if (co_strcmp(cur[i].name, name) == 0)
			return &cur[i];
	return 0;
}

int co_mem_check(struct co_rstctx *rc)
{
	if (read_own_maps(rc))
		return -1;
	int nspecial_img = 0;
	for (int i = 0; i < rc->nvmas; i++) {
		struct co_vma *v = &rc->vmas[i];
		if (v->start < rc->zone + rc->zone_len && v->end > rc->zone)
			return co_err(rc->err, rc->errlen,
				      "pid %d: region %lx-%lx overlaps the restorer's working area %lx-%lx",
				      rc->proc->pid, (unsigned long)v->start, (unsigned long)v->end,
				      (unsigned long)rc->zone, (unsigned long)(rc->zone + rc->zone_len));
		if (v->kind != CO_V_SPECIAL)
			continue;
		nspecial_img++;
		struct cur_map *c = find_cur(v->path);
		if (!c)
			return co_err(rc->err, rc->errlen,
				      "pid %d: this kernel has no %s mapping: restart on the kernel the checkpoint was taken on",
				      rc->proc->pid, v->path);
		if (c->end - c->start != v->end - v->start)
			return co_err(rc->err, rc->errlen,
				      "pid %d: %s is %lu bytes here but %lu in the image: restart on the kernel the checkpoint was taken on",
				      rc->proc->pid, v->path, (unsigned long)(c->end - c->start),
				      (unsigned long)(v->end - v->start));
	}
	int nspecial_here = 0;
	for (int i = 0; i < ncur; i++)
		nspecial_here += co_strcmp(cur[i].name, "[vsyscall]") != 0;
	if (nspecial_here != nspecial_img)
		return co_err(rc->err, rc->errlen,
			      "pid %d: this kernel's special mappings differ from the image's: restart on the kernel the checkpoint was taken on",
			      rc->proc->pid);
	return 0;
}

/*
 * Which regions a process forked from its restored parent keeps from the
 * parent's memory (kept[i]): private anonymous regions (not growing down)
 * where it shared pages copy-on-write at the checkpoint (rc->cow), whose
 * addresses the parent's memory covers wholly with private anonymous
 * mappings of the same madvise flags.  Every other region is mapped anew,
 * as without a parent, and its pages are written: the runs that lie
 * outside the kept regions are dropped from rc->cow.
 */
static uint8_t kept[CO_MAX_VMAS];
static uint64_t covered[CO_MAX_VMAS];

static int is_private_anon(const struct co_mapent *e)
{
	return !e->shared && !e->ino && e->path[0] != '/' && !is_special_name(e->path);
}

static void find_kept(struct co_rstctx *rc)
{
	static struct co_maps m;
	static struct co_mapent e;
	struct co_smaps_info si;
	int n = rc->nvmas, j = 0, any = 0;
	co_memset(kept, 0, (size_t)n);
	co_memset(covered, 0, sizeof(covered[0]) * (size_t)n);
	/* the candidates: regions that may be inherited and hold a run */
	for (uint32_t k = 0; rc->inherited && k < rc->ncow; k++) {
		while (j < n && rc->vmas[j].end <= rc->cow[k].addr)
			j++;
		if (j < n && rc->vmas[j].kind == CO_V_ANON && !(rc->vmas[j].flags & CO_VF_GROWSDOWN))
			any = kept[j] = 1;
	}
	j = 0;
	if (!any || co_maps_open(&m, "/proc/self/smaps"))
		co_memset(kept, 0, (size_t)n);
	else {
		while (co_smaps_next(&m, &e, &si) == 1) {
			while (j < n && rc->vmas[j].end <= e.start)
				j++;
			for (int i = j; i < n && rc->vmas[i].start < e.end; i++) {
				const struct co_vma *v = &rc->vmas[i];
				uint64_t lo = e.start > v->start ? e.start : v->start, hi = e.end < v->end ? e.end : v->end;
				covered[i] += hi - lo;
				if (!is_private_anon(&e) || (si.advice & CO_VF_ADVICE) != (v->flags & CO_VF_ADVICE))
					kept[i] = 0;
			}
		}
		co_maps_close(&m);
		for (int i = 0; i < n; i++)
			kept[i] = kept[i] && covered[i] == rc->vmas[i].end - rc->vmas[i].start;
	}
	/* the runs inside kept regions, in order (each run lies in one region: pages.c) */
	uint32_t out = 0;
	j = 0;
	for (uint32_t k = 0; k < rc->ncow; k++) {
		const struct co_run *run = &rc->cow[k];
		uint64_t end = run->addr + run->npages * CO_PAGE;
		while (j < n && rc->vmas[j].end <= run->addr)
			j++;
		if (j < n && kept[j] && run->addr >= rc->vmas[j].start && end <= rc->vmas[j].end)
			rc->cow[out++] = *run;
	}
	rc->ncow = out;
}

/* munmap [lo, hi), up to the top of the address space this kernel gives a process */
static void unmap(uint64_t lo, uint64_t hi)
{
	/* with five-level page tables, else four: munmap refuses (EINVAL) a range past the top */
	static const uint64_t tops[] = { (1ULL << 56) - CO_PAGE, (1ULL << 47) - CO_PAGE };
	for (unsigned i = 0; i < CO_ARRAY_LEN(tops); i++) {
		uint64_t h = hi < tops[i] ? hi : tops[i];
		if (h <= lo || co_munmap((void *)lo, h - lo) != -EINVAL)
			return;
	}
}

/* [lo, hi) but the restorer's area */
static void unmap_outside_zone(struct co_rstctx *rc, uint64_t lo, uint64_t hi)
{
	uint64_t zlo = rc->zone, zhi = rc->zone + rc->zone_len;
	unmap(lo, hi < zlo ? hi : zlo);
	unmap(lo > zhi ? lo : zhi, hi);
}

/*
 * Park the special mappings inside the restorer's area, then unmap
 * everything else but the regions kept from the parent (find_kept): the
 * whole address space around them, however many mappings it holds.
 */
static int clear_address_space(struct co_rstctx *rc, uint64_t park)
{
	if (read_own_maps(rc))
		return -1;
	for (int i = 0; i < ncur; i++) {
		struct cur_map *c = &cur[i];
		if (co_strcmp(c->name, "[vsyscall]") == 0 || (c->start >= rc->zone && c->end <= rc->zone + rc->zone_len))
			continue;
		long r = co_mremap((void *)c->start, c->end - c->start, c->end - c->start, MREMAP_MAYMOVE | MREMAP_FIXED,
				   (void *)park);
		if (r < 0)
			return co_err(rc->err, rc->errlen, "cannot move %s (errno %ld)", c->name, -r);
		c->end = park + (c->end - c->start);
		c->start = park;
		park = c->end + CO_PAGE;
	}
	uint64_t from = 0;
	for (int i = 0; i < rc->nvmas; i++)
		if (kept[i]) {
			unmap_outside_zone(rc, from, rc->vmas[i].start);
			from = rc->vmas[i].end;
		}
	unmap_outside_zone(rc, from, ~0ULL & ~(CO_PAGE - 1));
	return 0;
}

/*
 * A kept region: the parent's memory there, made writable for the pages
 * to be read in; of it only the pages shared at the checkpoint stay, the
 * rest is dropped (MADV_DONTNEED: zero, as a new mapping), so that the
 * page streams fill it as they fill a new one.
 */
static int keep_region(struct co_rstctx *rc, const struct co_vma *v, uint32_t *k)
{
	long r = co_mprotect((void *)v->start, v->end - v->start, PROT_READ | PROT_WRITE);
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: region %lx-%lx: cannot make the parent's memory writable (errno %ld)",
			      rc->proc->pid, (unsigned long)v->start, (unsigned long)v->end, -r);
	uint64_t at = v->start;
	for (; *k < rc->ncow && rc->cow[*k].addr < v->end; (*k)++) {
		const struct co_run *run = &rc->cow[*k];
		if (run->addr > at)
			co_sys3(SYS_madvise, (long)at, (long)(run->addr - at), MADV_DONTNEED);
		at = run->addr + run->npages * CO_PAGE;
	}
	if (v->end > at)
		co_sys3(SYS_madvise, (long)at, (long)(v->end - at), MADV_DONTNEED);
	return 0;
}

/* The SysV segment v->ino attached at the region, as the program had it (SHM_RDONLY, SHM_EXEC). */
static long attach_sysv(const struct co_vma *v)
{
	int fl = SHM_REMAP | ((v->prot & PROT_WRITE) ? 0 : SHM_RDONLY) | ((v->prot & PROT_EXEC) ? SHM_EXEC : 0);
	long r = co_sys3(SYS_shmat, (long)v->ino, (long)v->start, fl);
	if (r >= 0 && (uint64_t)r != v->start)
		return -EFAULT;
	return r < 0 ? r : 0;
}

/*
 * The mmap flags that leave a mark on the region: MAP_GROWSDOWN (the main
 * stack's, or one the program mapped so: VmFlags gd) and MAP_NORESERVE
 * (nr: no swap space is accounted for it, so that a big reservation fits
 * under the overcommit heuristic as it did before).
 */
static int map_flags(const struct co_vma *v)
{
	return ((v->flags & CO_VF_GROWSDOWN) ? MAP_GROWSDOWN : 0) | ((v->flags & CO_VF_NORESERVE) ? MAP_NORESERVE : 0);
}

/*
 * Shared memory from init's object fd (read-write).  A region mprotect
 * could not make writable (CO_VF_NOMAYWRITE) is mapped through a
 * read-only open of it, which leaves it so (no VM_MAYWRITE).
 */
static int map_shared(struct co_rstctx *rc, const struct co_vma *v, int fd)
{
	char self[32];
	long ro = -1, r;
	if ((v->flags & CO_VF_NOMAYWRITE) && !(v->prot & PROT_WRITE)) {
		co_fmt(self, sizeof(self), "/proc/self/fd/%d", fd);
		ro = co_open(self, O_RDONLY | O_CLOEXEC, 0);
		if (ro < 0)
			return co_err(rc->err, rc->errlen, "pid %d: region %lx-%lx: cannot open shared memory %s "
				      "read-only (errno %ld)", rc->proc->pid, (unsigned long)v->start,
				      (unsigned long)v->end, v->path, -ro);
	}
	r = co_mmap((void *)v->start, v->end - v->start, (int)v->prot, MAP_SHARED | MAP_FIXED | map_flags(v),
		    ro >= 0 ? (int)ro : fd, (long)v->pgoff);
	if (ro >= 0)
		co_close((int)ro);
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot map region %lx-%lx %s (errno %ld)", rc->proc->pid,
			      (unsigned long)v->start, (unsigned long)v->end, v->path, -r);
	return 0;
}

static int map_region(struct co_rstctx *rc, const struct co_vma *v, const struct co_fstamp *st)
{
	uint64_t len = v->end - v->start;
	int prot = PROT_READ | PROT_WRITE;
	long r;
	switch (v->kind) {
	case CO_V_SPECIAL: {
		struct cur_map *c = find_cur(v->path);
		r = co_mremap((void *)c->start, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)v->start);
		break;
	}
	case CO_V_AIO:
		/* made already (co_aio_restore_all), from its record */
		for (int i = 0; i < rc->naio; i++)
			if (rc->aio[i].start == v->start && rc->aio[i].end == v->end)
				return 0;
		return co_err(rc->err, rc->errlen, "pid %d: aio ring %lx-%lx has no record in the image", rc->proc->pid,
			      (unsigned long)v->start, (unsigned long)v->end);
	case CO_V_ANON:
	case CO_V_DELETED:
		r = co_mmap((void *)v->start, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | map_flags(v), -1, 0);
		break;
	case CO_V_SHANON: {
		int fd = co_plan_shm(rc, v->dev, v->ino);
		/* a SysV segment is made by init with its id (the inode), unless an older image kept it as memory */
		if (fd < 0 && co_startswith(v->path, "/SYSV")) {
			r = attach_sysv(v);
			break;
		}
		if (fd < 0)
			return co_err(rc->err, rc->errlen, "pid %d: region %lx-%lx: shared memory %s is missing from the group's shared objects",
				      rc->proc->pid, (unsigned long)v->start, (unsigned long)v->end, v->path);
		return map_shared(rc, v, fd);
	}
	case CO_V_FILE: {
		int shared = v->flags & CO_VF_SHARED;
		/* read-write also when mprotect may make it writable later, as before the checkpoint */
		int rw = shared && ((v->prot & PROT_WRITE) || (v->flags & CO_VF_MAYWRITE));
		/* mmap moves the atime (as the program's own mapping did, long before): not where we may keep it */
		int fd = (int)co_open(v->path, (rw ? O_RDWR : O_RDONLY) | CO_O_NOATIME, 0);
		if (fd == -EPERM)
			fd = (int)co_open(v->path, rw ? O_RDWR : O_RDONLY, 0);
		if (fd < 0)
			return co_err(rc->err, rc->errlen, "pid %d: region %lx-%lx: cannot open %s (errno %d%s)",
				      rc->proc->pid, (unsigned long)v->start, (unsigned long)v->end, v->path, -fd,
				      co_creds_why(&rc->ids, fd));
		/* the file the checkpoint mapped, not one put in its place since (a library upgraded) */
		if (st->recorded) {
			char what[CO_PATH + 64];
			co_fmt(what, sizeof(what), "region %lx-%lx (%s)", (unsigned long)v->start, (unsigned long)v->end,
			       v->path);
			if (co_file_same(rc, fd, st, what)) {
				co_close(fd);
				return -1;
			}
		}
		r = co_mmap((void *)v->start, len, shared ? (int)v->prot : prot,
			    (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED | map_flags(v), fd, (long)v->pgoff);
		co_close(fd);
		break;
	}
	default:
		return co_err(rc->err, rc->errlen, "pid %d: unknown region kind %u in image", rc->proc->pid, v->kind);
	}
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot map region %lx-%lx %s (errno %ld)",
			      rc->proc->pid, (unsigned long)v->start, (unsigned long)v->end, v->path, -r);
	return 0;
}

/*
 * Ask again what the program had asked madvise for the region (its VmFlags
 * at the checkpoint, CO_VF_ADVICE), so that a fork after the restart
 * leaves out what it left out before.  A kernel that refuses one (no
 * transparent huge pages, say) runs the program without it, as it would
 * have run there from the start.  Only the bits in `which`: the huge page
 * advice goes before the pages are read in (huge ones come back huge), the
 * rest after (the page readers must see every region).
 */
#define CO_VF_THP_ADVICE (CO_VF_HUGEPAGE | CO_VF_NOHUGEPAGE)
static void advise_again(const struct co_vma *v, uint32_t which)
{
	static const struct { uint32_t flag; int advice; } adv[] = {
		{ CO_VF_DONTFORK, MADV_DONTFORK }, { CO_VF_WIPEONFORK, MADV_WIPEONFORK },
		{ CO_VF_DONTDUMP, MADV_DONTDUMP }, { CO_VF_HUGEPAGE, MADV_HUGEPAGE },
		{ CO_VF_NOHUGEPAGE, MADV_NOHUGEPAGE }, { CO_VF_SEQUENTIAL, MADV_SEQUENTIAL },
		{ CO_VF_RANDOM, MADV_RANDOM }, { CO_VF_MERGEABLE, MADV_MERGEABLE },
	};
	for (unsigned k = 0; k < CO_ARRAY_LEN(adv); k++)
		if (v->flags & which & adv[k].flag)
			co_sys3(SYS_madvise, (long)v->start, (long)(v->end - v->start), adv[k].advice);
}

/*
 * Neighbouring private anonymous regions are often one mapping the program
 * split (mprotect of a stretch, madvise): they share the kernel's anon_vma,
 * so that they merge again when the program makes them alike, and one
 * mremap can then move or grow them whole.  Each region mapped here is
 * anonymous and read-write, so neighbours are one mapping again for now;
 * but the first page put in each later part (the pages below, a lazy
 * restart's filler, a protection set first) would give each part an
 * anon_vma of its own, and they would never merge: the program's mremap
 * over the whole fails with EFAULT.  So one page of each is written and
 * dropped before anything splits them: the mapping has its anon_vma, and
 * every part cut from it keeps it.  (Regions kept from the parent keep
 * theirs.)  With huge pages off for the process meanwhile: where the
 * kernel gives them to any mapping, the write would bring a 2 MiB page,
 * and dropping 4 KiB of it would leave the rest in place as zeros, where
 * a lazy restart's filler must put the image's pages (it takes a page
 * already there as the program's).  Where they cannot be turned off,
 * nothing is written: a mapping that stays in parts is the lesser harm.
 */
static void one_anon_vma(struct co_rstctx *rc)
{
	long was_off = co_prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	if (was_off < 0 || (!was_off && co_prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0))
		return;
	for (int i = 0; i < rc->nvmas; i++) {
		const struct co_vma *v = &rc->vmas[i];
		if ((v->kind != CO_V_ANON && v->kind != CO_V_DELETED) || kept[i])
			continue;
		*(volatile char *)(uintptr_t)v->start = 0;
		co_sys3(SYS_madvise, (long)v->start, CO_PAGE, MADV_DONTNEED);
	}
	if (!was_off)
		co_prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
}

int co_mem_restore(struct co_rstctx *rc)
{
	uint64_t park = rc->zone + rc->zone_len - (1 << 20);
	uint32_t k = 0;
	find_kept(rc);
	if (clear_address_space(rc, park) || co_aio_restore_all(rc))
		return -1;
	for (int i = 0; i < rc->nvmas; i++)
		if (kept[i] ? keep_region(rc, &rc->vmas[i], &k) : map_region(rc, &rc->vmas[i], &rc->vstamps[i]))
			return -1;
	one_anon_vma(rc);
	for (int i = 0; i < rc->nvmas; i++)
		if (rc->vmas[i].kind != CO_V_SPECIAL)
			advise_again(&rc->vmas[i], CO_VF_THP_ADVICE);
	/* restart --lazy: the regions whose pages a filler brings (src/restore/lazy.c), passed over here */
	if (co_lazy_begin(rc, kept) || co_pages_restore(rc))
		return -1;
	for (int i = 0; i < rc->nvmas; i++) {
		const struct co_vma *v = &rc->vmas[i];
		if (v->kind == CO_V_SPECIAL)
			continue;
		if (!(v->flags & CO_VF_SHARED))
			co_mprotect((void *)v->start, v->end - v->start, (int)v->prot);
		advise_again(v, (CO_VF_ADVICE | CO_VF_MERGEABLE) & ~CO_VF_THP_ADVICE);
	}
	return 0;
}

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

/*
 * The locks (mlock, MAP_LOCKED, mlockall: VmFlags lo, lf for on-fault
 * ones) again, and mlockall's MCL_FUTURE for the regions the program maps
 * from now on.  Called by co_proc_restore once the program's own limits
 * are set, so that the kernel judges the locks by its RLIMIT_MEMLOCK (and
 * the restart's CAP_IPC_LOCK), and late, when the restorer maps nothing
 * more of its own that MCL_FUTURE would lock.  A locked region is never
 * lazy (co_vma_lazy_kind): its pages are in place, and mlock faults in
 * nothing a filler should bring.  A lock the kernel refuses fails the
 * restart: the program counts on its memory staying resident.
 */
/*
 * mlock faults the region's pages in, which fails (ENOMEM) for a PROT_NONE
 * region after the kernel has marked it locked: mlockall(MCL_CURRENT) locks
 * such regions so, ignoring that.  So an inaccessible region is locked on
 * fault first (the ENOMEM of a lock over the limit comes here), then made
 * a whole lock, whose fault-in failing is no error.
 */
static long lock_region(const struct co_vma *v)
{
	long len = (long)(v->end - v->start);
	if (v->flags & CO_VF_LOCKONFAULT)
		return co_sys3(SYS_mlock2, (long)v->start, len, MLOCK_ONFAULT);
	if (v->prot & (PROT_READ | PROT_WRITE | PROT_EXEC))
		return co_sys3(SYS_mlock2, (long)v->start, len, 0);
	long r = co_sys3(SYS_mlock2, (long)v->start, len, MLOCK_ONFAULT);
	if (r == 0 && (r = co_sys3(SYS_mlock2, (long)v->start, len, 0)) == -ENOMEM)
		r = 0;
	return r;
}

int co_mem_lock(struct co_rstctx *rc)
{
	struct rlimit rl = { 0, 0 };
	co_prlimit(0, RLIMIT_MEMLOCK, 0, &rl);
	for (int i = 0; i < rc->nvmas; i++) {
		const struct co_vma *v = &rc->vmas[i];
		if (!(v->flags & CO_VF_LOCKED) || v->kind == CO_V_SPECIAL)
			continue;
		long r = lock_region(v);
		if (r < 0)
			return co_err(rc->err, rc->errlen,
				      "pid %d: region %lx-%lx %s: cannot lock it again (errno %ld): RLIMIT_MEMLOCK is %lu "
				      "bytes here, without CAP_IPC_LOCK", rc->proc->pid, (unsigned long)v->start,
				      (unsigned long)v->end, v->path, -r, (unsigned long)rl.rlim_cur);
	}
	uint32_t mcl = rc->proc->mlockall & (MCL_FUTURE | MCL_ONFAULT);
	if (mcl & MCL_FUTURE) {
		long r = co_sys1(SYS_mlockall, (long)mcl);
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: cannot call mlockall(MCL_FUTURE%s) again (errno %ld)",
				      rc->proc->pid, (mcl & MCL_ONFAULT) ? "|MCL_ONFAULT" : "", -r);
	}
	return 0;
}
#endif
