/*
 * coord.c - the coordinator of one group, started by `cohort run` and
 * `cohort restart`, in the foreground of the caller.
 *
 * It owns the group's run directory (0700) with the control socket, the
 * process table in shared memory (a memfd mapped by every member), the
 * checkpoint scheduler thread, and the two group barriers of a checkpoint.
 * A member has no connection while its program runs: the coordinator
 * watches it through a pidfd (its end), and starts a checkpoint by
 * sending it the checkpoint signal (queued, with the table's cookie); its
 * agent's manager thread then connects (ATTACH) and gets PREPARE:
 *
 *   PREPARE -> every member parks all its threads -> QUIESCED   (barrier 1)
 *   DUMP    -> every member writes its image      -> DONE       (barrier 2)
 *   RELEASE (or, with --kill, the group ends) and the generation is committed
 *
 * Any FAIL, hang-up or timeout aborts the checkpoint: the members are
 * released, the temporary directory removed, and the group runs on.
 * Requests are handled one at a time, so a process registers either
 * wholly before or wholly after a checkpoint (the checkpoint lock).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "dirty.h"
#include "procfs.h"
#include "progress.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#define MAX_CONNS (CO_TABLE_SLOTS + 64)
#define QUIESCE_TIMEOUT_MS 30000
#define DUMP_TIMEOUT_MS 600000
#define DEFAULT_SIG 62
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

enum { C_NEW = 0, C_MEMBER, C_CLIENT };

struct conn {
	int fd;
	int kind;
	int slot;
	int pid, host_pid, ppid;
	int restored;		/* registered from an image, waiting for the release */
	int answered;		/* in the current barrier */
	uint64_t agentless_ns;	/* since when it has had no agent to signal (exec'ing), or 0 */
	int part;		/* takes part in the current checkpoint (was sent PREPARE) */
	int deferred;		/* a request that waits until the checkpoint is over */
	uint32_t got;		/* messages of the current checkpoint received so far (1 << type) */
	int pidfd;		/* a member's: readable when it has ended */
	int uffd;		/* a member's dirty-page tracking (userfaultfd), kept between its checkpoints */
	unsigned prep_flags;	/* the PREPARE it gets when it attaches (CO_PREP_*) */
	uint64_t signalled_ns;	/* when it was last sent the checkpoint signal */
	uint64_t prepare_ns;	/* when it attached and was sent PREPARE */
	int stale;		/* a member that exec'd after it parked: kept for its checkpoint's manifest only */
	uint64_t bytes;
	uint64_t incr_parent;	/* DONE: its image is incremental against this generation (0: full) */
	int64_t prep_ns;	/* QUIESCED: how long it prepared (tracking new memory) before it parked */
	int armed;		/* ARMED: its memory is to be pre-copied (by the pre-copy child) */
	int foreign;		/* a process of the group whose uid is not ours: members' messages only */
};

struct group {
	const char *name;
	char images[PATH_MAX];
	char rundir[PATH_MAX];
	char sock[PATH_MAX];
	int lfd, tfd, sfd;
	struct co_table *table;
	int sig;
	double interval;
	pid_t init_pid;
	int status_fd;		/* init writes the root process's wait status here */
	int init_pidfd;
	int root_pid;
	int expect;		/* restart: processes still to come back */
	uint64_t restored_from;
	struct co_manifest restored; /* restart: the manifest of that generation */
	int64_t mono_off, boot_off; /* group clock minus host clock */
	char program[256];
	char agent[PATH_MAX];	/* the agent library, as members map it */
	uint64_t t_start;
	unsigned full_every, keep, timed;
	int compress;			/* --compress: every checkpoint's images are stored as .zst */
	int no_precopy;			/* --no-precopy: no checkpoint pre-copies full images */
	uint64_t last_committed;	/* parent of the next incremental (0: none yet) */
	uint64_t killed_gen;		/* `checkpoint --kill` committed this generation and ended the group */
	char killed_dir[PATH_MAX];	/* ... in this directory */
	int json;			/* --json: the outcome as one JSON object when the group ends */
	char **argv;			/* run: the command line, written beside the images (store.c) */
	char command_dir[PATH_MAX];	/* the images directory it was last written to */
	pid_t merge_pid;		/* background merge running, or 0 */
	int merge_again;		/* an incremental committed while it ran */
	struct conn c[MAX_CONNS];
	int nc;
	uint64_t ck_gen, ck_parent;	/* the checkpoint being taken (0: none): what an ATTACH is PREPAREd for */
};

static struct group G;
static struct co_msgbuf in;

/* Progress of the checkpoint being taken, for a client that asked for it (CO_CKPT_PROGRESS). */
static struct {
	int fd;			/* the client's socket; -1: nobody asked */
	const char *phase;
	int count;		/* where the phase's bytes done come from: PC_* */
	char tmp[PATH_MAX];	/* the generation being written (.tmp-gen-N) */
	pid_t job;		/* the phase's job child (run_job); 0: none */
	uint64_t total;		/* 0: not known */
	uint64_t next_ns;	/* no update before */
	/* when each phase began, whether anyone watches: --json reports where the time went */
	int nphases;
	const char *phase_name[12];
	uint64_t phase_ns[12];
} P = { .fd = -1 };
/* restart: drawn on the coordinator's terminal until every process is back */
static struct co_progress restore_pr = { .fd = -1 };
static void progress_tick(void);
static int restore_progress(void);
static int restore_failed(void);
static int restore_broke;	/* restart: a restorer failed (restore_failed) */

/* ---- setup ---- */

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

