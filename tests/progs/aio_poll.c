/*
 * aio_poll: an aio request in flight, which cohort cannot save, refuses
 * the checkpoint; once it has completed, checkpoints work again (issue 11).
 *
 * One context (raw system calls through syscall(2)): a pwrite, reaped,
 * then an IOCB_CMD_POLL on the read end of a pipe nobody writes, which
 * the kernel never completes; "polling", and the program waits for the
 * harness (t_wait_go 1), which meanwhile finds the checkpoint refused.
 * Then the program writes the pipe itself, reaps the poll's event
 * ("poll done"), says "idle" and waits again (t_wait_go 2): a checkpoint
 * now has nothing in flight.  After it, one more request round, and
 * RESULT.
 */
#include "common.h"
#include <linux/aio_abi.h>
#include <poll.h>

static aio_context_t ctx;
static struct iocb cb_write, cb_poll, cb_read;

static long submit(struct iocb *cb)
{
	struct iocb *p[1] = { cb };
	return syscall(SYS_io_submit, ctx, 1, p);
}

/* One event, within 5 s: the request it answers must be cb, its result res. */
static void reap(struct iocb *cb, long long res)
{
	struct io_event ev;
	struct timespec t = { 5, 0 };
	long n = syscall(SYS_io_getevents, ctx, 1, 1, &ev, &t);
	CHECK(n == 1, "io_getevents: %ld (%s)", n, strerror(errno));
	CHECK(ev.obj == (uint64_t)(uintptr_t)cb && ev.data == cb->aio_data && ev.res == res && ev.res2 == 0,
	      "event data %llu res %lld, expected %llu res %lld", (unsigned long long)ev.data, (long long)ev.res,
	      (unsigned long long)cb->aio_data, res);
}

int main(void)
{
	char dir[4096], path[4200], out[16] = "0123456789abcdef", in[16];
	int p[2];
	t_init("aio_poll");
	t_mkworkdir(dir, sizeof(dir), "aio_poll");
	t_fmt(path, sizeof(path), "%s/data", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && pipe(p) == 0, "open %s, pipe: %s", path, strerror(errno));
	CHECK(syscall(SYS_io_setup, 9, &ctx) == 0, "io_setup: %s", strerror(errno));

	cb_write = (struct iocb){ .aio_data = 1, .aio_lio_opcode = IOCB_CMD_PWRITE, .aio_fildes = (uint32_t)fd,
				  .aio_buf = (uint64_t)(uintptr_t)out, .aio_nbytes = sizeof(out) };
	CHECK(submit(&cb_write) == 1, "io_submit pwrite: %s", strerror(errno));
	reap(&cb_write, sizeof(out));
	printf("written\n");

	cb_poll = (struct iocb){ .aio_data = 2, .aio_lio_opcode = IOCB_CMD_POLL, .aio_fildes = (uint32_t)p[0],
				 .aio_buf = POLLIN };
	CHECK(submit(&cb_poll) == 1, "io_submit poll: %s", strerror(errno));
	printf("polling\n");
	t_wait_go(1);
	CHECK(write(p[1], "x", 1) == 1, "write pipe: %s", strerror(errno));
	reap(&cb_poll, POLLIN | POLLRDNORM);
	printf("poll done\n");

	printf("idle\n");
	t_wait_go(2);
	cb_read = (struct iocb){ .aio_data = 3, .aio_lio_opcode = IOCB_CMD_PREAD, .aio_fildes = (uint32_t)fd,
				 .aio_buf = (uint64_t)(uintptr_t)in, .aio_nbytes = sizeof(in) };
	CHECK(submit(&cb_read) == 1, "io_submit pread: %s", strerror(errno));
	reap(&cb_read, sizeof(in));
	CHECK(memcmp(in, out, sizeof(in)) == 0, "read back other bytes");
	CHECK(syscall(SYS_io_destroy, ctx) == 0, "io_destroy: %s", strerror(errno));
	unlink(path);
	rmdir(dir);
	printf("RESULT %.16s\n", in);
	return 0;
}
