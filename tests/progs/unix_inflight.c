/*
 * unix_inflight - descriptors in flight (SCM_RIGHTS) at every checkpoint.
 *
 * Without arguments, one process: every step it makes a pipe (with data
 * in it, its write end closed) and a socket pair (data queued on the end
 * it passes), and sends both ends on a seqpacket channel between two
 * plain messages, and again (a second pipe, the same socket) on a stream
 * channel, between plain bytes, closing its own copies: they exist only
 * in flight.  It then reads the previous step's messages: the
 * descriptors must come with their message exactly (on the stream: not
 * with the bytes before, read alone, and a read with room to spare ends
 * where the message ends; a checkpoint reads the stream to tell where
 * they begin, src/kinds/unix_queue.c, and a live one gives it back at
 * once: the run goes on), the pipes must hold their data and then end, the
 * socket its queued data and answer on the end kept.
 *
 * "workers" (or UNIX_INFLIGHT_WORKERS set): a parent forks two workers and passes each a job every step
 * (a pipe's read end holding the job, and an eventfd to post the result
 * to), always one job ahead, so that one is in flight while the worker
 * works on the other; the parent checks every result.
 * Prints "step N ok" and a RESULT.
 */
#include "common.h"
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define STEPS 12

static uint64_t h = T_FNV_INIT;

static void send_fds(int s, const char *text, const int *fds, int n)
{
	struct iovec iov = { (void *)text, strlen(text) };
	union {
		char b[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} cb;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (n) {
		mh.msg_control = cb.b;
		mh.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
	}
	CHECK(sendmsg(s, &mh, MSG_NOSIGNAL) == (ssize_t)iov.iov_len, "sendmsg: %s", strerror(errno));
}

/*
 * The next message: exactly text, with exactly n descriptors (into fds).
 * One that passes descriptors is read with room to spare: on a stream the
 * read must end where it ends, not run on into the bytes after it.
 */
static void recv_fds(int s, const char *text, int *fds, int n, int wait)
{
	char buf[128];
	struct iovec iov = { buf, n ? sizeof(buf) : strlen(text) };
	union {
		char b[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} cb;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b, .msg_controllen = sizeof(cb.b) };
	ssize_t r = recvmsg(s, &mh, MSG_CMSG_CLOEXEC | (n ? 0 : MSG_WAITALL) | (wait ? 0 : MSG_DONTWAIT));
	CHECK(r == (ssize_t)strlen(text) && !memcmp(buf, text, (size_t)r), "expected \"%s\", got %zd bytes (%s)", text, r,
	      r < 0 ? strerror(errno) : "");
	int got = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			CHECK(got <= n, "\"%s\" came with %d descriptors", text, got);
			memcpy(fds, CMSG_DATA(c), (size_t)got * sizeof(int));
		}
	CHECK(got == n, "\"%s\" came with %d descriptors, not %d", text, got, n);
	h = t_fnv(h, buf, (size_t)r);
}

static void expect(int fd, const char *text, const char *what)
{
	char buf[128];
	size_t n = strlen(text);
	t_read_all(fd, buf, n, -1);
	CHECK(!memcmp(buf, text, n), "%s: expected \"%s\"", what, text);
	h = t_fnv(h, buf, n);
}

static void check_kind(int fd, mode_t kind, const char *what)
{
	struct stat st;
	SYSCHK(fstat(fd, &st));
	CHECK((st.st_mode & S_IFMT) == kind, "%s: a descriptor of the wrong kind (mode %o)", what, st.st_mode);
}

/* A pipe holding "pipe S K", its write end closed: its read end */
static int filled_pipe(int s, int k)
{
	int pp[2];
	char t[64];
	SYSCHK(pipe(pp));
	snprintf(t, sizeof(t), "pipe %d %d", s, k);
	t_write_all(pp[1], t, strlen(t), -1);
	close(pp[1]);
	return pp[0];
}

static void check_pipe(int fd, int s, int k)
{
	char t[64], c;
	check_kind(fd, S_IFIFO, "passed pipe");
	snprintf(t, sizeof(t), "pipe %d %d", s, k);
	expect(fd, t, "passed pipe");
	CHECK(read(fd, &c, 1) == 0, "the passed pipe does not end");
	close(fd);
}

