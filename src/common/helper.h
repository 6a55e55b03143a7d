/*
 * helper.h - a bare helper thread for work that runs in parallel inside the
 * agent's dump and the restorer: no libc, no TLS of its own, every signal
 * blocked (it inherits the caller's mask), gone before either returns.
 */
#ifndef COHORT_HELPER_H
#define COHORT_HELPER_H

#include <stddef.h>

struct co_helper {
	int running;	/* cleared by the kernel when the thread exits (CLONE_CHILD_CLEARTID) */
	int tid;
};

/* Start fn(arg) on the given stack; 0 or -errno. */
int co_spawn(struct co_helper *h, void (*fn)(void *), void *arg, void *stack, size_t size);
/* Wait until the helper has exited. */
void co_join(struct co_helper *h);

#endif
