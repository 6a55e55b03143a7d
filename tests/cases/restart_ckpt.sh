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
	PCMD+=(192)
	straight 0 "${PCMD[@]}"
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
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}
