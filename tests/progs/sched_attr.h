/*
 * sched_attr.h - struct sched_attr as sched_getattr(2) and
 * sched_setattr(2) take it (glibc 2.36 has no wrapper), and the calling
 * thread's read into it; for the test programs that check scheduling
 * attributes across checkpoints (proc_attrs, thread_attrs8).
 */
#ifndef COHORT_TEST_SCHED_ATTR_H
#define COHORT_TEST_SCHED_ATTR_H

#include "common.h"

struct sched_attr_k {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

static inline void get_sched(struct sched_attr_k *a)
{
	memset(a, 0, sizeof(*a));
	CHECK(syscall(SYS_sched_getattr, 0, a, sizeof(*a), 0) == 0, "sched_getattr: %s", strerror(errno));
}

#endif
