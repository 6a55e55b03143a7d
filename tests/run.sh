#!/bin/bash
# cohort test suite, run by `make check` as:  bash tests/run.sh [TEST...]
#
# Every normal test runs a test program (build/tests/NAME, built by the top
# Makefile from tests/progs/NAME.c; or a script, tests/progs/py_threads.py
# run by python3, tests/progs/NAME.sh run by /bin/sh) once natively to get
# the expected stdout and exit status, then under cohort:
#     run  -> checkpoint --kill -> restart -> checkpoint --kill -> restart
# and checks that the three stdout pieces concatenated equal the expected
# stdout byte for byte and that the final exit status is the expected one.
# A few tests have flows of their own (interval, nokill, gen_twice,
# file_crash, member_dies, the neg_* tests): see the comment above each.
#
# Environment:
#   COHORT               cohort binary            (default: build/cohort)
#   COHORT_TEST_BIN      test program directory   (default: build/tests)
#   COHORT_GROUP_TESTS=1 also run the tests in GROUP_TESTS (features not built
#                        yet: pipes/epoll/eventfd inside the group, several
#                        processes). Tests named on the command line always run.
#   COHORT_TEST_TIMEOUT  per-test timeout in seconds (default 60; every single
#                        command of a test gets half of it).
#   COHORT_SUITE_TIMEOUT once the suite has run this long (default 1080 s),
#                        the remaining tests fail without running.
#   KEEP=1               keep the work directory (printed at the end).
#   VERBOSE=1            print the details of passing tests too.
#
# The programs get COHORT_TEST_TMP (a private directory for their files) and
# cohort gets COHORT_RUN_DIR (a private run directory) in the environment.
# Output: one line per test, "PASS name", "FAIL name (reason)" (followed by
# indented details) or "SKIP name (reason)", then "N passed, M failed".
# Exit status: 0 if nothing failed, 1 otherwise, 2 on usage errors.

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COHORT=${COHORT:-$ROOT/build/cohort}
BIN=${COHORT_TEST_BIN:-$ROOT/build/tests}
PROGS=$ROOT/tests/progs
TEST_TMO=${COHORT_TEST_TIMEOUT:-60}
TMO=$(((TEST_TMO + 1) / 2))
SUITE_TMO=${COHORT_SUITE_TIMEOUT:-1080}
PYTHON=/usr/bin/python3
STDIN_SRC=/dev/null

# All tests, in the order they run.
ALL_TESTS=(
	threads_mutex_cond tls_tids proc_identity bigmem mprotect_filemap
	heap_growth files_offsets deleted_file signals blocking_calls
	exit_status exit_signal py_threads regfile_stdout
	interval nokill gen_twice
	neg_unsupported_fd neg_damaged_image neg_unknown_group neg_static
	blocking_pipes procs_pipes
	pipeline3 shm_counters child_exec shell_loop sh_pipeline ckpt_storm
	file_crash member_dies zombie_wait fifo_pair pgrp_orphan ctty neg_scm_rights posix_shm ipc_kinds
	spawn_kinds
	incr_chain incr_written incr_crash incr_remap incr_hash incr_keep
	incr_unmerged incr_unmerged_group
	zstd_rounds zstd_chain zstd_damaged zstd_fail
	corrupt_any unprivileged writer_killed fd_churn deleted_crash close_all
	precopy_churn incr_written_plain precopy_killed
)
# Tests needing features not built yet; only run with COHORT_GROUP_TESTS=1
# (or when named explicitly).
GROUP_TESTS=()
# Tests in files of their own: tests/cases/*.sh each define t_NAME functions
# and add their names to ALL_TESTS (they run after the ones above), and to
# GROUP_TESTS too for those that fail today; one that needs longer than
# COHORT_TEST_TIMEOUT sets TEST_TIMEOUTS[NAME] (seconds).
declare -A TEST_TIMEOUTS=()
for f in "$(dirname "${BASH_SOURCE[0]}")"/cases/*.sh; do
	[ -e "$f" ] && . "$f"
done

usage() {
	echo "usage: bash tests/run.sh [TEST...]" >&2
	echo "tests: ${ALL_TESTS[*]}" >&2
	echo "group tests (need COHORT_GROUP_TESTS=1 unless named): ${GROUP_TESTS[*]}" >&2
	exit 2
}

in_list() { # in_list WORD LIST...
	local w=$1 x
	shift
	for x in "$@"; do [ "$x" = "$w" ] && return 0; done
	return 1
}

SELECTED=()
if [ $# -gt 0 ]; then
	for t in "$@"; do
		case $t in -h | --help) usage ;; esac
		in_list "$t" "${ALL_TESTS[@]}" || { echo "run.sh: unknown test '$t'" >&2; usage; }
		SELECTED+=("$t")
	done
else
	for t in "${ALL_TESTS[@]}"; do
		if in_list "$t" "${GROUP_TESTS[@]}" && [ "${COHORT_GROUP_TESTS:-0}" != 1 ]; then
			continue
		fi
		SELECTED+=("$t")
	done
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cohort-tests.XXXX") || { echo "run.sh: mktemp failed" >&2; exit 1; }
MARKER="COHORT_TEST_TMP=$WORK/"
export COHORT_RUN_DIR=$WORK/run
mkdir -p "$COHORT_RUN_DIR"
chmod 700 "$WORK" "$COHORT_RUN_DIR"

CUR_TEST_PID=
CUR_TEST=

# ---------------------------------------------------------------------------
# process cleanup: only processes this harness started, killed by pid:
#  - everything whose environment carries our unique COHORT_TEST_TMP marker
#    (all commands of a test are started with it);
#  - pids recorded while a test ran (program pids; a restored program has the
#    same pid), if they still run one of our executables.
# ---------------------------------------------------------------------------
marked_pids() {
	local f pid
	for f in $(grep -lasF -- "$MARKER" /proc/[0-9]*/environ 2>/dev/null); do
		pid=${f#/proc/}
		pid=${pid%/environ}
		[ "$pid" != "$$" ] && echo "$pid"
	done
}

