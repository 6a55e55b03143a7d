/*
 * accept.c - connections a checkpoint took from a listener's backlog,
 * handed out by the program's accept (issue 13; the coordinator's side,
 * and why, is src/kinds/unix_backlog.c).
 *
 * A checkpoint that took the connections waiting in a listener's backlog
 * (to read what their clients sent) and that the group outlives gives
 * each back behind a marker: a new connection to the listener whose one
 * message passes the taken connection.  The markers are real entries of
 * the backlog, in order, before anything that connects later: poll, epoll
 * and select see the listener readable while any is there, and a blocked
 * accept wakes up.  The agent holds nothing and has no descriptor: its
 * accept and accept4 (and syscall(SYS_accept, SYS_accept4), wrap.c),
 * while the group has markers not yet accepted (co_table.held_conns: one
 * load when there are none), look at what the kernel accepted; a marker
 * is replaced, at its own descriptor number, by the connection it passes,
 * as the kernel would have accepted that one:
 *
 * - SOCK_CLOEXEC and SOCK_NONBLOCK applied to it;
 * - the peer's address its client's (getpeername of the connection, what
 *   the kernel's accept gives for a Unix socket), cut to the caller's
 *   length, the full length in *addrlen; addr NULL taken as the kernel
 *   does;
 * - EINVAL, EFAULT: the kernel's own, for the marker (a bad addrlen loses
 *   it, and what it passes, as the kernel loses the connection).
 *
 * Signals are blocked while a marker is taken apart, so that a checkpoint
 * never finds one half-way in the program's table.  Not seen: accept by
 * raw system calls or io_uring (the program gets the marker: a connection
 * whose one message is CO_HELD_MAGIC passing a socket, then its end).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include "agent.h"
#include "held.h"
#include "sys.h"
#include "util.h"

DECL(int, accept, int, struct sockaddr *, socklen_t *);
DECL(int, accept4, int, struct sockaddr *, socklen_t *, int);

/*
 * Say in the table that this process accepts through libc: only then may
 * a live checkpoint take its backlog connections to give them back
 * (unix.c's take_backlog), as a program that accepts by raw system calls
 * would get the markers themselves.
 */
static void note_accepts(void)
{
	struct co_table *t = co_agent.table;
	if (t && co_agent.slot >= 0 && !__atomic_load_n(&t->p[co_agent.slot].accepts, __ATOMIC_RELAXED))
		__atomic_store_n(&t->p[co_agent.slot].accepts, 1, __ATOMIC_RELEASE);
}

/* Are there markers in the group's backlogs? */
static int markers(void)
{
	const struct co_table *t = co_agent.table;
	return t && __atomic_load_n(&t->held_conns, __ATOMIC_ACQUIRE);
}

/* The caller's *alen before the kernel writes it; -1 when there is none to read (the kernel said so). */
static long addr_room(const struct sockaddr *addr, const socklen_t *alen)
{
	socklen_t n;
	if (!addr || !alen || !markers() || co_user_copy(&n, alen, sizeof(n), 0) < 0)
		return -1;
	return (long)n;
}

/*
 * fd, just accepted with flags: when it is a marker, the connection it
 * passes put at fd in its place, the peer's address (room: the caller's
 * *alen) written as the kernel writes it.  What accept returns.
 */
static int unmark(int fd, int flags, struct sockaddr *addr, socklen_t *alen, long room)
{
	if (fd < 0 || !markers())
		return fd;
	uint64_t old = co_block_all();
	int c = co_held_unmark(fd, 1);
	if (c == -1) { /* a connection of the program's own */
		co_unblock(old);
		return fd;
	}
	co_held_taken(&co_agent.table->held_conns);
	long r = c >= 0 ? co_sys3(SYS_dup3, c, fd, flags & SOCK_CLOEXEC ? O_CLOEXEC : 0) : -EMFILE;
	if (c >= 0)
		co_close(c);
	if (r >= 0)
		r = co_fcntl(fd, F_SETFL, flags & SOCK_NONBLOCK ? O_NONBLOCK : 0);
	if (r >= 0 && room >= 0) {
		struct sockaddr_un a;
		socklen_t al = sizeof(a);
		if (co_sys3(SYS_getpeername, fd, CO_L(&a), CO_L(&al)) < 0)
			al = sizeof(sa_family_t), a.sun_family = AF_UNIX; /* its client has no name left */
		/* the kernel checked both for the marker; our copy out cannot fail where its did not */
		co_user_copy(addr, &a, (size_t)room < al ? (size_t)room : al, 1);
		co_user_copy(alen, &al, sizeof(al), 1);
	}
	co_unblock(old);
	if (r < 0) { /* the connection could not be had: gone, as the kernel's would be */
		co_close(fd);
		errno = (int)-r;
		return -1;
	}
	return fd;
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *alen)
{
	ENSURE(accept);
	note_accepts();
	long room = addr_room(addr, alen);
	return unmark(CO_RESTARTED(int, REAL(accept)(fd, addr, alen)), 0, addr, alen, room);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
	ENSURE(accept4);
	note_accepts();
	long room = addr_room(addr, alen);
	return unmark(CO_RESTARTED(int, REAL(accept4)(fd, addr, alen, flags)), flags, addr, alen, room);
}
