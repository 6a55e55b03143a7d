/*
 * coord.h - the coordinator of one group (src/cli/coord/), started by
 * `cohort run` and `cohort restart`, in the foreground of the caller:
 * its state, shared by the files of the coordinator alone.
 *
 * It owns the group's run directory (0700) with the control socket, the
 * process table in shared memory (a memfd mapped by every member), the
 * checkpoint scheduler thread, and the barriers of a checkpoint.
 * A member has no connection while its program runs: the coordinator
 * watches it through a pidfd (its end), and starts a checkpoint by
 * sending it the checkpoint signal (queued, with the table's cookie); its
 * agent's manager thread then connects (ATTACH) and gets PREPARE.  Each
 * step waits at a barrier for every member taking part (checkpoint.c):
 *
 *   PREPARE  -> (pre-copy) every member arms its tracking       -> ARMED
 *               its memory is read while it runs, then QUIESCE
 *   PREPARE or QUIESCE -> every member parks all its threads    -> QUIESCED
 *   DUMP     -> every member has its snapshot (or, with --stop,
 *               its whole image)                                 -> SNAPSHOT
 *   RELEASE  -> the group runs again (with --kill it stays parked, then ends)
 *            -> every snapshot's writer has finished its image   -> DONE
 *   the manifest is written, and the generation committed
 *
 * Any FAIL, hang-up or timeout before the commit aborts the checkpoint:
 * the members are released, the temporary directory removed, and the
 * group runs on.
 * Requests are handled one at a time, so a process registers either
 * wholly before or wholly after a checkpoint (the checkpoint lock).
 *
 *   setup.c       run directory, socket, table, namespaces, start of init
 *   conn.c        connections and registration
 *   barrier.c     the group's processes, pump, settle, the barriers
 *   progress.c    progress of a checkpoint for the client
 *   jobs.c        merge, compression, pre-copy: child processes
 *   checkpoint.c  one checkpoint
 *   status.c      status and kill
 *   loop.c        the event loop, the scheduler thread, the outcome
 *   run.c         the run and restart commands
 */
#ifndef COHORT_COORD_H
#define COHORT_COORD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "cli/cli.h"
#include "cli/progress.h"
#include "procfs.h"
#include "proto.h"

#define MAX_CONNS (CO_TABLE_SLOTS + 64)
#define QUIESCE_TIMEOUT_MS 30000
#define DUMP_TIMEOUT_MS 600000
#define DEFAULT_SIG 62
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

/* C_FREE: a slot of G.c no connection holds (fd, pidfd and uffd -1) */
enum { C_FREE = 0, C_NEW, C_MEMBER, C_CLIENT };

/*
 * A connection, or a member without one (while its program runs), in a
 * slot of G.c that stays its own until drop(): an index into G.c names
 * the same connection for as long as it lasts, whatever is dropped
 * meanwhile, so no caller must look one up again.
 */
struct conn {
	int fd;
	int kind;
	int slot;
	int pid, host_pid, ppid;
	int restored;		/* registered from an image, waiting for the release */
	int answered;		/* in the current barrier */
	uint64_t agentless_ns;	/* since when it has had no agent to signal (exec'ing), or 0 */
	int part;		/* takes part in the current checkpoint (was sent PREPARE) */
	int deferred;		/* a request that waits until the checkpoint is over */
	uint32_t got;		/* messages of the current checkpoint received so far (1 << type) */
	int pidfd;		/* a member's: readable when it has ended */
	int uffd;		/* a member's dirty-page tracking (userfaultfd), kept between its checkpoints */
	unsigned prep_flags;	/* the PREPARE it gets when it attaches (CO_PREP_*) */
	uint64_t signalled_ns;	/* when it was last sent the checkpoint signal */
	uint64_t prepare_ns;	/* when it attached and was sent PREPARE */
	int stale;		/* a member that exec'd after it parked: kept for its checkpoint's manifest only */
	uint64_t bytes;
	uint64_t incr_parent;	/* DONE: its image is incremental against this generation (0: full) */
	int flocks;		/* DONE: the flock and OFD locks its descriptors hold (hold_locks.c) */
	int posix_locks;	/* DONE: its POSIX locks (hold_locks.c) */
	int posix_let_go;	/* ... let go for a migration's target, taken back should it fail */
	int64_t prep_ns;	/* QUIESCED: how long it prepared (tracking new memory) before it parked */
	int64_t hold_ns;	/* QUIESCED or ARMED: how long it held its threads to prepare (0: not at all) */
	int armed;		/* ARMED: its memory is to be pre-copied (by the pre-copy child) */
	int quiesce;		/* 1 + the flags of the QUIESCE its next manager gets when it attaches; 0: PREPARE */
	int foreign;		/* a process of the group whose uid is not ours: members' messages only */
	/* a client's checkpoint request that came while the group was being restored: taken once it is */
	int waits_restore;
	unsigned wait_flags;
	char *wait_images;	/* its --images (allocated), or NULL */
};

