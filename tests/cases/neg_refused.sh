# tests/cases/neg_refused.sh - sourced by tests/run.sh: what cohort refuses
# at once (unknown groups, static binaries).

# negative: unknown group names
t_neg_unknown_group() {
	local g=nosuchgroup-$$ what rc
	for what in status checkpoint restart; do
		case $what in
		status) timeout -k 5 30 "$COHORT" status "$g" >"$TD/$what.out" 2>"$TD/$what.err" </dev/null ;;
		*) timeout -k 5 30 "$COHORT" "$what" "$g" --images "$IMG" >"$TD/$what.out" 2>"$TD/$what.err" </dev/null ;;
		esac
		rc=$?
		note_file "$what stderr" "$TD/$what.err" 3
		[ "$rc" != 0 ] || fail "'$what $g' succeeded"
		[ "$rc" != 124 ] || fail "'$what $g' timed out"
		[ "$what" = status ] && continue
		[ -s "$TD/$what.err" ] || fail "'$what $g' printed no error message"
		[ "$(wc -l <"$TD/$what.err")" = 1 ] || fail "'$what $g': expected one line on stderr, got $(wc -l <"$TD/$what.err")"
	done
}

# negative: static binaries cannot be run under cohort
t_neg_static() {
	local sp=$WORK/static_exit_status
	if [ ! -x "$sp" ]; then
		gcc -std=gnu11 -O2 -static -pthread -o "$sp" "$PROGS/exit_status.c" >"$TD/gcc.log" 2>&1 ||
			skip "cannot link statically (libc.a missing?)"
	fi
	timeout -k 5 30 "$COHORT" run --name "$GNAME" --images "$IMG" -- "$sp" >"$TD/run.out" 2>"$TD/run.err" </dev/null
	local rc=$?
	note_file "run stderr" "$TD/run.err" 3
	[ "$rc" != 0 ] || fail "run of a static binary succeeded"
	[ "$rc" != 124 ] || fail "run of a static binary timed out"
	[ ! -s "$TD/run.out" ] || fail "the static binary was run"
	grep -qi static "$TD/run.err" || fail "error does not mention 'static': $(first_line "$TD/run.err")"
}
