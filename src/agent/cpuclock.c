/*
 * cpuclock.c - the CPU-time clocks go on across a restart.
 *
 * The kernel counts a thread's and a process's CPU time from its birth
 * and lets nobody set it: a restored process is a new one, and
 * CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, the clocks of
 * pthread_getcpuclockid and clock_getcpuclockid, getrusage, times and
 * clock would start again from about 0.  A program that measures its own
 * CPU time (benchmarks, profilers, CPU-time limits, Python's
 * time.process_time) would see it go backwards.
 *
 * So the times the program saw are noted at each checkpoint, with every
 * thread parked (each thread its own, in the handler; the manager the
 * process's), into the image's records and our own memory, which a
 * restart brings back.  After a restart each thread measures its clocks
 * again before it leaves the handler, the manager the process's: the
 * difference (what the restart took away, net of what the restorer
 * spent) is an offset the wrappers below add.  The next checkpoint notes
 * the times with the offsets added, so rounds accumulate.
 *
 * The calling thread's offsets are in its TLS: a thread made after the
 * restart starts with none, whatever its tid.  Other threads' are in a
 * table by tid, built while every thread is parked; a thread made since
 * (pthread_create, clone) has its tid's entry cleared, since tids are
 * handed out again.  Only the kernel's SCHED clocks (what libc's calls
 * hand out) are offset; what stays as the kernel has it is listed in
 * docs/architecture.md, "CPU-time clocks".
 *
 * clock_gettime is hot: for every clock that is not a CPU clock the
 * wrapper is a compare and a jump to libc's own (vDSO) function.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/times.h>
#include <time.h>

#include "agent.h"
#include "sys.h"
#include "util.h"

#define NS_PER_S 1000000000LL

/* The kernel's encoding of a CPU clock (linux/posix-timers.h): ~pid << 3 | perthread << 2 | which. */
#define CPU_PID(c) ((int)~((c) >> 3))
#define CPU_PERTHREAD(c) (((c) & 4) != 0)
#define CPU_WHICH(c) ((c) & 3)
#define CPU_SCHED 2 /* sum_exec_runtime: what clock_gettime on libc's CPU clocks reads */

/* What restarts took from the process's clocks (the program's time minus the kernel's). */
static struct {
	int64_t ns, utime_ns, stime_ns, cutime_ns, cstime_ns;
} poff;
/* The process's times at the last checkpoint, as the program saw them. */
static struct co_pcpu saved;
/* Every restored thread's offsets, by ascending tid (built with the threads parked). */
static struct tid_off {
	int tid;
	struct co_cpuoff o;
} tab[CO_MAX_THREADS];
static int ntab;
/* A restart has made offsets: until then every clock is the kernel's as it is. */
static int on;
/* The calling thread's offsets, and its tid when it was restored (0: made since, none). */
static __thread struct {
	int tid;
	struct co_cpuoff o;
} mine __attribute__((tls_model("initial-exec")));

/* ---- the kernel's times, by raw calls (the handler, the manager) ---- */

static int64_t clock_raw(int clk)
{
	struct co_timespec ts;
	if (co_clock_gettime(clk, &ts) < 0)
		return 0;
	return ts.sec * NS_PER_S + ts.nsec;
}

static int64_t tv_ns(struct timeval tv)
{
	return (int64_t)tv.tv_sec * NS_PER_S + (int64_t)tv.tv_usec * 1000;
}

/* getrusage(who) user and system time, in ns (0 where it fails) */
static void rusage_raw(int who, int64_t *u, int64_t *s)
{
	struct rusage ru;
	if (co_sys2(SYS_getrusage, who, (long)&ru) < 0) {
		*u = *s = 0;
		return;
	}
	*u = tv_ns(ru.ru_utime);
	*s = tv_ns(ru.ru_stime);
}

/* ---- at the checkpoint, and after a restart ---- */

