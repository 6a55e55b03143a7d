# tests/harness/output.sh - sourced by tests/run.sh: the native run of a
# test program, and the output under cohort compared with it.

# straight EXP_RC CMD...: run natively; expected output in TD/exp.out
straight() {
	local exp_rc=$1
	shift
	# (the outer 2>/dev/null silences bash's "killed by signal" notice)
	{ timeout -k 5 "$TMO" "$@" <"$STDIN_SRC" >"$TD/exp.out" 2>"$TD/exp.err"; } 2>/dev/null
	straight_check $? "$exp_rc"
}

# straight_check RC EXP_RC: the native run ended with RC, and printed its RESULT line
straight_check() {
	if [ "$1" != "$2" ] || ! grep -q '^RESULT ' "$TD/exp.out"; then
		note_file "native stderr" "$TD/exp.err"
		[ "$1" = 124 ] && fail "native run timed out after $TMO s"
		fail "native run failed (status $1, expected $2): $(first_line "$TD/exp.err")"
	fi
}

# straight_start EXP_RC CMD...: the native run in the background, beside
# the run under cohort, so that a test does not take the program's time
# twice (the programs mostly sleep between steps: the two runs share the
# machine well, and the waits of the test are for events, not times).  Its
# COHORT_TEST_TMP is TD/straight.tmp, a copy of TT as it is now (the go files
# made in advance), so that the files of the two runs cannot meet.
# Whatever reads TD/exp.out calls straight_end first.
straight_start() {
	echo "$1" >"$TD/straight.want"
	shift
	rm -rf "$TD/straight.tmp"
	cp -a "$TT" "$TD/straight.tmp" || fail "cannot copy $TT for the native run"
	(COHORT_TEST_TMP=$TD/straight.tmp exec timeout -k 5 "$TMO" "$@" <"$STDIN_SRC" >"$TD/exp.out" 2>"$TD/exp.err") &
	echo $! >"$TD/straight.pid"
	echo $! >>"$TD/pids"
}

# straight_end: wait for the native run straight_start began (if any) and
# check it as straight does
straight_end() {
	[ -f "$TD/straight.pid" ] || return 0
	{ wait "$(cat "$TD/straight.pid")"; } 2>/dev/null
	local rc=$?
	rm -f "$TD/straight.pid"
	straight_check "$rc" "$(cat "$TD/straight.want")"
}

# outputs_match FILES...: concatenation of TD/FILE.out must equal TD/exp.out;
# on mismatch the diff and stderr tails go into the details
outputs_match() {
	local f
	straight_end
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

# check_suffix TAG PREFIXTAG: TAG.out must be a suffix of exp.out and the rest
# of exp.out a prefix of PREFIXTAG.out (the output seen before the checkpoint)
check_suffix() {
	local tag=$1 pre=$2 el sl
	straight_end
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
