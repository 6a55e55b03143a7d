#!/bin/sh
# sh_pipeline (application group): pipelines of external commands
# (seq | sort | md5sum, some through a nested sh -c), with sleeps between
# rounds. Every round checks that sorting the sequence (forward, reversed,
# reversed then forward again) gives the expected digests and first/last
# lines, and prints the digests. Run as:  /bin/sh tests/progs/sh_pipeline.sh
set -u
export LC_ALL=C

fail() {
	echo "sh_pipeline: FAILED in round $r: $*" >&2
	exit 1
}

r=0
all=
for n in 200000 100000 150000 120000 200000 100000; do
	r=$((r + 1))
	plain=$(seq 1 "$n" | md5sum) || fail "seq | md5sum failed"
	fwd=$(seq 1 "$n" | sort -n | md5sum) || fail "seq | sort -n | md5sum failed"
	[ "$fwd" = "$plain" ] || fail "sort -n changed the sequence 1..$n"
	rev=$(sh -c "seq 1 $n | sort -rn | md5sum; sleep 0.1") || fail "sh -c pipeline failed"
	back=$(seq 1 "$n" | sort -rn | sort -n | md5sum) || fail "sort -rn | sort -n failed"
	[ "$back" = "$plain" ] || fail "sort -rn | sort -n is not the sequence 1..$n"
	top=$(seq 1 "$n" | sort -rn | head -n 1)
	[ "$top" = "$n" ] || fail "largest is '$top', expected $n"
	cnt=$(seq 1 "$n" | sort -rn | tail -n 1)
	[ "$cnt" = 1 ] || fail "smallest is '$cnt', expected 1"
	lines=$(seq 1 "$n" | sort -rn | wc -l)
	[ "$lines" -eq "$n" ] || fail "$lines lines, expected $n"
	echo "round $r: n=$n sorted ${fwd%% *} reversed ${rev%% *}"
	all="$all ${fwd%% *} ${rev%% *}"
	sleep 0.3
done
echo "RESULT $(echo "$all" | md5sum | cut -c1-32)"
