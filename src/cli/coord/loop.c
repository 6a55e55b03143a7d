/*
 * coord/loop.c - the coordinator's event loop, the scheduler thread of timed
 * checkpoints, and the group's outcome.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include "coord.h"

struct group G;
struct co_msgbuf in;

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
		/* before the program is back there is nobody to give it to: the restart stops */
		if (G.expect > 0) {
			restore_interrupt((int)si.ssi_signo);
			continue;
		}
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
	if (restore_ended())
		st = restore_ended() << 8; /* a restart that failed or was interrupted */
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (G.migrated_to[0]) {
		fprintf(stderr, "cohort: group %s migrated to %s\n", G.name, G.migrated_to);
		if (G.json) {
			char name[256], to[512];
			printf("{\"name\":\"%s\",\"outcome\":\"migrated\",\"exit_status\":0,\"to\":\"%s\"}\n",
			       co_json_esc(G.name, name, sizeof(name)), co_json_esc(G.migrated_to, to, sizeof(to)));
			fflush(stdout);
		}
		return 0;
	}
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

int loop(void)
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
		static struct pollfd p[2 * MAX_CONNS + 3 + 2 * CO_TABLE_SLOTS];
		/* checkpoints asked for while the group was being restored, now that it is (and its memory: lazy.c) */
		lazy_check();
		for (int i = 0; G.expect == 0 && !lazy_filling() && i < G.nc; i++)
			if (G.c[i].waits_restore) {
				G.c[i].waits_restore = 0;
				checkpoint(i, G.c[i].wait_flags, G.c[i].wait_images ? G.c[i].wait_images : "");
				free(G.c[i].wait_images);
				G.c[i].wait_images = NULL;
			}

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
		int nmem = n;
		n += lazy_pollfds(p + n); /* page fillers: their end and what they send, taken by lazy_check */
		if (poll(p, n, restore_progress() || G.expect > 0 || G.merge_pid > 0 || co_park_lingering() ? 100 : -1) <
		    0) {
			if (errno == EINTR)
				continue;
			co_die("poll: %s", strerror(errno));
		}
		restore_watch();
		reap_merge();
		co_park_settle();
		if (p[0].revents) {
			int st;
			restore_over();
			while (waitpid(G.init_pid, &st, 0) < 0 && errno == EINTR)
				;
			co_fifos_stop(0); /* a restart that failed: feeders nobody read from */
			lazy_end();
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
		/* members that ended (a slot that is no member's polled -1: no revents) */
		for (int k = nconn; k < nmem; k++)
			if (p[k].revents)
				drop(k - nconn);
		/* connections */
		for (int k = 3; k < nconn; k++) {
			if (!p[k].revents)
				continue;
			int i = k - 3;
			/*
			 * A checkpoint run from this loop reads, drops and accepts
			 * connections in its barriers: a slot polled may be free or
			 * another's by now.  Look again before reading, never block.
			 */
			if (G.c[i].fd != p[k].fd)
				continue;
			struct pollfd one = { G.c[i].fd, POLLIN, 0 };
			if (poll(&one, 1, 0) <= 0)
				continue;
			int passfd = -1; /* only CO_M_LAZY carries one */
			if (co_recv(G.c[i].fd, &in, &passfd) < 0) {
				drop(i);
				continue;
			}
			if (passfd >= 0 && in.m.type != CO_M_LAZY) {
				close(passfd);
				passfd = -1;
			}
			if (G.c[i].foreign && in.m.type != CO_M_REGISTER && in.m.type != CO_M_ATTACH &&
			    in.m.type != CO_M_PROCFD) {
				if (passfd >= 0)
					close(passfd);
				drop(i); /* requests are not taken from another uid (accept_conn) */
				continue;
			}
			switch (in.m.type) {
			case CO_M_LAZY:
				on_lazy(i, passfd);
				break;
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
				if (G.expect > 0 || lazy_filling()) { /* after a restart: once every process is back, its memory too */
					G.c[i].waits_restore = 1;
					G.c[i].wait_flags = in.m.flags;
					G.c[i].wait_images = in.text[0] ? strdup(in.text) : NULL;
					break;
				}
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
