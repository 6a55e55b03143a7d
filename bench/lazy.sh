#!/bin/bash
# bench/lazy.sh - restart with and without --lazy (userfaultfd, the pages
# brought by a filler while the program runs) for bench/bigmem.
#
#   bash bench/lazy.sh [--reps N] [--mib N] [--dirty-pct P] [--images DIR] [--keep]
#
# Per repetition: bigmem (MIB, default 1024, 4 threads, writing P % of its
# pages per second, default 1; 0: as fast as it can) runs under cohort,
# `checkpoint --kill` writes generation 1; then, from that same generation,
# a plain restart and a `restart --lazy`, each ended with
# `cohort kill NAME --signal TERM`, on which bigmem checks every word of
# its memory ("verify ok"): the benchmark also checks the lazy restore.
#
#   restart_ms  launch of `cohort restart` to bigmem's first iteration
#               after the gap ("alive ... rt", CLOCK_REALTIME, which no
#               time namespace shifts; bench/run.sh measures it so too)
#   all_ms      ... to every thread's ("alive_all")
#   fill_ms     (--lazy) launch to the end of the last page filler: every
#               page in place, the process an ordinary one again
# Medians with [min..max]; all times in milliseconds.
set -u

# show, stamp, die, wait_line, json_field, bench_dirs, bench_trap_images; the shared options
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_defaults
BIGMEM=${BIGMEM:-$ROOT/build/bench/bigmem}
MIB=1024
DIRTY=1
BENCH_OPTS="--reps --images --keep"
while (($#)); do
    bench_opt "$@" && { shift "$BENCH_SHIFT"; continue; }
    case $1 in
    --mib) MIB=$2; shift 2 ;;
    --dirty-pct) DIRTY=$2; shift 2 ;;
    *) echo "usage: bash bench/lazy.sh [--reps N] [--mib N] [--dirty-pct P] [--images DIR] [--keep]" >&2; exit 2 ;;
    esac
done
[[ -x $BIGMEM ]] || { echo "${0##*/}: $BIGMEM missing: run 'make progs'" >&2; exit 2; }

bench_dirs cohort-lazy
bench_trap_images

ARGS=(--seconds 0 --mib "$MIB")
[[ $DIRTY != 0 ]] && ARGS+=(--dirty-pct "$DIRTY")

# the page fillers (comm cohort-filler) that are children of process $1
fillers_of() {
    local f
    for f in /proc/[0-9]*/stat; do
        read -r _ comm _ ppid _ 2>/dev/null <"$f" || continue
        [[ $comm == "(cohort-filler)" && $ppid == "$1" ]] && echo "${f//[!0-9]/}"
    done
}

# one_restart TAG [--lazy]: restart generation 1, time it, end it with a check of the memory
one_restart() {
    local tag=$1 log=$WORK/$1-$rep.log t_launch line rt cpid
    shift
    show "$COHORT" restart "$NAME" --images "$IMAGES" "$@"
    t_launch=$EPOCHREALTIME
    "$COHORT" restart "$NAME" --images "$IMAGES" "$@" > >(stamp >"$log") 2>&1 &
    cpid=$!
    BG_PIDS+=("$cpid")
    FILL=-
    if [[ ${1:-} == --lazy ]]; then
        # the fillers start as the processes come back, and end once every page is in place
        local seen=0 end=$((EPOCHSECONDS + 120))
        while ((EPOCHSECONDS < end)); do
            if [[ -n $(fillers_of "$cpid") ]]; then
                seen=1
            elif ((seen)); then
                FILL=$(ms_between "$t_launch" "$EPOCHREALTIME")
                break
            fi
            kill -0 "$cpid" 2>/dev/null || break
            sleep 0.005
        done
    fi
    line=$(wait_line "$log" 'alive |__exit' 1 120) || die "$tag: bigmem did not resume within 120 s"
    rt=${line##* rt }; rt=${rt%% *}
    RESTART=$(ms_between "$t_launch" "$rt")
    ALL=-
    if line=$(wait_line "$log" 'alive_all ' 1 10); then
        rt=${line##* rt }; rt=${rt%% *}
        ALL=$(ms_between "$t_launch" "$rt")
    fi
    sleep 1
    "$COHORT" kill "$NAME" --signal TERM >/dev/null 2>&1 || die "$tag: cohort kill failed"
    wait "$cpid"
    grep -q 'verify ok' "$log" || die "$tag: bigmem's memory check did not say 'verify ok'"
    echo "  $tag: restart_ms $RESTART, all_ms $ALL, fill_ms $FILL, verify ok"
}

echo "== restart with and without --lazy =="
echo "kernel $(uname -r), $(nproc) cpus; images: $IMAGES; program: $BIGMEM ${ARGS[*]}"
declare -a E_R E_A L_R L_A L_F
for ((rep = 1; rep <= REPS; rep++)); do
    NAME=lazy-r$rep
    rm -rf "${IMAGES:?}/$NAME"
    echo "-- repetition $rep/$REPS"
    show "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$BIGMEM" "${ARGS[@]}"
    "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$BIGMEM" "${ARGS[@]}" > >(stamp >"$WORK/run-$rep.log") 2>&1 &
    BG_PIDS+=($!)
    wait_line "$WORK/run-$rep.log" 'ready$' 1 120 >/dev/null || die "bigmem did not get ready"
    sleep 1
    show "$COHORT" checkpoint "$NAME" --images "$IMAGES" --kill
    "$COHORT" checkpoint "$NAME" --images "$IMAGES" --kill >/dev/null 2>"$WORK/ckpt.err" ||
        die "checkpoint --kill failed: $(cat "$WORK/ckpt.err")"
    wait
    one_restart eager
    E_R+=("$RESTART"); E_A+=("$ALL")
    one_restart lazy --lazy
    L_R+=("$RESTART"); L_A+=("$ALL"); L_F+=("$FILL")
    rm -rf "${IMAGES:?}/$NAME"
done
echo
what="${DIRTY} % of its pages written per second"
[[ $DIRTY == 0 ]] && what="every page written as fast as it can"
echo "| ${MIB} MiB, $what | restart_ms | all_ms | fill_ms |"
echo "|---|---|---|---|"
echo "| restart | $(stats "${E_R[@]}") | $(stats "${E_A[@]}") | - |"
echo "| restart --lazy | $(stats "${L_R[@]}") | $(stats "${L_A[@]}") | $(stats "${L_F[@]}") |"
