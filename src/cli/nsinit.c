/*
 * nsinit.c - pid 1 of the group's PID namespace.
 *
 * It mounts a /proc of the new namespace, starts the program (run) or the
 * restorer for each process of the image with its recorded pid (restart),
 * reaps every process that ends in the namespace, and exits with the
 * status of the group's root process: its exit code, or 128+N when a
 * signal N ended it.  Being pid 1, it ignores signals it has no handler
 * for, so only the program sees the terminal's ^C.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "boost.h"
#include "cli.h"
#include "helper.h"
#include "report.h"
#include "sys.h"

/*
 * Our own devpts over /dev/pts, and /dev/ptmx its ptmx: the ptys the group
 * opens are numbered in it alone, so that a restart, in a new one, can have
 * the same indexes again (src/kinds/pty.c).  The terminal the group was
 * started on is the caller's, reached through fd 0-2, never by its path.
 * gid 5 (tty), as usual, where it exists (not in a user namespace of our
 * own).  Without devpts the group's ptys are the host's, and a restart
 * that cannot have their indexes says so.
 */
static void setup_devpts(void)
{
	const unsigned long fl = MS_NOSUID | MS_NOEXEC;
	if (mount("devpts", "/dev/pts", "devpts", fl, "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0 &&
	    mount("devpts", "/dev/pts", "devpts", fl, "newinstance,ptmxmode=0666,mode=0620") < 0)
		return;
	mount("/dev/pts/ptmx", "/dev/ptmx", NULL, MS_BIND, NULL);
}

/* Our own /proc, showing our own pids, and devpts; mounts stay private to the group.  0 or -1 (errno). */
static int setup_proc(void)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -1;
	setup_devpts();
	return 0;
}

/*
 * Without privileges the group lives in the coordinator's user namespace,
 * where init holds every capability, but an exec by a non-root uid drops
 * them.  The restorer needs one, CAP_CHECKPOINT_RESTORE, to give threads
 * and child processes their recorded ids (clone3 set_tid): it is kept
 * across the exec as an ambient capability, and every restored thread
 * drops it before it returns into the program (threads.c).
 */
