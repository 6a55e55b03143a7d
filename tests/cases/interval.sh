# tests/cases/interval.sh - sourced by tests/run.sh.

# periodic checkpoints with --interval 1
t_interval() {
	prog_cmd interval
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" --interval 1 -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 3.5
	local n
	n=$(ls -d "$IMG/$GNAME"/gen-*/manifest 2>/dev/null | wc -l)
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) too early: $(first_line "$TD/run0.err")"; }
	[ "$n" -ge 2 ] || { note_file "run stderr" "$TD/run0.err"; fail "only $n committed generation(s) after 3.5 s with --interval 1"; }
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
