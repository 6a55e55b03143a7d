/*
 * mem_guard: unusual maps the image writer must get through, or refuse
 * with the region's address and why (never crash):
 *   - guard pages (MADV_GUARD_INSTALL, Linux 6.13) inside an anonymous
 *     region: touching one must still raise SIGSEGV, the pages around
 *     keep their content;
 *   - a PROT_NONE page between readable ones (an old-style guard);
 *   - a MAP_GROWSDOWN region with content.
 * With the argument "noguard" (or a kernel without MADV_GUARD_INSTALL)
 * the guard-page part is left out.  It prints "ready", then waits for
 * go.1 (common.h) before its steps.
 */
#include "common.h"
#include "exact.h"
#include <setjmp.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#define STEPS 16
#define NPG 8

static unsigned char *gr, *pn, *gd;
static int have_guard;
static sigjmp_buf jb;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

/* Does reading addr raise SIGSEGV? */
static int faults(volatile unsigned char *addr)
{
	if (sigsetjmp(jb, 1))
		return 1;
	(void)*addr;
	return 0;
}

static int is_guard(int p) { return have_guard && (p == 2 || p == 5); }

static void check_all(int step)
{
	for (int p = 0; p < NPG; p++) {
		if (is_guard(p)) {
			CHECK(faults(gr + p * PG), "step %d: guard page %d can be read", step, p);
			continue;
		}
		long d = x_diff(gr + p * PG, x_seed(1, (uint64_t)p, (uint64_t)step));
		CHECK(d < 0, "step %d: page %d around the guards differs at byte %ld", step, p, d);
	}
	for (int p = 0; p < 3; p++) {
		if (p == 1) {
			CHECK(faults(pn + p * PG), "step %d: the PROT_NONE page can be read", step);
			continue;
		}
		CHECK(x_diff(pn + p * PG, x_seed(2, (uint64_t)p, 0)) < 0, "step %d: page %d next to PROT_NONE differs", step, p);
	}
	for (int p = 0; p < NPG; p++)
		CHECK(x_diff(gd + p * PG, x_seed(3, (uint64_t)p, 0)) < 0, "step %d: page %d of the MAP_GROWSDOWN region differs",
		      step, p);
	struct x_map m;
	CHECK(x_maps_find(pn + PG, &m) && strcmp(m.perms, "---p") == 0, "step %d: the PROT_NONE page is %s", step, m.perms);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { 0 };

	t_init("mem_guard");
	sa.sa_handler = on_segv;
	sa.sa_flags = SA_NODEFER;
	SYSCHK(sigaction(SIGSEGV, &sa, NULL));
	gr = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pn = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gd = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
	CHECK(gr != MAP_FAILED && pn != MAP_FAILED && gd != MAP_FAILED, "mmap: %s", strerror(errno));
	have_guard = !(argc > 1 && strcmp(argv[1], "noguard") == 0) && madvise(gr + 2 * PG, PG, MADV_GUARD_INSTALL) == 0;
	if (have_guard)
		SYSCHK(madvise(gr + 5 * PG, PG, MADV_GUARD_INSTALL));
	for (int p = 0; p < NPG; p++)
		if (!is_guard(p))
			x_fill(gr + p * PG, x_seed(1, (uint64_t)p, 0));
	for (int p = 0; p < 3; p++)
		x_fill(pn + p * PG, x_seed(2, (uint64_t)p, 0));
	SYSCHK(mprotect(pn + PG, PG, PROT_NONE));
	for (int p = 0; p < NPG; p++)
		x_fill(gd + p * PG, x_seed(3, (uint64_t)p, 0));
	check_all(0);
	printf("ready\n");
	t_wait_go(1);
	for (int s = 0; s < STEPS; s++) {
		check_all(s);
		for (int p = 0; p < NPG; p++)
			if (!is_guard(p))
				x_fill(gr + p * PG, x_seed(1, (uint64_t)p, (uint64_t)s + 1));
		x_step(s, 100);
	}
	check_all(STEPS);
	printf("RESULT mem_guard ok\n");
	return 0;
}
