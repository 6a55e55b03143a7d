/*
 * procfs.h - the one place that parses /proc (procfs.c, and by kind of
 * text procfs_maps.c, procfs_fdinfo.c, procfs_mount.c).  No allocation:
 * the agent calls these with the program's threads parked, the restorer
 * without libc.
 */
#ifndef COHORT_PROCFS_H
#define COHORT_PROCFS_H

#include <stddef.h>
#include <stdint.h>
#include "image.h"

struct co_mapent {
	uint64_t start, end, off;
	uint32_t prot;		/* PROT_* */
	int shared;		/* 's' in the permissions */
	uint64_t dev, ino;
	char path[CO_PATH];
};

/* A device as struct co_mapent has it (from its major and minor numbers: compare only these). */
uint64_t co_maps_dev(uint64_t major, uint64_t minor);

struct co_maps {
	int fd;
	int kept;		/* fd is the caller's: co_maps_close leaves it open */
	size_t len, pos;
	int eof;
	char buf[16384];
};

/* The name maps gives an aio context's ring (io_setup): an unlinked file of the kernel's aio fs. */
#define CO_AIO_RING_NAME "/[aio] (deleted)"

int co_maps_open(struct co_maps *m, const char *path);
/* Read the maps file open on fd again from its start (fd stays the caller's). */
int co_maps_reread(struct co_maps *m, int fd);
/* 1: an entry, 0: end, <0: -errno */
int co_maps_next(struct co_maps *m, struct co_mapent *e);
void co_maps_close(struct co_maps *m);
/*
 * The same from /proc/PID/smaps (opened with co_maps_open): each call gives
 * one region's entry (as co_maps_next) and the fields of it cohort uses:
 * Rss and AnonHugePages in KiB, whether the kernel would back it with
 * transparent huge pages (THPeligible), and the CO_VF_ADVICE bits its
 * VmFlags line shows (and CO_VF_MAYWRITE: "mw").  Reading smaps walks the page tables of every region
 * (about 4 ms per GiB in memory here), maps does not.
 */
struct co_smaps_info {
	uint64_t rss_kib, anon_huge_kib;
	int thp_eligible;
	uint32_t advice;	/* CO_VF_ADVICE and CO_VF_MAYWRITE bits (image.h) */
};
int co_smaps_next(struct co_maps *m, struct co_mapent *e, struct co_smaps_info *si);
/* The smaps entry of the region that begins at start (path: /proc/PID/smaps): 1, 0 when none does, or -errno. */
int co_smaps_find(struct co_maps *m, const char *path, uint64_t start, struct co_mapent *e, struct co_smaps_info *si);

/* Read a small file whole into buf (terminated); returns bytes or -errno. */
long co_read_small(const char *path, char *buf, size_t n);

/* The one decimal number a small /proc file holds (oom_score_adj, loginuid): 0, or -errno. */
int co_read_number(const char *path, int64_t *v);

/*
 * Numeric fields `first`..`first+count-1` (1-based, as in proc(5)) of a
 * /proc/PID/stat file; handles a comm with spaces or parentheses.
 */
int co_stat_fields(const char *path, uint64_t *out, int first, int count);

/* Bits of a /proc/PID/pagemap entry (the swap type and offset below bit 55 show only to a privileged reader). */
#define CO_PM_PRESENT (1ULL << 63)
#define CO_PM_SWAP (1ULL << 62)
#define CO_PM_FILE (1ULL << 61)
#define CO_PM_EXCLUSIVE (1ULL << 56) /* mapped by this process alone (not shared copy-on-write) */
#define CO_PM_UFFD_WP (1ULL << 57) /* write-protected by userfaultfd (Linux 5.13) */
#define CO_PM_GUARD (1ULL << 58) /* a guard page, MADV_GUARD_INSTALL (Linux 6.14): reading it faults */
#define CO_PM_SWP_FIELDS ((1ULL << 55) - 1) /* swap type (bits 0-4) and offset, or 0 unprivileged */

/*
 * The numbered entries of an open /proc directory (PID/fd, PID/task), read
 * from its start, ascending, into out: how many, -E2BIG when more than max,
 * or -errno.  No allocation: the agent lists its threads and descriptors
 * with it while the program is parked.
 */
int co_dir_numbers(int dirfd, int *out, int max);
/* fn(number, arg) for each numbered entry of an open /proc directory, in the kernel's order, until one
 * answers non-zero: that answer, 0, or -errno.  No table, no limit. */
int co_dir_each(int dirfd, int (*fn)(int num, void *arg), void *arg);

