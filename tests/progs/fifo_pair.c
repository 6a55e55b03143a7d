/*
 * fifo_pair - two processes talking through a named FIFO, with data in
 * flight.  The parent makes a FIFO under COHORT_TEST_TMP (or /tmp) and
 * writes the numbers 1..N into it in bursts; its child reads them more
 * slowly, so that the FIFO holds bytes at most moments.  Both check at every
 * step that their descriptor is the FIFO at that path (same inode), so a
 * restart that brings back an anonymous pipe fails.  Half-way a third
 * process opens the path again and writes a marker, which the reader must
 * find among the numbers: only the same named FIFO carries it.  The reader
 * checks the numbers come in order; the parent prints RESULT with what the
 * reader summed.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define N 3000
#define MARKER 0xfffffffeu

static void same_fifo(int fd, const char *path, const char *who)
{
	struct stat a, b;
	SYSCHK(fstat(fd, &a));
	SYSCHK(stat(path, &b));
	CHECK(S_ISFIFO(a.st_mode) && a.st_ino == b.st_ino && a.st_dev == b.st_dev,
	      "%s: its descriptor is not the FIFO %s any more", who, path);
}

int main(void)
{
	t_prog = "fifo_pair";
	const char *dir = getenv("COHORT_TEST_TMP");
	char path[4096];
	snprintf(path, sizeof(path), "%s/fifo_pair.%d", dir && *dir ? dir : "/tmp", (int)getpid());
	SYSCHK(mkfifo(path, 0600));
	pid_t reader = fork();
	SYSCHK(reader);
	if (reader == 0) {
		int fd = open(path, O_RDONLY);
		SYSCHK(fd);
		unsigned want = 1, v, markers = 0;
		unsigned long long sum = 0;
		for (;;) {
			ssize_t n = read(fd, &v, sizeof(v));
			SYSCHK(n);
			if (n == 0)
				break;
			CHECK(n == sizeof(v), "short read of %zd bytes", n);
			if (v == MARKER) {
				markers++;
				continue;
			}
			CHECK(v == want, "read %u, expected %u", v, want);
			want++;
			sum += v;
			if (v % 50 == 0) {
				same_fifo(fd, path, "reader");
				t_sleep_ms(5);
			}
		}
		CHECK(want == N + 1 && markers == 1, "ended at %u with %u markers", want, markers);
		printf("reader sum %llu markers %u\n", sum, markers);
		fflush(stdout);
		_exit(0);
	}
	int fd = open(path, O_WRONLY);
	SYSCHK(fd);
	for (unsigned i = 1; i <= N; i++) {
		CHECK(write(fd, &i, sizeof(i)) == sizeof(i), "write of %u failed", i);
		if (i % 100 == 0) {
			same_fifo(fd, path, "writer");
			t_sleep_ms(40);
		}
		if (i == N / 2) {
			/* someone else opens the path: the same FIFO must take its bytes */
			pid_t other = fork();
			SYSCHK(other);
			if (other == 0) {
				int o = open(path, O_WRONLY);
				unsigned m = MARKER;
				_exit(o >= 0 && write(o, &m, sizeof(m)) == sizeof(m) ? 0 : 1);
			}
			int st;
			SYSCHK(waitpid(other, &st, 0));
			CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the marker writer failed");
		}
		if (i % 500 == 0) {
			printf("wrote %u\n", i);
			fflush(stdout);
		}
	}
	close(fd);
	int st;
	SYSCHK(waitpid(reader, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader failed (status %d)", st);
	unlink(path);
	printf("RESULT %llu\n", (unsigned long long)N * (N + 1) / 2);
	return 0;
}
