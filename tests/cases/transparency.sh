# Transparency on real programs: what a program sees under cohort must be
# what it sees without it.  Sourced by tests/run.sh (t_NAME functions).

# wrap_null (a row of tests/cases/std.list) under a storm of checkpoints (no
# --kill), the last one --kill
t_wrap_null_storm() { storm wrap_null 2; }

# `yes | head -1` in bash under cohort run: yes dies of SIGPIPE (statuses
# "141 0", no "Broken pipe") when the caller left SIGPIPE default, and
# gets EPIPE ("1 0", the message) when the caller ignored it, as natively
# (sig_launch sets the caller's disposition); and from the harness's own
# shell, whatever it has, the same as natively
t_sigpipe_status() {
	command -v bash >/dev/null && command -v yes >/dev/null && command -v head >/dev/null ||
		skip "bash, yes or head not found"
	need_prog sig_launch
	local pipeline='yes | head -1; echo "${PIPESTATUS[*]}"' how want
	for how in d i plain; do
		local pre=("$BIN/sig_launch" "-$how" PIPE --)
		[ $how = plain ] && pre=()
		straight 0 "${pre[@]}" bash -c "$pipeline; echo RESULT ok"
		case $how in
		d) want=$'y\n141 0\nRESULT ok' ;;
		i) want=$'y\n1 0\nRESULT ok' ;;
		plain) want=$(cat "$TD/exp.out") ;;
		esac
		[ "$(cat "$TD/exp.out")" = "$want" ] || fail "native run ($how PIPE) printed $(tr '\n' ' ' <"$TD/exp.out")"
		bg_start "run$how" "${pre[@]}" "$COHORT" run --name "$GNAME" --images "$IMG" -- bash -c "$pipeline; echo RESULT ok"
		bg_wait "run$how"
		[ "$RC" = 0 ] || { note_file "stderr" "$TD/run$how.err"; fail "cohort run ($how PIPE): status $RC"; }
		[ "$(cat "$TD/run$how.out")" = "$want" ] ||
			{ note_file "stderr" "$TD/run$how.err"; fail "under cohort ($how PIPE) it printed $(tr '\n' ' ' <"$TD/run$how.out"), natively $(tr '\n' ' ' <<<"$want")"; }
		if grep -q 'Broken pipe' "$TD/exp.err"; then
			grep -q 'Broken pipe' "$TD/run$how.err" || fail "($how PIPE) natively yes says 'Broken pipe', under cohort not"
		elif grep -q 'Broken pipe' "$TD/run$how.err"; then
			fail "($how PIPE) under cohort: $(grep -m1 'Broken pipe' "$TD/run$how.err")"
		fi
	done
}

