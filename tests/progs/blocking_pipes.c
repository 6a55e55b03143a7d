/*
 * blocking_pipes (needs group support: pipes/epoll/eventfd created inside
 * the program): blocking calls on fds the program creates itself. No call
 * may fail with EINTR, return short/early or lose/duplicate data across a
 * checkpoint/restart.
 *   - a reader blocked in read() on an empty pipe; a writer thread sends a
 *     64-byte message every ~300 ms;
 *   - a writer blocked in write() on a full pipe; a drainer thread reads 4 KiB
 *     every ~200 ms and verifies the byte stream;
 *   - epoll_wait on an epoll fd watching a pipe that is written every ~300 ms
 *     (must return the event) and a second epoll fd that never becomes ready
 *     (must time out, not earlier than requested);
 *   - read() on an eventfd, incremented by another thread every ~300 ms;
 *   - data left unread in a pipe across the checkpoint must still be there.
 */
#include "common.h"
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#define ITERS 10
#define MSG 64
#define CHUNK 4096

static int p_rd[2], p_full[2], p_ep[2], p_keep[2];
static int ep_ready, ep_never, evfd;
static atomic_int reads_done, drains_done, epoll_done, epoll_tmo_done, ev_done;

static void msg_fill(char *b, const char *kind, int i)
{
	memset(b, 0, MSG);
	snprintf(b, MSG, "%s message %d %08x", kind, i, (unsigned)t_mix((uint64_t)i + (uint64_t)kind[0]));
}

static ssize_t rd(int fd, void *b, size_t n, const char *what)
{
	ssize_t r = read(fd, b, n);

	if (r < 0 && errno == EINTR)
		FAIL("%s: read interrupted (EINTR)", what);
	CHECK(r >= 0, "%s: read: %s", what, strerror(errno));
	return r;
}

static void *reader(void *arg)
{
	char b[MSG], want[MSG];

	(void)arg;
	for (int i = 0; i < ITERS; i++) {
		ssize_t n = rd(p_rd[0], b, MSG, "pipe reader");
		CHECK(n == MSG, "pipe reader: short read %zd", n);
		msg_fill(want, "rd", i);
		CHECK(memcmp(b, want, MSG) == 0, "pipe reader: wrong message %d", i);
		atomic_fetch_add(&reads_done, 1);
	}
	return NULL;
}

static void *feeder(void *arg)
{
	char b[MSG];

	(void)arg;
	for (int i = 0; i < ITERS; i++) {
		t_sleep_ms(300);
		msg_fill(b, "rd", i);
		t_write_all(p_rd[1], b, MSG, -1);
		msg_fill(b, "ep", i);
		t_write_all(p_ep[1], b, MSG, -1);
		uint64_t one = 1;
		CHECK(write(evfd, &one, 8) == 8, "eventfd write: %s", strerror(errno));
	}
	return NULL;
}

static unsigned char stream_byte(uint64_t k) { return (unsigned char)(t_mix(k / 8) >> (8 * (k % 8))); }

static void *full_writer(void *arg)
{
	unsigned char b[CHUNK];
	uint64_t k = 0;

	(void)arg;
	/* total = pipe capacity + ITERS chunks: blocks on a full pipe most of the time */
	int cap = SYSCHK(fcntl(p_full[1], F_GETPIPE_SZ));
	uint64_t total = (uint64_t)cap + ITERS * CHUNK;
	while (k < total) {
		size_t n = total - k < CHUNK ? (size_t)(total - k) : CHUNK;
		for (size_t j = 0; j < n; j++)
			b[j] = stream_byte(k + j);
		ssize_t w = write(p_full[1], b, n);
		if (w < 0 && errno == EINTR)
			FAIL("full pipe writer: write interrupted (EINTR)");
		CHECK(w > 0, "full pipe writer: write: %s", strerror(errno));
		k += (uint64_t)w;
	}
	close(p_full[1]);
	return NULL;
}

static void *drainer(void *arg)
{
	unsigned char b[CHUNK];
	uint64_t k = 0;

	(void)arg;
	for (;;) {
		t_sleep_ms(200);
		size_t got = 0;
		while (got < CHUNK) {
			ssize_t n = rd(p_full[0], b + got, CHUNK - got, "drainer");
			if (n == 0)
				break;
			got += (size_t)n;
		}
		for (size_t j = 0; j < got; j++)
			CHECK(b[j] == stream_byte(k + j), "drainer: byte %llu corrupted", (unsigned long long)(k + j));
		k += got;
		atomic_fetch_add(&drains_done, 1);
		if (got < CHUNK)
			break;
	}
	return NULL;
}

