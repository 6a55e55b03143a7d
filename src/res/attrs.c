/*
 * attrs.c - what the kernel keeps for a process and for each of its
 * threads besides its memory, descriptors and ids: interval timers
 * (setitimer, alarm), oom_score_adj, the child-subreaper and THP-disable
 * flags; per thread the scheduling policy, priority and nice value, CPU
 * affinity, timer slack, personality, no_new_privs and the parent-death
 * signal.
 *
 * Process-wide also the membarrier(2) registrations (a JVM registers
 * MEMBARRIER_CMD_PRIVATE_EXPEDITED; a process that has not gets EPERM),
 * and the audit login uid, which the coordinator reads (the manifest's:
 * writing it takes privileges an image must not be able to claim).
 *
 * Dump: each thread reads its own in the checkpoint handler
 * (co_tattrs_collect: the kernel answers these for the calling thread
 * only); the process-wide ones are read by the manager before a snapshot
 * is forked (co_pattrs_collect): a fork's child has no interval timers and
 * is no subreaper.
 * Restore: the process-wide ones in the restorer before its threads exist
 * (co_pattrs_restore), the interval timers last, by the main thread
 * (co_itimers_restore); each thread its own (co_tattrs_restore), before
 * it takes its ids back (raising a priority needs the restorer's
 * privileges), and after that what a change of ids would clear
 * (co_tattrs_restore_late).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#ifndef PR_GET_THP_DISABLE
#define PR_SET_THP_DISABLE 41
#define PR_GET_THP_DISABLE 42
#endif
#ifndef SYS_sched_getattr
#define SYS_sched_setattr 314
#define SYS_sched_getattr 315
#endif
#define CO_PERSONALITY_QUERY 0xffffffffL
#ifndef SYS_membarrier
#define SYS_membarrier 324
#endif
/* Linux 6.3; the headers here may be older */
#define CO_MEMBARRIER_GET_REGISTRATIONS (1 << 9)
/* the MEMBARRIER_CMD_REGISTER_* commands: GLOBAL_EXPEDITED, PRIVATE_EXPEDITED, _SYNC_CORE, _RSEQ */
#define CO_MB_PRIVATE (1 << 3)
#define CO_MB_REG_PRIVATE (1 << 4)
#define CO_MB_REG_SYNC_CORE (1 << 6)
#define CO_MB_REG_RSEQ (1 << 8)
#define CO_MEMBARRIER_REGISTERS ((1 << 2) | CO_MB_REG_PRIVATE | CO_MB_REG_SYNC_CORE | CO_MB_REG_RSEQ)

/* Linux 6.4; the headers here may be older (detected at run time: EINVAL before) */
#define CO_PR_SET_MEMORY_MERGE 67
#define CO_PR_GET_MEMORY_MERGE 68
#ifndef PR_GET_TSC
#define PR_GET_TSC 25
#define PR_SET_TSC 26
#endif
#ifndef PR_MCE_KILL
#define PR_MCE_KILL 33
#define PR_MCE_KILL_GET 34
#endif
#define CO_MCE_KILL_CLEAR 0
#define CO_MCE_KILL_SET 1
#define CO_MCE_KILL_DEFAULT 2
#define CO_IOPRIO_WHO_PROCESS 1
#define CO_PRIO_PROCESS 0
#define CO_MPOL_NODES 1024	/* bits of co_tattrs8.mpol_nodes */

/* This process's oom_score_adj; -1001 (below the range) when it cannot be read. */
static int oom_score_adj(void)
{
	int64_t v;
	return co_read_number("/proc/self/oom_score_adj", &v) ? -1001 : (int)v;
}

#ifndef COHORT_RESTORER
/*
 * Format 8's per-thread attributes (asked with who 0: the calling
 * thread).  getpriority's nice also for threads whose sched_getattr says
 * 0 (SCHED_FIFO, SCHED_RR) or whose nice sched_setattr ignores
 * (SCHED_IDLE).  A kernel without NUMA answers get_mempolicy ENOSYS: no
 * policy recorded (-1).
 */
