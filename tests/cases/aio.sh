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
	refused_then_kept polling "a poll in flight" \
		"^cohort: .*pid [0-9]+: aio ring at [0-9a-f]+: 1 requests still in flight after [0-9]+ ms.*IOCB_CMD_POLL" idle --kill
}