static void keep_restore_cap(void)
{
	if (geteuid() == 0)
		return;
	struct co_capdata d[2];
	if (co_capget(d) < 0)
		return;
	const int cap = 40; /* CAP_CHECKPOINT_RESTORE */
	d[CO_CAP_WORD(cap)].inheritable |= CO_CAP_MASK(cap);
	long r = co_capset(d);
	if (r < 0)
		errno = (int)-r;
	if (r < 0 || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
		co_warn("restart: cannot keep CAP_CHECKPOINT_RESTORE for the restorer: %s", strerror(errno));
}

/*
 * Just before the program's exec: the signal state `cohort run` was given
 * (coord/setup.c), as the program would have it without cohort.  What the caller
 * ignored stays ignored (nohup, trap '' HUP, a background job's SIGINT),
 * everything else is default (the coordinator ignores SIGPIPE, and init
 * inherits that), and the mask is the caller's.  The checkpoint signal is
 * the agent's to set up, never blocked.  Raw calls: glibc refuses 32 and 33.
 */
static void give_caller_signals(const struct co_init_cfg *c)
{
	for (int s = 1; s <= 64; s++) {
		if (s == SIGKILL || s == SIGSTOP || s == c->agent_sig)
			continue;
		struct co_ksigaction ka = { 0 };
		ka.handler = (c->sig_ignored >> (s - 1)) & 1 ? (void *)SIG_IGN : (void *)SIG_DFL;
		co_sigaction(s, &ka, NULL);
	}
	uint64_t mask = c->sig_blocked;
	if (c->agent_sig > 0)
		mask &= ~(1ULL << (c->agent_sig - 1));
	co_sigprocmask(SIG_SETMASK, &mask, NULL);
}

/*
 * A restart that init cannot carry on: the reason goes to the coordinator
 * on the report pipe, which prints it as the restart's one line (on our
 * stderr when the pipe will not take it), and init ends, and the group with it.
 */
static __attribute__((noreturn, format(printf, 3, 4))) void init_fail(const struct co_init_cfg *c, unsigned st,
								      const char *fmt, ...)
{
	struct {
		struct co_rpt h;
		char text[1024];
	} r;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(r.text, sizeof(r.text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n >= (int)sizeof(r.text))
		n = sizeof(r.text) - 1;
	r.h = (struct co_rpt){ CO_RPT_FAILED, (uint16_t)st, 1, (uint32_t)n, co_now_ns(CLOCK_REALTIME) };
	ssize_t want = (ssize_t)(sizeof(r.h) + (size_t)n);
	if (c->report_fd < 0 || write(c->report_fd, &r, (size_t)want) != want)
		fprintf(stderr, "cohort: restore failed: %s\n", r.text);
	_exit(70);
}

/* Init's own stage of a restart: said to the coordinator; COHORT_FAULT may strike there. */
static void init_reached(const struct co_init_cfg *c, unsigned st)
{
	struct co_rpt h = { CO_RPT_STAGE, (uint16_t)st, 1, 0, co_now_ns(CLOCK_REALTIME) };
	/* when the pipe will not take it, only the coordinator's watch is less precise */
	if (c->report_fd >= 0 && write(c->report_fd, &h, sizeof(h)) < 0)
		errno = 0;
	struct co_fault f;
	if (co_fault_parse(c->fault, &f) || f.mode == CO_FAULT_NONE || f.stage != st || (f.pid && f.pid != 1))
		return;
	if (f.mode == CO_FAULT_FAIL)
		init_fail(c, st, "init, %s: failure injected (COHORT_FAULT)", co_rstage_text(st));
	for (;;)
		pause(); /* hang (or hold): until the coordinator gives up (or is killed) and kills us */
}

/* What the child needs between its clone and its exec of the restorer (spawn_restorer). */
struct spawn {
	const struct co_init_cfg *c;
	char **args, **env;
};

static void exec_restorer(void *arg)
{
	const struct spawn *s = arg;
	keep_restore_cap();
	execve(s->c->restorer, s->args, s->env);
	init_fail(s->c, CO_RS_START, "pid %d, %s: cannot start %s: %s", (int)getpid(), co_rstage_text(CO_RS_START),
		  s->c->restorer, strerror(errno));
}

/*
 * The restorer of process pid, with that pid (clone3 set_tid), its -errno
 * else.  Its process shares init's memory until it execs (CLONE_VM |
 * CLONE_VFORK, on a stack of its own; init waits meanwhile), as
 * posix_spawn does: init is a copy of the coordinator, which at a
 * migration's target holds the page index built ahead (tens of MB), and a
 * fork copied its page tables for each process restored, which the exec
 * then tore down again.  Between the clone and the exec the child only
 * makes system calls on its own stack (and, failing, says why and exits).
 */
static long spawn_restorer(int pid, struct spawn *s)
{
	static char stack[65536] __attribute__((aligned(16)));
	struct clone_args ca;
	memset(&ca, 0, sizeof(ca));
	pid_t want = pid;
	ca.flags = CLONE_VM | CLONE_VFORK;
	ca.exit_signal = SIGCHLD;
	ca.stack = (uint64_t)(uintptr_t)stack;
	ca.stack_size = sizeof(stack);
	ca.set_tid = (uint64_t)(uintptr_t)&want;
	ca.set_tid_size = 1;
	/* a helper thread of a process restored meanwhile may hold the pid for a moment */
	return co_clone3_set_tid(&ca, exec_restorer, s);
}

/*
 * Init, and with it every process of the namespace, dies with the
 * coordinator, always.  A group is only reachable through its coordinator
 * (checkpoint, status, list, kill): one that outlived it would run on
 * unseen, could never be checkpointed again, and a later `cohort restart`
 * would start a second copy writing the same files.  During a restart it
 * also takes the restorers (one may wait for ever in the open of a FIFO
 * whose feeder died with the coordinator).  (A coordinator that survives
 * its client, `run --detach`, is not built.)
 */
static void die_with_coordinator(const struct co_init_cfg *c)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* gone already? the status pipe then has no reader left */
	struct pollfd p = { c->status_fd, POLLOUT, 0 };
	if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
		_exit(70);
}

/* Close every descriptor from 3 up but the n of keep (ascending, -1 ignored). */
static void close_all_but(const int *keep, int n)
{
	unsigned from = 3;
	for (int i = 0; i < n; i++) {
		if (keep[i] < (int)from)
			continue;
		if ((unsigned)keep[i] > from)
			syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0);
		from = (unsigned)keep[i] + 1;
	}
	syscall(SYS_close_range, from, ~0U, 0);
}