static void tattrs8_collect(struct co_tattrs8 *a)
{
	co_memset(a, 0, sizeof(*a));
	long prio = co_sys2(SYS_getpriority, CO_PRIO_PROCESS, 0);
	long io = co_sys2(SYS_ioprio_get, CO_IOPRIO_WHO_PROCESS, 0);
	int tsc = 0;
	if (prio < 0 || io < 0 || co_prctl(PR_GET_TSC, (long)&tsc, 0, 0, 0) < 0)
		return; /* attrs stays 0: the restorer leaves them */
	a->nice = 20 - (int32_t)prio; /* the system call's 1..40 */
	a->ioprio = (int32_t)io;
	a->tsc = tsc;
	a->mce_kill = (int32_t)co_prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	int mode = 0;
	if (co_sys5(SYS_get_mempolicy, (long)&mode, (long)a->mpol_nodes, CO_MPOL_NODES, 0, 0) < 0) {
		mode = -1;
		co_memset(a->mpol_nodes, 0, sizeof(a->mpol_nodes));
	}
	a->mpol_mode = mode;
	a->attrs = 1;
}

/* Called by each thread for itself, in the checkpoint handler (async-signal-safe). */
void co_tattrs_collect(struct co_tattrs *a, struct co_tattrs8 *a8)
{
	tattrs8_collect(a8);
	co_memset(a, 0, sizeof(*a));
	/* the nice value is sched_getattr's too */
	if (co_sys4(SYS_sched_getattr, 0, (long)&a->sched, sizeof(a->sched), 0) < 0 ||
	    co_sys3(SYS_sched_getaffinity, 0, sizeof(a->affinity), (long)a->affinity) < 0)
		return; /* attrs stays 0: the restorer leaves them */
	/* a program's seccomp filters are checked with this argument (cli/seccomp.c: known_args) */
	a->personality = (uint32_t)co_sys1(SYS_personality, CO_PERSONALITY_QUERY);
	a->no_new_privs = (uint32_t)co_prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	co_prctl(PR_GET_PDEATHSIG, (long)&a->pdeathsig, 0, 0, 0);
	a->timerslack_ns = (uint64_t)co_prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	a->securebits = (uint32_t)co_prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	a->attrs = 1;
}

/*
 * The MEMBARRIER_CMD_REGISTER_* commands this process registered.  The
 * kernel says PRIVATE_EXPEDITED also when only _SYNC_CORE or _RSEQ was
 * registered (they set part of its state), though its barrier then
 * answers EPERM: asked (a barrier on our own, parked, threads) to tell
 * the two apart.  Before Linux 6.3 the kernel cannot tell (EINVAL): none
 * recorded, as before they were.
 */
static uint32_t membarrier_registrations(void)
{
	long mb = co_sys3(SYS_membarrier, CO_MEMBARRIER_GET_REGISTRATIONS, 0, 0);
	if (mb <= 0)
		return 0;
	if ((mb & CO_MB_REG_PRIVATE) && (mb & (CO_MB_REG_SYNC_CORE | CO_MB_REG_RSEQ)) &&
	    co_sys3(SYS_membarrier, CO_MB_PRIVATE, 0, 0) == -EPERM)
		mb &= ~CO_MB_REG_PRIVATE;
	return (uint32_t)mb & CO_MEMBARRIER_REGISTERS;
}

int co_pattrs_collect(struct co_dumpctx *d)
{
	struct co_pattrs *a = &d->attrs;
	co_memset(a, 0, sizeof(*a));
	for (int which = 0; which < 3; which++) {
		/* the kernel's struct itimerval: interval, then the time left */
		long v[4];
		if (co_sys2(SYS_getitimer, which, (long)v) < 0)
			return DERR(d, "pid %d: getitimer(%d) failed", d->pid, which);
		a->itimer[which] = (struct co_itimer){ v[0], v[1], v[2], v[3] };
	}
	if ((a->oom_score_adj = oom_score_adj()) < -1000)
		return DERR(d, "pid %d: cannot read /proc/self/oom_score_adj", d->pid);
	int sub = 0;
	co_prctl(PR_GET_CHILD_SUBREAPER, (long)&sub, 0, 0, 0);
	a->child_subreaper = sub != 0;
	a->thp_disable = co_prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) > 0;
	a->membarrier = membarrier_registrations();
	a->attrs = 1;
	/* KSM's merge-any belongs to the address space: before a snapshot is forked, as the rest */
	long mm = co_prctl(CO_PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	d->attrs8 = (struct co_pattrs8){ .attrs = 1, .memory_merge = mm > 0 };
	return co_cgroup_collect(d);
}
#else /* the restorer */

/*
 * The membarrier commands the process had registered, registered again:
 * the registration belongs to the address space, which the restorer's
 * exec made new.  Before the threads exist: registering with one thread
 * is also the cheapest (no grace period to wait for).
 */
