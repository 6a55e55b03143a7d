/*
 * Shared helpers for the cohort test programs in tests/progs/.
 *
 * Every test program:
 *   - prints only deterministic lines on stdout ("step N ok ...", final
 *     "RESULT ..."), never pids/tids/addresses/times;
 *   - checks its invariants at every step and on any violation prints a
 *     message to stderr and exits with status 1;
 *   - survives being frozen, checkpointed and restarted (possibly in a new
 *     process with identical memory, pids and tids).
 */
#ifndef COHORT_TEST_COMMON_H
#define COHORT_TEST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static const char *t_prog = "test";

__attribute__((noreturn, format(printf, 3, 4), unused))
static void t_fail(const char *file, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "%s: FAILED at %s:%d: %s\n", t_prog, file, line, msg);
	fflush(stderr);
	_exit(1);
}

/* FAIL("fmt", ...): report and exit(1). */
#define FAIL(...) t_fail(__FILE__, __LINE__, __VA_ARGS__)
__attribute__((noreturn, format(printf, 4, 5), unused))
static void t_failc(const char *file, int line, const char *cond, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	t_fail(file, line, "check (%s) failed: %s", cond, msg);
}

/* CHECK(cond, "fmt", ...): FAIL unless cond. */
#define CHECK(cond, ...)                                                     \
	do {                                                                  \
		if (!(cond))                                                  \
			t_failc(__FILE__, __LINE__, #cond, __VA_ARGS__);      \
	} while (0)
/* SYSCHK(expr): FAIL with strerror(errno) when expr < 0. */
#define SYSCHK(expr)                                                          \
	({                                                                    \
		__typeof__(expr) t_r_ = (expr);                               \
		if (t_r_ < 0)                                                 \
			FAIL("%s: %s", #expr, strerror(errno));               \
		t_r_;                                                         \
	})

static inline pid_t t_gettid(void) { return (pid_t)syscall(SYS_gettid); }

static inline uint64_t t_now_ns(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts) != 0)
		FAIL("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline struct timespec t_ns_to_ts(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
	return ts;
}

/*
 * Sleep ms milliseconds on CLOCK_MONOTONIC. Tolerates EINTR (signal
 * handlers of the test itself may interrupt it); the strict "never EINTR"
 * checks live in blocking_calls.c.
 */
static inline void t_sleep_ms(long ms)
{
	uint64_t end = t_now_ns(CLOCK_MONOTONIC) + (uint64_t)ms * 1000000ull;
	struct timespec ts = t_ns_to_ts(end);
	int r;

	while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) != 0) {
		if (r != EINTR)
			FAIL("clock_nanosleep: %s", strerror(r));
	}
}

/* FNV-1a 64 */
static inline uint64_t t_fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
#define T_FNV_INIT 0xcbf29ce484222325ull

static inline uint64_t t_fnv_u64(uint64_t h, uint64_t v) { return t_fnv(h, &v, sizeof(v)); }

/* splitmix64: deterministic mixing / PRNG */
static inline uint64_t t_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline uint64_t t_rand(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ull;
	return t_mix(*state);
}

/* The lines of /proc/self/maps that meet [p, p + len), on stderr (a region that should be one mapping). */
__attribute__((unused)) static void t_show_maps(const void *p, size_t len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long lo, hi;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < (unsigned long)p + len && hi > (unsigned long)p)
			fprintf(stderr, "  %s", line);
	if (f)
		fclose(f);
}

/* Identity of the calling thread, recorded once and re-checked every step. */
struct t_ident {
	pid_t pid;
	pid_t tid;
	pthread_t self;
};

static inline void t_ident_init(struct t_ident *id)
{
	id->pid = getpid();
	id->tid = t_gettid();
	id->self = pthread_self();
}

#define t_ident_check(id) t_ident_check_at(id, __FILE__, __LINE__)
static inline void t_ident_check_at(const struct t_ident *id, const char *file, int line)
{
	pid_t p = getpid(), sp = (pid_t)syscall(SYS_getpid), tid = t_gettid();

	if (p != id->pid || sp != id->pid)
		t_fail(file, line, "pid changed: was %d, getpid()=%d, SYS_getpid=%d",
		       (int)id->pid, (int)p, (int)sp);
	if (tid != id->tid)
		t_fail(file, line, "tid changed: was %d, now %d", (int)id->tid, (int)tid);
	if (!pthread_equal(pthread_self(), id->self))
		t_fail(file, line, "pthread_self changed: was %#lx, now %#lx",
		       (unsigned long)id->self, (unsigned long)pthread_self());
}

