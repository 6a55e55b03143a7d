# tests/cases/migrate.sh - sourced by tests/run.sh: `cohort migrate` and
# `cohort receive` (issue 14, stop-and-copy).  Two network namespaces
# joined by a veth pair (tests/harness/hosts.sh) act as two hosts, A (10.77.0.1) and B (10.77.0.2); each side
# has its own run directory (TD/runA, TD/runB) and images directory
# (IMG/A, IMG/B).  The program is a 3-process pipeline (a bash loop | sed |
# a bash loop) that stops at go files, so that each migration happens at a known
# line and its output can be compared with the straight run's.
#   migrate_roundtrip  A -> B and back B -> A; the pieces of stdout (the run
#                      on A, receive on B, receive on A) are the straight
#                      run's, the run and the first receive exit 0 saying
#                      where the group went, migrate --json has its fields
#   migrate_refused    a wrong token (both sides say so in one line, exit 1),
#                      a group that does not run at the source (both sides
#                      exit 1) and a token file others may read: the group
#                      runs on and finishes right, B keeps nothing
#   migrate_cut        the receiver killed mid-stream (COHORT_CRASH=received:1),
#                      then a restore that fails on the target (COHORT_FAULT),
#                      then migrate killed once the target has the group back
#                      but not yet running (COHORT_CRASH=ready): each time
#                      the group runs on at the source and finishes right,
#                      never runs at B, and B keeps no generation
#   migrate_ckpt       a migrated group checkpointed (--kill) and restarted
#                      on the target finishes right
#   migrate_files      a file the group holds open is another at the target
#                      (a bind mount in the receiver's mount namespace): the
#                      target refuses naming it, before the generation is
#                      sent; the group runs on at the source

# The pipeline: 40 numbered lines, stopping after line 10 until go.1 exists
# and after line 25 until go.2; sed renames them and the last process prints each with
# a running sum, and the total (a shell loop: awk may read its pipe in blocks, and
# hold the lines a test waits for).
MIG_PROG='for ((i = 1; i <= 40; i++)); do echo "n $i"
	[ $i = 10 ] && while [ ! -e "$COHORT_TEST_TMP/go.1" ]; do sleep 0.02; done
	[ $i = 25 ] && while [ ! -e "$COHORT_TEST_TMP/go.2" ]; do sleep 0.02; done
	sleep 0.01; done | sed -u "s/^n /item /" |
	{ s=0; k=0; while read -r w n; do k=$((k + 1)); s=$((s + n)); echo "$w $n $s"; done; echo "RESULT $k $s"; }'

# mig_ns: a process in a network namespace of its own (unshare -n), kept
# for the test's life: its pid in NSPID.  The namespace goes with it, and it
# goes when the test ends however it ends (it carries the test's marker).
mig_ns() {
	unshare -n sleep 100000 &
	NSPID=$!
	echo "$NSPID" >>"$TD/pids"
	wait_for "a network namespace of its own" netns_made "$NSPID"
}

