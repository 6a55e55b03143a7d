/*
 * kinds.h - the kernel objects a group shares, one file per kind, plugged
 * into one engine (engine.c) through one ops table.
 *
 * Dump (the coordinator, every member parked): the engine lists every
 * descriptor of every process as a reference (process, fd) -> object,
 * classified by co_fd_classify(); references to the same object (same
 * inode, or same open file description: kcmp) get one identity; a kind's
 * collect() adds the references no process holds (descriptors in flight
 * on a Unix socket: the coordinator's own copies).  Each
 * object is dumped once by its kind's dump(), followed by one link record
 * per holder (CO_R_SLINK), then by what needs every object to exist first
 * (dump_data: epoll items, socket data).  Everything goes to shared.img.
 *
 * Restore (the group's init, before any process): the engine reads
 * shared.img; each record goes to the restore() of the kind that owns it
 * (records.c), which makes the object with co_made_add(); each link puts
 * one entry in the plan (plan.h) that hands the object to its holder.
 *
 * How to add a kind: docs/architecture.md, "Kernel objects".
 */
#ifndef COHORT_KINDS_H
#define COHORT_KINDS_H

#include <stddef.h>
#include <stdint.h>
#include "image.h"
#include "kinds/classify.h"
#include "kinds/plan.h"

#define CO_MAX_REFS 8192

/* One descriptor of one process, and the object it refers to. */
struct co_ref {
	int pid, host, fd;	/* pid in the group, pid on the host, descriptor (CO_PLAN_CWD: working directory) */
	uint64_t dev, ino, pos;
	uint32_t flags;		/* open flags, from fdinfo */
	uint32_t kind;		/* enum co_obj_kind */
	int obj;		/* identity: index of the first reference to the same object */
	int inflight;		/* 0: a process's descriptor; else the coordinator's own copy (pid 0, no link):
				 * CO_INFLIGHT_PASSED (in an SCM_RIGHTS message), CO_INFLIGHT_EMBRYO (a backlog's) */
	char path[CO_PATH];	/* the /proc fd link */
};
#define CO_INFLIGHT_PASSED 1
#define CO_INFLIGHT_EMBRYO 2

struct co_shared_member;	/* cli.h: a process of the group, its pid in the group and on the host */

/* The dump side, as a kind's functions see it. */
struct co_kdump {
	struct co_writer *w;
	const char *dir;		/* the generation's directory (files/ for copies) */
	const struct co_ref *refs;	/* every descriptor of the group */
	int nrefs;
	char *err;
	size_t errlen;
	int ncopies;			/* files copied into files/ so far (file.c) */
	int ncopied;			/* of them, copies of written descriptors (file.c) */
	int nshm;			/* shared memory objects written so far (shm.c) */
	const struct co_shared_member *members;	/* every process of the group (pty.c: sessions, groups) */
	int nmembers;
	unsigned flags;			/* the checkpoint's CO_CKPT_* (proto.h) */
	struct co_table *table;		/* the group's process table (inotify.c: what the agents hold, co_iheld) */
	int64_t clock_off[2];		/* the group's CLOCK_MONOTONIC and CLOCK_BOOTTIME minus ours (timerfd.c) */
};

/* The restore side (init): made objects and the plan being built. */
struct co_krestore;

enum co_identity {
	CO_ID_INODE = 1,	/* one object per inode: pipes, sockets, memfds */
	CO_ID_OPENFILE = 2,	/* one per open file description (kcmp): anon inodes, regular files */
};