is_ours() { # is_ours PID: runs one of our executables
	local exe
	exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
	case $exe in
	"$BIN"/* | "$COHORT" | "$(readlink -f "$COHORT" 2>/dev/null)" | "$(readlink -f "$PYTHON")" | "$WORK"/*) return 0 ;;
	esac
	return 1
}

kill_leftovers() { # kill_leftovers TESTDIR
	local td=$1 pid
	for _ in 1 2 3; do
		local victims=()
		for pid in $(marked_pids); do victims+=("$pid"); done
		if [ -f "$td/pids" ]; then
			for pid in $(sort -u "$td/pids"); do
				[ -d "/proc/$pid" ] && is_ours "$pid" && victims+=("$pid")
			done
		fi
		[ ${#victims[@]} -eq 0 ] && return 0
		kill -9 "${victims[@]}" 2>/dev/null
		sleep 0.2
	done
}

on_exit() {
	if [ -n "$CUR_TEST_PID" ]; then
		{
			kill -9 "$CUR_TEST_PID"
			wait "$CUR_TEST_PID"
		} 2>/dev/null
		kill_leftovers "$WORK/${CUR_TEST:-none}"
	fi
	if [ "${KEEP:-0}" = 1 ]; then
		echo "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# helpers used inside a test (each test runs in its own subshell; TD is the
# test's directory, TT its COHORT_TEST_TMP, IMG its images directory)
# ---------------------------------------------------------------------------
fail() { # fail REASON: end the current test as failed
	printf '%s\n' "$1" >"$TD/reason"
	exit 1
}
skip() {
	printf '%s\n' "$1" >"$TD/skip"
	exit 3
}
note() { printf '%s\n' "$*" >>"$TD/details"; }
note_file() { # note_file TITLE FILE [LINES]: last lines of a file into the details
	local n=${3:-8}
	if [ -s "$2" ]; then
		note "$1:"
		tail -n "$n" "$2" | cut -c1-300 | sed 's/^/    /' >>"$TD/details"
	fi
}
first_line() { [ -s "$1" ] && head -n 1 "$1" | cut -c1-200; }

# record the pids of all descendants of PID (program pids under cohort)
record_tree() {
	local p c
	for p in "$@"; do
		echo "$p" >>"$TD/pids"
		for c in $(pgrep -P "$p" 2>/dev/null); do record_tree "$c"; done
	done
}

# bg_start TAG [--file] CMD...: start CMD in the background, stdout and stderr
# going through pipes into TD/TAG.out and TD/TAG.err (with --file, stdout is
# the regular file TD/TAG.out itself); stdin is /dev/null.
bg_start() {
	local tag=$1 tofile=0
	shift
	if [ "$1" = --file ]; then
		tofile=1
		shift
	fi
	rm -f "$TD/$tag".{ofifo,efifo,out,err,pid,cats,rc}
	mkfifo "$TD/$tag.efifo"
	cat "$TD/$tag.efifo" >"$TD/$tag.err" &
	local cats=$!
	if [ $tofile = 0 ]; then
		mkfifo "$TD/$tag.ofifo"
		cat "$TD/$tag.ofifo" >"$TD/$tag.out" &
		cats="$cats $!"
		timeout -k 5 "$TMO" "$@" <"$STDIN_SRC" >"$TD/$tag.ofifo" 2>"$TD/$tag.efifo" &
	else
		timeout -k 5 "$TMO" "$@" <"$STDIN_SRC" >"$TD/$tag.out" 2>"$TD/$tag.efifo" &
	fi
	local pid=$!
	echo "$pid" >"$TD/$tag.pid"
	echo "$cats" >"$TD/$tag.cats"
	echo "$pid $cats" >>"$TD/pids"
}

bg_alive() { kill -0 "$(cat "$TD/$1.pid")" 2>/dev/null; }

# bg_wait TAG: wait for the command and its output collectors; sets RC
bg_wait() {
	local tag=$1 pid c i
	pid=$(cat "$TD/$tag.pid")
	{ wait "$pid"; } 2>/dev/null
	RC=$?
	echo "$RC" >"$TD/$tag.rc"
	for c in $(cat "$TD/$tag.cats"); do
		# the pipes close when the last writer is gone
		for ((i = 0; i < 100; i++)); do
			kill -0 "$c" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$c" 2>/dev/null; then
			note "$tag: some process still holds its stdout/stderr 10 s after it exited"
			kill "$c" 2>/dev/null
		fi
		wait "$c" 2>/dev/null
	done
	[ "$RC" = 124 ] && note "$tag: timed out after $TMO s"
	return 0
}

# wait_ready NAME TAG: poll `cohort status NAME` until it succeeds (10 s max)
wait_ready() {
	local name=$1 tag=$2 i
	for ((i = 0; i < 200; i++)); do
		if "$COHORT" status "$name" >/dev/null 2>"$TD/status.err"; then
			record_tree "$(cat "$TD/$tag.pid")"
			return 0
		fi
		if ! bg_alive "$tag"; then
			bg_wait "$tag"
			note_file "$tag stderr" "$TD/$tag.err"
			fail "$tag exited (status $RC) before the group became ready: $(first_line "$TD/$tag.err")"
		fi
		sleep 0.05
	done
	note_file "last 'cohort status' stderr" "$TD/status.err"
	note_file "$tag stderr" "$TD/$tag.err"
	fail "$tag: group $name not ready after 10 s"
}

gen_dir() { printf '%s/%s/gen-%06d' "$IMG" "$1" "$2"; }

check_json() { # check_json FILE GEN: checkpoint --json output
	[ -x "$PYTHON" ] || return 0
	"$PYTHON" - "$1" "$2" 2>"$TD/json.err" <<'EOF' || { note_file "checkpoint --json" "$1"; note_file "json check" "$TD/json.err" 3; return 1; }
import json, sys
text = open(sys.argv[1]).read()
objs = [l for l in text.splitlines() if l.strip()]
assert len(objs) == 1, "expected exactly one line of JSON, got %d" % len(objs)
d = json.loads(objs[0])
for k in ("generation", "kind", "processes", "bytes", "pause_ms", "duration_ms"):
    assert k in d, "missing key %r" % k
assert d["generation"] == int(sys.argv[2]), "generation %r, expected %s" % (d["generation"], sys.argv[2])
assert isinstance(d["processes"], int) and d["processes"] >= 1, "processes %r" % d["processes"]
assert isinstance(d["bytes"], int) and d["bytes"] > 0, "bytes %r" % d["bytes"]
# the pause as the program's threads lived it: none when --kill ended the group
p = d.get("program_pause_ms", "missing")
if d.get("killed"):
    assert p is None, "program_pause_ms %r with --kill, expected null" % (p,)
else:
    assert isinstance(p, (int, float)) and p >= 0, "program_pause_ms %r" % (p,)
EOF
}

# ckpt NAME GEN [ARGS...]: checkpoint that must commit generation GEN;
# on failure sets CK_WHY
ckpt() {
	local name=$1 gen=$2 rc d
	shift 2
	CK_WHY=
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$name" --images "$IMG" --json "$@" >"$TD/ck$gen.json" 2>"$TD/ck$gen.err"
	rc=$?
	if [ $rc != 0 ]; then
		note_file "checkpoint $gen stderr" "$TD/ck$gen.err"
		CK_WHY="status $rc: $(first_line "$TD/ck$gen.err")"
		[ $rc = 124 ] && CK_WHY="timed out after $TMO s"
		return 1
	fi
	if ! check_json "$TD/ck$gen.json" "$gen"; then
		CK_WHY="bad --json output: $(tail -n 1 "$TD/json.err" | cut -c1-200)"
		return 1
	fi
	d=$(gen_dir "$name" "$gen")
	if [ ! -f "$d/manifest" ] || ! ls "$d"/proc-*.img* >/dev/null 2>&1; then
		CK_WHY="committed, but $d has no manifest or no proc-*.img[.zst]"
		return 1
	fi
	return 0
}

ckpt_or_fail() { # ckpt_or_fail WHAT NAME GEN [ARGS...]
	local what=$1
	shift
	ckpt "$@" || fail "$what failed: $CK_WHY"
}

# straight EXP_RC CMD...: run natively; expected output in TD/exp.out
straight() {
	local exp_rc=$1
	shift
	# (the outer 2>/dev/null silences bash's "killed by signal" notice)
	{ timeout -k 5 "$TMO" "$@" <"$STDIN_SRC" >"$TD/exp.out" 2>"$TD/exp.err"; } 2>/dev/null
	local rc=$?
	if [ "$rc" != "$exp_rc" ] || ! grep -q '^RESULT ' "$TD/exp.out"; then
		note_file "native stderr" "$TD/exp.err"
		[ "$rc" = 124 ] && fail "native run timed out after $TMO s"
		fail "native run failed (status $rc, expected $exp_rc): $(first_line "$TD/exp.err")"
	fi
}

# outputs_match FILES...: concatenation of TD/FILE.out must equal TD/exp.out;
# on mismatch the diff and stderr tails go into the details
outputs_match() {
	local f
	: >"$TD/got.out"
	for f in "$@"; do cat "$TD/$f.out" >>"$TD/got.out" 2>/dev/null; done
	cmp -s "$TD/got.out" "$TD/exp.out" && return 0
	note "stdout differs from the native run (< expected, > got):"
	diff "$TD/exp.out" "$TD/got.out" | head -n 12 | cut -c1-200 | sed 's/^/    /' >>"$TD/details"
	for f in "$@"; do note_file "$f stderr" "$TD/$f.err" 5; done
	return 1
}
compare_output() { outputs_match "$@" || fail "output mismatch"; }

# final_check EXP_RC RC TAG PIECES...: exit status and output of the last run
final_check() {
	local exp_rc=$1 rc=$2 tag=$3
	shift 3
	if ! outputs_match "$@"; then
		[ "$rc" != "$exp_rc" ] && fail "$tag: status $rc (expected $exp_rc): $(first_line "$TD/$tag.err")"
		fail "output mismatch"
	fi
	if [ "$rc" != "$exp_rc" ]; then
		note_file "$tag stderr" "$TD/$tag.err"
		fail "$tag: status $rc, expected $exp_rc: $(first_line "$TD/$tag.err")"
	fi
}

need_prog() { [ -x "$BIN/$1" ] || fail "missing test program $BIN/$1 (not built?)"; }

# prog_cmd NAME: the command line that runs test program NAME
prog_cmd() {
	case $1 in
	py_threads) PCMD=("$PYTHON" "$PROGS/py_threads.py") ;;
	shell_loop | sh_pipeline)
		[ -x /bin/sh ] || skip "/bin/sh not found"
		PCMD=(/bin/sh "$PROGS/$1.sh")
		;;
	*)
		need_prog "$1"
		PCMD=("$BIN/$1")
		;;
	esac
}

# The standard flow:
#   native run -> run, wait ready, sleep D1, checkpoint --kill (gen 1)
#   -> restart, wait ready, sleep D2, checkpoint --kill (gen 2)
#   -> restart to the end; compare output and exit status.
# flow_standard EXP_RC D1 D2 pipe|file CMD...
flow_standard() {
	local exp_rc=$1 d1=$2 d2=$3 mode=$4
	shift 4
	straight "$exp_rc" "$@"
	if [ "$mode" = file ]; then
		bg_start run0 --file "$COHORT" run --name "$GNAME" --images "$IMG" -- "$@"
	else
		bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "$@"
	fi
	wait_ready "$GNAME" run0
	sleep "$d1"
	# FLOW_CHECK: a function that looks at the running group before the first checkpoint
	[ -z "${FLOW_CHECK:-}" ] || "$FLOW_CHECK"
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) before the first checkpoint: $(first_line "$TD/run0.err")"; }
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	[ "$RC" = 0 ] && [ "$exp_rc" != 0 ] && note "note: run exited 0 after checkpoint --kill"

	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	sleep "$d2"
	# FLOW_CHECK_RESTARTED: the same, once the group has been restarted
	[ -z "${FLOW_CHECK_RESTARTED:-}" ] || "$FLOW_CHECK_RESTARTED"
	bg_alive run1 || { bg_wait run1; note_file "restart 1 stderr" "$TD/run1.err"; fail "restarted program ended (status $RC) before the second checkpoint: $(first_line "$TD/run1.err")"; }
	ckpt_or_fail "checkpoint 2 (--kill, after restart)" "$GNAME" 2 --kill
	bg_wait run1

	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check "$exp_rc" "$RC" run2 run0 run1 run2
}

# ---------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------
std() { # std PROG EXP_RC D1 D2 [pipe|file] [ARGS...]
	local p=$1 rc=$2 d1=$3 d2=$4 mode=${5:-pipe}
	shift 5 2>/dev/null || shift $#
	prog_cmd "$p"
	flow_standard "$rc" "$d1" "$d2" "$mode" "${PCMD[@]}" "$@"
}

t_threads_mutex_cond() { std threads_mutex_cond 0 0.9 0.8; }
t_tls_tids() { std tls_tids 0 0.7 0.9; }
t_proc_identity() { std proc_identity 0 0.8 0.7 pipe extra-arg "arg with spaces"; }
t_bigmem() { std bigmem 0 1.0 0.8; }
t_mprotect_filemap() { std mprotect_filemap 0 0.8 0.8; }
t_heap_growth() { std heap_growth 0 1.0 0.7; }
t_files_offsets() { std files_offsets 0 0.9 0.8; }
t_deleted_file() { std deleted_file 0 0.8 0.9; }
t_signals() { std signals 0 1.1 0.6; }
t_blocking_calls() { std blocking_calls 0 1.0 0.8; }
t_exit_status() { std exit_status 7 0.9 0.9; }
t_exit_signal() { std exit_status 140 1.0 0.8 pipe signal; }
t_py_threads() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	std py_threads 0 1.0 0.8
}
# the program's stdout is a regular file instead of a pipe; after restarts
# its output must continue in that file at the right offset (or, if cohort
# connects it to restart's stdout, continue there): either way the pieces
# concatenated must equal the native output
t_regfile_stdout() { std threads_mutex_cond 0 0.8 0.9 file; }
t_blocking_pipes() { std blocking_pipes 0 1.0 0.8; }
t_procs_pipes() { std procs_pipes 0 0.9 0.9; }
t_pipeline3() { std pipeline3 0 1.0 0.9; }
t_shm_counters() { std shm_counters 0 0.9 1.0; }
t_child_exec() { std child_exec 0 1.0 1.2; }
t_fifo_pair() { std fifo_pair 0 0.3 0.3; }
t_ipc_kinds() { std ipc_kinds 0 0.8 0.9; }
# a program that closes every descriptor above 2 must stay checkpointable
t_close_all() { std close_all 0 0.7 0.7; }
# every way of starting a process, alive at once; the clone(3) child must
# have registered (status lists it) and everything must come back
t_spawn_kinds() { FLOW_CHECK=spawn_kinds_registered std spawn_kinds 0 0.4 0.4; }
spawn_kinds_registered() {
	local n
	n=$("$COHORT" status "$GNAME" --json 2>/dev/null | grep -o '"program":"spawn_kinds"' | wc -l)
	[ "$n" -ge 2 ] || fail "the clone(3) child did not register: status lists $n spawn_kinds process(es)"
}
t_posix_shm() { std posix_shm 0 0.5 0.5; }

# a descriptor in flight on a Unix socket: the checkpoint fails naming it,
# nothing is committed, and the program finishes as a straight run does
t_neg_scm_rights() {
	prog_cmd scm_rights
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 0.5
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --kill >"$TD/ck.out" 2>"$TD/ck.err"
	local rc=$?
	note_file "checkpoint stderr" "$TD/ck.err" 3
	[ "$rc" != 0 ] || fail "checkpoint with a descriptor in flight succeeded"
	grep -q 'SCM_RIGHTS' "$TD/ck.err" || fail "the error does not name the descriptor in flight: $(first_line "$TD/ck.err")"
	[ ! -d "$IMG/$GNAME/gen-000001" ] || fail "a generation was committed"
	bg_wait run0
	final_check 0 "$RC" run0 run0
}

# the controlling terminal: every run and restart on a terminal of its own
# (script(1) makes one); the program must keep having one and stay in its
# foreground across two checkpoint --kill + restart rounds
t_ctty() {
	command -v script >/dev/null || skip "script(1) not found"
	prog_cmd ctty
	local on_tty=(script -qec)
	straight 0 "${on_tty[@]}" "${PCMD[*]}" /dev/null
	grep -q 'controlling terminal yes, foreground yes' "$TD/exp.out" || fail "no controlling terminal under script(1): $(head -c 200 "$TD/exp.out")"
	bg_start run0 "${on_tty[@]}" "$COHORT run --name $GNAME --images $IMG -- ${PCMD[*]}" /dev/null
	wait_ready "$GNAME" run0
	sleep 0.8
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	bg_start run1 "${on_tty[@]}" "$COHORT restart $GNAME --images $IMG" /dev/null
	wait_ready "$GNAME" run1
	sleep 0.8
	ckpt_or_fail "checkpoint 2 (--kill, after restart)" "$GNAME" 2 --kill
	bg_wait run1
	bg_start run2 "${on_tty[@]}" "$COHORT restart $GNAME --images $IMG" /dev/null
	bg_wait run2
	# on the terminal, run and restart say that checkpoint --kill ended them: not the program's output
	local t
	for t in run0 run1; do
		grep -q "^cohort: group '$GNAME' ended by 'checkpoint --kill'" "$TD/$t.out" ||
			fail "$t: no line saying that checkpoint --kill ended the group"
		sed -i "/^cohort: group '$GNAME' ended by 'checkpoint --kill'/d" "$TD/$t.out"
	done
	final_check 0 "$RC" run2 run0 run1 run2
}
t_pgrp_orphan() { std pgrp_orphan 0 0.4 0.4; }
# shell scripts: many short-lived processes (shell_loop), pipelines of
# external commands (sh_pipeline); checkpoints meet processes being born
# and exiting
t_shell_loop() { std shell_loop 0 1.2 1.2; }
t_sh_pipeline() { std sh_pipeline 0 1.0 1.0; }
t_zombie_wait() { std zombie_wait 0 0.9 1.0; }

# periodic checkpoints with --interval 1
t_interval() {
	prog_cmd interval
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" --interval 1 -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 3.5
	local n
	n=$(ls -d "$IMG/$GNAME"/gen-*/manifest 2>/dev/null | wc -l)
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) too early: $(first_line "$TD/run0.err")"; }
	[ "$n" -ge 2 ] || { note_file "run stderr" "$TD/run0.err"; fail "only $n committed generation(s) after 3.5 s with --interval 1"; }
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --kill >"$TD/ck.out" 2>"$TD/ck.err" ||
		{ note_file "checkpoint stderr" "$TD/ck.err"; fail "checkpoint --kill failed: $(first_line "$TD/ck.err")"; }
	bg_wait run0
	local m
	m=$(ls -d "$IMG/$GNAME"/gen-*/manifest 2>/dev/null | wc -l)
	[ "$m" -gt "$n" ] || fail "checkpoint --kill did not add a generation ($n before, $m after)"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# checkpoints without --kill: the program must go on unharmed; afterwards a
