#!/bin/bash
# bench/clockcost.sh - the cost of clock_gettime with and without the
# agent (docs/benchmarks.md, "clock_gettime through the agent"):
#   native          bench/clockcost alone
#   preloaded       LD_PRELOAD=build/libcohort.so, no coordinator (the
#                   wrappers run, the agent is idle)
#   cohort run      under cohort, before any restart (no offsets yet)
#   after restart   checkpoint --kill, restart: the CPU clocks offset
# Usage: bash bench/clockcost.sh [ROUNDS]   (rounds per mode, default 3)
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGES=${IMAGES:-}
DISK=0
. "$ROOT/bench/lib.sh"
ROUNDS=${1:-3}
C=$ROOT/build/cohort
P=$ROOT/build/bench/clockcost
[[ -x $C && -x $P ]] || { echo "build first: make && make build/bench/clockcost" >&2; exit 2; }
bench_dirs clockcost
trap 'rm -rf "$WORK"; ((OWN_IMAGES)) && rm -rf "$IMAGES"' EXIT

echo "native:"
"$P" "$ROUNDS" 0 | sed 's/^/  /'
echo "preloaded (no coordinator):"
LD_PRELOAD=$ROOT/build/libcohort.so "$P" "$ROUNDS" 0 | sed 's/^/  /'
echo "cohort run, then after a restart:"
# 2*ROUNDS rounds a second apart: checkpoint --kill after the first ROUNDS
"$C" run --name cc --images "$IMAGES" -- "$P" $((2 * ROUNDS)) 1000 >"$WORK/run.log" 2>"$WORK/run.err" &
for ((i = 0; i < 600; i++)); do
    (($(grep -c '^round' "$WORK/run.log") >= ROUNDS)) && break
    sleep 0.05
done
"$C" checkpoint cc --images "$IMAGES" --kill >"$WORK/ckpt.log" 2>&1 || die "checkpoint failed"
wait
sed 's/^/  run:     /' "$WORK/run.log"
"$C" restart cc --images "$IMAGES" 2>"$WORK/restart.err" | sed 's/^/  restart: /'
