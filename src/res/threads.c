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
#include "helper.h"
#include "procfs.h"
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
 * Find this thread's rseq registration.  The rseq syscall answers EBUSY
 * exactly when the area is registered with the same address, length and
 * signature; when nothing is registered it would register it, so undo that.
 */
static void rseq_collect(struct co_thread *t)
{
	t->rseq_addr = 0;
	if (!&__rseq_size || !&__rseq_offset || __rseq_size == 0)
		return;
	uint64_t addr = t->fsbase + __rseq_offset;
	static const uint32_t lens[] = { 32, 20 };
	for (unsigned i = 0; i < CO_ARRAY_LEN(lens); i++) {
		long r = co_sys4(SYS_rseq, (long)addr, lens[i], 0, CO_RSEQ_SIG);
		if (r == -EBUSY) {
			t->rseq_addr = addr;
			t->rseq_len = lens[i];
			t->rseq_sig = CO_RSEQ_SIG;
			return;
		}
		if (r == 0) {
			co_sys4(SYS_rseq, (long)addr, lens[i], CO_RSEQ_UNREGISTER, CO_RSEQ_SIG);
			return;
		}
	}
}


/*
 * Take the signals queued for one thread (own = 1, the calling thread's
 * private queue) or for the whole process (own = 0) and queue them again
 * at once, in order: the running program keeps them, the image records them.
 */
int co_signals_collect(struct co_siginfo *out, int max, int ours, int own)
{
	static const struct co_timespec zero = { 0, 0 };
	char buf[2048];
	int n = 0;
	uint64_t skip = ours ? 1ULL << (ours - 1) : 0;
	while (n < max) {
		if (co_read_small(own ? "/proc/thread-self/status" : "/proc/self/status", buf, sizeof(buf)) <= 0)
			break;
		uint64_t set = co_status_hex(buf, own ? "SigPnd" : "ShdPnd") & ~skip;
		if (!set)
			break;
		long r = co_sys4(SYS_rt_sigtimedwait, (long)&set, (long)&out[n], (long)&zero, 8);
		if (r <= 0)
			break;
		n++;
	}
	long pid = co_getpid(), tid = co_gettid();
	for (int i = 0; i < n; i++) {
		if (own)
			co_sys4(SYS_rt_tgsigqueueinfo, pid, tid, out[i].signo, (long)&out[i]);
		else
			co_sys3(SYS_rt_sigqueueinfo, pid, out[i].signo, (long)&out[i]);
	}
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
	rseq_collect(t);
}

int co_threads_dump(struct co_dumpctx *d, const struct co_thread *const *t, int n)
{
	for (int i = 0; i < n; i++) {
		struct co_thread rec = *t[i];
		char path[64], comm[32];
		co_fmt(path, sizeof(path), "/proc/%d/task/%d/comm", d->pid, rec.tid);
		if (co_read_small(path, comm, sizeof(comm)) > 0) {
			comm[co_strlen(comm) - (comm[co_strlen(comm) - 1] == '\n')] = 0;
			co_strlcpy(rec.comm, comm, sizeof(rec.comm));
		}
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
static int creds_done, creds_err;	/* threads that have set their ids; the first failure (-errno) */

static void drop_restore_caps(void)
{
	if (!restorer_unprivileged)
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
		int r = co_creds_set(ids_rec);
		if (r)
			__atomic_compare_exchange_n(&creds_err, &(int){ 0 }, r, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
		__atomic_add_fetch(&creds_done, 1, __ATOMIC_ACQ_REL);
		co_futex(&creds_done, FUTEX_WAKE_PRIVATE, 1, 0);
	}
	drop_restore_caps();
	co_arch_prctl(ARCH_SET_FS, (long)t->fsbase);
	if (t->gsbase)
		co_arch_prctl(ARCH_SET_GS, (long)t->gsbase);
	if (t->robust_head)
		co_sys2(SYS_set_robust_list, (long)t->robust_head, (long)t->robust_len);
	co_sys1(SYS_set_tid_address, (long)t->clear_tid);
	if (t->rseq_addr)
		co_sys4(SYS_rseq, (long)t->rseq_addr, t->rseq_len, 0, t->rseq_sig);
	if (t->comm[0])
		co_prctl(PR_SET_NAME, (long)t->comm, 0, 0, 0);
	/* queued signals wait behind the mask until sigreturn brings the program's back */
	for (uint32_t i = 0; i < t->npending && i < CO_MAX_PENDING; i++)
		co_sys4(SYS_rt_tgsigqueueinfo, co_getpid(), co_gettid(), t->pending[i].signo, (long)&t->pending[i]);
	co_sigprocmask(SIG_SETMASK, &t->sigmask, 0);
	co_ctx_jump(&t->ctx);
}

static void thread_entry(void *arg)
{
	become(arg, 0);
}

int co_threads_restore(struct co_rstctx *rc)
{
	struct co_thread *leader = 0;
	int made = 0;
	restorer_unprivileged = co_sys0(SYS_geteuid) != 0;
	ids_rec = &rc->ids;
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
	if (co_timers_restore(rc))
		return -1;
	/* the ids: every other thread has set its own (become), then ours, the last change before the jump */
	for (int d; (d = __atomic_load_n(&creds_done, __ATOMIC_ACQUIRE)) < made;) {
		struct co_timespec ms = { 0, 100000000 };
		co_futex(&creds_done, FUTEX_WAIT_PRIVATE, d, &ms);
	}
	int cr = __atomic_load_n(&creds_err, __ATOMIC_ACQUIRE);
	if (!cr)
		cr = co_creds_set(&rc->ids);
	if (cr)
		return co_err(rc->err, rc->errlen, "pid %d: cannot take its ids back (uid %u/%u/%u/%u, gid %u/%u/%u/%u, "
			      "%u groups): errno %d", rc->proc->pid, rc->ids.uid[0], rc->ids.uid[1], rc->ids.uid[2],
			      rc->ids.uid[3], rc->ids.gid[0], rc->ids.gid[1], rc->ids.gid[2], rc->ids.gid[3],
			      rc->ids.ngroups, -cr);
	/* every change of uid cleared it: the program's, once no thread changes its ids any more */
	co_creds_dumpable(&rc->ids);
	for (int i = 0; i < rc->nown_fds; i++)
		co_close(rc->own_fds[i]);
	for (uint32_t i = 0; i < rc->proc->npending && i < 2 * CO_MAX_PENDING; i++)
		co_sys3(SYS_rt_sigqueueinfo, rc->proc->pid, rc->proc->pending[i].signo, (long)&rc->proc->pending[i]);
	become(leader, 1);
}
#endif
