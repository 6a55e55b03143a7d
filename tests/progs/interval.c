/*
 * interval: a longer-running program (~5.5 s) for periodic checkpoints
 * (run --interval 1). Main thread and a helper thread keep mutating a few
 * MiB of memory (so consecutive generations differ) and check it each step.
 */
#include "common.h"
#include <stdatomic.h>

#define STEPS 22
#define WORDS (512 * 1024)	/* 4 MiB */

static uint64_t mem[WORDS];
static atomic_int helper_step = -1, main_step = -1;
static uint64_t helper_acc;

static uint64_t val(int s, size_t i) { return t_mix(((uint64_t)s << 32) ^ i); }

static void *helper(void *arg)
{
	struct t_ident id;
	static uint64_t own[WORDS / 8];

	(void)arg;
	t_ident_init(&id);
	for (int s = 0; s < STEPS; s++) {
		while (atomic_load(&main_step) < s)
			t_sleep_ms(5);
		t_ident_check(&id);
		for (size_t i = 0; i < WORDS / 8; i++) {
			CHECK(own[i] == (s == 0 ? 0 : val(s - 1, i) ^ 1), "helper memory corrupted at step %d", s);
			own[i] = val(s, i) ^ 1;
		}
		helper_acc = t_fnv_u64(helper_acc, own[(size_t)s * 97]);
		atomic_store(&helper_step, s);
	}
	return NULL;
}

int main(void)
{
	struct t_ident id;
	pthread_t th;
	uint64_t h = T_FNV_INIT;

	t_init("interval");
	t_ident_init(&id);
	CHECK(pthread_create(&th, NULL, helper, NULL) == 0, "pthread_create");
	for (int s = 0; s < STEPS; s++) {
		t_ident_check(&id);
		/* rewrite a quarter of the memory each step */
		size_t from = (size_t)(s % 4) * (WORDS / 4);
		for (size_t i = 0; i < WORDS; i++) {
			int last = -1;
			/* last step that wrote word i */
			for (int k = s - 1; k >= 0; k--)
				if ((size_t)(k % 4) * (WORDS / 4) <= i && i < (size_t)(k % 4 + 1) * (WORDS / 4)) {
					last = k;
					break;
				}
			if (i % 1024 == 0 || (i >= from && i < from + WORDS / 4))
				CHECK(mem[i] == (last < 0 ? 0 : val(last, i)), "memory corrupted at step %d word %zu", s, i);
		}
		for (size_t i = from; i < from + WORDS / 4; i++)
			mem[i] = val(s, i);
		h = t_fnv_u64(h, mem[from + (size_t)s]);
		atomic_store(&main_step, s);
		while (atomic_load(&helper_step) < s)
			t_sleep_ms(5);
		printf("step %d ok h=%llu helper=%llu\n", s, (unsigned long long)h, (unsigned long long)helper_acc);
		t_sleep_ms(230);
	}
	CHECK(pthread_join(th, NULL) == 0, "join");
	/* a test's end gate (common.h) holds it before its RESULT: a restart of a generation taken there prints it */
	t_end_gate_now();
	printf("RESULT %llu\n", (unsigned long long)(h ^ helper_acc));
	return 0;
}
