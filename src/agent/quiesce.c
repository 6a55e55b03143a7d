/*
 * quiesce.c - the checkpoint signal, and parking every thread of the
 * process in its handler.
 *
 * The coordinator starts a checkpoint with the checkpoint signal, queued
 * (SI_QUEUE) with the table's cookie: the thread that takes it starts the
 * manager thread (manager.c).  The manager signals every other thread with
 * tgkill (co_quiesce); each records its kernel state in the handler and
 * parks on a futex until the manager releases it (co_release_threads).
 * After a restart the threads come back inside the same handler.  All of
 * it runs in signal handlers or in the manager, which is no thread glibc
 * knows: async-signal-safe, raw system calls, no allocation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include "agent.h"
#include "res.h"
#include "dirty.h"
#include "procfs.h"
#include "sys.h"
#include "util.h"

#define QUIESCE_TIMEOUT_MS 10000
#define HOLD_TIMEOUT_MS 2000 /* a hold that cannot be had is no failure: the pause does its work */

/* ---- futex helpers (async-signal-safe), for the manager too ---- */

void co_fwait(int *word, int val, long ms)
{
	struct co_timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	co_futex(word, FUTEX_WAIT_PRIVATE, val, ms >= 0 ? &ts : 0);
}

void co_fwake(int *word)
{
	co_futex(word, FUTEX_WAKE_PRIVATE, 0x7fffffff, 0);
}

/* ---- the checkpoint signal ---- */

static struct co_tslot *find_slot(int tid)
{
	for (int i = 0; i < co_agent.nthreads; i++)
		if (co_agent.threads[i].tid == tid)
			return &co_agent.threads[i];
	return 0;
}

static uint64_t mono_ns(void)
{
	struct co_timespec ts;
	co_clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.sec * 1000000000ULL + (uint64_t)ts.nsec;
}

/*
 * A thread back in the program after a release: how long it was held, into
 * the process table, where the coordinator reads the longest for --json
 * (program_pause_ms: the pause as the program's threads lived it, from the
 * moment each stopped to the moment it ran again).
 */
