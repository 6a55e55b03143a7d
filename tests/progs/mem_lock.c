/*
 * mem_lock: what smaps VmFlags shows of a region besides madvise advice,
 * and the locks (docs/architecture.md, "Locked memory").
 *   - mlock (lo), mlock2(MLOCK_ONFAULT) (lo lf), MAP_LOCKED (lo): locked,
 *     with their content, and VmLck in /proc/self/status exactly theirs;
 *     an unlocked region stays unlocked;
 *   - MADV_MERGEABLE (mg, when the kernel has KSM), MAP_NORESERVE (nr),
 *     MAP_GROWSDOWN (gd) on a region that is not the stack;
 *   - with the argument "all": mlockall(MCL_CURRENT | MCL_FUTURE) as
 *     well: every region is locked, and so is one mapped at each step
 *     (after the restart too: MCL_FUTURE is kept).
 */
#include "common.h"
#include "exact.h"
#include <sys/mman.h>

#define STEPS 20
#define NPG 8

enum { R_MLOCK, R_ONFAULT, R_MAPLOCKED, R_MERGE, R_NORESERVE, R_GROWSDOWN, R_PLAIN, NREG };
static const struct { const char *name, *want, *not; } regs[NREG] = {
	[R_MLOCK] = { "mlock", "lo", "lf" },
	[R_ONFAULT] = { "mlock2(MLOCK_ONFAULT)", "lo lf", "" },
	[R_MAPLOCKED] = { "MAP_LOCKED", "lo", "lf" },
	[R_MERGE] = { "MADV_MERGEABLE", "mg", "lo" },
	[R_NORESERVE] = { "MAP_NORESERVE", "nr", "lo" },
	[R_GROWSDOWN] = { "MAP_GROWSDOWN", "gd", "lo" },
	[R_PLAIN] = { "plain", "", "lo lf mg nr gd" },
};
static unsigned char *reg[NREG];
static int all, ksm;

/* each two-letter code of the list set (want 1) or not (want 0) on the region */
static void check_codes(const void *m, const char *codes, int want, const char *what, int step)
{
	for (const char *c = codes; c[0] && c[1]; c += c[2] ? 3 : 2) {
		char code[3] = { c[0], c[1], 0 };
		if (!ksm && strcmp(code, "mg") == 0)
			continue;
		CHECK(x_vmflag(m, code) == want, "step %d: the %s region %s VmFlags %s", step, what,
		      want ? "lost its" : "has", code);
	}
}

/* VmLck of /proc/self/status, in kB */
static long vmlck_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");
	CHECK(f, "/proc/self/status: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void check_all(int step)
{
	for (int i = 0; i < NREG; i++) {
		/* the MLOCK_ONFAULT one has only its first half written */
		int npg = i == R_ONFAULT ? NPG / 2 : NPG;
		for (int p = 0; p < npg; p++)
			CHECK(x_diff(reg[i] + p * PG, x_seed((uint64_t)i, (uint64_t)p, 1)) < 0,
			      "step %d: page %d of the %s region differs", step, p, regs[i].name);
		/* mlockall(MCL_CURRENT) makes the on-fault lock a whole one (no lf) */
		check_codes(reg[i], all && i == R_ONFAULT ? "lo" : regs[i].want, 1, regs[i].name, step);
		/* none of the others' codes; under mlockall, locked */
		check_codes(reg[i], all ? "lo" : regs[i].not, all, regs[i].name, step);
	}
	long kb = vmlck_kb();
	if (!all)
		CHECK(kb == 3L * NPG * PG / 1024, "step %d: VmLck is %ld kB, expected %ld (three locked regions)", step, kb,
		      3L * NPG * PG / 1024);
	else
		CHECK(kb >= (long)(NREG * NPG * PG / 1024), "step %d: VmLck is %ld kB under mlockall", step, kb);
	/* a region mapped now is locked under MCL_FUTURE only */
	unsigned char *m = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
	CHECK(x_vmflag(m, "lo") == all, "step %d: a region mapped now is %slocked", step, all ? "not " : "");
	SYSCHK(munmap(m, 2 * PG));
}

static unsigned char *map(int extra)
{
	/* a page of room on each side: no two regions merge */
	unsigned char *m = mmap(NULL, (NPG + 2) * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
	m = mmap(m + PG, NPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | extra, -1, 0);
	CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
	return m;
}

int main(int argc, char **argv)
{
	t_init("mem_lock");
	all = argc > 1 && strcmp(argv[1], "all") == 0;
	for (int i = 0; i < NREG; i++) {
		reg[i] = map(i == R_MAPLOCKED ? MAP_LOCKED : i == R_NORESERVE ? MAP_NORESERVE :
			     i == R_GROWSDOWN ? MAP_GROWSDOWN : 0);
		if (i == R_MLOCK)
			SYSCHK(mlock(reg[i], NPG * PG));
		if (i == R_ONFAULT)
			SYSCHK(mlock2(reg[i], NPG * PG, MLOCK_ONFAULT));
		if (i == R_MERGE)
			ksm = madvise(reg[i], NPG * PG, MADV_MERGEABLE) == 0; /* EINVAL: a kernel without KSM */
		for (int p = 0; p < (i == R_ONFAULT ? NPG / 2 : NPG); p++)
			x_fill(reg[i] + p * PG, x_seed((uint64_t)i, (uint64_t)p, 1));
	}
	if (all)
		SYSCHK(mlockall(MCL_CURRENT | MCL_FUTURE));
	for (int s = 0; s < STEPS; s++) {
		check_all(s);
		x_step(s, 100);
	}
	check_all(STEPS);
	printf("RESULT mem_lock%s ok\n", all ? " all" : "");
	return 0;
}