static inline void t_init(const char *name)
{
	t_prog = name;
	setvbuf(stdout, NULL, _IOLBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);
}

/* snprintf that fails the test on truncation */
__attribute__((format(printf, 3, 4), unused))
static void t_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		FAIL("string too long: %s", buf);
}

/* Directory for files the test creates: $COHORT_TEST_TMP or /tmp. */
static inline const char *t_tmpdir(void)
{
	const char *d = getenv("COHORT_TEST_TMP");

	return (d && *d) ? d : "/tmp";
}

/*
 * Sleep ms milliseconds between steps, unless the file
 * "$COHORT_TEST_TMP/fast" exists: a test makes it before a restart it only
 * lets run to its end, where the pace (which gives checkpoints time to land
 * between steps) only costs time.  The output must not depend on it.
 */
static inline void t_pace_ms(unsigned ms)
{
	static char path[4096];
	const char *d = getenv("COHORT_TEST_TMP");

	if (d && *d) {
		t_fmt(path, sizeof(path), "%s/fast", d);
		if (access(path, F_OK) == 0)
			return;
	}
	t_sleep_ms(ms);
}

/*
 * Wait until the file "$COHORT_TEST_TMP/go.s" exists (at once without
 * COHORT_TEST_TMP), polling every 10 ms.  No allocation and no stdio, only
 * the stack frame of access/nanosleep: a checkpoint taken while a program
 * waits here sees almost nothing written since the step before.
 */
