# Kernel objects (src/kinds/): a group holding one descriptor of every kind
# it can share (tests/progs/kinds_all.c: pipe, eventfd, signalfd, timerfd,
# epoll, Unix socket pair, shared memory, a shared regular file).
#   kinds_all      the standard flow (checkpoint --kill, restart, twice)
#   kinds_inspect  `cohort inspect` of a generation names the kind of every
#                  descriptor of both processes (never "?"), and shared.img
#                  holds each object; the regular file both processes hold
#                  is one record, in shared.img, which each image names as
#                  "shared file" (no offset of its own); the group runs on
#                  to its native output
# Sourced by tests/run.sh.


t_kinds_all() { std kinds_all 0 6 6; }

t_kinds_inspect() {
	prog_cmd kinds_all
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 5 run0
	ckpt_or_fail "checkpoint 1" "$GNAME" 1
	local g
	g=$(gen_dir "$GNAME" 1)
	"$COHORT" inspect "$g" >"$TD/insp.out" 2>"$TD/insp.err" || fail "inspect $g: $(first_line "$TD/insp.err")"
	"$COHORT" inspect "$g/shared.img" >"$TD/shared.out" 2>"$TD/shared.err" ||
		fail "inspect $g/shared.img: $(first_line "$TD/shared.err")"
	bg_wait run0
	final_check 0 "$RC" run0 run0
	note_file "inspect" "$TD/insp.out" 40
	# "  OFFSET descriptor fd N KIND flags ...": the kind, one or two words before "flags"
	sed -n 's/^ *[0-9]* descriptor  *fd [0-9]* \(.*\) flags .*/\1/p' "$TD/insp.out" | sort | uniq -c >"$TD/kinds"
	note_file "descriptor kinds" "$TD/kinds"
	[ -s "$TD/kinds" ] || fail "inspect shows no descriptor"
	grep -qE ' (\?|shared)$' "$TD/kinds" && fail "inspect does not name the kind of every descriptor"
	local k
	for k in pipe eventfd signalfd timerfd epoll "unix socket" "shared memory" "shared file"; do
		grep -q " $k\$" "$TD/kinds" || fail "no descriptor of kind '$k' in the inspected generation"
	done
	# the shared file: in both processes' images, without an offset of their own
	[ "$(grep -c ' descriptor .* shared file flags [0-7]* (object in shared.img) ' "$TD/insp.out")" = 2 ] ||
		fail "the file both processes hold is not named 'shared file' (object in shared.img) in both images"
	for k in "pipe " "object .*eventfd" "object .*signalfd" "object .*timerfd" "object .*epoll" \
		"unix socket +[0-9]+: stream pair" "shared memory " "shared file "; do
		grep -qE "^ *[0-9]+ $k" "$TD/shared.out" || { note_file "shared.img" "$TD/shared.out" 40; fail "shared.img has no record matching '$k'"; }
	done
	return 0
}

# Pipes (tests/progs/pipe_state.c): a packet-mode pipe (O_DIRECT) with
# packets of different sizes, a plain pipe of 256 KiB, and with "big" a
# pipe of 4 MiB holding more than 3 MiB, checked byte for byte, packet by
# packet, with their capacities, at every step.
#   pipe_packets           (std.list) the standard flow, without "big"
#   pipe_big               the standard flow with "big": fs.pipe-max-size
#                          raised to 8 MiB (root), put back when it ends
#   pipe_capacity_refused  "big" checkpointed, then restarted with
#                          fs.pipe-max-size put back and without
#                          CAP_SYS_RESOURCE: the restart fails in one line
#                          naming the pipe's capacity and fs.pipe-max-size,
#                          and runs nothing; raised again, a restart runs
#                          on to the native run's end
# Timerfds (tests/progs/timerfd_state.c): absolute wall-clock deadlines
# (TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET), a periodic timer's
# expirations, an alarm clock's timer (root).
#   timerfd_state          the standard flow; while the group is down after
#                          checkpoint 1 the deadline of one timer passes:
#                          restarted, it must have fired at once
#   timerfd_alarm_refused  with "alarm", checkpointed, then restarted
#                          without CAP_WAKE_ALARM: the restart fails in one
#                          line saying so; with it, a restart runs on to the
#                          native run's end
#   timerfd_cancel_refused (tests/progs/timerfd_cancel.c, root) a timer
#                          with TFD_TIMER_CANCEL_ON_SET that the program
#                          cancels by changing the realtime clock (forward
#                          1 ns and back: the clock is left where it was):
#                          a checkpoint meanwhile is refused in one line
#                          naming the process and the descriptor, and takes
#                          nothing away (the program's read then fails with
#                          ECANCELED); once read, checkpoint --kill and the
#                          restart end as the native run does (the timer
#                          cancelled again by the next change)
# Both change the machine's fs.pipe-max-size, and timerfd_cancel_refused
# cancels every such timer of the machine: they run alone (SERIAL_TESTS).
SERIAL_TESTS+=(pipe_big pipe_capacity_refused timerfd_cancel_refused)

