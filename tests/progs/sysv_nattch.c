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

int main(int argc, char **argv)
{
	t_prog = "sysv_nattch";
	int id = shmget(IPC_PRIVATE, 1 << 20, 0600 | IPC_CREAT);
	if (id < 0)
		FAIL("shmget: %s", strerror(errno));
	char *seg = shmat(id, NULL, 0);
	if (seg == (void *)-1)
		FAIL("shmat: %s", strerror(errno));
	memset(seg, 1, 1 << 20);
	size_t len;
	char *mem = t_watch_memory(argc, argv, 256, &len);
	printf("ready\n");
	fflush(stdout);
	unsigned long most = 0, samples = 0;
	while (!t_stop) {
		struct shmid_ds ds;
		if (shmctl(id, IPC_STAT, &ds) < 0)
			FAIL("shmctl IPC_STAT: %s", strerror(errno));
		samples++;
		if (ds.shm_nattch > most)
			most = ds.shm_nattch;
		mem[(samples * 4096) % len]++;
		if (t_report) {
			t_report = 0;
			printf("nattch max %lu samples %lu\n", most, samples);
			fflush(stdout);
		}
	}
	shmctl(id, IPC_RMID, NULL);
	return 0;
}
