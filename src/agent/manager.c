/*
 * manager.c - the manager thread of a checkpoint, and its start from the
 * checkpoint signal's handler (co_start_manager).
 *
 * The manager exists only during a checkpoint: a raw clone on a stack of
 * its own, no TLS of its own, every signal blocked, which first gives
 * itself a descriptor table of its own (close_range CLOSE_RANGE_UNSHARE):
 * nothing it opens or closes is ever seen in, or taken from, the
 * program's table.  It connects (ATTACH) and on PREPARE parks every other
 * thread (co_quiesce).  On DUMP it takes the image (snapshot.c); on
 * RELEASE it lets the threads go, closes everything it had and exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>

#include "agent.h"
#include "boost.h"
#include "manager.h"
#include "res.h"
#include "dirty.h"
#include "helper.h"
#include "procfs.h"
#include "sys.h"
#include "util.h"

/* what the manager has to say when a step fails (FAIL's text) */
char co_errbuf[1024];

/*
 * The manager thread exists only during a checkpoint.  mgr_state says
 * whether one runs (BUSY) and whether another checkpoint signal came
 * meanwhile (PENDING: it runs another session before it goes).  mgr_tid
 * is its tid while it exists; the kernel clears it when it is gone
 * (CLONE_CHILD_CLEARTID), and only then is its stack free for the next.
 */
enum { MGR_IDLE = 0, MGR_BUSY, MGR_PENDING };
static int mgr_state, mgr_tid;
char co_mgr_stack[CO_MGR_STACK] __attribute__((aligned(64)));
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE 2
#endif

/* ---- timed steps (COHORT_TRACE at the coordinator) ---- */

static struct {
	int on;
	size_t len;
	char text[CO_MSG_TEXT];
} stamps;

void co_stamps_begin(int on)
{
	stamps.on = on < 0 ? stamps.on : on; /* -1: as it was (a snapshot's writer, after the fork) */
	stamps.len = 0;
	stamps.text[0] = 0;
}

void co_stamp(const char *step)
{
	struct co_timespec ts;
	if (!stamps.on || stamps.len + 64 > sizeof(stamps.text))
		return;
	co_clock_gettime(CLOCK_REALTIME, &ts);
	stamps.len += co_fmt(stamps.text + stamps.len, sizeof(stamps.text) - stamps.len, "%s%s=%llu",
			     stamps.len ? " " : "", step,
			     (unsigned long long)(ts.sec * 1000000000LL + ts.nsec));
}

const char *co_stamps(void)
{
	if (!stamps.on || !stamps.len)
		return 0;
	stamps.len = 0; /* the text stays until the next stamp */
	return stamps.text;
}

/* ---- the manager thread ---- */

/* Park the program's threads and say so (prep_ns: how long it ran while we prepared). */
static void park(int64_t prep_ns)
{
	if (co_quiesce(co_errbuf, sizeof(co_errbuf))) {
		co_send_msg(co_agent.sock, CO_M_FAIL, 0, co_errbuf);
		co_release_threads();
		co_set_state(CO_P_RUNNING);
		return;
	}
	co_inotify_publish();
	co_send_prepared(CO_M_QUIESCED, prep_ns, 0, co_dirty_uffd());
}

/* PREPARE or QUIESCE said our root is not the group's (chroot): leave it first, or say why not (FAIL). */
static int leave_root(unsigned flags)
{
	int e = flags & CO_PREP_ROOT ? co_root_leave() : 0;
	if (e) {
		co_fmt(co_errbuf, sizeof(co_errbuf), "pid %d: cannot leave its root directory (chroot) for the group's "
		       "(errno %d)", co_agent.pid, -e);
		co_send_msg(co_agent.sock, CO_M_FAIL, 0, co_errbuf);
	}
	return e;
}

/* The program's root for its image, when not the group's (root.c): 0, or -1 with co_errbuf. */
static int note_root(void)
{
	int e = co_root_note(co_agent.root, sizeof(co_agent.root));
	if (e)
		return co_err(co_errbuf, sizeof(co_errbuf),
			      "pid %d: cannot read its root and working directories (chroot) "
			      "from the group's root (errno %d)", co_agent.pid, -e);
	if (co_endswith(co_agent.root, " (deleted)"))
		return co_err(co_errbuf, sizeof(co_errbuf),
			      "pid %d: its root directory %s was removed after its chroot, "
			      "which cohort cannot restore", co_agent.pid, co_agent.root);
	return 0;
}

