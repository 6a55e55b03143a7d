/*
 * proto.h - the control protocol between the coordinator, the agents and
 * the CLI, and the layout of the shared-memory process table.
 *
 * The control socket is a SOCK_SEQPACKET Unix socket, so every message
 * arrives whole.  A message is struct co_msg followed by `textlen` bytes.
 *
 * A process of the group keeps no connection while its program runs: it
 * registers (REGISTER, WELCOME with the table) and hangs up.  The
 * coordinator starts a checkpoint by sending it the checkpoint signal with
 * SI_QUEUE and the table's cookie as its value; the agent then starts its
 * manager thread, which connects (ATTACH) and takes part until RELEASE.
 */
#ifndef COHORT_PROTO_H
#define COHORT_PROTO_H

#include <stdint.h>
#include <sys/socket.h>

#define CO_PROTO_VERSION 1
#define CO_MSG_TEXT 65536
#define CO_LAZY_MAX_RANGES (CO_MSG_TEXT / 16)

enum co_msg_type {
	/* agent -> coordinator */
	CO_M_REGISTER = 1,	/* a: pid in the group, b: ppid, c: restored generation or 0 (then the connection
				   stays open until RELEASE), text: exe */
	CO_M_QUIESCED,		/* every thread of the process is parked */
	CO_M_DONE,		/* image written; a: bytes, b: the parent generation of an incremental image (0: full),
				   c: the flock and OFD locks its descriptors hold, d: its POSIX locks (coord/hold_locks.c) */
	CO_M_FAIL,		/* text: why the checkpoint cannot be taken */
	CO_M_SNAPSHOT,		/* the image is a snapshot now: the process may run while it is written */
	CO_M_ARMED,		/* prepared, still running (PREPARE with CO_PREP_PRECOPY); b: 1 pre-copy armed */
	CO_M_TRACE,		/* while parking: thread a has not parked; if its mask blocks the checkpoint signal,
				   unblock it there with ptrace and write its mask and the one set at address b
				   (struct co_tslot's pt_orig, pt_set), if b + 16 holds CO_TRACE_CHECK(a, b);
				   answered with TRACED */
	CO_M_ATTACH,		/* the manager thread, on the checkpoint signal: a: pid in the group.
				   QUIESCED and ARMED carry its dirty-page tracking's userfaultfd, which the
				   coordinator keeps until the next PREPARE carries it back */
	CO_M_PROCFD,		/* on a connection of its own: text: a file of /proc/PID/ the process may not open
				   itself (not dumpable: it changed its uid); only "pagemap".  Answered with
				   PROCFILE, then hung up */
	CO_M_LAZY,		/* a restorer of `restart --lazy` (src/restore/lazy.c), on a connection of its own:
				   a: its pid in the group, b: its image's page streams; text: the lazy regions
				   (start, end: uint64_t pairs, at most CO_LAZY_MAX_RANGES); its userfaultfd
				   attached, for the page filler.  Answered with REPLY once the filler runs;
				   hung up unanswered when refused */
	/* coordinator -> agent */
	CO_M_WELCOME = 16,	/* a: table slot, b: checkpoint signal; table memfd attached */
	CO_M_PREPARE,		/* a: generation, b: parent wanted for an incremental image (0: full) */
	CO_M_DUMP,		/* write the image now; flags: CO_CKPT_STOP; text: "FD,FD,...;DIR": the
				   descriptors whose regular file or directory the group shares (co_shared_files), then
				   the generation's directory; the image's files attached, made by the coordinator, one per stream
				   (proc-PID.img, then its page streams): written through, never opened; then, for a
				   process with seccomp filters, a memfd of their CO_R_SECCOMP payloads (src/res/seccomp.c) */
	CO_M_RELEASE,		/* checkpoint over: resume the threads */
	CO_M_QUIESCE,		/* after ARMED: park now; flags: CO_PREP_PRECOPY_FAILED */
	CO_M_TRACED,		/* answer to TRACE: a: the thread, b: 0 signal unblocked, 1 not blocked (or gone),
				   -1 cannot be done (text: why) */
	CO_M_PROCFILE,		/* answer to PROCFD: a: 0 with the file attached, or an errno */
	CO_M_POSIX_LOCKS,	/* during a migration's hold, the group parked: a: 0 let go of the process's POSIX
				   locks (those its last image holds), 1 take them back, without waiting; answered
				   with POSIX_LOCKS, a: 0, or -errno with text naming the lock (coord/hold_locks.c) */
	/* CLI -> coordinator */
	CO_M_CKPT_REQ = 32,	/* flags: CO_CKPT_*; text: images dir override or empty */
	CO_M_STATUS_REQ,	/* flags: CO_STATUS_* */
	CO_M_KILL_REQ,		/* a: signal; flags: CO_KILL_JSON */
	CO_M_HOLD_END,		/* after a CO_CKPT_HOLD checkpoint, on its connection: the group has moved
				   (text: where to, ADDR:PORT): end it here; answered with REPLY */
	CO_M_HOLD_RESUME,	/* the same: the migration failed, the group runs on; answered with REPLY */
	CO_M_HOLD_COMMIT,	/* after HOLD_END of a CO_CKPT_BEHIND checkpoint: its page data is written, commit
				   it, then end the group; answered with REPLY (text: the generation's directory) */
	/* coordinator -> CLI */
	CO_M_REPLY = 48,	/* a: 0 ok or error code; text: result line or error */
	CO_M_PROGRESS,		/* before the reply, only to a client that asked (CO_CKPT_PROGRESS):
				   a: bytes done, b: bytes in all (0: not known), text: the phase */
};

