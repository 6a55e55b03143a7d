/*
 * thread_names: each thread's name (its comm, PR_SET_NAME) comes back as it
 * was at the checkpoint.
 *
 * The renamer thread renames itself all the time, "tn-K" with K its count
 * of renames modulo 7, and checks before each rename that its name is the
 * one its count says; the steady thread names itself "tn-steady" once and
 * checks it every 10 ms; the main thread checks that it still has the
 * program's name.  A live checkpoint's image is written by a snapshot while
 * the program runs on: a name read then would be a later one (or none, the
 * thread gone), and the renamer's first check after a restart of that
 * generation fails.  Output: "step N ok" every 100 ms, each once both
 * threads have checked again, then RESULT.  Under a test's end gate
 * (common.h) it waits before its end with both threads running.
 */
#include "common.h"
#include <stdatomic.h>
#include <sys/prctl.h>

#define STEPS 24
#define NAMES 7

static atomic_ulong renames, steady_checks;
static atomic_int stop;

static void name_of(unsigned long i, char out[16]) { t_fmt(out, 16, "tn-%lu", i % NAMES); }

static void my_name(char out[16])
{
	memset(out, 0, 16);
	CHECK(prctl(PR_GET_NAME, out, 0, 0, 0) == 0, "PR_GET_NAME: %s", strerror(errno));
}

static void set_name(const char *n) { CHECK(prctl(PR_SET_NAME, n, 0, 0, 0) == 0, "PR_SET_NAME: %s", strerror(errno)); }

static void *renamer(void *arg)
{
	char want[16], cur[16];
	unsigned long i = 0;
	(void)arg;
	name_of(i, want);
	set_name(want);
	for (;;) {
		name_of(i, want);
		my_name(cur);
		CHECK(strcmp(cur, want) == 0, "renamer: named '%s' after %lu renames, expected '%s'", cur, i, want);
		if (atomic_load(&stop))
			return NULL;
		i++;
		name_of(i, want);
		set_name(want);
		atomic_store(&renames, i);
		struct timespec ts = { 0, 100 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void *steady(void *arg)
{
	char cur[16];
	(void)arg;
	set_name("tn-steady");
	while (!atomic_load(&stop)) {
		my_name(cur);
		CHECK(strcmp(cur, "tn-steady") == 0, "steady thread: named '%s', expected 'tn-steady'", cur);
		atomic_fetch_add(&steady_checks, 1);
		t_sleep_ms(10);
	}
	return NULL;
}

int main(void)
{
	pthread_t r, s;
	char cur[16];
	t_init("thread_names");
	CHECK(pthread_create(&r, NULL, renamer, NULL) == 0, "pthread_create");
	CHECK(pthread_create(&s, NULL, steady, NULL) == 0, "pthread_create");
	for (int k = 0; k < STEPS; k++) {
		unsigned long r0 = atomic_load(&renames), s0 = atomic_load(&steady_checks);
		t_sleep_ms(100);
		while (atomic_load(&renames) == r0 || atomic_load(&steady_checks) == s0)
			t_sleep_ms(1);
		my_name(cur);
		CHECK(strcmp(cur, "thread_names") == 0, "main thread: named '%s', expected 'thread_names'", cur);
		printf("step %d ok\n", k);
		fflush(stdout);
	}
	t_end_gate_now();
	atomic_store(&stop, 1);
	CHECK(pthread_join(r, NULL) == 0 && pthread_join(s, NULL) == 0, "pthread_join");
	printf("RESULT thread_names ok\n");
	return 0;
}
