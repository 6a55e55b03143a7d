/*
 * plan.c - the descriptor layout shared by init and the restorer, and the
 * restorer's look-ups in the plan init made (see plan.h).  No libc.
 */
#include "kinds/plan.h"
#include "res.h"
#include "sys.h"

int co_plan_top(void)
{
	struct { uint64_t cur, max; } rl;
	co_prlimit(0, 7 /* RLIMIT_NOFILE */, 0, &rl);
	if (rl.max > (1 << 20))
		rl.max = 1 << 20;
	rl.cur = rl.max;
	co_prlimit(0, 7 /* RLIMIT_NOFILE */, &rl, 0);
	return (int)rl.cur - CO_PLAN_RESERVED;
}

#ifdef COHORT_RESTORER
int co_plan_fd(struct co_rstctx *c, int pid, int fd)
{
	for (uint32_t i = 0; i < c->nplan; i++)
		if (c->plan[i].kind == CO_PLAN_FD && c->plan[i].pid == pid && c->plan[i].fd == fd)
			return c->plan[i].src;
	return -1;
}

int co_plan_shm(struct co_rstctx *c, uint64_t dev, uint64_t ino)
{
	for (uint32_t i = 0; i < c->nplan; i++)
		if (c->plan[i].kind == CO_PLAN_SHM && c->plan[i].ino == ino && (c->plan[i].dev == dev || !dev))
			return c->plan[i].src;
	return -1;
}

const struct co_plan_ent *co_plan_find(struct co_rstctx *c, uint32_t kind, int pid)
{
	for (uint32_t i = 0; i < c->nplan; i++)
		if (c->plan[i].kind == kind && c->plan[i].pid == pid)
			return &c->plan[i];
	return 0;
}

void co_plan_epoll(struct co_rstctx *c)
{
	for (uint32_t i = 0; i < c->nplan; i++) {
		struct co_plan_ent *e = &c->plan[i];
		if (e->kind != CO_PLAN_EPITEM || e->pid != c->proc->pid)
			continue;
		struct { uint32_t events; uint64_t data; } __attribute__((packed)) ev = { (uint32_t)e->dev, e->ino };
		co_sys4(SYS_epoll_ctl, e->src, 1 /* EPOLL_CTL_ADD */, e->fd, (long)&ev);
	}
}
#endif
