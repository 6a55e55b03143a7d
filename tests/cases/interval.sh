# tests/cases/interval.sh - sourced by tests/run.sh.

# iv_gens [N]: print the number of committed generations; with N, succeed if at least N
iv_gens() {
	local n
	n=$(ls -d "$IMG/$GNAME"/gen-*/manifest 2>/dev/null | wc -l)
	[ $# = 0 ] && echo "$n"
	[ "$n" -ge "${1:-0}" ]
}

# iv_spacing IV: consecutive generations committed by --interval IV are
# at least IV s apart: coord/loop.c's scheduler sleeps IV s after the reply
# to one timed checkpoint before it asks for the next (end to start).  A
# generation's times are its own, written by the checkpoint, so a busy
# machine only makes the gaps longer: its start is when its directory was
# made (.tmp-gen-N, made as it begins, renamed at the commit: the birth
# time), its end when its manifest was written (its last write, before the
# reply).  File times come from a coarse clock, up to a tick (<= 10 ms)
# behind: 10 ms of slack.  Without birth times (a file system that does not
# keep them) the weaker bound, from manifest to manifest.
iv_spacing() {
	local iv=$1 g prev_end='' born end gap
	for g in $(ls -d "$IMG/$GNAME"/gen-* | sort); do
		born=$(stat -c %.9W "$g") end=$(stat -c %.9Y "$g/manifest") || fail "cannot stat $g"
		[ "${born%%.*}" -gt 0 ] 2>/dev/null || born=$end
		if [ -n "$prev_end" ]; then
			gap=$(awk -v a="$prev_end" -v b="$born" 'BEGIN { printf "%d", (b - a) * 1000 }')
			note "$(basename "$g"): began $gap ms after the previous generation's manifest"
			[ "$gap" -ge $((iv * 1000 - 10)) ] ||
				fail "$(basename "$g") began $gap ms after the previous generation was written, less than --interval $iv s"
		fi
		prev_end=$end
	done
}

# periodic checkpoints with --interval 1: they keep coming (three, within
# the test's bound), each one interval after the previous one ended
# (iv_spacing), and the group ends as the straight run after a --kill and
# a restart.  The program waits at its end (common.h's end gate) until the
# --kill is taken: a busy machine may run its steps out before.
t_interval() {
	prog_cmd interval
	straight_start 0 "${PCMD[@]}"
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" --interval 1 -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local n
	wait_for "three generations committed by --interval 1" iv_gens 3
	n=$(iv_gens)
	iv_spacing 1
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) too early: $(first_line "$TD/run0.err")"; }
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --kill >"$TD/ck.out" 2>"$TD/ck.err" ||
		{ note_file "checkpoint stderr" "$TD/ck.err"; fail "checkpoint --kill failed: $(first_line "$TD/ck.err")"; }
	bg_wait run0
	: >"$TT/end"
	local m
	m=$(ls -d "$IMG/$GNAME"/gen-*/manifest 2>/dev/null | wc -l)
	[ "$m" -gt "$n" ] || fail "checkpoint --kill did not add a generation ($n before, $m after)"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}
