# tests/cases/child_killed.sh - sourced by tests/run.sh: a child of the
# checkpoint (snapshot writer, pre-copy, merge of the pre-copy) SIGKILLed
# while it works.

# kill_during COMM JSON: start `checkpoint --json` (output in JSON) and
# SIGKILL the process of ours named COMM as soon as it shows; KD_RC gets the
# checkpoint's status and KD_CAUGHT 1 if COMM was caught alive
kill_during() {
	local comm=$1 out=$2 ck w p
	KD_CAUGHT=0
	rm -rf "$IMG/$GNAME"
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --json >"$out" 2>"$out.err" &
	ck=$!
	for ((w = 0; w < 1000; w++)); do
		p=$(our_comm_pids "$comm")
		if [ -n "$p" ]; then
			kill -KILL $p 2>/dev/null && KD_CAUGHT=1
			break
		fi
		kill -0 $ck 2>/dev/null || break
		sleep 0.002
	done
	wait $ck
	KD_RC=$?
}

# the pre-copy child (cohort-precopy) SIGKILLed while it reads: the
# checkpoint still commits, with every process saved whole by its snapshot
# (precopied 0); the merge child (cohort-premerge) SIGKILLed: the checkpoint
# is taken again at once without a pre-copy ("tries" 2, precopied 0) and
# commits, and the group runs on; then a --kill checkpoint and the restart
# must finish like the straight run
t_precopy_killed() {
	gated_bigmem
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	group_status
	[ "$(json_fields "$TD/status.json" tracking)" = uffd-wp ] || skip "no uffd-wp tracking: nothing is pre-copied"
	local try ok=0
	for ((try = 1; try <= 5 && !ok; try++)); do
		kill_during cohort-precopy "$TD/ckp.json"
		[ $KD_CAUGHT = 1 ] || continue
		[ $KD_RC = 0 ] || { note_file "checkpoint stderr" "$TD/ckp.json.err"; fail "the checkpoint whose pre-copy was killed failed (status $KD_RC): $(first_line "$TD/ckp.json.err")"; }
		[ "$(json_fields "$TD/ckp.json" precopied)" = 0 ] || fail "pre-copy killed, but --json says precopied $(json_fields "$TD/ckp.json" precopied)"
		ok=1
	done
	[ $ok = 1 ] || fail "no pre-copy was caught alive in 5 tries"
	ok=0
	for ((try = 1; try <= 5 && !ok; try++)); do
		kill_during cohort-premerge "$TD/ckm.json"
		[ $KD_CAUGHT = 1 ] || continue
		[ $KD_RC = 0 ] || { note_file "checkpoint stderr" "$TD/ckm.json.err"; fail "the checkpoint whose merge was killed failed (status $KD_RC): $(first_line "$TD/ckm.json.err")"; }
		[ "$(json_fields "$TD/ckm.json" tries)" -ge 2 ] || { note "try $try: the merge was caught after it had finished"; continue; }
		[ "$(json_fields "$TD/ckm.json" precopied)" = 0 ] || fail "merge killed, but the try after it says precopied $(json_fields "$TD/ckm.json" precopied)"
		ok=1
	done
	[ $ok = 1 ] || fail "no merge of a pre-copy was caught alive in 5 tries"
	still_running_then_restart "the killed pre-copy and merge"
}

# failed_cleanly ERRFILE PATTERN WHAT: the failed checkpoint said so in one
# line naming WHAT (PATTERN) and left nothing in the images directory
failed_cleanly() {
	grep -q "$2" "$1" || fail "the error does not name the $3: $(first_line "$1")"
	[ "$(wc -l <"$1")" = 1 ] || fail "expected one line on stderr, got $(wc -l <"$1")"
	# (its LOCK is the running group's: IMAGES/NAME/LOCK, held for the group's life)
	[ -z "$(ls -A "$IMG/$GNAME" 2>/dev/null | grep -vx LOCK)" ] || fail "the failed checkpoint left $(ls -A "$IMG/$GNAME")"
}

# gated_bigmem: PCMD is bigmem, which then waits for go.1 before it ends
# (the tries of these tests take as long as they take: the program must
# still run at the last of them), and its straight run, with go.1 there
gated_bigmem() {
	prog_cmd bigmem
	PCMD=(/bin/bash -c '"$0" && while [ ! -e "$COHORT_TEST_TMP/go.1" ]; do sleep 0.05; done' "${PCMD[@]}")
	: >"$TT/go.1"
	straight 0 "${PCMD[@]}"
	rm -f "$TT/go.1"
}

# still_running_then_restart WHAT: run0 survived WHAT; a checkpoint --kill
# and the restart must finish like the straight run
still_running_then_restart() {
	bg_alive run0 || { bg_wait run0; fail "the program ended after $1 (status $RC): $(first_line "$TD/run0.err")"; }
	rm -rf "${IMG:?}/$GNAME" # (what the checkpoints before committed, if any)
	ckpt_or_fail "checkpoint after $1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	: >"$TT/go.1"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# bigmem (256 MiB): checkpoints are started until one of them is caught
# with its snapshot writer (cohort-dump, the forked copy of the program
# that writes the image while the program runs on) alive; that writer is
# SIGKILLed.  The checkpoint must fail at once (well before the 30 s the
# coordinator would wait) with one line naming the writer, commit nothing,
# and leave the program running; the next checkpoint (--kill) commits and
# the restart finishes the run as a straight run does.
t_writer_killed() {
	gated_bigmem
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local try t0 caught=0
	for ((try = 1; try <= 5 && !caught; try++)); do
		t0=$SECONDS
		kill_during cohort-dump "$TD/ckw.json"
		caught=$KD_CAUGHT
		local rc=$KD_RC
		[ $caught = 1 ] || continue
		note "try $try: writer killed; checkpoint status $rc after $((SECONDS - t0)) s"
		[ $rc != 0 ] || { caught=0; note "the writer was caught after it had finished"; continue; }
		[ $rc != 124 ] || fail "the checkpoint whose writer was killed timed out"
		[ $((SECONDS - t0)) -lt 10 ] || fail "the checkpoint whose writer was killed took $((SECONDS - t0)) s to fail"
		failed_cleanly "$TD/ckw.json.err" "image writer died" writer
	done
	[ $caught = 1 ] || fail "no checkpoint was caught with its writer alive in 5 tries"
	still_running_then_restart "the killed writer"
}