/* In the handler of a thread as it parks: its times as the program sees them. */
void co_cpuclock_save_thread(struct co_tcpu *c)
{
	int64_t u, s;
	rusage_raw(RUSAGE_THREAD, &u, &s);
	c->ns = clock_raw(CLOCK_THREAD_CPUTIME_ID) + mine.o.ns;
	c->utime_ns = u + mine.o.utime_ns;
	c->stime_ns = s + mine.o.stime_ns;
	c->cpu = 1;
}

/*
 * In the handler of a thread back from a restart, before it says it has
 * arrived: what the restart took from its clocks, for its TLS and for the
 * manager's table (t->cpu).  It runs no more until the release.
 */
void co_cpuclock_thread_back(struct co_tslot *t)
{
	const struct co_tcpu *c = &t->rec.cpu;
	struct co_cpuoff o = { 0, 0, 0 };
	if (c->cpu) {
		int64_t u, s;
		rusage_raw(RUSAGE_THREAD, &u, &s);
		o.ns = c->ns - clock_raw(CLOCK_THREAD_CPUTIME_ID);
		o.utime_ns = c->utime_ns - u;
		o.stime_ns = c->stime_ns - s;
	}
	t->cpu = o;
	mine.tid = t->tid;
	mine.o = o;
}

/*
 * By the manager, once every thread is parked: the process's times as the
 * program sees them.  Before the DUMP, so before the written pages are
 * collected for an incremental image (co_dirty_collect): what is written
 * after that may be left to the parent image's copy of the page.
 */
void co_cpuclock_save_proc(void)
{
	int64_t u, s, cu, cs;
	rusage_raw(RUSAGE_SELF, &u, &s);
	rusage_raw(RUSAGE_CHILDREN, &cu, &cs);
	saved.ns = clock_raw(CLOCK_PROCESS_CPUTIME_ID) + poff.ns;
	saved.utime_ns = u + poff.utime_ns;
	saved.stime_ns = s + poff.stime_ns;
	saved.cutime_ns = cu + poff.cutime_ns;
	saved.cstime_ns = cs + poff.cstime_ns;
	saved.cpu = 1;
}

/* For the process record. */
const struct co_pcpu *co_cpuclock_saved(void)
{
	return &saved;
}

/*
 * By the manager after a restart, once every thread has measured its own
 * (co_cpuclock_thread_back): the process's offsets, and the table of the
 * threads'.  Nothing of the program runs meanwhile.
 */
void co_cpuclock_restarted(void)
{
	if (!saved.cpu)
		return;
	int64_t u, s, cu, cs;
	rusage_raw(RUSAGE_SELF, &u, &s);
	rusage_raw(RUSAGE_CHILDREN, &cu, &cs);
	poff.ns = saved.ns - clock_raw(CLOCK_PROCESS_CPUTIME_ID);
	poff.utime_ns = saved.utime_ns - u;
	poff.stime_ns = saved.stime_ns - s;
	poff.cutime_ns = saved.cutime_ns - cu;
	poff.cstime_ns = saved.cstime_ns - cs;
	int n = 0;
	for (int i = 0; i < co_agent.nthreads; i++) {
		const struct co_tslot *t = &co_agent.threads[i];
		if (t->rec.flags & CO_T_MANAGER)
			continue;
		/* /proc/self/task lists them in order: an insertion sort only checks */
		int j = n++;
		for (; j > 0 && tab[j - 1].tid > t->tid; j--)
			tab[j] = tab[j - 1];
		tab[j] = (struct tid_off){ t->tid, t->cpu };
	}
	ntab = n;
	__atomic_store_n(&on, 1, __ATOMIC_RELEASE);
}

