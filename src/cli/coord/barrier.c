/*
 * coord/barrier.c - the group's processes as the kernel sees them, and the barriers
 * of a checkpoint (pump, settle, barrier).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "res.h"
#include "coord.h"

/* The member whose process has pid nspid in the group, alive or a zombie (its pidfd says so), or -1. */
static int member_by_nspid(int nspid)
{
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].pid == nspid && G.c[i].pidfd >= 0)
			return syscall(SYS_pidfd_send_signal, G.c[i].pidfd, 0, NULL, 0) == 0 ? i : -1;
	return -1;
}

/*
 * scan_group through the group's own /proc (nsinit mounts one for its pid
 * namespace), which lists its processes only, where /proc lists every
 * process of the machine, each then asked for its pid namespace: a few
 * hundred stats here, ~1.5 ms of a migration's stop (ckpt_await_late,
 * with the group parked).  Every process it lists must be a member (whose
 * host pid the coordinator knows) or a snapshot's writer; any other, or a
 * /proc whose pid 1 is not in the group's namespace (the program may have
 * mounted another over it), and it answers -1: the caller scans /proc.
 */
static int scan_group_own(struct nsproc *out, int max)
{
	static int pids[CO_TABLE_SLOTS * 2 + 8];
	char p[64];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/%d/root/proc", G.init_pid);
	int dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	int np = fstatat(dfd, "1/ns/pid", &st, 0) == 0 && st.st_ino == group_ns_ino()
			 ? co_dir_numbers(dfd, pids, (int)CO_ARRAY_LEN(pids))
			 : -1;
	int n = 0;
	for (int k = 0; k < np && n >= 0; k++) {
		if (pids[k] == 1)
			continue;
		int i = member_by_nspid(pids[k]);
		if (i < 0) {
			/* a snapshot's writer (no member) is no part of the group; anything else: the scan decides */
			char comm[32] = "";
			snprintf(p, sizeof(p), "/proc/%d/root/proc/%d/comm", G.init_pid, pids[k]);
			n = co_read_small(p, comm, sizeof(comm)) > 0 && !strcmp(comm, "cohort-dump\n") ? n : -1;
			continue;
		}
		if (n == max || co_ns_ids(G.c[i].host_pid, &out[n].ids) < 0 || out[n].ids.pid != pids[k]) {
			n = -1;
			continue;
		}
		out[n].host = G.c[i].host_pid;
		out[n++].member = i;
	}
	close(dfd);
	return np < 0 ? -1 : n;
}

/* Every process in the group's pid namespace but init. */
int scan_group(struct nsproc *out, int max)
{
	if (!group_ns_ino())
		return -1;
	int own = scan_group_own(out, max);
	if (own >= 0)
		return own;
	DIR *d = opendir("/proc");
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d)) && n < max;) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		int host = atoi(e->d_name);
		if (host == G.init_pid)
			continue;
		if (!in_group_ns(host))
			continue;
		out[n].host = host;
		if (co_ns_ids(host, &out[n].ids) < 0)
			continue;
		/* an agent's snapshot child still finishing an image is not part of the group */
		if (!strcmp(comm_of(host), "cohort-dump"))
			continue;
		out[n].member = member_of(host);
		n++;
	}
	if (d)
		closedir(d);
	return n;
}

