/*
 * coord/lazy.c - the page fillers of a lazy restart (`cohort restart
 * --lazy`; docs/architecture.md, "One restart").
 *
 * Each restorer whose process has lazy regions connects once and sends
 * CO_M_LAZY with its userfaultfd (src/restore/lazy.c).  The coordinator
 * forks a filler for it (src/cli/filler.c), a process of its own outside
 * the group, and keeps a copy of the descriptor until the filler has
 * exited 0: were the filler to die, the kernel would release the
 * userfaultfd and the program would read zeros where its pages were still
 * to come; with the copy kept, a fault waits until the coordinator, which
 * watches the filler's pidfd, has ended the group (one line, status 70).
 *
 * A checkpoint of the group waits until every filler is done (loop.c): the
 * agent's write tracking registers the same regions with a userfaultfd of
 * its own, which the kernel refuses while the filler's holds them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "boost.h"
#include "cli/filler.h"
#include "cli/postcopy.h"
#include "res.h"
#include "util.h"
#include "coord.h"

/*
 * The children the program forks while a filler runs get userfaultfds of
 * their own, which the kernel gives the filler (UFFD_EVENT_FORK): it sends
 * each here too, on its socket, so that they outlive it as the first does.
 */
#define HELD_MAX 64

struct filler {
	pid_t pid;
	int pidfd;
	int uffd;		/* our copy, until it is done */
	int sock;		/* where it sends the userfaultfds of the children forked meanwhile */
	int held[HELD_MAX];	/* ... which we keep as long as the first */
	int nheld;
	int gpid;		/* the process it fills, its pid in the group */
};

static struct filler F[CO_TABLE_SLOTS];
static int nf;
static int on;
static char dir[PATH_MAX];
static const struct co_chain_dirs *chain;	/* an incremental restarted from its chain; NULL: dir is whole */
static const struct co_mproc *procs;
static int nprocs;
static int slow_ms;	/* COHORT_LAZY_SLOW=MS (tests only): the background fill pauses MS after each MiB */
static const char *hold; /* COHORT_LAZY_HOLD=FILE (tests only): the background fill waits for FILE */

void lazy_setup(const char *gen_dir, const struct co_chain_dirs *c, const struct co_mproc *p, int n)
{
	chain = c;
	const char *slow = getenv("COHORT_LAZY_SLOW");
	slow_ms = slow ? atoi(slow) : 0;
	hold = getenv("COHORT_LAZY_HOLD");
	on = 1;
	snprintf(dir, sizeof(dir), "%s", gen_dir);
	procs = p;
	nprocs = n;
}

static uint8_t taken[CO_TABLE_SLOTS];	/* procs[k] has had its filler */

/* The manifest's entry of pid, if it is a process of the restore that has had no filler yet. */
static const struct co_mproc *wants_filler(int pid)
{
	for (int k = 0; k < nprocs; k++)
		if (procs[k].pid == pid && !taken[k] && !(procs[k].flags & (CO_MP_ZOMBIE | CO_MP_COMPRESSED))) {
			taken[k] = 1;
			return &procs[k];
		}
	return NULL;
}

/*
 * Is the peer of connection c the group's process pid (as the kernel
 * names it)?  Asked of that one process, as scan_group asks each (in the
 * group's pid namespace, not init): a scan of every process of the
 * machine was ~1.5 ms of a migration's stop.
 */
static int peer_is(const struct conn *c, int pid)
{
	struct co_nsids ids;
	return c->host_pid != G.init_pid && in_group_ns(c->host_pid) && co_ns_ids(c->host_pid, &ids) == 0 &&
	       ids.pid == pid;
}

/*
 * The older images of mp down the chain (an incremental restarted from its
 * chain), for its filler: each generation's image of the same pid, to the
 * first that is not incremental (co_chain_lazy_ok saw them all there).
 * How many; read in the filler child.
 */