/* The namespace set up: our /proc, our name, no descriptor of the caller's kept across an exec, every signal let in. */
static void init_setup(struct co_init_cfg *c)
{
	if (setup_proc() < 0) {
		if (!c->argv) /* a restart's one line comes through the coordinator */
			init_fail(c, CO_RS_START, "init: cannot mount /proc for the group: %s", strerror(errno));
		co_warn("cannot mount /proc for the group: %s", strerror(errno));
		_exit(70);
	}
	prctl(PR_SET_NAME, "cohort-init");
	/* the group gets stdin, stdout and stderr, nothing else of its caller's */
	syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	die_with_coordinator(c);
}

/*
 * What init started ahead of a migration's stop (co_init_ahead) is told
 * when the stop has come: the restart's part of struct co_init_cfg, its
 * strings and list held here (one message of a SOCK_SEQPACKET pair), and
 * the group's time namespace (SCM_RIGHTS).
 */
struct co_init_orders {
	uint64_t generation;
	int nprocs, root_pid, lazy, has_image_dir, has_fault, boost;
	char restorer[PATH_MAX], sock[PATH_MAX], gen_dir[PATH_MAX], image_dir[PATH_MAX], fault[256];
	struct co_init_proc procs[CO_TABLE_SLOTS];
};

static int copy_str(char *to, size_t n, const char *from)
{
	return from && (size_t)snprintf(to, n, "%s", from) >= n ? -1 : 0;
}