static int membarrier_restore(struct co_rstctx *rc)
{
	uint32_t want = rc->proc->a.membarrier & CO_MEMBARRIER_REGISTERS;
	for (int bit = 0; want >> bit; bit++) {
		if (!(want >> bit & 1))
			continue;
		long r = co_sys3(SYS_membarrier, 1L << bit, 0, 0);
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: cannot register membarrier command %#lx again "
				      "(errno %ld%s)", rc->proc->pid, 1L << bit, -r,
				      r == -EINVAL ? ": this kernel does not offer it" : "");
	}
	return 0;
}

/*
 * Write text to /proc/self/NAME as the restorer: the file is root's while
 * the program's filesystem ids are taken.  0, -errno, or IDS_LOST when
 * the program's ids cannot be taken again (rc->err says so).
 */
#define IDS_LOST 1
static long write_self(struct co_rstctx *rc, const char *name, const char *text, size_t n)
{
	char path[64];
	co_fmt(path, sizeof(path), "/proc/self/%s", name);
	co_creds_files(&rc->ids, 0);
	int fd = (int)co_open(path, O_WRONLY | O_CLOEXEC, 0);
	long r = fd < 0 ? fd : co_write(fd, text, n);
	if (fd >= 0)
		co_close(fd);
	if (co_creds_files(&rc->ids, 1)) {
		co_err(rc->err, rc->errlen, "pid %d: cannot open its files as uid %u again", rc->proc->pid,
		       rc->ids.uid[3]);
		return IDS_LOST;
	}
	return r < 0 ? r : 0;
}

/*
 * The audit login uid, the manifest's: written again when the restart's
 * differs (the restorer inherited the caller's), before any thread is
 * made (threads inherit it).  The kernel then gives the process a new
 * session id; none can be asked for, so a session id is kept only with
 * a login uid that was kept.  Writing needs nothing while the restart's
 * is unset, CAP_AUDIT_CONTROL otherwise, and is never allowed when the
 * login uid is immutable (audit's loginuid_immutable): then the restart
 * fails, naming both.  As CRIU, which restores the login uid alone.
 */
static int loginuid_restore(struct co_rstctx *rc)
{
	int64_t have;
	if (!rc->ids.audit || co_read_number("/proc/self/loginuid", &have) || (uint32_t)have == rc->ids.loginuid)
		return 0;
	char buf[16];
	long r = write_self(rc, "loginuid", buf, (size_t)co_fmt(buf, sizeof(buf), "%u", rc->ids.loginuid));
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot set its audit login uid back to %u: the restart's is "
			      "%u (errno %ld%s)", rc->proc->pid, rc->ids.loginuid, (uint32_t)have, -r,
			      r == -EPERM ? ": changing a login uid once set needs CAP_AUDIT_CONTROL" : "");
	return r == IDS_LOST ? -1 : 0;
}

/*
 * KSM merging every region (PR_SET_MEMORY_MERGE), on or off as recorded:
 * the restorer's exec may have kept a parent's.  A kernel before 6.4 or
 * without KSM answers EINVAL: fails only when it was on.
 */
static int memory_merge_restore(struct co_rstctx *rc)
{
	const struct co_pattrs8 *a = &rc->proc->a8;
	if (!a->attrs)
		return 0;
	long have = co_prctl(CO_PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	if ((have > 0) == (a->memory_merge != 0) || (have < 0 && !a->memory_merge))
		return 0;
	long r = co_prctl(CO_PR_SET_MEMORY_MERGE, a->memory_merge != 0, 0, 0, 0);
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot turn KSM merging of all its memory (PR_SET_MEMORY_MERGE) "
			      "%s again (errno %ld%s)", rc->proc->pid, a->memory_merge ? "on" : "off", -r,
			      r == -EINVAL ? ": this kernel does not offer it" : "");
	return 0;
}

