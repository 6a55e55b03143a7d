# tests/cases/incr_remap.sh - sourced by tests/run.sh.

# a region moved (mremap) into a hole of a tracked region between a full and
# an incremental checkpoint: its pages were not written since, but they are
# not the pages the parent image holds there.  The restart goes through the
# chain (no full-N) and must print what a straight run prints.
t_incr_remap() {
	prog_cmd incr_remap
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" filled # (it moves the region 2 s later)
	ckpt_or_fail "checkpoint 1 (full)" "$GNAME" 1
	wait_line "$TD/run0.out" moved
	ckpt_or_fail "checkpoint 2 (--incremental --kill)" "$GNAME" 2 --incremental --kill
	grep -q '"kind":"incremental"' "$TD/ck2.json" || fail "checkpoint 2 is not incremental: $(cat "$TD/ck2.json")"
	bg_wait run0
	rm -rf "$IMG/$GNAME"/full-*
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	check_suffix run1 run0 || fail "restart of the incremental generation: wrong output"
	[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart exit status $RC: $(first_line "$TD/run1.err")"; }
}
