/*
 * agent.c - libcohort.so: registration with the coordinator, and the
 * manager thread of a checkpoint (the checkpoint signal and the parking
 * of the other threads: quiesce.c).
 *
 * While the program runs the agent has no descriptor and no thread of its
 * own: it registers (REGISTER, WELCOME with the process table, which stays
 * mapped) and hangs up.  At a checkpoint the thread that takes the signal
 * starts the manager thread (a raw clone on a stack of its own, no TLS of
 * its own, every signal blocked), which first gives itself a descriptor
 * table of its own (close_range CLOSE_RANGE_UNSHARE): nothing it opens or
 * closes is ever seen in, or taken from, the program's table.  The
 * manager connects (ATTACH) and on PREPARE parks every other thread
 * (co_quiesce).  On DUMP it copies the program's descriptors into its own
 * table at their numbers (the image describes them from there) and writes
 * the image, or has a snapshot process write it; on RELEASE it lets the
 * threads go, closes everything it had and exits.  After a restart the
 * manager comes back inside take_image(), registers with the new
 * coordinator and waits for the group-wide release.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "dirty.h"
#include "helper.h"
#include "procfs.h"
#include "sys.h"
#include "util.h"

struct co_agent co_agent = { .sock = -1, .taskfd = -1, .slot = -1 };
__thread unsigned co_tls_epoch __attribute__((tls_model("initial-exec")));

static struct co_msgbuf inbox, outbox;
/*
 * Held around fork and clone, and by the manager while it prepares the
 * tracking with the program running: a child forked in between would copy
 * half-made state.  A futex word, not a pthread mutex: the manager is no
 * thread glibc knows.
 */
static int fork_lock_word;
static char errbuf[1024];

/*
 * The manager thread exists only during a checkpoint.  mgr_state says
 * whether one runs (BUSY) and whether another checkpoint signal came
 * meanwhile (PENDING: it runs another session before it goes).  mgr_tid
 * is its tid while it exists; the kernel clears it when it is gone
 * (CLONE_CHILD_CLEARTID), and only then is its stack free for the next.
 */
enum { MGR_IDLE = 0, MGR_BUSY, MGR_PENDING };
static int mgr_state, mgr_tid;
static char mgr_stack[256 << 10] __attribute__((aligned(64)));
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE 2
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif
/* a coordinator's start that came before we had registered (its cookie, checked once we have) */
uint64_t co_early_start;
static int writer_pidfd = -1;	/* the snapshot process writing the image (the manager's descriptor) */
/* the image's files, from DUMP (the manager's descriptors), then the seccomp filters to write (or -1) */
#define IMG_FDS (CO_STREAMS + 1)
static int img_fd[IMG_FDS] = { -1, -1, -1 };
_Static_assert(CO_STREAMS == 2 && IMG_FDS <= CO_MSG_FDS, "img_fd's initialiser; DUMP carries them all");

/* ---- messages ---- */

static int send_fd(int fd, unsigned type, int64_t a, int64_t b, const char *text, int passfd)
{
	outbox.m = (struct co_msg){ .type = type, .a = a, .b = b };
	size_t n = text ? co_strlcpy(outbox.text, text, sizeof(outbox.text)) : 0;
	outbox.m.textlen = (uint32_t)n;
	struct iovec iov;
	struct msghdr mh;
	char cbuf[CO_FRAME_CBUF];
	co_frame(&mh, &iov, &outbox, sizeof(outbox.m) + n, cbuf, &passfd, passfd >= 0);
	long r;
	do
		r = co_sys3(SYS_sendmsg, fd, (long)&mh, MSG_NOSIGNAL);
	while (r == -EINTR);
	return r < 0 ? (int)r : 0;
}

static int send_ab(int fd, unsigned type, int64_t a, int64_t b, const char *text)
{
	return send_fd(fd, type, a, b, text, -1);
}

static int send_msg(int fd, unsigned type, int64_t a, const char *text)
{
	return send_ab(fd, type, a, 0, text);
}

/* DONE: bytes written, and the parent generation of an incremental image (b). */
static void send_done(uint64_t bytes)
{
	send_ab(co_agent.sock, CO_M_DONE, (int64_t)bytes, (int64_t)co_agent.incr_parent, 0);
}

/* For park.c: a message to the coordinator; the next one from it (NULL: the socket failed) */
int co_agent_send(unsigned type, int64_t a, int64_t b)
{
	return send_ab(co_agent.sock, type, a, b, 0);
}

static int recv_msg(int fd, int *fds, int nfds);
const struct co_msgbuf *co_agent_recv(void)
{
	return recv_msg(co_agent.sock, 0, 0) ? 0 : &inbox;
}

static void close_fd(int fd)
{
	co_close(fd);
}

