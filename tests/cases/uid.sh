# tests/cases/uid.sh - sourced by tests/run.sh: processes that change their
# credentials inside the group (a server that drops root, a setuid step
# before an exec), and processes of another uid at the control socket.
# Both need root: cohort run as root, the group's processes dropping to
# uid 65534.

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
	local k
	prog_cmd uid_drop
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 6 run0
	ckpt_or_fail "checkpoint 1 (live)" "$GNAME" 1
	wait_lines 10 run0
	ckpt_or_fail "checkpoint 2 (live, --incremental)" "$GNAME" 2 --incremental
	wait_lines 14 run0
	ckpt_or_fail "checkpoint 3 (--kill --compress)" "$GNAME" 3 --kill --compress
	bg_wait run0
	merges_done
	k=$(out_lines run0)
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	wait_lines $((k + 6)) run0 run1
	ckpt_or_fail "checkpoint 4 (live, --stop, after restart)" "$GNAME" 4 --stop
	wait_lines $((k + 10)) run0 run1
	ckpt_or_fail "checkpoint 5 (--kill, after restart)" "$GNAME" 5 --kill
	bg_wait run1
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

# uid_stranger: the control socket can be reached by anyone when cohort
# runs as root (a dropped process must reach it), so what a stranger can
# do is connect.  One of uid 65534 outside the group (the uid of the
# group's own dropped processes) is hung up on whatever it says (register,
# attach, ask for a pagemap, status, checkpoint, kill), and the group runs
# on unharmed: checkpoint --kill and restart, the output compared with a
# straight run.  Inside a group, a process of another uid may register but
# not make requests, and the coordinator opens its own pagemap for it
# (not its mem).
t_uid_stranger() {
	uid_setup
	prog_cmd uid_drop
	need_prog uid_stranger
	local sock=$COHORT_RUN_DIR/$GNAME/ctl.sock
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	[ "$(stat -c %a "$COHORT_RUN_DIR/$GNAME")" = 711 ] || fail "the group's run directory is not 0711 under root"
	timeout -k 5 "$TMO" "$BIN/uid_stranger" outside "$sock" >"$TD/outside.out" 2>"$TD/outside.err"
	local rc=$?
	note_file "the stranger" "$TD/outside.out" 10
	note_file "the stranger's stderr" "$TD/outside.err" 3
	[ $rc = 0 ] || fail "a stranger of uid 65534 was not turned away: $(grep -v ', ok$' "$TD/outside.out" | head -n 1)$(first_line "$TD/outside.err")"
	[ "$(grep -c ', ok$' "$TD/outside.out")" = 6 ] || fail "the stranger did not ask everything"
	bg_alive run0 || fail "the group ended after the stranger came"
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1

	GNAME=$GNAME-in
	bg_start in0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "$BIN/uid_stranger" inside
	bg_wait in0
	note_file "inside the group" "$TD/in0.out" 10
	[ "$RC" = 0 ] || fail "inside the group: status $RC: $(grep -vE ', ok$|^RESULT' "$TD/in0.out" | head -n 1)$(first_line "$TD/in0.err")"
	[ "$(grep -c 'ok$' "$TD/in0.out")" = 7 ] || fail "inside the group: not every question was asked"
}

