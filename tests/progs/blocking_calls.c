/*
 * blocking_calls: one thread per blocking call, each blocking repeatedly for
 * 250-350 ms. A checkpoint/restart in the middle of any of these calls must be
 * invisible: no call may fail with EINTR (or return early / spuriously), and
 * every timeout must elapse no earlier than requested.
 *
 * Calls: nanosleep, clock_nanosleep (relative; TIMER_ABSTIME on
 * CLOCK_MONOTONIC and CLOCK_REALTIME), poll, ppoll, select, pselect (on no
 * fds, i.e. pure timeouts), sigtimedwait (signal never sent), pause and
 * sigsuspend (woken by signals another thread sends: these return EINTR by
 * definition, but only after our handler ran), raw futex wait with timeout,
 * pthread_cond_wait (woken by another thread), pthread_cond_timedwait
 * (CLOCK_MONOTONIC, times out), sem_wait (posted by another thread),
 * sem_timedwait (CLOCK_REALTIME) and sem_clockwait (CLOCK_MONOTONIC), both
 * timing out.
 * No pipes, sockets, eventfds or epoll here (see blocking_pipes.c).
 */
#include "common.h"
#include <linux/futex.h>
#include <poll.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/select.h>

#define ITERS 10
#define STEPS 10

static int SIG_NEVER;	/* SIGRTMIN+2: blocked everywhere, never sent */

static long tmo_ms(int i) { return 250 + (i % 3) * 50; }

static void expect_elapsed(const char *what, clockid_t clk, uint64_t t0, long ms)
{
	uint64_t el = t_now_ns(clk) - t0;

	CHECK(el >= (uint64_t)ms * 1000000ull, "%s: returned after %llu us, before the %ld ms timeout", what,
	      (unsigned long long)(el / 1000), ms);
}

#define NO_EINTR(what, r, err)                                                                     \
	do {                                                                                      \
		if ((r) != 0 && (err) == EINTR)                                                   \
			FAIL("%s: interrupted (EINTR)", what);                                    \
	} while (0)

/* ---- per-call bodies; each does one blocking operation for iteration i ---- */

static void do_nanosleep(int i)
{
	long ms = tmo_ms(i);
	struct timespec ts = { 0, ms * 1000000 };
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);
	int r = nanosleep(&ts, NULL);

	NO_EINTR("nanosleep", r, errno);
	CHECK(r == 0, "nanosleep: %s", strerror(errno));
	expect_elapsed("nanosleep", CLOCK_MONOTONIC, t0, ms);
}

static void do_clock_nanosleep_rel(int i)
{
	long ms = tmo_ms(i);
	struct timespec ts = { 0, ms * 1000000 };
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);
	int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);

	NO_EINTR("clock_nanosleep(rel)", r, r);
	CHECK(r == 0, "clock_nanosleep: %s", strerror(r));
	expect_elapsed("clock_nanosleep(rel)", CLOCK_MONOTONIC, t0, ms);
}

static void do_clock_nanosleep_abs(clockid_t clk, const char *what, int i)
{
	long ms = tmo_ms(i);
	uint64_t t0 = t_now_ns(clk);
	struct timespec ts = t_ns_to_ts(t0 + (uint64_t)ms * 1000000ull);
	int r = clock_nanosleep(clk, TIMER_ABSTIME, &ts, NULL);

	NO_EINTR(what, r, r);
	CHECK(r == 0, "%s: %s", what, strerror(r));
	expect_elapsed(what, clk, t0, ms);
}
static void do_clock_nanosleep_abs_mono(int i) { do_clock_nanosleep_abs(CLOCK_MONOTONIC, "clock_nanosleep(abs,MONOTONIC)", i); }
static void do_clock_nanosleep_abs_real(int i) { do_clock_nanosleep_abs(CLOCK_REALTIME, "clock_nanosleep(abs,REALTIME)", i); }

