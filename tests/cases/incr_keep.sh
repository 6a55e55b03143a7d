# tests/cases/incr_keep.sh - sourced by tests/run.sh.

# ik_newest N: a generation N or newer is committed (older ones are pruned)
ik_newest() {
	local g
	for g in "$IMG/$GNAME"/gen-*/manifest; do
		[ -e "$g" ] || continue
		g=${g%/manifest}
		[ $((10#${g##*gen-})) -ge "$1" ] && return 0
	done
	return 1
}

# timed checkpoints with --full-every 3 and --keep 4: generations 1, 4, 7...
# are full and the others incremental; at most 4 generations stay (more only
# while a kept incremental still needs its chain); the newest one and the
# oldest kept one both restart and finish like a straight run.  The
# program waits at its end (common.h's end gate) until the --kill is taken,
# and the wait for the 7th generation is for the generation (TMO bound),
# not 10 s of the test's: on a busy machine the program ran its 5.5 s out
# first ("no running group"), or the 7 generations took longer than 10 s.
t_incr_keep() {
	prog_cmd interval
	straight_start 0 "${PCMD[@]}"
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" --interval 0.4 --full-every 3 --keep 4 -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local i g kind want n
	wait_for "a 7th timed generation with --interval 0.4" ik_newest 7
	# (its generation is not known in advance: a timed one may come first)
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --kill >"$TD/ck.out" 2>"$TD/ck.err" ||
		{ note_file "checkpoint stderr" "$TD/ck.err"; fail "checkpoint --kill failed: $(first_line "$TD/ck.err")"; }
	bg_wait run0
	: >"$TT/end"
	merges_done
	local gens=("$IMG/$GNAME"/gen-*)
	n=${#gens[@]}
	[ "$n" -le 5 ] || fail "--keep 4: $n generations left: $(cd "$IMG/$GNAME" && echo gen-*)"
	for g in "${gens[@]}"; do
		"$COHORT" inspect "$g" --json >"$TD/insp.json" 2>"$TD/insp.err" || fail "inspect $g: $(first_line "$TD/insp.err")"
		kind=$(sed 's/.*"kind":"\([a-z]*\)".*/\1/;q' "$TD/insp.json")
		i=$((10#${g##*gen-}))
		want=incremental
		[ $(((i - 1) % 3)) = 0 ] && want=full
		# the last one came from `checkpoint --kill` (full) unless it is a timed one
		[ "$g" = "${gens[-1]}" ] && [ "$kind" = full ] && want=full
		[ "$kind" = "$want" ] || fail "generation $i is $kind, expected $want with --full-every 3"
	done
	for g in "${gens[-1]}" "${gens[0]}"; do
		i=$((10#${g##*gen-}))
		bg_start "r$i" "$COHORT" restart "$GNAME" --images "$IMG" --generation "$i"
		bg_wait "r$i"
		check_suffix "r$i" run0 || fail "restart of generation $i: wrong output"
		[ "$RC" = 0 ] || fail "restart of generation $i: status $RC: $(first_line "$TD/r$i.err")"
	done
}
