/*
 * agent.h - state shared by the parts of libcohort.so, the agent that
 * lives inside every process of a group.
 */
#ifndef COHORT_AGENT_H
#define COHORT_AGENT_H

#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include "image.h"
#include "proto.h"
#include "resume.h"
#include "res.h"
#include "sys.h"


enum co_tstate { CO_TS_FREE = 0, CO_TS_SIGNALLED, CO_TS_PARKED, CO_TS_GONE };

/* What restarts took from a thread's CPU clocks: the program's time minus the kernel's (cpuclock.c). */
struct co_cpuoff {
	int64_t ns;			/* CLOCK_THREAD_CPUTIME_ID */
	int64_t utime_ns, stime_ns;	/* getrusage(RUSAGE_THREAD) */
};

/* One thread of this process during a checkpoint. */
struct co_tslot {
	int tid;
	int state;
	struct co_thread rec;
	/*
	 * A thread whose mask blocks our signal: the coordinator stops it
	 * with ptrace, unblocks the signal in its mask and writes here, while
	 * it is stopped, the mask it had (pt_orig) and the one it set
	 * (pt_set); the handler puts pt_orig back when it returns.
	 */
	uint64_t pt_orig, pt_set;
	uint64_t pt_check;	/* CO_TRACE_CHECK: the coordinator writes only where it finds this */
	long trace_at_ms;	/* when the coordinator is to look at it (again); -1: asked for good */
	struct co_cpuoff cpu;	/* after a restart: its offsets, which the thread measured itself */
	uint64_t seen_pnd;	/* its queue as the manager saw it (SigPnd), for a thread in a chroot (co_signals_seen) */
};


struct co_agent {
	int active;		/* registered with a coordinator */
	int sig;		/* checkpoint signal */
	int sock;		/* the manager's connection during a checkpoint (its own table), or -1 */
	int pid;
	int slot;
	struct co_table *table;
	char sock_path[256];

	/* checkpoint state */
	struct co_tslot threads[CO_MAX_THREADS];
	int nthreads;
	int manager_tid;
	int parked;		/* futex: threads parked so far */
	int arrived;		/* futex: threads back in the handler after a restart */
	int hold;		/* futex: threads wait while release == hold */
	int release;
	int hold_only;		/* co_hold_threads: the handler only waits, it records nothing */
	int64_t prep_hold_ns;	/* how long this checkpoint's PREPARE held the threads (dirty_wp.c), 0: not at all */
	int recollect;		/* bumped (with a wake on release): parked threads take their signals again */
	int recollected;	/* futex: threads that have */
	/*
	 * Bumped (with a wake on release): the first parked thread to see it
	 * sets the process's POSIX locks (job_arg: 1 take, 0 let go), which
	 * only a thread sharing the program's descriptor table can (the
	 * manager has its own: mirror.c); job_taken its claim, job_done
	 * (futex) the job it finished, job_result and job_err its answer.
	 */
	int job, job_taken, job_done, job_arg, job_result;
	char job_err[1024];
	uint64_t generation;
	struct co_resume resume;

