# tests/cases/storm.sh - sourced by tests/run.sh: back-to-back checkpoints
# without --kill while the program changes fast, the last one --kill.

# checkpoint storm: back-to-back checkpoints without --kill while a shell
# loop starts and ends hundreds of processes (births, execs and exits meet
# every phase of the checkpoint).  Every one must commit; the last one ends
# the group (--kill) and the restart must print the rest of the straight run.
# (it ends at the fourth second, or at iteration 100, whichever comes first:
# 200 iterations take 1.6 s on a fast machine, and the restart must have
# some left to print)
t_ckpt_storm() { STORM_UNTIL="iteration 100 " storm shell_loop 4 200; }
# the same storm over fd_churn: close(0)/open and dup2 in a tight loop, which
# a descriptor the agent made while the program runs would disturb
t_fd_churn() { storm fd_churn 2; }
# a storm of snapshot checkpoints (each a pre-copied full image) over
# precopy_churn, whose two threads map, unmap, drop (MADV_DONTNEED), protect
# (PROT_NONE) and move (mremap) memory without pause and check every page;
# the restart must finish like the straight run, and with uffd-wp tracking
# the checkpoints must have been pre-copied (--json "precopied")
t_precopy_churn() {
	# (at least 4 checkpoints: one second on a busy machine held one, whose
	# pre-copy the churn can make fail, and the test had none to look at)
	# (300 iterations; the storm ends at the program's "halfway" line once
	# it has its 4, and the program churns scratch memory there, its gate
	# "halfway", until the storm is over: the restart has the other half to
	# run, however slow the machine.  With 1200 iterations and no gate, the
	# straight run alone took 35 s under load 11, past the test's 30.)
	STORM_MIN=4 STORM_UNTIL=halfway STORM_GATE=halfway STORM_CHECK=group_status storm precopy_churn 1 300
	local tracking
	tracking=$(json_fields "$TD/status.json" tracking) || fail "cohort status --json: not JSON"
	[ "$tracking" = uffd-wp ] || { note "tracking $tracking: no pre-copy expected"; return 0; }
	local f n=0
	for f in "$TD"/ck*.json; do
		[ "$(json_fields "$f" precopied)" -ge 1 ] 2>/dev/null && n=$((n + 1))
	done
	[ "$n" -ge 1 ] || fail "no checkpoint of the storm was pre-copied (--json \"precopied\")"
	note "pre-copied checkpoints: $n"
	# the storm's restart was from its last checkpoint (--kill: not pre-copied); now from
	# the first pre-copied one (each such restart runs the rest of the program: one is enough)
	for f in "$TD"/ck*.json; do
		f=${f##*/ck}
		f=${f%.json}
		[ "$(json_fields "$TD/ck$f.json" precopied)" -ge 1 ] 2>/dev/null || continue
		bg_start "rg$f" "$COHORT" restart "$GNAME" --images "$IMG" --generation "$f"
		bg_wait "rg$f"
		check_suffix "rg$f" run0 || fail "restart of pre-copied generation $f: wrong output"
		[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/rg$f.err"; fail "restart of pre-copied generation $f: status $RC: $(first_line "$TD/rg$f.err")"; }
		note "restarted from pre-copied generation $f"
		break
	done
}
# grow_inplace: two threads map regions and grow them in place (mremap
# without MREMAP_MAYMOVE) a page at a time, checking every page, while
# every checkpoint registers such new regions with the tracker.  A
# registration made from a reading of the memory map the program has
# changed since cut a region in two, and the program's next mremap of it
# failed (EFAULT).  Full checkpoints, each meeting 96 MiB of new memory
# (thread 0 maps it anew each cycle): registered in a hold of the threads
# (dirty_wp.c, prepare).  grow_inplace_small: incrementals after the
# first, without the 96 MiB: their few MiB of new regions are registered
# in the pause.
t_grow_inplace() { STORM_MIN=12 STORM_GATE=churn storm grow_inplace 2 40; }
t_grow_inplace_small() { STORM_MIN=12 STORM_GATE=churn STORM_ARGS=--incremental storm grow_inplace 2 40 small; }
# storm PROG SECONDS [ARGS...]: the checkpoints follow one another for
# SECONDS (the time is the test; STORM_MIN: at least that many).  The native
# run comes first, alone: these programs spin, and one beside the storm
# would only slow it.  The program under cohort waits at its end (the end
# gate, tests/progs/common.h) until the storm is over, however slow the
# machine: the storm never finds it gone, and its steps can be few.
# STORM_UNTIL: a line of the program's output (its start) that also ends
# the storm, so that on a fast machine the last checkpoint still comes
# before the program's end, and the restart has something left to print.
# STORM_GATE: a gate of the program's (common.h's t_gate, "$COHORT_TEST_TMP/NAME")
# opened with the end gate, once the storm's last checkpoint is taken.
storm() {
	local p=$1 secs=$2
	shift 2
	prog_cmd "$p"
	PCMD+=("$@")
	straight 0 "${PCMD[@]}"
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	# STORM_CHECK: a function that looks at the running group before the storm
	[ -z "${STORM_CHECK:-}" ] || "$STORM_CHECK"
	local gen=0 t_end=$((SECONDS + secs))
	# STORM_MIN: at least that many checkpoints, however long they take
	while [ $SECONDS -lt $t_end ] || [ $gen -lt "${STORM_MIN:-0}" ]; do
		bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "the group ended during the storm (status $RC), after $gen checkpoints: $(first_line "$TD/run0.err")"; }
		# STORM_ARGS: for every checkpoint but the first
		local args=()
		[ "$gen" = 0 ] || read -ra args <<<"${STORM_ARGS:-}"
		ckpt "$GNAME" $((gen + 1)) ${args[@]+"${args[@]}"} || { note_file "run stderr" "$TD/run0.err"; fail "checkpoint $((gen + 1)) of the storm failed: $CK_WHY"; }
		gen=$((gen + 1))
		[ -n "${STORM_UNTIL:-}" ] && [ "$gen" -ge "${STORM_MIN:-0}" ] &&
			grep -q "^$STORM_UNTIL" "$TD/run0.out" && break
	done
	# at its end gate already: the restart would have nothing to show
	[ ! -e "$COHORT_TEST_TMP/at-end" ] ||
		fail "the program reached its end during the storm, before the last checkpoint ($gen taken): too short for this machine"
	ckpt_or_fail "checkpoint $((gen + 1)) (--kill) after $gen" "$GNAME" $((gen + 1)) --kill
	bg_wait run0
	: >"$COHORT_TEST_TMP/end"
	[ -z "${STORM_GATE:-}" ] || : >"$COHORT_TEST_TMP/$STORM_GATE"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	check_suffix run1 run0 || fail "restart after $((gen + 1)) checkpoints: wrong output"
	[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart exit status $RC"; }
}