static void note_stop(uint64_t held_ns)
{
	if (!co_agent.table || co_agent.slot < 0)
		return;
	struct co_pentry *e = &co_agent.table->p[co_agent.slot];
	uint64_t cur = __atomic_load_n(&e->stop_ns, __ATOMIC_RELAXED);
	while (held_ns > cur && !__atomic_compare_exchange_n(&e->stop_ns, &cur, held_ns, 0, __ATOMIC_RELAXED,
							     __ATOMIC_RELAXED))
		;
	__atomic_add_fetch(&e->stop_left, 1, __ATOMIC_RELEASE);
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

/*
 * The coordinator's start of a checkpoint: queued by a process outside the
 * group's namespaces (si_pid 0 here), with a value (our table's cookie;
 * checked by the caller, or once registered for a start that came early).
 */
static int is_start(const siginfo_t *si)
{
	return si->si_code == SI_QUEUE && si->si_pid == 0 && si->si_value.sival_ptr &&
	       si->si_value.sival_ptr != CO_SIG_COOKIE;
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

/*
 * The signals queued for the whole process are taken (and put back) by
 * its main thread, in its handler: the kernel lets only a thread whose id
 * is the process's queue a signal as if from kill() (si_code SI_USER)
 * to the process, and another thread's attempt would have lost it.
 */
static void take_shared_signals(const struct co_tslot *t)
{
	if (t->tid == co_agent.pid)
		co_agent.nshared_pending =
			co_signals_collect(co_agent.shared_pending, 2 * CO_MAX_PENDING, co_agent.sig, 0);
}

extern char co_syscall_noted_done[];

long co_noted_result(const long *res, const void *uc)
{
	long r = __atomic_load_n(res, __ATOMIC_ACQUIRE);
	const mcontext_t *m = &((const ucontext_t *)uc)->uc_mcontext;
	if (r == CO_RES_UNSET && m->gregs[REG_RIP] == (greg_t)co_syscall_noted_done)
		r = m->gregs[REG_RAX];
	return r;
}

/* co_signals_seen (threads.c): the queue the manager saw of the calling thread (own), or of the process */
uint64_t co_pending_seen(int own)
{
	const struct co_tslot *t = own ? find_slot((int)co_gettid()) : NULL;
	return own ? (t ? t->seen_pnd : 0) : co_agent.seen_shd;
}

/*
 * The coordinator unblocked our signal in the thread's mask (pt_set, for
 * it to park): the mask it had (pt_orig) is what rt_sigreturn sets again.
 * The kernel keeps the first 64 bits of the mask in uc_sigmask.
 */
static void mask_back(void *uc, uint64_t pt_orig, uint64_t pt_set)
{
	ucontext_t *u = uc;
	uint64_t at;
	if (!pt_set)
		return;
	co_memcpy(&at, &u->uc_sigmask, sizeof(at));
	if (at == pt_set)
		co_memcpy(&u->uc_sigmask, &pt_orig, sizeof(pt_orig));
}

/* Parked for a hold: wait for the release, as a parked thread does, and nothing else. */
static void held_only(struct co_tslot *t)
{
	__atomic_store_n(&t->state, CO_TS_PARKED, __ATOMIC_RELEASE);
	__atomic_add_fetch(&co_agent.parked, 1, __ATOMIC_ACQ_REL);
	co_fwake(&co_agent.parked);
	for (int r; (r = __atomic_load_n(&co_agent.release, __ATOMIC_ACQUIRE)) == co_agent.hold;)
		co_fwait(&co_agent.release, r, -1);
}

static void checkpoint_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	/* the coordinator starts a checkpoint: queued from outside the group, with the cookie of our table */
	if (is_start(si)) {
		if (!co_agent.active || !co_agent.table)
			__atomic_store_n(&co_early_start, (uint64_t)si->si_value.sival_ptr, __ATOMIC_RELEASE);
		else if ((uint64_t)si->si_value.sival_ptr == co_agent.table->cookie)
			co_start_manager();
		goto out;
	}
	if (!is_checkpoint(si)) {
		/* the program's own signal of this number */
		errno = saved_errno;
		co_wrap_forward(sig, si, uc);
		return;
	}
	/* only the manager of this very process may park us; one left from an earlier checkpoint is dropped */
	uint64_t t_stop = mono_ns(); /* the program's thread stopped here */
	struct co_tslot *t = find_slot((int)co_gettid());
	if (!t || t->state != CO_TS_SIGNALLED)
		goto out;
	/* the coordinator unblocked our signal for us (ptrace) before we got here: our mask goes back */
	uint64_t pt_orig = t->pt_orig, pt_set = t->pt_set;
	if (__atomic_load_n(&co_agent.hold_only, __ATOMIC_ACQUIRE)) {
		held_only(t); /* a moment's hold (co_hold_threads): nothing of ours to note, no image follows */
		mask_back(uc, pt_orig, pt_set);
		goto out;
	}
	co_semundo_handler(uc); /* a SEM_UNDO operation the kernel did just now is noted before we park */
	co_aio_handler(uc);	/* an aio call likewise */
	co_thread_collect(&t->rec, co_agent.sig);
	co_cpuclock_save_thread(&t->rec.cpu);
	take_shared_signals(t);
	int restarted = 0, seen_recollect = __atomic_load_n(&co_agent.recollect, __ATOMIC_ACQUIRE);
	int seen_job = __atomic_load_n(&co_agent.job, __ATOMIC_ACQUIRE);
	if (co_ctx_save(&t->rec.ctx) == 0) {
		__atomic_store_n(&t->state, CO_TS_PARKED, __ATOMIC_RELEASE);
		__atomic_add_fetch(&co_agent.parked, 1, __ATOMIC_ACQ_REL);
		co_fwake(&co_agent.parked);
	} else {
		/* A new process: the restorer jumped here.  Tell the manager we left the restorer. */
		restarted = 1;
		co_cpuclock_thread_back(t); /* our CPU clocks go on from where they were */
		__atomic_add_fetch(&co_agent.arrived, 1, __ATOMIC_ACQ_REL);
		co_fwake(&co_agent.arrived);
	}
	for (;;) {
		int r = __atomic_load_n(&co_agent.release, __ATOMIC_ACQUIRE);
		if (r != co_agent.hold)
			break;
		int rq = __atomic_load_n(&co_agent.recollect, __ATOMIC_ACQUIRE);
		if (rq != seen_recollect && !restarted) {
			/* a signal came for us after we parked (settle_signals): take them all again */
			seen_recollect = rq;
			t->rec.npending = (uint32_t)co_signals_collect(t->rec.pending, CO_MAX_PENDING, co_agent.sig, 1);
			take_shared_signals(t);
			__atomic_add_fetch(&co_agent.recollected, 1, __ATOMIC_ACQ_REL);
			co_fwake(&co_agent.recollected);
			continue;
		}
		int jq = __atomic_load_n(&co_agent.job, __ATOMIC_ACQUIRE);
		if (jq != seen_job && !restarted) {
			/* the process's POSIX locks, for a migration's hold (manager.c): one of us does it */
			seen_job = jq;
			int claim = jq - 1;
			if (__atomic_compare_exchange_n(&co_agent.job_taken, &claim, jq, 0, __ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE)) {
				co_agent.job_result = co_files_posix_set(co_agent.job_arg, co_agent.job_err,
									 sizeof(co_agent.job_err));
				__atomic_store_n(&co_agent.job_done, jq, __ATOMIC_RELEASE);
				co_fwake(&co_agent.job_done);
			}
			continue;
		}
		co_fwait(&co_agent.release, r, -1);
	}
	if (!restarted)
		note_stop(mono_ns() - t_stop);
	mask_back(uc, pt_orig, pt_set);
out:
	/* whatever we did here, a call we interrupted is made again (wrap.c), never EINTR */
	co_tls_epoch++;
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
	/*
	 * SA_RESTART: syscalls that can restart do so; the rest are handled in
	 * wrap.c.  SA_ONSTACK: a thread with an alternate signal stack takes us
	 * there: Go's threads run goroutines on small stacks that must never
	 * take a foreign signal frame (Go requires SA_ONSTACK of non-Go handlers).
	 */
	ka.flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK | 0x04000000 /* SA_RESTORER */;
	extern void co_sigreturn(void);
	ka.restorer = (void *)co_sigreturn;
	ka.mask = ~0ULL; /* nothing of the program runs while a thread is parked */
	return ka;
}

void co_install_handler(void)
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

/*
 * The main thread left with the exit system call while others run on: its
 * descriptor table (and /proc/PID/fd) is gone, and it cannot park.
 */
static int leader_gone(int taskfd)
{
	char path[32], buf[256];
	co_fmt(path, sizeof(path), "%d/stat", co_agent.pid);
	int fd = (int)co_openat(taskfd, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	long n = co_read(fd, buf, sizeof(buf) - 1);
	co_close(fd);
	buf[n > 0 ? n : 0] = 0;
	const char *p = 0; /* the state follows the last ')': the name may hold one */
	for (const char *q = buf; *q; q++)
		if (*q == ')')
			p = q;
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* Signal every thread not yet known; returns how many were added, or -1. */
static int signal_new_threads(void)
{
	/* the program runs while we list: no new descriptor (see co_dirty_setup) */
	int fd = co_agent.taskfd;
	static int tids[CO_MAX_THREADS + 2]; /* the program's threads and the manager */
	int ntids = fd < 0 ? -EBADF : co_dir_numbers(fd, tids, CO_MAX_THREADS + 2);
	if (ntids == -E2BIG)
		return -2;
	if (ntids < 0)
		return -1;
	int added = 0;
	for (int k = 0; k < ntids; k++) {
		int tid = tids[k];
		if (tid == co_agent.manager_tid || find_slot(tid))
			continue;
		if (tid == co_agent.pid && leader_gone(fd))
			return -3;
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
	return added;
}

void co_release_threads(void)
{
	__atomic_add_fetch(&co_agent.release, 1, __ATOMIC_ACQ_REL);
	co_fwake(&co_agent.release);
	/* wait until every parked thread has left our table's memory alone */
	co_agent.nthreads = 0;
}

void co_set_state(unsigned s)
{
	if (co_agent.table && co_agent.slot >= 0)
		__atomic_store_n(&co_agent.table->p[co_agent.slot].state, s, __ATOMIC_RELEASE);
}

/*
 * Stop every other thread in our handler (hold_only: where it only waits,
 * co_hold_threads).  Threads may be created while we look (a stopped
 * thread cannot create more), so list /proc/self/task again until no new
 * one shows up.  A thread that cannot take the signal in time fails the
 * checkpoint, and the ones already stopped go on.
 */
static int stop_all(char *err, size_t errlen, int hold_only)
{
	const long limit = hold_only ? HOLD_TIMEOUT_MS : QUIESCE_TIMEOUT_MS;
	co_agent.nthreads = 0;
	co_agent.parked = 0;
	co_agent.arrived = 0;
	if (!hold_only) {
		co_agent.nshared_pending = 0; /* the main thread takes them when it parks */
		co_agent.seen_shd = 0;	      /* (slots are cleared as they are taken) */
	}
	co_agent.hold = __atomic_load_n(&co_agent.release, __ATOMIC_ACQUIRE);
	__atomic_store_n(&co_agent.hold_only, hold_only, __ATOMIC_RELEASE);
	/* the manager's own slot comes first */
	struct co_tslot *m = &co_agent.threads[0];
	co_memset(m, 0, sizeof(*m));
	m->tid = m->rec.tid = co_agent.manager_tid;
	m->rec.flags = CO_T_MANAGER;
	m->state = CO_TS_PARKED;
	co_agent.nthreads = 1;
	if (!hold_only)
		co_set_state(CO_P_QUIESCING);
	co_sig_reclaim();
	co_park_begin();

	struct co_timespec t0, now;
	co_clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int added = signal_new_threads();
		if (added < 0) {
			co_fmt(err, errlen, "pid %d: %s", co_agent.pid,
			       added == -2   ? "too many threads"
			       : added == -3 ? "its main thread has exited while its other threads run on: cohort "
					       "cannot checkpoint such a process yet"
					     : "cannot list /proc/self/task");
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
			if (co_park_stuck(ms, &t0, limit, err, errlen))
				return -1;
			if (ms > limit) {
				if (asked < 0)
					co_fmt(err, errlen,
					       "pid %d: thread %d did not stop within %d s, although the checkpoint signal %d "
					       "was unblocked for it (did the program take it with a sigwait?)",
					       co_agent.pid, waiting, (int)(limit / 1000), co_agent.sig);
				else if (asked > CO_TRACE_AFTER_MS)
					co_fmt(err, errlen,
					       "pid %d: thread %d did not stop within %d s: it does not block the checkpoint "
					       "signal %d but has not taken it (an uninterruptible wait, or a raw sigwait on it?)",
					       co_agent.pid, waiting, (int)(limit / 1000), co_agent.sig);
				else
					co_fmt(err, errlen,
					       "pid %d: thread %d did not stop within %d s (checkpoint signal %d blocked?)",
					       co_agent.pid, waiting, (int)(limit / 1000), co_agent.sig);
				return -1;
			}
			co_fwait(&co_agent.parked, parked, 1);
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
	return 0;
}

/*
 * A moment in which no thread of the program runs, for the manager to
 * change the memory map's registrations with the userfaultfd (dirty_wp.c,
 * prepare): the threads wait in our handler and note nothing; a call one
 * was in is made again, as after a checkpoint.  co_release_threads ends it.
 */
int co_hold_threads(char *err, size_t errlen)
{
	return stop_all(err, errlen, 1);
}

/* Park every other thread for a checkpoint (stop_all), and note what the image needs of the moment. */
int co_quiesce(char *err, size_t errlen)
{
	if (stop_all(err, errlen, 0))
		return -1;
	co_cpuclock_save_proc(); /* every thread is parked: the process's CPU time stands still */
	int j = co_agent.nthreads;
	for (int i = 0; i < j; i++)
		if (co_agent.threads[i].tid == co_agent.pid)
			co_agent.threads[i].rec.flags |= CO_T_LEADER;
	/* every program thread is parked: none can leave before the release (see note_stop) */
	if (co_agent.table && co_agent.slot >= 0) {
		struct co_pentry *e = &co_agent.table->p[co_agent.slot];
		e->stop_gen = co_agent.generation;
		e->stop_ns = 0;
		__atomic_store_n(&e->stop_left, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&e->stop_parked, (uint32_t)(j - 1), __ATOMIC_RELEASE);
	}
	co_set_state(CO_P_PARKED);
	return 0;
}

