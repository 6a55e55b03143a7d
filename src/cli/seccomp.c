/*
 * seccomp.c - the coordinator's part in checkpointing the seccomp filters
 * of a group's threads (issue 11; the image's part is src/res/seccomp.c).
 *
 * Reading.  A thread's filters can be read only by its tracer, with
 * CAP_SYS_ADMIN: the coordinator stops each thread in filter mode for an
 * instant with ptrace, as it stops threads that block the checkpoint
 * signal (park.c), reads every filter (PTRACE_SECCOMP_GET_FILTER, index 0
 * the oldest) and its flags (PTRACE_GET_SECCOMP_METADATA: LOG) and lets it
 * go.  Threads with equal filters share one chain in the image; a chain
 * every thread of the process has, with the same no_new_privs, is
 * restored shared (TSYNC).  Without CAP_SYS_ADMIN (a user's group) or in
 * strict mode (where the agent's first system call would kill the
 * process) a process is refused, as before.
 *
 * Checking.  The agent's checkpoint code runs inside the program, under
 * the program's filters: a filter that fails or kills one of its calls
 * would break the program.  So before any signal is sent, every chain is
 * run, in a small classic-BPF interpreter, over struct seccomp_data for
 * each system call the agent makes (agent_syscalls.h, made from the
 * agent's source by scripts/agent-syscalls.sh): nr and arch as the agent
 * makes it, the arguments it passes where filters commonly look at them
 * (known_args), the instruction pointer and every other argument unknown.  Where
 * the result depends on something unknown both ways are followed, so a
 * call is allowed only when every way ends in SECCOMP_RET_ALLOW or
 * SECCOMP_RET_LOG.  The same check runs again when the image is written
 * (the threads parked, filters read again), and before the next
 * checkpoint of a restored process.
 *
 * A thread stopped while it runs leaves a system call the kernel does not
 * restart after any stop (epoll_wait, sigtimedwait) with EINTR: the
 * table's probe count is bumped before each stop, and the agent's
 * wrappers make such a call again when it moved (co_epoch, agent.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "cli.h"
#include "image.h"
#include "procfs.h"
#include "sys.h"

#define CO_PTRACE_SECCOMP_GET_FILTER 0x420c
#define CO_PTRACE_GET_SECCOMP_METADATA 0x420d
#define MAX_TASKS 4096
#define EVAL_BUDGET 1000000 /* instructions run per filter and system call, every way counted */

static const struct agent_call {
	long nr;
	const char *name;
} agent_calls[] = {
#include "agent_syscalls.h"
}, root_calls[] = {
/* those of src/agent/root.c, made only by a process in a chroot: no filter of another is checked for them */
#include "agent_root_syscalls.h"
};

/*
 * Arguments the agent passes where a filter commonly looks at them (a
 * container runtime's profile allows clone only without namespace flags,
 * socket by family, personality by value): of the agent's one call of
 * each (snapshot.c: snapshot_fork; agent.c: dial; attrs.c: the personality read).  A
 * call of the agent's with other arguments must be added here; any
 * argument not here is unknown.
 */
static const struct known_args {
	long nr;
	unsigned known;		/* bit i: argument i is a[i] */
	uint64_t a[6];
} known_args[] = {
	{ SYS_clone, 0x1b, { CLONE_PIDFD, 0, 0 /* &pidfd */, 0, 0 } },
	{ SYS_socket, 0x7, { AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0 } },
	{ SYS_personality, 0x1, { 0xffffffff /* a query */ } },
};

struct filter {
	uint32_t flags, len;
	struct sock_filter *insn;
};

struct chain {
	int nf, nt;
	struct filter *f;
	int *tids;	/* in the group's namespace */
	int nnp;	/* the first thread's no_new_privs; -1 when its threads differ */
	int unable;	/* a thread that could not install it again (neither no_new_privs nor CAP_SYS_ADMIN), or 0 */
	int main_unable;	/* the same of the main thread, when it has the chain */
};

struct co_scset {
	int pid, ntasks;
	uint32_t *probes;	/* the table's count of stops, bumped before each */
	char comm[64];
	int nc;
	struct chain *c;
};

