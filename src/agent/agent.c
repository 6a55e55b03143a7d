/*
 * agent.c - libcohort.so: registration with the coordinator, the manager
 * thread, and the checkpoint signal that parks every other thread.
 *
 * The manager thread waits on the control socket.  On PREPARE it signals
 * every thread of the process with tgkill; each thread records its kernel
 * state and registers in its handler, then parks on a futex.  On DUMP the
 * manager writes the image; on RELEASE it lets the threads return from the
 * handler.  After a restart the threads come back inside the same handler
 * (the restorer jumps to the context saved there) and the manager comes
 * back inside co_take_image(), re-registers with the new coordinator and
 * waits for the group-wide release.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
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
#include "procfs.h"
#include "sys.h"
#include "util.h"

struct co_agent co_agent = { .sock = -1 };
__thread unsigned co_tls_epoch __attribute__((tls_model("initial-exec")));

static struct co_msgbuf inbox, outbox;
/*
 * The manager opens descriptors (/proc/self/maps, pagemap) while the
 * program runs only under this lock, which fork and clone take too: a
 * child forked in between would inherit them.
 */
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static char errbuf[1024];

#define QUIESCE_TIMEOUT_MS 10000

/* ---- futex helpers (async-signal-safe) ---- */

static void fwait(int *word, int val, long ms)
{
	struct co_timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	co_futex(word, FUTEX_WAIT_PRIVATE, val, ms >= 0 ? &ts : 0);
}

static void fwake(int *word)
{
	co_futex(word, FUTEX_WAKE_PRIVATE, 0x7fffffff, 0);
}

/* ---- messages ---- */

static int send_ab(int fd, unsigned type, int64_t a, int64_t b, const char *text)
{
	outbox.m = (struct co_msg){ .type = type, .a = a, .b = b };
	size_t n = text ? co_strlcpy(outbox.text, text, sizeof(outbox.text)) : 0;
	outbox.m.textlen = (uint32_t)n;
	long r;
	do
		r = co_sys6(SYS_sendto, fd, (long)&outbox, sizeof(outbox.m) + n, MSG_NOSIGNAL, 0, 0);
	while (r == -EINTR);
	return r < 0 ? (int)r : 0;
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

static int recv_msg(int fd, int *tablefd);
const struct co_msgbuf *co_agent_recv(void)
{
	return recv_msg(co_agent.sock, 0) ? 0 : &inbox;
}

/* Receive one message; *tablefd gets an attached descriptor if any. */
static int recv_msg(int fd, int *tablefd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
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
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS) {
		int got;
		memcpy(&got, CMSG_DATA(c), sizeof(int));
		if (tablefd)
			*tablefd = got;
		else
			co_close(got);
	}
	return 0;
}

/* ---- the checkpoint signal ---- */

static struct co_tslot *find_slot(int tid)
{
	for (int i = 0; i < co_agent.nthreads; i++)
		if (co_agent.threads[i].tid == tid)
			return &co_agent.threads[i];
	return 0;
}

/*
 * The checkpoint signal carries this value (SI_QUEUE, our pid): a signal
 * of the same number the program sends itself (sigqueue, tgkill, kill)
 * goes to the program's own action instead.
 */
#define CO_SIG_COOKIE ((void *)0x636f686f72742121ULL)

static int is_checkpoint(const siginfo_t *si)
{
	return si->si_code == SI_QUEUE && si->si_pid == co_agent.pid && si->si_value.sival_ptr == CO_SIG_COOKIE;
}

static long send_checkpoint_signal(int tid)
{
	siginfo_t si;
	co_memset(&si, 0, sizeof(si));
	si.si_signo = co_agent.sig;
	si.si_code = SI_QUEUE;
	si.si_pid = co_agent.pid;
	si.si_uid = (uid_t)co_sys0(SYS_getuid);
	si.si_value.sival_ptr = CO_SIG_COOKIE;
	return co_sys4(SYS_rt_tgsigqueueinfo, co_agent.pid, tid, co_agent.sig, (long)&si);
}

