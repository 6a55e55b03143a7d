# tests/cases/park.sh - sourced by tests/run.sh: threads the checkpoint
# signal cannot reach by itself (they block it with calls the agent never
# sees: glibc's timer helper, a raw rt_sigprocmask, the Go runtime's
# signal thread), a program that takes the checkpoint signal's handler for
# itself with a raw rt_sigaction, and Go programs.
#
# The flow (park_flow): a straight run for the expected output, then
#   run -> 3 steps -> checkpoint (live, gen 1) -> 3 steps -> checkpoint
#   (live, gen 2) -> 3 steps -> checkpoint --kill (gen 3) -> restart
#   -> 3 steps -> checkpoint (live, gen 4) -> 3 steps -> checkpoint --kill
#   (gen 5) -> restart to the end
# the three pieces of stdout concatenated must equal the straight run's
# byte for byte, and every exit status be the straight run's.

TEST_TIMEOUTS[blocked_threads]=90
TEST_TIMEOUTS[blocked_unprivileged]=90
# It once failed one full run in five, the restarted group waiting for
# ever: the one-shot timer had fired after its thread parked, and the image
# held the timer disarmed and its signal nowhere.  The agent now takes
# every signal pending when the timers are read (settle_signals).
TEST_TIMEOUTS[sig_takeover]=90
TEST_TIMEOUTS[posix_timers]=90
TEST_TIMEOUTS[go_pure_external]=120
TEST_TIMEOUTS[go_cgo_park]=120

# park_count TAG: the step lines TD/TAG.out holds
park_count() { grep -c '^step ' "$TD/$1.out" 2>/dev/null; }

# park_wait TAG N WHEN: until TD/TAG.out holds N step lines
park_wait() {
	local tag=$1 n=$2 end=$((SECONDS + TMO))
	while [ $SECONDS -lt $end ]; do
		[ "$(park_count "$tag")" -ge "$n" ] && return 0
		# held at its end (common.h's end gate, C programs): no more steps come
		[ -e "$COHORT_TEST_TMP/at-end" ] && return 0
		if ! bg_alive "$tag"; then
			bg_wait "$tag"
			note_file "$tag stdout" "$TD/$tag.out" 3
			note_file "$tag stderr" "$TD/$tag.err"
			fail "$tag ended (status $RC) $3, after $(park_count "$tag") steps: $(grep -m1 '^ERROR' "$TD/$tag.out" || first_line "$TD/$tag.err")"
		fi
		sleep 0.02
	done
	fail "$tag: not $n steps after $TMO s ($3)"
}

# park_killed TAG: ended by checkpoint --kill (status 75)
park_killed() {
	bg_wait "$1"
	[ "$RC" = 75 ] && return 0
	note_file "$1 stdout" "$TD/$1.out" 3
	note_file "$1 stderr" "$TD/$1.err"
	fail "$1 after checkpoint --kill: status $RC (expected 75): $(grep -m1 '^ERROR' "$TD/$1.out" || first_line "$TD/$1.err")"
}

# park_live TAG GEN: a live checkpoint, then 3 more steps
park_live() {
	local n
	ckpt_or_fail "checkpoint $2 (live)" "$GNAME" "$2"
	n=$(park_count "$1")
	park_wait "$1" $((n + 3)) "after the live checkpoint $2"
}

