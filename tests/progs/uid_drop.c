/*
 * uid_drop (application group, run as root): processes that change their
 * credentials inside the group.
 *   child A: forks, then setgroups({65534, 12345}), setresgid(65534, 65533,
 *            65532), setresuid(65534, 65533, 65532), setfsuid(65532) and
 *            setfsgid(65532), and starts a thread; at every step the main
 *            thread and the thread each check every id of their own (the
 *            kernel keeps credentials per thread: a restorer that set them
 *            in one thread only is caught) and the process's dumpable flag
 *            (cleared by the kernel when the uid changed), reads from
 *            /dev/urandom, which it opened after the drop on fd 20, then
 *            the main thread writes a line to its pipe;
 *   child B: forks, setgroups({65534}), setresgid and setresuid to 65534,
 *            then execs this program ("exec-child"), which checks at every
 *            step that it still has exactly those ids (and the dumpable
 *            flag the exec gave it) and writes a line to its stdout, a pipe;
 *   parent:  stays root (checks its ids at every step too), reads one line
 *            of A and one of B per step, in that order, prints them, waits
 *            for both and checks their exit status.
 */
#include "common.h"
#include <grp.h>
#include <stdatomic.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define STEPS 24
#define STEP_MS 150
#define NOBODY 65534

struct ids {
	uid_t ru, eu, su, fsu;
	gid_t rg, eg, sg, fsg;
	int ngroups;
	gid_t groups[64];
};

static int cmp_gid(const void *a, const void *b)
{
	gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
	return x < y ? -1 : x > y;
}

/* The calling thread's ids (every call here asks the kernel for this thread alone). */
static void get_ids(struct ids *id)
{
	memset(id, 0, sizeof(*id));
	CHECK(getresuid(&id->ru, &id->eu, &id->su) == 0, "getresuid: %s", strerror(errno));
	CHECK(getresgid(&id->rg, &id->eg, &id->sg) == 0, "getresgid: %s", strerror(errno));
	id->fsu = (uid_t)setfsuid((uid_t)-1); /* an invalid id changes nothing and returns the current one */
	id->fsg = (gid_t)setfsgid((gid_t)-1);
	id->ngroups = getgroups(64, id->groups);
	CHECK(id->ngroups >= 0, "getgroups: %s", strerror(errno));
	qsort(id->groups, (size_t)id->ngroups, sizeof(gid_t), cmp_gid);
}

static void check_ids(const char *who, const struct ids *want)
{
	struct ids now;
	get_ids(&now);
	CHECK(now.ru == want->ru && now.eu == want->eu && now.su == want->su && now.fsu == want->fsu,
	      "%s: uids %u/%u/%u fs %u, expected %u/%u/%u fs %u", who, now.ru, now.eu, now.su, now.fsu, want->ru,
	      want->eu, want->su, want->fsu);
	CHECK(now.rg == want->rg && now.eg == want->eg && now.sg == want->sg && now.fsg == want->fsg,
	      "%s: gids %u/%u/%u fs %u, expected %u/%u/%u fs %u", who, now.rg, now.eg, now.sg, now.fsg, want->rg,
	      want->eg, want->sg, want->fsg);
	CHECK(now.ngroups == want->ngroups && !memcmp(now.groups, want->groups, sizeof(gid_t) * (size_t)now.ngroups),
	      "%s: %d supplementary groups (first %u), expected %d (first %u)", who, now.ngroups,
	      now.ngroups ? now.groups[0] : 0, want->ngroups, want->ngroups ? want->groups[0] : 0);
}

static struct ids want_ids;
static int want_dumpable;
static int rand_fd = -1; /* child A: a file it reopens by path at a restart (tests/cases/uid.sh forges that path) */
static atomic_int ticks, stop;

/* A second thread: its own credentials must come back as well as the main thread's. */
static void *checker(void *arg)
{
	struct t_ident id;
	const char *who = arg;
	t_ident_init(&id);
	while (!atomic_load(&stop)) {
		t_sleep_ms(20);
		t_ident_check(&id);
		check_ids(who, &want_ids);
		atomic_fetch_add(&ticks, 1);
	}
	return NULL;
}

static void check_dumpable(const char *who)
{
	int d = prctl(PR_GET_DUMPABLE);
	CHECK(d == want_dumpable, "%s: dumpable %d, expected %d", who, d, want_dumpable);
}

static void describe(char *out, size_t n, const struct ids *id)
{
	t_fmt(out, n, "uid %u/%u/%u/%u gid %u/%u/%u/%u groups %d", id->ru, id->eu, id->su, id->fsu, id->rg, id->eg,
	      id->sg, id->fsg, id->ngroups);
}

