/* boost.c - see boost.h */
#include <sched.h>
#include "boost.h"
#include "sys.h"
#include "util.h"

#ifndef SYS_sched_setattr
#define SYS_sched_setattr 314
#define SYS_sched_getattr 315
#endif
#define RESET_ON_FORK 0x01 /* SCHED_FLAG_RESET_ON_FORK */

/* struct sched_attr, version 1 (its first 56 bytes: the kernel accepts that size) */
struct attr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

static int boosted;

static int get(int tid, struct attr *a)
{
	co_memset(a, 0, sizeof(*a));
	return (int)co_sys4(SYS_sched_getattr, tid, (long)a, sizeof(*a), 0);
}

static int set(int tid, uint32_t policy, uint32_t prio, uint64_t flags)
{
	struct attr a;
	co_memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.policy = policy;
	a.priority = prio;
	a.flags = flags;
	return (int)co_sys3(SYS_sched_setattr, tid, (long)&a, 0); /* seccomp: unfiltered only */
}

int co_boost_tid(int tid)
{
	struct attr a;
	if (get(tid, &a) < 0 || a.policy != SCHED_OTHER || a.nice != 0 || a.flags != 0)
		return 0;
	return set(tid, SCHED_FIFO, 1, RESET_ON_FORK) == 0;
}

int co_boost(void)
{
	int r = co_boost_tid(0);
	if (r)
		boosted = 1;
	return r;
}

void co_unboost_thread(void)
{
	struct attr a;
	if (get(0, &a) == 0 && a.policy == SCHED_FIFO && a.priority == 1 && (a.flags & RESET_ON_FORK))
		set(0, SCHED_OTHER, 0, 0);
}

void co_unboost(void)
{
	/* unmarked, nothing to undo: no system call (every checkpoint's DUMP and coordinator end here) */
	if (!boosted)
		return;
	boosted = 0;
	co_unboost_thread();
}

int co_boosted(void)
{
	return boosted;
}
