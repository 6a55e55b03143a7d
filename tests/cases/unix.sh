# Unix sockets of every shape, and descriptors in flight (src/kinds/unix*.c,
# issue 13).
#   unix_shapes       the standard flow (checkpoint --kill, restart, twice) of
#                     tests/progs/unix_shapes.c: listeners with connections
#                     waiting in their backlogs (with data), named, abstract
#                     and unlinked sockets, pairs of every type with data
#                     queued both ways, a shut-down half
#   unix_shapes_live  the same through live checkpoints, then --kill and a
#                     restart (its backlog connections hold no data; those
#                     that do through live checkpoints: unix_backlog_live)
#   unix_kill_failed  a --kill checkpoint that fails late gives back what it
#                     read (see kill_failed_flow)
# Sourced by tests/run.sh.

t_unix_shapes() { std unix_shapes 0 4 3; }

t_unix_shapes_live() { UNIX_SHAPES_LIVE=1 steps_live_flow unix_shapes 9; }

# descriptors in flight (tests/progs/unix_inflight.c): a pipe and a socket,
# held by no process, passed in a queued message between two others on a
# stream, at every checkpoint; the socket has data queued on it
t_unix_inflight() { std unix_inflight 0 3 3; }

# a program that passes descriptors to forked workers (a pipe holding the
# job, an eventfd for the result), one job always in flight
t_unix_workers() { std unix_inflight 0 3 3 pipe workers; }

# the same two through live checkpoints, then --kill and a restart
t_unix_inflight_live() { steps_live_flow unix_inflight 9; }
t_unix_workers_live() { UNIX_INFLIGHT_WORKERS=1 steps_live_flow unix_inflight 9; }

# datagrams of no bytes queued on datagram and seqpacket sockets, and the
# program's own SO_PEEK_OFF (tests/progs/unix_edges.c), through the
# standard flow and through live checkpoints
t_unix_edges() { std unix_edges 0 3 3; }
t_unix_edges_live() { steps_live_flow unix_edges 9; }

# the sockets' options (tests/progs/unix_opts.c; its standard flow is a row
# of std.list) through live checkpoints, which read their queues with
# options of their own for a while, then --kill and a restart.  A socket
# with SO_PASSPIDFD has datagrams queued: the checkpoint's peeks at them
# must not leave pidfds in the coordinator (unix_opts_pidfds)
t_unix_opts_live() { LIVE_CHECK=unix_opts_pidfds steps_live_flow unix_opts 9; }

# socket calls waiting out a timeout set on the socket, which the kernel
# never restarts after a handler: live checkpoints land in them (the
# program waits in one nearly all the time), and each must still end with
# EAGAIN, never EINTR (the agent makes them again: src/agent/wrap_sock.c)
t_sock_timeo_live() { steps_live_flow sock_timeo 9; }

# unix_opts_pidfds before|after: the pidfds the coordinator holds, counted
# before the live checkpoints, the same after them
unix_opts_pidfds() {
	local coord n
	coord=$("$COHORT" status "$GNAME" --json | sed -n 's/.*"coordinator_pid":\([0-9]*\).*/\1/p')
	[ -n "$coord" ] || fail "cohort status --json names no coordinator_pid"
	n=$(find "/proc/$coord/fd" -lname '*pidfd*' | wc -l)
	if [ "$1" = before ]; then
		PIDFDS_BEFORE=$n
	elif [ "$n" != "$PIDFDS_BEFORE" ]; then
		fail "the coordinator holds $n pidfds after two live checkpoints, $PIDFDS_BEFORE before (SO_PASSPIDFD)"
	fi
}

