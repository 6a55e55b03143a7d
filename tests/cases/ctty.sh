# tests/cases/ctty.sh - sourced by tests/run.sh.

# the controlling terminal: every run and restart on a terminal of its own
# (script(1) makes one); the program must keep having one and stay in its
# foreground across two checkpoint --kill + restart rounds
t_ctty() {
	command -v script >/dev/null || skip "script(1) not found"
	prog_cmd ctty
	local on_tty=(script -qec) k
	straight 0 "${on_tty[@]}" "${PCMD[*]}" /dev/null
	grep -q 'controlling terminal yes, foreground yes' "$TD/exp.out" || fail "no controlling terminal under script(1): $(head -c 200 "$TD/exp.out")"
	bg_start run0 "${on_tty[@]}" "$COHORT run --name $GNAME --images $IMG -- ${PCMD[*]}" /dev/null
	wait_ready "$GNAME" run0
	wait_lines 2 run0 # the first "step 10 ok"
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	k=$(out_lines run0)
	bg_start run1 "${on_tty[@]}" "$COHORT restart $GNAME --images $IMG" /dev/null
	wait_ready "$GNAME" run1
	wait_lines $((k + 1)) run0 run1
	ckpt_or_fail "checkpoint 2 (--kill, after restart)" "$GNAME" 2 --kill
	bg_wait run1
	bg_start run2 "${on_tty[@]}" "$COHORT restart $GNAME --images $IMG" /dev/null
	bg_wait run2
	# on the terminal, run and restart say that checkpoint --kill ended them: not the program's output
	local t
	for t in run0 run1; do
		grep -q "^cohort: group '$GNAME' ended by 'checkpoint --kill'" "$TD/$t.out" ||
			fail "$t: no line saying that checkpoint --kill ended the group"
		sed -i "/^cohort: group '$GNAME' ended by 'checkpoint --kill'/d" "$TD/$t.out"
	done
	final_check 0 "$RC" run2 run0 run1 run2
}
