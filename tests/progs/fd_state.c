/*
 * fd_state: what a descriptor carries besides its file.
 *   - O_NONBLOCK on one end of a pipe and on one end of a FIFO (the
 *     other ends blocking), O_APPEND on a file;
 *   - F_SETOWN and F_SETSIG on a pipe end (with O_ASYNC);
 *   - close-on-exec on some descriptors, not on others;
 *   - memfd seals (F_SEAL_SHRINK | F_SEAL_GROW) and their effect;
 *   - O_PATH descriptors, on a file and on a symlink (O_NOFOLLOW);
 *   - a descriptor into /proc (/proc/self/status, read again each step).
 * Every step checks F_GETFL, F_GETFD, F_GETOWN, F_GETSIG, F_GET_SEALS and
 * fstat of each.
 */
#include "common.h"
#include "exact.h"

#define STEPS 14

static int pip[2], fifo_r, fifo_w, app, mfd, opath, olink, procfd;
static char dir[PATH_MAX], fpath[PATH_MAX], lpath[PATH_MAX];

static void flags_are(int fd, int fl, int fdfl, const char *what, int step)
{
	int got = SYSCHK(fcntl(fd, F_GETFL)) & (O_NONBLOCK | O_APPEND | O_ASYNC | O_PATH | O_ACCMODE | O_NOFOLLOW);
	int gotfd = SYSCHK(fcntl(fd, F_GETFD));
	CHECK(got == fl, "step %d: %s: status flags %#o, expected %#o", step, what, got, fl);
	CHECK(gotfd == fdfl, "step %d: %s: descriptor flags %d, expected %d", step, what, gotfd, fdfl);
}

static void check_all(int step)
{
	struct stat st;
	char buf[256];

	flags_are(pip[0], O_RDONLY | O_NONBLOCK | O_ASYNC, FD_CLOEXEC, "pipe read end", step);
	flags_are(pip[1], O_WRONLY, 0, "pipe write end", step);
	CHECK(read(pip[0], buf, 1) < 0 && errno == EAGAIN, "step %d: reading the empty nonblocking pipe did not fail EAGAIN",
	      step);
	CHECK(fcntl(pip[0], F_GETOWN) == getpid(), "step %d: F_GETOWN %d, expected %d", step, fcntl(pip[0], F_GETOWN),
	      (int)getpid());
	CHECK(fcntl(pip[0], F_GETSIG) == SIGRTMIN + 3, "step %d: F_GETSIG %d", step, fcntl(pip[0], F_GETSIG));
	flags_are(fifo_r, O_RDONLY | O_NONBLOCK, 0, "FIFO read end", step);
	flags_are(fifo_w, O_WRONLY, FD_CLOEXEC, "FIFO write end", step);
	CHECK(read(fifo_r, buf, 1) < 0 && errno == EAGAIN, "step %d: reading the empty nonblocking FIFO did not fail EAGAIN",
	      step);
	flags_are(app, O_WRONLY | O_APPEND, 0, "file opened O_APPEND", step);
	SYSCHK(fstat(app, &st));
	t_write_all(app, "x", 1, -1);
	CHECK(lseek(app, 0, SEEK_CUR) == st.st_size + 1, "step %d: O_APPEND write went elsewhere", step);

	int seals = SYSCHK(fcntl(mfd, F_GET_SEALS));
	CHECK(seals == (F_SEAL_SHRINK | F_SEAL_GROW), "step %d: memfd seals %#x", step, seals);
	CHECK(ftruncate(mfd, 2 * PG) < 0 && errno == EPERM, "step %d: a sealed memfd could grow", step);
	SYSCHK(fstat(mfd, &st));
	CHECK(st.st_size == PG, "step %d: memfd size %ld", step, (long)st.st_size);

	flags_are(opath, O_PATH | O_RDONLY, FD_CLOEXEC, "O_PATH descriptor", step);
	SYSCHK(fstat(opath, &st));
	CHECK(S_ISREG(st.st_mode), "step %d: O_PATH descriptor is not the regular file", step);
	CHECK(read(opath, buf, 1) < 0 && errno == EBADF, "step %d: O_PATH descriptor can be read", step);
	flags_are(olink, O_PATH | O_NOFOLLOW | O_RDONLY, 0, "O_PATH descriptor of a symlink", step);
	SYSCHK(fstatat(olink, "", &st, AT_EMPTY_PATH));
	CHECK(S_ISLNK(st.st_mode), "step %d: O_PATH|O_NOFOLLOW descriptor is not the symlink (mode %o)", step, st.st_mode);
	ssize_t n = SYSCHK(readlinkat(olink, "", buf, sizeof(buf) - 1));
	buf[n] = 0;
	CHECK(strcmp(buf, fpath) == 0, "step %d: the symlink reads %s", step, buf);

	char want[64];
	n = SYSCHK(pread(procfd, buf, sizeof(buf) - 1, 0));
	buf[n] = 0;
	t_fmt(want, sizeof(want), "\nPid:\t%d\n", (int)getpid());
	CHECK(strstr(buf, want) != NULL, "step %d: /proc descriptor does not read this process's status", step);
}

int main(void)
{
	char path[PATH_MAX];

	t_init("fd_state");
	t_mkworkdir(dir, sizeof(dir), "fd_state");
	SYSCHK(pipe2(pip, O_CLOEXEC));
	SYSCHK(fcntl(pip[1], F_SETFD, 0));
	SYSCHK(fcntl(pip[0], F_SETOWN, getpid()));
	SYSCHK(fcntl(pip[0], F_SETSIG, SIGRTMIN + 3));
	SYSCHK(fcntl(pip[0], F_SETFL, O_NONBLOCK | O_ASYNC));
	signal(SIGRTMIN + 3, SIG_IGN);
	t_fmt(path, sizeof(path), "%s/fifo", dir);
	SYSCHK(mkfifo(path, 0600));
	fifo_r = SYSCHK(open(path, O_RDONLY | O_NONBLOCK));
	fifo_w = SYSCHK(open(path, O_WRONLY | O_CLOEXEC));
	t_fmt(fpath, sizeof(fpath), "%s/file", dir);
	app = SYSCHK(open(fpath, O_CREAT | O_WRONLY | O_APPEND, 0600));
	mfd = SYSCHK(memfd_create("fd_state", MFD_ALLOW_SEALING));
	SYSCHK(ftruncate(mfd, PG));
	SYSCHK(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
	opath = SYSCHK(open(fpath, O_PATH | O_CLOEXEC));
	t_fmt(lpath, sizeof(lpath), "%s/link", dir);
	SYSCHK(symlink(fpath, lpath));
	olink = SYSCHK(open(lpath, O_PATH | O_NOFOLLOW));
	procfd = SYSCHK(open("/proc/self/status", O_RDONLY));
	for (int s = 0; s < STEPS; s++) {
		check_all(s);
		x_step(s, 100);
	}
	check_all(STEPS);
	printf("RESULT fd_state ok\n");
	return 0;
}