static void checkpoint_handler(int sig, siginfo_t *si, void *uc)
{
	if (!is_checkpoint(si)) {
		/* the program's own signal of this number */
		co_wrap_forward(sig, si, uc);
		return;
	}
	int saved_errno = errno;
	/* only the manager of this very process may park us; one left from an earlier checkpoint is dropped */
	struct co_tslot *t = find_slot((int)co_gettid());
	if (!t || t->state != CO_TS_SIGNALLED)
		goto out;
	/* the coordinator unblocked our signal for us (ptrace) before we got here: our mask goes back */
	uint64_t pt_orig = t->pt_orig, pt_set = t->pt_set;
	co_thread_collect(&t->rec, co_agent.sig);
	if (co_ctx_save(&t->rec.ctx) == 0) {
		__atomic_store_n(&t->state, CO_TS_PARKED, __ATOMIC_RELEASE);
		__atomic_add_fetch(&co_agent.parked, 1, __ATOMIC_ACQ_REL);
		fwake(&co_agent.parked);
	} else {
		/* A new process: the restorer jumped here.  Tell the manager we left the restorer. */
		__atomic_add_fetch(&co_agent.arrived, 1, __ATOMIC_ACQ_REL);
		fwake(&co_agent.arrived);
	}
	for (;;) {
		int r = __atomic_load_n(&co_agent.release, __ATOMIC_ACQUIRE);
		if (r != co_agent.hold)
			break;
		fwait(&co_agent.release, r, -1);
	}
	co_tls_epoch++;
	if (pt_set) {
		/* the kernel keeps the first 64 bits of the mask in uc_sigmask: rt_sigreturn sets them */
		ucontext_t *u = uc;
		uint64_t at;
		co_memcpy(&at, &u->uc_sigmask, sizeof(at));
		if (at == pt_set)
			co_memcpy(&u->uc_sigmask, &pt_orig, sizeof(pt_orig));
	}
out:
	errno = saved_errno;
}

/*
 * SA_ONSTACK: on a thread with an alternate signal stack the handler runs
 * there.  The Go runtime requires it of every handler (a goroutine's stack
 * has no room for a signal frame: a handler that ran there overwrote its
 * neighbours, and Go crashed after a checkpoint).
 */
static struct co_ksigaction our_action(void)
{
	struct co_ksigaction ka = { 0 };
	ka.handler = (void *)checkpoint_handler;
	/* SA_RESTART: syscalls that can restart do so; the rest are handled in wrap.c */
	ka.flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK | 0x04000000 /* SA_RESTORER */;
	extern void co_sigreturn(void);
	ka.restorer = (void *)co_sigreturn;
	ka.mask = ~0ULL; /* nothing of the program runs while a thread is parked */
	return ka;
}

static void install_handler(void)
{
	struct co_ksigaction ka = our_action();
	co_sigaction(co_agent.sig, &ka, 0);
}

/*
 * A runtime may take our signal with a raw rt_sigaction, past the
 * sigaction() wrapper (Go does so for every signal when it runs without
 * libc's sigaction).  Put ours back, in one swap, and keep what it set as
 * the program's action: sigaction() reports it, and our handler passes it
 * the program's own signals of this number.  An action set through the
 * wrapper never reaches the kernel, so nothing changes for it.
 */
void co_sig_reclaim(void)
{
	if (!co_agent.active || co_agent.sig <= 0)
		return;
	struct co_ksigaction ka = our_action(), old;
	if (co_sigaction(co_agent.sig, &ka, &old) == 0 && old.handler != (void *)checkpoint_handler)
		co_wrap_adopt(&old);
}

/* ---- quiescing ---- */

