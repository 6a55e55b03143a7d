/*
 * chroot_root: processes whose root directory is not the group's
 * (chroot(2)) come back in that root, with their working directory,
 * descriptors and mappings (issue 11).
 *
 * As root it makes a tree in a directory of its own: "data" (a file read
 * through a descriptor), "map" (a file mapped privately), "sub" (the
 * working directory) and "nest" (a root under the root, with its own
 * "data").  A file of the test directory, outside the tree, is opened
 * before the chroot.  No /proc inside the tree.  MODE (argv[1]):
 *   one      the process chroots into the tree (working directory /sub)
 *   family   it chroots, then forks a child that keeps that root and one
 *            that chroots again into /nest (nested), its working directory
 *            left outside that root
 *   sibling  it stays in the group's root and forks two children: one
 *            chroots into the tree, the other does not
 *   linked   as one, with the group's socket (COHORT_SOCK, under cohort
 *            only) hard-linked at its own path inside the tree: reachable
 *            from the chroot until a restart, refused after
 * The main process prints "ready", then STEPS lines "step N ok" (argv[2],
 * up to MAX_STEPS; 20 by default); at each
 * step each process checks: "/" is its root's inode, its umask, a file inside is
 * reached by its path from that root, ".." of "/" is "/" (no way out), its
 * working directory (getcwd and inode), the next bytes of both descriptors
 * at their offsets, the mapping (the file's bytes, and the bytes written
 * into it at earlier steps).  Children do their step when the main process
 * writes a byte into their pipe and answer with one; the main process
 * prints.  Ends with "RESULT chroot_root MODE ok".  As another user it
 * prints the same lines without chrooting (the test is skipped).
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define MAX_STEPS 40
#define CHUNK 64
static int steps = 20;
#define MAPLEN 16384

/* The byte at offset i of the files the tree holds (seed differs per file). */
static unsigned char pattern(int seed, long i)
{
	return (unsigned char)((i * 131 + seed * 7 + (i >> 8)) & 0xff);
}

