/*
 * timerfd_cancel (tests/cases/kinds.sh, root): a timerfd armed with
 * TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET on CLOCK_REALTIME an hour
 * ahead, cancelled by a change of the realtime clock that the program
 * makes itself: forward by 1 ns and back (adjtimex ADJ_SETOFFSET, which
 * needs CAP_SYS_TIME), which leaves the machine's clock exactly where it
 * was, and is two changes for the kernel (setting the clock to the time
 * just read would leave it behind by the moments in between; an offset
 * of 0 ns is no change at all).
 *   1. armed: settime flags 03, no expiration, read says EAGAIN;
 *      "armed"
 *   2. the clock changed: two expirations in fdinfo (one per change, the
 *      kernel's count of the cancellation), the deadline kept;
 *      "cancelled", and the program waits (t_wait_go 1: the test finds
 *      the checkpoint refused meanwhile)
 *   3. still cancelled (the refused checkpoint took nothing away): read
 *      fails with ECANCELED, once; then EAGAIN, no expiration, the
 *      deadline kept; "read", and the program waits (t_wait_go 2: the
 *      test takes checkpoint --kill and restarts it)
 *   4. as in 1, the deadline where it was on the wall clock (within TOL);
 *      the clock changed again: cancelled again (ECANCELED): the flag is
 *      the kernel's, not only fdinfo's
 * Output: those lines, then RESULT.
 */
#include "common.h"
#include <sys/timerfd.h>
#include <sys/timex.h>

#define HOUR (3600 * 1000000000ull)
#define TOL (250 * 1000000ull)


/* The realtime clock moved by sec s + ns n (n in [0, 1e9)): exactly, in the kernel. */
static void clock_shift(long s, long n)
{
	struct timex t = { .modes = ADJ_SETOFFSET | ADJ_NANO };
	t.time.tv_sec = s;
	t.time.tv_usec = n; /* (nanoseconds with ADJ_NANO) */
	CHECK(adjtimex(&t) >= 0, "adjtimex(ADJ_SETOFFSET): %s", strerror(errno));
}

static void clock_change(void)
{
	clock_shift(0, 1);
	clock_shift(-1, 999999999);
}

/* fd has its flags, ticks unread expirations, and its deadline at (within TOL). */
static void check_state(int fd, long long ticks, uint64_t at, const char *when)
{
	long long f = t_fdinfo_field(fd, "settime flags:", 8), t = t_fdinfo_field(fd, "ticks:", 10);
	CHECK(f == (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET), "%s: settime flags %llo, expected 03", when, f);
	CHECK(t == ticks, "%s: %lld expirations in fdinfo, expected %lld", when, t, ticks);
	struct itimerspec its;
	uint64_t t0 = t_now_ns(CLOCK_REALTIME);
	SYSCHK(timerfd_gettime(fd, &its));
	uint64_t t1 = t_now_ns(CLOCK_REALTIME);
	uint64_t left = (uint64_t)its.it_value.tv_sec * 1000000000ull + (uint64_t)its.it_value.tv_nsec;
	CHECK(left > 0 && t0 + left <= at + TOL && t1 + left + TOL >= at, "%s: its deadline moved by %+lld ms", when,
	      ((long long)(t0 + left) - (long long)at) / 1000000);
	CHECK(its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == 0, "%s: an interval", when);
}

/* read(2) on fd fails with e (EAGAIN: nothing to read; ECANCELED: cancelled). */
static void check_read(int fd, int e, const char *when)
{
	uint64_t n = 0;
	ssize_t r = read(fd, &n, sizeof(n));
	CHECK(r < 0 && errno == e, "%s: read: %zd (%llu expirations, %s), expected %s", when, r,
	      (unsigned long long)n, r < 0 ? strerror(errno) : "no error", strerror(e));
}

int main(void)
{
	t_init("timerfd_cancel");
	int fd = SYSCHK(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK));
	uint64_t at = t_now_ns(CLOCK_REALTIME) + HOUR;
	struct itimerspec its = { { 0, 0 }, t_ns_to_ts(at) };
	SYSCHK(timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL));
	check_state(fd, 0, at, "armed");
	check_read(fd, EAGAIN, "armed");
	printf("armed\n");

	clock_change();
	check_state(fd, 2, at, "cancelled");
	printf("cancelled\n");
	t_wait_go(1);
	check_state(fd, 2, at, "still cancelled");
	check_read(fd, ECANCELED, "still cancelled");
	check_read(fd, EAGAIN, "read once");
	check_state(fd, 0, at, "read once");
	printf("read\n");
	t_wait_go(2);

	check_state(fd, 0, at, "after the restart");
	check_read(fd, EAGAIN, "after the restart");
	clock_change();
	check_state(fd, 2, at, "cancelled again");
	check_read(fd, ECANCELED, "cancelled again");
	printf("RESULT cancelled, read, cancelled again\n");
	return 0;
}
