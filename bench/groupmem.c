/*
 * groupmem - the application-group benchmark: a parent and 3 children,
 * each with its own 256 MiB (every page written) and one thread that keeps
 * rewriting it in a loop, recording the largest gap between two iterations
 * (the pause it observes).
 *
 *   groupmem [--mib N] [--procs N] [--seconds S]
 *
 * Each process prints "ready" once its memory is written.  On SIGUSR1 each
 * prints "proc K max_gap_ms X" for the time since the last report and
 * resets.  SIGTERM ends them all; the parent exits when its children have.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t report, stop;
static void on_usr1(int s) { (void)s; report = 1; }
static void on_term(int s) { (void)s; stop = 1; }

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int run(int k, size_t mib, double seconds)
{
	size_t n = mib << 20;
	unsigned char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < n; i += 4096)
		m[i] = (unsigned char)(i >> 12) ^ (unsigned char)k;
	printf("proc %d ready\n", k);
	fflush(stdout);
	double last = now_ms(), gap = 0, ran = 0;
	size_t at = 0;
	while (!stop && ran < seconds * 1e3) {
		for (int j = 0; j < 256; j++, at = (at + 4096) % n)
			m[at]++;
		double t = now_ms(), d = t - last;
		if (d > gap)
			gap = d;
		/* frozen time does not count as running time */
		ran += d < 50 ? d : 0;
		last = t;
		if (report) {
			report = 0;
			printf("proc %d max_gap_ms %.3f\n", k, gap);
			fflush(stdout);
			gap = 0;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	size_t mib = 256;
	int procs = 4;
	double seconds = 600;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mib"))
			mib = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--procs"))
			procs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
	}
	signal(SIGUSR1, on_usr1);
	signal(SIGTERM, on_term);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int k = 1; k < procs; k++)
		if (fork() == 0)
			return run(k, mib, seconds);
	int r = run(0, mib, seconds);
	while (wait(NULL) > 0)
		;
	return r;
}