struct group {
	const char *name;
	char images[PATH_MAX];
	char rundir[PATH_MAX];
	char sock[PATH_MAX];
	int lfd, tfd, sfd;
	int lock_fd;		/* IMAGES/NAME/LOCK, held for life (co_lock_images) */
	uint64_t group_id;	/* the group's id: every file of its generations is bound to it (co_bind) */
	struct co_table *table;
	int sig;
	double interval;
	pid_t init_pid;
	int status_fd;		/* init writes the root process's wait status here */
	int report_fd;		/* restart: the restorers' report pipe (report.h), or -1 */
	int init_pidfd;
	int root_pid;
	int expect;		/* restart: processes still to come back */
	int fault_hold;		/* restart: COHORT_FAULT=hold:... (report.h): a stopped restore is never given up */
	uint64_t restored_from;
	struct co_manifest restored; /* restart: the manifest of that generation */
	int64_t mono_off, boot_off; /* group clock minus host clock */
	char program[256];
	char agent[PATH_MAX];	/* the agent library, as members map it */
	uint64_t agent_dev, agent_ino;	/* and its file (co_maps_dev): as a chroot's bind mount maps it */
	uint64_t t_start;
	unsigned full_every, keep, timed;
	int compress;			/* --compress: every checkpoint's images are stored as .zst */
	int no_precopy;			/* --no-precopy: no checkpoint pre-copies full images */
	uint64_t last_committed;	/* parent of the next incremental (0: none yet) */
	uint64_t killed_gen;		/* `checkpoint --kill` committed this generation and ended the group */
	int member_exited;		/* a member exited during this try of a checkpoint (why_hung_up) */
	int member_busy;		/* a thread of a member could not park in this try (co_park_thread 2) */
	char killed_dir[PATH_MAX];	/* ... in this directory */
	char migrated_to[256];		/* a migration moved the group there (ADDR:PORT) and ended it here */
	char holding[300];		/* a migration's hold, for status: "migrating", "migrated to ADDR: ..." */
	/* restart by receive (a migration's target): every process is back, parked; 0 to let them run */
	int (*on_ready)(void);
	void (*on_running)(void);	/* ... and once they run */
	int json;			/* --json: the outcome as one JSON object when the group ends */
	char **argv;			/* run: the command line, written beside the images (store.c) */
	char command_dir[PATH_MAX];	/* the images directory it was last written to */
	pid_t merge_pid;		/* background merge running, or 0 */
	int merge_again;		/* an incremental committed while it ran */
	int merge_held;			/* incrementals of a migration (CO_CKPT_MIGRATING) not merged yet */
	struct conn c[MAX_CONNS];
	int nc;				/* slots below nc may be in use (kind != C_FREE) */
	uint64_t ck_gen, ck_parent;	/* the checkpoint being taken (0: none): what an ATTACH is PREPAREd for */
};

extern struct group G;
extern struct co_msgbuf in;	/* the message being handled */

/* Progress of the checkpoint being taken, for a client that asked for it (CO_CKPT_PROGRESS). */
struct ckpt_progress {
	int fd;			/* the client's socket; -1: nobody asked */
	const char *phase;
	int count;		/* where the phase's bytes done come from: PC_* */
	char tmp[PATH_MAX];	/* the generation being written (.tmp-gen-N) */
	pid_t job;		/* the phase's job child (run_job); 0: none */
	uint64_t total;		/* 0: not known */
	uint64_t next_ns;	/* no update before */
	/* when each phase began, whether anyone watches: --json reports where the time went */
	int nphases;
	const char *phase_name[12];
	uint64_t phase_ns[12];
};
extern struct ckpt_progress P;
/* restart: drawn on the coordinator's terminal until every process is back */
extern struct co_progress restore_pr;

#define PROGRESS_NS 200000000ULL /* an update every 200 ms: the client redraws at most that often */

/* Where the bytes done of a phase come from. */
enum {
	PC_NONE,	/* nowhere: the phase alone is shown */
	PC_FILES,	/* the files written so far in .tmp-gen-N (the agents' images, shared.img) */
	PC_PRE,		/* those in .tmp-gen-N/.pre (the pre-copies) */
	PC_JOB_READ,	/* the bytes the phase's job child has read (compression: raw image bytes) */
	PC_JOB_WRITE,	/* the bytes it has written (the merged images) */
};

/* A process of the group, as the kernel sees it (scan_group). */
/* ---- the group's processes, as the kernel sees them ---- */

struct nsproc {
	int host;
	struct co_nsids ids;
	int member;		/* its slot in G.c (stable until dropped), or -1 */
};

/* What a job child tells the coordinator (shared memory). */
struct job {
	char msg[4096];
	int nfailed;
	int failed[MAX_CONNS]; /* pre-copy: the members it could not read */
};

/* setup.c */
void record_caller_signals(struct co_init_cfg *cfg);
void make_timens(int64_t mono_off, int64_t boot_off);
void start_init(struct co_init_cfg *cfg);
void common_setup(struct co_run_opts *o);

