# Exactness after a restart (issue 11):
# tests/progs/zombie_pgrp.c: zombies whose process group has no live
# process of its number (the leader gone and reaped, or a live leader made
# after the zombie, or a leader that moved to another group), and a zombie
# that led a session another process lives on in (src/restore/restorer.c:
# found_orphan_group, zombie_waits, lends_group, session_member_entry).
#   zombie_pgrp       the standard flow (checkpoint --kill, restart, twice)
#   zombie_pgrp_live  live checkpoints between and after the restarts
# Sourced by tests/run.sh.

t_zombie_pgrp() { std zombie_pgrp 0 3 4; }

t_zombie_pgrp_live() { live_flow zombie_pgrp 0 2 2 2 2 2; }