	/* taken by the manager before the snapshot: a snapshot child sees other values */
	int ppid, pgid, sid;
	struct co_siginfo shared_pending[2 * CO_MAX_PENDING];
	int nshared_pending;
	uint64_t seen_shd;	/* the process's queue as the manager saw it (ShdPnd): likewise */
	int taskfd;		/* /proc/self/task, the manager's during a checkpoint (agent_fds_setup) */
	uint64_t want_parent;	/* PREPARE asked for an image incremental against this generation */
	uint64_t incr_parent;	/* this image is incremental against it (0: full) */
	int behind;		/* DUMP with CO_CKPT_BEHIND: lazy page data left for the migration to write */
	int cowmap_all;		/* DUMP with CO_CKPT_COWMAP_ALL (tests) */
	int boost;		/* DUMP with CO_CKPT_BOOST: the manager at SCHED_FIFO 1 once its own state is read */
	int await_quiesce;	/* ARMED sent: QUIESCE parks the threads */
	/*
	 * The program has asked madvise(2) for a flag an image must record
	 * (MADV_DONTFORK, MADV_WIPEONFORK, ...; wrap.c): only then are the
	 * regions read from /proc/self/smaps, which costs a page-table walk.
	 */
	int advice;
	/*
	 * Moved on before and after every such call (wrap.c): a pause that
	 * finds the number it had at the last one knows that no call of a
	 * wrapper changed a region's flags in between (mem.c reuses the
	 * flags smaps gave then).
	 */
	uint32_t advice_epoch;
	/*
	 * MCL_FUTURE and MCL_ONFAULT of the program's last mlockall (wrap.c),
	 * which no file of /proc shows; 0 after munlockall, an mlockall
	 * without MCL_FUTURE, and in a forked child (the kernel does not pass
	 * them on).
	 */
	uint32_t mlockall;
	/* the program's root directory from the group's, when it is not the group's (root.c); "": it is */
	char root[CO_PATH];
};

extern struct co_agent co_agent;
/* Bumped by the handler in each thread that a checkpoint interrupted. */
extern __thread unsigned co_tls_epoch __attribute__((tls_model("initial-exec")));
/*
 * What the wrappers compare around a blocking call (wrap.c): it moves when
 * the checkpoint handler ran in this thread (low half), and when the
 * coordinator stopped a thread of the group with ptrace while it ran, to
 * read its seccomp filters (co_table.probes, bumped before the stop:
 * high half), which leaves epoll_wait and sigtimedwait with EINTR as any
 * stop does.  Two halves, so that the table a restart gives (its count
 * from 0) cannot make up for the handler's move.
 */
static inline uint64_t co_epoch(void)
{
	const struct co_table *t = co_agent.table;
	uint64_t probes = t ? __atomic_load_n(&t->probes, __ATOMIC_ACQUIRE) : 0;
	return probes << 32 | co_tls_epoch;
}

/*
 * quiesce.c: the checkpoint signal's handler and the parking of every
 * thread; manager.c: the manager thread that drives it.
 */
void co_fwait(int *word, int val, long ms);	/* futex wait on *word == val, ms < 0: no limit */
void co_fwake(int *word);			/* wake every waiter on *word */
void co_install_handler(void);
int co_quiesce(char *err, size_t errlen);	/* park every other thread; -1 (err filled) */
int co_hold_threads(char *err, size_t errlen);	/* hold them a moment, recording nothing; -1 (err filled) */
void co_release_threads(void);
void co_set_state(unsigned s);			/* this process's state in the table (CO_P_*) */
void co_start_manager(void);
uint64_t co_pending_seen(int own);		/* co_signals_seen, for a thread in a chroot */
extern uint64_t co_early_start;	/* a start that came before we had registered (its cookie) */

int co_ctx_save(struct co_ctx *ctx) __attribute__((returns_twice));

/*
 * dump.c: this process's image: co_dump_begin (look at descriptors and
 * the memory map), then co_dump_write (write the image through fds, its
 * files in dir, one per stream, which the coordinator made); a snapshot
 * forks between them.  0 ok, -1 with err filled.
 */
int co_dump_begin(char *err, size_t errlen);
/*
 * DUMP's text, "FD,FD,...;DIR" (proto.h): the descriptors whose regular
 * file the group shares are kept for co_dump_begin; returns DIR, or NULL
 * when the text is not that.
 */
const char *co_dump_shared(const char *text);
/* The POSIX timers read again (after the signals were, settle_signals in snapshot.c). */
int co_dump_recollect_timers(void);
/* In the snapshot child, before co_dump_write: what it has written it may drop (mem.c). */
void co_dump_from_snapshot(void);
int co_dump_write(const int *fds, const char *dir, uint64_t *bytes);
/* Just before and right after the snapshot fork: the program's fork flags (co_mem_fork_begin). */
void co_dump_fork_begin(void);
void co_dump_fork_end(void);

