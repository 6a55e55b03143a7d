/*
 * image.h - the cohort image format: one record stream per file, the same
 * stream a socket would carry.  docs/image-format.md describes it in prose.
 *
 * A record is a 32-byte header, `pad` zero bytes (so that page data can
 * start on a page boundary of the stream), `len` payload bytes, and an
 * 8-byte trailer holding the XXH64 of the payload seeded with the record's
 * sequence number.  The header carries its own check, so a damaged length
 * is caught before it is trusted.  All integers are little-endian.
 */
#ifndef COHORT_IMAGE_H
#define COHORT_IMAGE_H

#include <stdint.h>
#include "xxh64.h"

#define CO_IMG_VERSION 8
/* oldest version still read: 2 has no compressed files, 2 and 3 no timer records, 2 to 4 no credentials,
 * 2 to 5 no process and thread attributes (attrs.c), 2 to 6 no binding (co_bind), no file list, no
 * descriptor owners, file times, seals or copy-on-write maps */
#define CO_IMG_VERSION_MIN 2
#define CO_IMG_VERSION_OK(v) ((v) >= CO_IMG_VERSION_MIN && (v) <= CO_IMG_VERSION)
#define CO_REC_MAGIC 0x43524f43u /* "CORC" */
#define CO_IMG_MAGIC "COHORT-IMAGE"

enum co_rec_type {
	CO_R_HEAD = 1,	  /* struct co_head: first record of every file */
	CO_R_PROC = 2,	  /* struct co_proc: process-wide attributes */
	CO_R_THREAD = 3,  /* struct co_thread: one per thread */
	CO_R_FD = 4,	  /* struct co_fd, then the path */
	CO_R_FILEDATA = 5, /* page-aligned content of the deleted file of the CO_R_FD before */
	CO_R_VMA = 6,	  /* struct co_vma, then the path */
	CO_R_PAGEMAP = 7, /* struct co_pagemap with its runs */
	CO_R_PAGEDATA = 8, /* page-aligned contents of the runs of the CO_R_PAGEMAP before */
	CO_R_END = 9,	  /* struct co_end: last record */
	CO_R_PARENTMAP = 10, /* struct co_pagemap: pages unchanged since the parent generation (no data) */
	CO_R_TIMER = 11,  /* struct co_timer: a POSIX timer (timer_create), after the threads */
	CO_R_LOCK = 12,	  /* struct co_lock: a file lock the process holds through the CO_R_FD before */
	CO_R_FDOWNER = 13, /* struct co_fdowner: the SIGIO owner and signal of the CO_R_FD before */
	CO_R_COWMAP = 14, /* struct co_pagemap, after the regions: pages shared copy-on-write at the checkpoint */
	CO_R_SECCOMP = 73, /* struct co_seccomp, after the threads: a seccomp filter chain and the threads that have it */
	CO_R_MANIFEST = 32, /* struct co_manifest: generation metadata */
	CO_R_MPROC = 33,  /* struct co_mproc: one per process of the generation */
	CO_R_MFILE = 34,  /* struct co_mfile: one per file of the generation (format 7) */
	CO_R_SHM = 48,	  /* struct co_shm: shared memory object (shared.img) */
	CO_R_SHMDATA = 49, /* u64 offset, then page-aligned bytes of the co_shm before */
	CO_R_PIPE = 50,	  /* struct co_pipe, then the buffered bytes */
	CO_R_SFILE = 51,  /* struct co_sfile: an open file description shared by processes */
	CO_R_FCOPY = 52,  /* struct co_fcopy: a file the group writes, copied at the checkpoint */
	CO_R_SLINK = 53,  /* struct co_slink: a process's descriptor that refers to a shared object */
	CO_R_SOBJ = 54,	  /* struct co_sobj: eventfd, signalfd, timerfd, epoll or Unix socket */
	CO_R_EPITEM = 55, /* struct co_epitem: one descriptor watched by an epoll object */
	CO_R_SOCKDATA = 56, /* u64 socket id, then one queued message (or stream bytes) */
	CO_R_FTIMES = 57, /* struct co_ftimes: atime and mtime of the file of the CO_R_FCOPY before */
	CO_R_GHOST = 58,  /* struct co_ghost: an open file description of a deleted file or directory */
	CO_R_GHOSTDATA = 59, /* u64 offset, then bytes of the deleted file of the co_ghost before */
	CO_R_IWATCH = 60, /* struct co_iwatch: one watch of the inotify object (co_sobj) before */
	CO_R_IEVENTS = 61, /* u64 inotify id, then the events queued at the checkpoint (struct inotify_event each) */
	CO_R_SYSVSEM = 62, /* struct co_sysv, then u16 values: a SysV semaphore set of the group's IPC namespace */
	CO_R_SYSVMSG = 63, /* struct co_sysv: a SysV message queue (part 0), or one of its messages (part 1), then its bytes */
	CO_R_SYSVSHM = 64, /* struct co_sysv: a SysV shm segment (part 0), or a run of its bytes (part 1), then the bytes */
	CO_R_USOCK = 65,  /* struct co_usock: a Unix socket of any shape (replaces CO_R_SOBJ of kind unix socket) */
	CO_R_USMSG = 66,  /* struct co_usmsg, its passed descriptors (struct co_uspass), then its bytes */
	CO_R_PTY = 70,	  /* struct co_pty: a pseudo-terminal of the group's devpts, made by its master's open file */
	CO_R_PTYDATA = 71, /* struct co_ptydata, then the bytes queued in one direction of the co_pty before */
	CO_R_PIPEDATA = 72, /* struct co_pipedata, then bytes (or one packet) queued in the pipe of the CO_R_PIPE before */
	CO_R_SEMUNDO = 76, /* struct co_semadj: one SEM_UNDO adjustment of the process, after its timers */
	CO_R_AIO = 77,	  /* struct co_aio, then its unreaped struct co_aio_event: an aio ring, after the regions */
	CO_R_FMARK = 67,  /* struct co_fmark: one mark of the fanotify object (co_sobj) before */
	CO_R_DNOTIFY = 78, /* struct co_dnotify: a dnotify watch of the process on the CO_R_FD before */
	/* the migration stream (src/cli/wire.c): the same records over a socket, never in a file */
	CO_R_WIRE_MSG = 80,  /* struct co_wire_msg: a control message (its text cut to what is used) */
	CO_R_WIRE_FILE = 81, /* struct co_wire_file: a file of the generation follows, in CO_R_WIRE_DATA records */
	CO_R_WIRE_DATA = 82, /* the next bytes of the file of the CO_R_WIRE_FILE before */
};

/* co_manifest.tty_pgid: the program shared the caller's process group, which had the terminal (its settings kept) */
#define CO_TTY_CALLERS (-1)

enum co_img_kind { CO_KIND_PROCESS = 1, CO_KIND_MANIFEST = 2, CO_KIND_PAGES = 3, CO_KIND_SHARED = 4 };

/* Name of page stream k of the process image at path (stream 0 is the image itself). */
void co_stream_path(char *out, unsigned long n, const char *image, int k);

struct co_rec_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;		/* CO_RF_*: what a reader may ignore */
	uint32_t pad;
	uint32_t check; /* low 32 bits of XXH64 of this header with check = 0 */
	uint64_t len;
	uint64_t seq;
};

/*
 * co_rec_hdr.flags.  BEHIND (page data of a migration's post-copy stop,
 * docs/architecture.md "Post-copy"): the payload and its checksum were
 * written after the rest of the file, from the parked process's memory
 * (until then the file has a hole there); the generation is committed
 * only once they are in.  Readers need not look at it.
 */
#define CO_RF_BEHIND 1

/*
 * A record's checksum: XXH64 of its payload, seeded with its sequence
 * number and type (so a record moved or retyped fails it).  Started here
 * by the writer, the reader, and whoever writes a payload left behind.
 */
