/*
 * aio.c - the asynchronous I/O contexts (io_setup) of a process.  The
 * agent reads each ring in the pause, once none of its requests is in
 * flight (src/agent/aio.c); here each goes into the image as one CO_R_AIO
 * record: the ring's place and header, the nr the program asked for, and
 * the events the kernel completed that the program has not reaped.
 *
 * Restore, in the process itself (contexts are per address space), once
 * its address space is empty (co_mem_restore), each ring:
 *
 * 1. io_setup with the program's nr; the kernel sizes the ring from it and
 *    the number of CPUs, so when the ring comes out another size, it is
 *    made again with the nr that gives the recorded size;
 * 2. mremap to the recorded address: the kernel follows the ring
 *    (aio_ring_mremap), and the context's id, which is the address and
 *    which the program keeps, is the same again;
 * 3. head and tail: the kernel writes an event where its own tail says
 *    and counts the free slots itself, neither of which user space can
 *    set.  So requests that complete at once (reads of 0 bytes of a
 *    memfd, done inside io_submit) move them: `head` of them submitted
 *    and reaped bring head and tail to the recorded head, and `nevents`
 *    more submitted and left unreaped bring tail to the recorded tail,
 *    with the kernel counting those slots taken, as it did;
 * 4. the unreaped events: the dummies' events in the ring are overwritten
 *    with the recorded ones, which io_getevents then returns as they were
 *    (data, obj, res, res2).
 *
 * The ring's id is the context's index in the kernel's table of the
 * process's contexts, which the kernel's lookup checks: it cannot be
 * written back.  The kernel gives a new context the first free index, so
 * the rings are made in the order of their ids, with contexts that fill
 * the gaps made meanwhile and destroyed at the end: each ring gets its id
 * again (co_aio_restore_all, before the other regions are mapped).
 */
#include <errno.h>
#include <linux/aio_abi.h>
#include <sys/mman.h>
#include "res.h"
#include "sys.h"
#include "util.h"

#ifndef COHORT_RESTORER

int co_aio_dump(struct co_dumpctx *d)
{
	const struct co_aio_event *ev = d->aio_events;
	for (int i = 0; i < d->naio; i++) {
		const struct co_aio *a = &d->aio[i];
		uint64_t n = (uint64_t)a->nevents * sizeof(*ev);
		if (co_w_begin(d->w, CO_R_AIO, sizeof(*a) + n, 0) || co_w_put(d->w, a, sizeof(*a)) ||
		    co_w_put(d->w, ev, n) || co_w_end(d->w))
			return DERR(d, "pid %d: writing its aio ring at %lx failed", d->pid, (unsigned long)a->start);
		ev += a->nevents;
	}
	return 0;
}

#else /* the restorer */

/* The current record (CO_R_AIO): its ring into rc->aio, its events after rc's others. */
int co_aio_take(struct co_rstctx *rc)
{
	struct co_reader *r = rc->r;
	if (rc->naio == CO_AIO_MAX)
		return co_err(rc->err, rc->errlen, "pid %d: more than %d aio rings in image", rc->proc->pid, CO_AIO_MAX);
	struct co_aio *a = &rc->aio[rc->naio];
	if (co_r_read(r, a, sizeof(*a)))
		return co_err(rc->err, rc->errlen, "%s", r->err);
	uint64_t slots = (a->end - a->start - sizeof(struct co_aio_ring)) / sizeof(struct co_aio_event);
	if (a->start >= a->end || ((a->start | a->end) & (CO_PAGE - 1)) || !a->nr || a->nr > slots ||
	    a->head >= a->nr || a->tail >= a->nr || a->nevents != (a->tail + a->nr - a->head) % a->nr ||
	    r->left != (uint64_t)a->nevents * sizeof(struct co_aio_event) ||
	    rc->naio_events + a->nevents > CO_AIO_EVENTS_MAX)
		return co_err(rc->err, rc->errlen, "%s: byte %lu: damaged aio ring record", r->name,
			      (unsigned long)r->rec_off);
	if (co_r_read(r, rc->aio_events + rc->naio_events, r->left) || co_r_finish(r))
		return co_err(rc->err, rc->errlen, "%s", r->err);
	rc->naio_events += a->nevents;
	rc->naio++;
	return 0;
}

/* A context whose ring has a->nr slots, at *ctx: 0 or -errno. */
static long make_ring(const struct co_aio *a, uint64_t *ctx)
{
	/* 64 per page less 2: the kernel doubles it and adds 2 slots of 32 bytes to the header's 32 */
	long pages = (long)((a->end - a->start) / CO_PAGE), asks[2] = { a->nr_asked, pages * 64 - 2 };
	long r = -EINVAL;
	for (int i = 0; i < 2; i++) {
		*ctx = 0;
		if (asks[i] <= 0 || (r = co_sys2(SYS_io_setup, asks[i], (long)ctx)) < 0)
			continue;
		if (((const struct co_aio_ring *)*ctx)->nr == a->nr)
			return 0;
		co_sys1(SYS_io_destroy, (long)*ctx);
		r = -ERANGE;
	}
	return r;
}

