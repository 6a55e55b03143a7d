/*
 * coord/setup.c - the group's setup: run directory, control socket, process table,
 * signals, user and time namespaces, and the start of init.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "sys.h"
#include "coord.h"

/*
 * The run directories, and the control socket in them, are ours alone
 * (0700), except as root: a process of the group may change its uid (a
 * server dropping root), and must still reach the socket to register and
 * to take part in checkpoints.  Then anyone may pass through them (0711:
 * not list them) and connect to the socket, and accept_conn() turns away
 * whoever is not ours: any other uid outside the group's pid namespace.
 */
static mode_t rundir_mode(void)
{
	return geteuid() == 0 ? 0711 : 0700;
}

/*
 * Directory path, made with mode if it is not there, must be a directory
 * of ours (never a symbolic link someone planted: it is opened without
 * following one, and its mode set through that descriptor, so a link to
 * /etc is refused, not chmod'ed).
 */
static void own_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		co_die("cannot create run directory %s: %s", path, strerror(errno));
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		co_die("run directory %s: %s", path,
		       errno == ELOOP || errno == ENOTDIR ? "not a directory (a symbolic link?): refusing it" : strerror(errno));
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid())
		co_die("run directory %s belongs to uid %u, not to you: refusing it (set COHORT_RUN_DIR, or "
		       "XDG_RUNTIME_DIR, to a directory of yours)", path, (unsigned)st.st_uid);
	if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
		co_die("run directory %s must be private (%04o): %s", path, (unsigned)mode, strerror(errno));
	close(fd);
}

static void make_rundir(void)
{
	const char *root = co_run_root();
	mode_t mode = rundir_mode();
	own_dir(root, mode);
	snprintf(G.rundir, sizeof(G.rundir), "%s/%s", root, G.name);
	own_dir(G.rundir, mode);
	int fd = co_connect_group(G.name);
	if (fd == CO_UNTRUSTED)
		co_die("%s", co_connect_why());
	if (fd >= 0)
		co_die("a group named '%s' is already running", G.name);
	if ((size_t)snprintf(G.sock, sizeof(G.sock), "%s/ctl.sock", G.rundir) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		co_die("run directory path too long: %s", G.rundir);
	unlink(G.sock); /* a stale one from a coordinator that died */
}

static void make_socket(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", G.sock);
	G.lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old = umask(rundir_mode() == 0700 ? 077 : 0111); /* see rundir_mode() */
	if (G.lfd < 0 || bind(G.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(G.lfd, 128) < 0)
		co_die("cannot listen on %s: %s", G.sock, strerror(errno));
	umask(old);
}

static void make_table(void)
{
	G.tfd = (int)syscall(SYS_memfd_create, "cohort-agent-table", MFD_CLOEXEC);
	if (G.tfd < 0 || ftruncate(G.tfd, sizeof(struct co_table)) < 0)
		co_die("cannot create the process table: %s", strerror(errno));
	G.table = mmap(NULL, sizeof(struct co_table), PROT_READ | PROT_WRITE, MAP_SHARED, G.tfd, 0);
	if (G.table == MAP_FAILED)
		co_die("cannot map the process table: %s", strerror(errno));
	G.table->magic = CO_TABLE_MAGIC;
	G.table->slots = CO_TABLE_SLOTS;
	if (getrandom(&G.table->cookie, sizeof(G.table->cookie), 0) != sizeof(G.table->cookie))
		G.table->cookie = co_now_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 40);
	G.table->cookie |= 1; /* never 0, which a program's own sigqueue would send most often */
	/* a new group's id; a restarted one keeps its manifest's (co_cmd_restart) */
	while (!G.group_id)
		if (getrandom(&G.group_id, sizeof(G.group_id), 0) != sizeof(G.group_id))
			G.group_id = co_now_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32);
	G.table->group_id = G.group_id;
	/*
	 * What a descriptor pointing outside the group at our stdio is: it
	 * comes back as the stdio of whoever restarts the group, whatever its
	 * kind (a log file is not rolled back and rewritten at a restart).
	 * A file or a device other than a terminal is that stdio only through
	 * our open file (mark_stdio_files): a program that opens /dev/null
	 * itself, as a shell does for `>/dev/null`, gets its own open file
	 * back, with its own mode, not the restart caller's stdin.
	 */
	for (int i = 0; i < 3; i++) {
		struct stat st;
		if (fstat(i, &st) == 0 && !S_ISDIR(st.st_mode)) {
			G.table->stdio[i].dev = st.st_dev;
			G.table->stdio[i].ino = st.st_ino;
			G.table->stdio[i].file = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ||
						 (S_ISCHR(st.st_mode) && !isatty(i));
			G.table->stdio[i].valid = 1;
		}
	}
}

/*
 * Signals sent to the coordinator go to the program; ^C reaches it directly.
 * The coordinator and init wait for their children: SIGCHLD must not be
 * ignored (a caller's SIG_IGN would have them reaped unseen, and the
 * program's status lost); the program gets the caller's back (nsinit.c).
 */