# restart of the last generation must also produce the rest of the output
t_nokill() {
	prog_cmd heap_growth
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 0.8
	ckpt_or_fail "checkpoint 1 (no --kill)" "$GNAME" 1
	sleep 0.7
	ckpt_or_fail "checkpoint 2 (no --kill)" "$GNAME" 2
	bg_wait run0
	final_check 0 "$RC" run0 run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	check_suffix run1 run0 || fail "restart of generation 2 after the program ended: wrong output"
	[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart exit status $RC"; }
}

# checkpoint storm: back-to-back checkpoints without --kill while a shell
# loop starts and ends hundreds of processes (births, execs and exits meet
# every phase of the checkpoint).  Every one must commit; the last one ends
# the group (--kill) and the restart must print the rest of the straight run.
t_ckpt_storm() { storm shell_loop 4; }
# the same storm over fd_churn: close(0)/open and dup2 in a tight loop, which
# a descriptor the agent made while the program runs would disturb
t_fd_churn() { storm fd_churn 2; }
# a storm of snapshot checkpoints (each a pre-copied full image) over
# precopy_churn, whose two threads map, unmap, drop (MADV_DONTNEED), protect
# (PROT_NONE) and move (mremap) memory without pause and check every page;
# the restart must finish like the straight run, and with uffd-wp tracking
# the checkpoints must have been pre-copied (--json "precopied")
t_precopy_churn() {
	STORM_CHECK=group_status storm precopy_churn 1
	local tracking
	tracking=$(json_fields "$TD/status.json" tracking) || fail "cohort status --json: not JSON"
	[ "$tracking" = uffd-wp ] || { note "tracking $tracking: no pre-copy expected"; return 0; }
	local f n=0
	for f in "$TD"/ck*.json; do
		[ "$(json_fields "$f" precopied)" -ge 1 ] 2>/dev/null && n=$((n + 1))
	done
	[ "$n" -ge 1 ] || fail "no checkpoint of the storm was pre-copied (--json \"precopied\")"
	note "pre-copied checkpoints: $n"
	# the storm's restart was from its last checkpoint (--kill: not pre-copied); now from pre-copied ones
	for f in 1 2; do
		[ "$(json_fields "$TD/ck$f.json" precopied)" -ge 1 ] 2>/dev/null || continue
		bg_start "rg$f" "$COHORT" restart "$GNAME" --images "$IMG" --generation "$f"
		bg_wait "rg$f"
		check_suffix "rg$f" run0 || fail "restart of pre-copied generation $f: wrong output"
		[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/rg$f.err"; fail "restart of pre-copied generation $f: status $RC: $(first_line "$TD/rg$f.err")"; }
	done
}
# group_status: `cohort status NAME --json` of the running group into TD/status.json
group_status() {
	timeout -k 5 "$TMO" "$COHORT" status "$GNAME" --json >"$TD/status.json" 2>"$TD/status.err" ||
		{ note_file "status stderr" "$TD/status.err"; fail "cohort status --json failed: $(first_line "$TD/status.err")"; }
}
storm() { # storm PROG SECONDS
	prog_cmd "$1"
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	# STORM_CHECK: a function that looks at the running group before the storm
	[ -z "${STORM_CHECK:-}" ] || "$STORM_CHECK"
	local gen=0 t_end=$((SECONDS + $2))
	while [ $SECONDS -lt $t_end ]; do
		bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "the group ended during the storm (status $RC), after $gen checkpoints: $(first_line "$TD/run0.err")"; }
		ckpt_or_fail "checkpoint $((gen + 1)) of the storm" "$GNAME" $((gen + 1))
		gen=$((gen + 1))
	done
	ckpt_or_fail "checkpoint $((gen + 1)) (--kill) after $gen" "$GNAME" $((gen + 1)) --kill
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	check_suffix run1 run0 || fail "restart after $((gen + 1)) checkpoints: wrong output"
	[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart exit status $RC"; }
}

# check_suffix TAG PREFIXTAG: TAG.out must be a suffix of exp.out and the rest
# of exp.out a prefix of PREFIXTAG.out (the output seen before the checkpoint)
check_suffix() {
	local tag=$1 pre=$2 el sl
	el=$(stat -c %s "$TD/exp.out")
	sl=$(stat -c %s "$TD/$tag.out")
	if [ "$sl" -gt "$el" ] || [ "$sl" -eq 0 ] ||
		! cmp -s <(tail -c "$sl" "$TD/exp.out") "$TD/$tag.out" ||
		! cmp -s <(head -c $((el - sl)) "$TD/exp.out") <(head -c $((el - sl)) "$TD/$pre.out"); then
		note "$tag: output is not the expected continuation (< expected, > got):"
		diff "$TD/exp.out" "$TD/$tag.out" | head -n 8 | cut -c1-200 | sed 's/^/    /' >>"$TD/details"
		note_file "$tag stderr" "$TD/$tag.err" 5
		return 1
	fi
	return 0
}

# crash and restart: a checkpoint WITHOUT --kill, the program runs on for a
# second (its files change), then the whole group is killed with SIGKILL
# (`cohort kill --signal KILL`); the restart must find the files the program
# had open for writing as they were at the checkpoint (file_crash checks them
# against its memory at every step), print exactly the rest of the native
# output from the checkpointed step, and leave the files as the native run did
t_file_crash() {
	prog_cmd file_crash
	straight 0 "${PCMD[@]}"
	local f
	for f in log state; do
		cp "$TT/file_crash.$f" "$TD/native.$f" || fail "native run left no $TT/file_crash.$f"
	done
	crash_flow 1.0 1.0
	for f in log state; do
		cmp -s "$TT/file_crash.$f" "$TD/native.$f" || fail "file_crash.$f differs from the native run's at the end"
	done
}

# the same crash over deleted_busy, which rewrites a file it has unlinked as
# fast as it can: a checkpoint without --kill, the program runs on and
# changes it, SIGKILL, restart; the deleted file must come back as it was at
# the checkpoint, which deleted_busy checks against its memory at once.  (The
# image writer reads that content while the program is still parked; a writer
# that read it just after the release would mostly go unseen here, as it
# reads within a millisecond of the fork.)
t_deleted_crash() {
	prog_cmd deleted_busy
	straight 0 "${PCMD[@]}"
	crash_flow 0.8 0.8
}

# crash_flow D1 D2: run PCMD, checkpoint without --kill after D1 s, SIGKILL
# the group D2 s later (it must have made progress and not finished), then
# the restart must print exactly the rest of the straight run and exit 0
crash_flow() {
	local n1 n2
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep "$1"
	ckpt_or_fail "checkpoint (no --kill)" "$GNAME" 1
	n1=$(grep -c '^step ' "$TD/run0.out")
	sleep "$2"
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) before the crash: $(first_line "$TD/run0.err")"; }
	timeout -k 5 "$TMO" "$COHORT" kill "$GNAME" --signal KILL >"$TD/kill.out" 2>"$TD/kill.err" ||
		{ note_file "cohort kill stderr" "$TD/kill.err"; fail "cohort kill --signal KILL failed: $(first_line "$TD/kill.err")"; }
	bg_wait run0
	[ "$RC" != 124 ] || fail "run did not end after cohort kill --signal KILL"
	[ "$RC" != 0 ] || fail "run exited 0 after cohort kill --signal KILL"
	grep -q '^RESULT ' "$TD/run0.out" && fail "the program finished before the crash"
	n2=$(grep -c '^step ' "$TD/run0.out")
	[ "$n2" -gt "$n1" ] || fail "no progress between the checkpoint and the crash ($n1 steps, then $n2)"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	check_suffix run1 run0 || { [ "$RC" != 0 ] && fail "restart after the crash: status $RC: $(first_line "$TD/run1.err")"; fail "restart after the crash: wrong output"; }
	[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart after the crash: status $RC: $(first_line "$TD/run1.err")"; }
}

# a member is killed from outside between checkpoints: after the first
# restart, one of member_dies' 3 workers (found with `cohort status --json`)
# gets SIGKILL; the parent reaps it, says so on stderr and respawns it (its
# stdout is the same as without the kill); the next checkpoint --kill and
# restart must still work
t_member_dies() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found (needed to read cohort status --json)"
	prog_cmd member_dies
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 0.9
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) before the first checkpoint: $(first_line "$TD/run0.err")"; }
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0

	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	sleep 0.3
	group_status
	local victim vpid vhost i
	# the program is the process whose parent is the group's init (pid 1);
	# its workers are its children: take the second one by in-group pid
	victim=$("$PYTHON" - "$TD/status.json" 2>"$TD/victim.err" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ps = [p for p in d["processes"] if p.get("state") != "zombie"]
main = [p for p in ps if p["ppid"] == 1]
assert len(main) == 1, "%d processes with ppid 1" % len(main)
workers = sorted((p for p in ps if p["ppid"] == main[0]["pid"]), key=lambda p: p["pid"])
assert len(workers) == 3, "%d workers" % len(workers)
print(workers[1]["pid"], workers[1]["host_pid"])
PY
	) || { note_file "cohort status --json" "$TD/status.json" 3; note_file "error" "$TD/victim.err" 3; fail "cannot find the 3 workers in cohort status --json"; }
	read -r vpid vhost <<<"$victim"
	[ "$(readlink "/proc/$vhost/exe" 2>/dev/null)" = "$BIN/member_dies" ] ||
		fail "host pid $vhost (in-group pid $vpid) does not run $BIN/member_dies"
	kill -9 "$vhost" || fail "cannot kill worker $vpid (host pid $vhost)"
	for ((i = 0; i < 60; i++)); do
		grep -q 'worker [0-9] killed' "$TD/run1.err" && break
		bg_alive run1 || break
		sleep 0.05
	done
	bg_alive run1 || { bg_wait run1; note_file "restart 1 stderr" "$TD/run1.err"; fail "program ended (status $RC) after worker $vpid was killed: $(first_line "$TD/run1.err")"; }
	grep -q 'worker [0-9] killed' "$TD/run1.err" || { note_file "restart 1 stderr" "$TD/run1.err"; fail "the program did not notice that worker $vpid was killed"; }
	sleep 0.2
	ckpt_or_fail "checkpoint 2 (--kill, after a worker was killed and respawned)" "$GNAME" 2 --kill
	bg_wait run1

	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

# restart an older generation (twice) after a newer one exists
t_gen_twice() {
	prog_cmd tls_tids
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 0.7
	ckpt_or_fail "checkpoint 1 (no --kill)" "$GNAME" 1
	sleep 0.7
	ckpt_or_fail "checkpoint 2 (--kill)" "$GNAME" 2 --kill
	bg_wait run0
	bg_start r1a "$COHORT" restart "$GNAME" --images "$IMG" --generation 1
	bg_wait r1a
	[ "$RC" = 0 ] || { note_file "restart --generation 1 stderr" "$TD/r1a.err"; fail "restart --generation 1: status $RC: $(first_line "$TD/r1a.err")"; }
	check_suffix r1a run0 || fail "restart --generation 1: wrong output"
	bg_start r1b "$COHORT" restart "$GNAME" --images "$IMG" --generation 1
	bg_wait r1b
	[ "$RC" = 0 ] || { note_file "second restart --generation 1 stderr" "$TD/r1b.err"; fail "second restart --generation 1: status $RC: $(first_line "$TD/r1b.err")"; }
	cmp -s "$TD/r1a.out" "$TD/r1b.out" || { check_suffix r1b run0; fail "second restart of generation 1 gave different output"; }
	bg_start r2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait r2
	final_check 0 "$RC" r2 run0 r2
}

# negative: a socket fd makes the checkpoint fail cleanly; the program goes on
t_neg_unsupported_fd() {
	prog_cmd unsupported_fd
	straight 0 "${PCMD[@]}"
	rm -f "$TT/unsupported_fd.info"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local i
	for ((i = 0; i < 100; i++)); do
		[ -s "$TT/unsupported_fd.info" ] && break
		sleep 0.05
	done
	[ -s "$TT/unsupported_fd.info" ] || fail "program did not write $TT/unsupported_fd.info"
	local pid fd0 fd1 hp pids
	read -r pid fd0 fd1 <"$TT/unsupported_fd.info"
	# the program may run in a pid namespace: accept its own pid or the host pid
	pids=$pid
	for hp in $(sort -u "$TD/pids"); do
		[ "$(readlink "/proc/$hp/exe" 2>/dev/null)" = "$BIN/unsupported_fd" ] && pids="$pids|$hp"
	done
	sleep 0.6
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --kill >"$TD/ck.out" 2>"$TD/ck.err"
	local rc=$?
	note_file "checkpoint stderr" "$TD/ck.err" 4
	[ "$rc" != 0 ] || fail "checkpoint of a process with a socket succeeded"
	[ "$rc" != 124 ] || fail "checkpoint timed out"
	grep -E "(^|[^0-9])($pids)([^0-9]|$)" "$TD/ck.err" | grep -i socket |
		grep -qiE "fd[^0-9]{0,8}($fd0|$fd1)([^0-9]|$)" ||
		fail "checkpoint error does not name the pid ($pids), fd $fd0 or $fd1 and 'socket': $(first_line "$TD/ck.err")"
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program died after the failed checkpoint (status $RC)"; }
	bg_wait run0
	final_check 0 "$RC" run0 run0
	# nothing usable may have been committed
	timeout -k 5 20 "$COHORT" restart "$GNAME" --images "$IMG" >"$TD/rs.out" 2>"$TD/rs.err" </dev/null &&
		fail "restart succeeded although the only checkpoint failed"
	return 0
}

# negative: a damaged image must be refused; the undamaged one must work
t_neg_damaged_image() { damaged_flow img; }

# damaged_flow img|zst [RUN ARGS...]: one checkpoint --kill, then a byte in
# the middle of the largest process image file (proc-*.img, or with zst its
# compressed proc-*.img.zst) flipped: verify must find it and restart refuse
# it with one line naming the file; once repaired, both must work again
damaged_flow() {
	local kind=$1
	shift
	prog_cmd exit_status
	straight 7 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" "$@" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 0.9
	ckpt_or_fail "checkpoint --kill" "$GNAME" 1 --kill
	bg_wait run0
	local img size off orig flip suffix=
	[ "$kind" = zst ] && suffix=.zst
	img=$(ls -S "$(gen_dir "$GNAME" 1)"/proc-*.img* 2>/dev/null | head -n 1)
	[ -n "$img" ] || fail "no proc-*.img* in $(gen_dir "$GNAME" 1)"
	case $img in
	*.img$suffix) ;;
	*) fail "the largest image file is $(basename "$img"), expected a proc-*.img$suffix" ;;
	esac
	size=$(stat -c %s "$img")
	off=$((size / 2))
	orig=$(od -An -tu1 -j "$off" -N 1 "$img" | tr -d ' \n')
	flip=$((orig ^ 255))
	printf '%b' "\\0$(printf '%03o' "$flip")" | dd of="$img" bs=1 seek="$off" count=1 conv=notrunc status=none
	[ "$(od -An -tu1 -j "$off" -N 1 "$img" | tr -d ' \n')" = "$flip" ] || fail "could not damage $img"
	# cohort verify finds it without restoring anything, naming the file
	"$COHORT" verify "$(gen_dir "$GNAME" 1)" >"$TD/vf.out" 2>"$TD/vf.err" && fail "verify of a damaged generation succeeded"
	grep -qF "$(basename "$img")" "$TD/vf.err" || fail "verify does not name $(basename "$img"): $(first_line "$TD/vf.err")"
	bg_start rs "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait rs
	note_file "restart stderr" "$TD/rs.err" 4
	[ "$RC" != 124 ] || fail "restart of a damaged image timed out"
	[ "$RC" != 0 ] || fail "restart of a damaged image succeeded"
	[ ! -s "$TD/rs.out" ] || fail "restart of a damaged image ran the program"
	grep -qF "$(basename "$img")" "$TD/rs.err" || fail "error does not name $(basename "$img"): $(first_line "$TD/rs.err")"
	[ "$(wc -l <"$TD/rs.err")" = 1 ] || fail "expected exactly one line on stderr, got $(wc -l <"$TD/rs.err")"
	# nothing of the refused restart stays behind (with zst: FIFOs and their feeders, some never opened)
	[ -z "$(our_comm_pids cohort-zstd)" ] || fail "cohort-zstd processes still run after the refused restart"
	[ ! -e "$COHORT_RUN_DIR/$GNAME" ] || fail "the refused restart left $COHORT_RUN_DIR/$GNAME: $(ls -A "$COHORT_RUN_DIR/$GNAME")"
	# repair it: the generation must be usable again
	printf '%b' "\\0$(printf '%03o' "$orig")" | dd of="$img" bs=1 seek="$off" count=1 conv=notrunc status=none
	"$COHORT" verify "$(gen_dir "$GNAME" 1)" >"$TD/vf.out" 2>"$TD/vf.err" || fail "verify of the repaired generation failed: $(first_line "$TD/vf.err")"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 7 "$RC" run1 run0 run1
}

