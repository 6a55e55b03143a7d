#!/bin/sh
# shell_loop (application group): a /bin/sh loop running many short-lived
# external commands (expr, cat, wc, /bin/true, sleep), so that checkpoints
# meet processes being born and exiting. Every iteration checks that the
# external computation agrees with the shell's own arithmetic, that a small
# data file reads back unchanged and that a log file appended to at every
# iteration has exactly one line per iteration so far. A running checksum
# is printed every 25 iterations. Run as:
#     /bin/sh tests/progs/shell_loop.sh [ITERATIONS]      (default 480)
# With COHORT_TEST_END_GATE set it waits at its end, as the C programs do
# (tests/progs/common.h's end gate), for "$COHORT_TEST_TMP/end".
set -u

N=${1:-480}
gate=${COHORT_TEST_END_GATE:-}
unset COHORT_TEST_END_GATE # (only this shell waits, not the commands it starts)
fail() {
	echo "shell_loop: FAILED at iteration $i: $*" >&2
	exit 1
}

dir=${COHORT_TEST_TMP:-/tmp}/shell_loop.$$
mkdir -p "$dir" || { echo "shell_loop: cannot create $dir" >&2; exit 1; }
data=$dir/data
log=$dir/log
printf 'alpha\nbeta\ngamma\n' >"$data"
: >"$log"

i=0
sum=1
while [ "$i" -lt "$N" ]; do
	i=$((i + 1))
	want=$(((sum * 31 + i) % 1000003))
	# expr exits with 1 when the result is 0: look at its output only
	got=$(expr \( "$sum" \* 31 + "$i" \) % 1000003)
	[ "$got" = "$want" ] || fail "expr says '$got', the shell says '$want'"
	sum=$got
	n=$(cat "$data" | wc -l)
	[ "$n" -eq 3 ] || fail "data file has $n lines"
	/bin/true || fail "/bin/true failed"
	echo "$i $sum" >>"$log"
	n=$(wc -l <"$log")
	[ "$n" -eq "$i" ] || fail "log has $n lines, expected $i"
	if [ $((i % 10)) -eq 0 ]; then
		sleep 0.03 || fail "sleep failed"
	fi
	if [ $((i % 25)) -eq 0 ]; then
		echo "iteration $i sum $sum"
	fi
done
ck=$(cksum <"$log")
rm -rf "$dir"
echo "RESULT $sum $ck"
if [ -n "$gate" ] && [ -n "${COHORT_TEST_TMP:-}" ]; then
	: >"$COHORT_TEST_TMP/at-end"
	while [ ! -e "$COHORT_TEST_TMP/end" ]; do
		sleep 0.01
	done
fi