/* Signal every thread not yet known; returns how many were added, or -1. */
static int signal_new_threads(void)
{
	/* the program runs while we list: no new descriptor (see co_dirty_setup) */
	int fd = co_agent.taskfd;
	if (fd < 0 || co_lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	char buf[4096];
	int added = 0;
	for (;;) {
		long n = co_getdents(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *d =
				(void *)(buf + off);
			off += d->reclen;
			if (d->name[0] < '0' || d->name[0] > '9')
				continue;
			int tid = (int)co_strtoul(d->name, 0, 10);
			if (tid == co_agent.manager_tid || find_slot(tid))
				continue;
			if (co_agent.nthreads >= CO_MAX_THREADS)
				return -2;
			struct co_tslot *t = &co_agent.threads[co_agent.nthreads];
			co_memset(t, 0, sizeof(*t));
			t->tid = tid;
			t->rec.tid = tid;
			t->state = CO_TS_SIGNALLED;
			t->trace_at_ms = co_park_first_ms(tid);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			co_agent.nthreads++;
			if (send_checkpoint_signal(tid) < 0)
				t->state = CO_TS_GONE;
			added++;
		}
	}
	return added;
}

static void release_threads(void)
{
	__atomic_add_fetch(&co_agent.release, 1, __ATOMIC_ACQ_REL);
	fwake(&co_agent.release);
	/* wait until every parked thread has left our table's memory alone */
	co_agent.nthreads = 0;
}

static void set_state(unsigned s)
{
	if (co_agent.table && co_agent.slot >= 0)
		__atomic_store_n(&co_agent.table->p[co_agent.slot].state, s, __ATOMIC_RELEASE);
}

/*
 * Park every other thread.  Threads may be created while we look (a parked
 * thread cannot create more), so list /proc/self/task again until no new
 * one shows up.  A thread that cannot take the signal in time fails the
 * checkpoint, and the ones already parked go on.
 */
static int quiesce(void)
{
	co_agent.nthreads = 0;
	co_agent.parked = 0;
	co_agent.arrived = 0;
	co_agent.hold = __atomic_load_n(&co_agent.release, __ATOMIC_ACQUIRE);
	/* the manager's own slot comes first */
	struct co_tslot *m = &co_agent.threads[0];
	co_memset(m, 0, sizeof(*m));
	m->tid = m->rec.tid = co_agent.manager_tid;
	m->rec.flags = CO_T_MANAGER;
	m->state = CO_TS_PARKED;
	co_agent.nthreads = 1;
	set_state(CO_P_QUIESCING);
	co_sig_reclaim();
	co_park_begin();

	struct co_timespec t0, now;
	co_clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int added = signal_new_threads();
		if (added < 0) {
			co_fmt(errbuf, sizeof(errbuf), "pid %d: %s", co_agent.pid,
			       added == -2 ? "too many threads" : "cannot list /proc/self/task");
			return -1;
		}
		for (;;) {
			int parked = __atomic_load_n(&co_agent.parked, __ATOMIC_ACQUIRE);
			int waiting = 0;
			long asked = 0; /* the waiting one's: -1 unblocked by the coordinator, > CO_TRACE_AFTER_MS not blocked */
			for (int i = 1; i < co_agent.nthreads; i++) {
				struct co_tslot *t = &co_agent.threads[i];
				if (__atomic_load_n(&t->state, __ATOMIC_ACQUIRE) != CO_TS_SIGNALLED)
					continue;
				if (co_tgkill(co_agent.pid, t->tid, 0) == -ESRCH) {
					__atomic_store_n(&t->state, CO_TS_GONE, __ATOMIC_RELEASE);
				} else {
					waiting = t->tid;
					asked = t->trace_at_ms;
				}
			}
			if (!waiting)
				break;
			co_clock_gettime(CLOCK_MONOTONIC, &now);
			long ms = (now.sec - t0.sec) * 1000 + (now.nsec - t0.nsec) / 1000000;
			if (co_park_stuck(ms, &t0, QUIESCE_TIMEOUT_MS, errbuf, sizeof(errbuf)))
				return -1;
			if (ms > QUIESCE_TIMEOUT_MS) {
				if (asked < 0)
					co_fmt(errbuf, sizeof(errbuf),
					       "pid %d: thread %d did not stop within %d s, although the checkpoint signal %d "
					       "was unblocked for it (did the program take it with a sigwait?)",
					       co_agent.pid, waiting, QUIESCE_TIMEOUT_MS / 1000, co_agent.sig);
				else if (asked > CO_TRACE_AFTER_MS)
					co_fmt(errbuf, sizeof(errbuf),
					       "pid %d: thread %d did not stop within %d s: it does not block the checkpoint "
					       "signal %d but has not taken it (an uninterruptible wait, or a raw sigwait on it?)",
					       co_agent.pid, waiting, QUIESCE_TIMEOUT_MS / 1000, co_agent.sig);
				else
					co_fmt(errbuf, sizeof(errbuf),
					       "pid %d: thread %d did not stop within %d s (checkpoint signal %d blocked?)",
					       co_agent.pid, waiting, QUIESCE_TIMEOUT_MS / 1000, co_agent.sig);
				return -1;
			}
			fwait(&co_agent.parked, parked, 1);
		}
		if (added == 0)
			break;
	}
	co_park_end();
	/* drop threads that exited before parking */
	int j = 0;
	for (int i = 0; i < co_agent.nthreads; i++)
		if (co_agent.threads[i].state != CO_TS_GONE)
			co_agent.threads[j++] = co_agent.threads[i];
	co_agent.nthreads = j;
	for (int i = 0; i < j; i++)
		if (co_agent.threads[i].tid == co_agent.pid)
			co_agent.threads[i].rec.flags |= CO_T_LEADER;
	set_state(CO_P_PARKED);
	return 0;
}