enum {
	CO_CKPT_KILL = 1,
	CO_CKPT_JSON = 2,
	CO_CKPT_STOP = 4,	 /* write with the group stopped, no snapshot */
	CO_CKPT_INCREMENTAL = 8, /* only the pages written since the last generation */
	CO_CKPT_COMPRESS = 16,	 /* store the images compressed (.zst) */
	CO_CKPT_NO_PRECOPY = 32, /* full images are not read ahead while the group runs (precopy.c) */
	CO_CKPT_PROGRESS = 64,	 /* the client draws CO_M_PROGRESS on a terminal: send them, at most 5 a second */
	CO_CKPT_RECONNECT = 128, /* a Unix stream connected outside the group is connected afresh at a restart */
	/*
	 * Migration (cohort migrate): as CO_CKPT_KILL up to the commit, then
	 * the members stay parked until the client's HOLD_END (the group
	 * ends) or HOLD_RESUME, or until the client hangs up (it resumes).
	 */
	CO_CKPT_HOLD = 256,
	/*
	 * A migration's checkpoint (its rounds and its stop): the background
	 * merge of its incrementals waits until the migration is over (the
	 * hold ends, a checkpoint without it, or the group's end), instead of
	 * writing a GiB beside every round (it made the rounds' images several
	 * times slower to write).
	 */
	CO_CKPT_MIGRATING = 512,
	/*
	 * With HOLD (cohort migrate --postcopy): each member writes its image
	 * itself (no snapshot), the page data of its private anonymous regions
	 * hashed but left out (CO_RF_BEHIND).  The reply names the temporary
	 * directory ("behind"); nothing is committed before HOLD_COMMIT, or,
	 * the client gone after HOLD_END, before the coordinator has written
	 * that data itself from the parked processes' memory.
	 */
	CO_CKPT_BEHIND = 1024,
	/* DUMP only: the agent times its steps for the coordinator's COHORT_TRACE (SNAPSHOT's and DONE's text) */
	CO_CKPT_TRACE = 2048,
	/*
	 * DUMP only, tests (COHORT_TEST_COWMAP_ALL): the copy-on-write map as
	 * the pause noted it, pages the image leaves out included, as images
	 * written before pages.c's rule were: the restorer must drop those.
	 */
	CO_CKPT_COWMAP_ALL = 4096,
	/*
	 * A migration's incremental rounds, and its stop (HOLD) after rounds
	 * that converged (a few MB): the coordinator's and the agents' steps
	 * of the pause run at SCHED_FIFO 1 where the kernel lets them
	 * (boost.h), not behind the machine's other work.
	 */
	CO_CKPT_BOOST = 8192,
};
enum { CO_STATUS_JSON = 1, CO_STATUS_BRIEF = 2 /* one line: the group, not its processes */ };
enum { CO_KILL_JSON = 1 };
/*
 * PREPARE flags.  PRECOPY: a process whose image would be full arms a
 * pre-copy (see dirty.h), says ARMED instead of parking, and parks on
 * QUIESCE; the coordinator reads its memory in between.  Its image is then
 * incremental against CO_PRECOPY_ID(generation).  ROOT (with PREPARE and
 * QUIESCE): the process's root directory is not the group's (chroot); its
 * manager leaves it for the group's before it reads anything by path.
 */
/*
 * CO_PREP_TEST_HELD_GAP, tests only (COHORT_TEST_HELD_GAP): the armed
 * pre-copy's list of the pages it holds loses a stretch it should have,
 * so that a test sees the pause's snapshot save such pages all the same
 * (dirty_lean.c, lean_checked).
 */
