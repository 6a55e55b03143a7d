# tests/cases/real.sh - sourced by tests/run.sh: real programs, unmodified,
# through live checkpoints and through checkpoint --kill + restart, compared
# with a straight run.  The programs and their sources are in tests/real/;
# what needs compiling (javac, go build, rustc) is compiled into the test's
# directory; a test is skipped only when its toolchain is missing
# (scripts/install-deps.sh installs them all).
#
# The flow of the batch programs (real_flow): a straight run for the
# expected output, then
#   run -> 2 progress lines -> checkpoint (live, gen 1) -> 2 more lines
#   -> checkpoint --kill (gen 2) -> restart -> 2 progress lines
#   -> checkpoint --kill (gen 3) -> restart to the end
# the three pieces of stdout concatenated must equal the straight run's
# byte for byte, and the final status be the straight run's.  The
# interactive ones (bash, the Python REPL) are driven on pseudo-terminals
# by tests/real/pty_drive.py; see real_pty.

TEST_TIMEOUTS[real_make]=90
TEST_TIMEOUTS[real_bash_pty]=120
TEST_TIMEOUTS[real_python_repl]=120
TEST_TIMEOUTS[real_jvm]=120
TEST_TIMEOUTS[real_go_cgo]=90
TEST_TIMEOUTS[real_rust]=90

REAL=$ROOT/tests/real

# real_count TAG: how many progress lines ("step ..." or "compiling ...") TD/TAG.out holds
real_count() { grep -cE '^(step|compiling) ' "$TD/$1.out" 2>/dev/null; }

# real_wait TAG N WHEN: until TD/TAG.out holds N progress lines; fails if the
# program ends first (WHEN says at which point of the flow)
real_wait() {
	local tag=$1 n=$2 end=$((SECONDS + TMO))
	while [ $SECONDS -lt $end ]; do
		[ "$(real_count "$tag")" -ge "$n" ] && return 0
		if ! bg_alive "$tag"; then
			bg_wait "$tag"
			[ "$(real_count "$tag")" -ge "$n" ] && break
			note_file "$tag stdout" "$TD/$tag.out" 3
			note_file "$tag stderr" "$TD/$tag.err"
			fail "$tag ended (status $RC) $3, after $(real_count "$tag") progress lines: $(grep -m1 '^ERROR' "$TD/$tag.out" || first_line "$TD/$tag.err")"
		fi
		sleep 0.02
	done
	bg_alive "$tag" || fail "$tag ended (status $RC) $3, before the checkpoint"
	[ "$(real_count "$tag")" -ge "$n" ] || fail "$tag: not $n progress lines after $TMO s ($3)"
}

# real_killed TAG: run/restart ended by checkpoint --kill: status 75 and one
# line on stderr saying so
real_killed() {
	bg_wait "$1"
	grep -q "^cohort: group '$GNAME' ended by 'checkpoint --kill'" "$TD/$1.err" && [ "$RC" = 75 ] && return 0
	note_file "$1 stdout" "$TD/$1.out" 3
	note_file "$1 stderr" "$TD/$1.err"
	fail "$1 after checkpoint --kill: status $RC (expected 75): $(grep -m1 '^ERROR' "$TD/$1.out" || first_line "$TD/$1.err")"
}