/* Receive one message; up to nfds attached descriptors go to fds[] (-1 where none), any more are closed. */
static int recv_msg(int fd, int *fds, int nfds)
{
	char cbuf[CO_FRAME_CBUF];
	struct iovec iov = { &inbox, sizeof(inbox) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	long r;
	do
		r = co_sys3(SYS_recvmsg, fd, (long)&mh, MSG_CMSG_CLOEXEC);
	while (r == -EINTR);
	if (r < (long)sizeof(inbox.m))
		return -1;
	inbox.text[inbox.m.textlen < sizeof(inbox.text) ? inbox.m.textlen : sizeof(inbox.text) - 1] = 0;
	co_unframe_fds(&mh, fds, nfds, close_fd);
	return 0;
}

/* ---- registration ---- */

/*
 * The manager's descriptors while it prepares (with the program running):
 * /proc/self/task to find the threads, and the tracking's.  In its own
 * table, so they can be made at any moment.
 */
static void agent_fds_setup(void)
{
	if (co_agent.taskfd < 0)
		co_agent.taskfd = (int)co_open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	co_dirty_setup();
}

int co_agent_fds(int *out)
{
	int n = 0;
	if (!co_agent.active)
		return 0;
	if (co_agent.sock >= 0)
		out[n++] = co_agent.sock;
	if (co_agent.taskfd >= 0)
		out[n++] = co_agent.taskfd;
	n += co_dirty_fds(out + n);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

/* A connection to the coordinator at path, or -errno (see not_here). */
static int dial(const char *path)
{
	/* a program's seccomp filters are checked with these arguments (cli/seccomp.c: known_args) */
	int fd = (int)co_sys3(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	co_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	long r = co_sys3(SYS_connect, fd, (long)&sa, sizeof(sa));
	if (r < 0) {
		co_close(fd);
		return (int)r;
	}
	return fd;
}

/*
 * dial's error when the socket may not be ours from where we are: in a
 * chroot, its path is not there, or is something else (a socket of an
 * earlier coordinator linked into the chroot: refused).  root.c leaves.
 */
static int not_here(int e)
{
	return e == -ENOENT || e == -ECONNREFUSED;
}

/* dial, for the manager: from a chroot without the socket, from the group's root (root.c). */
static int dial_out(const char *path)
{
	int fd = dial(path);
	return not_here(fd) && co_root_leave() == 0 ? dial(path) : fd;
}

/*
 * Register and map the process table.  restored != 0 for a process coming
 * back from an image: its connection is kept (co_agent.sock) until the
 * coordinator releases the group.  Otherwise the connection is closed
 * again: this runs where no thread of the program runs (constructor,
 * forked child before fork() returns, the manager in a table of its own),
 * and leaves nothing behind but the table's mapping.  0, dial's error
 * when the socket is not there from our root (not_here), else -1.
 */
static int register_with(const char *path, uint64_t restored)
{
	int fd = dial(path);
	if (fd < 0)
		return not_here(fd) ? fd : -1;
	char exe[CO_PATH];
	long n = co_readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	int64_t ppid = co_getppid(), rest = (int64_t)restored;
	outbox.m = (struct co_msg){ .type = CO_M_REGISTER, .a = co_agent.pid, .b = ppid, .c = rest, .d = -1 };
	size_t tl = co_strlcpy(outbox.text, exe, sizeof(outbox.text));
	outbox.m.textlen = (uint32_t)tl;
	if (co_sys6(SYS_sendto, fd, (long)&outbox, sizeof(outbox.m) + tl, MSG_NOSIGNAL, 0, 0) < 0)
		goto fail;
	int tfd = -1;
	if (recv_msg(fd, &tfd, 1) || inbox.m.type != CO_M_WELCOME || tfd < 0)
		goto fail;
	void *tab = (void *)co_mmap(0, sizeof(struct co_table), PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0);
	co_close(tfd);
	if ((long)tab < 0 && (long)tab > -4096)
		goto fail;
	if (co_agent.table)
		co_munmap(co_agent.table, sizeof(struct co_table));
	co_agent.table = tab;
	co_semundo_attach(restored != 0); /* the adjustments it has, into this table's keys */
	co_agent.slot = (int)inbox.m.a;
	co_agent.sig = (int)inbox.m.b;
	co_strlcpy(co_agent.sock_path, path, sizeof(co_agent.sock_path));
	if (restored)
		co_agent.sock = fd;
	else
		co_close(fd);
	return 0;
fail:
	co_close(fd);
	return -1;
}

/*
 * register_with, by a process alone in itself (the constructor, a forked
 * child in fork()) that may be in a chroot without the socket: it steps
 * out to the group's root for it, and back (root.c).
 */
static int register_alone(const char *path)
{
	int r = register_with(path, 0), back[2];
	if (!not_here(r) || co_root_out(back))
		return r;
	r = register_with(path, 0);
	co_root_back(back);
	return r;
}

/*
 * A process that changed its uid is not dumpable: its /proc files are
 * root's, and it may not open its own pagemap, which its image and the
 * tracking of written pages read.  The coordinator opens it for it
 * (PROCFD, on a connection of its own: the manager's carries the
 * checkpoint, and a snapshot writer shares that one).  Called by the
 * manager or a snapshot writer only (co_proc_self_open), in tables of
 * their own; raw calls, buffers of its own.  A descriptor or -errno.
 */
static int proc_from_coordinator(const char *name)
{
	int fd = dial(co_agent.sock_path);
	if (fd < 0)
		return -EACCES;
	struct { long sec, usec; } tmo = { 30, 0 };
	co_sys5(SYS_setsockopt, fd, SOL_SOCKET, SO_RCVTIMEO, (long)&tmo, sizeof(tmo));
	struct {
		struct co_msg m;
		char text[32];
	} q;
	co_memset(&q, 0, sizeof(q));
	q.m.type = CO_M_PROCFD;
	q.m.textlen = (uint32_t)co_strlcpy(q.text, name, sizeof(q.text));
	int got = -1, e = EACCES;
	long r = co_sys6(SYS_sendto, fd, (long)&q, sizeof(q.m) + q.m.textlen, MSG_NOSIGNAL, 0, 0);
	if (r >= 0) {
		struct co_msg a;
		char cbuf[CO_FRAME_CBUF];
		struct iovec iov = { &a, sizeof(a) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		do
			r = co_sys3(SYS_recvmsg, fd, (long)&mh, MSG_CMSG_CLOEXEC);
		while (r == -EINTR);
		if (r >= (long)sizeof(a)) {
			co_unframe_fds(&mh, &got, 1, close_fd);
			if (a.type == CO_M_PROCFILE && a.a > 0)
				e = (int)a.a;
			if ((a.type != CO_M_PROCFILE || a.a != 0) && got >= 0) {
				co_close(got);
				got = -1;
			}
		}
	}
	co_close(fd);
	return got >= 0 ? got : -e;
}

/* ---- the program's descriptors, seen from the manager's table (mirror.c) ---- */

/* With every thread of the program parked: the manager's own descriptors out of the way, the program's in. */
static int mirror_program_fds(void)
{
	int *own[8 + IMG_FDS] = { &co_agent.sock, &co_agent.taskfd, &writer_pidfd };
	int nown = 3;
	for (int k = 0; k < IMG_FDS; k++)
		own[nown++] = &img_fd[k];
	nown += co_dirty_fd_refs(own + nown);
	return co_mirror_program_fds(own, nown, errbuf, sizeof(errbuf));
}

/* The image's files go from the manager's table (a snapshot writer has its own copies). */
static void close_image_fds(void)
{
	for (int k = 0; k < IMG_FDS; k++) {
		if (img_fd[k] >= 0)
			co_close(img_fd[k]);
		img_fd[k] = -1;
	}
}

/* ---- the manager thread ---- */

enum { IMG_WRITTEN = 0, IMG_RESTARTED = 1, IMG_SNAPSHOT = 2, IMG_FAILED = -1 };

/* What the snapshot fork needs; in our memory, which the forking process shares. */
static struct {
	const char *dir;
	uint64_t *bytes;
	int pidfd;
	long child;
} snap;

/*
 * A process that shares our memory and descriptors (CLONE_VM | CLONE_VFORK,
 * the manager waits) forks the snapshot, a copy-on-write copy of the
 * process as it stands, and exits at once: the snapshot is nobody's child
 * in the program's process (the group's init reaps it), and the manager
 * need not stay to reap it.  The manager watches it through a pidfd.
 */
static void snapshot_fork(void *arg)
{
	(void)arg;
	int pfd = -1;
	/* a program's seccomp filters are checked with these arguments (cli/seccomp.c: known_args) */
	long c = co_sys5(SYS_clone, CLONE_PIDFD /* no exit signal */, 0, (long)&pfd, 0, 0);
	if (c == 0) {
		co_prctl(PR_SET_NAME, (long)"cohort-dump", 0, 0, 0);
		co_dump_from_snapshot();
		int r = co_dump_write(img_fd, snap.dir, snap.bytes);
		if (r)
			send_msg(co_agent.sock, CO_M_FAIL, 0, errbuf);
		else
			send_done(*snap.bytes);
		/*
		 * The huge pages our fork split in the program (its writes since
		 * copied 4 KiB at a time) are made huge again, from here: we hold
		 * no more of what we wrote, and no thread of the program's does
		 * the work (dirty_thp.c, co_dirty_recollapse).
		 */
		if (!r)
			co_dirty_recollapse(co_mirror_pidfd());
		co_exit_group(r ? 1 : 0);
	}
	snap.child = c;
	snap.pidfd = pfd;
}

/*
 * Collect our own record and save our context, then fork a copy-on-write
 * snapshot of the process that writes the image while the program runs
 * again.  The snapshot is taken at the fork; the parent waits only until
 * the child has written what the running program could still change
 * (descriptor offsets), then returns IMG_SNAPSHOT.  Without a snapshot the
 * image is written here, with the program stopped (IMG_WRITTEN).
 * IMG_RESTARTED: we come back from a restart, inside co_ctx_save().
 *
 * The program's MADV_DONTFORK and MADV_WIPEONFORK regions fork like the
 * rest for that one fork (co_dump_fork_begin, mem.c), so that the snapshot
 * holds them as the pause left them.
 *
 * The fork copies the page tables of all the memory it keeps, about 20 ms
 * per GiB here: most of the pause.  For an incremental image the child
 * needs only the pages written since the parent, so long unwritten
 * stretches are left out of the fork (a lean snapshot, see dirty.h) and
 * the pause shrinks with the written set.
 */
/* The signals (as a mask) in list[0..n) (n past max: an overflow, max of them), and the checkpoint signal. */
static uint64_t signal_mask(const struct co_siginfo *list, uint32_t n, uint32_t max)
{
	uint64_t m = 1ULL << (co_agent.sig - 1);
	if (n > max)
		n = max;
	for (uint32_t i = 0; i < n; i++)
		if (list[i].signo >= 1 && list[i].signo <= 64)
			m |= 1ULL << (list[i].signo - 1);
	return m;
}

/*
 * Whether a signal is pending now that the image does not hold: one that
 * came (a timer's expiry, a kill from outside) after its thread parked
 * and took its queue, or after the manager took the process's.
 */
static int late_signals(void)
{
	char path[64], buf[2048];
	int late = 0;
	/* every queue is noted (seen_*): a thread in a chroot takes what was seen (co_signals_seen) */
	for (int i = 1; i < co_agent.nthreads; i++) {
		struct co_tslot *t = &co_agent.threads[i];
		if (__atomic_load_n(&t->state, __ATOMIC_ACQUIRE) != CO_TS_PARKED)
			continue;
		co_fmt(path, sizeof(path), "/proc/self/task/%d/status", t->tid);
		t->seen_pnd = co_read_small(path, buf, sizeof(buf)) > 0 ? co_status_hex(buf, "SigPnd") : 0;
		late |= (t->seen_pnd & ~signal_mask(t->rec.pending, t->rec.npending, CO_MAX_PENDING)) != 0;
	}
	co_agent.seen_shd = co_read_small("/proc/self/status", buf, sizeof(buf)) > 0 ? co_status_hex(buf, "ShdPnd") : 0;
	return late || (co_agent.seen_shd & ~signal_mask(co_agent.shared_pending, (uint32_t)co_agent.nshared_pending,
							 2 * CO_MAX_PENDING));
}

/*
 * The image must hold every signal pending when its timers were read: a
 * one-shot timer that fired after its thread took its queue would
 * otherwise come back neither armed nor pending, and a thread waiting for
 * it would wait for ever.  So: while a signal is pending that was not
 * taken, every parked thread takes its queue again (the main thread the
 * process's too), and the timers are read again; a few rounds at most.
 * Signals are compared by number: a second instance of a real-time signal
 * already taken is not seen.
 */
static int settle_signals(void)
{
	for (int round = 0; round < 5; round++) {
		if (!late_signals())
			return 0;
		int want = 0;
		for (int i = 1; i < co_agent.nthreads; i++)
			want += __atomic_load_n(&co_agent.threads[i].state, __ATOMIC_ACQUIRE) == CO_TS_PARKED;
		__atomic_store_n(&co_agent.recollected, 0, __ATOMIC_RELEASE);
		__atomic_add_fetch(&co_agent.recollect, 1, __ATOMIC_ACQ_REL);
		co_fwake(&co_agent.release);
		for (int got, waited = 0; (got = __atomic_load_n(&co_agent.recollected, __ATOMIC_ACQUIRE)) < want;) {
			if (waited++ > 500) {
				co_fmt(errbuf, sizeof(errbuf), "pid %d: its parked threads did not take their signals again",
				       co_agent.pid);
				return -1;
			}
			co_fwait(&co_agent.recollected, got, 10);
		}
		if (co_dump_recollect_timers())
			return -1;
	}
	co_fmt(errbuf, sizeof(errbuf), "pid %d: signals kept arriving during the checkpoint", co_agent.pid);
	return -1;
}

static __attribute__((noinline)) int take_image(const char *dir, uint64_t *bytes, int snapshot)
{
	struct co_tslot *me = &co_agent.threads[0];
	co_thread_collect(&me->rec, co_agent.sig);
	co_agent.ppid = (int)co_getppid();
	co_agent.pgid = (int)co_sys1(SYS_getpgid, 0);
	co_agent.sid = (int)co_sys1(SYS_getsid, 0);
	/* the written-page set since the last image, and tracking anew from this one */
	uint64_t base = co_dirty_collect(co_agent.generation);
	co_agent.incr_parent = co_agent.want_parent && base == co_agent.want_parent ? base : 0;
	if (mirror_program_fds() || co_dump_begin(errbuf, sizeof(errbuf)) || settle_signals())
		return IMG_FAILED;
	/*
	 * Everything the image needs of the running process was read above
	 * (descriptors and their offsets, the memory map, the threads), and
	 * the snapshot holds the rest: the program may go on as soon as the
	 * fork returns.  (Deleted files, which the writer once read from the
	 * program's descriptors, are the coordinator's: shared.img.)
	 */
	if (co_ctx_save(&me->rec.ctx))
		return IMG_RESTARTED;
	/*
	 * The stack the child runs on, and the agent's own zero-initialised
	 * statics (one anonymous .bss region; co_agent itself is in .data).
	 */
	uint64_t keep[2] = { (uint64_t)&me, (uint64_t)&inbox };
	if (snapshot)
		co_dump_fork_begin(); /* the program's MADV_DONTFORK regions go into the snapshot too */
	if (snapshot && co_agent.incr_parent)
		co_dirty_lean_begin(keep, 2);
	long child = -1;
	if (snapshot) {
		/* the forking process runs on our stack, below what we use: we wait meanwhile */
		uint64_t below = ((uint64_t)&keep[0] - 16384) & ~63ULL;
		struct clone_args ca;
		co_memset(&ca, 0, sizeof(ca));
		ca.flags = CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_FS;
		ca.stack = (uint64_t)mgr_stack;
		ca.stack_size = below - (uint64_t)mgr_stack;
		snap.dir = dir;
		snap.bytes = bytes;
		snap.child = -1;
		snap.pidfd = -1;
		long mid = co_clone3_thread(&ca, sizeof(ca), snapshot_fork, 0);
		if (mid > 0) {
			struct { int32_t signo, err, code, pad, pid, uid, status; char rest[100]; } si;
			co_sys5(SYS_waitid, P_PID, mid, (long)&si, WEXITED | __WALL, 0);
			child = snap.child;
		}
	}
	co_dirty_lean_end(); /* before the program runs (and maybe forks) again */
	if (snapshot)
		co_dump_fork_end(); /* after the lean marks are off: a stretch inside such a region keeps its flag */
	if (child < 0)
		return co_dump_write(img_fd, dir, bytes) ? IMG_FAILED : IMG_WRITTEN;
	writer_pidfd = snap.pidfd;
	return IMG_SNAPSHOT; /* a writer that fails says so itself (FAIL), or its death does */
}

/*
 * Wait for the next message.  While the snapshot writes the image, its
 * end is watched too: one that ends before the coordinator is done with
 * us may have died without a word (after its DONE, the coordinator no
 * longer reads this).
 */
static int next_msg(int *fds, int nfds)
{
	while (writer_pidfd >= 0) {
		struct { int fd; short ev, rev; } p[2] = { { co_agent.sock, POLLIN, 0 }, { writer_pidfd, POLLIN, 0 } };
		long r = co_sys5(SYS_ppoll, (long)p, 2, 0, 0, 8);
		if (r < 0 && r != -EINTR)
			break;
		if (p[1].rev) {
			co_close(writer_pidfd);
			writer_pidfd = -1;
			co_fmt(errbuf, sizeof(errbuf), "pid %d: the image writer died before the image was complete",
			       co_agent.pid);
			send_msg(co_agent.sock, CO_M_FAIL, 0, errbuf);
			continue;
		}
		if (p[0].rev)
			break;
	}
	return recv_msg(co_agent.sock, fds, nfds);
}

static void after_restart(void)
{
	struct co_resume *rs = &co_agent.resume;
	/* the restorer made us share the program's table: ours again, empty */
	co_sys3(SYS_close_range, 0, ~0U, CLOSE_RANGE_UNSHARE);
	co_agent.sock = -1;
	co_agent.taskfd = -1;
	writer_pidfd = -1;
	for (int k = 0; k < IMG_FDS; k++)
		img_fd[k] = -1;
	co_mirror_forget();
	co_dirty_forget(0); /* neither its descriptor nor its record came back */
	co_agent.table = 0; /* the old mapping was not part of the image */
	co_agent.slot = -1;
	co_agent.generation = rs->generation;
	/* every other thread must have left the restorer before its area goes */
	for (;;) {
		int a = __atomic_load_n(&co_agent.arrived, __ATOMIC_ACQUIRE);
		if (a >= co_agent.nthreads - 1)
			break;
		co_fwait(&co_agent.arrived, a, 100);
	}
	if (rs->zone)
		co_munmap((void *)rs->zone, rs->zone_len);
	/* every thread has measured its own CPU clocks: the process's, and the table of them */
	co_cpuclock_restarted();
	/*
	 * Tracking starts at the next checkpoint, which is therefore full for
	 * this process: pages written on the way back (the threads' handler
	 * frames, the agent's own state) no longer match the image.
	 */
	/* the restorer chrooted the process again: the manager leaves for the group's root anew */
	co_root_forget();
	uint64_t gen = rs->generation ? rs->generation : 1;
	int reg = register_with(rs->sock, gen);
	if (not_here(reg) && co_root_leave() == 0)
		reg = register_with(rs->sock, gen);
	if (reg) {
		/* no coordinator: run on without checkpoints */
		co_agent.active = 0;
		co_release_threads();
		return;
	}
	co_set_state(CO_P_RESTORING);
}

/* Park the program's threads and say so (prep_ns: how long it ran while we prepared). */
static void park(int64_t prep_ns)
{
	if (co_quiesce(errbuf, sizeof(errbuf))) {
		send_msg(co_agent.sock, CO_M_FAIL, 0, errbuf);
		co_release_threads();
		co_set_state(CO_P_RUNNING);
		return;
	}
	co_inotify_publish();
	send_fd(co_agent.sock, CO_M_QUIESCED, prep_ns, 0, 0, co_dirty_uffd());
}

/* PREPARE or QUIESCE said our root is not the group's (chroot): leave it first, or say why not (FAIL). */
static int leave_root(unsigned flags)
{
	int e = flags & CO_PREP_ROOT ? co_root_leave() : 0;
	if (e) {
		co_fmt(errbuf, sizeof(errbuf), "pid %d: cannot leave its root directory (chroot) for the group's "
		       "(errno %d)", co_agent.pid, -e);
		send_msg(co_agent.sock, CO_M_FAIL, 0, errbuf);
	}
	return e;
}

/* The program's root for its image, when not the group's (root.c): 0, or -1 with errbuf. */
static int note_root(void)
{
	int e = co_root_note(co_agent.root, sizeof(co_agent.root));
	if (e)
		return co_err(errbuf, sizeof(errbuf), "pid %d: cannot read its root and working directories (chroot) "
			      "from the group's root (errno %d)", co_agent.pid, -e);
	if (co_endswith(co_agent.root, " (deleted)"))
		return co_err(errbuf, sizeof(errbuf), "pid %d: its root directory %s was removed after its chroot, "
			      "which cohort cannot restore", co_agent.pid, co_agent.root);
	return 0;
}

/* One checkpoint, from ATTACH until RELEASE or the coordinator hangs up. */
static void session(void)
{
	co_agent.sock = dial_out(co_agent.sock_path);
	if (co_agent.sock < 0 || send_ab(co_agent.sock, CO_M_ATTACH, co_agent.pid, 0, 0))
		return;
	for (;;) {
		int rfd[CO_MSG_FDS] = { -1, -1, -1, -1 };
		_Static_assert(CO_MSG_FDS == 4, "rfd's initialiser");
		int r = writer_pidfd < 0 ? recv_msg(co_agent.sock, rfd, CO_MSG_FDS) : next_msg(rfd, CO_MSG_FDS);
		int tfd = rfd[0];
		/* what a message carries is for its own case below; anything else goes */
		for (int k = inbox.m.type == CO_M_DUMP ? IMG_FDS : 1; k < CO_MSG_FDS; k++)
			if (rfd[k] >= 0)
				co_close(rfd[k]);
		if (inbox.m.type != CO_M_PREPARE && inbox.m.type != CO_M_QUIESCE && inbox.m.type != CO_M_DUMP && tfd >= 0) {
			co_close(tfd);
			tfd = -1;
		}
		if (r) {
			/* coordinator gone: never leave threads parked (nor inotify events it left to us) */
			co_inotify_take();
			if (co_agent.nthreads)
				co_release_threads();
			co_set_state(CO_P_RUNNING);
			return;
		}
		switch (inbox.m.type) {
		case CO_M_PREPARE: {
			co_agent.await_quiesce = 0; /* one left by a checkpoint that failed during its pre-copy */
			co_agent.generation = (uint64_t)inbox.m.a;
			co_agent.want_parent = (uint64_t)inbox.m.b;
			if (tfd >= 0)
				co_dirty_adopt_uffd(tfd); /* the tracking of the last checkpoint, kept by the coordinator */
			if (leave_root(inbox.m.flags))
				break;
			int precopy = (inbox.m.flags & CO_PREP_PRECOPY) != 0, armed = 0;
			struct co_timespec t0, t1;
			co_clock_gettime(CLOCK_MONOTONIC, &t0);
			co_agent_fork_lock();
			agent_fds_setup();
			co_dirty_prepare();
			/* an image that would be full: its memory is read ahead, while the program runs */
			if (precopy && !co_dirty_based_on(co_agent.want_parent) &&
			    co_dirty_precopy_arm(CO_PRECOPY_ID(co_agent.generation)) == 0) {
				co_agent.want_parent = CO_PRECOPY_ID(co_agent.generation);
				armed = 1;
			}
			co_agent_fork_unlock();
			co_clock_gettime(CLOCK_MONOTONIC, &t1);
			int64_t prep_ns = (t1.sec - t0.sec) * 1000000000LL + (t1.nsec - t0.nsec);
			if (precopy) {
				/*
				 * Parked on QUIESCE, once the coordinator has read what it
				 * can.  That takes as long as reading the memory, with the
				 * program running: the manager does not stay for it (no
				 * thread of ours for the program to see).  The coordinator
				 * signals again, and the next manager gets QUIESCE.
				 */
				co_agent.await_quiesce = 1;
				send_fd(co_agent.sock, CO_M_ARMED, prep_ns, armed, 0, co_dirty_uffd());
				return;
			}
			/* the program ran during the preparation: not part of its pause */
			park(prep_ns);
			break;
		}
		case CO_M_QUIESCE:
			if (!co_agent.await_quiesce && co_agent.nthreads) {
				if (tfd >= 0)
					co_close(tfd);
				break; /* parked already: born during the checkpoint, it had PREPARE alone */
			}
			co_agent.await_quiesce = 0;
			/* a new manager since ARMED: the tracking's descriptors again, its userfaultfd first */
			if (tfd >= 0)
				co_dirty_adopt_uffd(tfd);
			if (leave_root(inbox.m.flags))
				break;
			agent_fds_setup();
			if (inbox.m.flags & CO_PREP_PRECOPY_FAILED)
				co_agent.want_parent = 0; /* the coordinator could not read it: a whole image */
			park(0);
			break;
		case CO_M_DUMP: {
			static char dir[CO_PATH];
			const char *d = co_dump_shared(inbox.text);
			co_strlcpy(dir, d ? d : "", sizeof(dir));
			uint64_t bytes = 0;
			co_set_state(CO_P_DUMPING);
			/* the image's files, made by the coordinator: a process may not create files in its directory */
			int missing = 0;
			for (int k = 0; k < CO_STREAMS; k++) {
				img_fd[k] = rfd[k];
				missing |= rfd[k] < 0;
			}
			img_fd[CO_STREAMS] = rfd[CO_STREAMS]; /* the seccomp filters: only with some */
			int r = IMG_FAILED;
			if (missing || !d)
				co_fmt(errbuf, sizeof(errbuf), "pid %d: the coordinator sent DUMP without %s", co_agent.pid,
				       missing ? "the image's files" : "its list of shared files");
			else if (note_root() == 0) {
				co_inotify_take(); /* the inotify events the coordinator left to us: in the image */
				r = take_image(dir, &bytes, !(inbox.m.flags & CO_CKPT_STOP));
			}
			if (r == IMG_RESTARTED) {
				after_restart();
				break;
			}
			close_image_fds(); /* a snapshot writer has its own */
			co_unmirror_program_fds();
			if (r == IMG_FAILED)
				send_msg(co_agent.sock, CO_M_FAIL, 0, errbuf);
			if (r == IMG_SNAPSHOT || r == IMG_WRITTEN)
				send_msg(co_agent.sock, CO_M_SNAPSHOT, 0, 0);
			if (r == IMG_WRITTEN)
				send_done(bytes);
			co_set_state(CO_P_DUMPED);
			break;
		}
		case CO_M_RELEASE:
			co_agent.await_quiesce = 0;
			co_inotify_take(); /* a checkpoint that failed before DUMP */
			if (co_agent.table && co_agent.slot >= 0) {
				struct co_pentry *e = &co_agent.table->p[co_agent.slot];
				e->generation = (uint64_t)inbox.m.a;
				e->nthreads = co_agent.nthreads ? (uint32_t)co_agent.nthreads : e->nthreads;
			}
			co_release_threads();
			co_set_state(CO_P_RUNNING);
			return;
		default:
			break;
		}
	}
}

/*
 * The manager thread: a clone of the thread that took the checkpoint
 * signal (its TLS, which the manager never uses: raw system calls only),
 * every signal blocked.  Its first act gives it an empty descriptor table
 * of its own; its last closes it, and it exits.
 */
static void manager_main(void *arg)
{
	(void)arg;
	co_sys3(SYS_close_range, 0, ~0U, CLOSE_RANGE_UNSHARE);
	co_agent.manager_tid = (int)co_gettid();
	co_prctl(PR_SET_NAME, (long)"cohort-agent", 0, 0, 0);
	for (;;) {
		session();
		/* everything the manager opened, and the connection, go with its table */
		co_unmirror_program_fds();
		co_sys3(SYS_close_range, 0, ~0U, 0);
		co_agent.sock = -1;
		co_agent.taskfd = -1;
		writer_pidfd = -1;
		for (int k = 0; k < IMG_FDS; k++)
			img_fd[k] = -1;
		co_dirty_drop_fds();
		co_root_forget(); /* the next manager is a new thread, in the program's root */
		int s = MGR_BUSY;
		if (__atomic_compare_exchange_n(&mgr_state, &s, MGR_IDLE, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return; /* co_clone3_thread ends the thread */
		/* another checkpoint signal came meanwhile */
		__atomic_store_n(&mgr_state, MGR_BUSY, __ATOMIC_RELEASE);
	}
}

/*
 * In the signal handler of the thread that took the coordinator's signal:
 * start the manager, or have the running one do another round.  No
 * allocation, raw system calls only.
 */
void co_start_manager(void)
{
	int s = __atomic_load_n(&mgr_state, __ATOMIC_ACQUIRE);
	for (;;) {
		if (s == MGR_PENDING)
			return;
		int to = s == MGR_IDLE ? MGR_BUSY : MGR_PENDING;
		if (__atomic_compare_exchange_n(&mgr_state, &s, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			if (to == MGR_PENDING)
				return;
			break;
		}
	}
	/* the last manager may still be on its way out: its stack is free once the kernel says it is gone */
	for (int t; (t = __atomic_load_n(&mgr_tid, __ATOMIC_ACQUIRE)) != 0;) {
		struct co_timespec ts = { 0, 10 * 1000000 };
		co_futex(&mgr_tid, FUTEX_WAIT, t, &ts); /* the kernel's wake is not a private one */
	}
	struct clone_args ca;
	co_memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
		   CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
	ca.parent_tid = (uint64_t)&mgr_tid;
	ca.child_tid = (uint64_t)&mgr_tid;
	ca.stack = (uint64_t)mgr_stack;
	ca.stack_size = sizeof(mgr_stack);
	if (co_clone3_thread(&ca, sizeof(ca), manager_main, 0) < 0)
		__atomic_store_n(&mgr_state, MGR_IDLE, __ATOMIC_RELEASE);
}

/* Registered just now (constructor, forked child): a start that came meanwhile is taken now. */
static void registered(void)
{
	co_agent.active = 1;
	uint64_t v = __atomic_exchange_n(&co_early_start, 0, __ATOMIC_ACQ_REL);
	if (v && co_agent.table && v == co_agent.table->cookie)
		co_start_manager();
}

static void agent_setup(void)
{
	const char *path = getenv("COHORT_SOCK");
	if (!path || !*path)
		return;
	co_agent.pid = (int)co_getpid();
	co_agent.slot = -1;
	co_agent.sock = -1;
	co_agent.taskfd = -1;
	/*
	 * The handler is in place before we register: the coordinator may
	 * start a checkpoint the moment it has welcomed us, and the signal's
	 * default action would end the program.
	 */
	const char *g = getenv("COHORT_SIG");
	co_agent.sig = g ? (int)co_strtoul(g, 0, 10) : 0;
	if (co_agent.sig > 0 && co_agent.sig <= 64)
		co_install_handler();
	co_semundo_from_env(); /* SEM_UNDO adjustments the program before an exec had */
	int r = register_alone(path);
	if (r == 0) {
		co_install_handler(); /* the coordinator's signal, should it differ */
		registered();
	} else if (co_agent.sig > 0 && co_agent.sig <= 64) {
		struct co_ksigaction dfl = { 0 };
		co_sigaction(co_agent.sig, &dfl, 0);
	}
	/*
	 * An exec'ing member blocked the checkpoint signal (wrap.c); one that
	 * arrived during the exec is still pending and is now taken by the
	 * handler (a coordinator's start: the manager asks whether it is still
	 * wanted).  Without a coordinator it is simply let go.
	 */
	int sig = r == 0 ? co_agent.sig : g ? (int)co_strtoul(g, 0, 10) : 0;
	if (sig > 0 && sig <= 64) {
		uint64_t set = 1ULL << (sig - 1);
		struct co_timespec zero = { 0, 0 };
		if (r) {
			co_sigprocmask(SIG_BLOCK, &set, 0);
			while (co_sys4(SYS_rt_sigtimedwait, (long)&set, 0, (long)&zero, 8) == sig)
				;
		}
		co_sigprocmask(SIG_UNBLOCK, &set, 0);
	}
}

/*
 * A forked child starts with no manager (the parent's, if one ran, is not
 * copied) and with none of its descriptors (they were in the manager's own
 * table): it registers anew, in fork() before it returns.
 */
void co_agent_forked(void)
{
	fork_lock_word = 0; /* taken by the thread that forked, in the parent */
	mgr_state = MGR_IDLE;
	mgr_tid = 0;
	writer_pidfd = -1;
	for (int k = 0; k < IMG_FDS; k++)
		img_fd[k] = -1;
	co_mirror_forget();
	co_early_start = 0;
	co_cpuclock_forked(); /* a new process: its CPU clocks are its own, from 0 */
	co_semundo_forked(); /* undo lists are not inherited by fork */
	co_timers_forked(); /* nor timers */
	co_aio_forked();    /* nor aio contexts */
	co_root_forget(); /* a manager that had left its root (root.c) is the parent's */
	co_inotify_forked();
	if (!co_agent.active)
		return;
	if (co_agent.table)
		co_munmap(co_agent.table, sizeof(struct co_table));
	co_agent.table = 0;
	co_agent.sock = -1;
	co_agent.taskfd = -1;
	co_agent.active = 0;
	co_agent.nthreads = 0;
	co_agent.await_quiesce = 0;
	/* the parent's tracking does not carry over to a forked child */
	co_dirty_forget(1);
	co_agent.pid = (int)co_getpid();
	if (register_alone(co_agent.sock_path) == 0)
		registered();
}

void co_agent_fork_lock(void)
{
	while (__atomic_exchange_n(&fork_lock_word, 1, __ATOMIC_ACQUIRE))
		co_futex(&fork_lock_word, FUTEX_WAIT_PRIVATE, 1, 0);
}

void co_agent_fork_unlock(void)
{
	__atomic_store_n(&fork_lock_word, 0, __ATOMIC_RELEASE);
	co_futex(&fork_lock_word, FUTEX_WAKE_PRIVATE, 1, 0);
}

__attribute__((constructor(101))) static void agent_init(void)
{
	co_proc_self_fallback = proc_from_coordinator;
	co_signals_seen = co_pending_seen;
	co_wrap_init();
	agent_setup();
	pthread_atfork(co_agent_fork_lock, co_agent_fork_unlock, co_agent_forked);
}
