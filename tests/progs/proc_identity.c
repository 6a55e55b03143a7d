/*
 * proc_identity: process attributes that a transparent restart must
 * preserve besides memory, checked every step in the main thread and in a
 * second thread:
 *   cwd, umask, rlimits, comm (main and thread), /proc/self/exe,
 *   /proc/self/cmdline, personality, dumpable, and the glibc rseq
 *   registration of each thread (the kernel must still consider the thread's
 *   rseq area registered: re-registering the same area returns EBUSY).
 */
#include "common.h"
#include <limits.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>

#define STEPS 10

struct snap {
	char cwd[PATH_MAX];
	char exe[PATH_MAX];
	char cmdline[4096];
	size_t cmdline_len;
	char comm[16];
	mode_t umask;
	struct rlimit nofile, core;
	int personality;
	int dumpable;
};

static struct snap s0;
static char workdir[PATH_MAX];
static int rseq_len;	/* length glibc registered rseq with; 0 = not registered */

static size_t read_file(const char *path, char *buf, size_t len)
{
	int fd = SYSCHK(open(path, O_RDONLY));
	size_t off = 0;
	ssize_t n;

	while (off < len && (n = read(fd, buf + off, len - off)) > 0)
		off += (size_t)n;
	close(fd);
	return off;
}

static void take(struct snap *s)
{
	ssize_t n;

	memset(s, 0, sizeof(*s));
	CHECK(getcwd(s->cwd, sizeof(s->cwd)) != NULL, "getcwd: %s", strerror(errno));
	n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
	CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
	s->cmdline_len = read_file("/proc/self/cmdline", s->cmdline, sizeof(s->cmdline));
	CHECK(prctl(PR_GET_NAME, s->comm) == 0, "PR_GET_NAME");
	s->umask = umask(0);
	umask(s->umask);
	SYSCHK(getrlimit(RLIMIT_NOFILE, &s->nofile));
	SYSCHK(getrlimit(RLIMIT_CORE, &s->core));
	s->personality = personality(0xffffffff);
	s->dumpable = prctl(PR_GET_DUMPABLE);
}

static void compare(const struct snap *a, const struct snap *b)
{
	CHECK(strcmp(a->cwd, b->cwd) == 0, "cwd '%s' != '%s'", b->cwd, a->cwd);
	CHECK(strcmp(a->exe, b->exe) == 0, "/proc/self/exe '%s' != '%s'", b->exe, a->exe);
	CHECK(a->cmdline_len == b->cmdline_len && memcmp(a->cmdline, b->cmdline, a->cmdline_len) == 0,
	      "/proc/self/cmdline changed (len %zu -> %zu, starts '%s')", a->cmdline_len, b->cmdline_len,
	      b->cmdline);
	CHECK(strcmp(a->comm, b->comm) == 0, "comm '%s' != '%s'", b->comm, a->comm);
	CHECK(a->umask == b->umask, "umask %o != %o", (unsigned)b->umask, (unsigned)a->umask);
	CHECK(a->nofile.rlim_cur == b->nofile.rlim_cur && a->nofile.rlim_max == b->nofile.rlim_max,
	      "RLIMIT_NOFILE changed");
	CHECK(a->core.rlim_cur == b->core.rlim_cur && a->core.rlim_max == b->core.rlim_max, "RLIMIT_CORE changed");
	CHECK(a->personality == b->personality, "personality %#x != %#x", b->personality, a->personality);
	CHECK(a->dumpable == b->dumpable, "dumpable %d != %d", b->dumpable, a->dumpable);
}