/* agent.c: in a new process made by fork (an atfork handler) or clone (wrap.c) */
void co_agent_forked(void);
/* agent.c: held around fork and clone, and while the manager prepares with the program running */
void co_agent_fork_lock(void);
void co_agent_fork_unlock(void);

/*
 * mirror.c: with the program parked, the manager copies the program's
 * descriptors into its own table at their numbers, first moving its own
 * (*own[k], up to CO_MIRROR_OWN: each updated) to numbers the program
 * does not use; 0, or -1 with err.  co_unmirror_program_fds closes the
 * copies; co_mirror_pidfd is the pidfd of our process it used (or -1);
 * co_mirror_forget, in a new process (restart, fork), drops what the
 * memory says without closing anything.
 */
#define CO_MIRROR_OWN 15
int co_mirror_program_fds(int *const *own, int nown, char *err, size_t errlen);
void co_unmirror_program_fds(void);
int co_mirror_pidfd(void);
void co_mirror_forget(void);

/*
 * root.c: a process whose root is not the group's (chroot).  The manager
 * leaves it for the group's (co_root_leave: 0 or -errno; co_root_forget
 * after a restart, which chroots the whole process again) and notes the
 * program's root and working directory with its threads parked
 * (co_root_note).  A process with no manager steps out for a moment
 * (co_root_out: 0 or -errno) and back into its own root (co_root_back).
 */
int co_root_leave(void);
void co_root_forget(void);
int co_root_note(char *root, size_t n);
int co_root_out(int back[2]);
void co_root_back(const int back[2]);

/* agent.c: put our handler back on our signal, keeping a raw rt_sigaction's as the program's own */
void co_sig_reclaim(void);
/* agent.c, for park.c: a message to the coordinator; the next one from it (NULL: the socket failed) */
int co_agent_send(unsigned type, int64_t a, int64_t b);
const struct co_msgbuf *co_agent_recv(void);

/*
 * park.c: threads that do not take the signal.  A thread is named to the
 * coordinator once the quiesce has waited co_park_first_ms(tid) for it;
 * co_park_stuck() asks about those due (0, or -1 with err).
 */
#define CO_TRACE_AFTER_MS 5
struct co_timespec;
long co_park_first_ms(int tid);
void co_park_begin(void);
void co_park_end(void);
int co_park_stuck(long ms, const struct co_timespec *t0, long deadline_ms, char *err, size_t errlen);

/*
 * cpuclock.c: the CPU-time clocks go on from where they were across a
 * restart (the kernel's start again from 0).  co_cpuclock_save_thread, in
 * the handler of each thread as it parks, and co_cpuclock_save_proc, by
 * the manager once every thread is parked (co_quiesce), note the times as
 * the program sees them (our memory, which a restart brings back, and the
 * image's records: co_cpuclock_saved); co_cpuclock_thread_back, in each thread's handler after a
 * restart, and co_cpuclock_restarted, by the manager once they all have,
 * make the offsets the wrappers add.  co_cpuclock_forget: a new thread
 * (its tid may be a gone one's); co_cpuclock_forked: a new process.
 */
/*
 * CLOCK_PROCESS_CPUTIME_ID (2), CLOCK_THREAD_CPUTIME_ID (3), or a negative
 * (encoded) clock: one compare, as clock_gettime's hot path wants.  c ^ 2
 * swaps 0, 1 with 2, 3; less 2, the clocks 0, 1 and 4 to INT_MAX fall
 * below 0x7ffffffe, and 2, 3 and the negative ones at or above it.
 */
