# The agent is invisible while the program runs: no descriptor of its own
# in the program's table, no thread of its own, so that what a program
# sees of itself, closes, dup2()s over or waits for is what it would be
# without cohort.  Sourced by tests/run.sh (t_NAME functions).

# live_flow PROG EXP_RC N1 N2 N3 N4 N5: native run (beside the rest), then
# under cohort, each checkpoint once the program has printed Ni more lines
# of stdout (wait_lines):
#   run, N1, checkpoint (live), N2, checkpoint (live),
#   N3, checkpoint --kill -> restart, N4, checkpoint (live),
#   N5, checkpoint --kill -> restart to the end;
# the pieces of output must make the native output, the status the native one.
live_flow() {
	local prog=$1 exp_rc=$2 n1=$3 n2=$4 n3=$5 n4=$6 n5=$7 k AT_END_FILE=$COHORT_TEST_TMP/at-end
	prog_cmd "$prog"
	straight_start "$exp_rc" "${PCMD[@]}"
	# held at its end until checkpoint 5 (common.h's end gate), as in flow_standard
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines "$n1" run0
	ckpt_or_fail "checkpoint 1 (live)" "$GNAME" 1
	wait_lines $((n1 + n2)) run0
	ckpt_or_fail "checkpoint 2 (live)" "$GNAME" 2
	wait_lines $((n1 + n2 + n3)) run0
	ckpt_or_fail "checkpoint 3 (--kill)" "$GNAME" 3 --kill
	bg_wait run0
	k=$(out_lines run0)
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	wait_lines $((k + n4)) run0 run1
	ckpt_or_fail "checkpoint 4 (live, after the restart)" "$GNAME" 4
	wait_lines $((k + n4 + n5)) run0 run1
	ckpt_or_fail "checkpoint 5 (--kill, after the restart)" "$GNAME" 5 --kill
	bg_wait run1
	: >"$COHORT_TEST_TMP/end"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check "$exp_rc" "$RC" run2 run0 run1 run2
}

# /proc/self/fd, fcntl(F_GETFD) over every number, /proc/self/task and
# Threads: in /proc/self/status show exactly the descriptors the program
# opened and the threads it started, before, between and after live
# checkpoints and restarts
t_hidden_view() { live_flow hidden_view 0 4 3 3 4 3; }

# dup2() onto 1000..1010 and then a raw close_range(3, ~0U) (no wrapper
# sees it): the program keeps its high descriptors, finds nothing else
# open, and is checkpointed (live and --kill) and restarted in both phases
# (checkpoint 2 after line 17, "raw close_range ... closed everything")
t_dup2_high() { live_flow dup2_high 0 3 14 3 3 3; }

# every thread of a process leaves with SYS_exit: the process ends and its
# parent's waitpid() returns (a child of the program, before and after the
# checkpoints), and `cohort restart` returns the program's own status (3,
# its last thread's) like a native run
t_sys_exit_all() { live_flow sys_exit_all 3 3 3 2 3 2; }

# A pre-copy reads the memory while the program runs, for hundreds of ms:
# no thread of the agent's stays for it (the manager leaves after ARMED and
# another parks the program).  thread_watch lists /proc/self/task without
# pause; its longest stretch with a thread it did not start must be well
# under the pre-copies' length (with a manager that stayed: about equal).
TEST_TIMEOUTS[precopy_no_thread]=120
t_precopy_no_thread() {
	local k longest pre=0 p
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "$BIN/thread_watch" 384
	wait_lines 1 run0 # "ready"
	grep -qx ready "$TD/run0.out" || fail "thread_watch did not get ready: $(first_line "$TD/run0.err")"
	for k in 1 2; do
		timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --json >"$TD/ck$k.json" 2>"$TD/ck$k.err" ||
			fail "checkpoint $k: $(first_line "$TD/ck$k.err")"
		p=$("$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(int(d["phases_ms"].get("pre-copying", 0)) if d.get("precopied") else 0)' "$TD/ck$k.json")
		((p > pre)) && pre=$p
	done
	((pre >= 100)) || fail "the pre-copies took at most $pre ms: too short to tell (a larger program is needed)"
	watch_report run0 'watch '
	longest=$(awk '/^watch / { printf "%d", $3 }' "$TD/run0.out")
	[ -n "$longest" ] || fail "thread_watch did not report"
	note "a thread not the program's seen for at most $longest ms; longest pre-copy $pre ms"
	((longest * 3 < pre)) || fail "a thread not the program's was seen for $longest ms during pre-copies of up to $pre ms"
	watch_end run0
}
