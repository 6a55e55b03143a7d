/*
 * semundo.c - the SEM_UNDO adjustments of a process: what the kernel adds
 * to each semaphore when the process exits.  No kernel interface shows
 * them; the agent keeps them as the process makes them (src/agent/
 * semundo.c), and each goes into the image as one CO_R_SEMUNDO record.
 *
 * Restore: the semaphore sets exist again with their values (init,
 * src/kinds/sysv.c), and the restorer, in the process itself (undo lists
 * are per process) before its threads exist (they share the list:
 * CLONE_SYSVSEM), makes each adjustment a again with one semop of two
 * operations on the semaphore: +a without SEM_UNDO and -a with it, or the
 * other way round.  The kernel does the two at once, so nobody sees the
 * value move, and the value ends where it was while the kernel's
 * adjustment grows by a.  IPC_NOWAIT: it never blocks; a step of at most
 * SEMVMX / 2 always has one of the two orders within 0..SEMVMX.
 */
#include <errno.h>
#include "res.h"
#include "sys.h"
#include "util.h"

#ifndef COHORT_RESTORER

int co_semundo_dump(struct co_dumpctx *d)
{
	for (int i = 0; i < d->nsemadj; i++)
		if (co_w_rec(d->w, CO_R_SEMUNDO, &d->semadj[i], sizeof(d->semadj[i])))
			return DERR(d, "pid %d: writing its SEM_UNDO adjustment on semaphore %d of set %d failed", d->pid,
				    d->semadj[i].semnum, d->semadj[i].semid);
	return 0;
}

#else /* the restorer */

#define CO_SEM_UNDO 0x1000
#define CO_IPC_NOWAIT 04000
#define STEP 16383 /* SEMVMX / 2 */

struct co_sembuf {
	uint16_t num;
	int16_t op;
	int16_t flg;
};

/* The kernel's adjustment on semaphore num of set id grows by step (|step| <= STEP); 0 or -errno. */
static long adjust(int id, int num, int step)
{
	/* the value moves by +step and back, or by -step and back: one of the two stays within 0..SEMVMX */
	struct co_sembuf up[2] = { { (uint16_t)num, (int16_t)step, CO_IPC_NOWAIT },
				   { (uint16_t)num, (int16_t)-step, CO_SEM_UNDO | CO_IPC_NOWAIT } };
	struct co_sembuf down[2] = { up[1], up[0] };
	long r = co_sys4(SYS_semtimedop, id, (long)up, 2, 0);
	if (r == -EAGAIN || r == -ERANGE)
		r = co_sys4(SYS_semtimedop, id, (long)down, 2, 0);
	return r;
}

int co_semundo_restore(struct co_rstctx *rc)
{
	for (int i = 0; i < rc->nsemadj; i++) {
		const struct co_semadj *a = &rc->semadj[i];
		if (a->semid < 0 || a->semnum < 0 || a->semnum > 0xffff || a->adj < -32768 || a->adj > 32767)
			return co_err(rc->err, rc->errlen, "pid %d: damaged SEM_UNDO adjustment %d on semaphore %d of set %d",
				      rc->proc->pid, a->adj, a->semnum, a->semid);
		for (int left = a->adj; left;) {
			int step = left > STEP ? STEP : left < -STEP ? -STEP : left;
			long r = adjust(a->semid, a->semnum, step);
			if (r < 0)
				return co_err(rc->err, rc->errlen, "pid %d: cannot make its SEM_UNDO adjustment %d on "
					      "semaphore %d of set %d again (errno %ld)", rc->proc->pid, a->adj, a->semnum,
					      a->semid, -r);
			left -= step;
		}
	}
	return 0;
}

#endif
