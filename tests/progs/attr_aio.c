/*
 * attr_aio: a process with an asynchronous I/O context (io_setup; its
 * ring is a "/[aio] (deleted)" mapping), idle at the checkpoint: after a
 * restart its context must work as before.
 *
 * It sets the context up, reads a file through it once, prints "ready",
 * waits for go.1 (common.h), then reads through it at every step,
 * checking the bytes, the event's result and its cookie.  Output: "step N
 * ok" lines and a RESULT line; any difference is a FAIL on stderr and
 * exit 1.
 */
#include "common.h"
#include <linux/aio_abi.h>

#define STEPS 6

static aio_context_t ctx;
static int fd;

/* One read of 64 bytes at off through the context; every byte checked. */
static void aio_read_check(int step)
{
	char buf[64];
	struct iocb cb = { 0 }, *cbs[1] = { &cb };
	struct io_event ev;
	off_t off = (off_t)step * 64;
	memset(buf, 0, sizeof(buf));
	cb.aio_fildes = (uint32_t)fd;
	cb.aio_lio_opcode = IOCB_CMD_PREAD;
	cb.aio_buf = (uint64_t)(uintptr_t)buf;
	cb.aio_nbytes = sizeof(buf);
	cb.aio_offset = off;
	cb.aio_data = 0x1234000 + (uint64_t)step;
	CHECK(syscall(SYS_io_submit, ctx, 1, cbs) == 1, "step %d: io_submit: %s", step, strerror(errno));
	CHECK(syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) == 1, "step %d: io_getevents: %s", step,
	      strerror(errno));
	CHECK(ev.data == cb.aio_data && ev.res == (int64_t)sizeof(buf), "step %d: event data %llx res %lld", step,
	      (unsigned long long)ev.data, (long long)ev.res);
	for (size_t i = 0; i < sizeof(buf); i++)
		CHECK(buf[i] == (char)(off + (off_t)i), "step %d: byte %zu is %d", step, i, buf[i]);
}

int main(void)
{
	t_init("attr_aio");
	char path[512], data[64 * (STEPS + 1)];
	t_fmt(path, sizeof(path), "%s/aio.data", t_tmpdir());
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)i;
	fd = SYSCHK(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
	CHECK(write(fd, data, sizeof(data)) == (ssize_t)sizeof(data), "write %s", path);
	CHECK(syscall(SYS_io_setup, 8, &ctx) == 0, "io_setup: %s", strerror(errno));
	aio_read_check(STEPS);
	printf("ready\n");
	fflush(stdout);
	t_wait_go(1);
	for (int s = 0; s < STEPS; s++) {
		aio_read_check(s);
		printf("step %d ok\n", s);
		fflush(stdout);
		t_sleep_ms(20);
	}
	CHECK(syscall(SYS_io_destroy, ctx) == 0, "io_destroy: %s", strerror(errno));
	printf("RESULT attr_aio ok\n");
	return 0;
}
