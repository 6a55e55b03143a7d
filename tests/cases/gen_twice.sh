# tests/cases/gen_twice.sh - sourced by tests/run.sh.

# restart an older generation (twice) after a newer one exists.  The
# program waits at its end (common.h's end gate) until checkpoint 2 is
# taken: on a busy machine it ran its steps out first ("no running group").
t_gen_twice() {
	local AT_END_FILE=$TT/at-end
	prog_cmd tls_tids
	straight_start 0 "${PCMD[@]}"
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 3 run0
	ckpt_or_fail "checkpoint 1 (no --kill)" "$GNAME" 1
	wait_lines 5 run0
	ckpt_or_fail "checkpoint 2 (--kill)" "$GNAME" 2 --kill
	bg_wait run0
	: >"$TT/end"
	bg_start r1a "$COHORT" restart "$GNAME" --images "$IMG" --generation 1
	bg_wait r1a
	[ "$RC" = 0 ] || { note_file "restart --generation 1 stderr" "$TD/r1a.err"; fail "restart --generation 1: status $RC: $(first_line "$TD/r1a.err")"; }
	check_suffix r1a run0 || fail "restart --generation 1: wrong output"
	bg_start r1b "$COHORT" restart "$GNAME" --images "$IMG" --generation 1
	bg_wait r1b
	[ "$RC" = 0 ] || { note_file "second restart --generation 1 stderr" "$TD/r1b.err"; fail "second restart --generation 1: status $RC: $(first_line "$TD/r1b.err")"; }
	cmp -s "$TD/r1a.out" "$TD/r1b.out" || { check_suffix r1b run0; fail "second restart of generation 1 gave different output"; }
	bg_start r2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait r2
	final_check 0 "$RC" r2 run0 r2
}
