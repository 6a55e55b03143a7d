/*
 * gapwatch.c - benchmark program for cohort: a program that notices every
 * moment it did not run.  Its threads go round a tight loop that writes a
 * given share of its memory per second and reads the clock at every turn;
 * a turn that took longer than a threshold is a gap, recorded with when it
 * began.  Run beside checkpoints (bench/gap.sh), it tells the pause the
 * program really saw, and when, against what `cohort checkpoint --json`
 * says.
 *
 * Usage:
 *   gapwatch [--mib N] [--threads T] [--dirty-pct P] [--thp] [--min-ms M]
 *            [--sleep-us U]
 *
 *   --mib N        memory (default 1024), every page written before "ready"
 *   --threads T    threads going round the loop (default 1), each with its
 *                  slice of the memory
 *   --dirty-pct P  percent of the pages written per second, round robin
 *                  (default 1; 0: none)
 *   --thp          madvise(MADV_HUGEPAGE) the memory
 *   --min-ms M     a turn longer than M ms is a gap (default 2)
 *   --sleep-us U   sleep U microseconds every turn (default 0: spin)
 *
 * Output (stdout, one line each):
 *   gapwatch pid P mib M threads T dirty_pct D
 *   ready
 *   on SIGUSR1, the gaps since the previous report, oldest first, then
 *   their largest (0 when none):
 *     gap thread I at S.NNNNNN ms G     a gap of G ms (CLOCK_MONOTONIC) that
 *                                       began at S (seconds of CLOCK_REALTIME,
 *                                       which no time namespace shifts: a
 *                                       script's $EPOCHREALTIME)
 *     max_gap_ms G                      the largest turn of any thread, gap
 *                                       or not
 * SIGTERM/SIGINT: print the report and "done", exit 0.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MAX_GAPS 4096

struct gap {
	int64_t at, len; /* at: CLOCK_REALTIME, len: CLOCK_MONOTONIC */
};

struct worker {
	_Alignas(64) pthread_t th;
	int id;
	unsigned char *base;
	size_t npages, cursor;
	_Atomic uint64_t max_ns;
	/* a ring the worker writes and the reporter reads: head is the count ever written */
	_Atomic uint64_t head;
	uint64_t tail; /* the reporter's */
	struct gap gaps[MAX_GAPS];
};

static struct {
	size_t mib;
	int threads, thp, sleep_us;
	double dirty_pct, min_ms;
} opt = { 1024, 1, 0, 0, 1, 2 };

static struct worker *W;
static atomic_int stop;
static volatile sig_atomic_t report_req, term_req;

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	const double rate = opt.dirty_pct / 100.0 * (double)w->npages; /* pages per second */
	const int64_t min_ns = (int64_t)(opt.min_ms * 1e6);
	double credit = 0;
	uint64_t tag = 1;
	int64_t prev = now_ns(CLOCK_MONOTONIC), prev_rt = now_ns(CLOCK_REALTIME);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (; credit >= 1; credit -= 1) {
			*(volatile uint64_t *)(w->base + w->cursor * PAGE) = tag;
			if (++w->cursor == w->npages) {
				w->cursor = 0;
				tag++;
			}
		}
		if (opt.sleep_us) {
			struct timespec ts = { 0, opt.sleep_us * 1000L };
			nanosleep(&ts, 0);
		}
		int64_t t = now_ns(CLOCK_MONOTONIC), t_rt = now_ns(CLOCK_REALTIME), d = t - prev;
		if (d > 0 && (uint64_t)d > atomic_load_explicit(&w->max_ns, memory_order_relaxed))
			atomic_store_explicit(&w->max_ns, (uint64_t)d, memory_order_relaxed);
		if (d > min_ns) {
			uint64_t h = atomic_load_explicit(&w->head, memory_order_relaxed);
			w->gaps[h % MAX_GAPS] = (struct gap){ prev_rt, d };
			atomic_store_explicit(&w->head, h + 1, memory_order_release);
		}
		/* long stops give no burst of writes after them */
		credit += rate * (double)(d < 100000000 ? d : 100000000) / 1e9;
		prev = t;
		prev_rt = t_rt;
	}
	return 0;
}

static void report(void)
{
	uint64_t max = 0;
	for (int i = 0; i < opt.threads; i++) {
		struct worker *w = &W[i];
		uint64_t h = atomic_load_explicit(&w->head, memory_order_acquire);
		if (h - w->tail > MAX_GAPS)
			w->tail = h - MAX_GAPS;
		for (; w->tail < h; w->tail++) {
			struct gap g = w->gaps[w->tail % MAX_GAPS];
			printf("gap thread %d at %" PRId64 ".%06" PRId64 " ms %.3f\n", i, g.at / 1000000000,
			       g.at % 1000000000 / 1000, (double)g.len / 1e6);
		}
		uint64_t m = atomic_exchange(&w->max_ns, 0);
		if (m > max)
			max = m;
	}
	printf("max_gap_ms %.3f\n", (double)max / 1e6);
	fflush(stdout);
}

static void on_usr1(int s)
{
	(void)s;
	report_req = 1;
}

static void on_term(int s)
{
	(void)s;
	term_req = 1;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(a, "--mib"))
			opt.mib = strtoul(v, 0, 10), i++;
		else if (!strcmp(a, "--threads"))
			opt.threads = atoi(v), i++;
		else if (!strcmp(a, "--dirty-pct"))
			opt.dirty_pct = atof(v), i++;
		else if (!strcmp(a, "--min-ms"))
			opt.min_ms = atof(v), i++;
		else if (!strcmp(a, "--sleep-us"))
			opt.sleep_us = atoi(v), i++;
		else if (!strcmp(a, "--thp"))
			opt.thp = 1;
		else {
			fprintf(stderr, "usage: gapwatch [--mib N] [--threads T] [--dirty-pct P] [--thp] [--min-ms M] "
					"[--sleep-us U]\n");
			return 2;
		}
	}
	if (opt.mib < 1 || opt.threads < 1 || opt.threads > 64 || opt.dirty_pct < 0 || opt.sleep_us < 0 ||
	    opt.sleep_us > 999999) {
		fprintf(stderr, "gapwatch: bad option value\n");
		return 2;
	}
	size_t len = opt.mib << 20, npages = len / PAGE;
	unsigned char *mem = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		perror("gapwatch: mmap");
		return 1;
	}
	if (opt.thp)
		madvise(mem, len, MADV_HUGEPAGE);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < len / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		((uint64_t *)mem)[i] = x;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, 0);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, 0);
	sigaction(SIGINT, &sa, 0);
	/* blocked but in sigsuspend below (so no signal slips in between), and in the workers for good */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, 0);
	printf("gapwatch pid %d mib %zu threads %d dirty_pct %g\n", (int)getpid(), opt.mib, opt.threads, opt.dirty_pct);
	W = calloc((size_t)opt.threads, sizeof(*W));
	if (!W)
		return 1;
	for (int i = 0; i < opt.threads; i++) {
		W[i].id = i;
		W[i].npages = npages / (size_t)opt.threads;
		W[i].base = mem + (size_t)i * W[i].npages * PAGE;
		if (pthread_create(&W[i].th, 0, work, &W[i])) {
			perror("gapwatch: pthread_create");
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);
	sigset_t none;
	sigemptyset(&none);
	while (!term_req) {
		if (report_req) {
			report_req = 0;
			report();
			continue;
		}
		sigsuspend(&none);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < opt.threads; i++)
		pthread_join(W[i].th, 0);
	report();
	printf("done\n");
	return 0;
}