static void do_poll(int i)
{
	long ms = tmo_ms(i);
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);
	int r = poll(NULL, 0, (int)ms);

	NO_EINTR("poll", r, errno);
	CHECK(r == 0, "poll returned %d: %s", r, strerror(errno));
	expect_elapsed("poll", CLOCK_MONOTONIC, t0, ms);
}

static void do_ppoll(int i)
{
	long ms = tmo_ms(i);
	struct timespec ts = { 0, ms * 1000000 };
	sigset_t m;
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);

	pthread_sigmask(SIG_BLOCK, NULL, &m);
	int r = ppoll(NULL, 0, &ts, &m);
	NO_EINTR("ppoll", r, errno);
	CHECK(r == 0, "ppoll returned %d: %s", r, strerror(errno));
	expect_elapsed("ppoll", CLOCK_MONOTONIC, t0, ms);
}

static void do_select(int i)
{
	long ms = tmo_ms(i);
	struct timeval tv = { 0, ms * 1000 };
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);
	int r = select(0, NULL, NULL, NULL, &tv);

	NO_EINTR("select", r, errno);
	CHECK(r == 0, "select returned %d: %s", r, strerror(errno));
	expect_elapsed("select", CLOCK_MONOTONIC, t0, ms);
}

static void do_pselect(int i)
{
	long ms = tmo_ms(i);
	struct timespec ts = { 0, ms * 1000000 };
	sigset_t m;
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);

	pthread_sigmask(SIG_BLOCK, NULL, &m);
	int r = pselect(0, NULL, NULL, NULL, &ts, &m);
	NO_EINTR("pselect", r, errno);
	CHECK(r == 0, "pselect returned %d: %s", r, strerror(errno));
	expect_elapsed("pselect", CLOCK_MONOTONIC, t0, ms);
}

static void do_sigtimedwait(int i)
{
	long ms = tmo_ms(i);
	struct timespec ts = { 0, ms * 1000000 };
	sigset_t m;
	siginfo_t si;
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);

	sigemptyset(&m);
	sigaddset(&m, SIG_NEVER);
	int r = sigtimedwait(&m, &si, &ts);
	if (r < 0 && errno == EINTR)
		FAIL("sigtimedwait: interrupted (EINTR)");
	CHECK(r == -1 && errno == EAGAIN, "sigtimedwait returned %d: %s", r, strerror(errno));
	expect_elapsed("sigtimedwait", CLOCK_MONOTONIC, t0, ms);
}

static int futex_word;
static void do_futex(int i)
{
	long ms = tmo_ms(i);
	struct timespec ts = { 0, ms * 1000000 };
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);
	long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);

	if (r < 0 && errno == EINTR)
		FAIL("futex wait: interrupted (EINTR)");
	CHECK(r == -1 && errno == ETIMEDOUT, "futex wait returned %ld: %s", r, strerror(errno));
	expect_elapsed("futex wait", CLOCK_MONOTONIC, t0, ms);
}

static pthread_mutex_t tmo_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tmo_cv;	/* CLOCK_MONOTONIC, never signalled */
static void do_cond_timedwait(int i)
{
	long ms = tmo_ms(i);
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);
	struct timespec ts = t_ns_to_ts(t0 + (uint64_t)ms * 1000000ull);
	int r;

	pthread_mutex_lock(&tmo_mu);
	r = pthread_cond_timedwait(&tmo_cv, &tmo_mu, &ts);
	pthread_mutex_unlock(&tmo_mu);
	CHECK(r == ETIMEDOUT, "pthread_cond_timedwait returned %d (%s)", r, strerror(r));
	expect_elapsed("pthread_cond_timedwait", CLOCK_MONOTONIC, t0, ms);
}

static sem_t sem_never;
static void do_sem_timedwait(int i)
{
	long ms = tmo_ms(i);
	uint64_t t0 = t_now_ns(CLOCK_REALTIME);
	struct timespec ts = t_ns_to_ts(t0 + (uint64_t)ms * 1000000ull);
	int r = sem_timedwait(&sem_never, &ts);

	if (r < 0 && errno == EINTR)
		FAIL("sem_timedwait: interrupted (EINTR)");
	CHECK(r == -1 && errno == ETIMEDOUT, "sem_timedwait returned %d: %s", r, strerror(errno));
	expect_elapsed("sem_timedwait", CLOCK_REALTIME, t0, ms);
}

