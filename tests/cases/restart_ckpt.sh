# tests/cases/restart_ckpt.sh - sourced by tests/run.sh.
#   ckpt_while_restoring  a checkpoint asked for while the group is still
#                         being restored (the coordinator answers status,
#                         its processes are not all back yet) waits until
#                         they are and is taken, instead of failing with
#                         "is still being restored" (mem_many failed so on
#                         a busy machine); the program then runs on to the
#                         straight run's output
t_ckpt_while_restoring() {
	need_prog bigmem
	prog_cmd bigmem
	# it waits for go.1 at its end: the third checkpoint must find it running on a busy machine
	PCMD=(/bin/bash -c '"$0" 192 && while [ ! -e "$COHORT_TEST_TMP/go.1" ]; do sleep 0.05; done' "${PCMD[@]}")
	: >"$TT/go.1"
	straight_start 0 "${PCMD[@]}"
	rm -f "$TT/go.1"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	# as soon as the coordinator answers, whatever its processes are doing
	local i
	for ((i = 0; i < 400; i++)); do
		"$COHORT" status "$GNAME" >"$TD/st.out" 2>/dev/null && break
		sleep 0.02
	done
	note "status when the checkpoint was asked for: $(grep -o 'restoring\|running' "$TD/st.out" | head -n 1)"
	ckpt_or_fail "checkpoint 2 (while restoring)" "$GNAME" 2
	ckpt_or_fail "checkpoint 3 (--kill)" "$GNAME" 3 --kill
	bg_wait run1
	: >"$TT/go.1"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

# coordinator_killed: `kill -9` of the coordinator (`cohort run`, then
# `cohort restart`) ends the whole group at once: nothing of it is left
# (it ran under the subreaper tool, which lists what outlives the
# command), and the generation it had committed restarts to the straight
# run's output
t_coordinator_killed() {
	local loop='echo line 0; echo line 1; while [ ! -e "$COHORT_TEST_TMP/go.1" ]; do sleep 0.05; done; echo line 2; echo RESULT done'
	local tag cmd
	: >"$TT/go.1"
	straight 0 /bin/bash -c "$loop"
	rm -f "$TT/go.1"
	for tag in run0 run1; do
		if [ $tag = run0 ]; then
			bg_start $tag "$BIN/subreaper" "$TD/$tag.left" "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/bash -c "$loop"
			wait_line "$TD/$tag.out" "line 1"
			ckpt_or_fail "checkpoint (live)" "$GNAME" 1
		else
			bg_start $tag "$BIN/subreaper" "$TD/$tag.left" "$COHORT" restart "$GNAME" --images "$IMG"
			wait_ready "$GNAME" $tag
		fi
		local sr coord
		sr=$(pgrep -x subreaper -P "$(cat "$TD/$tag.pid")")
		sr=${sr:-$(cat "$TD/$tag.pid")} # (bg_start may have exec'd it)
		coord=$(pgrep -o -P "$sr")
		[ -n "$coord" ] || fail "$tag: no coordinator under the subreaper"
		kill -9 "$coord"
		bg_wait $tag
		[ -f "$TD/$tag.left" ] || fail "$tag: the subreaper wrote no list"
		[ ! -s "$TD/$tag.left" ] || fail "$tag: the coordinator was killed, and left: $(tr '\n' ' ' <"$TD/$tag.left")"
	done
	: >"$TT/go.1"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run2
}
