/*
 * timerfd.c - a timerfd: its clock, settime flags, time to expiry,
 * interval and the expirations nobody read yet (fdinfo), made again with
 * timerfd_create(2) and armed as it was.  One object per open file
 * description.
 *
 * A timer armed with TFD_TIMER_ABSTIME keeps its deadline: saved as an
 * absolute time on its clock as the group sees it (the group's time
 * namespace shifts CLOCK_MONOTONIC and CLOCK_BOOTTIME; a restart makes
 * them go on from where they stood), and armed at it again, so that a
 * wall-clock deadline (CLOCK_REALTIME) is met at the same time of day,
 * or at once when it passed while the group was down.  A relative timer
 * comes back with the time it had left.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "procfs.h"
#ifndef TFD_IOC_SET_TICKS /* <linux/timerfd.h> clashes with <fcntl.h> */
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif
#ifndef TFD_TIMER_CANCEL_ON_SET
#define TFD_TIMER_CANCEL_ON_SET (1 << 1)
#endif
#define TFD_SETTIME_FLAGS (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET)

/*
 * co_sobj.a of a timerfd: the clock, and its settime flags from bit 8
 * (later in format 7; 0 before).  A cohort that knows no flags fails to
 * make a timer whose a has them (timerfd_create: EINVAL) rather than arm
 * it wrongly.
 */
#define TFD_FLAGS_SHIFT 8

/* "(sec, nsec)" after key, as timerfd's fdinfo shows it */
static uint64_t pair_ns(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);
	unsigned long long a = 0, b = 0;
	if (p)
		sscanf(p + strlen(key), " (%llu, %llu)", &a, &b);
	return a * 1000000000ULL + b;
}

static int is_alarm(int clock)
{
	return clock == CLOCK_REALTIME_ALARM || clock == CLOCK_BOOTTIME_ALARM;
}

/*
 * The clock a timer on clock counts on: an alarm clock's own cannot be
 * read without a real-time clock device (EINVAL), its base can.  A
 * relative CLOCK_REALTIME timer counts on CLOCK_MONOTONIC (hrtimer: it
 * must not move when the time of day is set).
 */
static clockid_t base_clock(int clock, int abs)
{
	if (clock == CLOCK_REALTIME_ALARM)
		return CLOCK_REALTIME;
	if (clock == CLOCK_BOOTTIME_ALARM)
		return CLOCK_BOOTTIME;
	if (clock == CLOCK_REALTIME && !abs)
		return CLOCK_MONOTONIC;
	return clock;
}

/* Now on the clock of an absolute timer, as the group sees it (its time namespace's offsets, d->clock_off). */
static uint64_t group_now(const struct co_kdump *d, int clock)
{
	clockid_t c = base_clock(clock, 1);
	int64_t off = c == CLOCK_MONOTONIC ? d->clock_off[0] : c == CLOCK_BOOTTIME ? d->clock_off[1] : 0;
	return co_now_ns(c) + (uint64_t)off;
}

/*
 * A periodic timer that expired is moved on by the kernel only when it
 * is read or asked its time: until then fdinfo shows one expiration and
 * 0 ns left, however many periods went by.  timerfd_gettime on a copy of
 * the descriptor (pidfd_getfd) moves it on and counts them into its
 * expirations, which stay unread, as the program's own would.  0, or -1
 * with err.
 */
static int timerfd_forward(struct co_kdump *d, int first)
{
	const struct co_ref *r = &d->refs[first];
	struct itimerspec its;
	int f = co_ref_grab(r);
	if (f >= 0 && timerfd_gettime(f, &its) == 0) {
		close(f);
		return 0;
	}
	snprintf(d->err, d->errlen, "pid %d: fd %d: cannot look at the timerfd: %s", r->pid, r->fd, strerror(errno));
	if (f >= 0)
		close(f);
	return -1;
}