static void make_rundir(void)
{
	const char *root = co_run_root();
	mode_t mode = rundir_mode();
	if (mkdir(root, mode) < 0 && errno != EEXIST)
		co_die("cannot create run directory %s: %s", root, strerror(errno));
	struct stat st;
	if (stat(root, &st) < 0 || st.st_uid != geteuid())
		co_die("run directory %s must be owned by you", root);
	if ((st.st_mode & 0777) != mode && chmod(root, mode) < 0)
		co_die("run directory %s must be private (%04o): %s", root, (unsigned)mode, strerror(errno));
	snprintf(G.rundir, sizeof(G.rundir), "%s/%s", root, G.name);
	if (mkdir(G.rundir, mode) < 0 && errno != EEXIST)
		co_die("cannot create %s: %s", G.rundir, strerror(errno));
	if (stat(G.rundir, &st) < 0 || st.st_uid != geteuid() || ((st.st_mode & 0777) != mode && chmod(G.rundir, mode) < 0))
		co_die("%s must be yours and private (%04o)", G.rundir, (unsigned)mode);
	int fd = co_connect_group(G.name);
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
	/*
	 * What a descriptor pointing outside the group at our stdio is: it
	 * comes back as the stdio of whoever restarts the group, whatever its
	 * kind (a log file is not rolled back and rewritten at a restart).
	 */
	for (int i = 0; i < 3; i++) {
		struct stat st;
		if (fstat(i, &st) == 0 && !S_ISDIR(st.st_mode)) {
			G.table->stdio[i].dev = st.st_dev;
			G.table->stdio[i].ino = st.st_ino;
			G.table->stdio[i].file = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
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
static void record_caller_signals(struct co_init_cfg *cfg)
{
	for (int s = 1; s <= 64; s++) {
		struct co_ksigaction ka;
		if (co_sigaction(s, NULL, &ka) == 0 && ka.handler == (void *)SIG_IGN)
			cfg->sig_ignored |= 1ULL << (s - 1);
	}
	co_sigprocmask(SIG_BLOCK, NULL, &cfg->sig_blocked);
}

static int write_proc(const char *path, const char *text)
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
	if (write_proc("/proc/self/uid_map", map) < 0)
		co_die("cannot write /proc/self/uid_map: %s", strerror(errno));
	if (write_proc("/proc/self/setgroups", "deny") < 0 && errno != ENOENT)
		co_die("cannot write /proc/self/setgroups: %s", strerror(errno));
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if (write_proc("/proc/self/gid_map", map) < 0)
		co_die("cannot write /proc/self/gid_map: %s", strerror(errno));
}

/* Enter a new time namespace for our children, its clocks shifted by the offsets. */
static void make_timens(int64_t mono_off, int64_t boot_off)
{
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

static void start_init(struct co_init_cfg *cfg)
{
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		co_die("pipe: %s", strerror(errno));
	cfg->ready_fd = ready[1];
	int status[2];
	if (pipe2(status, O_CLOEXEC | O_NONBLOCK) < 0)
		co_die("pipe: %s", strerror(errno));
	cfg->status_fd = status[1];
	fflush(NULL);
	pid_t p = (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
	if (p < 0)
		co_die("cannot create the group's namespaces: %s", strerror(errno));
	if (p == 0) {
		close(ready[0]);
		close(status[0]);
		close(G.lfd);
		close(G.sfd);
		close(G.tfd);
		co_init_main(cfg);
	}
	close(ready[1]);
	close(status[1]);
	G.status_fd = status[0];
	char c;
	while (read(ready[0], &c, 1) < 0 && errno == EINTR)
		;
	close(ready[0]);
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

/* ---- connections ---- */

static void drop(int i)
{
	struct conn *c = &G.c[i];
	if (c->kind == C_MEMBER && c->slot >= 0)
		memset(&G.table->p[c->slot], 0, sizeof(G.table->p[0]));
	if (c->fd >= 0)
		close(c->fd);
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->uffd >= 0)
		close(c->uffd);
	G.c[i] = G.c[--G.nc];
}

/* A member's connection of the checkpoint is over (the member goes on). */
static void hang_up(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int free_slot(void)
{
	for (int s = 0; s < CO_TABLE_SLOTS; s++)
		if (G.table->p[s].state == CO_P_FREE && G.table->p[s].pid == 0)
			return s;
	return -1;
}

static uint64_t group_ns;	/* inode of the group's pid namespace */

/* The inode of the group's pid namespace (init's), or 0 when it cannot be told. */
static uint64_t group_ns_ino(void)
{
	if (!group_ns && G.init_pid > 0) {
		char p[64];
		struct stat st;
		snprintf(p, sizeof(p), "/proc/%d/ns/pid", G.init_pid);
		if (stat(p, &st) == 0)
			group_ns = st.st_ino;
	}
	return group_ns;
}

/*
 * The peer of connection fd, pid as SO_PEERCRED gave it, is a process of
 * the group: its pid namespace is the group's.  The kernel's pidfd of the
 * peer (SO_PEERPIDFD, made when it connected) still names a live process
 * after the look at /proc/PID, so the pid was not taken meanwhile by a
 * process of the group.  Without SO_PEERPIDFD (before Linux 6.5): no.
 */
static int peer_in_group(int fd, pid_t pid)
{
	int pidfd = -1;
	socklen_t l = sizeof(pidfd);
	uint64_t ns = group_ns_ino();
	if (pid <= 0 || !ns || getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &l) < 0)
		return 0;
	char p[64];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/%d/ns/pid", (int)pid);
	int in = stat(p, &st) == 0 && st.st_ino == ns && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0;
	close(pidfd);
	return in;
}

/*
 * A new connection.  Ours: the CLI (status, checkpoint, kill), and the
 * group's processes.  A process of the group may have changed its uid
 * (a server that drops root): one of another uid is taken when it is in
 * the group's pid namespace, and may only speak as a member (REGISTER,
 * ATTACH, PROCFD), never make requests (foreign).  Anyone else of
 * another uid is hung up on before a word is read.
 */
static void accept_conn(void)
{
	for (;;) {
		int fd = accept4(G.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct ucred cr;
		socklen_t l = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 || G.nc == MAX_CONNS ||
		    (cr.uid != geteuid() && !peer_in_group(fd, cr.pid))) {
			close(fd);
			continue;
		}
		struct conn *c = &G.c[G.nc++];
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->slot = -1;
		c->pidfd = -1;
		c->uffd = -1;
		c->host_pid = cr.pid;
		c->foreign = cr.uid != geteuid();
	}
}

/*
 * PROCFD on connection i: a process of the group asks for a file of its
 * own /proc/PID that it may not open: one that changed its uid is not
 * dumpable, and its /proc files are root's (its pagemap, which its image
 * and the tracking of written pages read).  Opened here for the peer the
 * kernel names (alive after the open: the pid was its own), with
 * CAP_SYS_ADMIN out of effect for the moment, so that the page frame
 * numbers stay hidden as in the process's own.  Answered (PROCFILE) and
 * hung up.
 */
static void on_procfd(int i)
{
	struct conn *c = &G.c[i];
	int e = EPERM, f = -1, pidfd = -1;
	socklen_t l = sizeof(pidfd);
	if (!strcmp(in.text, "pagemap") && peer_in_group(c->fd, c->host_pid) &&
	    getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &l) == 0) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct have[2], less[2];
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/pagemap", c->host_pid);
		if (syscall(SYS_capget, &h, have) == 0) {
			memcpy(less, have, sizeof(less));
			less[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
			/* capset on ourselves is this thread's alone: the scheduler thread never opens files */
			if (syscall(SYS_capset, &h, less) == 0) {
				f = open(path, O_RDONLY | O_CLOEXEC);
				e = f < 0 ? errno : 0;
				syscall(SYS_capset, &h, have);
			}
		}
		if (f >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) {
			close(f); /* it ended, and the pid may be another's now */
			f = -1;
			e = ESRCH;
		}
		close(pidfd);
	}
	if (getenv("COHORT_DEBUG"))
		co_warn("host pid %d may not open its /proc/PID/%.32s: %s", c->host_pid, in.text,
			f >= 0 ? "opened for it" : strerror(e));
	co_send(c->fd, CO_M_PROCFILE, 0, f >= 0 ? 0 : e, 0, NULL, f);
	if (f >= 0)
		close(f);
	drop(i);
}

/* Restart: every process is back; a job-control shell gets its terminal back before it runs. */
static void give_terminal(void)
{
	static int hosts[CO_TABLE_SLOTS], pgids[CO_TABLE_SLOTS];
	int n = 0;
	for (int i = 0; i < G.nc; i++) {
		struct co_nsids ids;
		if (G.c[i].kind == C_MEMBER && co_ns_ids(G.c[i].host_pid, &ids) == 0) {
			hosts[n] = G.c[i].host_pid;
			pgids[n++] = ids.pgid;
		}
	}
	if (co_tty_give(&G.restored, hosts, pgids, n) < 0)
		co_warn("restart: cannot give the terminal to process group %d: %s", G.restored.tty_pgid, strerror(errno));
}

static void on_register(int i)
{
	/* a member registering again has exec'd: the program it was is gone */
	for (int k = 0; k < G.nc; k++)
		if (k != i && G.c[k].kind == C_MEMBER && !G.c[k].stale && G.c[k].host_pid == G.c[i].host_pid) {
			/* one whose image is being made (released, it exec'd) stays until the checkpoint is over */
			if (G.ck_gen && G.c[k].part && (G.c[k].got & (1u << CO_M_QUIESCED))) {
				G.c[k].stale = 1;
				break;
			}
			int fd = G.c[i].fd;
			drop(k);
			for (i = 0; i < G.nc && G.c[i].fd != fd; i++)
				;
			break;
		}
	struct conn *c = &G.c[i];
	int slot = free_slot();
	c->pidfd = slot < 0 ? -1 : (int)syscall(SYS_pidfd_open, c->host_pid, 0);
	if (c->pidfd < 0) {
		drop(i);
		return;
	}
	c->kind = C_MEMBER;
	c->slot = slot;
	c->pid = (int)in.m.a;
	c->ppid = (int)in.m.b;
	c->restored = in.m.c != 0;
	struct co_pentry *e = &G.table->p[slot];
	memset(e, 0, sizeof(*e));
	e->pid = c->pid;
	e->host_pid = c->host_pid;
	e->ppid = c->ppid;
	e->state = c->restored ? CO_P_RESTORING : CO_P_RUNNING;
	e->generation = (uint64_t)in.m.c;
	const char *prog = strrchr(in.text, '/');
	snprintf(e->program, sizeof(e->program), "%s", prog ? prog + 1 : in.text);
	if (co_send(c->fd, CO_M_WELCOME, 0, slot, G.sig, NULL, G.tfd) < 0) {
		drop(i);
		return;
	}
	/* it keeps no connection while it runs; a restored one waits on it for the release */
	if (!c->restored)
		hang_up(c);
	if (c->restored && G.expect > 0 && --G.expect == 0) {
		if (getenv("COHORT_DEBUG"))
			co_warn("restart: every process back after %.1f ms",
				(double)(co_now_ns(CLOCK_MONOTONIC) - G.t_start) / 1e6);
		/* every restorer has read its image: the FIFOs and their feeders go */
		co_fifos_stop(1);
		co_progress_end(&restore_pr); /* the group's output must not meet a progress line */
		give_terminal();
		/* every process is back: let the whole group go at once */
		for (int k = 0; k < G.nc; k++)
			if (G.c[k].kind == C_MEMBER && G.c[k].restored) {
				co_send(G.c[k].fd, CO_M_RELEASE, 0, (int64_t)G.restored_from, 0, NULL, -1);
				hang_up(&G.c[k]);
				G.c[k].restored = 0;
			}
	}
}

/*
 * Start member c's part in the checkpoint: its agent starts its manager
 * thread on the checkpoint signal, queued with the table's cookie, which
 * connects (ATTACH).  0, or -1 when the member is gone.
 */
/*
 * Whether process host still has the agent: a member that exec'd a program
 * the agent cannot enter (static, setuid, LD_PRELOAD removed) has no
 * connection that would tell us, and the checkpoint signal's default
 * action would end it.  Its memory map says: the agent library is mapped.
 */
static int has_agent(int host)
{
	char path[64];
	struct co_maps m;
	struct co_mapent e;
	snprintf(path, sizeof(path), "/proc/%d/maps", host);
	if (co_maps_open(&m, path) < 0)
		return 0;
	int found = 0;
	while (!found && co_maps_next(&m, &e) > 0)
		found = !strcmp(e.path, G.agent);
	co_maps_close(&m);
	return found;
}

/* Members whose process no longer has the agent are members no more (status, settle). */
static void forget_agentless(void)
{
	for (int i = G.nc - 1; i >= 0; i--)
		if (G.c[i].kind == C_MEMBER && !G.c[i].restored && !G.c[i].stale && !has_agent(G.c[i].host_pid))
			drop(i);
}

/* The checkpoint's start to member c: 0 sent, -1 it is gone, -2 it has no agent now (not sent). */
#define CO_PIDFD_SIGNAL_THREAD 1 /* Linux 6.9: to the thread the pidfd names, here the main thread */

/*
 * Whether the main thread of process host can take the start signal: it
 * is alive and does not block it.  The start signal goes to the main
 * thread alone when it can: a signal sent to the whole process wakes one
 * of its threads, and when another thread takes the signal first, the
 * one woken returns from a wait that cannot be restarted (sigtimedwait,
 * and others after a stop) with EINTR, although no handler ran in it.
 */
static int leader_takes(int host)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", host);
	if (co_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	const char *st = strstr(buf, "\nState:\t");
	return st && st[8] != 'Z' && !(co_status_hex(buf, "SigBlk") & (1ULL << (G.sig - 1)));
}

static int signal_member(struct conn *c)
{
	if (!has_agent(c->host_pid)) {
		if (!c->agentless_ns)
			c->agentless_ns = co_now_ns(CLOCK_MONOTONIC);
		return -2; /* never signal a program without our handler: the default action ends it */
	}
	c->agentless_ns = 0;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	si.si_signo = G.sig;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid(); /* the kernel says 0: we are outside the group's namespace */
	si.si_uid = getuid();
	si.si_value.sival_ptr = (void *)(uintptr_t)G.table->cookie;
	c->signalled_ns = co_now_ns(CLOCK_MONOTONIC);
	if (leader_takes(c->host_pid) &&
	    syscall(SYS_pidfd_send_signal, c->pidfd, G.sig, &si, CO_PIDFD_SIGNAL_THREAD) == 0)
		return 0;
	return syscall(SYS_pidfd_send_signal, c->pidfd, G.sig, &si, 0) < 0 ? -1 : 0;
}

/*
 * Connection i said ATTACH: the manager thread of a member taking part in
 * the checkpoint.  It becomes the member's connection and gets PREPARE,
 * with the member's userfaultfd when we keep one.  Anyone else (a member
 * whose checkpoint is over, or already attached) is hung up on.
 */
static void on_attach(int i)
{
	int host = G.c[i].host_pid, fd = G.c[i].fd, m = -1;
	for (int k = 0; k < G.nc && m < 0; k++)
		if (G.c[k].kind == C_MEMBER && !G.c[k].stale && G.c[k].host_pid == host)
			m = k;
	if (m < 0 || !G.ck_gen || !G.c[m].part || G.c[m].answered || G.c[m].fd >= 0) {
		drop(i);
		return;
	}
	int foreign = G.c[i].foreign;
	G.c[i] = G.c[--G.nc]; /* the connection is the member's now, not one of its own */
	if (m == G.nc)
		m = i;
	struct conn *c = &G.c[m];
	c->fd = fd;
	c->foreign = foreign; /* its uid now: a member may have changed it since it registered */
	c->prepare_ns = co_now_ns(CLOCK_MONOTONIC);
	if (co_send(fd, CO_M_PREPARE, c->prep_flags, (int64_t)G.ck_gen, (int64_t)G.ck_parent, NULL, c->uffd) < 0)
		hang_up(c);
}

/* A userfaultfd a member's manager handed over (ARMED, QUIESCED): kept until its next PREPARE. */
static void keep_uffd(struct conn *c, int fd)
{
	if (fd < 0)
		return;
	if (c->uffd >= 0)
		close(c->uffd);
	c->uffd = fd;
}

static void reply(int fd, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply(int fd, int err, const char *fmt, ...)
{
	static char text[CO_MSG_TEXT];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (fd == P.fd)
		P.fd = -1; /* the reply ends the progress */
	co_send(fd, CO_M_REPLY, 0, err, 0, text, -1);
}

static int nmembers(void)
{
	int n = 0;
	for (int i = 0; i < G.nc; i++)
		n += G.c[i].kind == C_MEMBER && !G.c[i].stale;
	return n;
}

/* ---- progress of a checkpoint, for the client that asked for it ---- */

#define PROGRESS_NS 200000000ULL /* an update every 200 ms: the client redraws at most that often */

/* Where the bytes done of a phase come from. */
enum {
	PC_NONE,	/* nowhere: the phase alone is shown */
	PC_FILES,	/* the files written so far in .tmp-gen-N (the agents' images, shared.img) */
	PC_PRE,		/* those in .tmp-gen-N/.pre (the pre-copies) */
	PC_JOB_READ,	/* the bytes the phase's job child has read (compression: raw image bytes) */
	PC_JOB_WRITE,	/* the bytes it has written (the merged images) */
};

static const char *pre_dir(const char *tmp);

/* Bytes done in the current phase, cheaply: a few stat()s or one /proc read. */
static uint64_t progress_done(void)
{
	switch (P.count) {
	case PC_FILES:
		return co_dir_bytes(P.tmp);
	case PC_PRE:
		return co_dir_bytes(pre_dir(P.tmp));
	case PC_JOB_READ:
	case PC_JOB_WRITE:
		return P.job > 0 ? co_proc_io(P.job, P.count == PC_JOB_READ ? "rchar" : "wchar") : 0;
	}
	return 0;
}

/* Never waits: an update the client is not ready for is dropped (progress.c). */
static void progress_send(void)
{
	P.next_ns = co_now_ns(CLOCK_MONOTONIC) + PROGRESS_NS;
	if (co_progress_send(P.fd, P.phase, progress_done(), P.total) < 0)
		P.fd = -1; /* the client is gone */
}

/* From wherever a checkpoint waits (pump): an update when one is due. */
static void progress_tick(void)
{
	if (P.fd >= 0 && co_now_ns(CLOCK_MONOTONIC) >= P.next_ns)
		progress_send();
}

/* A new phase, told at once; count: PC_*, total: what its bytes done come to (0: not known). */
static void progress_phase(const char *phase, int count, uint64_t total)
{
	if (P.nphases < (int)CO_ARRAY_LEN(P.phase_ns)) {
		P.phase_name[P.nphases] = phase;
		P.phase_ns[P.nphases++] = co_now_ns(CLOCK_MONOTONIC);
	}
	if (P.fd < 0)
		return;
	P.phase = phase;
	P.count = count;
	P.total = total;
	P.job = 0;
	progress_send();
}

/* The checkpoint into tmp begins, for the client on fd; the reply ends the progress (reply()). */
static void progress_begin(int fd, unsigned flags, const char *tmp)
{
	P.fd = flags & CO_CKPT_PROGRESS ? fd : -1;
	P.nphases = 0;
	snprintf(P.tmp, sizeof(P.tmp), "%s", tmp);
	progress_phase("preparing", PC_NONE, 0);
}

/*
 * The phases of the checkpoint as JSON, {"preparing":12.5,...}: the time from
 * each phase's start to the next one's (the last one's to end_ns), in ms,
 * counted from start_ns as duration_ms is.  A phase entered twice is
 * reported twice.
 */
static const char *phases_json(uint64_t start_ns, uint64_t end_ns, char *out, size_t size)
{
	size_t len = 0;
	len += (size_t)snprintf(out, size, "{");
	for (int i = 0; i < P.nphases && len < size; i++) {
		uint64_t from = P.phase_ns[i] > start_ns ? P.phase_ns[i] : start_ns;
		uint64_t until = i + 1 < P.nphases ? P.phase_ns[i + 1] : end_ns;
		len += (size_t)snprintf(out + len, size - len, "%s\"%s\":%.2f", i ? "," : "", P.phase_name[i],
					until > from ? (double)(until - from) / 1e6 : 0.0);
	}
	if (len < size)
		snprintf(out + len, size - len, "}");
	return out;
}

/* The job child of the phase (run_job): its reads or writes are the bytes done. */
static void progress_job(pid_t pid)
{
	P.job = pid;
}

/*
 * What the images of the members taking part will take, roughly: the
 * memory only they hold (RssAnon, and VmSwap swapped out) and shared
 * memory (RssShmem: counted by each process that maps it, saved once).
 * A pre-copy (precopy) reads the armed members only, and the resident
 * pages of their private file mappings too (RssFile).
 */
static uint64_t members_memory(int precopy)
{
	uint64_t kb = 0;
	if (P.fd < 0)
		return 0;
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		char path[64], buf[4096];
		if (c->kind != C_MEMBER || !c->part || (precopy && !c->armed))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/status", c->host_pid);
		if (co_read_small(path, buf, sizeof(buf)) <= 0)
			continue;
		long f[3] = { co_status_field(buf, "RssAnon"), co_status_field(buf, "VmSwap"),
			      co_status_field(buf, precopy ? "RssFile" : "RssShmem") };
		for (int k = 0; k < 3; k++)
			kb += f[k] > 0 ? (uint64_t)f[k] : 0;
	}
	return kb * 1024;
}

/* ---- the checkpoint ---- */

/* ---- the group's processes, as the kernel sees them ---- */

struct nsproc {
	int host;
	struct co_nsids ids;
	int member;		/* index in G.c, or -1 */
};

/*
 * The member connection of process host; with part_only, the one that took
 * part in this checkpoint (one that exec'd after the release has registered
 * again on a second connection).
 */
static int member_of(int host, int part_only)
{
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].host_pid == host && (part_only ? G.c[i].part : !G.c[i].stale))
			return i;
	return -1;
}

static const char *comm_of(int host);

/* Every process in the group's pid namespace but init. */
static int scan_group(struct nsproc *out, int max)
{
	struct stat st;
	char p[64];
	if (!group_ns_ino())
		return -1;
	DIR *d = opendir("/proc");
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d)) && n < max;) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		int host = atoi(e->d_name);
		if (host == G.init_pid)
			continue;
		snprintf(p, sizeof(p), "/proc/%d/ns/pid", host);
		if (stat(p, &st) < 0 || st.st_ino != group_ns)
			continue;
		out[n].host = host;
		if (co_ns_ids(host, &out[n].ids) < 0)
			continue;
		/* an agent's snapshot child still finishing an image is not part of the group */
		if (!strcmp(comm_of(host), "cohort-dump"))
			continue;
		out[n].member = member_of(host, 0);
		n++;
	}
	if (d)
		closedir(d);
	return n;
}

