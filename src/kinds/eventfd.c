/*
 * eventfd.c - an eventfd: its counter and whether it counts as a
 * semaphore (fdinfo), made again with eventfd(2).  One object per open
 * file description.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "kinds/kinds.h"
#include "procfs.h"

static int eventfd_dump(struct co_kdump *d, int first, uint64_t *id)
{
	char info[4096];
	struct co_sobj o = { .kind = CO_OBJ_EVENTFD, .id = (uint64_t)first + 1 };
	if (co_ref_fdinfo(d, first, info, sizeof(info)) < 0)
		return -1;
	o.a = co_status_hex(info, "eventfd-count");
	o.b = (uint64_t)co_status_field(info, "eventfd-semaphore") == 1;
	*id = o.id;
	return co_sobj_write(d, first, &o);
}

static int eventfd_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	/*
	 * eventfd(2) takes an unsigned int as its first count, and the count
	 * is 64 bits: made at zero, then the count written whole (a write
	 * adds it; above 0xfffffffffffffffe it is refused, EINVAL).
	 */
	int f = eventfd(0, o->b ? EFD_SEMAPHORE : 0);
	if (f >= 0 && o->a && write(f, &o->a, sizeof(o->a)) != (ssize_t)sizeof(o->a)) {
		int e = errno;
		close(f);
		errno = e;
		return co_kerr(x, "recreating the group's shared objects: eventfd %llu: its count %#llx cannot be "
			       "written back: %s", (unsigned long long)o->id, (unsigned long long)o->a, strerror(e));
	}
	return co_sobj_made(x, o, f);
}

static void eventfd_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	snprintf(out, n, "eventfd %llu: count %llu%s", (unsigned long long)o->id, (unsigned long long)o->a,
		 o->b ? ", semaphore" : "");
}

const struct co_kind_ops co_eventfd_ops = {
	.kind = CO_OBJ_EVENTFD, .identity = CO_ID_OPENFILE,
	.dump = eventfd_dump, .restore = eventfd_restore, .describe = eventfd_describe,
};
