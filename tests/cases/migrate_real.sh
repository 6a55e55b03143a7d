# tests/cases/migrate_real.sh - sourced by tests/run.sh: real programs,
# unmodified runtimes, migrated between the two hosts of the migration
# tests (tests/harness/mig.sh) while they compute (issue 14).  The programs
# are those of tests/cases/real.sh (tests/real/); each prints "step N ..."
# lines and a RESULT, and checks its own state at every step.  With
# COHORT_TEST_GATES="S1 S2" a program waits after step Sk until go.k exists
# (made in advance for the straight run), so that it cannot end before the
# migration is done: each migration starts a few steps before a gate, the
# program computing meanwhile, and the gate is opened once it is over.
#   migrate_real_python  numpy_job.py (3 threads multiplying) A -> B with pre-copy
#                        rounds, and back B -> A with rounds
#   migrate_real_jvm     Threads.java (4 workers, a pool, the JVM's own
#                        threads and garbage collector) A -> B --postcopy,
#                        no rounds: the whole heap follows the switch; its
#                        performance data file (mapped shared) on each
#                        host's own tmpfs: refused, naming it, then
#                        carried with --copy-files
#   migrate_real_node    timers.js (timers, fs.promises, a FileHandle) A -> B
#   migrate_real_go      park_go (pure Go, linked externally: goroutine
#                        swarms, signal.Notify) A -> B
#   migrate_real_sqlite  sqlite_job.sh (sqlite3 fed by a bash coprocess) A -> B
#                        with its database on each host's own tmpfs
#                        (--copy-files); the database at B ends as the
#                        straight run's
#   migrate_real_repl    the Python REPL on a terminal (tests/real/pty_drive.py),
#                        A -> B while a loop prints, which then reads a line
#                        typed at B's terminal, and back B -> A at its prompt;
#                        the typed state is there, each tick printed once
# Each proves itself: the pieces of stdout (the run at A, the receive at
# B, ...) are the straight run's byte for byte; the run at A ends with 0
# saying where the group went; after each migration the group answers at
# the target with the processes it had (pids in its namespace) and not at
# the source, where none of them is left; the last exit status is the
# straight run's.

# Each takes 15-30 s here; a receive runs the group from one migration to
# the end of the next, and its command gets TMO: 60 s, on a busy machine
# or under AddressSanitizer (COHORT=build/asan/cohort) twice as slow.
for _t in python jvm node go sqlite repl; do TEST_TIMEOUTS[migrate_real_$_t]=120; done

# real_pids HOST: the group's processes at HOST, "PID:HOST_PID ..." (status --json;
# what it said on stderr in TD/status.err)
real_pids() {
	on "$1" "$COHORT" status "$GNAME" --json 2>"$TD/status.err" | grep -o '"pid":[0-9]*,"host_pid":[0-9]*' |
		sed 's/"pid":\([0-9]*\),"host_pid":\([0-9]*\)/\1:\2/' | sort -n | tr '\n' ' '
}

# stop_pids HOST TAG: the pids in the group of the processes the stop of
# migration TAG took (its generation's manifest at HOST), "PID ..."
stop_pids() {
	local gen
	gen=$(sed -n 's/.*"generation":\([0-9]*\).*/\1/p' "$TD/$2.out" | head -n 1)
	[ -n "$gen" ] || return 1
	"$COHORT" inspect "$(printf '%s/%s/%s/gen-%06d/manifest' "$IMG" "$1" "$GNAME" "$gen")" |
		sed -n 's/.* manifest process pid \([0-9]*\) .*/\1/p' | tr '\n' ' '
}