const char *comm_of(int host)
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
void why_absent(int host, int pid, int registered, char *err, size_t errlen)
{
	char comm[64];
	snprintf(comm, sizeof(comm), "%s", comm_of(host));
	long tracer;
	char st = co_proc_state(host, &tracer);
	if (!st)
		snprintf(err, errlen, "pid %d (%s) ended while the group was being checkpointed", pid, comm);
	else if (tracer == getpid()) /* ours: a thread seized to unblock the signal that has not stopped (park.c) */
		snprintf(err, errlen,
			 "pid %d (%s) blocks the checkpoint signal in a thread that did not stop for cohort to unblock it "
			 "(an uninterruptible wait?)", pid, comm);
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

/*
 * The first of the n members idx[] that is stopped or traced, or -1.
 * Traced by us is not held up: a thread seized to unblock the checkpoint
 * signal that has not stopped yet (park.c, lingering) may still park.
 */
static int held_up(const int *idx, int n)
{
	for (int k = 0; k < n; k++) {
		long tracer;
		char st = co_proc_state(G.c[idx[k]].host_pid, &tracer);
		if (tracer == getpid())
			continue;
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
	if (!st || st == 'Z' || st == 'X') {
		snprintf(err, errlen, "pid %d exited during the checkpoint (%s)", c->pid, when);
		G.member_exited = 1;
	}
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
/*
 * What pump() takes in, for poll: the listening socket, then each new
 * connection not set aside (idx: -1, then their connections); the count.
 */
static int intake_fds(struct pollfd *p, int *idx)
{
	int n = 0;
	p[n] = (struct pollfd){ G.lfd, POLLIN, 0 };
	idx[n++] = -1;
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_NEW && !G.c[i].deferred) {
			p[n] = (struct pollfd){ G.c[i].fd, POLLIN, 0 };
			idx[n++] = i;
		}
	return n;
}

void pump(int timeout_ms, uint64_t gen)
{
	pump_or(timeout_ms, gen, -1);
}

/*
 * pump(), also watching fd (-1: none): 1 once fd is readable (or hung
 * up), else 0.  A migration's hold waits so for its client, answering
 * status meanwhile (G.holding).
 */
int pump_or(int timeout_ms, uint64_t gen, int fd)
{
	struct pollfd p[MAX_CONNS + 2];
	int idx[MAX_CONNS + 2];
	int n = intake_fds(p, idx);
	progress_tick();
	co_park_settle();
	p[n] = (struct pollfd){ fd, POLLIN, 0 }; /* polled last, passed over when -1 */
	int r;
	while ((r = poll(p, (nfds_t)n + 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (r <= 0)
		return 0;
	if (p[0].revents)
		accept_conn();
	for (int k = 1; k < n; k++) {
		if (!p[k].revents)
			continue;
		int i = idx[k];
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
		if (peek.type == CO_M_STATUS_REQ && G.holding[0]) { /* a migration's hold may last: say so */
			co_recv(G.c[i].fd, &in, NULL);
			G.c[i].kind = C_CLIENT;
			status(i, in.m.flags);
			continue;
		}
		if (peek.type != CO_M_REGISTER) {
			G.c[i].deferred = 1;
			continue;
		}
		co_recv(G.c[i].fd, &in, NULL);
		if (on_register(i) < 0)
			continue;
		struct conn *m = &G.c[i];
		/* born after the group parked (gen == 0): no part of this checkpoint */
		m->part = gen != 0;
		m->answered = gen == 0;
		m->prep_flags = 0; /* no pre-copy: it parks at once */
		/*
		 * Gone already: no part of this checkpoint.  Without the agent at
		 * this moment (exec'ing): the barrier waits for the program it
		 * becomes to register and signals it again, or says it has none.
		 */
		if (gen && signal_member(m) == -1) {
			m->part = 0;
			m->answered = 1;
		}
	}
	return fd >= 0 && p[n].revents;
}

/*
 * Wait until every process of the group has registered: a process just
 * forked or exec'ing registers within moments.  Zombies need not.
 */
int settle(char *err, size_t errlen)
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

/* COHORT_TRACE: the steps member pid timed ("STEP=NS ...", CLOCK_REALTIME: CO_CKPT_TRACE), one line each. */
static void trace_stamps(int pid, const char *text)
{
	for (const char *p = text; *p;) {
		const char *eq = strchr(p, '='), *sp;
		if (!eq)
			break;
		unsigned long long ns = strtoull(eq + 1, NULL, 10);
		co_trace_at(ns, "checkpoint: pid %d: %.*s", pid, (int)(eq - p), p);
		sp = strchr(eq, ' ');
		p = sp ? sp + 1 : eq + strlen(eq);
	}
}

/*
 * Barrier: wait until every member answered `want`.  Returns 0, or -1 with
 * the reason in err.  A member that hangs up before it parked has exited
 * and is dropped; one that hangs up after it parked fails the checkpoint.
 * During barrier 1 (gen > 0) processes being born join the checkpoint.
 */
int barrier_more(unsigned want, uint64_t gen, int timeout_ms, char *err, size_t errlen, int reset)
{
	/* a snapshot child may say DONE before its parent says SNAPSHOT: nothing is lost */
	for (int i = 0; i < G.nc && reset; i++)
		G.c[i].answered = G.c[i].kind != C_MEMBER || !G.c[i].part || (G.c[i].got & (1u << want));
	uint64_t deadline = co_now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ULL;
	int failed = 0;
	for (;;) {
		struct pollfd p[2 * MAX_CONNS + 1];
		int idx[2 * MAX_CONNS + 1], n = 0;
		/* births first: one that registers now is waited for in this round */
		pump(0, gen);
		uint64_t now = co_now_ns(CLOCK_MONOTONIC);
		for (int i = 0; i < G.nc; i++)
			if (G.c[i].kind == C_MEMBER && !G.c[i].answered) {
				/* not attached yet: its end is what can tell us it will not */
				p[n].fd = G.c[i].fd >= 0 ? G.c[i].fd : G.c[i].pidfd;
				p[n].events = POLLIN;
				idx[n++] = i;
				/*
				 * Not attached after 5 ms: its threads may all be
				 * asleep where no signal reaches them (park.c); the
				 * group runs a moment, and the checkpoint tries again
				 */
				if (G.c[i].fd < 0 && (want == CO_M_QUIESCED || want == CO_M_ARMED) &&
				    now - G.c[i].signalled_ns > 5000000ULL &&
				    co_park_fanotify_wait(G.c[i].pid, G.c[i].host_pid, 0, err, errlen)) {
					G.member_busy = 1;
					return -1;
				}
				/* a start that found no thread to take it (one registering, one exec'ing): again */
				if (G.c[i].fd < 0 && now - G.c[i].signalled_ns > 2000000000ULL &&
				    signal_member(&G.c[i]) == -2 && now - G.c[i].agentless_ns > 4000000000ULL) {
					why_absent(G.c[i].host_pid, G.c[i].pid, 0, err, errlen);
					return -1;
				}
			}
		if (!n)
			return failed ? -1 : 0;
		/*
		 * And whatever pump() takes (a manager connecting, a birth), so
		 * that it is taken at once rather than after the poll's 20 ms:
		 * a pre-copied member's second manager attaches in the pause.
		 */
		int nm = n;
		n += intake_fds(p + n, idx + n);
		int64_t left = (int64_t)(deadline - co_now_ns(CLOCK_MONOTONIC)) / 1000000;
		/* a stopped or traced process will not park: say so after 2 s rather than at the timeout */
		int parking = want == CO_M_QUIESCED || want == CO_M_ARMED;
		if (parking && co_park_lingering())
			co_park_settle(); /* a thread seized earlier that has stopped since: let go, it may park now */
		int held = parking && timeout_ms - left > 2000 ? held_up(idx, nm) : -1;
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
		for (int k = nm - 1; k >= 0; k--) {
			if (!p[k].revents)
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
				if (r == 2) /* it cannot park now: the group runs a moment, and the checkpoint tries again */
					G.member_busy = 1;
				co_send(c->fd, CO_M_TRACED, 0, in.m.a, r == 2 ? -1 : r, r < 0 || r == 2 ? terr : NULL, -1);
				if (getenv("COHORT_DEBUG"))
					co_warn("checkpoint: pid %d thread %lld %s (%.2f ms)", c->pid, (long long)in.m.a,
						r == 0	 ? "blocked the checkpoint signal: unblocked with ptrace"
						: r == 1 ? "does not block the checkpoint signal"
						: r == 2 ? "waits for a fanotify permission answer"
							 : "cannot be unblocked",
						(double)(co_now_ns(CLOCK_MONOTONIC) - tt0) / 1e6);
				continue;
			}
			c->answered = 1;
			if (in.m.type < 32)
				c->got |= 1u << in.m.type;
			if (in.m.type == CO_M_QUIESCED)
				c->prep_ns = in.m.a;
			if (in.m.type == CO_M_QUIESCED || in.m.type == CO_M_ARMED)
				c->hold_ns = in.m.c > c->hold_ns ? in.m.c : c->hold_ns;
			if (in.m.type == CO_M_ARMED) {
				c->armed = in.m.b != 0;
				hang_up(c); /* its manager goes until QUIESCE (jobs.c, precopy_members) */
			}
			if ((in.m.type == CO_M_SNAPSHOT || in.m.type == CO_M_DONE) && in.m.textlen)
				trace_stamps(c->pid, in.text);
			if (in.m.type == CO_M_DONE) {
				c->bytes = (uint64_t)in.m.a;
				c->incr_parent = (uint64_t)in.m.b;
				c->flocks = (int)in.m.c;
				c->posix_locks = (int)in.m.d;
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

int barrier(unsigned want, uint64_t gen, int timeout_ms, char *err, size_t errlen)
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

void broadcast(unsigned type, int64_t a, const char *text)
{
	broadcast_flags(type, 0, a, 0, text);
}