static inline void co_rec_sum_init(struct co_xxh64 *h, uint64_t seq, uint32_t type)
{
	co_xxh64_init(h, seq ^ type);
}

/*
 * Whose file an image is (format 7): the group (a random id the group
 * keeps across restarts, in its manifest), the generation, the process
 * (0 for the group's files) and the page stream.  A file swapped in from
 * another generation, group, process or stream is found by the reader
 * that expects this one (co_head_check), not restored as its memory.
 */
struct co_bind {
	uint64_t group_id;
	uint64_t generation;
	int32_t pid;
	uint32_t stream;
};

struct co_head {
	char magic[16];
	uint32_t version;
	uint32_t kind;
	uint64_t created_ns; /* CLOCK_REALTIME */
	struct co_bind bind; /* format 7; zero before */
};

/* Callee-saved state of a parked thread (see agent/ctx.S). */
struct co_ctx {
	uint64_t rbx, rbp, r12, r13, r14, r15, rsp, rip;
	uint32_t mxcsr;
	uint16_t fpucw;
	uint16_t pad;
};

struct co_mm {
	uint64_t start_code, end_code, start_data, end_data;
	uint64_t start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
};

/* A queued signal, as the kernel's siginfo (si_signo is the first int). */
struct co_siginfo {
	int32_t signo;
	unsigned char rest[124];
};
#define CO_MAX_PENDING 16

#define CO_NSIG 64
#define CO_NRLIMIT 16
#define CO_PATH 1024
#define CO_MAX_GROUPS 1024 /* supplementary groups recorded (the kernel allows 65536) */

struct co_proc {
	int32_t pid, ppid, pgid, sid;
	uint32_t nthreads, nfds, nvmas, umask;
	struct co_mm mm;
	uint64_t auxv[128];
	uint32_t auxv_bytes;
	uint32_t sig;			/* the checkpoint signal */
	struct { uint64_t cur, max; } rlim[CO_NRLIMIT];
	struct { uint64_t handler, flags, restorer, mask; } sigact[CO_NSIG]; /* index: signal - 1 */
	uint64_t agent_info;		/* address of the agent's struct co_resume */
	uint64_t mono_ns;		/* CLOCK_MONOTONIC when dumped */
	uint64_t boot_ns;		/* CLOCK_BOOTTIME when dumped */
	char comm[16];
	uint32_t npending;		/* signals queued for the whole process */
	uint32_t streams;		/* page-data streams: the image and proc-PID.pN.img */
	uint64_t parent;		/* incremental image: the generation holding its unchanged pages; 0: full */
	struct co_siginfo pending[2 * CO_MAX_PENDING];
	char exe[CO_PATH];
	char cwd[CO_PATH];
	/*
	 * Format 5: the credentials, as the Uid:, Gid: and Groups: lines of
	 * /proc/PID/status show them (the main thread's), and whether the
	 * process is dumpable (PR_GET_DUMPABLE: the kernel clears it when the
	 * uid changes).  Older records are shorter and read with creds 0:
	 * the restorer leaves the ids as it has them.  The restorer takes the
	 * manifest's ids rather than these when it has them (struct co_mproc):
	 * the process wrote this record itself.
	 */
	uint32_t creds;			/* 1: recorded */
	int32_t dumpable;		/* 0, 1 or 2 */
	uint32_t uid[4];		/* real, effective, saved, filesystem */
	uint32_t gid[4];
	uint32_t ngroups;
	uint32_t pad2;
	uint32_t groups[CO_MAX_GROUPS];	/* supplementary groups, as the kernel keeps them (sorted) */
	/*
	 * Format 6: process-wide attributes (attrs.c).  Older records are
	 * shorter and read with attrs 0: the restorer leaves these as the
	 * new process has them.
	 */
	struct co_pattrs {
		uint32_t attrs;			/* 1: recorded */
		int32_t oom_score_adj;
		uint32_t child_subreaper;	/* PR_GET_CHILD_SUBREAPER */
		uint32_t thp_disable;		/* PR_GET_THP_DISABLE */
		struct co_itimer {		/* ITIMER_REAL, _VIRTUAL, _PROF (getitimer): interval, time left */
			int64_t interval_sec, interval_usec, value_sec, value_usec;
		} itimer[3];
		/*
		 * Later in format 6 (older records end before it and read 0):
		 * the membarrier(2) commands the process registered, as
		 * MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3+) answers: a
		 * mask of MEMBARRIER_CMD_REGISTER_* bits, each registered again.
		 * 0 also when the kernel cannot tell (before 6.3).
		 */
		uint32_t membarrier;
		uint32_t pad;
		/*
		 * Format 7 (older records end before it and read ""): the
		 * cgroups of the process, every hierarchy's, as
		 * /proc/self/cgroup shows them ("ID:CONTROLLERS:PATH" lines;
		 * its threads are in the same, or the checkpoint was refused),
		 * and those of the group's init then (cgroup_base).  A cgroup
		 * under init's is the group's own: made again under the
		 * restart's init's, empty; any other is joined as it is
		 * (cgroup.c).  "": not recorded, the restart's stay.
		 */
		char cgroup[2048];
		char cgroup_base[2048];
	} a;
	/*
	 * Later in format 7 (older records end before it and read 0): the
	 * CPU time of the process at the checkpoint as the program saw it
	 * (src/agent/cpuclock.c: the kernel's, plus what earlier restarts
	 * took away), which the agent adds back after a restart.  ns:
	 * CLOCK_PROCESS_CPUTIME_ID; the others getrusage(RUSAGE_SELF) and
	 * (RUSAGE_CHILDREN) user and system time.  cpu 0: not recorded.
	 */
	struct co_pcpu {
		uint32_t cpu;		/* 1: recorded */
		uint32_t pad;
		int64_t ns;
		int64_t utime_ns, stime_ns;
		int64_t cutime_ns, cstime_ns;
	} cpu;
	/*
	 * Later in format 7 (older records end before it and read ""): the
	 * process's root directory when it is not the group's (chroot), as a
	 * path from the group's root.  Every path of the image is from the
	 * group's root too (the manager reads them from there: agent/root.c);
	 * the restorer opens and maps by them and chroots here last.  "": the
	 * group's root.
	 */
	char root[CO_PATH];
	/*
	 * Format 8 (older records end before it and read 0: not recorded,
	 * the restart's stays): process-wide attributes new in it (attrs.c).
	 */
	struct co_pattrs8 {
		uint32_t attrs;		/* 1: recorded */
		uint32_t memory_merge;	/* PR_GET_MEMORY_MERGE: 1, KSM merges every region of the process */
	} a8;
	/*
	 * Format 8 (older records end before it and read 0): the flags of the
	 * program's last mlockall(2) that still hold for the regions it maps
	 * from then on (MCL_FUTURE, with MCL_ONFAULT), which /proc does not
	 * show: the agent notes them in its wrapper (wrap.c); the restorer
	 * calls mlockall again with them (co_mem_lock).  0: none.
	 */
	uint32_t mlockall;
	uint32_t pad3;
};

/* CO_T_RSEQ_UNKNOWN: in memory only, an rseq area the agent could not find (the checkpoint is refused) */
enum co_thread_flags { CO_T_MANAGER = 1, CO_T_LEADER = 2, CO_T_RSEQ_UNKNOWN = 4 };

