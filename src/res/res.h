/*
 * res.h - the interface of the resource files.  Each file in src/res/
 * handles one kind of kernel object, with its dump side (run by the agent
 * inside the checkpointed process, threads parked) and its restore side
 * (run by the restorer without libc) next to each other.
 */
#ifndef COHORT_RES_H
#define COHORT_RES_H

#include <stddef.h>
#include <stdint.h>
#include "image.h"
#include "proto.h"

#define CO_MAX_FDS 4096
#define CO_MAX_LOCKS 1024
/* regions of one process: 32768 (35 MiB of tables in the agent and the restorer, untouched until used) */
#define CO_MAX_VMAS 32768
#define CO_MAX_THREADS 1024
#define CO_MAX_TIMERS 512
#define CO_STREAMS 2 /* page-data streams written and read in parallel */
#define CO_SEMUNDO_MAX 256 /* semaphores with a SEM_UNDO adjustment, per process (src/agent/semundo.c) */
#define CO_DNOTIFY_MAX 64 /* dnotify watches (fcntl F_NOTIFY) per process (src/agent/dnotify.c) */

/*
 * May region v come lazily at a `restart --lazy`?  Private anonymous
 * memory, not shared and not the stack that grows down (the kernel grows
 * it under the registration, for nothing).  The restorer (src/restore/
 * lazy.c) and the check of a chain before it (src/cli/chain.c) ask the same.
 */
static inline int co_vma_lazy_kind(const struct co_vma *v)
{
	return v->kind == CO_V_ANON && !(v->flags & (CO_VF_GROWSDOWN | CO_VF_SHARED | CO_VF_LOCKED));
}
#define CO_AIO_MAX 64 /* aio contexts (io_setup) per process (src/agent/aio.c) */
#define CO_AIO_EVENTS_MAX 65536 /* unreaped aio events per process, all rings together (2 MiB) */

struct co_dumpctx {
	struct co_writer *w;
	char *err;
	size_t errlen;
	int pid;
	int sig;
	const struct co_stdio_id *stdio;	/* the group's outside stdio */
	const uint8_t *stdio_marks;		/* this process's descriptors that share a file stdio */
	const int *shared_fds;			/* its descriptors of files and directories the group shares (DUMP) */
	int nshared_fds;
	int skip_fd[12];				/* the agent's own descriptors (co_dump_write: with DUMP's) */
	int nskip_fd;
	uint64_t skip_lo[4], skip_hi[4];	/* the agent's own mappings: table, co_dirty_areas() */
	int nskip;
	uint64_t vol[12];			/* addresses in memory that changes while we dump */
	int nvol;
	uint64_t agent_info;
	struct co_siginfo *pending;		/* signals queued for the whole process */
	int npending;
	uint64_t page_bytes;			/* page data written */
	uint64_t parent;			/* incremental against this generation; 0: a full image */
	uint32_t nfds, nvmas;
	const struct co_vma *vmas;		/* the regions (mem.c), whose pages pages.c writes */
	int nstreams;
	int ppid, pgid, sid;			/* read by the process itself (a snapshot child has others) */
	char comm[16];				/* likewise: a snapshot child renames itself */
	int snapshot;				/* written by a snapshot child: what is written may be dropped */
	int cowmap_all;				/* tests: the copy-on-write map unfiltered (CO_CKPT_COWMAP_ALL) */
	int advice;				/* read the regions' madvise flags from smaps (agent.h) */
	uint32_t advice_epoch;			/* ... and whether a wrapper may have changed them (agent.h) */
	uint64_t flags_gen;			/* the write tracker's collection of this pause (dirty.h) */
	int (*region_kept)(uint64_t since, uint64_t start, uint64_t end); /* co_dirty_region_kept */
	uint32_t mlockall;			/* MCL_FUTURE and MCL_ONFAULT of its last mlockall (agent.h) */
	int fsize_raised;			/* the writer raised RLIMIT_FSIZE (dump.c): the program's is fsize */
	struct { uint64_t cur, max; } fsize;
	int forked;				/* the writer is a snapshot child (co_mem_fork_begin) */
	int behind;				/* a post-copy stop: lazy page data hashed, written later (CO_RF_BEHIND) */
	struct co_timer timers[CO_MAX_TIMERS];	/* POSIX timers, read before a snapshot (it has none) */
	int ntimers;
	struct co_pattrs attrs;			/* process-wide attributes, read before a snapshot (attrs.c) */
	struct co_pattrs8 attrs8;		/* format 8's, read with attrs */
	struct co_pcpu cpu;			/* its CPU times as the program sees them (agent/cpuclock.c) */
	struct co_semadj semadj[CO_SEMUNDO_MAX];	/* SEM_UNDO adjustments, the agent's (semundo.c) */
	int nsemadj;
	struct co_dnotify dnotify[CO_DNOTIFY_MAX];	/* dnotify watches, the agent's (agent/dnotify.c) */
	int ndnotify;
	struct co_aio aio[CO_AIO_MAX];		/* aio rings, read in the pause (src/agent/aio.c) */
	int naio;
	const struct co_aio_event *aio_events;	/* their unreaped events, ring after ring (the agent's buffer) */
	const char *root;			/* its root (chroot) from the group's, or "" (agent/root.c) */
};

