#!/usr/bin/env bash
# bench/migrate.sh - live migration between two hosts (issue 14): the
# downtime a program sees, against what `cohort migrate --json` says, and
# how much slower it runs right after the switch.
#
# usage: bash bench/migrate.sh [--reps N] [--mib N] [--pcts "P ..."]
#                              [--modes "M ..."] [--max-rounds N]
#                              [--downtime-ms MS] [--warm S] [--window S]
#                              [--after S] [--images DIR] [--keep]
#                              [--split-cpus] [--busy N]
#                              [--cohort PATH] [--prog PATH]
#
#   --reps N         repetitions of each mode and share (default 3), each a
#                    fresh group
#   --mib N          the program's memory (default 1024)
#   --pcts LIST      percents of its pages written per 100 ms (default "1 10")
#   --modes LIST     "precopy" (plain `cohort migrate`: stop-and-copy until
#                    the binary has pre-copy rounds) and "postcopy"
#                    (--postcopy); default both, a mode this cohort refuses
#                    is left out saying so (never a made-up number)
#   --max-rounds N, --downtime-ms MS
#                    given to `cohort migrate` in both modes, when it
#                    accepts them (else left out, saying so)
#   --warm S         seconds the program runs before the migration (default 3)
#   --window S       the span of the step rates before and after (default 2)
#   --after S        seconds it runs on at the target (default 5): the
#                    slowdown is looked for in them
#   --images DIR     where both hosts' images go, DIR/A and DIR/B (default
#                    a new directory under /dev/shm: tmpfs); --keep: keep
#                    the logs; each repetition's images are removed once
#                    it is measured even so (a GiB per generation and host,
#                    in memory: kept, a few repetitions filled the machine),
#                    unless KEEP_IMAGES=1
#   --split-cpus     each host gets CPUs of its own, as two machines have:
#                    A the first half of this machine's, B the rest (a
#                    cpuset cgroup each; needs 2 CPUs or more).  Without it
#                    both hosts share every CPU, and the source's end (the
#                    kernel freeing 1 GiB, ~40 ms of a CPU), the script's
#                    own commands and the target's restore run on the same
#                    CPUs as the program's first steps at B
#   --busy N         N CPU-bound loops (sh: while :; do :; done) run beside
#                    the whole benchmark, as on a busy machine: the stop's
#                    steps then wait for CPUs (docs/benchmarks.md, "The stop
#                    on a busy machine")
#   --cohort PATH, --prog PATH   the cohort and migwatch to run (or the
#                    environment's COHORT, MIGWATCH; default build/)
#
# Needs root and ip (iproute2).  Two network namespaces joined by a veth
# pair act as hosts A (10.77.0.1) and B (10.77.0.2), as in the tests
# (tests/harness/hosts.sh), each with its own COHORT_RUN_DIR and images
# directory.  Each repetition: on A, `cohort run --name NAME -- migwatch
# --mib N --pct P`; WARM s after its "ready", on B `cohort receive --listen
# 10.77.0.2:0 --token-file TOKEN --images DIR/B`, and on A `cohort migrate
# NAME --to 10.77.0.2:PORT --token-file TOKEN --json [OPTIONS]`; AFTER s
# later the group is ended on B (SIGTERM).  Per mode and share, median
# [min..max] over the repetitions:
#   quiet_ms      the noise floor: the program's longest gap between two
#                 steps of its loop (CLOCK_REALTIME) before the migration
#                 (0: none over 5 ms)
#   switch_ms     the program's gap at the stop: from its last step at A to
#                 its first at B (the first gap it printed at B)
#   app_ms        the downtime the program saw: its longest gap from the
#                 start of `migrate` to the end (the stop, and post-copy's
#                 stalls after it); migwatch prints each gap itself, the
#                 stop's after the restart, on the stdout `cohort receive`
#                 carries
#   downtime_ms, rounds, MiB (bytes), duration_ms   from `migrate --json`
#   wall_ms       the `migrate` command, start to exit
#   src_gen_ms, dst_gen_ms   from the stop (the program's last step at A)
#                 to the newest file of the newest generation at A (taken
#                 there) and at B (received): where the stop went
#   before/s, after/s   the program's steps per second over WINDOW s just
#                 before `migrate` started and just after the switch (its
#                 first step at B); slow_%: how much fewer after
#   slow_ms       from the switch until a 0.5 s span runs at 90 % of the
#                 step rate before ("-" when not within AFTER s)
# The commands are printed as run ("+ ..."), the machine's load before and
# after.  All times in milliseconds.  Not part of `make check`.