static struct rseq *rseq_area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* 1: registered with this length, 0: not registered (and we just registered it), -1: other */
static int rseq_probe(int len)
{
	long r = syscall(SYS_rseq, rseq_area(), len, 0, RSEQ_SIG);

	if (r == 0) {
		/* was not registered: undo our registration */
		syscall(SYS_rseq, rseq_area(), len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
		return 0;
	}
	return errno == EBUSY ? 1 : -1;
}

static void rseq_init(void)
{
	if (__rseq_size == 0)
		return;	/* glibc did not register rseq (tunable / old kernel) */
	if (rseq_probe((int)__rseq_size) == 1)
		rseq_len = (int)__rseq_size;
	else if (rseq_probe(32) == 1)
		rseq_len = 32;
}

static void rseq_check(const char *who)
{
	if (!rseq_len)
		return;
	int r = rseq_probe(rseq_len);
	CHECK(r == 1, "%s: rseq area of thread %d is no longer registered with the kernel (probe %d)", who,
	      (int)t_gettid(), r);
	CHECK((int)rseq_area()->cpu_id >= 0, "%s: rseq cpu_id %d", who, (int)rseq_area()->cpu_id);
}

static pthread_barrier_t bar;
static struct t_ident thr_id;
static char thr_name[16] = "ident-worker";

static void *worker(void *arg)
{
	(void)arg;
	char name[16];

	t_ident_init(&thr_id);
	CHECK(pthread_setname_np(pthread_self(), thr_name) == 0, "setname");
	for (int s = 0; s < STEPS; s++) {
		pthread_barrier_wait(&bar);
		t_ident_check(&thr_id);
		CHECK(pthread_getname_np(pthread_self(), name, sizeof(name)) == 0, "getname");
		CHECK(strcmp(name, thr_name) == 0, "thread name '%s' != '%s'", name, thr_name);
		rseq_check("worker");
		pthread_barrier_wait(&bar);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct t_ident id;
	struct snap cur;
	struct rlimit rl;
	pthread_t th;
	char marker[64];
	uint64_t h = T_FNV_INIT;

	(void)argc;
	(void)argv;
	t_init("proc_identity");
	t_ident_init(&id);

	/* set up non-default attributes */
	t_mkworkdir(workdir, sizeof(workdir), "proc_identity");
	SYSCHK(chdir(workdir));
	int fd = SYSCHK(open("marker", O_CREAT | O_TRUNC | O_WRONLY, 0600));
	t_write_all(fd, "cohort-marker\n", 14, -1);
	close(fd);
	umask(027);
	SYSCHK(getrlimit(RLIMIT_NOFILE, &rl));
	rl.rlim_cur = rl.rlim_max < 777 ? rl.rlim_max : 777;
	SYSCHK(setrlimit(RLIMIT_NOFILE, &rl));
	SYSCHK(getrlimit(RLIMIT_CORE, &rl));
	rl.rlim_cur = 0;
	SYSCHK(setrlimit(RLIMIT_CORE, &rl));
	SYSCHK(prctl(PR_SET_NAME, "cohort-ident"));
	take(&s0);
	rseq_init();

	CHECK(pthread_barrier_init(&bar, NULL, 2) == 0, "barrier");
	CHECK(pthread_create(&th, NULL, worker, NULL) == 0, "pthread_create");

	for (int s = 0; s < STEPS; s++) {
		pthread_barrier_wait(&bar);
		t_ident_check(&id);
		take(&cur);
		compare(&s0, &cur);
		rseq_check("main");
		/* relative path resolution uses the restored cwd */
		fd = open("marker", O_RDONLY);
		CHECK(fd >= 0, "open relative 'marker': %s", strerror(errno));
		memset(marker, 0, sizeof(marker));
		CHECK(read(fd, marker, sizeof(marker)) == 14 && strcmp(marker, "cohort-marker\n") == 0,
		      "marker content");
		close(fd);
		/* the umask applies to newly created files */
		fd = SYSCHK(open("umask-probe", O_CREAT | O_TRUNC | O_WRONLY, 0666));
		struct stat st;
		SYSCHK(fstat(fd, &st));
		close(fd);
		unlink("umask-probe");
		CHECK((st.st_mode & 0777) == 0640, "new file mode %o, umask not applied", (unsigned)(st.st_mode & 0777));
		pthread_barrier_wait(&bar);
		h = t_fnv_u64(h, (uint64_t)s * 31 + (uint64_t)s0.umask);
		printf("step %d ok\n", s);
		t_sleep_ms(320);
	}
	CHECK(pthread_join(th, NULL) == 0, "join");
	unlink("marker");
	SYSCHK(chdir("/"));
	rmdir(workdir);
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
