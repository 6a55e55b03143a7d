#!/usr/bin/env bash
# bench/incr.sh - full vs incremental checkpoints of cohort, with bench/bigmem.
#
# usage: bash bench/incr.sh [--reps N] [--images DIR | --disk] [--mib N]
#                           [--threads N] [--gap S] [--incrs N] [--keep]
#                           [--cohort PATH] [--bigmem PATH]
#
#   --reps N      repetitions (default 3); every table cell is the median
#                 (and min..max) over all samples of all repetitions
#   --images DIR  where images go (default: a new temp dir under /dev/shm,
#                 i.e. RAM, removed at the end); --disk: one under /var/tmp
#   --mib N       bigmem memory (default 1024)   --threads N  (default 4)
#   --gap S       seconds between checkpoints (default 1)
#   --incrs N     incremental checkpoints per chain (default 5)
#   --keep        keep the images (default: removed once measured)
#   Environment: COHORT, BIGMEM (paths of the binaries) as alternatives.
#
# One repetition, for each write rate P in 1 and 10 (percent of the pages
# bigmem writes per second, `bigmem --dirty-pct P`), with a fresh group
# (name cbench<pid>-r<rep>-d<P>) each time:
#
#   1. `cohort run --name NAME --images DIR -- bigmem --seconds 900 --mib MIB
#      --threads T --dirty-pct P`; wait for `cohort status` and "ready".
#   2. after GAP s: `cohort checkpoint NAME --json --full` (the "full" row:
#      pre-copied, the default); after GAP s more the same with --no-precopy
#      (the "full --no-precopy" row: the whole snapshot fork in the pause);
#      then INCRS times, each after GAP s (so about P*GAP % of the pages were
#      written since the previous one): `cohort checkpoint NAME --json
#      --incremental` (the "incremental" row).  pause_ms, duration_ms, bytes
#      and kind come from the --json output, disk_bytes is `du -sb` of the
#      generation directory.  app_gap_ms is the pause as bigmem sees it: its
#      largest gap between two iterations of any thread, reset by a SIGUSR1
#      (`cohort kill NAME --signal USR1`) just before the checkpoint and
#      reported by another just after it returns.
#   3. wait until the coordinator has merged the last incremental
#      generation L into DIR/NAME/full-L (merge_wait_ms: from the return of
#      the last checkpoint until full-L/manifest exists), then
#      `cohort kill NAME --signal KILL` and wait until the group is gone.
#   4. restart from the merged full image: `cohort restart NAME
#      --generation L` (full-L exists).  restart_ms: from launching it until
#      the first bigmem thread makes progress again (the "alive ... rt T"
#      line bigmem prints after a wall-clock gap, with T its own
#      CLOCK_REALTIME, as in bench/run.sh); restart_all_ms: until every thread
#      has.  After 0.5 s `cohort kill NAME --signal TERM`: bigmem checks every
#      word of its memory and prints "verify ok" (column verify).
#   5. restart from the chain: every DIR/NAME/full-* is deleted, then the same
#      `cohort restart NAME --generation L`, which must first build full-L
#      from gen 2 (the --no-precopy full) and the INCRS incremental generations; measured and
#      verified as in 4.
#   The group's images are deleted afterwards (unless --keep).
#
# All times are in milliseconds.  Not part of `make check`.
set -u

# show, stamp, die, wait_line, json_field, ms_between, bench_dirs; the shared options
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_defaults
BIGMEM=${BIGMEM:-$ROOT/build/bench/bigmem}
MIB=1024
THREADS=4
GAP=1
INCRS=5
PCTS=(1 10)

BENCH_OPTS="--reps --images --keep --cohort --help"
while (($#)); do
    bench_opt "$@" && { shift "$BENCH_SHIFT"; continue; }
    case $1 in
    --disk) DISK=1 ;;
    --mib) MIB=${2:?}; shift ;;
    --threads) THREADS=${2:?}; shift ;;
    --gap) GAP=${2:?}; shift ;;
    --incrs) INCRS=${2:?}; shift ;;
    --bigmem) BIGMEM=${2:?}; shift ;;
    *) echo "incr.sh: unknown option $1" >&2; usage ;;
    esac
    shift
done