struct co_kind_ops {
	uint32_t kind;			/* enum co_obj_kind; its name: co_obj_name() */
	uint32_t identity;		/* enum co_identity */
	int late;			/* dumped after the others (epoll: after what it watches), and its
					 * restore_done called after theirs */
	/*
	 * Before any object is dumped (may be NULL): the references the
	 * object refs[first] brings that no process holds (descriptors in
	 * flight), added with co_ref_inflight().  0, or -1 with err.
	 */
	int (*collect)(struct co_kdump *d, int first);
	/*
	 * The object whose first reference is refs[first]: its records, then
	 * *id (what its links name).  1: written, links follow; 0: nothing
	 * for the group (a file only one process holds); -1: err filled;
	 * CO_BUSY (cli.h), err filled: caught part-way, the checkpoint tries
	 * again in a moment (inotify events it could not make again).
	 */
	int (*dump)(struct co_kdump *d, int first, uint64_t *id);
	/* For a link of reference r: which end (pipes: 1 the write end), else 0. */
	uint32_t (*end)(const struct co_ref *r);
	/* Once every object is written: records that need them all (may be NULL); 0, -1 or CO_BUSY as dump. */
	int (*dump_data)(struct co_kdump *d, int first, uint64_t id);
	/* One record of this kind from shared.img (payload p, len bytes); -1 with err. */
	int (*restore)(struct co_krestore *x, unsigned type, const void *p, uint64_t len);
	/* Once every record is read: what must wait for all of them (may be NULL); -1 with err. */
	int (*restore_done)(struct co_krestore *x);
	/* One record of this kind, for `cohort inspect`. */
	void (*describe)(unsigned type, const void *p, uint64_t len, char *out, size_t n);
	/*
	 * Once the checkpoint has ended (may be NULL): what the dump took from
	 * the group (a --kill checkpoint may read what it cannot peek) given
	 * back when it failed, let go when it was committed.
	 */
	void (*settle)(int failed);
	/*
	 * Once every object is dumped, in a checkpoint the group outlives (not
	 * --kill; may be NULL): what the dump took from the running group
	 * given back at once, before it runs on (a listener's backlog).
	 */
	void (*dumped)(void);
};

/* The kinds (each in its own file), and the one table listing them (engine.c). */
extern const struct co_kind_ops co_pipe_ops, co_file_ops, co_ghost_ops, co_shm_ops, co_eventfd_ops, co_signalfd_ops,
	co_timerfd_ops, co_epoll_ops, co_unix_ops, co_inotify_ops, co_pty_ops, co_pts_ops;
/* file.c: a directory's open file description several processes hold (a CO_R_SFILE, as a regular file's) */
extern const struct co_kind_ops co_dir_ops;
/* fanotify.c */
extern const struct co_kind_ops co_fanotify_ops;
/* sysv.c: the SysV IPC objects of the group's IPC namespace; no descriptor holds them (not in the engine's table) */
extern const struct co_kind_ops co_sysv_ops;
const struct co_kind_ops *co_kind_ops(uint32_t kind);

/* ---- engine services for the kinds (engine.c) ---- */

/* The process's descriptor ref, opened here (pidfd_getfd): -1 if gone. */
int co_ref_grab(const struct co_ref *r);
/* The slot in the group's process table (d->table->p) of the process that holds refs[k], or -1. */
int co_ref_slot(const struct co_kdump *d, const struct co_ref *r);
/*
 * A descriptor of the coordinator's own (fd: a copy of a descriptor in
 * flight, or of a connection in a backlog) made a reference of pid 0, with
 * its kind and identity; the engine closes it when the dump ends.  Its
 * index, or -1 (fd closed; err: what it is, "KIND (LINK)", when the engine
 * has no such kind; the caller says where it was).
 */
int co_ref_inflight(struct co_kdump *d, int fd, int how);
/* The object refs[k] refers to, once dumped: 1 with *id (its links' id), 0 when it was not recorded. */
int co_ref_object(struct co_kdump *d, int k, uint64_t *id);
/*
 * For kinds with one object per open file description whose first
 * description of an inode makes the inode (deleted files, memfds): the id
 * (index + 1) of the earlier description of the same inode and kind, which
 * makes it; 0 when refs[first] is the first.
 */
uint64_t co_ref_maker(const struct co_kdump *d, int first);
/* The /proc/PID/fdinfo/FD text of refs[i]; 0, or -1 with err filled. */
int co_ref_fdinfo(struct co_kdump *d, int i, char *buf, size_t n);
/* Every reference to the object refs[first] is (refs[k].obj == first). */
#define CO_FOR_HOLDERS(d, first, k) \
	for (int k = (first); k < (d)->nrefs; k++) if ((d)->refs[k].obj == (first))

