/*
 * coord/hold.c - a migration's stop written behind (CO_CKPT_BEHIND,
 * `migrate --postcopy`): after HOLD_END the group is stopped here, never
 * to run again, while its page data is written from its memory
 * (src/cli/behind.c); checkpoint.c's hold_behind commits it then.
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

void hold_stop_group(void)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int nps = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < nps; i++)
		kill(ps[i].host, SIGSTOP);
}

int hold_await_commit(int cfd)
{
	static struct co_msgbuf mb;
	struct pollfd p = { cfd, POLLIN, 0 };
	int r;
	while ((r = poll(&p, 1, -1)) < 0 && errno == EINTR)
		;
	return r > 0 && co_recv(cfd, &mb, NULL) == 0 && mb.m.type == CO_M_HOLD_COMMIT;
}

int hold_fill_members(const char *tmp, char *err, size_t errlen)
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

void hold_forget_hosts(const char *tmp)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", tmp, CO_BEHIND_PIDS);
	unlink(path);
}
