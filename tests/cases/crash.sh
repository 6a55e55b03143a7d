# tests/cases/crash.sh - sourced by tests/run.sh: a checkpoint without
# --kill, then the whole group SIGKILLed; the restart must go on from the
# checkpoint.

# crash and restart: a checkpoint WITHOUT --kill, the program runs on for a
# second (its files change), then the whole group is killed with SIGKILL
# (`cohort kill --signal KILL`); the restart must find the files the program
# had open for writing as they were at the checkpoint (file_crash checks them
# against its memory at every step), print exactly the rest of the native
# output from the checkpointed step, and leave the files as the native run did
t_file_crash() {
	prog_cmd file_crash
	straight_start 0 "${PCMD[@]}"
	crash_flow 10 10
	local f
	for f in log state; do
		[ -f "$TD/straight.tmp/file_crash.$f" ] || fail "native run left no file_crash.$f"
		cmp -s "$TT/file_crash.$f" "$TD/straight.tmp/file_crash.$f" || fail "file_crash.$f differs from the native run's at the end"
	done
}

# the same crash over deleted_busy, which rewrites a file it has unlinked as
# fast as it can: a checkpoint without --kill, the program runs on and
# changes it, SIGKILL, restart; the deleted file must come back as it was at
# the checkpoint, which deleted_busy checks against its memory at once.  (The
# image writer reads that content while the program is still parked; a writer
# that read it just after the release would mostly go unseen here, as it
# reads within a millisecond of the fork.)
t_deleted_crash() {
	prog_cmd deleted_busy
	straight_start 0 "${PCMD[@]}"
	crash_flow 5 8
}

# crash_flow N1 N2: run PCMD, checkpoint without --kill once it has printed
# N1 lines, SIGKILL the group once it has printed N2 more (it must have made
# progress and not finished), then the restart must print exactly the rest
# of the straight run and exit 0.  The program's gates (common.h) keep
# that order on a busy machine: it waits (file_crash) or rewrites on
# (deleted_busy) a few steps past N1 lines until the file "checkpointed"
# exists, made once the checkpoint is taken, and at its end, before its
# RESULT line, until "end", made before the restart.
crash_flow() {
	local n1 n2
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines "$1" run0
	ckpt_or_fail "checkpoint (no --kill)" "$GNAME" 1
	: >"$TT/checkpointed"
	n1=$(grep -c '^step ' "$TD/run0.out")
	wait_lines $(($(out_lines run0) + $2)) run0
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) before the crash: $(first_line "$TD/run0.err")"; }
	timeout -k 5 "$TMO" "$COHORT" kill "$GNAME" --signal KILL >"$TD/kill.out" 2>"$TD/kill.err" ||
		{ note_file "cohort kill stderr" "$TD/kill.err"; fail "cohort kill --signal KILL failed: $(first_line "$TD/kill.err")"; }
	bg_wait run0
	[ "$RC" != 124 ] || fail "run did not end after cohort kill --signal KILL"
	[ "$RC" != 0 ] || fail "run exited 0 after cohort kill --signal KILL"
	grep -q '^RESULT ' "$TD/run0.out" && fail "the program finished before the crash"
	n2=$(grep -c '^step ' "$TD/run0.out")
	[ "$n2" -gt "$n1" ] || fail "no progress between the checkpoint and the crash ($n1 steps, then $n2)"
	: >"$TT/end"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	check_suffix run1 run0 || { [ "$RC" != 0 ] && fail "restart after the crash: status $RC: $(first_line "$TD/run1.err")"; fail "restart after the crash: wrong output"; }
	[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart after the crash: status $RC: $(first_line "$TD/run1.err")"; }
}
