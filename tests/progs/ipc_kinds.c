/*
 * ipc_kinds (application group): the kernel objects two processes share
 * besides pipes, each holding data or state at any moment a checkpoint may
 * come.  A parent and one forked child share
 *   - Unix socket pairs of all three types: SOCK_STREAM (a byte stream of
 *     records of varying length), SOCK_DGRAM and SOCK_SEQPACKET (messages
 *     whose boundaries must survive: each recv must return exactly one
 *     message of the size that was sent);
 *   - an eventfd the parent adds to and the child drains (its counter is
 *     rarely zero, and above 2^32: eventfd(2)'s first count is only 32
 *     bits);
 *   - a semaphore eventfd of the parent's with a count above 2^32, one
 *     taken each step: at the end its count (fdinfo) must be exact;
 *   - an epoll set, created before the fork, watching the child's ends of
 *     the three sockets and the eventfd.
 * The parent sends step s's messages while the child reads those of step
 * s-LAG, so every socket holds queued data in flight all the time; the
 * child reports each step's digest back on the SEQPACKET pair (queued in
 * the other direction too).
 * The child also queues real-time signals with values to the parent, which
 * keeps them blocked and reads them LAG steps later through a signalfd:
 * they are pending in the parent at every checkpoint and must come back in
 * order with their values.  The parent owns two timerfds: a one-shot timer
 * an hour away, whose remaining time must only shrink and stay positive,
 * a periodic 20 ms timer whose interval must stay 20 ms and which must
 * keep firing (a blocking read returns at least one expiration), and a
 * one-shot timer that expires 50 ms after the start and is read only at
 * the end: its one expiration must still be there.
 * Output: one line per step with its digests, then RESULT.
 */
#include "common.h"
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#define STEPS 24
#define LAG 2
#define NMSG 3		/* messages per step and socket */
#define STEP_MS 110
#define EV_UNIT ((1ull << 33) + 1) /* the eventfd's additions: multiples of it, above 32 bits */
#define SEM_COUNT 5000000007ull	   /* the semaphore eventfd's first count */

static int st[2], dg[2], sq[2], efd, ep;
static int RTSIG;

/* message k of step s on socket kind c: its length and its bytes */
static size_t msg_len(int c, int s, int k) { return 1 + t_mix((uint64_t)(c * 1000 + s * 10 + k)) % 700; }
static void msg_fill(char *b, int c, int s, int k)
{
	size_t n = msg_len(c, s, k);
	for (size_t i = 0; i < n; i++)
		b[i] = (char)t_mix((uint64_t)(c * 100000 + s * 1000 + k * 100) + i);
}

static void send_step(int s)
{
	char b[800];
	/* first the eventfd: whoever has step s's messages can count on its addition */
	uint64_t add = ((uint64_t)s + 1) * EV_UNIT;
	CHECK(write(efd, &add, sizeof(add)) == (ssize_t)sizeof(add), "eventfd write: %s", strerror(errno));
	for (int k = 0; k < NMSG; k++) {
		msg_fill(b, 0, s, k);
		size_t n = msg_len(0, s, k);
		/* stream: a record is its length then its bytes */
		uint32_t len = (uint32_t)n;
		CHECK(write(st[0], &len, sizeof(len)) == (ssize_t)sizeof(len), "stream write: %s", strerror(errno));
		CHECK(write(st[0], b, n) == (ssize_t)n, "stream write: %s", strerror(errno));
		msg_fill(b, 1, s, k);
		CHECK(send(dg[0], b, msg_len(1, s, k), 0) == (ssize_t)msg_len(1, s, k), "dgram send: %s", strerror(errno));
		msg_fill(b, 2, s, k);
		CHECK(send(sq[0], b, msg_len(2, s, k), 0) == (ssize_t)msg_len(2, s, k), "seqpacket send: %s",
		      strerror(errno));
	}
}

