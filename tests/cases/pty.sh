# Pseudo-terminals the group opens itself, in its own devpts
# (src/kinds/pty.c; issue 13).
#   pty_self       tests/progs/pty_self.c (a pty, a session with it as its
#                  controlling terminal, its foreground group, settings,
#                  packet mode, a second pty locked, bytes queued both ways)
#                  through the standard flow; `cohort inspect` of its first
#                  generation names the pty records and descriptors
#   pty_self_live  the same through two live checkpoints, then
#                  checkpoint --kill and a restart
#   pty_unprivileged  pty_self through the standard flow by user nobody:
#                  without CAP_SYS_ADMIN the queued bytes go back by
#                  writing them from the other side (no TIOCSTI), and the
#                  slave, in exclusive mode, is read through the group's
#                  own descriptor (unprivileged.sh: unpriv_setup)
#   pty_script     bash inside script(1) inside the group, driven on
#                  terminals (tests/real/script_bash.steps)
#   pty_tmux       bash inside tmux inside the group, the server's socket in
#                  the test directory (a listening Unix socket, unix.c)
# Sourced by tests/run.sh.

t_pty_self() {
	std pty_self 0 12 12
	# inspect names the records and the descriptors: the pty (its index, settings, session and
	# foreground: pids 3 and 4 in the group), the locked one, the slave's object, both kinds of descriptor
	"$COHORT" inspect "$(gen_dir "$GNAME" 1)" >"$TD/insp.out" 2>&1 || fail "inspect: $(first_line "$TD/insp.out")"
	local re
	for re in ' pty +pty [0-9]+: /dev/pts/0, 30x100, canonical, echo, packet mode, exclusive, terminal of session 3, foreground 4$' \
		' pty +pty [0-9]+: /dev/pts/1, .*, locked$' ' object +pty slave [0-9]+: /dev/pts/0 of pty [0-9]+, read-write$' \
		' descriptor +fd 3 pty master flags ' ' descriptor +fd 0 pty slave flags '; do
		grep -qE "$re" "$TD/insp.out" || { note_file "inspect" "$TD/insp.out" 60; fail "inspect shows no line matching '$re'"; }
	done
}

t_pty_self_live() { steps_live_flow pty_self 12; }

t_pty_unprivileged() {
	unpriv_setup pty_self
	flow_standard 0 12 12 pipe "$U/bin/pty_self"
}

t_pty_script() {
	need_cmd bash
	need_cmd script
	real_pty script_bash.steps
}

t_pty_tmux() {
	need_cmd bash
	need_cmd tmux
	# the steps name the server's socket, in this test's directory
	cat >"$TD/tmux.steps" <<STEPS
start env TERM=xterm tmux -S $TD/tmux.sock -f /dev/null new-session "bash --norc --noprofile -i"
send PS1='P''> '; x=41; echo "set:\$x"\r
expect set:41
expect P> 
kill
restart
send x=\$((x + 1)); echo "x:\$x"\r
expect x:42
send exit\r
exit 0
STEPS
	real_pty "$TD/tmux.steps"
}
