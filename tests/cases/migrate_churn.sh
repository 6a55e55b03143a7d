# tests/cases/migrate_churn.sh - sourced by tests/run.sh: a program whose
# memory changes shape without pause, migrated back and forth with pre-copy
# rounds (issue 14).
#   migrate_churn  precopy_churn (two threads mapping, unmapping, dropping,
#                  protecting and moving memory, each checking every page of
#                  its own after each change): held at its "halfway" gate,
#                  where it churns scratch memory, it goes A -> B -> A -> B
#                  ... (MIGCHURN_N migrations, 4 unless set), each with
#                  rounds (at most 2: the churn rewrites whole slots, and
#                  on a busy machine 8 rounds of it took a receive past its
#                  time); then it finishes at the last target with the
#                  straight run's RESULT.  A page the rounds or the target's
#                  lazy restart from the chain got wrong ends it with a
#                  message naming the slot and page.
TEST_TIMEOUTS[migrate_churn]=300

t_migrate_churn() {
	local TMO=120 n=${MIGCHURN_N:-4} i from=A to=B run=run0 recv tags=(run0)
	need_prog precopy_churn
	MIG_ARGV=("$BIN/precopy_churn" 600)
	mig_net
	straight_start 0 "${MIG_ARGV[@]}"
	export COHORT_TEST_END_GATE=1
	mig_run run0 1
	wait_line "$TD/run0.out" halfway
	for ((i = 1; i <= n; i++)); do
		recv=recv$i$to
		real_migrate "$from" "$to" "mig$i" "$run" "$recv" --max-rounds 2
		[ "$(rounds_of "mig$i")" -ge 1 ] || fail "mig$i: no pre-copy round: $(head -c 300 "$TD/mig$i.out")"
		tags+=("$recv")
		run=$recv
		from=$to
		[ "$to" = B ] && to=A || to=B
	done
	: >"$TT/halfway"
	: >"$TT/end"
	bg_wait "$run"
	final_check 0 "$RC" "$run" "${tags[@]}"
}
