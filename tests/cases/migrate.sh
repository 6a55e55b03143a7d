# tests/cases/migrate.sh - sourced by tests/run.sh: `cohort migrate` and
# `cohort receive` (issue 14, stop-and-copy).  Two network namespaces
# joined by a veth pair (tests/harness/hosts.sh) act as two hosts, A
# (10.77.0.1) and B (10.77.0.2); each side has its own run directory
# (TD/runA, TD/runB) and images directory (IMG/A, IMG/B); the helpers
# (mig_*) are in tests/harness/mig.sh.  The program is a 3-process pipeline
# (a bash loop | sed | a bash loop) that stops at go files, so that each
# migration happens at a known line and its output can be compared with the
# straight run's.
#   migrate_roundtrip  A -> B (pre-copy rounds) and back B -> A (stop-and-copy:
#                      --max-rounds 0); the pieces of stdout (the run
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
#   migrate_init_ahead the target starts the group's init when the source
#                      has proved the token, before the stop (coord/setup.c):
#                      a receiver killed mid-rounds takes it along; one that
#                      died before the stop is replaced by an init started
#                      then, and the group moves and finishes right
#   migrate_ckpt       a migrated group checkpointed on the target (an
#                      incremental on the chain the rounds brought, --kill)
#                      and restarted there finishes right
#   migrate_files      a file the group holds open is another at the target
#                      (a bind mount in the receiver's mount namespace): the
#                      target refuses naming it, before the generation is
#                      sent; the group runs on at the source
# With pre-copy rounds (a pipeline whose middle, mig_writer, holds 256 MiB and
# rewrites 1 % of it every 100 ms; each host with a tmpfs of its own over the
# work directory, where the group writes a file, so that it must travel):
#   migrate_rounds       refused without --copy-files, naming the file; then
#                        A -> B and back with --copy-files, each in more than
#                        one round (--json), ending with the straight RESULT
#   migrate_rounds_cut   the receiver killed as round 1 comes, then the link
#                        brought down after round 0 (noticed in bounded time):
#                        each time the group runs on at A and B keeps nothing;
#                        then --max-rounds 1 (one round) moves it, and it ends right
#   migrate_stop_killed  A's coordinator killed during the stop (after its
#                        commit): the group ends with it, migrate names the
#                        generation to restart from, B keeps nothing, and the
#                        restart at A from it ends right
#   migrate_options      --max-rounds and --downtime-ms: bad values refused in
#                        one line (status 2)

# The pipeline: 40 numbered lines, stopping after line 10 until go.1 exists
# and after line 25 until go.2; sed renames them and the last process prints each with
# a running sum, and the total (a shell loop: awk may read its pipe in blocks, and
# hold the lines a test waits for).
MIG_PROG='for ((i = 1; i <= 40; i++)); do echo "n $i"
	[ $i = 10 ] && while [ ! -e "$COHORT_TEST_TMP/go.1" ]; do sleep 0.02; done
	[ $i = 25 ] && while [ ! -e "$COHORT_TEST_TMP/go.2" ]; do sleep 0.02; done
	sleep 0.01; done | sed -u "s/^n /item /" |
	{ s=0; k=0; while read -r w n; do k=$((k + 1)); s=$((s + n)); echo "$w $n $s"; done; echo "RESULT $k $s"; }'

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
	mig_go B mig2 --max-rounds 0
	mig_ok mig2
	grep -q "^group '$GNAME' migrated to $TO: .* 0 rounds, " "$TD/mig2.out" ||
		fail "mig2 (stop-and-copy): its line: $(first_line "$TD/mig2.out")"
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
	mig_listening recvB 10.77.0.2
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

# init_ahead TAG: INIT, the pid of the init receive TAG started ahead (its child cohort-init), once there
# (TAG.pid is timeout's, whose child is receive)
init_ahead() {
	local tpid
	tpid=$(cat "$TD/$1.pid")
	INIT=
	wait_for "$1: no init started ahead" eval 'INIT=$(pgrep -x -P "$(pgrep -P "$tpid" | head -n 1)" cohort-init)'
}

