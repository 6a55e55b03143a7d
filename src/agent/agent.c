/*
 * agent.c - libcohort.so: registration with the coordinator, the messages
 * of a checkpoint, and the process's life (the constructor, fork).
 *
 * While the program runs the agent has no descriptor and no thread of its
 * own: it registers (REGISTER, WELCOME with the process table, which stays
 * mapped) and hangs up.  At a checkpoint the thread that takes the signal
 * starts the manager thread (manager.c), which connects anew (ATTACH),
 * parks every other thread (co_quiesce, quiesce.c) and takes the image
 * (snapshot.c).  After a restart the manager comes back inside
 * co_take_image(), registers with the new coordinator here
 * (co_agent_restarted) and waits for the group-wide release.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "agent.h"
#include "manager.h"
#include "dirty.h"
#include "helper.h"
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

struct co_agent co_agent = { .sock = -1, .taskfd = -1, .slot = -1 };
__thread unsigned co_tls_epoch __attribute__((tls_model("initial-exec")));

/* the last message received (manager.h); the one being sent */
struct co_msgbuf co_inbox;
static struct co_msgbuf outbox;
/*
 * Held around fork and clone, and by the manager while it prepares the
 * tracking with the program running: a child forked in between would copy
 * half-made state.  A futex word, not a pthread mutex: the manager is no
 * thread glibc knows.
 */
static int fork_lock_word;
/* a coordinator's start that came before we had registered (its cookie, checked once we have) */
uint64_t co_early_start;

/* ---- messages ---- */

/* Message m (its head; text, and descriptor passfd when >= 0, with it) on socket fd. */
static int send_msg(int fd, struct co_msg m, const char *text, int passfd)
{
	outbox.m = m;
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

int co_send_fd(int fd, unsigned type, int64_t a, int64_t b, const char *text, int passfd)
{
	return send_msg(fd, (struct co_msg){ .type = type, .a = a, .b = b }, text, passfd);
}

/* QUIESCED or ARMED: how long it prepared (a), whether it armed a pre-copy (b), how long it held its threads then (c) */
int co_send_prepared(unsigned type, int64_t prep_ns, int armed, int passfd)
{
	return send_msg(co_agent.sock,
			(struct co_msg){ .type = type, .a = prep_ns, .b = armed, .c = co_agent.prep_hold_ns }, NULL, passfd);
}

int co_send_ab(int fd, unsigned type, int64_t a, int64_t b, const char *text)
{
	return co_send_fd(fd, type, a, b, text, -1);
}

int co_send_msg(int fd, unsigned type, int64_t a, const char *text)
{
	return co_send_ab(fd, type, a, 0, text);
}

/* DONE: bytes written, the parent generation of an incremental image (b), the flock and OFD locks held (c), the POSIX ones (d). */
void co_send_done(uint64_t bytes)
{
	co_stamp("done");
	send_msg(co_agent.sock,
		 (struct co_msg){ .type = CO_M_DONE, .a = (int64_t)bytes, .b = (int64_t)co_agent.incr_parent,
				  .c = co_files_flocks(0), .d = co_files_flocks(1) },
		 co_stamps(), -1);
}

/* For park.c: a message to the coordinator; the next one from it (NULL: the socket failed) */
int co_agent_send(unsigned type, int64_t a, int64_t b)
{
	return co_send_ab(co_agent.sock, type, a, b, 0);
}

const struct co_msgbuf *co_agent_recv(void)
{
	return co_recv_msg(co_agent.sock, 0, 0) ? 0 : &co_inbox;
}

static void close_fd(int fd)
{
	co_close(fd);
}

/* Receive one message; up to nfds attached descriptors go to fds[] (-1 where none), any more are closed. */
int co_recv_msg(int fd, int *fds, int nfds)
{
	char cbuf[CO_FRAME_CBUF];
	struct iovec iov = { &co_inbox, sizeof(co_inbox) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	long r;
	do
		r = co_sys3(SYS_recvmsg, fd, (long)&mh, MSG_CMSG_CLOEXEC);
	while (r == -EINTR);
	if (r < (long)sizeof(co_inbox.m))
		return -1;
	co_inbox.text[co_inbox.m.textlen < sizeof(co_inbox.text) ? co_inbox.m.textlen : sizeof(co_inbox.text) - 1] = 0;
	co_unframe_fds(&mh, fds, nfds, close_fd);
	return 0;
}

/* ---- registration ---- */

/*
 * The manager's descriptors while it prepares (with the program running):
 * /proc/self/task to find the threads, and the tracking's.  In its own
 * table, so they can be made at any moment.
 */
void co_agent_fds_setup(void)
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
int co_dial_out(const char *path)
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
	if (co_recv_msg(fd, &tfd, 1) || co_inbox.m.type != CO_M_WELCOME || tfd < 0)
		goto fail;
	void *tab = (void *)co_mmap(0, sizeof(struct co_table), PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0);
	co_close(tfd);
	if ((long)tab < 0 && (long)tab > -4096)
		goto fail;
	if (co_agent.table)
		co_munmap(co_agent.table, sizeof(struct co_table));
	co_agent.table = tab;
	co_semundo_attach(restored != 0); /* the adjustments it has, into this table's keys */
	co_agent.slot = (int)co_inbox.m.a;
	co_agent.sig = (int)co_inbox.m.b;
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

/* The manager, back from a restart inside co_take_image(): its own table again, registered anew. */
void co_agent_restarted(void)
{
	struct co_resume *rs = &co_agent.resume;
	/* the restorer made us share the program's table: ours again, empty */
	co_sys3(SYS_close_range, 0, ~0U, CLOSE_RANGE_UNSHARE);
	co_agent.sock = -1;
	co_agent.taskfd = -1;
	co_snapshot_forget();
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
	co_dnotify_from_env(); /* and its dnotify watches */
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
	co_manager_forked();
	co_snapshot_forget();
	co_mirror_forget();
	co_early_start = 0;
	co_cpuclock_forked(); /* a new process: its CPU clocks are its own, from 0 */
	co_semundo_forked(); /* undo lists are not inherited by fork */
	co_dnotify_forked(); /* nor dnotify watches (the child's descriptor table is a copy) */
	co_timers_forked(); /* nor timers */
	co_aio_forked();    /* nor aio contexts */
	co_root_forget(); /* a manager that had left its root (root.c) is the parent's */
	co_inotify_forked();
	co_agent.mlockall = 0; /* mm->def_flags: not inherited by fork */
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
