/*
 * timerfd.c - a timerfd: its clock, time to expiry, interval and the
 * expirations nobody read yet (fdinfo), made again with timerfd_create(2)
 * and armed with the time it had left.  One object per open file
 * description.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "procfs.h"
#ifndef TFD_IOC_SET_TICKS /* <linux/timerfd.h> clashes with <fcntl.h> */
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

/* "(sec, nsec)" after key, as timerfd's fdinfo shows it */
static uint64_t pair_ns(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);
	unsigned long long a = 0, b = 0;
	if (p)
		sscanf(p + strlen(key), " (%llu, %llu)", &a, &b);
	return a * 1000000000ULL + b;
}

static int timerfd_dump(struct co_kdump *d, int first, uint64_t *id)
{
	char info[4096];
	struct co_sobj o = { .kind = CO_OBJ_TIMERFD, .id = (uint64_t)first + 1 };
	if (co_ref_fdinfo(d, first, info, sizeof(info)) < 0)
		return -1;
	o.a = (uint64_t)co_status_field(info, "clockid");
	o.b = pair_ns(info, "it_value:");
	o.c = pair_ns(info, "it_interval:");
	o.d = (uint64_t)co_status_field(info, "ticks");
	*id = o.id;
	return co_sobj_write(d, first, &o);
}

static int timerfd_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	int f = timerfd_create((int)o->a, 0);
	/*
	 * A periodic timer that expired shows 0 ns left: the kernel moves it
	 * on only when it is read.  It comes back one interval from its next
	 * expiry, with the expirations nobody read yet (TFD_IOC_SET_TICKS).
	 */
	uint64_t left = o->b ? o->b : o->c;
	struct itimerspec its = { { (time_t)(o->c / 1000000000ULL), (long)(o->c % 1000000000ULL) },
				  { (time_t)(left / 1000000000ULL), (long)(left % 1000000000ULL) } };
	if (f >= 0 && left)
		timerfd_settime(f, 0, &its, NULL);
	if (f >= 0 && o->d && ioctl(f, TFD_IOC_SET_TICKS, &o->d) < 0)
		co_warn("warning: a timerfd comes back without its %llu unread expirations: %s", (unsigned long long)o->d,
			strerror(errno));
	return co_sobj_made(x, o, f);
}

static void timerfd_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	snprintf(out, n, "timerfd %llu: clock %llu, %llu ns left, interval %llu ns, %llu unread",
		 (unsigned long long)o->id, (unsigned long long)o->a, (unsigned long long)o->b, (unsigned long long)o->c,
		 (unsigned long long)o->d);
}

const struct co_kind_ops co_timerfd_ops = {
	.kind = CO_OBJ_TIMERFD, .identity = CO_ID_OPENFILE,
	.dump = timerfd_dump, .restore = timerfd_restore, .describe = timerfd_describe,
};
