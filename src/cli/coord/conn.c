/*
 * coord/conn.c - connections and registration: accept, register, attach, PROCFD,
 * hang-ups, whether a member has the agent, the checkpoint signal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "res.h"
#include "sys.h"
#include "coord.h"

/* A slot of G.c for a new connection on fd, or -1 when all are taken. */
static int new_conn(int fd)
{
	int i = 0;
	while (i < G.nc && G.c[i].kind != C_FREE)
		i++;
	if (i == MAX_CONNS)
		return -1;
	if (i == G.nc)
		G.nc++;
	struct conn *c = &G.c[i];
	memset(c, 0, sizeof(*c));
	c->kind = C_NEW;
	c->fd = fd;
	c->slot = -1;
	c->pidfd = -1;
	c->uffd = -1;
	return i;
}

/* The connection (or member) in slot i is over: its slot is free, no other moves. */
void drop(int i)
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
	free(c->wait_images);
	memset(c, 0, sizeof(*c));
	c->kind = C_FREE;
	c->fd = c->pidfd = c->uffd = -1;
	while (G.nc > 0 && G.c[G.nc - 1].kind == C_FREE)
		G.nc--;
}

/* A member's connection of the checkpoint is over (the member goes on). */
void hang_up(struct conn *c)
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
uint64_t group_ns_ino(void)
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

