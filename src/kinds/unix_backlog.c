/*
 * unix_backlog.c - connections a checkpoint takes from a listener's
 * backlog, and gives back to the running program (issue 13).
 *
 * What a client sent on a connection that waits in a listener's backlog
 * is in the embryo socket, which nothing but accept can read.  So the
 * dump accepts every connection of such a backlog through its own copy of
 * the listener (take_backlog, unix.c): they become objects of the dump
 * (embryos) whose clients connect again at a restart.  Whenever the group
 * outlives the checkpoint the program must still get them, in order,
 * before any connection made after: at once in a live checkpoint, once
 * their queues are peeked (co_unix_backlog_give from the kind's dumped),
 * and when a --kill checkpoint fails (from its settle).
 *
 * The kernel cannot put a connection back in a backlog.  So for each, in
 * order, the coordinator makes a new connection to the listener, the
 * marker, sends on it one message (CO_HELD_MAGIC) that passes the taken
 * connection (SCM_RIGHTS), and closes its end.  The marker is a real
 * entry of the backlog: poll, epoll and select see the listener readable,
 * a blocked accept wakes up, and it comes before what connects later.
 * The agent's accept and accept4 (src/agent/accept.c) hand out the
 * connection it passes in its place, with the flags and the peer's
 * address the program asked for; co_table.held_conns counts the markers
 * not yet accepted.  A later checkpoint that finds markers in a backlog
 * takes what they pass (co_unix_unmark), so that an image never holds a
 * marker: its restart makes the real clients connect again.
 *
 * The listener is reached by its name: an abstract one as it is, a path
 * through the socket file found at the checkpoint (an O_PATH descriptor,
 * checked to be the listener's: /proc/self/fd/N connects to it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "kinds/unix_int.h"
#include "cli/cli.h"
#include "held.h"

#define MAX_LISTENERS 256
#define MAX_TAKEN 4096

/* A listener whose backlog this checkpoint took, and how to connect to it again. */
static struct lsn {
	int fd;			/* our copy of the listener */
	int path;		/* O_PATH descriptor of its socket file, or -1 (an abstract name) */
	int type;		/* SOCK_STREAM or SOCK_SEQPACKET */
	char who[48];		/* "pid P: fd F", for a warning */
} lsn[MAX_LISTENERS];
static int nlsn;

/* Every connection taken, in the order taken (so each listener's in its backlog's order). */
static struct taken {
	int l;			/* lsn[l] */
	int conn;		/* our descriptor of the connection */
} taken[MAX_TAKEN];
static int ntaken;
static struct co_table *table;	/* the group's (held_conns) */

int co_unix_backlog_begin(struct co_kdump *d, int first, int l, int path, int type)
{
	if (nlsn == MAX_LISTENERS || l < 0) {
		if (l >= 0)
			close(l);
		if (path >= 0)
			close(path);
		return -1;
	}
	table = d->table;
	lsn[nlsn] = (struct lsn){ l, path, type, "" };
	snprintf(lsn[nlsn].who, sizeof(lsn[nlsn].who), "pid %d: fd %d", d->refs[first].pid, d->refs[first].fd);
	return nlsn++;
}

int co_unix_backlog_add(int l, int conn)
{
	int c = ntaken < MAX_TAKEN ? fcntl(conn, F_DUPFD_CLOEXEC, 3) : -1;
	if (c < 0)
		return -1;
	taken[ntaken++] = (struct taken){ l, c };
	return 0;
}

int co_unix_unmark(struct co_kdump *d, int a)
{
	int c = co_held_unmark(a, 1);
	if (c == -1)
		return a;
	close(a);
	if (d->table)
		co_held_taken(&d->table->held_conns);
	return c < 0 ? -1 : c;
}

/* conn given back behind a marker on listener l: 0, or -1 (errno). */
static int give_one(const struct lsn *l, int conn)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	socklen_t al = sizeof(a);
	if (l->path >= 0)
		al = co_unix_via_path(l->path, &a);
	else if (getsockname(l->fd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	/* not blocking: the backlog has room for what was taken from it, unless others came meanwhile */
	int c = socket(AF_UNIX, l->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c < 0)
		return -1;
	struct co_held_conn m;
	memcpy(m.magic, CO_HELD_MAGIC, sizeof(m.magic));
	int r = connect(c, (struct sockaddr *)&a, al) == 0 && co_unix_send_fds(c, &m, sizeof(m), &conn, 1) == sizeof(m)
			? 0 : -1;
	int e = errno;
	close(c);
	errno = e;
	if (r == 0 && table)
		__atomic_add_fetch(&table->held_conns, 1, __ATOMIC_RELEASE);
	return r;
}

void co_unix_backlog_give(int give)
{
	for (int i = 0; i < ntaken; i++) {
		const struct lsn *l = &lsn[taken[i].l];
		if (give && give_one(l, taken[i].conn) < 0)
			co_warn("%s: a connection taken from the backlog of its Unix listener could not be given back: %s",
				l->who, strerror(errno));
		close(taken[i].conn);
	}
	for (int i = 0; i < nlsn; i++) {
		close(lsn[i].fd);
		if (lsn[i].path >= 0)
			close(lsn[i].path);
	}
	ntaken = nlsn = 0;
}