static int timerfd_dump(struct co_kdump *d, int first, uint64_t *id)
{
	const struct co_ref *r = &d->refs[first];
	char info[4096];
	struct co_sobj o = { .kind = CO_OBJ_TIMERFD, .id = (uint64_t)first + 1 };
	if (timerfd_forward(d, first) < 0 || co_ref_fdinfo(d, first, info, sizeof(info)) < 0)
		return -1;
	long clock = co_status_field(info, "clockid");
	long flags = co_status_octal(info, "settime flags"); /* (-1: a kernel that does not show them) */
	flags = flags < 0 ? 0 : flags;
	if (clock < 0 || clock >= (1 << TFD_FLAGS_SHIFT) || (flags & ~TFD_SETTIME_FLAGS)) {
		snprintf(d->err, d->errlen, "pid %d: fd %d: a timerfd of clock %ld with settime flags %lo, which cohort "
			 "does not know", r->pid, r->fd, clock, (unsigned long)flags);
		return -1;
	}
	uint64_t left = pair_ns(info, "it_value:");
	o.a = (uint64_t)clock | (uint64_t)flags << TFD_FLAGS_SHIFT;
	o.c = pair_ns(info, "it_interval:");
	o.d = (uint64_t)co_status_field(info, "ticks");
	/* (read after fdinfo: the deadline may come a few microseconds late, never early) */
	o.b = (flags & TFD_TIMER_ABSTIME) && (left || o.c) ? group_now(d, (int)clock) + left : left;
	*id = o.id;
	return co_sobj_write(d, first, &o);
}

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static struct timespec ns_ts(uint64_t ns)
{
	return (struct timespec){ (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };
}

/* f armed at deadline (0: disarmed) on base (its clock now: t), every ival ns; 0, or -1 with err. */
static int settime(struct co_krestore *x, const struct co_sobj *o, int f, int flags, uint64_t deadline, uint64_t t,
		   uint64_t ival)
{
	uint64_t value = !deadline || (flags & TFD_TIMER_ABSTIME) ? deadline : deadline > t ? deadline - t : 1;
	struct itimerspec its = { ns_ts(ival), ns_ts(value) };
	if (timerfd_settime(f, flags, &its, NULL) == 0)
		return 0;
	return co_kerr(x, "cannot arm timerfd %llu again (clock %d, flags %o, %s %llu ns, interval %llu ns): %s",
		       (unsigned long long)o->id, (int)(o->a & 0xff), flags,
		       flags & TFD_TIMER_ABSTIME ? "deadline" : "in", (unsigned long long)value,
		       (unsigned long long)ival, strerror(errno));
}

static int set_ticks(struct co_krestore *x, const struct co_sobj *o, int f, uint64_t ticks)
{
	if (!ticks || ioctl(f, TFD_IOC_SET_TICKS, &ticks) == 0)
		return 0;
	return co_kerr(x, "cannot give timerfd %llu back its %llu unread expirations (TFD_IOC_SET_TICKS: %s)",
		       (unsigned long long)o->id, (unsigned long long)ticks, strerror(errno));
}

/*
 * f armed as the timer of o was, with its unread expirations.  Its
 * deadline is taken as an absolute time on the clock it counts on: the
 * one it was given (TFD_TIMER_ABSTIME), else now plus what it had left.
 * timerfd_settime clears the expirations, so TFD_IOC_SET_TICKS comes
 * after it, and would overwrite one that came in between: when the
 * clock has reached the deadline by then, the expirations up to it are
 * counted here instead and the timer armed at the next one.  (A timer
 * with no expirations to give back counts its own: armed once.)
 */
static int timerfd_arm(struct co_krestore *x, const struct co_sobj *o, int f, int clock, int flags)
{
	int abs = flags & TFD_TIMER_ABSTIME;
	clockid_t base = base_clock(clock, abs);
	uint64_t ival = o->c, ticks = o->d, t = now_ns(base);
	/* (a relative periodic timer that showed 0 ns left: one period from now) */
	uint64_t left = o->b ? o->b : o->c;
	uint64_t deadline = abs ? o->b : left ? t + left : 0;
	if (!deadline) /* disarmed, or a one-shot that expired: its flags kept all the same */
		return (flags && settime(x, o, f, flags, 0, t, ival) < 0) || set_ticks(x, o, f, ticks) < 0 ? -1 : 0;
	for (int tries = 0;; tries++, t = now_ns(base)) {
		if (deadline <= t && ticks) {
			uint64_t late = ival ? (t - deadline) / ival + 1 : 1;
			ticks += late;
			deadline = ival ? deadline + late * ival : 0;
		}
		if (settime(x, o, f, flags, deadline, t, ival) < 0 || set_ticks(x, o, f, ticks) < 0)
			return -1;
		/* (a period shorter than these calls: at most one expiration is lost, after a few tries) */
		if (!ticks || !deadline || now_ns(base) < deadline || tries == 8)
			return 0;
	}
}

static int timerfd_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	int clock = (int)(o->a & ((1 << TFD_FLAGS_SHIFT) - 1)), flags = (int)(o->a >> TFD_FLAGS_SHIFT);
	if (flags & ~TFD_SETTIME_FLAGS)
		return co_kbad(x, "damaged timerfd record (clock and flags %llx)", (unsigned long long)o->a);
	int f = timerfd_create(clock, 0);
	if (f < 0)
		return co_kerr(x, "cannot make timerfd %llu of clock %d again: %s%s", (unsigned long long)o->id, clock,
			       strerror(errno),
			       is_alarm(clock) && errno == EPERM ? " (a timer on an alarm clock needs CAP_WAKE_ALARM)" : "");
	if (timerfd_arm(x, o, f, clock, flags) < 0) {
		close(f);
		return -1;
	}
	return co_sobj_made(x, o, f);
}

static void timerfd_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	unsigned flags = (unsigned)(o->a >> TFD_FLAGS_SHIFT);
	snprintf(out, n, "timerfd %llu: clock %llu, %s %llu ns, interval %llu ns, %llu unread%s%s",
		 (unsigned long long)o->id, (unsigned long long)(o->a & ((1 << TFD_FLAGS_SHIFT) - 1)),
		 flags & TFD_TIMER_ABSTIME ? "deadline" : "left", (unsigned long long)o->b, (unsigned long long)o->c,
		 (unsigned long long)o->d, flags & TFD_TIMER_ABSTIME ? ", absolute" : "",
		 flags & TFD_TIMER_CANCEL_ON_SET ? ", cancelled when the clock is set" : "");
}

const struct co_kind_ops co_timerfd_ops = {
	.kind = CO_OBJ_TIMERFD, .identity = CO_ID_OPENFILE,
	.dump = timerfd_dump, .restore = timerfd_restore, .describe = timerfd_describe,
};
