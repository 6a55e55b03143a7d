/*
 * threads.c - threads: what the kernel keeps per thread (tid, fs base,
 * robust futex list, rseq area, clear_child_tid, signal mask) and the
 * context where each thread parked.
 *
 * Dump: each thread collects its own state in the checkpoint handler
 * (co_thread_collect); the manager writes one record per thread.
 * Restore: clone3 with set_tid gives each thread its tid back; the new
 * thread re-registers its kernel state and jumps to its parked context.
 */
#include <errno.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include "boost.h"
#include "helper.h"
#include "procfs.h"
#include "report.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#ifndef ARCH_SET_GS
#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004
#endif
#define CO_RSEQ_SIG 0x53053053
#define CO_RSEQ_UNREGISTER 1
#ifndef SYS_rseq
#define SYS_rseq 334
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

#ifndef SYS_rt_tgsigqueueinfo
#define SYS_rt_tgsigqueueinfo 297
#endif

#ifndef COHORT_RESTORER
/* glibc 2.35+ tells where its per-thread rseq area is. */
extern const long __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

/*
 * An rseq area the program registers itself (not glibc's: a program run
 * with glibc.pthread.rseq=0, or one that took glibc's away) through
 * syscall(3) (wrap.c): the thread's own, and the one it is asking for
 * until the kernel has answered (a checkpoint may stop it in between).
 * Neither is taken at its word: the kernel is asked (rseq_collect).  A
 * forked child has its parent thread's registration (the kernel copies
 * it) and these copied with it; a new thread has neither.
 */
struct rseq_note {
	uint64_t addr;
	uint32_t len, sig;
};
static __thread struct rseq_note rseq_own, rseq_asked __attribute__((tls_model("initial-exec")));

long co_rseq_call(const long *a)
{
	struct rseq_note want = { (uint64_t)a[0], (uint32_t)a[1], (uint32_t)a[3] };
	if (a[2] == 0)
		rseq_asked = want;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	long r = co_sys4(SYS_rseq, a[0], a[1], a[2], a[3]);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (r == 0)
		rseq_own = a[2] == 0 ? want : (struct rseq_note){ 0, 0, 0 };
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	rseq_asked = (struct rseq_note){ 0, 0, 0 };
	return r;
}

/*
 * Is this thread's rseq area the one at addr (len, sig)?  The rseq
 * syscall answers EBUSY exactly when the area is registered with the
 * same address, length and signature: 1, with t's fields set.  When
 * nothing is registered it registers this one: undone at once, -1 (none
 * is).  0: another, or none could be told.
 */
static int rseq_is(struct co_thread *t, uint64_t addr, uint32_t len, uint32_t sig)
{
	if (!addr)
		return 0;
	long r = co_sys4(SYS_rseq, (long)addr, len, 0, sig);
	if (r == -EBUSY) {
		t->rseq_addr = addr;
		t->rseq_len = len;
		t->rseq_sig = sig;
		return 1;
	}
	if (r == 0) {
		co_sys4(SYS_rseq, (long)addr, len, CO_RSEQ_UNREGISTER, sig);
		return -1;
	}
	return 0;
}

/*
 * Find this thread's rseq registration: glibc's area, or the one the
 * program registered through syscall(3).  Any other (a raw system call,
 * whose signature nothing shows: the kernel tells it only to ptrace) is
 * seen by a test registration of an area of ours failing with EINVAL:
 * the thread is marked, and the checkpoint refused (co_threads_check).
 */
static void rseq_collect(struct co_thread *t)
{
	t->rseq_addr = 0;
	t->flags &= ~(uint32_t)CO_T_RSEQ_UNKNOWN;
	int r = 0;
	if (&__rseq_size && &__rseq_offset && __rseq_size) {
		r = rseq_is(t, t->fsbase + (uint64_t)__rseq_offset, 32, CO_RSEQ_SIG);
		r = r ? r : rseq_is(t, t->fsbase + (uint64_t)__rseq_offset, 20, CO_RSEQ_SIG);
	}
	struct rseq_note own = rseq_own, asked = rseq_asked;
	r = r ? r : rseq_is(t, own.addr, own.len, own.sig);
	r = r ? r : rseq_is(t, asked.addr, asked.len, asked.sig);
	if (r)
		return;
	struct { uint32_t w[8]; } __attribute__((aligned(32))) probe = { { 0 } };
	long p = co_sys4(SYS_rseq, (long)&probe, sizeof(probe), 0, CO_RSEQ_SIG);
	if (p == 0)
		co_sys4(SYS_rseq, (long)&probe, sizeof(probe), CO_RSEQ_UNREGISTER, CO_RSEQ_SIG);
	else if (p == -EINVAL)
		t->flags |= CO_T_RSEQ_UNKNOWN;
}