/*
 * The ids a restored process is given back: the manifest's (the
 * coordinator saw them) when it has them, else its image's.
 */
struct co_ids {
	int valid;			/* 0: none recorded (older images): the restorer's stay */
	uint32_t uid[4], gid[4];	/* real, effective, saved, filesystem */
	uint32_t ngroups;
	const uint32_t *groups;
	int32_t dumpable;		/* PR_GET_DUMPABLE at the checkpoint; -1: not recorded */
	int caps;			/* 1: the capability sets below were recorded (the manifest's) */
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	int audit;			/* 1: the login uid below was recorded (the manifest's) */
	uint32_t loginuid;		/* /proc/self/loginuid at the checkpoint */
};

struct co_rstctx {
	struct co_reader *r;
	const char *image;	/* path to open the process image at (page streams are named after it) */
	const char *shown;	/* path of the stored image, for messages (without .zst) */
	int compressed;		/* stored as .zst: image is a FIFO of the decompressed stream */
	struct co_bind bind;	/* the generation's group and number (its manifest): what its files are bound to */
	char *err;
	size_t errlen;
	struct co_proc *proc;
	struct co_thread *threads;
	int nthreads;
	struct co_vma *vmas;
	struct co_fstamp *vstamps;	/* what the file of each region was (not recorded: no check) */
	int nvmas;
	struct co_timer *timers;
	int ntimers;
	struct co_lock *locks;	/* file locks held through its descriptors */
	int nlocks;
	struct co_fdowner *owners;	/* SIGIO owners and signals of its descriptors */
	int nowners;
	struct co_dnotify *dnotify;	/* dnotify watches of its descriptors */
	int ndnotify;
	struct co_semadj *semadj;	/* SEM_UNDO adjustments to make again */
	int nsemadj;
	struct co_aio *aio;		/* aio rings to make again (CO_V_AIO regions) */
	int naio;
	struct co_aio_event *aio_events;	/* their unreaped events, ring after ring */
	uint32_t naio_events;
	int stdio[3];		/* the restart caller's stdio, kept on high numbers */
	int fd_base;		/* the restorer's own descriptors live at and above this */
	uint64_t zone, zone_len;	/* the restorer's own memory */
	char *scratch;		/* 1 MiB of zone memory for copying */
	size_t scratch_len;
	int own_fds[8];		/* closed by the last thread before it jumps */
	int nown_fds;
	struct co_plan_ent *plan;
	uint32_t nplan;
	int plan_lo, plan_hi;	/* inherited descriptors holding the shared objects */
	struct co_ids ids;	/* the ids it is given back (co_creds_*) */
	/*
	 * Pages it shared copy-on-write at the checkpoint (CO_R_COWMAP), by
	 * address; inherited: the process was forked from its restored parent,
	 * whose memory it has (restorer.c), so it may keep those pages.
	 */
	struct co_run *cow;
	uint32_t ncow;
	int inherited;
	int nseccomp;		/* seccomp filter chains of its threads (CO_R_SECCOMP, seccomp.c) */
	/*
	 * restart --lazy (src/restore/lazy.c): asked for; some regions are;
	 * which (by region); pages left to the parent image (from its chain),
	 * which a filler must bring even where no region is lazy.
	 */
	int want_lazy;
	int lazy;
	const uint8_t *lazy_vma;
	int parent_left;
	int lazy_none;		/* tests (COHORT_LAZY_NONE): no region lazy, every page eager */
};

