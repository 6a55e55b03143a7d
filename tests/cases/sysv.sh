# SysV IPC in the group's own IPC namespace (src/kinds/sysv.c, issue 13):
# tests/progs/sysv_ipc.c, a parent and two children sharing a semaphore
# set, a message queue (with messages waiting in it all along) and a shm
# segment they keep attached, and a segment nobody attaches.
#   sysv_ipc       the standard flow: checkpoint --kill and restart, twice;
#                  every value, message, byte, key and id as before
#   sysv_ipc_live  live checkpoints between and after the restarts
#                  (live_flow, agent_hidden.sh)
# tests/progs/sysv_undo.c: children hold semaphores taken with SEM_UNDO
# (semop, semtimedop from a thread, syscall(SYS_semop), kept across an
# exec; two threads take and give back a lock all along; one adjustment
# cleared by the parent's SETVAL, one on a set the parent removed) while
# the checkpoints come, and exit after the restarts without giving them
# back: the kernel must give back exactly theirs (src/agent/semundo.c).
#   sysv_undo       the standard flow (two checkpoint --kill and restarts)
#   sysv_undo_live  live checkpoints too
# Sourced by tests/run.sh.

t_sysv_ipc() { std sysv_ipc 0 8 8; }

t_sysv_ipc_live() { live_flow sysv_ipc 0 4 2 2 3 2; }

t_sysv_undo() { std sysv_undo 0 1 2; }

t_sysv_undo_live() { live_flow sysv_undo 0 1 0 0 2 0; }
# sysv_ipc_live once failed a full run with "pid 3 exited during the
# checkpoint" at checkpoint 4 (a child ending as the pause came): such an
# exit now makes the checkpoint try again (checkpoint.c, member_exited)
# instead of failing it.  20 runs four at a time passed since.

# While a snapshot writer writes the image, the program's SysV segment
# must not count it as attached (IPC_STAT shm_nattch): the snapshot is
# forked without the segments (mem.c, fork_advice).  sysv_nattch reads the
# count without pause through two live checkpoints and an incremental one;
# when the writer detached them itself it saw 2 in about 6 % of its reads,
# and still now and then on a busy machine (2 runs of 6, two at a time).
t_sysv_nattch() {
	local k
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "$BIN/sysv_nattch" 256
	wait_line "$TD/run0.out" ready
	for k in 1 2 3; do
		timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" $( ((k == 3)) && echo --incremental) \
			>"$TD/ck$k.out" 2>"$TD/ck$k.err" || fail "checkpoint $k: $(first_line "$TD/ck$k.err")"
	done
	watch_report run0 'nattch '
	grep -q '^nattch max 1 ' "$TD/run0.out" ||
		fail "the program saw its segment attached more often than it attached it: $(grep '^nattch ' "$TD/run0.out")"
	watch_end run0
}
