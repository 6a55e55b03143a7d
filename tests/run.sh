#!/bin/bash
# cohort test suite, run by `make check` as:  bash tests/run.sh [TEST...]
#
# Most tests run a test program (build/tests/NAME, built by the top
# Makefile from tests/progs/NAME.c; or a script, tests/progs/py_threads.py
# run by python3, tests/progs/NAME.sh run by /bin/sh) once natively to get
# the expected stdout and exit status, then under cohort:
#     run  -> checkpoint --kill -> restart -> checkpoint --kill -> restart
# and checks that the three stdout pieces concatenated equal the expected
# stdout byte for byte and that the final exit status is the expected one.
# Those are the rows of tests/cases/std.list (name, program, expected
# status, the two sleeps, options, arguments): one line each.  The others
# have flows of their own in tests/cases/*.sh (a t_NAME function each, with
# a comment above it); the helpers they share are in tests/harness/*.sh.
# ALL_TESTS below is the order in which they all run.
#
# Environment:
#   COHORT               cohort binary            (default: build/cohort)
#   COHORT_TEST_BIN      test program directory   (default: build/tests)
#   COHORT_GROUP_TESTS=1 also run the tests in GROUP_TESTS (set by the files
#                        of tests/cases/ for tests that do not pass reliably
#                        yet; `bash tests/run.sh --help` lists them). Tests
#                        named on the command line always run.
#   COHORT_TEST_TIMEOUT  per-test timeout in seconds (default 60; every single
#                        command of a test gets half of it).
#   COHORT_SUITE_TIMEOUT once the suite has run this long (default 1140 s),
#                        the remaining tests fail without running.
#   COHORT_TEST_TIMES    file that gets each test's duration, one line
#                        "SECONDS NAME" as each test ends (default:
#                        build/test-times; the slowest are also named at
#                        the end).
#   COHORT_TEST_JOBS     tests run at once (default 2): most of a test's
#                        time is waiting for its programs, and the tests
#                        are independent (each its own directories, group
#                        name and environment marker).  Those in
#                        SERIAL_TESTS run alone.
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
SUITE_TMO=${COHORT_SUITE_TIMEOUT:-1140}
JOBS=${COHORT_TEST_JOBS:-2}
TIMES=${COHORT_TEST_TIMES:-$ROOT/build/test-times}
PYTHON=/usr/bin/python3
STDIN_SRC=/dev/null