static void *epoller(void *arg)
{
	struct epoll_event ev;
	char b[MSG], want[MSG];

	(void)arg;
	for (int i = 0; i < ITERS; i++) {
		int r = epoll_wait(ep_ready, &ev, 1, 5000);
		if (r < 0 && errno == EINTR)
			FAIL("epoll_wait: interrupted (EINTR)");
		CHECK(r == 1, "epoll_wait returned %d: %s", r, strerror(errno));
		CHECK(ev.data.u64 == 0xfeed && (ev.events & EPOLLIN), "epoll_wait: wrong event");
		CHECK(rd(p_ep[0], b, MSG, "epoll pipe") == MSG, "epoll pipe: short read");
		msg_fill(want, "ep", i);
		CHECK(memcmp(b, want, MSG) == 0, "epoll pipe: wrong message %d", i);
		atomic_fetch_add(&epoll_done, 1);
	}
	return NULL;
}

static void *epoll_timeouts(void *arg)
{
	struct epoll_event ev;

	(void)arg;
	for (int i = 0; i < ITERS; i++) {
		int ms = 250 + (i % 3) * 50;
		uint64_t t0 = t_now_ns(CLOCK_MONOTONIC);
		int r = epoll_wait(ep_never, &ev, 1, ms);
		if (r < 0 && errno == EINTR)
			FAIL("epoll_wait(timeout): interrupted (EINTR)");
		CHECK(r == 0, "epoll_wait(timeout) returned %d: %s", r, strerror(errno));
		CHECK(t_now_ns(CLOCK_MONOTONIC) - t0 >= (uint64_t)ms * 1000000ull, "epoll_wait returned early");
		atomic_fetch_add(&epoll_tmo_done, 1);
	}
	return NULL;
}

static void *ev_reader(void *arg)
{
	(void)arg;
	uint64_t total = 0, v;

	while (total < ITERS) {
		CHECK(rd(evfd, &v, 8, "eventfd") == 8, "eventfd: short read");
		CHECK(v >= 1 && total + v <= ITERS, "eventfd value %llu", (unsigned long long)v);
		total += v;
	}
	atomic_store(&ev_done, (int)total);
	return NULL;
}

int main(void)
{
	struct t_ident id;
	struct epoll_event ev;
	pthread_t th[7];
	void *(*fns[7])(void *) = { reader, feeder, full_writer, drainer, epoller, epoll_timeouts, ev_reader };
	char keep[MSG], want[MSG];

	t_init("blocking_pipes");
	t_ident_init(&id);
	SYSCHK(pipe(p_rd));
	SYSCHK(pipe(p_full));
	SYSCHK(pipe(p_ep));
	SYSCHK(pipe2(p_keep, O_CLOEXEC));
	SYSCHK(fcntl(p_full[1], F_SETPIPE_SZ, 16384));
	ep_ready = SYSCHK(epoll_create1(EPOLL_CLOEXEC));
	ep_never = SYSCHK(epoll_create1(0));
	ev.events = EPOLLIN;
	ev.data.u64 = 0xfeed;
	SYSCHK(epoll_ctl(ep_ready, EPOLL_CTL_ADD, p_ep[0], &ev));
	SYSCHK(epoll_ctl(ep_never, EPOLL_CTL_ADD, p_keep[1], &(struct epoll_event){ .events = EPOLLIN }));
	evfd = SYSCHK(eventfd(0, 0));
	/* buffered data that stays in a pipe across the checkpoint */
	msg_fill(keep, "keep", 0);
	t_write_all(p_keep[1], keep, MSG, -1);

	for (int i = 0; i < 7; i++)
		CHECK(pthread_create(&th[i], NULL, fns[i], NULL) == 0, "pthread_create");
	for (int s = 0; s < 10; s++) {
		t_sleep_ms(310);
		t_ident_check(&id);
		printf("step %d ok\n", s);
	}
	for (int i = 0; i < 7; i++)
		CHECK(pthread_join(th[i], NULL) == 0, "join");
	CHECK(rd(p_keep[0], want, MSG, "keep pipe") == MSG && memcmp(keep, want, MSG) == 0,
	      "data buffered in a pipe was lost");
	printf("reads %d drains %d epoll %d epoll_timeouts %d eventfd %d\n", atomic_load(&reads_done),
	       atomic_load(&drains_done), atomic_load(&epoll_done), atomic_load(&epoll_tmo_done), atomic_load(&ev_done));
	printf("RESULT %d\n", atomic_load(&reads_done) + atomic_load(&drains_done) + atomic_load(&epoll_done));
	return 0;
}
