/*
 * sysv_nattch MIB: a SysV segment attached once, and MIB MiB of private
 * memory (so that a snapshot writer lives a while), while the main thread
 * reads the segment's attachment count (IPC_STAT shm_nattch) without
 * pause.  On SIGUSR1 it prints "nattch max M samples S": M must stay 1 (a
 * snapshot writer of cohort's that kept the segment attached while it
 * wrote the image was counted).  SIGTERM: the segment is removed, exit 0.
 */
#include "common.h"
#include <sys/shm.h>

static volatile sig_atomic_t report, stop;
static void on_usr1(int s) { (void)s; report = 1; }
static void on_term(int s) { (void)s; stop = 1; }

int main(int argc, char **argv)
{
	t_prog = "sysv_nattch";
	size_t len = (size_t)(argc > 1 ? atoi(argv[1]) : 256) << 20;
	int id = shmget(IPC_PRIVATE, 1 << 20, 0600 | IPC_CREAT);
	if (id < 0)
		FAIL("shmget: %s", strerror(errno));
	char *seg = shmat(id, NULL, 0);
	if (seg == (void *)-1)
		FAIL("shmat: %s", strerror(errno));
	memset(seg, 1, 1 << 20);
	char *mem = malloc(len);
	if (!mem)
		FAIL("malloc %zu", len);
	for (size_t i = 0; i < len; i += 4096)
		mem[i] = (char)(i >> 12);
	signal(SIGUSR1, on_usr1);
	signal(SIGTERM, on_term);
	printf("ready\n");
	fflush(stdout);
	unsigned long most = 0, samples = 0;
	while (!stop) {
		struct shmid_ds ds;
		if (shmctl(id, IPC_STAT, &ds) < 0)
			FAIL("shmctl IPC_STAT: %s", strerror(errno));
		samples++;
		if (ds.shm_nattch > most)
			most = ds.shm_nattch;
		mem[(samples * 4096) % len]++;
		if (report) {
			report = 0;
			printf("nattch max %lu samples %lu\n", most, samples);
			fflush(stdout);
		}
	}
	shmctl(id, IPC_RMID, NULL);
	return 0;
}