park_flow() { # park_flow CMD...
	straight_start 0 "$@"
	# held at its end until the last checkpoint (flow_standard says why)
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "$@"
	wait_ready "$GNAME" run0
	park_wait run0 3 "before the first checkpoint"
	park_live run0 1
	park_live run0 2
	ckpt_or_fail "checkpoint 3 (--kill)" "$GNAME" 3 --kill
	park_killed run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	park_wait run1 3 "after the first restart"
	park_live run1 4
	ckpt_or_fail "checkpoint 5 (--kill, after restart)" "$GNAME" 5 --kill
	park_killed run1
	: >"$COHORT_TEST_TMP/end"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

# a thread blocking every signal with a raw rt_sigprocmask, glibc's
# SIGEV_THREAD timer helper and its callback threads, a thread in
# sigwaitinfo with every signal blocked (tests/progs/blocked_threads.c)
t_blocked_threads() {
	need_prog blocked_threads
	park_flow "$BIN/blocked_threads"
}

# the same, run by a user without privileges (as in t_unprivileged): the
# coordinator, in the user namespace it made for the group, may still
# ptrace the group's threads
t_blocked_unprivileged() {
	[ "$(id -u)" = 0 ] || skip "needs root to become $UNPRIV_USER (as a user, blocked_threads is this test)"
	id -u "$UNPRIV_USER" >/dev/null 2>&1 || skip "no user $UNPRIV_USER"
	command -v runuser >/dev/null || skip "runuser not found"
	need_prog blocked_threads
	local U=$TD/u b
	chmod 711 "$WORK" "$TD"
	mkdir -p "$U/bin" "$U/run" "$U/img"
	for b in cohort libcohort.so cohort-restore; do cp "$(dirname "$COHORT")/$b" "$U/bin/" || fail "cannot copy $b"; done
	cp "$BIN/blocked_threads" "$U/bin/" || fail "cannot copy blocked_threads"
	chown -R "$UNPRIV_USER" "$U"
	chmod 700 "$U/run"
	printf '#!/bin/sh\nexec runuser -u %s -- env COHORT_RUN_DIR=%s %s "$@"\n' "$UNPRIV_USER" "$U/run" "$U/bin/cohort" >"$U/cohort"
	chmod 755 "$U/cohort"
	mkdir -p "$U/tmp" && chown "$UNPRIV_USER" "$U/tmp"
	local COHORT=$U/cohort IMG=$U/img COHORT_TEST_TMP=$U/tmp
	park_flow "$U/bin/blocked_threads"
}

# POSIX timers: a periodic signal to the process, a periodic signal to one
# thread (SIGEV_THREAD_ID), one far ahead without a signal whose time left
# must stay right, one never armed (tests/progs/posix_timers.c)
t_posix_timers() {
	need_prog posix_timers
	park_flow "$BIN/posix_timers"
}

# the checkpoint signal's handler taken with a raw rt_sigaction
# (tests/progs/sig_takeover.c): checkpoints work, the program's handler
# gets its own signals and sigaction() reports it
t_sig_takeover() {
	need_prog sig_takeover
	park_flow "$BIN/sig_takeover"
}

# go_build NAME [CGO]: build tests/real/NAME/main.go into TD/NAME, dynamically linked
go_build() {
	command -v go >/dev/null || skip "go not found (scripts/install-deps.sh installs it)"
	command -v gcc >/dev/null || skip "gcc not found"
	# with tests/real/endgate.go, which every one of them uses: one directory for go build
	mkdir -p "$TD/src-$1" && cp "$ROOT/tests/real/$1/main.go" "$ROOT/tests/real/endgate.go" "$TD/src-$1/" ||
		fail "cannot copy the sources of $1"
	(cd "$TD" && export GOCACHE=$TD/gocache GOPATH=$TD/gopath GO111MODULE=off CGO_ENABLED=1 GOFLAGS= &&
		timeout -k 5 "$TMO" go build -ldflags=-linkmode=external -o "$TD/$1" "$TD/src-$1/main.go" \
			"$TD/src-$1/endgate.go" >"$TD/build.log" 2>&1) ||
		{ note_file "go build" "$TD/build.log"; fail "go build of $1 failed: $(first_line "$TD/build.log")"; }
	file -L "$TD/$1" 2>/dev/null | grep -q 'dynamically linked' || ldd "$TD/$1" >/dev/null 2>&1 ||
		fail "$1 is not dynamically linked"
}

# pure Go (no import "C"), linked externally: goroutine swarms, signal.Notify
# (tests/real/park_go/main.go)
t_go_pure_external() {
	go_build park_go
	park_flow "$TD/park_go"
}

# Go with cgo: C calls, a C thread, goroutine swarms, signal.Notify
# (tests/real/park_cgo/main.go)
t_go_cgo_park() {
	go_build park_cgo
	park_flow "$TD/park_cgo"
}
