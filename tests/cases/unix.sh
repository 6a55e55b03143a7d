# Unix sockets of every shape, and descriptors in flight (src/kinds/unix*.c,
# issue 13).
#   unix_shapes       the standard flow (checkpoint --kill, restart, twice) of
#                     tests/progs/unix_shapes.c: listeners with connections
#                     waiting in their backlogs (with data), named, abstract
#                     and unlinked sockets, pairs of every type with data
#                     queued both ways, a shut-down half
#   unix_shapes_live  the same through live checkpoints, then --kill and a
#                     restart (its backlog connections hold no data: a live
#                     checkpoint could read it only by accepting them)
# Sourced by tests/run.sh.

t_unix_shapes() { std unix_shapes 0 0.7 0.7; }

t_unix_shapes_live() { UNIX_SHAPES_LIVE=1 steps_live_flow unix_shapes 9; }

# descriptors in flight (tests/progs/unix_inflight.c): a pipe and a socket,
# held by no process, passed in a queued message between two others on a
# stream, at every checkpoint; the socket has data queued on it
t_unix_inflight() { std unix_inflight 0 0.7 0.7; }

# a program that passes descriptors to forked workers (a pipe holding the
# job, an eventfd for the result), one job always in flight
t_unix_workers() { std unix_inflight 0 0.6 0.6 pipe workers; }

# the same two through live checkpoints, then --kill and a restart
t_unix_inflight_live() { steps_live_flow unix_inflight 9; }
t_unix_workers_live() { UNIX_INFLIGHT_WORKERS=1 steps_live_flow unix_inflight 9; }