static const char *comm_of(int host)
{
	static char buf[64];
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/comm", host);
	if (co_read_small(p, buf, sizeof(buf)) <= 0)
		return "?";
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

/*
 * Why process host (pid in the group) holds a checkpoint up, in err: the
 * kernel's view first, since a stopped or traced process cannot run its
 * agent, and "no agent" would send the user the wrong way.
 */
static void why_absent(int host, int pid, int registered, char *err, size_t errlen)
{
	char comm[64];
	snprintf(comm, sizeof(comm), "%s", comm_of(host));
	long tracer;
	char st = co_proc_state(host, &tracer);
	if (!st)
		snprintf(err, errlen, "pid %d (%s) ended while the group was being checkpointed", pid, comm);
	else if (tracer > 0 || st == 't')
		snprintf(err, errlen,
			 "pid %d (%s) is being traced (by host pid %ld: a debugger or strace?): cohort cannot checkpoint a "
			 "traced process; detach the tracer and try again", pid, comm, tracer);
	else if (st == 'T')
		snprintf(err, errlen,
			 "pid %d (%s) is stopped (SIGSTOP or a terminal stop), so its threads cannot park: continue it "
			 "(kill -CONT %d, its host pid) and try again", pid, comm, host);
	else if (registered)
		snprintf(err, errlen, "pid %d (%s) has the cohort agent but did not park its threads in time", pid, comm);
	else
		snprintf(err, errlen,
			 "pid %d (%s) runs without the cohort agent (a static or setuid program, or LD_PRELOAD removed)",
			 pid, comm);
}

/* The first of the n members idx[] that is stopped or traced, or -1. */
static int held_up(const int *idx, int n)
{
	for (int k = 0; k < n; k++) {
		long tracer;
		char st = co_proc_state(G.c[idx[k]].host_pid, &tracer);
		if (st == 'T' || st == 't' || tracer > 0)
			return idx[k];
	}
	return -1;
}

/*
 * Why member c hung up during a checkpoint: it exited, it started a new
 * program (exec closes the agent's socket), or its agent failed.
 */
static void why_hung_up(const struct conn *c, unsigned want, char *err, size_t errlen)
{
	const char *when = want == CO_M_SNAPSHOT ? "before its snapshot" : "before its image was complete";
	long tracer;
	char st = co_proc_state(c->host_pid, &tracer);
	if (!st || st == 'Z' || st == 'X')
		snprintf(err, errlen, "pid %d exited during the checkpoint (%s)", c->pid, when);
	else if (want == CO_M_DONE)
		/* after its snapshot only the writer holds the connection */
		snprintf(err, errlen, "pid %d (%s): the image writer died before the image was complete", c->pid,
			 comm_of(c->host_pid));
	else
		snprintf(err, errlen,
			 "pid %d (%s) still runs, but its cohort agent closed its connection during the checkpoint (%s): "
			 "the agent failed or the program replaced itself (exec)",
			 c->pid, comm_of(c->host_pid), when);
}

/*
 * Handle what arrives while a checkpoint waits: registrations of processes
 * being born (they join the checkpoint: `gen` > 0 sends them PREPARE) and
 * hang-ups.  Requests from clients wait until the checkpoint is over.
 */
static void pump(int timeout_ms, uint64_t gen)
{
	struct pollfd p[MAX_CONNS + 1];
	int idx[MAX_CONNS + 1], n = 0;
	p[n] = (struct pollfd){ G.lfd, POLLIN, 0 };
	idx[n++] = -1;
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_NEW && !G.c[i].deferred) {
			p[n] = (struct pollfd){ G.c[i].fd, POLLIN, 0 };
			idx[n++] = i;
		}
	progress_tick();
	co_park_settle();
	if (poll(p, n, timeout_ms) <= 0)
		return;
	if (p[0].revents)
		accept_conn();
	for (int k = n - 1; k >= 1; k--) {
		if (!p[k].revents)
			continue;
		int i = idx[k];
		if (i >= G.nc || G.c[i].fd != p[k].fd || G.c[i].kind != C_NEW)
			continue; /* moved by a drop meanwhile: the next round sees it */
		struct co_msg peek;
		if (recv(G.c[i].fd, &peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT) < (ssize_t)sizeof(peek)) {
			drop(i);
			continue;
		}
		if (peek.type == CO_M_ATTACH) {
			co_recv(G.c[i].fd, &in, NULL);
			on_attach(i);
			continue;
		}
		if (peek.type == CO_M_PROCFD) {
			co_recv(G.c[i].fd, &in, NULL);
			on_procfd(i);
			continue;
		}
		if (peek.type != CO_M_REGISTER && G.c[i].foreign) {
			drop(i); /* a request: not from another uid */
			continue;
		}
		if (peek.type != CO_M_REGISTER) {
			G.c[i].deferred = 1;
			continue;
		}
		int host = G.c[i].host_pid;
		co_recv(G.c[i].fd, &in, NULL);
		on_register(i);
		int m = member_of(host, 0);
		if (m < 0)
			continue;
		/* born after the group parked (gen == 0): no part of this checkpoint */
		G.c[m].part = gen != 0;
		G.c[m].answered = gen == 0;
		G.c[m].prep_flags = 0; /* no pre-copy: it parks at once */
		/*
		 * Gone already: no part of this checkpoint.  Without the agent at
		 * this moment (exec'ing): the barrier waits for the program it
		 * becomes to register and signals it again, or says it has none.
		 */
		if (gen && signal_member(&G.c[m]) == -1) {
			G.c[m].part = 0;
			G.c[m].answered = 1;
		}
	}
}

/*
 * Wait until every process of the group has registered: a process just
 * forked or exec'ing registers within moments.  Zombies need not.
 */
static int settle(char *err, size_t errlen)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	forget_agentless();
	uint64_t deadline = co_now_ns(CLOCK_MONOTONIC) + 10000000000ULL;
	for (;;) {
		int n = scan_group(ps, (int)CO_ARRAY_LEN(ps)), missing = -1;
		for (int i = 0; i < n && missing < 0; i++)
			if (ps[i].member < 0 && ps[i].ids.state != 'Z')
				missing = i;
		if (missing < 0)
			return 0;
		if (co_now_ns(CLOCK_MONOTONIC) > deadline) {
			why_absent(ps[missing].host, ps[missing].ids.pid, 0, err, errlen);
			return -1;
		}
		pump(20, 0);
	}
}

/*
 * Barrier: wait until every member answered `want`.  Returns 0, or -1 with
 * the reason in err.  A member that hangs up before it parked has exited
 * and is dropped; one that hangs up after it parked fails the checkpoint.
 * During barrier 1 (gen > 0) processes being born join the checkpoint.
 */
static int barrier_more(unsigned want, uint64_t gen, int timeout_ms, char *err, size_t errlen, int reset)
{
	/* a snapshot child may say DONE before its parent says SNAPSHOT: nothing is lost */
	for (int i = 0; i < G.nc && reset; i++)
		G.c[i].answered = G.c[i].kind != C_MEMBER || !G.c[i].part || (G.c[i].got & (1u << want));
	uint64_t deadline = co_now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ULL;
	int failed = 0;
	for (;;) {
		struct pollfd p[MAX_CONNS];
		int idx[MAX_CONNS], n = 0;
		/* births first: pump() may drop connections, which moves others in G.c */
		pump(0, gen);
		uint64_t now = co_now_ns(CLOCK_MONOTONIC);
		for (int i = 0; i < G.nc; i++)
			if (G.c[i].kind == C_MEMBER && !G.c[i].answered) {
				/* not attached yet: its end is what can tell us it will not */
				p[n].fd = G.c[i].fd >= 0 ? G.c[i].fd : G.c[i].pidfd;
				p[n].events = POLLIN;
				idx[n++] = i;
				/* a start that found no thread to take it (one registering, one exec'ing): again */
				if (G.c[i].fd < 0 && now - G.c[i].signalled_ns > 2000000000ULL &&
				    signal_member(&G.c[i]) == -2 && now - G.c[i].agentless_ns > 4000000000ULL) {
					why_absent(G.c[i].host_pid, G.c[i].pid, 0, err, errlen);
					return -1;
				}
			}
		if (!n)
			return failed ? -1 : 0;
		int64_t left = (int64_t)(deadline - co_now_ns(CLOCK_MONOTONIC)) / 1000000;
		/* a stopped or traced process will not park: say so after 2 s rather than at the timeout */
		int parking = want == CO_M_QUIESCED || want == CO_M_ARMED;
		int held = parking && timeout_ms - left > 2000 ? held_up(idx, n) : -1;
		if (held >= 0) {
			why_absent(G.c[held].host_pid, G.c[held].pid, 1, err, errlen);
			return -1;
		}
		if (left <= 0) {
			const struct conn *c = &G.c[idx[0]];
			if (want == CO_M_QUIESCED || want == CO_M_ARMED)
				why_absent(c->host_pid, c->pid, 1, err, errlen);
			else
				snprintf(err, errlen, "pid %d (%s) did not finish its image", c->pid, comm_of(c->host_pid));
			snprintf(err + strlen(err), errlen - strlen(err), " (no answer within %d s)", timeout_ms / 1000);
			return -1;
		}
		if (poll(p, n, left > 20 ? 20 : (int)left) < 0 && errno != EINTR)
			return -1;
		for (int k = n - 1; k >= 0; k--) {
			if (!p[k].revents || idx[k] >= G.nc)
				continue;
			struct conn *c = &G.c[idx[k]];
			if (c->fd < 0 && c->pidfd == p[k].fd) {
				/* ended before it attached: no part of the checkpoint any more */
				if (want != CO_M_QUIESCED && want != CO_M_ARMED && !failed) {
					why_hung_up(c, want, err, errlen);
					failed = 1;
				}
				drop(idx[k]);
				continue;
			}
			if (c->fd != p[k].fd)
				continue;
			int passed = -1;
			if (co_recv(c->fd, &in, &passed) < 0) {
				/* one that exits (or execs) before it parks is no part of the checkpoint any more */
				if (want == CO_M_QUIESCED || want == CO_M_ARMED) {
					drop(idx[k]);
					continue;
				}
				/* after it parked: the checkpoint fails; the member, if it lives, runs on */
				if (!failed) {
					why_hung_up(c, want, err, errlen);
					failed = 1;
				}
				hang_up(c);
				c->answered = 1;
				continue;
			}
			if (in.m.type == CO_M_ARMED || in.m.type == CO_M_QUIESCED)
				keep_uffd(c, passed);
			else if (passed >= 0)
				close(passed);
			if (in.m.type == CO_M_TRACE) {
				/* one of its threads has not parked: it may block the signal (park.c) */
				char terr[1024] = "";
				uint64_t tt0 = co_now_ns(CLOCK_MONOTONIC);
				int r = co_park_thread(c->pid, c->host_pid, (int)in.m.a, G.sig, (uint64_t)in.m.b, terr,
						       sizeof(terr));
				co_send(c->fd, CO_M_TRACED, 0, in.m.a, r, r < 0 ? terr : NULL, -1);
				if (getenv("COHORT_DEBUG"))
					co_warn("checkpoint: pid %d thread %lld %s (%.2f ms)", c->pid, (long long)in.m.a,
						r == 0	 ? "blocked the checkpoint signal: unblocked with ptrace"
						: r == 1 ? "does not block the checkpoint signal"
							 : "cannot be unblocked",
						(double)(co_now_ns(CLOCK_MONOTONIC) - tt0) / 1e6);
				continue;
			}
			c->answered = 1;
			if (in.m.type < 32)
				c->got |= 1u << in.m.type;
			if (in.m.type == CO_M_QUIESCED)
				c->prep_ns = in.m.a;
			if (in.m.type == CO_M_ARMED)
				c->armed = in.m.b != 0;
			if (in.m.type == CO_M_DONE) {
				c->bytes = (uint64_t)in.m.a;
				c->incr_parent = (uint64_t)in.m.b;
			}
			if (in.m.type == CO_M_FAIL) {
				if (!failed)
					snprintf(err, errlen, "%s", in.text);
				failed = 1;
			} else if (in.m.type == want || (want == CO_M_ARMED && in.m.type == CO_M_QUIESCED)) {
				/* (one born during the checkpoint parks at once: it had PREPARE without pre-copy) */
			} else {
				c->answered = 0; /* not for this barrier */
			}
		}
	}
}

