/*
 * thp_probe.c - what this kernel does to transparent huge pages under
 * userfaultfd write-protection, the way cohort's dirty tracking uses it
 * (src/agent/dirty_thp.c, "Huge pages").  No cohort involved.
 *
 * Usage: thp_probe [MIB]        (default 1024)
 *
 * Four experiments on a fresh MIB heap, madvise(MADV_HUGEPAGE), 2 MiB
 * aligned, filled; each prints lines
 *   STEP ms T cpu_ms C faults F thp_mib H split_pmd S
 * (T: wall time of STEP, C: CPU time, F: minor faults, H: AnonHugePages of
 * the process after it, S: thp_split_pmd of /proc/vmstat so far) for every
 * rewrite of the whole heap ("round"), and one line for the other steps:
 *
 *   async    UFFD_FEATURE_WP_ASYNC (cohort's mode): register, protect all
 *            (UFFDIO_WRITEPROTECT), round, round, PAGEMAP_SCAN with
 *            PM_SCAN_WP_MATCHING (the collection), round, round.
 *   collapse async again: protect, round, the collection (every PTE
 *            protected again), MADV_COLLAPSE; round (every page written, no
 *            protected PTE left), MADV_COLLAPSE, round; the collection
 *            (protects the new huge pages whole), round.
 *   holes    async, with only the first half of the heap filled before it
 *            is protected; then the second half is filled: does it get
 *            huge pages?
 *   sync     synchronous write-protection, a thread answering each fault by
 *            unprotecting the whole 2 MiB around it (UFFDIO_WRITEPROTECT
 *            mode 0); round, round; then PAGEMAP_SCAN on it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* newer than this system's 6.1 headers (as in dirty.c) */
#define UFFD_API_ 0xAAULL
#define FEATURE_WP_ASYNC (1ULL << 15)
#define IOC_API 0xc018aa3fUL
#define IOC_REGISTER 0xc020aa00UL
#define IOC_WRITEPROTECT 0xc018aa06UL
#define IOC_PAGEMAP_SCAN 0xc0606610UL
#define PAGE_IS_WRITTEN (1ULL << 1)
#define SCAN_WP_MATCHING (1ULL << 0)
#define MADV_COLLAPSE_ 25
#define HUGE (2UL << 20)

struct uapi { uint64_t api, features, ioctls; };
struct urange { uint64_t start, len; };
struct ureg { struct urange range; uint64_t mode, ioctls; };
struct uwp { struct urange range; uint64_t mode; };
struct pregion { uint64_t start, end, categories; };
struct scanarg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct umsg {
	uint8_t event, r1;
	uint16_t r2;
	uint32_t r3;
	struct { uint64_t flags, address; uint32_t ptid; } pf; /* 32 bytes in all, as struct uffd_msg */
};

_Static_assert(sizeof(struct umsg) == 32, "struct uffd_msg is 32 bytes");

static char *heap;
static size_t len;
static int pm, uffd;

static double ms(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static long faults(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return r.ru_minflt;
}

static long thp_mib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char l[256];
	long k = -1;
	while (f && fgets(l, sizeof(l), f))
		if (sscanf(l, "AnonHugePages: %ld", &k) == 1)
			break;
	if (f)
		fclose(f);
	return k < 0 ? -1 : k / 1024;
}

static long split_pmd(void)
{
	FILE *f = fopen("/proc/vmstat", "r");
	char n[128];
	long v, r = -1;
	while (f && fscanf(f, "%127s %ld", n, &v) == 2)
		if (!strcmp(n, "thp_split_pmd"))
			r = v;
	if (f)
		fclose(f);
	return r;
}

static double t0, c0;
static long f0;
static void begin(void)
{
	t0 = ms(CLOCK_MONOTONIC);
	c0 = ms(CLOCK_THREAD_CPUTIME_ID);
	f0 = faults();
}

static void end(const char *what)
{
	printf("  %-34s ms %7.1f cpu_ms %7.1f faults %7ld thp_mib %5ld split_pmd %ld\n", what, ms(CLOCK_MONOTONIC) - t0,
	       ms(CLOCK_THREAD_CPUTIME_ID) - c0, faults() - f0, thp_mib(), split_pmd());
}