/* ---- registration ---- */

/*
 * The descriptors the manager uses while the program runs, made where no
 * thread of the program can run (constructor, forked child, restart), at
 * high numbers: one made while the program runs could take, for a moment,
 * a number the program has just closed and is about to dup2 onto.
 */
static void agent_fds_setup(void)
{
	if (co_agent.taskfd < 0)
		co_agent.taskfd = co_fd_high((int)co_open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0));
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

/* Connect and register; restored != 0 for a process coming back from an image. */
static int register_with(const char *path, uint64_t restored)
{
	int fd = (int)co_sys3(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	co_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	if (co_sys3(SYS_connect, fd, (long)&sa, sizeof(sa)) < 0) {
		co_close(fd);
		return -1;
	}
	fd = co_fd_high(fd);
	char exe[CO_PATH];
	long n = co_readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	int64_t ppid = co_getppid(), rest = (int64_t)restored;
	outbox.m = (struct co_msg){ .type = CO_M_REGISTER, .a = co_agent.pid, .b = ppid, .c = rest, .d = fd };
	size_t tl = co_strlcpy(outbox.text, exe, sizeof(outbox.text));
	outbox.m.textlen = (uint32_t)tl;
	if (co_sys6(SYS_sendto, fd, (long)&outbox, sizeof(outbox.m) + tl, MSG_NOSIGNAL, 0, 0) < 0)
		goto fail;
	int tfd = -1;
	if (recv_msg(fd, &tfd) || inbox.m.type != CO_M_WELCOME || tfd < 0)
		goto fail;
	void *tab = (void *)co_mmap(0, sizeof(struct co_table), PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0);
	co_close(tfd);
	if ((long)tab < 0 && (long)tab > -4096)
		goto fail;
	if (co_agent.table)
		co_munmap(co_agent.table, sizeof(struct co_table));
	co_agent.table = tab;
	co_agent.slot = (int)inbox.m.a;
	co_agent.sig = (int)inbox.m.b;
	co_agent.sock = fd;
	co_strlcpy(co_agent.sock_path, path, sizeof(co_agent.sock_path));
	return 0;
fail:
	co_close(fd);
	return -1;
}

/* ---- the manager thread ---- */

/* In the snapshot child: the parent may let the program go on. */
static void snapshot_ready(void)
{
	char c = 1;
	co_write(co_agent.ready_pipe, &c, 1);
	co_close(co_agent.ready_pipe);
	co_agent.ready_pipe = -1;
}

enum { IMG_WRITTEN = 0, IMG_RESTARTED = 1, IMG_SNAPSHOT = 2, IMG_FAILED = -1, IMG_REPORTED = -2 };

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
static __attribute__((noinline)) int take_image(const char *dir, uint64_t *bytes, int snapshot)
{
	struct co_tslot *me = &co_agent.threads[0];
	co_thread_collect(&me->rec, co_agent.sig);
	co_agent.ppid = (int)co_getppid();
	co_agent.pgid = (int)co_sys1(SYS_getpgid, 0);
	co_agent.sid = (int)co_sys1(SYS_getsid, 0);
	co_agent.nshared_pending = co_signals_collect(co_agent.shared_pending, 2 * CO_MAX_PENDING, co_agent.sig, 0);
	/* the written-page set since the last image, and tracking anew from this one */
	uint64_t base = co_dirty_collect(co_agent.generation);
	co_agent.incr_parent = co_agent.want_parent && base == co_agent.want_parent ? base : 0;
	if (co_dump_begin(errbuf, sizeof(errbuf)))
		return IMG_FAILED;
	/*
	 * Everything the image needs of the running process was read above
	 * (descriptors and their offsets, the memory map, the threads), and
	 * the snapshot holds the rest: the program may go on as soon as the
	 * fork returns.  Only the content of a deleted file is read by the
	 * writer from the file the program still holds: then we wait for it.
	 */
	int wait_writer = co_dump_needs_pause();
	int pp[2] = { -1, -1 };
	if (wait_writer)
		co_sys2(SYS_pipe2, (long)pp, O_CLOEXEC);
	co_agent.ready_pipe = pp[1];
	if (co_ctx_save(&me->rec.ctx))
		return IMG_RESTARTED;
	snapshot = snapshot && (!wait_writer || pp[0] >= 0);
	/*
	 * The stack the child runs on, and the agent's own zero-initialised
	 * statics (one anonymous .bss region; co_agent itself is in .data).
	 */
	uint64_t keep[2] = { (uint64_t)&me, (uint64_t)&inbox };
	if (snapshot)
		co_dump_fork_begin(); /* the program's MADV_DONTFORK regions go into the snapshot too */
	if (snapshot && co_agent.incr_parent)
		co_dirty_lean_begin(keep, 2);
	long child = snapshot ? co_sys5(SYS_clone, 0 /* no exit signal */, 0, 0, 0, 0) : -1;
	if (child == 0) {
		co_prctl(PR_SET_NAME, (long)"cohort-dump", 0, 0, 0);
		if (pp[0] >= 0)
			co_close(pp[0]);
		int r = co_dump_write(dir, bytes, wait_writer ? snapshot_ready : 0);
		if (r)
			send_msg(co_agent.sock, CO_M_FAIL, 0, errbuf);
		else
			send_done(*bytes);
		if (co_agent.ready_pipe >= 0) {
			char c = 2; /* failed before the snapshot was complete: already reported */
			co_write(co_agent.ready_pipe, &c, 1);
		}
		co_exit_group(r ? 1 : 0);
	}
	co_dirty_lean_end(); /* before the program runs (and maybe forks) again */
	if (snapshot)
		co_dump_fork_end(); /* after the lean marks are off: a stretch inside such a region keeps its flag */
	if (pp[1] >= 0)
		co_close(pp[1]);
	co_agent.ready_pipe = -1;
	if (child < 0) {
		if (pp[0] >= 0)
			co_close(pp[0]);
		return co_dump_write(dir, bytes, 0) ? IMG_FAILED : IMG_WRITTEN;
	}
	co_agent.dump_child = (int)child;
	if (!wait_writer)
		return IMG_SNAPSHOT; /* a writer that fails says so itself (FAIL), or its death does */
	char c = 0;
	while (co_read(pp[0], &c, 1) == -EINTR)
		;
	co_close(pp[0]);
	if (c == 1)
		return IMG_SNAPSHOT;
	if (c == 2)
		return IMG_REPORTED;
	co_fmt(errbuf, sizeof(errbuf), "pid %d: the image writer died before the snapshot was complete", co_agent.pid);
	return IMG_FAILED;
}

/*
 * Reap the snapshot child (wait: block until it ends) and report it if it
 * died without a word.  Returns 1 once it is gone.  It is watched by pid,
 * not through a pidfd: a descriptor the manager opens or closes while the
 * program forks could be copied into the program's child.
 */
static int reap_dump_child(int wait)
{
	/* siginfo_t of SIGCHLD on x86-64: the union after si_code is 8-byte aligned */
	struct { int32_t signo, err, code, pad, pid, uid, status; char rest[100]; } si;
	co_memset(&si, 0, sizeof(si));
	long r = co_sys5(SYS_waitid, P_PID, co_agent.dump_child, (long)&si,
			 WEXITED | __WALL | (wait ? 0 : WNOHANG), 0);
	if (r == 0 && si.pid == 0)
		return 0; /* still writing */
	co_agent.dump_child = 0;
	if (r == 0 && (si.code == CLD_KILLED || si.code == CLD_DUMPED)) {
		co_fmt(errbuf, sizeof(errbuf), "pid %d: the image writer died (signal %d)", co_agent.pid, si.status);
		send_msg(co_agent.sock, CO_M_FAIL, 0, errbuf);
	}
	return 1;
}

/* Wait for the next message, looking in on the snapshot child while it writes. */
static int next_msg(void)
{
	while (co_agent.dump_child > 0) {
		struct { int fd; short ev, rev; } p = { co_agent.sock, POLLIN, 0 };
		struct co_timespec ts = { 0, 20 * 1000000 };
		long r = co_sys5(SYS_ppoll, (long)&p, 1, (long)&ts, 0, 8);
		if (r < 0 && r != -EINTR)
			break;
		if (reap_dump_child(0))
			continue;
		if (p.rev)
			break;
	}
	return recv_msg(co_agent.sock, 0);
}

static void after_restart(void)
{
	struct co_resume *rs = &co_agent.resume;
	co_agent.sock = -1;
	co_agent.taskfd = -1; /* kept out of the image */
	co_agent.dump_child = 0; /* that snapshot child belonged to the old process */
	co_dirty_forget(0); /* neither its descriptor nor its record came back */
	co_agent.table = 0; /* the old mapping was not part of the image */
	co_agent.slot = -1;
	co_agent.generation = rs->generation;
	/* every other thread must have left the restorer before its area goes */
	for (;;) {
		int a = __atomic_load_n(&co_agent.arrived, __ATOMIC_ACQUIRE);
		if (a >= co_agent.nthreads - 1)
			break;
		fwait(&co_agent.arrived, a, 100);
	}
	if (rs->zone)
		co_munmap((void *)rs->zone, rs->zone_len);
	/*
	 * Tracking starts at the next checkpoint, which is therefore full for
	 * this process: pages written on the way back (the threads' handler
	 * frames, the agent's own state) no longer match the image.
	 */
	agent_fds_setup(); /* the program's threads are still held */
	if (register_with(rs->sock, rs->generation ? rs->generation : 1)) {
		/* no coordinator: run on without checkpoints */
		co_agent.active = 0;
		release_threads();
		return;
	}
	set_state(CO_P_RESTORING);
}

/* Park the program's threads and say so (prep_ns: how long it ran while we prepared). */
static void park(int64_t prep_ns)
{
	if (quiesce()) {
		send_msg(co_agent.sock, CO_M_FAIL, 0, errbuf);
		release_threads();
		set_state(CO_P_RUNNING);
		return;
	}
	send_msg(co_agent.sock, CO_M_QUIESCED, prep_ns, 0);
}

static void *manager_main(void *arg)
{
	(void)arg;
	co_agent.manager_tid = (int)co_gettid();
	prctl(PR_SET_NAME, "cohort-agent");
	for (;;) {
		if (co_agent.sock < 0 || next_msg()) {
			/* coordinator gone: never leave threads parked */
			if (co_agent.nthreads)
				release_threads();
			co_agent.active = 0;
			return 0;
		}
		switch (inbox.m.type) {
		case CO_M_PREPARE: {
			co_agent.generation = (uint64_t)inbox.m.a;
			co_agent.want_parent = (uint64_t)inbox.m.b;
			/* the last snapshot child said DONE and is on its way out: reap it, it is no part of ours */
			if (co_agent.dump_child > 0)
				reap_dump_child(1);
			int precopy = (inbox.m.flags & CO_PREP_PRECOPY) != 0, armed = 0;
			struct co_timespec t0, t1;
			co_clock_gettime(CLOCK_MONOTONIC, &t0);
			co_agent_fork_lock();
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
				/* parked on QUIESCE, once the coordinator has read what it can */
				co_agent.await_quiesce = 1;
				send_ab(co_agent.sock, CO_M_ARMED, prep_ns, armed, 0);
				break;
			}
			/* the program ran during the preparation: not part of its pause */
			park(prep_ns);
			break;
		}
		case CO_M_QUIESCE:
			if (!co_agent.await_quiesce)
				break; /* parked already: born during the checkpoint, it had PREPARE alone */
			co_agent.await_quiesce = 0;
			if (inbox.m.flags & CO_PREP_PRECOPY_FAILED)
				co_agent.want_parent = 0; /* the coordinator could not read it: a whole image */
			park(0);
			break;
		case CO_M_DUMP: {
			static char dir[CO_PATH];
			co_strlcpy(dir, inbox.text, sizeof(dir));
			uint64_t bytes = 0;
			set_state(CO_P_DUMPING);
			int r = take_image(dir, &bytes, !(inbox.m.flags & CO_CKPT_STOP));
			if (r == IMG_RESTARTED) {
				after_restart();
				break;
			}
			if (r == IMG_FAILED)
				send_msg(co_agent.sock, CO_M_FAIL, 0, errbuf);
			if (r == IMG_SNAPSHOT || r == IMG_WRITTEN)
				send_msg(co_agent.sock, CO_M_SNAPSHOT, 0, 0);
			if (r == IMG_WRITTEN)
				send_done(bytes);
			set_state(CO_P_DUMPED);
			break;
		}
		case CO_M_RELEASE:
			co_agent.await_quiesce = 0;
			if (co_agent.table && co_agent.slot >= 0) {
				struct co_pentry *e = &co_agent.table->p[co_agent.slot];
				e->generation = (uint64_t)inbox.m.a;
				e->nthreads = co_agent.nthreads ? (uint32_t)co_agent.nthreads : e->nthreads;
			}
			release_threads();
			set_state(CO_P_RUNNING);
			break;
		default:
			break;
		}
	}
}

