/*
 * aio.c - the asynchronous I/O contexts (io_setup) of this process, kept
 * by the agent (issue 11).  A context's requests live in the kernel,
 * which shows nothing of them: a request submitted and not completed
 * cannot be saved, and a checkpoint that took one would come back having
 * silently lost its completion.  So the agent counts, per context, the
 * requests the kernel accepted (io_submit) and the events the program
 * reaped (io_getevents, io_pgetevents), from the calls made through
 * syscall(3), which libaio and programs without a library use (glibc has
 * no aio system call wrappers).  At a checkpoint, with every thread
 * parked, the requests in flight are
 *
 *     submitted - reaped - (events in the ring: tail - head, mod nr)
 *
 * which the manager waits for to reach 0, a bounded time (buffered file
 * I/O completes inside io_submit, O_DIRECT within milliseconds); a
 * context with requests still in flight (an IOCB_CMD_POLL on a descriptor
 * nobody makes ready never completes), or one whose ring holds more
 * events than were counted, refuses the checkpoint, naming process and
 * ring.  Then each ring's header and unreaped events go into the image
 * (d->aio; src/res/aio.c writes them and makes the context again).
 *
 * The counts must be the kernel's at the pause: a call the checkpoint
 * signal interrupts after the kernel did it, before the wrapper noted it,
 * is noted by the handler (co_aio_handler), which finds the result in
 * *res or, at co_syscall_noted_done, in rax (co_noted_result), as
 * semundo.c does.
 * io_cancel changes nothing here: a cancelled request's event comes
 * through the ring like any other.  A forked child has no context (the
 * kernel gives it none, only a copy of the rings' memory, which it keeps
 * as private memory: co_aio_ring_kind); an exec ends them all.
 *
 * Not seen: aio system calls made without syscall(3) (inline assembly):
 * a context made so is refused at the checkpoint ("made without cohort
 * seeing it"); events a program reaps from the ring itself (moving head
 * in user space, as some libraries do) look like requests in flight, and
 * its checkpoints are refused after the wait.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>
#include "agent.h"
#include "sys.h"
#include "util.h"

#define WAIT_MS 1000 /* how long the pause waits for requests in flight */

struct actx {
	uint64_t id;		/* the ring's address */
	uint32_t nr_asked;	/* io_setup's nr */
	uint32_t polls;		/* IOCB_CMD_POLL requests submitted, ever */
	uint64_t submitted, reaped;
};

static struct actx tab[CO_AIO_MAX];
static int ntab;
static uint64_t dead[CO_AIO_MAX];	/* rings of the parent this forked child has a copy of, no context */
static int ndead;
static int overflow;	/* a context that did not fit: refused at checkpoint */
static int lock_word;	/* taken with every signal blocked */
static struct co_aio_event events[CO_AIO_EVENTS_MAX]; /* the unreaped events at the pause (d->aio_events) */

/* An aio call in flight in this thread (co_aio_call), for the checkpoint handler. */
struct call {
	long res;		/* co_syscall_noted's result; CO_RES_UNSET until the system call returned */
	long nr;
	long a[6];
	int noted;		/* exchanged to 1 by whoever notes it: the thread, or its checkpoint handler */
};
static __thread struct call *cur_call __attribute__((tls_model("initial-exec")));

static struct actx *find(uint64_t id)
{
	for (int i = 0; i < ntab; i++)
		if (tab[i].id == id)
			return &tab[i];
	return 0;
}

/* What the kernel did in call c, whose result is res, into the table (lock held, signals blocked). */
static void note_ops(const struct call *c, long res)
{
	struct actx *x = c->nr == SYS_io_setup ? 0 : find((uint64_t)c->a[0]);
	if (c->nr == SYS_io_setup && res == 0) {
		if (ntab == CO_AIO_MAX) {
			overflow = 1;
			return;
		}
		/* the kernel wrote the id there: readable */
		tab[ntab++] = (struct actx){ *(const uint64_t *)c->a[1], (uint32_t)c->a[0], 0, 0, 0 };
	} else if (c->nr == SYS_io_destroy && res == 0 && x) {
		*x = tab[--ntab];
	} else if (c->nr == SYS_io_submit && res > 0 && x) {
		/* the kernel read the first res requests: readable */
		struct iocb *const *cbs = (struct iocb *const *)c->a[2];
		x->submitted += (uint64_t)res;
		for (long i = 0; i < res; i++)
			x->polls += cbs[i]->aio_lio_opcode == IOCB_CMD_POLL;
	} else if ((c->nr == SYS_io_getevents || c->nr == SYS_io_pgetevents) && res > 0 && x) {
		x->reaped += (uint64_t)res;
	}
}

/* Whoever exchanges noted first notes the call: the thread, or its checkpoint handler. */
static void note_call(struct call *c, long res)
{
	if (__atomic_exchange_n(&c->noted, 1, __ATOMIC_ACQ_REL))
		return;
	co_lock_word(&lock_word);
	note_ops(c, res);
	co_unlock_word(&lock_word);
}

/*
 * An aio system call (io_setup, io_destroy, io_submit, io_getevents,
 * io_pgetevents) made through syscall(3): the kernel's result (a count,
 * or -errno), noted once the kernel has made it.  wrap.c makes a wait
 * that our checkpoint cut short again.
 */
long co_aio_call(long nr, const long *a)
{
	/* noted in a process of no group too: a context made before it registers (a constructor) counts */
	struct call c = { CO_RES_UNSET, nr, { a[0], a[1], a[2], a[3], a[4], a[5] }, 0 };
	struct call *outer = cur_call; /* a handler of the program's that made one in the middle of another */
	cur_call = &c;
	long r = co_syscall_noted(&c.res, nr, c.a);
	uint64_t old = co_block_all();
	cur_call = outer;
	note_call(&c, r);
	co_unblock(old);
	return r;
}