#include "util.h"
#define DERR(d, ...) co_err((d)->err, (d)->errlen, __VA_ARGS__)

#include "kinds/plan.h" /* the init -> restorer plan: struct co_plan_ent, co_plan_fd() */

/* proc.c: process-wide attributes */
int co_proc_dump(struct co_dumpctx *d, int nthreads);
int co_proc_restore_early(struct co_rstctx *rc);	/* rlimits, before descriptors */
int co_proc_restore(struct co_rstctx *rc);		/* after memory: mm, exe, cwd, signals */
int co_root_restore(struct co_rstctx *rc);		/* its root (chroot), after everything by path */
/*
 * The process's ids (proc.c).  co_creds_files(ids, 1) makes the restorer
 * open files as the program would (its groups and filesystem ids) and
 * co_creds_files(ids, 0) as itself again (for its image files); 0 or
 * -errno.  co_creds_plan, once in the restorer before it makes any
 * thread, notes which ids differ from the restorer's (which every thread
 * it makes inherits); co_creds_set, in each thread for itself, sets those
 * (0 or -errno); co_creds_dumpable, once every thread has, puts back the
 * dumpable flag their changes of uid cleared.
 */
int co_creds_files(const struct co_ids *ids, int program);
/* For a message about a file the program could not open (-errno err): "" or why that may be. */
const char *co_creds_why(const struct co_ids *ids, long err);
void co_creds_plan(const struct co_ids *ids);
int co_creds_set(const struct co_ids *ids, int64_t securebits);
void co_creds_dumpable(const struct co_ids *ids);

/* threads.c */
void co_thread_collect(struct co_thread *t, int ours);
int co_signals_collect(struct co_siginfo *out, int max, int ours, int own);
/* Where /proc cannot be read (a chroot), the signals the manager saw queued (own: for the calling thread), or NULL. */
extern uint64_t (*co_signals_seen)(int own);
/* An rseq area of a thread that it could not find (rseq_collect) refuses the checkpoint: 0, or -1 with err. */
int co_threads_check(struct co_dumpctx *d, const struct co_thread *const *t, int n);
int co_threads_dump(struct co_dumpctx *d, const struct co_thread *const *t, int n);
/* syscall(SYS_rseq, ...) of the program (wrap.c), noted: the kernel's answer, -errno on failure. */
long co_rseq_call(const long *a);
/* Never returns on success: the calling (leader) thread jumps into the program. */
int co_threads_restore(struct co_rstctx *rc);

/*
 * attrs.c: scheduling, affinity, interval timers and other attributes of
 * the process and of each thread.  co_tattrs_restore: 0, or -errno with
 * *what naming what failed.
 */
void co_tattrs_collect(struct co_tattrs *a, struct co_tattrs8 *a8);
int co_pattrs_collect(struct co_dumpctx *d);
int co_pattrs_restore(struct co_rstctx *rc);
int co_itimers_restore(struct co_rstctx *rc);
int co_tattrs_restore(const struct co_thread *t, const char **what);
void co_tattrs_restore_late(const struct co_thread *t);

/*
 * cgroup.c: the cgroups of the process, read with the process-wide
 * attributes (co_cgroup_collect, which refuses threads in other cgroups)
 * and joined again before its memory is restored (co_cgroup_restore).
 */
int co_cgroup_collect(struct co_dumpctx *d);
int co_cgroup_restore(struct co_rstctx *rc);