static void make_file(const char *path, int seed, long len)
{
	static unsigned char buf[MAPLEN];
	for (long i = 0; i < len; i++)
		buf[i] = pattern(seed, i);
	int fd = SYSCHK(open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	t_write_all(fd, buf, (size_t)len, -1);
	close(fd);
}

/* What one process checks at each step. */
struct proc {
	const char *who;
	struct stat root, cwd;	/* what "/" and "." must be */
	mode_t mask;		/* its umask (set after the chroot) */
	char cwd_path[4096];	/* what getcwd must say */
	char marker[16];	/* a file from its root, and the seed of its bytes */
	int marker_seed;
	int in_fd, in_seed;	/* a descriptor opened inside its root (or -1) */
	int out_fd, out_seed;	/* one opened before any chroot, of a file outside the tree */
	struct stat out_st;
	unsigned char *map;	/* the tree's "map", private (or NULL) */
};

static void check_fd(const struct proc *p, int s, int fd, int seed, const char *what)
{
	unsigned char buf[CHUNK];
	off_t at = lseek(fd, 0, SEEK_CUR);
	CHECK(at == (off_t)s * CHUNK, "%s step %d: %s at offset %ld, not %d", p->who, s, what, (long)at, s * CHUNK);
	CHECK(read(fd, buf, CHUNK) == CHUNK, "%s step %d: %s: short read", p->who, s, what);
	for (int i = 0; i < CHUNK; i++)
		CHECK(buf[i] == pattern(seed, (long)s * CHUNK + i), "%s step %d: %s byte %ld differs", p->who, s, what,
		      (long)s * CHUNK + i);
}

static void check_step(const struct proc *p, int s)
{
	struct stat st, up;
	SYSCHK(stat("/", &st));
	CHECK(st.st_dev == p->root.st_dev && st.st_ino == p->root.st_ino, "%s step %d: / is %lu, not its root %lu",
	      p->who, s, (unsigned long)st.st_ino, (unsigned long)p->root.st_ino);
	SYSCHK(stat("/..", &up));
	CHECK(up.st_dev == st.st_dev && up.st_ino == st.st_ino, "%s step %d: /.. leads out of its root", p->who, s);
	char buf[4096] = "";
	int named = getcwd(buf, sizeof(buf)) != NULL;
	CHECK(named ? !strcmp(buf, p->cwd_path) : errno == ENOENT && !p->cwd_path[0], "%s step %d: cwd %s, not %s",
	      p->who, s, named ? buf : strerror(errno), p->cwd_path[0] ? p->cwd_path : "outside its root");
	mode_t mask = umask(0);
	umask(mask);
	CHECK(mask == p->mask, "%s step %d: umask %03o, not %03o", p->who, s, (unsigned)mask, (unsigned)p->mask);
	SYSCHK(stat(".", &st));
	CHECK(st.st_dev == p->cwd.st_dev && st.st_ino == p->cwd.st_ino, "%s step %d: . is another directory", p->who,
	      s);
	int fd = open(p->marker, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "%s step %d: open %s: %s", p->who, s, p->marker, strerror(errno));
	unsigned char b[CHUNK];
	CHECK(pread(fd, b, CHUNK, CHUNK) == CHUNK, "%s step %d: %s: short read", p->who, s, p->marker);
	for (int i = 0; i < CHUNK; i++)
		CHECK(b[i] == pattern(p->marker_seed, CHUNK + i), "%s step %d: %s holds other bytes", p->who, s,
		      p->marker);
	close(fd);
	if (p->in_fd >= 0)
		check_fd(p, s, p->in_fd, p->in_seed, "the descriptor opened inside its root");
	check_fd(p, s, p->out_fd, p->out_seed, "the descriptor opened outside");
	SYSCHK(fstat(p->out_fd, &st));
	CHECK(st.st_ino == p->out_st.st_ino && st.st_dev == p->out_st.st_dev, "%s step %d: the outside file changed",
	      p->who, s);
	if (p->map) {
		for (long i = 0; i < MAPLEN; i += 97) {
			unsigned char want = (i % 4096) < s && i / 4096 == 1 ? (unsigned char)(i % 4096 + 1) : pattern(3, i);
			CHECK(p->map[i] == want, "%s step %d: mapped byte %ld is %d, not %d", p->who, s, i, p->map[i], want);
		}
		p->map[4096 + s] = (unsigned char)(s + 1); /* a private page of its own from now on */
	}
}

/* The test directory's file chroot_root.out.K (outside the tree), made and opened before any chroot. */
static int open_outside(int k, struct stat *st)
{
	char path[4200];
	t_fmt(path, sizeof(path), "%s/chroot_root.out.%d.%d", t_tmpdir(), k, (int)getpid());
	make_file(path, 10 + k, MAX_STEPS * CHUNK);
	int fd = SYSCHK(open(path, O_RDONLY | O_CLOEXEC));
	SYSCHK(fstat(fd, st));
	return fd;
}

/*
 * What p finds where it is now: its root, working directory and the name
 * getcwd gives it ("" when it has none: outside its root, ENOENT).
 */
static void note_place(struct proc *p)
{
	if (!getcwd(p->cwd_path, sizeof(p->cwd_path))) {
		CHECK(errno == ENOENT, "%s: getcwd: %s", p->who, strerror(errno));
		p->cwd_path[0] = 0;
	}
	SYSCHK(stat(".", &p->cwd));
	SYSCHK(stat("/", &p->root));
	p->mask = umask(0);
	umask(p->mask);
}

/* Its own descriptor of file (a path from where it is) with bytes of seed, and that file as its marker. */
static void own_file(struct proc *p, const char *file, int seed)
{
	t_fmt(p->marker, sizeof(p->marker), "%s", file);
	p->marker_seed = p->in_seed = seed;
	p->in_fd = SYSCHK(open(file, O_RDONLY | O_CLOEXEC));
}

static char tree[4096];

/* chroot into the tree, working directory /sub; its own descriptor and private mapping of files there */
static void into_tree(struct proc *p)
{
	SYSCHK(chroot(tree));
	SYSCHK(chdir("/sub"));
	umask(027);
	note_place(p);
	own_file(p, "/data", 1);
	int fd = SYSCHK(open("/map", O_RDONLY | O_CLOEXEC));
	p->map = mmap(NULL, MAPLEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(p->map != MAP_FAILED, "mmap of /map: %s", strerror(errno));
	close(fd);
}

/* forked in the tree: keep that root; a descriptor of its own */
static void keep_root(struct proc *p)
{
	note_place(p);
	own_file(p, "/data", 1);
}

/*
 * forked in the tree: chroot again into /nest (a root under a root),
 * keeping the mapping from outside it, and its working directory /sub,
 * which is outside its new root (chroot(2) leaves it)
 */
static void nested(struct proc *p)
{
	SYSCHK(chroot("/nest"));
	umask(077);
	note_place(p);
	own_file(p, "/data", 4);
}

/* forked in the group's root: stay there, working directory the tree */
static void stay(struct proc *p)
{
	SYSCHK(chdir(tree));
	note_place(p);
	own_file(p, "data", 1);
}

/* A child doing its steps when told (a byte on in), answering on out. */
static void child_steps(const struct proc *p, int in, int out)
{
	for (int s = 0; s < steps; s++) {
		char c;
		CHECK(read(in, &c, 1) == 1, "%s: its parent is gone at step %d", p->who, s);
		check_step(p, s);
		CHECK(write(out, "k", 1) == 1, "%s: cannot answer at step %d", p->who, s);
	}
	_exit(0);
}

struct kid {
	pid_t pid;
	int to, from;
};

/* Fork a child that runs setup(p) and then its steps. */
static struct kid spawn(struct proc *p, void (*setup)(struct proc *))
{
	int a[2], b[2];
	SYSCHK(pipe2(a, O_CLOEXEC));
	SYSCHK(pipe2(b, O_CLOEXEC));
	pid_t pid = SYSCHK(fork());
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		setup(p);
		child_steps(p, a[0], b[1]);
	}
	close(a[0]);
	close(b[1]);
	return (struct kid){ pid, a[1], b[0] };
}

/* The group's socket at its own path inside the tree (under cohort only: the output is the same). */
static void link_socket(void)
{
	const char *sock = getenv("COHORT_SOCK");
	char path[8300];
	if (!sock || sock[0] != '/')
		return;
	t_fmt(path, sizeof(path), "%s%s", tree, sock);
	for (char *p = path + strlen(tree) + 1; (p = strchr(p, '/')); *p++ = '/') {
		*p = 0;
		if (mkdir(path, 0700) && errno != EEXIST)
			FAIL("mkdir %s: %s", path, strerror(errno));
	}
	if (link(sock, path))
		FAIL("link %s to %s: %s", sock, path, strerror(errno));
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "one";
	if (argc > 2) {
		steps = atoi(argv[2]);
		CHECK(steps >= 1 && steps <= MAX_STEPS, "steps: %s, not 1 to %d", argv[2], MAX_STEPS);
	}
	t_init("chroot_root");
	int privileged = geteuid() == 0;
	char path[4200];
	t_mkworkdir(tree, sizeof(tree), "chroot_root");
	const char *dirs[] = { "sub", "nest" };
	for (int i = 0; i < 2; i++) {
		t_fmt(path, sizeof(path), "%s/%s", tree, dirs[i]);
		if (mkdir(path, 0755) && errno != EEXIST)
			FAIL("mkdir %s: %s", path, strerror(errno));
	}
	t_fmt(path, sizeof(path), "%s/data", tree);
	make_file(path, 1, MAX_STEPS * CHUNK);
	t_fmt(path, sizeof(path), "%s/map", tree);
	make_file(path, 3, MAPLEN);
	t_fmt(path, sizeof(path), "%s/nest/data", tree);
	make_file(path, 4, MAX_STEPS * CHUNK);

	/* each process's descriptor of a file outside the tree, opened before any chroot */
	struct proc ps[3];
	const char *who[3] = { "main", "child 1", "child 2" };
	for (int k = 0; k < 3; k++) {
		memset(&ps[k], 0, sizeof(ps[k]));
		ps[k].who = who[k];
		ps[k].out_seed = 10 + k;
		ps[k].out_fd = open_outside(k, &ps[k].out_st);
	}
	void (*setup[3])(struct proc *) = { NULL, NULL, NULL };
	if (!privileged) {
		/* as another user: the same lines, nothing checked (the test is skipped) */
	} else if (!strcmp(mode, "one")) {
		into_tree(&ps[0]);
	} else if (!strcmp(mode, "linked")) {
		link_socket();
		into_tree(&ps[0]);
	} else if (!strcmp(mode, "family")) {
		into_tree(&ps[0]);
		setup[1] = keep_root;
		setup[2] = nested;
	} else if (!strcmp(mode, "sibling")) {
		stay(&ps[0]);
		setup[1] = into_tree;
		setup[2] = stay;
	} else {
		FAIL("unknown mode %s", mode);
	}
	struct kid kids[2];
	int nkids = 0;
	for (int k = 1; k < 3; k++)
		if (setup[k]) {
			ps[k].map = ps[0].map; /* a child forked in the tree has the mapping (a copy) */
			kids[nkids++] = spawn(&ps[k], setup[k]);
		}
	printf("ready\n");
	fflush(stdout);
	for (int s = 0; s < steps; s++) {
		if (privileged)
			check_step(&ps[0], s);
		for (int i = 0; i < nkids; i++) {
			char c;
			CHECK(write(kids[i].to, "g", 1) == 1, "step %d: child %d is gone", s, i + 1);
			CHECK(read(kids[i].from, &c, 1) == 1, "step %d: child %d failed", s, i + 1);
		}
		printf("step %d ok\n", s);
		fflush(stdout);
		t_sleep_ms(100);
	}
	for (int i = 0; i < nkids; i++) {
		int st;
		SYSCHK(waitpid(kids[i].pid, &st, 0));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d ended with status %#x", i + 1, st);
	}
	printf("RESULT chroot_root %s ok\n", mode);
	return 0;
}
