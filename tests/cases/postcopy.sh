# tests/cases/postcopy.sh - sourced by tests/run.sh: `cohort migrate
# --postcopy` (issue 14), on the two hosts and with the helpers of
# tests/harness/mig.sh (mig_*) and migrate.sh's programs.
#   postcopy_small      the 3-process pipeline of shell loops, A -> B with
#                       --postcopy after pre-copy rounds and back with no
#                       rounds, without --copy-files: it ends right
# The others: the pipeline's middle (mig_writer) holds 256 MiB, rewrites 1 %
# of it every 100 ms and checks every page at the end ("mem ok"), and the
# group writes a file of its work directory (--copy-files).
#   postcopy_roundtrip  A -> B with no rounds (--max-rounds 0: every page
#                       of the stop's lazy regions follows the switch) and
#                       back B -> A after pre-copy rounds (the stop's own
#                       pages follow); --json says "post-copy", with the
#                       bytes that followed and the pieces faults asked for
#                       first; B's page streams were sparse at the restart
#                       (COHORT_POSTCOPY_HOLES); the group ends with the
#                       straight run's RESULT
#   postcopy_cut        the link brought down during post-copy (migrate
#                       held once RUNNING has come: COHORT_CRASH=postcopy:/FILE):
#                       the group at B ends with one line (status 70), migrate
#                       exits 1 in one line naming the generation and the
#                       command; that restart at A ends with the RESULT
#   postcopy_killed     migrate killed once the group runs at B (COHORT_CRASH=postcopy):
#                       the same at B; A's coordinator writes the stop's page
#                       data itself and commits it: the restart at A from the
#                       newest generation ends with the RESULT
#   postcopy_resume     the 3-process pipeline: the restore at B fails after a
#                       stop written behind (COHORT_FAULT=fail:memory): migrate
#                       exits 1, the group runs on at A and nothing of the stop,
#                       never committed, is left there; then it migrates with
#                       --postcopy and ends right at B
# The stop of --postcopy is written behind (behind.c): postcopy_roundtrip
# checks that its page data was read from A's parked group (behind_bytes)
# and that a fault asked for a piece not written yet (requests_behind);
# postcopy_cut that the cut leaves it written and committed.  After rounds
# that converged the stop is incremental and small, and is written as any
# stop, its page data following from its committed files: postcopy_roundtrip's
# way back checks that nothing was written behind then.

# pc_num TAG FIELD: the number FIELD of migrate --json TAG
pc_num() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$TD/$1.out"; }

# pc_sparse FILE: the report of COHORT_POSTCOPY_HOLES lists a page stream
# that had less than half of its bytes at the restart
pc_sparse() {
	awk '$3 * 2 < $2 { found = 1 } END { exit !found }' "$1"
}

t_postcopy_small() {
	mig_hosts
	mig_run run0
	mig_receive recvB B
	mig_go A mig1 --json --postcopy
	mig_ok mig1
	grep -q '"mode":"post-copy"' "$TD/mig1.out" || fail "mig1: not post-copy: $(head -c 400 "$TD/mig1.out")"
	migrated run0 "$TO"
	: >"$TT/go.1"
	wait_lines 25 run0 recvB
	mig_receive recvA A
	mig_go B mig2 --postcopy --max-rounds 0
	mig_ok mig2
	grep -q "^group '$GNAME' migrated to $TO: .* 0 rounds, .*, post-copy [0-9]* bytes in " "$TD/mig2.out" ||
		fail "mig2: its line: $(first_line "$TD/mig2.out")"
	migrated recvB "$TO"
	: >"$TT/go.2"
	bg_wait recvA
	final_check 0 "$RC" recvA run0 recvB recvA
}

TEST_TIMEOUTS[postcopy_roundtrip]=240
t_postcopy_roundtrip() {
	local TMO=120
	mig_big_hosts
	mig_run run0
	mig_receive recvB B COHORT_POSTCOPY_HOLES="$TD/holesB"
	mig_go A mig1 --json --copy-files --postcopy --max-rounds 0
	mig_ok mig1
	grep -q '"mode":"post-copy"' "$TD/mig1.out" || fail "mig1: not post-copy: $(head -c 400 "$TD/mig1.out")"
	[ "$(pc_num mig1 postcopy_bytes)" -gt 100000000 ] ||
		fail "mig1: $(pc_num mig1 postcopy_bytes) bytes after the switch, of 256 MiB: $(head -c 500 "$TD/mig1.out")"
	[ "$(pc_num mig1 requests)" -gt 0 ] || fail "mig1: no piece asked for by a fault: $(head -c 500 "$TD/mig1.out")"
	# the stop wrote that data behind: each piece read from A's parked group as it was pushed or asked for
	[ "$(pc_num mig1 behind_bytes)" -gt 100000000 ] ||
		fail "mig1: $(pc_num mig1 behind_bytes) bytes written behind at A: $(head -c 500 "$TD/mig1.out")"
	[ "$(pc_num mig1 requests_behind)" -gt 0 ] ||
		fail "mig1: no fault asked for a piece not written yet at A: $(head -c 600 "$TD/mig1.out")"
	[ -s "$TD/holesB" ] || fail "receive at B reported no sparse file"
	pc_sparse "$TD/holesB" || fail "no page stream was sparse at B's restart: $(tr '\n' '|' <"$TD/holesB")"
	migrated run0 "$TO"
	: >"$TT/go.1"
	wait_lines 25 run0 recvB
	mig_receive recvA A
	mig_go B mig2 --json --copy-files --postcopy
	mig_ok mig2
	grep -q '"mode":"post-copy"' "$TD/mig2.out" || fail "mig2: not post-copy: $(head -c 400 "$TD/mig2.out")"
	[ "$(rounds_of mig2)" -gt 0 ] || fail "mig2: no pre-copy round before the stop: $(head -c 400 "$TD/mig2.out")"
	[ "$(pc_num mig2 postcopy_bytes)" -gt 0 ] || fail "mig2: nothing followed the switch: $(head -c 500 "$TD/mig2.out")"
	if grep -q '"stop":"incremental"' "$TD/mig2.out"; then
		[ "$(pc_num mig2 behind_bytes)" = 0 ] ||
			fail "mig2: an incremental stop was written behind: $(head -c 600 "$TD/mig2.out")"
	fi
	migrated recvB "$TO"
	: >"$TT/go.2"
	bg_wait recvA
	final_check 0 "$RC" recvA run0 recvB recvA
}

