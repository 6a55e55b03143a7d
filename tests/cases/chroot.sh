# tests/cases/chroot.sh - sourced by tests/run.sh: processes whose root
# directory is not the group's (chroot(2), issue 11) come back in it, with
# their working directory, descriptors (opened inside the root, and before
# the chroot outside it) and mappings (tests/progs/chroot_root.c checks
# them at every step, and the output must be the straight run's):
#   chroot_one          one process in a chroot, the standard flow (two
#                       rounds of checkpoint --kill and restart)
#   chroot_family       it forks a child that keeps its root and one that
#                       chroots again under it (nested), the standard flow
#   chroot_sibling      of two children of a process in the group's root,
#                       one chroots and the other does not, likewise
#   chroot_linked       one process, with the group's socket linked at its
#                       path inside the chroot (its manager connects from
#                       there, and leaves on PREPARE; after a restart the
#                       link is a dead socket), likewise
#   chroot_live         one process: live checkpoints (the snapshot records
#                       the paths) and a --kill, then a restart
#   chroot_family_live  the family likewise
# Those that cannot come back are refused: exact_attrs.sh, attr_chroot_*.

chroot_needs_root() { [ "$(id -u)" = 0 ] || skip "chroot needs root"; }

t_chroot_one() { chroot_needs_root; std chroot_root 0 4 4 pipe one; }
t_chroot_family() { chroot_needs_root; std chroot_root 0 4 4 pipe family; }
t_chroot_sibling() { chroot_needs_root; std chroot_root 0 4 4 pipe sibling; }
t_chroot_linked() { chroot_needs_root; std chroot_root 0 4 4 pipe linked; }
t_chroot_live() { chroot_needs_root; FLOW_ARGS=one steps_live_flow chroot_root 10; }
t_chroot_family_live() { chroot_needs_root; FLOW_ARGS=family steps_live_flow chroot_root 10; }