# negative: unknown group names
t_neg_unknown_group() {
	local g=nosuchgroup-$$ what rc
	for what in status checkpoint restart; do
		case $what in
		status) timeout -k 5 30 "$COHORT" status "$g" >"$TD/$what.out" 2>"$TD/$what.err" </dev/null ;;
		*) timeout -k 5 30 "$COHORT" "$what" "$g" --images "$IMG" >"$TD/$what.out" 2>"$TD/$what.err" </dev/null ;;
		esac
		rc=$?
		note_file "$what stderr" "$TD/$what.err" 3
		[ "$rc" != 0 ] || fail "'$what $g' succeeded"
		[ "$rc" != 124 ] || fail "'$what $g' timed out"
		[ "$what" = status ] && continue
		[ -s "$TD/$what.err" ] || fail "'$what $g' printed no error message"
		[ "$(wc -l <"$TD/$what.err")" = 1 ] || fail "'$what $g': expected one line on stderr, got $(wc -l <"$TD/$what.err")"
	done
}

# negative: static binaries cannot be run under cohort
t_neg_static() {
	local sp=$WORK/static_exit_status
	if [ ! -x "$sp" ]; then
		gcc -std=gnu11 -O2 -static -pthread -o "$sp" "$PROGS/exit_status.c" >"$TD/gcc.log" 2>&1 ||
			skip "cannot link statically (libc.a missing?)"
	fi
	timeout -k 5 30 "$COHORT" run --name "$GNAME" --images "$IMG" -- "$sp" >"$TD/run.out" 2>"$TD/run.err" </dev/null
	local rc=$?
	note_file "run stderr" "$TD/run.err" 3
	[ "$rc" != 0 ] || fail "run of a static binary succeeded"
	[ "$rc" != 124 ] || fail "run of a static binary timed out"
	[ ! -s "$TD/run.out" ] || fail "the static binary was run"
	grep -qi static "$TD/run.err" || fail "error does not mention 'static': $(first_line "$TD/run.err")"
}

