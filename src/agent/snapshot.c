/*
 * snapshot.c - the image of this process, taken by the manager thread
 * with every other thread parked: its own record and context saved, the
 * program's descriptors mirrored into its table (mirror.c), the signals
 * that came late taken again, then either the image written here or a
 * copy-on-write snapshot forked to write it while the program runs on.
 * The snapshot's writer is watched until the coordinator is done with it
 * (co_next_msg).  No allocation: the program's threads are parked,
 * possibly holding libc's locks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "agent.h"
#include "boost.h"
#include "manager.h"
#include "dirty.h"
#include "helper.h"
#include "procfs.h"
#include "sys.h"
#include "util.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif

static int writer_pidfd = -1;	/* the snapshot process writing the image (the manager's descriptor) */
/* the image's files, from DUMP (the manager's descriptors), then the seccomp filters to write (or -1) */
static int img_fd[IMG_FDS] = { -1, -1, -1 };
_Static_assert(CO_STREAMS == 2 && IMG_FDS <= CO_MSG_FDS, "img_fd's initialiser; DUMP carries them all");

/* ---- the program's descriptors, seen from the manager's table (mirror.c) ---- */

/* With every thread of the program parked: the manager's own descriptors out of the way, the program's in. */
static int mirror_program_fds(void)
{
	int *own[8 + IMG_FDS] = { &co_agent.sock, &co_agent.taskfd, &writer_pidfd };
	int nown = 3;
	for (int k = 0; k < IMG_FDS; k++)
		own[nown++] = &img_fd[k];
	nown += co_dirty_fd_refs(own + nown);
	return co_mirror_program_fds(own, nown, co_errbuf, sizeof(co_errbuf));
}

/* The image's files go from the manager's table (a snapshot writer has its own copies). */
void co_image_files_close(void)
{
	for (int k = 0; k < IMG_FDS; k++) {
		if (img_fd[k] >= 0)
			co_close(img_fd[k]);
		img_fd[k] = -1;
	}
}