int co_pattrs_restore(struct co_rstctx *rc)
{
	const struct co_pattrs *a = &rc->proc->a;
	int pid = rc->proc->pid;
	if (loginuid_restore(rc))
		return -1;
	if (!a->attrs)
		return 0;
	char buf[32];
	long r = 0;
	if (oom_score_adj() != a->oom_score_adj) {
		int n = (int)co_fmt(buf, sizeof(buf), "%d\n", a->oom_score_adj);
		if ((r = write_self(rc, "oom_score_adj", buf, (size_t)n)) == IDS_LOST)
			return -1;
	}
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot set its oom_score_adj to %d (errno %ld%s)", pid,
			      a->oom_score_adj, -r, r == -EACCES ? ": lowering it needs CAP_SYS_RESOURCE" : "");
	if (a->child_subreaper && (r = co_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot make it a child subreaper again (errno %ld)", pid, -r);
	if (a->thp_disable && (r = co_prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)) < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot disable huge pages for it again (errno %ld)", pid, -r);
	return membarrier_restore(rc) || memory_merge_restore(rc) ? -1 : 0;
}

/* The interval timers, with the time each had left: the last thing before the program runs. */
int co_itimers_restore(struct co_rstctx *rc)
{
	const struct co_pattrs *a = &rc->proc->a;
	if (!a->attrs)
		return 0;
	for (int which = 0; which < 3; which++) {
		const struct co_itimer *t = &a->itimer[which];
		long v[4] = { t->interval_sec, t->interval_usec, t->value_sec, t->value_usec };
		/*
		 * No time left but an interval: ITIMER_REAL expired and waits to be
		 * armed again when the program takes its SIGALRM (queued, and kept
		 * with the other signals).  Armed for a whole interval instead:
		 * setitimer with no time left would disarm it and drop the interval.
		 */
		if (!v[2] && !v[3]) {
			if (!v[0] && !v[1])
				continue; /* disarmed */
			v[2] = v[0];
			v[3] = v[1];
		}
		long r = co_sys3(SYS_setitimer, which, (long)v, 0);
		if (r < 0)
			return co_err(rc->err, rc->errlen, "pid %d: cannot set its interval timer %d (errno %ld)",
				      rc->proc->pid, which, -r);
	}
	return 0;
}

/*
 * Its NUMA memory policy (set_mempolicy: the calling thread's), read back
 * after: the kernel silently drops the nodes this machine lacks (or its
 * cpuset does not allow) from a policy without MPOL_F_STATIC_NODES or
 * MPOL_F_RELATIVE_NODES, which the restart must not take as it.
 */
static int mempolicy_restore(const struct co_tattrs8 *a, const char **what)
{
	uint64_t nodes[16];
	int mode = 0;
	long r = co_sys5(SYS_get_mempolicy, (long)&mode, (long)nodes, CO_MPOL_NODES, 0, 0);
	if (a->mpol_mode < 0 || (r == 0 && mode == a->mpol_mode && !co_memcmp(nodes, a->mpol_nodes, sizeof(nodes))))
		return 0;
	*what = "its NUMA memory policy (set_mempolicy)";
	/* the kernel counts one bit fewer than maxnode */
	if ((r = co_sys3(SYS_set_mempolicy, a->mpol_mode, (long)a->mpol_nodes, CO_MPOL_NODES + 1)) < 0) {
		if (r == -EINVAL)
			*what = "its NUMA memory policy: a node it names is not on this machine (or not in its cpuset)";
		return (int)r;
	}
	if (co_sys5(SYS_get_mempolicy, (long)&mode, (long)nodes, CO_MPOL_NODES, 0, 0) < 0 || mode != a->mpol_mode ||
	    co_memcmp(nodes, a->mpol_nodes, sizeof(nodes))) {
		*what = "its NUMA memory policy: a node it names is not on this machine (or not in its cpuset)";
		return -EINVAL;
	}
	return 0;
}

/*
 * Utilization clamps: sched_getattr reports them (0 and 1024 by default;
 * both 0 on a kernel without them), sched_setattr sets them only when
 * asked with SCHED_FLAG_UTIL_CLAMP_MIN and _MAX.  Asked when the
 * recorded ones are not the default and differ from the thread's, or
 * the thread's are not the default (back to it).
 */
#define CO_SCHED_FLAG_UTIL_CLAMP (0x20 | 0x40)
#define CO_UCLAMP_MAX 1024
static int clamp_default(const struct co_sched_attr *a)
{
	return a->util_min == 0 && (a->util_max == CO_UCLAMP_MAX || a->util_max == 0);
}

static int clamps_wanted(const struct co_sched_attr *want, const struct co_sched_attr *cur)
{
	if (clamp_default(want))
		return !clamp_default(cur);
	return want->util_min != cur->util_min || want->util_max != cur->util_max;
}

/*
 * Format 8's: the nice value after sched_setattr (which ignores it for
 * SCHED_IDLE and has none for SCHED_FIFO and SCHED_RR), the I/O priority,
 * the machine-check kill policy, the TSC access and the memory policy.
 * Only what differs is set.  Failures (a lower nice or the real-time
 * I/O class without privilege) fail the restart.
 */
static int tattrs8_restore(const struct co_tattrs8 *a, const char **what)
{
	if (!a->attrs)
		return 0;
	long r = co_sys2(SYS_getpriority, CO_PRIO_PROCESS, 0);
	*what = "its nice value (setpriority)";
	if (r < 0 || 20 - r != a->nice)
		r = co_sys3(SYS_setpriority, CO_PRIO_PROCESS, 0, a->nice);
	if (r < 0)
		return (int)(r == -EACCES ? -EPERM : r);
	*what = "its I/O priority (ioprio_set)";
	r = co_sys2(SYS_ioprio_get, CO_IOPRIO_WHO_PROCESS, 0);
	if ((r < 0 || r != a->ioprio) && (r = co_sys3(SYS_ioprio_set, CO_IOPRIO_WHO_PROCESS, 0, a->ioprio)) < 0)
		return (int)r;
	*what = "its machine-check kill policy (PR_MCE_KILL)";
	r = co_prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	if (r != a->mce_kill && a->mce_kill >= 0) {
		r = a->mce_kill == CO_MCE_KILL_DEFAULT ? co_prctl(PR_MCE_KILL, CO_MCE_KILL_CLEAR, 0, 0, 0)
						       : co_prctl(PR_MCE_KILL, CO_MCE_KILL_SET, a->mce_kill, 0, 0);
		if (r < 0)
			return (int)r;
	}
	int tsc = 0;
	*what = "its TSC access (PR_SET_TSC)";
	if (co_prctl(PR_GET_TSC, (long)&tsc, 0, 0, 0) < 0 || tsc != a->tsc)
		if ((r = co_prctl(PR_SET_TSC, a->tsc, 0, 0, 0)) < 0)
			return (int)r;
	return mempolicy_restore(a, what);
}

/*
 * The calling thread's scheduling, affinity, timer slack and personality:
 * 0, or -errno with what failed in what (a static string).  An affinity
 * naming none of this machine's CPUs (another machine, fewer CPUs) is
 * left as it is: the thread runs where it can.
 */
int co_tattrs_restore(const struct co_thread *t, const char **what)
{
	const struct co_tattrs *a = &t->a;
	if (!a->attrs)
		return 0;
	/* only what differs is set: a thread made here starts with the restorer's (most often the same) */
	struct co_sched_attr s = a->sched, cur;
	co_memset(&cur, 0, sizeof(cur));
	s.size = sizeof(s);
	long r = co_sys4(SYS_sched_getattr, 0, (long)&cur, sizeof(cur), 0);
	*what = "its scheduling policy and priority";
	int clamps = r == 0 && clamps_wanted(&s, &cur);
	if (clamps) {
		/* asked for only then: a kernel without them (EOPNOTSUPP) fails only a program that had them */
		s.flags |= CO_SCHED_FLAG_UTIL_CLAMP;
		*what = "its utilization clamps (sched_setattr)";
		if (clamp_default(&s))
			s.util_min = 0, s.util_max = CO_UCLAMP_MAX;
	}
	if (r < 0 || clamps || cur.policy != s.policy || cur.flags != s.flags || cur.nice != s.nice ||
	    cur.priority != s.priority || cur.runtime != s.runtime || cur.deadline != s.deadline ||
	    cur.period != s.period)
		r = co_sys3(SYS_sched_setattr, 0, (long)&s, 0);
	if (r < 0)
		return (int)r;
	/* after sched_setattr: the nice value it ignores for some policies */
	if ((r = tattrs8_restore(&t->a8, what)) < 0)
		return (int)r;
	r = co_sys3(SYS_sched_setaffinity, 0, sizeof(a->affinity), (long)a->affinity);
	*what = "its CPU affinity";
	if (r < 0 && r != -EINVAL)
		return (int)r;
	*what = "its timer slack";
	if ((r = co_prctl(PR_SET_TIMERSLACK, (long)a->timerslack_ns, 0, 0, 0)) < 0)
		return (int)r;
	*what = "its personality";
	if ((r = co_sys1(SYS_personality, a->personality)) < 0)
		return (int)r;
	return 0;
}

/* What a change of ids clears (the parent-death signal), and what may only be set once. */
void co_tattrs_restore_late(const struct co_thread *t)
{
	const struct co_tattrs *a = &t->a;
	if (!a->attrs)
		return;
	if (a->pdeathsig)
		co_prctl(PR_SET_PDEATHSIG, a->pdeathsig, 0, 0, 0);
	if (a->no_new_privs)
		co_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}
#endif
