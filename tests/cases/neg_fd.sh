# tests/cases/neg_fd.sh - sourced by tests/run.sh: descriptors cohort
# cannot save make the checkpoint fail cleanly, naming them.

# negative: a socket fd makes the checkpoint fail cleanly; the program goes on
t_neg_unsupported_fd() {
	prog_cmd unsupported_fd
	straight_start 0 "${PCMD[@]}"
	rm -f "$TT/unsupported_fd.info"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_for "the program's $TT/unsupported_fd.info" test -s "$TT/unsupported_fd.info"
	local pid fd0 fd1 hp pids
	read -r pid fd0 fd1 <"$TT/unsupported_fd.info"
	# the program may run in a pid namespace: accept its own pid or the host pid
	pids=$pid
	for hp in $(sort -u "$TD/pids"); do
		[ "$(readlink "/proc/$hp/exe" 2>/dev/null)" = "$BIN/unsupported_fd" ] && pids="$pids|$hp"
	done
	wait_lines 2 run0
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --kill >"$TD/ck.out" 2>"$TD/ck.err"
	local rc=$?
	note_file "checkpoint stderr" "$TD/ck.err" 4
	[ "$rc" != 0 ] || fail "checkpoint of a process with a socket succeeded"
	[ "$rc" != 124 ] || fail "checkpoint timed out"
	grep -E "(^|[^0-9])($pids)([^0-9]|$)" "$TD/ck.err" | grep -i socket |
		grep -qiE "fd[^0-9]{0,8}($fd0|$fd1)([^0-9]|$)" ||
		fail "checkpoint error does not name the pid ($pids), fd $fd0 or $fd1 and 'socket': $(first_line "$TD/ck.err")"
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program died after the failed checkpoint (status $RC)"; }
	bg_wait run0
	final_check 0 "$RC" run0 run0
	# nothing usable may have been committed
	timeout -k 5 20 "$COHORT" restart "$GNAME" --images "$IMG" >"$TD/rs.out" 2>"$TD/rs.err" </dev/null &&
		fail "restart succeeded although the only checkpoint failed"
	return 0
}

# a descriptor in flight on a Unix socket of a kind cohort cannot restore
# (/dev/null, a character device: descriptors in flight of the kinds it
# captures are tests/cases/unix.sh's): the checkpoint fails naming it,
# nothing is committed, and the program finishes as a straight run does
t_neg_scm_rights() {
	prog_cmd scm_rights
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" sent # then the descriptor is in flight for 2 s
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --kill >"$TD/ck.out" 2>"$TD/ck.err"
	local rc=$?
	note_file "checkpoint stderr" "$TD/ck.err" 3
	[ "$rc" != 0 ] || fail "checkpoint with a descriptor in flight succeeded"
	grep -q 'SCM_RIGHTS' "$TD/ck.err" || fail "the error does not name the descriptor in flight: $(first_line "$TD/ck.err")"
	[ ! -d "$IMG/$GNAME/gen-000001" ] || fail "a generation was committed"
	bg_wait run0
	final_check 0 "$RC" run0 run0
}