static int barrier(unsigned want, uint64_t gen, int timeout_ms, char *err, size_t errlen)
{
	return barrier_more(want, gen, timeout_ms, err, errlen, 1);
}

/* to every member taking part in the checkpoint */
static void broadcast_flags(unsigned type, unsigned flags, int64_t a, int64_t b, const char *text)
{
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].part)
			co_send(G.c[i].fd, type, flags, a, b, text, -1);
}

static void broadcast(unsigned type, int64_t a, const char *text)
{
	broadcast_flags(type, 0, a, 0, text);
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/*
 * The body of a merge child: wait for the merge behind pidfd `after` (if
 * not -1) to end, merge every unmerged incremental of gdir, prune to keep
 * generations (if not 0), exit.
 */
static __attribute__((noreturn)) void merge_child(const char *gdir, int after, unsigned keep)
{
	if (after >= 0) {
		struct pollfd w = { after, POLLIN, 0 };
		while (poll(&w, 1, -1) < 0 && errno == EINTR)
			;
	}
	/* the child keeps nothing of the coordinator's: members must see their hang-ups */
	syscall(SYS_close_range, 3, ~0U, 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_NAME, "cohort-merge");
	/*
	 * Background work: the program must not wait for it.  On two cores a
	 * merge at the program's priority took a core from it for seconds
	 * after every incremental (a 2 GiB heap rewritten in rounds: rounds
	 * twice as long, with the same CPU time; docs/benchmarks.md).  At
	 * nice 19 it takes what the program leaves (the lowest best-effort
	 * I/O priority too); a restart that finds full-N missing builds it.
	 */
	setpriority(PRIO_PROCESS, 0, 19);
	syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (2 << 13) | 7 /* best effort, lowest */);
	char err[1024];
	int r = co_merge_all(gdir, err, sizeof(err));
	if (r)
		co_warn("background merge: %s", err);
	if (keep)
		co_prune(gdir, keep);
	_exit(r ? 1 : 0);
}

/*
 * Fold committed incrementals into full images, in a child process so that
 * the group and its checkpoints never wait for it.  One at a time; an
 * incremental committed meanwhile is taken by the next round.
 */
static void start_merge(const char *gdir)
{
	if (G.merge_pid > 0) {
		G.merge_again = 1;
		return;
	}
	G.merge_again = 0;
	pid_t pid = fork();
	if (pid < 0) {
		co_warn("cannot start the background merge: %s", strerror(errno));
		return;
	}
	if (pid > 0) {
		G.merge_pid = pid;
		return;
	}
	merge_child(gdir, -1, 0);
}

/*
 * The group ended while a merge ran.  That merge may have started before
 * the last incremental was committed, and no coordinator will be there to
 * start the next round or to prune after it: a detached child waits for
 * the running merge, then merges whatever is still unmerged and prunes.
 * `cohort run` returns at once; the group's images are complete a little
 * later, as with any background merge.
 */
static void reap_merge(void);
static void finish_merges(void)
{
	reap_merge();
	if (G.merge_pid <= 0)
		return;
	int running = (int)syscall(SYS_pidfd_open, G.merge_pid, 0);
	char gdir[PATH_MAX];
	snprintf(gdir, sizeof(gdir), "%s/%s", G.images, G.name);
	pid_t pid = fork();
	if (pid != 0) {
		if (pid < 0)
			co_warn("cannot start the last background merge: %s", strerror(errno));
		if (running >= 0)
			close(running);
		return;
	}
	merge_child(gdir, running, G.keep);
}

/* The merge child ended: prune what it made unneeded, start another round if due. */
static void reap_merge(void)
{
	if (G.merge_pid <= 0 || waitpid(G.merge_pid, NULL, WNOHANG) != G.merge_pid)
		return;
	G.merge_pid = 0;
	char gdir[PATH_MAX];
	snprintf(gdir, sizeof(gdir), "%s/%s", G.images, G.name);
	if (G.keep)
		co_prune(gdir, G.keep);
	if (G.merge_again)
		start_merge(gdir);
}

#define ZSTD_WORKERS 2	/* compression threads: this machine's cores; the group runs meanwhile */

/* What a job child tells the coordinator (shared memory). */
struct job {
	char msg[4096];
	int nfailed;
	int failed[MAX_CONNS]; /* pre-copy: the members it could not read */
};

/*
 * Run fn(arg, job) in a child process named name: the heavy parts of a
 * checkpoint (libzstd's threads and allocations, reading and writing a
 * GiB) stay out of the coordinator, whose death would leave the group
 * without checkpoints (a file size limit, say, kills the writer with
 * SIGXFSZ), and the coordinator goes on answering registrations (gen: as
 * for pump()).  Other requests wait, as during any checkpoint.  0 when fn
 * returned 0; else err says why, from job->msg or from how the child ended.
 */
static int run_job(const char *name, const char *what, int (*fn)(void *, struct job *), void *arg, struct job *job,
		   uint64_t gen, char *err, size_t errlen)
{
	memset(job, 0, sizeof(*job));
	pid_t parent = getpid(), pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		/* nothing of the coordinator's: members must see their hang-ups */
		syscall(SYS_close_range, 3, ~0U, 0);
		prctl(PR_SET_NAME, name);
		_exit(fn(arg, job) ? 1 : 0);
	}
	int st = 0, r = -1;
	if (pid > 0)
		progress_job(pid);
	if (pid < 0)
		snprintf(job->msg, sizeof(job->msg), "cannot start %s: %s", what, strerror(errno));
	while (pid > 0 && (r = (int)waitpid(pid, &st, WNOHANG)) == 0)
		pump(5, gen);
	int ok = r == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!ok && !job->msg[0])
		snprintf(job->msg, sizeof(job->msg), "%s: %s", what,
			 r == pid && WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "failed");
	if (!ok)
		snprintf(err, errlen, "%s", job->msg);
	return ok ? 0 : -1;
}

static struct job *job_map(void)
{
	static struct job *j;
	if (!j && (j = mmap(NULL, sizeof(*j), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		j = NULL;
	return j;
}

struct compress_arg {
	const char *tmp;
	const struct co_mproc *procs;
	int n;
};

static int compress_job(void *arg, struct job *job)
{
	struct compress_arg *a = arg;
	return co_compress_gen(a->tmp, a->procs, a->n, ZSTD_WORKERS, job->msg, sizeof(job->msg));
}

/*
 * Compress the images of the generation being written in tmp, after every
 * process said DONE and before the commit: the group is running again by
 * now (it waits only with --kill), so this lengthens the checkpoint, not
 * the pause.  On failure the caller removes tmp: nothing half-compressed
 * is committed.
 */
static int compress_images(const char *tmp, const struct co_mproc *procs, int n, char *err, size_t errlen)
{
	struct job *job = job_map();
	struct compress_arg a = { tmp, procs, n };
	/* all it reads: the images and shared.img, which are all .tmp-gen-N holds before the manifest */
	progress_phase("compressing", PC_JOB_READ, co_dir_bytes(tmp));
	if (!job)
		return snprintf(err, errlen, "cannot compress the images: %s", strerror(errno)), -1;
	return run_job("cohort-zstd", "the compression", compress_job, &a, job, 0, err, errlen);
}

/* Where the pre-copies of the generation being written in tmp go: tmp/.pre. */
static const char *pre_dir(const char *tmp)
{
	static char pre[PATH_MAX];
	snprintf(pre, sizeof(pre), "%s/.pre", tmp);
	return pre;
}

/* The pre-copy of every armed member (the child's copy of G), into pre_dir(tmp). */
/*
 * Whether the pre-copy of member c, pages read ahead, is worth its merge.
 * Memory it could not read ahead (regions of huge pages, compared by page
 * hashes, and pages written since the arming) goes into the image of the
 * pause anyway, and the merge then copies all of it a second time: with
 * less than half of the process's memory read ahead (a heap of huge
 * pages: nothing), a whole image from the snapshot is the cheaper way,
 * and its pause is no longer (huge pages fork fast).
 */
static int precopy_worth(const struct conn *c, uint64_t pages)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", c->host_pid);
	long anon_kib = co_read_small(path, buf, sizeof(buf)) > 0 ? co_status_field(buf, "RssAnon") : -1;
	return anon_kib < 0 || pages * (CO_PAGE / 1024) * 2 >= (uint64_t)anon_kib;
}

static int precopy_job(void *arg, struct job *job)
{
	const char *pre = pre_dir(arg);
	int made = mkdir(pre, 0700) == 0 || errno == EEXIST;
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		if (c->kind != C_MEMBER || !c->part || !c->armed)
			continue;
		char img[PATH_MAX], perr[1024];
		snprintf(img, sizeof(img), "%s/proc-%d.img", pre, c->pid);
		int64_t pages = made ? co_precopy(img, c->pid, c->host_pid, perr, sizeof(perr)) : -1;
		if (pages < 0) {
			job->failed[job->nfailed++] = c->pid;
			if (getenv("COHORT_DEBUG"))
				co_warn("pre-copy of pid %d: %s", c->pid, made ? perr : strerror(errno));
		} else if (!precopy_worth(c, (uint64_t)pages)) {
			/* told it failed, the process saves itself whole, as without a pre-copy */
			job->failed[job->nfailed++] = c->pid;
		}
	}
	return 0;
}

/*
 * Read the memory of every armed member ahead (precopy.c) while the group
 * runs, then tell every member to park.  A member that could not be read
 * parks for a whole image.
 */
static void precopy_members(const char *tmp, uint64_t gen)
{
	struct job *job = job_map();
	char err[1024];
	progress_phase("pre-copying", PC_PRE, members_memory(1));
	int ok = job && run_job("cohort-precopy", "the pre-copy", precopy_job, (void *)tmp, job, gen, err, sizeof(err)) == 0;
	if (!ok && getenv("COHORT_DEBUG"))
		co_warn("%s", job ? err : "no memory for the pre-copy");
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		if (c->kind != C_MEMBER || !c->part)
			continue;
		int failed = c->armed && !ok;
		for (int k = 0; ok && k < job->nfailed; k++)
			failed |= job->failed[k] == c->pid;
		co_send(c->fd, CO_M_QUIESCE, failed ? CO_PREP_PRECOPY_FAILED : 0, 0, 0, NULL, -1);
	}
}

/* A member whose image is incremental against its pre-copy. */
static int precopied(const struct conn *c, uint64_t gen)
{
	return c->kind == C_MEMBER && c->part && c->incr_parent == CO_PRECOPY_ID(gen);
}

struct merge_arg {
	const char *tmp;
	uint64_t gen;
};

static int merge_job(void *arg, struct job *job)
{
	struct merge_arg *a = arg;
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		char image[64], e[2048];
		if (!precopied(c, a->gen))
			continue;
		snprintf(image, sizeof(image), "proc-%d.img", c->pid);
		if (co_merge_precopy(a->tmp, pre_dir(a->tmp), c->pid, image, CO_PRECOPY_ID(a->gen), e, sizeof(e))) {
			snprintf(job->msg, sizeof(job->msg), "pid %d: merging its pre-copy: %s", c->pid, e);
			return -1;
		}
	}
	return 0;
}

/* Fold the pre-copy into each pre-copied member's image: full images.  *merged: how many. */
static int merge_precopies(const char *tmp, uint64_t gen, int *merged, char *err, size_t errlen)
{
	struct job *job = job_map();
	struct merge_arg a = { tmp, gen };
	*merged = 0;
	int any = 0;
	for (int i = 0; i < G.nc; i++)
		any |= precopied(&G.c[i], gen);
	if (!any) {
		co_remove_tree(pre_dir(tmp));
		return 0;
	}
	/* the full images come to about what the pre-copies took */
	progress_phase("merging pre-copy", PC_JOB_WRITE, co_dir_bytes(pre_dir(tmp)));
	int r = job ? run_job("cohort-premerge", "merging the pre-copy", merge_job, &a, job, 0, err, errlen)
		    : (snprintf(err, errlen, "cannot merge the pre-copy: %s", strerror(errno)), -1);
	for (int i = 0; i < G.nc && !r; i++) {
		struct conn *c = &G.c[i];
		if (!precopied(c, gen))
			continue;
		char image[PATH_MAX];
		snprintf(image, sizeof(image), "%s/proc-%d.img", tmp, c->pid);
		c->bytes = co_img_bytes(image);
		c->incr_parent = 0;
		*merged += 1;
	}
	co_remove_tree(pre_dir(tmp));
	return r;
}

/*
 * Which descriptors of member c share the open file of one of our stdio
 * that is a regular file (see struct co_stdio_id): marked in its table
 * entry, where its agent reads them when it writes its image.
 */
