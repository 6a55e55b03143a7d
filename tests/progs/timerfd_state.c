/*
 * timerfd_state [alarm] (tests/cases/kinds.sh): timerfds checked at every
 * step, so across every checkpoint and restart, against the clocks the
 * program reads itself.
 *   wall     CLOCK_REALTIME, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET,
 *            an hour from the start: fdinfo's settime flags stay 03, and
 *            the deadline (now plus the time left) stays where it was on
 *            the wall clock, within TOL
 *   soon     CLOCK_REALTIME, TFD_TIMER_ABSTIME, DEADLINE_MS from the start
 *            (written in ns to $COHORT_TEST_TMP/deadline: the test lets
 *            it pass while the group is down): never read; before its
 *            deadline it keeps it, as wall does; from TOL after it, it has
 *            fired (0 ns left, one expiration in fdinfo), and never
 *            before it; its settime flags stay 01
 *   tick     CLOCK_MONOTONIC, every PERIOD_MS, read at every step: the
 *            expirations read so far are as many as the periods since it
 *            was armed, counted on CLOCK_MONOTONIC around the read (the
 *            group's monotonic clock goes on across a restart, and so
 *            must the timer, expirations that came unread included)
 *   alarm    CLOCK_BOOTTIME_ALARM, an hour from the start, its deadline
 *            checked on CLOCK_BOOTTIME as wall's: made when the program
 *            may (CAP_WAKE_ALARM), and must be with the argument "alarm"
 * Output: one line per step, then RESULT.
 */
#include "common.h"
#include <poll.h>
#include <sys/timerfd.h>

#define STEPS 30
#define STEP_MS 100
#define DEADLINE_MS 2000
#define PERIOD_MS 5
#define HOUR (3600 * 1000000000ull)
#define TOL (250 * 1000000ull) /* a checkpoint reads the time left and the clock one after the other */
#define MS 1000000ull

/* The time left on timer fd, and clock c around the call that read it. */
static uint64_t left_ns(int fd, clockid_t c, uint64_t *t0, uint64_t *t1)
{
	struct itimerspec its;
	*t0 = t_now_ns(c);
	SYSCHK(timerfd_gettime(fd, &its));
	*t1 = t_now_ns(c);
	return (uint64_t)its.it_value.tv_sec * 1000000000ull + (uint64_t)its.it_value.tv_nsec;
}

/* Timer fd, not yet expired, still has its deadline (ns on clock c), within TOL. */
static void check_deadline(int fd, clockid_t c, uint64_t deadline, const char *what, int s)
{
	uint64_t t0, t1, left = left_ns(fd, c, &t0, &t1);
	CHECK(left > 0, "step %d: %s: expired, %lld ms before its deadline", s, what,
	      (long long)(deadline - t1) / 1000000);
	CHECK(t0 + left <= deadline + TOL && t1 + left + TOL >= deadline,
	      "step %d: %s: its deadline moved by %+lld ms", s, what,
	      ((long long)(t0 + left) - (long long)deadline) / 1000000);
}

static void check_flags(int fd, long long want, const char *what, int s)
{
	long long f = t_fdinfo_field(fd, "settime flags:", 8);
	CHECK(f == want, "step %d: %s: settime flags %llo, expected %llo", s, what, f, want);
}

/*
 * soon: fired from TOL after its deadline, never before it (its
 * expiration counted, 0 ns left); until then it keeps its deadline.  (It
 * may fire between the looks: its count is taken first.)
 */
static void check_soon(int fd, uint64_t deadline, int s)
{
	uint64_t seen = t_now_ns(CLOCK_REALTIME);
	long long ticks = t_fdinfo_field(fd, "ticks:", 10);
	struct pollfd pf = { fd, POLLIN, 0 };
	int ready = SYSCHK(poll(&pf, 1, 0));
	uint64_t t0, t1, left = left_ns(fd, CLOCK_REALTIME, &t0, &t1);
	check_flags(fd, TFD_TIMER_ABSTIME, "soon", s);
	CHECK(ticks == ready && ticks <= 1, "step %d: soon: %lld expirations in fdinfo, poll says %d", s, ticks, ready);
	if (seen >= deadline + TOL)
		CHECK(ticks == 1, "step %d: soon: not fired %lld ms after its deadline (%llu ms left)", s,
		      (long long)(seen - deadline) / 1000000, (unsigned long long)left / 1000000);
	if (ticks || !left)
		CHECK(t1 >= deadline && !left, "step %d: soon: fired %lld ms before its deadline (%llu ms left)", s,
		      ((long long)deadline - (long long)t1) / 1000000, (unsigned long long)left / 1000000);
	else
		CHECK(t0 + left <= deadline + TOL && t1 + left + TOL >= deadline,
		      "step %d: soon: its deadline moved by %+lld ms", s,
		      ((long long)(t0 + left) - (long long)deadline) / 1000000);
}

