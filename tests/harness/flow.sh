# tests/harness/flow.sh - sourced by tests/run.sh: the test programs and
# the standard flow, with the table of tests that are nothing else
# (tests/cases/std.list).

need_prog() { [ -x "$BIN/$1" ] || fail "missing test program $BIN/$1 (not built?)"; }

# prog_cmd NAME: the command line that runs test program NAME
prog_cmd() {
	case $1 in
	py_threads)
		[ -x "$PYTHON" ] || skip "$PYTHON not found"
		PCMD=("$PYTHON" "$PROGS/py_threads.py")
		;;
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
#   native run (beside the rest) -> run, wait ready and until AT1,
#   checkpoint --kill (gen 1) -> restart, wait ready and until AT2,
#   checkpoint --kill (gen 2) -> restart to the end; compare output and
#   exit status.  AT1 and AT2 say where the checkpoints land (flow_at): a
#   number of lines of stdout (AT2: printed since the restart), or pN, the
#   group has N processes.
# flow_standard EXP_RC AT1 AT2 pipe|file CMD...
flow_standard() {
	local exp_rc=$1 at1=$2 at2=$3 mode=$4 k0 AT_END_FILE=$COHORT_TEST_TMP/at-end
	shift 4
	straight_start "$exp_rc" "$@"
	# the program under cohort waits at its end for TT/end (common.h's
	# end gate), made once checkpoint 2 is taken: on a busy machine its
	# steps must not run out before the test has taken both checkpoints
	if [ "$mode" = file ]; then
		COHORT_TEST_END_GATE=1 bg_start run0 --file "$COHORT" run --name "$GNAME" --images "$IMG" -- "$@"
	else
		COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "$@"
	fi
	wait_ready "$GNAME" run0
	flow_at "$at1" run0
	# FLOW_CHECK: a function that looks at the running group before the first checkpoint
	[ -z "${FLOW_CHECK:-}" ] || "$FLOW_CHECK"
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) before the first checkpoint: $(first_line "$TD/run0.err")"; }
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	[ "$RC" = 0 ] && [ "$exp_rc" != 0 ] && note "note: run exited 0 after checkpoint --kill"
	# FLOW_DOWN: a function called while the group is down, before the first restart
	[ -z "${FLOW_DOWN:-}" ] || "$FLOW_DOWN"

	k0=$(out_lines run0)
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	# (with stdout a file, the restarted program may go on writing in run0's)
	flow_at "$at2" run0 run1 "$k0"
	# FLOW_CHECK_RESTARTED: the same, once the group has been restarted
	[ -z "${FLOW_CHECK_RESTARTED:-}" ] || "$FLOW_CHECK_RESTARTED"
	bg_alive run1 || { bg_wait run1; note_file "restart 1 stderr" "$TD/run1.err"; fail "restarted program ended (status $RC) before the second checkpoint: $(first_line "$TD/run1.err")"; }
	ckpt_or_fail "checkpoint 2 (--kill, after restart)" "$GNAME" 2 --kill
	bg_wait run1
	: >"$COHORT_TEST_TMP/end"

	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check "$exp_rc" "$RC" run2 run0 run1 run2
}

# flow_at AT TAG... [BASE]: wait until the program is where a checkpoint
# should land: AT lines of stdout of TAG... together (more than BASE, the
# lines they had printed before), or with AT = pN until the group has N
# processes
flow_at() {
	local at=$1 base=0
	shift
	[[ ${!#} =~ ^[0-9]+$ ]] && { base=${!#}; set -- "${@:1:$#-1}"; }
	case $at in
	p[0-9]*) wait_procs "$GNAME" "${at#p}" "${!#}" ;;
	*[!0-9]* | '') fail "flow: '$at' is neither a number of lines nor pN (N processes)" ;;
	*) wait_lines $((base + at)) "$@" ;;
	esac
}

# run_then_kill PROG [ARGS...]: PROG ARGS run natively and under cohort,
# which takes checkpoint 1 with --kill once it printed 3 lines (the program
# held at its end until then: common.h's end gate; a busy machine ran its
# steps out first).  The test restarts it (run1) as it wants.
run_then_kill() {
	prog_cmd "$1"
	cmd_then_kill "${PCMD[@]}" "${@:2}"
}

# cmd_then_kill CMD...: the same for any command line (PCMD set to it)
cmd_then_kill() {
	PCMD=("$@")
	straight_start 0 "${PCMD[@]}"
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	AT_END_FILE=$TT/at-end wait_lines 3 run0
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	: >"$TT/end"
}

std() { # std PROG EXP_RC AT1 AT2 [pipe|file] [ARGS...] (see flow_standard)
	local p=$1 rc=$2 at1=$3 at2=$4 mode=${5:-pipe}
	shift 5 2>/dev/null || shift $#
	prog_cmd "$p"
	flow_standard "$rc" "$at1" "$at2" "$mode" "${PCMD[@]}" "$@"
}