static void free_chain(struct chain *c)
{
	for (int i = 0; i < c->nf; i++)
		free(c->f[i].insn);
	free(c->f);
	free(c->tids);
	memset(c, 0, sizeof(*c));
}

void co_seccomp_free(struct co_scset *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->nc; i++)
		free_chain(&s->c[i]);
	free(s->c);
	free(s);
}

/* Every filter of stopped thread htid into c, oldest first: 0, or -errno. */
static int read_filters(int htid, struct chain *c)
{
	for (long i = 0;; i++) {
		long n = ptrace(CO_PTRACE_SECCOMP_GET_FILTER, htid, (void *)i, NULL);
		if (n < 0)
			return errno == ENOENT && i > 0 ? 0 : -errno;
		struct filter *f = realloc(c->f, sizeof(*f) * (size_t)(c->nf + 1));
		if (!f)
			return -ENOMEM;
		c->f = f;
		f = &c->f[c->nf];
		f->len = (uint32_t)n;
		f->insn = calloc((size_t)n, sizeof(struct sock_filter));
		if (!f->insn)
			return -ENOMEM;
		c->nf++;
		if (ptrace(CO_PTRACE_SECCOMP_GET_FILTER, htid, (void *)i, f->insn) != n)
			return errno ? -errno : -EIO;
		struct { uint64_t filter_off, flags; } md = { (uint64_t)i, 0 };
		if (ptrace(CO_PTRACE_GET_SECCOMP_METADATA, htid, (void *)sizeof(md), &md) < 0)
			return -errno;
		f->flags = (uint32_t)md.flags;
	}
}

static int same_filters(const struct chain *a, const struct chain *b)
{
	if (a->nf != b->nf)
		return 0;
	for (int i = 0; i < a->nf; i++)
		if (a->f[i].flags != b->f[i].flags || a->f[i].len != b->f[i].len ||
		    memcmp(a->f[i].insn, b->f[i].insn, a->f[i].len * sizeof(struct sock_filter)))
			return 0;
	return 1;
}

/* Thread t's filters (in c, taken or freed) into s: to the chain with the same ones, or a new one. */
static int add_thread(struct co_scset *s, struct chain *c, const struct co_sctask *t)
{
	int tid = t->tid, nnp = t->nnp;
	/* seccomp(2) installs a filter only with no_new_privs or CAP_SYS_ADMIN: a restored thread too */
	int unable = !nnp && !(t->cap_eff & (1ULL << 21 /* CAP_SYS_ADMIN */));
	struct chain *to = NULL;
	for (int i = 0; i < s->nc && !to; i++)
		if (same_filters(&s->c[i], c))
			to = &s->c[i];
	if (!to) {
		struct chain *more = realloc(s->c, sizeof(*more) * (size_t)(s->nc + 1));
		if (!more)
			return -1;
		s->c = more;
		to = &s->c[s->nc++];
		*to = *c;
		to->tids = NULL;
		to->nt = 0;
		to->nnp = nnp;
		memset(c, 0, sizeof(*c));
	} else {
		free_chain(c);
	}
	int *more_tids = realloc(to->tids, sizeof(*more_tids) * (size_t)(to->nt + 1));
	if (!more_tids)
		return -1;
	to->tids = more_tids;
	to->tids[to->nt++] = tid;
	if (to->nnp != nnp)
		to->nnp = -1;
	if (unable && !to->unable)
		to->unable = tid;
	if (unable && tid == s->pid)
		to->main_unable = tid;
	return 0;
}

/* Every thread of the process has chain c, with the same no_new_privs: restored shared (TSYNC). */
static int shared_by_all(const struct co_scset *s, const struct chain *c)
{
	return c->nt == s->ntasks && c->nnp >= 0;
}

