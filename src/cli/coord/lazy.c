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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cli/filler.h"
#include "res.h"
#include "util.h"
#include "coord.h"

struct filler {
	pid_t pid;
	int pidfd;
	int uffd;		/* our copy, until it is done */
	int gpid;		/* the process it fills, its pid in the group */
};

static struct filler F[CO_TABLE_SLOTS];
static int nf;
static int on;
static char dir[PATH_MAX];
static const struct co_mproc *procs;
static int nprocs;
static int slow_ms;	/* COHORT_LAZY_SLOW=MS (tests only): the background fill pauses MS after each MiB */

void lazy_setup(const char *gen_dir, const struct co_mproc *p, int n)
{
	const char *slow = getenv("COHORT_LAZY_SLOW");
	slow_ms = slow ? atoi(slow) : 0;
	on = 1;
	snprintf(dir, sizeof(dir), "%s", gen_dir);
	procs = p;
	nprocs = n;
}

/* The manifest's entry of pid, if it is a process being restored that has no filler yet. */
static const struct co_mproc *wants_filler(int pid)
{
	for (int k = 0; k < nf; k++)
		if (F[k].gpid == pid)
			return NULL;
	for (int k = 0; k < nprocs; k++)
		if (procs[k].pid == pid && !(procs[k].flags & (CO_MP_ZOMBIE | CO_MP_COMPRESSED)))
			return &procs[k];
	return NULL;
}

/* Is the peer of connection c the group's process pid (as the kernel names it)? */
static int peer_is(const struct conn *c, int pid)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int n = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < n; i++)
		if (ps[i].host == c->host_pid)
			return ps[i].ids.pid == pid;
	return 0;
}

/* In the filler child: nothing of the coordinator's but the userfaultfd and stderr. */
static void __attribute__((noreturn)) run_filler(int uffd, const struct co_mproc *mp, int streams,
						 const uint64_t *ranges, int nr, pid_t coordinator)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != coordinator)
		_exit(1);
	prctl(PR_SET_NAME, "cohort-filler");
	if (uffd != 3 && (dup3(uffd, 3, O_CLOEXEC) < 0 || close(uffd) < 0))
		_exit(1);
	syscall(SYS_close_range, 4, ~0U, 0);
	static char image[PATH_MAX + 64];
	snprintf(image, sizeof(image), "%s/%s", dir, mp->image);
	struct co_filler_cfg cfg = {
		.uffd = 3, .pid = mp->pid, .image = image, .streams = streams,
		.bind = { G.restored.group_id, G.restored.generation, 0, 0 }, .ranges = ranges, .nranges = nr,
		.slow_ms = slow_ms,
	};
	co_filler_main(&cfg);
}

void on_lazy(int i, int uffd)
{
	struct conn *c = &G.c[i];
	int pid = (int)in.m.a;
	const struct co_mproc *mp = on && uffd >= 0 && G.expect > 0 ? wants_filler(pid) : NULL;
	uint32_t nr = in.m.textlen / 16;
	int streams = in.m.b < 1 ? 1 : (int)in.m.b;
	if (!mp || !peer_is(c, pid) || in.m.textlen % 16 || nr > CO_LAZY_MAX_RANGES || streams > CO_STREAMS) {
		if (uffd >= 0)
			close(uffd);
		drop(i);
		return;
	}
	static uint64_t ranges[CO_LAZY_MAX_RANGES * 2];
	memcpy(ranges, in.text, nr * 16);
	pid_t me = getpid();
	fflush(stderr);
	pid_t p = fork();
	if (p == 0)
		run_filler(uffd, mp, streams, ranges, (int)nr, me);
	drop(i);
	if (p < 0) {
		/* nobody to fill it: its faults would wait for ever */
		close(uffd);
		restore_lazy_failed(pid, "cannot start its page filler");
		return;
	}
	F[nf++] = (struct filler){ p, (int)syscall(SYS_pidfd_open, p, 0), uffd, pid };
}

int lazy_filling(void)
{
	return nf > 0;
}

int lazy_pollfds(struct pollfd *p)
{
	for (int k = 0; k < nf; k++)
		p[k] = (struct pollfd){ F[k].pidfd, POLLIN, 0 };
	return nf;
}

/* Fillers that ended: done (the copy goes, the process is an ordinary one), or the group ends. */
void lazy_check(void)
{
	for (int k = 0; k < nf;) {
		int st;
		pid_t r = waitpid(F[k].pid, &st, WNOHANG);
		if (r == 0 || (r < 0 && errno == EINTR)) {
			k++;
			continue;
		}
		struct filler f = F[k];
		F[k] = F[--nf];
		if (f.pidfd >= 0)
			close(f.pidfd);
		close(f.uffd);
		if (r > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			continue;
		char why[128];
		if (r > 0 && WIFSIGNALED(st))
			snprintf(why, sizeof(why), "its page filler was killed by signal %d before every page was in place",
				 WTERMSIG(st));
		else
			why[0] = 0; /* the filler said why */
		restore_lazy_failed(f.gpid, why);
	}
}

/* The group has ended: the fillers have nothing left to fill. */
void lazy_end(void)
{
	for (int k = 0; k < nf; k++) {
		kill(F[k].pid, SIGKILL);
		while (waitpid(F[k].pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (F[k].pidfd >= 0)
			close(F[k].pidfd);
		close(F[k].uffd);
	}
	nf = 0;
}
