#!/usr/bin/env bash
# bench/gap.sh - the pause a program really sees during a live checkpoint,
# against what `cohort checkpoint --json` reports (bench/gapwatch).
#
# usage: bash bench/gap.sh [--reps N] [--mib N] [--threads T] [--sleep-us U]
#                          [--dirty-pct P] [--thp] [--kinds "K ..."] [--per N]
#                          [--settle S] [--images DIR | --disk] [--keep]
#                          [--cohort PATH] [--prog PATH] [--waits]
#
#   --reps N        repetitions (default 3), each a fresh group
#   --mib N         gapwatch's memory (default 1024)
#   --threads T     its threads (default 4)   --sleep-us U  their sleep per
#                   turn (default 1000, as bench/bigmem --dirty-pct; 0: spin)
#   --dirty-pct P   percent of its pages written per second (default 1)
#   --thp           its memory madvise(MADV_HUGEPAGE)d
#   --kinds LIST    the checkpoints, in this order, each --per times
#                   (default "full incremental nopre": a full one (pre-copied),
#                   an incremental one, a full one with --no-precopy)
#   --per N         checkpoints of each kind per repetition (default 3)
#   --settle S      seconds after a checkpoint returned that still count as
#                   its window (default 1: a merge, a collapse after it)
#   --images DIR    where images go (default a new directory under /dev/shm);
#                   --disk: one under /var/tmp;  --keep: keep them
#   --waits         (root) also sample where the program's threads wait in
#                   the kernel (bench/waitwatch, every 0.5 ms): per checkpoint
#                   the longest time one thread spent in uninterruptible
#                   sleep (wait_ms) and the kernel functions it waited in,
#                   and the longest it waited for a core (queue_ms)
#   Environment: COHORT, GAPWATCH, WAITWATCH (paths of the binaries) as
#   alternatives.
#
# Each repetition: `cohort run --name NAME --images DIR -- gapwatch --mib N
# --threads T --sleep-us U --dirty-pct P [--thp]`, 1 s after its "ready" a
# quiet window of 3 s (the noise floor: SIGUSR1 before and after, through
# `cohort kill NAME --signal USR1`), then each checkpoint in its window:
# SIGUSR1 (gapwatch reports and forgets what it saw), `cohort checkpoint
# NAME --images DIR --json [--incremental | --no-precopy]`, SETTLE seconds,
# SIGUSR1 again.  Per kind, median [min..max] over every checkpoint:
#   pause_ms, program_pause_ms, prepare_hold_ms, duration_ms    from --json
#                  (prepare_hold_ms: the threads held before the pause to
#                  register new memory; an older cohort without it: "-")
#   app_gap_ms     the longest turn of any gapwatch thread in the window
#   at_ms          when that turn began, in ms after the checkpoint command
#                  started (negative: before it; > duration_ms: after it
#                  returned)
#   gaps_ms        every turn longer than 10 ms in the window, summed
# and for each checkpoint one line with its gaps over 10 ms (at_ms:length).
# All times in milliseconds.  Not part of `make check`.
set -u

# show, stamp, die, wait_line, json_field, ms_between, bench_dirs; the shared options
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_defaults
PROG=${GAPWATCH:-$ROOT/build/bench/gapwatch}
WATCH=${WAITWATCH:-$ROOT/build/bench/waitwatch}
WAITS=0
MIB=1024
THREADS=4
SLEEP_US=1000
PCT=1
THP=()
KINDS="full incremental nopre"
PER=3
SETTLE=1

BENCH_OPTS="--reps --images --keep --cohort --help"
while (($#)); do
    bench_opt "$@" && { shift "$BENCH_SHIFT"; continue; }
    case $1 in
    --mib) MIB=${2:?}; shift ;;
    --threads) THREADS=${2:?}; shift ;;
    --sleep-us) SLEEP_US=${2:?}; shift ;;
    --dirty-pct) PCT=${2:?}; shift ;;
    --thp) THP=(--thp) ;;
    --kinds) KINDS=${2:?}; shift ;;
    --per) PER=${2:?}; shift ;;
    --settle) SETTLE=${2:?}; shift ;;
    --disk) DISK=1 ;;
    --prog) PROG=${2:?}; shift ;;
    --waits) WAITS=1 ;;
    *) echo "gap.sh: unknown option $1" >&2; usage ;;
    esac
    shift
