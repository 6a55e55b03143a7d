# tests/cases/crash_points.sh - sourced by tests/run.sh: the coordinator (or its
# merge child) killed at each step of writing a generation, through the
# test-only switch COHORT_CRASH=STEP[:N] (cli.h, co_crash_point).  The
# group dies with its coordinator, as in a crash; then the newest
# committed generation must restart and run to the straight run's output,
# and nothing half-done may outlive that restart's start (.tmp-gen-N,
# .tmp-full-N.PID, a full image without its generation), and verify must
# find every generation whole.
#   crash_commit  killed at the second checkpoint: when its images are
#                 written ("written"), before its fsyncs ("fsync"), before
#                 the rename ("rename"): generation 1 comes back; after the
#                 rename ("renamed"): generation 2 comes back
#   crash_merge   the background merge of an incremental killed before it
#                 commits the full image ("merge"); then a pruning with
#                 --keep 1 killed between a generation and its full image
#                 ("prune")
TEST_TIMEOUTS[crash_commit]=120
cr_loop='echo line 0; echo line 1; while [ ! -e "$COHORT_TEST_TMP/go.1" ]; do sleep 0.05; done; echo line 2; echo RESULT done'

# cr_after TAG GEN: restart (run), which must come back from generation GEN,
# leave nothing half-done, and run on to the straight output of the loop
cr_after() {
	local tag=$1 gen=$2 g
	bg_start "$tag" "$COHORT" restart "$GNAME" --images "$IMG" --json
	wait_ready "$GNAME" "$tag"
	local left
	left=$(ls -A "$IMG/$GNAME" | grep -E '^\.tmp-' | tr '\n' ' ')
	[ -z "$left" ] || fail "$tag: half-done state outlived the restart's start: $left"
	for g in "$IMG/$GNAME"/full-*; do
		[ -e "$g" ] || continue
		[ -d "$IMG/$GNAME/gen-${g##*full-}" ] || fail "$tag: $g outlived its generation"
	done
	for g in "$IMG/$GNAME"/gen-*; do
		"$COHORT" verify "$g" >/dev/null 2>"$TD/verify.err" || fail "$tag: verify $g: $(first_line "$TD/verify.err")"
	done
	: >"$TT/go.1"
	bg_wait "$tag"
	rm -f "$TT/go.1"
	grep -q "\"restored_generation\":$gen[,}]" "$TD/$tag.out" ||
		fail "$tag: not restored from generation $gen: $(grep -o '"restored_generation":[0-9]*' "$TD/$tag.out")"
	sed -i '/^{/d' "$TD/$tag.out" # the --json line
}

t_crash_commit() {
	: >"$TT/go.1"
	straight 0 /bin/bash -c "$cr_loop"
	rm -f "$TT/go.1"
	local step want k=0
	for step in written fsync rename renamed; do
		k=$((k + 1))
		rm -rf "${IMG:?}/$GNAME"
		COHORT_CRASH=$step:2 bg_start "c$k" "$BIN/subreaper" "$TD/c$k.left" "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/bash -c "$cr_loop"
		wait_line "$TD/c$k.out" "line 1"
		ckpt_or_fail "checkpoint 1 ($step)" "$GNAME" 1
		timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" >"$TD/ck2.out" 2>"$TD/ck2.err" &&
			fail "checkpoint 2 went through a crash at '$step'"
		bg_wait "c$k"
		[ ! -s "$TD/c$k.left" ] || fail "the group outlived its coordinator's crash at '$step': $(tr '\n' ' ' <"$TD/c$k.left")"
		want=1
		[ $step = renamed ] && want=2
		cr_after "r$k" $want
		final_check 0 "$RC" "r$k" "c$k" "r$k"
	done
}

t_crash_merge() {
	: >"$TT/go.1"
	straight 0 /bin/bash -c "$cr_loop"
	rm -f "$TT/go.1"
	COHORT_CRASH=merge bg_start m0 "$BIN/subreaper" "$TD/m0.left" "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/bash -c "$cr_loop"
	wait_line "$TD/m0.out" "line 1"
	ckpt_or_fail "checkpoint 1 (full)" "$GNAME" 1
	ckpt_or_fail "checkpoint 2 (incremental: its merge dies)" "$GNAME" 2 --incremental
	ckpt_or_fail "checkpoint 3 (--kill)" "$GNAME" 3 --incremental --kill
	bg_wait m0
	cr_after m1 3
	final_check 0 "$RC" m1 m0 m1
	# pruning with --keep 1, killed between generation 1 and its full image
	rm -rf "${IMG:?}/$GNAME"
	COHORT_CRASH=prune bg_start p0 "$BIN/subreaper" "$TD/p0.left" "$COHORT" run --name "$GNAME" --images "$IMG" --keep 1 -- /bin/bash -c "$cr_loop"
	wait_line "$TD/p0.out" "line 1"
	ckpt_or_fail "checkpoint 1 (full)" "$GNAME" 1
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" >"$TD/ck2.out" 2>"$TD/ck2.err"
	bg_wait p0
	[ ! -s "$TD/p0.left" ] || fail "the group outlived its coordinator's crash while pruning: $(tr '\n' ' ' <"$TD/p0.left")"
	[ -d "$(gen_dir "$GNAME" 2)" ] || fail "generation 2 was not committed before the pruning"
	[ ! -d "$(gen_dir "$GNAME" 1)" ] || fail "the pruning did not remove generation 1"
	cr_after p1 2
	final_check 0 "$RC" p1 p0 p1
}

# merge_wait: `cohort restart` right after `checkpoint --incremental --kill`
# finds the images' LOCK held by the background merge of that checkpoint
# (here held at its commit on purpose: COHORT_CRASH=merge:/FILE).  It must
# say it waits for that merge, wait, and come back from the incremental
# once the merge has ended (it used to fail: "in use by another cohort").
t_merge_wait() {
	: >"$TT/go.1"
	straight 0 /bin/bash -c "$cr_loop"
	rm -f "$TT/go.1"
	COHORT_CRASH=merge:$TD/merge.go bg_start w0 "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/bash -c "$cr_loop"
	wait_line "$TD/w0.out" "line 1"
	ckpt_or_fail "checkpoint 1 (full)" "$GNAME" 1
	ckpt_or_fail "checkpoint 2 (--incremental --kill: its merge waits)" "$GNAME" 2 --incremental --kill
	bg_wait w0
	[ ! -e "$IMG/$GNAME/full-000002" ] || fail "the merge went on to its commit before it was let"
	bg_start w1 "$COHORT" restart "$GNAME" --images "$IMG" --json
	wait_for "restart did not say it waits for the merge" grep -q "waiting for the background merge" "$TD/w1.err"
	"$COHORT" status "$GNAME" >/dev/null 2>&1 && fail "the group runs again while the merge holds its images"
	: >"$TD/merge.go"
	wait_ready "$GNAME" w1
	[ -e "$IMG/$GNAME/full-000002" ] || fail "the restart went on before the merge had committed full-2"
	: >"$TT/go.1"
	bg_wait w1
	rm -f "$TT/go.1"
	grep -q '"restored_generation":2[,}]' "$TD/w1.out" || fail "not restored from generation 2: $(first_line "$TD/w1.out")"
	sed -i '/^{/d' "$TD/w1.out"
	final_check 0 "$RC" w1 w0 w1
}
