#!/usr/bin/env bash
# bench/big.sh - where the time of a checkpoint and a restart of a big heap
# goes (issue 9: "a live checkpoint of a 6 GiB heap takes 29-53 s and a
# restart about 20 s").
#
# usage: bash bench/big.sh [--gib N] [--reps N] [--tmpfs] [--keep]
#
#   --gib N    heap size (default 6), bench/thp_rounds rewriting it whole
#              every round (transparent huge pages where the kernel gives them)
#   --reps N   repetitions (default 1)
#   --tmpfs    images in /dev/shm (default: on disk, under /var/tmp: a 6 GiB
#              program and two 6 GiB images, the pre-copy and the merged one,
#              do not fit comfortably in memory as well)
#   --keep     keep the images
#
# Each repetition: `cohort run -- thp_rounds --gib N --rounds 1000000`; after
# round 2 a live `checkpoint --json` (pre-copied), after two more rounds
# `checkpoint --kill --json`, then `cohort restart` twice: with the images in
# the page cache ("warm") and after `echo 3 > /proc/sys/vm/drop_caches`
# ("cold", root only). Printed: each checkpoint's pause_ms,
# program_pause_ms, duration_ms, bytes and phases_ms (time per phase); each
# restart's time from the command to the program's next round line, and the
# rounds' wall times before and after. All times in milliseconds. Not part of
# `make check`.
set -u

# show, stamp, die, wait_line, json_field, bench_dirs, bench_trap_images; the shared options
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_defaults
PROG=${THP_ROUNDS:-$ROOT/build/bench/thp_rounds}
GIB=6
REPS=1
DISK=1

BENCH_OPTS="--reps --keep --help"
while (($#)); do
    bench_opt "$@" && { shift "$BENCH_SHIFT"; continue; }
    case $1 in
    --gib) GIB=${2:?}; shift ;;
    --tmpfs) DISK=0 ;;
    *) echo "big.sh: unknown option $1" >&2; usage ;;
    esac
    shift
done
for f in "$COHORT" "$PROG"; do
    [[ -x $f ]] || { echo "big.sh: $f not found (run 'make all progs' first)" >&2; exit 2; }
done

bench_dirs cohort-big
bench_trap_images

# phases FILE: the phases_ms object of a --json reply, as "name=ms ..."
phases() {
    grep -oE '"phases_ms":\{[^}]*\}' "$1" | sed -E 's/^"phases_ms":\{//; s/\}$//; s/"//g; s/:/=/g; s/,/  /g'
}

# report_ckpt LABEL FILE
report_ckpt() {
    printf '  %-22s pause %s ms, program saw %s ms, duration %s ms, %s bytes\n' "$1" \
        "$(json_field "$2" pause_ms)" "$(json_field "$2" program_pause_ms)" \
        "$(json_field "$2" duration_ms)" "$(json_field "$2" bytes)"
    printf '  %-22s phases: %s\n' "" "$(phases "$2")"
}

# rounds FILE FROM TO: the wall times of rounds FROM..TO (as printed)
rounds() {
    awk -v a="$2" -v b="$3" '$2 == "round" && $3 >= a && $3 <= b { printf "%s ", $5 }' "$1"
}

# restart_once LABEL RUN: restart the group, time until its next round line
restart_once() {
    local log=$WORK/$2.log line
    local t0=$EPOCHREALTIME
    "$COHORT" restart "$NAME" --images "$IMAGES" > >(stamp >"$log") 2>"$WORK/$2.err" &
    BG_PIDS+=($!)
    line=$(wait_line "$log" 'round [0-9]+' 1 600) || die "$1: no round line 600 s after the restart"
    printf '  %-22s %s ms to the first round line after it\n' "$1 restart" "$(ms_between "$t0" "${line%% *}")"
    wait_line "$log" 'round [0-9]+' 3 600 >/dev/null || die "$1: not 3 rounds after the restart"
    printf '  %-22s rounds after it: %s\n' "" "$(awk '$2 == "round" { printf "%s ", $5 }' "$log")"
    "$COHORT" checkpoint "$NAME" --images "$IMAGES" --kill --json >"$WORK/$2.kill.json" 2>&1 ||
        die "$1: checkpoint --kill after the restart failed: $(cat "$WORK/$2.kill.json")"
    wait
}

echo "big.sh: $GIB GiB heap, images in $IMAGES ($( ((DISK)) && echo disk || echo tmpfs))"
echo "  transparent_hugepage: $(cat /sys/kernel/mm/transparent_hugepage/enabled)"
for ((r = 1; r <= REPS; r++)); do
    NAME=big$r-$$
    log=$WORK/run$r.log
    show "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$PROG" --gib "$GIB" --rounds 1000000
    "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$PROG" --gib "$GIB" --rounds 1000000 \
        > >(stamp >"$log") 2>"$WORK/run$r.err" &
    BG_PIDS+=($!)
    wait_line "$log" 'round 2 ' 1 600 >/dev/null || die "no round 2 after 600 s"
    echo "repetition $r"
    printf '  %-22s rounds: %s\n' "before" "$(rounds "$log" 1 2)"
    "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json >"$WORK/live$r.json" 2>&1 ||
        die "live checkpoint failed: $(cat "$WORK/live$r.json")"
    report_ckpt "live checkpoint" "$WORK/live$r.json"
    last=$(awk '$2 == "round" { n = $3 } END { print n }' "$log")
    wait_line "$log" "round $((last + 2)) " 1 600 >/dev/null || die "no round $((last + 2))"
    printf '  %-22s rounds: %s\n' "during and after" "$(rounds "$log" 3 $((last + 2)))"
    "$COHORT" checkpoint "$NAME" --images "$IMAGES" --kill --json >"$WORK/kill$r.json" 2>&1 ||
        die "checkpoint --kill failed: $(cat "$WORK/kill$r.json")"
    report_ckpt "checkpoint --kill" "$WORK/kill$r.json"
    wait
    restart_once "warm" "warm$r"
    if ((EUID == 0)); then
        sync
        echo 3 >/proc/sys/vm/drop_caches
        restart_once "cold" "cold$r"
    fi
    ((KEEP)) || rm -rf "${IMAGES:?}/$NAME"
    NAME=
done