# ended PID: PID is gone, or a zombie
ended() { [ ! -e "/proc/$1" ] || [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" = Z ]; }

# ahead_migration RECV TAG: receive RECV on B, and migrate TAG from A waiting
# after each round (COHORT_CRASH=round:FILE) until TD/TAG.go exists; INIT: the
# init RECV started ahead
ahead_migration() {
	mig_receive "$1" B
	host A
	bg_start "$2" "${ON[@]}" env COHORT_CRASH="round:$TD/$2.go" timeout -k 5 "$TMO" "$COHORT" migrate "$GNAME" \
		--to "$TO" --token-file "$TD/token"
	init_ahead "$1"
}

t_migrate_init_ahead() {
	mig_hosts
	mig_run run0
	# the receiver is killed while migrate waits, and its init ahead ends with it
	ahead_migration recvB cut
	{
		kill -KILL "$(pgrep -P "$(cat "$TD/recvB.pid")")"
		bg_wait recvB
	} 2>/dev/null
	wait_for "init $INIT started ahead outlived its receiver" ended "$INIT"
	: >"$TD/cut.go"
	bg_wait cut
	mig_failed cut "the group runs on here"
	# (a receiver killed once a round has come leaves its .tmp-gen-N, for
	# the next receive of the group to remove: never a committed one)
	[ -z "$(committed_at B)" ] || fail "a receiver killed mid-rounds left $(committed_at B) to restart at B"
	# the init started ahead dies before the stop: the restart starts its own
	ahead_migration recvB2 mig
	kill -KILL "$INIT"
	wait_for "init $INIT killed" ended "$INIT"
	: >"$TD/mig.go"
	bg_wait mig
	mig_ok mig
	migrated run0 "$TO"
	: >"$TT/go.1"
	: >"$TT/go.2"
	bg_wait recvB2
	final_check 0 "$RC" recvB2 run0 recvB2
}

t_migrate_ckpt() {
	mig_hosts
	mig_run run0
	mig_receive recvB B
	mig_go A mig1
	mig_ok mig1
	migrated run0 "$TO"
	# on B the group is one as any other: checkpointed (incremental, on the chain
	# the rounds brought), ended, restarted
	on B "$COHORT" checkpoint "$GNAME" --incremental --kill >"$TD/ck.out" 2>"$TD/ck.err" ||
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
	mig_listening recvB 10.77.0.2
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

# The pipeline of the rounds' tests: MIG_PROG's lines, also written to
# work/log (held open for writing: copied into every generation), through
# mig_writer (256 MiB rewritten steadily); the last line has the log's length.
MIG_BIG='exec 4>>"$COHORT_TEST_TMP/work/log"
	for ((i = 1; i <= 40; i++)); do echo "n $i"; echo "item $i" >&4
	[ $i = 10 ] && while [ ! -e "$COHORT_TEST_TMP/go.1" ]; do sleep 0.02; done
	[ $i = 25 ] && while [ ! -e "$COHORT_TEST_TMP/go.2" ]; do sleep 0.02; done
	sleep 0.01; done | @WRITER@ 256 10 |
	{ s=0; k=0; while read -r w n; do [ "$w" = mem ] && { echo "$w $n"; continue; }
	k=$((k + 1)); s=$((s + n)); echo "item $n $s"; done
	echo "RESULT $k $s $(wc -l <"$COHORT_TEST_TMP/work/log")"; }'

# mig_big_hosts: mig_hosts for MIG_BIG, each host with its work directory
mig_big_hosts() {
	MIG_MNT=1
	MIG_CMD=${MIG_BIG//@WRITER@/$BIN/mig_writer}
	mkdir -p "$TT/work"
	mig_hosts
}

TEST_TIMEOUTS[migrate_rounds]=240
t_migrate_rounds() {
	local TMO=120 # each command (the group's run above all) may take longer than half the usual test
	mig_big_hosts
	mig_run run0
	# the log the group writes is not at B (its own tmpfs): refused, naming it
	mig_receive recvB0 B
	mig_go A nocopy --json
	mig_failed nocopy "the group holds $TT/work/log, which is not here"
	bg_wait recvB0
	[ "$RC" = 1 ] || fail "recvB0: status $RC, expected 1"
	[ -z "$(committed_at B)" ] || fail "B kept $(committed_at B) of a refused migration"
	# with --copy-files it travels, in rounds
	mig_receive recvB B COHORT_TRACE=1
	mig_go A mig1 --json --copy-files
	mig_ok mig1
	# B indexed the rounds' pages as they came (pindex.c): the stop's filler folded only the stop's
	# own image onto that, and the writer still reads the newest version of every page (its end check)
	grep -q 'images indexed ahead' "$TD/recvB.err" ||
		fail "the stop's filler at B did not start from the index built during the rounds: $(grep -E 'filler|restart: (chain|the chain)' "$TD/recvB.err" | head -4 | tr '\n' '|') $(grep -o '"round_bytes[^]]*],.*"stop":"[a-z]*"' "$TD/mig1.out")"
	local f
	for f in rounds bytes downtime_ms duration_ms processes; do
		grep -q "\"$f\":[0-9]" "$TD/mig1.out" || fail "migrate --json has no $f: $(head -c 300 "$TD/mig1.out")"
	done
	[ "$(rounds_of mig1)" -gt 1 ] || fail "mig1: $(rounds_of mig1) round(s): $(head -c 300 "$TD/mig1.out")"
	grep -q '"stop":"incremental"' "$TD/mig1.out" || fail "mig1: rounds that converged did not end in an incremental stop"
	# not on a terminal: the result line alone, no progress
	[ "$(wc -l <"$TD/mig1.out")" = 1 ] && [ ! -s "$TD/mig1.err" ] ||
		fail "mig1 printed more than its result: $(tr '\n\r' '||' <"$TD/mig1.err" | head -c 300)"
	migrated run0 "$TO"
	: >"$TT/go.1"
	wait_lines 25 run0 recvB
	mig_receive recvA A
	mig_go B mig2 --json --copy-files
	mig_ok mig2
	[ "$(rounds_of mig2)" -gt 1 ] || fail "mig2: $(rounds_of mig2) round(s): $(head -c 300 "$TD/mig2.out")"
	migrated recvB "$TO"
	: >"$TT/go.2"
	bg_wait recvA
	final_check 0 "$RC" recvA run0 recvB recvA
}

# link_up: the veth pair up again (both ends)
link_up() {
	nsenter -t "$PA" -n ip link set va up && nsenter -t "$PB" -n ip link set vb up ||
		fail "cannot bring the link up again"
}

TEST_TIMEOUTS[migrate_rounds_cut]=240
t_migrate_rounds_cut() {
	local TMO=120 # each command (the group's run above all) may take longer than half the usual test
	mig_big_hosts
	mig_run run0
	# the receiver dies as the second generation (round 1) comes
	mig_receive recvB B COHORT_CRASH=generation:2
	local cut_rc
	{
		mig_go A cut --copy-files
		cut_rc=$RC
		bg_wait recvB
	} 2>/dev/null
	[ "$RC" = 137 ] || fail "recvB: status $RC (expected 137: killed as round 1 came)"
	RC=$cut_rc
	mig_failed cut "the group runs on here"
	[ -z "$(committed_at B)" ] || fail "a receiver killed mid-rounds left $(committed_at B) to restart at B"
	# the link goes down once round 0 is at B (migrate waits after it until told);
	# round 0 is the generation after A's newest (the killed receiver left an older one's .tmp-gen-N at B)
	local next
	next=$(printf '%06d' $(($(committed_at A | tr ' ' '\n' | sed -n 's/^gen-0*//p' | sort -n | tail -n 1) + 1)))
	mig_receive recvB2 B
	host A
	bg_start link "${ON[@]}" env COHORT_CRASH="round:$TD/link.cut" timeout -k 5 "$TMO" "$COHORT" migrate "$GNAME" \
		--to "$TO" --token-file "$TD/token" --copy-files
	wait_for "round 0 (generation $next) checked at B" test -e "$IMG/B/$GNAME/.tmp-gen-$next/manifest"
	nsenter -t "$PA" -n ip link set va down || fail "cannot bring the link down"
	local t0=$SECONDS
	: >"$TD/link.cut"
	bg_wait link
	[ "$RC" = 1 ] || fail "link: status $RC, expected 1: $(first_line "$TD/link.err")"
	mig_failed link "the group runs on here"
	bg_wait recvB2
	[ "$RC" = 1 ] || fail "recvB2: status $RC with the link down, expected 1: $(first_line "$TD/recvB2.err")"
	[ $((SECONDS - t0)) -le 25 ] || fail "the cut link was noticed after $((SECONDS - t0)) s"
	grep -q "nothing of it is kept here" "$TD/recvB2.err" || fail "recvB2: $(tail -n 1 "$TD/recvB2.err")"
	[ -z "$(committed_at B)" ] || fail "B kept $(committed_at B) with the link cut"
	link_up
	# one round, then the stop, on a terminal: it moves, with progress lines
	# (the round, bytes, rate, estimate) erased before the result, and ends right at B
	mig_receive recvB3 B
	host A
	on_tty "$TD/one.tty" "$(printf '%q ' "${ON[@]}" "$COHORT" migrate "$GNAME" --to "$TO" --token-file "$TD/token" \
		--json --copy-files --max-rounds 1)"
	[ "$RC" = 0 ] || fail "one: status $RC: $(tty_final "$TD/one.tty" | head -n 1)"
	grep -aEq $'\r'"migrate '$GNAME': round 0: sending +[0-9.]+ [KMG]iB / " "$TD/one.tty" ||
		{ note_file "terminal output" "$TD/one.tty" 5; fail "no progress line of round 0 on a terminal"; }
	tty_final "$TD/one.tty" >"$TD/one.out"
	[ "$(wc -l <"$TD/one.out")" = 1 ] || fail "one: the terminal shows more than the result: $(tr '\n' '|' <"$TD/one.out")"
	[ "$(rounds_of one)" = 1 ] || fail "--max-rounds 1: $(rounds_of one) rounds: $(head -c 300 "$TD/one.out")"
	migrated run0 "$TO"
	: >"$TT/go.1"
	: >"$TT/go.2"
	bg_wait recvB3
	final_check 0 "$RC" recvB3 run0 recvB3
}

TEST_TIMEOUTS[migrate_stop_killed]=240
t_migrate_stop_killed() {
	local TMO=120 # each command (the group's run above all) may take longer than half the usual test
	mig_big_hosts
	host A
	bg_start run0 "${ON[@]}" COHORT_CRASH=hold "$COHORT" run --name "$GNAME" --images "$IMG/A" -- /bin/bash -c "$MIG_CMD"
	wait_lines 10 run0
	mig_receive recvB B
	{
		mig_go A stop --copy-files
		local stop_rc=$RC
		bg_wait run0
	} 2>/dev/null
	[ "$RC" != 0 ] || fail "run0: status 0 with its coordinator killed"
	RC=$stop_rc
	mig_failed stop "restart it here with 'cohort restart $GNAME' (generation [0-9]*, committed in $IMG/A/$GNAME)"
	local gen
	gen=$(sed -n 's/.*(generation \([0-9]*\), committed.*/\1/p' "$TD/stop.err")
	bg_wait recvB
	[ "$RC" != 0 ] || fail "recvB: status 0, but the source's coordinator died during the stop"
	[ -z "$(committed_at B)" ] || fail "B kept $(committed_at B)"
	[ ! -s "$TD/recvB.out" ] || fail "recvB: the group printed there: $(first_line "$TD/recvB.out")"
	mig_restart_a "$gen"
}

t_migrate_options() {
	local bad
	printf 'secret\n' >"$TD/token"
	chmod 600 "$TD/token"
	for bad in "--max-rounds -1" "--max-rounds x" "--max-rounds 101" "--downtime-ms 0" "--downtime-ms -5" \
		"--downtime-ms abc" "--downtime-ms 1e9" "--downtime-ms ''"; do
		eval "set -- $bad"
		"$COHORT" migrate "$GNAME" --to 127.0.0.1:9 --token-file "$TD/token" "$@" >"$TD/opt.out" 2>"$TD/opt.err"
		RC=$?
		[ "$RC" = 2 ] || fail "migrate $bad: status $RC, expected 2: $(first_line "$TD/opt.err")"
		[ "$(wc -l <"$TD/opt.err")" = 1 ] || fail "migrate $bad: not one line: $(tr '\n' '|' <"$TD/opt.err")"
		grep -q -- "migrate: $1 must be" "$TD/opt.err" || fail "migrate $bad: $(first_line "$TD/opt.err")"
	done
}

# rounds that cannot converge: the pipeline's writer rewrites all of its
# 64 MiB every 100 ms, faster than a round sends it, so the second round
# carries about what the first did and the stop is a whole checkpoint
# ("stop":"whole"), restarted at B with no chain to merge; the group ends
# there with the straight run's result (rounds that converge end in an
# incremental stop: migrate_rounds checks "stop":"incremental")
TEST_TIMEOUTS[migrate_whole_stop]=240
t_migrate_whole_stop() {
	local TMO=120
	MIG_BIG=${MIG_BIG//@WRITER@ 256 10/@WRITER@ 64 1000}
	mig_big_hosts
	mig_run run0
	mig_receive recvB B
	mig_go A mig1 --json --copy-files --max-rounds 2
	mig_ok mig1
	[ "$(rounds_of mig1)" = 2 ] || fail "mig1: $(rounds_of mig1) round(s), not 2: $(head -c 300 "$TD/mig1.out")"
	grep -q '"stop":"whole"' "$TD/mig1.out" || fail "rounds that did not converge ended in an incremental stop: $(head -c 400 "$TD/mig1.out")"
	migrated run0 "$TO"
	: >"$TT/go.1" && : >"$TT/go.2"
	bg_wait recvB
	final_check 0 "$RC" recvB run0 recvB
}

# migrate_file_grows: the group appends to a file both hosts see (one
# file system) all the time while the rounds run.  The file list after
# the first round, taken while the group runs, asks only that such a file
# be there: its size at the source and a moment later at the target
# differ by what the group wrote meanwhile (the target once refused so:
# "timers.log differs here: 176 bytes, 153 at the source").  The stop
# compares it, the group stopped; the group moves and ends right.  The
# target looks at each file 50 ms late (COHORT_TEST_FSTAT_MS, tests only),
# so that the group's writes show between the two looks every time.
t_migrate_file_grows() {
	local TMO=60
	MIG_CMD='exec 3>>"$COHORT_TEST_TMP/grow.log"
	for ((i = 1; i <= 20; i++)); do echo "n $i"
		if [ $i = 5 ]; then
			while [ ! -e "$COHORT_TEST_TMP/go.1" ]; do echo w >&3; done
		fi
		echo "line $i" >&3
	done
	echo "RESULT 20 lines"'
	mig_hosts
	rm -f "$TT/grow.log"
	mig_run run0 5
	mig_receive recvB B env COHORT_TEST_FSTAT_MS=50
	mig_go A mig1 --json
	mig_ok mig1
	[ "$(rounds_of mig1)" -ge 1 ] || fail "mig1: no pre-copy round: $(head -c 300 "$TD/mig1.out")"
	migrated run0 "$TO"
	: >"$TT/go.1"
	bg_wait recvB
	final_check 0 "$RC" recvB run0 recvB
	grep -qx "line 20" "$TT/grow.log" || fail "the group's file lacks its last line"
}
