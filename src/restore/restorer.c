/*
 * restorer.c - cohort-restore: turns a fresh process into the one in an
 * image.  Runs without libc, linked at a fixed address far from where
 * programs live (CO_RESTORER_BASE), with its working memory right above.
 *
 *   cohort-restore GENERATION-DIR SOCKET GENERATION PLAN-FD [COMPRESSED-IMAGE-DIR]
 *
 * GENERATION-DIR holds the images and the manifest; PLAN-FD is the
 * descriptor of the plan of the group's shared objects (shared.img, made
 * by init); COMPRESSED-IMAGE-DIR, when the images are compressed, holds a
 * FIFO per image fed by a decompressing child of the coordinator.  The
 * process was created with the recorded pid by the group's init, or by the
 * restorer of its parent (which makes its children: fork_child).
 * Steps: move onto our own stack, copy our code to anonymous memory (so no
 * file of ours stays mapped and /proc/self/exe can be set), read the
 * image's metadata, check it fits this kernel, restore descriptors, rebuild
 * the address space, restore process attributes, then recreate the threads
 * and jump into the parked contexts.  Any failure before the address space
 * is touched leaves a clean error; after that the process just exits with
 * the message, and the coordinator reports it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/mman.h>
#include "boost.h"
#include "helper.h"
#include "report.h"
#include "resume.h"
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#define ZONE_SIZE (128UL << 20)
#define STACK_SIZE (1UL << 20)
#define SCRATCH_SIZE (32UL << 20)

extern char __executable_start[];
void co_switch_stack(void *sp, void (*fn)(void *), void *arg) __attribute__((noreturn));

static struct co_reader reader;
static struct co_proc proc;
static struct co_rstctx rc;
static char err[512];
static char image_path[CO_PATH], sock_path[256];
static char image_shown[CO_PATH], image_name[CO_PATH + 8];	/* the stored file, for messages */
static uint64_t generation;
static int errfd = 2;

/* These would be libc's; the compiler may emit calls to them. */
void *memcpy(void *d, const void *s, size_t n) { co_memcpy(d, s, n); return d; }
void *memset(void *d, int c, size_t n) { co_memset(d, c, n); return d; }
int memcmp(const void *a, const void *b, size_t n) { return co_memcmp(a, b, n); }
void *memmove(void *d, const void *s, size_t n)
{
	char *dp = d;
	const char *sp = s;
	if (dp < sp)
		while (n--)
			*dp++ = *sp++;
	else
		while (n--)
			dp[n] = sp[n];
	return d;
}

/*
 * Where the restorer is (report.h), said to the coordinator on the report
 * pipe from init (COHORT_REPORT), and named by every failure.
 */
static unsigned stage = CO_RS_START;
static int report_fd = -1;
static struct co_fault fault;	/* COHORT_FAULT: tests only */

/* One record on the report pipe, written whole (or not at all: it is non-blocking). */
static int report(unsigned kind, unsigned st, const char *text, size_t len)
{
	struct {
		struct co_rpt h;
		char text[800];
	} r;
	if (report_fd < 0)
		return -1;
	if (len > sizeof(r.text))
		len = sizeof(r.text);
	r.h.kind = (uint16_t)kind;
	r.h.stage = (uint16_t)st;
	r.h.pid = (int32_t)co_getpid();
	r.h.len = (uint32_t)len;
	struct co_timespec ts = { 0, 0 };
	co_clock_gettime(0 /* CLOCK_REALTIME */, &ts);
	r.h.at_ns = (uint64_t)ts.sec * 1000000000ULL + (uint64_t)ts.nsec;
	co_memcpy(r.text, text, len);
	long want = (long)(sizeof(r.h) + len);
	return co_write(report_fd, &r, (size_t)want) == want ? 0 : -1;
}

/*
 * The one line of a failed restart: "pid N, STAGE: why", which the
 * coordinator prints (it prints the first of the group's only); on our
 * stderr when it cannot be told.  A reason that begins with our own
 * "pid N: " does not say it twice.  A thread other than the main one
 * fails at the stage it is in, not the main thread's.
 */
static __attribute__((noreturn)) void die_at(unsigned st, const char *msg)
{
	char pre[24], line[760];
	long pid = co_getpid();
	size_t np = co_fmt(pre, sizeof(pre), "pid %ld: ", pid);
	if (msg && co_memcmp(msg, pre, np) == 0)
		msg += np;
	size_t n = msg && *msg ? co_fmt(line, sizeof(line), "pid %ld, %s: %s", pid, co_rstage_text(st), msg)
			       : co_fmt(line, sizeof(line), "pid %ld, %s: failed without a reason "
							    "(a bug in cohort: please report it)", pid, co_rstage_text(st));
	if (report(CO_RPT_FAILED, st, line, n) < 0) {
		char out[800];
		co_write(errfd, out, co_fmt(out, sizeof(out), "cohort: restore failed: %s\n", line));
	}
	co_exit_group(70);
	__builtin_unreachable();
}

