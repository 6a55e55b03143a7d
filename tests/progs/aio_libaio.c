/*
 * aio_libaio: aio contexts through libaio (io_queue_init, io_submit,
 * io_getevents, io_queue_release), the way databases use it (issue 11).
 *
 * Two contexts.  The main thread submits pwrites of 64-byte blocks of a
 * file in its own directory to the first, reaps part of them at once and
 * leaves the rest in the ring while it says "round K" and waits a moment
 * (the checkpoints land there); a reaper thread waits all along in
 * io_getevents on the second, where the main thread submits preads of
 * the blocks written the round before: its wait is interrupted by every
 * checkpoint and must neither fail (EINTR) nor lose an event.  Every
 * event is checked (data, obj, res, res2, the bytes read); RESULT sums
 * them, equal to a straight run's.
 */
#include "common.h"
#include <libaio.h>

#define ROUNDS 8
#define W 6		/* writes per round */
#define R 4		/* reads per round (of the round before's blocks) */
#define BLK 64
#define STOP 0xffff	/* the data of the read that ends the reaper */

static io_context_t wctx, rctx;
static struct iocb wcb[W], rcb[R + 1];
static char wbuf[W][BLK], rbuf[R + 1][BLK];
static int fd;
static uint64_t wsum = 1469598103934665603ULL, rsum = 1469598103934665603ULL;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int reaped;	/* reads the reaper has checked */

static void fill(char *p, int b)
{
	for (int i = 0; i < BLK; i++)
		p[i] = (char)('A' + (b * 5 + i) % 26);
}

/* The reaper: every read's event, as it comes, until the STOP one. */
static void *reaper(void *arg)
{
	(void)arg;
	for (;;) {
		struct io_event ev[R + 1];
		int n = io_getevents(rctx, 1, R + 1, ev, NULL);
		CHECK(n > 0, "reaper: io_getevents: %d (%s)", n, strerror(-n));
		for (int j = 0; j < n; j++) {
			if (ev[j].data == (void *)STOP)
				return NULL;
			int i = (int)((uintptr_t)ev[j].data & 0xff), b = (int)((uintptr_t)ev[j].data >> 8);
			char want[BLK];
			fill(want, b);
			CHECK(i < R && ev[j].obj == &rcb[i] && ev[j].res == BLK && ev[j].res2 == 0,
			      "reaper: event of read %d: res %ld", i, (long)ev[j].res);
			CHECK(memcmp(want, rbuf[i], BLK) == 0, "reaper: read %d of block %d: wrong bytes", i, b);
			rsum = t_fnv_u64(rsum, (uint64_t)(uintptr_t)ev[j].data);
			pthread_mutex_lock(&mu);
			reaped++;
			pthread_cond_signal(&cv);
			pthread_mutex_unlock(&mu);
		}
	}
}

static void check_write(const struct io_event *e, int r, int *seen)
{
	int i = (int)((uintptr_t)e->data & 0xff);
	CHECK(((uintptr_t)e->data >> 8) == (uintptr_t)r && i < W && !seen[i], "round %d: event of another write", r);
	CHECK(e->obj == &wcb[i] && e->res == BLK && e->res2 == 0, "round %d: write %d: res %ld res2 %ld", r, i,
	      (long)e->res, (long)e->res2);
	seen[i] = 1;
	wsum = t_fnv_u64(t_fnv_u64(wsum, (uint64_t)(uintptr_t)e->data), (uint64_t)e->res);
}

static void round_trip(int r)
{
	struct iocb *p[W];
	struct io_event ev[W];
	int seen[W] = { 0 };
	for (int i = 0; i < W; i++) {
		fill(wbuf[i], r * W + i);
		io_prep_pwrite(&wcb[i], fd, wbuf[i], BLK, (long long)(r * W + i) * BLK);
		wcb[i].data = (void *)(uintptr_t)(r << 8 | i);
		p[i] = &wcb[i];
	}
	CHECK(io_submit(wctx, W, p) == W, "round %d: io_submit of the writes", r);
	int now = 1 + r % 3;
	CHECK(io_getevents(wctx, now, now, ev, NULL) == now, "round %d: reaping %d writes", r, now);
	for (int j = 0; j < now; j++)
		check_write(&ev[j], r, seen);
	if (r > 0) {
		for (int i = 0; i < R; i++) {
			int b = (r - 1) * W + i;
			memset(rbuf[i], 0, BLK);
			io_prep_pread(&rcb[i], fd, rbuf[i], BLK, (long long)b * BLK);
			rcb[i].data = (void *)(uintptr_t)(b << 8 | i);
			p[i] = &rcb[i];
		}
		CHECK(io_submit(rctx, R, p) == R, "round %d: io_submit of the reads", r);
		pthread_mutex_lock(&mu);
		while (reaped < r * R)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
	}
	printf("round %d: %d writes left in the ring, %d reads reaped\n", r, W - now, r * R);
	t_pace_ms(400);
	struct timespec t = { 5, 0 };
	CHECK(io_getevents(wctx, W - now, W, ev, &t) == W - now, "round %d: the writes left", r);
	for (int j = 0; j < W - now; j++)
		check_write(&ev[j], r, seen);
	printf("round %d: sum %016llx\n", r, (unsigned long long)wsum);
}

int main(void)
{
	char dir[4096], path[4200];
	pthread_t th;
	t_init("aio_libaio");
	t_mkworkdir(dir, sizeof(dir), "aio_libaio");
	t_fmt(path, sizeof(path), "%s/data", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	CHECK(io_queue_init(33, &wctx) == 0 && io_queue_init(16, &rctx) == 0, "io_queue_init");
	CHECK(pthread_create(&th, NULL, reaper, NULL) == 0, "pthread_create");
	for (int r = 0; r < ROUNDS; r++)
		round_trip(r);
	struct iocb *p[1] = { &rcb[R] };
	io_prep_pread(&rcb[R], fd, rbuf[R], BLK, 0);
	rcb[R].data = (void *)STOP;
	CHECK(io_submit(rctx, 1, p) == 1, "io_submit of the last read");
	pthread_join(th, NULL);
	CHECK(io_queue_release(wctx) == 0 && io_queue_release(rctx) == 0, "io_queue_release");
	close(fd);
	unlink(path);
	rmdir(dir);
	printf("RESULT %016llx %016llx\n", (unsigned long long)wsum, (unsigned long long)rsum);
	return 0;
}
