/*
 * cli.h - the cohort command: shared pieces of the CLI, the coordinator,
 * the group's init and the image store.
 */
#ifndef COHORT_CLI_H
#define COHORT_CLI_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include "image.h"
#include "proto.h"

#define CO_NAME_MAX 63

/* main.c */
void co_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* a usage error: one line on stderr, exit 2 (co_die: any other failure, exit 1) */
void co_usage(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void co_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *co_run_root(void);
const char *co_default_images(void);
int co_valid_name(const char *name);
const char *co_self_path(const char *file, char *out, size_t n); /* file next to the cohort binary, in out */
uint64_t co_now_ns(int clock);
void co_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* COHORT_TRACE=1: a timed line */
/* ... stamped at ns (CLOCK_REALTIME) instead of now: a step another process took (a restorer's stage) */
void co_trace_at(uint64_t ns, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int co_tracing(void); /* COHORT_TRACE is on */

/*
 * park.c: thread tid of member pid (host pid host_pid) has not parked for
 * signal sig; if its mask blocks it, unblock it with ptrace and write its
 * masks at addr in the member.  0 done, 1 not blocked (or gone), -1 with err,
 * 2 with err: it waits for a fanotify permission answer, and cannot park now.
 */
int co_park_thread(int pid, int host_pid, int tid, int sig, uint64_t addr, char *err, size_t errlen);
/* a thread of member pid (host_pid; htid, or any: 0) waits for a fanotify permission answer: 1, err says so */
int co_park_fanotify_wait(int pid, int host_pid, int htid, char *err, size_t errlen);
/* threads that did not stop in time, still to be let go; and letting them go once they stop */
int co_park_lingering(void);
void co_park_settle(void);
/*
 * Stop thread htid (host tid) with ptrace whatever its mask (PTRACE_SEIZE,
 * PTRACE_INTERRUPT): 0 stopped (let it go with PTRACE_DETACH and *inject,
 * a signal it stopped for), 1 gone, -1 not stopped within 2 s (let go once
 * it stops: co_park_settle), -2 not traceable (errno; co_park_why(errno)
 * says why in a few words, or "").
 */
int co_park_stop(int htid, int *inject);
const char *co_park_why(int err);

/*
 * seccomp.c: the seccomp filters of a member's threads, read with ptrace
 * (co_seccomp_read: 0, or -1 with err in one line, a thread in strict mode
 * or filters it may not read refused; *out NULL when no thread has any;
 * *probes, the table's, is bumped before each thread is stopped),
 * checked against every system call the agent makes in the program, and
 * for a process in a chroot (chrooted != 0) those it makes to leave it
 * (co_seccomp_check: 0, or -1 naming the thread and the first call not
 * allowed), and handed to the agent with DUMP as a memfd of CO_R_SECCOMP
 * payloads (co_seccomp_memfd: the descriptor, or -1 with errno).
 */
struct co_scset;
int co_seccomp_read(int pid, int host_pid, uint32_t *probes, struct co_scset **out, char *err, size_t errlen);
int co_seccomp_check(const struct co_scset *s, int chrooted, char *err, size_t errlen);
int co_seccomp_memfd(const struct co_scset *s);
void co_seccomp_free(struct co_scset *s);

/* json.c: s with JSON's escapes, in out (cut to fit); returns out */
const char *co_json_esc(const char *s, char *out, size_t n);

/* ctl.c: the control socket's framing */
int co_send(int fd, unsigned type, unsigned flags, int64_t a, int64_t b, const char *text, int passfd);
/* co_send with nfds (at most CO_MSG_FDS) descriptors attached */
int co_send_fds(int fd, unsigned type, unsigned flags, int64_t a, int64_t b, const char *text, const int *fds,
		int nfds);
int co_recv(int fd, struct co_msgbuf *mb, int *passfd);
/*
 * A connection to group name's coordinator: -1 when no such group runs;
 * CO_UNTRUSTED when the run directory is not ours alone or the socket is
 * served by another user (co_connect_why() says which, in one line).
 */
#define CO_UNTRUSTED (-2)
int co_connect_group(const char *name);
const char *co_connect_why(void);
/* 0 when the run directory is absent or ours alone (a directory, ours, writable by nobody else); else -1 (why filled) */
int co_run_root_check(char *why, size_t n);

/* store.c: generations of a group under IMAGES/NAME */
struct co_gen_info {
	uint64_t generation;
	char dir[4096];
};
char *co_group_images(const char *images, const char *name);
uint64_t co_newest_generation(const char *gdir);
/*
 * The group directory, generation dir and every file in it (and in its
 * files/) belong to the user restarting them and none of the directories
 * is writable by others: an image decides what a restart writes and
 * where, so another user's images are refused unless trusted explicitly
 * (restart --trust-images).  -1 (err filled, naming the file) otherwise.
 */
/*
 * The crash switch (tests only): with COHORT_CRASH=STEP[:N] in its
 * environment, the coordinator (or its merge child) kills itself with
 * SIGKILL the Nth time (default the first) it reaches STEP: "written"
 * (a generation's images written, its manifest not), "fsync" (before the
 * commit's fsyncs), "rename" (fsynced, not renamed), "renamed" (renamed,
 * the group directory not fsynced), "merge" (a merged full image made,
 * not committed), "prune" (a generation pruned, its full image not),
 * "received" (`cohort receive` has written a file of a migrated generation),
 * "ready" (`cohort migrate` has heard that the target has the group back, parked),
 * "round" (`cohort migrate` has streamed a pre-copy round and heard it committed there),
 * "generation" (`cohort receive` is told a generation comes: one a pre-copy round),
 * "hold" (the coordinator has committed a migration's stop and holds the group).
 * Tests check that the newest committed generation restarts and nothing
 * half-done outlives the next start.  COHORT_CRASH=STEP:/FILE makes the
 * process wait there until FILE exists instead, for a test to act while
 * it waits (a SIGSTOP would not do: the kernel wakes a stopped process
 * with SIGHUP when its coordinator's exit orphans its process group).
 */
void co_crash_point(const char *step);
/*
 * Its twin for a failure (tests only): with COHORT_CKPT_FAIL=STEP[:N] the
 * Nth time the coordinator reaches STEP ("written": a generation's images
 * written, its manifest not) the checkpoint fails there (1): the group
 * must run on as it was.  0 otherwise.
 */
int co_fail_point(const char *step);
/* mkdir -p, mode 0700 */
int co_mkdir_p(const char *path);
/*
 * The group's images are ours alone (IMAGES/NAME/LOCK, flock): its
 * descriptor, kept open while we may write them; -1 (err filled, naming
 * the holder) when another cohort holds them.
 */
int co_lock_images(const char *gdir, int wait_merge, char *err, size_t errlen);
void co_lock_note(int fd, pid_t pid, int merge);
/*
 * merge_dir.c: at the start of a run or restart, with the images locked (so
 * no one else writes them): what dead writers left half-done goes (a
 * checkpoint's .tmp-gen-N, a merge's .tmp-full-N.PID), and a merged
 * full-N whose generation was pruned (a full image is only ever used
 * with its generation).
 */
void co_recover_group_dir(const char *gdir);
/* Remove the entries of dir (files, or directories with what they hold) for which doomed says 1. */
void co_remove_entries(const char *dir, int (*doomed)(const char *name, void *arg), void *arg);
/* Remove everything of the group directory but its LOCK (run --replace). */
void co_clear_group_dir(const char *gdir);
/*
 * A format 7 generation in dir holds exactly the files its manifest lists
 * (f, nf of them), each of its listed size (and digests: each copy of its
 * listed digest): 0, or -1 with err naming the
 * first that is missing, of another size, or not listed.
 */
int co_gen_files_check(const char *dir, const struct co_mfile *f, int nf, int digests, char *err, size_t errlen);
/* XXH64 (seed 0) of the file at path, not followed; -1 when it cannot be read. */
int co_file_digest(const char *path, uint64_t *out);
/* The same from dir's manifest (older generations list no files: 0). */
int co_gen_complete(const char *dir, char *err, size_t errlen);
int co_images_owned(const char *gdir, const char *dir, char *err, size_t errlen);
int co_gen_dir(const char *gdir, uint64_t gen, char *out, size_t n);
/*
 * Open a file of a generation for reading with r (stored as name or
 * name.zst: see co_img_open); the descriptor, to be closed with
 * co_img_close(), or -1 with err.
 */
int co_open_gen_file(const char *dir, const char *name, char *path, size_t n, struct co_reader *r,
		     char *err, size_t errlen);
/* The records of an image that name files (descriptors, regions, shared open files, file copies). */
union co_path_rec {
	struct co_fd fd;
	struct co_vma vma;
	struct co_sfile sf;
	struct co_fcopy fc;
};
/*
 * each(type, record, ctx) for every such record of image name of
 * generation dir, every record checked: 0, or -1 with err.  Who asks
 * which files a generation holds (a restart's file copies, a migration's
 * comparison) reads them here.
 */
int co_image_paths(const char *dir, const char *name, void (*each)(unsigned type, const union co_path_rec *rec, void *ctx),
		   void *ctx, char *err, size_t errlen);
int co_write_manifest(const char *dir, const struct co_manifest *m, const struct co_mproc *p, int n);
/* 0 ok; -1 with a one-line message in err */
int co_read_manifest(const char *dir, struct co_manifest *m, struct co_mproc *p, int max, int *n,
		     char *err, size_t errlen);
int co_commit(const char *tmpdir, const char *gdir, uint64_t gen, char *err, size_t errlen);
/*
 * The command line a group's images were taken of (gdir/command): 1 when
 * gdir holds generations of another command line (shown in `shown`).
 */
int co_group_command_differs(const char *gdir, char *const *argv, char *shown, size_t n);
int co_group_command_write(const char *gdir, char *const *argv);
/* fsync tmpdir's files and tmpdir, rename it to final, fsync gdir */
int co_commit_dir(const char *tmpdir, const char *final, const char *gdir, char *err, size_t errlen);

/* merge.c, merge_dir.c: incremental generations and their merged full images (IMAGES/NAME/full-NNNNNN) */
int co_full_dir(const char *gdir, uint64_t gen, char *out, size_t n);
/* A generation an incremental can build on: committed, with a readable manifest. */
int co_generation_usable(const char *gdir, uint64_t gen);
/*
 * The directory to restore generation gen from: gen-N itself when full,
 * full-N for an incremental, built now from the chain when missing.
 */
int co_restore_dir(const char *gdir, uint64_t gen, char *out, size_t n, char *err, size_t errlen);
/*
 * The image directories of incremental gen-N's chain, newest first: gen-N,
 * the generations below it, and the newest full image there is (gen-B, or
 * an older incremental's full-K), each checked to be the parent its child
 * was taken against.  0 done, 1 longer than CO_CHAIN_MAX, -1 error.
 */
#define CO_CHAIN_MAX 64
struct co_chain_dirs {
	int n;
	char dir[CO_CHAIN_MAX][PATH_MAX];
};
int co_chain_dirs(const char *gdir, uint64_t gen, struct co_chain_dirs *out, char *err, size_t errlen);
/*
 * chain.c: may restart --lazy run incremental gen-N straight from its
 * chain (c), without merging it first?  Only where every page an image
 * leaves to its parent lies in a region the restorer will restore lazily
 * (the filler brings it from the chain); 0 yes, else -1 and why.
 */
int co_chain_lazy_ok(const struct co_chain_dirs *c, const struct co_mproc *p, int n, char *why, size_t whylen);
/* merge_dir.c: build full-N for every incremental generation that lacks one (oldest first). */
int co_merge_all(const char *gdir, char *err, size_t errlen);
/* Keep the newest `keep` generations and whatever they need to be restored. */
void co_prune(const char *gdir, unsigned keep);
void co_remove_tree(const char *dir);

/*
 * zimage.c: image files stored compressed as NAME.zst (--compress).  Every
 * path given here is the plain name (proc-2.img); the stored file is found.
 */
#define CO_ZST ".zst"
/* The stored file of path: path itself or path.zst, in out; -1 when neither exists. */
int co_img_locate(const char *path, char *out, size_t n);
/*
 * Open path (or path.zst, decompressed on the fly by a child process) for
 * reading with r; the stored file's name goes to name (r->name).  Returns
 * the descriptor, or -1 with a message in err.
 */
int co_img_open(const char *path, struct co_reader *r, char *name, size_t n, char *err, size_t errlen);
/* Close what co_img_open() gave; -1 with zstd's finding (file, compressed offset) when it failed. */
int co_img_close(int fd, char *err, size_t errlen);
/* Create path for writing, or path.zst compressed on the fly; the descriptor or -1. */
int co_img_create(const char *path, int compress, char *err, size_t errlen);
/* Close what co_img_create() gave; -1 when writing or compressing failed. */
int co_img_finish(int fd, char *err, size_t errlen);
/* Compress the process images (all streams) and shared.img of generation dir into NAME.zst. */
int co_compress_gen(const char *dir, const struct co_mproc *p, int n, int workers, char *err, size_t errlen);
/* precopy.c: the pages of process pid (host_pid here) read now, while it runs, into the image path: how many, or -1. */
int64_t co_precopy(const char *path, int pid, int host_pid, char *err, size_t errlen);
/* merge_pages.c: dir/image (incremental against id) and predir/image (its pre-copy) into a full dir/image. */
int co_merge_precopy(const char *dir, const char *predir, int pid, const char *image, uint64_t id,
		     const struct co_bind *gen, char *err, size_t errlen);
/* Bytes stored for a process image, all its streams, compressed or not. */
uint64_t co_img_bytes(const char *image);
/* Restart: FIFOs in dir for the compressed images of gen_dir, each fed by a decompressing child. */
int co_fifos_start(const char *gen_dir, const struct co_mproc *p, int n, const char *dir, char *err, size_t errlen);
/* Compressed bytes the feeders have read so far (the progress of a restart). */
uint64_t co_fifos_bytes(void);
/* End every feeder (warn: report one that failed) and remove the FIFOs' directory. */
void co_fifos_stop(int warn);

/* coord/ (the coordinator) */
struct co_run_opts {
	const char *name;
	const char *images;
	double interval;
	int sig;
	char **argv;		/* run: the program */
	uint64_t generation;	/* restart: 0 = newest */
	unsigned full_every;	/* with interval: every K-th timed checkpoint is full, the others incremental */
	unsigned keep;		/* generations kept (0: all) */
	int compress;		/* every checkpoint of the group: images stored as .zst */
	int no_precopy;		/* no checkpoint of the group pre-copies its full images */
	int named;		/* run: --name given (the user chose the name: no command-line check) */
	int replace;		/* run --replace: delete the images of an earlier group of this name */
	int json;		/* the outcome as one JSON object on stdout when the group ends */
	int trust_images;	/* restart: images of another user's (co_images_owned) accepted */
	/* restart by receive (a migration's target): the images' LOCK it holds already, and its hook */
	int held_lock;		/* lock_fd below is that LOCK's descriptor */
	int lock_fd;
	/*
	 * ... and the generation with its chain (newest first, to its full
	 * base) as it received, checked and committed them: the restart reads
	 * none of it again from the images directory (NULL: it does)
	 */
	const struct co_chain_dirs *received;
	int (*on_ready)(void);	/* every process is back, parked: 0 lets them run, -1 ends the group */
	void (*on_running)(void); /* they run */
	int lazy;		/* restart --lazy: memory comes in while the program runs (src/cli/filler.c) */
};
/* migrate.c and receive.c: a migration's two ends (docs/architecture.md, "Migration") */
struct co_migrate_opts {
	const char *name;
	const char *to;		/* ADDR:PORT of the target's `cohort receive` */
	const char *token_file;
	int json;
	int max_rounds;		/* pre-copy rounds at most (0: stop-and-copy) */
	double downtime_ms;	/* the stop's goal: what is left to send fits in this at the measured rate */
	int copy_files;		/* the files the group writes travel in the generation (not compared) */
	int postcopy;		/* the stop's pages follow once the group runs at the target (postcopy.c) */
};
int co_cmd_migrate(const struct co_migrate_opts *o);
struct co_receive_opts {
	const char *listen;	/* ADDR:PORT */
	const char *token_file;
	const char *images;
	int json;
};
int co_cmd_receive(const struct co_receive_opts *o);

/* run and restart exit with this when `checkpoint --kill` ended the group */
#define CO_EXIT_CHECKPOINTED 75
int co_cmd_run(struct co_run_opts *o);
int co_cmd_restart(struct co_run_opts *o);
/*
 * A migration's target (root only): init started now, before the stop, and
 * given its orders when co_cmd_restart starts the group (coord/setup.c).
 */
void co_init_start_ahead(void);

/*
 * tty.c: the foreground process group and settings of the terminal the
 * group runs on, for job-control shells.  hosts[i] and pgids[i]: a process
 * of the group (host pid) and its process group inside the group.
 */
void co_tty_record(struct co_manifest *m, const int *hosts, const int *pgids, int n);
/* Restart: the recorded group and settings to our terminal; 1 done, 0 nothing to do, -1 failed. */
int co_tty_give(const struct co_manifest *m, const int *hosts, const int *pgids, int n);
/* The group ended: the terminal's foreground back to us (when it was given away). */
void co_tty_take_back(void);

/* nsinit.c: pid 1 of the group's namespace */
struct co_init_proc {
	int pid;
};
struct co_init_cfg {
	char **argv;		/* run */
	char **envp;
	int nprocs;		/* restart */
	struct co_init_proc *procs;
	int root_pid;		/* the process whose end ends the group */
	const char *restorer;
	const char *sock;
	const char *gen_dir;
	const char *image_dir;	/* restart: FIFOs of the decompressed images (NULL: none compressed) */
	uint64_t generation;
	int ready_fd;		/* written once the namespace is set up */
	int status_fd;		/* the root process's wait status goes here when it ends */
	int report_fd;		/* restart: the write end of the restorers' report pipe (report.h) */
	const char *fault;	/* restart: COHORT_FAULT as `cohort restart` read it, or NULL */
	int lazy;		/* restart --lazy: the restorers hand lazy regions to a page filler */
	/* run: the signal state `cohort run` was given, which the program gets */
	uint64_t sig_ignored;	/* signal s ignored: bit s-1 */
	uint64_t sig_blocked;	/* the caller's signal mask */
	int agent_sig;		/* the checkpoint signal: the agent sets it up */
};
int co_init_main(struct co_init_cfg *c) __attribute__((noreturn));
/*
 * A migration's target: init started before the stop (coord/setup.c,
 * co_init_start_ahead), its namespaces made and /proc mounted, waits on
 * orders (a SOCK_SEQPACKET socket) for the restart's part of c, sent by
 * co_init_send_orders with the group's time namespace (timens_fd, or -1)
 * once the stop has come.  Without its orders (the socket closed) it ends.
 */
int co_init_ahead(struct co_init_cfg *c, int orders) __attribute__((noreturn));
int co_init_send_orders(int sock, const struct co_init_cfg *c, int timens_fd);

/* src/kinds/engine.c: the kernel objects the group's processes share (shared.img) */
struct co_shared_member {
	int pid, host_pid;
	int agent_fd;		/* the agent's control socket: not the program's */
	const uint8_t *stdio_marks; /* its descriptors that share a file stdio (co_stdio_slot) */
};
/*
 * What the members share, into DIR/shared.img (flags: the checkpoint's CO_CKPT_*; clock_off: the group's
 * CLOCK_MONOTONIC and CLOCK_BOOTTIME minus ours, its time namespace's offsets).  0; -1 (err filled); or
 * CO_BUSY (err filled): a member is in the middle of something a restart
 * could not carry on (co_proc_text), and the checkpoint may try again.
 */
#define CO_BUSY (-2)
int co_shared_dump(const char *dir, uint64_t gen, const struct co_shared_member *m, int n, struct co_table *t,
		   unsigned flags, const int64_t clock_off[2], char *err, size_t errlen);
/*
 * After co_shared_dump: the descriptors of member pid (its number in the
 * group) whose regular file or directory the group holds in common (a
 * CO_R_SFILE, opened once by init): its image records them as shared,
 * with nothing of their own (one record, one source of truth).  The
 * count, or -1 when there are more than max.
 */
int co_shared_files(int pid, int *out, int max);
/*
 * Once the checkpoint has ended, before the group runs again: what
 * co_shared_dump took from it given back (failed 1: the group runs on
 * as it was) or let go (0: committed).
 */
void co_shared_settle(int failed);
/*
 * kinds/timerfd.c: the realtime clock watched for changes from now on,
 * before any timerfd of the group is made (run, restart): whether one
 * cancelled a timerfd of the group shows nowhere else.
 */
void co_timerfd_watch_clock(void);
/* coord/setup.c: write text to a /proc file (uid_map, a sysctl): 0, or -1 with errno. */
int co_write_proc(const char *path, const char *text);
/* In init: put files back, create the objects, return the plan's descriptor. */
int co_shared_restore(const char *dir, int *plan_fd, char *err, size_t errlen);

/* inspect.c */
/* inspect.c: a generation, a group's images directory (every generation) or one image */
int co_cmd_inspect(const char *target, int json);
int co_cmd_verify(const char *target, int json);

#endif
