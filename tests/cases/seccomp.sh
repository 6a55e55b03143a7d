# tests/cases/seccomp.sh - sourced by tests/run.sh: seccomp filters (issue
# 11) checkpointed and restored, and the checkpoints refused while the
# program runs on: strict mode, a filter that forbids a system call of the
# agent's, filters a cohort without root cannot read.

# seccomp_filters: two filters (ERRNO for getcpu, the newest's errno
# winning; TRAP for sysinfo) over threads made before the first (TSYNC) and
# after the second, no_new_privs set; each thread checks at every step that
# its filtered calls fail exactly as before, the others work, and its
# NoNewPrivs, Seccomp and Seccomp_filters lines, through the standard flow
# (two rounds of checkpoint --kill and restart).  "all": the second filter
# with TSYNC too, so that every thread shares one chain (restored with
# TSYNC by the main thread).  Reading filters needs CAP_SYS_ADMIN: root.
t_seccomp_filters() {
	[ "$(id -u)" = 0 ] || skip "needs root (reading seccomp filters needs CAP_SYS_ADMIN)"
	std seccomp_filters 0 10 10
}

t_seccomp_filters_all() {
	[ "$(id -u)" = 0 ] || skip "needs root (reading seccomp filters needs CAP_SYS_ADMIN)"
	std seccomp_filters 0 10 10 pipe all
}

# the same through live checkpoints (full, then incremental: the filters go
# on working in the running program, read again each time), checkpoint
# --kill and a restart
t_seccomp_filters_live() {
	[ "$(id -u)" = 0 ] || skip "needs root (reading seccomp filters needs CAP_SYS_ADMIN)"
	steps_live_flow seccomp_filters 10
}

# seccomp_threads MODE as TAG: run, a checkpoint refused with a line that
# matches ERE, the program let go to its straight run's output
seccomp_refusal() { # seccomp_refusal MODE WHAT ERE
	local mode=$1
	prog_cmd seccomp_threads
	: >"$TT/go.1"
	straight 0 "${PCMD[@]}" "$mode"
	rm -f "$TT/go.1"
	GNAME=$GNAME-$mode
	bg_start "$mode" "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}" "$mode"
	wait_line "$TD/$mode.out" ready
	ckpt_refused "$mode" "$2" "$3"
	: >"$TT/go.1"
	bg_wait "$mode"
	final_check 0 "$RC" "$mode" "$mode"
}

# seccomp_refused: a thread in strict mode (which the agent's handler would
# kill) is refused before any signal, in one line naming the process, the
# thread and the mode; so is one in filter mode when cohort is not root (it
# cannot read the filters); the program runs on to the straight run's output.
t_seccomp_refused() {
	seccomp_refusal strict "a thread under seccomp (strict)" \
		"pid [0-9]+ \(seccomp_thread[^)]*\): thread [0-9]+ runs under seccomp \(strict mode\)"
	[ "$(id -u)" = 0 ] && return 0
	seccomp_refusal filter "a thread under seccomp (filter) without root" \
		"pid [0-9]+ \(seccomp_thread[^)]*\): thread [0-9]+ runs under seccomp \(filter mode\).*CAP_SYS_ADMIN"
}

# seccomp_denied: a thread's filter kills the process at clone3, which the
# agent's manager thread is made with: refused before any signal, naming
# the process, the thread and the call, and the program finishes as it
# would have (the refusal touched nothing).  So is a thread whose filter
# a restart could not install again (installed as root without
# no_new_privs, CAP_SYS_ADMIN dropped since).
t_seccomp_denied() {
	[ "$(id -u)" = 0 ] || skip "needs root (reading seccomp filters needs CAP_SYS_ADMIN)"
	seccomp_refusal deny "a seccomp filter that kills at clone3" \
		"pid [0-9]+ \(seccomp_thread[^)]*\): thread [0-9]+'s seccomp filter does not allow clone3: cohort cannot checkpoint it$"
	seccomp_refusal nopriv "a seccomp filter without no_new_privs or CAP_SYS_ADMIN" \
		"pid [0-9]+ \(seccomp_thread[^)]*\): thread [0-9]+ runs under seccomp filters without no_new_privs or CAP_SYS_ADMIN"
}