static void make_signalfd(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGHUP);
	sigaddset(&s, SIGQUIT);
	sigprocmask(SIG_BLOCK, &s, NULL);
	G.sfd = signalfd(-1, &s, SFD_CLOEXEC | SFD_NONBLOCK);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
}

/*
 * The signal state `cohort run` was given, read before the coordinator
 * changes anything (it ignores SIGPIPE and blocks what it forwards): the
 * program starts with exactly this, as it would without cohort.  Fresh
 * from an exec, a signal is ignored or default, never caught.  Raw calls:
 * glibc hides its own signals 32 and 33.
 */
void record_caller_signals(struct co_init_cfg *cfg)
{
	for (int s = 1; s <= 64; s++) {
		struct co_ksigaction ka;
		if (co_sigaction(s, NULL, &ka) == 0 && ka.handler == (void *)SIG_IGN)
			cfg->sig_ignored |= 1ULL << (s - 1);
	}
	co_sigprocmask(SIG_BLOCK, NULL, &cfg->sig_blocked);
}

int co_write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : write(fd, text, strlen(text));
	int e = errno;
	if (fd >= 0)
		close(fd);
	errno = e;
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/*
 * Without privileges the coordinator first enters a user namespace of its
 * own, where it maps only itself (same uid and gid inside as outside, so
 * files, SO_PEERCRED and `ps` look the same) and holds the capabilities
 * the time, PID and mount namespaces of the group need, and that clone3
 * with set_tid needs at restart.  Root needs none of it and keeps its
 * real capabilities.
 */
static void make_userns(void)
{
	if (geteuid() == 0)
		return;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	char map[64];
	if (unshare(CLONE_NEWUSER) < 0)
		co_die("cannot create a user namespace for the group (%s): unprivileged user namespaces may be off "
		       "(sysctl kernel.unprivileged_userns_clone, user.max_user_namespaces)", strerror(errno));
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if (co_write_proc("/proc/self/uid_map", map) < 0)
		co_die("cannot write /proc/self/uid_map: %s", strerror(errno));
	if (co_write_proc("/proc/self/setgroups", "deny") < 0 && errno != ENOENT)
		co_die("cannot write /proc/self/setgroups: %s", strerror(errno));
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if (co_write_proc("/proc/self/gid_map", map) < 0)
		co_die("cannot write /proc/self/gid_map: %s", strerror(errno));
}

/*
 * Enter a new time namespace for our children, its clocks shifted by the
 * offsets; and watch the realtime clock, which it does not shift, from
 * now on (before any timerfd of the group is made: kinds/timerfd.c).
 */
void make_timens(int64_t mono_off, int64_t boot_off)
{
	co_timerfd_watch_clock();
	make_userns();
	if (unshare(CLONE_NEWTIME) < 0) {
		if (mono_off || boot_off)
			co_warn("no time namespace (%s): monotonic clocks will jump across this restart",
				strerror(errno));
		G.mono_off = G.boot_off = 0;
		return;
	}
	G.mono_off = mono_off;
	G.boot_off = boot_off;
	if (!mono_off && !boot_off)
		return;
	char buf[128];
	int n = 0;
	int64_t off[2] = { mono_off, boot_off };
	const char *names[2] = { "monotonic", "boottime" };
	for (int i = 0; i < 2; i++) {
		int64_t sec = off[i] / 1000000000LL, nsec = off[i] % 1000000000LL;
		if (nsec < 0) {
			sec--;
			nsec += 1000000000LL;
		}
		n += snprintf(buf + n, sizeof(buf) - n, "%s %lld %lld\n", names[i], (long long)sec, (long long)nsec);
	}
	int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, n) != n) {
		co_warn("cannot set the group's clocks (%s): monotonic clocks will jump across this restart",
			strerror(errno));
		G.mono_off = G.boot_off = 0;
	}
	if (fd >= 0)
		close(fd);
}

/* The coordinator's ends of the pipes to init: its ready, its root's status, a restart's reports (-1: none). */
struct init_ends {
	int ready, status, report;
};

/* The pipes: init's ends into cfg, ours into e. */
static void init_pipes(struct co_init_cfg *cfg, struct init_ends *e, int restart)
{
	int ready[2], status[2], report[2] = { -1, -1 };
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(status, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    /* a restart: what the restorers say (report.h), read by coord/restore.c */
	    (restart && pipe2(report, O_CLOEXEC | O_NONBLOCK) < 0))
		co_die("pipe: %s", strerror(errno));
	cfg->ready_fd = ready[1];
	cfg->status_fd = status[1];
	cfg->report_fd = report[1];
	*e = (struct init_ends){ ready[0], status[0], report[0] };
}

static void close_ends(int a, int b, int c)
{
	close(a);
	close(b);
	if (c >= 0)
		close(c);
}

/*
 * Init: the group's own PID and mount namespaces, and its own IPC
 * namespace too: its SysV semaphores, message queues and shm segments
 * (src/kinds/sysv.c) are the group's alone, none of the host's, so that a
 * restart can make them again with the same keys and ids.  0 in the child.
 */
