/*
 * file_locks: locks come back held by the same process on the same
 * ranges: a flock(LOCK_EX), a POSIX write lock on bytes 100-199 and a
 * POSIX read lock on 300-399, an OFD write lock on bytes 10-19.  Every
 * step a forked child finds each of them in its way (flock EWOULDBLOCK,
 * F_GETLK naming this process and the range, F_OFD_GETLK the range), and
 * free where they are not.  With the argument "lease", instead, a read
 * lease (F_GETLEASE) on a file of its own; it never lets anyone break it.
 */
#include "common.h"
#include "exact.h"
#include <sys/file.h>

#define STEPS 14

static int ffl, fpx, fofd, flease, lease;
static char pfl[PATH_MAX], ppx[PATH_MAX], pofd[PATH_MAX];

static int getlk(const char *path, int cmd, short type, off_t start, off_t len, struct flock *out)
{
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	out->l_type = type;
	out->l_whence = SEEK_SET;
	out->l_start = start;
	out->l_len = len;
	int r = fcntl(fd, cmd, out);
	close(fd);
	return r;
}

/* In the child: 0 if every lock is where it should be, else a bit for each that is not. */
static int child_checks(pid_t parent)
{
	struct flock fl;
	int bad = 0, fd = open(pfl, O_RDWR);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		bad |= 1;
	close(fd);
	if (getlk(ppx, F_GETLK, F_WRLCK, 0, 1000, &fl) || fl.l_type != F_WRLCK || fl.l_pid != parent ||
	    fl.l_start != 100 || fl.l_len != 100)
		bad |= 2;
	if (getlk(ppx, F_GETLK, F_WRLCK, 300, 100, &fl) || fl.l_type != F_RDLCK || fl.l_pid != parent ||
	    fl.l_start != 300 || fl.l_len != 100)
		bad |= 4;
	if (getlk(ppx, F_GETLK, F_RDLCK, 300, 100, &fl) || fl.l_type != F_UNLCK)
		bad |= 8; /* a read lock does not stand in another read lock's way */
	if (getlk(ppx, F_GETLK, F_WRLCK, 200, 100, &fl) || fl.l_type != F_UNLCK)
		bad |= 16;
	if (getlk(pofd, F_OFD_GETLK, F_WRLCK, 0, 100, &fl) || fl.l_type != F_WRLCK || fl.l_start != 10 || fl.l_len != 10)
		bad |= 32;
	return bad;
}

static void check_all(int step)
{
	static const char *what[] = { "the flock is not held;", " the POSIX write lock on 100-199 is not this process's;",
				      " the POSIX read lock on 300-399 is not this process's;",
				      " a read lock conflicts with 300-399;", " bytes 200-299 are locked;",
				      " the OFD lock on 10-19 is not held;" };
	if (lease) {
		CHECK(fcntl(flease, F_GETLEASE) == F_RDLCK, "step %d: F_GETLEASE %d, expected F_RDLCK", step,
		      fcntl(flease, F_GETLEASE));
		return;
	}
	pid_t parent = getpid(), pid = SYSCHK(fork());
	int st;
	if (pid == 0)
		_exit(child_checks(parent));
	SYSCHK(waitpid(pid, &st, 0));
	CHECK(WIFEXITED(st), "step %d: the checking child died (status %#x)", step, st);
	char msg[400] = "";
	for (int k = 0; k < 6; k++)
		if (WEXITSTATUS(st) & (1 << k))
			strcat(msg, what[k]);
	CHECK(msg[0] == 0, "step %d: %s", step, msg);
}

static int make(char *path, size_t n, const char *dir, const char *name, int flags)
{
	t_fmt(path, n, "%s/%s", dir, name);
	int fd = SYSCHK(open(path, O_CREAT | flags, 0600));
	t_write_all(fd, "0123456789abcdefghij", 20, 0);
	return fd;
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX], pl[PATH_MAX];
	struct flock fl = { .l_whence = SEEK_SET };

	t_init("file_locks");
	lease = argc > 1 && strcmp(argv[1], "lease") == 0;
	t_mkworkdir(dir, sizeof(dir), "file_locks");
	if (lease) {
		close(make(pl, sizeof(pl), dir, "lease", O_RDWR));
		flease = SYSCHK(open(pl, O_RDONLY));
		SYSCHK(fcntl(flease, F_SETLEASE, F_RDLCK));
		goto steps;
	}
	ffl = make(pfl, sizeof(pfl), dir, "flock", O_RDWR);
	SYSCHK(flock(ffl, LOCK_EX));
	fpx = make(ppx, sizeof(ppx), dir, "posix", O_RDWR);
	fl.l_type = F_WRLCK, fl.l_start = 100, fl.l_len = 100;
	SYSCHK(fcntl(fpx, F_SETLK, &fl));
	fl.l_type = F_RDLCK, fl.l_start = 300, fl.l_len = 100;
	SYSCHK(fcntl(fpx, F_SETLK, &fl));
	fofd = make(pofd, sizeof(pofd), dir, "ofd", O_RDWR);
	fl.l_type = F_WRLCK, fl.l_start = 10, fl.l_len = 10, fl.l_pid = 0;
	SYSCHK(fcntl(fofd, F_OFD_SETLK, &fl));
steps:
	for (int s = 0; s < STEPS; s++) {
		check_all(s);
		x_step(s, 100);
	}
	check_all(STEPS);
	printf("RESULT file_locks ok\n");
	return 0;
}