/* In the checkpoint handler (quiesce.c), before the thread parks: a call done but not noted is now. */
void co_aio_handler(void *uc)
{
	struct call *c = cur_call;
	if (!c || __atomic_load_n(&c->noted, __ATOMIC_ACQUIRE))
		return;
	long res = co_noted_result(&c->res, uc);
	if (res != CO_RES_UNSET)
		note_call(c, res);
}

/* A forked child: no context (the kernel gives it none), a copy of each ring of the parent's. */
void co_aio_forked(void)
{
	for (int i = 0; i < ntab && ndead < CO_AIO_MAX; i++)
		dead[ndead++] = tab[i].id;
	ntab = 0;
	overflow = 0;
	lock_word = 0;
	cur_call = 0;
}

/* ---- at the checkpoint ---- */

int co_aio_ring_kind(uint64_t start)
{
	for (int i = 0; i < ndead; i++)
		if (dead[i] == start && !find(start))
			return CO_V_DELETED;
	return CO_V_AIO; /* its context, or one made unseen, which co_aio_collect refuses */
}

static uint32_t in_ring(const volatile struct co_aio_ring *r)
{
	uint32_t nr = r->nr, head = r->head % nr, tail = r->tail % nr;
	return (tail + nr - head) % nr;
}

/* Requests of x the kernel holds: neither in the ring nor reaped (< 0: the ring holds more than was counted). */
static int64_t in_flight(const struct actx *x, const volatile struct co_aio_ring *r)
{
	return (int64_t)(x->submitted - x->reaped) - (int64_t)in_ring(r);
}

/* Wait (WAIT_MS at most) until none of x's requests is in flight: 0, or -1 with the reason in d->err. */
static int settle(struct co_dumpctx *d, const struct actx *x, const volatile struct co_aio_ring *r)
{
	int64_t n = in_flight(x, r);
	for (int ms = 0; n > 0 && ms < WAIT_MS; ms++, n = in_flight(x, r)) {
		struct timespec t = { 0, 1000000 };
		co_nanosleep(&t);
	}
	if (n < 0)
		return DERR(d, "pid %d: aio ring at %lx holds %ld events more than cohort counted requests for: "
			    "it cannot tell which are in flight (aio system calls made without syscall(3)?)", d->pid,
			    (unsigned long)x->id, (long)-n);
	if (n > 0 && x->polls)
		return DERR(d, "pid %d: aio ring at %lx: %ld requests still in flight after %d ms, which cohort "
			    "cannot save (it submitted IOCB_CMD_POLL requests, which wait for their descriptor)",
			    d->pid, (unsigned long)x->id, (long)n, WAIT_MS);
	if (n > 0)
		return DERR(d, "pid %d: aio ring at %lx: %ld requests still in flight after %d ms, which cohort "
			    "cannot save (I/O the kernel has not finished, or events reaped from the ring "
			    "without io_getevents)", d->pid, (unsigned long)x->id, (long)n, WAIT_MS);
	return 0;
}

/* The ring of region v, its header and unreaped events into d (events from *nev on). */
static int capture(struct co_dumpctx *d, const struct co_vma *v, const struct actx *x, uint32_t *nev)
{
	const volatile struct co_aio_ring *r = (const volatile struct co_aio_ring *)v->start;
	uint64_t slots = (v->end - v->start - sizeof(struct co_aio_ring)) / sizeof(struct co_aio_event);
	if (r->magic != CO_AIO_RING_MAGIC || r->header_length != sizeof(struct co_aio_ring) || !r->nr || r->nr > slots)
		return DERR(d, "pid %d: aio ring at %lx has a header cohort does not know (magic %x, %u slots, "
			    "header of %u bytes)", d->pid, (unsigned long)v->start, r->magic, r->nr, r->header_length);
	if (settle(d, x, r))
		return -1;
	struct co_aio *a = &d->aio[d->naio++];
	*a = (struct co_aio){ v->start, v->end, r->id, r->nr, r->head % r->nr, r->tail % r->nr, r->magic,
			      r->compat_features, r->incompat_features, r->header_length, x->nr_asked, in_ring(r) };
	if (*nev + a->nevents > CO_AIO_EVENTS_MAX)
		return DERR(d, "pid %d: more than %d unreaped aio events", d->pid, CO_AIO_EVENTS_MAX);
	for (uint32_t i = 0; i < a->nevents; i++)
		events[(*nev)++] = r->io_events[(a->head + i) % a->nr];
	return 0;
}

/* The manager, every thread parked, after co_mem_collect: the aio rings into d (dump.c). */
int co_aio_collect(struct co_dumpctx *d)
{
	uint32_t nev = 0;
	d->naio = 0;
	d->aio_events = events;
	if (__atomic_load_n(&lock_word, __ATOMIC_ACQUIRE))
		return DERR(d, "pid %d: a thread was stopped while it noted an aio call; checkpoint again", d->pid);
	if (overflow)
		return DERR(d, "pid %d: more aio contexts than cohort keeps (%d per process)", d->pid, CO_AIO_MAX);
	for (uint32_t i = 0; i < d->nvmas; i++) {
		const struct co_vma *v = &d->vmas[i];
		if (v->kind != CO_V_AIO)
			continue;
		const struct actx *x = find(v->start);
		if (!x)
			return DERR(d, "pid %d: aio ring at %lx was made without cohort seeing it (io_setup not made "
				    "through syscall(3)): its requests in flight cannot be counted", d->pid,
				    (unsigned long)v->start);
		if (capture(d, v, x, &nev))
			return -1;
	}
	return 0;
}