# real_flow CMD...: the flow above (the straight run is done by the caller
# or here, beside the rest, when exp.out does not exist yet).  With
# REAL_GATED=1 (programs that honour COHORT_TEST_GATES) the run under cohort
# waits after steps 4, 8 and 12 until the flow lets it go on (go.1 after the
# live checkpoint, go.2 and go.3 once each restart runs): on a busy machine
# a checkpoint can otherwise take longer than the rest of the program, which
# then ends before the flow's next checkpoint.  The straight run never waits.
real_flow() {
	[ -s "$TD/exp.out" ] || straight_start 0 "$@"
	local gates=()
	[ "${REAL_GATED:-0}" = 1 ] && gates=(env "COHORT_TEST_GATES=4 8 12")
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${gates[@]}" "$@"
	wait_ready "$GNAME" run0
	real_wait run0 2 "before the live checkpoint"
	ckpt_or_fail "checkpoint 1 (live)" "$GNAME" 1
	: >"$TT/go.1"
	local n
	n=$(real_count run0)
	real_wait run0 $((n + 2)) "after the live checkpoint"
	ckpt_or_fail "checkpoint 2 (--kill)" "$GNAME" 2 --kill
	real_killed run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	: >"$TT/go.2"
	real_wait run1 2 "after the first restart"
	ckpt_or_fail "checkpoint 3 (--kill, after restart)" "$GNAME" 3 --kill
	real_killed run1
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	: >"$TT/go.3"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

need_cmd() { command -v "$1" >/dev/null || skip "$1 not found (scripts/install-deps.sh installs it)"; }

# real_build WHAT CMD...: build something (output in TD/build.log), failing with its first line
real_build() {
	local what=$1
	shift
	timeout -k 5 "$TMO" "$@" >"$TD/build.log" 2>&1 || { note_file "$what" "$TD/build.log"; fail "$what failed: $(first_line "$TD/build.log")"; }
}

# `make -j2` building a C project with a sub-make (tests/real/make-project):
# the straight build and the build under cohort each in a fresh copy
t_real_make() {
	need_cmd make
	need_cmd gcc
	cp -r "$REAL/make-project" "$TT/straight" && cp -r "$REAL/make-project" "$TT/ck" || fail "cannot copy the project"
	straight 0 make -s -j2 -C "$TT/straight"
	real_flow make -s -j2 -C "$TT/ck"
	[ -x "$TT/ck/prog" ] || fail "no program built under cohort"
}

# Node.js: timers and fs.promises (tests/real/timers.js)
t_real_node() {
	need_cmd node
	local REAL_GATED=1
	real_flow "$(command -v node)" "$REAL/timers.js"
}

# a multi-threaded JVM program (tests/real/Threads.java), compiled here
t_real_jvm() {
	need_cmd java
	need_cmd javac
	real_build "javac" javac -d "$TD/classes" "$REAL/Threads.java"
	local REAL_GATED=1
	real_flow "$(command -v java)" -Xmx256m -cp "$TD/classes" Threads
}

# a Go program with cgo (tests/real/cgo/main.go), built here
t_real_go_cgo() {
	need_cmd go
	need_cmd gcc
	(cd "$TD" && export GOCACHE=$TD/gocache GOPATH=$TD/gopath GO111MODULE=off CGO_ENABLED=1 GOFLAGS= &&
		real_build "go build" go build -o "$TD/cgo_prog" "$REAL/cgo/main.go") || exit $?
	real_flow "$TD/cgo_prog"
}

# a Rust program (tests/real/rust/main.rs), compiled with rustc alone
t_real_rust() {
	need_cmd rustc
	real_build "rustc" rustc -O -o "$TD/rust_prog" "$REAL/rust/main.rs"
	real_flow "$TD/rust_prog"
}

# python3 with numpy (tests/real/numpy_job.py)
t_real_numpy() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	"$PYTHON" -c 'import numpy' 2>/dev/null || skip "numpy not installed for $PYTHON (python3-numpy)"
	local REAL_GATED=1
	real_flow "$PYTHON" "$REAL/numpy_job.py"
}

# python3 with a multiprocessing Pool (tests/real/mp_job.py)
t_real_multiprocessing() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	real_flow "$PYTHON" "$REAL/mp_job.py"
}

