# Exactness after a restart (issue 11):
# tests/progs/timer_overrun.c: a periodic POSIX timer whose signal stays
# queued (its count of expiries goes on in it), and one whose count the
# program keeps reading; both through the checkpoint that takes the queue
# and the restart that makes the timers again (src/res/timers.c,
# "Overruns"; timer_getoverrun and syscall(SYS_timer_getoverrun) in the
# agent).
#   timer_overrun       the standard flow
#   timer_overrun_live  live checkpoints too
# tests/progs/zombie_pgrp.c: zombies whose process group has no live
# process of its number (the leader gone and reaped, or a live leader made
# after the zombie, or a leader that moved to another group), and a zombie
# that led a session another process lives on in (src/restore/restorer.c:
# found_orphan_group, zombie_waits, lends_group, session_member_entry).
#   zombie_pgrp       the standard flow (checkpoint --kill, restart, twice)
#   zombie_pgrp_live  live checkpoints between and after the restarts
# Sourced by tests/run.sh.

t_timer_overrun() { std timer_overrun 0 10 20; }

t_timer_overrun_live() { live_flow timer_overrun 0 8 8 8 8 8; }

t_zombie_pgrp() { std zombie_pgrp 0 3 4; }

t_zombie_pgrp_live() { live_flow zombie_pgrp 0 2 2 2 2 2; }