static uint8_t *mark_stdio_files(const struct conn *c)
{
	uint8_t *marks = G.table->p[c->slot].stdio_fd;
	memset(marks, 0, CO_STDIO_FDS);
	for (int s = 0; s < 3; s++) {
		if (!G.table->stdio[s].valid || !G.table->stdio[s].file)
			continue;
		for (int fd = 0; fd < CO_STDIO_FDS; fd++)
			if (!marks[fd] && syscall(SYS_kcmp, c->host_pid, getpid(), KCMP_FILE, fd, s) == 0)
				marks[fd] = (uint8_t)(s + 1);
	}
	return marks;
}

/*
 * The ids of each member (by table slot), read while it is parked for the
 * checkpoint: the manifest records them (struct co_mproc), and its
 * restorer gives it back these, not what the process wrote in its image.
 */
static struct co_mproc seen_creds[CO_TABLE_SLOTS];

/* 0, or -1 (err filled) for a process of another uid whose ids cannot all be recorded. */
/*
 * A restore gives every thread of a process the ids recorded for it, so a
 * process whose threads differ (one changed its ids with a raw system
 * call, as glibc's setuid() would have changed all) is refused while it
 * still runs, rather than brought back with one thread's ids changed.
 */
static int threads_same_creds(const struct conn *c, char *err, size_t errlen)
{
	int tid = co_thread_odd_creds(c->host_pid);
	if (tid <= 0)
		return 0; /* the same, or the process is gone: the dump will say so */
	struct co_nsids ids = { .pid = tid };
	co_ns_ids(tid, &ids);
	snprintf(err, errlen,
		 "pid %d: its thread %d runs with other uids, gids, groups or capabilities than the rest of the "
		 "process (set by a raw system call); cohort restores one set of ids per process", c->pid, ids.pid);
	return -1;
}

/*
 * A process in a namespace the program made (unshare, clone with CLONE_NEW*:
 * a sandbox, a container runtime, `unshare -T`) would come back in the
 * group's own, its clocks, mounts or pids silently changed: refused, in
 * the pause, while the group can still run on.
 */
static int own_namespaces(const struct conn *c, char *err, size_t errlen)
{
	const char *kind = co_ns_differs(c->host_pid, G.init_pid);
	if (!kind)
		return 0;
	const char *children = strstr(kind, "_for_children");
	if (children)
		snprintf(err, errlen,
			 "pid %d (%s) made a %.*s namespace for its children inside the group: cohort cannot restore "
			 "namespaces a program creates", c->pid, comm_of(c->host_pid), (int)(children - kind), kind);
	else
		snprintf(err, errlen,
			 "pid %d (%s) runs in a %s namespace of its own, made inside the group: cohort cannot restore "
			 "namespaces a program creates", c->pid, comm_of(c->host_pid), kind);
	return -1;
}

static int record_creds(const struct conn *c, char *err, size_t errlen)
{
	static char buf[16384];
	char path[64];
	struct co_mproc *s = &seen_creds[c->slot];
	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "/proc/%d/status", c->host_pid);
	int n = co_read_small(path, buf, sizeof(buf)) > 0 ? co_status_creds(buf, s->uid, s->gid, s->groups, CO_MPROC_GROUPS)
							  : -EINVAL;
	if (n >= 0) {
		s->creds = 1;
		s->ngroups = (uint32_t)n;
		s->caps = 1;
		s->cap_inh = co_status_hex(buf, "CapInh");
		s->cap_prm = co_status_hex(buf, "CapPrm");
		s->cap_eff = co_status_hex(buf, "CapEff");
		s->cap_bnd = co_status_hex(buf, "CapBnd");
		s->cap_amb = co_status_hex(buf, "CapAmb");
		return threads_same_creds(c, err, errlen);
	}
	/* ours (or root's): what its image says grants it nothing it could not take itself */
	uid_t me = geteuid();
	if (n == -E2BIG && !c->foreign && s->uid[0] == me && s->uid[1] == me && s->uid[2] == me && s->uid[3] == me) {
		memset(s, 0, sizeof(*s));
		return 0;
	}
	if (n == -E2BIG)
		snprintf(err, errlen, "pid %d runs as uid %u with more than %d supplementary groups, which cohort cannot record",
			 c->pid, s->uid[1], CO_MPROC_GROUPS);
	else
		snprintf(err, errlen, "pid %d: cannot read its ids from %s", c->pid, path);
	return -1;
}

/*
 * DUMP to member c, with its image's files attached, one per stream
 * (proc-PID.img, then its page streams, co_stream_path), made here in the
 * generation's directory tmp: the directory is ours alone, and a member
 * that changed its uid could not create files there.  Every member writes
 * through the files it is sent.  -1 (err filled) when one cannot be made.
 */
static int send_dump(struct conn *c, const char *tmp, unsigned flags, char *err, size_t errlen)
{
	char img[PATH_MAX], path[PATH_MAX];
	int fds[CO_STREAMS], n, r = 0;
	_Static_assert(CO_STREAMS <= CO_MSG_FDS, "DUMP carries every stream's file");
	snprintf(img, sizeof(img), "%s/proc-%d.img", tmp, c->pid);
	for (n = 0; n < CO_STREAMS; n++) {
		co_stream_path(path, sizeof(path), img, n);
		fds[n] = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fds[n] < 0) {
			snprintf(err, errlen, "pid %d: cannot create its image %s: %s", c->pid, path, strerror(errno));
			r = -1;
			break;
		}
	}
	/* one that cannot be sent to has hung up: the barrier finds out */
	if (!r)
		co_send_fds(c->fd, CO_M_DUMP, flags, 0, 0, tmp, fds, CO_STREAMS);
	for (int k = 0; k < n; k++)
		close(fds[k]);
	return r;
}

/*
 * A generation is committed only with every live process's image whole:
 * its writer said DONE with a size, and the file is there with at least
 * that much in it.  (An image of 0 bytes was once committed, and could
 * not be restarted.)
 */
static int image_written(const char *tmp, const struct co_mproc *mp, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", tmp, mp->image);
	if (mp->bytes == 0)
		snprintf(err, errlen, "pid %d: its image writer reported no bytes written", mp->pid);
	else if (stat(path, &st) < 0)
		snprintf(err, errlen, "pid %d: its image %s is missing: %s", mp->pid, path, strerror(errno));
	else if (st.st_size == 0)
		snprintf(err, errlen, "pid %d: its image %s is empty", mp->pid, path);
	else
		return 1;
	return 0;
}

/* Which of the group's process groups has our terminal, and its settings (tty.c). */
static void record_terminal(struct co_manifest *m, const struct nsproc *ps, int n)
{
	static int hosts[CO_TABLE_SLOTS * 2], pgids[CO_TABLE_SLOTS * 2];
	for (int i = 0; i < n; i++) {
		hosts[i] = ps[i].host;
		pgids[i] = ps[i].ids.pgid;
	}
	co_tty_record(m, hosts, pgids, n);
}

/*
 * The pause as the program lived it: the longest any of its threads was
 * held, from entering the checkpoint handler to running again after the
 * release, as each thread measured it itself (agent.c, note_stop).  A
 * thread writes its time once it runs again: wait for that, a second at
 * most; a thread still held then counts as held since the pause began.
 */
static double program_pause_ms(uint64_t gen, uint64_t t_pause)
{
	uint64_t deadline = co_now_ns(CLOCK_MONOTONIC) + 1000000000ULL, worst;
	for (;;) {
		int pending = 0;
		worst = 0;
		for (int i = 0; i < G.nc; i++) {
			const struct conn *c = &G.c[i];
			if (c->kind != C_MEMBER || !c->part || c->slot < 0)
				continue;
			struct co_pentry *e = &G.table->p[c->slot];
			if (__atomic_load_n(&e->stop_gen, __ATOMIC_ACQUIRE) != gen)
				continue;
			uint32_t left = __atomic_load_n(&e->stop_left, __ATOMIC_ACQUIRE);
			uint64_t ns = __atomic_load_n(&e->stop_ns, __ATOMIC_RELAXED);
			pending |= left < __atomic_load_n(&e->stop_parked, __ATOMIC_RELAXED);
			worst = ns > worst ? ns : worst;
		}
		if (!pending)
			break;
		uint64_t now = co_now_ns(CLOCK_MONOTONIC);
		if (now > deadline) {
			worst = now - t_pause > worst ? now - t_pause : worst;
			break;
		}
		usleep(1000);
	}
	return (double)worst / 1e6;
}

/*
 * The checkpoint is over: the members' connections go (a member's manager
 * thread has gone, or goes once it has read RELEASE; a snapshot still
 * writing has said DONE), and an ATTACH from now on is a late one.
 */
static void end_sessions(void)
{
	for (int i = G.nc - 1; i >= 0; i--)
		if (G.c[i].kind == C_MEMBER && G.c[i].stale)
			drop(i);
		else if (G.c[i].kind == C_MEMBER && !G.c[i].restored)
			hang_up(&G.c[i]);
	G.ck_gen = G.ck_parent = 0;
}

/*
 * A member with a thread under seccomp is refused before any signal: in
 * strict mode the agent's first system call in the handler would kill the
 * process, a filter may forbid what the agent does, and the restorer
 * cannot install filters again.
 */
static int under_seccomp(char *err, size_t errlen)
{
	for (int i = 0; i < G.nc; i++) {
		long mode = 0;
		int tid = G.c[i].kind == C_MEMBER ? co_thread_seccomp(G.c[i].host_pid, &mode) : 0;
		if (tid <= 0)
			continue;
		struct co_nsids ids = { .pid = tid };
		co_ns_ids(tid, &ids);
		snprintf(err, errlen, "pid %d (%s): thread %d runs under seccomp (%s mode): cohort cannot checkpoint it",
			 G.c[i].pid, comm_of(G.c[i].host_pid), ids.pid, mode == 1 ? "strict" : "filter");
		return 1;
	}
	return 0;
}