/*
 * A migration's hold: the process's POSIX locks let go (take 0) or taken
 * back (1) by one of its parked threads (quiesce.c), which share the
 * program's descriptor table; we have our own, and a lock set from it
 * would be ours.  0, or -errno (job_err says what).
 */
static int posix_locks_job(int take)
{
	int parked = 0;
	for (int i = 0; i < co_agent.nthreads; i++)
		parked |= __atomic_load_n(&co_agent.threads[i].state, __ATOMIC_ACQUIRE) == CO_TS_PARKED;
	if (!parked) {
		co_fmt(co_agent.job_err, sizeof(co_agent.job_err), "pid %d: no parked thread to set its POSIX locks",
		       co_agent.pid);
		return -ESRCH;
	}
	co_agent.job_arg = take;
	int jq = __atomic_add_fetch(&co_agent.job, 1, __ATOMIC_ACQ_REL);
	co_fwake(&co_agent.release);
	for (int waited = 0, got; (got = __atomic_load_n(&co_agent.job_done, __ATOMIC_ACQUIRE)) != jq; waited++) {
		if (waited == 100) {
			co_fmt(co_agent.job_err, sizeof(co_agent.job_err), "pid %d: its parked threads did not set its "
			       "POSIX locks", co_agent.pid);
			return -ETIMEDOUT;
		}
		co_fwait(&co_agent.job_done, got, 10);
	}
	return co_agent.job_result;
}