# sqlite3 fed by a bash coprocess (tests/real/sqlite_job.sh); the database
# file must afterwards pass integrity_check and hold what the straight run's does
t_real_sqlite() {
	need_cmd sqlite3
	need_cmd bash
	straight 0 bash "$REAL/sqlite_job.sh" "$TT/straight.db"
	local q="PRAGMA integrity_check; SELECT count(*), sum(v), max(id) FROM t;"
	sqlite3 "$TT/straight.db" "$q" >"$TD/db.exp" 2>&1 || fail "the straight run's database: $(first_line "$TD/db.exp")"
	# the same command line for the run under cohort (the database path is not printed)
	local REAL_GATED=1
	real_flow bash "$REAL/sqlite_job.sh" "$TT/ck.db"
	sqlite3 "$TT/ck.db" "$q" >"$TD/db.got" 2>&1
	cmp -s "$TD/db.exp" "$TD/db.got" || {
		note "straight: $(tr '\n' ' ' <"$TD/db.exp")"
		note "cohort:   $(tr '\n' ' ' <"$TD/db.got")"
		fail "the database written under cohort differs: $(first_line "$TD/db.got")"
	}
}

# `yes | head -1` in bash: yes must die of SIGPIPE (status 141) as natively,
# once alone, then 40 times through the flow (tests/real/yes_head.sh)
t_real_yes_head() {
	need_cmd bash
	local cmd='yes | head -1; echo "status ${PIPESTATUS[*]}"'
	timeout -k 5 "$TMO" bash -c "$cmd" </dev/null >"$TD/yes.exp" 2>&1
	printf 'y\nstatus 141 0\n' | cmp -s - "$TD/yes.exp" || fail "natively, bash -c '$cmd' printed $(tr '\n' ' ' <"$TD/yes.exp")"
	timeout -k 5 "$TMO" "$COHORT" run --name "$GNAME-1" --images "$IMG" -- bash -c "$cmd" </dev/null >"$TD/yes.got" 2>"$TD/yes.err"
	local rc=$?
	cmp -s "$TD/yes.exp" "$TD/yes.got" || {
		note_file "stderr" "$TD/yes.err" 3
		fail "under cohort, bash -c '$cmd' printed '$(tr '\n' ' ' <"$TD/yes.got")' (status $rc), natively '$(tr '\n' ' ' <"$TD/yes.exp")'"
	}
	[ $rc = 0 ] || fail "under cohort, bash -c '$cmd': status $rc"
	real_flow bash "$REAL/yes_head.sh"
}

# An interactive program on pseudo-terminals, driven by tests/real/pty_drive.py
# through the steps in STEPS: first straight (the same steps, without
# checkpoints, on one terminal), then under cohort (each restart on a new
# terminal).  What each terminal got is in TD/native.N and TD/pty.N.
real_pty() { # real_pty STEPS (a file of tests/real/, or an absolute path)
	[ -x "$PYTHON" ] || skip "$PYTHON not found (drives the terminals)"
	local steps=$REAL/$1
	case $1 in /*) steps=$1 ;; esac
	timeout -k 5 90 "$PYTHON" "$REAL/pty_drive.py" native "$steps" "$TD/native" </dev/null 2>"$TD/native.err" >&2 ||
		{ note_file "driver" "$TD/native.err" 12; fail "straight run: $(first_line "$TD/native.err")"; }
	COHORT=$COHORT GNAME=$GNAME IMG=$IMG timeout -k 5 90 "$PYTHON" "$REAL/pty_drive.py" cohort "$steps" "$TD/pty" </dev/null 2>"$TD/pty.err" >&2 ||
		{ note_file "driver" "$TD/pty.err" 12; fail "$(first_line "$TD/pty.err")"; }
}
# the "tick:N" lines of a loop, across the terminals: each of 1..30 once, in order
real_ticks() { # real_ticks PREFIX
	cat "$TD/$1".[0-9] | grep -ao 'tick:[0-9]\+' >"$TD/$1.ticks"
	seq 1 30 | sed 's/^/tick:/' | cmp -s - "$TD/$1.ticks" ||
		fail "$1: the loop's lines are not tick:1..30 once each, in order: $(tr '\n' ' ' <"$TD/$1.ticks" | cut -c1-200)"
}

# an interactive bash (tests/real/bash_session.steps)
t_real_bash_pty() {
	need_cmd bash
	real_pty bash_session.steps
	real_ticks native
	real_ticks pty
}

# the Python REPL (tests/real/python_repl.steps)
t_real_python_repl() {
	real_pty python_repl.steps
	real_ticks native
	real_ticks pty
}