/* Stop thread t, read its chain into s, let it go: 0, 1 gone, or -1 with err. */
static int read_thread(struct co_scset *s, const struct co_sctask *t, char *err, size_t errlen)
{
	if (s->probes)
		__atomic_add_fetch(s->probes, 1, __ATOMIC_RELEASE);
	int inject, r = co_park_stop(t->host_tid, &inject);
	if (r == 1)
		return 1;
	if (r < 0) {
		if (r == -2)
			snprintf(err, errlen, "pid %d (%s): thread %d runs under seccomp (filter mode), and cohort cannot stop "
				 "it with ptrace to read its filters: %s%s", s->pid, s->comm, t->tid, strerror(errno),
				 co_park_why(errno));
		else
			snprintf(err, errlen, "pid %d (%s): thread %d runs under seccomp (filter mode) and did not stop within "
				 "2 s for cohort to read its filters (an uninterruptible wait?)", s->pid, s->comm, t->tid);
		return -1;
	}
	struct chain c;
	memset(&c, 0, sizeof(c));
	int e = read_filters(t->host_tid, &c);
	ptrace(PTRACE_DETACH, t->host_tid, 0, (void *)(long)inject);
	if (e == -ESRCH) {
		free_chain(&c);
		return 1;
	}
	if (e == -EACCES || e == -EPERM)
		snprintf(err, errlen, "pid %d (%s): thread %d runs under seccomp (filter mode): cohort cannot checkpoint it "
			 "(reading its filters needs CAP_SYS_ADMIN: run cohort as root)", s->pid, s->comm, t->tid);
	else if (e)
		snprintf(err, errlen, "pid %d (%s): thread %d runs under seccomp (filter mode), and cohort cannot read its "
			 "filters: %s", s->pid, s->comm, t->tid, strerror(-e));
	else if (add_thread(s, &c, t))
		snprintf(err, errlen, "pid %d (%s): out of memory reading seccomp filters", s->pid, s->comm);
	else
		return 0;
	free_chain(&c);
	return -1;
}

int co_seccomp_read(int pid, int host_pid, uint32_t *probes, struct co_scset **out, char *err, size_t errlen)
{
	static struct co_sctask t[MAX_TASKS];
	*out = NULL;
	char comm[64] = "?", path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", host_pid);
	if (co_read_small(path, comm, sizeof(comm)) > 0)
		comm[strcspn(comm, "\n")] = 0;
	int n = co_seccomp_tasks(host_pid, t, MAX_TASKS), any = 0;
	if (n == -E2BIG) {
		snprintf(err, errlen, "pid %d (%s): more than %d threads to look at for seccomp filters", pid, comm, MAX_TASKS);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (t[i].mode == SECCOMP_MODE_STRICT) {
			/* read, write, exit and sigreturn only: the handler's first system call would kill the process */
			snprintf(err, errlen, "pid %d (%s): thread %d runs under seccomp (strict mode): cohort cannot "
				 "checkpoint it", pid, comm, t[i].tid);
			return -1;
		}
		any |= t[i].mode == SECCOMP_MODE_FILTER;
	}
	if (!any)
		return 0;
	struct co_scset *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "pid %d (%s): out of memory reading seccomp filters", pid, comm);
		return -1;
	}
	s->pid = pid;
	s->ntasks = n;
	s->probes = probes;
	snprintf(s->comm, sizeof(s->comm), "%s", comm);
	for (int i = 0; i < n; i++) {
		int r = t[i].mode == SECCOMP_MODE_FILTER ? read_thread(s, &t[i], err, errlen) : 0;
		if (r < 0) {
			co_seccomp_free(s);
			return -1;
		}
		s->ntasks -= r; /* gone meanwhile */
	}
	*out = s;
	return 0;
}

/* ---- the check: a classic BPF interpreter over what is known ---- */

struct val {
	int known;
	uint32_t v;
};

struct bpf_state {
	struct val a, x, m[BPF_MEMWORDS];
};

/* A word of struct seccomp_data for system call nr, as the agent makes it: nr, arch, known_args; the rest unknown. */
static struct val data_word(uint32_t k, long nr)
{
	if (k == offsetof(struct seccomp_data, nr))
		return (struct val){ 1, (uint32_t)nr };
	if (k == offsetof(struct seccomp_data, arch))
		return (struct val){ 1, AUDIT_ARCH_X86_64 };
	uint32_t args = offsetof(struct seccomp_data, args), i = (k - args) / 8;
	for (size_t j = 0; k >= args && i < 6 && j < sizeof(known_args) / sizeof(known_args[0]); j++)
		if (known_args[j].nr == nr && (known_args[j].known & (1u << i)))
			return (struct val){ 1, (uint32_t)(known_args[j].a[i] >> ((k - args) % 8 ? 32 : 0)) };
	return (struct val){ 0, 0 };
}