# All tests, in the order they run.  A test defined (row of std.list or
# t_NAME function) but not listed here runs after these.
ALL_TESTS=(
	threads_mutex_cond tls_tids proc_identity bigmem mprotect_filemap
	heap_growth files_offsets dir_pos dir_shared dir_shared_live dir_shared_proc_refused dir_shared_many_refused file_sparse deleted_file signals blocking_calls
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
	precopy_churn grow_inplace grow_inplace_small incr_written_plain precopy_killed
	hidden_view dup2_high sys_exit_all precopy_no_thread
	cli_help cli_json stdout_restart stdio_devnull_own kill_status name_collision stopped_message install_layout
	fresh_setup
	completion
	dontfork dontfork_live node_regions flags_kept flags_ahead cow_zero cow_zero_guard
	blocked_threads blocked_unprivileged posix_timers sig_takeover go_pure_external go_cgo_park
	progress
	real_make real_bash_pty real_python_repl real_node real_jvm real_go_cgo real_rust
	real_numpy real_multiprocessing real_sqlite real_yes_head
	thp_chain thp_written thp_unmerged
	wrap_null wrap_null_storm sigpipe_status signal_inherit sigchld_ignored xstate_regs
	unshare_user nested_ns raw_clone no_agent_listed
	uid_drop uid_stranger uid_forged restore_child_damaged restart_fail thread_creds
	proc_attrs proc_attrs_live thread_names thread_attrs8 thread_attrs8_live rlimit_refused seccomp_refused caps_keep many_signals locks_kept lease_refused
	kinds_all kinds_inspect pipe_packets pipe_big pipe_capacity_refused timerfd_state timerfd_alarm_refused timerfd_clock timerfd_cancel_refused
	dnotify_std dnotify_live dnotify_oneshot_refused dnotify_exec_refused
	epoll_items epoll_items_live epoll_family epoll_gone_refused epoll_idle_refused
	precopy_held_gap prepare_hold mem_private mem_fork mem_attrs mem_lock mem_lock_all mem_lock_live mem_lock_all_live fsize_limit fsize_limit_live mem_many mem_rejoin mem_guard mem_private_live mem_fork_cow mem_guard_refused secret_fd_refused secret_map_refused
	file_deleted2 file_tmpfile file_tmpfile_live py_tmpfile file_dirs file_times file_replaced_refused file_replaced_shared_refused exe_replaced_refused fd_state memfd_state memfd_state_live memfd_unprivileged memfd_huge_refused mem_hugetlb_shared_refused mem_hugetlb_private_refused mem_hugetlb_memfd_refused mem_hugetlb_sysv_refused sysv_huge_refused mem_shared_ro mem_shared_ro_live mem_shared_ro_refused mem_ro_unprivileged mem_shared_twice mem_twice_unprivileged file_locks file_lease
	proc_read_midway proc_thread_file rundir_symlink rundir_foreign rundir_fake_sock images_foreign fcopy_symlink fcopy_target images_locked recover_on_start images_bound fcopy_digest verify_fulls room_refused ckpt_while_restoring coordinator_killed crash_commit crash_merge merge_wait fuzz_images
	attr_membarrier attr_membarrier_live attr_aio attr_pidfd attr_pidfd_live attr_pidfd_refused rseq_own rseq_own_live rseq_refused rseq_raw_refused
	attr_chroot_deleted attr_chroot_nocaps attr_chroot_nosetns attr_loginuid attr_cgroup
	inotify_std inotify_live inotify_held
	sysv_ipc sysv_ipc_live
	pty_self pty_self_live pty_unprivileged pty_script pty_tmux
	cpuclock cpuclock_live py_cpuclock
	unix_shapes unix_shapes_live unix_inflight unix_workers unix_inflight_live unix_workers_live sock_timeo_live
	unix_kill_failed unix_workers_kill_failed unix_edges unix_edges_live unix_peek unix_opts unix_opts_live unix_filter_refused
	unix_syslog unix_syslog_live unix_syslog_py unix_outside_refused unix_outside_reconnect unix_unprivileged unix_opts_unprivileged
	seccomp_filters seccomp_filters_all seccomp_filters_live seccomp_denied
	sysv_undo sysv_undo_live sysv_nattch
	timer_overrun timer_overrun_live zombie_pgrp zombie_pgrp_live
	aio_ring aio_ring_live aio_libaio aio_libaio_live aio_poll_refused
	chroot_one chroot_family chroot_sibling chroot_linked chroot_live chroot_family_live chroot_exec
	inotify_queue_std inotify_queue_live inotify_node inotify_python
	migrate_roundtrip migrate_refused migrate_cut migrate_init_ahead migrate_ckpt migrate_files
	migrate_rounds migrate_rounds_cut migrate_stop_killed migrate_options migrate_whole_stop migrate_churn migrate_file_grows migrate_sched migrate_seccomp
	unix_backlog_kill_failed unix_backlog_live unix_backlog_rounds unix_backlog_unaccepted
	fanotify_std fanotify_live fanotify_held fanotify_perm fanotify_perm_child fanotify_unprivileged
	lazy_mem lazy_lock lazy_lock_all lazy_group lazy_ckpt_filling lazy_filler_killed lazy_damaged lazy_damaged_stop lazy_chain lazy_chain_group lazy_chain_held lazy_chain_eager lazy_chain_damaged lazy_split lazy_rejoin lazy_thp_always
	wirecrypt_sealed wirecrypt_tampered
	postcopy_small postcopy_roundtrip postcopy_cut postcopy_killed postcopy_resume
	migrate_real_python migrate_real_jvm migrate_real_node migrate_real_go migrate_real_sqlite migrate_real_repl migrate_real_flock migrate_real_posix_lock
)
# Tests that run alone, with no other test beside them: they measure what
# a busy machine would change (pauses, a thread seen during a pre-copy),
# load the machine themselves (fuzzing, storms, a whole build), or use
# what is the machine's own (the default run directory, users, packages).
# fanotify_std, _live and _held mark the mount namespace they share with
# every other test, whose mounts (and each other's tmpfs, mounted each
# step) queue events there that cohort refuses to checkpoint.
SERIAL_TESTS=(fresh_setup install_layout fuzz_images precopy_no_thread ckpt_storm rundir_symlink rundir_foreign
	rundir_fake_sock cpuclock cpuclock_live py_cpuclock
	fanotify_perm fanotify_perm_child fanotify_std fanotify_live fanotify_held lazy_thp_always)

