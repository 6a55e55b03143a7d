/*
 * helper.h - threads and processes made with clone3, without libc: a bare
 * helper thread for work that runs in parallel inside the agent's dump and
 * the restorer (no TLS of its own, every signal blocked: it inherits the
 * caller's mask, gone before either returns), and a thread or process
 * given the id it had (restart: set_tid).
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

/*
 * clone.S: clone3 a thread (or with CLONE_VM alone, a process) running
 * fn(arg) on the stack in args, then exit; its id, or -errno.
 */
long co_clone3_thread(void *args, unsigned long size, void (*fn)(void *), void *arg);

struct clone_args;
/*
 * clone3 with the id ca->set_tid names.  The id may still be held for a
 * moment by a thread that just exited (a helper of a process restored
 * meanwhile): -EEXIST is tried again every millisecond, 5 s at most.  With
 * fn the child runs fn(arg) on ca's stack (co_clone3_thread); without,
 * it returns 0 as from fork (no CLONE_VM).  The id, or -errno.
 */
long co_clone3_set_tid(struct clone_args *ca, void (*fn)(void *), void *arg);

#endif