# a socket filter is not given back (tests/progs/unix_filter.c): with a
# classic one (SO_ATTACH_FILTER), then an eBPF one (SO_ATTACH_BPF, where
# bpf(2) loads one), on a datagram socket with a message queued, the
# checkpoint is refused in one line naming process and descriptor, and
# the program runs on with its filter and message; once it takes the
# filter off, checkpoint --kill and the restart end as the native run
t_unix_filter_refused() {
	prog_cmd unix_filter
	: >"$TT/go.1"
	: >"$TT/go.2"
	: >"$TT/go.3"
	straight_start 0 "${PCMD[@]}"
	rm -f "$TT/go.1" "$TT/go.2" "$TT/go.3"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "filtered"
	ckpt_refused run0 "a classic socket filter" \
		"^cohort: .*pid [0-9]+: fd [0-9]+: .*a Unix socket with a socket filter of 2 instructions attached \(SO_ATTACH_FILTER\)" --kill
	: >"$TT/go.1"
	wait_for "no line 'ebpf ...' in run0.out" grep -qsxE "ebpf (attached|unavailable)" "$TD/run0.out"
	if grep -qx "ebpf attached" "$TD/run0.out"; then
		ckpt_refused run0 "an eBPF socket filter" \
			"^cohort: .*pid [0-9]+: fd [0-9]+: .*a Unix socket with an eBPF socket filter attached \(SO_ATTACH_BPF\)" --kill
	fi
	: >"$TT/go.2"
	wait_line "$TD/run0.out" "detached"
	ckpt_or_fail "checkpoint 1 (--kill, the filter taken off)" "$GNAME" 1 --kill
	bg_wait run0
	: >"$TT/go.3"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# a --kill checkpoint that fails late (COHORT_CKPT_FAIL=written:1, after
# every image is written) once it has read the streams that pass
# descriptors: the program runs on and reads every byte and descriptor
# where it was (unix_inflight checks each); the next --kill checkpoint
# commits, and its restart runs to the straight run's end.  unix_workers'
# jobs are in flight on streams too.  PROG: the program (unix_inflight).
kill_failed_flow() {
	prog_cmd "${1:-unix_inflight}"
	straight_start 0 "${PCMD[@]}"
	COHORT_CKPT_FAIL=written:1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "step 2 ok"
	ckpt_refused run0 "a failure injected late" "failure injected \\(COHORT_CKPT_FAIL\\)" --kill
	wait_line "$TD/run0.out" "step 5 ok"
	ckpt_or_fail "checkpoint 1 (--kill, after the failed one)" "$GNAME" 1 --kill
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}
t_unix_kill_failed() { kill_failed_flow; }
t_unix_workers_kill_failed() { UNIX_INFLIGHT_WORKERS=1 kill_failed_flow; }

# A server outside the group (tests/progs/unix_outside.py KIND PATH LOG),
# started under tag out-KIND and ready once PATH.ready exists.
outside_start() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	bg_start "out-$1" "$PYTHON" "$PROGS/unix_outside.py" "$1" "$2" "$3"
	local i
	for ((i = 0; i < 100; i++)); do
		[ -e "$2.ready" ] && return 0
		sleep 0.05
	done
	fail "the $1 server outside the group did not start: $(first_line "$TD/out-$1.err")"
}
outside_stop() {
	kill "$(cat "$TD/out-$1.pid")" 2>/dev/null
	bg_wait "out-$1"
}

# syslog_ok LOG PREFIX RUNS: the listener got every step ("PREFIX[PID]: step
# N" or "PREFIX[PID] step N", N 0 to 11) once per run, in order, each run
# telling itself by its pid (the native run's beside, the group's)
syslog_ok() {
	# each run (the native one beside, ours) sends from one pid, "[PID]" in
	# every message: each pid's messages must be the 12 steps once, in order
	"$PYTHON" - "$1" "$2" "$3" <<'PY' || { note_file "the listener's log" "$1" 30; fail "the listener outside the group did not get every message once, in order"; }
import re, sys
path, prefix, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
by_pid = {}
for line in open(path).read().splitlines():
    m = re.match(re.escape(prefix) + r"\[(\d+)\]:? step (\d+)$", line)
    if not m:
        sys.exit("not a message of the test: %r" % line)
    by_pid.setdefault(m.group(1), []).append(int(m.group(2)))
sys.exit(0 if len(by_pid) == runs and all(v == list(range(12)) for v in by_pid.values()) else 1)
PY
}

# syslog(3) to a datagram listener at a path of the test's (a /dev/log of
# its own, outside the group): the socket connected to it comes back
# connected to it, and every message arrives once
t_unix_syslog() {
	export UNIX_SYSLOG_PATH=$TT/log.sock
	outside_start dgram "$UNIX_SYSLOG_PATH" "$TD/syslog.log"
	std unix_syslog 0 3 3
	outside_stop dgram
	syslog_ok "$TD/syslog.log" "<13>unix_syslog" 2
}

# the same through live checkpoints, then --kill and a restart
t_unix_syslog_live() {
	export UNIX_SYSLOG_PATH=$TT/log.sock
	outside_start dgram "$UNIX_SYSLOG_PATH" "$TD/syslog.log"
	steps_live_flow unix_syslog 9
	outside_stop dgram
	syslog_ok "$TD/syslog.log" "<13>unix_syslog" 2
}