/*
 * semundo.c: the process's SEM_UNDO adjustments, which the agent keeps
 * (src/agent/semundo.c fills d->semadj); made again by the restorer, in
 * the process itself before its threads exist, with semaphore values
 * unchanged (0, or -1 with rc->err).
 */
int co_semundo_dump(struct co_dumpctx *d);
int co_semundo_restore(struct co_rstctx *rc);

/*
 * aio.c: the aio contexts (io_setup) of the process.  The agent reads the
 * rings in the pause (src/agent/aio.c fills d->aio, once none of their
 * requests is in flight); each goes into the image as one CO_R_AIO record
 * with its unreaped events.  The restorer makes every context again at
 * its ring's address (co_aio_restore_all, from co_mem_restore, before
 * the other regions are mapped).
 */
/* An aio ring as the kernel lays it out (fs/aio.c: struct aio_ring), then its slots. */
struct co_aio_ring {
	uint32_t id, nr, head, tail, magic, compat_features, incompat_features, header_length;
	struct co_aio_event io_events[];
};
#define CO_AIO_RING_MAGIC 0xa10a10a1u

int co_aio_dump(struct co_dumpctx *d);
/* How the agent's ring at start is saved: CO_V_AIO, or CO_V_DELETED for a copy inherited through fork. */
int co_aio_ring_kind(uint64_t start);
int co_aio_take(struct co_rstctx *rc);
int co_aio_restore_all(struct co_rstctx *rc);

/* timers.c: POSIX timers; restored by the main thread once every thread exists */
/*
 * Overruns (timers.c, "Overruns"): co_timers_pre reads, before a thread
 * takes its queue, the count of each timer whose signal is in queued;
 * co_timer_taken, for each signal taken: 0, put it back; 1, the timer was
 * armed again and queues it itself (keep it in the image, do not put it
 * back); 2, that re-queued one taken again (armed again too: drop it, take
 * no more of its number).  co_timer_overrun: what timer_getoverrun()
 * answers the program, given the kernel's answer.
 */
struct co_timer_pre {
	int n;
	struct { int32_t id, clock, overrun, retaken; } t[32];
};
void co_timers_pre(struct co_timer_pre *pre, uint64_t queued);
int co_timer_taken(const struct co_siginfo *si, struct co_timer_pre *pre, int own);
int co_timer_overrun(int id, int kernel);
void co_timers_forked(void);
/* restorer: whether si, queued at the checkpoint, is the own signal of a timer that queues it again itself */
int co_timer_requeued(const struct co_rstctx *rc, const struct co_siginfo *si);
int co_timers_collect(struct co_dumpctx *d);
int co_timers_dump(struct co_dumpctx *d);
int co_timers_restore(struct co_rstctx *rc);

/* files.c: descriptors */
int co_files_collect(struct co_dumpctx *d);
int co_files_dump(struct co_dumpctx *d);
int co_files_flocks(int posix);
int co_files_posix_set(int take, char *err, size_t errlen);
int co_files_restore_one(struct co_rstctx *rc, const struct co_fd *f, const struct co_fstamp *st);
/*
 * The file fd, opened or mapped again by path, is the one the checkpoint
 * saw (st; not recorded: no check): its size and mtime.  0, or -1 with
 * "pid N: WHAT changed since the checkpoint (...)" in rc->err.
 */
int co_file_same(struct co_rstctx *rc, int fd, const struct co_fstamp *st, const char *what);
/* the working directory cwd (as recorded), or the deleted one init made again; 0 or -errno */
long co_files_chdir(struct co_rstctx *rc, const char *cwd);
/* the locks read with the descriptors (CO_R_LOCK), taken again once nothing closes a file of the process */
int co_locks_restore(struct co_rstctx *rc);
/* the SIGIO owners (CO_R_FDOWNER), set once every thread exists and has its ids */
int co_owners_restore(struct co_rstctx *rc);
/*
 * The dnotify watches, once nothing of the restorer's closes a descriptor
 * of the process any more (a close of any descriptor of a watched file
 * removes the watch), before the SIGIO owners: 0, or -1 with err.
 */
int co_dnotify_restore(struct co_rstctx *rc);