struct co_thread {
	int32_t tid;
	uint32_t flags;
	uint64_t fsbase, gsbase;
	uint64_t robust_head, robust_len;
	uint64_t rseq_addr;
	uint32_t rseq_len, rseq_sig;
	uint64_t clear_tid;
	uint64_t sigmask; /* mask to hold while the restorer hands over */
	struct co_ctx ctx;
	char comm[16];
	uint32_t npending;	/* signals queued for this thread alone */
	uint32_t pad;
	struct co_siginfo pending[CO_MAX_PENDING];
	/* Format 6: what the kernel keeps per thread besides (attrs.c); attrs 0 in older records. */
	struct co_tattrs {
		uint32_t attrs;		/* 1: recorded */
		uint32_t personality;
		uint32_t no_new_privs;
		int32_t pdeathsig;	/* PR_GET_PDEATHSIG */
		uint32_t securebits;	/* PR_GET_SECUREBITS */
		uint32_t pad;
		uint64_t timerslack_ns;	/* PR_GET_TIMERSLACK */
		struct co_sched_attr {	/* sched_getattr(2), as the kernel's struct sched_attr (version 1) */
			uint32_t size, policy;
			uint64_t flags;
			int32_t nice;		/* every policy's, as getpriority would say */
			uint32_t priority;
			uint64_t runtime, deadline, period;
			uint32_t util_min, util_max;
		} sched;
		uint64_t affinity[16];	/* sched_getaffinity: CPUs 0-1023 */
	} a;
	/*
	 * Later in format 7 (older records end before it and read 0): the
	 * thread's CPU time at the checkpoint as the program saw it
	 * (cpuclock.c): CLOCK_THREAD_CPUTIME_ID, and getrusage(RUSAGE_THREAD)
	 * user and system time.  cpu 0: not recorded.
	 */
	struct co_tcpu {
		uint32_t cpu;		/* 1: recorded */
		uint32_t pad;
		int64_t ns;
		int64_t utime_ns, stime_ns;
	} cpu;
	/*
	 * Format 8 (older records end before it and read 0: not recorded,
	 * the restart's stay): per-thread attributes new in it (attrs.c).
	 */
	struct co_tattrs8 {
		uint32_t attrs;		/* 1: recorded */
		int32_t nice;		/* getpriority(PRIO_PROCESS, tid), -20..19: every policy's (RT and SCHED_IDLE too) */
		int32_t ioprio;		/* ioprio_get(IOPRIO_WHO_PROCESS, tid): class << 13 | data */
		int32_t tsc;		/* PR_GET_TSC: PR_TSC_ENABLE or PR_TSC_SIGSEGV */
		int32_t mce_kill;	/* PR_MCE_KILL_GET: PR_MCE_KILL_LATE, _EARLY or _DEFAULT */
		int32_t mpol_mode;	/* get_mempolicy: the mode with its MPOL_F_* flags; -1: not recorded */
		uint64_t mpol_nodes[16];	/* its nodes 0-1023 */
	} a8;
};

/*
 * A SEM_UNDO adjustment of the process (src/agent/semundo.c): what the
 * kernel adds to semaphore semnum of set semid when the process exits.
 */
struct co_semadj {
	int32_t semid;
	int32_t semnum;
	int32_t adj;
	uint32_t pad;
};

/*
 * An asynchronous I/O context (io_setup) of the process: its ring at
 * [start, end) (the context's id is start), the ring's header as the
 * kernel wrote it (struct aio_ring of linux/aio_abi.h, fs/aio.c), the nr
 * the program asked io_setup for, then `nevents` events the kernel had
 * completed and the program not reaped, from head on (src/res/aio.c).
 */
struct co_aio {
	uint64_t start, end;
	uint32_t id, nr, head, tail;	/* nr: the ring's slots; head, tail: indexes below nr */
	uint32_t magic, compat_features, incompat_features, header_length;
	uint32_t nr_asked;
	uint32_t nevents;		/* (tail - head) mod nr */
};

/* One io_event (linux/aio_abi.h). */
struct co_aio_event {
	uint64_t data, obj;
	int64_t res, res2;
};

/* A POSIX timer of the process (timer_create), as /proc/PID/timers and timer_gettime tell it. */
struct co_timer {
	int32_t id;
	int32_t clock;		/* clockid_t (negative: a CPU-time clock) */
	int32_t signo;
	int32_t notify;		/* SIGEV_SIGNAL 0, SIGEV_NONE 1, | SIGEV_THREAD_ID 4 */
	int32_t tid;		/* SIGEV_THREAD_ID: the thread it signals */
	uint32_t pad;
	uint64_t value;		/* sigev_value */
	int64_t value_sec, value_nsec;	/* time left (0: disarmed) */
	int64_t interval_sec, interval_nsec;
	/*
	 * Appended (0 in older images): what timer_getoverrun() answered the
	 * program, and, flags CO_TIMER_PENDING, the timer's own signal was
	 * queued (not a copy: the expiries go on counting in it), its first
	 * expiry at base_ns on the timer's clock, which read at_ns when the
	 * timer was read.
	 */
	int32_t overrun;
	uint32_t flags;
	int64_t base_ns, at_ns;
};
#define CO_TIMER_PENDING 1

enum co_fd_kind {
	CO_FD_REG = 1,	   /* regular file or directory, reopened by path */
	CO_FD_DELETED = 2, /* regular file unlinked while open: content saved */
	CO_FD_CHR = 3,	   /* character device such as /dev/null, reopened by path */
	CO_FD_STDIO = 4,   /* terminal or pipe outside the group: the restart caller's stdio */
	CO_FD_DUP = 5,	   /* shares the open file description of fd `same_as` */
	CO_FD_SHARED = 6,  /* a group-wide object (obj says which): made once for the group (shared.img) */
	CO_FD_PIDFD = 7,   /* a pidfd of a process of the group (same_as: its pid), opened again at restart */
};

/* A file lock held through a descriptor, as its /proc/PID/fdinfo "lock:" line shows it (format 6). */
enum co_lock_kind { CO_LK_POSIX = 1, CO_LK_FLOCK = 2, CO_LK_OFD = 3 };
struct co_lock {
	int32_t fd;
	uint32_t kind;		/* enum co_lock_kind */
	uint32_t write;		/* 1: a write (exclusive) lock; 0: a read (shared) one */
	uint32_t pad;
	uint64_t start, len;	/* bytes locked; len 0: to the end of the file (flock: 0, 0) */
};

/*
 * The status flags F_SETFL changes (O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME,
 * O_NONBLOCK): open(2) ignores O_ASYNC, and an object made by a call
 * other than open takes them all from F_SETFL.
 */
#define CO_FL_STATUS (02000u | 020000u | 040000u | 01000000u | 04000u)

/*
 * __O_TMPFILE, the kernel's bit (glibc's O_TMPFILE is it with O_DIRECTORY):
 * fdinfo's flags keep both on a description that open(DIR, O_TMPFILE) made,
 * and open(2) given them with a file's path fails with ENOTDIR.  A regular
 * file's saved flags are opened again without either (co_reopen_flags).
 */
#define CO_O_TMPFILE 020000000u
#define CO_O_DIRECTORY 0200000u

/*
 * The flags a saved description is opened again with: never creating or
 * truncating, and a regular file's (regular: 1) without the O_TMPFILE bits.
 */
static inline uint32_t co_reopen_flags(uint32_t flags, int regular)
{
	flags &= ~(uint32_t)(0100 | 0200 | 01000); /* O_CREAT, O_EXCL, O_TRUNC */
	return regular ? flags & ~(CO_O_TMPFILE | CO_O_DIRECTORY) : flags;
}

/*
 * Who gets the descriptor's SIGIO (F_SETOWN_EX: type 0 a thread, 1 a
 * process, 2 a process group, pid in the group's pid namespace; pid 0:
 * nobody) and which signal (F_SETSIG; 0: SIGIO).  Both belong to the open
 * file description; written only where one is set (format 7).
 */
struct co_fdowner {
	int32_t fd;
	int32_t type;
	int32_t pid;
	int32_t sig;
};

/*
 * A dnotify watch of the process (fcntl F_NOTIFY), which the agent notes
 * (src/agent/dnotify.c): on the directory of the CO_R_FD before, the
 * descriptor its signals name, and the DN_* events as the program asked
 * for them (every F_NOTIFY's on that open file since, or'ed, DN_MULTISHOT
 * among them), which the restorer asks again (format 8, later; older
 * images have none).
 */
