/*
 * thp_rounds.c - benchmark program for cohort: a big heap of transparent
 * huge pages rewritten in rounds, each round timed, with the amount of the
 * heap that is still huge after it.  For the slowdown after a checkpoint
 * (bench/thp.sh runs it natively and under cohort).
 *
 * Usage:
 *   thp_rounds [options]
 *
 *   --gib N          heap size in GiB (default 2); --mib N in MiB instead
 *   --rounds R       rounds after the fill (default 8; 0: until SIGTERM, which
 *                    ends the program after the round it interrupts)
 *   --every K        a round writes every byte of one page in K (default 1:
 *                    the whole heap; K > 1: a sparse subset, pages whose
 *                    index is a multiple of K, spread over every huge page)
 *   --passes P       a round writes its pages P times (default 1)
 *   --wait-after N   after round N (0: after the fill) print "wait N" and
 *                    wait for SIGUSR1 before going on; may be repeated
 *   --no-thp         no madvise(MADV_HUGEPAGE)
 *   --check          before every round and at the end, check every word of
 *                    the heap against what the rounds wrote (exit 1 on a
 *                    mismatch; the check is not part of a round's time)
 *
 * The heap is mmap'ed anonymous, aligned to 2 MiB, madvise(MADV_HUGEPAGE)
 * and filled (round 0).  Round r writes, in every word w of every page p of
 * its subset, (p * GOLDEN) ^ (r << 32) ^ w.
 *
 * Output (stdout, one line each, flushed):
 *   thp_rounds pid P mib M rounds R every K passes P thp madvise|none
 *   round 0 ...                      the fill, as a round
 *   round N ms T cpu_ms C thp_mib H faults F
 *                                    round N took T ms (CLOCK_MONOTONIC), C
 *                                    ms of this thread's CPU time (user and
 *                                    system: page faults count); after it H
 *                                    MiB of the process's memory are huge
 *                                    pages (AnonHugePages of
 *                                    /proc/self/smaps_rollup); F minor page
 *                                    faults of the process meanwhile
 *   wait N                           waiting for SIGUSR1 (--wait-after)
 *   check ok | check FAILED round N page P word W
 *   done
 * Exit status: 0, 1 when a check failed, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define GOLDEN 0x9e3779b97f4a7c15ULL
#define PAGE 4096UL
#define HUGE (2UL << 20)
#define MAX_WAITS 16

static struct {
	size_t mib;
	int rounds, every, passes, thp, check;
	int waits[MAX_WAITS], nwaits;
} opt = { 2048, 8, 1, 1, 1, 0, { 0 }, 0 };

static uint64_t *heap;
static volatile sig_atomic_t term;

static void on_term(int sig)
{
	(void)sig;
	term = 1;
}
static size_t npages;

static double now_ms(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* AnonHugePages of /proc/self/smaps_rollup, in MiB (-1: unknown) */
static long thp_mib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kib = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib < 0 ? -1 : kib / 1024;
}

/* minor faults of the process so far */
static long minflt(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) ? -1 : ru.ru_minflt;
}

static inline uint64_t word(size_t p, int r, size_t w)
{
	return ((uint64_t)p * GOLDEN) ^ ((uint64_t)r << 32) ^ w;
}

static void write_round(int r)
{
	size_t step = (size_t)(r == 0 ? 1 : opt.every);
	for (int pass = 0; pass < (r == 0 ? 1 : opt.passes); pass++)
		for (size_t p = 0; p < npages; p += step) {
			uint64_t *q = heap + p * (PAGE / 8);
			for (size_t w = 0; w < PAGE / 8; w++)
				q[w] = word(p, r, w);
		}
}

/* the last round that wrote page p, after round r */
static int last_round(size_t p, int r)
{
	return r == 0 || p % (size_t)opt.every ? 0 : r;
}

