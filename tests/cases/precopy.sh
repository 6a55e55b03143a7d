# tests/cases/precopy.sh - sourced by tests/run.sh: the pre-copy of a full
# image (src/cli/precopy.c, src/agent/dirty_wp.c) and the lean snapshot
# of its pause (src/agent/dirty_lean.c).

# killed_restart GEN WHAT: the group (run0) killed, its gate go.1 opened and
# generation GEN (WHAT) restarted: it must finish as the straight run did
killed_restart() {
	timeout -k 5 "$TMO" "$COHORT" kill "$GNAME" --signal KILL >"$TD/kill.out" 2>"$TD/kill.err" ||
		fail "cohort kill: $(first_line "$TD/kill.err")"
	bg_wait run0
	: >"$TT/go.1"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG" --generation "$1"
	bg_wait run1
	check_suffix run1 run0 || fail "restart of $2: wrong output"
	[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart of $2: status $RC: $(first_line "$TD/run1.err")"; }
}

# precopy_held_gap: the pause's snapshot leaves out the stretches nobody
# wrote since the pre-copy was armed, taking them from the pre-copy where
# the armed list of held pages has them, and as no page elsewhere.  A page
# in memory that the list lacks must be saved all the same, never left
# out as if it were not there: once (a numpy job, migrated) 2.3 MiB of a
# heap came back as zeros so.  COHORT_TEST_HELD_GAP makes the armed list
# lose the middle half of its longest range (progress_mem's 64 MiB, filled
# and then left alone until go.1); the restart from that checkpoint checks
# every page and must finish as the straight run does.
t_precopy_held_gap() {
	prog_cmd progress_mem
	PCMD+=(64)
	: >"$TT/go.1"
	straight_start 0 "${PCMD[@]}"
	straight_end
	rm -f "$TT/go.1"
	COHORT_TEST_HELD_GAP=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "filled 64 MiB"
	ckpt_or_fail "checkpoint 1" "$GNAME" 1
	local pre
	pre=$(json_fields "$TD/ck1.json" precopied) || fail "checkpoint --json: not JSON"
	[ "$pre" = 1 ] || skip "checkpoint 1 was not pre-copied (no write tracking here?)"
	killed_restart 1 "the pre-copied checkpoint"
}

# prepare_hold: registering new memory with the write tracking changes the
# memory map, so a member holds its threads a moment for it before the
# pause when it has enough new memory to be worth it (64 MiB: dirty_wp.c,
# prepare), and says how long: `prepare_hold_ms`.  The first checkpoint
# of a process with 96 MiB has all of it new: a hold, and an image as
# right as any (the program checks its memory after the restart).  The
# next, incremental, with nothing mapped since: no hold at all.
t_prepare_hold() {
	prog_cmd progress_mem
	PCMD+=(96)
	: >"$TT/go.1"
	straight_start 0 "${PCMD[@]}"
	straight_end
	rm -f "$TT/go.1"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "filled 96 MiB"
	group_status
	[ "$(json_fields "$TD/status.json" tracking)" = uffd-wp ] || skip "tracking is not uffd-wp here: nothing to register"
	ckpt_or_fail "checkpoint 1" "$GNAME" 1
	ckpt_or_fail "checkpoint 2" "$GNAME" 2 --incremental
	local h1 h2
	h1=$(json_fields "$TD/ck1.json" prepare_hold_ms) || fail "checkpoint 1 --json: not JSON"
	h2=$(json_fields "$TD/ck2.json" prepare_hold_ms) || fail "checkpoint 2 --json: not JSON"
	"$PYTHON" -c "import sys; sys.exit(not float(sys.argv[1]) > 0)" "$h1" ||
		fail "the first checkpoint registered the process's memory without a hold: prepare_hold_ms $h1"
	[ "$h2" = 0 ] || [ "$h2" = 0.0 ] ||
		fail "an incremental checkpoint with nothing new to register held the threads: prepare_hold_ms $h2"
	note "prepare_hold_ms: first $h1, incremental $h2"
	killed_restart 2 "the incremental checkpoint"
}