struct co_dnotify {
	int32_t fd;
	uint32_t mask;
};

struct co_fd {
	int32_t fd;
	uint32_t kind;
	uint32_t flags;	  /* open flags (O_ACCMODE, O_APPEND, ...) */
	uint32_t cloexec;
	uint64_t pos;
	uint64_t size;	  /* deleted files: bytes of content that follow */
	uint32_t mode;	  /* st_mode */
	int32_t same_as;  /* CO_FD_DUP: the fd it duplicates; CO_FD_PIDFD: the pid (or tid) it refers to */
	int32_t slot;	  /* CO_FD_STDIO: 0, 1 or 2 */
	uint32_t obj;	  /* enum co_obj_kind (0 in images written before it was recorded) */
	char path[CO_PATH];
};

enum co_vma_kind {
	CO_V_ANON = 1,	  /* private anonymous (also heap and stacks) */
	CO_V_FILE = 2,	  /* file mapping: reopened by path, private pages saved */
	CO_V_SHANON = 3,  /* shared anonymous: all resident pages saved */
	CO_V_SPECIAL = 4, /* kernel mapping ([vdso], [vvar], ...): moved, not saved */
	CO_V_DELETED = 5, /* private mapping of a deleted file: saved like anonymous */
	CO_V_AIO = 6,	  /* an aio context's ring (io_setup): made again from its CO_R_AIO record */
};

enum co_vma_flags {
	CO_VF_SHARED = 1, CO_VF_GROWSDOWN = 2, CO_VF_HEAP = 4, CO_VF_STACK = 8,
	/*
	 * What the program asked of the region with madvise(2), as the VmFlags
	 * of /proc/PID/smaps show it (dc, wf, dd, hg, nh, sr, rr); the restorer
	 * asks it again.  Older images have none of these bits, older
	 * restorers ignore them.
	 */
	CO_VF_DONTFORK = 16, CO_VF_WIPEONFORK = 32, CO_VF_DONTDUMP = 64, CO_VF_HUGEPAGE = 128,
	CO_VF_NOHUGEPAGE = 256, CO_VF_SEQUENTIAL = 512, CO_VF_RANDOM = 1024,
	/*
	 * A shared file mapping without PROT_WRITE whose file was opened for
	 * writing (VmFlags "mw"): mprotect can make it writable, so the
	 * restorer opens the file read-write for it.  Older restorers ignore it.
	 */
	CO_VF_MAYWRITE = 2048,
	/*
	 * Format 8, read from smaps VmFlags like the advice above: MADV_MERGEABLE
	 * (mg, KSM), asked again; mlock(2), mlock2(MLOCK_ONFAULT), MAP_LOCKED or
	 * mlockall (lo, and lf for on-fault locks), locked again once the
	 * region's pages are in place (co_mem_lock); MAP_NORESERVE (nr), mapped
	 * so again.  CO_VF_GROWSDOWN is also set from "gd" for regions other
	 * than the main stack (MAP_GROWSDOWN).  Older images have none of
	 * these bits: the regions come back as then, unlocked.
	 */
	CO_VF_MERGEABLE = 4096, CO_VF_LOCKED = 8192, CO_VF_LOCKONFAULT = 16384, CO_VF_NORESERVE = 32768,
	/*
	 * Shared memory (CO_V_SHANON) mapped without PROT_WRITE that mprotect
	 * cannot make writable (VmFlags without "mw": mapped through a
	 * read-only descriptor, or sealed against writing): the restorer maps
	 * it through a read-only open of the object.  Older images have no
	 * such bit: such regions come back as then, from a read-write one.
	 */
	CO_VF_NOMAYWRITE = 65536,
};
#define CO_VF_ADVICE 0x7f0u
/* every bit read from smaps VmFlags (procfs_maps.c) that the image records */
#define CO_VF_VMFLAGS (CO_VF_ADVICE | CO_VF_GROWSDOWN | CO_VF_MERGEABLE | CO_VF_LOCKED | CO_VF_LOCKONFAULT | \
		       CO_VF_NORESERVE)

struct co_vma {
	uint64_t start, end;
	uint64_t pgoff;
	uint64_t dev, ino;	/* shared memory: the object it maps (shared.img) */
	uint32_t prot;
	uint32_t flags;
	uint32_t kind;
	uint32_t pad;
	char path[CO_PATH]; /* file path, or the special mapping's name */
};

/*
 * What a regular file that a restart opens or maps again by path was at
 * the checkpoint (later in format 8): written after the terminating NUL
 * of the path that ends a descriptor (CO_R_FD), region (CO_R_VMA) or
 * shared file (CO_R_SFILE) record, for a file the group cannot write
 * (one it may write is copied, CO_R_FCOPY, and put back with its times
 * before anything opens it).  The restart fstat()s what it opened and
 * refuses a file whose size or mtime differ: a file replaced (a package
 * upgrade renames a new library or executable over the old one) would
 * be read at the old offsets, and its untouched pages of a private
 * mapping would be the new file's.  dev and ino are for `cohort inspect`
 * only: a migration's target and a file restored from a backup have
 * other inodes.  Older records end at the NUL and read as not recorded:
 * no check, as before.
 */
struct co_fstamp {
	uint32_t recorded;	/* 1: recorded; 0: not (no check) */
	uint32_t pad;
	uint64_t size;		/* st_size */
	int64_t mtime_sec, mtime_nsec;
	uint64_t dev, ino;
};

struct co_run {
	uint64_t addr, npages;
};

#define CO_MAX_RUNS 4096
struct co_pagemap {
	uint64_t npages;
	uint32_t nruns;
	uint32_t pad;
	struct co_run runs[CO_MAX_RUNS];
};

struct co_end {
	uint64_t records;
	uint64_t page_bytes;
};

/*
 * A seccomp filter chain some threads of the process run under (format 7,
 * after the threads; src/res/seccomp.c): the coordinator read it with
 * ptrace (PTRACE_SECCOMP_GET_FILTER, the thread parked), threads with the
 * same filters, oldest first, share one record.  The payload: this
 * header, int32 tid[nthreads], then per filter, oldest first, a struct
 * co_sfilter and its len instructions (struct sock_filter, 8 bytes each).
 * Each thread installs its chain again as its last system call before it
 * returns to the program; with CO_SC_ALL (every thread of the process has
 * it, with the same no_new_privs) the main thread installs it for all
 * with SECCOMP_FILTER_FLAG_TSYNC, so that the threads share it as before.
 */
#define CO_SC_ALL 1u
#define CO_SECCOMP_MAX (512u << 10) /* bytes: the kernel allows 32768 instructions to a chain (256 KiB) */
struct co_seccomp {
	uint32_t flags;		/* CO_SC_ALL */
	uint32_t nthreads;	/* tids that follow */
	uint32_t nfilters;	/* filters that follow the tids */
	uint32_t ninsns;	/* instructions of them all */
};
struct co_sfilter {
	uint32_t flags;		/* SECCOMP_FILTER_FLAG_LOG as PTRACE_GET_SECCOMP_METADATA gave it */
	uint32_t len;		/* instructions */
};

enum co_gen_kind {
	CO_GEN_FULL = 1,
	CO_GEN_INCREMENTAL = 2, /* pages written since the parent generation */
	CO_GEN_MERGED = 3,	/* full-N: a full image built from incremental gen-N and its parent */
};