/* conn.c */
void drop(int i);
void hang_up(struct conn *c);
uint64_t group_ns_ino(void);
int in_group_ns(int pid);
void accept_conn(void);
void on_procfd(int i);
int on_register(int i);
void forget_agentless(void);
int signal_member(struct conn *c);
/* is process host (a host pid) in a root directory not the group's (chroot: agent/root.c)? */
int in_chroot(int host);
void on_attach(int i);
void keep_uffd(struct conn *c, int fd);
void reply(int fd, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int nmembers(void);
int member_of(int host);

/* progress.c */
void progress_tick(void);
void progress_phase(const char *phase, int count, uint64_t total);
void progress_begin(int fd, unsigned flags, const char *tmp);
const char *phases_json(uint64_t start_ns, uint64_t end_ns, char *out, size_t size);
void progress_job(pid_t pid);
enum { MM_PART, MM_ALL, MM_PRECOPY };
uint64_t members_memory(int which);

/* barrier.c */
int scan_group(struct nsproc *out, int max);
/* The command name of process host (from /proc), or "?". */
const char *comm_of(int host);
void why_absent(int host, int pid, int registered, char *err, size_t errlen);
void pump(int timeout_ms, uint64_t gen);
int pump_or(int timeout_ms, uint64_t gen, int fd);
void hold_wait(int cfd);
/* hold_locks.c: a migration's stop lets go of the group's flock and OFD locks for the target */
void hold_locks_drop(void);
int hold_locks_retake(char *err, size_t errlen);
void hold_locks_forget(void);
int settle(char *err, size_t errlen);
int barrier_more(unsigned want, uint64_t gen, int timeout_ms, char *err, size_t errlen, int reset);
int barrier(unsigned want, uint64_t gen, int timeout_ms, char *err, size_t errlen);
void broadcast(unsigned type, int64_t a, const char *text);

/* hold.c: a migration's stop written behind (CO_CKPT_BEHIND) */
/* which host pid each member has, for the client that writes the data (CO_BEHIND_PIDS in tmp) */
int hold_write_hosts(const char *tmp);
/* after HOLD_END: the group stopped, its page data written, generation gen committed from tmp: 0, or -1 */
int hold_behind(int cfd, const char *tmp, const char *gdir, uint64_t gen);

/* jobs.c */
void start_merge(const char *gdir);
void release_merges(const char *gdir);
void finish_merges(void);
void reap_merge(void);
int run_job(const char *name, const char *what, int (*fn)(void *, struct job *), void *arg, struct job *job,
	    uint64_t gen, char *err, size_t errlen);
int compress_images(const char *tmp, const struct co_mproc *procs, int n, char *err, size_t errlen);
const char *pre_dir(const char *tmp);
void precopy_members(const char *tmp, uint64_t gen);
int merge_precopies(const char *tmp, uint64_t gen, int *merged, char *err, size_t errlen);

/* checkpoint.c */
void checkpoint(int ci, unsigned flags, const char *images_override);

/* status.c */
void status(int ci, unsigned flags);
int signal_group(int sig); /* every process of the group (with the agent or not): how many took it */
void kill_group(int ci, int sig, unsigned flags);

/* loop.c */
int loop(void);

/* restore.c: a restart while its processes come back */
void restore_begin(const struct co_mproc *procs, int n);
int restore_progress(void);
void restore_watch(void);
void restore_interrupt(int sig);
void restore_abandon(void);
void restore_over(void);
void restore_released(void);
int restore_ended(void);
void restore_lazy_failed(int pid, const char *why);
void restore_lazy_damaged(void);

/* lazy.c: the page fillers of restart --lazy */
void lazy_setup(const char *gen_dir, const struct co_chain_dirs *chain, const struct co_mproc *procs, int n);
void on_lazy(int i, int uffd);
int lazy_filling(void);
void lazy_prefork(void);	/* fillers forked ahead, while init and the restorers start */
void lazy_release(void);	/* the group runs: the fillers' background fill may begin */
struct pollfd;
int lazy_pollfds(struct pollfd *p);
void lazy_check(void);
void lazy_end(void);

/* refuse.c: what a checkpoint refuses while the group can run on (0, or non-zero with err) */
int threads_same_creds(const struct conn *c, char *err, size_t errlen);
int own_namespaces(const struct conn *c, char *err, size_t errlen);
int under_seccomp(char *err, size_t errlen);
int seccomp_for_dump(const struct conn *c, int *fd, char *err, size_t errlen);
int chrooted(char *err, size_t errlen);

/*
 * ending.c: end_sessions, a checkpoint's member connections closed;
 * a parked group ended: killed at once (kill_parked_group, then
 * await_parked_group until init is gone; end_parked_group both), or
 * stopped first (stop_parked_group, -1 when one could not be) until the
 * migration's client hangs up (await_go).
 */
void end_sessions(void);
void kill_parked_group(void);
int stop_parked_group(void);
void await_go(int fd);
void await_parked_group(void);
void end_parked_group(void);

#endif
