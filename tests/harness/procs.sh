# tests/harness/procs.sh - sourced by tests/run.sh: the processes of the
# suite.  Only processes this harness started are killed, by pid:
#  - everything whose environment carries our unique COHORT_TEST_TMP marker
#    (all commands of a test are started with it);
#  - pids recorded while a test ran (program pids; a restored program has the
#    same pid), if they still run one of our executables.

marked_pids() { # marked_pids [MARKER]: ours (all tests', or one test's)
	local f pid
	for f in $(grep -lasF -- "${1:-$MARKER}" /proc/[0-9]*/environ 2>/dev/null); do
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
		for pid in $(marked_pids "COHORT_TEST_TMP=$td/tmp"); do victims+=("$pid"); done
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
	local pid
	for pid in "${!RUNNING[@]}"; do
		{
			kill -9 "$pid"
			wait "$pid"
		} 2>/dev/null
		kill_leftovers "$WORK/${RUNNING[$pid]}"
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}

# record the pids of all descendants of PID (program pids under cohort)
record_tree() {
	local p c
	for p in "$@"; do
		echo "$p" >>"$TD/pids"
		for c in $(pgrep -P "$p" 2>/dev/null); do record_tree "$c"; done
	done
}

tree_pids() { # PID...: the pids and all their descendants
	local p
	for p in "$@"; do
		echo "$p"
		tree_pids $(pgrep -P "$p")
	done
}

# our_comm_pids COMM: processes of this test (its environment marker) whose
# main thread is named COMM
our_comm_pids() {
	local f pid
	for f in $(grep -lxsF -- "$1" /proc/[0-9]*/comm 2>/dev/null); do
		pid=${f#/proc/}
		pid=${pid%/comm}
		grep -qsF -- "COHORT_TEST_TMP=$TT" "/proc/$pid/environ" 2>/dev/null && echo "$pid"
	done
}