struct co_manifest {
	char name[64];
	uint64_t generation;
	uint64_t parent;
	uint32_t kind;
	uint32_t nprocs;
	uint64_t created_ns;
	uint64_t mono_ns;   /* group's CLOCK_MONOTONIC at the checkpoint */
	uint64_t boot_ns;   /* group's CLOCK_BOOTTIME at the checkpoint */
	uint64_t bytes;
	uint32_t sig;
	int32_t root_pid;   /* the process whose end ends the group */
	char program[256];
	/*
	 * The terminal the group was started on, when a process group of the
	 * group's own was its foreground (a job-control shell): that group and
	 * the terminal's settings, given back to the terminal of the restart.
	 * Zero in manifests written before it existed.
	 */
	int32_t tty_pgid;   /* 0: the terminal's foreground was not the group's; CO_TTY_CALLERS: the caller's group */
	uint32_t tty_pad;
	uint8_t termios[64]; /* struct termios as tcgetattr gave it */
	uint64_t group_id;  /* format 7: the group's id (co_bind); 0 before */
	uint32_t nfiles;    /* format 7: the CO_R_MFILE records that follow the processes */
	uint32_t pad2;
	uint64_t parent_digest; /* format 7, incremental: XXH64 of its parent's manifest file (0: not recorded) */
};

/*
 * The migration stream (src/cli/wire.c, docs/architecture.md "Migration"):
 * control messages and the files of a generation, each file announced with
 * its name, size and digest (XXH64, seed 0, of its bytes, as its manifest
 * lists it: 0 for an image, which checks its own records) and then sent
 * in CO_R_WIRE_DATA records of at most CO_WIRE_CHUNK bytes, each checked
 * on its own (and, in order, by its number) as it arrives.
 */
#define CO_WIRE_TEXT 8192
#define CO_WIRE_NONCE 32
#define CO_WIRE_MAC 32
#define CO_WIRE_CHUNK (1u << 20)
struct co_wire_msg {
	uint32_t op;		/* enum co_wire_op (src/cli/wire.h) */
	uint32_t pad;
	int64_t a, b;
	uint8_t nonce[CO_WIRE_NONCE];
	uint8_t mac[CO_WIRE_MAC];
	char text[CO_WIRE_TEXT]; /* terminated; the record carries only what is used */
};
struct co_wire_file {
	char name[128];		/* as the manifest lists it (co_mfile.name), or "manifest" */
	uint64_t size;
	uint64_t digest;
};

/* Format 7: a file of the generation, as stored (the manifest lists them all but itself). */
struct co_mfile {
	char name[128];	    /* relative to the generation: proc-2.img, proc-2.p1.img.zst, files/0 */
	uint64_t size;	    /* bytes as stored */
	uint64_t digest;    /* CO_MF_DIGEST: XXH64 (seed 0) of its bytes; images check their own records */
	uint32_t flags;
	uint32_t pad;
};
#define CO_MF_DIGEST 1	/* files/N: a copy of a file the group wrote, which has no records of its own */

enum co_mproc_flags {
	CO_MP_ZOMBIE = 1,
	CO_MP_INCREMENTAL = 2,	/* its image has parent maps */
	CO_MP_COMPRESSED = 4,	/* its image and page streams are stored as IMAGE.zst (zstd) */
};

#define CO_MPROC_GROUPS 32 /* supplementary groups a manifest records of a process */

struct co_mproc {
	int32_t pid, ppid, pgid, sid;
	uint64_t bytes;
	uint32_t flags;		/* CO_MP_ZOMBIE: exited, not yet waited for */
	int32_t exit_status;	/* for a zombie: the status wait() returns */
	char image[64];
	/*
	 * Format 5: the credentials the coordinator saw (/proc/PID/status of
	 * the parked process), which its restorer gives it back.  A process
	 * writes its own image, and one that changed its uid must not be able
	 * to claim others there: only these are trusted.  creds 0 (an older
	 * manifest, or a process of the coordinator's own uid with more
	 * groups than fit): the image's are taken, which for such a process
	 * grant nothing it could not take itself.
	 */
	uint32_t creds;		/* 1: recorded */
	uint32_t ngroups;
	uint32_t uid[4];	/* real, effective, saved, filesystem */
	uint32_t gid[4];
	uint32_t groups[CO_MPROC_GROUPS];
	/*
	 * Format 6: the capability sets the coordinator saw (CapInh, CapPrm,
	 * CapEff, CapBnd, CapAmb of /proc/PID/status), which every thread of
	 * the process shares (a checkpoint refuses threads that differ).
	 * caps 0: not recorded, the restorer's stay (older manifests).
	 */
	uint32_t caps;		/* 1: recorded */
	uint32_t pad;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	/*
	 * Later in format 7 (older records end before it and read 0): the
	 * audit login uid and session id the coordinator saw
	 * (/proc/PID/loginuid and sessionid; 4294967295: unset).  The
	 * restorer writes the login uid again when the restart's differs
	 * (which gives the process a new session id: the kernel hands them
	 * out, none can be asked for).  audit 0: not recorded (older
	 * manifests, a kernel without audit): the restart's stay.
	 */
	uint32_t audit;		/* 1: recorded */
	uint32_t loginuid;
	uint32_t sessionid;
	uint32_t pad3;
};

/* ---- shared.img: what the processes of a group share ---- */

/*
 * The kind of kernel object a descriptor refers to (src/kinds/classify.c
 * decides it).  1 to 8 are also the kinds of shared.img's links and
 * objects; the others name descriptors a process image keeps by itself
 * (or refuses).
 */
enum co_obj_kind {
	CO_OBJ_NONE = 0,	/* not recorded (images before the kind was) */
	CO_OBJ_PIPE = 1,	/* pipe or FIFO */
	CO_OBJ_FILE = 2,	/* regular file with a name */
	CO_OBJ_SHM = 3,		/* shared memory (memfd; mappings of shmem, SysV) */
	CO_OBJ_EVENTFD = 4, CO_OBJ_SIGNALFD = 5, CO_OBJ_TIMERFD = 6, CO_OBJ_EPOLL = 7,
	CO_OBJ_USOCK = 8,	/* Unix socket */
	CO_OBJ_DIR = 9,
	CO_OBJ_DELETED = 10,	/* regular file unlinked while open, or directory removed while open */
	CO_OBJ_CHR = 11,	/* character device with a path */
	CO_OBJ_SOCKET = 12,	/* a socket of another family (unsupported) */
	CO_OBJ_BLK = 13,	/* block device (unsupported) */
	CO_OBJ_OTHER = 14,	/* anything else (unsupported) */
	CO_OBJ_PIDFD = 15,	/* pidfd_open, clone's CLONE_PIDFD: kept by its process (CO_FD_PIDFD) */
	CO_OBJ_SYMLINK = 16,	/* a symbolic link itself (O_PATH | O_NOFOLLOW) */
	CO_OBJ_NS = 17,		/* a namespace (nsfs: "net:[4026531840]", opened from /proc/PID/ns) */
	CO_OBJ_INOTIFY = 18,	/* inotify_init1: its watches (CO_R_IWATCH) and queued events (CO_R_IEVENTS) */
	CO_OBJ_PTMX = 19,	/* a pseudo-terminal's master (/dev/ptmx): the pty itself, CO_R_PTY */
	CO_OBJ_PTS = 20,	/* an open file of a pseudo-terminal's slave (/dev/pts/N): a co_sobj naming its pty */
	CO_OBJ_FANOTIFY = 21,	/* fanotify_init: its flags (co_sobj) and marks (CO_R_FMARK) */
};

/*
 * A pseudo-terminal of the group's own devpts (src/kinds/pty.c), one per
 * master open file description; made again at a restart with the same
 * index.  The slave's settings are read and set through the master (the
 * kernel's termios, window size, session and process group ioctls act on
 * the slave when given the master).  Its queued bytes follow as
 * CO_R_PTYDATA records once every object is written.
 */
