# tests/cases/rundir.sh - sourced by tests/run.sh: the run directory (where
# each running group has its control socket) cannot be taken over by
# another user (issue 12).
#   rundir_symlink   a symbolic link where the run directory would be (to a
#                    directory of root's, mode 0755): `cohort run`, `list`
#                    and `status` refuse it in one line, and the link's
#                    target keeps its mode (it was chmod'ed 0700 before)
#   rundir_foreign   a run directory made first by another user: refused
#                    in one line by run, list and status
#   rundir_fake_sock a control socket served by another user where a
#                    group's would be: checkpoint, status and kill refuse
#                    to talk to it (one line naming its uid), and it hears
#                    nothing; `list` does not show it; the default run
#                    directory of root is /run/cohort (root's own)
RD_USER=nobody

t_rundir_symlink() {
	mkdir -p "$TD/target"
	chmod 755 "$TD/target"
	ln -s "$TD/target" "$TD/link"
	local why="run directory $TD/link.*(symbolic link|not a directory)"
	COHORT_RUN_DIR=$TD/link cmd_refused "run" "$why" "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/true
	COHORT_RUN_DIR=$TD/link cmd_refused "list" "$why" "$COHORT" list
	COHORT_RUN_DIR=$TD/link cmd_refused "status" "$why" "$COHORT" status "$GNAME"
	[ "$(stat -c %a "$TD/target")" = 755 ] || fail "the link's target is mode $(stat -c %a "$TD/target") now, not 755"
	[ -z "$(ls -A "$TD/target")" ] || fail "something was made in the link's target: $(ls -A "$TD/target")"
}

t_rundir_foreign() {
	id "$RD_USER" >/dev/null 2>&1 || skip "no user $RD_USER"
	mkdir -p "$TD/theirs"
	chown "$RD_USER" "$TD/theirs"
	chmod 700 "$TD/theirs"
	local why="run directory $TD/theirs belongs to uid [0-9]+, not to you"
	COHORT_RUN_DIR=$TD/theirs cmd_refused "run" "$why" "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/true
	COHORT_RUN_DIR=$TD/theirs cmd_refused "list" "$why" "$COHORT" list
	COHORT_RUN_DIR=$TD/theirs cmd_refused "status" "$why" "$COHORT" status "$GNAME"
}

t_rundir_fake_sock() {
	id "$RD_USER" >/dev/null 2>&1 || skip "no user $RD_USER"
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	local fake=$COHORT_RUN_DIR/$GNAME
	chmod 711 "$WORK" "$TD" "$COHORT_RUN_DIR"
	mkdir -p "$fake"
	chown "$RD_USER" "$fake"
	: >"$TD/heard"
	chmod 666 "$TD/heard"
	# a server of another user's that answers every request with a forged success
	bg_start fake runuser -u "$RD_USER" -- "$PYTHON" -c '
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sys.argv[1]); s.listen(8)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    try:
        text = b"generation 1 of the group (full): forged"
        c.send(struct.pack("=IIqqqqII", 48, 0, 0, 0, 0, 0, len(text), 0) + text)
        data = c.recv(70000)
        if data:
            open(sys.argv[2], "a").write("%d bytes\n" % len(data))
    except OSError:
        pass
    c.close()
' "$fake/ctl.sock" "$TD/heard"
	wait_line "$TD/fake.out" listening
	local why="$fake/ctl.sock is served by uid [0-9]+ \(pid [0-9]+\), not by you or root"
	cmd_refused "checkpoint" "$why" "$COHORT" checkpoint "$GNAME" --kill
	cmd_refused "status" "$why" "$COHORT" status "$GNAME"
	cmd_refused "kill" "$why" "$COHORT" kill "$GNAME"
	timeout -k 5 "$TMO" "$COHORT" list >"$TD/list.out" 2>"$TD/list.err"
	grep -q "$GNAME" "$TD/list.out" && fail "list shows the fake group"
	[ ! -s "$TD/heard" ] || fail "the fake coordinator heard a request: $(cat "$TD/heard")"
	kill "$(cat "$TD/fake.pid")" 2>/dev/null
	# root's own run directory by default
	env -u COHORT_RUN_DIR "$COHORT" list >/dev/null 2>"$TD/deflist.err" ||
		fail "list with the default run directory: $(first_line "$TD/deflist.err")"
	bg_start def env -u COHORT_RUN_DIR "$COHORT" run --name "$GNAME-def" --images "$IMG" -- /bin/sh -c 'echo up; exec sleep 600'
	wait_line "$TD/def.out" up
	[ -S "/run/cohort/$GNAME-def/ctl.sock" ] || fail "no /run/cohort/$GNAME-def/ctl.sock (root's default run directory)"
	env -u COHORT_RUN_DIR "$COHORT" kill "$GNAME-def" >/dev/null 2>&1
	bg_wait def
}
