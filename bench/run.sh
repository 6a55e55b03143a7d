#!/usr/bin/env bash
# bench/run.sh - checkpoint/restart benchmark of cohort with bench/bigmem.
#
# usage: bash bench/run.sh [--images DIR | --disk] [--reps N] [--mib N]
#                          [--threads N] [--window S] [--dirty-pct P]
#                          [--drop-caches] [--keep] [--compress] [--cohort PATH]
#                          [--bigmem PATH] [-- EXTRA BIGMEM ARGS...]
#
#   --images DIR    where images go (default: a new temp dir under /dev/shm,
#                   i.e. RAM, removed at the end)
#   --disk          use a new temp dir under /var/tmp (a real disk) instead
#   --reps N        repetitions (default 3); the table shows each and the median
#   --mib N         bigmem memory (default 1024)     --threads N   (default 4)
#   --window S      length of the measurement windows in seconds (default 3)
#   --dirty-pct P   pass --dirty-pct P to bigmem (default: write at full speed)
#   --drop-caches   drop the page cache before each restart (cold-cache
#                   restart; meaningful with --disk)
#   --keep          keep the images (default: each repetition's images are
#                   deleted once measured, to bound memory use)
#   --compress      checkpoints with --compress (images stored as zstd);
#                   with "-- --compressible" bigmem's memory compresses
#   Environment: COHORT, BIGMEM (paths of the binaries) as alternatives.
#
# What one repetition measures (name bench-rN, a fresh group each time):
#
#   1. start: `cohort run --name NAME --images DIR -- bigmem ...` in the
#      background, its output piped through a time-stamper into a log; wait for
#      `cohort status NAME` to exit 0 and for bigmem's "ready" line.
#
#   2. base_gap_ms: app-observed pause WITHOUT a checkpoint.  bigmem keeps the
#      largest gap between consecutive iterations of any of its threads and
#      prints it (then resets it) on SIGUSR1.  We send SIGUSR1 (reset), wait
#      WINDOW seconds, send SIGUSR1 again: that is the noise floor (scheduling:
#      e.g. 4 busy threads on 2 cores).  Signals go through
#      `cohort kill NAME --signal USR1`.
#
#   3. ckpt_gap_ms: the same over a window that contains one
#      `cohort checkpoint NAME --json` (no --kill): SIGUSR1 (reset), checkpoint,
#      wait until WINDOW has elapsed (and at least 1 s after the checkpoint
#      returned, to catch after-effects such as copy-on-write faults), SIGUSR1.
#      This is the pause the application itself perceived.
#      pause_ms, duration_ms, bytes, kind are taken from the --json output;
#      ckpt_wall_ms is the wall time of the checkpoint command; disk_bytes is
#      `du -sb` of the generation directory.
#
#   4. `cohort checkpoint NAME --kill --json`: a second generation, then the
#      group is killed (kill_kind / kill_dur_ms are reported).  We wait for
#      `cohort run` to exit.
#
#   5. restart_ms: time from launching `cohort restart NAME` until the restored
#      program demonstrably makes progress again.  bigmem's worker loop
#      compares CLOCK_REALTIME across consecutive iterations; the first
#      iteration after a wall-clock gap > 100 ms (here: the time between the
#      freeze of step 4 and the restore) prints "alive ... rt <realtime>", and
#      when every thread has resumed it prints "alive_all ... rt <realtime>".
#      We take the launch time with $EPOCHREALTIME just before starting
#      `cohort restart`, and the resume time from the "rt" field the program
#      printed itself, so pipe/polling latency of this script does not count.
#      CLOCK_REALTIME is used because it is not affected by time namespaces
#      (a restorer may shift CLOCK_MONOTONIC so that the downtime is hidden).
#      restart_ms = first thread progressing, restart_all_ms = all threads.
#      status_ms is when `cohort status NAME` first exited 0 (polled every
#      10 ms in the background), for comparison.
#
#   6. post_gap_ms: app-observed pause over a WINDOW after the restart (lazy
#      restore, page faults, ...), then `cohort kill NAME --signal TERM`:
#      bigmem stops, checks every word of its memory against the expected
#      pattern and prints "verify ok" (column verify) - so the benchmark also
#      checks that the restored memory is right.
#
# All times are in milliseconds; the last line of the table is the median.
set -u