static int allowed_action(uint32_t ret)
{
	uint32_t action = ret & SECCOMP_RET_ACTION_FULL;
	return action == SECCOMP_RET_ALLOW || action == SECCOMP_RET_LOG;
}

/* ALU op on two known values; *ok 0 for a division by zero (the filter returns 0: kill) */
static uint32_t alu(uint16_t op, uint32_t a, uint32_t b, int *ok)
{
	*ok = 1;
	switch (op) {
	case BPF_ADD: return a + b;
	case BPF_SUB: return a - b;
	case BPF_MUL: return a * b;
	case BPF_DIV: *ok = b != 0; return b ? a / b : 0;
	case BPF_MOD: *ok = b != 0; return b ? a % b : 0;
	case BPF_AND: return a & b;
	case BPF_OR: return a | b;
	case BPF_XOR: return a ^ b;
	case BPF_LSH: return b < 32 ? a << b : 0;
	case BPF_RSH: return b < 32 ? a >> b : 0;
	case BPF_NEG: return -a;
	}
	*ok = 0;
	return 0;
}

static int jump_taken(uint16_t op, uint32_t a, uint32_t b)
{
	switch (op) {
	case BPF_JEQ: return a == b;
	case BPF_JGT: return a > b;
	case BPF_JGE: return a >= b;
	case BPF_JSET: return (a & b) != 0;
	}
	return 0;
}

/*
 * 1 when some way through filter f from pc, in state st, for system call
 * nr, returns an action other than ALLOW or LOG (or when the way cannot
 * be told within the budget); 0 when none does.
 */
static int may_deny(const struct filter *f, uint32_t pc, struct bpf_state st, long nr, long *budget)
{
	for (; pc < f->len; pc++) {
		if (--*budget < 0)
			return 1;
		const struct sock_filter *in = &f->insn[pc];
		uint16_t cls = BPF_CLASS(in->code);
		struct val src = BPF_SRC(in->code) == BPF_X ? st.x : (struct val){ 1, in->k };
		int ok;
		switch (cls) {
		case BPF_LD:
		case BPF_LDX: {
			struct val v;
			if (BPF_MODE(in->code) == BPF_ABS && BPF_SIZE(in->code) == BPF_W)
				v = data_word(in->k, nr);
			else if (BPF_MODE(in->code) == BPF_IMM)
				v = (struct val){ 1, in->k };
			else if (BPF_MODE(in->code) == BPF_MEM && in->k < BPF_MEMWORDS)
				v = st.m[in->k];
			else if (BPF_MODE(in->code) == BPF_LEN)
				v = (struct val){ 1, sizeof(struct seccomp_data) };
			else
				return 1;
			*(cls == BPF_LD ? &st.a : &st.x) = v;
			break;
		}
		case BPF_ST:
		case BPF_STX:
			if (in->k >= BPF_MEMWORDS)
				return 1;
			st.m[in->k] = cls == BPF_ST ? st.a : st.x;
			break;
		case BPF_ALU:
			if (BPF_OP(in->code) == BPF_NEG)
				src = (struct val){ 1, 0 };
			if (!st.a.known || !src.known) {
				/* a division by an unknown X may be by zero */
				if ((BPF_OP(in->code) == BPF_DIV || BPF_OP(in->code) == BPF_MOD) && !src.known)
					return 1;
				st.a.known = 0;
				break;
			}
			st.a.v = alu(BPF_OP(in->code), st.a.v, src.v, &ok);
			if (!ok)
				return 1;
			break;
		case BPF_JMP:
			if (BPF_OP(in->code) == BPF_JA) {
				pc += in->k;
				break;
			}
			if (st.a.known && src.known) {
				pc += jump_taken(BPF_OP(in->code), st.a.v, src.v) ? in->jt : in->jf;
				break;
			}
			/* unknown: both ways */
			if (may_deny(f, pc + 1 + in->jt, st, nr, budget))
				return 1;
			pc += in->jf;
			break;
		case BPF_RET:
			if (BPF_RVAL(in->code) == BPF_K)
				return !allowed_action(in->k);
			return !(st.a.known && allowed_action(st.a.v));
		case BPF_MISC:
			if (BPF_MISCOP(in->code) == BPF_TAX)
				st.x = st.a;
			else
				st.a = st.x;
			break;
		default:
			return 1;
		}
	}
	return 1; /* ran off the end: the kernel does not take such a filter */
}

