# fanotify descriptors (src/kinds/fanotify.c; tests/progs/fanotify_kind.c:
# a group marking a directory, files with their own and ignored masks, and
# as root a mount and a filesystem; a FAN_REPORT_FID group; as root a group
# of permission events, allowing and denying a child's open each step, and
# one that hears of mounts in the group's mount namespace (a tmpfs mounted
# and unmounted each step);
# events checked each step: mask, pid, the descriptor's file or the handle).
#   fanotify_std    the standard flow (checkpoint --kill, restart, twice);
#                   the generations' shared.img show every kind of mark
#   fanotify_live   live checkpoints, then --kill and a restart
#   fanotify_held   an event left unread: cohort cannot make it again, so
#                   the checkpoint tries again for about a second and is
#                   refused in one line naming process, descriptor and
#                   kind; the program then reads its event
#   fanotify_perm   a permission event of a process outside the group, read
#                   and not yet answered: the checkpoint tries again for
#                   about a second and is refused in one line; the program
#                   then answers, and the process opens its file
#                   (alone in the suite: a thread waiting for fanotify
#                   anywhere holds up the checkpoints of every group with
#                   permission marks, fanotify_std's and fanotify_live's)
#   fanotify_perm_child  the same asked by a child in the group: it waits in
#                   the kernel, where no signal but a fatal one reaches it,
#                   for an answer its parked parent would never give; the
#                   checkpoint lets the group run and tries again for about
#                   a second (not the quiesce's 10 s), then is refused in one
#                   line naming the thread; answered, the group checkpoints
#                   and restarts (alone in the suite, as fanotify_perm)
# As root, each run of the program gets a tmpfs of its own at
# $COHORT_TEST_TMP.mnt for its mount and filesystem marks (so that no other
# process's events reach them).
# Sourced by tests/run.sh.

# fan_mounts: a tmpfs for the run under cohort and one for the native run
# (unmounted when the test ends); none when not root
fan_mounts() {
	[ "$(id -u)" = 0 ] || return 0
	local m
	for m in "$TT.mnt" "$TD/straight.tmp.mnt"; do
		mkdir -p "$m"
		mount -t tmpfs -o size=1m tmpfs "$m" 2>/dev/null || skip "cannot mount a tmpfs here"
	done
	trap 'umount -l "$TT.mnt" "$TD/straight.tmp.mnt" 2>/dev/null' EXIT
}

# fan_marks_recorded GEN...: the marks as inspect shows them (as root: of a mount and a filesystem too)
fan_marks_recorded() {
	shared_says "fanotify [0-9]+: flags 0x3 event-flags 0x8000, [0-9]+ marks" "the fanotify group" "$@"
	shared_says "fanotify [0-9]+: inode mark mask 0x800000a ignored 0 mflags 0 .*/d$" "the directory's mark" "$@"
	shared_says "fanotify [0-9]+: inode mark mask 0 ignored 0x2 mflags 0x40 .*/d/skip$" "an ignored mask" "$@"
	shared_says "fanotify [0-9]+: inode mark mask 0 ignored 0x8 mflags 0x440 .*/d/skip2$" "a FAN_MARK_IGNORE mask" "$@"
	[ "$(id -u)" = 0 ] || return 0
	shared_says "fanotify [0-9]+: flags 0x5 event-flags 0x8000, 1 marks, permission events" "the permission group" "$@"
	shared_says "fanotify [0-9]+: inode mark mask 0x10000 ignored 0 mflags 0 .*/p$" "the permission mark" "$@"
	shared_says "fanotify [0-9]+: mount namespace mark mask 0x3000000 ignored 0 mflags 0 /proc/self/ns/mnt$" "the mount namespace's mark" "$@"
	shared_says "fanotify [0-9]+: mount mark mask 0x8 ignored 0 mflags 0 $TT.mnt$" "the mount mark" "$@"
	shared_says "fanotify [0-9]+: filesystem mark mask 0x2 ignored 0 mflags 0 $TT.mnt$" "the filesystem mark" "$@"
}

t_fanotify_std() {
	fan_mounts
	std fanotify_kind 0 5 5
	fan_marks_recorded 1 2
}

t_fanotify_live() {
	fan_mounts
	steps_live_flow fanotify_kind 12
	fan_marks_recorded 1 2 3
}

t_fanotify_held() {
	refused fanotify_kind held "^cohort: .*pid [0-9]+: fd [0-9]+: fanotify: [0-9]+ bytes of events queued, which cohort cannot make again \(each carries an open descriptor and the pid of who acted\): the program has not read them$" hold
}

t_fanotify_perm() {
	prog_cmd fanotify_kind
	PCMD+=(perm)
	: >"$TT/go.1"
	straight_start 0 "${PCMD[@]}"
	rm -f "$TT/go.1"
	bg_start perm "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" perm
	wait_line "$TD/perm.out" ready
	wait_for "the native run's file p" test -f "$TD/straight.tmp/p"
	# each run is asked to let a process outside open its file: the native run answers at once
	(exec cat "$TD/straight.tmp/p" "$TT/p" >/dev/null) &
	local cat=$!
	echo "$cat" >>"$TD/pids"
	wait_line "$TD/perm.out" asked
	ckpt_refused perm fanotify_kind "^cohort: .*pid [0-9]+: fd [0-9]+: fanotify: thread [0-9]+ \(of the machine\) waits for the answer to a permission event, of this group or another's: the program has not answered it$"
	: >"$TT/go.1"
	wait "$cat" || fail "the process outside could not open the file it asked for"
	bg_wait perm
	final_check 0 "$RC" perm perm
}

t_fanotify_perm_child() {
	[ "$(id -u)" = 0 ] || skip "permission events need CAP_SYS_ADMIN"
	prog_cmd fanotify_kind
	PCMD+=(perm_child)
	refused_then_kept asked fanotify_kind "^cohort: .*pid [0-9]+: thread [0-9]+ \(fanotify_kind\) waits for the answer to a fanotify permission event \(it opened or read a file that a fanotify group watches\), and no signal reaches it until that answer comes$" answered
}

# fanotify_unprivileged: a FAN_REPORT_FID group (what a user without
# CAP_SYS_ADMIN may make, Linux 5.13 and later), run by user nobody
# (unprivileged.sh: unpriv_setup): cohort cannot find its marks' paths
# without CAP_DAC_READ_SEARCH, so the checkpoint is refused in one line
# naming process, descriptor and mark, and the program runs on
t_fanotify_unprivileged() {
	unpriv_setup fanotify_kind
	PCMD=("$U/bin/fanotify_kind" fid)
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "step 2 ok"
	ckpt_refused run0 fanotify_kind "^cohort: .*pid [0-9]+: fd [0-9]+: fanotify mark 1 \(inode [0-9]+ of device [0-9]+:[0-9]+\): finding its path needs CAP_DAC_READ_SEARCH, which cohort lacks$"
	bg_wait run0
	final_check 0 "$RC" run0 run0
}
