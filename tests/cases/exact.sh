# tests/cases/exact.sh - sourced by tests/run.sh: state the kernel keeps for
# a process and its threads comes back exactly, or the checkpoint refuses.

# proc_attrs: interval timers, oom_score_adj, subreaper (orphans reparent
# to it after a restart), THP disabled; per thread nice, SCHED_BATCH,
# SCHED_FIFO, CPU affinity, timer slack, parent-death signal,
# no_new_privs and personality, each checked by its thread at every step
# through the standard flow (two rounds of checkpoint --kill + restart).
t_proc_attrs() { std proc_attrs 0 8 8; }

# the same through live checkpoints: the checkpoint itself (its signal,
# the parked threads) must leave every attribute as it was
t_proc_attrs_live() { steps_live_flow proc_attrs 10; }

# thread_names: a thread that renames itself all the time (tests/progs/
# thread_names.c), another named once, the main thread with the program's
# name: three live checkpoints (their images written by a snapshot while
# the program runs on), a --kill, and every generation restarted to the
# straight run's end.  The names must be those of the pause: read from
# /proc by the image's writer, after the program went on, they were later
# ones (the renamer's first check failed) or, the thread gone, none at all
# (tls_tids: "thread 2: name 'cohort-restore' != 'tls-worker-2'").
t_thread_names() {
	local AT_END_FILE=$TT/at-end g
	prog_cmd thread_names
	straight_start 0 "${PCMD[@]}"
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	for g in 1 2 3; do
		wait_lines $((3 * g)) run0
		ckpt_or_fail "checkpoint $g (live)" "$GNAME" "$g"
	done
	wait_lines 12 run0
	ckpt_or_fail "checkpoint 4 (--kill)" "$GNAME" 4 --kill
	bg_wait run0
	: >"$TT/end"
	for g in 1 2 3; do
		bg_start "r$g" "$COHORT" restart "$GNAME" --images "$IMG" --generation "$g"
		bg_wait "r$g"
		[ "$RC" = 0 ] || { note_file "restart of generation $g stderr" "$TD/r$g.err"; fail "restart of generation $g (live): status $RC: $(first_line "$TD/r$g.err")"; }
		check_suffix "r$g" run0 || fail "restart of generation $g (live): wrong output"
	done
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# caps_keep (root): a root process that dropped capabilities (effective,
# permitted, bounding; securebits NOROOT; one ambient) and a child that
# kept two across its change to uid 65534, each with a second thread, all
# checked at every step through the standard flow: a restorer running as
# root must give back exactly what each had, no more.
t_caps_keep() {
	[ "$(id -u)" = 0 ] || skip "needs root"
	std caps_keep 0 10 10
}

# many_signals: real-time signals queued with values, and a standard one,
# for the process (20) and for a thread (10), kept through checkpoint --kill
# and restart: each comes out once, in order, with its value.  More than an
# image holds (40 for the process, 20 for a thread): the checkpoint is
# refused in one line and the program runs on.
signals_round() { # signals_round TAG MODE N: run, checkpoint --kill, restart
	local mode=$2 n=$3
	: >"$TT/go.1"
	straight_start 0 "${PCMD[@]}" "$mode" "$n"
	rm -f "$TT/go.1"
	GNAME=$GNAME-$1
	bg_start "$1" "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}" "$mode" "$n"
	wait_line "$TD/$1.out" ready
}
t_many_signals() {
	prog_cmd many_signals
	local g0=$GNAME t
	for t in "process 20" "thread 10"; do
		GNAME=$g0
		signals_round "k${t% *}" $t
		ckpt_or_fail "checkpoint ($t, --kill)" "$GNAME" 1 --kill
		bg_wait "k${t% *}"
		: >"$TT/go.1"
		bg_start "r${t% *}" "$COHORT" restart "$GNAME" --images "$IMG"
		bg_wait "r${t% *}"
		final_check 0 "$RC" "r${t% *}" "k${t% *}" "r${t% *}"
	done
	for t in "process 40" "thread 20"; do
		GNAME=$g0
		signals_round "n${t% *}" $t
		ckpt_refused "n${t% *}" "$t signals queued" "more than [0-9]+ signals (are )?queued" --kill
		: >"$TT/go.1"
		bg_wait "n${t% *}"
		final_check 0 "$RC" "n${t% *}" "n${t% *}"
	done
}

# locks_kept: a process holding a file lock (flock through bash's fd 9,
# then a POSIX lock from python3's fcntl.lockf) comes back holding it:
# after checkpoint --kill and restart, while the program waits for go.1,
# flock(1) -n and a python3 lockf(LOCK_NB) from outside the group must find
# the file locked; then the program's output must be the straight run's.
# lease_refused: a read lease is not restored yet: the checkpoint is
# refused in one line naming the descriptor, and the program runs on.
locks_loop='echo line 0; echo line 1; while [ ! -e "$COHORT_TEST_TMP/go.1" ]; do sleep 0.05; done; echo line 2; echo RESULT done'
locks_py='import fcntl, os, sys, time
tmp = os.environ["COHORT_TEST_TMP"]
f = open(tmp + "/posix.lock", "w")
if sys.argv[1] == "posix":
    fcntl.lockf(f, fcntl.LOCK_EX)
else:
    f.close()
    f = open(tmp + "/posix.lock")
    fcntl.fcntl(f, fcntl.F_SETLEASE, fcntl.F_RDLCK)
print("line 0\nline 1", flush=True)
while not os.path.exists(tmp + "/go.1"):
    time.sleep(0.05)
print("line 2\nRESULT done")'
# locks_cmd KIND: the program holding a KIND lock, in LCMD
locks_cmd() {
	case $1 in
	FLOCK) LCMD=(/bin/bash -c "exec 9>\"\$COHORT_TEST_TMP/flock.lock\"; flock 9; $locks_loop") ;;
	POSIX) LCMD=("$PYTHON" -c "$locks_py" posix) ;;
	LEASE) LCMD=("$PYTHON" -c "$locks_py" lease) ;;
	esac
}
# locked KIND: whether the KIND lock is held by someone (tried from outside, without waiting)
locked() {
	if [ "$1" = FLOCK ]; then
		! flock -n "$TT/flock.lock" true
	else
		! "$PYTHON" -c 'import fcntl, sys; fcntl.lockf(open(sys.argv[1], "r+"), fcntl.LOCK_EX | fcntl.LOCK_NB)' \
			"$TT/posix.lock" 2>/dev/null
	fi
}
t_locks_kept() {
	command -v flock >/dev/null || skip "flock(1) not found"
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	local g0=$GNAME kind
	for kind in FLOCK POSIX; do
		locks_cmd $kind
		GNAME=$g0-$kind
		: >"$TT/go.1"
		straight 0 "${LCMD[@]}"
		rm -f "$TT/go.1"
		bg_start "k$kind" "$COHORT" run --name "$GNAME" --images "$IMG" -- "${LCMD[@]}"
		wait_line "$TD/k$kind.out" "line 1"
		locked $kind || fail "the $kind lock is not held before the checkpoint"
		ckpt_or_fail "checkpoint ($kind, --kill)" "$GNAME" 1 --kill
		bg_wait "k$kind"
		locked $kind && fail "the $kind lock is still held after checkpoint --kill"
		bg_start "r$kind" "$COHORT" restart "$GNAME" --images "$IMG"
		wait_ready "$GNAME" "r$kind"
		locked $kind || fail "the restarted program does not hold its $kind lock"
		: >"$TT/go.1"
		bg_wait "r$kind"
		final_check 0 "$RC" "r$kind" "k$kind" "r$kind"
	done
}
t_lease_refused() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	locks_cmd LEASE
	: >"$TT/go.1"
	straight 0 "${LCMD[@]}"
	rm -f "$TT/go.1"
	bg_start lease "$COHORT" run --name "$GNAME" --images "$IMG" -- "${LCMD[@]}"
	wait_line "$TD/lease.out" "line 1"
	ckpt_refused lease "a lease" "pid [0-9]+: fd [0-9]+: it holds a lease \(.*posix\.lock\), which cohort cannot restore yet" --kill
	: >"$TT/go.1"
	bg_wait lease
	final_check 0 "$RC" lease lease
}