static int older_layers(const struct co_mproc *mp, struct co_filler_layer *l)
{
	static struct co_manifest m;
	static struct co_mproc lp[CO_TABLE_SLOTS];
	static char images[CO_CHAIN_MAX][PATH_MAX + 64];
	char err[512];
	int n = 0, ln, incr = (mp->flags & CO_MP_INCREMENTAL) != 0;
	for (int j = 1; chain && incr && j < chain->n; j++) {
		if (co_read_manifest(chain->dir[j], &m, lp, CO_TABLE_SLOTS, &ln, err, sizeof(err))) {
			co_trace("lazy: pid %d: %s", mp->pid, err);
			return n; /* the filler says which page it lacks */
		}
		const struct co_mproc *q = NULL;
		for (int k = 0; k < ln && !q; k++)
			if (lp[k].pid == mp->pid && !(lp[k].flags & CO_MP_ZOMBIE))
				q = &lp[k];
		if (!q) {
			co_trace("lazy: pid %d: no image in %s", mp->pid, chain->dir[j]);
			return n;
		}
		snprintf(images[n], sizeof(images[n]), "%s/%s", chain->dir[j], q->image);
		l[n] = (struct co_filler_layer){ images[n], { m.group_id, m.generation, 0, 0 } };
		n++;
		incr = (q->flags & CO_MP_INCREMENTAL) != 0;
	}
	return n;
}

/* Does mp come back straight from its chain (its filler writes some pages before the program may run)? */
static int from_chain(const struct co_mproc *mp)
{
	return chain && (mp->flags & CO_MP_INCREMENTAL);
}

/*
 * Wait until the filler of a process restarted from its chain says the
 * pages of its regions restored eagerly are in place (filler.c,
 * write_eager); 0 then, -1 if it failed or died first.
 */
static int filler_ready(int sock)
{
	struct co_msg m;
	struct pollfd p = { sock, POLLIN, 0 };
	if (poll(&p, 1, 60000) != 1)
		return -1;
	ssize_t r;
	do
		r = recv(sock, &m, sizeof(m), 0);
	while (r < 0 && errno == EINTR);
	return r == (ssize_t)sizeof(m) && m.type == CO_M_REPLY ? 0 : -1;
}

/* mp's images, newest first (the restored generation's, then its chain's): how many. */
static int filler_layers(const struct co_mproc *mp, struct co_filler_layer *layers)
{
	static char image[PATH_MAX + 64];
	snprintf(image, sizeof(image), "%s/%s", dir, mp->image);
	layers[0] = (struct co_filler_layer){ image, { G.restored.group_id, G.restored.generation, 0, 0 } };
	return 1 + older_layers(mp, layers + 1);
}

/*
 * In the filler child: nothing of the coordinator's but the userfaultfd
 * and stderr.  layers: mp's (filler_layers), nl of them; 0: found here.
 */
static void __attribute__((noreturn)) run_filler(int uffd, int sock, const struct co_mproc *mp, int streams,
						 const uint64_t *ranges, int nr, pid_t coordinator, int host_pid,
						 struct co_filler_layer *layers, int nl)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != coordinator)
		_exit(1);
	prctl(PR_SET_NAME, "cohort-filler");
	/* the userfaultfd on 3, the socket on 4, a migration's post-copy wakeup on 5, nothing else of ours */
	int u = fcntl(uffd, F_DUPFD_CLOEXEC, 16), k = fcntl(sock, F_DUPFD_CLOEXEC, 16);
	if (u < 0 || k < 0 || dup3(u, 3, O_CLOEXEC) < 0 || dup3(k, 4, O_CLOEXEC) < 0)
		_exit(1);
	if (co_postcopy_filler_fd(5))
		close(5);
	syscall(SYS_close_range, 6, ~0U, 0);
	if (!nl)
		nl = filler_layers(mp, layers);
	struct co_filler_cfg cfg = {
		.uffd = 3, .held_sock = 4, .pid = mp->pid, .host_pid = host_pid, .announce = from_chain(mp),
		.streams = streams, .layers = layers, .nlayers = nl, .ranges = ranges, .nranges = nr, .slow_ms = slow_ms,
		.hold = hold,
		.source = co_postcopy_source(), /* a migration's post-copy: pages still on their way (postcopy.c) */
		.checked = G.on_ready != NULL, /* a migration's target: its files were checked as they came (receive.c) */
	};
	co_filler_main(&cfg);
}

/*
 * Fillers forked ahead (lazy_prefork): one for each of the first SPARES
 * processes of the restore that may hand regions over, forked while init
 * and the restorers start, each waiting on its socket for the hand-over
 * (spare_wait).  A fork of the coordinator at the hand-over took ~4 ms
 * of a migration's stop, with the restorer waiting for its answer.
 */