/* The pid a pidfd refers to (fdinfo "Pid:"): >0, 0 outside this /proc's namespace, -1 ended; or -errno */
int co_fdinfo_pidfd(int fd, int *pid);
/* pos and flags from /proc/PID/fdinfo/FD (pid 0: this process) */
int co_fdinfo(int pid, int fd, uint64_t *pos, uint32_t *flags);
/*
 * The same, and the locks held through it (its "lock:" lines, up to max,
 * into locks; *nlocks how many): 0, -EBADF, -EIO, or -E2BIG with more
 * locks than max or than the buffer holds.  Kinds other than POSIX, FLOCK
 * and OFDLCK (leases) answer -ENOTSUP, their name in *other.
 */
int co_fdinfo_locks(int pid, int fd, uint64_t *pos, uint32_t *flags, struct co_lock *locks, int max, int *nlocks,
		    const char **other);

/* A process as its PID namespace sees it, read from /proc/PID/status and stat. */
struct co_nsids {
	int pid, pgid, sid;	/* innermost namespace */
	int host_ppid;		/* parent, as the reader sees it */
	char state;		/* R, S, Z, ... */
	int exit_code;		/* zombies: the wait status */
};
int co_ns_ids(int host_pid, struct co_nsids *out);

/*
 * The credentials in a /proc/PID/status buffer: uid and gid (real,
 * effective, saved, filesystem) and up to max supplementary groups.
 * Returns how many groups, -E2BIG when there are more than max, or -EINVAL
 * when a line is missing or malformed.
 */
/* The file-creation mask of a status text ("Umask:\t0022", Linux 4.7+), or -1. */
long co_status_umask(const char *buf);
int co_status_creds(const char *buf, uint32_t uid[4], uint32_t gid[4], uint32_t *groups, int max);

/*
 * A thread of process host (as /proc shows it) whose uid, gid, groups or
 * capability sets differ from those of the process's first thread: its tid, 0 when every
 * thread has the same ids, or -errno.  glibc's setuid() and friends change
 * every thread of a process; a raw setresuid system call changes one.
 */
int co_thread_odd_creds(int host);

/*
 * The threads of process host (as /proc shows it) with their seccomp mode
 * (the Seccomp: line of their status: 0 none, 1 strict, 2 filter),
 * no_new_privs and effective capabilities: how many, at most max into
 * out, or -errno (-E2BIG).
 */
struct co_sctask {
	int host_tid, tid;	/* as /proc shows it; in the group's namespace */
	int mode, nnp;
	uint64_t cap_eff;
};
int co_seccomp_tasks(int host, struct co_sctask *out, int max);


/*
 * The first kind of namespace ("mnt", "time_for_children", ...) in which
 * process host is not where process ref is, or NULL when it shares all of
 * ref's.  Kinds this kernel does not show are skipped.
 */
const char *co_ns_differs(int host, int ref);
/*
 * 1 when the root directory of process host (chroot) is not ref's, with
 * its path (as /proc/host/root names it) in path; 0 when it is, or when
 * either cannot be seen.
 */
int co_root_differs(int host, int ref, char *path, size_t n);

/*
 * /proc/self/NAME opened for reading, or -errno.  A process that changed
 * its uid is not dumpable and its /proc files are root's: when it may not
 * open one of its own (-EACCES), co_proc_self_fallback (when set: the
 * agent has the coordinator open it) is asked instead.
 */
extern int (*co_proc_self_fallback)(const char *name);
int co_proc_self_open(const char *name);

/*
 * The scheduler state letter of process pid (R, S, T, t, Z, ...) from
 * /proc/PID/status, and in *tracer its TracerPid (0: none); 0 when the
 * process is gone.
 */
char co_proc_state(int pid, long *tracer);
/* The state letter of a /proc/PID/status buffer (R, S, Z, ...), or 0. */
char co_status_state(const char *buf);

/* Value of the "Key:" line of a /proc status-style buffer, or -1. */
long co_status_field(const char *buf, const char *key);
/* The same for a hexadecimal field such as SigPnd; 0 when absent. */
uint64_t co_status_hex(const char *buf, const char *key);
/* The same for an octal field (a timerfd's "settime flags: 03"), or -1. */
long co_status_octal(const char *buf, const char *key);

/*
 * One line of a /proc/PID/cgroup text, "ID:CONTROLLERS:PATH": the
 * hierarchy's controllers ("" for cgroup v2, "cpu,cpuacct",
 * "name=systemd") and the path in it, neither terminated.
 */