enum { CO_PREP_PRECOPY = 1, CO_PREP_PRECOPY_FAILED = 2, CO_PREP_ROOT = 4, CO_PREP_TEST_HELD_GAP = 8 };
#define CO_PRECOPY_ID(gen) ((uint64_t)(gen) | (1ULL << 62))
/* What the agent's slot for thread tid, at addr, holds after its masks (CO_M_TRACE): still our program */
#define CO_TRACE_CHECK(tid, addr) ((uint64_t)(tid) ^ (uint64_t)(addr) ^ 0x636f686f72747372ULL)

struct co_msg {
	uint32_t type;
	uint32_t flags;
	int64_t a, b, c, d;
	uint32_t textlen;
	uint32_t pad;
};

/*
 * The msghdr that carries one message (buf, len bytes) with nfds
 * descriptors fds[] attached (0: none; at most CO_MSG_FDS) through cbuf:
 * one framing for the agent (raw sendmsg, no libc) and the CLI alike.
 * DUMP carries the most: the image files of one process, one a stream.
 */
#define CO_MSG_FDS 4
#define CO_FRAME_CBUF 32 /* CMSG_SPACE(CO_MSG_FDS * sizeof(int)) on 64-bit Linux */
_Static_assert(CMSG_SPACE(CO_MSG_FDS * sizeof(int)) <= CO_FRAME_CBUF, "room for the descriptors");
static inline void co_frame(struct msghdr *mh, struct iovec *iov, void *buf, size_t len, char *cbuf, const int *fds,
			    int nfds)
{
	iov->iov_base = buf;
	iov->iov_len = len;
	__builtin_memset(mh, 0, sizeof(*mh));
	mh->msg_iov = iov;
	mh->msg_iovlen = 1;
	if (nfds <= 0)
		return;
	if (nfds > CO_MSG_FDS)
		nfds = CO_MSG_FDS;
	__builtin_memset(cbuf, 0, CO_FRAME_CBUF);
	mh->msg_control = cbuf;
	mh->msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
	struct cmsghdr *c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	__builtin_memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
}

/*
 * The descriptors a received message carries (its SCM_RIGHTS, the only
 * control message on this socket), into fds[0..max-1] (-1 where none), in
 * the order they were sent; any beyond max are closed with close_fd.
 * Returns how many were received.
 */
static inline int co_unframe_fds(struct msghdr *mh, int *fds, int max, void (*close_fd)(int))
{
	int n = 0;
	for (int k = 0; k < max; k++)
		fds[k] = -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(mh);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
		return 0;
	int got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
	for (int k = 0; k < got; k++) {
		int fd;
		__builtin_memcpy(&fd, CMSG_DATA(c) + sizeof(int) * (size_t)k, sizeof(int));
		if (n < max)
			fds[n++] = fd;
		else
			close_fd(fd);
	}
	return n;
}

/* A whole message with room for text (the wire carries only what is used). */
struct co_msgbuf {
	struct co_msg m;
	char text[CO_MSG_TEXT];
};

/* ---- shared-memory process table ---- */

#define CO_TABLE_MAGIC 0x4354424cu /* "CTBL" */
#define CO_TABLE_SLOTS 1024

/*
 * Identity of the group's outside stdio (what CO_FD_STDIO descriptors are):
 * a terminal, pipe or socket is one by its inode.  A regular file or a
 * device other than a terminal (/dev/null) is one only through the open
 * file `cohort run` (or restart) was given, not when the program opens the
 * same file itself: for those (`file`) the
 * coordinator finds which descriptors share its open file (kcmp) and
 * marks them in each process's stdio_fd before the images are written.
 */
struct co_stdio_id {
	uint64_t dev, ino;
	uint32_t valid;
	uint32_t file;
};

/*
 * Queued inotify events the agent holds for the program (src/agent/inotify.c,
 * src/kinds/inotify.c).  At each park the agent lists here the inotify
 * descriptors the program made or reads through libc, and how many bytes
 * of events it holds for each already; the coordinator, for one whose queue
 * it cannot leave in the kernel, makes a marker event on watch wd and tells
 * the agent to take the take bytes queued before it.
 */
#define CO_IHELD 8
#define CO_IHELD_BYTES (64 << 10) /* events the agent holds for one descriptor */
struct co_iheld {
	int32_t fd1;	/* agent: 1 + the descriptor; 0: none */
	uint32_t held;	/* agent: bytes of its events held already */
	int32_t wd;	/* coordinator: the watch of the marker event (0: none) */
	uint32_t take;	/* coordinator: bytes of queued events the agent takes from the kernel */
	uint32_t mask;	/* coordinator: the marker's mask (IN_ATTRIB, with IN_ISDIR for a directory) */
	uint32_t merged; /* coordinator: the kernel merged the marker into the last queued event, the
			    same bytes: that one stays as the marker, and the agent holds a copy of it */
};