static __attribute__((noreturn)) void die(const char *msg)
{
	die_at(stage, msg);
}

void co_restore_die(const char *msg)
{
	die(msg);
}

/* Stage st is reached (by a thread of its own when thread): say so; an injected fault strikes here. */
static void reached(unsigned st)
{
	report(CO_RPT_STAGE, st, "", 0);
	if (fault.mode == CO_FAULT_NONE || fault.stage != st || (fault.pid && fault.pid != (int)co_getpid()))
		return;
	if (fault.mode == CO_FAULT_FAIL)
		die_at(st, "failure injected (COHORT_FAULT)");
	for (;;) { /* hang (or hold): until the coordinator gives up on us (or is killed) and kills the group */
		struct co_timespec t = { 3600, 0 };
		co_nanosleep(&t);
	}
}

static void set_stage(unsigned st)
{
	stage = st;
	reached(st);
}

/* threads.c: a thread other than the main one before it takes its ids (CO_RS_THREAD); the main one's jump */
void co_restore_reached(unsigned st)
{
	if (st == CO_RS_THREAD)
		reached(st);
	else
		set_stage(st);
}

/*
 * COHORT_BOOST=1: a migration's stop, where each restorer runs at
 * SCHED_FIFO 1 (boost.h) until each thread takes its own scheduling back
 * (threads.c, take_attrs); the processes and threads it makes, born
 * without it, take it again (restore_self, thread_entry).
 */
static int want_boost;

/* The restorer's environment: the report pipe and the fault switch, from init. */
static void read_env(char **envp)
{
	for (; *envp; envp++) {
		if (co_startswith(*envp, "COHORT_REPORT="))
			report_fd = (int)co_strtoul(*envp + 14, 0, 10);
		else if (co_strcmp(*envp, "COHORT_LAZY=1") == 0)
			rc.want_lazy = 1;
		else if (co_strcmp(*envp, "COHORT_LAZY=2") == 0) /* a migration's post-copy: lazy or fail */
			rc.want_lazy = 2;
		else if (co_strcmp(*envp, "COHORT_LAZY=3") == 0) /* tests: lazy, but no region (COHORT_LAZY_NONE) */
			rc.want_lazy = rc.lazy_none = 1;
		else if (co_strcmp(*envp, "COHORT_BOOST=1") == 0) /* a migration's small stop (boost.h) */
			want_boost = 1;
		else if (co_startswith(*envp, "COHORT_FAULT=") && co_fault_parse(*envp + 13, &fault))
			die("COHORT_FAULT: expected fail:STAGE[:PID], hang:STAGE[:PID] or hold:STAGE[:PID]");
	}
}

/* Replace each file-backed mapping of our own binary with an anonymous copy. */
static void anonymize_self(void)
{
	static struct co_maps m;
	static struct co_mapent e[16];
	int n = 0;
	if (co_maps_open(&m, "/proc/self/maps"))
		die("cannot read /proc/self/maps");
	while (n < 16 && co_maps_next(&m, &e[n]) == 1)
		if (e[n].start >= CO_RESTORER_BASE && e[n].start < CO_RESTORER_BASE + (16UL << 20) &&
		    e[n].path[0] == '/')
			n++;
	co_maps_close(&m);
	for (int i = 0; i < n; i++) {
		uint64_t len = e[i].end - e[i].start;
		long tmp = co_mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (tmp < 0 && tmp > -4096)
			die("out of memory");
		co_memcpy((void *)tmp, (void *)e[i].start, len);
		co_mprotect((void *)tmp, len, (int)e[i].prot);
		if (co_mremap((void *)tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)e[i].start) < 0)
			die("cannot move the restorer");
	}
}

static void *zalloc(uint64_t *next, uint64_t size)
{
	void *p = (void *)*next;
	*next += CO_PAGE_ALIGN(size);
	return p;
}

static void take_ids(void);

/* The pages shared copy-on-write at the checkpoint (pages.c), added to rc.cow in address order. */
static void read_cowmap(void)
{
	static struct co_pagemap pm;
	if (co_r_payload(&reader, &pm, sizeof(pm)))
		die(reader.err);
	if (pm.nruns > CO_MAX_RUNS || rc.ncow + pm.nruns > CO_MAX_RUNS) {
		co_fmt(err, sizeof(err), "%s: byte %lu: more than %d runs of copy-on-write pages", image_name,
		       (unsigned long)reader.rec_off, CO_MAX_RUNS);
		die(err);
	}
	for (uint32_t i = 0; i < pm.nruns; i++) {
		const struct co_run *run = &pm.runs[i];
		const struct co_run *last = rc.ncow ? &rc.cow[rc.ncow - 1] : 0;
		if ((run->addr & (CO_PAGE - 1)) || !run->npages || run->npages > (1ULL << 40) ||
		    (last && run->addr < last->addr + last->npages * CO_PAGE)) {
			co_fmt(err, sizeof(err), "%s: byte %lu: damaged copy-on-write map", image_name,
			       (unsigned long)reader.rec_off);
			die(err);
		}
		rc.cow[rc.ncow++] = *run;
	}
}