# ---------------------------------------------------------------------------
# incremental checkpoints, with tests/progs/incr_pages.c: after each step the
# program prints "STEP s pages K" (K = distinct pages it wrote in step s) and
# waits for the file $TT/go.s, so every checkpoint lands at a known step and
# the pages written between two checkpoints are known exactly.  Step 3 maps a
# new 4 MiB region (all 1024 pages written), step 4 unmaps the last 1 MiB of
# the 64 MiB one.  A restart of the generation taken at step s (all go files
# made first) must print exactly the native output after "STEP s".
# ---------------------------------------------------------------------------
INCR_STEPS=6
INCR_ARGS=() # more arguments for the program (tests/cases/thp.sh: --thp)

# incr_straight [PROG]: native run of PROG (default incr_pages; it must
# follow incr_pages' STEP protocol) with every go file made in advance
# (expected output in TD/exp.out); the go files are removed again afterwards
incr_straight() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found (needed to read --json output)"
	prog_cmd "${1:-incr_pages}"
	PCMD+=("$INCR_STEPS" ${INCR_ARGS[@]+"${INCR_ARGS[@]}"})
	incr_go_all
	straight 0 "${PCMD[@]}"
	rm -f "$TT"/go.*
	[ "$(grep -c '^STEP [0-9]* pages [0-9]*$' "$TD/exp.out")" = "$INCR_STEPS" ] ||
		fail "native run: expected $INCR_STEPS 'STEP s pages K' lines"
}

incr_go_all() {
	local s
	for ((s = 1; s <= INCR_STEPS; s++)); do : >"$TT/go.$s"; done
}

# incr_k STEP: the number of pages the program wrote in STEP (native run)
incr_k() { sed -n "s/^STEP $1 pages \([0-9]*\)\$/\1/p" "$TD/exp.out"; }

# incr_wait_step TAG STEP: wait until TAG has printed the line of STEP (the
# program then waits for go.STEP)
incr_wait_step() {
	local tag=$1 s=$2 end=$((SECONDS + TMO))
	while [ $SECONDS -lt $end ]; do
		grep -q "^STEP $s pages " "$TD/$tag.out" && return 0
		if ! bg_alive "$tag"; then
			bg_wait "$tag"
			note_file "$tag stderr" "$TD/$tag.err"
			fail "$tag ended (status $RC) before step $s: $(first_line "$TD/$tag.err")"
		fi
		sleep 0.02
	done
	fail "$tag: no 'STEP $s' line after $TMO s"
}

# json_fields FILE KEY...: the values of KEYs in the (last) JSON object of
# FILE, on one line ("-" for a missing key)
json_fields() {
	"$PYTHON" - "$@" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
try:
    d = json.loads(text)
except ValueError:
    d = json.loads([l for l in text.splitlines() if l.strip()][-1])
print(" ".join("-" if d.get(k) is None else str(d[k]) for k in sys.argv[2:]))
PY
}

# ickpt TAG [ARGS...]: `checkpoint NAME --json ARGS` that must commit a
# generation; sets IGEN IKIND IPARENT from its output (TD/TAG.json)
ickpt() {
	local tag=$1 rc
	shift
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --json "$@" >"$TD/$tag.json" 2>"$TD/$tag.err"
	rc=$?
	if [ $rc != 0 ]; then
		note_file "$tag: checkpoint $* stderr" "$TD/$tag.err"
		[ $rc = 124 ] && fail "$tag: checkpoint $* timed out after $TMO s"
		fail "$tag: checkpoint $* failed (status $rc): $(first_line "$TD/$tag.err")"
	fi
	read -r IGEN IKIND IPARENT < <(json_fields "$TD/$tag.json" generation kind parent 2>"$TD/json.err")
	if [ -z "${IGEN:-}" ] || ! check_json "$TD/$tag.json" "$IGEN"; then
		note_file "$tag: checkpoint --json" "$TD/$tag.json" 3
		note_file "json error" "$TD/json.err" 3
		fail "$tag: checkpoint $*: bad --json output"
	fi
	[ -f "$(gen_dir "$GNAME" "$IGEN")/manifest" ] ||
		fail "$tag: checkpoint $* reported generation $IGEN, but $(gen_dir "$GNAME" "$IGEN")/manifest does not exist"
	return 0
}

# incr_restart TAG STEP [ARGS...]: `restart NAME ARGS` (every go file exists)
# must print exactly the native output after "STEP STEP" and exit 0
incr_restart() {
	local tag=$1 s=$2 what
	shift 2
	what="restart ${*:-(newest generation)}"
	bg_start "$tag" "$COHORT" restart "$GNAME" --images "$IMG" "$@"
	bg_wait "$tag"
	sed -n "/^STEP $s pages /,\$p" "$TD/exp.out" | tail -n +2 >"$TD/$tag.exp"
	if ! cmp -s "$TD/$tag.exp" "$TD/$tag.out"; then
		note "$what (taken at step $s): stdout differs from the native run after STEP $s (< expected, > got):"
		diff "$TD/$tag.exp" "$TD/$tag.out" | head -n 12 | cut -c1-200 | sed 's/^/    /' >>"$TD/details"
		note_file "$what stderr" "$TD/$tag.err" 5
		fail "$what: wrong output (status $RC): $(first_line "$TD/$tag.err")"
	fi
	[ "$RC" = 0 ] || { note_file "$what stderr" "$TD/$tag.err"; fail "$what: status $RC: $(first_line "$TD/$tag.err")"; }
}

full_dir() { printf '%s/%s/full-%06d' "$IMG" "$GNAME" "$1"; }

# incr_wait_full GEN SECS: wait until the merged full-GEN is there
incr_wait_full() {
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt "$end" ]; do
		[ -f "$(full_dir "$1")/manifest" ] && return 0
		sleep 0.05
	done
	return 1
}