#define SPARES 4

struct spare {
	pid_t pid;		/* 0: none, or used */
	int sock;
	int gpid;
};
static struct spare S[SPARES];
static struct co_filler_layer layers[CO_CHAIN_MAX]; /* the filler's (a forked filler has its own copy) */

/*
 * In a spare: nothing of the coordinator's but the socket, stdio and a
 * post-copy's wakeup (5) while it waits; then the hand-over on_lazy
 * forwards (CO_M_LAZY, its userfaultfd; a: the pid, b: streams, c: its
 * host pid, d: its entry in procs; the ranges), and it is the filler
 * run_filler makes.
 */
static void __attribute__((noreturn)) spare_wait(int sock, pid_t coordinator, int idx)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != coordinator)
		_exit(1);
	/* forked in a migration's stop: the restorer will wait for its index and its answer (boost.h) */
	if (co_boosted())
		co_boost();
	/* its images are known already: found now (manifests of the chain read), not after the hand-over */
	int nl = filler_layers(&procs[idx], layers);
	int k = fcntl(sock, F_DUPFD_CLOEXEC, 16);
	if (k < 0)
		_exit(1);
	if (co_postcopy_filler_fd(5))
		close(5);
	syscall(SYS_close_range, 3, 4, 0);
	syscall(SYS_close_range, 6, k - 1, 0);
	syscall(SYS_close_range, k + 1, ~0U, 0);
	co_filler_early(layers, nl, procs[idx].pid);
	static struct co_msgbuf mb;
	static uint64_t ranges[CO_LAZY_MAX_RANGES * 2];
	int uffd = -1;
	if (co_recv(k, &mb, &uffd) || uffd < 0 || mb.m.type != CO_M_LAZY || mb.m.textlen % 16 ||
	    mb.m.textlen >= CO_MSG_TEXT)
		_exit(CO_FILLER_GONE); /* never handed over: killed once the group runs, or the coordinator is gone */
	if (mb.m.d < 0 || mb.m.d >= nprocs)
		_exit(1);
	memcpy(ranges, mb.text, mb.m.textlen);
	run_filler(uffd, k, &procs[mb.m.d], (int)mb.m.b, ranges, (int)(mb.m.textlen / 16), coordinator, (int)mb.m.c,
		   layers, mb.m.d == idx ? nl : 0);
}

/*
 * Fork the spares, once init runs (run.c): the restorers start meanwhile,
 * and the fork's work is done before the first hands over.
 */
void lazy_prefork(void)
{
	pid_t me = getpid();
	int n = 0;
	for (int k = 0; k < nprocs && n < SPARES; k++) {
		if (procs[k].flags & (CO_MP_ZOMBIE | CO_MP_COMPRESSED))
			continue;
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
			return;
		fflush(stderr);
		pid_t p = fork();
		if (p == 0)
			spare_wait(sv[1], me, k);
		close(sv[1]);
		if (p < 0) {
			close(sv[0]);
			return;
		}
		S[n++] = (struct spare){ p, sv[0], procs[k].pid };
	}
	co_trace("lazy: %d fillers forked ahead", n);
}

/* End a spare not (or no longer) to be used. */
static void spare_end(struct spare *sp)
{
	kill(sp->pid, SIGKILL);
	while (waitpid(sp->pid, NULL, 0) < 0 && errno == EINTR)
		;
	close(sp->sock);
	sp->pid = 0;
}

/*
 * Hand mp's regions to its spare, if it has one: forward the message
 * (in) with uffd and host_pid.  The spare's pid, its socket in *sock; -1
 * when there is none (or it died: the caller forks one).
 */