/* One signal of set queued for the calling thread (own) or the process: 1, or 0 when none is. */
static int take_one(struct co_siginfo *si, uint64_t set)
{
	static const struct co_timespec zero = { 0, 0 };
	return set && co_sys4(SYS_rt_sigtimedwait, (long)&set, (long)si, (long)&zero, 8) > 0;
}

static void put_back(const struct co_siginfo *si, int own)
{
	if (own)
		co_sys4(SYS_rt_tgsigqueueinfo, co_getpid(), co_gettid(), si->signo, (long)si);
	else
		co_sys3(SYS_rt_sigqueueinfo, co_getpid(), si->signo, (long)si);
}

uint64_t (*co_signals_seen)(int own);

/*
 * The signals queued (own: for the calling thread; else for the process),
 * but skip.  Without /proc (a chroot: agent/root.c), those the manager saw
 * queued (none before it looked: it asks again then, settle_signals); one
 * no longer pending is simply not taken (take_one).
 */
static uint64_t queued(int own, uint64_t skip)
{
	char buf[2048];
	if (co_read_small(own ? "/proc/thread-self/status" : "/proc/self/status", buf, sizeof(buf)) > 0)
		return co_status_hex(buf, own ? "SigPnd" : "ShdPnd") & ~skip;
	return co_signals_seen ? co_signals_seen(own) & ~skip : 0;
}

/*
 * More of signal sig are queued than were taken: those taken were put
 * back behind the rest, so the rest go behind them again, in order (the
 * kernel hands out the lowest signal number first, and each number's
 * instances in the order they came: only sig's order was changed).  How
 * many to move is counted first, with a marker of our own queued behind
 * them and taken back.
 */
static void reorder(const struct co_siginfo *taken, int n, int sig, int own)
{
	struct co_siginfo mark, si;
	co_memset(&mark, 0, sizeof(mark));
	mark.signo = sig;
	int32_t *w = (int32_t *)mark.rest;
	w[0] = 0;		/* si_errno */
	w[1] = -1;		/* si_code SI_QUEUE */
	w[2] = 0x7fffffff;	/* si_pid: no process has it */
	w[3] = -1;		/* si_uid */
	w[4] = 0x636f686f;	/* si_value */
	uint64_t one = 1ULL << (sig - 1);
	int more = 0;
	put_back(&mark, own);
	while (take_one(&si, one) && co_memcmp(&si, &mark, sizeof(si))) {
		put_back(&si, own);
		more++;
	}
	for (int i = 0; i < n; i++)
		put_back(&taken[i], own);
	for (int i = 0; i < more && take_one(&si, one); i++)
		put_back(&si, own);
}

/*
 * Take the signals queued for one thread (own = 1, the calling thread's
 * private queue) or for the whole process (own = 0) and queue them again
 * at once, in order: the running program keeps them, the image records
 * them.  More than max queued: max + 1, the queue left as it was (the
 * image cannot hold them all; the dump refuses it).
 */
int co_signals_collect(struct co_siginfo *out, int max, int ours, int own)
{
	uint64_t skip = ours ? 1ULL << (ours - 1) : 0;
	/*
	 * Only the numbers queued when the timers' counts were read are taken:
	 * a timer's signal queued after that, taken with no count read, would
	 * leave its count in the kernel changed (timers.c, "Overruns").  One
	 * that comes later is the manager's to see (settle_signals), and this
	 * is asked again.
	 */
	uint64_t seen = queued(own, skip);
	struct co_timer_pre pre;
	co_timers_pre(&pre, seen);
	uint64_t kept = 0; /* a periodic timer's own signal: queued by the timer again (timers.c, "Overruns") */
	int n = 0;
	while (n < max && take_one(&out[n], queued(own, skip) & seen)) {
		int t = co_timer_taken(&out[n], &pre, own);
		if (t == 2) {
			skip |= 1ULL << (out[n].signo - 1);
			continue;
		}
		/* a standard signal is queued once at most in a queue: once taken, another is the other queue's */
		if (t == 0 && out[n].signo >= 1 && out[n].signo < 32)
			skip |= 1ULL << (out[n].signo - 1);
		kept |= (uint64_t)(t == 1) << n++;
	}
	if (n == max && (queued(own, skip) & seen)) {
		/* (the image is refused: those a timer queued again are not put back a second time) */
		int sig = out[n - 1].signo, k = 0;
		for (int i = 0; i < n; i++)
			if (!(kept >> i & 1))
				out[k++] = out[i];
		reorder(out, k, sig, own);
		return max + 1;
	}
	for (int i = 0; i < n; i++)
		if (!(kept >> i & 1))
			put_back(&out[i], own);
	return n;
}