static int check(int r)
{
	for (size_t p = 0; p < npages; p++) {
		const uint64_t *q = heap + p * (PAGE / 8);
		int lr = last_round(p, r);
		for (size_t w = 0; w < PAGE / 8; w++)
			if (q[w] != word(p, lr, w)) {
				printf("check FAILED round %d page %zu word %zu\n", r, p, w);
				return -1;
			}
	}
	return 0;
}

static void wait_usr1(int r)
{
	for (int i = 0; i < opt.nwaits; i++)
		if (opt.waits[i] == r) {
			sigset_t s;
			sigemptyset(&s);
			sigaddset(&s, SIGUSR1);
			printf("wait %d\n", r);
			while (sigwaitinfo(&s, 0) < 0 && errno == EINTR)
				;
			return;
		}
}

static int arg_int(const char *s, int min)
{
	char *end;
	long v = strtol(s ? s : "", &end, 10);
	if (!s || *end || v < min || v > 1 << 30) {
		fprintf(stderr, "thp_rounds: bad number '%s'\n", s ? s : "");
		exit(2);
	}
	return (int)v;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : 0;
		if (!strcmp(a, "--gib"))
			opt.mib = (size_t)arg_int(v, 1) * 1024, i++;
		else if (!strcmp(a, "--mib"))
			opt.mib = (size_t)arg_int(v, 2), i++;
		else if (!strcmp(a, "--rounds"))
			opt.rounds = arg_int(v, 0), i++;
		else if (!strcmp(a, "--every"))
			opt.every = arg_int(v, 1), i++;
		else if (!strcmp(a, "--passes"))
			opt.passes = arg_int(v, 1), i++;
		else if (!strcmp(a, "--wait-after") && opt.nwaits < MAX_WAITS)
			opt.waits[opt.nwaits++] = arg_int(v, 0), i++;
		else if (!strcmp(a, "--no-thp"))
			opt.thp = 0;
		else if (!strcmp(a, "--check"))
			opt.check = 1;
		else {
			fprintf(stderr, "usage: thp_rounds [--gib N|--mib N] [--rounds R] [--every K] [--passes P] "
					"[--wait-after N]... [--no-thp] [--check]\n");
			return 2;
		}
	}
	setvbuf(stdout, 0, _IOLBF, 0);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigprocmask(SIG_BLOCK, &s, 0);

	size_t len = opt.mib << 20;
	npages = len / PAGE;
	/* 2 MiB aligned, so that every huge page of it can be one */
	char *raw = mmap(0, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED) {
		perror("thp_rounds: mmap");
		return 1;
	}
	char *al = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	if (al > raw)
		munmap(raw, (size_t)(al - raw));
	munmap(al + len, (size_t)(raw + HUGE - al));
	heap = (uint64_t *)al;
	if (opt.thp && madvise(heap, len, MADV_HUGEPAGE)) {
		perror("thp_rounds: madvise(MADV_HUGEPAGE)");
		return 1;
	}
	printf("thp_rounds pid %d mib %zu rounds %d every %d passes %d thp %s\n", (int)getpid(), opt.mib, opt.rounds,
	       opt.every, opt.passes, opt.thp ? "madvise" : "none");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, 0);
	int r;
	for (r = 0; opt.rounds ? r <= opt.rounds : !term; r++) {
		if (opt.check && r > 0 && check(r - 1))
			return 1;
		long f0 = minflt();
		double t0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_THREAD_CPUTIME_ID);
		write_round(r);
		double t1 = now_ms(CLOCK_MONOTONIC), c1 = now_ms(CLOCK_THREAD_CPUTIME_ID);
		printf("round %d ms %.1f cpu_ms %.1f thp_mib %ld faults %ld\n", r, t1 - t0, c1 - c0, thp_mib(),
		       minflt() - f0);
		wait_usr1(r);
	}
	if (opt.check) {
		if (check(r - 1))
			return 1;
		printf("check ok\n");
	}
	printf("done\n");
	return 0;
}