set -u

# show, stamp, die, wait_line, json_field, stats, bench_dirs; the shared options
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_defaults
PROG=${MIGWATCH:-$ROOT/build/bench/migwatch}
MIB=1024
PCTS="1 10"
MODES="precopy postcopy"
ROUND_OPTS=()
WARM=3
WINDOW=2
AFTER=5
SPLIT=0
BUSY=0

BENCH_OPTS="--reps --images --keep --cohort --help"
while (($#)); do
    bench_opt "$@" && { shift "$BENCH_SHIFT"; continue; }
    case $1 in
    --mib) MIB=${2:?}; shift ;;
    --pcts) PCTS=${2:?}; shift ;;
    --modes) MODES=${2:?}; shift ;;
    --max-rounds|--downtime-ms) ROUND_OPTS+=("$1" "${2:?}"); shift ;;
    --warm) WARM=${2:?}; shift ;;
    --window) WINDOW=${2:?}; shift ;;
    --after) AFTER=${2:?}; shift ;;
    --prog) PROG=${2:?}; shift ;;
    --split-cpus) SPLIT=1 ;;
    --busy) BUSY=${2:?}; shift ;;
    *) echo "migrate.sh: unknown option $1" >&2; usage ;;
    esac
    shift
done
bench_positive REPS MIB WARM WINDOW AFTER
[[ $BUSY =~ ^[0-9]+$ ]] || { echo "migrate.sh: --busy wants a number of loops, not '$BUSY'" >&2; exit 2; }
((WINDOW < AFTER)) || { echo "migrate.sh: --window must be shorter than --after" >&2; exit 2; }
for m in $MODES; do
    [[ $m =~ ^(precopy|postcopy)$ ]] || { echo "migrate.sh: unknown mode $m" >&2; exit 2; }
done
[[ $(id -u) = 0 ]] || { echo "migrate.sh: needs root (network namespaces)" >&2; exit 2; }
command -v ip >/dev/null || { echo "migrate.sh: needs ip (iproute2)" >&2; exit 2; }
bench_need "make all progs" "$COHORT" "$PROG"

# HOST_ADDR_A/B, netns_start, netns_made, hosts_join
source "$ROOT/tests/harness/hosts.sh"
bench_dirs cohort-migrate
mkdir -p "$IMAGES/A" "$IMAGES/B" "$WORK/runA" "$WORK/runB" || exit 2
chmod 700 "$WORK/runA" "$WORK/runB"

# --split-cpus: a cpuset cgroup per host (cgroup v1's cpuset hierarchy, or
# v2 with its cpuset controller).  A process moved into one keeps to its
# CPUs, and so do its children: cohort's restorer restores the program's
# affinity (A's CPUs), which the kernel refuses where none of them is
# allowed, and then leaves B's (src/res/attrs.c), and the program joins
# its restart's init's cgroup there (src/res/cgroup.c): B's.
declare -A CPUSET_DIR=() CPUSET_JOIN=() CPUSET_CPUS=()
cpuset_make() {
    local h=$1 cpus=$2 root d
    if [[ -d /sys/fs/cgroup/cpuset ]]; then
        root=/sys/fs/cgroup/cpuset d=$root/cohort-bench-$$-$h
        mkdir "$d" && echo "$cpus" >"$d/cpuset.cpus" && cat "$root/cpuset.mems" >"$d/cpuset.mems" || return 1
        CPUSET_JOIN[$h]=$d/tasks
    else
        root=/sys/fs/cgroup d=$root/cohort-bench-$$-$h
        grep -qw cpuset "$root/cgroup.controllers" || return 1
        echo +cpuset >"$root/cgroup.subtree_control" 2>/dev/null
        mkdir "$d" && echo "$cpus" >"$d/cpuset.cpus" || return 1
        CPUSET_JOIN[$h]=$d/cgroup.procs
    fi
    CPUSET_DIR[$h]=$d CPUSET_CPUS[$h]=$cpus
}
cpusets_remove() {
    local d
    for d in "${CPUSET_DIR[@]}"; do
        for _ in {1..50}; do rmdir "$d" 2>/dev/null && break; sleep 0.1; done
    done
}