static void start_manager(void)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t th;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	if (pthread_create(&th, &at, manager_main, 0) == 0)
		co_agent.active = 1;
	pthread_attr_destroy(&at);
	pthread_sigmask(SIG_SETMASK, &old, 0);
}

static void agent_setup(void)
{
	const char *path = getenv("COHORT_SOCK");
	if (!path || !*path)
		return;
	co_agent.pid = (int)co_getpid();
	co_agent.slot = -1;
	co_agent.sock = -1;
	co_agent.ready_pipe = -1;
	co_agent.taskfd = -1;
	int r = register_with(path, 0);
	if (r == 0) {
		agent_fds_setup();
		install_handler();
	}
	/*
	 * An exec'ing member blocked the checkpoint signal (wrap.c); one that
	 * arrived during the exec is still pending and is now taken, and
	 * ignored, by the handler.  Without a coordinator it is simply let go.
	 */
	const char *g = getenv("COHORT_SIG");
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
	if (r == 0)
		start_manager();
}

/* A forked child starts without a manager and with its parent's socket. */
void co_agent_forked(void)
{
	pthread_mutex_init(&fork_lock, 0); /* taken by the thread that forked, in the parent */
	if (!co_agent.active)
		return;
	if (co_agent.sock >= 0)
		co_close(co_agent.sock);
	if (co_agent.table)
		co_munmap(co_agent.table, sizeof(struct co_table));
	co_agent.table = 0;
	co_agent.sock = -1;
	co_agent.active = 0;
	co_agent.nthreads = 0;
	co_agent.dump_child = 0;
	co_agent.await_quiesce = 0;
	/* the parent's tracking does not carry over to a forked child, nor its /proc descriptors */
	co_dirty_forget(1);
	if (co_agent.taskfd >= 0)
		co_close(co_agent.taskfd);
	co_agent.taskfd = -1;
	co_agent.pid = (int)co_getpid();
	if (register_with(co_agent.sock_path, 0) == 0) {
		agent_fds_setup();
		start_manager();
	}
}

void co_agent_fork_lock(void)
{
	pthread_mutex_lock(&fork_lock);
}

void co_agent_fork_unlock(void)
{
	pthread_mutex_unlock(&fork_lock);
}

__attribute__((constructor(101))) static void agent_init(void)
{
	co_wrap_init();
	agent_setup();
	pthread_atfork(co_agent_fork_lock, co_agent_fork_unlock, co_agent_forked);
}