static struct tid_off *find(int tid)
{
	int lo = 0, hi = ntab;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (tab[mid].tid < tid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ntab && tab[lo].tid == tid ? &tab[lo] : 0;
}

/* A thread made since the restart may have a gone thread's tid: it has no offsets. */
void co_cpuclock_forget(int tid)
{
	if (!__atomic_load_n(&on, __ATOMIC_ACQUIRE))
		return;
	struct tid_off *e = find(tid);
	if (!e)
		return;
	__atomic_store_n(&e->o.ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->o.utime_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->o.stime_ns, 0, __ATOMIC_RELAXED);
}

/* A new process (fork): the kernel counts its clocks from 0, and so does it. */
void co_cpuclock_forked(void)
{
	on = 0;
	ntab = 0;
	co_memset(&poff, 0, sizeof(poff));
	co_memset(&saved, 0, sizeof(saved));
	co_memset(&mine, 0, sizeof(mine));
}

/* ---- which offset a clock has ---- */

/*
 * The offset of CPU clock c (after a restart): the process's for its own
 * process clock (pid 0, its pid, or the calling thread's tid, which the
 * kernel takes for the process too), the calling thread's from its TLS,
 * another thread's from the table.  0 for the PROF and VIRT kinds and for
 * other processes.
 */
static int64_t clock_off(clockid_t c)
{
	if (c == CLOCK_PROCESS_CPUTIME_ID)
		return poff.ns;
	if (c == CLOCK_THREAD_CPUTIME_ID)
		return mine.o.ns;
	if (c >= 0 || CPU_WHICH(c) != CPU_SCHED)
		return 0;
	int id = CPU_PID(c);
	if (!CPU_PERTHREAD(c))
		return id == 0 || id == co_agent.pid || id == mine.tid || id == (int)co_gettid() ? poff.ns : 0;
	if (id == 0 || id == mine.tid)
		return mine.o.ns;
	const struct tid_off *e = find(id);
	int64_t o = e ? __atomic_load_n(&e->o.ns, __ATOMIC_RELAXED) : 0;
	/* ourselves, made since the restart with a restored thread's tid (before pthread_create cleared it) */
	if (o && id == (int)co_gettid())
		return 0;
	return o;
}

/* *t + off ns, off of either sign, for a time the kernel wrote */
static void ts_shift(struct timespec *t, int64_t off)
{
	int64_t s = off / NS_PER_S, n = off % NS_PER_S;
	t->tv_sec += s;
	t->tv_nsec += n;
	if (t->tv_nsec < 0) {
		t->tv_nsec += NS_PER_S;
		t->tv_sec--;
	} else if (t->tv_nsec >= NS_PER_S) {
		t->tv_nsec -= NS_PER_S;
		t->tv_sec++;
	}
}

/*
 * A TIMER_ABSTIME sleep on a CPU clock: the program's deadline as the
 * kernel counts that clock now (out), 1; 0 when it is the same (no
 * offset, not a CPU clock, or a time the kernel refuses as it is).  A
 * deadline before the kernel's 0 is 0: already past.
 */
int co_cpuclock_to_kernel(clockid_t c, const struct timespec *t, struct timespec *out)
{
	if (!co_cpu_clock(c) || !__atomic_load_n(&on, __ATOMIC_ACQUIRE))
		return 0;
	if (t->tv_sec < 0 || t->tv_nsec < 0 || t->tv_nsec >= NS_PER_S)
		return 0;
	int64_t off = clock_off(c);
	if (!off)
		return 0;
	*out = *t;
	/* a deadline near the largest time_t stays there rather than wrapping */
	if (off < 0 && out->tv_sec > 0x7fffffffffffffffLL - 1 - (-off / NS_PER_S))
		return 1;
	ts_shift(out, -off);
	if (out->tv_sec < 0)
		out->tv_sec = out->tv_nsec = 0;
	return 1;
}

/* ---- the wrappers ---- */

/* libc's own clock_gettime (the vDSO's), found on the first call if one comes before our constructor */
static int first_gettime(clockid_t c, struct timespec *tp);
static int (*real_gettime)(clockid_t, struct timespec *) = first_gettime;

static int raw_gettime(clockid_t c, struct timespec *tp)
{
	long r = co_clock_gettime(c, tp);
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return 0;
}

static int first_gettime(clockid_t c, struct timespec *tp)
{
	co_cpuclock_init();
	return real_gettime(c, tp);
}

DECL(int, getrusage, int, struct rusage *);
DECL(clock_t, times, struct tms *);
DECL(int, pthread_create, pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

void co_cpuclock_init(void)
{
	void *f = dlsym(RTLD_NEXT, "clock_gettime");
	real_gettime = f ? (int (*)(clockid_t, struct timespec *))f : raw_gettime;
	LOAD(getrusage);
	LOAD(times);
	LOAD(pthread_create);
}

/* Out of line: the wrapper's other path stays a compare and a jump (no frame of its own). */
static __attribute__((noinline)) int cpu_gettime(clockid_t c, struct timespec *tp)
{
	int r = real_gettime(c, tp);
	if (r == 0 && __atomic_load_n(&on, __ATOMIC_ACQUIRE))
		ts_shift(tp, clock_off(c));
	return r;
}

EXPORT int clock_gettime(clockid_t c, struct timespec *tp)
{
	if (__builtin_expect(co_cpu_clock(c), 0))
		return cpu_gettime(c, tp);
	return real_gettime(c, tp);
}

/* glibc's clock() reads the process clock past the wrapper above: the same, through it. */
EXPORT clock_t clock(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return (clock_t)-1;
	return ts.tv_sec * CLOCKS_PER_SEC + ts.tv_nsec / (1000000000 / CLOCKS_PER_SEC);
}

static void tv_shift(struct timeval *tv, int64_t off_ns)
{
	int64_t us = (int64_t)tv->tv_sec * 1000000 + tv->tv_usec + off_ns / 1000;
	tv->tv_sec = us / 1000000;
	tv->tv_usec = us % 1000000;
}

/* The kernel checks who and ru (EINVAL, EFAULT); what it wrote is ours to correct. */
EXPORT int getrusage(__rusage_who_t who, struct rusage *ru)
{
	ENSURE(getrusage);
	int r = REAL(getrusage)(who, ru);
	if (r != 0 || !__atomic_load_n(&on, __ATOMIC_ACQUIRE))
		return r;
	int64_t u = 0, s = 0;
	if ((int)who == RUSAGE_SELF) {
		u = poff.utime_ns;
		s = poff.stime_ns;
	} else if ((int)who == RUSAGE_THREAD) {
		u = mine.o.utime_ns;
		s = mine.o.stime_ns;
	} else if ((int)who == RUSAGE_CHILDREN) {
		u = poff.cutime_ns;
		s = poff.cstime_ns;
	}
	tv_shift(&ru->ru_utime, u);
	tv_shift(&ru->ru_stime, s);
	return r;
}

/*
 * times() counts in clock ticks what getrusage counts in microseconds,
 * both from the same kernel times (floor(ns / 10 ms) either way): the
 * corrected ones are getrusage's, in ticks.  The return value (elapsed
 * ticks since some point) is the kernel's.
 */
EXPORT clock_t times(struct tms *buf)
{
	ENSURE(times);
	clock_t r = REAL(times)(buf);
	if (r == (clock_t)-1 || !buf || !__atomic_load_n(&on, __ATOMIC_ACQUIRE))
		return r;
	struct rusage self, kids;
	int e = errno;
	if (getrusage(RUSAGE_SELF, &self) == 0 && getrusage(RUSAGE_CHILDREN, &kids) == 0) {
		int64_t hz = (int64_t)getauxval(AT_CLKTCK);
		int64_t per = NS_PER_S / (hz > 0 ? hz : 100);
		buf->tms_utime = (clock_t)(tv_ns(self.ru_utime) / per);
		buf->tms_stime = (clock_t)(tv_ns(self.ru_stime) / per);
		buf->tms_cutime = (clock_t)(tv_ns(kids.ru_utime) / per);
		buf->tms_cstime = (clock_t)(tv_ns(kids.ru_stime) / per);
	}
	errno = e;
	return r;
}

/* A new thread may take a gone thread's tid: it has no offsets (nor anything, before a restart). */
EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	ENSURE(pthread_create);
	int r = REAL(pthread_create)(th, attr, fn, arg);
	clockid_t c;
	if (r == 0 && __atomic_load_n(&on, __ATOMIC_ACQUIRE) && pthread_getcpuclockid(*th, &c) == 0 &&
	    CPU_PERTHREAD(c))
		co_cpuclock_forget(CPU_PID(c));
	return r;
}
