/*
 * aio_ring: asynchronous I/O contexts (io_setup) across checkpoints, with
 * raw system calls through syscall(2) and no library (issue 11).
 *
 * Two contexts: one asked for an odd nr (37: a ring of one page, which
 * wraps around several times over the rounds) and one of several pages
 * (300).  Each round submits pwrites and preads of 64-byte blocks of a
 * file in the program's own directory to both, reaps part of the events
 * at once and leaves the rest in the rings, says so on a line ("round K:
 * ... left"), and waits a moment, in which the harness's checkpoints
 * land; then checks that each context's id still names its ring (the
 * [aio] mapping is at that address, io_getevents takes it), reaps exactly
 * the events left with their data, obj, res and res2, and checks the
 * bytes read.  The last context is destroyed; RESULT sums every event and
 * the file, equal to a straight run's.  A child forked once the contexts
 * exist has only a copy of their rings (no context: the kernel refuses
 * their ids), which it reads at its end, after every checkpoint (before
 * the parent destroys a context, which would take that copy away).
 */
#include "common.h"
#include <linux/aio_abi.h>
#include <sys/wait.h>

#define ROUNDS 10
#define W 12		/* writes per context and round */
#define PER (W + 4)	/* requests per context and round: W writes, 4 reads (160 of them wrap the small ring) */
#define BLK 64
#define NCTX 2

static aio_context_t ctx[NCTX];
static unsigned ids[NCTX];	/* the rings' id field (fs/aio.c struct aio_ring, first): the kernel's index */
static const long asked[NCTX] = { 37, 300 };
static struct iocb cbs[NCTX][PER];
static char bufs[NCTX][PER][BLK];
static int fd;
static uint64_t sum = 1469598103934665603ULL;

static long sys_setup(long nr, aio_context_t *c) { return syscall(SYS_io_setup, nr, c); }
static long sys_submit(aio_context_t c, long n, struct iocb **p) { return syscall(SYS_io_submit, c, n, p); }
static long sys_getevents(aio_context_t c, long min, long nr, struct io_event *ev, struct timespec *t)
{
	return syscall(SYS_io_getevents, c, min, nr, ev, t);
}

/* The 64 bytes block b of the file holds (written by context k in round r). */
static void fill(char *p, int b)
{
	for (int i = 0; i < BLK; i++)
		p[i] = (char)('a' + (b * 7 + i) % 26);
}

static int block_of(int k, int r, int i)
{
	return (r * NCTX + k) * W + i;
}

/* Requests of context k in round r: writes of its W blocks, reads of 4 blocks of the round before. */
static void prepare(int k, int r)
{
	for (int i = 0; i < PER; i++) {
		struct iocb *cb = &cbs[k][i];
		int w = i < W, b = w ? block_of(k, r, i) : block_of(k, r > 0 ? r - 1 : 0, i - W);
		memset(cb, 0, sizeof(*cb));
		cb->aio_data = (uint64_t)(k << 24 | r << 8 | i);
		cb->aio_lio_opcode = w ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
		cb->aio_fildes = (uint32_t)fd;
		cb->aio_buf = (uint64_t)(uintptr_t)bufs[k][i];
		cb->aio_nbytes = BLK;
		cb->aio_offset = (int64_t)b * BLK;
		if (w)
			fill(bufs[k][i], b);
		else
			memset(bufs[k][i], 0, BLK);
	}
}

/* One event of context k, round r: the request it answers, its result, the bytes read. */
static void check_event(int k, int r, const struct io_event *e, int *seen)
{
	int i = (int)(e->data & 0xff);
	CHECK((e->data >> 24) == (uint64_t)k && ((e->data >> 8) & 0xffff) == (uint64_t)r && i < PER,
	      "context %d round %d: event of another request (data %llx)", k, r, (unsigned long long)e->data);
	CHECK(!seen[i], "context %d round %d: request %d answered twice", k, r, i);
	seen[i] = 1;
	CHECK(e->obj == (uint64_t)(uintptr_t)&cbs[k][i], "context %d round %d: request %d: obj %llx", k, r, i,
	      (unsigned long long)e->obj);
	CHECK(e->res == BLK && e->res2 == 0, "context %d round %d: request %d: res %lld res2 %lld", k, r, i,
	      (long long)e->res, (long long)e->res2);
	if (i >= W && r > 0) {
		char want[BLK];
		fill(want, block_of(k, r - 1, i - W));
		CHECK(memcmp(want, bufs[k][i], BLK) == 0, "context %d round %d: read %d: wrong bytes", k, r, i);
	}
	sum = t_fnv_u64(t_fnv_u64(t_fnv_u64(sum, e->data), (uint64_t)e->res), (uint64_t)e->res2); /* obj: an address */
	sum = t_fnv(sum, bufs[k][i], BLK);
}

