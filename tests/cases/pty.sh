# Pseudo-terminals the group opens itself, in its own devpts
# (src/kinds/pty.c; issue 13).
#   pty_self       tests/progs/pty_self.c (a pty, a session with it as its
#                  controlling terminal, its foreground group, settings,
#                  packet mode, a second pty locked, bytes queued both ways)
#                  through the standard flow
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
#                  the test directory: only when named, since tmux's server
#                  listens on a Unix socket, which cohort refuses until that
#                  kind is captured
# Sourced by tests/run.sh.

t_pty_self() { std pty_self 0 0.6 0.6; }

t_pty_self_live() { steps_live_flow pty_self 12; }

t_pty_unprivileged() {
	local U COHORT=$COHORT IMG=$IMG
	unpriv_setup pty_self
	flow_standard 0 0.6 0.6 pipe "$U/bin/pty_self"
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
GROUP_TESTS+=(pty_tmux)