/* Is host process pid in the group's pid namespace (init's; 0 when that cannot be told)? */
int in_group_ns(int pid)
{
	char p[64];
	struct stat st;
	uint64_t ns = group_ns_ino();
	snprintf(p, sizeof(p), "/proc/%d/ns/pid", pid);
	return pid > 0 && ns && stat(p, &st) == 0 && st.st_ino == ns;
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
	if (pid <= 0 || !group_ns_ino() || getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &l) < 0)
		return 0;
	int in = in_group_ns(pid) && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0;
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
void accept_conn(void)
{
	for (;;) {
		int fd = accept4(G.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct ucred cr;
		socklen_t l = sizeof(cr);
		int i = -1;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 ||
		    (cr.uid != geteuid() && !peer_in_group(fd, cr.pid)) || (i = new_conn(fd)) < 0) {
			close(fd);
			continue;
		}
		struct conn *c = &G.c[i];
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
void on_procfd(int i)
{
	struct conn *c = &G.c[i];
	int e = EPERM, f = -1, pidfd = -1;
	socklen_t l = sizeof(pidfd);
	if (!strcmp(in.text, "pagemap") && peer_in_group(c->fd, c->host_pid) &&
	    getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &l) == 0) {
		struct co_capdata have[2], less[2];
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/pagemap", c->host_pid);
		if (co_capget(have) == 0) {
			memcpy(less, have, sizeof(less));
			less[CO_CAP_WORD(CAP_SYS_ADMIN)].effective &= ~CO_CAP_MASK(CAP_SYS_ADMIN);
			/* capset on ourselves is this thread's alone: the scheduler thread never opens files */
			if (co_capset(less) == 0) {
				f = open(path, O_RDONLY | O_CLOEXEC);
				e = f < 0 ? errno : 0;
				co_capset(have);
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
	if (co_tty_give(&G.restored, hosts, pgids, n) < 0) {
		if (G.restored.tty_pgid == CO_TTY_CALLERS)
			co_warn("restart: cannot give the terminal its settings back: %s", strerror(errno));
		else
			co_warn("restart: cannot give the terminal to process group %d: %s", G.restored.tty_pgid,
				strerror(errno));
	}
}

/*
 * REGISTER on connection i: a process of the group, new or restored (or
 * one that exec'd), becomes the member in slot i.  0, or -1 when it could
 * not (slot i is dropped).
 */
int on_register(int i)
{
	/* a member registering again has exec'd: the program it was is gone */
	for (int k = 0; k < G.nc; k++)
		if (k != i && G.c[k].kind == C_MEMBER && !G.c[k].stale && G.c[k].host_pid == G.c[i].host_pid) {
			/* one whose image is being made (released, it exec'd) stays until the checkpoint is over */
			if (G.ck_gen && G.c[k].part && (G.c[k].got & (1u << CO_M_QUIESCED))) {
				G.c[k].stale = 1;
				break;
			}
			drop(k);
			break;
		}
	struct conn *c = &G.c[i];
	int slot = free_slot();
	c->pidfd = slot < 0 ? -1 : (int)syscall(SYS_pidfd_open, c->host_pid, 0);
	if (c->pidfd < 0) {
		drop(i);
		return -1;
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
		return -1;
	}
	/* it keeps no connection while it runs; a restored one waits on it for the release */
	if (!c->restored)
		hang_up(c);
	if (c->restored)
		co_trace("restore: pid %d is back", c->pid);
	if (c->restored && G.expect > 0 && --G.expect == 0) {
		if (getenv("COHORT_DEBUG"))
			co_warn("restart: every process back after %.1f ms",
				(double)(co_now_ns(CLOCK_MONOTONIC) - G.t_start) / 1e6);
		/* every restorer has read its image: the FIFOs and their feeders go */
		co_fifos_stop(1);
		co_progress_end(&restore_pr); /* the group's output must not meet a progress line */
		restore_released();
		/* a migration's target: the group runs here only once its source has ended it (receive.c) */
		if (G.on_ready && G.on_ready() < 0) {
			restore_abandon();
			return 0;
		}
		give_terminal();
		/* every process is back: let the whole group go at once */
		for (int k = 0; k < G.nc; k++)
			if (G.c[k].kind == C_MEMBER && G.c[k].restored) {
				co_send(G.c[k].fd, CO_M_RELEASE, 0, (int64_t)G.restored_from, 0, NULL, -1);
				hang_up(&G.c[k]);
				G.c[k].restored = 0;
			}
		if (G.on_running)
			G.on_running();
		lazy_release();
	}
	return 0;
}

/*
 * Whether process host still has the agent: a member that exec'd a program
 * the agent cannot enter (static, setuid, LD_PRELOAD removed) has no
 * connection that would tell us, and the checkpoint signal's default
 * action would end it.  Its memory map says: the agent library is mapped
 * (by its path, or by its file: a program exec'd in a chroot maps it
 * through a bind mount there, under another path).
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
		found = !strcmp(e.path, G.agent) || (G.agent_ino && e.ino == G.agent_ino && e.dev == G.agent_dev);
	co_maps_close(&m);
	return found;
}

/* Members whose process no longer has the agent are members no more (status, settle). */
void forget_agentless(void)
{
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && !G.c[i].restored && !G.c[i].stale && !has_agent(G.c[i].host_pid))
			drop(i);
}

/*
 * Start member c's part in the checkpoint: its agent starts its manager
 * thread on the checkpoint signal, queued with the table's cookie, which
 * connects (ATTACH).  0 sent, -1 it is gone, -2 it has no agent now (not
 * sent).
 */
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
	char state = co_status_state(buf);
	return state && state != 'Z' && !(co_status_hex(buf, "SigBlk") & (1ULL << (G.sig - 1)));
}

int signal_member(struct conn *c)
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

int in_chroot(int host)
{
	char root[8];
	return co_root_differs(host, G.init_pid, root, sizeof(root));
}

/*
 * Connection i said ATTACH: the manager thread of a member taking part in
 * the checkpoint.  It becomes the member's connection and gets PREPARE,
 * with the member's userfaultfd when we keep one.  Anyone else (a member
 * whose checkpoint is over, or already attached) is hung up on.
 */
void on_attach(int i)
{
	int fd = G.c[i].fd, m = member_of(G.c[i].host_pid);
	if (m < 0 || !G.ck_gen || !G.c[m].part || G.c[m].answered || G.c[m].fd >= 0) {
		drop(i);
		return;
	}
	int foreign = G.c[i].foreign;
	G.c[i].fd = -1; /* the connection is the member's now, not one of its own */
	drop(i);
	struct conn *c = &G.c[m];
	c->fd = fd;
	c->foreign = foreign; /* its uid now: a member may have changed it since it registered */
	/* a chrooted member's manager leaves its root for the group's (agent/root.c) */
	unsigned rootf = in_chroot(c->host_pid) ? CO_PREP_ROOT : 0;
	if (c->quiesce) {
		/* armed and pre-copied: park now (its tracking's userfaultfd back with it) */
		unsigned flags = ((unsigned)c->quiesce - 1) | rootf;
		c->quiesce = 0;
		if (co_send(fd, CO_M_QUIESCE, flags, 0, 0, NULL, c->uffd) < 0)
			hang_up(c);
		return;
	}
	c->prepare_ns = co_now_ns(CLOCK_MONOTONIC);
	if (co_send(fd, CO_M_PREPARE, c->prep_flags | rootf, (int64_t)G.ck_gen, (int64_t)G.ck_parent, NULL, c->uffd) < 0)
		hang_up(c);
}

/* A userfaultfd a member's manager handed over (ARMED, QUIESCED): kept until its next PREPARE. */
void keep_uffd(struct conn *c, int fd)
{
	if (fd < 0)
		return;
	if (c->uffd >= 0)
		close(c->uffd);
	c->uffd = fd;
}

void reply(int fd, int err, const char *fmt, ...)
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

int nmembers(void)
{
	int n = 0;
	for (int i = 0; i < G.nc; i++)
		n += G.c[i].kind == C_MEMBER && !G.c[i].stale;
	return n;
}

/*
 * The member of process host: its current program's (one that exec'd
 * after the release of a checkpoint has registered again in another slot,
 * and the stale one stays for that checkpoint's manifest).
 */
int member_of(int host)
{
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].host_pid == host && !G.c[i].stale)
			return i;
	return -1;
}