struct co_pty {
	uint64_t id;		/* what its links and its slaves' objects name */
	uint32_t index;		/* /dev/pts/N */
	uint32_t flags;		/* the master's status flags (CO_FL_STATUS) */
	uint32_t locked;	/* TIOCGPTLCK: the slave cannot be opened */
	uint32_t packet;	/* TIOCGPKT: packet mode on the master */
	uint32_t excl;		/* TIOCGEXCL on the slave: exclusive mode */
	uint32_t hup;		/* the slave was open and every descriptor of it closed (the master reads EIO) */
	int32_t sid;		/* the session (its leader's pid in the group) it is the controlling terminal of; 0 none */
	int32_t fg;		/* that session's foreground process group (in the group); 0 none */
	int32_t fg_by;		/* the process of the group that sets it back (a member of fg with the terminal) */
	uint32_t pad;
	uint16_t winsize[4];	/* struct winsize: rows, columns, x and y pixels */
	uint8_t termios[64];	/* the slave's struct termios2 (TCGETS2: 44 bytes) */
};

/*
 * Bytes queued in a pty: what the slave side will read (input), or what
 * the master side will (output); or (output 2, first, no bytes) the
 * packet-mode status byte the master's reader has not read.
 */
struct co_ptydata {
	uint64_t id;		/* the co_pty's */
	uint32_t output;	/* 0: input, written to the master, not read by the slave; 1: output; 2: status */
	uint32_t status;	/* output 2: the status byte (TIOCPKT_*); was padding */
};

/*
 * An object made with one call at restart.  eventfd: a count, b semaphore;
 * signalfd: a mask; timerfd: a clock, b ns to expiry (0: expired, or
 * disarmed when c is 0 too), c interval ns, d expirations not yet read;
 * Unix socket: a type, b the peer's id; inotify: a its watches, b the bytes
 * of events queued.  flags: its status flags (CO_FL_STATUS;
 * O_NONBLOCK alone in images of format 6 and older).  (d is new in
 * format 3; older records are shorter and read as d = 0.)
 */
struct co_sobj {
	uint32_t kind;
	uint32_t flags;
	uint64_t id;
	uint64_t a, b, c, d;
};

/*
 * A Unix socket (unix.c), in the order a restart makes them: first the
 * sockets made alone (bound, listening, datagram), then pairs, accepted
 * connections (client, then the accepted end), then the connections
 * waiting in a listener's backlog, in its order.
 */
enum co_usock_how {
	CO_US_ALONE = 1,	/* socket(2), bound to name and listening as recorded */
	CO_US_PAIR = 2,		/* socketpair(2) with peer (the first end of the two makes both) */
	CO_US_CONNECT = 3,	/* connected to the listener via (by its name, peername), left in its backlog */
	CO_US_ACCEPT = 4,	/* the connection of peer, accepted from the listener via */
};
#define CO_USF_UNLINKED 1	/* its socket file was removed: bound at the path, removed once everything is made */
#define CO_USF_PASSCRED 2	/* SO_PASSCRED */
#define CO_USF_OUTSIDE 4	/* connected to peername, outside the group: connected again there at a restart */
#define CO_USF_NONAME 8		/* has a name it cannot be given again (another socket of the group has it) */
#define CO_USF_PEEKOFF 16	/* SO_PEEK_OFF set by the program: peek_off */
#define CO_USF_SHARED 32	/* its path is another socket's too: bound through its file moved aside (unix_name.c) */
#define CO_USF_OPTS 64		/* opts holds its options (0 in older images, whose records end before opts) */

/* co_usopts.bools and .known: options that are on or off (known: those the checkpoint could read) */
#define CO_USO_PASSSEC 1	/* SO_PASSSEC */
#define CO_USO_KEEPALIVE 2	/* SO_KEEPALIVE */
#define CO_USO_TSTAMP 4		/* SO_TIMESTAMP_OLD (SO_TIMESTAMP on 64-bit) as it reads */
#define CO_USO_TSTAMPNS 8	/* SO_TIMESTAMPNS_OLD */
#define CO_USO_TSTAMP_NEW 16	/* SO_TIMESTAMP_NEW */
#define CO_USO_TSTAMPNS_NEW 32	/* SO_TIMESTAMPNS_NEW */
#define CO_USO_TSING_NEW 64	/* tsflags were set through SO_TIMESTAMPING_NEW */
#define CO_USO_OOBINLINE 128	/* SO_OOBINLINE */
#define CO_USO_PASSPIDFD 256	/* SO_PASSPIDFD (Linux 6.5) */
#define CO_USO_PASSRIGHTS 512	/* SO_PASSRIGHTS (Linux 6.16; on by default) */
#define CO_USO_RCVMARK 1024	/* SO_RCVMARK */
#define CO_USO_RCVPRIORITY 2048	/* SO_RCVPRIORITY */
#define CO_USO_ALL 4095
/*
 * A Unix socket's options as getsockopt(2) reads them (CO_USF_OPTS),
 * given back at a restart before its queue and checked by reading them
 * again (src/kinds/unix_opts.c).
 */
struct co_usopts {
	int64_t rcvtimeo[2];	/* SO_RCVTIMEO: seconds, microseconds (0 0: none) */
	int64_t sndtimeo[2];	/* SO_SNDTIMEO */
	int32_t sndbuf, rcvbuf;	/* SO_SNDBUF, SO_RCVBUF as they read (the kernel's, twice what was asked) */
	int32_t buflock;	/* SO_BUF_LOCK: 1 sndbuf, 2 rcvbuf set by the program (-1: not read) */
	int32_t rcvlowat;	/* SO_RCVLOWAT */
	int32_t priority;	/* SO_PRIORITY */
	uint32_t mark;		/* SO_MARK */
	int32_t linger[2];	/* SO_LINGER: l_onoff, l_linger */
	uint32_t tsflags;	/* SO_TIMESTAMPING: flags (SOF_TIMESTAMPING_*) */
	int32_t bind_phc;	/* and the PTP clock bound (SOF_TIMESTAMPING_BIND_PHC) */
	uint32_t bools;		/* CO_USO_*: on */
	uint32_t known;		/* CO_USO_*: read at the checkpoint */
};
struct co_usock {
	uint64_t id;		/* the socket's inode at the checkpoint */
	uint64_t peer;		/* the peer's id, in the group; 0: none */
	uint64_t via;		/* CO_US_CONNECT, CO_US_ACCEPT: the listener's id; a datagram socket: its peer's (0: outside) */
	uint32_t how;		/* enum co_usock_how */
	uint32_t type;		/* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
	uint32_t state;		/* as sock_diag has it: 1 connected, 7 not, 10 listening */
	uint32_t shut;		/* shutdown: 1 no more receiving, 2 no more sending */
	uint32_t backlog;	/* listening: listen(2)'s backlog */
	uint32_t flags;		/* CO_USF_* */
	uint32_t fflags;	/* file status flags (O_NONBLOCK, ...) */
	uint32_t mode, uid, gid;	/* its socket file's (a name that is a path) */
	uint32_t namelen, peerlen;	/* bytes of name and peername (0: none) */
	char name[108];		/* sun_path as bound: a path, or abstract (starts with NUL) */
	char peername[108];	/* where it connects at a restart: a datagram peer, a listener, a peer outside */
	int32_t peek_off;	/* CO_USF_PEEKOFF: the program's SO_PEEK_OFF (was padding: 0 in older images) */
	struct co_usopts opts;	/* CO_USF_OPTS: its options (later in version 7: older records end before) */
};

/*
 * One message queued on a Unix socket (or the bytes a stream holds up to
 * the next passed descriptors): sent again at a restart from the socket
 * from (0: a socket of init's own), with send(2), or with sendto(2) to
 * name when CO_UM_SENDTO.  Its passed descriptors (SCM_RIGHTS) are the
 * group's objects, in order; credentials (SCM_CREDENTIALS) as received.
 */