PIPE_MAX=8388608

# pipe_max_raise: fs.pipe-max-size raised to PIPE_MAX for this test (root),
# its value put back when the test ends, however it ends (the trap)
pipe_max_raise() {
	[ "$(id -u)" = 0 ] || skip "needs root (raises fs.pipe-max-size)"
	PIPE_MAX_OLD=$(cat /proc/sys/fs/pipe-max-size 2>/dev/null) || skip "no fs.pipe-max-size"
	trap 'echo "$PIPE_MAX_OLD" >/proc/sys/fs/pipe-max-size' EXIT
	echo "$PIPE_MAX" 2>/dev/null >/proc/sys/fs/pipe-max-size || skip "cannot raise fs.pipe-max-size"
}

t_pipe_big() {
	pipe_max_raise
	std pipe_state 0 3 3 pipe big
}

t_pipe_capacity_refused() {
	command -v setpriv >/dev/null || skip "no setpriv(1)"
	pipe_max_raise
	run_then_kill pipe_state big
	echo "$PIPE_MAX_OLD" >/proc/sys/fs/pipe-max-size
	cmd_refused "restart with fs.pipe-max-size $PIPE_MAX_OLD, without CAP_SYS_RESOURCE" \
		"cannot give pipe:\[[0-9]+\] its capacity of 4194304 bytes: .*fs.pipe-max-size is $PIPE_MAX_OLD" \
		setpriv --inh-caps=-sys_resource --bounding-set=-sys_resource "$COHORT" restart "$GNAME" --images "$IMG"
	[ -s "$TD/refused.out" ] && fail "the failed restart ran the program: $(first_line "$TD/refused.out")"
	echo "$PIPE_MAX" >/proc/sys/fs/pipe-max-size
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# tfd_deadline_passed: until the deadline the program wrote ($TT/deadline, ns
# of CLOCK_REALTIME) has passed by more than its tolerance (TOL, 250 ms)
tfd_deadline_passed() {
	local at
	at=$(cat "$TT/deadline") || fail "the program wrote no deadline"
	wait_for "the deadline in $TT/deadline" tfd_after $((at / 1000 + 300000))
}
tfd_after() { [ "${EPOCHREALTIME/./}" -gt "$1" ]; }

t_timerfd_state() { FLOW_DOWN=tfd_deadline_passed std timerfd_state 0 3 3; }

t_timerfd_alarm_refused() {
	[ "$(id -u)" = 0 ] || skip "needs root (CAP_WAKE_ALARM)"
	command -v setpriv >/dev/null || skip "no setpriv(1)"
	run_then_kill timerfd_state alarm
	cmd_refused "restart without CAP_WAKE_ALARM" "cannot make timerfd [0-9]+ on CLOCK_BOOTTIME_ALARM again: .*needs CAP_WAKE_ALARM" \
		setpriv --inh-caps=-wake_alarm --bounding-set=-wake_alarm "$COHORT" restart "$GNAME" --images "$IMG"
	[ -s "$TD/refused.out" ] && fail "the failed restart ran the program: $(first_line "$TD/refused.out")"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# timerfd_clock: the group's monotonic clock goes on, after a restart,
# from a moment no earlier than the checkpoint's look at its timers.  The
# coordinator is held with the group parked, before anything is dumped
# (COHORT_CRASH=capture:FILE, src/cli/store.c), until half a second has
# gone by: 100 periods of the program's tick.  Taken before the hold, the
# restarted clock would be half a second behind the expirations the
# checkpoint counted, and the program's next step finds more expirations
# read than periods gone by.
t_timerfd_clock() {
	local t0
	prog_cmd timerfd_state
	straight_start 0 "${PCMD[@]}"
	COHORT_CRASH="capture:$TT/release" COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" \
		--images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	AT_END_FILE=$TT/at-end wait_lines 3 run0
	bg_start ck1 "$COHORT" checkpoint "$GNAME" --images "$IMG" --kill
	wait_for "the checkpoint held with the group parked" test -e "$TT/release.at"
	t0=${EPOCHREALTIME/./}
	wait_for "half a second gone by" tfd_after $((t0 + 500000))
	: >"$TT/release"
	bg_wait ck1
	[ "$RC" = 0 ] || { note_file "checkpoint stderr" "$TD/ck1.err"; fail "checkpoint failed (status $RC): $(first_line "$TD/ck1.err")"; }
	bg_wait run0
	: >"$TT/end"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

t_timerfd_cancel_refused() {
	[ "$(id -u)" = 0 ] || skip "needs root (CAP_SYS_TIME: changes the realtime clock, and puts it back)"
	prog_cmd timerfd_cancel
	# the native run first, alone: its changes of the clock would cancel the timer under cohort
	: >"$TT/go.1"
	: >"$TT/go.2"
	straight 0 "${PCMD[@]}"
	rm -f "$TT/go.1" "$TT/go.2"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" cancelled
	ckpt_refused run0 "a cancelled timerfd" \
		"^cohort: .*pid [0-9]+: fd [0-9]+: a timerfd with TFD_TIMER_CANCEL_ON_SET that a change of the realtime clock may have cancelled \(2 unread expirations\)"
	: >"$TT/go.1"
	wait_line "$TD/run0.out" read
	ckpt_or_fail "checkpoint 1 (--kill, the timer read)" "$GNAME" 1 --kill
	bg_wait run0
	: >"$TT/go.2"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# dnotify watches (fcntl F_NOTIFY; tests/progs/dnotify_watch.c), which no
# file of /proc shows: the agent notes them (src/agent/dnotify.c)
#   dnotify_std            the standard flow: d1's watch (events or'ed from
#                          two F_NOTIFY on a descriptor and its dup, its
#                          signals naming the dup, F_SETSIG) comes back and
#                          signals as before; the watches ended by
#                          F_NOTIFY 0, by the close of a dup, by closedir of
#                          a stream made on a dup do not come back; the
#                          SIGIO owners are as they were
#   dnotify_live           the same through live checkpoints
#   dnotify_oneshot_refused  a watch without DN_MULTISHOT (the kernel drops
#                          it once it fires, which nothing shows): the
#                          checkpoint is refused in one line naming the
#                          process and the descriptor, the program runs on,
#                          and once it has made it DN_MULTISHOT checkpoint
#                          --kill and restart end as the native run does
#   dnotify_exec_refused   a watch kept across an exec (the agent cannot
#                          tell whether the exec's closes of close-on-exec
#                          descriptors ended it): refused likewise; made
#                          again after the exec, it comes back
t_dnotify_std() { std dnotify_watch 0 3 3; }

t_dnotify_live() { steps_live_flow dnotify_watch 10; }

t_dnotify_oneshot_refused() {
	prog_cmd dnotify_watch
	PCMD+=(oneshot)
	refused_then_kept one-shot "a one-shot dnotify watch" \
		"^cohort: .*pid [0-9]+: fd 21: a one-shot dnotify watch \(fcntl F_NOTIFY without DN_MULTISHOT\).*cohort cannot restore it" \
		multishot
}

t_dnotify_exec_refused() {
	prog_cmd dnotify_watch
	PCMD+=(exec)
	refused_then_kept "exec'd" "a dnotify watch kept across an exec" \
		"^cohort: .*pid [0-9]+: fd 21: a dnotify watch \(fcntl F_NOTIFY\) set before an exec.*cannot tell whether the kernel still has it" \
		again
}
