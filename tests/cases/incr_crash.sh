# tests/cases/incr_crash.sh - sourced by tests/run.sh.

# crash safety of incremental checkpoints.  Generation 1 full (step 1),
# 2 incremental (step 2), then:
#  - a `checkpoint --incremental` client is SIGKILLed while its checkpoint
#    runs; the next checkpoint --incremental must commit (G3, still step 2),
#    and any cohort-merge process seen in the next 2 s is SIGKILLed;
#  - step 3: checkpoint --incremental (G4), merges hunted again;
#  - step 4: a checkpoint --incremental is started and, as soon as its
#    temporary directory shows (or it ended), the whole tree - coordinator,
#    group init, program, snapshot writers, merges - is SIGKILLed at once.
# Then: `cohort verify IMG/NAME` must pass (nothing half-written may look
# committed), the newest committed generation (G4, or the one of the crash
# if it committed first) must restart to the rest of the native output, so
# must G3 (whose merge may have been killed), and verify must pass again.
# What was hit where depends on timing (noted in the details); what is
# checked does not.
t_incr_crash() {
	incr_straight
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local i n g3 g4 newest step
	incr_wait_step run0 1
	ickpt ck1 --full
	: >"$TT/go.1"
	incr_wait_step run0 2
	ickpt ck2 --incremental
	[ "$IKIND" = incremental ] || fail "checkpoint --incremental at step 2 has kind '$IKIND'"

	# the client killed in the middle
	incr_ckpt_midway ckk
	bg_kill9 ckk
	note "checkpoint client SIGKILLed at step 2 ($SEEN): status $RC"
	ickpt ck3 --incremental
	[ "$IKIND" = incremental ] || fail "checkpoint --incremental after a killed client has kind '$IKIND'"
	g3=$IGEN
	[ "$g3" -ge 3 ] || fail "checkpoint after generation 2 committed generation $g3"
	n=$(incr_hunt_merges 2)
	note "generation $g3 (step 2): $n cohort-merge process(es) killed"
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "the group ended after a merge was killed (status $RC)"; }

	: >"$TT/go.2"
	incr_wait_step run0 3
	ickpt ck4 --incremental
	[ "$IKIND" = incremental ] || fail "checkpoint --incremental at step 3 has kind '$IKIND'"
	g4=$IGEN
	[ "$g4" -gt "$g3" ] || fail "checkpoint at step 3 committed generation $g4, not after $g3"
	n=$(incr_hunt_merges 2)
	note "generation $g4 (step 3): $n cohort-merge process(es) killed"

	# the crash: everything at once while a checkpoint runs
	: >"$TT/go.3"
	incr_wait_step run0 4
	local victims
	victims=$(tree_pids "$(cat "$TD/run0.pid")")	# listed beforehand: killed at once
	incr_ckpt_midway ckc
	# (stderr of the block: bash's "Killed" notices of the background jobs)
	{
		# shellcheck disable=SC2086
		kill -9 $victims
		for _ in 1 2 3; do
			victims=$(tree_pids "$(cat "$TD/run0.pid")"; our_comm_pids cohort-merge; our_comm_pids cohort-dump)
			[ -n "$victims" ] && kill -9 $victims
			sleep 0.05
		done
		bg_wait ckc
		note "crash during the checkpoint at step 4 ($SEEN): its client exited with status $RC"
		bg_wait run0
	} 2>/dev/null
	grep -q '^RESULT' "$TD/run0.out" && fail "the program finished before the crash"

	newest=$(ls -d "$IMG/$GNAME"/gen-[0-9]*/manifest 2>/dev/null | sed 's|.*/gen-0*\([0-9][0-9]*\)/manifest$|\1|' | sort -n | tail -n 1)
	[ -n "$newest" ] || fail "no committed generation left after the crash"
	[ "$newest" -ge "$g4" ] || fail "generation $g4 is gone after the crash (newest left: $newest)"
	step=3
	[ "$newest" -gt "$g4" ] && step=4
	note "newest committed generation after the crash: $newest (step $step)"
	incr_verify "after the crash"
	incr_go_all
	incr_restart rn "$step"
	incr_restart r3 2 --generation "$g3"
	incr_verify "after the restarts"
}

# incr_hunt_merges SECS: for SECS seconds, SIGKILL every cohort-merge
# process of ours as soon as it is seen; prints how many were killed
incr_hunt_merges() {
	local end=$((SECONDS + $1)) n=0 p
	while [ $SECONDS -lt "$end" ]; do
		for p in $(our_comm_pids cohort-merge); do
			kill -9 "$p" 2>/dev/null && n=$((n + 1))
		done
		sleep 0.01
	done
	echo "$n"
}
# incr_tmp_mark: remember the temporary (uncommitted) entries of IMG/NAME;
# incr_tmp_seen: there is one that was not there then (builtins only: it
# is polled while a checkpoint of a few milliseconds runs)
incr_tmp_mark() {
	local f
	TMP_BEFORE=" "
	for f in "$IMG/$GNAME"/.*tmp* "$IMG/$GNAME"/*tmp*; do
		[ -e "$f" ] && TMP_BEFORE+="$f "
	done
}

incr_tmp_seen() {
	local f
	for f in "$IMG/$GNAME"/.*tmp* "$IMG/$GNAME"/*tmp*; do
		[ -e "$f" ] && [[ $TMP_BEFORE != *" $f "* ]] && return 0
	done
	return 1
}

# incr_ckpt_midway TAG: start `checkpoint --incremental` as TAG and return as
# soon as its temporary generation directory shows (or it has ended);
# SEEN says which
incr_ckpt_midway() {
	local tag=$1 cpid i
	incr_tmp_mark
	bg_start "$tag" "$COHORT" checkpoint "$GNAME" --images "$IMG" --incremental --json
	cpid=$(cat "$TD/$tag.pid")
	SEEN="no temporary directory seen"
	for ((i = 0; i < 1000; i++)); do
		incr_tmp_seen && { SEEN="killed once its temporary directory showed"; break; }
		kill -0 "$cpid" 2>/dev/null || { SEEN="it had ended already"; break; }
		sleep 0.002
	done
}
