/*
 * plan.c - the descriptor layout shared by init and the restorer, and the
 * restorer's look-ups in the plan init made (see plan.h).  No libc.
 */
#include <errno.h>
#include <fcntl.h>
#include "kinds/plan.h"
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

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

/* struct epoll_event as x86-64 lays it out */
struct co_epev {
	uint32_t events;
	uint64_t data;
} __attribute__((packed));

/*
 * Does EPOLLWAKEUP stay on an item added here?  The kernel drops it
 * silently without CAP_BLOCK_SUSPEND (in the initial user namespace,
 * which capget cannot tell): probed once, on a set and eventfd of our own.
 */
static int wakeup_kept(void)
{
	static int kept = -1;
	if (kept >= 0)
		return kept;
	long ep = co_sys1(SYS_epoll_create1, O_CLOEXEC), ev = co_sys2(SYS_eventfd2, 0, O_CLOEXEC);
	struct co_epev e = { CO_EPOLLWAKEUP | 1 /* EPOLLIN */, 0 };
	char path[64], text[1024];
	struct co_epoll_line l;
	const char *p = text;
	co_fmt(path, sizeof(path), "/proc/self/fdinfo/%ld", ep);
	kept = ep >= 0 && ev >= 0 && co_sys4(SYS_epoll_ctl, ep, 1 /* EPOLL_CTL_ADD */, ev, (long)&e) == 0 &&
	       co_read_small(path, text, sizeof(text)) > 0 && co_epoll_next(&p, &l) && (l.events & CO_EPOLLWAKEUP);
	if (ep >= 0)
		co_close((int)ep);
	if (ev >= 0)
		co_close((int)ev);
	return kept;
}

long co_epoll_add(int ep, int target, int tfd, uint32_t events, uint64_t data)
{
	struct co_epev ev = { events, data };
	if ((events & CO_EPOLLWAKEUP) && !wakeup_kept())
		return -EPERM; /* it would come back without it */
	if (target == tfd)
		return co_sys4(SYS_epoll_ctl, ep, 1 /* EPOLL_CTL_ADD */, tfd, (long)&ev);
	/* tfd is someone else's (or free): kept aside while the file is there */
	long was = co_fcntl(tfd, F_GETFD, 0), kept = -1;
	if (was >= 0 && (kept = co_fcntl(tfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return kept;
	long r = co_dup2(target, tfd);
	if (r >= 0)
		r = co_sys4(SYS_epoll_ctl, ep == tfd ? (int)kept : ep, 1 /* EPOLL_CTL_ADD */, tfd, (long)&ev);
	if (kept >= 0) {
		co_sys3(SYS_dup3, kept, tfd, (was & FD_CLOEXEC) ? O_CLOEXEC : 0);
		co_close((int)kept);
	} else {
		co_close(tfd);
	}
	return r;
}

long co_epoll_add_disabled(int ep, int target, int tfd, uint32_t events, uint64_t data)
{
	long r = co_epoll_add(ep, target, tfd, (events & CO_EPOLL_FLAGS) | CO_EPOLL_ANY, data);
	if (r < 0)
		return r;
	/* the item fires (it is the only one ready: the caller's order), and EPOLLONESHOT disables it */
	struct co_epev got;
	r = co_sys4(SYS_epoll_wait, ep, (long)&got, 1, 0);
	return r < 0 ? r : r == 1 && got.data == data ? 0 : -EAGAIN;
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

/*
 * The items init could not add (CO_EPI_PROCESS, src/kinds/epoll.c): the
 * file of one of this process's descriptors, added with its number from
 * the checkpoint, now that every descriptor is back.  An item that cannot
 * be added fails the restart: the program would wait on it forever.
 */
int co_plan_epoll(struct co_rstctx *c)
{
	for (uint32_t i = 0; i < c->nplan; i++) {
		const struct co_plan_ent *e = &c->plan[i];
		if (e->kind != CO_PLAN_EPITEM || e->pid != c->proc->pid)
			continue;
		long r = co_epoll_add(e->src, e->fd, e->tfd, (uint32_t)e->dev, e->ino);
		if (r < 0)
			return co_err(c->err, c->errlen, "pid %d: fd %d: cannot add back its epoll item on fd %d (added as "
				      "%d, events 0x%x) (errno %ld)", e->pid, e->src, e->fd, e->tfd, (unsigned)e->dev, -r);
	}
	return 0;
}
#endif
