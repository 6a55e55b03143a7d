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
# (40 steps: the end gate cannot hold a program that chrooted, and with a
# build beside the suite the last 10 of 20 ran out before checkpoint 3)
t_chroot_live() { chroot_needs_root; FLOW_ARGS="one 40" steps_live_flow chroot_root 10; }
t_chroot_family_live() { chroot_needs_root; FLOW_ARGS="family 40" steps_live_flow chroot_root 10; }

# chroot_exec: a shell exec'd inside a chroot that has the system and the
# agent's library bound in at their paths (a build chroot), running
# commands there: its forks and execs register from inside the chroot
# (stepping out to the group's root and back), and all come back in it.
# The bind mounts are made only in mount namespaces of their own (of the
# native run; of each cohort command, whose group copies them): never in
# the host's, where removing the test directory would follow them.
t_chroot_exec() {
	chroot_needs_root
	command -v unshare >/dev/null || skip "no unshare(1)"
	local tree=$TT/tree real
	real=$(realpath "$COHORT")
	mkdir -p "$tree/tmp"
	cat >"$TD/in_tree.sh" <<-EOS
		# in_tree.sh CMD...: CMD where $tree has the system and the agent bound in
		for d in /usr /bin /sbin /lib /lib64 /lib32 /libx32 "${real%/*}"; do
			[ -e "\$d" ] || continue
			# (a link made once: ln -sfn replaced it each time, through a name of
			# its own, and the native run's 'ls /' once counted 9 entries where
			# it counts 8, while a cohort command of the test came through here)
			if [ -L "\$d" ]; then [ -L "$tree\$d" ] || ln -s "\$(readlink "\$d")" "$tree\$d" 2>/dev/null; continue; fi
			mkdir -p "$tree\$d" && mount --bind "\$d" "$tree\$d" || exit 1
		done
		exec "\$@"
	EOS
	printf '#!/bin/sh\nexec unshare -m --propagation private sh %s %s "$@"\n' "$TD/in_tree.sh" "$real" >"$TD/cohort"
	local loop='cd /tmp; i=0; while [ $i -lt 30 ]; do echo "step $i $(pwd) $(ls / | wc -l)"; i=$((i+1)); sleep 0.1; done; echo "RESULT chroot_exec ok"'
	# the program: under cohort the tree is ready; natively it is made first
	printf '#!/bin/sh\n[ -x %s/bin/sh ] || exec unshare -m --propagation private sh %s "$0"\nexec chroot %s /bin/sh -c %s\n' \
		"$tree" "$TD/in_tree.sh" "$tree" "'$loop'" >"$TD/prog.sh"
	chmod +x "$TD/cohort" "$TD/prog.sh"
	COHORT=$TD/cohort flow_standard 0 4 4 pipe "$TD/prog.sh"
}
