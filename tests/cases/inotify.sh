# inotify descriptors (src/kinds/inotify.c; tests/progs/inotify_kind.c: two
# inotify objects, watches with gaps in their wds, events checked each step).
#   inotify_std   the standard flow (checkpoint --kill, restart, twice); at
#                 least one generation kept events queued at the checkpoint
#                 (shared.img), which the restarted program then read
#   inotify_live  live checkpoints (the program reads the events the
#                 checkpoint read and put back), then --kill and a restart
#   inotify_held  a create event left unread on a descriptor made with a
#                 raw system call (as Go does): cohort cannot make it again
#                 nor the agent hold it, so the checkpoint does not read the
#                 queue, tries again for about a second and is refused in
#                 one line naming process, descriptor and kind; the program
#                 then reads its event
# Sourced by tests/run.sh.

# shared_says ERE WHAT GEN...: some generation's shared.img (inspect) has a
# line matching ERE; else fail saying no checkpoint found WHAT
shared_says() {
	local ere=$1 what=$2 g
	shift 2
	for g in "$@"; do
		"$COHORT" inspect "$(gen_dir "$GNAME" "$g")/shared.img" >"$TD/shared.$g" 2>&1 ||
			fail "inspect generation $g: $(first_line "$TD/shared.$g")"
		grep -Eq "$ere" "$TD/shared.$g" && return 0
	done
	note_file "shared.img" "$TD/shared.$1" 20
	fail "no checkpoint found $what (generations $*)"
}

# inotify_queued GEN...: some generation's shared.img holds queued inotify events
inotify_queued() { shared_says 'inotify events inotify [0-9]*: wd ' "inotify events queued" "$@"; }

t_inotify_std() {
	std inotify_kind 0 5 5
	inotify_queued 1 2
}

t_inotify_live() {
	steps_live_flow inotify_kind 12
	inotify_queued 1 2 3
}

t_inotify_held() {
	refused inotify_kind held "^cohort: .*pid [0-9]+: fd [0-9]+: inotify: [0-9]+ bytes of events queued, and watch 1 \(.*/a, mask 0x308\) may have queued some cohort cannot make again .*, nor its agent hold \(the program did not make it, or does not read it, through libc\): the program has not read them$" hold
}

# inotify_queue (tests/progs/inotify_queue.c): events cohort cannot make
# again (create, close-write, moves with cookies, delete, open, access,
# close-nowrite) queued when the checkpoint comes; the program reads them
# only once the harness says go, and checks them exactly, with epoll, poll,
# select, FIONREAD, readv and a read too small (src/agent/inotify.c).
#   inotify_queue_std   checkpoint --kill and restart, three times: once
#                       with the events held since the restart before
#   inotify_queue_live  live checkpoints (the second with the events held
#                       since the first), then --kill and a restart
# Both check that each generation had the events held by the agent.

# inotify_go N TAG...: the program of TAG may read round N (the native run's too)
inotify_go() {
	touch "$TT/go.$1"
}

# inotify_held_by_agent GEN...: some generation's shared.img says its agent held events
inotify_held_by_agent() {
	shared_says "held by its process's agent \(marker event on watch [0-9]*\)" "inotify events left to the agent" "$@"
}

t_inotify_queue_std() {
	prog_cmd inotify_queue
	straight_start 0 "${PCMD[@]}"
	touch "$TD/straight.tmp/go.1" "$TD/straight.tmp/go.2" "$TD/straight.tmp/go.3"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "queued 1"
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	# restarted with the events held, and checkpointed again before it reads them
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	ckpt_or_fail "checkpoint 2 (--kill, after restart, events unread)" "$GNAME" 2 --kill
	bg_wait run1
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run2
	inotify_go 1
	wait_line "$TD/run2.out" "queued 2"
	ckpt_or_fail "checkpoint 3 (--kill)" "$GNAME" 3 --kill
	bg_wait run2
	bg_start run3 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run3
	inotify_go 2
	inotify_go 3
	bg_wait run3
	final_check 0 "$RC" run3 run0 run1 run2 run3
	inotify_held_by_agent 1
	inotify_held_by_agent 2
	inotify_held_by_agent 3
}

t_inotify_queue_live() {
	prog_cmd inotify_queue
	straight_start 0 "${PCMD[@]}"
	touch "$TD/straight.tmp/go.1" "$TD/straight.tmp/go.2" "$TD/straight.tmp/go.3"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "queued 1"
	ckpt_or_fail "checkpoint 1 (live)" "$GNAME" 1
	# the agent holds the events, its marker is queued: again before the program reads
	ckpt_or_fail "checkpoint 2 (live, --incremental, events unread)" "$GNAME" 2 --incremental
	inotify_go 1
	wait_line "$TD/run0.out" "queued 2"
	ckpt_or_fail "checkpoint 3 (live)" "$GNAME" 3
	inotify_go 2
	wait_line "$TD/run0.out" "queued 3"
	ckpt_or_fail "checkpoint 4 (--kill)" "$GNAME" 4 --kill
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	inotify_go 3
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
	inotify_held_by_agent 1
	inotify_held_by_agent 2
	inotify_held_by_agent 3
	inotify_held_by_agent 4
}

# inotify_real CMD...: a program that prints "queued" with events queued and
# reads them once go.1 exists: checkpoint --kill there, restart, and the
# restarted program hears them all, as a straight run does
inotify_real() {
	PCMD=("$@")
	straight_start 0 "${PCMD[@]}"
	touch "$TD/straight.tmp/go.1"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "queued"
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	inotify_go 1
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
	inotify_held_by_agent 1
}

# inotify_node: Node's fs.watch (tests/real/inotify_watch.js: libuv, which
# makes its descriptor through libc) with create, write, rename and delete
# events queued
t_inotify_node() {
	need_cmd node
	inotify_real "$(command -v node)" "$ROOT/tests/real/inotify_watch.js"
}

# inotify_python: python3 with ctypes (tests/real/inotify_ctypes.py: the
# descriptor made through the libc handle, unseen, and read with os.read),
# moves and deletes queued
t_inotify_python() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	inotify_real "$PYTHON" "$ROOT/tests/real/inotify_ctypes.py"
}