/* Called by each thread for itself (async-signal-safe). */
void co_thread_collect(struct co_thread *t, int ours)
{
	t->npending = (uint32_t)co_signals_collect(t->pending, CO_MAX_PENDING, ours, 1);
	t->tid = (int32_t)co_gettid();
	co_arch_prctl(ARCH_GET_FS, (long)&t->fsbase);
	co_arch_prctl(ARCH_GET_GS, (long)&t->gsbase);
	co_sys3(SYS_get_robust_list, 0, (long)&t->robust_head, (long)&t->robust_len);
	co_prctl(PR_GET_TID_ADDRESS, (long)&t->clear_tid, 0, 0, 0);
	co_sigprocmask(SIG_BLOCK, 0, &t->sigmask);
	/*
	 * Its name here, in the pause: the image of a live checkpoint is
	 * written by a snapshot once the program runs again, and a name read
	 * then from /proc (as it was) was a later one, or none, the thread gone.
	 */
	co_memset(t->comm, 0, sizeof(t->comm));
	co_prctl(PR_GET_NAME, (long)t->comm, 0, 0, 0);
	t->comm[sizeof(t->comm) - 1] = 0;
	rseq_collect(t);
	co_tattrs_collect(&t->a, &t->a8);
}

int co_threads_check(struct co_dumpctx *d, const struct co_thread *const *t, int n)
{
	for (int i = 0; i < n; i++)
		if (t[i]->flags & CO_T_RSEQ_UNKNOWN)
			return DERR(d, "pid %d: thread %d has an rseq area registered with a raw system call (not by "
				    "glibc, nor through syscall(3)): cohort cannot find it to register it again", d->pid,
				    t[i]->tid);
	return 0;
}

int co_threads_dump(struct co_dumpctx *d, const struct co_thread *const *t, int n)
{
	for (int i = 0; i < n; i++) {
		struct co_thread rec = *t[i];
		if (rec.npending > CO_MAX_PENDING)
			return DERR(d, "pid %d: thread %d has more than %d signals queued, which cohort cannot save", d->pid,
				    rec.tid, CO_MAX_PENDING);
		/* (its name: taken by the thread itself in the pause, co_thread_collect) */
		if (co_w_rec(d->w, CO_R_THREAD, &rec, sizeof(rec)))
			return DERR(d, "pid %d: writing thread %d failed", d->pid, rec.tid);
	}
	return 0;
}
#else /* the restorer */

extern void co_ctx_jump(const struct co_ctx *ctx) __attribute__((noreturn));
/*
 * A group started without privileges runs in a user namespace of its own;
 * init hands the restorer CAP_CHECKPOINT_RESTORE (ambient) for clone3 with
 * set_tid.  The program never had it: every thread gives it up before it
 * goes back (capabilities are per thread; a new thread inherits them).
 * Whether the restorer ran as root is noted before any thread changes its
 * ids: a program that set only its effective uid away from 0 keeps its
 * permitted capabilities, as the kernel kept them.
 */
static int restorer_unprivileged;
static const struct co_ids *ids_rec;
static const struct co_rstctx *rc_rec;
static int creds_done, creds_err;	/* threads that have set their ids; the first failure (-errno) */
/* threads past their last system call (with seccomp filters to install); the first that failed to, and why */
static int jumped, filter_tid, filter_err;
/* the first thread that could not take its attributes back (co_tattrs_restore): -errno, its tid, what */
static int attrs_err, attrs_tid;
static const char *attrs_what;

