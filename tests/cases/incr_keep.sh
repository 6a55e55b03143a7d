# tests/cases/incr_keep.sh - sourced by tests/run.sh.

# timed checkpoints with --full-every 3 and --keep 4: generations 1, 4, 7...
# are full and the others incremental; at most 4 generations stay (more only
# while a kept incremental still needs its chain); the newest one and the
# oldest kept one both restart and finish like a straight run.
t_incr_keep() {
	prog_cmd interval
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" --interval 0.4 --full-every 3 --keep 4 -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local i g kind want n
	for ((i = 0; i < 100; i++)); do
		[ -d "$IMG/$GNAME/gen-000007" ] && break
		bg_alive run0 || break
		sleep 0.1
	done
	[ -d "$IMG/$GNAME/gen-000007" ] || fail "no 7th timed generation after 10 s with --interval 0.4"
	ckpt_or_fail "checkpoint (--kill)" "$GNAME" "$(($("$COHORT" status "$GNAME" --json | sed 's/.*"generation":\([0-9]*\).*/\1/') + 1))" --kill
	bg_wait run0
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