# real_migrate FROM TO TAG RUN RECV [ARGS...]: with the group running at
# FROM under RUN (its run, or the receive that brought it), migrate TAG to a
# receive RECV at TO (migrate ARGS); then it runs at TO, with the processes
# it had, and at FROM neither answers nor has a process left.  Those it had
# are those seen before and after the receive starts that its stop took
# too (the manifest of the generation it sent): a shell script's `sleep`
# seen once, or one born since and taken by the stop, may end before, or
# at TO after its restore.
real_migrate() {
	local from=$1 to=$2 tag=$3 run=$4 recv=$5 seen had after p stopped kept
	shift 5
	seen=$(real_pids "$from")
	mig_receive "$recv" "$to"
	had=
	for p in $(real_pids "$from"); do
		[[ " $seen " = *" $p "* ]] && had+="$p "
	done
	[ -n "$had" ] || fail "$tag: the group does not answer at $from before it migrates"
	mig_go "$from" "$tag" --json "$@"
	if [ "$RC" != 0 ]; then
		note_file "$recv stderr" "$TD/$recv.err"
		note_file "$run stderr" "$TD/$run.err"
		mig_ok "$tag"
	fi
	migrated "$run" "$TO"
	after=$(real_pids "$to")
	stopped=$(stop_pids "$from" "$tag") && [ -n "$stopped" ] ||
		fail "$tag: no processes in the manifest of the generation it sent: $(head -c 300 "$TD/$tag.out")"
	kept=0
	for p in $had; do
		[[ " $stopped " = *" ${p%%:*} "* ]] || continue
		kept=$((kept + 1))
		[[ " $after " = *" ${p%%:*}:"* ]] && continue
		# the group may have ended at TO right after its restore (a program that found its memory wrong):
		# its receive's status and stderr say so (a few seconds for it to end, if it does)
		local i
		for ((i = 0; i < 50; i++)); do bg_alive "$recv" || break; sleep 0.1; done
		bg_alive "$recv" || { bg_wait "$recv"; note "$recv ended with status $RC"; }
		note_file "$recv stderr" "$TD/$recv.err"
		fail "$tag: process ${p%%:*} of the group is not at $to (there: $after; at $from: $had; stopped: $stopped;$(head -c 300 "$TD/status.err"))"
	done
	[ "$kept" -ge 1 ] || fail "$tag: none of the processes seen at $from ($had) is in its stop ($stopped)"
	! runs_at "$from" || fail "$tag: the group still answers at $from"
	for p in $had; do
		! kill -0 "${p#*:}" 2>/dev/null || fail "$tag: process ${p%%:*} (pid ${p#*:}) is still at $from"
	done
}

t_migrate_real_python() {
	local TMO=60
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	"$PYTHON" -c 'import numpy' 2>/dev/null || skip "numpy not installed for $PYTHON (python3-numpy)"
	export COHORT_TEST_GATES="20 45"
	MIG_ARGV=("$PYTHON" "$REAL/numpy_job.py")
	mig_hosts
	mig_run run0 2
	real_migrate A B mig1 run0 recvB
	[ "$(rounds_of mig1)" -ge 1 ] || fail "mig1: no pre-copy round: $(head -c 300 "$TD/mig1.out")"
	: >"$TT/go.1"
	wait_lines 23 run0 recvB
	real_migrate B A mig2 recvB recvA
	[ "$(rounds_of mig2)" -ge 1 ] || fail "mig2: no pre-copy round: $(head -c 300 "$TD/mig2.out")"
	: >"$TT/go.2"
	bg_wait recvA
	final_check 0 "$RC" recvA run0 recvB recvA
}

t_migrate_real_jvm() {
	local TMO=60
	need_cmd java
	need_cmd javac
	real_build "javac" javac -d "$TD/classes" "$REAL/Threads.java"
	export COHORT_TEST_GATES="40"
	MIG_ARGV=("$(command -v java)" -Xmx256m -cp "$TD/classes" Threads)
	# the JVM maps its performance data file, /tmp/hsperfdata_USER/PID, shared:
	# each host has its own, as two machines would
	MIG_MNT=1
	MIG_MNT_DIRS=("/tmp/hsperfdata_$(id -un)")
	mig_hosts
	mig_run run0 2
	mig_receive recvB0 B
	mig_go A nocopy --postcopy --max-rounds 0
	mig_failed nocopy "the group holds /tmp/hsperfdata_$(id -un)/2, which is not here"
	bg_wait recvB0
	real_migrate A B mig1 run0 recvB --postcopy --max-rounds 0 --copy-files
	grep -q '"mode":"post-copy"' "$TD/mig1.out" || fail "mig1: not post-copy: $(head -c 400 "$TD/mig1.out")"
	[ "$(pc_num mig1 postcopy_bytes)" -gt 0 ] || fail "mig1: nothing followed the switch: $(head -c 500 "$TD/mig1.out")"
	: >"$TT/go.1"
	bg_wait recvB
	final_check 0 "$RC" recvB run0 recvB
}

