/*
 * coord/hold.c - a migration's stop written behind (CO_CKPT_BEHIND,
 * `migrate --postcopy`): after HOLD_END the group is stopped here, never
 * to run again, while its page data is written from its memory
 * (src/cli/behind.c); then the generation is committed, and only then
 * does checkpoint.c end the group.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include "cli/behind.h"
#include "coord.h"
#include "util.h"


/*
 * Until the client of a migration's hold on cfd says something (or hangs
 * up): the hold lasts the stop's sending, and with post-copy until every
 * page has gone, so `cohort status` is answered meanwhile (pump_or; it
 * shows G.holding).  Any other request waits, as during a checkpoint.
 */
void hold_wait(int cfd)
{
	while (!pump_or(-1, 0, cfd))
		;
}

/* 1 once the client on cfd says HOLD_COMMIT; 0 when it is gone (or says anything else). */
static int await_commit(int cfd)
{
	static struct co_msgbuf mb;
	hold_wait(cfd);
	return co_recv(cfd, &mb, NULL) == 0 && mb.m.type == CO_M_HOLD_COMMIT;
}

/* The page data left behind in every member's image in tmp, written from its memory: 0, or -1 with err. */
static int fill_members(const char *tmp, char *err, size_t errlen)
{
	uint64_t bytes = 0;
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].part &&
		    co_behind_fill_proc(tmp, G.c[i].pid, G.c[i].host_pid, &bytes, err, errlen))
			return -1;
	co_trace("hold: %llu bytes of page data written from memory", (unsigned long long)bytes);
	return 0;
}

int hold_write_hosts(const char *tmp)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", tmp, CO_BEHIND_PIDS);
	FILE *f = fopen(path, "we");
	if (!f)
		return -1;
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].part)
			fprintf(f, "%d %d\n", G.c[i].pid, G.c[i].host_pid);
	return fclose(f) ? -1 : 0;
}

static void forget_hosts(const char *tmp)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", tmp, CO_BEHIND_PIDS);
	unlink(path);
}

/*
 * HOLD_END of a checkpoint written behind: the group runs at the target,
 * and its page data is still to write here from the parked processes'
 * memory.  They are stopped first (should this coordinator end, its
 * members' hung-up managers would let them go, and none of the program
 * may run here again), then the client is answered.  It writes that data
 * as it sends it and says HOLD_COMMIT; gone before that (killed), the data
 * is written here.  Then generation gen is committed from tmp: 0, or -1
 * (said).  The coordinator killed meanwhile takes the group, and that
 * data, with it: post-copy's risk, as CRIU's.
 */
int hold_behind(int cfd, const char *tmp, const char *gdir, uint64_t gen)
{
	char err[1024] = "";
	signal_group(SIGSTOP); /* every process of the group stopped: it never runs here again */
	snprintf(G.holding, sizeof(G.holding), "migrated to %s, its pages still sent from here", G.migrated_to);
	reply(cfd, 0, "group '%s' ended here: it runs at %s", G.name, G.migrated_to);
	int asked = await_commit(cfd);
	co_trace("hold: %s", asked ? "HOLD_COMMIT" : "the client is gone: the page data is written here");
	forget_hosts(tmp);
	int bad = (!asked && fill_members(tmp, err, sizeof(err))) || co_commit(tmp, gdir, gen, err, sizeof(err)) < 0;
	if (bad)
		co_warn("generation %llu of '%s' was not committed: %s", (unsigned long long)gen, G.name, err);
	if (asked && bad)
		reply(cfd, 1, "%s", err);
	else if (asked)
		reply(cfd, 0, "%s/gen-%06llu", gdir, (unsigned long long)gen);
	return bad ? -1 : 0;
}