static void read_full(int fd, void *p, size_t n, const char *what)
{
	char *c = p;
	while (n) {
		ssize_t k = read(fd, c, n);
		if (k < 0 && errno == EINTR)
			FAIL("%s: read interrupted (EINTR)", what);
		CHECK(k > 0, "%s: read returned %zd: %s", what, k, k < 0 ? strerror(errno) : "end of stream");
		c += k;
		n -= (size_t)k;
	}
}

/* what the eventfd holds now (0 when the parent has added nothing since) */
static uint64_t ev_drain(void)
{
	struct pollfd pf = { efd, POLLIN, 0 };
	uint64_t v = 0;
	if (poll(&pf, 1, 0) == 1)
		read_full(efd, &v, sizeof(v), "eventfd");
	return v;
}

/* the child: wait (epoll) for step s's messages, check them, report a digest */
static uint64_t child_step(int s, uint64_t *ev_total)
{
	char b[800], want[800];
	uint64_t h = T_FNV_INIT;
	int seen = 0;
	/* epoll must report the three sockets readable: their data is there */
	while (seen != 7) {
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, 5000);
		if (n < 0 && errno == EINTR)
			FAIL("epoll_wait interrupted (EINTR)");
		CHECK(n > 0, "step %d: epoll_wait returned %d (seen %#x): %s", s, n, seen, n < 0 ? strerror(errno) : "timeout");
		for (int i = 0; i < n; i++)
			if (evs[i].data.u32 < 3)
				seen |= 1 << evs[i].data.u32;
	}
	for (int k = 0; k < NMSG; k++) {
		uint32_t len;
		read_full(st[1], &len, sizeof(len), "stream");
		CHECK(len == msg_len(0, s, k), "step %d: stream record %d has length %u, want %zu", s, k, len, msg_len(0, s, k));
		read_full(st[1], b, len, "stream");
		msg_fill(want, 0, s, k);
		CHECK(!memcmp(b, want, len), "step %d: stream record %d differs", s, k);
		h = t_fnv(h, b, len);
		for (int c = 1; c <= 2; c++) {
			int fd = c == 1 ? dg[1] : sq[1];
			ssize_t n = recv(fd, b, sizeof(b), 0);
			if (n < 0 && errno == EINTR)
				FAIL("%s recv interrupted (EINTR)", c == 1 ? "dgram" : "seqpacket");
			CHECK(n == (ssize_t)msg_len(c, s, k), "step %d: %s message %d has %zd bytes, want %zu", s,
			      c == 1 ? "dgram" : "seqpacket", k, n, msg_len(c, s, k));
			msg_fill(want, c, s, k);
			CHECK(!memcmp(b, want, (size_t)n), "step %d: %s message %d differs", s, c == 1 ? "dgram" : "seqpacket", k);
			h = t_fnv(h, b, (size_t)n);
		}
	}
	/* the eventfd: drained every other step, so it holds a count in between */
	if (s % 2)
		*ev_total += ev_drain();
	return h;
}

static void child(pid_t parent)
{
	uint64_t ev_total = 0;
	/* LAG steps behind the parent: the sockets hold about LAG steps of messages */
	t_sleep_ms(STEP_MS * LAG);
	for (int s = 0; s < STEPS; s++) {
		t_sleep_ms(STEP_MS);
		uint64_t h = child_step(s, &ev_total);
		uint64_t rep[2] = { (uint64_t)s, h };
		CHECK(send(sq[1], rep, sizeof(rep), 0) == (ssize_t)sizeof(rep), "report send: %s", strerror(errno));
		union sigval v = { .sival_int = 1000 + s };
		CHECK(sigqueue(parent, RTSIG, v) == 0, "sigqueue: %s", strerror(errno));
	}
	/* what is left in the eventfd: the parent's additions minus what was read */
	ev_total += ev_drain();
	uint64_t want = (uint64_t)STEPS * (STEPS + 1) / 2 * EV_UNIT;
	CHECK(ev_total == want, "eventfd: read %llu in all, the parent added %llu", (unsigned long long)ev_total,
	      (unsigned long long)want);
	_exit(7);
}

