#!/usr/bin/env bash
# bench/thp.sh - how much slower a program with a heap of transparent huge
# pages runs after a checkpoint, round by round (bench/thp_rounds).
#
# usage: bash bench/thp.sh [--reps N] [--gib N | --mib N] [--rounds R]
#                          [--every K] [--passes P] [--pattern whole|sparse|both]
#                          [--modes "native none full incr"] [--live]
#                          [--images DIR | --disk] [--keep]
#                          [--cohort PATH] [--prog PATH]
#
#   --reps N       repetitions (default 3); each cell: median [min..max]
#   --gib N        heap size (default 2); --mib N instead
#   --rounds R     rounds after the fill (default 8); with --live the program
#                  runs until 4 rounds after the end of the last checkpoint
#   --pattern P    whole: every round rewrites the whole heap; sparse: every
#                  round writes one page in K (--every, default 8), P times
#                  (--passes, default 4); both (default): both, one after the
#                  other
#   --modes LIST   which of these to run (default all four), each a fresh
#                  program per repetition:
#       native     the program alone, no cohort
#       none       COHORT_DIRTY=none cohort run; checkpoint --full after round 2
#       full       cohort run (dirty tracking: the best the kernel has, uffd-wp
#                  here); checkpoint --full after round 2
#       incr       cohort run; checkpoint --full after round 2 and
#                  checkpoint --incremental after round 5
#   --live         the program goes on while a checkpoint is taken: the
#                  checkpoint starts when it prints the round's line (the
#                  incremental not before 3 rounds after the full one has
#                  returned); by default it waits (thp_rounds --wait-after N)
#                  until the checkpoint command has returned, so that every
#                  round is measured on its own
#   --images DIR   where images go (default a new directory under /dev/shm,
#                  removed at the end); --disk: one under /var/tmp
#   --keep         keep the images
#   Environment: COHORT, THP_ROUNDS (paths of the binaries) as alternatives.
#
# Each program: `thp_rounds --gib N --rounds R [--every K --passes P]
# [--wait-after N]...`; under cohort: `cohort run --name NAME --images DIR --
# thp_rounds ...` and at each checkpoint round `cohort checkpoint NAME
# --images DIR --json --full|--incremental`, then (unless --live)
# `cohort kill NAME --signal USR1` to let it go on; natively `kill -USR1 PID`.
# Printed: the transparent_hugepage setting; without --live, per mode and
# round the round's wall time (ms), its CPU time (cpu: the program thread's
# user + system time, which faults count and other programs on the machine
# do not), the heap's huge pages after it (AnonHugePages, MiB) and its page
# faults; per checkpoint kind, pause_ms, duration_ms and bytes of the --json
# output; per mode the change of /proc/vmstat's thp_split_pmd,
# thp_collapse_alloc and thp_fault_alloc over the whole program (the
# machine's counters: other programs count too); and the summary, the
# rounds sorted by when they ran (the stamps of their lines): "before" the
# first checkpoint (round 0, the fill, left out), "during" a checkpoint
# (the command ran while the round did: how many, their total time), the
# "first" round after a checkpoint returned (its write-protect faults) and
# the rounds "after" it until the next one; each the median [min..max] of
# the wall time over all repetitions, the "after" rows also as CPU time,
# and against native's rounds (all but round 0).
# All times in milliseconds.  Not part of `make check`.
set -u

# show, stamp, die, wait_line, json_field, ms_between, bench_dirs; the shared options
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_defaults
PROG=${THP_ROUNDS:-$ROOT/build/bench/thp_rounds}
SIZE=(--gib 2)
ROUNDS=8
EVERY=8
PASSES=4
PATTERN=both
MODES="native none full incr"
LIVE=0

BENCH_OPTS="--reps --images --keep --cohort --help"
while (($#)); do
    bench_opt "$@" && { shift "$BENCH_SHIFT"; continue; }
    case $1 in
    --gib) SIZE=(--gib "${2:?}"); shift ;;
    --mib) SIZE=(--mib "${2:?}"); shift ;;
    --rounds) ROUNDS=${2:?}; shift ;;
    --every) EVERY=${2:?}; shift ;;
    --passes) PASSES=${2:?}; shift ;;
    --pattern) PATTERN=${2:?}; shift ;;
    --modes) MODES=${2:?}; shift ;;
    --live) LIVE=1 ;;
    --disk) DISK=1 ;;
    --prog) PROG=${2:?}; shift ;;
    *) echo "thp.sh: unknown option $1" >&2; usage ;;
    esac
    shift