static pid_t clone_init(void)
{
	fflush(NULL);
	pid_t p = (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0);
	if (p < 0)
		co_die("cannot create the group's namespaces: %s", strerror(errno));
	return p;
}

/* Init p runs: once it has set up (its ready pipe closed), the coordinator holds its pidfd and the group's ends. */
static void init_running(pid_t p, const struct init_ends *e)
{
	G.status_fd = e->status;
	G.report_fd = e->report;
	char c;
	while (read(e->ready, &c, 1) < 0 && errno == EINTR)
		;
	close(e->ready);
	G.init_pid = p;
	G.init_pidfd = (int)syscall(SYS_pidfd_open, p, 0);
	if (G.init_pidfd < 0)
		co_die("pidfd_open: %s", strerror(errno));
	/*
	 * A member costs up to three descriptors here (pidfd, userfaultfd, its
	 * connection during a checkpoint): the most we may have, now that the
	 * group (which must get the caller's limit) has been started.
	 */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * A migration's target starts init before the stop (co_init_start_ahead):
 * the clone of its namespaces and the mount of its /proc, ~4.5 ms on a
 * machine of dear page tables, no longer come between the stop's arrival
 * and the restart.  pid 0: none waits.
 */
static struct {
	pid_t pid;
	int orders;		/* our end of its orders' socket */
	struct init_ends e;
} ahead;

void co_init_start_ahead(void)
{
	/*
	 * Root only: an unprivileged target makes the group's user namespace
	 * at the restart (make_timens), and init must be born in it; it
	 * starts init then, as a restart does.
	 */
	if (geteuid() != 0 || ahead.pid > 0)
		return;
	static struct co_init_cfg cfg; /* the child's: its ends of the pipes */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return; /* init is started at the restart instead */
	init_pipes(&cfg, &ahead.e, 1);
	pid_t p = clone_init();
	if (p == 0) {
		close_ends(ahead.e.ready, ahead.e.status, ahead.e.report);
		close(sv[0]);
		co_init_ahead(&cfg, sv[1]);
	}
	close_ends(cfg.ready_fd, cfg.status_fd, cfg.report_fd);
	close(sv[1]);
	ahead.pid = p;
	ahead.orders = sv[0];
}

/* Init started ahead is not used: gone (it ends when its orders' socket closes). */
static void ahead_gone(void)
{
	close(ahead.orders);
	close_ends(ahead.e.ready, ahead.e.status, ahead.e.report);
	kill(ahead.pid, SIGKILL);
	while (waitpid(ahead.pid, NULL, 0) < 0 && errno == EINTR)
		;
	ahead.pid = 0;
}

/* Init started ahead given its orders: 0, or -1 when it cannot take them (it is then gone). */
static int ahead_orders(const struct co_init_cfg *cfg)
{
	/* the group's time namespace, its offsets written (make_timens): init enters it before its children come */
	int tfd = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
	int r = (tfd >= 0 || (!G.mono_off && !G.boot_off)) ? co_init_send_orders(ahead.orders, cfg, tfd) : -1;
	if (tfd >= 0)
		close(tfd);
	if (r < 0) {
		ahead_gone();
		return -1;
	}
	close(ahead.orders);
	ahead.orders = -1;
	return 0;
}

void start_init(struct co_init_cfg *cfg)
{
	if (ahead.pid > 0 && !cfg->argv && ahead_orders(cfg) == 0) {
		init_running(ahead.pid, &ahead.e);
		ahead.pid = 0;
		return;
	}
	if (ahead.pid > 0)
		ahead_gone();
	struct init_ends e;
	init_pipes(cfg, &e, !cfg->argv);
	pid_t p = clone_init();
	if (p == 0) {
		close_ends(e.ready, e.status, e.report);
		close(G.lfd);
		close(G.sfd);
		close(G.tfd);
		co_init_main(cfg);
	}
	close_ends(cfg->ready_fd, cfg->status_fd, cfg->report_fd);
	init_running(p, &e);
}

void common_setup(struct co_run_opts *o)
{
	G.t_start = co_now_ns(CLOCK_MONOTONIC);
	G.name = o->name;
	/* as the kernel names it in /proc/PID/maps: no "..", no symbolic link */
	char agent[PATH_MAX];
	if (!realpath(co_self_path("libcohort.so", agent, sizeof(agent)), G.agent))
		snprintf(G.agent, sizeof(G.agent), "%s", agent);
	struct stat st;
	if (stat(G.agent, &st) == 0) {
		G.agent_dev = co_maps_dev(major(st.st_dev), minor(st.st_dev));
		G.agent_ino = st.st_ino;
	}
	snprintf(G.images, sizeof(G.images), "%s", o->images);
	G.interval = o->interval;
	G.full_every = o->full_every;
	G.keep = o->keep;
	G.compress = o->compress;
	G.no_precopy = o->no_precopy;
	G.json = o->json;
	make_rundir();
	make_socket();
	make_table();
	make_signalfd();
}
