/*
 * cpuclock: the CPU-time clocks go on across checkpoints and restarts
 * (issue 11, src/agent/cpuclock.c; tests/cases/cpuclock.sh).
 *
 * Two worker threads burn CPU at every step; each then reads its own
 * CLOCK_THREAD_CPUTIME_ID, its own clock through pthread_getcpuclockid,
 * the other worker's, and getrusage(RUSAGE_THREAD).  The main thread
 * reads CLOCK_PROCESS_CPUTIME_ID (also through clock_getcpuclockid of its
 * pid, and through syscall(3)), clock(), getrusage(RUSAGE_SELF) and times(), and sleeps on the
 * process clock until an absolute time (TIMER_ABSTIME) while the workers
 * burn.  At every step none may have gone backwards, and none may have
 * jumped by more than the wall time (CLOCK_MONOTONIC, which the group's
 * time namespace carries across a restart) since the last step allows:
 * one thread's by its wall time, the process's by six threads' (ours
 * and the agent's manager).  The process's time must also hold the workers'.
 * A thread made at every step starts from 0 (fresh_round), also on the
 * tid of a restored thread that has ended.
 *
 * Output: "step N ok" lines and a RESULT line, never a time.
 */
#include "common.h"
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/times.h>

#define STEPS 40
#define BURN_NS 6000000LL	/* each worker's CPU per step */
#define SLACK_NS 20000000LL	/* clock granularity and reading order: rusage ticks, times() ticks */
#define MS 1000000LL

static pthread_barrier_t b_start, b_done;
static atomic_int main_woke;
static clockid_t worker_clock[2];	/* pthread_getcpuclockid of each worker */
static atomic_llong posted[2];		/* each worker's own clock at its last reading */

static int64_t clock_ns(clockid_t c, const char *what)
{
	struct timespec ts;
	if (clock_gettime(c, &ts) != 0)
		FAIL("clock_gettime(%s): %s", what, strerror(errno));
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t tv_ns(struct timeval tv)
{
	return (int64_t)tv.tv_sec * 1000000000LL + (int64_t)tv.tv_usec * 1000;
}

static int64_t rusage_ns(int who)
{
	struct rusage ru;
	SYSCHK(getrusage(who, &ru));
	return tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime);
}

/* A reading's step: not back, and forward by at most `threads` threads' share of the wall time. */
struct track {
	const char *what;
	int64_t last, wall;
	int threads;
};

static void advance(struct track *t, int64_t now, int64_t wall, int step)
{
	if (t->wall) {
		CHECK(now >= t->last, "step %d: %s went back by %lld ms", step, t->what,
		      (long long)((t->last - now) / MS));
		int64_t most = (wall - t->wall) * t->threads + SLACK_NS;
		CHECK(now - t->last <= most, "step %d: %s jumped %lld ms in %lld ms of wall time", step, t->what,
		      (long long)((now - t->last) / MS), (long long)((wall - t->wall) / MS));
	}
	t->last = now;
	t->wall = wall;
}