done
bench_positive REPS MIB THREADS PER
for k in $KINDS; do
    [[ $k =~ ^(full|incremental|nopre)$ ]] || { echo "gap.sh: unknown kind $k" >&2; exit 2; }
done
bench_need "make all progs" "$COHORT" "$PROG" $( ((WAITS)) && echo "$WATCH")

bench_dirs cohort-gap

bench_trap_images


declare -A S   # S[kind,column]: samples
ROWS=()
add() { [[ " ${ROWS[*]} " == *" $1 "* ]] || ROWS+=("$1"); S[$1,$2]+=" $3"; }

# report LOG: SIGUSR1, wait for gapwatch's next report; REPORT: its lines
REPORT=
report() {
    local log=$1 n
    n=$(grep -c ' max_gap_ms ' "$log")
    "$COHORT" kill "$NAME" --signal USR1 >/dev/null 2>&1 || die "cohort kill $NAME --signal USR1 failed"
    wait_line "$log" 'max_gap_ms .*' $((n + 1)) 20 >/dev/null || die "gapwatch did not report"
    # the lines of that report: after the n-th max_gap_ms line, up to the (n+1)-th
    REPORT=$(awk -v n="$n" '/ max_gap_ms / { k++; if (k == n + 1) { print; exit } next } k == n && / gap thread / { print }' "$log")
}

# window ROW T0 T1: file the last REPORT as the window of a checkpoint run from T0 to T1
window() {
    local row=$1 t0=$2 t1=$3 max at sum list
    max=$(awk '/ max_gap_ms / { print $NF }' <<<"$REPORT")
    read -r at sum list < <(awk -v t0="$t0" '/ gap thread / {
            ms = $NF; off = ($6 - t0) * 1000
            if (ms > best) { best = ms; at = off }
            if (ms > 10) { sum += ms; l = l sprintf("%.0f:%.1f ", off, ms) } }
        END { printf "%s %.1f %s\n", (best ? sprintf("%.0f", at) : "-"), sum, l }' <<<"$REPORT")
    add "$row" app_gap_ms "$max"
    add "$row" at_ms "$at"
    add "$row" gaps_ms "$sum"
    echo "      app_gap_ms $max at_ms $at; gaps > 10 ms (at_ms:ms): ${list:-none}"
    ((WAITS)) && waits "$row" "$t0" "$t1"
}

