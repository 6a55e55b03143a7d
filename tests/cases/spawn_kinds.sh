# tests/cases/spawn_kinds.sh - sourced by tests/run.sh: the check of the
# spawn_kinds row of tests/cases/std.list.

# spawn_kinds_registered: the clone(3) child of spawn_kinds has registered
spawn_kinds_registered() {
	local n
	n=$("$COHORT" status "$GNAME" --json 2>/dev/null | grep -o '"program":"spawn_kinds"' | wc -l)
	[ "$n" -ge 2 ] || fail "the clone(3) child did not register: status lists $n spawn_kinds process(es)"
}