/* Before its ids change (a raised priority needs the restorer's privileges): 0, or the first failure kept. */
static int take_attrs(const struct co_thread *t)
{
	const char *what = "";
	co_unboost_thread(); /* a migration's stop is over for this thread: its own scheduling now */
	int r = co_tattrs_restore(t, &what);
	/*
	 * Its rseq area, which the C library believes registered (it reads
	 * the CPU number there): where the kernel refuses it (no rseq, or a
	 * seccomp filter of the restart's surroundings), the restore fails
	 * rather than let the program read a CPU number nobody writes.
	 */
	if (!r && t->rseq_addr) {
		what = "its rseq area (rseq)";
		r = (int)co_sys4(SYS_rseq, (long)t->rseq_addr, t->rseq_len, 0, t->rseq_sig);
	}
	if (r && __atomic_compare_exchange_n(&attrs_tid, &(int){ 0 }, t->tid, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		attrs_what = what;
		__atomic_store_n(&attrs_err, r, __ATOMIC_RELEASE);
	}
	return r;
}

static void drop_restore_caps(void)
{
	/* recorded sets were given (co_creds_set): they hold only what the program had */
	if (!restorer_unprivileged || ids_rec->caps)
		return;
	struct co_capdata none[2];
	co_memset(none, 0, sizeof(none));
	co_capset(none);
}

/*
 * Give the calling thread its kernel state back, then continue where it
 * parked.  Every thread but the main one sets its ids here first, and
 * says so: the main thread sets its own once all have (co_threads_restore).
 */
static __attribute__((noreturn)) void become(struct co_thread *t, int main_thread)
{
	if (!main_thread) {
		co_restore_reached(CO_RS_THREAD);
		take_attrs(t);
		int r = co_creds_set(ids_rec, t->a.attrs ? (int64_t)t->a.securebits : -1);
		if (r)
			__atomic_compare_exchange_n(&creds_err, &(int){ 0 }, r, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
		__atomic_add_fetch(&creds_done, 1, __ATOMIC_ACQ_REL);
		co_futex(&creds_done, FUTEX_WAKE_PRIVATE, 1, 0);
	}
	drop_restore_caps();
	co_tattrs_restore_late(t);
	co_arch_prctl(ARCH_SET_FS, (long)t->fsbase);
	if (t->gsbase)
		co_arch_prctl(ARCH_SET_GS, (long)t->gsbase);
	if (t->robust_head)
		co_sys2(SYS_set_robust_list, (long)t->robust_head, (long)t->robust_len);
	co_sys1(SYS_set_tid_address, (long)t->clear_tid);
	if (t->comm[0])
		co_prctl(PR_SET_NAME, (long)t->comm, 0, 0, 0);
	/* queued signals wait behind the mask until sigreturn brings the program's back */
	for (uint32_t i = 0; i < t->npending && i < CO_MAX_PENDING; i++)
		if (!co_timer_requeued(rc_rec, &t->pending[i]))
			co_sys4(SYS_rt_tgsigqueueinfo, co_getpid(), co_gettid(), t->pending[i].signo,
				(long)&t->pending[i]);
	co_sigprocmask(SIG_SETMASK, &t->sigmask, 0);
	/* the last system call before the program's code: its seccomp filters (seccomp.c) */
	long sr = co_seccomp_install(rc_rec, t->tid, main_thread);
	if (main_thread && sr) {
		static char msg[160];
		co_fmt(msg, sizeof(msg), "pid %d: thread %d cannot install its seccomp filters again (errno %ld)",
		       rc_rec->proc->pid, t->tid, -sr);
		co_restore_die(msg);
	}
	if (!main_thread && sr && __atomic_compare_exchange_n(&filter_tid, &(int){ 0 }, t->tid, 0, __ATOMIC_ACQ_REL,
							       __ATOMIC_ACQUIRE))
		__atomic_store_n(&filter_err, (int)sr, __ATOMIC_RELEASE);
	if (!main_thread)
		__atomic_add_fetch(&jumped, 1, __ATOMIC_RELEASE); /* no wake: a filter may forbid the futex call now */
	co_ctx_jump(&t->ctx);
}

/*
 * With seccomp filters, the main thread waits until every other thread is
 * past its last system call: a chain it installs for all (TSYNC) would
 * apply to their remaining restorer calls, and one that failed must fail
 * the restore before the program runs.  0, or -1 with rc->err.
 */
static int await_jumps(struct co_rstctx *rc, int made)
{
	if (!rc->nseccomp)
		return 0;
	for (int j; (j = __atomic_load_n(&jumped, __ATOMIC_ACQUIRE)) < made;) {
		struct co_timespec ms = { 0, 1000000 };
		co_futex(&jumped, FUTEX_WAIT_PRIVATE, j, &ms);
	}
	int fe = __atomic_load_n(&filter_err, __ATOMIC_ACQUIRE);
	if (fe)
		return co_err(rc->err, rc->errlen, "pid %d: thread %d cannot install its seccomp filters again (errno %d)",
			      rc->proc->pid, __atomic_load_n(&filter_tid, __ATOMIC_ACQUIRE), -fe);
	return 0;
}

static void thread_entry(void *arg)
{
	if (co_boosted()) /* the restorer's, in a migration's stop (boost.h): until take_attrs */
		co_boost_tid(0);
	become(arg, 0);
}

int co_threads_restore(struct co_rstctx *rc)
{
	struct co_thread *leader = 0;
	int made = 0;
	restorer_unprivileged = co_sys0(SYS_geteuid) != 0;
	ids_rec = &rc->ids;
	rc_rec = rc;
	co_creds_plan(&rc->ids); /* the ids every thread made here starts with are ours */
	/* each new thread borrows a small stack in the restorer's area until it jumps */
	const size_t stack = 16384;
	for (int i = 0; i < rc->nthreads; i++) {
		struct co_thread *t = &rc->threads[i];
		if (t->tid == rc->proc->pid) {
			leader = t;
			continue;
		}
		if ((size_t)(i + 1) * stack > rc->scratch_len)
			return co_err(rc->err, rc->errlen, "pid %d: too many threads to restore", rc->proc->pid);
		struct clone_args ca;
		co_memset(&ca, 0, sizeof(ca));
		pid_t tid = t->tid;
		ca.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			   CLONE_SYSVSEM | CLONE_SETTLS;
		ca.stack = (uint64_t)(rc->scratch + i * stack);
		ca.stack_size = stack;
		ca.tls = t->fsbase;
		ca.set_tid = (uint64_t)&tid;
		ca.set_tid_size = 1;
		/* a helper thread of ours that just exited may still hold this tid for a moment */
		long r = co_clone3_set_tid(&ca, thread_entry, t);
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: cannot recreate thread %d (errno %ld)",
				      rc->proc->pid, t->tid, -r);
		made++;
	}
	if (!leader)
		return co_err(rc->err, rc->errlen, "pid %d: image has no main thread", rc->proc->pid);
	/* every thread a timer may signal exists now; none runs the program before the release */
	if (co_timers_restore(rc) || co_itimers_restore(rc))
		return -1;
	take_attrs(leader);
	/* the ids: every other thread has set its own (become), then ours, the last change before the jump */
	for (int d; (d = __atomic_load_n(&creds_done, __ATOMIC_ACQUIRE)) < made;) {
		struct co_timespec ms = { 0, 100000000 };
		co_futex(&creds_done, FUTEX_WAIT_PRIVATE, d, &ms);
	}
	int ae = __atomic_load_n(&attrs_err, __ATOMIC_ACQUIRE);
	if (ae)
		return co_err(rc->err, rc->errlen, "pid %d: thread %d cannot take back %s (errno %d%s)", rc->proc->pid,
			      attrs_tid, attrs_what, -ae, ae == -EPERM ? ": not privileged enough here" : "");
	int cr = __atomic_load_n(&creds_err, __ATOMIC_ACQUIRE);
	if (!cr)
		cr = co_creds_set(&rc->ids, leader->a.attrs ? (int64_t)leader->a.securebits : -1);
	if (cr)
		return co_err(rc->err, rc->errlen, "pid %d: cannot take its ids back (uid %u/%u/%u/%u, gid %u/%u/%u/%u, "
			      "%u groups): errno %d", rc->proc->pid, rc->ids.uid[0], rc->ids.uid[1], rc->ids.uid[2],
			      rc->ids.uid[3], rc->ids.gid[0], rc->ids.gid[1], rc->ids.gid[2], rc->ids.gid[3],
			      rc->ids.ngroups, -cr);
	/* every change of uid cleared it: the program's, once no thread changes its ids any more */
	co_creds_dumpable(&rc->ids);
	/* with its ids, which the kernel keeps with an owner to check it may signal */
	if (co_owners_restore(rc))
		return -1;
	if (await_jumps(rc, made))
		return -1;
	co_restore_reached(CO_RS_JUMP);
	for (int i = 0; i < rc->nown_fds; i++)
		co_close(rc->own_fds[i]);
	for (uint32_t i = 0; i < rc->proc->npending && i < 2 * CO_MAX_PENDING; i++)
		if (!co_timer_requeued(rc, &rc->proc->pending[i]))
			co_sys3(SYS_rt_sigqueueinfo, rc->proc->pid, rc->proc->pending[i].signo,
				(long)&rc->proc->pending[i]);
	become(leader, 1);
}
#endif
