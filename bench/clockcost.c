/*
 * clockcost: what one clock_gettime costs (ns per call), for
 * CLOCK_MONOTONIC (the vDSO's, which the agent's wrapper only passes on)
 * and the CPU-time clocks CLOCK_THREAD_CPUTIME_ID and
 * CLOCK_PROCESS_CPUTIME_ID (a system call, to which the agent adds its
 * offsets after a restart: src/agent/cpuclock.c).  bench/clockcost.sh
 * runs it natively, with the agent preloaded, under cohort and after a
 * restart.
 *
 *   clockcost [ROUNDS [PAUSE_MS]]
 *
 * Each round prints one line: the best of 7 runs of N calls per clock.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double ns_per_call(clockid_t c, long n)
{
	double best = 1e30;
	for (int rep = 0; rep < 7; rep++) {
		struct timespec a, b, t;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (long i = 0; i < n; i++)
			clock_gettime(c, &t);
		clock_gettime(CLOCK_MONOTONIC, &b);
		double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)n;
		if (ns < best)
			best = ns;
	}
	return best;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 1;
	long pause_ms = argc > 2 ? atol(argv[2]) : 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int r = 1; r <= rounds; r++) {
		double mono = ns_per_call(CLOCK_MONOTONIC, 2000000);
		double thr = ns_per_call(CLOCK_THREAD_CPUTIME_ID, 200000);
		double proc = ns_per_call(CLOCK_PROCESS_CPUTIME_ID, 200000);
		printf("round %d monotonic %.1f ns thread_cputime %.1f ns process_cputime %.1f ns\n", r, mono, thr, proc);
		struct timespec p = { pause_ms / 1000, (pause_ms % 1000) * 1000000 };
		if (r < rounds)
			nanosleep(&p, NULL);
	}
	return 0;
}