static inline void t_wait_go(int s)
{
	static char path[4096];
	const char *d = getenv("COHORT_TEST_TMP");

	if (!d || !*d)
		return;
	t_fmt(path, sizeof(path), "%s/go.%d", d, s);
	while (access(path, F_OK) != 0) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/*
 * The end gate of the standard flow (tests/harness/flow.sh): with
 * COHORT_TEST_END_GATE in its environment, the process a test started
 * does not end with status 0 until the file "$COHORT_TEST_TMP/end"
 * exists, which the test makes once its last checkpoint is taken.  On a
 * busy machine a program's steps (sleeps, wall-clock time) can run out
 * before the test, slowed down with the rest of the machine, has taken
 * that checkpoint: the program would end first and the test would fail
 * for the machine's load, not for cohort.  Only that process waits: the
 * variable leaves the environment at once, so that a program it starts
 * (exec) does not wait too, and a child it forks has another pid.  Any
 * exit() is held, whatever its status; a failure (FAIL: _exit) never is,
 * nor a program that chrooted or can no longer look at the directory.  The output is
 * flushed before the wait, as exit would, and the file "at-end" made, so
 * that a test waiting for lines that will never come goes on.
 *
 * A program whose end does not go through exit() (every thread leaving
 * with SYS_exit), or whose children and threads end before it does (a
 * test looks at them, or kills one, at any point of the run), calls the
 * gate itself before its end (t_end_gate_now): held there, with its
 * children still running, and "at-end" made, no more output comes until
 * the gate opens; at its exit the gate is open then.  t_gate(NAME) is a
 * gate of the same process at another point of a run: it makes "at-NAME"
 * and waits for "NAME" (the end gate is t_gate("end")); a program that
 * works on while it waits there asks t_gate_open(NAME) instead.
 */
static pid_t t_end_gate_pid;
static struct stat t_end_gate_root;	/* "/" at the start: a program that chroots cannot see the file */

/* whether the calling process is held by the gates (see above) */
static int t_gate_on(void)
{
	const char *d = getenv("COHORT_TEST_TMP");
	struct stat root;

	if (!t_end_gate_pid || getpid() != t_end_gate_pid || !d || !*d)
		return 0;
	/* chrooted since (tests/cases/chroot.sh): not held */
	return stat("/", &root) == 0 && root.st_dev == t_end_gate_root.st_dev && root.st_ino == t_end_gate_root.st_ino;
}

/* with the gates on: the output flushed and "$COHORT_TEST_TMP/at-NAME" made (the program is at gate NAME) */
static void t_gate_arrive(const char *name)
{
	char path[4096]; /* (on the stack: threads may wait at gates of their own at once) */

	if (!t_gate_on())
		return;
	fflush(NULL);
	t_fmt(path, sizeof(path), "%s/at-%s", getenv("COHORT_TEST_TMP"), name);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

/* whether gate NAME is open: the gates are off, or ".../NAME" exists (or cannot be seen: another error) */
static int t_gate_open(const char *name)
{
	char path[4096];

	if (!t_gate_on())
		return 1;
	t_fmt(path, sizeof(path), "%s/%s", getenv("COHORT_TEST_TMP"), name);
	return access(path, F_OK) == 0 || errno != ENOENT;
}

/* with the gates on: "at-NAME" made, then wait until ".../NAME" exists */
static void t_gate(const char *name)
{
	t_gate_arrive(name);
	while (!t_gate_open(name)) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void t_end_gate(int status, void *arg)
{
	(void)status;
	(void)arg;
	/* "at-end" tells the test that no more output will come (until the gate opens) */
	t_gate("end");
}

__attribute__((unused)) static void t_end_gate_now(void) { t_gate("end"); }

__attribute__((constructor)) static void t_end_gate_init(void)
{
	if (!getenv("COHORT_TEST_END_GATE"))
		return;
	unsetenv("COHORT_TEST_END_GATE");
	if (stat("/", &t_end_gate_root) != 0)
		return;
	t_end_gate_pid = getpid();
	on_exit(t_end_gate, NULL);
}

/* The number after key in /proc/self/fdinfo/FD (in base), or -1 when fdinfo has no such field. */
static inline long long t_fdinfo_field(int fd, const char *key, int base)
{
	char path[64], buf[1024];
	t_fmt(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int f = SYSCHK(open(path, O_RDONLY | O_CLOEXEC));
	ssize_t n = read(f, buf, sizeof(buf) - 1);
	close(f);
	CHECK(n > 0, "read %s: %s", path, strerror(errno));
	buf[n] = 0;
	char *p = strstr(buf, key);
	return p ? strtoll(p + strlen(key), NULL, base) : -1;
}

/* Create a private directory "<tmpdir>/<name>.<pid>" and return its path. */
static inline void t_mkworkdir(char *buf, size_t len, const char *name)
{
	t_fmt(buf, len, "%s/%s.%d", t_tmpdir(), name, (int)getpid());
	if (mkdir(buf, 0700) != 0 && errno != EEXIST)
		FAIL("mkdir %s: %s", buf, strerror(errno));
}

/* Write all of buf at offset off (pwrite) or at the current offset (off < 0). */
static inline void t_write_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			FAIL("write fd %d: %s", fd, n < 0 ? strerror(errno) : "short write");
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
}

static inline void t_read_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = off < 0 ? read(fd, p, len) : pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			FAIL("read fd %d: %s", fd, n < 0 ? strerror(errno) : "unexpected EOF");
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
}

/*
 * The watch programs (thread_watch, sysv_nattch): look at something without
 * pause, say what they saw on SIGUSR1 (t_report), end on SIGTERM (t_stop).
 * t_watch_memory: MIB MiB (argv[1], else dflt) with every page written, so
 * that a checkpoint has that much to read.
 */
static volatile sig_atomic_t t_report, t_stop;
static void t_on_usr1(int s) { (void)s; t_report = 1; }
static void t_on_term(int s) { (void)s; t_stop = 1; }

__attribute__((unused))
static char *t_watch_memory(int argc, char **argv, int dflt, size_t *len)
{
	*len = (size_t)(argc > 1 ? atoi(argv[1]) : dflt) << 20;
	char *mem = malloc(*len);
	if (!mem)
		FAIL("malloc %zu", *len);
	for (size_t i = 0; i < *len; i += 4096)
		mem[i] = (char)(i >> 12);
	signal(SIGUSR1, t_on_usr1);
	signal(SIGTERM, t_on_term);
	return mem;
}

#endif
