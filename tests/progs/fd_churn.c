/*
 * fd_churn: the descriptor idioms of shells and daemons, in a tight loop,
 * while checkpoints come one after another.  The lowest free number must be
 * the program's: after close(0), open() must return 0; and a descriptor put
 * in place with dup2 must stay the file it was made from (a shell running
 * `cmd <file` saves fd 0 with F_DUPFD, closes it, dup2s the file onto it).
 * An agent that created a descriptor of its own while the program runs
 * would take the freed number for a moment, or close the program's new
 * one.  Every step checks, with fstat, which file fd 0 and the saved copy
 * are; the output is one line per step.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

#define STEPS 40
#define ITERS 6000

static ino_t ino_of(int fd, const char *what)
{
	struct stat st;
	CHECK(fstat(fd, &st) == 0, "fstat(%d) (%s): %s", fd, what, strerror(errno));
	return st.st_ino;
}

int main(void)
{
	t_init("fd_churn");
	char a[4096], b[4096], dir[4096];
	t_mkworkdir(dir, sizeof(dir), "fd_churn");
	t_fmt(a, sizeof(a), "%s/a", dir);
	t_fmt(b, sizeof(b), "%s/b", dir);
	for (const char *p = a; p; p = p == a ? b : NULL) {
		int f = SYSCHK(open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600));
		SYSCHK(write(f, p, strlen(p)));
		SYSCHK(close(f));
	}
	int fb = SYSCHK(open(b, O_RDONLY));
	ino_t ia = ino_of(fb, "b"), ib = ia;
	{
		int f = SYSCHK(open(a, O_RDONLY));
		ia = ino_of(f, "a");
		SYSCHK(close(f));
	}
	uint64_t h = T_FNV_INIT;
	for (int s = 0; s < STEPS; s++) {
		for (int i = 0; i < ITERS; i++) {
			/* the lowest free number is ours */
			SYSCHK(close(0));
			int f = SYSCHK(open(a, O_RDONLY));
			CHECK(f == 0, "step %d: open after close(0) returned %d, not 0", s, f);
			CHECK(ino_of(0, "fd 0 after open") == ia, "step %d: fd 0 is not a", s);
			/* a shell's `cmd <b`: save fd 0 high, put b in its place, then put a back */
			int saved = SYSCHK(fcntl(0, F_DUPFD, 10));
			SYSCHK(close(0));
			CHECK(dup2(fb, 0) == 0, "step %d: dup2(b, 0): %s", s, strerror(errno));
			CHECK(ino_of(0, "fd 0 after dup2") == ib, "step %d: fd 0 is not b after dup2", s);
			CHECK(ino_of(saved, "saved fd") == ia, "step %d: the saved fd %d is not a", s, saved);
			CHECK(dup2(saved, 0) == 0, "step %d: dup2(saved, 0): %s", s, strerror(errno));
			SYSCHK(close(saved));
			CHECK(ino_of(0, "fd 0 restored") == ia, "step %d: fd 0 is not a again", s);
			char c;
			CHECK(pread(0, &c, 1, 0) == 1 && c == a[0], "step %d: fd 0 reads wrong", s);
		}
		h = t_fnv_u64(h, (uint64_t)s * ITERS);
		printf("step %d ok: %d rounds of close/open and dup2\n", s, ITERS);
		fflush(stdout);
		t_sleep_ms(60);
	}
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