# thread_attrs8 (image format 8): per thread the nice value of SCHED_IDLE
# and SCHED_FIFO threads, the I/O priority (idle and best-effort classes),
# PR_SET_TSC, PR_MCE_KILL, the NUMA memory policy (with
# MPOL_F_STATIC_NODES) and utilization clamps where the kernel has them;
# process-wide KSM merging of all memory and resource limits (as root
# hard limits above the shell's, which a restart must set back exactly),
# each checked by its thread at every step through the standard flow
t_thread_attrs8() { std thread_attrs8 0 8 8; }

# the same through live checkpoints
t_thread_attrs8_live() { steps_live_flow thread_attrs8 10; }

# rlimit_refused (root): the program's RLIMIT_NOFILE raised to
# 20000/20000, checkpointed, then restarted with a hard limit of 4096 and
# without CAP_SYS_RESOURCE: the restart fails in one line naming the limit
# and the restart's, and runs nothing (it capped the limit silently
# before); with the limit back, a restart runs on to the native run's end
t_rlimit_refused() {
	[ "$(id -u)" = 0 ] || skip "needs root (raises a hard limit)"
	command -v setpriv >/dev/null || skip "no setpriv(1)"
	command -v prlimit >/dev/null || skip "no prlimit(1)"
	run_then_kill thread_attrs8 nofile
	cmd_refused "restart with RLIMIT_NOFILE 4096/4096, without CAP_SYS_RESOURCE" \
		"pid [0-9]+.*cannot set RLIMIT_NOFILE back to 20000/20000: the restart's hard limit is 4096 \(raise it, or restart with privilege\)" \
		prlimit --nofile=4096:4096 setpriv --inh-caps=-sys_resource --bounding-set=-sys_resource \
		"$COHORT" restart "$GNAME" --images "$IMG"
	[ -s "$TD/refused.out" ] && fail "the failed restart ran the program: $(first_line "$TD/refused.out")"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}
