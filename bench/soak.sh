#!/usr/bin/env bash
# bench/soak.sh - many checkpoints of one group back to back: nothing leaks,
# nothing is said on the program's stdio, the images stay bounded (issue 12).
#
# usage: bash bench/soak.sh [--checkpoints N] [--keep K] [--mib M] [--full-every F]
#                           [--images DIR] [--cohort PATH]
#
#   --checkpoints N  checkpoints taken (default 1000)
#   --keep K         the group runs with --keep K (default 3)
#   --mib M          memory of each of groupmem's 3 processes (default 16)
#   --full-every F   every F-th checkpoint is full, the others incremental
#                    (default 5), so merges and pruning run all along
#   --images DIR     where images go (default: a new directory under /var/tmp)
#
# The group: bench/groupmem (a parent and 2 children, each rewriting its
# memory in a loop).  After every checkpoint: the coordinator's and each
# program process's open descriptors, threads and RSS (/proc/PID), and the
# bytes under the images directory.  At the end, one line per measure
# (first, last, max) and a verdict per check:
#   descriptors and threads of every process the same at the end as after
#   the first checkpoint; the coordinator's RSS grown by less than 8 MiB;
#   the images never above 2K + 4 times the first full generation (each
#   kept generation beside its merged full image, and the one being taken); the
#   program's stdout and stderr hold nothing of cohort's; every checkpoint
#   committed.  Exit status 1 if a check fails.
set -u
# the shared options (--keep is this script's own: the group's --keep)
source "$(dirname "$0")/lib.sh"
N=1000 KEEP=3 MIB=16 FULL=5 IMAGES= COHORT=${COHORT:-}
BENCH_OPTS="--images --cohort"
while [ $# -gt 0 ]; do
	bench_opt "$@" && { shift "$BENCH_SHIFT"; continue; }
	case $1 in
	--checkpoints) N=$2; shift 2 ;;
	--keep) KEEP=$2; shift 2 ;;
	--mib) MIB=$2; shift 2 ;;
	--full-every) FULL=$2; shift 2 ;;
	*) echo "usage: bash bench/soak.sh [--checkpoints N] [--keep K] [--mib M] [--full-every F] [--images DIR]" >&2
	   exit 2 ;;
	esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COHORT=${COHORT:-$ROOT/build/cohort}
GROUPMEM=$ROOT/build/bench/groupmem
[ -x "$COHORT" ] && [ -x "$GROUPMEM" ] || { echo "soak: build first (make all progs)" >&2; exit 2; }
WORK=$(mktemp -d /var/tmp/cohort-soak.XXXXXX)
IMAGES=${IMAGES:-$WORK/images}
export COHORT_RUN_DIR=$WORK/run
mkdir -p "$COHORT_RUN_DIR" && chmod 700 "$COHORT_RUN_DIR"
NAME=soak$$
trap '"$COHORT" kill "$NAME" >/dev/null 2>&1; sleep 0.5; rm -rf "$WORK"' EXIT

"$COHORT" run --name "$NAME" --images "$IMAGES" --keep "$KEEP" -- "$GROUPMEM" --mib "$MIB" --procs 3 --seconds 100000000 \
	>"$WORK/prog.out" 2>"$WORK/prog.err" &
for ((i = 0; i < 600; i++)); do
	[ "$(grep -c ' ready$' "$WORK/prog.out" 2>/dev/null)" -ge 3 ] && break
	sleep 0.05
done
[ "$(grep -c ' ready$' "$WORK/prog.out")" -ge 3 ] || { echo "soak: the group did not start" >&2; exit 1; }
coord=$(pgrep -f -o -- "--name $NAME ")
init=$(pgrep -o -P "$coord")
prog=$(pgrep -o -P "$init")
pids() { echo "$coord" "$prog" $(pgrep -P "$prog" | sort -n); }

# sample: per process "fds threads rss_kb", then the images' bytes
sample() {
	local p out=
	for p in $(pids); do
		out+="$(ls /proc/$p/fd 2>/dev/null | wc -l) $(awk '/^Threads/{t=$2} /^VmRSS/{r=$2} END{print t, r}' /proc/$p/status) "
	done
	echo "$out$(du -sb "$IMAGES" | cut -f1)"
}
failed=0
: >"$WORK/samples"
for ((k = 1; k <= N; k++)); do
	kind=--incremental
	[ $((k % FULL)) = 1 ] && kind=
	"$COHORT" checkpoint "$NAME" $kind >/dev/null 2>>"$WORK/ckpt.err" || failed=$((failed + 1))
	sample >>"$WORK/samples"
	[ $((k % 100)) = 0 ] && echo "soak: $k checkpoints" >&2
done
python3 - "$WORK/samples" "$KEEP" "$failed" "$N" "$WORK/prog.out" "$WORK/prog.err" <<'PY'
import sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
keep, failed, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
nproc = (len(rows[0]) - 1) // 3
names = ["coordinator"] + ["process %d" % i for i in range(1, nproc)]
ok = True
def check(cond, what):
    global ok
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    ok &= cond
for i, nm in enumerate(names):
    for j, m in enumerate(("fds", "threads", "rss_kb")):
        col = [r[3 * i + j] for r in rows]
        print("%-12s %-8s first %8d last %8d max %8d" % (nm, m, col[0], col[-1], max(col)))
    fds = [r[3 * i] for r in rows]; th = [r[3 * i + 1] for r in rows]
    check(fds[-1] == fds[0], "%s: descriptors %d after the first checkpoint, %d after the last" % (nm, fds[0], fds[-1]))
    check(th[-1] == th[0], "%s: threads %d after the first checkpoint, %d after the last" % (nm, th[0], th[-1]))
rss = [r[2] for r in rows]
check(rss[-1] - rss[0] < 8192, "coordinator RSS grew %d kB" % (rss[-1] - rss[0]))
disk = [r[-1] for r in rows]
# each kept generation, and the one being taken, with its merged full image beside it
check(max(disk) <= (2 * keep + 4) * disk[0], "images at most %d bytes (first full generation %d, --keep %d)" % (max(disk), disk[0], keep))
text = open(sys.argv[5], errors="replace").read() + open(sys.argv[6], errors="replace").read()
check("cohort" not in text and "merge" not in text, "nothing of cohort's on the program's stdout or stderr")
check(failed == 0, "%d of %d checkpoints failed" % (failed, n))
sys.exit(0 if ok else 1)
PY