/* The context's id is still its ring: the mapping is there, and the kernel takes it. */
static void check_ctx(int k)
{
	char line[512], want[64];
	int found = 0;
	FILE *m = fopen("/proc/self/maps", "r");
	CHECK(m, "cannot read /proc/self/maps");
	t_fmt(want, sizeof(want), "%llx-", (unsigned long long)ctx[k]);
	while (fgets(line, sizeof(line), m))
		found |= strncmp(line, want, strlen(want)) == 0 && strstr(line, "/[aio]") != NULL;
	fclose(m);
	CHECK(found, "context %d: no aio ring at its id %llx", k, (unsigned long long)ctx[k]);
	CHECK(*(volatile unsigned *)ctx[k] == ids[k], "context %d: its ring's id is %u, not %u", k,
	      *(volatile unsigned *)ctx[k], ids[k]);
	struct timespec zero = { 0, 0 };
	CHECK(sys_getevents(ctx[k], 0, 0, NULL, &zero) == 0, "context %d: the kernel no longer knows its id: %s", k,
	      strerror(errno));
}

static void round_trip(int r)
{
	struct io_event ev[PER];
	int left[NCTX], seen[NCTX][PER];
	memset(seen, 0, sizeof(seen));
	for (int k = 0; k < NCTX; k++) {
		struct iocb *p[PER];
		prepare(k, r);
		for (int i = 0; i < PER; i++)
			p[i] = &cbs[k][i];
		CHECK(sys_submit(ctx[k], PER, p) == PER, "context %d round %d: io_submit: %s", k, r, strerror(errno));
		/* part now: 3 + r % 5 of them, the rest stays in the ring */
		int now = 3 + r % 5;
		long got = sys_getevents(ctx[k], now, now, ev, NULL);
		CHECK(got == now, "context %d round %d: reaped %ld of %d", k, r, got, now);
		for (int j = 0; j < now; j++)
			check_event(k, r, &ev[j], seen[k]);
		left[k] = PER - now;
	}
	printf("round %d: %d and %d events left in the rings\n", r, left[0], left[1]);
	t_pace_ms(400);
	for (int k = 0; k < NCTX; k++) {
		check_ctx(k);
		struct timespec t = { 5, 0 };
		long got = sys_getevents(ctx[k], left[k], PER, ev, &t);
		CHECK(got == left[k], "context %d round %d: %ld events left, not %d", k, r, got, left[k]);
		for (int j = 0; j < got; j++)
			check_event(k, r, &ev[j], seen[k]);
		struct timespec zero = { 0, 0 };
		CHECK(sys_getevents(ctx[k], 0, PER, ev, &zero) == 0, "context %d round %d: more events", k, r);
	}
	printf("round %d: reaped, sum %016llx\n", r, (unsigned long long)sum);
}

/* The child: waits for the parent's end (its pipe closes), then looks at its copies of the rings. */
static void child(int rd)
{
	char c;
	while (read(rd, &c, 1) != 0)
		;
	struct timespec zero = { 0, 0 };
	for (int k = 0; k < NCTX; k++) {
		CHECK(((volatile unsigned *)ctx[k])[4] == 0xa10a10a1, "child: its copy of ring %d changed", k);
		CHECK(syscall(SYS_io_getevents, ctx[k], 0, 0, NULL, &zero) < 0 && errno == EINVAL,
		      "child: the kernel takes the id of ring %d", k);
	}
	_exit(0);
}

int main(void)
{
	char dir[4096], path[4200];
	int p[2];
	t_init("aio_ring");
	t_mkworkdir(dir, sizeof(dir), "aio_ring");
	t_fmt(path, sizeof(path), "%s/data", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	for (int k = 0; k < NCTX; k++)
	{
		CHECK(sys_setup(asked[k], &ctx[k]) == 0, "io_setup(%ld): %s", asked[k], strerror(errno));
		ids[k] = *(volatile unsigned *)ctx[k];
	}
	CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[1]);
		child(p[0]);
	}
	close(p[0]);
	for (int r = 0; r < ROUNDS; r++)
		round_trip(r);
	/*
	 * The child looks at its copies of the rings before a context is
	 * destroyed: io_destroy truncates the ring's file (fs/aio.c
	 * put_aio_ring_file, once an RCU grace period has passed), which
	 * takes the child's copy of that ring away too, and a read of it then
	 * is a SIGBUS.  With the child told after io_destroy, a straight run
	 * on a busy machine failed so ("the child failed", status 0x7).
	 */
	close(p[1]);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed (status %#x)", st);
	CHECK(syscall(SYS_io_destroy, ctx[1]) == 0, "io_destroy: %s", strerror(errno));
	char all[ROUNDS * NCTX * W * BLK];
	t_read_all(fd, all, sizeof(all), 0);
	sum = t_fnv(sum, all, sizeof(all));
	close(fd);
	unlink(path);
	rmdir(dir);
	printf("RESULT %016llx\n", (unsigned long long)sum);
	return 0;
}
