/*
 * thread_watch MIB: how long a thread the program did not start is seen
 * in /proc/self/task while the program runs.  It fills MIB MiB (so that a
 * pre-copy of it takes a while), starts one watcher thread, prints
 * "ready", and then the watcher lists /proc/self/task as fast as it can
 * while the main thread rewrites a page now and then.  On SIGUSR1 (sent
 * by the test after its checkpoints) it prints
 *   watch longest_ms L stretches N samples S
 * L: the longest stretch (ms) in which the listing held more threads
 * than the two it started; N: how many such stretches; S: listings made.
 * On SIGTERM it ends with status 0.  The test compares L with how long
 * the checkpoints' pre-copies took: a thread of cohort's that stays while
 * the memory is read is seen for about as long.
 */
#include "common.h"
#include <dirent.h>

static double longest_ms;
static long stretches, samples;

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int threads_listed(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		FAIL("opendir /proc/self/task: %s", strerror(errno));
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void *watcher(void *arg)
{
	(void)arg;
	double since = -1;
	while (!t_stop) {
		int n = threads_listed();
		double t = now_ms();
		samples++;
		if (n > 2 && since < 0) {
			since = t;
			stretches++;
		} else if (n <= 2 && since >= 0) {
			if (t - since > longest_ms)
				longest_ms = t - since;
			since = -1;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	t_prog = "thread_watch";
	size_t len;
	char *mem = t_watch_memory(argc, argv, 256, &len);
	pthread_t w;
	if (pthread_create(&w, NULL, watcher, NULL))
		FAIL("pthread_create");
	printf("ready\n");
	fflush(stdout);
	for (size_t k = 0; !t_stop; k++) {
		mem[(k * 4096 * 7) % len]++;
		t_sleep_ms(1);
		if (t_report) {
			t_report = 0;
			printf("watch longest_ms %.1f stretches %ld samples %ld\n", longest_ms, stretches, samples);
			fflush(stdout);
		}
	}
	pthread_join(w, NULL);
	return 0;
}