/*
 * The current record's payload into the next of the max slots (size bytes
 * each) of table, *n of them taken; what names them in the message.
 */
static void *take_record(void *table, int *n, int max, size_t size, const char *what)
{
	if (*n == max) {
		co_fmt(err, sizeof(err), "too many %s in image", what);
		die(err);
	}
	void *slot = (char *)table + (size_t)(*n)++ * size;
	if (co_r_payload(&reader, slot, size))
		die(reader.err);
	return slot;
}

/* The current record, a descriptor: restored at once. */
static void take_fd(void)
{
	/* room for the file's stamp after the longest path (image.h: struct co_fstamp) */
	static struct { struct co_fd f; struct co_fstamp room; } in;
	static struct co_fstamp st;
	if (co_r_payload(&reader, &in, sizeof(in)))
		die(reader.err);
	co_path_rec_stamp(&in, reader.hdr.len < sizeof(in) ? reader.hdr.len : sizeof(in),
			  __builtin_offsetof(struct co_fd, path), &st);
	in.f.path[sizeof(in.f.path) - 1] = 0;
	if (in.f.fd < 0 || in.f.fd >= rc.fd_base)
		die("descriptor number out of range");
	if (co_files_restore_one(&rc, &in.f, &st))
		die(err);
}

/* The current record, a region, into rc.vmas (and its file's stamp into rc.vstamps). */
static void take_region(void)
{
	static struct { struct co_vma v; struct co_fstamp room; } in;
	if (rc.nvmas == CO_MAX_VMAS)
		die("too many regions in image");
	if (co_r_payload(&reader, &in, sizeof(in)))
		die(reader.err);
	co_path_rec_stamp(&in, reader.hdr.len < sizeof(in) ? reader.hdr.len : sizeof(in),
			  __builtin_offsetof(struct co_vma, path), &rc.vstamps[rc.nvmas]);
	struct co_vma *v = &rc.vmas[rc.nvmas++];
	*v = in.v;
	v->path[sizeof(v->path) - 1] = 0;
	if (v->start >= v->end || (v->start | v->end) & (CO_PAGE - 1))
		die("damaged region record");
}

/* Read every record up to the first page map, restoring descriptors on the way. */
static void read_metadata(uint64_t *next)
{
	struct co_head h;
	struct co_bind want = rc.bind;
	want.pid = (int)co_getpid(); /* its pid in the group's namespace: the image must be of this process */
	if (co_r_expect(&reader, CO_R_HEAD, &h, sizeof(h)) || co_head_check(&reader, &h, CO_KIND_PROCESS, &want))
		die(reader.err);
	if (co_r_expect(&reader, CO_R_PROC, &proc, sizeof(proc)))
		die(reader.err);
	take_ids();
	rc.threads = zalloc(next, sizeof(struct co_thread) * CO_MAX_THREADS);
	rc.vmas = zalloc(next, sizeof(struct co_vma) * CO_MAX_VMAS);
	rc.vstamps = zalloc(next, sizeof(struct co_fstamp) * CO_MAX_VMAS);
	rc.timers = zalloc(next, sizeof(struct co_timer) * CO_MAX_TIMERS);
	rc.locks = zalloc(next, sizeof(struct co_lock) * CO_MAX_LOCKS);
	rc.owners = zalloc(next, sizeof(struct co_fdowner) * CO_MAX_FDS);
	rc.dnotify = zalloc(next, sizeof(struct co_dnotify) * CO_DNOTIFY_MAX);
	rc.semadj = zalloc(next, sizeof(struct co_semadj) * CO_SEMUNDO_MAX);
	rc.aio = zalloc(next, sizeof(struct co_aio) * CO_AIO_MAX);
	rc.aio_events = zalloc(next, sizeof(struct co_aio_event) * CO_AIO_EVENTS_MAX);
	rc.cow = zalloc(next, sizeof(struct co_run) * CO_MAX_RUNS);
	for (;;) {
		int e = co_r_next(&reader);
		if (e <= 0)
			die(e < 0 ? reader.err : "image ends early");
		unsigned t = reader.hdr.type;
		if (t == CO_R_THREAD) {
			take_record(rc.threads, &rc.nthreads, CO_MAX_THREADS, sizeof(struct co_thread), "threads");
		} else if (t == CO_R_TIMER) {
			take_record(rc.timers, &rc.ntimers, CO_MAX_TIMERS, sizeof(struct co_timer), "timers");
		} else if (t == CO_R_LOCK) {
			take_record(rc.locks, &rc.nlocks, CO_MAX_LOCKS, sizeof(struct co_lock), "file locks");
		} else if (t == CO_R_SEMUNDO) {
			take_record(rc.semadj, &rc.nsemadj, CO_SEMUNDO_MAX, sizeof(struct co_semadj),
				    "SEM_UNDO adjustments");
		} else if (t == CO_R_FDOWNER) {
			take_record(rc.owners, &rc.nowners, CO_MAX_FDS, sizeof(struct co_fdowner), "descriptor owners");
		} else if (t == CO_R_DNOTIFY) {
			take_record(rc.dnotify, &rc.ndnotify, CO_DNOTIFY_MAX, sizeof(struct co_dnotify), "dnotify watches");
		} else if (t == CO_R_SECCOMP) {
			uint64_t len = reader.hdr.len < CO_SECCOMP_MAX ? reader.hdr.len : CO_SECCOMP_MAX;
			if (co_seccomp_take(&rc, zalloc(next, len)))
				die(err);
		} else if (t == CO_R_FD) {
			take_fd();
		} else if (t == CO_R_VMA) {
			take_region();
		} else if (t == CO_R_AIO) {
			if (co_aio_take(&rc))
				die(err);
		} else if (t == CO_R_COWMAP) {
			read_cowmap();
		} else if (t == CO_R_PAGEMAP || t == CO_R_PARENTMAP || t == CO_R_END) {
			co_r_unread(&reader); /* co_mem_restore() reads from here on */
			return;
		} else {
			co_fmt(err, sizeof(err), "%s: byte %lu: unexpected %s record", reader.name,
			       (unsigned long)reader.rec_off, co_rec_name(t));
			die(err);
		}
	}
}

