# bench/lib.sh - helpers shared by the benchmark scripts (sourced).
# They expect WORK (a scratch directory holding *.log and *.err files).

show() {   # print a command exactly as run
    local s
    printf -v s '%q ' "$@"
    printf '  + %s\n' "${s% }"
}

stamp() {  # prefix each line with the wall-clock time it arrived
    local l
    while IFS= read -r l; do
        printf '%s %s\n' "$EPOCHREALTIME" "$l"
    done
}

die() {    # message, the last lines of every log, exit 1
    echo "${0##*/}: $*" >&2
    local f
    for f in "$WORK"/*.log "$WORK"/*.err; do
        [[ -s $f ]] || continue
        echo "---- last lines of $(basename "$f"):" >&2
        tail -n 15 "$f" >&2
    done
    exit 1
}

# wait_line FILE ERE N TIMEOUT: print the N-th line ("STAMP text") whose text
# matches ERE; fail after TIMEOUT s
wait_line() {
    local f=$1 re=$2 n=$3 deadline=$((EPOCHSECONDS + $4)) line
    while :; do
        line=$(grep -E "^[0-9.]+ ($re)" "$f" 2>/dev/null | sed -n "${n}p")
        if [[ -n $line ]]; then
            printf '%s\n' "$line"
            return 0
        fi
        ((EPOCHSECONDS >= deadline)) && return 1
        sleep 0.02
    done
}

json_field() {    # FILE KEY -> value (numbers or strings, flat JSON)
    grep -oE "\"$2\"[[:space:]]*:[[:space:]]*(\"[^\"]*\"|[^,}[:space:]]+)" "$1" 2>/dev/null |
        head -n 1 | sed -E 's/^[^:]*:[[:space:]]*//; s/"//g'
}

ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# bench_dirs PREFIX: a scratch WORK directory with the groups' run directory
# (COHORT_RUN_DIR), and IMAGES unless given (tmpfs, or /var/tmp with DISK=1;
# OWN_IMAGES=1 then: ours to remove)
bench_dirs() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 2
    export COHORT_RUN_DIR=$WORK/run
    mkdir -p "$COHORT_RUN_DIR"
    OWN_IMAGES=0
    if [[ -z $IMAGES ]]; then
        if ((DISK)); then
            IMAGES=$(mktemp -d "/var/tmp/$1-images.XXXXXX") || exit 2
        else
            IMAGES=$(mktemp -d "/dev/shm/$1-images.XXXXXX") || exit 2
        fi
        OWN_IMAGES=1
    fi
    mkdir -p "$IMAGES" || exit 2
    IMAGES=$(cd "$IMAGES" && pwd)
}

# bench_cleanup SIGNAL: end the group NAME with SIGNAL, stop the background
# pipelines (BG_PIDS), remove WORK and, unless KEEP, the images we made
bench_cleanup() {
    if [[ -n $NAME ]]; then
        "$COHORT" kill "$NAME" --signal "$1" >/dev/null 2>&1
    fi
    local p
    for p in "${BG_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for _ in {1..50}; do   # give background jobs up to 5 s to finish
        [[ -z $(jobs -rp) ]] && break
        sleep 0.1
    done
    if ((OWN_IMAGES && !KEEP)); then
        rm -rf "$IMAGES"
    fi
    rm -rf "$WORK"
}

# stats N...: the median of the numbers given, and [min..max] when more than one
stats() {
    printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g |
        awk 'function f(x) { return x == int(x) ? sprintf("%.0f", x) : sprintf("%.1f", x) }
             { v[NR] = $1 }
             END { if (!NR) { print "-"; exit }
                   m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                   if (NR == 1) print f(m); else printf "%s [%s..%s]\n", f(m), f(v[1]), f(v[NR]) }'
}

# bench_trap_images: on exit, end what the benchmark started and (without
# --keep) remove the images of group $NAME under $IMAGES
bench_trap_images() {
    NAME=
    BG_PIDS=()
    trap 'bench_cleanup KILL; if [[ -n $NAME ]] && ((!KEEP)); then rm -rf "${IMAGES:?}/$NAME"; fi' EXIT
    trap 'exit 130' INT TERM HUP PIPE
}

# ---- the options the benchmarks share ----
#
# A benchmark sources this file first, then:
#   bench_defaults                 ROOT, COHORT, IMAGES, DISK, KEEP, REPS (3)
#   ...its own defaults, overriding any of those...
#   BENCH_OPTS="--reps --keep"     which shared options it takes
#   while (($#)); do
#       bench_opt "$@" && { shift "$BENCH_SHIFT"; continue; }
#       case $1 in ...its own options, its message for an unknown one... esac
#   done

# The script being run (not this file), and its name for messages.
bench_script() { printf '%s\n' "${BASH_SOURCE[-1]}"; }
bench_name() { local s; s=$(bench_script); printf '%s\n' "${s##*/}"; }

# ROOT (the tree), COHORT (this tree's, unless set), images made anew
# (IMAGES empty: bench_dirs) on tmpfs (DISK=0) and removed (KEEP=0), REPS=3
bench_defaults() {
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    COHORT=${COHORT:-$ROOT/build/cohort}
    IMAGES=
    DISK=0
    KEEP=0
    REPS=3
}

# The script's head comment, from its second line to the first blank one; exit 2.
usage() { sed -n '2,/^$/p' "$(bench_script)" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# bench_opt ARGS...: when $1 is one of the shared options the script named
# in BENCH_OPTS (--reps N, --images DIR, --cohort PATH, --keep, --help or
# -h: usage), take it and set BENCH_SHIFT to the arguments it used;
# status 1, and nothing taken, for any other.
bench_opt() {
    local opt=$1
    [[ $opt == -h ]] && opt=--help
    [[ " ${BENCH_OPTS:-} " == *" $opt "* ]] || return 1
    BENCH_SHIFT=2
    case $opt in
    --reps) REPS=${2:?} ;;
    --images) IMAGES=${2:?} ;;
    --cohort) COHORT=${2:?} ;;
    --keep) KEEP=1; BENCH_SHIFT=1 ;;
    --help) usage ;;
    *) return 1 ;;
    esac
}

# bench_positive VAR...: each a positive integer, else "NAME: --var wants a positive integer", exit 2
bench_positive() {
    local v
    for v in "$@"; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$(bench_name): --${v,,} wants a positive integer" >&2; exit 2; }
    done
}

# bench_need HINT FILE...: each an executable, else "NAME: FILE not found or
# not executable (run 'HINT' first)", exit 2
bench_need() {
    local hint=$1 f
    shift
    for f in "$@"; do
        [[ -x $f ]] || { echo "$(bench_name): $f not found or not executable (run '$hint' first)" >&2; exit 2; }
    done
}