# real_one_way [ARGS...]: the group (MIG_ARGV, one gate) A -> B after its
# second step (migrate ARGS), and on to the end at B
real_one_way() {
	mig_hosts
	mig_run run0 2
	real_migrate A B mig1 run0 recvB "$@"
	: >"$TT/go.1"
	bg_wait recvB
	final_check 0 "$RC" recvB run0 recvB
}

t_migrate_real_node() {
	local TMO=60
	need_cmd node
	export COHORT_TEST_GATES="40"
	MIG_ARGV=("$(command -v node)" "$REAL/timers.js")
	real_one_way
}

t_migrate_real_go() {
	local TMO=60
	go_build park_go
	export COHORT_TEST_GATES="45"
	MIG_ARGV=("$TD/park_go")
	real_one_way
}

# the database of a straight run and of the run under cohort: the same
# rows, sound (the query's answer at HOST, or here with no HOST)
real_db() { # real_db DB [HOST]
	local q="PRAGMA integrity_check; SELECT count(*), sum(v), max(id) FROM t;"
	if [ -n "${2:-}" ]; then
		on "$2" sqlite3 "$1" "$q" 2>&1
	else
		sqlite3 "$1" "$q" 2>&1
	fi
}

t_migrate_real_sqlite() {
	local TMO=60
	need_cmd sqlite3
	export COHORT_TEST_GATES="40"
	# the database in the work directory: at each host its own tmpfs (the
	# straight run's in the test's own namespace)
	MIG_MNT=1
	MIG_ARGV=(bash "$REAL/sqlite_job.sh" "$TT/work/db")
	mig_hosts
	mig_run run0 2
	# held open for writing: it must travel (refused without --copy-files, naming it)
	mig_receive recvB0 B
	mig_go A nocopy
	mig_failed nocopy "the group holds $TT/work/db, which is not here"
	bg_wait recvB0
	real_migrate A B mig1 run0 recvB --copy-files
	: >"$TT/go.1"
	bg_wait recvB
	final_check 0 "$RC" recvB run0 recvB
	real_db "$TT/work/db" >"$TD/db.exp"
	real_db "$TT/work/db" B >"$TD/db.got"
	grep -qx ok "$TD/db.exp" || fail "the straight run's database: $(tr '\n' ' ' <"$TD/db.exp")"
	cmp -s "$TD/db.exp" "$TD/db.got" ||
		fail "the database at B is not the straight run's: $(tr '\n' ' ' <"$TD/db.got"), straight: $(tr '\n' ' ' <"$TD/db.exp")"
}

# the Python REPL on a terminal, driven by tests/real/pty_drive.py through
# tests/real/python_repl_migrate.steps: each receive on a new terminal
t_migrate_real_repl() {
	local TMO=60 a b
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	mig_net
	host A
	a=$(printf '%q ' "${ON[@]}")
	host B
	b=$(printf '%q ' "${ON[@]}")
	export MIG_HOSTS="A $HOST_ADDR_A $a;B $HOST_ADDR_B $b" MIG_TOKEN=$TD/token
	real_pty python_repl_migrate.steps
	real_ticks native
	real_ticks pty
}

# flock(1) running a job under a lock, as cron jobs do, the lock file on the
# filesystem both hosts share (as over NFS): the stop lets go of the
# group's flock at the source for the target to take (coord/hold_locks.c).
#  - A migration whose restore fails at the target (COHORT_FAULT): the
#    source takes the lock back before the group runs on; flock -n from
#    outside finds it held there.
#  - A -> B: at B the group holds it (flock -n fails), and it finishes right.
#  - Another process takes the lock while the target's restore hangs: the
#    migration fails, and the group at the source, which cannot have its
#    lock back, ends saying so, naming the file; its generation is kept.
TEST_TIMEOUTS[migrate_real_flock]=120
t_migrate_real_flock() {
	local TMO=60
	need_cmd flock
	# (the lock file in COHORT_TEST_TMP: the straight run's is another)
	MIG_ARGV=(/bin/bash -c 'exec flock "$COHORT_TEST_TMP/lock" /bin/bash -c "$0"' "$MIG_PROG")
	lock_migrations flock "$TT/lock" "flock lock on $TT/lock"
}