# show, stamp, die, wait_line, json_field, ms_between, bench_dirs; the shared options
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_defaults
BIGMEM=${BIGMEM:-$ROOT/build/bench/bigmem}
MIB=1024
THREADS=4
WINDOW=3
DIRTY=
DROP=0
CKPT_OPTS=()
EXTRA=()

BENCH_OPTS="--reps --images --keep --cohort --help"
while (($#)); do
    bench_opt "$@" && { shift "$BENCH_SHIFT"; continue; }
    case $1 in
    --disk) DISK=1 ;;
    --mib) MIB=${2:?}; shift ;;
    --threads) THREADS=${2:?}; shift ;;
    --window) WINDOW=${2:?}; shift ;;
    --dirty-pct) DIRTY=${2:?}; shift ;;
    --drop-caches) DROP=1 ;;
    --compress) CKPT_OPTS+=(--compress) ;;
    --bigmem) BIGMEM=${2:?}; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
    esac
    shift
done

bench_positive REPS
bench_need make "$COHORT" "$BIGMEM"

bench_dirs cohort-bench

NAME=                 # group of the current repetition
BG_PIDS=()            # background pipelines we started

# shellcheck disable=SC2317  # (invoked by the trap)
cleanup() {
    bench_cleanup TERM
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# ---------------------------------------------------------------- helpers

count_lines() { grep -cE "^[0-9.]+ ($2)" "$1" 2>/dev/null; }

# group_signal NAME SIG (e.g. USR1): signal the group through cohort.  The
# accepted spelling (USR1 or SIGUSR1) is found on first use; each distinct
# command is printed the first time.  (Not to be called in a subshell.)
SIGFMT=
declare -A SHOWN
group_signal() {
    local n=$1 s=$2 f
    for f in ${SIGFMT:-X SIGX}; do
        if [[ -z ${SHOWN[$f$s]:-} ]]; then
            show "$COHORT" kill "$n" --signal "${f/X/$s}"
            SHOWN[$f$s]=1
        fi
        if "$COHORT" kill "$n" --signal "${f/X/$s}" >/dev/null 2>>"$WORK/cohort-kill.err"; then
            SIGFMT=$f
            return 0
        fi
    done
    return 1
}

# gap_report LOG: SIGUSR1 the group, wait for the max_gap_ms line bigmem
# prints in response, and set GAP to its value (ms)
GAP=
gap_report() {
    local log=$1 n line
    n=$(count_lines "$log" 'max_gap_ms ')
    group_signal "$NAME" USR1 || die "cannot signal group $NAME (see $WORK/cohort-kill.err)"
    line=$(wait_line "$log" 'max_gap_ms ' $((n + 1)) 15) || die "no max_gap_ms report from bigmem"
    GAP=${line##* }
}


median() {        # values... ("-" ignored)
    printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g |
        awk '{ v[NR] = $1 }
             END { if (!NR) { print "-"; exit }
                   if (NR % 2) { print v[(NR + 1) / 2]; exit }
                   m = (v[NR / 2] + v[NR / 2 + 1]) / 2
                   if (m == int(m)) printf "%d\n", m; else printf "%.1f\n", m }'
}

# --------------------------------------------------------------- the run
BIGMEM_ARGS=(--seconds 900 --mib "$MIB" --threads "$THREADS")
[[ -n $DIRTY ]] && BIGMEM_ARGS+=(--dirty-pct "$DIRTY")
BIGMEM_ARGS+=("${EXTRA[@]}")

echo "== cohort checkpoint/restart benchmark =="
echo "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "images: $IMAGES ($(df -PT "$IMAGES" | awk 'NR == 2 { print $2 }'))"
echo "program: $BIGMEM ${BIGMEM_ARGS[*]}"
echo "window: ${WINDOW}s, repetitions: $REPS, COHORT_RUN_DIR=$COHORT_RUN_DIR"
echo "checkpoint options: ${CKPT_OPTS[*]:-(none)}"

COLS=(base_gap_ms ckpt_gap_ms pause_ms duration_ms ckpt_wall_ms bytes raw_bytes disk_bytes kind
      kill_kind kill_dur_ms restart_ms restart_all_ms status_ms post_gap_ms verify)
declare -A R   # R[rep,col]

for ((rep = 1; rep <= REPS; rep++)); do
    NAME=bench-r$rep
    RUNLOG=$WORK/run-$rep.log
    RSTLOG=$WORK/restart-$rep.log
    rm -rf "${IMAGES:?}/$NAME"
    echo
    echo "-- repetition $rep/$REPS (group $NAME)"

    # 1. start
    show "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$BIGMEM" "${BIGMEM_ARGS[@]}"
    { "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$BIGMEM" "${BIGMEM_ARGS[@]}"
      echo "__exit $?"; } 2>&1 | stamp >"$RUNLOG" &
    BG_PIDS+=($!)
    show "$COHORT" status "$NAME"
    deadline=$((EPOCHSECONDS + 30))
    until "$COHORT" status "$NAME" >/dev/null 2>&1; do
        count_lines "$RUNLOG" '__exit' >/dev/null && die "cohort run exited early"
        ((EPOCHSECONDS < deadline)) || die "group $NAME not running after 30 s"
        sleep 0.02
    done
    wait_line "$RUNLOG" 'ready$' 1 120 >/dev/null || die "bigmem did not get ready"
    sleep 1   # warm-up

    # 2. baseline window
    gap_report "$RUNLOG"
    sleep "$WINDOW"
    gap_report "$RUNLOG"
    R[$rep,base_gap_ms]=$GAP

    # 3. window with a checkpoint
    gap_report "$RUNLOG"
    show "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json "${CKPT_OPTS[@]}"
    t0=$EPOCHREALTIME
    "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json "${CKPT_OPTS[@]}" >"$WORK/ckpt-$rep.json" 2>"$WORK/ckpt-$rep.err" ||
        die "checkpoint failed: $(cat "$WORK/ckpt-$rep.err")"
    t1=$EPOCHREALTIME
    rest=$(awk -v w="$WINDOW" -v a="$t0" -v b="$t1" 'BEGIN { r = w - (b - a); print (r < 1 ? 1 : r) }')
    sleep "$rest"
    gap_report "$RUNLOG"
    R[$rep,ckpt_gap_ms]=$GAP
    echo "  checkpoint: $(tr -d '\n' <"$WORK/ckpt-$rep.json")"
    for k in pause_ms duration_ms bytes raw_bytes kind; do
        v=$(json_field "$WORK/ckpt-$rep.json" $k)
        R[$rep,$k]=${v:--}
    done
    R[$rep,ckpt_wall_ms]=$(ms_between "$t0" "$t1")
    gen=$(json_field "$WORK/ckpt-$rep.json" generation)
    gdir=$IMAGES/$NAME/$(printf 'gen-%06d' "${gen:-1}" 2>/dev/null)
    if [[ -d $gdir ]]; then
        R[$rep,disk_bytes]=$(du -sb "$gdir" | cut -f1)
    else
        R[$rep,disk_bytes]=-
    fi

    # 4. checkpoint + kill
    show "$COHORT" checkpoint "$NAME" --images "$IMAGES" --kill --json "${CKPT_OPTS[@]}"
    "$COHORT" checkpoint "$NAME" --images "$IMAGES" --kill --json "${CKPT_OPTS[@]}" >"$WORK/kill-$rep.json" 2>"$WORK/kill-$rep.err" ||
        die "checkpoint --kill failed: $(cat "$WORK/kill-$rep.err")"
    echo "  checkpoint --kill: $(tr -d '\n' <"$WORK/kill-$rep.json")"
    v=$(json_field "$WORK/kill-$rep.json" kind); R[$rep,kill_kind]=${v:--}
    v=$(json_field "$WORK/kill-$rep.json" duration_ms); R[$rep,kill_dur_ms]=${v:--}
    line=$(wait_line "$RUNLOG" '__exit' 1 30) || die "cohort run did not exit after checkpoint --kill"
    echo "  cohort run exited with status ${line##* }"
    deadline=$((EPOCHSECONDS + 10))
    while "$COHORT" status "$NAME" >/dev/null 2>&1; do
        ((EPOCHSECONDS < deadline)) || die "group $NAME still reported running after the kill"
        sleep 0.02
    done
    if ((DROP)); then
        show sync
        sync
        show sh -c 'echo 3 > /proc/sys/vm/drop_caches'
        echo 3 >/proc/sys/vm/drop_caches || echo "  (could not drop caches)"
    fi

    # 5. restart
    rm -f "$WORK/status-$rep.t"
    show "$COHORT" restart "$NAME" --images "$IMAGES"
    t_launch=$EPOCHREALTIME
    { "$COHORT" restart "$NAME" --images "$IMAGES"; echo "__exit $?"; } 2>&1 | stamp >"$RSTLOG" &
    BG_PIDS+=($!)
    ( end=$((EPOCHSECONDS + 120))
      while ((EPOCHSECONDS < end)); do
          if "$COHORT" status "$NAME" >/dev/null 2>&1; then
              echo "$EPOCHREALTIME" >"$WORK/status-$rep.t"
              break
          fi
          sleep 0.01
      done ) &
    poller=$!
    BG_PIDS+=("$poller")
    line=$(wait_line "$RSTLOG" 'alive |__exit' 1 120) || die "restarted bigmem did not resume within 120 s"
    [[ $line == *__exit* ]] && die "cohort restart exited before the program resumed"
    rt=${line##* rt }; rt=${rt%% *}
    R[$rep,restart_ms]=$(ms_between "$t_launch" "$rt")
    if line=$(wait_line "$RSTLOG" 'alive_all ' 1 10); then
        rt=${line##* rt }; rt=${rt%% *}
        R[$rep,restart_all_ms]=$(ms_between "$t_launch" "$rt")
    else
        R[$rep,restart_all_ms]=-
    fi
    wait "$poller"
    if [[ -s $WORK/status-$rep.t ]]; then
        R[$rep,status_ms]=$(ms_between "$t_launch" "$(cat "$WORK/status-$rep.t")")
    else
        R[$rep,status_ms]=-
    fi

    # 6. after the restart: steady state, then a clean stop with verification
    gap_report "$RSTLOG"   # resets; this value spans the restart
    sleep "$WINDOW"
    gap_report "$RSTLOG"
    R[$rep,post_gap_ms]=$GAP
    group_signal "$NAME" TERM || die "cannot send TERM to $NAME"
    line=$(wait_line "$RSTLOG" '__exit' 1 60) || die "restarted group did not exit after TERM"
    echo "  cohort restart exited with status ${line##* }"
    if grep -q ' verify ok' "$RSTLOG"; then
        R[$rep,verify]=ok
    elif grep -q ' verify FAILED' "$RSTLOG"; then
        R[$rep,verify]=FAILED
    else
        R[$rep,verify]=-
    fi
    wait   # background pipelines of this repetition
    BG_PIDS=()
    ((KEEP)) || rm -rf "${IMAGES:?}/$NAME"
    NAME=
done

# --------------------------------------------------------------- the table
echo
echo "== results (ms; bytes) =="
{
    printf 'rep'
    printf ' %s' "${COLS[@]}"
    echo
    for ((rep = 1; rep <= REPS; rep++)); do
        printf '%s' "$rep"
        for c in "${COLS[@]}"; do printf ' %s' "${R[$rep,$c]:--}"; done
        echo
    done
    printf 'median'
    for c in "${COLS[@]}"; do
        vals=()
        for ((rep = 1; rep <= REPS; rep++)); do vals+=("${R[$rep,$c]:--}"); done
        case $c in
        kind|kill_kind|verify) printf ' %s' "${vals[0]}" ;;
        *) printf ' %s' "$(median "${vals[@]}")" ;;
        esac
    done
    echo
} | column -t
echo
echo "base_gap/ckpt_gap/post_gap: largest pause bigmem observed in a ${WINDOW}s window without a"
echo "checkpoint / containing one checkpoint / after the restart.  restart(_all): launch of"
echo "cohort restart -> first (all) thread(s) progressing.  status: -> cohort status exits 0."
fail=0
for ((rep = 1; rep <= REPS; rep++)); do
    [[ ${R[$rep,verify]} == ok ]] || fail=1
done
if ((fail)); then
    echo "WARNING: the memory check of the restored program did not pass in every repetition"
    exit 1
fi