/*
 * n requests that complete inside io_submit (a read of 0 bytes of the
 * memfd fd), reaped when reap: each moves the kernel's tail one slot, a
 * reaped one its head too.  0 or -errno.
 */
static long complete_dummies(uint64_t ctx, int fd, uint32_t n, int reap)
{
	struct iocb cb[64], *cbs[64];
	struct io_event ev[64];
	while (n) {
		long k = n < 64 ? n : 64;
		for (long i = 0; i < k; i++) {
			co_memset(&cb[i], 0, sizeof(cb[i]));
			cb[i].aio_lio_opcode = IOCB_CMD_PREAD;
			cb[i].aio_fildes = (uint32_t)fd;
			cb[i].aio_buf = (uint64_t)ev;
			cbs[i] = &cb[i];
		}
		long r = co_sys3(SYS_io_submit, (long)ctx, k, (long)cbs);
		if (r <= 0)
			return r < 0 ? r : -EAGAIN;
		if (reap) {
			long got = co_sys5(SYS_io_getevents, (long)ctx, r, r, (long)ev, 0);
			if (got != r)
				return got < 0 ? got : -EIO;
		}
		n -= (uint32_t)r;
	}
	return 0;
}

/* The kernel's head and tail where the image has them, a->nevents slots taken; 0 or -errno. */
static long move_tail(const struct co_aio *a)
{
	int fd = (int)co_sys2(SYS_memfd_create, (long)"cohort-aio", 1 /* MFD_CLOEXEC */);
	if (fd < 0)
		return fd;
	long r = complete_dummies(a->start, fd, a->head, 1);
	if (!r)
		r = complete_dummies(a->start, fd, a->nevents, 0);
	co_close(fd);
	const volatile struct co_aio_ring *ring = (const volatile struct co_aio_ring *)a->start;
	return r ? r : ring->head == a->head && ring->tail == a->tail ? 0 : -EIO;
}

/* Ring a at its address, with its events ev. */
static int restore_ring(struct co_rstctx *rc, const struct co_aio *a, const struct co_aio_event *ev)
{
	uint64_t ctx, len = a->end - a->start;
	long r = make_ring(a, &ctx);
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot make its aio context of %u slots again (errno %ld%s)",
			      rc->proc->pid, a->nr, -r, r == -ERANGE ? ": this kernel sizes the ring otherwise" : "");
	const struct co_aio_ring *ring = (const struct co_aio_ring *)ctx;
	if (ring->magic != a->magic || ring->header_length != a->header_length ||
	    ring->compat_features != a->compat_features || ring->incompat_features != a->incompat_features)
		return co_err(rc->err, rc->errlen, "pid %d: this kernel's aio rings differ from the image's: restart "
			      "on the kernel the checkpoint was taken on", rc->proc->pid);
	r = co_mremap((void *)ctx, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)a->start);
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot move its aio ring to %lx (errno %ld)", rc->proc->pid,
			      (unsigned long)a->start, -r);
	r = move_tail(a);
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot bring its aio ring at %lx to head %u, tail %u "
			      "(errno %ld)", rc->proc->pid, (unsigned long)a->start, a->head, a->tail, -r);
	struct co_aio_ring *here = (struct co_aio_ring *)a->start;
	for (uint32_t i = 0; i < a->nevents; i++)
		here->io_events[(a->head + i) % a->nr] = ev[i];
	return 0;
}

/* The next ring to make: the one of the lowest id above `above` (-1: none yet); its events at *ev. */
static const struct co_aio *next_ring(const struct co_rstctx *rc, int64_t above, const struct co_aio_event **ev)
{
	const struct co_aio *best = 0;
	const struct co_aio_event *e = rc->aio_events;
	for (int i = 0; i < rc->naio; e += rc->aio[i++].nevents)
		if ((int64_t)rc->aio[i].id > above && (!best || rc->aio[i].id < best->id)) {
			best = &rc->aio[i];
			*ev = e;
		}
	return best;
}

/* Every ring of the image, in the order of their ids, before the other regions are mapped. */
int co_aio_restore_all(struct co_rstctx *rc)
{
	uint64_t fill[CO_AIO_MAX];
	int nfill = 0, r = 0;
	const struct co_aio_event *ev = 0;
	for (const struct co_aio *a = next_ring(rc, -1, &ev); a && !r; a = next_ring(rc, a->id, &ev)) {
		r = restore_ring(rc, a, ev);
		while (!r && ((const struct co_aio_ring *)a->start)->id < a->id && nfill < CO_AIO_MAX) {
			/* it took a free index below its id: a context fills that one, and the ring is made again */
			co_sys1(SYS_io_destroy, (long)a->start);
			fill[nfill] = 0;
			if (co_sys2(SYS_io_setup, 1, (long)&fill[nfill]) < 0)
				break;
			nfill++;
			r = restore_ring(rc, a, ev);
		}
	}
	while (nfill)
		co_sys1(SYS_io_destroy, (long)fill[--nfill]);
	return r;
}

#endif