static struct co_mproc *procs;
static int nprocs;
static char gen_dir[CO_PATH];
static char image_dir[CO_PATH];	/* where to open compressed images: FIFOs the CLI fills */
static int plan_fd = -1;
static int imgfd_high = -1;

/* The generation's process list: who is whose child, sessions, groups, zombies. */
static void load_manifest(uint64_t *next)
{
	char path[CO_PATH + 16];
	static struct co_reader mr;
	static struct co_manifest m;
	co_fmt(path, sizeof(path), "%s/manifest", gen_dir);
	int fd = (int)co_open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		co_fmt(err, sizeof(err), "cannot open %s (errno %d)", path, -fd);
		die(err);
	}
	co_r_init(&mr, fd, path);
	procs = zalloc(next, sizeof(struct co_mproc) * CO_TABLE_SLOTS);
	if (co_manifest_read(&mr, &m, procs, CO_TABLE_SLOTS, &nprocs))
		die(mr.err);
	co_close(fd);
	rc.bind = (struct co_bind){ m.group_id, m.generation, 0, 0 };
}

/* The restore plan init made: shared objects on inherited descriptors. */
static void load_plan(uint64_t *next)
{
	struct co_plan_hdr h;
	if (plan_fd < 0 || co_pread(plan_fd, &h, sizeof(h), 0) != sizeof(h) || h.magic != CO_PLAN_MAGIC ||
	    h.n > CO_MAX_PLAN)
		die("the restore plan from init is missing or damaged");
	rc.plan = zalloc(next, sizeof(struct co_plan_ent) * (h.n + 1));
	rc.nplan = h.n;
	long want = (long)(sizeof(struct co_plan_ent) * h.n);
	if (h.n && co_pread(plan_fd, rc.plan, want, sizeof(h)) != want)
		die("the restore plan from init is truncated");
	co_close(plan_fd);
	/* everything below the shared objects is the program's to have */
	co_sys3(SYS_close_range, 0, (unsigned)(h.lo > 0 ? h.lo - 1 : 0), 0);
	rc.plan_lo = h.lo;
	rc.plan_hi = h.hi;
}

static struct co_mproc *self_entry; /* ours in the manifest */

/*
 * The ids the process gets back (rc.ids): the manifest's, which the
 * coordinator read while it was parked, else (an older manifest, or a
 * process of the coordinator's uid with many groups) its image's.  From
 * here on its files are opened as it would open them (co_creds_files).
 */
static void take_ids(void)
{
	struct co_ids *ids = &rc.ids;
	co_memset(ids, 0, sizeof(*ids));
	ids->dumpable = proc.creds ? proc.dumpable : -1;
	if (self_entry && self_entry->creds) {
		if (self_entry->ngroups > CO_MPROC_GROUPS)
			die("damaged manifest: too many supplementary groups");
		co_memcpy(ids->uid, self_entry->uid, sizeof(ids->uid));
		co_memcpy(ids->gid, self_entry->gid, sizeof(ids->gid));
		ids->ngroups = self_entry->ngroups;
		ids->groups = self_entry->groups;
		ids->valid = 1;
		ids->caps = self_entry->caps == 1;
		ids->cap_inh = self_entry->cap_inh;
		ids->cap_prm = self_entry->cap_prm;
		ids->cap_eff = self_entry->cap_eff;
		ids->cap_bnd = self_entry->cap_bnd;
		ids->cap_amb = self_entry->cap_amb;
		ids->audit = self_entry->audit == 1;
		ids->loginuid = self_entry->loginuid;
	} else if (proc.creds) {
		if (proc.ngroups > CO_MAX_GROUPS) {
			co_fmt(err, sizeof(err), "%s: damaged process record (%u supplementary groups)", image_name,
			       proc.ngroups);
			die(err);
		}
		co_memcpy(ids->uid, proc.uid, sizeof(ids->uid));
		co_memcpy(ids->gid, proc.gid, sizeof(ids->gid));
		ids->ngroups = proc.ngroups;
		ids->groups = proc.groups;
		ids->valid = 1;
	}
	long r = co_creds_files(ids, 1);
	if (r) {
		co_fmt(err, sizeof(err), "pid %d: cannot open its files as uid %u (errno %d)", proc.pid, ids->uid[3],
		       (int)-r);
		die(err);
	}
}

