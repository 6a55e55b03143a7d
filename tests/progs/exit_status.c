/*
 * exit_status: does some work in steps, then exits with status 7.
 * With argument "signal" it instead terminates itself with SIGUSR2 (default
 * action: terminate), so the expected status is 128+12 = 140.
 * Used to check that exit statuses propagate through run/restart.
 */
#include "common.h"

#define STEPS 8

int main(int argc, char **argv)
{
	struct t_ident id;
	int by_signal = argc > 1 && strcmp(argv[1], "signal") == 0;
	uint64_t acc = 1;
	static uint64_t table[4096];

	t_init("exit_status");
	t_ident_init(&id);
	for (int s = 0; s < STEPS; s++) {
		t_ident_check(&id);
		for (int i = 0; i < 4096; i++) {
			CHECK(table[i] == (s == 0 ? 0 : t_mix((uint64_t)i + (uint64_t)(s - 1) * 4096)), "table corrupted");
			table[i] = t_mix((uint64_t)i + (uint64_t)s * 4096);
			acc = acc * 31 + table[i];
		}
		printf("step %d ok acc=%llu\n", s, (unsigned long long)acc);
		t_sleep_ms(400);
	}
	if (by_signal) {
		printf("RESULT %llu terminating with SIGUSR2\n", (unsigned long long)acc);
		fflush(stdout);
		signal(SIGUSR2, SIG_DFL);
		raise(SIGUSR2);
		FAIL("still alive after raise(SIGUSR2)");
	}
	printf("RESULT %llu exiting with 7\n", (unsigned long long)acc);
	return 7;
}
