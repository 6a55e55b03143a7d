/*
 * held.h - the marker of a backlog connection a checkpoint gave back
 * (struct co_held_conn, proto.h): made by the coordinator
 * (src/kinds/unix_backlog.c), taken apart by the agent's accept
 * (src/agent/accept.c) and by a later checkpoint that finds it still
 * waiting in the backlog.  One copy for both; raw system calls only, as
 * the agent's code is.
 */
#ifndef COHORT_HELD_H
#define COHORT_HELD_H

#include <sys/socket.h>
#include "proto.h"
#include "sys.h"
#include "util.h"

/*
 * s, a connection just accepted: when it is a marker, its message is read
 * away and the connection it passes returned (a new descriptor, the lowest
 * free number, close-on-exec when cloexec); -1 when s is not a marker
 * (nothing of it read: a peek); -2 when it is one whose connection cannot
 * be received (no descriptor free: the kernel closed it).
 */
static inline int co_held_unmark(int s, int cloexec)
{
	struct co_held_conn m;
	long n = co_sys6(SYS_recvfrom, s, CO_L(&m), sizeof(m), MSG_PEEK | MSG_DONTWAIT, 0, 0);
	if (n != (long)sizeof(m) || co_memcmp(m.magic, CO_HELD_MAGIC, sizeof(m.magic)))
		return -1;
	/* room for the descriptor, and for credentials when the listener has SO_PASSCRED */
	union {
		char b[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b, .msg_controllen = sizeof(cb.b) };
	n = co_sys3(SYS_recvmsg, s, CO_L(&mh), MSG_DONTWAIT | (cloexec ? MSG_CMSG_CLOEXEC : 0));
	if (n != (long)sizeof(m))
		return -2;
	for (size_t off = 0; off + sizeof(struct cmsghdr) <= mh.msg_controllen;) {
		struct cmsghdr c;
		co_memcpy(&c, cb.b + off, sizeof(c));
		if (c.cmsg_len < sizeof(c))
			break;
		if (c.cmsg_level == SOL_SOCKET && c.cmsg_type == SCM_RIGHTS && c.cmsg_len == CMSG_LEN(sizeof(int))) {
			int fd;
			co_memcpy(&fd, cb.b + off + CMSG_LEN(0), sizeof(fd));
			return fd;
		}
		off += CMSG_ALIGN(c.cmsg_len);
	}
	return -2;
}

/* One marker fewer in the group (co_table.held_conns), never below 0: two may take the last at once. */
static inline void co_held_taken(uint32_t *count)
{
	uint32_t n = __atomic_load_n(count, __ATOMIC_ACQUIRE);
	while (n && !__atomic_compare_exchange_n(count, &n, n - 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

#endif