static void checkpoint(int ci, unsigned flags, const char *images_override)
{
	int cfd = G.c[ci].fd;
	char err[1024] = "", tmp[PATH_MAX], gdir[PATH_MAX];
	if (G.expect > 0) {
		reply(cfd, 1, "group '%s' is still being restored", G.name);
		return;
	}
	if (!nmembers()) {
		reply(cfd, 1, "group '%s' has no registered process yet", G.name);
		return;
	}
	const char *images = images_override && *images_override ? images_override : G.images;
	snprintf(gdir, sizeof(gdir), "%s/%s", images, G.name);
	if (mkdir_p(gdir) < 0) {
		reply(cfd, 1, "cannot create %s: %s", gdir, strerror(errno));
		return;
	}
	uint64_t gen = co_newest_generation(gdir) + 1;
	/* an incremental needs its parent: the last generation this group committed, still there */
	uint64_t parent = 0;
	if ((flags & CO_CKPT_INCREMENTAL) && G.last_committed && !strcmp(images, G.images) &&
	    co_generation_usable(gdir, G.last_committed))
		parent = G.last_committed;
	snprintf(tmp, sizeof(tmp), "%s/.tmp-gen-%06llu", gdir, (unsigned long long)gen);
	co_remove_tree(tmp);
	if (mkdir(tmp, 0700) < 0) {
		reply(cfd, 1, "cannot create %s: %s", tmp, strerror(errno));
		return;
	}
	progress_begin(cfd, flags, tmp);
	uint64_t t0 = co_now_ns(CLOCK_MONOTONIC);
	int bad = settle(err, sizeof(err)) || under_seccomp(err, sizeof(err));
	t0 = co_now_ns(CLOCK_MONOTONIC);
	/* with a snapshot, a full image's memory is read while the group runs (precopy.c) */
	int precopy = !G.no_precopy && !(flags & (CO_CKPT_NO_PRECOPY | CO_CKPT_STOP | CO_CKPT_KILL));
	G.ck_gen = gen;
	G.ck_parent = parent;
	for (int i = 0; i < G.nc; i++) {
		G.c[i].got = 0;
		G.c[i].part = G.c[i].kind == C_MEMBER;
		G.c[i].answered = G.c[i].kind != C_MEMBER;
		G.c[i].prep_flags = precopy ? CO_PREP_PRECOPY : 0;
		G.c[i].incr_parent = 0;
		G.c[i].prep_ns = 0;
		G.c[i].prepare_ns = 0;
		G.c[i].armed = 0;
	}
	uint64_t t_park = t0;
	int precopied = 0; /* processes whose full image was pre-copied */
	if (!bad) {
		/* every member's manager thread starts, connects (ATTACH) and gets PREPARE */
		for (int i = G.nc - 1; i >= 0; i--)
			if (G.c[i].kind == C_MEMBER && signal_member(&G.c[i]) < 0)
				drop(i); /* gone already */
		if (precopy && !(bad = barrier(CO_M_ARMED, gen, QUIESCE_TIMEOUT_MS, err, sizeof(err)))) {
			precopy_members(tmp, gen);
			t_park = co_now_ns(CLOCK_MONOTONIC); /* the pause starts here */
			if (getenv("COHORT_DEBUG"))
				co_warn("checkpoint %llu: prepared and pre-copied in %.1f ms", (unsigned long long)gen,
					(double)(t_park - t0) / 1e6);
		}
		progress_phase("snapshot", PC_NONE, 0);
		if (!bad)
			bad = barrier(CO_M_QUIESCED, gen, QUIESCE_TIMEOUT_MS, err, sizeof(err));
		/* without a pre-copy each member ran on until it had PREPARE (and prepared, prep_ns below) */
		for (int i = 0; !precopy && i < G.nc; i++)
			if (G.c[i].kind == C_MEMBER && G.c[i].part && G.c[i].prepare_ns &&
			    (t_park == t0 || G.c[i].prepare_ns < t_park))
				t_park = G.c[i].prepare_ns;
	}
	/*
	 * Every process of the group must now be a parked member, or a zombie.
	 * One forked just before its parent parked may still be registering
	 * (in fork, or exec'ing a new program): it joins this checkpoint.
	 */
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int nps = 0;
	uint64_t late_deadline = co_now_ns(CLOCK_MONOTONIC) + 10000000000ULL;
	while (!bad) {
		nps = scan_group(ps, (int)CO_ARRAY_LEN(ps));
		int late = -1;
		for (int i = 0; i < nps && late < 0; i++)
			if (ps[i].ids.state != 'Z' && (ps[i].member < 0 || !G.c[ps[i].member].answered))
				late = i;
		if (late < 0)
			break;
		if (co_now_ns(CLOCK_MONOTONIC) > late_deadline) {
			why_absent(ps[late].host, ps[late].ids.pid, ps[late].member >= 0, err, sizeof(err));
			bad = 1;
			break;
		}
		pump(20, gen);
		bad = barrier_more(CO_M_QUIESCED, gen, QUIESCE_TIMEOUT_MS, err, sizeof(err), 0);
	}
	int live = 0;
	for (int i = 0; i < nps; i++)
		live += ps[i].ids.state != 'Z';
	if (!bad && live == 0) {
		/* its last process ended while we waited (zombies at most are left): there is nothing to restart */
		snprintf(err, sizeof(err), "the group ended during the checkpoint");
		bad = 1;
	}
	/* nothing of the group runs now: its clocks as they stand */
	uint64_t mono = co_now_ns(CLOCK_MONOTONIC) + (uint64_t)G.mono_off;
	uint64_t boot = co_now_ns(CLOCK_BOOTTIME) + (uint64_t)G.boot_off;
	uint64_t t_quiesced = co_now_ns(CLOCK_MONOTONIC), t_release = 0;
	int released = 0;
	if (!bad) {
		/* first what the members share, while nothing of theirs but the agents moves */
		static struct co_shared_member sm[CO_TABLE_SLOTS];
		int nsm = 0;
		for (int i = 0; i < G.nc; i++)
			if (G.c[i].kind == C_MEMBER && G.c[i].part) {
				uint8_t *marks = mark_stdio_files(&G.c[i]);
				sm[nsm++] = (struct co_shared_member){ G.c[i].pid, G.c[i].host_pid, -1, marks };
			}
		char serr[1024];
		/* a pre-copy or a parent leave only what was written since: how much is not known */
		progress_phase("writing images", PC_FILES, precopy || parent ? 0 : members_memory(0));
		int sbad = co_shared_dump(tmp, sm, nsm, G.table, serr, sizeof(serr));
		for (int i = 0; i < G.nc && !bad; i++)
			if (G.c[i].kind == C_MEMBER && G.c[i].part)
				bad = own_namespaces(&G.c[i], err, sizeof(err)) || record_creds(&G.c[i], err, sizeof(err)) ||
				      send_dump(&G.c[i], tmp, flags & CO_CKPT_STOP, err, sizeof(err));
		/* every member has a snapshot (or its whole image): the group may run again */
		if (!bad)
			bad = barrier(CO_M_SNAPSHOT, 0, DUMP_TIMEOUT_MS, err, sizeof(err));
		if (!bad && sbad) {
			snprintf(err, sizeof(err), "%s", serr);
			bad = 1;
		}
		if (!bad && !(flags & CO_CKPT_KILL)) {
			broadcast(CO_M_RELEASE, (int64_t)gen, NULL);
			t_release = co_now_ns(CLOCK_MONOTONIC);
			released = 1;
		}
		if (!bad)
			bad = barrier(CO_M_DONE, 0, DUMP_TIMEOUT_MS, err, sizeof(err));
		uint64_t t_m = co_now_ns(CLOCK_MONOTONIC);
		if (!bad && precopy)
			bad = merge_precopies(tmp, gen, &precopied, err, sizeof(err));
		if (getenv("COHORT_DEBUG") && precopy)
			co_warn("checkpoint %llu: images written %.1f ms after the pause began, merged in %.1f ms",
				(unsigned long long)gen, (double)(t_m - t_park) / 1e6,
				(double)(co_now_ns(CLOCK_MONOTONIC) - t_m) / 1e6);
	}
	if (getenv("COHORT_DEBUG"))
		co_warn("checkpoint %llu: quiesce %.1f ms, dump %.1f ms", (unsigned long long)gen,
			(double)(t_quiesced - t0) / 1e6, (double)(co_now_ns(CLOCK_MONOTONIC) - t_quiesced) / 1e6);
	static struct co_mproc procs[CO_TABLE_SLOTS];
	int n = 0, incremental = 0, compress = G.compress || (flags & CO_CKPT_COMPRESS);
	uint64_t bytes = 0, raw_bytes = 0;
	if (!bad) {
		struct co_manifest m;
		memset(&m, 0, sizeof(m));
		snprintf(m.name, sizeof(m.name), "%s", G.name);
		m.generation = gen;
		m.parent = 0;
		m.kind = CO_GEN_FULL;
		m.created_ns = co_now_ns(CLOCK_REALTIME);
		m.mono_ns = mono;
		m.boot_ns = boot;
		m.sig = (uint32_t)G.sig;
		m.root_pid = G.root_pid;
		snprintf(m.program, sizeof(m.program), "%s", G.program);
		record_terminal(&m, ps, nps);
		/* the tree as the namespace sees it: parents, sessions, groups, zombies */
		for (int i = 0; i < nps; i++) {
			struct co_mproc *mp = &procs[n];
			memset(mp, 0, sizeof(*mp));
			mp->pid = ps[i].ids.pid;
			mp->pgid = ps[i].ids.pgid;
			mp->sid = ps[i].ids.sid;
			mp->ppid = ps[i].ids.host_ppid == G.init_pid ? 1 : 0;
			for (int k = 0; k < nps; k++)
				if (ps[k].host == ps[i].ids.host_ppid)
					mp->ppid = ps[k].ids.pid;
			if (ps[i].ids.state == 'Z') {
				mp->flags = CO_MP_ZOMBIE;
				mp->exit_status = ps[i].ids.exit_code;
			} else {
				/* look it up again: connections dropped since the scan moved others in G.c */
				int ci = member_of(ps[i].host, 1);
				if (ci < 0) {
					snprintf(err, sizeof(err), "pid %d left the group during the checkpoint", mp->pid);
					bad = 1;
					break;
				}
				mp->bytes = G.c[ci].bytes;
				snprintf(mp->image, sizeof(mp->image), "proc-%d.img", G.c[ci].pid);
				const struct co_mproc *ids = &seen_creds[G.c[ci].slot];
				mp->creds = ids->creds;
				mp->ngroups = ids->ngroups;
				memcpy(mp->uid, ids->uid, sizeof(mp->uid));
				memcpy(mp->gid, ids->gid, sizeof(mp->gid));
				memcpy(mp->groups, ids->groups, sizeof(mp->groups));
				mp->caps = ids->caps;
				mp->cap_inh = ids->cap_inh;
				mp->cap_prm = ids->cap_prm;
				mp->cap_eff = ids->cap_eff;
				mp->cap_bnd = ids->cap_bnd;
				mp->cap_amb = ids->cap_amb;
				if (!image_written(tmp, mp, err, sizeof(err))) {
					bad = 1;
					break;
				}
				bytes += G.c[ci].bytes;
				if (parent && G.c[ci].incr_parent == parent) {
					mp->flags |= CO_MP_INCREMENTAL;
					m.kind = CO_GEN_INCREMENTAL;
					m.parent = parent;
					incremental = 1;
				}
			}
			n++;
		}
		m.nprocs = (uint32_t)n;
		raw_bytes = bytes;
		if (!bad && compress) {
			bad = compress_images(tmp, procs, n, err, sizeof(err));
			bytes = 0;
			for (int i = 0; i < n && !bad; i++) {
				char img[PATH_MAX];
				if (procs[i].flags & CO_MP_ZOMBIE)
					continue;
				snprintf(img, sizeof(img), "%s/%s", tmp, procs[i].image);
				procs[i].flags |= CO_MP_COMPRESSED;
				procs[i].bytes = co_img_bytes(img);
				bytes += procs[i].bytes;
			}
		}
		m.bytes = bytes;
		if (!bad && co_write_manifest(tmp, &m, procs, n) < 0) {
			snprintf(err, sizeof(err), "cannot write the manifest in %s: %s", tmp, strerror(errno));
			bad = 1;
		}
	}
	for (int i = 0; i < G.nc; i++)
		G.c[i].deferred = 0;
	if (bad) {
		if (!released)
			broadcast(CO_M_RELEASE, (int64_t)(gen - 1), NULL);
		end_sessions();
		co_remove_tree(tmp);
		reply(cfd, 1, "checkpoint of '%s' failed: %s", G.name, err);
		return;
	}
	int kill_it = flags & CO_CKPT_KILL;
	/* with --kill the group stays parked until it ends: a manager that is hung up on lets it go */
	if (!kill_it)
		end_sessions();
	progress_phase("committing", PC_FILES, 0);
	if (co_commit(tmp, gdir, gen, err, sizeof(err)) < 0) {
		if (kill_it)
			broadcast(CO_M_RELEASE, (int64_t)(gen - 1), NULL);
		end_sessions();
		co_remove_tree(tmp);
		reply(cfd, 1, "checkpoint of '%s' failed: %s", G.name, err);
		return;
	}
	uint64_t t_done = co_now_ns(CLOCK_MONOTONIC);
	if (kill_it) {
		/*
		 * The group ends parked: every process is killed at once, and its
		 * session stays open until it is gone (below).
		 */
		static struct nsproc ps[CO_TABLE_SLOTS * 2];
		int nps = scan_group(ps, (int)CO_ARRAY_LEN(ps));
		for (int i = 0; i < nps; i++)
			kill(ps[i].host, SIGKILL);
		kill(G.init_pid, SIGKILL);
		/*
		 * Init's end takes every process of its namespace with it, and
		 * only once they are all gone does its pidfd say it has ended.
		 * Only then are the members hung up on: a manager whose
		 * connection closes lets its threads go, and a program that ran
		 * on for that instant wrote what its restart writes again (a
		 * line printed twice).
		 */
		struct pollfd gone = { G.init_pidfd, POLLIN, 0 };
		while (poll(&gone, 1, 10000) < 0 && errno == EINTR)
			;
		end_sessions();
		t_release = t_done;
		G.killed_gen = gen;
		co_gen_dir(gdir, gen, G.killed_dir, sizeof(G.killed_dir));
	}
	G.table->generation = gen;
	G.last_committed = gen;
	if (G.argv && strcmp(G.command_dir, gdir) && co_group_command_write(gdir, G.argv) == 0)
		snprintf(G.command_dir, sizeof(G.command_dir), "%s", gdir);
	if (incremental)
		start_merge(gdir);
	if (G.keep)
		co_prune(gdir, G.keep);
	/*
	 * The pause starts when the first process parks: each prepares first
	 * (tracking new memory) while its program still runs, and says how long.
	 */
	int64_t prep = -1;
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].part && (prep < 0 || G.c[i].prep_ns < prep))
			prep = G.c[i].prep_ns;
	uint64_t t_pause = t_park + (prep > 0 && (uint64_t)prep < t_release - t_park ? (uint64_t)prep : 0);
	double pause_ms = (double)(t_release - t_pause) / 1e6, dur_ms = (double)(t_done - t0) / 1e6;
	char prog_pause[32] = "null", phases[512]; /* prog_pause: null for --kill (the group never ran again) */
	if (!kill_it)
		snprintf(prog_pause, sizeof(prog_pause), "%.2f", program_pause_ms(gen, t_pause));
	if (flags & CO_CKPT_JSON)
		reply(cfd, 0,
		      "{\"group\":\"%s\",\"generation\":%llu,\"kind\":\"%s\",\"parent\":%llu,\"processes\":%d,"
		      "\"bytes\":%llu,\"raw_bytes\":%llu,\"compressed\":%s,\"pause_ms\":%.2f,\"program_pause_ms\":%s,"
		      "\"duration_ms\":%.2f,\"phases_ms\":%s,\"precopied\":%d,\"directory\":\"%s/gen-%06llu\","
		      "\"killed\":%s}",
		      G.name, (unsigned long long)gen, incremental ? "incremental" : "full",
		      (unsigned long long)(incremental ? parent : 0), n, (unsigned long long)bytes,
		      (unsigned long long)raw_bytes, compress ? "true" : "false", pause_ms, prog_pause, dur_ms,
		      phases_json(t0, t_done, phases, sizeof(phases)), precopied,
		      gdir, (unsigned long long)gen, kill_it ? "true" : "false");
	else if (compress)
		reply(cfd, 0,
		      "generation %llu of '%s' (%s): %d process%s, %llu bytes compressed from %llu, pause %.1f ms, "
		      "duration %.1f ms%s",
		      (unsigned long long)gen, G.name, incremental ? "incremental" : "full", n, n == 1 ? "" : "es",
		      (unsigned long long)bytes, (unsigned long long)raw_bytes, pause_ms, dur_ms,
		      kill_it ? ", group ended" : "");
	else
		reply(cfd, 0, "generation %llu of '%s' (%s): %d process%s, %llu bytes, pause %.1f ms, duration %.1f ms%s",
		      (unsigned long long)gen, G.name, incremental ? "incremental" : "full", n, n == 1 ? "" : "es",
		      (unsigned long long)bytes, pause_ms, dur_ms, kill_it ? ", group ended" : "");
}