/* Restore: an object made (fd[1] -1 unless it has two ends), and look-ups. */
int co_made_add(struct co_krestore *x, uint32_t kind, uint64_t id, int fd0, int fd1, uint64_t peer);
int co_made_fd(struct co_krestore *x, uint32_t kind, uint64_t id, int end);	/* -1: none */
uint64_t co_made_peer(struct co_krestore *x, uint32_t kind, uint64_t id);	/* 0: none */
int co_plan_add(struct co_krestore *x, const struct co_plan_ent *e);
/* An object of a CO_R_SOBJ record made on f (-1: failed, errno): its flags set, added. */
int co_sobj_made(struct co_krestore *x, const struct co_sobj *o, int f);
/* The object of a CO_R_SOBJ record, written for the object refs[first] (its flags from there). */
int co_sobj_write(struct co_kdump *d, int first, struct co_sobj *o);
/* The plan's descriptor for process pid that src was handed to: -1 if none. */
int co_plan_holder(struct co_krestore *x, int pid, int src);
/* A failure, one line into err; -1.  co_kbad: a damaged record, named by "PATH: byte N: ". */
int co_kerr(struct co_krestore *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int co_kbad(struct co_krestore *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *co_kdir(struct co_krestore *x);
/* The generation's processes, as its manifest lists them (n of them). */
const struct co_mproc *co_kprocs(struct co_krestore *x, int *n);	/* the generation's directory */
/* The manifest's entry for name (relative to the generation), or NULL; *listed: the manifest lists files. */
const struct co_mfile *co_kfile(struct co_krestore *x, const char *name, int *listed);

/* ---- shared helpers of the kinds ---- */

/*
 * inotify.c: the path (CO_PATH bytes) of the inode a watch or mark names
 * by its fdinfo's file handle (sdev: the kernel's dev_t), opened with
 * open_by_handle_at on a mount of its filesystem, and its st_dev in *dev.
 * 0, or -1 with *why (no path that leads to that inode; no
 * CAP_DAC_READ_SEARCH).
 */
int co_handle_path(uint32_t sdev, uint64_t ino, int type, const uint8_t *handle, uint32_t bytes, char *path,
		   uint64_t *dev, const char **why);

/*
 * file.c: a new open file description of the file of init's descriptor
 * from, opened through /proc/self/fd with a description's open flags (its
 * creation flags and O_CLOEXEC left out; O_ASYNC, which open ignores, set
 * after) and put at offset pos (< 0: left at 0).  The descriptor, or -1
 * with errno.
 */
int co_reopen(int from, uint32_t flags, int64_t pos);
/* file.c: copy a file the group writes into files/ (0, or -1: cannot). */
int co_file_copy(struct co_kdump *d, const char *path);
/* Copy len bytes between descriptors: in the kernel when it can (file.c). */
int co_copy_bytes(int in, int out, uint64_t len);
/*
 * shm.c: bytes [from, size) of fd as records of type (u64 offset, then
 * bytes), holes left out; mem_at: fd is /proc/PID/mem with offset from
 * mapped there (pages of zeros left out).  0, or -1.
 */
int co_write_runs(struct co_writer *w, unsigned type, int fd, uint64_t mem_at, uint64_t from, uint64_t size);
/* The inverse, at a restore: one such record (len bytes at p) written into fd; what names it in messages. */
int co_read_run(struct co_krestore *x, int fd, const void *p, uint64_t len, const char *what);
/* And for inspect: "N bytes at offset O". */
void co_describe_run(const void *p, uint64_t len, char *out, size_t n);
/* shm.c: the shared memory the processes map without a descriptor, and files they map writable. */
int co_shm_dump_mappings(struct co_kdump *d, const struct co_shared_member *m, int n);
/* shm.c: is our own mapping that begins at start huge page memory (hugetlb)?  1, 0, or -errno */
int co_shm_hugetlb_at(uint64_t start);
/* sysv.c: every semaphore set, message queue and shm segment of the IPC namespace of host_pid; 0, or -1 */
int co_sysv_dump(struct co_kdump *d, int host_pid);

/* The kind a record of shared.img belongs to (CO_R_SOBJ: the one it names); NULL: the engine's own. */
const struct co_kind_ops *co_rec_ops(unsigned t, const void *p);
/* One line about the payload p of a record of type t (records.c), for inspect. */
void co_rec_describe(unsigned t, const void *p, uint64_t len, char *out, size_t n);
/* The shortest payload a record of type t may have (records.c); 0: any. */
uint64_t co_rec_minlen(unsigned t);
/* " [file: ...]": the file stamp after the path at path_off of a record (records.c); "" when none. */
const char *co_stamp_text(const void *p, uint64_t len, uint64_t path_off, char *buf, size_t n);

#endif
