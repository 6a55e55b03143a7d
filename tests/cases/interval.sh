# tests/cases/interval.sh - sourced by tests/run.sh.

# iv_gens [N]: print the number of committed generations; with N, succeed if at least N
iv_gens() {
	local n
	n=$(ls -d "$IMG/$GNAME"/gen-*/manifest 2>/dev/null | wc -l)
	[ $# = 0 ] && echo "$n"
	[ "$n" -ge "${1:-0}" ]
}

# periodic checkpoints with --interval 1
t_interval() {
	prog_cmd interval
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" --interval 1 -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	# the time is the test here: two generations within 3.5 s
	local n t0=${EPOCHREALTIME/./}
	wait_for "two generations committed by --interval 1" iv_gens 2
	n=$(iv_gens)
	(((${EPOCHREALTIME/./} - t0) / 1000 <= 3500)) ||
		{ note_file "run stderr" "$TD/run0.err"; fail "two generations took $(((${EPOCHREALTIME/./} - t0) / 1000)) ms with --interval 1, more than 3.5 s"; }
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) too early: $(first_line "$TD/run0.err")"; }
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --kill >"$TD/ck.out" 2>"$TD/ck.err" ||
		{ note_file "checkpoint stderr" "$TD/ck.err"; fail "checkpoint --kill failed: $(first_line "$TD/ck.err")"; }
	bg_wait run0
	local m
	m=$(ls -d "$IMG/$GNAME"/gen-*/manifest 2>/dev/null | wc -l)
	[ "$m" -gt "$n" ] || fail "checkpoint --kill did not add a generation ($n before, $m after)"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}