# Python's logging.handlers.SysLogHandler(address=PATH) to the same listener
t_unix_syslog_py() {
	export UNIX_SYSLOG_PATH=$TT/log.sock
	outside_start dgram "$UNIX_SYSLOG_PATH" "$TD/syslog.log"
	flow_standard 0 3 3 pipe "$PYTHON" "$PROGS/unix_syslog.py"
	outside_stop dgram
	syslog_ok "$TD/syslog.log" "<14>python" 2
}

# outside_run: unix_syslog run in the group with a datagram listener and a
# stream server outside it (its native run first, with both), until ready
outside_run() {
	export UNIX_SYSLOG_PATH=$TT/log.sock UNIX_OUTSIDE_STREAM=$TT/srv.sock
	outside_start dgram "$UNIX_SYSLOG_PATH" "$TD/syslog.log"
	outside_start stream "$UNIX_OUTSIDE_STREAM" "$TD/stream.log"
	prog_cmd unix_syslog
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
}

# a stream connected to a server outside the group: the checkpoint is
# refused in one line naming process, descriptor and the peer's path, and
# the program runs on to its native output
t_unix_outside_refused() {
	outside_run
	wait_line "$TD/run0.out" "step 2 ok"
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --kill >"$TD/ck.out" 2>"$TD/ck.err"
	local rc=$?
	note_file "checkpoint stderr" "$TD/ck.err" 3
	[ "$rc" = 1 ] || fail "checkpoint of a stream connected outside the group: status $rc, not 1"
	[ "$(wc -l <"$TD/ck.err")" = 1 ] || fail "the refusal is not one line"
	grep -qE "pid 2: fd 4: .*connected to $UNIX_OUTSIDE_STREAM outside the group" "$TD/ck.err" ||
		fail "the refusal does not name process, descriptor and peer: $(first_line "$TD/ck.err")"
	bg_wait run0
	final_check 0 "$RC" run0 run0
}

# the same with checkpoint --reconnect-outside: the program gets a socket
# connected afresh to the server (which sees a second connection) and runs
# on as if nothing happened
t_unix_outside_reconnect() {
	outside_run
	wait_line "$TD/run0.out" "step 3 ok"
	ckpt_or_fail "checkpoint --kill --reconnect-outside" "$GNAME" 1 --kill --reconnect-outside
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
	outside_stop stream
	[ "$(grep -c accept "$TD/stream.log")" = 3 ] ||
		fail "the server outside saw $(grep -c accept "$TD/stream.log") connections, not 3 (straight run, run, restart)"
}

# unix_shapes run, checkpointed and restarted by user nobody (a user
# namespace of the group's own, see tests/cases/unprivileged.sh): names
# bound again in a mount namespace of init's child, sock_diag, the backlogs
t_unix_unprivileged() {
	unpriv_setup unix_shapes
	flow_standard 0 4 3 pipe "$U/bin/unix_shapes"
}

# unix_opts the same way: without CAP_NET_ADMIN the program's buffers stay
# under net.core.wmem_max and rmem_max, its priorities at 6 and below, its
# marks 0; init, in the group's user namespace, gives them back, and puts
# the big queues back with send buffers as big as the sysctl allows
t_unix_opts_unprivileged() {
	unpriv_setup unix_opts
	flow_standard 0 3 3 pipe "$U/bin/unix_opts"
}

# Connections waiting in a listener's backlog with data queued
# (tests/progs/unix_backlog.c, which checks order, readiness by poll,
# select and epoll, accept's flags, descriptor and peer address, and every
# byte): the checkpoint takes them to read that data, and the program gets
# them back behind markers when it runs on (src/kinds/unix_backlog.c).
#   unix_backlog_kill_failed  a --kill checkpoint that fails late
#                             (COHORT_CKPT_FAIL=written:1): the program runs
#                             on and accepts every one; the next --kill
#                             commits and its restart runs to the end
#   unix_backlog_live         live checkpoints (and a --kill, a restart)
#   unix_backlog_rounds       live, --kill, restart, live, --kill, restart:
#                             two rounds, markers taken again each time
t_unix_backlog_kill_failed() { kill_failed_flow unix_backlog; }

t_unix_backlog_live() { steps_live_flow unix_backlog 9; }

