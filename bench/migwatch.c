/*
 * migwatch.c - benchmark program for cohort's live migration
 * (bench/migrate.sh): a program that writes a given share of its memory
 * per 100 ms and notices every moment it did not run, on CLOCK_REALTIME.
 *
 * Why CLOCK_REALTIME: a migrated (or restarted) group gets its
 * CLOCK_MONOTONIC and CLOCK_BOOTTIME continued through a time namespace,
 * which may hide the stop; nothing shifts the wall clock, and both hosts
 * of the benchmark share it.  The program reports by itself, on its
 * stdout, which `cohort receive` carries after the migration: the script
 * needs no signal, and its own latency does not count.
 *
 * Usage:
 *   migwatch [--mib N] [--pct P] [--step-us U] [--gap-ms M] [--tick-ms T]
 *
 *   --mib N       memory (default 1024), every page filled with random
 *                 bytes before "ready" (no page is left zero)
 *   --pct P       percent of the pages written per 100 ms, round robin
 *                 (default 1; 0: none)
 *   --step-us U   sleep U microseconds every step of the loop (default
 *                 1000); each step then writes the pages owed since the
 *                 previous one (at most 100 ms worth: a long stop brings
 *                 no burst of writes after it)
 *   --gap-ms M    a step that began more than M ms after the previous one
 *                 is a gap, printed (default 5)
 *   --tick-ms T   print the counters every T ms of wall time (default 100)
 *
 * Output (stdout, one line each, flushed; S: seconds of CLOCK_REALTIME):
 *   migwatch pid P mib M pct P step_us U
 *   ready
 *   tick S steps N pages P busy_ms B    counters since "ready": steps of
 *                                       the loop, pages written, and the
 *                                       wall time spent writing them; every
 *                                       T ms, and after each gap
 *   gap S ms G                          no step for G ms from S on (printed
 *                                       by the first step after it: on the
 *                                       target, the first line after the
 *                                       migration's stop when it is over M)
 * SIGTERM/SIGINT: a last tick, "done", exit 0.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MAX_OWED_NS 100000000 /* 100 ms */

static struct {
	size_t mib;
	double pct, gap_ms, tick_ms;
	long step_us;
} opt = { 1024, 1, 5, 100, 1000 };

static volatile sig_atomic_t term_req;

static void on_term(int s)
{
	(void)s;
	term_req = 1;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "S" of the output: seconds.microseconds of a CLOCK_REALTIME time */
static void put_time(const char *what, int64_t t)
{
	printf("%s %" PRId64 ".%06" PRId64, what, t / 1000000000, t % 1000000000 / 1000);
}

static int parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(a, "--mib"))
			opt.mib = strtoul(v, 0, 10), i++;
		else if (!strcmp(a, "--pct"))
			opt.pct = atof(v), i++;
		else if (!strcmp(a, "--step-us"))
			opt.step_us = atol(v), i++;
		else if (!strcmp(a, "--gap-ms"))
			opt.gap_ms = atof(v), i++;
		else if (!strcmp(a, "--tick-ms"))
			opt.tick_ms = atof(v), i++;
		else {
			fprintf(stderr, "usage: migwatch [--mib N] [--pct P] [--step-us U] [--gap-ms M] [--tick-ms T]\n");
			return -1;
		}
	}
	if (opt.mib < 1 || opt.pct < 0 || opt.pct > 100 || opt.step_us < 0 || opt.step_us > 999999 ||
	    opt.gap_ms <= 0 || opt.tick_ms <= 0) {
		fprintf(stderr, "migwatch: bad option value\n");
		return -1;
	}
	return 0;
}

/* every page random and non-zero, so that an image must carry each one */
static void fill(uint64_t *mem, size_t words)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < words; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		mem[i] = x;
	}
}

int main(int argc, char **argv)
{
	if (parse(argc, argv))
		return 2;
	size_t len = opt.mib << 20, npages = len / PAGE;
	unsigned char *mem = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		perror("migwatch: mmap");
		return 1;
	}
	fill((uint64_t *)mem, len / 8);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, 0);
	sigaction(SIGINT, &sa, 0);
	printf("migwatch pid %d mib %zu pct %g step_us %ld\n", (int)getpid(), opt.mib, opt.pct, opt.step_us);
	printf("ready\n");
	fflush(stdout);

	const double rate = opt.pct / 100.0 * (double)npages * 10; /* pages per second */
	const int64_t gap_ns = (int64_t)(opt.gap_ms * 1e6), tick_ns = (int64_t)(opt.tick_ms * 1e6);
	const struct timespec step = { 0, opt.step_us * 1000 };
	uint64_t steps = 0, pages = 0, tag = 1;
	int64_t busy = 0, prev = now_ns(), next_tick = prev + tick_ns;
	size_t cursor = 0;
	double credit = 0;
	while (!term_req) {
		if (opt.step_us)
			nanosleep(&step, 0);
		int64_t t = now_ns(), d = t - prev;
		if (d > gap_ns) {
			put_time("gap", prev);
			printf(" ms %.3f\n", (double)d / 1e6);
			fflush(stdout);
		}
		credit += rate * (double)(d < MAX_OWED_NS ? d : MAX_OWED_NS) / 1e9;
		for (; credit >= 1; credit -= 1, pages++) {
			*(volatile uint64_t *)(mem + cursor * PAGE) = tag;
			if (++cursor == npages) {
				cursor = 0;
				tag++;
			}
		}
		int64_t done = now_ns();
		busy += done - t;
		steps++;
		prev = t;
		if (done >= next_tick || d > gap_ns) {
			put_time("tick", done);
			printf(" steps %" PRIu64 " pages %" PRIu64 " busy_ms %.3f\n", steps, pages, (double)busy / 1e6);
			fflush(stdout);
			next_tick = done + tick_ns;
		}
	}
	put_time("tick", now_ns());
	printf(" steps %" PRIu64 " pages %" PRIu64 " busy_ms %.3f\ndone\n", steps, pages, (double)busy / 1e6);
	return 0;
}
