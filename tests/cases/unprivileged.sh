# tests/cases/unprivileged.sh - sourced by tests/run.sh: a group started by
# an unprivileged user.

# shm_counters (four processes, anonymous shared memory, a memfd, pipes) run,
# checkpointed and restarted twice by user nobody, through the standard
# flow: cohort then puts the group in a user namespace of its own (no root
# needed for its PID, mount and time namespaces or for set_tid at restart)
# and reads shared memory without /proc/PID/map_files.  The binaries are
# copied where nobody can reach them; the coordinator must run as nobody in
# a user namespace of its own, and after the restart no process of the
# group may hold a capability (the restorer's CAP_CHECKPOINT_RESTORE is
# dropped by every thread).
UNPRIV_USER=nobody
t_unprivileged() {
	unpriv_setup shm_counters
	FLOW_CHECK=unprivileged_check FLOW_CHECK_RESTARTED=unprivileged_nocaps \
		flow_standard 0 4 4 pipe "$U/bin/shm_counters"
	[ "$(stat -c %u "$(gen_dir "$GNAME" 2)/manifest")" = "$uid" ] || fail "generation 2 is not owned by $UNPRIV_USER"
}

# memfd_state (tests/progs/memfd_state.c) the same way, by user nobody: its
# memfds come back with their names, modes, seals and descriptions (each
# opened again by init, in the group's user namespace), a read-write
# description of a memfd of mode 0400 among them, and a memfd only mapped,
# read through /proc/PID/mem (no map_files), with its name and content
t_memfd_unprivileged() {
	unpriv_setup memfd_state
	flow_standard 0 4 4 pipe "$U/bin/memfd_state"
}

# mem_shared_twice (exact_mem.sh) by user nobody: a memfd mapped only,
# twice, whose read-only window comes first, read through /proc/PID/mem
# (no map_files): every page of both windows back
t_mem_twice_unprivileged() {
	unpriv_setup mem_shared_twice
	FLOW_DOWN=twice_overwrite flow_standard 0 4 4 pipe "$U/bin/mem_shared_twice"
}

# mem_shared_ro (exact_mem.sh) by user nobody: the memfds and the deleted
# file only mapped, read through /proc/PID/mem, come back mapped through a
# read-only open where mprotect could not make them writable
t_mem_ro_unprivileged() {
	unpriv_setup mem_shared_ro
	flow_standard 0 4 4 pipe "$U/bin/mem_shared_ro"
}

# unpriv_setup PROG: cohort and test program PROG copied to $U/bin, owned by
# $UNPRIV_USER (uid $uid), COHORT a wrapper that runs cohort as that user,
# IMG its images and COHORT_TEST_TMP its own directory (skips without root)
unpriv_setup() {
	[ "$(id -u)" = 0 ] || skip "needs root to become $UNPRIV_USER (as a user, every test is unprivileged)"
	id -u "$UNPRIV_USER" >/dev/null 2>&1 || skip "no user $UNPRIV_USER"
	command -v runuser >/dev/null || skip "runuser not found"
	local b
	U=$TD/u
	uid=$(id -u "$UNPRIV_USER")
	chmod 711 "$WORK" "$TD"
	mkdir -p "$U/bin" "$U/run" "$U/img" "$U/tmp"
	for b in cohort libcohort.so cohort-restore; do cp "$(dirname "$COHORT")/$b" "$U/bin/" || fail "cannot copy $b"; done
	cp "$BIN/$1" "$U/bin/" || fail "cannot copy $1"
	chown -R "$UNPRIV_USER" "$U"
	chmod 700 "$U/run"
	printf '#!/bin/sh\nexec runuser -u %s -- env COHORT_RUN_DIR=%s %s "$@"\n' "$UNPRIV_USER" "$U/run" "$U/bin/cohort" >"$U/cohort"
	chmod 755 "$U/cohort"
	COHORT=$U/cohort IMG=$U/img COHORT_TEST_TMP=$U/tmp
}

unprivileged_coord() {
	"$COHORT" status "$GNAME" --json | sed -n 's/.*"coordinator_pid":\([0-9]*\).*/\1/p'
}
unprivileged_check() {
	local coord
	coord=$(unprivileged_coord)
	[ -n "$coord" ] || fail "cohort status --json names no coordinator_pid"
	[ "$(stat -c %u "/proc/$coord")" = "$(id -u "$UNPRIV_USER")" ] || fail "the coordinator does not run as $UNPRIV_USER"
	[ "$(readlink "/proc/$coord/ns/user")" != "$(readlink /proc/self/ns/user)" ] || fail "the coordinator is in the first user namespace"
}
unprivileged_nocaps() {
	local coord p n=0
	coord=$(unprivileged_coord)
	[ -n "$coord" ] || fail "cohort status --json names no coordinator_pid"
	for p in $(grep -lsxF shm_counters /proc/[0-9]*/comm); do
		p=${p#/proc/}
		p=${p%/comm}
		[ "$(readlink "/proc/$p/ns/user")" = "$(readlink "/proc/$coord/ns/user")" ] || continue
		for t in /proc/$p/task/*; do
			n=$((n + 1))
			grep -q '^CapEff:[[:space:]]*0*$' "$t/status" || fail "restored thread $t holds capabilities: $(grep '^Cap' "$t/status" | tr '\n' ' ')"
			grep -q '^CapAmb:[[:space:]]*0*$' "$t/status" || fail "restored thread $t holds ambient capabilities"
		done
	done
	[ $n -ge 4 ] || fail "found $n threads of the restored shm_counters, expected at least 4"
}
