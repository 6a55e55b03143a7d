/*
 * epoll.c - an epoll set: made empty with epoll_create1(2); each watched
 * descriptor (fdinfo's "tfd:" lines) is a CO_R_EPITEM that the owner's
 * restorer adds back with its own descriptor numbers, once they are all
 * back (co_plan_epoll).  Dumped after every other object, so that what it
 * watches exists first.  One object per open file description.
 */
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include "kinds/kinds.h"

static int epoll_dump(struct co_kdump *d, int first, uint64_t *id)
{
	struct co_sobj o = { .kind = CO_OBJ_EPOLL, .id = (uint64_t)first + 1 };
	*id = o.id;
	return co_sobj_write(d, first, &o);
}

/* Each watched descriptor, by its number in the epoll owner's process (after the links). */
static int epoll_dump_data(struct co_kdump *d, int first, uint64_t id)
{
	static char info[65536];
	if (co_ref_fdinfo(d, first, info, sizeof(info)) < 0)
		return -1;
	for (const char *p = strstr(info, "tfd:"); p; p = strstr(p + 4, "tfd:")) {
		int tfd = 0;
		unsigned ev = 0;
		unsigned long long data = 0;
		sscanf(p, "tfd: %d events: %x data: %llx", &tfd, &ev, &data);
		struct co_epitem it = { id, d->refs[first].pid, tfd, ev, 0, data };
		co_w_rec(d->w, CO_R_EPITEM, &it, sizeof(it));
	}
	return d->w->err;
}

static int epoll_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	(void)len;
	if (type == CO_R_SOBJ)
		return co_sobj_made(x, p, epoll_create1(0));
	/*
	 * An epoll item is known by the descriptor number it was added with,
	 * so the process adds it itself, with its own numbers, once its
	 * descriptors are back.
	 */
	const struct co_epitem *e = p;
	int ep = co_made_fd(x, CO_OBJ_EPOLL, e->epoll, 0);
	int epfd = ep < 0 ? -1 : co_plan_holder(x, e->pid, ep);
	if (epfd < 0)
		return co_kbad(x, "epoll item of pid %d without its epoll", e->pid);
	struct co_plan_ent pe = { .pid = e->pid, .fd = e->fd, .kind = CO_PLAN_EPITEM, .src = epfd, .dev = e->events,
				  .ino = e->data };
	return co_plan_add(x, &pe);
}

static void epoll_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	(void)len;
	if (type == CO_R_SOBJ) {
		snprintf(out, n, "epoll %llu", (unsigned long long)((const struct co_sobj *)p)->id);
		return;
	}
	const struct co_epitem *e = p;
	snprintf(out, n, "epoll %llu watches pid %d fd %d events %#x", (unsigned long long)e->epoll, e->pid, e->fd,
		 e->events);
}

const struct co_kind_ops co_epoll_ops = {
	.kind = CO_OBJ_EPOLL, .identity = CO_ID_OPENFILE, .late = 1,
	.dump = epoll_dump, .dump_data = epoll_dump_data, .restore = epoll_restore, .describe = epoll_describe,
};