struct co_cgline {
	const char *ctl, *path;
	size_t ctl_len, path_len;
};
/* The line at *p, which moves past it: 1, 0 at the end, -EINVAL when the text is not such lines. */
int co_cgroup_next(const char **p, struct co_cgline *l);
/*
 * Where the hierarchy of controllers ctl (ctl_len bytes; "" for cgroup
 * v2) is mounted whole (root "/"), from /proc/self/mountinfo, into out:
 * 0, or -ENOENT.
 */
int co_cgroup_mount(const char *ctl, size_t ctl_len, char *out, size_t n);

/*
 * One watch of an inotify descriptor, from its fdinfo: "inotify wd:N
 * ino:X sdev:Y mask:M ignored_mask:0 fhandle-bytes:B fhandle-type:T
 * f_handle:HEX" (all hexadecimal; sdev is the kernel's dev_t, major << 20
 * | minor).  The handle opens the inode (open_by_handle_at).
 */
struct co_inotify_line {
	int wd;
	uint32_t sdev, mask;
	uint64_t ino;
	int handle_type;
	uint32_t handle_bytes;
	uint8_t handle[128];
};
/* The next watch line at *p (an fdinfo text), which moves past it: 1, or 0 when there is none. */
int co_inotify_next(const char **p, struct co_inotify_line *l);
/*
 * One line of a fanotify descriptor's fdinfo (co_fanotify_next): the
 * group's (flags, event_flags), or one mark (all hexadecimal, sdev the
 * kernel's dev_t as for inotify; an inode mark has the file handle).
 */
enum co_fan_what { CO_FAN_GROUP = 1, CO_FAN_INODE, CO_FAN_MOUNT, CO_FAN_FILESYSTEM, CO_FAN_MNTNS, CO_FAN_UNKNOWN };
struct co_fanotify_line {
	int what;		/* enum co_fan_what */
	uint32_t flags, event_flags;	/* CO_FAN_GROUP: fanotify_init's */
	uint32_t sdev, mnt_id, mflags;
	uint64_t ino, mask, ignored;
	uint64_t mnt_ns;	/* CO_FAN_MNTNS: the mount namespace's inode (decimal in fdinfo) */
	int handle_type;
	uint32_t handle_bytes;
	uint8_t handle[128];
	char text[160];		/* the line (cut), for messages about a mark cohort does not know */
};
/* The next "fanotify " line at *p (an fdinfo text), which moves past it: 1, or 0 when there is none. */
int co_fanotify_next(const char **p, struct co_fanotify_line *l);
/*
 * One item of an epoll set, from its fdinfo (co_epoll_next): the number it
 * was added with (tfd: -1 when the line does not say), its events and
 * data, and the inode of the file it watches (sdev the kernel's dev_t, as
 * for inotify).
 */
struct co_epoll_line {
	int tfd;
	uint32_t events, sdev;
	uint64_t data, ino;
};
/* The next "tfd:" line at *p (an fdinfo text), which moves past it: 1, or 0 when there is none. */
int co_epoll_next(const char **p, struct co_epoll_line *l);
/*
 * A thread of the machine (as /proc shows them) asleep in a kernel
 * function whose name starts with fn (its /proc/PID/task/TID/wchan): its
 * tid, 0 when none is, or -errno.  Reads every thread's wchan: for rare
 * questions only.
 */
int co_thread_waiting_in(const char *fn);
/* The same among the threads of process pid (tid 0), or of thread tid of pid only. */
int co_task_waiting_in(int pid, int tid, const char *fn);
/* fn(fd, arg) for each descriptor of process pid until one answers non-zero: that answer, 0, or -errno */
int co_each_fd(int pid, int (*fn)(int fd, void *arg), void *arg);
/* fn(tid, arg) for each thread of process pid, the same way */
int co_each_task(int pid, int (*fn)(int tid, void *arg), void *arg);
/* The inode of process pid's namespace of kind ("mnt", ...): /proc/PID/ns/KIND; 0 when it cannot be seen. */
uint64_t co_ns_inode(int pid, const char *kind);
/* The mount point of mount mnt_id as process pid sees it (/proc/PID/mountinfo): 0, or -ENOENT. */
int co_mount_point_by_id(int pid, uint32_t mnt_id, char *out, size_t n);
/* Where the filesystem major:minor is mounted whole (root "/"), from /proc/self/mountinfo: 0, or -ENOENT. */
int co_dev_mount(unsigned major, unsigned minor, char *out, size_t n);

/* A migration's target compares these with its source's: the size of our [vdso] (or -errno) */
long co_vdso_size(void);
/* The CPU's feature flags, as /proc/cpuinfo lists them (space-separated), in buf: their length or -errno. */
long co_cpu_flags(char *buf, size_t n);

#endif
