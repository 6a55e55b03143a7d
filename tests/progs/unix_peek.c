/*
 * unix_peek - what only a peek at a queue can tell, at checkpoints taken
 * while the same messages stay queued (src/kinds/unix_queue.c, issue 13):
 *  - on two streams (one with SO_PASSCRED, and SO_PEEK_OFF, the program
 *    part-way through a peek when checkpointed), bytes written in two
 *    writes, then a message that passes a pipe, then more bytes: a read
 *    of exactly the bytes before gets no descriptor, the next read (room
 *    to spare) exactly the message with the pipe, and the bytes after come
 *    alone; the credentials are the writer's uid; the next peek goes on
 *    where the last one stopped;
 *  - on a datagram pair and a seqpacket pair (with SO_PASSCRED), messages
 *    of no bytes between others, so not at the head: each comes back in
 *    place (a read returns 0 for it), however many checkpoints peeked at
 *    it before, with its credentials;
 *  - the same on a named datagram socket that two others send to (one
 *    bound to a path, one unnamed): each message in place, from the
 *    sender it came from (recvfrom's address).
 * Step s queues, prints "STEP s queued", waits for the file go.s (see
 * t_wait_go), then reads and checks all it queued.  Prints "step s ok"
 * and a RESULT.
 */
#include "common.h"
#include <sys/socket.h>
#include <sys/un.h>

#define STEPS 3

static uint64_t h = T_FNV_INIT;

static void send_fd(int s, const char *text, int fd)
{
	struct iovec iov = { (void *)text, strlen(text) };
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cb;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b, .msg_controllen = sizeof(cb.b) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	CHECK(sendmsg(s, &mh, MSG_NOSIGNAL) == (ssize_t)iov.iov_len, "sendmsg: %s", strerror(errno));
}

/*
 * One read of room bytes from s: it must be exactly text, with a
 * descriptor when fd is not NULL (into *fd) and none otherwise; creds: it
 * must carry the credentials of our uid, and our pid (1 after a restart:
 * the group's init sends the queued messages again, see
 * docs/architecture.md "Credentials"; never one outside the group's pid
 * namespace, 0 here: a checkpoint that sent them again as its own).
 */