static void become_process(struct co_mproc *me) __attribute__((noreturn));
static uint64_t next_free;
static uint64_t image_free;	/* next_free before the image's tables: a child forked later starts there again */
static void fork_child(struct co_mproc *c, void (*fn)(void *));

/*
 * A child, forked by its parent's restorer once the parent's memory is
 * back (fork_children): it has that memory copy-on-write, and keeps what
 * it shared with the parent at the checkpoint (mem.c).  Of the rest of
 * the parent it drops what the parent had made its own: descriptors
 * below the shared objects, its image, its file ids, its tables.
 */
static void child_entry(void *arg)
{
	co_creds_files(&rc.ids, 0);
	co_close(imgfd_high);
	co_sys3(SYS_close_range, 0, (unsigned)(rc.plan_lo > 0 ? rc.plan_lo - 1 : 0), 0);
	/* nothing of what its parent read from its own image: owners, pidfds, locks and dnotify watches were the parent's */
	rc.nthreads = rc.nvmas = rc.ntimers = rc.nlocks = rc.nowners = rc.nseccomp = rc.nsemadj = rc.naio = 0;
	rc.ndnotify = 0;
	rc.ncow = rc.naio_events = 0;
	co_pidfds_forget();
	rc.inherited = 1;
	next_free = image_free;
	become_process(arg);
}

/* The live children, with their recorded pids, from this process's restored memory. */
static void fork_children(struct co_mproc *me)
{
	for (int i = 0; i < nprocs; i++)
		if (procs[i].ppid == me->pid && procs[i].pid != me->pid && !(procs[i].flags & CO_MP_ZOMBIE))
			fork_child(&procs[i], child_entry);
}

static int live_in_manifest(int pid);
static void join_group(struct co_mproc *me);
static void found_orphan_group(struct co_mproc *me);
static void zombie_entry(void *arg);

/*
 * A zombie child waits to be made until its parent's live children exist
 * when its group's leader is one of those (or any live process but its
 * parent): a shell's pipeline whose second command exited first.  A zombie
 * that leads its own group is made first: live members join it.
 */
static int zombie_waits(const struct co_mproc *z, const struct co_mproc *parent)
{
	return z->pgid > 0 && z->pgid != z->pid && z->pgid != parent->pid && live_in_manifest(z->pgid);
}

/* The zombie children of me made now (late: after its live children, see zombie_waits). */
static void fork_zombies(struct co_mproc *me, int late)
{
	for (int i = 0; i < nprocs; i++)
		if (procs[i].ppid == me->pid && procs[i].pid != me->pid && (procs[i].flags & CO_MP_ZOMBIE) &&
		    zombie_waits(&procs[i], me) == late)
			fork_child(&procs[i], zombie_entry);
}

/*
 * A process whose parent is init or gone, in the session a zombie led: it
 * cannot join that session, only be born in it, so the zombie makes it
 * (co_mproc_maker) from the restorer state it has, the same a process init
 * makes has once its plan and manifest are read, and it is reparented to
 * init when the zombie exits, as it was.
 */
static void session_member_entry(void *arg)
{
	rc.inherited = 0;
	rc.ncow = 0;
	become_process(arg);
}

/* A child that had exited and was not yet waited for: exit again the same way. */
static void zombie_entry(void *arg)
{
	struct co_mproc *z = arg;
	int st = z->exit_status;
	/* a session it led first, and the members it must give birth to; else its group */
	if (z->sid == z->pid) {
		co_sys0(SYS_setsid);
		for (int i = 0; i < nprocs; i++)
			if (!(procs[i].flags & CO_MP_ZOMBIE) && co_mproc_maker(procs, nprocs, i) == z->pid)
				fork_child(&procs[i], session_member_entry);
	} else if (z->pgid == z->pid) {
		co_sys2(SYS_setpgid, 0, 0);
	} else {
		found_orphan_group(z);
		join_group(z);
	}
	if ((st & 0x7f) == 0)
		co_exit_group((st >> 8) & 0xff);
	int sig = st & 0x7f;
	struct co_ksigaction dfl = { 0 };
	co_sigaction(sig, &dfl, 0);
	uint64_t none = 0;
	co_sigprocmask(SIG_SETMASK, &none, 0);
	co_tgkill((int)co_getpid(), (int)co_gettid(), sig);
	co_exit_group(128 + sig);
}

