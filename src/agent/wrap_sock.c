/*
 * wrap_sock.c - socket calls a checkpoint would break (see wrap.c).
 *
 * With a timeout set on a socket (SO_RCVTIMEO, SO_SNDTIMEO) the kernel
 * never restarts a call that waits on it after a signal handler ran, even
 * under SA_RESTART (signal(7)): accept, connect, the recv and send
 * families, and read and write on the socket, fail with EINTR.  A
 * program that set a timeout expects EAGAIN when it runs out, and may
 * take EINTR for a broken connection: when our checkpoint interrupted
 * the call (co_epoch() moved), it is made again here, as the kernel makes
 * a restartable one again.  Its timeout, which is the socket's and not
 * the call's, then starts anew: the call may wait up to its timeout
 * longer than it would have.  (A connect made again goes on waiting for
 * the connection it started, as the kernel's own restart of it does.)
 * Any other EINTR (the program's own signals) is the program's.
 *
 * Every wrapper hands its arguments to the real call untouched, so each
 * answers as the kernel would, NULL and bad pointers included.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "agent.h"

DECL(int, connect, int, const struct sockaddr *, socklen_t);
DECL(ssize_t, recv, int, void *, size_t, int);
DECL(ssize_t, __recv_chk, int, void *, size_t, size_t, int);
DECL(ssize_t, recvfrom, int, void *, size_t, int, struct sockaddr *, socklen_t *);
DECL(ssize_t, __recvfrom_chk, int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);
DECL(ssize_t, recvmsg, int, struct msghdr *, int);
DECL(int, recvmmsg, int, struct mmsghdr *, unsigned int, int, struct timespec *);
DECL(ssize_t, send, int, const void *, size_t, int);
DECL(ssize_t, sendto, int, const void *, size_t, int, const struct sockaddr *, socklen_t);
DECL(ssize_t, sendmsg, int, const struct msghdr *, int);
DECL(int, sendmmsg, int, struct mmsghdr *, unsigned int, int);
DECL(ssize_t, write, int, const void *, size_t);
DECL(ssize_t, writev, int, const struct iovec *, int);

/* Loaded with the agent: a wrapper may run in a signal handler, where dlsym must not. */
void co_wrap_sock_init(void)
{
	LOAD(connect);
	LOAD(recv);
	LOAD(__recv_chk);
	LOAD(recvfrom);
	LOAD(__recvfrom_chk);
	LOAD(recvmsg);
	LOAD(recvmmsg);
	LOAD(send);
	LOAD(sendto);
	LOAD(sendmsg);
	LOAD(sendmmsg);
	LOAD(write);
	LOAD(writev);
}

/* (accept, accept4: accept.c; read, readv, __read_chk: inotify.c, which wraps them already) */
#define RESTARTED(type, name, ...)                                 \
	do {                                                       \
		ENSURE(name);                                      \
		return CO_RESTARTED(type, REAL(name)(__VA_ARGS__)); \
	} while (0)

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	RESTARTED(int, connect, fd, addr, len);
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	RESTARTED(ssize_t, recv, fd, buf, n, flags);
}

/* (what a program built with _FORTIFY_SOURCE calls for recv and recvfrom) */
EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	RESTARTED(ssize_t, __recv_chk, fd, buf, n, buflen, flags);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *len)
{
	RESTARTED(ssize_t, recvfrom, fd, buf, n, flags, addr, len);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *addr,
			      socklen_t *len)
{
	RESTARTED(ssize_t, __recvfrom_chk, fd, buf, n, buflen, flags, addr, len);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	RESTARTED(ssize_t, recvmsg, fd, msg, flags);
}

EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags, struct timespec *tmo)
{
	RESTARTED(int, recvmmsg, fd, v, n, flags, tmo);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	RESTARTED(ssize_t, send, fd, buf, n, flags);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len)
{
	RESTARTED(ssize_t, sendto, fd, buf, n, flags, addr, len);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	RESTARTED(ssize_t, sendmsg, fd, msg, flags);
}

EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	RESTARTED(int, sendmmsg, fd, v, n, flags);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	RESTARTED(ssize_t, write, fd, buf, n);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	RESTARTED(ssize_t, writev, fd, iov, n);
}