/* The first system call of calls[n] that some filter of chain c does not allow, or NULL. */
static const char *first_denied(const struct chain *c, const struct agent_call *calls, size_t n)
{
	for (size_t k = 0; k < n; k++)
		for (int i = 0; i < c->nf; i++) {
			struct bpf_state st;
			memset(&st, 0, sizeof(st));
			long budget = EVAL_BUDGET;
			if (may_deny(&c->f[i], 0, st, calls[k].nr, &budget))
				return calls[k].name;
		}
	return NULL;
}

int co_seccomp_check(const struct co_scset *s, int chrooted, char *err, size_t errlen)
{
	for (int i = 0; s && i < s->nc; i++) {
		const struct chain *c = &s->c[i];
		const char *call = first_denied(c, agent_calls, sizeof(agent_calls) / sizeof(agent_calls[0]));
		if (!call && chrooted)
			call = first_denied(c, root_calls, sizeof(root_calls) / sizeof(root_calls[0]));
		/* who installs it at the restart: the main thread for all (TSYNC), or each thread */
		int unable = shared_by_all(s, c) ? c->main_unable : c->unable;
		if (call)
			snprintf(err, errlen, "pid %d (%s): thread %d's seccomp filter does not allow %s: cohort cannot "
				 "checkpoint it", s->pid, s->comm, c->tids[0], call);
		else if (unable)
			snprintf(err, errlen, "pid %d (%s): thread %d runs under seccomp filters without no_new_privs or "
				 "CAP_SYS_ADMIN, which a restart needs to install them again: cohort cannot checkpoint it",
				 s->pid, s->comm, unable);
		if (call || unable)
			return -1;
	}
	return 0;
}

/* ---- the records, for the agent ---- */

/* Chain c as a CO_R_SECCOMP payload behind its length (u64), at the end of fd: 0 or -1. */
static int write_chain(int fd, const struct co_scset *s, const struct chain *c)
{
	struct co_seccomp h = { 0, (uint32_t)c->nt, (uint32_t)c->nf, 0 };
	for (int i = 0; i < c->nf; i++)
		h.ninsns += c->f[i].len;
	if (shared_by_all(s, c))
		h.flags |= CO_SC_ALL;
	uint64_t len = sizeof(h) + sizeof(int32_t) * (uint64_t)c->nt + sizeof(struct co_sfilter) * (uint64_t)c->nf +
		       sizeof(struct sock_filter) * (uint64_t)h.ninsns;
	if (len > CO_SECCOMP_MAX) {
		errno = E2BIG;
		return -1;
	}
	int bad = write(fd, &len, sizeof(len)) != sizeof(len) || write(fd, &h, sizeof(h)) != sizeof(h);
	for (int i = 0; i < c->nt && !bad; i++) {
		int32_t tid = c->tids[i];
		bad = write(fd, &tid, sizeof(tid)) != sizeof(tid);
	}
	for (int i = 0; i < c->nf && !bad; i++) {
		struct co_sfilter sf = { c->f[i].flags, c->f[i].len };
		size_t n = sizeof(struct sock_filter) * c->f[i].len;
		bad = write(fd, &sf, sizeof(sf)) != sizeof(sf) || write(fd, c->f[i].insn, n) != (ssize_t)n;
	}
	return bad ? -1 : 0;
}

int co_seccomp_memfd(const struct co_scset *s)
{
	int fd = memfd_create("cohort-seccomp", MFD_CLOEXEC);
	for (int i = 0; fd >= 0 && i < s->nc; i++)
		if (write_chain(fd, s, &s->c[i])) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
	return fd;
}
