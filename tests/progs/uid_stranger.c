/*
 * uid_stranger (a tool of the uid tests, run as root): a process of another
 * uid at a group's control socket.
 *
 *   uid_stranger outside SOCKET   outside the group: drops to 65534, the
 *       uid the group's own dropped processes have, and connects to SOCKET
 *       once for every message a member or the CLI sends (register,
 *       attach, ask for its pagemap, status, checkpoint, kill); every
 *       connection must be hung up on without an answer.
 *   uid_stranger inside           as the group's program: a child drops to
 *       65534 and asks on $COHORT_SOCK what only the CLI may ask (status,
 *       checkpoint, kill: hung up on), for its own pagemap, which it may
 *       not open itself (given: it reads it), and for another file of its
 *       /proc (refused).
 *
 * One line per question, "... ok" when the answer is the expected one;
 * exit 0 when all are.
 */
#include "common.h"
#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "../../src/common/proto.h"

#define NOBODY 65534

static int bad;

static void drop(void)
{
	gid_t g[1] = { NOBODY };
	SYSCHK(setgroups(1, g));
	SYSCHK(setresgid(NOBODY, NOBODY, NOBODY));
	SYSCHK(setresuid(NOBODY, NOBODY, NOBODY));
}

static int dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	CHECK(strlen(path) < sizeof(sa.sun_path), "socket path too long");
	strcpy(sa.sun_path, path);
	int fd = SYSCHK(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		FAIL("connect %s as uid %d: %s", path, (int)getuid(), strerror(errno));
	struct timeval tmo = { 5, 0 };
	SYSCHK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)));
	return fd;
}

/* Send one message; the answer into *a (with its descriptor, if any, in *passed): 1, 0 hung up, -1 no answer. */
static int ask(int fd, unsigned type, int64_t a, const char *text, struct co_msg *ans, int *passed)
{
	struct {
		struct co_msg m;
		char text[256];
	} q;
	memset(&q, 0, sizeof(q));
	q.m.type = type;
	q.m.a = a;
	q.m.textlen = (uint32_t)strlen(text);
	memcpy(q.text, text, q.m.textlen);
	if (send(fd, &q, sizeof(q.m) + q.m.textlen, MSG_NOSIGNAL) < 0)
		return 0; /* hung up already */
	char big[sizeof(struct co_msg) + 65536], cbuf[CO_FRAME_CBUF];
	struct iovec iov = { big, sizeof(big) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	*passed = -1;
	if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
		return 0;
	if (n < 0)
		return -1;
	memcpy(ans, big, sizeof(*ans));
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(passed, CMSG_DATA(c), sizeof(int));
	return 1;
}

/* A question that must be hung up on. */
static void refused(const char *who, const char *path, const char *what, unsigned type, int64_t a, const char *text)
{
	struct co_msg ans;
	int passed, fd = dial(path);
	int r = ask(fd, type, a, text, &ans, &passed);
	close(fd);
	if (passed >= 0)
		close(passed);
	if (r == 0) {
		printf("%s %s: hung up on, ok\n", who, what);
		return;
	}
	printf("%s %s: %s\n", who, what, r > 0 ? "ANSWERED" : "neither answered nor hung up on within 5 s");
	bad = 1;
}

static int outside(const char *path)
{
	drop();
	char exe[64];
	t_fmt(exe, sizeof(exe), "/bin/true");
	refused("outside", path, "register", CO_M_REGISTER, getpid(), exe);
	refused("outside", path, "attach", CO_M_ATTACH, getpid(), "");
	refused("outside", path, "its pagemap", CO_M_PROCFD, 0, "pagemap");
	refused("outside", path, "status", CO_M_STATUS_REQ, 0, "");
	refused("outside", path, "checkpoint", CO_M_CKPT_REQ, 0, "");
	refused("outside", path, "kill", CO_M_KILL_REQ, SIGKILL, "");
	return bad;
}

/* In the group, as 65534: its pagemap (given), another /proc file (refused), requests (hung up on). */
static int inside_child(const char *path)
{
	drop();
	errno = 0;
	int own = open("/proc/self/pagemap", O_RDONLY);
	printf("inside: opens its own pagemap itself: %s\n", own < 0 && errno == EACCES ? "EACCES, ok" : "NOT REFUSED");
	bad |= !(own < 0 && errno == EACCES);
	refused("inside", path, "status", CO_M_STATUS_REQ, 0, "");
	refused("inside", path, "checkpoint", CO_M_CKPT_REQ, 0, "");
	refused("inside", path, "kill", CO_M_KILL_REQ, SIGKILL, "");

	struct co_msg ans;
	int passed, fd = dial(path);
	int r = ask(fd, CO_M_PROCFD, 0, "pagemap", &ans, &passed);
	close(fd);
	uint64_t e = 0;
	int ok = r > 0 && ans.type == CO_M_PROCFILE && ans.a == 0 && passed >= 0;
	static volatile char page[4096] __attribute__((aligned(4096)));
	page[0] = 1; /* present */
	if (ok) {
		off_t at = (off_t)((uintptr_t)page / 4096 * 8);
		ok = pread(passed, &e, sizeof(e), at) == (ssize_t)sizeof(e) && (e >> 63) == 1 &&
		     (e & ((1ULL << 55) - 1)) == 0; /* present, and no page frame number shown */
	}
	if (passed >= 0)
		close(passed);
	printf("inside: the coordinator opens its pagemap for it: %s\n", ok ? "ok" : "NOT AS EXPECTED");
	bad |= !ok;

	fd = dial(path);
	r = ask(fd, CO_M_PROCFD, 0, "mem", &ans, &passed);
	close(fd);
	ok = r == 0 || (r > 0 && ans.type == CO_M_PROCFILE && ans.a != 0 && passed < 0);
	if (passed >= 0)
		close(passed);
	printf("inside: and not its mem: %s\n", ok ? "ok" : "GIVEN");
	bad |= !ok;
	return bad;
}

int main(int argc, char **argv)
{
	t_init("uid_stranger");
	CHECK(getuid() == 0, "uid_stranger must start as root");
	if (argc == 3 && !strcmp(argv[1], "outside"))
		return outside(argv[2]);
	CHECK(argc == 2 && !strcmp(argv[1], "inside"), "usage: uid_stranger outside SOCKET | inside");
	const char *path = getenv("COHORT_SOCK");
	CHECK(path && *path, "inside: not run by cohort (no COHORT_SOCK)");
	fflush(stdout);
	pid_t kid = SYSCHK(fork());
	if (kid == 0)
		_exit(inside_child(path));
	int st;
	CHECK(waitpid(kid, &st, 0) == kid, "waitpid: %s", strerror(errno));
	printf("RESULT %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "BAD");
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
