/*
 * xstate_regs: the extended register state of running threads survives
 * checkpoints.  Two threads spin with known values in the upper halves of
 * YMM8-YMM15 (and, where the CPU has AVX-512, in ZMM16-ZMM31's upper parts
 * and the opmask registers k1-k7), values no compiled code touches: the
 * checks store the registers with their own instructions and compare.  A
 * checkpoint signal that returns, or a restart, with any of it changed is
 * caught at the next check.  Prints one line per step and RESULT.
 */
#include "common.h"
#include <cpuid.h>
#include <stdatomic.h>

#define STEPS 40

static int have_avx, have_avx512;
static atomic_int stop;

static int cpu_has(unsigned leaf, unsigned sub, int reg, unsigned bit)
{
	unsigned r[4];
	if ((unsigned)__get_cpuid_max(0, 0) < leaf)
		return 0;
	__cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
	return (r[reg] >> bit) & 1;
}

/* The OS saves these in its XSAVE area (XCR0), not only the CPU having them. */
static uint64_t xcr0(void)
{
	if (!cpu_has(1, 0, 2, 27)) /* OSXSAVE */
		return 0;
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(t_mix(seed * 1000003u + i) >> 7);
}

/* YMM8-15: 8 x 32 bytes */
static void ymm_load(const uint8_t *p)
{
	__asm__ volatile("vmovdqu 0(%0), %%ymm8\n\tvmovdqu 32(%0), %%ymm9\n\t"
			 "vmovdqu 64(%0), %%ymm10\n\tvmovdqu 96(%0), %%ymm11\n\t"
			 "vmovdqu 128(%0), %%ymm12\n\tvmovdqu 160(%0), %%ymm13\n\t"
			 "vmovdqu 192(%0), %%ymm14\n\tvmovdqu 224(%0), %%ymm15\n\t" ::"r"(p)
			 : "memory");
}

static void ymm_store(uint8_t *p)
{
	__asm__ volatile("vmovdqu %%ymm8, 0(%0)\n\tvmovdqu %%ymm9, 32(%0)\n\t"
			 "vmovdqu %%ymm10, 64(%0)\n\tvmovdqu %%ymm11, 96(%0)\n\t"
			 "vmovdqu %%ymm12, 128(%0)\n\tvmovdqu %%ymm13, 160(%0)\n\t"
			 "vmovdqu %%ymm14, 192(%0)\n\tvmovdqu %%ymm15, 224(%0)\n\t" ::"r"(p)
			 : "memory");
}

/* ZMM28-31 (64 bytes each) and k1-k7 (8 bytes each), written with raw encodings-free mnemonics */
static void zmm_load(const uint8_t *p)
{
	__asm__ volatile(
			 "vmovdqu64 0(%0), %%zmm28\n\tvmovdqu64 64(%0), %%zmm29\n\t"
			 "vmovdqu64 128(%0), %%zmm30\n\tvmovdqu64 192(%0), %%zmm31\n\t"
			 "kmovq 256(%0), %%k1\n\tkmovq 264(%0), %%k2\n\tkmovq 272(%0), %%k3\n\t"
			 "kmovq 280(%0), %%k4\n\tkmovq 288(%0), %%k5\n\tkmovq 296(%0), %%k6\n\t"
			 "kmovq 304(%0), %%k7\n\t" ::"r"(p)
			 : "memory");
}

static void zmm_store(uint8_t *p)
{
	__asm__ volatile(
			 "vmovdqu64 %%zmm28, 0(%0)\n\tvmovdqu64 %%zmm29, 64(%0)\n\t"
			 "vmovdqu64 %%zmm30, 128(%0)\n\tvmovdqu64 %%zmm31, 192(%0)\n\t"
			 "kmovq %%k1, 256(%0)\n\tkmovq %%k2, 264(%0)\n\tkmovq %%k3, 272(%0)\n\t"
			 "kmovq %%k4, 280(%0)\n\tkmovq %%k5, 288(%0)\n\tkmovq %%k6, 296(%0)\n\t"
			 "kmovq %%k7, 304(%0)\n\t" ::"r"(p)
			 : "memory");
}

