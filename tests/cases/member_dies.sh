# tests/cases/member_dies.sh - sourced by tests/run.sh.

md_noticed() { grep -q 'worker [0-9] killed' "$TD/run1.err" || ! bg_alive run1; }

# a member is killed from outside between checkpoints: after the first
# restart, one of member_dies' 3 workers (found with `cohort status --json`)
# gets SIGKILL; the parent reaps it, says so on stderr and respawns it (its
# stdout is the same as without the kill); the next checkpoint --kill and
# restart must still work.  The program waits (common.h's gates) before
# its last step until the worker is killed ("killed"), and before its
# workers quit until checkpoint 2 is taken ("end"): on a busy machine its
# steps ran out before the test had killed the worker (its workers gone:
# "cannot kill worker 4", or its host pid another process's).
t_member_dies() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found (needed to read cohort status --json)"
	prog_cmd member_dies
	straight_start 0 "${PCMD[@]}"
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 4 run0
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) before the first checkpoint: $(first_line "$TD/run0.err")"; }
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0

	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	# (held before its last step: no more lines until the kill)
	AT_END_FILE=$TT/at-killed wait_lines $(($(out_lines run0) + 1)) run0 run1
	group_status
	local victim vpid vhost
	# the program is the process whose parent is the group's init (pid 1);
	# its workers are its children: take the second one by in-group pid
	victim=$("$PYTHON" - "$TD/status.json" 2>"$TD/victim.err" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ps = [p for p in d["processes"] if p.get("state") != "zombie"]
main = [p for p in ps if p["ppid"] == 1]
assert len(main) == 1, "%d processes with ppid 1" % len(main)
workers = sorted((p for p in ps if p["ppid"] == main[0]["pid"]), key=lambda p: p["pid"])
assert len(workers) == 3, "%d workers" % len(workers)
print(workers[1]["pid"], workers[1]["host_pid"])
PY
	) || { note_file "cohort status --json" "$TD/status.json" 3; note_file "error" "$TD/victim.err" 3; fail "cannot find the 3 workers in cohort status --json"; }
	read -r vpid vhost <<<"$victim"
	[ "$(readlink "/proc/$vhost/exe" 2>/dev/null)" = "$BIN/member_dies" ] ||
		fail "host pid $vhost (in-group pid $vpid) does not run $BIN/member_dies"
	kill -9 "$vhost" || fail "cannot kill worker $vpid (host pid $vhost)"
	: >"$TT/killed"
	wait_for "the program's notice that worker $vpid was killed (or its end)" md_noticed
	bg_alive run1 || { bg_wait run1; note_file "restart 1 stderr" "$TD/run1.err"; fail "program ended (status $RC) after worker $vpid was killed: $(first_line "$TD/run1.err")"; }
	# a step more: the worker has been respawned (or the program is at its
	# end gate, past its last step, which the new worker answered)
	AT_END_FILE=$TT/at-end wait_lines $(($(out_lines run0 run1) + 1)) run0 run1
	ckpt_or_fail "checkpoint 2 (--kill, after a worker was killed and respawned)" "$GNAME" 2 --kill
	bg_wait run1
	: >"$TT/end"

	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}
