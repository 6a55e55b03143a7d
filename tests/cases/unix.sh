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