done
bench_positive REPS ROUNDS EVERY PASSES
((ROUNDS >= 6)) || { echo "thp.sh: --rounds must be at least 6 (checkpoints after rounds 2 and 5)" >&2; exit 2; }
case $PATTERN in
whole) PATTERNS=(whole) ;;
sparse) PATTERNS=(sparse) ;;
both) PATTERNS=(whole sparse) ;;
*) echo "thp.sh: --pattern whole|sparse|both" >&2; exit 2 ;;
esac
for m in $MODES; do
    [[ $m =~ ^(native|none|full|incr)$ ]] || { echo "thp.sh: unknown mode $m" >&2; exit 2; }
done
bench_need "make all progs" "$COHORT" "$PROG"

bench_dirs cohort-thp

bench_trap_images

THP_SETTING=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)
echo "== cohort THP benchmark =="
echo "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "transparent_hugepage/enabled: ${THP_SETTING:-unknown}; defrag: $(cat /sys/kernel/mm/transparent_hugepage/defrag 2>/dev/null)"
case $THP_SETTING in
*'[always]'* | *'[madvise]'*) ;;
*) echo "thp.sh: transparent huge pages are not enabled for madvise(MADV_HUGEPAGE): nothing to measure" >&2; exit 2 ;;
esac
echo "images: $IMAGES ($(df -PT "$IMAGES" | awk 'NR == 2 { print $2 }')); repetitions $REPS; $( ((LIVE)) && echo live || echo 'program waits during each checkpoint')"

# stats VALUES...: "median [min..max]" ("-" if none)
median() { stats "$@" | cut -d' ' -f1; }

vmstat() { awk '$1 == "thp_split_pmd" || $1 == "thp_collapse_alloc" || $1 == "thp_fault_alloc" { printf "%s=%s ", $1, $2 }' /proc/vmstat; }
vm_delta() {   # BEFORE AFTER -> "split_pmd +N collapse +N fault_alloc +N"
    awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= n; i++) { split(x[i], p, "="); split(y[i], q, "="); sub(/^thp_/, "", p[1]); printf "%s +%d ", p[1], q[2] - p[2] } }'
}

declare -A S   # S[pattern,mode,round,col] / S[pattern,mode,ckpt,kind,col] / S[pattern,mode,vm]: samples

# ckpts MODE: "ROUND:KIND ..." for the mode
ckpts() {
    case $1 in
    native | none | full) echo "2:full" ;;
    incr) echo "2:full 5:incremental" ;;
    esac
}

# round_of LOG: the number of the last round line so far (-1: none)
round_of() { grep -E '^[0-9.]+ round ' "$1" | tail -n 1 | awk '{ print $3 }' | grep . || echo -1; }