static void one_process(void)
{
	int ch[2], cs[2], kept = -1;
	SYSCHK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ch));
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, cs));
	for (int s = 0; s < STEPS; s++) {
		char t[64];
		int sp[2];
		SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
		snprintf(t, sizeof(t), "queued %d", s);
		t_write_all(sp[0], t, strlen(t), -1);
		int pass[2] = { filled_pipe(s, 0), sp[1] };
		snprintf(t, sizeof(t), "before %d", s);
		send_fds(ch[0], t, NULL, 0);
		snprintf(t, sizeof(t), "with %d", s);
		send_fds(ch[0], t, pass, 2);
		snprintf(t, sizeof(t), "after %d", s);
		send_fds(ch[0], t, NULL, 0);
		close(pass[0]);
		pass[0] = filled_pipe(s, 1);
		snprintf(t, sizeof(t), "ahead %d", s);
		send_fds(cs[0], t, NULL, 0);
		snprintf(t, sizeof(t), "stream %d", s);
		send_fds(cs[0], t, pass, 2);
		snprintf(t, sizeof(t), "bytes %d", s);
		send_fds(cs[0], t, NULL, 0);
		close(pass[0]);
		close(sp[1]);
		if (s > 0) {
			int got[4];
			snprintf(t, sizeof(t), "before %d", s - 1);
			recv_fds(ch[1], t, got, 0, 0);
			snprintf(t, sizeof(t), "with %d", s - 1);
			recv_fds(ch[1], t, got, 2, 0);
			snprintf(t, sizeof(t), "after %d", s - 1);
			recv_fds(ch[1], t, got + 2, 0, 0);
			snprintf(t, sizeof(t), "ahead %d", s - 1);
			recv_fds(cs[1], t, NULL, 0, 0);
			snprintf(t, sizeof(t), "stream %d", s - 1);
			recv_fds(cs[1], t, got + 2, 2, 0);
			snprintf(t, sizeof(t), "bytes %d", s - 1);
			recv_fds(cs[1], t, NULL, 0, 0);
			check_pipe(got[0], s - 1, 0);
			check_pipe(got[2], s - 1, 1);
			struct stat a, b;
			SYSCHK(fstat(got[1], &a));
			SYSCHK(fstat(got[3], &b));
			CHECK(S_ISSOCK(a.st_mode) && a.st_ino == b.st_ino, "the socket passed twice is not one socket");
			close(got[3]);
			snprintf(t, sizeof(t), "queued %d", s - 1);
			expect(got[1], t, "passed socket");
			snprintf(t, sizeof(t), "answer %d", s - 1);
			t_write_all(got[1], t, strlen(t), -1);
			expect(kept, t, "the end kept");
			close(got[1]);
			close(kept);
		}
		kept = sp[0];
		printf("step %d ok\n", s);
		t_sleep_ms(220);
	}
}

static void worker(int ch)
{
	for (int s = 0; s < STEPS; s++) {
		int got[2];
		char t[64];
		snprintf(t, sizeof(t), "job %d", s);
		recv_fds(ch, t, got, 2, 1);
		char job[64];
		ssize_t n = read(got[0], job, sizeof(job));
		CHECK(n > 0, "the job's pipe is empty");
		uint64_t v = t_fnv(T_FNV_INIT, job, (size_t)n) | 1;
		SYSCHK(write(got[1], &v, sizeof(v)));
		close(got[0]);
		close(got[1]);
		t_sleep_ms(200);
	}
	_exit(0);
}

static void send_job(int ch, int w, int s, int *efd)
{
	int pp[2];
	char t[64];
	SYSCHK(pipe(pp));
	snprintf(t, sizeof(t), "work %d for %d", s, w);
	t_write_all(pp[1], t, strlen(t), -1);
	close(pp[1]);
	*efd = SYSCHK(eventfd(0, 0));
	int pass[2] = { pp[0], *efd };
	snprintf(t, sizeof(t), "job %d", s);
	send_fds(ch, t, pass, 2);
	close(pp[0]);
}

static void workers(void)
{
	int ch[2][2], efd[2][STEPS];
	pid_t pid[2];
	for (int w = 0; w < 2; w++) {
		SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, ch[w]));
		pid[w] = SYSCHK(fork());
		if (pid[w] == 0) {
			close(ch[w][0]);
			worker(ch[w][1]);
		}
		close(ch[w][1]);
		send_job(ch[w][0], w, 0, &efd[w][0]);
	}
	for (int s = 0; s < STEPS; s++) {
		for (int w = 0; w < 2; w++) {
			if (s + 1 < STEPS)
				send_job(ch[w][0], w, s + 1, &efd[w][s + 1]);
			uint64_t v;
			t_read_all(efd[w][s], &v, sizeof(v), -1);
			char t[64];
			snprintf(t, sizeof(t), "work %d for %d", s, w);
			CHECK(v == (t_fnv(T_FNV_INIT, t, strlen(t)) | 1), "worker %d: wrong result for step %d", w, s);
			h = t_fnv(h, &v, sizeof(v));
			close(efd[w][s]);
		}
		printf("step %d ok\n", s);
	}
	for (int w = 0; w < 2; w++) {
		int st;
		SYSCHK(waitpid(pid[w], &st, 0));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d ended with status %#x", w, st);
	}
}

int main(int argc, char **argv)
{
	t_init("unix_inflight");
	if ((argc > 1 && !strcmp(argv[1], "workers")) || getenv("UNIX_INFLIGHT_WORKERS"))
		workers();
	else
		one_process();
	printf("RESULT %llx\n", (unsigned long long)h);
	return 0;
}