static void round_(const char *what)
{
	begin();
	for (size_t i = 0; i < len; i += 8)
		*(volatile uint64_t *)(heap + i) = i ^ (uint64_t)t0;
	end(what);
}

static void fresh(size_t fill)
{
	if (heap)
		munmap(heap, len);
	char *raw = mmap(0, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	heap = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	if (heap > raw)
		munmap(raw, (size_t)(heap - raw));
	munmap(heap + len, (size_t)(raw + HUGE - heap));
	madvise(heap, len, MADV_HUGEPAGE);
	memset(heap, 1, fill);
}

static void track(int async)
{
	if (uffd >= 0)
		close(uffd);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | (async ? O_NONBLOCK : 0));
	struct uapi api = { UFFD_API_, async ? FEATURE_WP_ASYNC : 0, 0 };
	struct ureg r = { { (uint64_t)heap, len }, 2 /* WP */, 0 };
	if (uffd < 0 || ioctl(uffd, IOC_API, &api) || ioctl(uffd, IOC_REGISTER, &r)) {
		perror("userfaultfd");
		exit(1);
	}
	begin();
	struct uwp w = { { (uint64_t)heap, len }, 1 };
	if (ioctl(uffd, IOC_WRITEPROTECT, &w)) {
		perror("UFFDIO_WRITEPROTECT");
		exit(1);
	}
	end("protect all");
}

static void collection(void)
{
	static struct pregion out[4096];
	long written = 0;
	begin();
	for (uint64_t at = (uint64_t)heap; at < (uint64_t)heap + len;) {
		struct scanarg a = { sizeof(a), SCAN_WP_MATCHING, at, (uint64_t)heap + len, 0, (uint64_t)out, 4096, 0,
				     0, PAGE_IS_WRITTEN, 0, PAGE_IS_WRITTEN };
		long n = ioctl(pm, IOC_PAGEMAP_SCAN, &a);
		if (n < 0) {
			perror("PAGEMAP_SCAN");
			exit(1);
		}
		for (long i = 0; i < n; i++)
			written += (long)((out[i].end - out[i].start) / 4096);
		if (a.walk_end <= at)
			break;
		at = a.walk_end;
	}
	char what[64];
	snprintf(what, sizeof(what), "collection (%ld pages written)", written);
	end(what);
}

static void collapse(const char *what)
{
	begin();
	int r = madvise(heap, len, MADV_COLLAPSE_);
	char w[96];
	snprintf(w, sizeof(w), "%s: %s", what, r ? strerror(errno) : "ok");
	end(w);
}

static void *server(void *arg)
{
	(void)arg;
	for (;;) {
		struct umsg m;
		struct pollfd p = { uffd, POLLIN, 0 };
		if (poll(&p, 1, -1) < 0 || read(uffd, &m, sizeof(m)) != (ssize_t)sizeof(m))
			continue;
		struct uwp w = { { m.pf.address & ~(HUGE - 1), HUGE }, 0 };
		ioctl(uffd, IOC_WRITEPROTECT, &w);
	}
	return 0;
}

int main(int argc, char **argv)
{
	len = (size_t)(argc > 1 ? atol(argv[1]) : 1024) << 20;
	if (len < HUGE) {
		fprintf(stderr, "usage: thp_probe [MIB >= 2]\n");
		return 2;
	}
	setvbuf(stdout, 0, _IOLBF, 0);
	uffd = -1;
	pm = open("/proc/self/pagemap", O_RDONLY);
	printf("async (cohort's mode)\n");
	fresh(len);
	round_("round, not tracked");
	track(1);
	round_("round after protect");
	round_("round");
	collection();
	round_("round after the collection");
	round_("round");
	printf("collapse\n");
	fresh(len);
	track(1);
	round_("round after protect");
	collection();
	collapse("MADV_COLLAPSE, PTEs protected");
	round_("round");
	collapse("MADV_COLLAPSE, all written");
	round_("round");
	collection();
	round_("round after the collection");
	printf("holes\n");
	fresh(len / 2);
	track(1);
	begin();
	memset(heap + len / 2, 2, len / 2);
	end("fill the second half");
	printf("sync (a thread unprotects 2 MiB per fault)\n");
	fresh(len);
	track(0);
	pthread_t th;
	pthread_create(&th, 0, server, 0);
	round_("round after protect");
	round_("round");
	collection();
	return 0;
}
