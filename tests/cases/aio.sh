# Asynchronous I/O contexts (io_setup rings) across checkpoints (issue 11;
# src/agent/aio.c counts the requests, src/res/aio.c makes the rings again).
# tests/progs/aio_ring.c: two contexts made with raw system calls, each
# round leaving events unreaped in the rings while the checkpoints land
# ("round K: ... left"), reaped after every restart with their fields; a
# child forked with copies of the rings (no context) reads them at its end.
#   aio_ring       the standard flow (two checkpoint --kill and restarts)
#   aio_ring_live  live checkpoints too, before and after the restarts
#   aio_libaio, aio_libaio_live  the same flows through libaio (below)
#   aio_poll_refused  a request in flight refuses the checkpoint (below)
# Sourced by tests/run.sh.

t_aio_ring() { std aio_ring 0 3 4; }

t_aio_ring_live() { live_flow aio_ring 0 1 2 2 3 4; }

# tests/progs/aio_libaio.c: the same through libaio, with a reaper thread
# that waits in io_getevents all along (each checkpoint interrupts it)
t_aio_libaio() { std aio_libaio 0 3 4; }

t_aio_libaio_live() { live_flow aio_libaio 0 1 2 2 3 4; }

# tests/progs/aio_poll.c: an IOCB_CMD_POLL on a pipe nobody writes is in
# flight (the kernel never completes it): the checkpoint is refused in one
# line naming the process and the ring, after the bounded wait; the
# program runs on, completes the poll itself, and a checkpoint --kill with
# nothing in flight then works; the restart ends as the native run does.
t_aio_poll_refused() {
	prog_cmd aio_poll
	: >"$TT/go.1"
	: >"$TT/go.2"
	straight_start 0 "${PCMD[@]}"
	rm -f "$TT/go.1" "$TT/go.2"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" polling
	ckpt_refused run0 "a poll in flight" \
		"^cohort: .*pid [0-9]+: aio ring at [0-9a-f]+: 1 requests still in flight after [0-9]+ ms.*IOCB_CMD_POLL" --kill
	: >"$TT/go.1"
	wait_line "$TD/run0.out" idle
	ckpt_or_fail "checkpoint 1 (--kill, the poll done)" "$GNAME" 1 --kill
	bg_wait run0
	: >"$TT/go.2"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}