int co_init_send_orders(int sock, const struct co_init_cfg *c, int timens_fd)
{
	static struct co_init_orders o;
	memset(&o, 0, sizeof(o));
	if (c->nprocs > CO_TABLE_SLOTS || copy_str(o.restorer, sizeof(o.restorer), c->restorer) ||
	    copy_str(o.sock, sizeof(o.sock), c->sock) || copy_str(o.gen_dir, sizeof(o.gen_dir), c->gen_dir) ||
	    copy_str(o.image_dir, sizeof(o.image_dir), c->image_dir) || copy_str(o.fault, sizeof(o.fault), c->fault))
		return errno = ENAMETOOLONG, -1;
	o.generation = c->generation;
	o.nprocs = c->nprocs;
	o.root_pid = c->root_pid;
	o.lazy = c->lazy;
	o.boost = co_boosted(); /* the target's coordinator (receive) in a migration's small stop */
	o.has_image_dir = c->image_dir != NULL;
	o.has_fault = c->fault != NULL;
	memcpy(o.procs, c->procs, sizeof(o.procs[0]) * (size_t)c->nprocs);
	struct msghdr mh;
	struct iovec iov;
	char cbuf[CO_FRAME_CBUF];
	co_frame(&mh, &iov, &o, sizeof(o), cbuf, &timens_fd, timens_fd >= 0);
	ssize_t r;
	while ((r = sendmsg(sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return r == (ssize_t)sizeof(o) ? 0 : -1;
}

static void no_fd(int fd)
{
	close(fd);
}

/* The orders into c, the group's time namespace entered: returns once the restart may begin. */
static void await_orders(struct co_init_cfg *c, int sock)
{
	static struct co_init_orders o;
	struct msghdr mh;
	struct iovec iov;
	char cbuf[CO_FRAME_CBUF];
	co_frame(&mh, &iov, &o, sizeof(o), cbuf, NULL, 0);
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	ssize_t r;
	while ((r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	int tfd;
	co_unframe_fds(&mh, &tfd, 1, no_fd);
	if (r != (ssize_t)sizeof(o) || (mh.msg_flags & MSG_TRUNC) || o.nprocs < 0 || o.nprocs > CO_TABLE_SLOTS)
		_exit(70); /* the coordinator gave up, or is gone: no restart */
	close(sock);
	c->generation = o.generation;
	c->nprocs = o.nprocs;
	c->procs = o.procs;
	c->root_pid = o.root_pid;
	c->lazy = o.lazy;
	if (o.boost) /* a migration's small stop: until the restorers are made (init_restore) */
		co_boost();
	c->restorer = o.restorer;
	c->sock = o.sock;
	c->gen_dir = o.gen_dir;
	c->image_dir = o.has_image_dir ? o.image_dir : NULL;
	c->fault = o.has_fault ? o.fault : NULL;
	/* its offsets written by the coordinator: the restorers, our children, are born in it */
	if (tfd >= 0 && setns(tfd, CLONE_NEWTIME) < 0)
		init_fail(c, CO_RS_START, "init: cannot enter the group's time namespace: %s", strerror(errno));
	if (tfd >= 0)
		close(tfd);
}

/* Each process of the image made again with its pid, and the group's shared objects with them; the root's pid. */
static pid_t init_restore(struct co_init_cfg *c)
{
	pid_t root = -1;
	char err[1024];
	int plan_fd;
	/* the coordinator watches the restore from here on: it must not wait for it (restore.c) */
	close(c->ready_fd);
	c->ready_fd = -1;
	init_reached(c, CO_RS_SHARED);
	if (co_shared_restore(c->gen_dir, &plan_fd, err, sizeof(err)) < 0)
		init_fail(c, CO_RS_SHARED, "init, %s: %s", co_rstage_text(CO_RS_SHARED),
			  err[0] ? err : "failed without a reason (a bug in cohort: please report it)");
	char planarg[16], reportarg[32], faultarg[128], gen[32];
	snprintf(planarg, sizeof(planarg), "%d", plan_fd);
	snprintf(reportarg, sizeof(reportarg), "COHORT_REPORT=%d", c->report_fd);
	snprintf(faultarg, sizeof(faultarg), "COHORT_FAULT=%s", c->fault ? c->fault : "");
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)c->generation);
	/* compressed images: the restorer opens FIFOs in image_dir (NULL: no such argument) */
	char *args[] = { (char *)"cohort-restore", (char *)c->gen_dir, (char *)c->sock, gen, planarg,
			 (char *)c->image_dir, NULL };
	/* the report pipe (report.h) stays open across the exec: the restorer keeps it (init never execs) */
	char *env[5] = { 0 }, **e = env;
	if (c->report_fd >= 0 && fcntl(c->report_fd, F_SETFD, 0) == 0)
		*e++ = reportarg;
	if (c->fault)
		*e++ = faultarg;
	/*
	 * restart --lazy: src/restore/lazy.c (2: post-copy, lazy or fail; 3:
	 * tests, COHORT_LAZY_NONE, no region lazy: every page from the chain
	 * then comes from a filler without ranges, before the program runs)
	 */
	if (c->lazy == 2)
		*e++ = (char *)"COHORT_LAZY=2";
	else if (c->lazy)
		*e++ = (char *)(getenv("COHORT_LAZY_NONE") ? "COHORT_LAZY=3" : "COHORT_LAZY=1");
	if (co_boosted())
		*e++ = (char *)"COHORT_BOOST=1"; /* not inherited (SCHED_RESET_ON_FORK): each restorer boosts itself */
	struct spawn sp = { c, args, env };
	/* init makes the processes whose parent is gone or is init; each restorer makes its children */
	for (int i = 0; i < c->nprocs; i++) {
		long p = spawn_restorer(c->procs[i].pid, &sp);
		if (p < 0)
			init_fail(c, CO_RS_START, "init: cannot create pid %d: %s", c->procs[i].pid, strerror((int)-p));
		if (c->procs[i].pid == c->root_pid)
			root = (pid_t)p;
	}
	/* the shared objects now belong to the processes: init keeps none (a pipe's reader must see EOF) */
	close_all_but(&c->status_fd, 1);
	co_unboost(); /* init's part is done: from here on it reaps */
	return root;
}

/* Reap every process of the namespace; the root's end is the group's. */
static __attribute__((noreturn)) void init_reap(struct co_init_cfg *c, pid_t root)
{
	if (root < 0) {
		co_warn("cannot start the group: %s", strerror(errno));
		_exit(70);
	}
	if (c->ready_fd >= 0)
		close(c->ready_fd);
	for (;;) {
		int st;
		pid_t p = wait(&st);
		if (p < 0) {
			if (errno == EINTR)
				continue;
			_exit(70);
		}
		if (p == root) {
			/* the whole status for the coordinator: an exit code cannot tell exit(130) from SIGINT */
			while (write(c->status_fd, &st, sizeof(st)) < 0 && errno == EINTR)
				;
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		}
	}
}

int co_init_main(struct co_init_cfg *c)
{
	init_setup(c);
	if (!c->argv)
		init_reap(c, init_restore(c));
	pid_t root = fork();
	if (root == 0) {
		give_caller_signals(c);
		execvpe(c->argv[0], c->argv, c->envp);
		fprintf(stderr, "cohort: cannot start %s: %s\n", c->argv[0], strerror(errno));
		_exit(127);
	}
	init_reap(c, root);
}

int co_init_ahead(struct co_init_cfg *c, int orders)
{
	/* the target's descriptors (its connection to the source above all) are not ours to hold */
	int keep[4] = { c->ready_fd, c->status_fd, c->report_fd, orders };
	for (int i = 1; i < 4; i++) /* ascending, for close_all_but */
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	close_all_but(keep, 4);
	init_setup(c);
	await_orders(c, orders);
	init_reap(c, init_restore(c));
}