/* One millisecond: the unit of the waits for other processes being restored. */
static void nap(void)
{
	struct co_timespec ms = { 0, 1000000 };
	co_nanosleep(&ms);
}

/*
 * Wait until child pid has exited (reap it unless keep), then drop the
 * SIGCHLD it sent: the image has the process's real pending signals.
 */
static void wait_exited(int pid, int keep)
{
	struct { int32_t signo, errno_, code, pad; char rest[112]; } si;
	co_sys5(SYS_waitid, 1 /* P_PID */, pid, (long)&si, 4 /* WEXITED */ | (keep ? 0x01000000 /* WNOWAIT */ : 0), 0);
	uint64_t chld = 1ULL << (SIGCHLD - 1);
	struct co_timespec zero = { 0, 0 };
	co_sys4(SYS_rt_sigtimedwait, (long)&chld, 0, (long)&zero, 8);
}

/* Create one child process with its recorded pid, running fn(child) on a fresh stack: its pid, or -errno. */
static long make_child(struct co_mproc *c, void (*fn)(void *))
{
	/* two stack areas: the child starts on the one we are not using */
	uint64_t here = (uint64_t)&c;
	uint64_t a = CO_RESTORER_BASE + (16UL << 20) + STACK_SIZE - 65536 * 2;
	uint64_t top = (here >= a && here < a + 65536) ? a + 65536 * 2 : a + 65536;
	struct clone_args ca;
	co_memset(&ca, 0, sizeof(ca));
	pid_t want = c->pid;
	ca.exit_signal = SIGCHLD;
	ca.set_tid = (uint64_t)&want;
	ca.set_tid_size = 1;
	ca.stack = top - 65536;
	ca.stack_size = 65536;
	/* a page-reading helper of a process restored meanwhile may hold the pid for a moment */
	return co_clone3_set_tid(&ca, fn, c);
}

/* make_child, or the restore fails; a zombie is left to its parent's wait. */
static void fork_child(struct co_mproc *c, void (*fn)(void *))
{
	long r = make_child(c, fn);
	if (r < 0) {
		co_fmt(err, sizeof(err), "cannot recreate process %d (errno %ld)", c->pid, -r);
		die(err);
	}
	if (c->flags & CO_MP_ZOMBIE)
		wait_exited(c->pid, 1); /* it stays a zombie, to be waited for by the program */
}

/* Join the recorded process group; its leader may still be on its way. */
static void join_group(struct co_mproc *me)
{
	if (me->pgid <= 0 || me->pgid == (int)co_sys1(SYS_getpgid, 0))
		return;
	for (int tries = 0; tries < 2000; tries++) {
		long r = co_sys2(SYS_setpgid, 0, me->pgid == me->pid ? 0 : me->pgid);
		if (r == 0 || r != -EPERM)
			return;
		nap();
	}
}

static void restore_self(struct co_mproc *me);

static int in_manifest(int pid)
{
	for (int i = 0; i < nprocs; i++)
		if (procs[i].pid == pid)
			return 1;
	return 0;
}

static int live_in_manifest(int pid)
{
	for (int i = 0; i < nprocs; i++)
		if (procs[i].pid == pid && !(procs[i].flags & CO_MP_ZOMBIE))
			return 1;
	return 0;
}

/*
 * Whether me lends its pid to a group it has left: it made the group, then
 * moved to another of its session, and the group lives on in others.  It
 * founds that group first and keeps it until they have joined (lend_group).
 */
static int lends_group(const struct co_mproc *me)
{
	if (me->pgid == me->pid)
		return 0;
	for (int i = 0; i < nprocs; i++)
		if (procs[i].pgid == me->pid && procs[i].pid != me->pid)
			return 1;
	return 0;
}

/* The group me lent is all there (up to 2 s): me may go to its own. */
static void lend_group(const struct co_mproc *me)
{
	for (int i = 0; i < nprocs; i++)
		for (int tries = 0; procs[i].pgid == me->pid && procs[i].pid != me->pid && tries < 2000 &&
				    co_sys1(SYS_getpgid, procs[i].pid) != me->pid;
		     tries++)
			nap();
}

/* The stand-in leader: make the group, stay until our parent has joined it. */
static void keeper_entry(void *arg)
{
	struct co_mproc *k = arg;
	co_sys2(SYS_setpgid, 0, 0);
	int parent = (int)co_getppid();
	for (int tries = 0; tries < 2000 && co_sys1(SYS_getpgid, parent) != k->pid; tries++)
		nap();
	co_exit_group(0);
}

/*
 * A process group whose leader had exited: nobody has the group's number
 * as pid, and a group cannot be joined before it exists.  Its first member
 * to come (a zombie too: the group may have no live member left) makes a
 * stand-in child with that pid which founds the group, joins it, and lets
 * the stand-in go; the group lives on in its members, a zombie's included.
 * A group that exists already (a member came first) is joined; a stand-in
 * whose pid is taken was another member's, which made the group.
 */