bench_positive REPS MIB THREADS INCRS
[[ $GAP =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "incr.sh: --gap wants a number of seconds" >&2; exit 2; }
bench_need "make progs" "$COHORT" "$BIGMEM"

bench_dirs cohort-incr

# NAME: the group being measured; BG_PIDS: background pipelines we started
bench_trap_images

# ---------------------------------------------------------------- helpers


# stats VALUES...: "median [min..max]" of the numeric values ("-" if none)

declare -A S      # S[row,column] = space-separated samples
ROWS=()
add() {           # add ROW COLUMN VALUE
    local k="$1,$2"
    in_rows "$1" || ROWS+=("$1")
    S[$k]="${S[$k]:-} $3"
}
in_rows() { local r; for r in "${ROWS[@]}"; do [[ $r == "$1" ]] && return 0; done; return 1; }

group_gone() {    # wait until `cohort status NAME` fails (10 s)
    local deadline=$((EPOCHSECONDS + 10))
    while "$COHORT" status "$NAME" >/dev/null 2>&1; do
        ((EPOCHSECONDS < deadline)) || die "group $NAME still reported running"
        sleep 0.02
    done
}

# checkpoint ROW TAG ARGS...: one measured checkpoint; sets GEN
checkpoint() {
    local row=$1 tag=$2 k v gdir n line
    shift 2
    # bigmem's largest gap, reported and reset on SIGUSR1: reset now, read after
    n=$(grep -c ' max_gap_ms ' "$RUNLOG")
    "$COHORT" kill "$NAME" --signal USR1 >/dev/null 2>&1 || die "cohort kill $NAME --signal USR1 failed"
    wait_line "$RUNLOG" 'max_gap_ms .*' $((n + 1)) 10 >/dev/null || die "bigmem did not report its gap"
    "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json "$@" >"$WORK/$tag.json" 2>"$WORK/$tag.err" ||
        die "checkpoint $* failed: $(cat "$WORK/$tag.err")"
    "$COHORT" kill "$NAME" --signal USR1 >/dev/null 2>&1 || die "cohort kill $NAME --signal USR1 failed"
    line=$(wait_line "$RUNLOG" 'max_gap_ms .*' $((n + 2)) 10) || die "bigmem did not report its gap"
    add "$row" app_gap_ms "${line##* }"
    echo "    $(tr -d '\n' <"$WORK/$tag.json") app_gap_ms ${line##* }"
    for k in pause_ms duration_ms bytes; do
        v=$(json_field "$WORK/$tag.json" $k)
        add "$row" $k "${v:--}"
    done
    v=$(json_field "$WORK/$tag.json" kind)
    add "$row" kind "${v:--}"
    GEN=$(json_field "$WORK/$tag.json" generation)
    [[ $GEN =~ ^[0-9]+$ ]] || die "checkpoint $*: no generation in its --json output"
    gdir=$IMAGES/$NAME/$(printf 'gen-%06d' "$GEN")
    if [[ -d $gdir ]]; then
        add "$row" disk_bytes "$(du -sb "$gdir" | cut -f1)"
    fi
}

# restart ROW TAG: `cohort restart NAME --generation GEN`, measured, then
# TERM and the memory check
restart() {
    local row=$1 tag=$2 log=$WORK/$2.log t_launch line rt
    show "$COHORT" restart "$NAME" --images "$IMAGES" --generation "$GEN"
    t_launch=$EPOCHREALTIME
    { "$COHORT" restart "$NAME" --images "$IMAGES" --generation "$GEN"; echo "__exit $?"; } 2>&1 | stamp >"$log" &
    BG_PIDS+=($!)
    line=$(wait_line "$log" 'alive |__exit' 1 300) || die "restarted bigmem did not resume within 300 s"
    [[ $line == *__exit* ]] && die "cohort restart --generation $GEN exited before the program resumed"
    rt=${line##* rt }; rt=${rt%% *}
    add "$row" restart_ms "$(ms_between "$t_launch" "$rt")"
    if line=$(wait_line "$log" 'alive_all ' 1 30); then
        rt=${line##* rt }; rt=${rt%% *}
        add "$row" restart_all_ms "$(ms_between "$t_launch" "$rt")"
    fi
    sleep 0.5
    "$COHORT" kill "$NAME" --signal TERM >/dev/null 2>"$WORK/kill.err" || die "cohort kill $NAME --signal TERM failed"
    line=$(wait_line "$log" '__exit' 1 120) || die "restarted group did not exit after TERM"
    if grep -q ' verify ok' "$log"; then
        add "$row" verify ok
    else
        add "$row" verify FAILED
        VERIFY_FAILED=1
    fi
    echo "    restart: $(grep -E ' (alive|alive_all|verify) ' "$log" | cut -d' ' -f2- | tr '\n' ';')"
    group_gone
}

# --------------------------------------------------------------- the run
echo "== cohort incremental checkpoint benchmark =="
echo "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "images: $IMAGES ($(df -PT "$IMAGES" | awk 'NR == 2 { print $2 }'))"
echo "program: $BIGMEM --seconds 900 --mib $MIB --threads $THREADS --dirty-pct P (P in ${PCTS[*]})"
echo "gap ${GAP}s, $INCRS incrementals per chain, repetitions: $REPS, COHORT_RUN_DIR=$COHORT_RUN_DIR"
VERIFY_FAILED=0

for ((rep = 1; rep <= REPS; rep++)); do
    for pct in "${PCTS[@]}"; do
        NAME=cbench$$-r$rep-d$pct
        RUNLOG=$WORK/run-$rep-$pct.log
        rm -rf "${IMAGES:?}/$NAME"
        echo
        echo "-- repetition $rep/$REPS, dirty ${pct}%/s (group $NAME)"
        args=(--seconds 900 --mib "$MIB" --threads "$THREADS" --dirty-pct "$pct")
        show "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$BIGMEM" "${args[@]}"
        { "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$BIGMEM" "${args[@]}"
          echo "__exit $?"; } 2>&1 | stamp >"$RUNLOG" &
        BG_PIDS+=($!)
        deadline=$((EPOCHSECONDS + 30))
        until "$COHORT" status "$NAME" >/dev/null 2>&1; do
            grep -q ' __exit' "$RUNLOG" 2>/dev/null && die "cohort run exited early"
            ((EPOCHSECONDS < deadline)) || die "group $NAME not running after 30 s"
            sleep 0.02
        done
        wait_line "$RUNLOG" 'ready$' 1 120 >/dev/null || die "bigmem did not get ready"

        sleep "$GAP"
        show "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json --full
        checkpoint "full, dirty $pct%" full-$rep-$pct --full
        sleep "$GAP"
        show "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json --full --no-precopy
        checkpoint "full --no-precopy, dirty $pct%" nopre-$rep-$pct --full --no-precopy
        show "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json --incremental
        for ((i = 1; i <= INCRS; i++)); do
            sleep "$GAP"
            checkpoint "incremental, dirty $pct%" incr-$rep-$pct-$i --incremental
        done
        t_last=$EPOCHREALTIME
        full=$IMAGES/$NAME/$(printf 'full-%06d' "$GEN")
        deadline=$((EPOCHSECONDS + 300))
        until [[ -f $full/manifest ]]; do
            ((EPOCHSECONDS < deadline)) || die "$full was not merged within 300 s"
            sleep 0.01
        done
        merge_ms=$(ms_between "$t_last" "$EPOCHREALTIME")
        echo "    $full there after $merge_ms ms"
        show "$COHORT" kill "$NAME" --signal KILL
        "$COHORT" kill "$NAME" --signal KILL >/dev/null 2>"$WORK/kill.err" || die "cohort kill $NAME --signal KILL failed"
        wait_line "$RUNLOG" '__exit' 1 60 >/dev/null || die "cohort run did not exit after the kill"
        group_gone

        row="restart merged full-L, dirty $pct%"
        add "$row" merge_wait_ms "$merge_ms"
        restart "$row" rs-full-$rep-$pct
        show rm -rf "$IMAGES/$NAME/full-*"
        rm -rf "${IMAGES:?}/$NAME"/full-*
        restart "restart chain 1+$INCRS, dirty $pct%" rs-chain-$rep-$pct
        wait   # background pipelines of this group
        BG_PIDS=()
        ((KEEP)) || rm -rf "${IMAGES:?}/$NAME"
        NAME=
    done
done

# --------------------------------------------------------------- the tables
table() {   # table COLUMN...: one line per row that has any of the columns
    local c r any
    {
        printf 'what'
        printf '\t%s' "$@"
        echo
        for r in "${ROWS[@]}"; do
            any=0
            for c in "$@"; do [[ -n ${S[$r,$c]:-} ]] && any=1; done
            ((any)) || continue
            printf '%s' "$r"
            for c in "$@"; do
                case $c in
                kind|verify) printf '\t%s' "$(tr ' ' '\n' <<<"${S[$r,$c]:-}" | grep -v '^$' | sort | uniq -c |
                                             awk '{ printf "%s%s*%d", (NR > 1 ? "," : ""), $2, $1 }')" ;;
                *) # shellcheck disable=SC2086
                   printf '\t%s' "$(stats ${S[$r,$c]:-})" ;;
                esac
            done
            echo
        done
    } | column -t -s $'\t'
}
echo
echo "== checkpoints (median [min..max] over every sample; ms, bytes) =="
table kind pause_ms app_gap_ms duration_ms bytes disk_bytes
echo
echo "== restarts of the last generation (ms) =="
table merge_wait_ms restart_ms restart_all_ms verify
echo
echo "kind/verify: value*count.  merge_wait: last checkpoint returned -> full-L merged."
echo "restart(_all): launch of cohort restart -> first (all) bigmem thread(s) progressing;"
echo "the chain restart includes building full-L from gen 2 (full) + $INCRS incrementals."
if ((VERIFY_FAILED)); then
    echo "WARNING: the memory check of a restored bigmem failed"
    exit 1
fi
