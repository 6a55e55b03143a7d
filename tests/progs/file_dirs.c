/*
 * file_dirs: a deleted directory held open, and a deleted working
 * directory.  Every step: the descriptor is a directory with no links,
 * the cwd is one too and is that directory's twin (its own inode, kept),
 * /proc/self/cwd ends in " (deleted)", and creating a file in either
 * fails with ENOENT as it does in a deleted directory.
 */
#include "common.h"
#include "exact.h"

#define STEPS 14

static int dfd;
static struct stat dir0, cwd0;

static void check_dir(const struct stat *was, struct stat *now, const char *what, int step)
{
	CHECK(S_ISDIR(now->st_mode) && now->st_nlink == 0, "step %d: %s: mode %o, %lu links; expected a deleted directory",
	      step, what, now->st_mode, (unsigned long)now->st_nlink);
	CHECK((now->st_mode & 07777) == (was->st_mode & 07777), "step %d: %s: mode %o, was %o", step, what,
	      now->st_mode & 07777, was->st_mode & 07777);
}

static void check_all(int step)
{
	struct stat st;
	char link[PATH_MAX];

	SYSCHK(fstat(dfd, &st));
	check_dir(&dir0, &st, "the open deleted directory", step);
	CHECK(openat(dfd, "new", O_CREAT | O_RDWR, 0600) < 0 && errno == ENOENT,
	      "step %d: a file could be created in the deleted directory", step);
	SYSCHK(stat(".", &st));
	check_dir(&cwd0, &st, "the deleted cwd", step);
	CHECK(open("new", O_CREAT | O_RDWR, 0600) < 0 && errno == ENOENT, "step %d: a file could be created in the deleted cwd",
	      step);
	ssize_t n = SYSCHK(readlink("/proc/self/cwd", link, sizeof(link) - 1));
	link[n] = 0;
	CHECK(n > 10 && strcmp(link + n - 10, " (deleted)") == 0, "step %d: /proc/self/cwd is %s", step, link);
	CHECK(strstr(link, "/cwd.d") != NULL, "step %d: /proc/self/cwd is %s, expected .../cwd.d (deleted)", step, link);
}

int main(void)
{
	char dir[PATH_MAX], path[PATH_MAX];

	t_init("file_dirs");
	t_mkworkdir(dir, sizeof(dir), "file_dirs");
	t_fmt(path, sizeof(path), "%s/held.d", dir);
	SYSCHK(mkdir(path, 0751));
	dfd = SYSCHK(open(path, O_RDONLY | O_DIRECTORY));
	SYSCHK(rmdir(path));
	SYSCHK(fstat(dfd, &dir0));
	t_fmt(path, sizeof(path), "%s/cwd.d", dir);
	SYSCHK(mkdir(path, 0705));
	SYSCHK(chdir(path));
	SYSCHK(rmdir(path));
	SYSCHK(stat(".", &cwd0));
	for (int s = 0; s < STEPS; s++) {
		check_all(s);
		x_step(s, 100);
	}
	check_all(STEPS);
	printf("RESULT file_dirs ok\n");
	return 0;
}