static void do_sem_clockwait(int i)
{
	long ms = tmo_ms(i);
	uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);
	struct timespec ts = t_ns_to_ts(t0 + (uint64_t)ms * 1000000ull);
	int r = sem_clockwait(&sem_never, CLOCK_MONOTONIC, &ts);

	if (r < 0 && errno == EINTR)
		FAIL("sem_clockwait: interrupted (EINTR)");
	CHECK(r == -1 && errno == ETIMEDOUT, "sem_clockwait returned %d: %s", r, strerror(errno));
	expect_elapsed("sem_clockwait", CLOCK_MONOTONIC, t0, ms);
}

/* woken by the ticker thread */
static pthread_mutex_t tick_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tick_cv = PTHREAD_COND_INITIALIZER;
static int tick_seq;
static sem_t sem_tick;

static void do_cond_wait(int i)
{
	(void)i;
	pthread_mutex_lock(&tick_mu);
	int target = tick_seq + 1;
	while (tick_seq < target)
		pthread_cond_wait(&tick_cv, &tick_mu);
	pthread_mutex_unlock(&tick_mu);
}

static void do_sem_wait(int i)
{
	(void)i;
	int r = sem_wait(&sem_tick);

	if (r < 0 && errno == EINTR)
		FAIL("sem_wait: interrupted (EINTR)");
	CHECK(r == 0, "sem_wait: %s", strerror(errno));
}

/* woken by signals from the sender thread */
static __thread volatile sig_atomic_t handled;
static void on_sig(int sig) { (void)sig; handled++; }

static void do_pause(int i)
{
	(void)i;
	int before = handled;
	int r = pause();

	CHECK(r == -1 && errno == EINTR, "pause returned %d: %s", r, strerror(errno));
	CHECK(handled > before, "pause returned but no signal handler ran (spurious wakeup)");
}

static void do_sigsuspend(int i)
{
	sigset_t m;

	(void)i;
	int before = handled;
	pthread_sigmask(SIG_BLOCK, NULL, &m);
	sigdelset(&m, SIGUSR2);
	int r = sigsuspend(&m);
	CHECK(r == -1 && errno == EINTR, "sigsuspend returned %d: %s", r, strerror(errno));
	CHECK(handled == before + 1, "sigsuspend: handler ran %d times (expected 1)", (int)(handled - before));
}

struct call {
	const char *name;
	void (*fn)(int);
	pthread_t th;
	struct t_ident id;
	atomic_int count;
};

static struct call calls[] = {
	{ .name = "nanosleep", .fn = do_nanosleep },
	{ .name = "clock_nanosleep_rel", .fn = do_clock_nanosleep_rel },
	{ .name = "clock_nanosleep_abs_mono", .fn = do_clock_nanosleep_abs_mono },
	{ .name = "clock_nanosleep_abs_real", .fn = do_clock_nanosleep_abs_real },
	{ .name = "poll", .fn = do_poll },
	{ .name = "ppoll", .fn = do_ppoll },
	{ .name = "select", .fn = do_select },
	{ .name = "pselect", .fn = do_pselect },
	{ .name = "sigtimedwait", .fn = do_sigtimedwait },
	{ .name = "futex_wait", .fn = do_futex },
	{ .name = "pthread_cond_timedwait", .fn = do_cond_timedwait },
	{ .name = "sem_timedwait", .fn = do_sem_timedwait },
	{ .name = "sem_clockwait", .fn = do_sem_clockwait },
	{ .name = "pthread_cond_wait", .fn = do_cond_wait },
	{ .name = "sem_wait", .fn = do_sem_wait },
	{ .name = "pause", .fn = do_pause },
	{ .name = "sigsuspend", .fn = do_sigsuspend },
};
#define NCALLS ((int)(sizeof(calls) / sizeof(calls[0])))
enum { IDX_PAUSE = NCALLS - 2, IDX_SIGSUSPEND = NCALLS - 1 };

