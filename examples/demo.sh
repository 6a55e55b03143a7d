#!/usr/bin/env bash
# examples/demo.sh - what `make demo` runs.
#
# Shows transparent checkpoint/restart of a multi-threaded program:
#   1. run build/examples/demo straight through and note its RESULT line;
#   2. run it again under `cohort run`, checkpoint it a few seconds in with
#      --kill (the program dies mid-computation);
#   3. `cohort restart` it from the images and let it finish;
#   4. compare the RESULT lines: they must be identical.
#
# Environment overrides: COHORT (path of the cohort binary), DEMO_BIN (path of
# the demo program), DEMO_ARGS (its arguments, "STEPS STEP_MS": the tests run
# a shorter demo), DEMO_DELAY (seconds to let it run before checkpointing).
# Exit status: 0 if the restarted run gave the same result, 1 otherwise.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COHORT=${COHORT:-$ROOT/build/cohort}
DEMO_BIN=${DEMO_BIN:-$ROOT/build/examples/demo}
DELAY=${DEMO_DELAY:-3}
read -r -a DEMO_ARGV <<<"${DEMO_ARGS:-}"
NAME=demo

for f in "$COHORT" "$DEMO_BIN"; do
    if [[ ! -x $f ]]; then
        echo "demo.sh: $f not found or not executable (run 'make' first)" >&2
        exit 2
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cohort-demo.XXXXXX") || exit 2
IMAGES=$TMP/images
export COHORT_RUN_DIR=$TMP/run
mkdir -p "$IMAGES" "$COHORT_RUN_DIR"
RUN_PID=

# shellcheck disable=SC2317  # (invoked by the trap)
cleanup() {
    # if we are interrupted half-way, do not leave the group running
    "$COHORT" kill "$NAME" >/dev/null 2>&1
    if [[ -n $RUN_PID ]] && kill -0 "$RUN_PID" 2>/dev/null; then
        kill "$RUN_PID" 2>/dev/null
        wait "$RUN_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

say() { printf '\n== %s ==\n' "$*"; }
show() { printf '$ %s\n' "$*"; }   # echo a command before running it
result_of() { sed -n 's/^\[demo\] RESULT \([0-9a-f]*\).*/\1/p' "$1" | tail -n 1; }

# ---------------------------------------------------------------------------
say "1. reference: running the demo straight through, without cohort"
show "$DEMO_BIN" ${DEMO_ARGV[@]+"${DEMO_ARGV[@]}"}
"$DEMO_BIN" ${DEMO_ARGV[@]+"${DEMO_ARGV[@]}"} | tee "$TMP/reference.log"
if [[ ${PIPESTATUS[0]} -ne 0 ]]; then
    echo "demo.sh: the reference run failed" >&2
    exit 1
fi
EXPECTED=$(result_of "$TMP/reference.log")
echo "expected result: $EXPECTED"

# ---------------------------------------------------------------------------
say "2. running the demo under cohort"
show "$COHORT run --name $NAME --images $IMAGES -- $DEMO_BIN ${DEMO_ARGS:-}&"
# The output goes through tee so that we can also keep a copy; $! is the pid
# of `cohort run` itself (the process substitution runs inside its job).
"$COHORT" run --name "$NAME" --images "$IMAGES" -- "$DEMO_BIN" ${DEMO_ARGV[@]+"${DEMO_ARGV[@]}"} \
    > >(tee "$TMP/run.log") 2>&1 &
RUN_PID=$!

# wait until the group is registered and running
for ((i = 0; ; i++)); do
    if "$COHORT" status "$NAME" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$RUN_PID" 2>/dev/null; then
        wait "$RUN_PID"
        echo "demo.sh: 'cohort run' exited (status $?) before the group was running" >&2
        RUN_PID=
        exit 1
    fi
    if ((i >= 200)); then
        echo "demo.sh: the group did not report running within 10 s" >&2
        exit 1
    fi
    sleep 0.05
done
echo "(group '$NAME' is running; letting it compute for ${DELAY} s)"
sleep "$DELAY"

# ---------------------------------------------------------------------------
say "3. checkpointing the running group, then killing it"
show "$COHORT checkpoint $NAME --images $IMAGES --kill"
if ! "$COHORT" checkpoint "$NAME" --images "$IMAGES" --kill; then
    echo "demo.sh: checkpoint failed" >&2
    exit 1
fi
for ((i = 0; i < 300; i++)); do   # give `cohort run` up to 30 s to notice
    kill -0 "$RUN_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$RUN_PID" 2>/dev/null; then
    echo "demo.sh: 'cohort run' did not exit after checkpoint --kill" >&2
    exit 1
fi
wait "$RUN_PID"
RUN_STATUS=$?
RUN_PID=
sleep 0.2   # let tee drain the last lines
echo "(the original run ended with status $RUN_STATUS after $(grep -c '^\[demo\] step' "$TMP/run.log") steps; its images:)"
for g in "$IMAGES/$NAME"/*; do
    [[ -e $g ]] && echo "    $(du -sh "$g" | cut -f1)	$g"
done
if [[ -n $(result_of "$TMP/run.log") ]]; then
    echo "demo.sh: the program had already finished before the checkpoint (DEMO_DELAY=$DELAY is too long)" >&2
    exit 1
fi

# ---------------------------------------------------------------------------
say "4. restarting the group from its images"
show "$COHORT restart $NAME --images $IMAGES"
"$COHORT" restart "$NAME" --images "$IMAGES" 2>&1 | tee "$TMP/restart.log"
RESTART_STATUS=${PIPESTATUS[0]}
echo "(cohort restart exited with status $RESTART_STATUS)"

# ---------------------------------------------------------------------------
say "5. verdict"
GOT=$(result_of "$TMP/restart.log")
echo "uninterrupted run:  RESULT ${EXPECTED:-<none>}"
echo "restarted run:      RESULT ${GOT:-<none>}"
if [[ -n $EXPECTED && $GOT == "$EXPECTED" && $RESTART_STATUS -eq 0 ]]; then
    echo "OK: same result as the uninterrupted run"
    exit 0
fi
if [[ -n $EXPECTED && $GOT == "$EXPECTED" ]]; then
    echo "MISMATCH: same RESULT, but cohort restart exited with status $RESTART_STATUS"
else
    echo "MISMATCH: the restarted run did not reproduce the uninterrupted result"
fi
exit 1