static void *worker(void *arg)
{
	int me = (int)(intptr_t)arg, other = 1 - me;
	char w[4][48];
	snprintf(w[0], sizeof(w[0]), "worker %d's CLOCK_THREAD_CPUTIME_ID", me);
	snprintf(w[1], sizeof(w[1]), "worker %d's pthread_getcpuclockid", me);
	snprintf(w[2], sizeof(w[2]), "worker %d's clock of worker %d", me, other);
	snprintf(w[3], sizeof(w[3]), "worker %d's RUSAGE_THREAD", me);
	struct track own = { w[0], 0, 0, 1 }, self = { w[1], 0, 0, 1 }, them = { w[2], 0, 0, 1 },
		     ru = { w[3], 0, 0, 1 };
	for (int step = 1; step <= STEPS; step++) {
		pthread_barrier_wait(&b_start);
		int64_t t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID, "thread"), w0 = t_now_ns(CLOCK_MONOTONIC);
		volatile uint64_t sink = 0;
		/* our share of CPU, and on until the main thread's sleep on the process clock has ended */
		while (clock_ns(CLOCK_THREAD_CPUTIME_ID, "thread") - t0 < BURN_NS || !atomic_load(&main_woke)) {
			for (int i = 0; i < 20000; i++)
				sink += (uint64_t)i * 2654435761u;
			CHECK(t_now_ns(CLOCK_MONOTONIC) - w0 < 10000000000ULL,
			      "step %d: the main thread's sleep until a time on the process clock did not end in 10 s", step);
		}
		int64_t mine = clock_ns(CLOCK_THREAD_CPUTIME_ID, "thread");
		int64_t via_id = clock_ns(worker_clock[me], "own pthread_getcpuclockid");
		/* what the other last read itself, before we read its clock: it may post a newer one meanwhile */
		int64_t was = atomic_load(&posted[other]);
		int64_t theirs = clock_ns(worker_clock[other], "the other worker's clock");
		int64_t r = rusage_ns(RUSAGE_THREAD);
		int64_t wall = (int64_t)t_now_ns(CLOCK_MONOTONIC);
		advance(&own, mine, wall, step);
		advance(&self, via_id, wall, step);
		CHECK(via_id >= mine, "step %d: worker %d: its clock by id is %lld ms behind CLOCK_THREAD_CPUTIME_ID", step,
		      me, (long long)((mine - via_id) / MS));
		/* the other may have burnt since: never less than what it last read itself */
		CHECK(theirs >= was, "step %d: worker %d reads worker %d's clock %lld ms behind what that one read", step,
		      me, other, (long long)((was - theirs) / MS));
		advance(&them, theirs, wall, step);
		advance(&ru, r, wall, step);
		atomic_store(&posted[me], mine);
		pthread_barrier_wait(&b_done);
	}
	return NULL;
}

/*
 * A thread made at every step, which burns CPU and lingers until the next
 * step has made its own: its clocks start at 0, whatever tid it gets.
 * After a restart the group's tids are handed out from the lowest again,
 * and the thread that lingered across it (restored, its clocks offset by
 * what it had burnt) ends: some steps later a new thread gets its tid,
 * and must not get its offset.  Read by the thread itself and, through
 * its id, by the main thread: never more than the wall time since it was
 * made.
 */
#define LINGER_BURN_NS 40000000LL
static pthread_barrier_t b_fresh;
static int64_t fresh_born;
static atomic_int linger_go;	/* the step whose fresh thread may end */

static void check_fresh(int64_t cpu, const char *how, int step)
{
	int64_t age = (int64_t)t_now_ns(CLOCK_MONOTONIC) - fresh_born;
	CHECK(cpu >= 0 && cpu <= age + SLACK_NS, "step %d: a new thread's clock (%s) is %lld ms, %lld ms after it was made",
	      step, how, (long long)(cpu / MS), (long long)(age / MS));
}

static void *fresh(void *arg)
{
	int step = (int)(intptr_t)arg;
	clockid_t mine;
	CHECK(pthread_getcpuclockid(pthread_self(), &mine) == 0, "pthread_getcpuclockid(self)");
	check_fresh(clock_ns(CLOCK_THREAD_CPUTIME_ID, "thread"), "its own CLOCK_THREAD_CPUTIME_ID", step);
	check_fresh(clock_ns(mine, "own pthread_getcpuclockid"), "its own by pthread_getcpuclockid", step);
	pthread_barrier_wait(&b_fresh); /* the main thread reads our clock now */
	volatile uint64_t sink = 0;
	while (clock_ns(CLOCK_THREAD_CPUTIME_ID, "thread") < LINGER_BURN_NS)
		for (int i = 0; i < 20000; i++)
			sink += (uint64_t)i * 2654435761u;
	while (atomic_load(&linger_go) < step)
		t_sleep_ms(1);
	return NULL;
}

/* This step's thread made and looked at; the last step's let go */
static pthread_t fresh_round(int step, pthread_t last)
{
	pthread_t th;
	clockid_t c;
	fresh_born = (int64_t)t_now_ns(CLOCK_MONOTONIC);
	CHECK(pthread_create(&th, NULL, fresh, (void *)(intptr_t)step) == 0, "pthread_create");
	CHECK(pthread_getcpuclockid(th, &c) == 0, "pthread_getcpuclockid");
	pthread_barrier_wait(&b_fresh);
	check_fresh(clock_ns(c, "a new thread's clock"), "read by the main thread", step);
	if (step > 1) {
		atomic_store(&linger_go, step - 1);
		pthread_join(last, NULL);
	}
	return th;
}

