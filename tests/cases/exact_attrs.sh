# tests/cases/exact_attrs.sh - sourced by tests/run.sh: the process
# attributes of issue 11 that proc_attrs (exact.sh) does not cover come
# back exactly as they were, or the checkpoint refuses while the program
# still runs, in one line naming the process and what.

# membarrier registrations: the parent's (global and private expedited,
# sync-core) and its child's (private expedited rseq) registered again,
# nothing more (an unregistered command must still answer EPERM)
t_attr_membarrier() { std attr_membarrier 0 8 8; }

# the same through live checkpoints (the snapshot is forked: the
# registrations are read before, in the process)
t_attr_membarrier_live() { steps_live_flow attr_membarrier 10; }

# an asynchronous I/O context (io_setup), idle while the program waits,
# comes back (it was refused before: "it has an asynchronous I/O context
# ..., which cohort cannot restore"; tests/cases/aio.sh has the rest):
# checkpoint --kill, restart, and the program reads through its context
# to the end
t_attr_aio() {
	prog_cmd attr_aio
	: >"$TT/go.1"
	straight_start 0 "${PCMD[@]}"
	rm -f "$TT/go.1"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" ready
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	: >"$TT/go.1"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# pidfds of the group's processes (a live child, non-blocking and not
# close-on-exec on fd 40; an unreaped child's from clone's CLONE_PIDFD;
# its own; PIDFD_THREAD of its main thread) come back referring to the
# restored processes, on their numbers, with their flags
t_attr_pidfd() { std attr_pidfd 0 7 6; }
t_attr_pidfd_live() { steps_live_flow attr_pidfd 10; }

# the pidfd of a child already waited for cannot be made again: refused
t_attr_pidfd_refused() {
	refused attr_pidfd pidfd "^cohort: .*pid [0-9]+: fd [0-9]+: a pidfd of a process that has ended and been waited for, which cohort cannot restore$" reaped
}

# a process that chrooted comes back in its root (tests/cases/chroot.sh),
# but not when that root was removed since (it could not be entered
# again) nor when the process dropped CAP_SYS_ADMIN since (its agent could
# not leave the root for the group's): the checkpoint is refused before any
# signal, in one line naming the process and its root directory, and the
# program runs on in its root
t_attr_chroot_deleted() {
	[ "$(id -u)" = 0 ] || skip "chroot needs root"
	refused attr_chroot chroot "^cohort: .*pid [0-9]+ \(attr_chroot\): its root directory .*/attr_chroot\.[0-9]+ \(deleted\) was removed after its chroot, which cohort cannot restore$" deleted
}
t_attr_chroot_nocaps() {
	[ "$(id -u)" = 0 ] || skip "chroot needs root"
	refused attr_chroot chroot "^cohort: .*pid [0-9]+ \(attr_chroot\): its root directory .*/attr_chroot\.[0-9]+ is not the group's \(chroot\), and without CAP_SYS_CHROOT and CAP_SYS_ADMIN \(dropped since\) its agent cannot leave it for the checkpoint$" nocaps
}
# (a seccomp filter that denies what the agent of a chrooted process needs
# to leave its root, setns, refuses it as any call of the agent's does)
t_attr_chroot_nosetns() {
	[ "$(id -u)" = 0 ] || skip "chroot needs root"
	refused attr_chroot chroot "^cohort: .*pid [0-9]+ \(attr_chroot\): thread [0-9]+'s seccomp filter does not allow setns: cohort cannot checkpoint it$" nosetns
}

# "${AS_LOGIN[@]}" UID CMD...: CMD with audit login uid UID (root may always set it)
AS_LOGIN=(sh -c 'echo "$0" >/proc/self/loginuid && exec "$@"')

# the audit login uid of a process, its thread and its child comes back
# as it was: `cohort run` under login uid 4242, the first restart under
# the harness's own (unset here: the restorer may write it unprivileged),
# the second under 5151 (writing needs CAP_AUDIT_CONTROL); the session id
# comes back unset exactly with the login uid, new when the restorer had
# to write the login uid (the kernel hands them out).  `cohort inspect`
# shows both in the manifest.
t_attr_loginuid() {
	[ -w /proc/self/loginuid ] || skip "no audit login uid on this kernel"
	"${AS_LOGIN[@]}" 4242 true 2>/dev/null || skip "cannot set an audit login uid here"
	local k
	prog_cmd attr_loginuid
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "${AS_LOGIN[@]}" 4242 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 12 run0
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	k=$(out_lines run0)
	"$COHORT" inspect "$IMG/$GNAME/gen-000001/manifest" >"$TD/insp.out" 2>&1 || fail "inspect: $(first_line "$TD/insp.out")"
	grep -qE "pid 2 ppid .* loginuid 4242 sessionid [0-9]+$" "$TD/insp.out" ||
		fail "inspect does not show pid 2's loginuid 4242: $(grep -m1 "pid 2 ppid" "$TD/insp.out")"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	wait_lines $((k + 12)) run0 run1
	ckpt_or_fail "checkpoint 2 (--kill, after restart)" "$GNAME" 2 --kill
	bg_wait run1
	bg_start run2 "${AS_LOGIN[@]}" 5151 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

# "${IN_CGROUP[@]}" DIR CMD...: CMD in the cgroup whose directory is DIR
IN_CGROUP=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"')

# cgroups: the program moves itself into a cgroup it makes below its own,
# a child into one below that, another child into a cgroup outside the
# group's (made here); `cohort run` starts in base1, the restarts in
# base2 and base3: the group's own cgroups come back, empty directories
# made again, below the restart's, the outside one as it is; every v1
# hierarchy stays where the group started.  Everything is made below a
# cgroup of the test's own, removed at the end.
t_attr_cgroup() {
	local mnt cg top k
	mnt=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
	[ -n "$mnt" ] && [ -w "$mnt" ] || skip "no cgroup v2 hierarchy we may write"
	cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
	cg=${cg%/}/$GNAME
	top=$mnt$cg
	mkdir -p "$top/base0" "$top/base1" "$top/base2" "$top/base3" "$top/out" || skip "cannot make cgroups below $mnt"
	# (a failure leaves its cgroups to this trap; a process still in one keeps it)
	trap "find '$top' -depth -type d -exec rmdir {} + 2>/dev/null" EXIT
	prog_cmd attr_cgroup
	# (its parent, a shell, in base0 as init is in base1)
	straight 0 "${IN_CGROUP[@]}" "$top/base0" sh -c '"$@"; r=$?; exit $r' sh "${PCMD[@]}" "$mnt" "$cg/out"
	bg_start run0 "${IN_CGROUP[@]}" "$top/base1" "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}" "$mnt" "$cg/out"
	wait_ready "$GNAME" run0
	wait_lines 10 run0
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	k=$(out_lines run0)
	"$COHORT" inspect "$IMG/$GNAME/gen-000001/proc-2.img" >"$TD/insp.out" 2>&1 || fail "inspect: $(first_line "$TD/insp.out")"
	grep -qE "(cgroups |,)0::$cg/base1/out\.in base " "$TD/insp.out" ||
		fail "inspect does not show pid 2's cgroup: $(grep -m1 " process " "$TD/insp.out")"
	bg_start run1 "${IN_CGROUP[@]}" "$top/base2" "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	wait_lines $((k + 10)) run0 run1
	ckpt_or_fail "checkpoint 2 (--kill, after restart)" "$GNAME" 2 --kill
	bg_wait run1
	bg_start run2 "${IN_CGROUP[@]}" "$top/base3" "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

# rseq areas the program registers itself, glibc's registration turned
# off (tests/progs/rseq_own.c): its main thread's, a second thread's and
# a forked child's (inherited) are registered again with their address,
# length and signature (EBUSY; EPERM with another signature; the kernel
# aborts their critical sections through the program's own abort handler)
t_rseq_own() { GLIBC_TUNABLES=glibc.pthread.rseq=0 std rseq_own 0 3 3; }

# rseq_refused: a restart where the kernel refuses rseq (a seccomp filter
# of its surroundings, tests/progs/no_rseq.c, as on a kernel without it)
# of a program whose threads had the C library's areas registered
# (tests/progs/blocked_threads.c): it fails in one line naming the process,
# the thread and rseq, and runs nothing (restored, the C library would read
# CPU numbers no kernel writes); a restart without the filter runs on to
# the native run's end
t_rseq_refused() {
	run_then_kill blocked_threads
	cmd_refused "restart without rseq" "pid [0-9]+, restoring its threads: thread [0-9]+ cannot take back its rseq area \\(rseq\\) \\(errno 38" \
		"$BIN/no_rseq" "$COHORT" restart "$GNAME" --images "$IMG"
	[ -s "$TD/refused.out" ] && fail "the failed restart ran the program: $(first_line "$TD/refused.out")"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# the same through live checkpoints (the registrations are asked of the
# kernel in each thread as it parks)
t_rseq_own_live() { GLIBC_TUNABLES=glibc.pthread.rseq=0 steps_live_flow rseq_own 10; }

# one registered with a raw system call, which the agent does not see and
# whose signature nothing shows: the checkpoint is refused in one line
# naming the process and the thread, the program runs on, registers
# through syscall(2) instead, and a checkpoint --kill and restart then end
# as the native run does
t_rseq_raw_refused() {
	prog_cmd rseq_own
	PCMD+=(raw)
	GLIBC_TUNABLES=glibc.pthread.rseq=0 refused_then_kept registered "an rseq area registered raw" \
		"^cohort: .*pid [0-9]+: thread [0-9]+ has an rseq area registered with a raw system call .*cohort cannot find it" \
		switched
}