static pid_t hand_to_spare(const struct co_mproc *mp, int uffd, int host_pid, int *sock)
{
	struct spare *sp = NULL;
	for (int k = 0; k < SPARES && !sp; k++)
		if (S[k].pid > 0 && S[k].gpid == mp->pid)
			sp = &S[k];
	if (!sp || in.m.textlen >= CO_MSG_TEXT)
		return -1;
	struct co_msg m = in.m;
	m.type = CO_M_LAZY;
	m.c = host_pid;
	m.d = mp - procs;
	static struct co_msgbuf out;
	out.m = m;
	memcpy(out.text, in.text, m.textlen);
	struct iovec iov;
	struct msghdr mh;
	char cbuf[CO_FRAME_CBUF];
	co_frame(&mh, &iov, &out, sizeof(out.m) + m.textlen, cbuf, &uffd, 1);
	ssize_t r;
	do
		r = sendmsg(sp->sock, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		spare_end(sp);
		return -1;
	}
	pid_t p = sp->pid;
	*sock = sp->sock;
	sp->pid = 0; /* a filler now: F holds it */
	return p;
}

static int released;	/* the group runs (lazy_release) */

/* Let filler f fill the rest in the background (filler.c, await_release). */
static void let_fill(const struct filler *f)
{
	struct co_msg m = { .type = CO_M_RELEASE };
	while (send(f->sock, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

void on_lazy(int i, int uffd)
{
	struct conn *c = &G.c[i];
	int pid = (int)in.m.a;
	uint32_t nr = in.m.textlen / 16;
	int streams = in.m.b < 1 ? 1 : (int)in.m.b;
	const struct co_mproc *mp = on && uffd >= 0 && peer_is(c, pid) && !(in.m.textlen % 16) &&
						    nr <= CO_LAZY_MAX_RANGES && streams <= CO_STREAMS
					    ? wants_filler(pid)
					    : NULL;
	if (!mp) { /* hung up without an answer: the restorer fails, rather than run on with zeros */
		if (uffd >= 0)
			close(uffd);
		drop(i);
		return;
	}
	static uint64_t ranges[CO_LAZY_MAX_RANGES * 2];
	co_trace("lazy: pid %d hands over its regions", pid);
	memcpy(ranges, in.text, nr * 16);
	pid_t me = getpid(), p;
	int sv[2];
	if ((p = hand_to_spare(mp, uffd, c->host_pid, &sv[0])) < 0) {
		fflush(stderr);
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
			p = fork();
			if (p == 0)
				run_filler(uffd, sv[1], mp, streams, ranges, (int)nr, me, c->host_pid, layers, 0);
			close(sv[1]);
		}
	}
	if (p > 0 && from_chain(mp) && filler_ready(sv[0])) {
		/* it says why; the group is ended once it is reaped, and the restorer fails (no answer) */
		fcntl(sv[0], F_SETFL, O_NONBLOCK);
		F[nf++] = (struct filler){ .pid = p, .pidfd = (int)syscall(SYS_pidfd_open, p, 0), .uffd = uffd,
					   .sock = sv[0], .gpid = pid };
		drop(i);
		return;
	}
	if (p < 0) {
		/* nobody to fill it: the restorer fails (no answer) */
		close(uffd);
		drop(i);
		return;
	}
	/* the restorer goes on (and its program runs) only once its filler is counted (lazy_filling) */
	co_trace("lazy: pid %d answered", pid);
	reply(c->fd, 0, "filler %d", (int)p);
	drop(i);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	F[nf++] = (struct filler){ .pid = p, .pidfd = (int)syscall(SYS_pidfd_open, p, 0), .uffd = uffd,
				   .sock = sv[0], .gpid = pid };
	if (released)
		let_fill(&F[nf - 1]);
}

/*
 * The group runs (every process released): until now each filler served
 * faults only, so that its background fill took no CPU from the restore's
 * last steps and a migration's switch.
 */
void lazy_release(void)
{
	if (nf)
		co_trace("lazy: the group runs, its fillers fill the rest");
	released = 1;
	for (int k = 0; k < nf; k++)
		if (F[k].pid > 0)
			let_fill(&F[k]);
	/* every process has handed over what it had: the spares left go (after the fills began: each waits for an exit) */
	for (int k = 0; k < SPARES; k++)
		if (S[k].pid > 0)
			spare_end(&S[k]);
}

/* Fillers that have not ended (those that failed are only held until the group is gone). */
int lazy_filling(void)
{
	int n = 0;
	for (int k = 0; k < nf; k++)
		n += F[k].pid > 0;
	return n;
}

int lazy_pollfds(struct pollfd *p)
{
	for (int k = 0; k < nf; k++) {
		int live = F[k].pid > 0; /* a failed one is only held (lazy_check) */
		p[2 * k] = (struct pollfd){ live ? F[k].pidfd : -1, POLLIN, 0 };
		p[2 * k + 1] = (struct pollfd){ live ? F[k].sock : -1, POLLIN, 0 };
	}
	return 2 * nf;
}

/* The userfaultfds filler f has sent (children forked meanwhile): kept until it is done. */
static void take_held(struct filler *f)
{
	static struct co_msgbuf mb;
	int fd;
	while (co_recv(f->sock, &mb, &fd) == 0) {
		if (fd < 0)
			continue;
		if (f->nheld < HELD_MAX)
			f->held[f->nheld++] = fd;
		else
			close(fd); /* the filler refuses more forks than that (filler.c, MAX_SPACES) */
	}
}

static void forget(struct filler *f)
{
	if (f->pidfd >= 0)
		close(f->pidfd);
	close(f->uffd);
	close(f->sock);
	for (int i = 0; i < f->nheld; i++)
		close(f->held[i]);
}

/*
 * Fillers that ended: done (our copies go, the process is an ordinary one),
 * or the group ends.  A failed filler's copies are kept until the group's
 * init has ended (lazy_end): the group's processes die only as init's end
 * takes them, and a fault answered meanwhile would read zeros.
 */
void lazy_check(void)
{
	for (int k = 0; k < nf; k++) {
		struct filler *f = &F[k];
		int st;
		if (f->pid <= 0)
			continue; /* failed: held until the end */
		take_held(f);
		pid_t r = waitpid(f->pid, &st, WNOHANG);
		if (r == 0 || (r < 0 && errno == EINTR))
			continue;
		f->pid = 0;
		if (r > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			forget(f);
			F[k--] = F[--nf];
			continue;
		}
		char why[128];
		if (r > 0 && WIFSIGNALED(st))
			snprintf(why, sizeof(why), "its page filler was killed by signal %d before every page was in place",
				 WTERMSIG(st));
		else if (r > 0 && WIFEXITED(st) && WEXITSTATUS(st) == CO_FILLER_GONE)
			snprintf(why, sizeof(why), "the process ended before its pages were in place");
		else
			why[0] = 0; /* the filler said why */
		restore_lazy_failed(f->gpid, why);
	}
}

/* How long a filler may take, once the group has ended, to check the records its pages came from. */
#define END_CHECK_MS 30000

/*
 * The group has ended: the fillers have nothing left to fill, but each
 * checks the records whose pages went out before it had checked them
 * (filler.c): a program that read a damaged page may have ended because
 * of it, and the restart must then fail saying so, not end with the
 * program's status as if its memory had been its own.
 */
void lazy_end(void)
{
	for (int k = 0; k < SPARES; k++)
		if (S[k].pid > 0)
			spare_end(&S[k]);
	struct co_msg m = { .type = CO_M_RELEASE, .a = 1 };
	for (int k = 0; k < nf; k++)
		if (F[k].pid > 0)
			while (send(F[k].sock, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
				;
	uint64_t until = co_now_ns(CLOCK_MONOTONIC) + END_CHECK_MS * 1000000ULL;
	for (int k = 0; k < nf; k++) {
		struct filler *f = &F[k];
		if (f->pid > 0) {
			/* (its pidfd says when it ends; without one, a look every 10 ms) */
			struct pollfd p = { f->pidfd, POLLIN, 0 };
			int st = 0;
			pid_t w;
			uint64_t now;
			while (((w = waitpid(f->pid, &st, WNOHANG)) == 0 || (w < 0 && errno == EINTR)) &&
			       (now = co_now_ns(CLOCK_MONOTONIC)) < until)
				poll(&p, 1, f->pidfd >= 0 ? (int)((until - now) / 1000000) + 1 : 10);
			if (w <= 0) {
				fprintf(stderr, "cohort: the page filler of pid %d did not check its pages within %d s of "
					"the group's end: the restart is failed\n", f->gpid, END_CHECK_MS / 1000);
				kill(f->pid, SIGKILL);
				while (waitpid(f->pid, &st, 0) < 0 && errno == EINTR)
					;
				st = 1 << 8;
			}
			/* it said why (a record that reached the program damaged) */
			if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != CO_FILLER_GONE))
				restore_lazy_damaged();
		}
		forget(f);
	}
	nf = 0;
}