# waits ROW T0 T1: what waitwatch saw from T0 to SETTLE s after T1: the
# longest run of one thread's samples in D state (wait_ms) and waiting for a
# core (queue_ms; samples 0.5 ms apart, a gap of over 1.5 ms ends a run),
# and the kernel functions waited in, with their counts
waits() {
    local row=$1 dwait qwait frames
    read -r dwait qwait frames < <(awk -v t0="$2" -v t1="$(awk -v t="$3" -v s="$SETTLE" 'BEGIN { printf "%.4f", t + s }')" '
        $1 >= t0 && $1 <= t1 {
            k = $2 ($3 == "runqueue" ? "q" : "d")
            if ($1 - last[k] > 0.0015) start[k] = $1
            last[k] = $1
            run = ($1 - start[k]) * 1000 + 0.5
            if (run > best[k ~ /q$/]) best[k ~ /q$/] = run
            n[$3]++
        }
        END { l = ""; for (f in n) l = l f "x" n[f] " "; printf "%.1f %.1f %s\n", best[0], best[1], l }' "$WAITLOG")
    add "$row" wait_ms "$dwait"
    add "$row" queue_ms "$qwait"
    echo "      wait_ms $dwait queue_ms $qwait in: ${frames:-nothing}"
}

echo "== cohort: the pause a program sees =="
echo "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "images: $IMAGES ($(df -PT "$IMAGES" | awk 'NR == 2 { print $2 }')); repetitions $REPS; kinds: $KINDS, $PER each; settle ${SETTLE}s"
ARGS=(--mib "$MIB" --threads "$THREADS" --sleep-us "$SLEEP_US" --dirty-pct "$PCT" "${THP[@]}")
echo "program: $PROG ${ARGS[*]}"

for ((rep = 1; rep <= REPS; rep++)); do
    NAME=cgap$$-r$rep
    LOG=$WORK/run-$rep.log
    rm -rf "${IMAGES:?}/$NAME"
    echo
    echo "-- repetition $rep/$REPS (group $NAME)"
    show "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$PROG" "${ARGS[@]}"
    { "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$PROG" "${ARGS[@]}"; echo "__exit $?"; } 2>&1 | stamp >"$LOG" &
    BG_PIDS+=($!)
    wait_line "$LOG" 'ready|__exit.*' 1 120 >/dev/null || die "gapwatch did not get ready"
    grep -q ' __exit' "$LOG" && die "cohort run ended early"
    until "$COHORT" status "$NAME" >/dev/null 2>&1; do sleep 0.02; done
    if ((WAITS)); then
        WAITLOG=$WORK/waits-$rep.log
        host=$("$COHORT" status "$NAME" --json | grep -o '"host_pid":[0-9]*' | head -n 1)
        "$WATCH" "${host#*:}" 100000 >"$WAITLOG" &
        BG_PIDS+=($!)
    fi
    sleep 1
    report "$LOG"
    t0=$EPOCHREALTIME
    sleep 3
    report "$LOG"
    echo "    quiet 3 s:"
    window "quiet 3 s" "$t0" "$EPOCHREALTIME"
    for kind in $KINDS; do
        case $kind in
        full) opts=(--full) ;;
        incremental) opts=(--incremental) ;;
        nopre) opts=(--full --no-precopy) ;;
        esac
        for ((i = 1; i <= PER; i++)); do
            report "$LOG"
            json=$WORK/$rep-$kind-$i.json
            ((rep == 1 && i == 1)) && show "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json "${opts[@]}"
            t0=$EPOCHREALTIME
            "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json "${opts[@]}" >"$json" 2>"$json.err" ||
                die "checkpoint ${opts[*]} failed: $(cat "$json.err")"
            t1=$EPOCHREALTIME
            sleep "$SETTLE"
            report "$LOG"
            row="$kind"
            [[ $kind == incremental && $(json_field "$json" kind) != incremental ]] && row="incremental (came out full)"
            for c in pause_ms program_pause_ms prepare_hold_ms duration_ms; do
                add "$row" $c "$(json_field "$json" $c)"
            done
            echo "    $kind $i: pause_ms $(json_field "$json" pause_ms) program_pause_ms $(json_field "$json" program_pause_ms) prepare_hold_ms $(json_field "$json" prepare_hold_ms) duration_ms $(json_field "$json" duration_ms) (command $(ms_between "$t0" "$t1") ms)"
            window "$row" "$t0" "$t1"
            sleep 1
        done
    done
    "$COHORT" kill "$NAME" --signal TERM >/dev/null 2>&1
    wait_line "$LOG" '__exit.*' 1 60 >/dev/null || die "the group did not end"
    wait
    BG_PIDS=()
    ((KEEP)) || rm -rf "${IMAGES:?}/$NAME"
    NAME=
done

echo
echo "== per kind: median [min..max] over every checkpoint (ms) =="
{
    cols=(pause_ms program_pause_ms prepare_hold_ms app_gap_ms at_ms gaps_ms duration_ms $( ((WAITS)) && echo wait_ms queue_ms))
    (IFS=$'\t'; printf 'what\t%s\n' "${cols[*]}")
    for r in "${ROWS[@]}"; do
        printf '%s' "$r"
        for c in "${cols[@]}"; do
            # shellcheck disable=SC2086
            printf '\t%s' "$(stats ${S[$r,$c]:-})"
        done
        echo
    done
} | column -t -s $'\t'
echo
echo "app_gap_ms: gapwatch's longest turn in the window (SIGUSR1 just before the checkpoint to ${SETTLE} s after it);"
echo "at_ms: when it began, after the checkpoint command started; gaps_ms: the turns over 10 ms, summed."
