/*
 * scm_rights - a descriptor in flight: one end of a socket pair carries a
 * message with an SCM_RIGHTS descriptor (/dev/null) that nobody has read
 * for two seconds.  cohort cannot restore a character device in flight
 * (it restores pipes, sockets and the other kinds it captures): the
 * checkpoint must fail saying so, and the program must then receive the
 * descriptor intact and finish as a straight run does.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

int main(void)
{
	t_prog = "scm_rights";
	int sv[2];
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	int f = open("/dev/null", O_RDONLY);
	SYSCHK(f);
	char c = 'x';
	struct iovec iov = { &c, 1 };
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cb;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b, .msg_controllen = sizeof(cb.b) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &f, sizeof(f));
	CHECK(sendmsg(sv[0], &mh, 0) == 1, "sendmsg failed");
	close(f);
	puts("sent");
	fflush(stdout);
	t_sleep_ms(2000);
	char r = 0;
	iov.iov_base = &r;
	mh.msg_controllen = sizeof(cb.b);
	CHECK(recvmsg(sv[1], &mh, 0) == 1 && r == 'x', "recvmsg failed");
	cm = CMSG_FIRSTHDR(&mh);
	CHECK(cm && cm->cmsg_type == SCM_RIGHTS, "the descriptor did not arrive");
	int got;
	memcpy(&got, CMSG_DATA(cm), sizeof(got));
	struct stat a, b;
	SYSCHK(fstat(got, &a));
	SYSCHK(stat("/dev/null", &b));
	CHECK(a.st_rdev == b.st_rdev, "the descriptor that arrived is not /dev/null");
	puts("RESULT received /dev/null");
	return 0;
}
