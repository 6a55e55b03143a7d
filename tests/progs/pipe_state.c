/*
 * pipe_state [big] (tests/cases/kinds.sh): what pipes hold, checked
 * exactly at every step, so across every checkpoint and restart.
 *   packets  a packet-mode pipe (pipe2 O_DIRECT) of 128 KiB holding six
 *            packets of different sizes (1 byte to a page): each read
 *            returns one packet whole, a read shorter than a packet
 *            drops its rest, then the pipe is empty; its capacity and
 *            both ends' flags stay (O_DIRECT on the write end)
 *   plain    a pipe of 256 KiB holding 200 000 bytes of one write: read
 *            back byte for byte in reads that cross the kernel's pages
 *   big      (argument "big": fs.pipe-max-size raised to 4 MiB or more,
 *            tests/cases/kinds.sh) a pipe of 4 MiB holding 3 MiB and 12345
 *            bytes, more than a record of the image holds
 * Each step reads everything back, checks it, and fills the pipes again
 * with bytes of that step.  Output: one line per step, then RESULT.
 */
#include "common.h"
#include <sys/ioctl.h>

#define STEPS 12
#define STEP_MS 100
#define PKT_CAP (128 << 10)
#define PLAIN_CAP (256 << 10)
#define PLAIN_LEN 200000
#define BIG_CAP (4 << 20)
#define BIG_LEN ((3 << 20) + 12345)

static const size_t pkt_len[] = { 1, 100, 4096, 17, 3000, 2 };
#define NPKT (sizeof(pkt_len) / sizeof(pkt_len[0]))

/* The byte at offset i of what is queued at step s in the pipe named by salt. */
static unsigned char byte_at(int s, unsigned salt, size_t i)
{
	return (unsigned char)(t_mix(((uint64_t)salt << 56) ^ ((uint64_t)s << 40) ^ (i >> 3)) >> (8 * (i & 7)));
}

static void fill(unsigned char *b, size_t n, int s, unsigned salt)
{
	for (size_t i = 0; i < n; i++)
		b[i] = byte_at(s, salt, i);
}

static int queued(int fd)
{
	int q = -1;
	SYSCHK(ioctl(fd, FIONREAD, &q));
	return q;
}

static void check_capacity(int fd, int want, const char *what, int s)
{
	int cap = fcntl(fd, F_GETPIPE_SZ);
	CHECK(cap == want, "step %d: %s: capacity %d, expected %d", s, what, cap, want);
}

static void pkt_write(int fd, int s)
{
	unsigned char b[4096];
	for (size_t k = 0; k < NPKT; k++) {
		fill(b, pkt_len[k], s, 0x10 + (unsigned)k);
		ssize_t n = write(fd, b, pkt_len[k]);
		CHECK(n == (ssize_t)pkt_len[k], "packet %zu: write %zd: %s", k, n, strerror(errno));
	}
}

/*
 * Each read is one packet whole; the packet of 17 bytes is read 5 bytes
 * at a time: the read returns 5, the rest is dropped, and the next read
 * has the next packet (a byte stream would give the 12 left).
 */
static void pkt_check(int fd, int s)
{
	unsigned char b[8192], want[4096];
	size_t total = 0;
	for (size_t k = 0; k < NPKT; k++)
		total += pkt_len[k];
	CHECK(queued(fd) == (int)total, "step %d: packet pipe holds %d bytes, expected %zu", s, queued(fd), total);
	for (size_t k = 0; k < NPKT; k++) {
		size_t ask = pkt_len[k] == 17 ? 5 : sizeof(b);
		size_t expect = pkt_len[k] < ask ? pkt_len[k] : ask;
		ssize_t n = read(fd, b, ask);
		CHECK(n == (ssize_t)expect, "step %d: packet %zu: read %zd bytes (%s), expected %zu", s, k, n,
		      n < 0 ? strerror(errno) : "a packet boundary lost?", expect);
		fill(want, pkt_len[k], s, 0x10 + (unsigned)k);
		CHECK(memcmp(b, want, expect) == 0, "step %d: packet %zu: other bytes", s, k);
	}
	ssize_t n = read(fd, b, sizeof(b));
	CHECK(n < 0 && errno == EAGAIN, "step %d: packet pipe not empty after its packets: read %zd", s, n);
}