# mig_hosts: the two namespaces joined by a veth pair, the token, the
# straight run (go files made for it in advance) and each side's directories
mig_hosts() {
	[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
	command -v ip >/dev/null || skip "needs ip (iproute2)"
	mig_ns
	PA=$NSPID
	mig_ns
	PB=$NSPID
	hosts_join "$PA" "$PB" || fail "cannot join the two network namespaces"
	mkdir -p "$TD/runA" "$TD/runB" "$IMG/A" "$IMG/B"
	chmod 700 "$TD/runA" "$TD/runB"
	printf 'the secret of this test\n' >"$TD/token"
	chmod 600 "$TD/token"
	: >"$TT/go.1"
	: >"$TT/go.2"
	straight_start 0 /bin/bash -c "${MIG_CMD:-$MIG_PROG}"
	rm -f "$TT/go.1" "$TT/go.2"
}

# host HOST: in ON, the command line that runs a command as HOST (A or B)
# does: in its network namespace, with its run directory (nsenter keeps
# the environment, and so the test's marker); on HOST CMD... runs one
host() {
	local pid=$PA
	[ "$1" = B ] && pid=$PB
	ON=(nsenter -t "$pid" -n env COHORT_RUN_DIR="$TD/run$1")
}
on() {
	host "$1"
	"${ON[@]}" "${@:2}"
}

# mig_run TAG: the group starts on A, and has printed its first 10 lines
mig_run() {
	host A
	bg_start "$1" "${ON[@]}" "$COHORT" run --name "$GNAME" --images "$IMG/A" -- /bin/bash -c "${MIG_CMD:-$MIG_PROG}"
	wait_lines 10 "$1"
}

# mig_receive TAG HOST [ENV...]: `cohort receive` on HOST, on a port it picks; its port in PORT
mig_receive() {
	local tag=$1 host=$2 addr=10.77.0.1
	shift 2
	[ "$host" = B ] && addr=10.77.0.2
	host "$host"
	bg_start "$tag" "${ON[@]}" "$@" "$COHORT" receive --listen "$addr:0" --token-file "$TD/token" \
		--images "$IMG/$host"
	wait_for "$tag: no 'listening on' line" grep -qs "^listening on $addr:[0-9]" "$TD/$tag.err"
	PORT=$(sed -n "s/^listening on $addr:\([0-9]*\)\$/\1/p" "$TD/$tag.err")
	TO=$addr:$PORT
}

# mig_go HOST TAG [ARGS...]: `cohort migrate` of the group from HOST to TO; its status in RC, output in TD/TAG.*
mig_go() {
	local host=$1 tag=$2
	shift 2
	# in a child: the notice of bash about a background job killed meanwhile must not go to TAG.err
	host "$host"
	("${ON[@]}" timeout -k 5 "$TMO" "$COHORT" migrate "$GNAME" --to "$TO" --token-file "$TD/token" "$@" \
		>"$TD/$tag.out" 2>"$TD/$tag.err")
	RC=$?
}

# mig_ok TAG: the migration TAG succeeded
mig_ok() {
	[ "$RC" = 0 ] || fail "$1: status $RC: $(first_line "$TD/$1.err")"
}

# mig_failed TAG TEXT: the migration TAG failed (status 1) in one line holding TEXT
mig_failed() {
	[ "$RC" = 1 ] || fail "$1: status $RC, expected 1: $(first_line "$TD/$1.err")"
	[ "$(wc -l <"$TD/$1.err")" = 1 ] || fail "$1: not one line on stderr: $(tr '\n' '|' <"$TD/$1.err")"
	grep -q -- "$2" "$TD/$1.err" || fail "$1: no '$2' in: $(first_line "$TD/$1.err")"
}

# migrated TAG TO: TAG (a run, restart or receive) ended with status 0, saying the group went to TO
migrated() {
	bg_wait "$1"
	[ "$RC" = 0 ] || fail "$1: status $RC after the group left: $(first_line "$TD/$1.err")"
	grep -qx "cohort: group $GNAME migrated to $2" "$TD/$1.err" ||
		fail "$1: no 'migrated to $2' line: $(first_line "$TD/$1.err")"
}

# no_generation HOST: nothing of the group was kept on HOST
no_generation() {
	local left
	left=$(ls -A "$IMG/$1/$GNAME" 2>/dev/null | grep -v '^LOCK$' | tr '\n' ' ')
	[ -z "$left" ] || fail "$1 kept $left of a migration that failed"
}

t_migrate_roundtrip() {
	mig_hosts
	mig_run run0
	mig_receive recvB B
	mig_go A mig1 --json
	mig_ok mig1
	local f
	for f in rounds bytes downtime_ms duration_ms processes; do
		grep -q "\"$f\":[0-9]" "$TD/mig1.out" || fail "migrate --json has no $f: $(head -c 300 "$TD/mig1.out")"
	done
	migrated run0 "$TO"
	: >"$TT/go.1"
	wait_lines 25 run0 recvB
	mig_receive recvA A
	mig_go B mig2
	mig_ok mig2
	grep -q "^group '$GNAME' migrated to $TO: " "$TD/mig2.out" || fail "mig2: its line: $(first_line "$TD/mig2.out")"
	migrated recvB "$TO"
	: >"$TT/go.2"
	bg_wait recvA
	final_check 0 "$RC" recvA run0 recvB recvA
}

t_migrate_refused() {
	mig_hosts
	mig_run run0
	# a receiver with another token: both sides refuse, in one line each
	printf 'not the secret\n' >"$TD/token.b"
	chmod 600 "$TD/token.b"
	host B
	bg_start recvB "${ON[@]}" "$COHORT" receive --listen 10.77.0.2:0 --token-file "$TD/token.b" --images "$IMG/B"
	wait_for "recvB: no 'listening on' line" grep -qs "^listening on 10.77.0.2:[0-9]" "$TD/recvB.err"
	TO=10.77.0.2:$(sed -n 's/^listening on 10.77.0.2:\([0-9]*\)$/\1/p' "$TD/recvB.err")
	mig_go A wrong
	mig_failed wrong "token"
	bg_wait recvB
	[ "$RC" = 1 ] || fail "recvB: status $RC with a wrong token, expected 1"
	grep -q "refused: wrong token" "$TD/recvB.err" || fail "recvB: $(tail -n 1 "$TD/recvB.err")"
	# a group that is not running at the source
	mig_receive recvB2 B
	local real=$GNAME
	GNAME=$real-absent
	mig_go A absent
	GNAME=$real
	mig_failed absent "no running group named '$real-absent'"
	bg_wait recvB2
	[ "$RC" = 1 ] || fail "recvB2: status $RC for an unknown group, expected 1"
	grep -q "no running group" "$TD/recvB2.err" || fail "recvB2: $(tail -n 1 "$TD/recvB2.err")"
	# a token file others may read, named
	chmod 644 "$TD/token.b"
	on A "$COHORT" migrate "$GNAME" --to "$TO" --token-file "$TD/token.b" >/dev/null 2>"$TD/open.err" &&
		fail "migrate took a token file others may read"
	grep -q "token file $TD/token.b may be read by others" "$TD/open.err" || fail "open token: $(first_line "$TD/open.err")"
	no_generation B
	: >"$TT/go.1"
	: >"$TT/go.2"
	bg_wait run0
	final_check 0 "$RC" run0 run0
}

t_migrate_cut() {
	mig_hosts
	mig_run run0
	# the receiver dies after the manifest and one file have come
	mig_receive recvB B COHORT_CRASH=received:1
	local cut_rc
	{ # (bash's notice of the receiver's SIGKILL is not the test's output)
		mig_go A cut
		cut_rc=$RC
		bg_wait recvB
	} 2>/dev/null
	[ "$RC" = 137 ] || note "recvB: status $RC (expected 137: killed)"
	RC=$cut_rc
	mig_failed cut "the group runs on here"
	: >"$TT/go.1"
	wait_lines 25 run0
	# the restore fails on the target: it discards the generation, the source resumes
	mig_receive recvB2 B COHORT_FAULT=fail:memory
	mig_go A fault
	mig_failed fault "the group runs on here"
	bg_wait recvB2
	[ "$RC" != 0 ] || fail "recvB2: status 0 after its restore failed"
	grep -q "failed" "$TD/recvB2.err" || fail "recvB2 said nothing of the failure: $(first_line "$TD/recvB2.err")"
	no_generation B
	# migrate killed once the target has the group back, parked: the source
	# resumes it (its client gone), the target never lets it run
	mig_receive recvB3 B
	{
		COHORT_CRASH=ready mig_go A ready
		cut_rc=$RC
		bg_wait recvB3
	} 2>/dev/null
	[ "$cut_rc" = 137 ] || fail "migrate with COHORT_CRASH=ready: status $cut_rc, expected 137 (killed)"
	[ "$RC" != 0 ] || fail "recvB3: status 0, but its source was gone before it said go"
	grep -q "closed the connection; nothing of it is kept here" "$TD/recvB3.err" ||
		fail "recvB3: $(tail -n 1 "$TD/recvB3.err")"
	[ ! -s "$TD/recvB3.out" ] || fail "recvB3: the group printed there: $(first_line "$TD/recvB3.out")"
	no_generation B
	: >"$TT/go.2"
	bg_wait run0
	final_check 0 "$RC" run0 run0
}

t_migrate_ckpt() {
	mig_hosts
	mig_run run0
	mig_receive recvB B
	mig_go A mig1
	mig_ok mig1
	migrated run0 "$TO"
	# on B the group is one as any other: checkpointed, ended, restarted
	on B "$COHORT" checkpoint "$GNAME" --kill >"$TD/ck.out" 2>"$TD/ck.err" ||
		fail "checkpoint on B: $(first_line "$TD/ck.err")"
	bg_wait recvB
	[ "$RC" = 75 ] || fail "recvB: status $RC after checkpoint --kill, expected 75"
	: >"$TT/go.1"
	: >"$TT/go.2"
	host B
	bg_start rsB "${ON[@]}" "$COHORT" restart "$GNAME" --images "$IMG/B"
	bg_wait rsB
	final_check 0 "$RC" rsB run0 recvB rsB
}

t_migrate_files() {
	printf 'the data at the source\n' >"$TT/data"
	printf 'other\n' >"$TD/other"
	MIG_CMD="exec 3<\"\$COHORT_TEST_TMP/data\"; $MIG_PROG"
	mig_hosts
	mig_run run0
	# B's receiver sees another file at that path (its own mount namespace)
	host B
	bg_start recvB "${ON[@]}" unshare -m --propagation private \
		/bin/sh -c 'mount --bind "$0" "$1" && shift && exec "$@"' "$TD/other" "$TT/data" \
		"$COHORT" receive --listen 10.77.0.2:0 --token-file "$TD/token" --images "$IMG/B"
	wait_for "recvB: no 'listening on' line" grep -qs "^listening on 10.77.0.2:[0-9]" "$TD/recvB.err"
	TO=10.77.0.2:$(sed -n 's/^listening on 10.77.0.2:\([0-9]*\)$/\1/p' "$TD/recvB.err")
	mig_go A files
	mig_failed files "$TT/data differs here: 6 bytes, 23 at the source"
	bg_wait recvB
	[ "$RC" = 1 ] || fail "recvB: status $RC, expected 1"
	grep -q "refused: $TT/data differs here" "$TD/recvB.err" || fail "recvB: $(tail -n 1 "$TD/recvB.err")"
	no_generation B
	: >"$TT/go.1"
	: >"$TT/go.2"
	bg_wait run0
	final_check 0 "$RC" run0 run0
}