# The same with a POSIX lock (fcntl F_SETLK, as sqlite and most databases
# take): Python takes lockf on the shared file and execs bash running the
# job, the descriptor kept.  A POSIX lock is the process's: one of its
# parked threads lets go of it at the stop and takes it back, on the
# coordinator's word (coord/hold_locks.c, POSIX_LOCKS).
TEST_TIMEOUTS[migrate_real_posix_lock]=120
t_migrate_real_posix_lock() {
	local TMO=60
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	MIG_ARGV=("$PYTHON" -c 'import fcntl, os, sys
f = open(os.environ["COHORT_TEST_TMP"] + "/plock", "a")
fcntl.lockf(f, fcntl.LOCK_EX)
os.set_inheritable(f.fileno(), True)
os.execv("/bin/bash", ["bash", "-c", sys.argv[1]])' "$MIG_PROG")
	lock_migrations posix "$TT/plock" "POSIX write lock on $TT/plock, bytes 0+0"
}

# lock_held KIND FILE: a lock of KIND (flock, posix) on FILE is held (ours is refused)
lock_held() {
	case $1 in
	flock) ! flock -n "$2" true ;;
	posix) ! "$PYTHON" -c 'import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)' "$2" 2>/dev/null ;;
	esac
}

# lock_hold KIND FILE: a process of ours takes it and keeps it (HOLDER)
lock_hold() {
	case $1 in
	flock) flock "$2" sleep 600 & ;;
	posix) "$PYTHON" -c 'import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)
time.sleep(600)' "$2" & ;;
	esac
	HOLDER=$!
}

# lock_migrations KIND FILE WHAT: the three migrations of the group of
# MIG_ARGV, which holds a KIND lock on FILE (WHAT: as cohort names it)
lock_migrations() {
	local kind=$1 file=$2 what=$3 HOLDER
	mig_hosts
	mig_run run0
	wait_for "the group holds its lock at A" lock_held "$kind" "$file"
	mig_receive recvB B COHORT_FAULT=fail:memory
	mig_go A fault
	mig_failed fault "the group runs on here"
	bg_wait recvB
	lock_held "$kind" "$file" || fail "after the failed migration the group at A does not hold its lock again"
	real_migrate A B mig1 run0 recvB2
	lock_held "$kind" "$file" || fail "the group does not hold its lock at B"
	: >"$TT/go.1"
	: >"$TT/go.2"
	bg_wait recvB2
	final_check 0 "$RC" recvB2 run0 recvB2
	! lock_held "$kind" "$file" || fail "the lock is still held after the group ended"
	# the lock taken by another process while the target's restore hangs
	rm -f "$TT/go.1" "$TT/go.2"
	GNAME=$GNAME-2
	host A
	bg_start run2 "${ON[@]}" env COHORT_LOCK_RETAKE_MS=300 "$COHORT" run --name "$GNAME" --images "$IMG/A" -- \
		"${MIG_ARGV[@]}"
	wait_lines 10 run2
	mig_receive recvB3 B COHORT_FAULT=hang:memory
	host A
	bg_start lost "${ON[@]}" timeout -k 5 "$TMO" "$COHORT" migrate "$GNAME" --to "$TO" --token-file "$TD/token"
	wait_for "the source let go of the lock for the target" eval '! lock_held "$kind" "$file"'
	lock_hold "$kind" "$file"
	wait_for "another process holds the lock" lock_held "$kind" "$file"
	kill -KILL "$(pgrep -P "$(cat "$TD/recvB3.pid")" | head -n 1)"
	{ bg_wait recvB3; } 2>/dev/null
	bg_wait lost
	[ "$RC" = 1 ] || fail "lost: status $RC, expected 1: $(first_line "$TD/lost.err")"
	grep -q "its $what was taken by another process while it migrated" "$TD/lost.err" ||
		fail "lost: $(first_line "$TD/lost.err")"
	bg_wait run2
	[ "$RC" != 0 ] || fail "run2: status 0, but its group could not have its lock back"
	grep -q "^cohort: the group '$GNAME' ended: pid [0-9]*, fd [0-9]*: its $what was taken" "$TD/run2.err" ||
		fail "run2: $(first_line "$TD/run2.err")"
	grep -q "generation [0-9]* holds it as it was" "$TD/run2.err" || fail "run2: no generation named: $(first_line "$TD/run2.err")"
	kill "$HOLDER" 2>/dev/null
	wait "$HOLDER" 2>/dev/null || : # (killed: its status is not the test's)
}