#define CO_STDIO_FDS 64 /* descriptors below this can be marked; one above is a file of its own */

enum co_pstate {
	CO_P_FREE = 0,
	CO_P_RUNNING,
	CO_P_QUIESCING,
	CO_P_PARKED,
	CO_P_DUMPING,
	CO_P_DUMPED,
	CO_P_RESTORING,
};

struct co_pentry {
	int32_t pid;		/* pid inside the group's namespace */
	int32_t host_pid;	/* pid as the coordinator sees it */
	int32_t ppid;
	uint32_t state;		/* enum co_pstate, written by the agent */
	uint32_t nthreads;
	uint32_t accepts;	/* its agent's accept wrapper ran since it registered (src/agent/accept.c) */
	uint64_t generation;	/* last generation this process took part in */
	uint64_t checkpoints;
	uint64_t last_bytes;
	char program[64];
	uint8_t stdio_fd[CO_STDIO_FDS]; /* fd -> 1 + stdio slot of a `file` stdio it shares, or 0 */
	/*
	 * The last checkpoint as the process's threads lived it (agent.c): of
	 * generation stop_gen, stop_parked threads parked, stop_left of them
	 * back in the program since, the longest of them held stop_ns (from
	 * entering the checkpoint handler to leaving it after the release).
	 */
	uint32_t stop_parked, stop_left;
	uint64_t stop_gen, stop_ns;
};

/* Which of the group's outside stdio (0-2) descriptor fd of inode dev:ino is, or -1. */
static inline int co_stdio_slot(const struct co_stdio_id *s, const uint8_t *marks, int fd, uint64_t dev,
				uint64_t ino)
{
	for (int i = 0; s && i < 3; i++) {
		if (!s[i].valid || s[i].dev != dev || s[i].ino != ino)
			continue;
		if (!s[i].file)
			return i;
		return marks && fd >= 0 && fd < CO_STDIO_FDS ? marks[fd] - 1 : -1;
	}
	return -1;
}


/*
 * SEM_UNDO adjustments (src/agent/semundo.c): each process keeps its own
 * in the agent, but semctl SETVAL and SETALL clear them in every process
 * and IPC_RMID drops them.  A process that has an adjustment on a
 * semaphore registers it here (semnum, and -1 for its whole set); a
 * semctl that clears one stamps it with a new value of epoch, and an
 * adjustment last changed before that stamp is gone.  Slots are taken for
 * good (key 0: free); CO_SEMKEY_SLOTS keys at most in a group's life.
 */
#define CO_SEMKEY_SLOTS 4096
struct co_semkey {
	uint64_t key;		/* (semid + 1) << 32 | (semnum + 1): semnum -1 is the whole set */
	uint64_t cleared;	/* epoch of the last SETVAL, SETALL or IPC_RMID that cleared it */
};

struct co_table {
	uint32_t magic;
	uint32_t slots;
	uint64_t generation;	/* last committed generation */
	uint64_t cookie;	/* the value (si_value) of the signal that starts a checkpoint */
	uint64_t group_id;	/* the group's id, which its images carry (co_bind) */
	struct co_stdio_id stdio[3];
	uint32_t probes;	/* threads the coordinator stopped with ptrace while they ran (co_epoch, agent.h) */
	struct co_pentry p[CO_TABLE_SLOTS];
	uint64_t sem_epoch;	/* bumped by each clearing semctl (co_semkey) */
	struct co_semkey semkeys[CO_SEMKEY_SLOTS];
	struct co_iheld iheld[CO_TABLE_SLOTS][CO_IHELD]; /* by slot: inotify queues its agent can hold */
	uint32_t held_conns;	/* backlog connections given back behind markers, not yet accepted (co_held_conn) */
};

/*
 * A connection a checkpoint took from a listener's backlog (to read what
 * waits on it) and gave back (src/kinds/unix_backlog.c): the kernel
 * cannot put one back, so the coordinator makes a new connection to the
 * listener, the marker, whose one message is this and passes the taken
 * connection (SCM_RIGHTS).  The agent's accept hands out the connection
 * it passes in its place (src/agent/accept.c); co_table.held_conns counts
 * the markers not yet accepted, so that accept looks only while there are.
 */
#define CO_HELD_MAGIC "cohort:held-conn"
struct co_held_conn {
	char magic[16];		/* CO_HELD_MAGIC, without its NUL */
};

#endif