# our_comm_pids COMM: processes of this suite (environment marker) whose
# main thread is named COMM
our_comm_pids() {
	local f pid
	for f in $(grep -lxsF -- "$1" /proc/[0-9]*/comm 2>/dev/null); do
		pid=${f#/proc/}
		pid=${pid%/comm}
		grep -qsF -- "$MARKER" "/proc/$pid/environ" 2>/dev/null && echo "$pid"
	done
}

# incr_merges_idle SECS: wait until no cohort-merge process of ours runs
incr_merges_idle() {
	local end=$((SECONDS + $1))
	while [ -n "$(our_comm_pids cohort-merge)" ]; do
		[ $SECONDS -lt "$end" ] || return 1
		sleep 0.05
	done
	return 0
}

# incr_verify WHAT: `cohort verify IMG/NAME` must pass
incr_verify() {
	timeout -k 5 "$TMO" "$COHORT" verify "$IMG/$GNAME" >"$TD/verify.out" 2>"$TD/verify.err" ||
		{ note_file "verify stderr" "$TD/verify.err" 5; fail "cohort verify $IMG/$GNAME failed $1: $(first_line "$TD/verify.err")"; }
}

# incremental chain: checkpoints at steps 1..5 all with --incremental (the
# first of a run must come out full; the others incremental, each the child
# of the one before), the last one with --kill.  Then restarts of
# (a) the full generation 1;
# (c) generation 4 through its merged full-000004 (which must have been
#     built in the background before checkpoint 5 was taken);
# (b) generation 5 after every full-N is deleted, so that the restart must
#     rebuild it from the chain gen 1 (full) + 2 + 3 (new region) + 4
#     (region cut) + 5;
# each must print the rest of the native output; then verify of the group
# a region moved (mremap) into a hole of a tracked region between a full and
# an incremental checkpoint: its pages were not written since, but they are
# not the pages the parent image holds there.  The restart goes through the
# chain (no full-N) and must print what a straight run prints.
t_incr_remap() {
	prog_cmd incr_remap
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 0.5
	ckpt_or_fail "checkpoint 1 (full)" "$GNAME" 1
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q '^moved' "$TD/run0.out" && break
		sleep 0.05
	done
	grep -q '^moved' "$TD/run0.out" || fail "the program did not move its region within 5 s"
	ckpt_or_fail "checkpoint 2 (--incremental --kill)" "$GNAME" 2 --incremental --kill
	grep -q '"kind":"incremental"' "$TD/ck2.json" || fail "checkpoint 2 is not incremental: $(cat "$TD/ck2.json")"
	bg_wait run0
	rm -rf "$IMG/$GNAME"/full-*
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	check_suffix run1 run0 || fail "restart of the incremental generation: wrong output"
	[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart exit status $RC: $(first_line "$TD/run1.err")"; }
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

# timed checkpoints with --full-every 3 and --keep 4: generations 1, 4, 7...
# are full and the others incremental; at most 4 generations stay (more only
# while a kept incremental still needs its chain); the newest one and the
# oldest kept one both restart and finish like a straight run.
t_incr_keep() {
	prog_cmd interval
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" --interval 0.4 --full-every 3 --keep 4 -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local i g kind want n
	for ((i = 0; i < 100; i++)); do
		[ -d "$IMG/$GNAME/gen-000007" ] && break
		bg_alive run0 || break
		sleep 0.1
	done
	[ -d "$IMG/$GNAME/gen-000007" ] || fail "no 7th timed generation after 10 s with --interval 0.4"
	ckpt_or_fail "checkpoint (--kill)" "$GNAME" "$(($("$COHORT" status "$GNAME" --json | sed 's/.*"generation":\([0-9]*\).*/\1/') + 1))" --kill
	bg_wait run0
	sleep 1 # the last merge
	local gens=("$IMG/$GNAME"/gen-*)
	n=${#gens[@]}
	[ "$n" -le 5 ] || fail "--keep 4: $n generations left: $(cd "$IMG/$GNAME" && echo gen-*)"
	for g in "${gens[@]}"; do
		"$COHORT" inspect "$g" --json >"$TD/insp.json" 2>"$TD/insp.err" || fail "inspect $g: $(first_line "$TD/insp.err")"
		kind=$(sed 's/.*"kind":"\([a-z]*\)".*/\1/;q' "$TD/insp.json")
		i=$((10#${g##*gen-}))
		want=incremental
		[ $(((i - 1) % 3)) = 0 ] && want=full
		# the last one came from `checkpoint --kill` (full) unless it is a timed one
		[ "$g" = "${gens[-1]}" ] && [ "$kind" = full ] && want=full
		[ "$kind" = "$want" ] || fail "generation $i is $kind, expected $want with --full-every 3"
	done
	for g in "${gens[-1]}" "${gens[0]}"; do
		i=$((10#${g##*gen-}))
		bg_start "r$i" "$COHORT" restart "$GNAME" --images "$IMG" --generation "$i"
		bg_wait "r$i"
		check_suffix "r$i" run0 || fail "restart of generation $i: wrong output"
		[ "$RC" = 0 ] || fail "restart of generation $i: status $RC: $(first_line "$TD/r$i.err")"
	done
}

t_incr_chain() {
	incr_straight
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" ${RUN_OPTS[@]+"${RUN_OPTS[@]}"} -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local s
	for ((s = 1; s <= 5; s++)); do
		incr_wait_step run0 $s
		if [ $s = 5 ]; then
			incr_wait_full 4 20 || { note_file "run stderr" "$TD/run0.err"; fail "$(full_dir 4) was not built within 20 s after incremental generation 4 committed"; }
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
	incr_merges_idle 20 || fail "a cohort-merge process still runs 20 s after the group ended"
	rm -rf "$IMG/$GNAME"/full-*
	incr_restart rb 5 --generation 5
	[ -f "$(full_dir 5)/manifest" ] || note "note: restart --generation 5 did not leave $(full_dir 5) behind"
	incr_verify "after the restarts"
}

# incr_page_digest DIR: one line per record of every process image of the
# generation directory DIR and of its manifest (type and SHA-1 of the
# payload; head and end records left out), except that page data comes
# as one line per page (address and SHA-1), in address order over all the
# page streams of an image: equal digests mean equal metadata and equal
# page contents, however the pages are cut into records
incr_page_digest() {
	"$PYTHON" - "$1" <<'PY'
import glob, hashlib, os, struct, sys

def records(path):
    data = open(path, "rb").read()
    off = 0
    while off < len(data):
        magic, typ, _flags, pad, _check, length, _seq = struct.unpack_from("<IHHIIQQ", data, off)
        if magic != 0x43524F43:
            raise SystemExit("%s: byte %d: no record header" % (path, off))
        start = off + 32 + pad
        yield typ, data[start:start + length]
        off = start + length + 8

d = sys.argv[1]
for img in sorted(glob.glob(os.path.join(d, "proc-*.img"))) + [os.path.join(d, "manifest")]:
    name = os.path.basename(img)
    if name.count(".") > 1:
        continue  # page stream N of an image: read with it
    pages, runs = {}, []
    for path in [img] + sorted(glob.glob(img[:-4] + ".p*.img") if img.endswith(".img") else []):
        for typ, p in records(path):
            if typ == 7:  # page map: its runs, for the page data after it
                nruns = struct.unpack_from("<QI", p)[1]
                runs = [struct.unpack_from("<QQ", p, 16 + 16 * i) for i in range(nruns)]
            elif typ == 8:
                at = 0
                for addr, n in runs:
                    for i in range(n):
                        pages[addr + 4096 * i] = hashlib.sha1(p[at:at + 4096]).hexdigest()
                        at += 4096
            elif typ not in (1, 9):
                print(name, "record", typ, hashlib.sha1(p).hexdigest())
    for addr in sorted(pages):
        print(name, "page %x" % addr, pages[addr])
PY
}

# restarts from incremental generations nobody merged: PROG (incr_pages:
# a region mapped at step 3, 1 MiB of another unmapped at step 4; or
# incr_family: a process born at step 3, one a zombie from step 4, memory
# unmapped at step 2 and mapped again at step 4) is checkpointed at steps
# 1..6 with --incremental (generation 1 full, 2..6 incremental, each on the
# one before) and then runs to its end like a straight run.  Then
# (a) generation 6 restarts from the full-6 the background merge built,
#     one generation at a time;
# (b) with every full-* deleted, generation 4 restarts from the chain
#     1+2+3+4, whose full-4 must be built in one pass: no full-2 or full-3;
# (c) with every full-* deleted again, generation 6 restarts from the chain
#     1+2..6; the full-6 built in one pass must have the same metadata and
#     page contents, process by process, as the full-6 of (a);
# each restart must print exactly the native output after its step.
incr_unmerged() {
	incr_straight "$1"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local s g want last=$INCR_STEPS
	for ((s = 1; s <= last; s++)); do
		incr_wait_step run0 $s
		ickpt ck$s --incremental
		[ "$IGEN" = $s ] || fail "checkpoint at step $s committed generation $IGEN, expected $s"
		want=incremental
		[ $s = 1 ] && want=full
		[ "$IKIND" = $want ] || fail "checkpoint --incremental at step $s has kind '$IKIND', expected $want"
		: >"$TT/go.$s"
	done
	bg_wait run0
	final_check 0 "$RC" run0 run0
	incr_wait_full $last 20 || fail "the background merge did not build $(full_dir $last) within 20 s"
	incr_merges_idle 20 || fail "a cohort-merge process still runs 20 s after the group ended"
	# (a)
	incr_restart ra $last --generation $last
	incr_page_digest "$(full_dir $last)" >"$TD/linked.digest" 2>"$TD/digest.err" ||
		fail "reading $(full_dir $last): $(first_line "$TD/digest.err")"
	# (b)
	rm -rf "$IMG/$GNAME"/full-*
	incr_restart rb 4 --generation 4
	[ -f "$(full_dir 4)/manifest" ] || fail "restart --generation 4 left no $(full_dir 4)"
	for g in 2 3; do
		[ -e "$(full_dir $g)" ] && fail "restart --generation 4 wrote $(full_dir $g): not one pass over the chain"
	done
	# (c)
	rm -rf "$IMG/$GNAME"/full-*
	incr_restart rc $last --generation $last
	incr_page_digest "$(full_dir $last)" >"$TD/chain.digest" 2>"$TD/digest.err" ||
		fail "reading $(full_dir $last): $(first_line "$TD/digest.err")"
	[ -s "$TD/chain.digest" ] || fail "no image in $(full_dir $last)"
	if ! cmp -s "$TD/linked.digest" "$TD/chain.digest"; then
		note "$(full_dir $last): one generation at a time (<) and in one pass (>):"
		diff "$TD/linked.digest" "$TD/chain.digest" | head -n 8 | sed 's/^/    /' >>"$TD/details"
		fail "full-$last built in one pass over the chain differs from the one built one generation at a time"
	fi
	[ "$(cd "$IMG/$GNAME" && echo full-*)" = "$(basename "$(full_dir $last)")" ] ||
		fail "restart --generation $last wrote more than its full image: $(cd "$IMG/$GNAME" && echo full-*)"
	incr_verify "after the restarts"
}
t_incr_unmerged() { incr_unmerged incr_pages; }
t_incr_unmerged_group() { incr_unmerged incr_family; }

# pages stored per incremental generation: checkpoints at steps 1 (--full)
# and 2..5 (--incremental), the program runs to its end; then for each
# incremental generation g, `inspect --json` of gen-g must show, for the
# program's process, pages >= K_g (the pages it wrote in step g, between
# checkpoints g-1 and g; K_3 includes the 1024 pages of the new region) and
# pages <= K_g + 256 (also at step 4, which unmapped the last 1 MiB: the
# rest of that region was not written).  The slack covers what else the
# process writes between two checkpoints: incr_pages' own bookkeeping (17 KiB
# of expected-version tables: 5-6 pages), its stdout buffer, the stack pages
# of the step code, of printf and of the checkpoint signal frame (xsave
# state), libc and TLS data, and the agent's own memory (thread table, the
# manager thread's stack, its image writers' buffers: every page the agent
# touches while taking checkpoint g-1 is written after that snapshot).
# Measured with the uffd-wp tracker: 25 to 160 extra pages per incremental.
# 256 (1 MiB) leaves room above that yet stays far below the region (16384
# pages), so saving whole regions, or missing the new one, fails.  Also:
# parent_pages > 0, pages + parent_pages covers every page the program has
# mapped, the full generation stores every page and takes none from a
# parent, and every incremental's bytes are under a fifth of the full's.
INCR_SLACK=256
# The full checkpoint at step 1 is pre-copied (the default with a snapshot):
# with uffd-wp tracking --json must say so.  incr_written_plain takes it with
# --no-precopy (the whole snapshot fork) and checks the same written sets.
t_incr_written() { incr_written 1; }
t_incr_written_plain() { incr_written 0 --no-precopy; }
incr_written() { # incr_written PRECOPIED [FIRST_CHECKPOINT_ARGS...]
	local want_pre=$1
	shift
	incr_straight
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	group_status
	local tracking s g
	tracking=$(json_fields "$TD/status.json" tracking 2>"$TD/json.err") ||
		{ note_file "cohort status --json" "$TD/status.json" 3; fail "cohort status --json: not JSON"; }
	[ -n "$tracking" ] && [ "$tracking" != - ] || fail "cohort status --json has no \"tracking\" key"
	note "tracking: $tracking"
	for ((s = 1; s <= 5; s++)); do
		incr_wait_step run0 $s
		if [ $s = 1 ]; then
			ickpt ck$s --full "$@"
			[ "$IKIND" = full ] || fail "checkpoint --full $* has kind '$IKIND'"
			local pre
			pre=$(json_fields "$TD/ck1.json" precopied)
			[ "$tracking" = uffd-wp ] || want_pre=0
			[ "$pre" = "$want_pre" ] || fail "checkpoint --full $* (tracking $tracking): \"precopied\" is '$pre', expected $want_pre"
		else
			ickpt ck$s --incremental
			[ "$IKIND" = incremental ] || fail "checkpoint --incremental at step $s has kind '$IKIND', expected incremental"
		fi
		[ "$IGEN" = $s ] || fail "checkpoint at step $s committed generation $IGEN, expected $s"
		: >"$TT/go.$s"
	done
	incr_go_all
	bg_wait run0
	final_check 0 "$RC" run0 run0
	local args=()
	for ((g = 1; g <= 5; g++)); do
		timeout -k 5 "$TMO" "$COHORT" inspect "$(gen_dir "$GNAME" $g)" --json >"$TD/insp$g.json" 2>"$TD/insp$g.err" ||
			{ note_file "inspect stderr" "$TD/insp$g.err"; fail "cohort inspect $(gen_dir "$GNAME" $g) --json failed: $(first_line "$TD/insp$g.err")"; }
		args+=("$g:$(incr_k $g)")
	done
	"$PYTHON" - "$INCR_SLACK" "$TD" "${args[@]}" >"$TD/pages.out" 2>"$TD/pages.err" <<'PY'
import json, sys
slack, td = int(sys.argv[1]), sys.argv[2]
K = {int(a.split(":")[0]): int(a.split(":")[1]) for a in sys.argv[3:]}
R1, CUT, R2 = 16384, 256, 1024	# incr_pages: 64 MiB region, 1 MiB cut at step 4, 4 MiB region from step 3
errs = []

def load(path):
    text = open(path).read()
    try:
        return json.loads(text)
    except ValueError:
        return json.loads([l for l in text.splitlines() if l.strip()][-1])

def prog(d, g):
    ps = d.get("processes") or []
    for sel in (lambda p: p.get("pid") == 2,
                lambda p: str(p.get("image", "")).endswith("proc-2.img"),
                lambda p: len(ps) == 1):
        c = [p for p in ps if sel(p)]
        if len(c) == 1:
            return c[0]
    raise SystemExit("gen %d: cannot tell the program's process (pid 2) among %d processes" % (g, len(ps)))

full_bytes = load(td + "/ck1.json")["bytes"]
for g in sorted(K):
    d = load("%s/insp%d.json" % (td, g))
    ck = load("%s/ck%d.json" % (td, g))
    p = prog(d, g)
    missing = [k for k in ("pages", "parent_pages") if not isinstance(p.get(k), int)]
    if missing:
        errs.append("gen %d: inspect --json: the process has no %s (keys: %s)" % (g, " or ".join(missing), ",".join(sorted(p))))
        if "pages" in missing:
            continue
    pages, ppages = p["pages"], p.get("parent_pages", -1)
    # step 5 drops 512 pages (MADV_DONTNEED): they are zero, and neither stored nor kept unless written again
    mapped = (R1 - CUT if g >= 4 else R1) + (R2 if g >= 3 else 0) - (512 if g >= 5 else 0)
    print("gen %d: kind %s parent %s  K %d  pages %d  parent_pages %d  bytes %d" %
          (g, d.get("kind"), d.get("parent"), K[g], pages, ppages, ck["bytes"]))
    if d.get("ok") is not True:
        errs.append("gen %d: inspect says ok=%r" % (g, d.get("ok")))
    if d.get("generation") != g:
        errs.append("gen %d: inspect says generation %r" % (g, d.get("generation")))
    if g == 1:
        if d.get("kind") != "full":
            errs.append("gen 1: kind %r, expected full" % d.get("kind"))
        if pages < R1:
            errs.append("gen 1 (full): %d pages stored, fewer than the %d of the region" % (pages, R1))
        if ppages > 0:
            errs.append("gen 1 (full): parent_pages %d, expected 0" % ppages)
        continue
    if d.get("kind") != "incremental":
        errs.append("gen %d: kind %r, expected incremental" % (g, d.get("kind")))
    if d.get("parent") != g - 1:
        errs.append("gen %d: parent %r, expected %d" % (g, d.get("parent"), g - 1))
    if pages < K[g]:
        errs.append("gen %d: %d pages stored, but the program wrote %d pages since generation %d" % (g, pages, K[g], g - 1))
    if pages > K[g] + slack:
        errs.append("gen %d: %d pages stored, more than the %d the program wrote + %d slack" % (g, pages, K[g], slack))
    if g == 3 and pages < R2:
        errs.append("gen 3: %d pages stored, fewer than the %d of the region mapped in step 3" % (pages, R2))
    if ppages == 0:
        errs.append("gen %d: parent_pages %d, expected > 0" % (g, ppages))
    if ppages >= 0 and pages + ppages < mapped:
        errs.append("gen %d: pages + parent_pages = %d, fewer than the %d pages the program has mapped" % (g, pages + ppages, mapped))
    if ck["bytes"] * 5 >= full_bytes:
        errs.append("gen %d: %d bytes, not much smaller than the full generation's %d" % (g, ck["bytes"], full_bytes))
for e in errs:
    print(e, file=sys.stderr)
sys.exit(1 if errs else 0)
PY
	local rc=$?
	while IFS= read -r l; do note "$l"; done <"$TD/pages.out"
	if [ $rc != 0 ]; then
		note_file "errors" "$TD/pages.err" 12
		fail "$(head -n 1 "$TD/pages.err" | cut -c1-200)"
	fi
	incr_verify "at the end"
}

# bg_kill9 TAG: SIGKILL a command started with bg_start (and its timeout)
bg_kill9() {
	local p
	p=$(cat "$TD/$1.pid")
	{
		kill -9 $(pgrep -P "$p") "$p"
		bg_wait "$1"
	} 2>/dev/null
}

tree_pids() { # PID...: the pids and all their descendants
	local p
	for p in "$@"; do
		echo "$p"
		tree_pids $(pgrep -P "$p")
	done
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

# ---------------------------------------------------------------------------
# compressed images (--compress): stored as NAME.zst, read back through the
# same records and checksums
# ---------------------------------------------------------------------------

# zstd_stored DIR: every image file of generation DIR (process images, page
# streams, shared.img) is stored compressed, none plain
zstd_stored() {
	local d=$1 f
	ls "$d"/proc-*.img.zst >/dev/null 2>&1 || fail "$(basename "$d") has no proc-*.img.zst: $(cd "$d" && echo *)"
	[ -f "$d/shared.img.zst" ] || fail "$(basename "$d") has no shared.img.zst: $(cd "$d" && echo *)"
	for f in "$d"/*.img; do
		[ -e "$f" ] && fail "$(basename "$d") holds an uncompressed $(basename "$f")"
	done
	return 0
}

# zstd_bytes DIR: bytes stored for the process images of generation DIR
zstd_bytes() { cat "$1"/proc-*.img* | wc -c; }

# two rounds of checkpoint --kill + restart, compressed: a plain checkpoint
# (gen 1, the size to beat), `checkpoint --compress --kill` (gen 2),
# `restart --compress` (so its checkpoints are compressed), `checkpoint
# --kill` (gen 3), restart to the end; the output must be the straight
# run's.  A group of processes with pipes and shared memory (shared.img),
# whose memory compresses well: gen 2 must take under half of gen 1's bytes
# on disk, and `--json` must report its bytes after compression.
t_zstd_rounds() {
	prog_cmd shm_counters
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 0.5
	ckpt_or_fail "checkpoint 1 (plain)" "$GNAME" 1
	sleep 0.4
	ckpt_or_fail "checkpoint 2 (--compress --kill)" "$GNAME" 2 --compress --kill
	bg_wait run0
	local g1 g2 plain packed json raw
	g1=$(gen_dir "$GNAME" 1)
	g2=$(gen_dir "$GNAME" 2)
	ls "$g1"/*.zst >/dev/null 2>&1 && fail "checkpoint without --compress stored compressed files: $(cd "$g1" && echo *)"
	zstd_stored "$g2"
	plain=$(zstd_bytes "$g1")
	packed=$(zstd_bytes "$g2")
	note "process images: $plain bytes plain (gen 1), $packed bytes compressed (gen 2)"
	[ $((packed * 2)) -lt "$plain" ] || fail "compressed images take $packed bytes, not under half of the plain $plain"
	read -r json raw < <(json_fields "$TD/ck2.json" bytes raw_bytes)
	[ "$json" = "$packed" ] || fail "checkpoint --json reports $json bytes, the compressed images take $packed"
	[ "$raw" -gt "$packed" ] || fail "checkpoint --json reports raw_bytes $raw, not more than the compressed $packed"

	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG" --compress
	wait_ready "$GNAME" run1
	sleep 0.6
	bg_alive run1 || { bg_wait run1; note_file "restart 1 stderr" "$TD/run1.err"; fail "restarted program ended (status $RC) before checkpoint 3: $(first_line "$TD/run1.err")"; }
	# every restorer has read its image: the FIFOs and their feeders are gone
	[ -e "$COHORT_RUN_DIR/$GNAME/images" ] && fail "the restart's FIFO directory is still there: $(ls "$COHORT_RUN_DIR/$GNAME/images")"
	[ -z "$(our_comm_pids cohort-zstd)" ] || fail "cohort-zstd processes still run after the restart"
	ckpt_or_fail "checkpoint 3 (--kill, restarted with --compress)" "$GNAME" 3 --kill
	bg_wait run1
	zstd_stored "$(gen_dir "$GNAME" 3)"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
	[ -z "$(ls -A "$COHORT_RUN_DIR/$GNAME" 2>/dev/null)" ] || fail "left in the run directory: $(ls -A "$COHORT_RUN_DIR/$GNAME")"
	[ -z "$(our_comm_pids cohort-zstd)" ] || fail "cohort-zstd processes still run after the restarts"
	incr_verify "of the compressed generations"
}

# the incremental chain of incr_chain with `run --compress`: a compressed
# full, compressed incrementals, merged fulls written compressed by the
# background merge and by the restart that rebuilds the chain; each restart
# must give what the straight run gives
t_zstd_chain() {
	local RUN_OPTS=(--compress) d
	t_incr_chain
	for d in "$IMG/$GNAME"/gen-* "$IMG/$GNAME"/full-*; do zstd_stored "$d"; done
	[ -d "$(full_dir 5)" ] || fail "$(full_dir 5) was not rebuilt by the restart"
}

# a damaged byte in a .zst file: verify finds it, restart refuses it with
# one line naming the file
t_zstd_damaged() { damaged_flow zst --compress; }

# a compression that fails (here: the coordinator's file size limit stops
# the compressing child) commits nothing and leaves the running group
# alone; the next checkpoint works, and the program ends as the straight
# run does; a restart of that generation prints the rest of the output
t_zstd_fail() {
	command -v prlimit >/dev/null || skip "prlimit not found"
	prog_cmd threads_mutex_cond
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local coord rc
	coord=$("$COHORT" status "$GNAME" --json | sed -n 's/.*"coordinator_pid":\([0-9]*\).*/\1/p')
	[ -n "$coord" ] || fail "cohort status --json names no coordinator_pid"
	prlimit --pid "$coord" --fsize=4096:unlimited || fail "prlimit --pid $coord failed"
	sleep 0.5
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --compress >"$TD/ckf.out" 2>"$TD/ckf.err"
	rc=$?
	note_file "failed checkpoint stderr" "$TD/ckf.err" 3
	prlimit --pid "$coord" --fsize=unlimited:unlimited
	[ "$rc" != 0 ] || fail "checkpoint --compress succeeded although the compression could not write"
	[ "$rc" != 124 ] || fail "checkpoint --compress timed out"
	grep -q "compress" "$TD/ckf.err" || fail "the error does not say the compression failed: $(first_line "$TD/ckf.err")"
	[ "$(wc -l <"$TD/ckf.err")" = 1 ] || fail "expected one line on stderr, got $(wc -l <"$TD/ckf.err")"
	[ -z "$(ls -A "$IMG/$GNAME" 2>/dev/null)" ] || fail "the failed checkpoint left $(ls -A "$IMG/$GNAME")"
	bg_alive run0 || { bg_wait run0; fail "the program ended after the failed compression (status $RC)"; }
	ckpt_or_fail "checkpoint --compress after the failure" "$GNAME" 1 --compress
	zstd_stored "$(gen_dir "$GNAME" 1)"
	bg_wait run0
	final_check 0 "$RC" run0 run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	check_suffix run1 run0 || fail "restart of the compressed generation: wrong output"
	[ "$RC" = 0 ] || fail "restart of the compressed generation: status $RC: $(first_line "$TD/run1.err")"
}

# ---------------------------------------------------------------------------
# a damaged byte anywhere in any file of a generation is found
# ---------------------------------------------------------------------------

# ipc_kinds (two processes, shared.img with sockets, signalfd, timerfd) gets a
# full checkpoint and an incremental one with --kill; once the background
# merge is done, every file of both generations (manifest, process images,
# page streams, shared.img) gets, one at a time, a flipped bit at its first
# and last byte and at 48 offsets spread over it (record headers, payloads,
# alignment padding, hashes): each time `cohort verify` of that generation
# must fail with one line naming the file, and pass again once the byte is
# back.  Then the incremental generation restarts and finishes the run.
t_corrupt_any() {
	prog_cmd ipc_kinds
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	sleep 0.6
	ickpt ck1 --full
	sleep 0.4
	ickpt ck2 --incremental --kill
	[ "$IKIND" = incremental ] || fail "checkpoint --incremental has kind '$IKIND'"
	bg_wait run0
	incr_merges_idle 20 || fail "a cohort-merge process still runs 20 s after the group ended"
	"$PYTHON" - "$COHORT" "$(gen_dir "$GNAME" 1)" "$(gen_dir "$GNAME" 2)" >"$TD/flips.out" 2>&1 <<'PY'
import os, subprocess, sys
cohort, dirs = sys.argv[1], sys.argv[2:]
bad, flips = [], 0
for d in dirs:
    names = sorted(f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))
    if "shared.img" not in names or not any(f.endswith(".p1.img") for f in names):
        bad.append("%s: expected shared.img and page streams, found %s" % (d, names))
    for f in names:
        p = os.path.join(d, f)
        size = os.path.getsize(p)
        for off in sorted(set([0, size - 1] + [size * i // 48 for i in range(48)])):
            with open(p, "r+b") as fh:
                fh.seek(off)
                b = fh.read(1)
                fh.seek(off)
                fh.write(bytes([b[0] ^ 0x20]))
            r = subprocess.run([cohort, "verify", d], capture_output=True, text=True)
            flips += 1
            lines = r.stderr.strip().splitlines()
            if r.returncode == 0:
                bad.append("%s byte %d: verify passed" % (f, off))
            elif len(lines) != 1 or f not in lines[0]:
                bad.append("%s byte %d: verify said %r" % (f, off, r.stderr.strip()[:300]))
            with open(p, "r+b") as fh:
                fh.seek(off)
                fh.write(b)
    r = subprocess.run([cohort, "verify", d], capture_output=True, text=True)
    if r.returncode != 0:
        bad.append("%s: verify fails after every byte was put back: %s" % (d, r.stderr.strip()))
print("%d flips, %d not reported as they should be" % (flips, len(bad)))
for b in bad[:10]:
    print(b)
sys.exit(1 if bad else 0)
PY
	local rc=$?
	note_file "flips" "$TD/flips.out" 12
	[ $rc = 0 ] || fail "$(head -n 1 "$TD/flips.out")"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG" --generation 2
	bg_wait run1
	check_suffix run1 run0 || fail "restart of the incremental generation: wrong output"
	[ "$RC" = 0 ] || fail "restart of the incremental generation: status $RC: $(first_line "$TD/run1.err")"
}

# ---------------------------------------------------------------------------
# a group started by an unprivileged user
# ---------------------------------------------------------------------------

# shm_counters (four processes, anonymous shared memory, a memfd, pipes) run,
# checkpointed and restarted twice by user nobody, through the standard
# flow: cohort then puts the group in a user namespace of its own (no root
# needed for its PID, mount and time namespaces or for set_tid at restart)
# and reads shared memory without /proc/PID/map_files.  The binaries are
# copied where nobody can reach them; the coordinator must run as nobody in
# a user namespace of its own, and after the restart no process of the
# group may hold a capability (the restorer's CAP_CHECKPOINT_RESTORE is
# dropped by every thread).
UNPRIV_USER=nobody
t_unprivileged() {
	[ "$(id -u)" = 0 ] || skip "needs root to become $UNPRIV_USER (as a user, every test is unprivileged)"
	id -u "$UNPRIV_USER" >/dev/null 2>&1 || skip "no user $UNPRIV_USER"
	command -v runuser >/dev/null || skip "runuser not found"
	local U=$TD/u uid b
	uid=$(id -u "$UNPRIV_USER")
	chmod 711 "$WORK" "$TD"
	mkdir -p "$U/bin" "$U/run" "$U/img"
	for b in cohort libcohort.so cohort-restore; do cp "$(dirname "$COHORT")/$b" "$U/bin/" || fail "cannot copy $b"; done
	cp "$BIN/shm_counters" "$U/bin/" || fail "cannot copy shm_counters"
	chown -R "$UNPRIV_USER" "$U"
	chmod 700 "$U/run"
	printf '#!/bin/sh\nexec runuser -u %s -- env COHORT_RUN_DIR=%s %s "$@"\n' "$UNPRIV_USER" "$U/run" "$U/bin/cohort" >"$U/cohort"
	chmod 755 "$U/cohort"
	local COHORT=$U/cohort IMG=$U/img
	FLOW_CHECK=unprivileged_check FLOW_CHECK_RESTARTED=unprivileged_nocaps \
		flow_standard 0 0.9 1.0 pipe "$U/bin/shm_counters"
	[ "$(stat -c %u "$(gen_dir "$GNAME" 2)/manifest")" = "$uid" ] || fail "generation 2 is not owned by $UNPRIV_USER"
}
unprivileged_coord() {
	"$COHORT" status "$GNAME" --json | sed -n 's/.*"coordinator_pid":\([0-9]*\).*/\1/p'
}
unprivileged_check() {
	local coord
	coord=$(unprivileged_coord)
	[ -n "$coord" ] || fail "cohort status --json names no coordinator_pid"
	[ "$(stat -c %u "/proc/$coord")" = "$(id -u "$UNPRIV_USER")" ] || fail "the coordinator does not run as $UNPRIV_USER"
	[ "$(readlink "/proc/$coord/ns/user")" != "$(readlink /proc/self/ns/user)" ] || fail "the coordinator is in the first user namespace"
}
unprivileged_nocaps() {
	local coord p n=0
	coord=$(unprivileged_coord)
	[ -n "$coord" ] || fail "cohort status --json names no coordinator_pid"
	for p in $(grep -lsxF shm_counters /proc/[0-9]*/comm); do
		p=${p#/proc/}
		p=${p%/comm}
		[ "$(readlink "/proc/$p/ns/user")" = "$(readlink "/proc/$coord/ns/user")" ] || continue
		for t in /proc/$p/task/*; do
			n=$((n + 1))
			grep -q '^CapEff:[[:space:]]*0*$' "$t/status" || fail "restored thread $t holds capabilities: $(grep '^Cap' "$t/status" | tr '\n' ' ')"
			grep -q '^CapAmb:[[:space:]]*0*$' "$t/status" || fail "restored thread $t holds ambient capabilities"
		done
	done
	[ $n -ge 4 ] || fail "found $n threads of the restored shm_counters, expected at least 4"
}

# ---------------------------------------------------------------------------
# a snapshot writer killed while it writes
# ---------------------------------------------------------------------------

# bigmem (256 MiB): checkpoints are started until one of them is caught
# with its snapshot writer (cohort-dump, the forked copy of the program
# that writes the image while the program runs on) alive; that writer is
# SIGKILLed.  The checkpoint must fail at once (well before the 30 s the
# coordinator would wait) with one line naming the writer, commit nothing,
# and leave the program running; the next checkpoint (--kill) commits and
# the restart finishes the run as a straight run does.
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
# fails in one line, leaves nothing, and the group runs on; then a --kill
# checkpoint and the restart must finish like the straight run
t_precopy_killed() {
	prog_cmd bigmem
	straight 0 "${PCMD[@]}"
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
		[ $KD_RC != 0 ] || { note "try $try: the merge was caught after it had finished"; continue; }
		failed_cleanly "$TD/ckm.json.err" "merging the pre-copy" merge
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
	[ -z "$(ls -A "$IMG/$GNAME" 2>/dev/null)" ] || fail "the failed checkpoint left $(ls -A "$IMG/$GNAME")"
}

# still_running_then_restart WHAT: run0 survived WHAT; a checkpoint --kill
# and the restart must finish like the straight run
still_running_then_restart() {
	bg_alive run0 || { bg_wait run0; fail "the program ended after $1 (status $RC): $(first_line "$TD/run0.err")"; }
	ckpt_or_fail "checkpoint after $1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

t_writer_killed() {
	prog_cmd bigmem
	straight 0 "${PCMD[@]}"
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

# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------
run_one() { # in a subshell
	TD=$WORK/$1
	TT=$TD/tmp
	IMG=$TD/images
	GNAME=ct$$-$2-$(echo "$1" | tr _ -)
	mkdir -p "$TT" "$IMG"
	export COHORT_TEST_TMP=$TT
	"t_$1"
}

PASSED=0
FAILED=0
SKIPPED=0
if [ ! -x "$COHORT" ]; then
	echo "run.sh: cohort binary not found: $COHORT" >&2
fi
n=0
for t in "${SELECTED[@]}"; do
	n=$((n + 1))
	TD=$WORK/$t
	mkdir -p "$TD"
	if [ "$SECONDS" -ge "$SUITE_TMO" ]; then
		echo "FAIL $t (not run: the suite exceeded $SUITE_TMO s)"
		FAILED=$((FAILED + 1))
		continue
	fi
	(run_one "$t" "$n") </dev/null &
	CUR_TEST_PID=$!
	CUR_TEST=$t
	start=$SECONDS
	timed_out=0
	while kill -0 "$CUR_TEST_PID" 2>/dev/null; do
		if [ $((SECONDS - start)) -ge "${TEST_TIMEOUTS[$t]:-$TEST_TMO}" ]; then
			timed_out=1
			{ kill -9 "$CUR_TEST_PID"; } 2>/dev/null
			break
		fi
		sleep 0.1
	done
	{ wait "$CUR_TEST_PID"; } 2>/dev/null
	trc=$?
	CUR_TEST_PID=
	kill_leftovers "$TD"
	if [ $timed_out = 1 ]; then
		echo "test timed out after ${TEST_TIMEOUTS[$t]:-$TEST_TMO} s" >"$TD/reason"
		trc=1
	fi
	if [ $trc = 3 ] && [ -f "$TD/skip" ]; then
		echo "SKIP $t ($(cat "$TD/skip"))"
		SKIPPED=$((SKIPPED + 1))
	elif [ $trc = 0 ]; then
		echo "PASS $t"
		[ "${VERBOSE:-0}" = 1 ] && [ -s "$TD/details" ] && sed 's/^/    /' "$TD/details"
		PASSED=$((PASSED + 1))
	else
		reason="exit status $trc"
		[ -s "$TD/reason" ] && reason=$(cat "$TD/reason")
		echo "FAIL $t ($reason)"
		[ -s "$TD/details" ] && head -n 40 "$TD/details" | sed 's/^/    /'
		FAILED=$((FAILED + 1))
	fi
done

echo "the suite took $SECONDS s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