/* ---- the snapshot ---- */

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
		co_stamps_begin(-1); /* the manager's steps went with SNAPSHOT */
		co_unboost();	     /* not boosted (SCHED_RESET_ON_FORK): nor are its helpers */
		co_stamp("writer");
		co_prctl(PR_SET_NAME, (long)"cohort-dump", 0, 0, 0);
		co_dump_from_snapshot();
		int r = co_dump_write(img_fd, snap.dir, snap.bytes);
		if (r)
			co_send_msg(co_agent.sock, CO_M_FAIL, 0, co_errbuf);
		else
			co_send_done(*snap.bytes);
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
				co_fmt(co_errbuf, sizeof(co_errbuf),
				       "pid %d: its parked threads did not take their signals again",
				       co_agent.pid);
				return -1;
			}
			co_fwait(&co_agent.recollected, got, 10);
		}
		if (co_dump_recollect_timers())
			return -1;
	}
	co_fmt(co_errbuf, sizeof(co_errbuf), "pid %d: signals kept arriving during the checkpoint", co_agent.pid);
	return -1;
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
__attribute__((noinline)) int co_take_image(const char *dir, uint64_t *bytes, int snapshot)
{
	struct co_tslot *me = &co_agent.threads[0];
	co_thread_collect(&me->rec, co_agent.sig);
	/*
	 * After its own attributes are read: a restart gives it those, not the
	 * boost's.  Only without seccomp filters: the coordinator checks the
	 * agent's calls against a program's filters (cli/seccomp.c), all but
	 * this one (scripts/agent-syscalls.sh), which a filter may forbid.
	 */
	if (co_agent.boost && co_prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 0)
		co_boost();
	co_agent.ppid = (int)co_getppid();
	co_agent.pgid = (int)co_sys1(SYS_getpgid, 0);
	co_agent.sid = (int)co_sys1(SYS_getsid, 0);
	/* the written-page set since the last image, and tracking anew from this one */
	co_stamp("threads");
	co_mem_early_begin(co_agent.advice, co_agent.advice_epoch, co_dirty_last()); /* smaps (mem.c) */
	uint64_t base = co_dirty_collect(co_agent.generation);
	co_stamp("collected");
	co_agent.incr_parent = co_agent.want_parent && base == co_agent.want_parent ? base : 0;
	if (mirror_program_fds() || co_dump_begin(co_errbuf, sizeof(co_errbuf))) {
		co_mem_early_end(); /* no reader outlives the pause */
		return IMG_FAILED;
	}
	co_stamp("described");
	if (settle_signals())
		return IMG_FAILED;
	co_stamp("settled");
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
	uint64_t keep[2] = { (uint64_t)&me, (uint64_t)&co_inbox };
	if (snapshot)
		co_dump_fork_begin(); /* the program's MADV_DONTFORK regions go into the snapshot too */
	/*
	 * An incremental image needs only the pages written since its parent:
	 * the long unwritten stretches are left out of the snapshot's fork,
	 * or, written here, passed over (a post-copy stop's aside: its
	 * regions' records are all written behind, behind.c).
	 */
	if (co_agent.incr_parent && (snapshot || !co_agent.behind))
		co_dirty_lean_begin(keep, 2, snapshot);
	co_stamp("lean");
	long child = -1;
	if (snapshot) {
		/* the forking process runs on our stack, below what we use: we wait meanwhile */
		uint64_t below = ((uint64_t)&keep[0] - 16384) & ~63ULL;
		struct clone_args ca;
		co_memset(&ca, 0, sizeof(ca));
		ca.flags = CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_FS;
		ca.stack = (uint64_t)co_mgr_stack;
		ca.stack_size = below - (uint64_t)co_mgr_stack;
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
		co_stamp("forked");
		co_dirty_lean_end(); /* before the program runs (and maybe forks) again */
		co_dump_fork_end();  /* after the lean marks are off: a stretch inside such a region keeps its flag */
		co_stamp("unleaned");
	}
	if (child < 0) {
		int r = co_dump_write(img_fd, dir, bytes);
		co_dirty_lean_end(); /* the stretches noted for an image written here */
		return r ? IMG_FAILED : IMG_WRITTEN;
	}
	writer_pidfd = snap.pidfd;
	return IMG_SNAPSHOT; /* a writer that fails says so itself (FAIL), or its death does */
}

/*
 * Wait for the next message.  While the snapshot writes the image, its
 * end is watched too: one that ends before the coordinator is done with
 * us may have died without a word (after its DONE, the coordinator no
 * longer reads this).
 */
int co_next_msg(int *fds, int nfds)
{
	while (writer_pidfd >= 0) {
		struct { int fd; short ev, rev; } p[2] = { { co_agent.sock, POLLIN, 0 }, { writer_pidfd, POLLIN, 0 } };
		long r = co_sys5(SYS_ppoll, (long)p, 2, 0, 0, 8);
		if (r < 0 && r != -EINTR)
			break;
		if (p[1].rev) {
			co_close(writer_pidfd);
			writer_pidfd = -1;
			co_fmt(co_errbuf, sizeof(co_errbuf),
			       "pid %d: the image writer died before the image was complete",
			       co_agent.pid);
			co_send_msg(co_agent.sock, CO_M_FAIL, 0, co_errbuf);
			continue;
		}
		if (p[0].rev)
			break;
	}
	return co_recv_msg(co_agent.sock, fds, nfds);
}

/* DUMP's descriptors (fds[0..IMG_FDS)) are the image's files: whether one of its streams is missing. */
int co_image_files_take(const int *rfd)
{
	int missing = 0;
	for (int k = 0; k < CO_STREAMS; k++) {
		img_fd[k] = rfd[k];
		missing |= rfd[k] < 0;
	}
	img_fd[CO_STREAMS] = rfd[CO_STREAMS]; /* the seccomp filters: only with some */
	return missing;
}

/* In a new table (a restart, a new manager, a forked child): none of the descriptors above is ours. */
void co_snapshot_forget(void)
{
	writer_pidfd = -1;
	for (int k = 0; k < IMG_FDS; k++)
		img_fd[k] = -1;
}