# the caller's dispositions and mask reach the program: a shell that
# ignores HUP and USR1 (trap '') starts sig_launch, which ignores CHLD and
# blocks USR2, WINCH and SIGRTMIN+5, which starts sig_report natively or
# `cohort run sig_report`.  Both are started the same way (bg_start), so
# whatever else the harness hands on is the same for both.  The program's
# report must be the same, and stay the same across checkpoint --kill and
# restart, twice.
t_signal_inherit() {
	need_prog sig_launch
	prog_cmd sig_report
	local k pre=(bash -c 'trap "" HUP USR1; exec "$@"' _ "$BIN/sig_launch" -i CHLD -b USR2,WINCH,39 --)
	bg_start native "${pre[@]}" "${PCMD[@]}"
	bg_wait native
	[ "$RC" = 0 ] && grep -q '^RESULT ' "$TD/native.out" ||
		{ note_file "native stderr" "$TD/native.err"; fail "native run: status $RC: $(first_line "$TD/native.err")"; }
	cp "$TD/native.out" "$TD/exp.out"
	grep -Eq '^ignored: 1( .*)? 10( .*)? 17( |$)' "$TD/exp.out" && grep -q '^blocked: 12 28 39$' "$TD/exp.out" ||
		fail "the caller's state did not reach the native run: $(head -n 2 "$TD/exp.out" | tr '\n' ' ')"
	bg_start run0 "${pre[@]}" "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 6 run0
	bg_alive run0 || { bg_wait run0; note_file "run stderr" "$TD/run0.err"; fail "program ended (status $RC) before the first checkpoint: $(first_line "$TD/run0.err")"; }
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	k=$(out_lines run0)
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	wait_lines $((k + 3)) run0 run1
	ckpt_or_fail "checkpoint 2 (--kill, after restart)" "$GNAME" 2 --kill
	bg_wait run1
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

# a caller that ignores SIGCHLD: cohort run still returns the program's
# exit status (its coordinator and init must reap what they start); that
# the program finds SIGCHLD ignored is signal_inherit's to check
t_sigchld_ignored() {
	need_prog sig_launch
	command -v false >/dev/null || skip "false(1) not found"
	local pre=("$BIN/sig_launch" -i CHLD --)
	timeout -k 5 "$TMO" "${pre[@]}" false
	[ $? = 1 ] || fail "natively false did not exit 1"
	bg_start run0 "${pre[@]}" "$COHORT" run --name "$GNAME" --images "$IMG" -- false
	bg_wait run0
	[ "$RC" = 1 ] || { note_file "stderr" "$TD/run0.err"; fail "cohort run -- false with SIGCHLD ignored: status $RC, not 1"; }
}

# unshare_user: a program in the group makes a user namespace of its own
# (and a time namespace in it), as `unshare -rT` does: the kernel allows that
# only to a single-threaded process, so an agent thread that stands in every
# process made it fail with EINVAL.  Compared with a straight run.
t_unshare_user() {
	command -v unshare >/dev/null || skip "unshare(1) not found"
	local cmd=(unshare -rT --boottime 1000 --fork /bin/sh -c 'id -u; echo RESULT in a user and time namespace')
	straight 0 "${cmd[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${cmd[@]}"
	bg_wait run0
	final_check 0 "$RC" run0 run0
}

# nested_ns: a program that makes namespaces of its own inside the group
# (a time namespace with clock offsets, then a mount namespace) cannot be
# restored as it was: each checkpoint must be refused in one line naming
# the process and the kind of namespace, commit nothing, and leave the
# program running to the straight run's output.
nested_ns_refused() { # nested_ns_refused KIND TAG
	ckpt_refused "$2" "a $1 namespace of its own" \
		"pid [0-9]+ \((unshare|sh)\) (runs in a $1 namespace of its own|made a $1 namespace for its children)"
}
t_nested_ns() {
	[ "$(id -u)" = 0 ] || skip "needs root (unshare -T, unshare -m)"
	command -v unshare >/dev/null || skip "unshare(1) not found"
	local loop='i=0; while [ $i -lt 40 ]; do echo "line $i"; i=$((i+1)); [ -e "$COHORT_TEST_TMP/go.1" ] || sleep 0.1; done; echo RESULT done'
	: >"$TT/go.1"
	straight 0 unshare -T --monotonic 500 --fork /bin/sh -c "$loop"
	rm -f "$TT/go.1"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- unshare -T --monotonic 500 --fork /bin/sh -c "$loop"
	wait_line "$TD/run0.out" "line 1"
	nested_ns_refused time run0
	: >"$TT/go.1"
	bg_wait run0
	final_check 0 "$RC" run0 run0
	rm -f "$TT/go.1"
	GNAME=$GNAME-mnt
	bg_start run1 "$COHORT" run --name "$GNAME" --images "$IMG" -- unshare -m --fork /bin/sh -c "$loop"
	wait_line "$TD/run1.out" "line 1"
	nested_ns_refused mnt run1
	: >"$TT/go.1"
	bg_wait run1
	final_check 0 "$RC" run1 run1
}

# raw_clone_members: the check of the raw_clone row of tests/cases/std.list
# (children made with syscall(SYS_clone) and syscall(SYS_clone3)): the group
# has its 3 processes
raw_clone_members() {
	local n
	n=$("$COHORT" status "$GNAME" --json | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["processes"]))')
	[ "$n" = 3 ] || fail "the group has $n registered processes, not 3 (the raw clone children are missing)"
}

# no_agent_listed: a process of the group the agent cannot enter (a static
# binary started by the program) is shown by status, refused by a checkpoint
# in one line naming it, and reached by kill; the group runs on until then.
na_listed() {
	"$COHORT" status "$GNAME" >"$TD/status.txt" 2>&1
	grep -q "without the cohort agent.*static_sleeper" "$TD/status.txt"
}
t_no_agent_listed() {
	local sp=$TD/static_sleeper
	printf '#include <unistd.h>\nint main(void){for(int i=0;i<600;i++)usleep(50000);return 0;}\n' >"$TD/s.c"
	gcc -static -O2 -o "$sp" "$TD/s.c" >"$TD/gcc.log" 2>&1 || skip "cannot link statically (libc.a missing?)"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/sh -c "$sp & wait"
	wait_ready "$GNAME" run0
	wait_for "status showing the process without the agent" na_listed
	"$COHORT" status "$GNAME" --json >"$TD/status.json"
	json_check "$TD/status.json" "assert [p for p in d['processes'] if p['state'] == 'no agent' and 'static_sleeper' in p['command']], d"
	timeout -k 5 40 "$COHORT" checkpoint "$GNAME" --images "$IMG" >"$TD/ck.out" 2>"$TD/ck.err"
	one_line_error $? 1 "$TD/ck.err" "checkpoint of a group with a process without the agent"
	grep -q "runs without the cohort agent" "$TD/ck.err" || fail "checkpoint message: $(first_line "$TD/ck.err")"
	bg_alive run0 || fail "the failed checkpoint ended the group"
	"$COHORT" kill "$GNAME" --json >"$TD/kill.json" || fail "kill: status $?"
	json_check "$TD/kill.json" "assert d['processes'] == 2, d"
	bg_wait run0
	[ "$RC" = 143 ] || fail "after kill: status $RC, expected 143"
}