/* The steps of a process that dropped its ids: main thread and checker thread check them. */
static int work(const char *who, int out)
{
	struct t_ident id;
	pthread_t th;
	char line[256], d[128];
	t_ident_init(&id);
	get_ids(&want_ids);
	want_dumpable = prctl(PR_GET_DUMPABLE);
	CHECK(pthread_create(&th, NULL, checker, (void *)who) == 0, "pthread_create");
	uint64_t h = T_FNV_INIT;
	describe(d, sizeof(d), &want_ids);
	for (int i = 0; i < STEPS; i++) {
		t_sleep_ms(STEP_MS);
		t_ident_check(&id);
		check_ids(who, &want_ids);
		check_dumpable(who);
		if (rand_fd >= 0) {
			char r[8];
			t_read_all(rand_fd, r, sizeof(r), -1);
		}
		h = t_fnv_u64(h, (uint64_t)i);
		t_fmt(line, sizeof(line), "%s step %d %s h=%016llx\n", who, i, d, (unsigned long long)h);
		t_write_all(out, line, strlen(line), -1);
	}
	atomic_store(&stop, 1);
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	CHECK(atomic_load(&ticks) > 0, "%s: checker thread never ran", who);
	return 0;
}

static int exec_child(void)
{
	t_init("uid_drop exec-child");
	struct ids w = { NOBODY, NOBODY, NOBODY, NOBODY, NOBODY, NOBODY, NOBODY, NOBODY, 1, { NOBODY } };
	check_ids("exec-child at start", &w);
	return work("B", 1);
}

int main(int argc, char **argv)
{
	struct t_ident id;
	struct ids root;
	if (argc > 1 && !strcmp(argv[1], "exec-child"))
		return exec_child();
	t_init("uid_drop");
	t_ident_init(&id);
	get_ids(&root);
	CHECK(root.ru == 0 && root.eu == 0, "uid_drop must run as root (uid %u)", root.ru);

	int pa[2], pb[2];
	SYSCHK(pipe(pa));
	SYSCHK(pipe(pb));
	fflush(stdout);
	pid_t a = SYSCHK(fork());
	if (a == 0) {
		t_init("uid_drop child A");
		close(pa[0]);
		close(pb[0]);
		close(pb[1]);
		gid_t g[2] = { NOBODY, 12345 };
		SYSCHK(setgroups(2, g));
		SYSCHK(setresgid(NOBODY, NOBODY - 1, NOBODY - 2));
		SYSCHK(setresuid(NOBODY, NOBODY - 1, NOBODY - 2));
		setfsuid(NOBODY - 2); /* allowed: it is the saved uid */
		setfsgid(NOBODY - 2);
		struct ids w = { NOBODY, NOBODY - 1, NOBODY - 2, NOBODY - 2, NOBODY, NOBODY - 1, NOBODY - 2, NOBODY - 2, 2,
				 { NOBODY, 12345 } };
		qsort(w.groups, 2, sizeof(gid_t), cmp_gid);
		check_ids("A after the drop", &w);
		rand_fd = SYSCHK(open("/dev/urandom", O_RDONLY));
		SYSCHK(dup2(rand_fd, 20));
		close(rand_fd);
		rand_fd = 20;
		_exit(work("A", pa[1]));
	}
	pid_t b = SYSCHK(fork());
	if (b == 0) {
		close(pa[0]);
		close(pa[1]);
		close(pb[0]);
		gid_t g[1] = { NOBODY };
		SYSCHK(setgroups(1, g));
		SYSCHK(setresgid(NOBODY, NOBODY, NOBODY));
		SYSCHK(setresuid(NOBODY, NOBODY, NOBODY));
		if (dup2(pb[1], 1) < 0)
			_exit(126);
		close(pb[1]);
		char *av[] = { "uid_drop", "exec-child", NULL };
		execv("/proc/self/exe", av);
		fprintf(stderr, "uid_drop: exec as %d: %s\n", NOBODY, strerror(errno));
		_exit(127);
	}
	close(pa[1]);
	close(pb[1]);
	FILE *fa = fdopen(pa[0], "r"), *fb = fdopen(pb[0], "r");
	CHECK(fa && fb, "fdopen: %s", strerror(errno));
	uint64_t h = T_FNV_INIT;
	char line[256];
	for (int i = 0; i < STEPS; i++) {
		FILE *f[2] = { fa, fb };
		for (int k = 0; k < 2; k++) {
			errno = 0;
			CHECK(fgets(line, sizeof(line), f[k]) != NULL, "step %d: child %c ended early (%s)", i, "AB"[k],
			      strerror(errno));
			CHECK(strchr(line, '\n') != NULL, "step %d: child %c's line not terminated", i, "AB"[k]);
			h = t_fnv(h, line, strlen(line));
			printf("%s", line);
		}
		t_ident_check(&id);
		check_ids("parent", &root);
	}
	CHECK(!fgets(line, sizeof(line), fa) && !fgets(line, sizeof(line), fb), "a child wrote more than %d lines",
	      STEPS);
	pid_t kids[2] = { a, b };
	for (int k = 0; k < 2; k++) {
		int st;
		pid_t w = waitpid(kids[k], &st, 0);
		CHECK(w == kids[k], "waitpid: %s", strerror(errno));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %c: status %#x", "AB"[k], st);
	}
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