#define CO_UM_SENDTO 1
#define CO_UM_CREDS 2
struct co_usmsg {
	uint64_t id;		/* the receiving socket (0: a connection in a backlog) */
	uint64_t from;		/* the sending socket */
	uint32_t flags;		/* CO_UM_* */
	uint32_t nfds;		/* struct co_uspass that follow */
	int32_t pid;		/* SCM_CREDENTIALS: pid as the checkpoint saw it (the host's; a restart sends init's own), */
	uint32_t uid, gid;
	uint32_t namelen;
	char name[108];		/* CO_UM_SENDTO: the receiver's address */
};
struct co_uspass {
	uint32_t kind;		/* enum co_obj_kind */
	uint32_t end;		/* pipes: 1 the write end */
	uint64_t id;		/* the object's id in shared.img */
};

/*
 * One watch of an inotify object, in the order of wd: at a restart the
 * watches are added again in that order (inotify_add_watch hands out
 * increasing wds), the gaps filled with watches removed at once.
 */
struct co_iwatch {
	uint64_t id;		/* the inotify object's (co_sobj.id) */
	int32_t wd;
	uint32_t mask;		/* as inotify_add_watch takes it (IN_ONESHOT, IN_EXCL_UNLINK kept) */
	uint64_t dev, ino;	/* of the watched inode at the checkpoint (st_dev, st_ino) */
	char path[CO_PATH];	/* the watched file or directory */
};

/*
 * One mark of a fanotify object (src/kinds/fanotify.c), in the order its
 * fdinfo lists them: at a restart fanotify_mark(FAN_MARK_ADD | type |
 * mflags, mask, path), and again with FAN_MARK_IGNORE (or
 * FAN_MARK_IGNORED_MASK when mflags lacks it) for a non-zero ignored mask.
 */
enum co_fmark_type { CO_FM_INODE = 1, CO_FM_MOUNT = 2, CO_FM_FILESYSTEM = 3, CO_FM_MNTNS = 4 /* the group's mount namespace */ };
struct co_fmark {
	uint64_t id;		/* the fanotify object's (co_sobj.id) */
	uint32_t type;		/* enum co_fmark_type */
	uint32_t mflags;	/* as fdinfo shows them: FAN_MARK_IGNORED_SURV_MODIFY, FAN_MARK_EVICTABLE, FAN_MARK_IGNORE */
	uint64_t mask, ignored;	/* event mask (FAN_ONDIR, FAN_EVENT_ON_CHILD kept) and ignored mask */
	uint64_t dev, ino;	/* of the marked inode (the mount's root, the filesystem's) at the checkpoint */
	char path[CO_PATH];	/* the marked file or directory; the mount point; a mount of the filesystem; /proc/self/ns/mnt */
};

/*
 * One item of an epoll set (src/kinds/epoll.c).  An item is known by the
 * file it watches and the number it was added with (tfd), which need not
 * be the number of that file in any process now (closed since, or added
 * by another process): the coordinator finds the file with
 * kcmp(KCMP_EPOLL_TFD).  how says who adds it back at a restart:
 *   CO_EPI_OBJECT   init, where the object (kind, id, end) is made;
 *   CO_EPI_PROCESS  process pid, where its descriptor fd is that file (a
 *                   descriptor made by its restorer, or a signalfd,
 *                   which wakes the epoll of the process that added it),
 *                   once its descriptors are back.
 * Records written before how existed are 32 bytes long (how reads 0):
 * pid is the epoll owner's and fd both the number the item was added
 * with and that process's descriptor of the file.
 */
enum co_epi_how { CO_EPI_OWNER_FD = 0, CO_EPI_OBJECT = 1, CO_EPI_PROCESS = 2 };
struct co_epitem {
	uint64_t epoll;		/* id of the epoll object */
	int32_t pid, fd;	/* a descriptor of the watched file: process, number */
	uint32_t events;	/* as fdinfo shows them (a fired EPOLLONESHOT item: its flags alone) */
	uint32_t how;		/* enum co_epi_how (was padding) */
	uint64_t data;
	/* later in format 7: */
	int32_t tfd;		/* the number the item was added with */
	uint32_t kind;		/* CO_EPI_OBJECT: the object's kind, */
	uint64_t id;		/* its id (its links' co_slink.id), */
	uint32_t end;		/* and which end (pipes: 1 the write end) */
	uint32_t pad;
};

struct co_shm {
	uint64_t dev, ino;	/* key, as /proc/PID/maps shows it */
	uint64_t size;
	char name[64];
	/*
	 * Format 7: its seals (F_GET_SEALS), added back once it is filled.
	 * sealing 0 (not read, or a shorter record): made as before, sealed
	 * against sealing (F_SEAL_SEAL).
	 */
	uint32_t sealing;	/* 1: seals recorded */
	uint32_t seals;
	/*
	 * Format 8 (records of older cohorts end before it and read 0: made
	 * as before, named "cohort-shm", mode 0777, one description all its
	 * holders share, their links naming the inode).  A memfd some process
	 * holds has one record per open file description (kcmp), which its
	 * holders' links name (id): the first of the inode makes it (same_as
	 * 0: size, seals, name, mode, then its CO_R_SHMDATA runs), each other
	 * is one more description of it (same_as: the id of the first), which
	 * init opens through /proc/self/fd with its own flags and offset.
	 * Shared memory only mapped has one record, id 0.
	 */
	uint32_t known;		/* CO_SHM_NAMED: mname is its memfd name; CO_SHM_MODE: mode and mfd are recorded */
	uint32_t mode;		/* st_mode & 07777, set once every record is read, before the seals */
	uint32_t mfd;		/* memfd_create flags beyond MFD_ALLOW_SEALING: 0, or MFD_NOEXEC_SEAL (8) */
	uint32_t oflags;	/* the description's open flags (fdinfo) */
	uint64_t id;		/* the description's (0: none) */
	uint64_t same_as;	/* 0: this record makes the object; else the id of the record that did */
	uint64_t pos;		/* the description's offset */
	char mname[256];	/* the name memfd_create was given (the link's "/memfd:NAME (deleted)") */
};
#define CO_SHM_NAMED 1u
#define CO_SHM_MODE 2u

/*
 * A SysV IPC object of the group's IPC namespace (src/kinds/sysv.c), made
 * again at a restart with its key and id.  part 0 is the object: its
 * owner and mode, and size (a semaphore set: how many; a queue: its
 * byte limit; a segment: its bytes).  part 1 is what follows it: a
 * message (at: its type) or a run of a segment (at: the offset).
 */
struct co_sysv {
	uint32_t part;		/* 0: the object; 1: a message or a run of bytes of the object before */
	int32_t id;
	int32_t key;
	uint32_t uid, gid, mode;
	uint32_t pad;
	uint64_t size;
	int64_t at;
};

struct co_pipe {
	uint64_t ino;
	uint32_t capacity;
	uint32_t rflags, wflags; /* status flags (CO_FL_STATUS; before format 7 O_NONBLOCK alone) of each end */
	uint32_t pathlen;	 /* a named FIFO: its path follows (pathlen bytes), then the data */
};

/*
 * Bytes queued in a pipe (later in format 7), after its CO_R_PIPE (which
 * then holds none), in queue order: one record per packet of a packet-mode
 * (O_DIRECT) pipe, or a run of plain bytes.  Older images, and pipes whose
 * plain bytes fit one record, carry them in the CO_R_PIPE itself.
 */
struct co_pipedata {
	uint64_t ino;		/* the co_pipe's */
	uint32_t packet;	/* 1: one packet, written back as one write in packet mode; 0: plain bytes */
	uint32_t pad;
};

struct co_sfile {
	uint64_t id;
	uint64_t pos;
	uint32_t flags;
	uint32_t obj;		/* CO_OBJ_DIR: a directory; CO_OBJ_FILE, or 0 (older images): a regular file */
	char path[CO_PATH];
};

struct co_fcopy {
	uint64_t size;
	uint32_t mode;
	uint32_t pad;
	char copy[64];		/* file name in the generation's files/ */
	char path[CO_PATH];
};

/*
 * The times of a copied file at the checkpoint, set back once its copy is
 * written back (put back without it, a file has the restore's times: images
 * written before it existed).
 */
