/*
 * semundo.c - the SEM_UNDO adjustments of this process, kept by the agent
 * (issue 13).  No kernel interface shows a process's undo list, so the
 * agent notes what the kernel does with it:
 *
 * - every semop/semtimedop (wrap.c) with a SEM_UNDO operation that
 *   succeeds: adj[semid][semnum] -= sem_op, what the kernel will add at
 *   exit;
 * - semctl SETVAL and SETALL clear the adjustments of those semaphores in
 *   every process, IPC_RMID drops the set's.  A process cannot write into
 *   another's table: the group's process table (proto.h, struct co_semkey)
 *   has a stamp per semaphore (and per set) that has adjustments
 *   somewhere, which a clearing semctl moves to a new value of the
 *   group's epoch; an adjustment last changed before its stamp is gone;
 * - a forked child starts with none (fork does not copy undo lists),
 *   threads share the process's (CLONE_SYSVSEM, one table per process).
 *
 * A checkpoint must find the table as the kernel's list is.  semctl calls
 * that clear are made with every signal blocked, noted before they are
 * let go.  A SEM_UNDO semop may block, so it cannot be: it goes through
 * co_syscall_noted (ctx.S), and the checkpoint handler, when it interrupts a
 * thread whose operation the kernel has done but that is not noted yet
 * (the result is in, or the thread stopped on the instruction right after
 * the system call), notes it itself.  Calls without SEM_UNDO go to libc
 * as before.
 *
 * The image gets the table (CO_R_SEMUNDO, src/res/semundo.c), and the
 * restorer makes each adjustment again before the program runs.
 *
 * The kernel keeps the list across an exec: the table goes with it in
 * the environment (COHORT_SEMUNDO, wrap.c's with_agent), which the new
 * program's agent takes back (and out) before it registers.  The wrappers
 * replace any the program passes; one passed to a raw execve is taken at
 * its word.
 *
 * Not seen: raw semop/semctl system calls that bypass libc (inline
 * assembly; those made through syscall(3) are seen), a raw execve, a
 * process made with CLONE_SYSVSEM without CLONE_VM (it shares the
 * kernel's list but not our table), and a SETVAL or SETALL made at the
 * very moment of a SEM_UNDO operation on the same semaphore in another
 * process, with nothing ordering the two (the table follows the order in
 * which the agents saw them).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include "agent.h"
#include "sys.h"
#include "util.h"

#define EXPORT __attribute__((visibility("default")))
#ifndef IPC_64
#define IPC_64 0x0100
#endif

/* One adjustment of this process; stamp: the group's epoch when it last changed (UNSTAMPED: no table yet). */
struct adj {
	int32_t semid, semnum, adj;
	uint64_t stamp;
};
#define UNSTAMPED (~0ULL)

static struct adj tab[CO_SEMUNDO_MAX];
static int ntab;
static int overflow;	/* an adjustment that did not fit (here, or in the group's keys): refused at checkpoint */
static int lock_word;	/* taken with every signal blocked: never by a thread interrupted while holding it */

/* A SEM_UNDO call in flight in this thread (co_semundo_op), for the checkpoint handler. */
struct call {
	long res;		/* co_syscall_noted's result; CO_RES_UNSET until the system call returned */
	int id;
	const struct sembuf *ops;
	size_t n;
	int noted;		/* exchanged to 1 by whoever notes it: the thread, or its checkpoint handler */
};
static __thread struct call *cur_call __attribute__((tls_model("initial-exec")));


/* ---- the group's keys (proto.h, struct co_semkey) ---- */

static uint64_t key_of(int semid, int semnum)
{
	return ((uint64_t)(uint32_t)semid + 1) << 32 | (uint32_t)(semnum + 1);
}

