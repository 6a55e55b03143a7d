# tests/cases/nokill.sh - sourced by tests/run.sh.

# checkpoints without --kill: the program must go on unharmed; afterwards a
# restart of the last generation must also produce the rest of the output
t_nokill() {
	prog_cmd heap_growth
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 3 run0
	ckpt_or_fail "checkpoint 1 (no --kill)" "$GNAME" 1
	wait_lines 5 run0
	ckpt_or_fail "checkpoint 2 (no --kill)" "$GNAME" 2
	bg_wait run0
	final_check 0 "$RC" run0 run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	check_suffix run1 run0 || fail "restart of generation 2 after the program ended: wrong output"
	[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart exit status $RC"; }
}