/* One checkpoint, from ATTACH until RELEASE or the coordinator hangs up. */
static void session(void)
{
	co_agent.sock = co_dial_out(co_agent.sock_path);
	if (co_agent.sock < 0 || co_send_ab(co_agent.sock, CO_M_ATTACH, co_agent.pid, 0, 0))
		return;
	for (;;) {
		int rfd[CO_MSG_FDS] = { -1, -1, -1, -1 };
		_Static_assert(CO_MSG_FDS == 4, "rfd's initialiser");
		int r = co_next_msg(rfd, CO_MSG_FDS); /* and the snapshot's writer, while one writes */
		int tfd = rfd[0];
		/* what a message carries is for its own case below; anything else goes */
		for (int k = co_inbox.m.type == CO_M_DUMP ? IMG_FDS : 1; k < CO_MSG_FDS; k++)
			if (rfd[k] >= 0)
				co_close(rfd[k]);
		unsigned type = co_inbox.m.type;
		if (type != CO_M_PREPARE && type != CO_M_QUIESCE && type != CO_M_DUMP && tfd >= 0) {
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
		switch (co_inbox.m.type) {
		case CO_M_PREPARE: {
			co_agent.await_quiesce = 0; /* one left by a checkpoint that failed during its pre-copy */
			co_agent.prep_hold_ns = 0;
			co_agent.generation = (uint64_t)co_inbox.m.a;
			co_agent.want_parent = (uint64_t)co_inbox.m.b;
			if (tfd >= 0)
				co_dirty_adopt_uffd(tfd); /* the tracking of the last checkpoint, kept by the coordinator */
			if (leave_root(co_inbox.m.flags))
				break;
			int precopy = (co_inbox.m.flags & CO_PREP_PRECOPY) != 0, armed = 0;
			struct co_timespec t0, t1;
			co_clock_gettime(CLOCK_MONOTONIC, &t0);
			co_agent_fork_lock();
			co_agent_fds_setup();
			/* an image that would be full: its memory is read ahead, while the program runs */
			int arm = precopy && !co_dirty_based_on(co_agent.want_parent);
			co_dirty_prepare(arm);
			if (arm && co_dirty_precopy_arm(CO_PRECOPY_ID(co_agent.generation)) == 0) {
				co_agent.want_parent = CO_PRECOPY_ID(co_agent.generation);
				armed = 1;
				if (co_inbox.m.flags & CO_PREP_TEST_HELD_GAP)
					co_dirty_test_held_gap();
			}
			co_agent_fork_unlock();
			/* the regions' madvise flags too, for the pause not to walk smaps (mem.c) */
			if (armed)
				co_mem_flags_ahead(co_agent.advice, __atomic_load_n(&co_agent.advice_epoch, __ATOMIC_SEQ_CST),
						   CO_PRECOPY_ID(co_agent.generation));
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
				co_send_prepared(CO_M_ARMED, prep_ns, armed, co_dirty_uffd());
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
			if (leave_root(co_inbox.m.flags))
				break;
			co_agent_fds_setup();
			if (co_inbox.m.flags & CO_PREP_PRECOPY_FAILED)
				co_agent.want_parent = 0; /* the coordinator could not read it: a whole image */
			park(0);
			break;
		case CO_M_DUMP: {
			static char dir[CO_PATH];
			const char *d = co_dump_shared(co_inbox.text);
			co_strlcpy(dir, d ? d : "", sizeof(dir));
			uint64_t bytes = 0;
			co_set_state(CO_P_DUMPING);
			co_stamps_begin((co_inbox.m.flags & CO_CKPT_TRACE) != 0);
			co_stamp("dump");
			/* the image's files, made by the coordinator: a process may not create files in its directory */
			int missing = co_image_files_take(rfd);
			int r = IMG_FAILED;
			if (missing || !d)
				co_fmt(co_errbuf, sizeof(co_errbuf), "pid %d: the coordinator sent DUMP without %s",
				       co_agent.pid, missing ? "the image's files" : "its list of shared files");
			else if (note_root() == 0) {
				co_inotify_take(); /* the inotify events the coordinator left to us: in the image */
				co_agent.behind = (co_inbox.m.flags & CO_CKPT_BEHIND) != 0;
				co_agent.cowmap_all = (co_inbox.m.flags & CO_CKPT_COWMAP_ALL) != 0;
				co_agent.boost = (co_inbox.m.flags & CO_CKPT_BOOST) != 0;
				r = co_take_image(dir, &bytes, !(co_inbox.m.flags & CO_CKPT_STOP));
			}
			if (r == IMG_RESTARTED) {
				co_unboost(); /* restored as it was before the boost; its mark in memory goes */
				co_agent_restarted();
				break;
			}
			co_image_files_close(); /* a snapshot writer has its own */
			co_unmirror_program_fds();
			if (r == IMG_FAILED)
				co_send_msg(co_agent.sock, CO_M_FAIL, 0, co_errbuf);
			if (r == IMG_SNAPSHOT || r == IMG_WRITTEN)
				co_send_msg(co_agent.sock, CO_M_SNAPSHOT, 0, co_stamps());
			if (r == IMG_WRITTEN)
				co_send_done(bytes);
			co_unboost();
			co_set_state(CO_P_DUMPED);
			break;
		}
		case CO_M_POSIX_LOCKS: { /* a migration's hold (coord/hold_locks.c) */
			int r = posix_locks_job(co_inbox.m.a == 1);
			co_send_msg(co_agent.sock, CO_M_POSIX_LOCKS, r, r ? co_agent.job_err : 0);
			break;
		}
		case CO_M_RELEASE:
			co_agent.await_quiesce = 0;
			co_inotify_take(); /* a checkpoint that failed before DUMP */
			if (co_agent.table && co_agent.slot >= 0) {
				struct co_pentry *e = &co_agent.table->p[co_agent.slot];
				e->generation = (uint64_t)co_inbox.m.a;
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
		co_snapshot_forget();
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
	ca.stack = (uint64_t)co_mgr_stack;
	ca.stack_size = sizeof(co_mgr_stack);
	if (co_clone3_thread(&ca, sizeof(ca), manager_main, 0) < 0)
		__atomic_store_n(&mgr_state, MGR_IDLE, __ATOMIC_RELEASE);
}

/* A forked child has no manager: the parent's, if one ran, is not copied. */
void co_manager_forked(void)
{
	mgr_state = MGR_IDLE;
	mgr_tid = 0;
}