/* nanosleep(100 ms) as a bare system call, restarted after EINTR: no library code at all */
static void raw_sleep_100ms(void)
{
	struct timespec t = { 0, 100000000 };
	long r;
	do
		__asm__ volatile("syscall" : "=a"(r) : "0"(35L), "D"(&t), "S"(&t) : "rcx", "r11", "memory");
	while (r == -EINTR);
}

struct spinner {
	unsigned seed;
	atomic_long checks;
};

/*
 * Load the registers, then check them in a loop that calls nothing (so no
 * code of ours or libc's uses the registers in between), until told to stop.
 */
__attribute__((optimize("no-tree-vectorize"))) static void *spin(void *arg)
{
	struct spinner *s = arg;
	uint8_t want_y[256], got_y[256], want_z[312], got_z[312];
	pattern(want_y, sizeof(want_y), s->seed);
	pattern(want_z, sizeof(want_z), s->seed + 77);
	if (have_avx)
		ymm_load(want_y);
	if (have_avx512)
		zmm_load(want_z);
	while (!atomic_load(&stop)) {
		if (have_avx) {
			ymm_store(got_y);
			for (int i = 0; i < 256; i++)
				if (got_y[i] != want_y[i]) {
					fprintf(stderr, "xstate_regs: thread %u: ymm%d byte %d changed\n", s->seed, 8 + i / 32, i % 32);
					_exit(1);
				}
		}
		if (have_avx512) {
			zmm_store(got_z);
			for (int i = 0; i < 312; i++)
				if (got_z[i] != want_z[i]) {
					fprintf(stderr, "xstate_regs: thread %u: %s changed (byte %d)\n", s->seed,
						i < 256 ? "a zmm register" : "an opmask register", i);
					_exit(1);
				}
		}
		atomic_fetch_add(&s->checks, 1);
		/* leave the CPU to others: a raw sched_yield, no library code */
		long r;
		__asm__ volatile("syscall" : "=a"(r) : "0"(24L) : "rcx", "r11", "memory");
	}
	return NULL;
}

int main(void)
{
	t_init("xstate_regs");
	uint64_t x = xcr0();
	have_avx = (x & 6) == 6 && cpu_has(1, 0, 2, 28);
	have_avx512 = have_avx && (x & 0xe0) == 0xe0 && cpu_has(7, 0, 1, 16) && cpu_has(7, 0, 1, 17);
	printf("checking ymm: %s\n", have_avx ? "yes" : "no (no AVX)");
	static struct spinner sp[2] = { { 1, 0 }, { 2, 0 } };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		if (pthread_create(&th[i], NULL, spin, &sp[i]))
			FAIL("pthread_create");
	uint8_t want[256], got[256];
	pattern(want, sizeof(want), 3);
	for (int s = 0; s < STEPS; s++) {
		long before[2] = { atomic_load(&sp[0].checks), atomic_load(&sp[1].checks) };
		/*
		 * The main thread waits in a raw nanosleep with its own values in
		 * YMM8-15 (libc's string functions end in vzeroupper, so they are
		 * loaded again after each printf): a checkpoint that interrupts a
		 * system call must give them back too.
		 */
		if (have_avx)
			ymm_load(want);
		raw_sleep_100ms();
		if (have_avx) {
			ymm_store(got);
			for (int i = 0; i < 256; i++)
				CHECK(got[i] == want[i], "main thread: ymm%d byte %d changed during a system call", 8 + i / 32,
				      i % 32);
		}
		/*
		 * Both spinners still run and check: a stuck one would hide a
		 * fault.  Waited for, not asked of this step alone: a restart
		 * can come in the step's last moment (the sleep ends at once
		 * after it), before a busy machine has run the spinners again.
		 */
		for (int i = 0; i < 2; i++) {
			struct timespec ms = { 0, 1000000 };
			for (int k = 0; atomic_load(&sp[i].checks) <= before[i] && k < 10000; k++)
				nanosleep(&ms, NULL);
			CHECK(atomic_load(&sp[i].checks) > before[i], "spinner %d stopped checking (10 s)", i);
		}
		printf("step %d ok\n", s);
		fflush(stdout);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("RESULT registers intact through %d steps\n", STEPS);
	return 0;
}