static void read_exact(int s, size_t room, const char *text, int *fd, int creds, const char *what)
{
	char buf[256];
	union {
		char b[CMSG_SPACE(4 * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { buf, room };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b, .msg_controllen = sizeof(cb.b) };
	ssize_t r = recvmsg(s, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	CHECK(r == (ssize_t)strlen(text) && !memcmp(buf, text, (size_t)r), "%s: expected \"%s\", got %zd bytes \"%.*s\" (%s)",
	      what, text, r, (int)(r > 0 ? r : 0), buf, r < 0 ? strerror(errno) : "");
	int got = 0, cred = 0, pid = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			got += (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			if (fd)
				memcpy(fd, CMSG_DATA(c), sizeof(int));
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred u;
			memcpy(&u, CMSG_DATA(c), sizeof(u));
			cred = u.uid == getuid() && (u.pid == getpid() || u.pid == 1) ? 1 : -1;
			pid = u.pid;
		}
	CHECK(got == (fd ? 1 : 0), "%s: \"%s\" came with %d descriptors, not %d", what, text, got, fd ? 1 : 0);
	CHECK(cred == (creds ? 1 : 0), "%s: \"%s\": credentials %s (pid %d)", what, text,
	      cred < 0 ? "of another uid or pid" : cred ? "the program never asked for" : "missing", pid);
	h = t_fnv(h, buf, (size_t)r);
	h = t_fnv_u64(h, (uint64_t)got);
}

/* Step s on the stream w -> r: bytes in two writes, a pipe passed, bytes after. */
static void stream_queue(int w, int s)
{
	char t[64];
	int pp[2];
	snprintf(t, sizeof(t), "pre %d,", s);
	t_write_all(w, t, strlen(t), -1);
	snprintf(t, sizeof(t), "and more %d;", s);
	t_write_all(w, t, strlen(t), -1);
	SYSCHK(pipe(pp));
	snprintf(t, sizeof(t), "piped %d", s);
	t_write_all(pp[1], t, strlen(t), -1);
	close(pp[1]);
	snprintf(t, sizeof(t), "PIPE %d", s);
	send_fd(w, t, pp[0]);
	close(pp[0]);
	snprintf(t, sizeof(t), "post %d.", s);
	t_write_all(w, t, strlen(t), -1);
}

static void stream_check(int r, int s, int creds, const char *what)
{
	char pre[64], t[64], c;
	int fd = -1;
	snprintf(pre, sizeof(pre), "pre %d,and more %d;", s, s);
	read_exact(r, strlen(pre), pre, NULL, creds, what);
	snprintf(t, sizeof(t), "PIPE %d", s);
	read_exact(r, 200, t, &fd, creds, what);
	snprintf(t, sizeof(t), "piped %d", s);
	char buf[64];
	t_read_all(fd, buf, strlen(t), -1);
	CHECK(!memcmp(buf, t, strlen(t)) && read(fd, &c, 1) == 0, "%s: the passed pipe does not hold \"%s\"", what, t);
	close(fd);
	snprintf(t, sizeof(t), "post %d.", s);
	read_exact(r, 200, t, NULL, creds, what);
	CHECK(recv(r, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "%s: more queued than sent", what);
}

/* A peek of 3 bytes on s (SO_PEEK_OFF at off) gives text, and moves the offset on. */
static void peek3(int s, int off, const char *text)
{
	char buf[4];
	int now = -2;
	socklen_t l = sizeof(now);
	SYSCHK(getsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &now, &l));
	CHECK(now == off, "SO_PEEK_OFF is %d, not %d", now, off);
	ssize_t r = recv(s, buf, 3, MSG_PEEK | MSG_DONTWAIT);
	CHECK(r == 3 && !memcmp(buf, text, 3), "a peek at offset %d gave %zd bytes \"%.*s\", not \"%s\"", off, r,
	      (int)(r > 0 ? r : 0), buf, text);
	h = t_fnv(h, buf, 3);
}

/* Step s on a datagram or seqpacket pair: messages of no bytes between others, none at the head. */
static void dgram_queue(int w, int s)
{
	char t[32];
	snprintf(t, sizeof(t), "first %d", s);
	SYSCHK(send(w, t, strlen(t), 0));
	SYSCHK(send(w, "", 0, 0));
	SYSCHK(send(w, "", 0, 0));
	snprintf(t, sizeof(t), "second %d", s);
	SYSCHK(send(w, t, strlen(t), 0));
	SYSCHK(send(w, "", 0, 0));
}

static void dgram_check(int r, int s, int creds, const char *what)
{
	char t[32], c;
	snprintf(t, sizeof(t), "first %d", s);
	read_exact(r, 32, t, NULL, creds, what);
	read_exact(r, 32, "", NULL, creds, what);
	read_exact(r, 32, "", NULL, creds, what);
	snprintf(t, sizeof(t), "second %d", s);
	read_exact(r, 32, t, NULL, creds, what);
	read_exact(r, 32, "", NULL, creds, what);
	CHECK(recv(r, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "%s: more queued than sent", what);
}

/* A datagram socket bound to dir/NAME.sock, or unbound (name NULL); its address into *a. */
static int dgram_at(const char *name, struct sockaddr_un *a)
{
	const char *dir = getenv("COHORT_TEST_TMP");
	int s = SYSCHK(socket(AF_UNIX, SOCK_DGRAM, 0));
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (name) {
		t_fmt(a->sun_path, sizeof(a->sun_path), "%s/%s%d.sock", dir && *dir ? dir : "/tmp", name, (int)getpid());
		unlink(a->sun_path);
		SYSCHK(bind(s, (struct sockaddr *)a, sizeof(*a)));
	}
	return s;
}

/* Step s on the named socket (at to) from two senders: messages of no bytes between others, from both. */
static void many_queue(int named, int unnamed, const struct sockaddr_un *to, int s)
{
	char t[32];
	const struct sockaddr *ta = (const struct sockaddr *)to;
	snprintf(t, sizeof(t), "named %d", s);
	SYSCHK(sendto(named, t, strlen(t), 0, ta, sizeof(*to)));
	SYSCHK(sendto(unnamed, "", 0, 0, ta, sizeof(*to)));
	SYSCHK(sendto(named, "", 0, 0, ta, sizeof(*to)));
	snprintf(t, sizeof(t), "unnamed %d", s);
	SYSCHK(sendto(unnamed, t, strlen(t), 0, ta, sizeof(*to)));
	SYSCHK(sendto(named, "", 0, 0, ta, sizeof(*to)));
}

/* The next message on r: exactly text, from (NULL: an unnamed sender). */
static void from_exact(int r, const char *text, const struct sockaddr_un *from)
{
	char buf[64];
	struct sockaddr_un a;
	socklen_t al = sizeof(a);
	ssize_t n = recvfrom(r, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&a, &al);
	CHECK(n == (ssize_t)strlen(text) && !memcmp(buf, text, (size_t)n), "named datagram: expected \"%s\", got %zd (%s)",
	      text, n, n < 0 ? strerror(errno) : "");
	if (from)
		CHECK(al > sizeof(sa_family_t) && !strcmp(a.sun_path, from->sun_path),
		      "named datagram: \"%s\" came from '%s', not '%s'", text, al > sizeof(sa_family_t) ? a.sun_path : "",
		      from->sun_path);
	else
		CHECK(al <= sizeof(sa_family_t), "named datagram: \"%s\" came from a named sender (%u bytes)", text,
		      (unsigned)al);
	h = t_fnv(h, buf, (size_t)n);
	h = t_fnv_u64(h, (uint64_t)n);
}

static void many_check(int r, const struct sockaddr_un *named, int s)
{
	char t[32], c;
	snprintf(t, sizeof(t), "named %d", s);
	from_exact(r, t, named);
	from_exact(r, "", NULL);
	from_exact(r, "", named);
	snprintf(t, sizeof(t), "unnamed %d", s);
	from_exact(r, t, NULL);
	from_exact(r, "", named);
	CHECK(recv(r, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "named datagram: more queued than sent");
}

int main(void)
{
	t_init("unix_peek");
	int a[2], b[2], d[2], q[2], one = 1, zero = 0;
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, a));
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, b));
	SYSCHK(socketpair(AF_UNIX, SOCK_DGRAM, 0, d));
	SYSCHK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, q));
	SYSCHK(setsockopt(b[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
	SYSCHK(setsockopt(q[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
	SYSCHK(setsockopt(b[1], SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)));
	struct sockaddr_un ra, na, ua;
	int rx = dgram_at("pr", &ra), named = dgram_at("pn", &na), unnamed = dgram_at(NULL, &ua);
	for (int s = 0; s < STEPS; s++) {
		stream_queue(a[0], s);
		stream_queue(b[0], s);
		dgram_queue(d[0], s);
		dgram_queue(q[0], s);
		many_queue(named, unnamed, &ra, s);
		peek3(b[1], 0, "pre");
		printf("STEP %d queued\n", s);
		fflush(stdout);
		t_wait_go(s);
		char t[8];
		snprintf(t, sizeof(t), " %d,", s);
		peek3(b[1], 3, t);
		stream_check(a[1], s, 0, "stream");
		stream_check(b[1], s, 1, "stream with SO_PASSCRED");
		dgram_check(d[1], s, 0, "datagram");
		dgram_check(q[1], s, 1, "seqpacket with SO_PASSCRED");
		many_check(rx, &na, s);
		printf("step %d ok\n", s);
	}
	printf("RESULT %llx\n", (unsigned long long)h);
	return 0;
}
