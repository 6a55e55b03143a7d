/*
 * coord/status.c - status and kill requests.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include "agent/dirty.h"
#include "res.h"
#include "coord.h"

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

/* The group's state in a word: a migration's hold says more in G.holding. */
static const char *group_state(void)
{
	return G.holding[0] ? "migrating" : G.expect ? "restoring" : "running";
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
	    name, group_state(), (int)getpid(), prog, images, name, (unsigned long long)G.table->generation);
	if (G.holding[0]) {
		char hold[sizeof(G.holding) * 2];
		ADD("\"migration\":\"%s\",", co_json_esc(G.holding, hold, sizeof(hold)));
	}
	if (brief) {
		ADD("\"processes\":%d}\n", nmembers());
		return n;
	}
	ADD("\"interval\":%g,\"full_every\":%u,\"keep\":%u,\"signal\":%d,\"tracking\":\"%s\",\"merging\":%s,"
	    "\"compress\":%s,\"filling\":%d,\"processes\":[",
	    G.interval, G.full_every, G.keep, G.sig, co_dirty_name(co_dirty_method()), G.merge_pid > 0 ? "true" : "false",
	    G.compress ? "true" : "false", lazy_filling());
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
	    "dirty-page tracking %s%s%s\n",
	    G.name, G.holding[0] ? G.holding : group_state(), (int)getpid(), members, members == 1 ? "" : "es",
	    (unsigned long long)G.table->generation, G.images, G.name, co_dirty_name(co_dirty_method()),
	    G.merge_pid > 0 ? ", merging" : "", lazy_filling() ? ", memory still coming in (restart --lazy)" : "");
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

void status(int ci, unsigned flags)
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
int signal_group(int sig)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int n = 0, nps = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < nps; i++)
		if (kill(ps[i].host, sig) == 0)
			n++;
	return n;
}

void kill_group(int ci, int sig, unsigned flags)
{
	int n = signal_group(sig);
	char name[256];
	if (flags & CO_KILL_JSON)
		reply(G.c[ci].fd, 0, "{\"name\":\"%s\",\"signal\":%d,\"processes\":%d}",
		      co_json_esc(G.name, name, sizeof(name)), sig, n);
	else
		reply(G.c[ci].fd, 0, "sent signal %d to %d process%s of '%s'", sig, n, n == 1 ? "" : "es", G.name);
}
