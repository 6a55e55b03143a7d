/*
 * tty.c - the terminal a group was started on, for job-control programs.
 *
 * An interactive shell (bash, zsh, a REPL with job control) puts itself in
 * a process group of its own and makes it the terminal's foreground; a
 * process outside the foreground that reads the terminal gets EIO or
 * SIGTTIN.  When that shell is restored on a new terminal, the foreground
 * there is `cohort restart`'s process group, and the terminal is in its
 * default (cooked, echoing) mode while the shell believes it raw.  So the
 * checkpoint records which of the group's process groups had the terminal
 * and the terminal's settings, and the restart gives both back before the
 * group runs again.  A program that never changed its process group shares
 * the caller's, which keeps the terminal: only its settings are given back
 * (script(1) or a tmux client set it raw once, at their start).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include "cli.h"
#include "procfs.h"

_Static_assert(sizeof(struct termios) <= sizeof(((struct co_manifest *)0)->termios), "termios fits");

/* Our stdin, stdout or stderr that is a terminal, or -1. */
static int terminal_fd(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (isatty(fd))
			return fd;
	return -1;
}

/* The process group of host process `host`, as we see it, or -1. */
static long host_pgid(int host)
{
	char path[64];
	uint64_t v;
	snprintf(path, sizeof(path), "/proc/%d/stat", host);
	return co_stat_fields(path, &v, 5, 1) == 0 ? (long)v : -1;
}

void co_tty_record(struct co_manifest *m, const int *hosts, const int *pgids, int n)
{
	int fd = terminal_fd();
	pid_t fg = fd >= 0 ? tcgetpgrp(fd) : -1;
	struct termios t;
	if (fg <= 0 || tcgetattr(fd, &t) < 0)
		return;
	/* the program shares our group: its settings alone (a raw terminal of script(1), a tmux client) */
	if (fg == getpgrp()) {
		m->tty_pgid = CO_TTY_CALLERS;
		memcpy(m->termios, &t, sizeof(t));
		return;
	}
	for (int i = 0; i < n; i++)
		if (host_pgid(hosts[i]) == fg) {
			m->tty_pgid = pgids[i];
			memcpy(m->termios, &t, sizeof(t));
			return;
		}
}

int co_tty_give(const struct co_manifest *m, const int *hosts, const int *pgids, int n)
{
	int fd = terminal_fd();
	if (!m->tty_pgid || fd < 0 || tcgetpgrp(fd) != getpgrp())
		return 0; /* nothing recorded, no terminal, or we are not its foreground either */
	if (m->tty_pgid == CO_TTY_CALLERS) {
		struct termios t;
		memcpy(&t, m->termios, sizeof(t));
		return tcsetattr(fd, TCSADRAIN, &t) < 0 ? -1 : 1;
	}
	for (int i = 0; i < n; i++) {
		long g = pgids[i] == m->tty_pgid ? host_pgid(hosts[i]) : -1;
		if (g <= 0)
			continue;
		struct termios t;
		memcpy(&t, m->termios, sizeof(t));
		if (tcsetattr(fd, TCSADRAIN, &t) < 0 || tcsetpgrp(fd, (pid_t)g) < 0)
			return -1;
		return 1;
	}
	return 0;
}

void co_tty_take_back(void)
{
	int fd = terminal_fd();
	if (fd < 0 || tcgetpgrp(fd) == getpgrp())
		return;
	/* from the background: with SIGTTOU blocked the kernel lets us */
	sigset_t ttou, old;
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	sigprocmask(SIG_BLOCK, &ttou, &old);
	tcsetpgrp(fd, getpgrp());
	sigprocmask(SIG_SETMASK, &old, NULL);
}