/* ---- status ---- */

static const char *state_name(unsigned s)
{
	static const char *names[] = { "free", "running", "quiescing", "parked", "dumping", "dumped", "restoring" };
	return s < CO_ARRAY_LEN(names) ? names[s] : "unknown";
}

/* A process's command line as one string (arguments joined by spaces), for status. */
static const char *cmdline_of(int host, char *out, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", host);
	long k = co_read_small(path, out, n); /* NUL-terminated, arguments NUL-separated */
	if (k <= 0)
		return "";
	for (long i = 0; i < k - 1; i++)
		if (!out[i])
			out[i] = ' ';
	return out;
}

/* The program's threads (the agent has none of its own while the program runs). */
static long threads_of(int host)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", host);
	return co_read_small(path, buf, sizeof(buf)) > 0 ? co_status_field(buf, "Threads") : -1;
}

#define ADD(...) n += (size_t)snprintf(out + n, n < size ? size - n : 0, __VA_ARGS__)

/* The group in one JSON object; with brief (list --json) one line without its processes. */
static size_t status_json(char *out, size_t size, int brief)
{
	size_t n = 0;
	char name[256], prog[1024], images[PATH_MAX * 2];
	co_json_esc(G.name, name, sizeof(name));
	co_json_esc(G.program, prog, sizeof(prog));
	co_json_esc(G.images, images, sizeof(images));
	ADD("{\"name\":\"%s\",\"state\":\"%s\",\"coordinator_pid\":%d,\"program\":\"%s\",\"images\":\"%s/%s\","
	    "\"generation\":%llu,",
	    name, G.expect ? "restoring" : "running", (int)getpid(), prog, images, name,
	    (unsigned long long)G.table->generation);
	if (brief) {
		ADD("\"processes\":%d}\n", nmembers());
		return n;
	}
	ADD("\"interval\":%g,\"full_every\":%u,\"keep\":%u,\"signal\":%d,\"tracking\":\"%s\",\"merging\":%s,"
	    "\"compress\":%s,\"processes\":[",
	    G.interval, G.full_every, G.keep, G.sig, co_dirty_name(co_dirty_method()), G.merge_pid > 0 ? "true" : "false",
	    G.compress ? "true" : "false");
	int first = 1;
	for (int i = 0; i < G.nc; i++) {
		if (G.c[i].kind != C_MEMBER || G.c[i].stale)
			continue;
		struct co_pentry *e = &G.table->p[G.c[i].slot];
		char cmd[2048], ecmd[4096], eprog[256];
		cmdline_of(e->host_pid, cmd, sizeof(cmd));
		ADD("%s{\"pid\":%d,\"host_pid\":%d,\"ppid\":%d,\"program\":\"%s\",\"command\":\"%s\",\"state\":\"%s\","
		    "\"threads\":%ld,\"generation\":%llu}",
		    first ? "" : ",", e->pid, e->host_pid, e->ppid, co_json_esc(e->program, eprog, sizeof(eprog)),
		    co_json_esc(cmd, ecmd, sizeof(ecmd)), state_name(e->state), threads_of(e->host_pid),
		    (unsigned long long)e->generation);
		first = 0;
	}
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int nps = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < nps; i++) {
		if (ps[i].member >= 0 || ps[i].ids.state == 'Z')
			continue;
		char cmd[2048], ecmd[4096];
		cmdline_of(ps[i].host, cmd, sizeof(cmd));
		ADD("%s{\"pid\":%d,\"host_pid\":%d,\"command\":\"%s\",\"state\":\"no agent\"}", first ? "" : ",",
		    ps[i].ids.pid, ps[i].host, co_json_esc(cmd, ecmd, sizeof(ecmd)));
		first = 0;
	}
	ADD("]}\n");
	return n;
}

/* The group for a person: one line, then one a process with its command line. */
static size_t status_text(char *out, size_t size)
{
	size_t n = 0;
	int members = nmembers();
	ADD("group %s: %s, coordinator pid %d, %d process%s, last generation %llu, images %s/%s, "
	    "dirty-page tracking %s%s\n",
	    G.name, G.expect ? "restoring" : "running", (int)getpid(), members, members == 1 ? "" : "es",
	    (unsigned long long)G.table->generation, G.images, G.name, co_dirty_name(co_dirty_method()),
	    G.merge_pid > 0 ? ", merging" : "");
	for (int i = 0; i < G.nc; i++) {
		if (G.c[i].kind != C_MEMBER || G.c[i].stale)
			continue;
		struct co_pentry *e = &G.table->p[G.c[i].slot];
		char cmd[512];
		long threads = threads_of(e->host_pid);
		ADD("  pid %d: %s, %ld thread%s, host pid %d, last generation %llu: %s\n", e->pid, state_name(e->state),
		    threads, threads == 1 ? "" : "s", e->host_pid, (unsigned long long)e->generation,
		    *cmdline_of(e->host_pid, cmd, sizeof(cmd)) ? cmd : e->program);
	}
	/* processes of the group the agent is not in: they block checkpoints, so say so */
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int nps = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < nps; i++) {
		char cmd[512];
		if (ps[i].member < 0 && ps[i].ids.state != 'Z')
			ADD("  pid %d: without the cohort agent, host pid %d: %s\n", ps[i].ids.pid, ps[i].host,
			    cmdline_of(ps[i].host, cmd, sizeof(cmd)));
	}
	return n;
}
#undef ADD

static void status(int ci, unsigned flags)
{
	static char out[CO_MSG_TEXT];
	forget_agentless();
	if (!nmembers() && G.expect == 0) {
		/* not registered yet: not ready */
		reply(G.c[ci].fd, 1, "group '%s' is starting: no process has registered yet", G.name);
		return;
	}
	if (flags & CO_STATUS_JSON)
		status_json(out, sizeof(out), flags & CO_STATUS_BRIEF);
	else
		status_text(out, sizeof(out));
	co_send(G.c[ci].fd, CO_M_REPLY, 0, 0, 0, out, -1);
}

/*
 * Every process in the group's namespace gets the signal, with the agent
 * or without (a process cohort could not enter is still the group's).
 */
static void kill_group(int ci, int sig, unsigned flags)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int n = 0, nps = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < nps; i++)
		if (kill(ps[i].host, sig) == 0)
			n++;
	char name[256];
	if (flags & CO_KILL_JSON)
		reply(G.c[ci].fd, 0, "{\"name\":\"%s\",\"signal\":%d,\"processes\":%d}",
		      co_json_esc(G.name, name, sizeof(name)), sig, n);
	else
		reply(G.c[ci].fd, 0, "sent signal %d to %d process%s of '%s'", sig, n, n == 1 ? "" : "es", G.name);
}

/* ---- the scheduler thread ---- */

static void *scheduler(void *arg)
{
	(void)arg;
	static struct co_msgbuf mb;
	struct timespec ts = { (time_t)G.interval, (long)((G.interval - (time_t)G.interval) * 1e9) };
	for (;;) {
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		ts = (struct timespec){ (time_t)G.interval, (long)((G.interval - (time_t)G.interval) * 1e9) };
		int fd = co_connect_group(G.name);
		if (fd < 0)
			continue;
		/* --full-every K: the first and every K-th timed checkpoint is full, the others incremental */
		unsigned flags = G.full_every && G.timed++ % G.full_every ? CO_CKPT_INCREMENTAL : 0;
		if (!co_send(fd, CO_M_CKPT_REQ, flags, 0, 0, NULL, -1) && !co_recv(fd, &mb, NULL) && mb.m.a)
			co_warn("interval checkpoint: %s", mb.text);
		close(fd);
	}
	return NULL;
}

/* ---- the loop ---- */

static void forward_signal(void)
{
	struct signalfd_siginfo si;
	while (read(G.sfd, &si, sizeof(si)) == sizeof(si)) {
		/* from the terminal the program got it itself; a kill(1) is meant for the program */
		if ((int)si.ssi_code > 0)
			continue;
		for (int i = 0; i < G.nc; i++)
			if (G.c[i].kind == C_MEMBER && !G.c[i].stale && G.c[i].pid == G.root_pid)
				kill(G.c[i].host_pid, (int)si.ssi_signo);
	}
}

/*
 * How `cohort run` and `cohort restart` end: with the program's status, or
 * with CO_EXIT_CHECKPOINTED and a line saying so when `checkpoint --kill`
 * ended the group (137 alone would read as an out-of-memory kill).
 */
static int outcome(int init_st)
{
	int st = init_st;
	if (read(G.status_fd, &st, sizeof(st)) != sizeof(st))
		st = init_st; /* init died before its root process ended (killed, or it failed) */
	if (restore_broke)
		st = 70 << 8; /* as init ends when the restore of a process of its own fails */
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (G.killed_gen) {
		rc = CO_EXIT_CHECKPOINTED;
		fprintf(stderr, "cohort: group '%s' ended by 'checkpoint --kill' after generation %llu (%s); "
			"resume it with 'cohort restart %s'\n",
			G.name, (unsigned long long)G.killed_gen, G.killed_dir, G.name);
	}
	if (!G.json)
		return rc;
	char name[256], dir[PATH_MAX * 2];
	co_json_esc(G.name, name, sizeof(name));
	printf("{\"name\":\"%s\",\"outcome\":\"%s\",\"exit_status\":%d", name,
	       G.killed_gen ? "checkpointed" : WIFEXITED(st) ? "exited" : "signaled", rc);
	if (!G.killed_gen && WIFSIGNALED(st))
		printf(",\"signal\":%d", WTERMSIG(st));
	if (!G.killed_gen && WIFEXITED(st))
		printf(",\"program_status\":%d", WEXITSTATUS(st));
	if (G.killed_gen)
		printf(",\"generation\":%llu,\"directory\":\"%s\"", (unsigned long long)G.killed_gen,
		       co_json_esc(G.killed_dir, dir, sizeof(dir)));
	if (G.restored_from)
		printf(",\"restored_generation\":%llu", (unsigned long long)G.restored_from);
	printf("}\n");
	fflush(stdout);
	return rc;
}