static atomic_int calls_done;

static void *call_thread(void *arg)
{
	struct call *c = arg;

	t_ident_init(&c->id);
	if (c->fn == do_pause) {
		sigset_t m;
		sigemptyset(&m);
		sigaddset(&m, SIGUSR1);
		pthread_sigmask(SIG_UNBLOCK, &m, NULL);
	}
	for (int i = 0; i < ITERS; i++) {
		c->fn(i);
		t_ident_check(&c->id);
		atomic_fetch_add(&c->count, 1);
	}
	atomic_fetch_add(&calls_done, 1);
	return NULL;
}

/* wakes cond_wait/sem_wait and signals pause/sigsuspend until they are done */
static void *ticker(void *arg)
{
	struct t_ident id;

	(void)arg;
	t_ident_init(&id);
	while (atomic_load(&calls[IDX_PAUSE].count) < ITERS || atomic_load(&calls[IDX_SIGSUSPEND].count) < ITERS ||
	       atomic_load(&calls[NCALLS - 3].count) < ITERS || atomic_load(&calls[NCALLS - 4].count) < ITERS) {
		t_sleep_ms(150);
		t_ident_check(&id);
		pthread_mutex_lock(&tick_mu);
		tick_seq++;
		pthread_cond_broadcast(&tick_cv);
		pthread_mutex_unlock(&tick_mu);
		if (atomic_load(&calls[NCALLS - 3].count) < ITERS) {
			int v;
			sem_getvalue(&sem_tick, &v);
			if (v == 0)
				sem_post(&sem_tick);
		}
		if (atomic_load(&calls[IDX_PAUSE].count) < ITERS)
			pthread_kill(calls[IDX_PAUSE].th, SIGUSR1);
		if (atomic_load(&calls[IDX_SIGSUSPEND].count) < ITERS)
			pthread_kill(calls[IDX_SIGSUSPEND].th, SIGUSR2);
	}
	return NULL;
}

int main(void)
{
	struct t_ident id;
	struct sigaction sa;
	sigset_t m;
	pthread_condattr_t ca;
	pthread_t tick_th;

	t_init("blocking_calls");
	t_ident_init(&id);
	SIG_NEVER = SIGRTMIN + 2;
	CHECK(calls[NCALLS - 3].fn == do_sem_wait && calls[NCALLS - 4].fn == do_cond_wait, "table order");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigemptyset(&sa.sa_mask);
	SYSCHK(sigaction(SIGUSR1, &sa, NULL));
	SYSCHK(sigaction(SIGUSR2, &sa, NULL));
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	sigaddset(&m, SIG_NEVER);
	pthread_sigmask(SIG_BLOCK, &m, NULL);	/* inherited by all threads */

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&tmo_cv, &ca);
	SYSCHK(sem_init(&sem_never, 0, 0));
	SYSCHK(sem_init(&sem_tick, 0, 0));

	for (int i = 0; i < NCALLS; i++)
		CHECK(pthread_create(&calls[i].th, NULL, call_thread, &calls[i]) == 0, "pthread_create");
	CHECK(pthread_create(&tick_th, NULL, ticker, NULL) == 0, "pthread_create");

	for (int s = 0; s < STEPS; s++) {
		t_sleep_ms(300);
		t_ident_check(&id);
		printf("step %d ok\n", s);
	}
	for (int i = 0; i < NCALLS; i++)
		CHECK(pthread_join(calls[i].th, NULL) == 0, "join");
	CHECK(pthread_join(tick_th, NULL) == 0, "join");
	uint64_t h = T_FNV_INIT;
	for (int i = 0; i < NCALLS; i++) {
		printf("%s %d\n", calls[i].name, atomic_load(&calls[i].count));
		h = t_fnv(h, calls[i].name, strlen(calls[i].name));
		h = t_fnv_u64(h, (uint64_t)atomic_load(&calls[i].count));
	}
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