int main(int argc, char **argv)
{
	t_init("timerfd_state");
	int want_alarm = argc > 1 && strcmp(argv[1], "alarm") == 0;
	uint64_t start = t_now_ns(CLOCK_REALTIME);

	int wall = SYSCHK(timerfd_create(CLOCK_REALTIME, 0));
	uint64_t wall_at = start + HOUR;
	struct itimerspec its = { { 0, 0 }, t_ns_to_ts(wall_at) };
	SYSCHK(timerfd_settime(wall, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL));

	int soon = SYSCHK(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK));
	uint64_t soon_at = start + DEADLINE_MS * MS;
	its.it_value = t_ns_to_ts(soon_at);
	SYSCHK(timerfd_settime(soon, TFD_TIMER_ABSTIME, &its, NULL));
	char path[4096];
	t_fmt(path, sizeof(path), "%s/deadline", t_tmpdir());
	FILE *f = fopen(path, "w");
	CHECK(f && fprintf(f, "%llu\n", (unsigned long long)soon_at) > 0 && fclose(f) == 0, "%s: %s", path,
	      strerror(errno));

	int tick = SYSCHK(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK));
	struct itimerspec per = { t_ns_to_ts(PERIOD_MS * MS), t_ns_to_ts(PERIOD_MS * MS) };
	uint64_t a0 = t_now_ns(CLOCK_MONOTONIC);
	SYSCHK(timerfd_settime(tick, 0, &per, NULL));
	uint64_t a1 = t_now_ns(CLOCK_MONOTONIC), ticks = 0;

	int alarm = timerfd_create(CLOCK_BOOTTIME_ALARM, 0);
	uint64_t alarm_at = t_now_ns(CLOCK_BOOTTIME) + HOUR;
	CHECK(alarm >= 0 || !want_alarm, "timerfd_create(CLOCK_BOOTTIME_ALARM): %s", strerror(errno));
	its.it_value = t_ns_to_ts(HOUR);
	if (alarm >= 0)
		SYSCHK(timerfd_settime(alarm, 0, &its, NULL));

	for (int s = 0; s < STEPS; s++) {
		check_flags(wall, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, "wall", s);
		check_deadline(wall, CLOCK_REALTIME, wall_at, "wall", s);
		check_soon(soon, soon_at, s);
		if (alarm >= 0) {
			check_flags(alarm, 0, "alarm", s);
			check_deadline(alarm, CLOCK_BOOTTIME, alarm_at, "alarm", s);
		}
		uint64_t n = 0, t0 = t_now_ns(CLOCK_MONOTONIC);
		ssize_t k = read(tick, &n, sizeof(n));
		uint64_t t1 = t_now_ns(CLOCK_MONOTONIC);
		CHECK(k == (ssize_t)sizeof(n) || (k < 0 && errno == EAGAIN), "step %d: tick: read: %s", s, strerror(errno));
		ticks += k > 0 ? n : 0;
		/* (less one: the expiration due last may not have been counted yet, on a busy machine) */
		uint64_t least = (t0 - a1) / (PERIOD_MS * MS), most = (t1 - a0) / (PERIOD_MS * MS);
		least -= least > 0;
		CHECK(ticks >= least && ticks <= most, "step %d: tick: %llu expirations read, %llu to %llu periods went by",
		      s, (unsigned long long)ticks, (unsigned long long)least, (unsigned long long)most);
		printf("step %d ok\n", s);
		t_pace_ms(STEP_MS);
	}
	printf("RESULT ok\n");
	return 0;
}
