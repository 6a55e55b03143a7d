# The agent is invisible while the program runs: no descriptor of its own
# in the program's table, no thread of its own, so that what a program
# sees of itself, closes, dup2()s over or waits for is what it would be
# without cohort.  Sourced by tests/run.sh (t_NAME functions).

# live_flow PROG EXP_RC S1 S2 S3 S4 S5: native run, then under cohort
#   run, sleep S1, checkpoint (live), sleep S2, checkpoint (live),
#   sleep S3, checkpoint --kill -> restart, sleep S4, checkpoint (live),
#   sleep S5, checkpoint --kill -> restart to the end;
# the pieces of output must make the native output, the status the native one.
live_flow() {
	local prog=$1 exp_rc=$2 s1=$3 s2=$4 s3=$5 s4=$6 s5=$7
	prog_cmd "$prog"
	straight "$exp_rc" "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep "$s1"
	ckpt_or_fail "checkpoint 1 (live)" "$GNAME" 1
	sleep "$s2"
	ckpt_or_fail "checkpoint 2 (live)" "$GNAME" 2
	sleep "$s3"
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) before checkpoint 3: $(first_line "$TD/run0.err")"; }
	ckpt_or_fail "checkpoint 3 (--kill)" "$GNAME" 3 --kill
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	sleep "$s4"
	ckpt_or_fail "checkpoint 4 (live, after the restart)" "$GNAME" 4
	sleep "$s5"
	bg_alive run1 || { bg_wait run1; note_file "restart stderr" "$TD/run1.err"; fail "restarted program ended (status $RC) before checkpoint 5: $(first_line "$TD/run1.err")"; }
	ckpt_or_fail "checkpoint 5 (--kill, after the restart)" "$GNAME" 5 --kill
	bg_wait run1
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check "$exp_rc" "$RC" run2 run0 run1 run2
}

# /proc/self/fd, fcntl(F_GETFD) over every number, /proc/self/task and
# Threads: in /proc/self/status show exactly the descriptors the program
# opened and the threads it started, before, between and after live
# checkpoints and restarts
t_hidden_view() { live_flow hidden_view 0 0.4 0.3 0.3 0.4 0.3; }

# dup2() onto 1000..1010 and then a raw close_range(3, ~0U) (no wrapper
# sees it): the program keeps its high descriptors, finds nothing else
# open, and is checkpointed (live and --kill) and restarted in both phases
t_dup2_high() { live_flow dup2_high 0 0.3 1.3 0.3 0.3 0.3; }

# every thread of a process leaves with SYS_exit: the process ends and its
# parent's waitpid() returns (a child of the program, before and after the
# checkpoints), and `cohort restart` returns the program's own status (3,
# its last thread's) like a native run
t_sys_exit_all() { live_flow sys_exit_all 3 0.5 0.3 0.2 0.3 0.2; }

# A pre-copy reads the memory while the program runs, for hundreds of ms:
# no thread of the agent's stays for it (the manager leaves after ARMED and
# another parks the program).  thread_watch lists /proc/self/task without
# pause; its longest stretch with a thread it did not start must be well
# under the pre-copies' length (with a manager that stayed: about equal).
TEST_TIMEOUTS[precopy_no_thread]=120
t_precopy_no_thread() {
	local i k longest pre=0 p
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "$BIN/thread_watch" 384
	for ((i = 0; i < 600; i++)); do
		grep -qx ready "$TD/run0.out" 2>/dev/null && break
		bg_alive run0 || break
		sleep 0.05
	done
	grep -qx ready "$TD/run0.out" || fail "thread_watch did not get ready: $(first_line "$TD/run0.err")"
	for k in 1 2; do
		timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --json >"$TD/ck$k.json" 2>"$TD/ck$k.err" ||
			fail "checkpoint $k: $(first_line "$TD/ck$k.err")"
		p=$("$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(int(d["phases_ms"].get("pre-copying", 0)) if d.get("precopied") else 0)' "$TD/ck$k.json")
		((p > pre)) && pre=$p
	done
	((pre >= 100)) || fail "the pre-copies took at most $pre ms: too short to tell (a larger program is needed)"
	timeout -k 5 "$TMO" "$COHORT" kill "$GNAME" --signal USR1 >/dev/null 2>&1 || fail "cohort kill --signal USR1 failed"
	for ((i = 0; i < 400; i++)); do
		grep -q '^watch ' "$TD/run0.out" && break
		sleep 0.05
	done
	longest=$(awk '/^watch / { printf "%d", $3 }' "$TD/run0.out")
	[ -n "$longest" ] || fail "thread_watch did not report"
	note "a thread not the program's seen for at most $longest ms; longest pre-copy $pre ms"
	((longest * 3 < pre)) || fail "a thread not the program's was seen for $longest ms during pre-copies of up to $pre ms"
	timeout -k 5 "$TMO" "$COHORT" kill "$GNAME" >/dev/null 2>&1
	bg_wait run0
	[ "$RC" = 0 ] || fail "thread_watch ended with status $RC: $(first_line "$TD/run0.err")"
}
