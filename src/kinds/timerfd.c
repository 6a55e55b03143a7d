/*
 * timerfd.c - a timerfd: its clock, settime flags, time to expiry,
 * interval and the expirations nobody read yet (fdinfo), made again with
 * timerfd_create(2) and armed as it was.  One object per open file
 * description.
 *
 * A timer keeps its deadline, saved as an absolute time on the clock it
 * counts on as the group sees it: the group's time namespace shifts
 * CLOCK_MONOTONIC and CLOCK_BOOTTIME, and a restart makes them go on from
 * where they stood, so that a relative timer comes back with the time it
 * had left on them, and a periodic one in step with them (however long
 * the restart takes).  A timer armed with TFD_TIMER_ABSTIME on
 * CLOCK_REALTIME meets its wall-clock deadline at the same time of day,
 * or at once when it passed while the group was down; a relative one on
 * CLOCK_REALTIME_ALARM (which counts on the time of day) comes back with
 * the time it had left.
 *
 * One state is never restored: a timer armed with TFD_TIMER_ABSTIME |
 * TFD_TIMER_CANCEL_ON_SET on a realtime clock that a change of the clock
 * has cancelled (read fails with ECANCELED, once).  A restart could make
 * one so only by setting the machine's clock, and no kernel interface
 * shows it: fdinfo counts the cancellation as one more expiration, and
 * read, settime and TFD_IOC_SET_TICKS each tell it by taking it away.
 * The coordinator watches the clock itself instead, with such a timer of
 * its own made before any of the group's (co_timerfd_watch_clock): as
 * long as that one shows no change, none of the group's can be
 * cancelled, and its expirations are what they seem.  Once it has, a
 * timer with the flag that has unread expirations, or is disarmed (the
 * kernel keeps a cancellation across a disarming settime), may be
 * cancelled: the checkpoint is refused until the program has read it.  A
 * committed checkpoint found none such, and the watch starts over
 * (timerfd_settle).
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
 * co_sobj.a of a timerfd: the clock, its settime flags from bit 8, and
 * TFD_AT: b is the deadline on the clock it counts on as the group sees
 * it (base_clock), not the time left (later in format 7; 0 before).  A
 * cohort that knows neither fails to make a timer whose a has them
 * (timerfd_create: EINVAL) rather than arm it wrongly.
 */
#define TFD_FLAGS_SHIFT 8
#define TFD_AT (1u << 16)
#define TFD_CLOCK(a) ((int)((a) & ((1u << TFD_FLAGS_SHIFT) - 1)))
#define TFD_FLAGS(a) ((int)(((a) >> TFD_FLAGS_SHIFT) & 0xff))

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