static inline int co_cpu_clock(int c)
{
	return (unsigned)(c ^ 2) - 2u >= 0x7ffffffeu;
}
void co_cpuclock_init(void);
void co_cpuclock_save_thread(struct co_tcpu *c);
void co_cpuclock_thread_back(struct co_tslot *t);
void co_cpuclock_save_proc(void);
const struct co_pcpu *co_cpuclock_saved(void);
void co_cpuclock_restarted(void);
void co_cpuclock_forget(int tid);
void co_cpuclock_forked(void);
struct timespec;
/* A TIMER_ABSTIME deadline t on clock clk as the kernel counts it (out): 1, or 0 when it is the same. */
int co_cpuclock_to_kernel(int clk, const struct timespec *t, struct timespec *out);

/*
 * The wrappers (wrap.c, cpuclock.c): exported, and the C library's own
 * function found with dlsym(RTLD_NEXT) (include <dlfcn.h>).  A wrapper
 * can be called before our constructor ran (other constructors): ENSURE.
 */
#define EXPORT __attribute__((visibility("default")))
/* The checkpoint signal, once registered with a group (0 before): what the wrappers hide. */
static inline int co_wrap_sig(void)
{
	return co_agent.active ? co_agent.sig : 0;
}
void co_wrap_signal_init(void);
/* set, or a copy of its first 8 bytes without the checkpoint signal (wrap.c) */
const sigset_t *co_without_ours(const sigset_t *set, sigset_t *copy);
#define REAL(name) real_##name
#define DECL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__)
#define LOAD(name) (real_##name = dlsym(RTLD_NEXT, #name))
#define ENSURE(name)                   \
	do {                           \
		if (!real_##name)      \
			LOAD(name);    \
	} while (0)
/*
 * The call expr (of type type), made again while what interrupted it is
 * our checkpoint (co_epoch() moved): for the calls the kernel never
 * restarts on a socket with a timeout (wrap_sock.c).
 */
#define CO_RESTARTED(type, expr)                                              \
	({                                                                    \
		type r_;                                                      \
		for (;;) {                                                    \
			uint64_t e_ = co_epoch();                             \
			r_ = (expr);                                          \
			if (!(r_ < 0 && errno == EINTR && co_epoch() != e_)) \
				break;                                        \
		}                                                             \
		r_;                                                           \
	})
void co_wrap_sock_init(void);

/*
 * semundo.c: the process's SEM_UNDO adjustments.  co_semundo_wants: may
 * the n operations at ops have one (then the call goes through
 * co_semundo_op, a semtimedop as libc's, tmo NULL for semop);
 * co_semundo_handler(uc): in the checkpoint handler, before parking;
 * co_semundo_forked: in a forked child; co_semundo_attach: once
 * registered with a group's table (restamp: a new group, after a
 * restart); co_semundo_collect: at DUMP; co_semundo_env: the entry that
 * carries them across an exec (0: none), which co_semundo_from_env takes
 * back in the new program.
 */
struct sembuf;
struct timespec;
int co_semundo_wants(const struct sembuf *ops, size_t n);
int co_semundo_op(int id, struct sembuf *ops, size_t n, const struct timespec *tmo);
void co_semundo_handler(void *uc);
void co_semundo_forked(void);
void co_semundo_attach(int restamp);
size_t co_semundo_env(char *buf, size_t n);
void co_semundo_from_env(void);
#define CO_SEMUNDO_ENV_MAX (CO_SEMUNDO_MAX * 48 + 32)
int co_semundo_collect(struct co_dumpctx *d);

/*
 * dnotify.c: the process's dnotify watches (fcntl F_NOTIFY).
 * co_dnotify_call: F_NOTIFY arg on fd, made and noted (the kernel's
 * result, -errno on failure); co_dnotify_closing before a call that
 * closes descriptors lo..hi, co_dnotify_closed after it (closed: it did),
 * co_dnotify_unshare when one gave its thread a descriptor table of its
 * own; co_dnotify_forked: in a forked child; co_dnotify_env: the entry
 * that carries them across an exec (0: none), which co_dnotify_from_env
 * takes back in the new program; co_dnotify_collect: at DUMP.
 */
struct co_dnotify_close {
	int held;
	uint64_t old, hit;
};
long co_dnotify_call(int fd, unsigned long arg);
void co_dnotify_closing(struct co_dnotify_close *c, unsigned lo, unsigned hi);
void co_dnotify_closed(struct co_dnotify_close *c, int closed);
void co_dnotify_unshare(void);
void co_dnotify_forked(void);
size_t co_dnotify_env(char *buf, size_t n);
void co_dnotify_from_env(void);
#define CO_DNOTIFY_ENV_MAX (CO_DNOTIFY_MAX * 72 + 32)
int co_dnotify_collect(struct co_dumpctx *d);

/*
 * inotify.c: queued inotify events the agent holds for the program.
 * co_inotify_publish: at park, the descriptors it may hold events of
 * (co_table.iheld); co_inotify_take: at DUMP, or RELEASE without one,
 * the events the coordinator left for it; co_inotify_forked: in a forked
 * child.
 */
void co_inotify_publish(void);
void co_inotify_take(void);
void co_inotify_forked(void);

/*
 * A system call whose effect the agent notes (ctx.S), and in the
 * checkpoint handler the result of one it interrupted: *res once stored,
 * rax when the thread stopped right after the system call, else
 * CO_RES_UNSET (the kernel has not made it yet) (quiesce.c).
 */
#define CO_RES_UNSET 1L
long co_syscall_noted(long *res, long nr, const long *a);
long co_noted_result(const long *res, const void *uc);

/*
 * aio.c: the process's aio contexts.  co_aio_call: an aio system call
 * made through syscall(3) (nr, its six arguments), noted; the kernel's
 * result, -errno on failure; co_aio_handler(uc): in the checkpoint
 * handler, before parking; co_aio_forked: in a forked child;
 * co_aio_collect: at DUMP, after co_mem_collect.
 */
long co_aio_call(long nr, const long *a);
void co_aio_handler(void *uc);	/* and co_aio_ring_kind: res.h */
void co_aio_forked(void);
int co_aio_collect(struct co_dumpctx *d);

/*
 * A lock word for tables the checkpoint handler also writes (semundo.c,
 * aio.c): taken only with every signal blocked (co_block_all), so never
 * by a thread our handler interrupted while it held it.
 */
static inline void co_lock_word(int *w)
{
	while (__atomic_exchange_n(w, 1, __ATOMIC_ACQUIRE))
		co_futex(w, FUTEX_WAIT_PRIVATE, 1, 0);
}

static inline void co_unlock_word(int *w)
{
	__atomic_store_n(w, 0, __ATOMIC_RELEASE);
	co_futex(w, FUTEX_WAKE_PRIVATE, 1, 0);
}

/* Every signal blocked; the mask before, for co_unblock. */
static inline uint64_t co_block_all(void)
{
	uint64_t all = ~0ULL, old = 0;
	co_sigprocmask(SIG_BLOCK, &all, &old);
	return old;
}

static inline void co_unblock(uint64_t old)
{
	co_sigprocmask(SIG_SETMASK, &old, 0);
}

/* wrap.c */
void co_wrap_init(void);
/* n bytes from (to_user 0) or to the caller's memory: 0, or -1 where the kernel would say EFAULT */
int co_user_copy(void *dst, const void *src, size_t n, int to_user);
struct co_ksigaction;
/* The action the program set on our signal past sigaction() (a raw rt_sigaction) becomes its own. */
void co_wrap_adopt(const struct co_ksigaction *ka);
/* Our signal, not a checkpoint: run the program's action on it, as the kernel would. */
void co_wrap_forward(int sig, void *siginfo, void *uc);
/*
 * The manager's own descriptors, in its own table during a checkpoint
 * (CO_AGENT_MAX_FDS at most), ascending; how many.  Never in the program's.
 */
#define CO_AGENT_MAX_FDS 8
int co_agent_fds(int *out);

/* close_range(2)'s flags (Linux 5.9, 5.11), which the 6.1 headers may lack (dnotify.c, wrap.c) */
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#endif