/* len bytes of step s read back from fd (non-blocking), byte for byte, then nothing more. */
static void bytes_check(int fd, unsigned char *buf, size_t len, int s, unsigned salt, const char *what)
{
	CHECK(queued(fd) == (int)len, "step %d: %s holds %d bytes, expected %zu", s, what, queued(fd), len);
	size_t got = 0;
	while (got < len) {
		size_t ask = len - got < 65000 ? len - got : 65000; /* (not a page multiple) */
		ssize_t n = read(fd, buf + got, ask);
		CHECK(n > 0, "step %d: %s: read after %zu of %zu bytes: %s", s, what, got, len,
		      n < 0 ? strerror(errno) : "end of file");
		got += (size_t)n;
	}
	for (size_t i = 0; i < len; i++)
		if (buf[i] != byte_at(s, salt, i))
			FAIL("step %d: %s: byte %zu is %u, expected %u", s, what, i, buf[i], byte_at(s, salt, i));
	ssize_t n = read(fd, buf, 1);
	CHECK(n < 0 && errno == EAGAIN, "step %d: %s not empty after %zu bytes: read %zd", s, what, len, n);
}

static void bytes_write(int fd, unsigned char *buf, size_t len, int s, unsigned salt, const char *what)
{
	fill(buf, len, s, salt);
	ssize_t n = write(fd, buf, len);
	CHECK(n == (ssize_t)len, "%s: write %zd of %zu: %s", what, n, len, strerror(errno));
}

int main(int argc, char **argv)
{
	t_init("pipe_state");
	int big = argc > 1 && strcmp(argv[1], "big") == 0;
	int pp[2], pl[2], bp[2] = { -1, -1 };
	SYSCHK(pipe2(pp, O_DIRECT | O_NONBLOCK));
	SYSCHK(pipe2(pl, O_NONBLOCK));
	SYSCHK(fcntl(pp[1], F_SETPIPE_SZ, PKT_CAP));
	SYSCHK(fcntl(pl[1], F_SETPIPE_SZ, PLAIN_CAP));
	static unsigned char plain[PLAIN_LEN], *bigbuf;
	if (big) {
		SYSCHK(pipe2(bp, O_NONBLOCK));
		if (fcntl(bp[1], F_SETPIPE_SZ, BIG_CAP) < 0)
			FAIL("a pipe of %d bytes: %s (fs.pipe-max-size must be raised first)", BIG_CAP, strerror(errno));
		bigbuf = malloc(BIG_LEN);
		CHECK(bigbuf != NULL, "malloc");
	}
	pkt_write(pp[1], 0);
	bytes_write(pl[1], plain, PLAIN_LEN, 0, 0x20, "plain pipe");
	if (big)
		bytes_write(bp[1], bigbuf, BIG_LEN, 0, 0x30, "big pipe");
	for (int s = 0; s < STEPS; s++) {
		check_capacity(pp[1], PKT_CAP, "packet pipe", s);
		check_capacity(pl[1], PLAIN_CAP, "plain pipe", s);
		int wfl = fcntl(pp[1], F_GETFL), rfl = fcntl(pp[0], F_GETFL);
		CHECK((wfl & (O_DIRECT | O_NONBLOCK)) == (O_DIRECT | O_NONBLOCK) && (rfl & O_NONBLOCK),
		      "step %d: packet pipe's flags %o (write end) %o (read end)", s, wfl, rfl);
		pkt_check(pp[0], s);
		bytes_check(pl[0], plain, PLAIN_LEN, s, 0x20, "plain pipe");
		if (big) {
			check_capacity(bp[1], BIG_CAP, "big pipe", s);
			bytes_check(bp[0], bigbuf, BIG_LEN, s, 0x30, "big pipe");
		}
		pkt_write(pp[1], s + 1);
		bytes_write(pl[1], plain, PLAIN_LEN, s + 1, 0x20, "plain pipe");
		if (big)
			bytes_write(bp[1], bigbuf, BIG_LEN, s + 1, 0x30, "big pipe");
		printf("step %d ok\n", s);
		t_pace_ms(STEP_MS);
	}
	printf("RESULT ok\n");
	return 0;
}