t_unix_backlog_rounds() {
	local AT_END_FILE=$COHORT_TEST_TMP/at-end
	prog_cmd unix_backlog
	straight_start 0 "${PCMD[@]}"
	# held at its end until checkpoint 4 (common.h's end gate), as in flow_standard
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "step 1 ok"
	ckpt_or_fail "checkpoint 1 (live)" "$GNAME" 1
	ckpt_or_fail "checkpoint 2 (--kill, the markers of the live one in the backlog)" "$GNAME" 2 --kill
	bg_wait run0
	local k0
	k0=$(out_lines run0)
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	flow_at 3 run0 run1 "$k0"
	ckpt_or_fail "checkpoint 3 (live, after the restart)" "$GNAME" 3
	ckpt_or_fail "checkpoint 4 (--kill)" "$GNAME" 4 --kill
	bg_wait run1
	: >"$COHORT_TEST_TMP/end"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

# a live checkpoint of a backlog with data held by a program that has not
# called libc's accept since it started (a program accepting by raw system
# calls would get the markers given back): refused in one line, the
# program runs on and then accepts the connection with its data
t_unix_backlog_unaccepted() {
	cat >"$TD/srv.py" <<'PY'
import os, socket, sys, time
d = sys.argv[1]
l = socket.socket(socket.AF_UNIX); l.bind(d + "/sock"); l.listen(4)
c = socket.socket(socket.AF_UNIX); c.connect(d + "/sock"); c.send(b"waiting in the backlog")
print("ready", flush=True)
while not os.path.exists(d + "/go"):
    time.sleep(0.02)
a, _ = l.accept()
print("RESULT", a.recv(64).decode(), flush=True)
PY
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- python3 "$TD/srv.py" "$TD"
	wait_line "$TD/run0.out" "ready"
	ckpt_refused run0 "a backlog of a program that never accepted" \
		"fd 3: .*listening on $TD/sock with data queued .* which this program has not called yet"
	touch "$TD/go"
	bg_wait run0
	[ "$RC" = 0 ] || fail "the program ended with status $RC"
	grep -qx "RESULT waiting in the backlog" "$TD/run0.out" || fail "the connection's data did not come: $(tail -1 "$TD/run0.out")"
}

# peek_restart TAG GEN STEP: a restart of generation GEN (taken while the
# program waited at "STEP STEP queued"; every go file exists) prints
# exactly the native output after that line and exits 0
peek_restart() {
	bg_start "$1" "$COHORT" restart "$GNAME" --images "$IMG" --generation "$2"
	bg_wait "$1"
	sed -n "/^STEP $3 queued\$/,\$p" "$TD/exp.out" | tail -n +2 >"$TD/$1.exp"
	if ! cmp -s "$TD/$1.exp" "$TD/$1.out" || [ "$RC" != 0 ]; then
		note_file "restart of generation $2 stdout" "$TD/$1.out" 6
		note_file "restart of generation $2 stderr" "$TD/$1.err" 5
		fail "restart of generation $2 (taken at step $3): not the native output after it (status $RC): $(first_line "$TD/$1.err")"
	fi
}

# what only a peek can tell (tests/progs/unix_peek.c), with the same
# messages queued through several checkpoints: live ones at step 0 (two)
# and at step 1, then --kill; the run goes on after each live one, and a
# restart of each generation gives the native output after its step: the
# descriptors a stream passes come with the read they came with (not
# with the bytes before), and messages of no bytes between others, which
# the checkpoints before peeked at, are all there
t_unix_peek() {
	prog_cmd unix_peek
	: >"$TT/go.0" && : >"$TT/go.1" && : >"$TT/go.2"
	straight 0 "${PCMD[@]}"
	rm -f "$TT"/go.*
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "STEP 0 queued"
	ckpt_or_fail "checkpoint 1 (live, step 0)" "$GNAME" 1
	ckpt_or_fail "checkpoint 2 (live, step 0 again)" "$GNAME" 2
	: >"$TT/go.0"
	wait_line "$TD/run0.out" "STEP 1 queued"
	ckpt_or_fail "checkpoint 3 (live, step 1)" "$GNAME" 3
	ckpt_or_fail "checkpoint 4 (--kill, step 1)" "$GNAME" 4 --kill
	bg_wait run0
	sed '/^STEP 1 queued$/q' "$TD/exp.out" >"$TD/run0.exp"
	cmp -s "$TD/run0.exp" "$TD/run0.out" || { note_file "run stderr" "$TD/run0.err" 5; fail "the run checkpointed live did not go on as the native run: $(first_line "$TD/run0.err")"; }
	merges_done
	: >"$TT/go.1" && : >"$TT/go.2"
	peek_restart r1 1 0
	peek_restart r2 2 0
	peek_restart r3 3 1
	peek_restart r4 4 1
}