/* The count and semaphore flag of eventfd fd, as the kernel shows them (fdinfo). */
static void ev_info(int fd, uint64_t *count, int *sem)
{
	char p[64], b[512];
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	int f = SYSCHK(open(p, O_RDONLY));
	ssize_t n = read(f, b, sizeof(b) - 1);
	close(f);
	CHECK(n > 0, "reading %s: %s", p, strerror(errno));
	b[n] = 0;
	const char *c = strstr(b, "eventfd-count:"), *m = strstr(b, "eventfd-semaphore:");
	CHECK(c && m, "%s shows no eventfd count or semaphore flag", p);
	*count = strtoull(c + strlen("eventfd-count:"), NULL, 16);
	*sem = atoi(m + strlen("eventfd-semaphore:"));
}

static uint64_t ts_ns(struct timespec t) { return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec; }

int main(void)
{
	t_init("ipc_kinds");
	RTSIG = SIGRTMIN + 2;
	SYSCHK(socketpair(AF_UNIX, SOCK_STREAM, 0, st));
	SYSCHK(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg));
	SYSCHK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq));
	/* a DGRAM pair queues few messages by default; LAG steps must fit */
	int big = 1 << 20;
	SYSCHK(setsockopt(dg[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)));
	SYSCHK(setsockopt(dg[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big)));
	efd = SYSCHK(eventfd(0, 0));
	int sem = SYSCHK(eventfd(0, EFD_SEMAPHORE));
	uint64_t sem_count = SEM_COUNT;
	CHECK(write(sem, &sem_count, sizeof(sem_count)) == (ssize_t)sizeof(sem_count), "eventfd write: %s", strerror(errno));
	ep = SYSCHK(epoll_create1(0));
	int watch[3] = { st[1], dg[1], sq[1] };
	for (uint32_t i = 0; i < 3; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };
		SYSCHK(epoll_ctl(ep, EPOLL_CTL_ADD, watch[i], &e));
	}
	struct epoll_event ee = { .events = EPOLLIN, .data.u32 = 3 };
	SYSCHK(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ee));

	sigset_t rt;
	sigemptyset(&rt);
	sigaddset(&rt, RTSIG);
	SYSCHK(sigprocmask(SIG_BLOCK, &rt, NULL));
	int sfd = SYSCHK(signalfd(-1, &rt, 0));
	int once = SYSCHK(timerfd_create(CLOCK_MONOTONIC, 0));
	int tick = SYSCHK(timerfd_create(CLOCK_MONOTONIC, 0));
	int fired = SYSCHK(timerfd_create(CLOCK_MONOTONIC, 0));
	struct itimerspec soon = { .it_value = { 0, 50000000 } };
	SYSCHK(timerfd_settime(fired, 0, &soon, NULL));
	struct itimerspec its = { .it_value = { 3600, 0 } };
	SYSCHK(timerfd_settime(once, 0, &its, NULL));
	struct itimerspec per = { .it_interval = { 0, 20000000 }, .it_value = { 0, 20000000 } };
	SYSCHK(timerfd_settime(tick, 0, &per, NULL));

	pid_t parent = getpid();
	pid_t c = SYSCHK(fork());
	if (c == 0)
		child(parent);

	uint64_t total = T_FNV_INIT, last_left = 3600ull * 1000000000ull;
	int next_sig = 0;
	for (int s = 0; s < STEPS; s++) {
		send_step(s);
		t_sleep_ms(STEP_MS);
		/* the child's reports arrive in order; step s-LAG's must be here by now or soon */
		if (s >= LAG) {
			uint64_t rep[2];
			ssize_t n = recv(sq[0], rep, sizeof(rep), 0);
			if (n < 0 && errno == EINTR)
				FAIL("report recv interrupted (EINTR)");
			CHECK(n == (ssize_t)sizeof(rep), "report: recv returned %zd", n);
			CHECK(rep[0] == (uint64_t)(s - LAG), "report for step %llu, expected %d", (unsigned long long)rep[0], s - LAG);
			total = t_fnv_u64(total, rep[1]);
			printf("step %d ok: child digest of step %d %016llx\n", s, s - LAG, (unsigned long long)rep[1]);
			/* the child's signals, LAG steps behind: still pending until read here */
			struct signalfd_siginfo si;
			read_full(sfd, &si, sizeof(si), "signalfd");
			CHECK((int)si.ssi_signo == RTSIG && si.ssi_int == 1000 + next_sig,
			      "signalfd: signal %u value %d, expected %d value %d", si.ssi_signo, si.ssi_int, RTSIG, 1000 + next_sig);
			CHECK((pid_t)si.ssi_pid == c, "signalfd: sender %u, expected the child %d", si.ssi_pid, (int)c);
			next_sig++;
		}
		struct itimerspec now;
		SYSCHK(timerfd_gettime(once, &now));
		uint64_t left = ts_ns(now.it_value);
		CHECK(left > 0 && left <= last_left, "one-shot timerfd: %llu ns left, %llu before", (unsigned long long)left,
		      (unsigned long long)last_left);
		CHECK(ts_ns(now.it_interval) == 0, "one-shot timerfd got an interval");
		last_left = left;
		SYSCHK(timerfd_gettime(tick, &now));
		CHECK(ts_ns(now.it_interval) == 20000000, "periodic timerfd: interval %llu ns, want 20 ms",
		      (unsigned long long)ts_ns(now.it_interval));
		uint64_t exp, one;
		read_full(sem, &one, sizeof(one), "semaphore eventfd");
		CHECK(one == 1, "semaphore eventfd: a read returned %llu, not 1", (unsigned long long)one);
		read_full(tick, &exp, sizeof(exp), "periodic timerfd");
		CHECK(exp >= 1, "periodic timerfd: %llu expirations", (unsigned long long)exp);
		fflush(stdout);
	}
	for (int s = STEPS - LAG; s < STEPS; s++) {
		uint64_t rep[2];
		CHECK(recv(sq[0], rep, sizeof(rep), 0) == (ssize_t)sizeof(rep) && rep[0] == (uint64_t)s,
		      "last reports: step %d missing", s);
		total = t_fnv_u64(total, rep[1]);
		struct signalfd_siginfo si;
		read_full(sfd, &si, sizeof(si), "signalfd");
		CHECK(si.ssi_int == 1000 + next_sig, "signalfd: value %d, expected %d", si.ssi_int, 1000 + next_sig);
		next_sig++;
	}
	/* the timer that expired 50 ms after the start was never read: one expiration waits */
	struct pollfd pf = { fired, POLLIN, 0 };
	CHECK(poll(&pf, 1, 0) == 1, "the expired one-shot timerfd is not readable: its expiration was lost");
	uint64_t nexp;
	read_full(fired, &nexp, sizeof(nexp), "expired timerfd");
	CHECK(nexp == 1, "the expired one-shot timerfd reports %llu expirations", (unsigned long long)nexp);
	/* the semaphore eventfd lost one per step, nothing else: its count and flag exact */
	uint64_t left;
	int is_sem;
	ev_info(sem, &left, &is_sem);
	CHECK(left == SEM_COUNT - STEPS && is_sem == 1, "semaphore eventfd: count %llu (semaphore %d), want %llu (1)",
	      (unsigned long long)left, is_sem, SEM_COUNT - STEPS);
	int status;
	SYSCHK(waitpid(c, &status, 0));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7, "child status %#x, expected exit 7", status);
	printf("RESULT %016llx signals %d\n", (unsigned long long)total, next_sig);
	return 0;
}
