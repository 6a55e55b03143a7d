# tests/cases/uid.sh - sourced by tests/run.sh: processes that change their
# credentials inside the group (a server that drops root, a setuid step
# before an exec), and processes of another uid at the control socket.
# Both need root: cohort run as root, the group's processes dropping to
# uid 65534.

ALL_TESTS+=(uid_drop)

# uid_setup: root only; the dropped processes must reach the control socket
# and the agent, but the harness keeps its work directory 0700.
uid_setup() {
	[ "$(id -u)" = 0 ] || skip "needs root (the group's processes change to uid 65534)"
	chmod 711 "$WORK" "$TD"
}

# uid_drop: a child that drops to 65534 (distinct real, effective, saved and
# fs ids, two supplementary groups, a second thread) and one that drops and
# execs, beside a parent that stays root; through live checkpoints (full,
# incremental, --stop) and checkpoint --kill + restart rounds (the first
# from compressed images, which the restorers read through FIFOs), the output
# compared with a straight run (the program checks every id of every thread
# at every step).
t_uid_drop() {
	uid_setup
	prog_cmd uid_drop
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 0.5
	ckpt_or_fail "checkpoint 1 (live)" "$GNAME" 1
	sleep 0.3
	ckpt_or_fail "checkpoint 2 (live, --incremental)" "$GNAME" 2 --incremental
	sleep 0.3
	ckpt_or_fail "checkpoint 3 (--kill --compress)" "$GNAME" 3 --kill --compress
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	sleep 0.4
	ckpt_or_fail "checkpoint 4 (live, --stop, after restart)" "$GNAME" 4 --stop
	sleep 0.3
	ckpt_or_fail "checkpoint 5 (--kill, after restart)" "$GNAME" 5 --kill
	bg_wait run1
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}