/* The slot of key k, taken for it when add (NULL: not there, or no slot left). */
static struct co_semkey *key_slot(uint64_t k, int add)
{
	struct co_table *t = co_agent.table;
	if (!t)
		return 0;
	unsigned i = (unsigned)((k * 0x9e3779b97f4a7c15ULL) >> 52) % CO_SEMKEY_SLOTS;
	for (int n = 0; n < CO_SEMKEY_SLOTS; n++, i = (i + 1) % CO_SEMKEY_SLOTS) {
		struct co_semkey *s = &t->semkeys[i];
		uint64_t cur = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);
		if (cur == 0 && add && __atomic_compare_exchange_n(&s->key, &cur, k, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return s;
		if (cur == k)
			return s;
		if (cur == 0 && !add)
			return 0;
	}
	return 0;
}

/* Semaphore semnum of semid and its whole set have keys (0), or the group has no room left (-1). */
static int key_register(int semid, int semnum)
{
	if (!co_agent.table)
		return 0; /* not registered yet: co_semundo_attach does it */
	return key_slot(key_of(semid, semnum), 1) && key_slot(key_of(semid, -1), 1) ? 0 : -1;
}

/* Cleared (SETVAL, SETALL, IPC_RMID) since the group's epoch was stamp? */
static int cleared_since(const struct adj *a, uint64_t stamp)
{
	if (stamp == UNSTAMPED)
		return 0;
	const struct co_semkey *one = key_slot(key_of(a->semid, a->semnum), 0);
	const struct co_semkey *set = key_slot(key_of(a->semid, -1), 0);
	return (one && __atomic_load_n(&one->cleared, __ATOMIC_ACQUIRE) > stamp) ||
	       (set && __atomic_load_n(&set->cleared, __ATOMIC_ACQUIRE) > stamp);
}

static uint64_t epoch_now(void)
{
	return co_agent.table ? __atomic_load_n(&co_agent.table->sem_epoch, __ATOMIC_ACQUIRE) : UNSTAMPED;
}

/* A semctl cleared semnum of semid (-1: the whole set) in every process: a new stamp for it. */
static void clear(int semid, int semnum)
{
	struct co_semkey *s = key_slot(key_of(semid, semnum), 0);
	if (!s)
		return; /* nobody has an adjustment there */
	uint64_t c = __atomic_add_fetch(&co_agent.table->sem_epoch, 1, __ATOMIC_ACQ_REL);
	uint64_t was = __atomic_load_n(&s->cleared, __ATOMIC_ACQUIRE);
	while (was < c && !__atomic_compare_exchange_n(&s->cleared, &was, c, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

/* ---- this process's table ---- */

static void drop(int i)
{
	tab[i] = tab[--ntab];
}

/* Entries cleared since they last changed go (lock held). */
static void resolve(void)
{
	for (int i = ntab - 1; i >= 0; i--)
		if (cleared_since(&tab[i], tab[i].stamp))
			drop(i);
}

static struct adj *find(int semid, int semnum)
{
	for (int i = 0; i < ntab; i++)
		if (tab[i].semid == semid && tab[i].semnum == semnum)
			return &tab[i];
	return 0;
}

/*
 * The kernel did ops on semid: its SEM_UNDO ones into the table (lock
 * held, signals blocked).  The epoch is read first: a clear stamped after
 * that may have come after these operations, and takes them with it.
 */
static void note_ops(int semid, const struct sembuf *ops, size_t n)
{
	uint64_t now = epoch_now();
	for (size_t k = 0; k < n; k++) {
		if (!(ops[k].sem_flg & SEM_UNDO) || ops[k].sem_op == 0)
			continue;
		struct adj *a = find(semid, ops[k].sem_num);
		if (a && cleared_since(a, a->stamp))
			a->adj = 0;
		if (!a && ntab == CO_SEMUNDO_MAX) {
			overflow = 1;
			continue;
		}
		if (!a) {
			a = &tab[ntab++];
			*a = (struct adj){ semid, ops[k].sem_num, 0, now };
			if (key_register(semid, ops[k].sem_num))
				overflow = 1;
		}
		a->adj -= ops[k].sem_op;
		a->stamp = now;
		if (a->adj == 0)
			drop((int)(a - tab));
	}
}

/* Whoever exchanges noted first notes the call: the thread, or its checkpoint handler. */
static void note_call(struct call *c)
{
	if (__atomic_exchange_n(&c->noted, 1, __ATOMIC_ACQ_REL))
		return;
	co_lock_word(&lock_word);
	note_ops(c->id, c->ops, c->n);
	co_unlock_word(&lock_word);
}

/* ---- the calls (wrap.c) ---- */

/*
 * Does ops (n of them) hold a SEM_UNDO operation?  0 also where the kernel
 * will answer EFAULT, and in a process of no group (never checkpointed: a
 * child it forks registers, and starts with no adjustments anyway).
 */
int co_semundo_wants(const struct sembuf *ops, size_t n)
{
	struct sembuf b[64];
	for (size_t k = 0; ops && co_agent.active && k < n;) {
		size_t m = n - k < 64 ? n - k : 64;
		struct iovec here = { b, m * sizeof(b[0]) }, there = { (void *)(ops + k), m * sizeof(b[0]) };
		long r = co_sys6(SYS_process_vm_readv, co_getpid(), (long)&here, 1, (long)&there, 1, 0);
		if (r == -ENOSYS || r == -EPERM)
			return 1; /* cannot look (seccomp): take the noting path, which reads them after the kernel */
		if (r != (long)here.iov_len)
			return 0;
		for (size_t i = 0; i < m; i++)
			if ((b[i].sem_flg & SEM_UNDO) && b[i].sem_op)
				return 1;
		k += m;
	}
	return 0;
}

/*
 * One semtimedop(2) with SEM_UNDO operations (tmo NULL: semop), noted
 * once the kernel has done it: as glibc's (the same system call, no
 * cancellation point), 0 or -1 with errno.
 */
int co_semundo_op(int id, struct sembuf *ops, size_t n, const struct timespec *tmo)
{
	struct call c = { CO_RES_UNSET, id, ops, n, 0 };
	const long a[6] = { id, (long)ops, (long)n, (long)tmo, 0, 0 };
	struct call *outer = cur_call; /* a handler of the program's that made one in the middle of another */
	cur_call = &c;
	/* the program's own call: __NR_, not SYS_, so that agent-syscalls.sh does not count it as the agent's */
	long r = co_syscall_noted(&c.res, __NR_semtimedop, a);
	uint64_t old = co_block_all();
	cur_call = outer;
	if (r == 0)
		note_call(&c);
	co_unblock(old);
	if (r == 0)
		return 0;
	errno = (int)-r;
	return -1;
}

/* In the checkpoint handler (quiesce.c), before the thread parks: an operation done but not noted is now. */
void co_semundo_handler(void *uc)
{
	struct call *c = cur_call;
	if (!c || __atomic_load_n(&c->noted, __ATOMIC_ACQUIRE))
		return;
	if (co_noted_result(&c->res, uc) == 0)
		note_call(c);
}

/* semctl(2): union semun, as glibc takes it. */
union co_semun {
	int val;
	void *ptr;
};

static int (*real_semctl)(int, int, int, ...);

/*
 * SETVAL and SETALL clear adjustments in every process, IPC_RMID drops
 * them: such a call and its stamp are one step for a checkpoint (every
 * signal blocked between them).  The others go to libc as they are.
 */
EXPORT int semctl(int id, int num, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	union co_semun arg = va_arg(ap, union co_semun); /* what glibc reads too, whether cmd uses it or not */
	va_end(ap);
	if (!real_semctl)
		real_semctl = (int (*)(int, int, int, ...))dlsym(RTLD_NEXT, "semctl");
	int c = cmd & ~IPC_64;
	if ((c != SETVAL && c != SETALL && c != IPC_RMID) || !co_agent.table)
		return real_semctl(id, num, cmd, arg);
	uint64_t old = co_block_all();
	int r = real_semctl(id, num, cmd, arg);
	int e = errno;
	if (r == 0)
		clear(id, c == SETVAL ? num : -1);
	co_unblock(old);
	errno = e;
	return r;
}

/* ---- the agent's life ---- */

/* A forked child: no adjustments (its parent's stay the parent's). */
void co_semundo_forked(void)
{
	ntab = 0;
	overflow = 0;
	lock_word = 0;
	cur_call = 0;
}

/*
 * Registered with a group's table: the adjustments get keys there, and
 * this group's epoch where they have none of it: those noted before (in
 * a constructor), or all after a restart (restamp: the restorer made
 * them again, and their stamps are the old group's).  Ones carried
 * across an exec keep theirs: the group is the same.  No thread of the
 * program runs yet.
 */
void co_semundo_attach(int restamp)
{
	uint64_t now = epoch_now();
	for (int i = 0; i < ntab; i++) {
		if (restamp || tab[i].stamp == UNSTAMPED)
			tab[i].stamp = now;
		if (key_register(tab[i].semid, tab[i].semnum))
			overflow = 1;
	}
}

/* ---- across an exec ---- */

#define ENV_NAME "COHORT_SEMUNDO"

/*
 * For an exec of this very process (not of a vfork child: a new process
 * with no list of its own): COHORT_SEMUNDO=semid.semnum.adj.stamp,... in
 * buf, or 0 when there is nothing to carry.  In the exec wrappers,
 * without malloc.
 */
size_t co_semundo_env(char *buf, size_t n)
{
	if (co_getpid() != co_agent.pid || !co_agent.active)
		return 0;
	uint64_t old = co_block_all();
	co_lock_word(&lock_word);
	size_t len = ntab ? co_fmt(buf, n, "%s=", ENV_NAME) : 0;
	for (int i = 0; i < ntab; i++)
		len += co_fmt(buf + len, n - len, "%d.%d.%d.%lu,", tab[i].semid, tab[i].semnum, tab[i].adj,
			      (unsigned long)tab[i].stamp);
	co_unlock_word(&lock_word);
	co_unblock(old);
	return len;
}

/* The number at *p (a '-' first for adj), and *p past it and its separator. */
static long env_num(const char **p)
{
	int neg = **p == '-';
	long v = (long)co_strtoul(*p + neg, p, 10);
	if (**p)
		(*p)++;
	return neg ? -v : v;
}

/* In a program just exec'd, before it registers: what the one before it carried, taken out of its environment. */
void co_semundo_from_env(void)
{
	const char *p = getenv(ENV_NAME);
	if (!p)
		return;
	while (*p && ntab < CO_SEMUNDO_MAX) {
		struct adj *a = &tab[ntab];
		a->semid = (int32_t)env_num(&p);
		a->semnum = (int32_t)env_num(&p);
		a->adj = (int32_t)env_num(&p);
		a->stamp = (uint64_t)co_strtoul(p, &p, 10);
		if (*p)
			p++;
		if (a->adj)
			ntab++;
	}
	overflow |= *p != 0;
	unsetenv(ENV_NAME);
}

/* The manager, every thread parked: the adjustments into the image (dump.c). */
int co_semundo_collect(struct co_dumpctx *d)
{
	d->nsemadj = 0;
	if (__atomic_load_n(&lock_word, __ATOMIC_ACQUIRE))
		return DERR(d, "pid %d: a thread was stopped while it noted a SEM_UNDO adjustment; "
			    "checkpoint again", d->pid);
	if (overflow)
		return DERR(d, "pid %d: SEM_UNDO adjustments on more semaphores than cohort keeps (%d per process, "
			    "%d in a group)", d->pid, CO_SEMUNDO_MAX, CO_SEMKEY_SLOTS);
	resolve();
	for (int i = 0; i < ntab; i++)
		d->semadj[d->nsemadj++] = (struct co_semadj){ tab[i].semid, tab[i].semnum, tab[i].adj, 0 };
	return 0;
}
