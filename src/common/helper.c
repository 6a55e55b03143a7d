/* helper.c - see helper.h */
#include <errno.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include "boost.h"
#include "helper.h"
#include "sys.h"
#include "util.h"

int co_spawn(struct co_helper *h, void (*fn)(void *), void *arg, void *stack, size_t size)
{
	struct clone_args ca;
	co_memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
		   CLONE_CHILD_CLEARTID;
	ca.child_tid = (uint64_t)&h->running;
	ca.stack = (uint64_t)stack;
	ca.stack_size = size;
	h->running = 1;
	long r = co_clone3_thread(&ca, sizeof(ca), fn, arg);
	if (r < 0) {
		h->running = 0;
		return (int)r;
	}
	h->tid = (int)r;
	if (co_boosted()) /* a boosted caller's work: not behind the machine's other work either (boost.h) */
		co_boost_tid(h->tid);
	return 0;
}

void co_join(struct co_helper *h)
{
	for (;;) {
		int v = __atomic_load_n(&h->running, __ATOMIC_ACQUIRE);
		if (!v)
			return;
		/* the kernel's wake at thread exit is a shared (not private) futex wake */
		co_futex(&h->running, FUTEX_WAIT, v, 0);
	}
}

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

long co_clone3_set_tid(struct clone_args *ca, void (*fn)(void *), void *arg)
{
	for (int tries = 0;; tries++) {
		long r = fn ? co_clone3_thread(ca, sizeof(*ca), fn, arg) : co_sys2(SYS_clone3, CO_L(ca), sizeof(*ca));
		if (r != -EEXIST || tries == 5000)
			return r;
		struct co_timespec ms = { 0, 1000000 };
		co_nanosleep(&ms);
	}
}