# one PATTERN MODE REP: one program, measured
one() {
    local pat=$1 mode=$2 rep=$3 log args=() waits=() c r k line pid v0 v1 json t0 t1 ready=0 n ck=0
    local marks=()   # "START END" of each checkpoint command (EPOCHREALTIME)
    log=$WORK/$pat-$mode-$rep.log
    args=("${SIZE[@]}")
    [[ $pat == sparse ]] && args+=(--every "$EVERY" --passes "$PASSES")
    if ((LIVE)); then
        args+=(--rounds 0)
    else
        args+=(--rounds "$ROUNDS")
        for c in $(ckpts "$mode"); do waits+=(--wait-after "${c%%:*}"); done
    fi
    NAME=
    v0=$(vmstat)
    if [[ $mode == native ]]; then
        show "$PROG" "${args[@]}" "${waits[@]}"
        { "$PROG" "${args[@]}" "${waits[@]}"; echo "__exit $?"; } 2>&1 | stamp >"$log" &
    else
        NAME=cthp$$-$pat-$mode-$rep
        rm -rf "${IMAGES:?}/$NAME"
        local env=()
        [[ $mode == none ]] && env=(COHORT_DIRTY=none)
        show env "${env[@]}" "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$PROG" "${args[@]}" "${waits[@]}"
        { env "${env[@]}" "$COHORT" run --name "$NAME" --images "$IMAGES" -- "$PROG" "${args[@]}" "${waits[@]}"
          echo "__exit $?"; } 2>&1 | stamp >"$log" &
    fi
    BG_PIDS+=($!)
    line=$(wait_line "$log" 'thp_rounds pid .*|__exit.*' 1 60) || die "$mode: the program did not start"
    [[ $line == *__exit* ]] && die "$mode: the program ended at once"
    pid=$(awk '{ print $4 }' <<<"$line")
    for c in $(ckpts "$mode"); do
        r=${c%%:*}
        k=${c#*:}
        if ((LIVE)); then
            ((r < ready)) && r=$ready
            until (($(round_of "$log") >= r)); do
                grep -q ' __exit' "$log" && die "$mode: the program ended early"
                sleep 0.01
            done
        else
            wait_line "$log" "wait $r|__exit.*" 1 600 >/dev/null || die "$mode: no 'wait $r'"
        fi
        grep -q ' __exit' "$log" && die "$mode: the program ended early"
        t0=$EPOCHREALTIME
        if [[ $mode != native ]]; then
            json=$WORK/$pat-$mode-$rep-$r.json
            ((rep == 1)) && show "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json --"$k"
            "$COHORT" checkpoint "$NAME" --images "$IMAGES" --json --"$k" >"$json" 2>"$json.err" ||
                die "$mode: checkpoint --$k failed: $(cat "$json.err")"
            for col in pause_ms duration_ms bytes kind; do
                S[$pat,$mode,ck$ck,$col]+=" $(json_field "$json" $col)"
            done
        fi
        t1=$EPOCHREALTIME
        marks+=("$t0 $t1")
        ready=$(($(round_of "$log") + 3))
        ck=$((ck + 1))
        if ((!LIVE)); then
            if [[ $mode == native ]]; then
                kill -USR1 "$pid" || die "native: kill -USR1 $pid failed"
            else
                "$COHORT" kill "$NAME" --signal USR1 >/dev/null 2>"$WORK/kill.err" || die "$mode: cohort kill failed: $(cat "$WORK/kill.err")"
            fi
        fi
    done
    if ((LIVE)); then
        n=$(($(round_of "$log") + 5))
        until (($(round_of "$log") >= n)); do
            grep -q ' __exit' "$log" && die "$mode: the program ended early"
            sleep 0.02
        done
        if [[ $mode == native ]]; then
            kill -TERM "$pid"
        else
            "$COHORT" kill "$NAME" --signal TERM >/dev/null 2>&1
        fi
    fi
    wait_line "$log" '__exit.*' 1 900 >/dev/null || die "$mode: the program did not end"
    grep -q ' __exit 0$' "$log" || die "$mode: the program failed"
    wait
    BG_PIDS=()
    v1=$(vmstat)
    S[$pat,$mode,vm]+="$(vm_delta "$v0" "$v1");"
    # per round: the table (fixed rounds only), and its class by time
    local stampv ms cpu thp flt start cls i m0 m1 after
    while read -r stampv _ r _ ms _ cpu _ thp _ flt; do
        if ((!LIVE)); then
            S[$pat,$mode,$r,ms]+=" $ms"
            S[$pat,$mode,$r,cpu]+=" $cpu"
            S[$pat,$mode,$r,thp]+=" $thp"
            S[$pat,$mode,$r,flt]+=" $flt"
        fi
        ((r == 0)) && continue
        start=$(awk -v e="$stampv" -v m="$ms" 'BEGIN { printf "%.6f", e - m / 1000 }')
        cls=before
        after=0
        for ((i = 0; i < ${#marks[@]}; i++)); do
            read -r m0 m1 <<<"${marks[$i]}"
            if awk -v s="$start" -v e="$stampv" -v a="$m0" -v b="$m1" 'BEGIN { exit !(s < b && e > a) }'; then
                cls="during$i"
            elif awk -v s="$start" -v b="$m1" 'BEGIN { exit !(s >= b) }'; then
                cls="after$i"
            fi
        done
        if [[ $cls == after* ]]; then
            # the first round after the checkpoint returned: its write-protect faults
            if [[ -z ${FIRST[$cls]:-} ]]; then
                FIRST[$cls]=1
                cls=first${cls#after}
            fi
        fi
        S[$pat,$mode,$cls,ms]+=" $ms"
        S[$pat,$mode,$cls,cpu]+=" $cpu"
        S[$pat,$mode,$cls,thp]+=" $thp"
    done < <(grep -E '^[0-9.]+ round ' "$log")
    unset FIRST
    declare -gA FIRST=()
    echo "    $(grep -E '^[0-9.]+ round ' "$log" | awk '{ printf "%s:%s/%s ", $3, $5, $9 }')"
    for ((i = 0; i < ${#marks[@]}; i++)); do
        read -r m0 m1 <<<"${marks[$i]}"
        echo "    checkpoint $((i + 1)): $(ms_between "$m0" "$m1") ms, during round(s) $(
            grep -E '^[0-9.]+ round ' "$log" | awk -v a="$m0" -v b="$m1" '$3 > 0 && $1 - $5 / 1000 < b && $1 > a { printf "%s ", $3 }')"
    done
    if [[ -n $NAME ]] && ((!KEEP)); then
        rm -rf "${IMAGES:?}/$NAME"
    fi
    NAME=
}
declare -A FIRST=()

for ((rep = 1; rep <= REPS; rep++)); do
    for pat in "${PATTERNS[@]}"; do
        for mode in $MODES; do
            echo
            echo "-- repetition $rep/$REPS, $pat, $mode"
            one "$pat" "$mode" "$rep"
        done
    done
done

# ------------------------------------------------------------- the tables
for pat in "${PATTERNS[@]}"; do
    echo
    if [[ $pat == whole ]]; then
        echo "== whole heap rewritten every round (${SIZE[*]}) =="
    else
        echo "== sparse: one page in $EVERY written $PASSES times every round (${SIZE[*]}) =="
    fi
    if ((!LIVE)); then
        {
            printf 'round'
            for mode in $MODES; do printf '\t%s ms\t%s cpu\t%s thp_mib\t%s faults' "$mode" "$mode" "$mode" "$mode"; done
            echo
            for ((r = 0; r <= ROUNDS; r++)); do
                printf '%d' "$r"
                for mode in $MODES; do
                    # shellcheck disable=SC2086
                    printf '\t%s\t%s\t%s\t%s' "$(stats ${S[$pat,$mode,$r,ms]:-})" "$(median ${S[$pat,$mode,$r,cpu]:-})" \
                        "$(median ${S[$pat,$mode,$r,thp]:-})" "$(median ${S[$pat,$mode,$r,flt]:-})"
                done
                echo
            done
        } | column -t -s $'\t'
        echo
    fi
    echo "checkpoints (pause_ms, duration_ms, bytes: median [min..max]):"
    for mode in $MODES; do
        for ((i = 0; i < 2; i++)); do
            [[ -n ${S[$pat,$mode,ck$i,kind]:-} ]] || continue
            # shellcheck disable=SC2086
            printf '  %-6s checkpoint %d: %-14s pause %s  duration %s  bytes %s\n' "$mode" $((i + 1)) \
                "$(tr ' ' '\n' <<<"${S[$pat,$mode,ck$i,kind]}" | grep -v '^$' | sort | uniq -c | awk '{ printf "%s%s*%d", (NR > 1 ? "," : ""), $2, $1 }')" \
                "$(stats ${S[$pat,$mode,ck$i,pause_ms]})" "$(stats ${S[$pat,$mode,ck$i,duration_ms]})" \
                "$(stats ${S[$pat,$mode,ck$i,bytes]})"
        done
    done
    echo "vmstat over each program (machine-wide), per repetition:"
    for mode in $MODES; do
        printf '  %-6s %s\n' "$mode" "${S[$pat,$mode,vm]:-}"
    done
    echo "rounds by when they ran (ms: median [min..max] of all repetitions' rounds; n: how many):"
    nat=
    # shellcheck disable=SC2086
    [[ " $MODES " == *" native "* ]] && nat=$(median ${S[$pat,native,before,ms]:-} ${S[$pat,native,first0,ms]:-} \
        ${S[$pat,native,after0,ms]:-} ${S[$pat,native,first1,ms]:-} ${S[$pat,native,after1,ms]:-} \
        ${S[$pat,native,during0,ms]:-} ${S[$pat,native,during1,ms]:-})
    {
        printf 'mode\tclass\tn\tms\tcpu_ms\tthp_mib (last)\tms against native (%s)\n' "${nat:--}"
        for mode in $MODES; do
            for cls in before during0 first0 after0 during1 first1 after1; do
                v=${S[$pat,$mode,$cls,ms]:-}
                [[ -n $v ]] || continue
                # shellcheck disable=SC2086
                set -- $v
                # shellcheck disable=SC2086
                m=$(median $v)
                printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\n' "$mode" "${cls/0/ 1}" $# "$(stats $v)" \
                    "$(stats ${S[$pat,$mode,$cls,cpu]})" "$(awk '{ print $NF }' <<<"${S[$pat,$mode,$cls,thp]}")" \
                    "$(awk -v m="$m" -v n="$nat" 'BEGIN { if (n > 0 && m != "-") printf "%+.1f %%", (m / n - 1) * 100; else print "-" }')"
            done
        done
    } | sed 's/\tduring1\t/\tduring 2\t/; s/\tfirst1\t/\tfirst 2\t/; s/\tafter1\t/\tafter 2\t/' | column -t -s $'\t'
done