int main(void)
{
	t_init("cpuclock");
	SYSCHK(-pthread_barrier_init(&b_start, NULL, 3));
	SYSCHK(-pthread_barrier_init(&b_done, NULL, 3));
	SYSCHK(-pthread_barrier_init(&b_fresh, NULL, 2));
	pthread_t th[2];
	for (int i = 0; i < 2; i++) {
		CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0, "pthread_create");
		CHECK(pthread_getcpuclockid(th[i], &worker_clock[i]) == 0, "pthread_getcpuclockid");
	}
	clockid_t pclock;
	CHECK(clock_getcpuclockid(getpid(), &pclock) == 0, "clock_getcpuclockid");
	struct track proc = { "CLOCK_PROCESS_CPUTIME_ID", 0, 0, 6 }, byid = { "clock_getcpuclockid(getpid())", 0, 0, 6 },
		     bysys = { "syscall(SYS_clock_gettime, CLOCK_PROCESS_CPUTIME_ID)", 0, 0, 6 }, clk = { "clock()", 0, 0, 6 }, self = { "RUSAGE_SELF", 0, 0, 6 }, tms = { "times()", 0, 0, 6 };
	int64_t tick = 1000000000LL / sysconf(_SC_CLK_TCK);
	pthread_t last_fresh = pthread_self();
	for (int step = 1; step <= STEPS; step++) {
		atomic_store(&main_woke, 0);
		pthread_barrier_wait(&b_start);
		/* the workers burn: the process clock passes a time 2 ms ahead, as the program counts it */
		int64_t until = clock_ns(CLOCK_PROCESS_CPUTIME_ID, "process") + 2 * MS;
		struct timespec ts = t_ns_to_ts((uint64_t)until);
		int e;
		while ((e = clock_nanosleep(CLOCK_PROCESS_CPUTIME_ID, TIMER_ABSTIME, &ts, NULL)) == EINTR)
			;
		CHECK(e == 0, "step %d: clock_nanosleep on the process clock: %s", step, strerror(e));
		int64_t woke = clock_ns(CLOCK_PROCESS_CPUTIME_ID, "process");
		CHECK(woke >= until, "step %d: the sleep on the process clock ended %lld us early", step,
		      (long long)((until - woke) / 1000));
		atomic_store(&main_woke, 1);
		pthread_barrier_wait(&b_done);

		int64_t p = clock_ns(CLOCK_PROCESS_CPUTIME_ID, "process");
		int64_t q = clock_ns(pclock, "clock_getcpuclockid(getpid())");
		struct timespec sts;
		SYSCHK(syscall(SYS_clock_gettime, CLOCK_PROCESS_CPUTIME_ID, &sts));
		int64_t sq = (int64_t)sts.tv_sec * 1000000000LL + sts.tv_nsec;
		clock_t c = clock();
		CHECK(c != (clock_t)-1, "clock() failed");
		int64_t r = rusage_ns(RUSAGE_SELF);
		struct tms t;
		CHECK(times(&t) != (clock_t)-1, "times: %s", strerror(errno));
		int64_t wall = (int64_t)t_now_ns(CLOCK_MONOTONIC);
		advance(&proc, p, wall, step);
		advance(&byid, q, wall, step);
		advance(&bysys, sq, wall, step);
		advance(&clk, (int64_t)c * (1000000000LL / CLOCKS_PER_SEC), wall, step);
		advance(&self, r, wall, step);
		advance(&tms, ((int64_t)t.tms_utime + t.tms_stime) * tick, wall, step);
		int64_t both = atomic_load(&posted[0]) + atomic_load(&posted[1]);
		CHECK(p >= both, "step %d: the process clock is %lld ms behind its two workers' together", step,
		      (long long)((both - p) / MS));
		CHECK(q >= p && sq >= q, "step %d: clock_getcpuclockid(getpid()) or syscall() is behind CLOCK_PROCESS_CPUTIME_ID",
		      step);
		last_fresh = fresh_round(step, last_fresh);
		printf("step %d ok\n", step);
		t_sleep_ms(20);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	atomic_store(&linger_go, STEPS);
	pthread_join(last_fresh, NULL);
	printf("RESULT steps %d\n", STEPS);
	return 0;
}