struct co_ftimes {
	int64_t atime_sec, atime_nsec;
	int64_t mtime_sec, mtime_nsec;
};

/*
 * A deleted file or directory (nlink 0) some process holds: one record per
 * open file description.  The first description of an inode makes it
 * again (same_as 0: its CO_R_GHOSTDATA runs follow, holes left out); the
 * others open that inode with their own flags and offset.  A file that
 * open(DIR, O_TMPFILE) made (CO_GHOST_TMPFILE in the first one's mode) is
 * made so again, nameless in DIR, so that the program may still link it;
 * images written before that mark have it only in a description's flags
 * (CO_O_TMPFILE), which the restore reads as the mark too.
 */
#define CO_GHOST_TMPFILE 0x80000000u /* in co_ghost.mode, above st_mode's 16 bits */
struct co_ghost {
	uint64_t id;		/* what its links name */
	uint64_t same_as;	/* 0: this record makes the file; else the id of the record that did */
	uint64_t size;		/* st_size */
	uint64_t pos;		/* offset of this description */
	uint32_t flags;		/* open flags of this description */
	uint32_t mode;		/* st_mode: regular file or directory, permissions; | CO_GHOST_TMPFILE */
	uint32_t uid, gid;	/* owner, given back as far as the restorer may */
	char path[CO_PATH];	/* where it was, without " (deleted)" ("DIR/#INODE" for an O_TMPFILE file) */
};

struct co_slink {
	int32_t pid, fd;	/* fd CO_PLAN_CWD (plan.h): the process's deleted working directory */
	uint32_t kind;		/* enum co_obj_kind */
	uint32_t end;		/* pipes: 0 read, 1 write */
	uint64_t id;		/* pipe inode or co_sfile.id */
};

/* ---- writer: one writer for files and (later) sockets ---- */

/*
 * A transport under the stream, for a writer or reader that does not use
 * its fd itself: the migration stream's encryption (src/cli/wire_crypt.c).
 * Each call is as read(2) or write(2) on the fd: bytes moved (a write
 * moves all of them), 0 at the end (read), or a negative errno.
 */
struct co_io {
	long (*read)(struct co_io *io, void *p, uint64_t n);
	long (*write)(struct co_io *io, const void *p, uint64_t n);
};

struct co_writer {
	int fd;
	int err;		/* first error as a negative errno, or 0 */
	uint64_t off;		/* stream offset */
	uint64_t seq;		/* records written */
	uint64_t want, got;	/* payload length promised and written so far */
	struct co_xxh64 h;
	char *buf;
	uint32_t bufsize, buffered;
	struct co_io *io;	/* NULL: the bytes go to fd */
	int skipped;		/* co_w_skip in this record: its checksum is not written either */
};

void co_w_init(struct co_writer *w, int fd, char *buf, uint32_t bufsize);
/* Start a record of `len` payload bytes; aligned != 0 puts the payload on a page boundary. */
int co_w_begin(struct co_writer *w, unsigned type, uint64_t len, int aligned);
/* The same, with flags (CO_RF_*) in its header. */
int co_w_begin_flags(struct co_writer *w, unsigned type, uint64_t len, int aligned, unsigned flags);
/*
 * n bytes of payload neither written nor hashed: the file keeps a hole
 * there, and the record's checksum is left out too (co_w_end), for whoever
 * writes those bytes later (CO_RF_BEHIND).
 */
int co_w_skip(struct co_writer *w, uint64_t n);
int co_w_put(struct co_writer *w, const void *p, uint64_t n);
int co_w_end(struct co_writer *w);
int co_w_rec(struct co_writer *w, unsigned type, const void *p, uint64_t len);
/*
 * A record whose payload ends with a path (at path_off in rec): its
 * fixed part, the path and its NUL, then st when st is recorded.
 */
int co_w_path_rec(struct co_writer *w, unsigned type, const void *rec, uint64_t path_off, const struct co_fstamp *st);
int co_w_flush(struct co_writer *w);
/* The head record every file starts with. */
int co_w_head(struct co_writer *w, uint32_t kind, const struct co_bind *b);

/* ---- reader ---- */

struct co_reader {
	int fd;
	uint64_t off;		/* stream offset of the next unread byte */
	uint64_t rec_off;	/* offset of the current record's header */
	uint64_t seq;
	uint64_t left;		/* payload bytes of the current record not yet read */
	struct co_rec_hdr hdr;
	struct co_xxh64 h;
	int pending;		/* co_r_unread(): the next co_r_next() returns this header again */
	const char *name;	/* file name, for messages */
	int decompressed;	/* the stream comes out of a .zst file: offsets are of the decompressed bytes */
	int unhashed;		/* co_r_skip() passed over payload: this record's checksum is another's to check */
	char err[320];
	struct co_io *io;	/* NULL: the bytes come from fd */
};

void co_r_init(struct co_reader *r, int fd, const char *name);
/* Next record header: 1 when there is one, 0 at a clean end of file, -1 on error. */
int co_r_next(struct co_reader *r);
/* Give the header just read back, so the next co_r_next() returns it again. */
void co_r_unread(struct co_reader *r);
/* Read payload bytes of the current record (hashed as they come). */
int co_r_read(struct co_reader *r, void *p, uint64_t n);
/* Skip what is left of the payload and check the trailer. */
int co_r_finish(struct co_reader *r);
/*
 * Pass over n payload bytes unread (lseek: an uncompressed image only).
 * The record's checksum is then not checked by co_r_finish: whoever reads
 * those bytes later checks it (a lazy restore's filler, src/cli/filler.c).
 */
int co_r_skip(struct co_reader *r, uint64_t n);
/* Read a whole payload of at most max bytes (the rest of p is zeroed) and finish. */
int co_r_payload(struct co_reader *r, void *p, uint64_t max);
/* Expect the next record to be of `type` and read it whole. */
int co_r_expect(struct co_reader *r, unsigned type, void *p, uint64_t max);
const char *co_rec_name(unsigned type);
/*
 * The stamp (struct co_fstamp) of a record whose payload ends with a path
 * at path_off (co_w_path_rec), as read: rec holds its first len bytes (the
 * payload's length, or less when cut to a buffer).  Zero when the record
 * has none, or a damaged one.
 */
void co_path_rec_stamp(const void *rec, uint64_t len, uint64_t path_off, struct co_fstamp *st);
/*
 * Whether the file fstat() shows now (mode, size, mtime) differs from
 * stamp st (a recorded one): 1 with "(size A -> B, modified T -> T)" in
 * why, else 0.
 */
int co_fstamp_changed(const struct co_fstamp *st, uint32_t mode, uint64_t size, int64_t mtime_sec,
		      int64_t mtime_nsec, char *why, uint64_t n);
/*
 * The head just read (h) is a cohort file of this kind and a version we
 * read, and, when want is given and the file has one (format 7), bound
 * to want: group (unless either id is 0), generation, process, stream.
 * 0, or -1 with r->err naming the file and what it belongs to.
 */
int co_head_check(struct co_reader *r, const struct co_head *h, uint32_t kind, const struct co_bind *want);
/*
 * A whole manifest: head, manifest, at most max processes, then (format
 * 7) its files, at most maxf into f (f may be NULL: skipped), end; -1
 * with r->err.  The head's binding must be the manifest's own.
 */
int co_manifest_read(struct co_reader *r, struct co_manifest *m, struct co_mproc *p, int max, int *n);
int co_manifest_read_files(struct co_reader *r, struct co_manifest *m, struct co_mproc *p, int max, int *n,
			   struct co_mfile *f, int maxf, int *nf);
/*
 * Who creates process i of a manifest's n at a restart: its live parent;
 * else (its parent is init or gone) the zombie that led its session, if
 * the manifest has it (only a process of the session can make a member);
 * else 0, init.
 */
int co_mproc_maker(const struct co_mproc *p, int n, int i);

#endif
