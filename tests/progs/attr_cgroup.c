/*
 * attr_cgroup MOUNT OUT: processes in cgroups other than the one they
 * were started in must come back in them.  MOUNT is where the cgroup v2
 * hierarchy is mounted, OUT a cgroup of it (a path as /proc/PID/cgroup
 * shows it) that exists outside the program's (tests/cases/
 * exact_attrs.sh makes it, and starts each run and restart in another
 * cgroup).
 *
 * The main process makes a cgroup IN below its own (named after OUT's
 * last component, ".in") and moves into it; its child B makes IN/sub and
 * moves there; its child C moves into OUT.  At every step each checks
 * that it is where it should be: main in its parent's cgroup + "/NAME.in"
 * (its parent is the group's init, which each restart starts elsewhere:
 * the group's own cgroups come back below it), B in main's + "/sub", C in
 * OUT; and in every other hierarchy (cgroup v1) where its parent is.
 * Output: "step N ok" lines and a RESULT line; any difference is a FAIL on
 * stderr and exit 1.
 */
#include "common.h"
#include <sys/wait.h>

#define STEPS 60

static const char *mnt, *out;
static char in_name[256];

/* The cgroup v2 path of process pid ("0::" line) into v2, the other lines into v1. */
static void cgroups_of(pid_t pid, char *v2, size_t n2, char *v1, size_t n1)
{
	char path[64], line[1024];
	t_fmt(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(path, "r");
	CHECK(f, "open %s: %s", path, strerror(errno));
	v2[0] = v1[0] = 0;
	size_t l1 = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = 0;
			t_fmt(v2, n2, "%s", line + 3);
		} else {
			CHECK(l1 + strlen(line) < n1, "%s: too long", path);
			strcpy(v1 + l1, line);
			l1 += strlen(line);
		}
	}
	fclose(f);
	CHECK(v2[0] == '/', "%s: no cgroup v2 line", path);
}

/* Move the calling process into cgroup path (made first when make). */
static void move_to(const char *path, int make)
{
	char dir[4096], procs[4200];
	t_fmt(dir, sizeof(dir), "%s%s", mnt, path);
	if (make)
		CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", dir, strerror(errno));
	t_fmt(procs, sizeof(procs), "%s/cgroup.procs", dir);
	int fd = open(procs, O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s: %s", procs, strerror(errno));
	CHECK(write(fd, "0", 1) == 1, "write %s: %s", procs, strerror(errno));
	close(fd);
}

/* The caller is in its parent's v2 cgroup + suffix (or in abs), and in its parent's v1 ones. */
static void check_where(const char *who, int step, const char *suffix, const char *abs)
{
	static char me2[4096], me1[4096], pa2[4096], pa1[4096], want[4200];
	cgroups_of(getpid(), me2, sizeof(me2), me1, sizeof(me1));
	cgroups_of(getppid(), pa2, sizeof(pa2), pa1, sizeof(pa1));
	if (abs)
		t_fmt(want, sizeof(want), "%s", abs);
	else
		t_fmt(want, sizeof(want), "%s%s", strcmp(pa2, "/") ? pa2 : "", suffix);
	CHECK(!strcmp(me2, want), "step %d: %s is in cgroup %s, expected %s (its parent is in %s)", step, who, me2, want,
	      pa2);
	CHECK(!strcmp(me1, pa1), "step %d: %s is in other v1 cgroups than its parent: %s against %s", step, who, me1, pa1);
}

/* A child: moves, then checks itself at each step the parent asks for, and answers. */
static pid_t child(const char *who, const char *suffix, const char *abs, int *down, int *up)
{
	int d[2], u[2];
	SYSCHK(pipe(d));
	SYSCHK(pipe(u));
	pid_t c = SYSCHK(fork());
	if (c) {
		close(d[0]);
		close(u[1]);
		*down = d[1];
		*up = u[0];
		return c;
	}
	close(d[1]);
	close(u[0]);
	char own[4096], v1[4096], path[4400];
	if (abs) {
		move_to(abs, 0);
	} else {
		cgroups_of(getpid(), own, sizeof(own), v1, sizeof(v1));
		t_fmt(path, sizeof(path), "%s%s", strcmp(own, "/") ? own : "", suffix);
		move_to(path, 1);
	}
	CHECK(write(u[1], "m", 1) == 1, "%s: write", who);
	for (int s = 0; s < STEPS; s++) {
		char x;
		CHECK(read(d[0], &x, 1) == 1, "%s: read step %d", who, s);
		check_where(who, s, suffix, abs);
		CHECK(write(u[1], "k", 1) == 1, "%s: write", who);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	t_init("attr_cgroup");
	CHECK(argc == 3, "usage: attr_cgroup MOUNT OUT");
	mnt = argv[1];
	out = argv[2];
	const char *last = strrchr(out, '/');
	t_fmt(in_name, sizeof(in_name), "/%s.in", last ? last + 1 : out);
	char own[4096], v1[4096], path[4400];
	cgroups_of(getpid(), own, sizeof(own), v1, sizeof(v1));
	t_fmt(path, sizeof(path), "%s%s", strcmp(own, "/") ? own : "", in_name);
	move_to(path, 1);
	int down[2], up[2];
	pid_t b = child("B", "/sub", NULL, &down[0], &up[0]);
	pid_t c = child("C", NULL, out, &down[1], &up[1]);
	char x;
	for (int k = 0; k < 2; k++)
		CHECK(read(up[k], &x, 1) == 1, "child %d did not move", k);
	for (int s = 0; s < STEPS; s++) {
		check_where("main", s, in_name, NULL);
		for (int k = 0; k < 2; k++) {
			CHECK(write(down[k], "s", 1) == 1, "write to child %d", k);
			CHECK(read(up[k], &x, 1) == 1, "child %d did not answer step %d", k, s);
		}
		printf("step %d ok\n", s);
		t_sleep_ms(30);
	}
	int st;
	CHECK(waitpid(b, &st, 0) == b && WIFEXITED(st) && !WEXITSTATUS(st), "B: status %x", st);
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && !WEXITSTATUS(st), "C: status %x", st);
	printf("RESULT attr_cgroup ok\n");
	return 0;
}