/*
 * pidfd.c: pidfds of the group's processes.  co_pidfd_describe (dump)
 * records the pid one refers to, or refuses one of a process outside the
 * group or ended; co_pidfd_later (restore) keeps the descriptor for
 * co_pidfds_restore, which opens them again once the other processes
 * exist (0 or -1 with rc->err).
 */
int co_pidfd_describe(struct co_dumpctx *d, struct co_fd *f);
int co_pidfd_later(struct co_rstctx *rc, const struct co_fd *f);
int co_pidfds_restore(struct co_rstctx *rc);
/* A child forked from its parent restorer (copy-on-write memory): the parent's pidfds are not its own. */
void co_pidfds_forget(void);
/*
 * seccomp.c: the filter chains the coordinator read, as CO_R_SECCOMP
 * records.  co_seccomp_dump copies them from fd (DUMP's; -1: none) into
 * the image; co_seccomp_take keeps the current record in buf (room for
 * CO_SECCOMP_MAX bytes, or its length); co_seccomp_install, a thread's
 * last system call before its jump, installs thread tid's chain (a chain
 * of every thread: the main thread, for all); 0 or -errno.
 */
int co_seccomp_dump(struct co_dumpctx *d, int fd);
int co_seccomp_take(struct co_rstctx *rc, void *buf);
long co_seccomp_install(const struct co_rstctx *rc, int tid, int main_thread);
/* restorer.c: a restore that cannot go on (a thread's last steps): the one line, and the process ends */
void co_restore_die(const char *msg) __attribute__((noreturn));
/* restorer.c: a thread reached a stage of report.h (the switch COHORT_FAULT may strike there) */
void co_restore_reached(unsigned stage);

/* mem.c: the address space */
int co_mem_collect(struct co_dumpctx *d);
/*
 * In the pause, before the rest is collected: smaps read beside it, when
 * the program has set madvise flags (advice) and the flags of the last
 * pause may not do (epoch: co_agent.advice_epoch; last: co_dirty_last());
 * co_mem_collect waits for it, and so must any way out of the pause
 * before that (end).
 */
void co_mem_early_begin(int advice, uint32_t epoch, uint64_t last);
int co_mem_early_end(void);
/* After a pre-copy's arming collection gen, the program running: the flags read ahead for the pause */
void co_mem_flags_ahead(int advice, uint32_t epoch, uint64_t gen);
int co_mem_dump_vmas(struct co_dumpctx *d);
int co_mem_dump_pages(struct co_dumpctx *d, struct co_writer **w, int nstreams);
/*
 * pages.c: in the pause, before a snapshot is forked, the pages of private
 * anonymous memory this process shares with another (not mapped by it
 * alone), noted for co_pages_dump_shared to write as CO_R_COWMAP.
 */
void co_pages_note_shared(struct co_dumpctx *d);
int co_pages_dump_shared(struct co_dumpctx *d);
/*
 * Around the snapshot fork, in the process: the program's MADV_DONTFORK
 * and MADV_WIPEONFORK regions are made to fork as they are (begin), and
 * get their flags back as soon as the fork has returned (end).
 */
void co_mem_fork_begin(struct co_dumpctx *d);
void co_mem_fork_end(struct co_dumpctx *d);
int co_mem_check(struct co_rstctx *rc);		/* before anything is destroyed */
int co_mem_restore(struct co_rstctx *rc);	/* maps regions and reads pages */
int co_mem_lock(struct co_rstctx *rc);		/* locks them again (mlock, mlockall), late */
int co_pages_restore(struct co_rstctx *rc);	/* pages.c: every page stream read into place */
/*
 * src/restore/lazy.c (restart --lazy): before the pages are read, which
 * regions come lazily (registered with a probe userfaultfd; kept[i]: region
 * i is kept from the parent, never lazy); once the children are made, the
 * filler's userfaultfd to the coordinator at sock.  0, or -1 with rc->err.
 */
int co_lazy_begin(struct co_rstctx *rc, const uint8_t *kept);
int co_lazy_handoff(struct co_rstctx *rc, const char *sock);

#endif