static void found_orphan_group(struct co_mproc *me)
{
	static struct co_mproc keeper;
	int g = me->pgid;
	if (g <= 0 || g == me->pid || in_manifest(g) || co_sys2(SYS_setpgid, 0, g) == 0)
		return;
	/* an earlier live member does it; a zombie cannot wait for one (its parent waits for it) */
	for (int i = 0; i < nprocs && !(me->flags & CO_MP_ZOMBIE); i++)
		if (procs[i].pgid == g && procs[i].pid < me->pid && !(procs[i].flags & CO_MP_ZOMBIE))
			return;
	co_memset(&keeper, 0, sizeof(keeper));
	keeper.pid = keeper.pgid = g;
	if (make_child(&keeper, keeper_entry) < 0)
		return;
	for (int tries = 0; tries < 2000 && co_sys1(SYS_getpgid, g) != g; tries++)
		nap();
	join_group(me);
	wait_exited(g, 0);
}

/*
 * A session leader whose session had a pseudo-terminal of the group as its
 * controlling terminal takes it again right after setsid(), before it
 * makes any child: a child has the terminal only if it was forked after.
 */
static void take_terminal(struct co_mproc *me)
{
	const struct co_plan_ent *e = co_plan_find(&rc, CO_PLAN_CTTY, me->pid);
	long r = e ? co_sys3(SYS_ioctl, e->src, 0x540E /* TIOCSCTTY */, 0) : 0;
	if (r < 0) {
		co_fmt(err, sizeof(err), "cannot take its pseudo-terminal back as controlling terminal (errno %ld)", -r);
		die(err);
	}
}

/*
 * The member of the terminal's foreground process group chosen at the
 * checkpoint makes its group the foreground again, once it is in it (every
 * signal is blocked here, so the kernel does not stop us with SIGTTOU).
 */
static void give_foreground(struct co_mproc *me)
{
	const struct co_plan_ent *e = co_plan_find(&rc, CO_PLAN_FGPG, me->pid);
	int pgid = e ? (int)e->dev : 0;
	long r = e ? co_sys3(SYS_ioctl, e->src, 0x5410 /* TIOCSPGRP */, (long)&pgid) : 0;
	if (r < 0) {
		co_fmt(err, sizeof(err), "cannot make process group %d the foreground of its pseudo-terminal again "
		       "(errno %ld)", pgid, -r);
		die(err);
	}
}

static void become_process(struct co_mproc *me)
{
	self_entry = me;
	/* a compressed image comes decompressed through a FIFO; messages name the stored file */
	rc.compressed = (me->flags & CO_MP_COMPRESSED) != 0;
	co_fmt(image_path, sizeof(image_path), "%s/%s", rc.compressed ? image_dir : gen_dir, me->image);
	co_fmt(image_shown, sizeof(image_shown), "%s/%s", gen_dir, me->image);
	co_fmt(image_name, sizeof(image_name), "%s%s", image_shown, rc.compressed ? ".zst" : "");
	set_stage(CO_RS_CHILDREN);
	if (me->sid == me->pid) {
		co_sys0(SYS_setsid);
		take_terminal(me);
	}
	/* a leader founds its group before its children, which may have to join it (also one it lends) */
	if (me->pgid == me->pid || lends_group(me))
		co_sys2(SYS_setpgid, 0, 0);
	/* the zombies now (most: zombie_waits); the live children once our memory is back (fork_children) */
	fork_zombies(me, 0);
	if (!lends_group(me)) {
		found_orphan_group(me);
		join_group(me);
	}
	give_foreground(me);
	restore_self(me);
	__builtin_unreachable();
}

static void restore(void *unused)
{
	(void)unused;
	next_free = CO_RESTORER_BASE + (16UL << 20) + STACK_SIZE;
	anonymize_self();

	rc.err = err;
	rc.errlen = sizeof(err);
	rc.proc = &proc;
	rc.r = &reader;
	rc.image = image_path;
	rc.shown = image_shown;
	rc.zone = CO_RESTORER_BASE;
	rc.zone_len = ZONE_SIZE;
	if (co_proc_restore_early(&rc))
		die(err);
	/* our descriptors go high, out of the program's way */
	int base = rc.fd_base;
	for (int i = 0; i < 3; i++) {
		long r = co_fcntl(i, F_DUPFD_CLOEXEC, base + 1 + i);
		rc.stdio[i] = r >= 0 ? (int)r : (int)co_open("/dev/null", O_RDWR | O_CLOEXEC, 0);
	}
	errfd = rc.stdio[2];
	if (report_fd >= 0) {
		long r = co_fcntl(report_fd, F_DUPFD_CLOEXEC, base + 4);
		co_close(report_fd);
		report_fd = r >= 0 ? (int)r : -1;
	}
	load_plan(&next_free);
	load_manifest(&next_free);
	rc.scratch = zalloc(&next_free, SCRATCH_SIZE);
	rc.scratch_len = SCRATCH_SIZE;
	for (int i = 0; i < nprocs; i++)
		if (procs[i].pid == (int)co_getpid())
			become_process(&procs[i]);
	co_fmt(err, sizeof(err), "pid %ld is not in the generation's manifest", co_getpid());
	die(err);
}