NAME=
HOLDERS=()   # the processes that hold the hosts' network namespaces
PIPES=()     # the background pipelines of a repetition
cleanup() {
    if [[ -n $NAME ]]; then
        on A "$COHORT" kill "$NAME" --signal KILL >/dev/null 2>&1
        on B "$COHORT" kill "$NAME" --signal KILL >/dev/null 2>&1
    fi
    local p alive
    for _ in {1..50}; do   # up to 5 s for the background pipelines to end
        alive=0
        for p in "${PIPES[@]}"; do
            kill -0 "$p" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for p in "${HOLDERS[@]}" "${BUSIES[@]}"; do
        kill "$p" 2>/dev/null
    done
    cpusets_remove
    if ((OWN_IMAGES && !(KEEP && ${KEEP_IMAGES:-0}))); then
        rm -rf "$IMAGES" # (--keep alone keeps the logs, not the images: see --images)
    elif ((!KEEP)) && [[ -n $NAME ]]; then
        rm -rf "${IMAGES:?}/A/$NAME" "${IMAGES:?}/B/$NAME"
    fi
    if ((KEEP)); then
        echo "kept: the logs in $WORK$( ((${KEEP_IMAGES:-0})) && echo ", the images in $IMAGES")"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

# --busy N: the CPU-bound loops, for the whole run
BUSIES=()
for ((i = 0; i < BUSY; i++)); do
    sh -c 'while :; do :; done' &
    BUSIES+=($!)
done
((BUSY)) && echo "busy: $BUSY CPU-bound loops beside (sh -c 'while :; do :; done'), pids ${BUSIES[*]}"

# hosts: A and B, each a network namespace held by a process of ours
for h in A B; do
    # shellcheck disable=SC2119 # (no unshare option)
    netns_start
    HOLDERS+=("$NSPID")
    for _ in {1..100}; do netns_made "$NSPID" && break; sleep 0.05; done
    netns_made "$NSPID" || die "no network namespace for host $h"
    printf -v "P$h" %s "$NSPID"
done
hosts_join "$PA" "$PB" || die "cannot join the two network namespaces"
TOKEN=$WORK/token
printf 'the secret of this benchmark %s\n' "$$" >"$TOKEN"
chmod 600 "$TOKEN"

# HA, HB: the command line that runs a command as host A, B does (in its
# network namespace, with its run directory, and with --split-cpus in its
# cpuset); on HOST CMD... runs one
HA=(nsenter -t "$PA" -n env COHORT_RUN_DIR="$WORK/runA")
HB=(nsenter -t "$PB" -n env COHORT_RUN_DIR="$WORK/runB")
if ((SPLIT)); then
    n=$(nproc)
    ((n >= 2)) || die "--split-cpus needs 2 CPUs or more ($n here)"
    cpuset_make A "0-$((n / 2 - 1))" || die "cannot make a cpuset for host A"
    cpuset_make B "$((n / 2))-$((n - 1))" || die "cannot make a cpuset for host B"
    HA=(sh -c 'echo $$ >"$0" && exec "$@"' "${CPUSET_JOIN[A]}" "${HA[@]}")
    HB=(sh -c 'echo $$ >"$0" && exec "$@"' "${CPUSET_JOIN[B]}" "${HB[@]}")
    echo "cpus: host A ${CPUSET_CPUS[A]}, host B ${CPUSET_CPUS[B]} (cpusets ${CPUSET_DIR[A]}, ${CPUSET_DIR[B]})"
fi
on() {
    local -n h=H$1
    "${h[@]}" "${@:2}"
}

# accepts OPTION [VALUE]: `cohort migrate` takes OPTION (it is built): it
# fails otherwise than with a usage error (status 2) against a port where
# nothing listens; REFUSAL: its line when it does not
REFUSAL=
accepts() {
    local err=$WORK/probe.err rc
    on A timeout 20 "$COHORT" migrate cohort-bench-probe --to "$HOST_ADDR_B:9" --token-file "$TOKEN" "$@" \
        >/dev/null 2>"$err"
    rc=$?
    REFUSAL=$(head -n 1 "$err")
    ((rc != 2))
}

load() { awk '{ printf "load average %s %s %s", $1, $2, $3 }' /proc/loadavg; }

echo "== cohort: live migration between two network namespaces (veth) =="
echo "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo); $(load)"
# A virtual machine whose host takes freed memory back (free page reporting)
# makes the first touch of that memory slow: the rounds' images then go into
# tmpfs at ~0.4 GB/s instead of ~2, the rounds stop converging, and the stop
# grows several times over (docs/benchmarks.md, "Free page reporting").
PR=/sys/module/page_reporting/parameters
if [[ -r $PR/page_reporting_order ]] && (($(cat "$PR/page_reporting_order") <= 10)); then
    echo "note: free page reporting is on (order $(cat "$PR/page_reporting_order"), $(cat "$PR/reported_kib") KiB" \
        "reported so far): memory freed here goes back to the host, and figures vary with it;" \
        "echo 11 > $PR/page_reporting_order turns it off"
fi
echo "images: $IMAGES/{A,B} ($(df -PT "$IMAGES" | awk 'NR == 2 { print $2 }')); repetitions $REPS"
echo "hosts: A $HOST_ADDR_A, B $HOST_ADDR_B: the network namespaces of pids $PA, $PB (unshare -n sleep), joined by"
echo "  ip link add va netns $PA type veth peer name vb netns $PB (tests/harness/hosts.sh: hosts_join)"
OPTS=()
for ((i = 0; i < ${#ROUND_OPTS[@]}; i += 2)); do
    if accepts "${ROUND_OPTS[@]:i:2}"; then
        OPTS+=("${ROUND_OPTS[@]:i:2}")
    else
        echo "note: ${ROUND_OPTS[i]} left out: $REFUSAL"
    fi
done
RUN_MODES=()
for m in $MODES; do
    if [[ $m = postcopy ]] && ! accepts --postcopy; then
        echo "note: postcopy left out: $REFUSAL"
        continue
    fi
    RUN_MODES+=("$m")
done
((${#RUN_MODES[@]})) || die "no mode left to run"

# ticks FILE...: migwatch's counters, "S steps" a line, from the logs (STAMP tick S steps N ...)
ticks() { awk '$2 == "tick" { print $3, $5 }' "$@"; }

# rate TICKS FROM TO: steps per second between the first tick at or after
# FROM and the last at or before TO ("-" without two)
rate() {
    awk -v a="$2" -v b="$3" '$1 >= a && $1 <= b { if (!n++) { t0 = $1; s0 = $2 } t1 = $1; s1 = $2 }
        END { if (n < 2 || t1 <= t0) print "-"; else printf "%.0f\n", (s1 - s0) / (t1 - t0) }' <<<"$1"
}

# recovered TICKS FROM RATE: ms from FROM to the first tick after which a
# span of 0.5 s runs at 90 % of RATE or more ("-": never)
recovered() {
    awk -v from="$2" -v want="$3" '{ t[NR] = $1; s[NR] = $2 }
        END { for (i = 1; i <= NR; i++) {
                  if (t[i] < from) continue
                  for (j = i; j <= NR && t[j] < t[i] + 0.5; j++) ;
                  if (j > NR) break
                  if ((s[j] - s[i]) / (t[j] - t[i]) >= 0.9 * want) { printf "%.0f\n", (t[i] - from) * 1000; exit }
              }
              print "-" }' <<<"$1"
}

declare -A S   # S[row,column]: samples
ROWS=()
add() { [[ " ${ROWS[*]} " == *" $1 "* ]] || ROWS+=("$1"); S[$1,$2]+=" $3"; }
COLS=(quiet_ms switch_ms app_ms downtime_ms rounds MiB duration_ms wall_ms src_gen_ms dst_gen_ms before/s after/s slow_% slow_ms)
declare -A V   # V[column]: the numbers of one repetition

# gen_time HOST: when the group's newest generation on HOST was last
# written (the newest mtime of its files, seconds; "-" without one)
gen_time() {
    local d
    d=$(find "$IMAGES/$1/$NAME" -maxdepth 1 -name 'gen-*' 2>/dev/null | sort | tail -n 1)
    [[ -n $d ]] || { echo -; return; }
    find "$d" -type f -printf '%T@\n' | sort -g | tail -n 1
}

# since T0 T: ms from T0 to T ("-" when either is)
since() {
    if [[ $1 = - || $2 = - ]]; then echo -; else ms_between "$1" "$2"; fi
}

# start_group PCT: the group NAME runs migwatch on A, ready; its output in $run.*
start_group() {
    local prog=("$PROG" --mib "$MIB" --pct "$1")
    ((verbose)) && show "${HA[@]}" "$COHORT" run --name "$NAME" --images "$IMAGES/A" -- "${prog[@]}"
    { on A "$COHORT" run --name "$NAME" --images "$IMAGES/A" -- "${prog[@]}" 2>"$run.err"; echo "__exit $?"; } |
        stamp >"$run.log" &
    PIPES=($!)
    wait_line "$run.log" 'ready|__exit.*' 1 120 >/dev/null || die "migwatch did not get ready"
    grep -q ' __exit' "$run.log" && die "cohort run ended early: $(head -n 1 "$run.err")"
}

# start_receiver: `cohort receive` listens on B, its output in $recv.*; TO: where
start_receiver() {
    ((verbose)) && show "${HB[@]}" "$COHORT" receive --listen "$HOST_ADDR_B:0" --token-file "$TOKEN" --images "$IMAGES/B"
    { on B "$COHORT" receive --listen "$HOST_ADDR_B:0" --token-file "$TOKEN" --images "$IMAGES/B" 2>"$recv.err"
      echo "__exit $?"; } | stamp >"$recv.log" &
    PIPES+=($!)
    local port=
    for _ in {1..600}; do
        port=$(sed -n "s/^listening on $HOST_ADDR_B:\([0-9]*\)\$/\1/p" "$recv.err" 2>/dev/null)
        [[ -n $port ]] && break
        sleep 0.02
    done
    [[ -n $port ]] || die "cohort receive did not listen: $(head -n 1 "$recv.err")"
    TO=$HOST_ADDR_B:$port
}

# measure T0 T1: V from the logs of a migration that ran from T0 to T1
measure() {
    local t0=$1 ready at sw tk
    # the noise floor: the longest gap from 1 s after "ready" to the migration
    ready=$(awk '$2 == "ready" { print $1; exit }' "$run.log")
    V[quiet_ms]=$(awk -v a="$ready" -v b="$t0" '$2 == "gap" && $3 >= a + 1 && $3 < b && $5 > m { m = $5 }
        END { printf "%s\n", m ? m : "0" }' "$run.log")
    # the stop: the first gap the program printed at B, from its last step
    # at A to its first at B, the switch (a line it had written at A may come
    # first, flushed again there).  A stop too short to be printed: at "-",
    # the switch at its first tick at B from migrate on
    read -r at sw < <(awk -v a="$t0" '$2 == "gap" && $3 >= a - 0.1 { printf "%s %.6f\n", $3, $3 + $5 / 1000; exit }' \
        "$recv.log")
    if [[ -z $sw ]]; then
        at=-
        sw=$(awk -v a="$t0" '$2 == "tick" && $3 >= a { print $3; exit }' "$recv.log")
    fi
    [[ -n $sw ]] || die "migwatch printed nothing at B"
    V[switch_ms]=$(since "$at" "$sw")
    # what the program saw: its longest gap from migrate on, post-copy's stalls too
    V[app_ms]=$(awk -v a="$t0" '$2 == "gap" && $3 >= a - 0.1 && $5 > m { m = $5 } END { printf "%s\n", m ? m : "0" }' \
        "$run.log" "$recv.log")
    V[downtime_ms]=$(json_field "$json" downtime_ms)
    V[rounds]=$(json_field "$json" rounds)
    V[MiB]=$(awk -v b="$(json_field "$json" bytes)" 'BEGIN { printf "%.0f", b / 1048576 }')
    V[duration_ms]=$(json_field "$json" duration_ms)
    V[wall_ms]=$(ms_between "$t0" "$2")
    V[src_gen_ms]=$(since "$at" "$(gen_time A)")
    V[dst_gen_ms]=$(since "$at" "$(gen_time B)")
    tk=$(ticks "$run.log" "$recv.log")
    V[before/s]=$(rate "$tk" "$(awk -v t="$t0" -v w="$WINDOW" 'BEGIN { printf "%.6f", t - w }')" "$t0")
    V[after/s]=$(rate "$tk" "$sw" "$(awk -v t="$sw" -v w="$WINDOW" 'BEGIN { printf "%.6f", t + w }')")
    V[slow_%]=-
    V[slow_ms]=-
    [[ ${V[before/s]} = - ]] && return
    V[slow_ms]=$(recovered "$tk" "$sw" "${V[before/s]}")
    [[ ${V[after/s]} = - ]] ||
        V[slow_%]=$(awk -v b="${V[before/s]}" -v a="${V[after/s]}" 'BEGIN { v = sprintf("%.0f", (1 - a / b) * 100); print v == "-0" ? 0 : v }')
}

# one MODE PCT REP: one migration of a fresh group, its numbers filed under "MODE PCT%"
one() {
    local mode=$1 pct=$2 rep=$3 verbose=0 tag=$1-$2-$3 opts=("${OPTS[@]}")
    [[ $mode = postcopy ]] && opts+=(--postcopy)
    ((rep == 1)) && verbose=1
    NAME=cmig$$-$tag
    local run=$WORK/$tag.run recv=$WORK/$tag.recv json=$WORK/$tag.json
    echo "-- $mode, ${pct}% per 100 ms, repetition $rep/$REPS (group $NAME)"
    start_group "$pct"
    sleep "$WARM"
    start_receiver
    ((verbose)) && show "${HA[@]}" "$COHORT" migrate "$NAME" --to "$TO" --token-file "$TOKEN" --json "${opts[@]}"
    local t0=$EPOCHREALTIME rc
    on A timeout 300 "$COHORT" migrate "$NAME" --to "$TO" --token-file "$TOKEN" --json "${opts[@]}" >"$json" 2>"$json.err"
    rc=$?
    local t1=$EPOCHREALTIME
    ((rc == 0)) || die "cohort migrate: status $rc: $(head -n 1 "$json.err")"
    # the program runs on at B for AFTER s after the switch (migrate returns once it runs);
    # nothing of ours runs meanwhile (a poll's grep and sed every 20 ms took CPU from
    # the program's first steps at B), and the run at A has ended long before
    sleep "$AFTER.3"
    wait_line "$run.log" '__exit.*' 1 60 >/dev/null || die "cohort run did not end after the migration"
    grep -q "migrated to $TO" "$run.err" || die "cohort run: $(head -n 1 "$run.err")"
    on B "$COHORT" kill "$NAME" --signal TERM >/dev/null 2>&1 || die "the group does not run on B: $(head -n 1 "$recv.err")"
    wait_line "$recv.log" '__exit.*' 1 60 >/dev/null || die "cohort receive did not end"
    wait "${PIPES[@]}"
    PIPES=()

    measure "$t0" "$t1"
    local row="$mode ${pct}%" c line=
    MODE_SEEN[$row]=$(json_field "$json" mode)
    for c in "${COLS[@]}"; do
        add "$row" "$c" "${V[$c]}"
        line+=" $c ${V[$c]}"
    done
    echo "    ${MODE_SEEN[$row]}:$line"
    ((KEEP && ${KEEP_IMAGES:-0})) || rm -rf "${IMAGES:?}/A/$NAME" "${IMAGES:?}/B/$NAME"
    NAME=
}

echo "modes: ${RUN_MODES[*]}; shares: $PCTS % of the pages per 100 ms; migrate options: ${OPTS[*]:-none}"
declare -A MODE_SEEN
for mode in "${RUN_MODES[@]}"; do
    for pct in $PCTS; do
        for ((rep = 1; rep <= REPS; rep++)); do
            one "$mode" "$pct" "$rep"
        done
    done
done

echo
echo "== median [min..max] over $REPS repetitions ($(load)) =="
{
    (IFS=$'\t'; printf 'what\t%s\n' "${COLS[*]}")
    for r in "${ROWS[@]}"; do
        printf '%s (%s)' "$r" "${MODE_SEEN[$r]:-?}"
        for c in "${COLS[@]}"; do
            # shellcheck disable=SC2086
            printf '\t%s' "$(stats ${S[$r,$c]:-})"
        done
        echo
    done
} | column -t -s $'\t'
echo
echo "quiet_ms: the program's longest step-to-step gap (CLOCK_REALTIME) before the migration; switch_ms: its"
echo "gap at the stop, from its last step at A to its first at B; app_ms: its longest gap from"
echo "migrate's start on (its stop, post-copy's stalls); src_gen_ms, dst_gen_ms: from the stop to the newest"
echo "file of the generation at A (taken there) and at B (received);"
echo "before/s, after/s: its steps per second over ${WINDOW} s before migrate and after the switch;"
echo "slow_ms: from the switch until 0.5 s run at 90 % of the rate before (- : not within ${AFTER} s)."
