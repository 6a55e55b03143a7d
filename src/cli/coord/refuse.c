/*
 * coord/refuse.c - what a checkpoint refuses while the group can still run
 * on: threads with ids of their own, namespaces the program made, seccomp
 * filters the agent could not work under, a root directory its agent
 * cannot leave.  Each returns 0, or non-zero with one line in err naming
 * the process; checkpoint.c asks them before any signal or with the
 * member parked, and aborts without harm to the group.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include "res.h"
#include "coord.h"

/* Thread host_tid as the group sees it (for messages); host_tid itself when that cannot be read. */
static int group_tid(int host_tid)
{
	struct co_nsids ids = { .pid = host_tid };
	co_ns_ids(host_tid, &ids);
	return ids.pid;
}

/*
 * A restore gives every thread of a process the ids recorded for it, so a
 * process whose threads differ (one changed its ids with a raw system
 * call, as glibc's setuid() would have changed all) is refused while it
 * still runs, rather than brought back with one thread's ids changed.
 */
int threads_same_creds(const struct conn *c, char *err, size_t errlen)
{
	int tid = co_thread_odd_creds(c->host_pid);
	if (tid <= 0)
		return 0; /* the same, or the process is gone: the dump will say so */
	snprintf(err, errlen,
		 "pid %d: its thread %d runs with other uids, gids, groups or capabilities than the rest of the "
		 "process (set by a raw system call); cohort restores one set of ids per process", c->pid, group_tid(tid));
	return -1;
}

/*
 * A process in a namespace the program made (unshare, clone with CLONE_NEW*:
 * a sandbox, a container runtime, `unshare -T`) would come back in the
 * group's own, its clocks, mounts or pids silently changed: refused, in
 * the pause, while the group can still run on.
 */
int own_namespaces(const struct conn *c, char *err, size_t errlen)
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

/*
 * The seccomp filters of every member's threads are read and checked
 * before any signal (cli/seccomp.c): a filter that would fail or kill a
 * system call of the agent's, a thread in strict mode, or filters the
 * coordinator may not read (without root) refuse the checkpoint while the
 * program runs on untouched.
 */
int under_seccomp(char *err, size_t errlen)
{
	for (int i = 0; i < G.nc; i++) {
		struct co_scset *sc = NULL;
		int bad = G.c[i].kind == C_MEMBER &&
			  (co_seccomp_read(G.c[i].pid, G.c[i].host_pid, &G.table->probes, &sc, err, errlen) ||
			   co_seccomp_check(sc, in_chroot(G.c[i].host_pid), err, errlen));
		co_seccomp_free(sc);
		if (bad)
			return 1;
	}
	return 0;
}

/*
 * The filters again, for the image, with the member parked (its threads
 * cannot change them now, and those born since are there): a memfd for
 * DUMP (see src/res/seccomp.c), *fd -1 when it has none; 0 or -1 with err.
 */
int seccomp_for_dump(const struct conn *c, int *fd, char *err, size_t errlen)
{
	struct co_scset *sc = NULL;
	*fd = -1;
	int bad = co_seccomp_read(c->pid, c->host_pid, &G.table->probes, &sc, err, errlen) ||
		  co_seccomp_check(sc, in_chroot(c->host_pid), err, errlen);
	if (!bad && sc && (*fd = co_seccomp_memfd(sc)) < 0) {
		snprintf(err, errlen, "pid %d: cannot hand its seccomp filters to its agent: %s", c->pid, strerror(errno));
		bad = 1;
	}
	co_seccomp_free(sc);
	return bad ? -1 : 0;
}

/*
 * A member whose root directory is not the group's (chroot): its manager
 * leaves that root for the group's (setns into its own mount namespace,
 * agent/root.c), from where the socket, /proc and every path are as for
 * any member, and its image records the root, which the restorer chroots
 * to last.  Refused before any signal (the program runs on): a member
 * without CAP_SYS_ADMIN and CAP_SYS_CHROOT (dropped since its chroot),
 * which cannot leave it, and one whose root was removed since, which
 * could not be entered again.
 */
int chrooted(char *err, size_t errlen)
{
	const uint64_t need = 1ULL << 18 /* CAP_SYS_CHROOT */ | 1ULL << 21 /* CAP_SYS_ADMIN */;
	char root[PATH_MAX], path[64], status[16384];
	for (int i = 0; i < G.nc; i++) {
		int host = G.c[i].host_pid;
		if (G.c[i].kind != C_MEMBER || !co_root_differs(host, G.init_pid, root, sizeof(root)))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/status", host);
		int caps = co_read_small(path, status, sizeof(status)) > 0 && (co_status_hex(status, "CapEff") & need) == need;
		const char *why = strlen(root) >= CO_PATH ? "is a longer path than an image holds"
			       : co_endswith(root, " (deleted)") ? "was removed after its chroot, which cohort cannot restore"
			       : !caps ? "is not the group's (chroot), and without CAP_SYS_CHROOT and CAP_SYS_ADMIN "
					 "(dropped since) its agent cannot leave it for the checkpoint"
			       : NULL;
		if (!why)
			continue;
		snprintf(err, errlen, "pid %d (%s): its root directory %s %s", G.c[i].pid, comm_of(host), root, why);
		return 1;
	}
	return 0;
}