# uid_forged: a process writes its own image, so one that dropped root must
# get nothing back from it that it did not have.  Child A's image (pid 3)
# rewritten, record checksum made good: claiming root's ids, it comes back
# with the ids the coordinator saw (the program checks them at every step);
# naming /etc/shadow for a file it had open, or a directory it may not
# enter as its working directory, the restart fails naming it, instead of
# the restorer opening it as root.
t_uid_forged() {
	uid_setup
	prog_cmd uid_drop
	need_prog uid_forge
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 6 run0
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	local g img k
	g=$(gen_dir "$GNAME" 1)
	img=$g/proc-3.img
	"$COHORT" inspect "$img" | grep -q 'uid 65534/65533/65532/65532' || fail "$img is not child A's"
	"$BIN/uid_forge" "$img" ids 2>"$TD/forge.err" || fail "cannot rewrite the image: $(first_line "$TD/forge.err")"
	"$COHORT" inspect "$img" >"$TD/inspect.out" 2>&1 || { note_file inspect "$TD/inspect.out" 3; fail "the rewritten image does not verify"; }
	grep -q 'uid 0/0/0/0 gid 0/0/0/0 groups 0 ' "$TD/inspect.out" || fail "the rewritten image does not claim root"
	k=$(out_lines run0)
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	wait_lines $((k + 6)) run0 run1
	bg_alive run1 || { bg_wait run1; note_file "restart 1 stderr" "$TD/run1.err"; fail "restarted from an image claiming root: $(first_line "$TD/run1.err")"; }
	ckpt_or_fail "checkpoint 2 (--kill, after restart)" "$GNAME" 2 --kill
	bg_wait run1

	g=$(gen_dir "$GNAME" 2)
	img=$g/proc-3.img
	cp -p "$img" "$TD/proc-3.img.kept"
	mkdir -m 700 "$TD/private"
	local what
	for what in "cwd $TD/private" "fd 20 /etc/shadow"; do
		cp -p "$TD/proc-3.img.kept" "$img"
		"$BIN/uid_forge" "$img" $what 2>"$TD/forge.err" || fail "cannot rewrite the image: $(first_line "$TD/forge.err")"
		timeout -k 5 "$TMO" "$COHORT" restart "$GNAME" --images "$IMG" >"$TD/bad.out" 2>"$TD/bad.err"
		local rc=$?
		note_file "restart with $what" "$TD/bad.err" 3
		[ $rc != 0 ] || fail "a restart from an image naming $what succeeded"
		[ ! -s "$TD/bad.out" ] || fail "the program ran on after its restart failed ($what)"
		grep -q "${what##* }.*errno 13: opened as its uid 65532" "$TD/bad.err" ||
			fail "the failed restart ($what) does not say why: $(first_line "$TD/bad.err")"
	done
	cp -p "$TD/proc-3.img.kept" "$img"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

# restore_child_damaged (found with uid_forged): the image of a process
# that is not init's child damaged, its restorer fails; the restart must end
# with its restorer's line naming the file, not wait for it for ever (its
# restored parent waits for the release and never reaps it).  Repaired,
# the generation restarts to the end.
t_restore_child_damaged() {
	prog_cmd procs_pipes
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 3 run0
	ckpt_or_fail "checkpoint --kill" "$GNAME" 1 --kill
	bg_wait run0
	local g img size off orig
	g=$(gen_dir "$GNAME" 1)
	img=$("$COHORT" inspect "$g" | sed -n 's/^process [0-9]* (parent \([0-9]*\)): \(proc-[0-9]*\.img\)$/\1 \2/p' |
		awk '$1 != 1 { print $2; exit }')
	[ -n "$img" ] || fail "no process of $g has a parent in the group"
	img=$g/$img
	size=$(stat -c %s "$img")
	off=$((size / 2))
	cp -p "$img" "$TD/kept.img"
	orig=$(od -An -tu1 -j "$off" -N 1 "$img" | tr -d ' \n')
	printf '%b' "\\0$(printf '%03o' $((orig ^ 255)))" | dd of="$img" bs=1 seek="$off" count=1 conv=notrunc status=none
	cmp -s "$img" "$TD/kept.img" && fail "could not damage $img"
	timeout -k 5 "$TMO" "$COHORT" restart "$GNAME" --images "$IMG" >"$TD/bad.out" 2>"$TD/bad.err"
	local rc=$?
	note_file "restart from the damaged image" "$TD/bad.err" 3
	[ $rc != 124 ] && [ $rc != 137 ] || fail "the restart did not end when the restore of $(basename "$img") failed"
	[ $rc != 0 ] || fail "a restart from a damaged image succeeded"
	grep -q "restore failed: .*$(basename "$img")" "$TD/bad.err" || fail "the failed restart does not name $(basename "$img"): $(first_line "$TD/bad.err")"
	cp -p "$TD/kept.img" "$img"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# thread_creds: one thread of a root process takes uid and gid 65534 by raw
# system calls (its threads' ids differ).  A checkpoint must be refused in
# one line naming the process and the thread, commit nothing, and leave the
# program running; once the thread has taken root's ids back (go.1),
# checkpoint --kill and restart must go through, the program checking
# both threads' ids at every step, and the output must be a straight run's.
t_thread_creds() {
	uid_setup
	prog_cmd thread_creds
	: >"$TT/go.1"
	straight_start 0 "${PCMD[@]}"
	rm -f "$TT/go.1"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" odd
	ckpt_refused run0 "threads of different ids" 'pid [0-9]+: its thread [0-9]+ runs with other uids'
	: >"$TT/go.1"
	wait_line "$TD/run0.out" 'step 3 ok'
	ckpt_or_fail "checkpoint (--kill, same ids)" "$GNAME" 1 --kill
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}