# The table of the tests that are the standard flow and nothing else
# (tests/cases/std.list, its columns described at its head).  A row becomes
# STD_ROW[NAME] ("PROGRAM STATUS AT1 AT2 STDOUT"), STD_ARGS[NAME] (the
# program's arguments as written) and STD_CHECK[NAME]; its timeout goes to
# TEST_TIMEOUTS and the "group" option to GROUP_TESTS.  STD_TESTS lists the
# names in the order of the rows.
declare -A STD_ROW=() STD_ARGS=() STD_CHECK=()
STD_TESTS=()

# std_load FILE: read the table; a malformed row is a usage error (exit 2)
std_load() {
	local f=$1 n=0 name prog rc at1 at2 out tmo opts args o
	while read -r name prog rc at1 at2 out tmo opts args; do
		n=$((n + 1))
		case $name in '' | '#'*) continue ;; esac
		if ! [[ $name =~ ^[a-z0-9_]+$ && $prog =~ ^[a-z0-9_]+$ && $rc =~ ^[0-9]+$ &&
			$at1 =~ ^p?[0-9]+$ && $at2 =~ ^p?[0-9]+$ && $out =~ ^(pipe|file)$ &&
			$tmo =~ ^(-|[0-9]+)$ && -n $opts ]] ||
			! printf '%s' "$args" | xargs -r true 2>/dev/null; then
			echo "run.sh: $f line $n: expected NAME PROGRAM STATUS AT1 AT2 pipe|file TIMEOUT|- OPTIONS|- [ARGUMENTS]" >&2
			exit 2
		fi
		[ -z "${STD_ROW[$name]:-}" ] || { echo "run.sh: $f line $n: a second row $name" >&2; exit 2; }
		STD_ROW[$name]="$prog $rc $at1 $at2 $out"
		STD_ARGS[$name]=$args
		STD_TESTS+=("$name")
		[ "$tmo" = - ] || TEST_TIMEOUTS[$name]=$tmo
		for o in ${opts//,/ }; do
			case $o in
			-) ;;
			group) GROUP_TESTS+=("$name") ;;
			check=?*) STD_CHECK[$name]=${o#check=} ;;
			*) echo "run.sh: $f line $n: unknown option '$o'" >&2; exit 2 ;;
			esac
		done
	done <"$f"
}

# std_case NAME: run the test of row NAME.  (The check function goes to
# flow_standard as FLOW_CHECK only when the row names one: an assignment in
# front of a function call is also in the environment of what it starts.)
std_case() {
	local row args TMO=$TMO
	# a row's own timeout covers the whole test: each of its commands and waits gets half of it
	[ -z "${TEST_TIMEOUTS[$1]:-}" ] || TMO=$(((TEST_TIMEOUTS[$1] + 1) / 2))
	read -r -a row <<<"${STD_ROW[$1]}"
	mapfile -d '' -t args < <(printf '%s' "${STD_ARGS[$1]}" | xargs -r printf '%s\0')
	if [ -n "${STD_CHECK[$1]:-}" ]; then
		FLOW_CHECK=${STD_CHECK[$1]} std "${row[@]}" ${args[@]+"${args[@]}"}
	else
		std "${row[@]}" ${args[@]+"${args[@]}"}
	fi
}

# steps_live_flow PROG LAST KILL_ARGS...: PROG (printing "step N ok" lines) run
# under cohort through a live checkpoint at step 2, a live incremental at
# step 6, checkpoint --kill KILL_ARGS at step LAST, and a restart, whose
# output must complete the straight run's.  PROG's arguments: the words of
# $FLOW_ARGS.  LIVE_CHECK: a function called with "before" just before the
# first checkpoint and "after" once the two live ones are taken.
steps_live_flow() {
	local prog=$1 last=$2 AT_END_FILE=$COHORT_TEST_TMP/at-end
	shift 2
	prog_cmd "$prog"
	# shellcheck disable=SC2206 # words, on purpose
	PCMD+=(${FLOW_ARGS:-})
	straight_start 0 "${PCMD[@]}"
	# held at its end until checkpoint 3 (common.h's end gate): a busy machine ran its last steps out first
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "step 2 ok"
	[ -z "${LIVE_CHECK:-}" ] || "$LIVE_CHECK" before
	ckpt_or_fail "checkpoint 1 (live)" "$GNAME" 1
	wait_line "$TD/run0.out" "step 6 ok"
	ckpt_or_fail "checkpoint 2 (live, --incremental)" "$GNAME" 2 --incremental
	[ -z "${LIVE_CHECK:-}" ] || "$LIVE_CHECK" after
	wait_line "$TD/run0.out" "step $last ok"
	ckpt_or_fail "checkpoint 3 (--kill $*)" "$GNAME" 3 --kill "$@"
	bg_wait run0
	: >"$COHORT_TEST_TMP/end"
	merges_done
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}
