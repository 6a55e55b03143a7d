# Asynchronous I/O contexts (io_setup rings) across checkpoints (issue 11;
# src/agent/aio.c counts the requests, src/res/aio.c makes the rings again).
# tests/progs/aio_ring.c: two contexts made with raw system calls, each
# round leaving events unreaped in the rings while the checkpoints land
# ("round K: ... left"), reaped after every restart with their fields.
#   aio_ring       the standard flow (two checkpoint --kill and restarts)
#   aio_ring_live  live checkpoints too, before and after the restarts
# Sourced by tests/run.sh.

t_aio_ring() { std aio_ring 0 3 4; }

t_aio_ring_live() { live_flow aio_ring 0 1 2 2 3 4; }