# pc_ended_at_b TAG: receive TAG ended its group for the pages it could not get, in one line
pc_ended_at_b() {
	bg_wait "$1"
	[ "$RC" = 70 ] || fail "$1: status $RC, expected 70 (the group ended): $(tr '\n' '|' <"$TD/$1.err")"
	[ "$(grep -c '^cohort: ' "$TD/$1.err")" = 1 ] || fail "$1: not one line: $(tr '\n' '|' <"$TD/$1.err")"
	grep -q "failed: .*post-copy\|post-copy.*cut" "$TD/$1.err" || fail "$1: $(first_line "$TD/$1.err")"
	[ ! -s "$TD/$1.out" ] || fail "$1: the group printed at B: $(first_line "$TD/$1.out")"
}


# pc_migrated_at_a: status at A answers, within 10 s, that the group moved
# to B while its pages are still sent from A (fails the test when status
# does not answer: a migration's hold answers it)
pc_migrated_at_a() {
	local st
	st=$(on A timeout 10 "$COHORT" status "$GNAME" 2>&1) || fail "status at A during the migration: $st"
	case $st in
	"group $GNAME: migrated to $TO, its pages still sent from here,"*) return 0 ;;
	"group $GNAME: migrating (stopped for the switch),"*) return 1 ;;
	*) fail "status at A during the migration: $(echo "$st" | head -n 1)" ;;
	esac
}

TEST_TIMEOUTS[postcopy_cut]=240
t_postcopy_cut() {
	local TMO=120
	mig_big_hosts
	mig_run run0
	mig_receive recvB B
	host A
	bg_start cut "${ON[@]}" env COHORT_CRASH="postcopy:$TD/link.cut" timeout -k 5 "$TMO" "$COHORT" migrate "$GNAME" \
		--to "$TO" --token-file "$TD/token" --copy-files --postcopy --max-rounds 0
	# the group runs at B (migrate has had RUNNING, and holds there); it stays at A, stopped, until
	# the stop's page data is written there (behind.c): only then does its run end
	wait_for "the group to run at B" runs_at B
	# the source's coordinator holds the group until its pages have gone, and says so when asked
	# (status at A answers within moments all along: "migrating" until HOLD_END has come)
	wait_for "status at A to say the group migrated" pc_migrated_at_a
	local st
	st=$(on A timeout 30 "$COHORT" status "$GNAME" --json 2>&1) || fail "status --json at A during post-copy: $st"
	case $st in
	*'"state":"migrating","'*'"migration":"migrated to '"$TO"', its pages still sent from here"'*) ;;
	*) fail "status --json at A during post-copy: $st" ;;
	esac
	sleep 1
	nsenter -t "$PA" -n ip link set va down || fail "cannot bring the link down"
	local t0=$SECONDS
	: >"$TD/link.cut"
	bg_wait cut
	mig_failed cut "restart it here with 'cohort restart $GNAME --generation [0-9]*' (committed in $IMG/A/$GNAME/"
	migrated run0 "$TO"
	pc_ended_at_b recvB
	[ $((SECONDS - t0)) -le 30 ] || fail "the cut link was noticed after $((SECONDS - t0)) s"
	mig_restart_a "$(sed -n "s/.*--generation \([0-9]*\)'.*/\1/p" "$TD/cut.err")"
}

TEST_TIMEOUTS[postcopy_killed]=240
t_postcopy_killed() {
	local TMO=120
	mig_big_hosts
	mig_run run0
	mig_receive recvB B
	{
		COHORT_CRASH=postcopy mig_go A killed --copy-files --postcopy --max-rounds 0
		[ "$RC" = 137 ] || fail "migrate with COHORT_CRASH=postcopy: status $RC, expected 137 (killed)"
		migrated run0 "$TO"
	} 2>/dev/null
	pc_ended_at_b recvB
	local gen
	gen=$(committed_at A | tr ' ' '\n' | sed -n 's/^gen-0*//p' | sort -n | tail -n 1)
	mig_restart_a "$gen"
}

t_postcopy_resume() {
	mig_hosts
	mig_run run0
	mig_receive recvB B COHORT_FAULT=fail:memory
	mig_go A fault --postcopy --max-rounds 0
	mig_failed fault "the group runs on here"
	bg_wait recvB
	[ "$RC" != 0 ] || fail "recvB: status 0 after its restore failed"
	no_generation B
	no_generation A
	: >"$TT/go.1"
	wait_lines 25 run0
	mig_receive recvB2 B
	mig_go A mig2 --json --postcopy --max-rounds 0
	mig_ok mig2
	migrated run0 "$TO"
	: >"$TT/go.2"
	bg_wait recvB2
	final_check 0 "$RC" recvB2 run0 recvB2
}