/* A timerfd's clock, by name in messages. */
static const char *clock_name(int clock, char *buf, size_t n)
{
	static const char *const names[] = { [CLOCK_REALTIME] = "CLOCK_REALTIME", [CLOCK_MONOTONIC] = "CLOCK_MONOTONIC",
					     [CLOCK_BOOTTIME] = "CLOCK_BOOTTIME",
					     [CLOCK_REALTIME_ALARM] = "CLOCK_REALTIME_ALARM",
					     [CLOCK_BOOTTIME_ALARM] = "CLOCK_BOOTTIME_ALARM" };
	if (clock >= 0 && clock < (int)(sizeof(names) / sizeof(names[0])) && names[clock])
		return names[clock];
	snprintf(buf, n, "clock %d", clock);
	return buf;
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

/* Now on clock c as the group sees it (its time namespace's offsets, d->clock_off). */
static uint64_t group_now(const struct co_kdump *d, clockid_t c)
{
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

static int clock_watch = -1;	/* the coordinator's timer, cancelled by any change of the realtime clock */
static int clock_changed;	/* the clock changed since the last committed checkpoint (or cannot be watched) */

void co_timerfd_watch_clock(void)
{
	struct itimerspec its = { { 0, 0 }, { time(NULL) + 100 * 366 * 86400L, 0 } };
	clock_watch = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (clock_watch >= 0 && timerfd_settime(clock_watch, TFD_SETTIME_FLAGS, &its, NULL) == 0)
		return;
	if (clock_watch >= 0)
		close(clock_watch);
	clock_watch = -1;
	clock_changed = 1; /* (every such timer is in doubt) */
}

/*
 * Has the realtime clock changed since the last committed checkpoint?
 * Asked after the fdinfo of the timer in question was read: a change
 * that cancelled it came before, and the watch has seen it (a read takes
 * its cancellation away: the watch goes on from now, its answer is kept).
 */
static int clock_was_changed(void)
{
	uint64_t n;
	if (clock_watch < 0 || (read(clock_watch, &n, sizeof(n)) < 0 && errno == ECANCELED))
		clock_changed = 1;
	return clock_changed;
}

/*
 * A timer that the kernel cancels on a change of the realtime clock (so
 * fdinfo says: the flags and a realtime clock) that a change may have
 * cancelled: its unread expirations may count the cancellation, and a
 * disarmed one keeps it with none.  0, or -1 with err: refused.
 */
static int cancel_unknown(struct co_kdump *d, int first, long clock, long flags, uint64_t ticks, int armed)
{
	const struct co_ref *r = &d->refs[first];
	if ((clock != CLOCK_REALTIME && clock != CLOCK_REALTIME_ALARM) || (flags & TFD_SETTIME_FLAGS) != TFD_SETTIME_FLAGS ||
	    (!ticks && armed) || !clock_was_changed())
		return 0;
	snprintf(d->err, d->errlen, "pid %d: fd %d: a timerfd with TFD_TIMER_CANCEL_ON_SET that a change of the "
		 "realtime clock may have cancelled (%llu unread expirations%s): whether it did shows nowhere, and a "
		 "restart could not cancel it again (checkpoint once the program has read it)", r->pid, r->fd,
		 (unsigned long long)ticks, armed ? "" : ", disarmed");
	return -1;
}

/* A committed checkpoint found no timer cancelled: a change from now on is a new one. */
static void timerfd_settle(int failed)
{
	if (!failed && clock_watch >= 0)
		clock_changed = 0;
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
	o.b = left;
	o.c = pair_ns(info, "it_interval:");
	o.d = (uint64_t)co_status_field(info, "ticks");
	if (cancel_unknown(d, first, clock, flags, o.d, left || o.c))
		return -1;
	/* its deadline (the clock read after fdinfo: a few microseconds late, never early), unless disarmed */
	clockid_t base = base_clock((int)clock, flags & TFD_TIMER_ABSTIME);
	if ((left || o.c) && (base != CLOCK_REALTIME || (flags & TFD_TIMER_ABSTIME))) {
		uint64_t at = group_now(d, base) + left;
		o.a |= TFD_AT;
		o.b = at > INT64_MAX || at < left ? INT64_MAX : at; /* (a timer set for ever) */
	}
	*id = o.id;
	return co_sobj_write(d, first, &o);
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
	int e = errno;
	char c[32];
	return co_kerr(x, "cannot arm timerfd %llu again (%s, flags %o, %s %llu ns, interval %llu ns): %s",
		       (unsigned long long)o->id, clock_name(TFD_CLOCK(o->a), c, sizeof(c)), flags,
		       flags & TFD_TIMER_ABSTIME ? "deadline" : "in", (unsigned long long)value,
		       (unsigned long long)ival, strerror(e));
}

static int set_ticks(struct co_krestore *x, const struct co_sobj *o, int f, uint64_t ticks)
{
	if (!ticks || ioctl(f, TFD_IOC_SET_TICKS, &ticks) == 0)
		return 0;
	return co_kerr(x, "cannot give timerfd %llu back its %llu unread expirations (TFD_IOC_SET_TICKS: %s)",
		       (unsigned long long)o->id, (unsigned long long)ticks, strerror(errno));
}

/*
 * f armed as the timer of o was, with its unread expirations, at its
 * deadline on the clock it counts on (TFD_AT; or, in older images, now
 * plus the time it had left).  A deadline that passed is counted here as
 * the kernel would have (a relative timer cannot be armed in the past),
 * and the timer armed at its next one, or left disarmed.
 * timerfd_settime clears the expirations, so TFD_IOC_SET_TICKS comes
 * after it, and would overwrite one that came in between: when the clock
 * has reached the deadline by then, it is counted so again.
 */
static int timerfd_arm(struct co_krestore *x, const struct co_sobj *o, int f)
{
	int clock = TFD_CLOCK(o->a), flags = TFD_FLAGS(o->a);
	clockid_t base = base_clock(clock, flags & TFD_TIMER_ABSTIME);
	uint64_t ival = o->c, ticks = o->d, t = co_now_ns(base);
	/* (older images: a periodic timer that showed 0 ns left, one period from now) */
	uint64_t left = o->b ? o->b : o->c;
	uint64_t deadline = (o->a & TFD_AT) ? o->b : left ? t + left : 0;
	for (int tries = 0;; tries++, t = co_now_ns(base)) {
		if (deadline && deadline <= t) {
			uint64_t late = ival ? (t - deadline) / ival + 1 : 1;
			ticks += late;
			deadline = ival ? deadline + late * ival : 0;
		}
		/* (disarmed: its flags kept all the same, as fdinfo shows them) */
		if ((deadline || flags) && settime(x, o, f, flags, deadline, t, ival) < 0)
			return -1;
		if (set_ticks(x, o, f, ticks) < 0)
			return -1;
		/* (a period shorter than these calls: at most one expiration is lost, after a few tries) */
		if (!ticks || !deadline || co_now_ns(base) < deadline || tries == 8)
			return 0;
	}
}

static int timerfd_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	int clock = TFD_CLOCK(o->a);
	/* (times the kernel would not keep: a damaged record, whose sums must not wrap) */
	if ((o->a & ~(uint64_t)(TFD_AT | TFD_SETTIME_FLAGS << TFD_FLAGS_SHIFT | ((1u << TFD_FLAGS_SHIFT) - 1))) ||
	    o->b > INT64_MAX || o->c > INT64_MAX)
		return co_kbad(x, "damaged timerfd record (clock and flags %llx, %llu ns, interval %llu ns)",
			       (unsigned long long)o->a, (unsigned long long)o->b, (unsigned long long)o->c);
	int f = timerfd_create(clock, 0), e = errno;
	char c[32];
	if (f < 0)
		return co_kerr(x, "cannot make timerfd %llu on %s again: %s%s", (unsigned long long)o->id,
			       clock_name(clock, c, sizeof(c)), strerror(e),
			       is_alarm(clock) && e == EPERM ? " (a timer on an alarm clock needs CAP_WAKE_ALARM)" : "");
	if (timerfd_arm(x, o, f) < 0) {
		close(f);
		return -1;
	}
	return co_sobj_made(x, o, f);
}

static void timerfd_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	int flags = TFD_FLAGS(o->a);
	snprintf(out, n, "timerfd %llu: clock %d, %s %llu ns, interval %llu ns, %llu unread%s%s",
		 (unsigned long long)o->id, TFD_CLOCK(o->a), o->a & TFD_AT ? "deadline" : "left", (unsigned long long)o->b,
		 (unsigned long long)o->c, (unsigned long long)o->d, flags & TFD_TIMER_ABSTIME ? ", absolute" : "",
		 flags & TFD_TIMER_CANCEL_ON_SET ? ", cancelled when the clock is set" : "");
}

const struct co_kind_ops co_timerfd_ops = {
	.kind = CO_OBJ_TIMERFD, .identity = CO_ID_OPENFILE,
	.dump = timerfd_dump, .restore = timerfd_restore, .describe = timerfd_describe, .settle = timerfd_settle,
};
