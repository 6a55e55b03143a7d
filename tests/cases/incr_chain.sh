# tests/cases/incr_chain.sh - sourced by tests/run.sh: a chain of
# incremental checkpoints and its restarts (t_incr_chain also runs as part
# of zstd_chain in zstd.sh and thp_chain in thp.sh).

# incremental chain: checkpoints at steps 1..5 all with --incremental (the
# first of a run must come out full; the others incremental, each the child
# of the one before), the last one with --kill.  Then restarts of
# (a) the full generation 1;
# (c) generation 4 through its merged full-000004 (which must have been
#     built in the background before checkpoint 5 was taken);
# (b) generation 5 after every full-N is deleted, so that the restart must
#     rebuild it from the chain gen 1 (full) + 2 + 3 (new region) + 4
#     (region cut) + 5;
# each must print the rest of the native output; then `cohort verify` of
# the group must pass.
t_incr_chain() {
	incr_straight
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" ${RUN_OPTS[@]+"${RUN_OPTS[@]}"} -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local s
	for ((s = 1; s <= 5; s++)); do
		incr_wait_step run0 $s
		if [ $s = 5 ]; then
			incr_wait_full 4 "$TMO" || { note_file "run stderr" "$TD/run0.err"; fail "$(full_dir 4) was not built within $TMO s after incremental generation 4 committed"; }
			ickpt ck$s --incremental --kill
		else
			ickpt ck$s --incremental
		fi
		[ "$IGEN" = $s ] || fail "checkpoint at step $s committed generation $IGEN, expected $s"
		if [ $s = 1 ]; then
			[ "$IKIND" = full ] || fail "the first checkpoint of a run (--incremental, no parent) has kind '$IKIND', expected full"
		else
			[ "$IKIND" = incremental ] || fail "checkpoint --incremental at step $s has kind '$IKIND', expected incremental"
			[ "$IPARENT" = $((s - 1)) ] || fail "incremental generation $s has parent '$IPARENT', expected $((s - 1))"
		fi
		[ $s = 5 ] || : >"$TT/go.$s"
	done
	bg_wait run0
	grep -q '^RESULT' "$TD/run0.out" && fail "the program finished although checkpoint 5 had --kill"
	incr_go_all
	# (a)
	incr_restart ra 1 --generation 1
	# (c)
	[ -f "$(full_dir 4)/manifest" ] || fail "$(full_dir 4) disappeared"
	incr_restart rc 4 --generation 4
	# (b)
	incr_wait_full 5 10 || note "note: $(full_dir 5) (the merge of the last generation, taken with --kill) did not appear within 10 s"
	merges_done
	rm -rf "$IMG/$GNAME"/full-*
	incr_restart rb 5 --generation 5
	[ -f "$(full_dir 5)/manifest" ] || note "note: restart --generation 5 did not leave $(full_dir 5) behind"
	incr_verify "after the restarts"
}

# the last-resort method (page hashes, for kernels without uffd-wp), forced
# with COHORT_DIRTY: the same chain of full, incrementals, merges and
# restarts must give the same results, and status must name the method
t_incr_hash() {
	local -x COHORT_DIRTY=page-hash
	bg_start hrun "$COHORT" run --name "${GNAME}h" --images "$IMG" -- /bin/sleep 30
	wait_ready "${GNAME}h" hrun
	"$COHORT" status "${GNAME}h" --json >"$TD/hstatus.json" 2>&1
	"$COHORT" kill "${GNAME}h" --signal KILL >/dev/null 2>&1
	bg_wait hrun
	grep -q '"tracking":"page-hash"' "$TD/hstatus.json" ||
		fail "status does not name the page-hash method: $(cut -c1-200 "$TD/hstatus.json")"
	t_incr_chain
}