# Tests that run only with COHORT_GROUP_TESTS=1 or when named: the files
# below add to it (and set TEST_TIMEOUTS[NAME], in seconds, for a test that
# needs longer than COHORT_TEST_TIMEOUT).
GROUP_TESTS=()
declare -A TEST_TIMEOUTS=()
for f in "$ROOT"/tests/harness/*.sh "$ROOT"/tests/cases/*.sh; do
	. "$f"
done
std_load "$ROOT/tests/cases/std.list"

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

# every listed test must be defined, once; defined ones not listed run at the end
for t in "${ALL_TESTS[@]}"; do
	[ -n "${STD_ROW[$t]:-}" ] || declare -F "t_$t" >/dev/null ||
		{ echo "run.sh: test '$t' is neither a row of tests/cases/std.list nor a t_$t function" >&2; exit 2; }
done
for t in "${STD_TESTS[@]}"; do
	! declare -F "t_$t" >/dev/null ||
		{ echo "run.sh: test '$t' is both a row of tests/cases/std.list and a t_$t function" >&2; exit 2; }
done
for t in "${STD_TESTS[@]}" $(declare -F | sed -n 's/^declare -f t_//p'); do
	in_list "$t" "${ALL_TESTS[@]}" || ALL_TESTS+=("$t")
done

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

trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_one() { # in a subshell
	TD=$WORK/$1
	TT=$TD/tmp
	IMG=$TD/images
	GNAME=ct$$-$2-$(echo "$1" | tr _ -)
	mkdir -p "$TT" "$IMG"
	export COHORT_TEST_TMP=$TT
	if [ -n "${STD_ROW[$1]:-}" ]; then
		std_case "$1"
	else
		"t_$1"
	fi
}

PASSED=0
FAILED=0
SKIPPED=0
if [ ! -x "$COHORT" ]; then
	echo "run.sh: cohort binary not found: $COHORT" >&2
fi
mkdir -p "$(dirname "$TIMES")" && : >"$TIMES" || { echo "run.sh: cannot write $TIMES" >&2; exit 1; }

# The running tests: subshell pid -> test name, and each one's start.
declare -A RUNNING=() T_START=() T_START_US=()

start_test() { # start_test NAME N
	local t=$1
	TD=$WORK/$t
	mkdir -p "$TD"
	(run_one "$t" "$2") </dev/null &
	RUNNING[$!]=$t
	T_START[$!]=$SECONDS
	T_START_US[$!]=${EPOCHREALTIME/./}
}

# finish_test PID TIMED_OUT: collect the test's status, kill what it left, print its line
finish_test() {
	local pid=$1 timed_out=$2 t=${RUNNING[$1]} trc reason us
	{ wait "$pid"; } 2>/dev/null
	trc=$?
	us=$((${EPOCHREALTIME/./} - T_START_US[$pid]))
	printf '%d.%d %s\n' $((us / 1000000)) $((us / 100000 % 10)) "$t" >>"$TIMES"
	unset "RUNNING[$pid]"
	TD=$WORK/$t
	kill_leftovers "$TD"
	# a test that changed a setting of the machine's left how to put it back, whatever way it ended
	[ ! -f "$TD/undo" ] || bash "$TD/undo"
	if [ "$timed_out" = 1 ]; then
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
}

# reap_tests: finish every test that ended or ran past its timeout
reap_tests() {
	local pid t
	for pid in "${!RUNNING[@]}"; do
		t=${RUNNING[$pid]}
		if ! kill -0 "$pid" 2>/dev/null; then
			finish_test "$pid" 0
		elif [ $((SECONDS - T_START[$pid])) -ge "${TEST_TIMEOUTS[$t]:-$TEST_TMO}" ]; then
			{ kill -9 "$pid"; } 2>/dev/null
			finish_test "$pid" 1
		fi
	done
}

# wait_slots N: until fewer than N tests run
wait_slots() {
	while [ ${#RUNNING[@]} -ge "$1" ]; do
		sleep 0.1
		reap_tests
	done
}

n=0
for t in "${SELECTED[@]}"; do
	n=$((n + 1))
	if [ "$SECONDS" -ge "$SUITE_TMO" ]; then
		echo "FAIL $t (not run: the suite exceeded $SUITE_TMO s)"
		FAILED=$((FAILED + 1))
		continue
	fi
	if in_list "$t" "${SERIAL_TESTS[@]}"; then
		wait_slots 1 # alone: nothing else runs beside it
		start_test "$t" "$n"
		wait_slots 1
	else
		wait_slots "$JOBS"
		start_test "$t" "$n"
	fi
done
wait_slots 1

[ -s "$TIMES" ] && echo "slowest: $(sort -rn "$TIMES" | head -n 8 | awk '{ printf "%s%s %s s", (NR > 1 ? ", " : ""), $2, $1 }') (all: $TIMES)"
echo "the suite took $SECONDS s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