/* The rest, once this process has its pid, session, group and zombie children. */
static void restore_self(struct co_mproc *me)
{
	if (want_boost)
		co_boost();
	set_stage(CO_RS_FILES);
	int imgfd = (int)co_open(image_path, O_RDONLY | O_CLOEXEC, 0);
	if (imgfd < 0) {
		co_fmt(err, sizeof(err), "cannot open %s (errno %d)", image_name, -imgfd);
		die(err);
	}
	imgfd_high = (int)co_fcntl(imgfd, F_DUPFD_CLOEXEC, rc.fd_base + 8);
	co_close(imgfd);
	co_r_init(&reader, imgfd_high, image_name);
	reader.decompressed = rc.compressed;
	image_free = next_free;
	read_metadata(&next_free);
	if (proc.pid != (int)co_getpid()) {
		co_fmt(err, sizeof(err), "image is of pid %d but the restorer runs as pid %ld", proc.pid,
		       co_getpid());
		die(err);
	}
	/* before its memory, which is charged to the cgroup it is in */
	set_stage(CO_RS_CGROUPS);
	if (co_cgroup_restore(&rc))
		die(err);
	set_stage(CO_RS_MAP);
	if (co_mem_check(&rc))
		die(err);
	set_stage(CO_RS_MEMORY);
	if (co_mem_restore(&rc))
		die(err);
	set_stage(CO_RS_CHILDREN);
	fork_children(me);
	fork_zombies(me, 1);
	if (lends_group(me)) {
		lend_group(me);
		found_orphan_group(me);
		join_group(me);
	}
	/* restart --lazy: the lazy regions' userfaultfd to the filler, now that the children are made */
	if (co_lazy_handoff(&rc, sock_path))
		die(err);
	set_stage(CO_RS_ATTRS);
	if (co_proc_restore(&rc))
		die(err);
	/* its own undo list (the sets exist: init made them), before its threads, which share it */
	if (co_semundo_restore(&rc))
		die(err);

	struct co_resume *rs = (struct co_resume *)proc.agent_info;
	rs->magic = CO_RESUME_MAGIC;
	rs->zone = rc.zone;
	rs->zone_len = rc.zone_len;
	rs->generation = generation;
	co_strlcpy(rs->sock, sock_path, sizeof(rs->sock));

	/* the shared objects not taken by this process go; ours stay until the last jump */
	if (rc.plan_hi > rc.plan_lo)
		for (int fd = rc.plan_lo; fd < rc.plan_hi; fd++)
			co_close(fd);
	for (int i = 0; i < 3; i++)
		rc.own_fds[rc.nown_fds++] = rc.stdio[i];
	rc.own_fds[rc.nown_fds++] = imgfd_high;
	if (report_fd >= 0)
		rc.own_fds[rc.nown_fds++] = report_fd;
	set_stage(CO_RS_PIDFDS);
	if (co_pidfds_restore(&rc))
		die(err);
	/* the epoll items init left to us: on any of our descriptors, pidfds included */
	if (co_plan_epoll(&rc))
		die(err);
	set_stage(CO_RS_LOCKS);
	if (co_locks_restore(&rc) || co_dnotify_restore(&rc))
		die(err);
	if (co_root_restore(&rc))
		die(err);
	set_stage(CO_RS_THREADS);
	if (co_threads_restore(&rc))
		die(err);
	die("thread restore returned");
}

void co_restorer_main(long *sp)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	uint64_t all = ~0ULL;
	co_sigprocmask(SIG_SETMASK, &all, 0);
	read_env(argv + argc + 1);
	if (want_boost)
		co_boost();
	set_stage(CO_RS_START);
	if (argc != 5 && argc != 6)
		die("usage: cohort-restore GENERATION-DIR SOCKET GENERATION PLAN-FD [COMPRESSED-IMAGE-DIR]");
	co_strlcpy(gen_dir, argv[1], sizeof(gen_dir));
	co_strlcpy(image_dir, argc == 6 ? argv[5] : argv[1], sizeof(image_dir));
	plan_fd = (int)co_strtoul(argv[4], 0, 10);
	co_strlcpy(sock_path, argv[2], sizeof(sock_path));
	generation = co_strtoul(argv[3], 0, 10);

	/* the working area: stack and tables, right above our code */
	uint64_t zone = CO_RESTORER_BASE + (16UL << 20);
	long r = co_mmap((void *)zone, ZONE_SIZE - (16UL << 20), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
	if (r != (long)zone)
		die("cannot set up the restorer's working area");
	co_switch_stack((void *)(zone + STACK_SIZE), restore, 0);
}