static int loop(void)
{
	if (G.interval > 0) {
		pthread_t th;
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		pthread_create(&th, NULL, scheduler, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	for (;;) {
		static struct pollfd p[2 * MAX_CONNS + 3];
		int n = 0, nconn;
		p[n++] = (struct pollfd){ G.init_pidfd, POLLIN, 0 };
		p[n++] = (struct pollfd){ G.lfd, POLLIN, 0 };
		p[n++] = (struct pollfd){ G.sfd, POLLIN, 0 };
		/* connections (a member has none while it runs: fd -1, which poll passes over), then members' ends */
		for (int i = 0; i < G.nc; i++)
			p[n++] = (struct pollfd){ G.c[i].fd, POLLIN, 0 };
		nconn = n;
		for (int i = 0; i < G.nc; i++)
			p[n++] = (struct pollfd){ G.c[i].kind == C_MEMBER ? G.c[i].pidfd : -1, POLLIN, 0 };
		if (poll(p, n, restore_progress() || G.expect > 0 || G.merge_pid > 0 || co_park_lingering() ? 100 : -1) <
		    0) {
			if (errno == EINTR)
				continue;
			co_die("poll: %s", strerror(errno));
		}
		if (G.expect > 0 && !restore_broke && restore_failed()) {
			restore_broke = 1; /* what failed has been said: the group ends (outcome) */
			kill(G.init_pid, SIGKILL);
		}
		reap_merge();
		co_park_settle();
		if (p[0].revents) {
			int st;
			while (waitpid(G.init_pid, &st, 0) < 0 && errno == EINTR)
				;
			co_fifos_stop(0); /* a restart that failed: feeders nobody read from */
			co_progress_end(&restore_pr);
			co_tty_take_back();
			finish_merges();
			unlink(G.sock);
			rmdir(G.rundir);
			return outcome(st);
		}
		if (p[1].revents)
			accept_conn();
		if (p[2].revents)
			forward_signal();
		/* members that ended, from the last so that drop() keeps indexes valid */
		for (int k = n - 1; k >= nconn; k--) {
			int i = k - nconn;
			if (p[k].revents && i < G.nc && G.c[i].kind == C_MEMBER && G.c[i].pidfd == p[k].fd)
				drop(i);
		}
		/* connections, likewise */
		for (int k = nconn - 1; k >= 3; k--) {
			if (!p[k].revents)
				continue;
			int i = k - 3;
			if (i >= G.nc || G.c[i].fd != p[k].fd)
				continue;
			/*
			 * A checkpoint run from this loop reads and drops connections
			 * in its barriers: look again before reading, never block.
			 */
			struct pollfd one = { G.c[i].fd, POLLIN, 0 };
			if (poll(&one, 1, 0) <= 0)
				continue;
			if (co_recv(G.c[i].fd, &in, NULL) < 0) {
				drop(i);
				continue;
			}
			if (G.c[i].foreign && in.m.type != CO_M_REGISTER && in.m.type != CO_M_ATTACH &&
			    in.m.type != CO_M_PROCFD) {
				drop(i); /* requests are not taken from another uid (accept_conn) */
				continue;
			}
			switch (in.m.type) {
			case CO_M_REGISTER:
				on_register(i);
				break;
			case CO_M_ATTACH:
				on_attach(i); /* late: no checkpoint is being taken */
				break;
			case CO_M_PROCFD:
				on_procfd(i);
				break;
			case CO_M_CKPT_REQ:
				G.c[i].kind = C_CLIENT;
				checkpoint(i, in.m.flags, in.text);
				break;
			case CO_M_STATUS_REQ:
				G.c[i].kind = C_CLIENT;
				status(i, in.m.flags);
				break;
			case CO_M_KILL_REQ:
				G.c[i].kind = C_CLIENT;
				kill_group(i, (int)in.m.a, in.m.flags);
				break;
			default:
				break;
			}
		}
	}
}

/* ---- run ---- */

/* Refuse what LD_PRELOAD cannot enter: static and setuid/setgid programs. */
static void check_program(const char *prog, char *resolved, size_t n, int depth)
{
	if (strchr(prog, '/')) {
		snprintf(resolved, n, "%s", prog);
	} else {
		const char *path = getenv("PATH") ? getenv("PATH") : "/usr/local/bin:/usr/bin:/bin";
		int found = 0;
		for (const char *p = path; *p && !found;) {
			const char *e = strchr(p, ':');
			size_t len = e ? (size_t)(e - p) : strlen(p);
			snprintf(resolved, n, "%.*s/%s", (int)len, p, prog);
			found = access(resolved, X_OK) == 0;
			p += len + (e ? 1 : 0);
		}
		if (!found)
			co_die("run: %s: command not found", prog);
	}
	struct stat st;
	if (stat(resolved, &st) < 0)
		co_die("run: %s: %s", resolved, strerror(errno));
	if (!S_ISREG(st.st_mode) || access(resolved, X_OK) < 0)
		co_die("run: %s: not an executable file", resolved);
	if (st.st_mode & (S_ISUID | S_ISGID))
		co_die("run: %s is setuid/setgid: the cohort agent cannot be loaded into it", resolved);
	int fd = open(resolved, O_RDONLY | O_CLOEXEC);
	unsigned char hdr[256];
	ssize_t got = fd >= 0 ? read(fd, hdr, sizeof(hdr)) : -1;
	if (got >= 2 && hdr[0] == '#' && hdr[1] == '!' && depth == 0) {
		hdr[got - 1 < 255 ? got : 255] = 0;
		char interp[256];
		if (sscanf((char *)hdr + 2, " %255s", interp) == 1) {
			char sub[PATH_MAX];
			close(fd);
			check_program(interp, sub, sizeof(sub), 1);
			return;
		}
	}
	if (got >= (ssize_t)sizeof(Elf64_Ehdr) && !memcmp(hdr, ELFMAG, SELFMAG)) {
		Elf64_Ehdr *eh = (Elf64_Ehdr *)hdr;
		int interp = 0;
		for (int i = 0; i < eh->e_phnum; i++) {
			Elf64_Phdr ph;
			if (pread(fd, &ph, sizeof(ph), (off_t)(eh->e_phoff + (uint64_t)i * eh->e_phentsize)) != sizeof(ph))
				break;
			interp |= ph.p_type == PT_INTERP;
		}
		if (!interp)
			co_die("run: %s is a static binary: the cohort agent (LD_PRELOAD) cannot be loaded into it",
			       resolved);
	}
	if (fd >= 0)
		close(fd);
}

static char **group_env(const char *agent)
{
	extern char **environ;
	int n = 0;
	while (environ[n])
		n++;
	char **env = calloc((size_t)n + 5, sizeof(char *));
	int k = 0;
	const char *pre = getenv("LD_PRELOAD");
	for (int i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], "COHORT_SOCK=", 12) &&
		    strncmp(environ[i], "COHORT_SIG=", 11))
			env[k++] = environ[i];
	if (asprintf(&env[k++], "LD_PRELOAD=%s%s%s", agent, pre && *pre ? " " : "", pre ? pre : "") < 0 ||
	    asprintf(&env[k++], "COHORT_SOCK=%s", G.sock) < 0 || asprintf(&env[k++], "COHORT_SIG=%d", G.sig) < 0)
		co_die("out of memory");
	env[k] = NULL;
	return env;
}

static void common_setup(struct co_run_opts *o)
{
	G.t_start = co_now_ns(CLOCK_MONOTONIC);
	G.name = o->name;
	/* as the kernel names it in /proc/PID/maps: no "..", no symbolic link */
	char agent[PATH_MAX];
	if (!realpath(co_self_path("libcohort.so", agent, sizeof(agent)), G.agent))
		snprintf(G.agent, sizeof(G.agent), "%s", agent);
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

/*
 * The default name of `cohort run python3 b.py` is that of `cohort run
 * python3 a.py`: continuing the other program's generations would mix two
 * programs under one name.  A name given with --name is the user's choice;
 * --replace starts over.
 */
static void check_images_of(struct co_run_opts *o)
{
	char gdir[PATH_MAX], shown[1024];
	snprintf(gdir, sizeof(gdir), "%s/%s", o->images, o->name);
	int fd = co_connect_group(o->name);
	if (fd >= 0)
		co_die("a group named '%s' is already running", o->name);
	if (o->replace) {
		co_remove_tree(gdir);
		return;
	}
	if (!o->named && co_group_command_differs(gdir, o->argv, shown, sizeof(shown)))
		co_usage("run: %s holds checkpoints of another command line (%s): name this group with --name, "
			 "or start over with --replace",
			 gdir, shown);
}

int co_cmd_run(struct co_run_opts *o)
{
	static struct co_init_cfg cfg;
	record_caller_signals(&cfg);
	char resolved[PATH_MAX];
	check_program(o->argv[0], resolved, sizeof(resolved), 0);
	check_images_of(o);
	G.argv = o->argv;
	static char agent_buf[PATH_MAX];
	const char *agent = co_self_path("libcohort.so", agent_buf, sizeof(agent_buf));
	if (access(agent, R_OK) < 0)
		co_die("agent library %s is missing: run 'make'", agent);
	G.sig = o->sig ? o->sig : DEFAULT_SIG;
	common_setup(o);
	snprintf(G.program, sizeof(G.program), "%s", o->argv[0]);
	G.root_pid = 2; /* init is 1, the program the first process it starts */
	make_timens(0, 0);
	cfg.agent_sig = G.sig;
	cfg.argv = o->argv;
	cfg.envp = group_env(agent);
	cfg.root_pid = G.root_pid;
	start_init(&cfg);
	return loop();
}

/* ---- restart ---- */

static uint64_t restore_total;	/* bytes of the images to read */
static int restore_compressed;	/* they are read by the feeders (zimage.c) */
static uint64_t restore_next_ns;

/* The restore of the processes of the manifest begins: its progress, on a terminal. */
static void restore_progress_begin(const struct co_mproc *procs, int n)
{
	restore_total = 0;
	for (int i = 0; i < n; i++)
		if (!(procs[i].flags & CO_MP_ZOMBIE)) {
			restore_total += procs[i].bytes;
			restore_compressed |= (procs[i].flags & CO_MP_COMPRESSED) != 0;
		}
	co_progress_set(&restore_pr, "restoring", 0, restore_total);
}

/*
 * Bytes of the images read so far.  Each restorer reads its image with
 * read(2), once, front to back, so the `rchar` of its /proc/PID/io is how
 * far it got (the restorers it forks count their own; the few small reads
 * besides, its plan and /proc, do not matter).  But it reads a run of
 * pages straight to its place with one read(2) of up to 1 GiB, and rchar
 * (like the descriptor's position in fdinfo) moves only when that read
 * returns: meanwhile its resident memory (RssAnon), which the read fills
 * page by page, tells how far it got.  A process counts the larger of the
 * two.  Compressed images are read by the coordinator's feeder children
 * instead, the restorers reading decompressed bytes (which the manifest's
 * sizes do not count) from FIFOs: then it is what the feeders have read.
 */
static uint64_t restored_bytes(void)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	if (restore_compressed)
		return co_fifos_bytes();
	uint64_t sum = 0;
	int n = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < n; i++) {
		char path[64], buf[4096];
		uint64_t got = co_proc_io(ps[i].host, "rchar");
		long rss = -1;
		snprintf(path, sizeof(path), "/proc/%d/status", ps[i].host);
		if (co_read_small(path, buf, sizeof(buf)) > 0)
			rss = co_status_field(buf, "RssAnon");
		sum += rss > 0 && (uint64_t)rss * 1024 > got ? (uint64_t)rss * 1024 : got;
	}
	return sum;
}

/*
 * restart: a process of the manifest (not one that was a zombie) ended
 * before it came back: its restorer failed, and said why on our stderr.
 * One whose parent is init ends the restart through init; any other is
 * the child of a restored process, which waits for the release and never
 * reaps it: the restart waited for it for ever.  Its pid, or 0.
 */
static const struct co_mproc *restore_procs;
static int restore_nprocs;

static int restore_failed(void)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int n = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < n; i++) {
		if (ps[i].ids.state != 'Z' || ps[i].member >= 0)
			continue;
		for (int k = 0; k < restore_nprocs; k++)
			if (restore_procs[k].pid == ps[i].ids.pid && !(restore_procs[k].flags & CO_MP_ZOMBIE))
				return ps[i].ids.pid;
	}
	return 0;
}

/* From the loop: while processes are being restored, the line is brought up to date; 1 while it goes on. */
static int restore_progress(void)
{
	if (restore_pr.fd < 0 || G.expect <= 0)
		return 0;
	uint64_t now = co_now_ns(CLOCK_MONOTONIC);
	if (now >= restore_next_ns) {
		restore_next_ns = now + PROGRESS_NS;
		co_progress_set(&restore_pr, "restoring", restored_bytes(), restore_total);
	}
	return 1;
}

int co_cmd_restart(struct co_run_opts *o)
{
	char gdir[PATH_MAX], dir[PATH_MAX], err[1024];
	snprintf(gdir, sizeof(gdir), "%s/%s", o->images, o->name);
	uint64_t gen = o->generation ? o->generation : co_newest_generation(gdir);
	if (!gen)
		co_die("no checkpoint of group '%s' in %s", o->name, o->images);
	co_gen_dir(gdir, gen, dir, sizeof(dir));
	struct stat st;
	if (stat(dir, &st) < 0)
		co_die("group '%s' has no generation %llu in %s", o->name, (unsigned long long)gen, o->images);
	/* an incremental generation comes back from its merged full image, built now if missing */
	co_progress_start(&restore_pr, STDERR_FILENO, "restart '%s'", o->name);
	co_merge_progress = &restore_pr;
	if (co_restore_dir(gdir, gen, dir, sizeof(dir), err, sizeof(err)))
		co_die("generation %llu of '%s': %s", (unsigned long long)gen, o->name, err);
	co_merge_progress = NULL;
	static struct co_manifest m;
	static struct co_mproc procs[CO_TABLE_SLOTS];
	int n;
	if (co_read_manifest(dir, &m, procs, CO_TABLE_SLOTS, &n, err, sizeof(err)) < 0)
		co_die("%s", err);
	if (n < 1)
		co_die("%s/manifest lists no process", dir);
	static char restorer_buf[PATH_MAX];
	const char *restorer = co_self_path("cohort-restore", restorer_buf, sizeof(restorer_buf));
	if (access(restorer, X_OK) < 0)
		co_die("restorer %s is missing: run 'make'", restorer);
	/* init makes the processes whose parent is init (or gone); restorers make the rest */
	static struct co_init_proc ip[CO_TABLE_SLOTS];
	int nroots = 0, nlive = 0;
	for (int i = 0; i < n; i++) {
		if (procs[i].flags & CO_MP_ZOMBIE)
			continue;
		char img[PATH_MAX], stored[PATH_MAX];
		snprintf(img, sizeof(img), "%s/%s", dir, procs[i].image);
		if (co_img_locate(img, stored, sizeof(stored)) < 0 || access(stored, R_OK) < 0)
			co_die("%s: %s", img, strerror(errno));
		nlive++;
		int parent = 0;
		for (int k = 0; k < n; k++)
			parent |= procs[k].pid == procs[i].ppid && !(procs[k].flags & CO_MP_ZOMBIE);
		if (!parent)
			ip[nroots++].pid = procs[i].pid;
	}
	G.sig = (int)m.sig;
	common_setup(o);
	snprintf(G.program, sizeof(G.program), "%s", m.program);
	G.root_pid = m.root_pid ? m.root_pid : procs[0].pid;
	G.expect = nlive;
	restore_procs = procs;
	restore_nprocs = n;
	restore_progress_begin(procs, n);
	G.restored_from = gen;
	G.restored = m;
	G.last_committed = gen; /* the restored state is this generation: incrementals build on it */
	G.table->generation = gen;
	make_timens((int64_t)(m.mono_ns - co_now_ns(CLOCK_MONOTONIC)), (int64_t)(m.boot_ns - co_now_ns(CLOCK_BOOTTIME)));
	static struct co_init_cfg cfg;
	static char fifos[PATH_MAX];
	for (int i = 0; i < n && !cfg.image_dir; i++)
		if (procs[i].flags & CO_MP_COMPRESSED) {
			snprintf(fifos, sizeof(fifos), "%s/images", G.rundir);
			if (co_fifos_start(dir, procs, n, fifos, err, sizeof(err)))
				co_die("%s", err);
			cfg.image_dir = fifos;
		}
	cfg.nprocs = nroots;
	cfg.procs = ip;
	cfg.gen_dir = dir;
	cfg.root_pid = G.root_pid;
	cfg.restorer = restorer;
	cfg.sock = G.sock;
	cfg.generation = gen;
	start_init(&cfg);
	return loop();
}
