# tests/cases/cli.sh - sourced by tests/run.sh: the command line as a person
# or a script meets it (help, usage errors, --json, exit statuses, the
# group's stdio at a restart, default names, install, messages).

TEST_TIMEOUTS[fresh_setup]=240 # apt-get and a whole build

# A program that prints N numbered lines, one each 50 ms (at once when the
# file TT/fast exists: a restart that is to run to the end): /bin/sh, so
# that any machine runs it; its output does not depend on timing.
counter_script() { # counter_script FILE N
	printf 'i=0\nwhile [ $i -lt %d ]; do echo "line $i"; i=$((i+1)); [ -e "$COHORT_TEST_TMP/fast" ] || sleep 0.05; done\necho RESULT done\n' \
		"$2" >"$1"
}

# one_line_error RC WANT_RC FILE WHAT: status WANT_RC and exactly one line on stderr
one_line_error() {
	[ "$1" = "$2" ] || fail "$4: status $1, expected $2 ($(first_line "$3"))"
	[ "$(wc -l <"$3")" = 1 ] || { note_file "$4 stderr" "$3"; fail "$4: expected one line on stderr, got $(wc -l <"$3")"; }
}

# json_check FILE PYTHON-ASSERTIONS: every line of FILE is a JSON object (in d, the list in ds)
json_check() {
	"$PYTHON" - "$1" "$2" 2>"$TD/json.err" <<'EOF' || { note_file "json" "$1"; note_file "check" "$TD/json.err" 4; fail "bad JSON in $(basename "$1")"; }
import json, sys
# (the program's own output comes before run's and restart's outcome)
ds = [json.loads(l) for l in open(sys.argv[1]).read().splitlines() if l.startswith("{")]
assert ds, "no JSON at all"
d = ds[-1]
exec(sys.argv[2])
EOF
}

t_cli_help() {
	local c rc
	# help to stdout, status 0, nothing on stderr
	for c in "--help" "-h" "help" "help run" "help checkpoint" "help restart" "help status" "help list" \
		"help kill" "help inspect" "help verify" "run --help" "checkpoint --help" "restart x --help" \
		"kill --help" "verify --help" "inspect -h" "status --help" "list --help" "help migrate" "help receive" \
		"migrate --help" "receive --help"; do
		# shellcheck disable=SC2086
		"$COHORT" $c >"$TD/h.out" 2>"$TD/h.err"
		rc=$?
		[ "$rc" = 0 ] || fail "'cohort $c': status $rc ($(first_line "$TD/h.err"))"
		[ ! -s "$TD/h.err" ] || fail "'cohort $c' wrote to stderr: $(first_line "$TD/h.err")"
		grep -q '^usage: cohort' "$TD/h.out" || fail "'cohort $c': no usage line on stdout"
	done
	# the command's own help names its options
	"$COHORT" checkpoint --help | grep -q -- '--incremental' || fail "checkpoint --help does not list --incremental"
	"$COHORT" help run | grep -q -- '--replace' || fail "help run does not list --replace"
	# `run PROG --help` is the program's option, not ours
	"$COHORT" run --name "$GNAME" --images "$IMG" /bin/sh -c 'echo "$0 $1"' --help -h >"$TD/e.out" 2>"$TD/e.err" ||
		fail "run PROGRAM --help -h failed: $(first_line "$TD/e.err")"
	[ "$(cat "$TD/e.out")" = "--help -h" ] || fail "run PROGRAM --help -h printed '$(head -c 80 "$TD/e.out")'"
	"$COHORT" --version >"$TD/v.out" 2>"$TD/v.err" || fail "--version: status $?"
	grep -Eqx 'cohort [0-9]+\.[0-9]+\.[0-9]+' "$TD/v.out" || fail "--version printed '$(head -c 80 "$TD/v.out")'"
	# usage errors: status 2, one line on stderr naming the problem, nothing on stdout
	local args
	while IFS='|' read -r args want; do
		# shellcheck disable=SC2086
		"$COHORT" $args >"$TD/u.out" 2>"$TD/u.err"
		one_line_error $? 2 "$TD/u.err" "cohort $args"
		[ ! -s "$TD/u.out" ] || fail "'cohort $args' wrote to stdout"
		grep -q -- "$want" "$TD/u.err" || fail "'cohort $args': error does not name '$want': $(first_line "$TD/u.err")"
	done <<EOF
|no command
frobnicate|frobnicate
checkpoint x --bogus|--bogus
checkpoint|which group
checkpoint x --incremental --full|exclude
restart x --generation -1|--generation
restart x --generation 99999999999999999999|--generation
run --interval 0 -- /bin/true|--interval
run --keep x -- /bin/true|--keep
run|no program
migrate x --to 1.2.3.4:5 --token-file t --max-rounds 101|--max-rounds
migrate x --to 1.2.3.4:5 --token-file t --downtime-ms 0|--downtime-ms
migrate x --token-file t|--to
receive --listen nowhere --token-file t|ADDR:PORT
kill x --signal NOPE|NOPE
run --signal 9 -- /bin/true|real-time
run --signal 19 -- /bin/true|real-time
help nosuch|nosuch
status a b|unexpected argument
inspect|of what
verify a b|unexpected argument
EOF
	# a failure that is not a usage error: status 1, one line
	"$COHORT" checkpoint "nosuch-$GNAME" >"$TD/f.out" 2>"$TD/f.err"
	one_line_error $? 1 "$TD/f.err" "checkpoint of a group that does not run"
}

t_cli_json() {
	local s=$TD/count.sh
	counter_script "$s" 400
	bg_start run0 "$COHORT" run --json --name "$GNAME" --images "$IMG" -- /bin/sh "$s" extra-arg
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "line 3"
	"$COHORT" list --json >"$TD/list.json" || fail "list --json: status $?"
	json_check "$TD/list.json" "
m = [x for x in ds if x['name'] == '$GNAME']
assert len(m) == 1, 'group not listed once: %r' % ds
assert m[0]['processes'] >= 1 and m[0]['coordinator_pid'] > 0 and m[0]['state'] == 'running', m[0]
assert m[0]['images'] == '$IMG/$GNAME', m[0]['images']"
	"$COHORT" status "$GNAME" --json >"$TD/status.json" || fail "status --json: status $?"
	json_check "$TD/status.json" "
cmds = [p['command'] for p in d['processes']]
assert '/bin/sh $s extra-arg' in cmds, 'command lines: %r' % cmds"
	"$COHORT" status "$GNAME" >"$TD/status.txt"
	grep -qF "/bin/sh $s extra-arg" "$TD/status.txt" || { note_file status "$TD/status.txt"; fail "status does not show the command line"; }
	"$COHORT" kill "$GNAME" --signal CONT --json >"$TD/kill.json" || fail "kill --json: status $?"
	json_check "$TD/kill.json" "assert d == {'name': '$GNAME', 'signal': 18, 'processes': d['processes']} and d['processes'] >= 1, d"
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	json_check "$TD/run0.out" "
assert d['outcome'] == 'checkpointed' and d['exit_status'] == 75 and d['generation'] == 1, d
assert d['directory'] == '$IMG/$GNAME/gen-000001', d"
	"$COHORT" verify --json "$IMG/$GNAME" >"$TD/verify.json" || fail "verify --json: status $?"
	json_check "$TD/verify.json" "assert len(ds) == 1 and d['ok'] is True and d['generation'] == 1 and d['error'] == '', ds"
	"$COHORT" inspect --json "$IMG/$GNAME" >"$TD/inspect.json" || fail "inspect --json GROUPDIR: status $?"
	json_check "$TD/inspect.json" "assert len(ds) == 1 and d['ok'] is True and d['generation'] == 1, ds"
	: >"$TT/fast"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG" --json
	bg_wait run1
	[ "$RC" = 0 ] || fail "restart: status $RC ($(first_line "$TD/run1.err"))"
	json_check "$TD/run1.out" "
assert d == {'name': '$GNAME', 'outcome': 'exited', 'exit_status': 0, 'program_status': 0, 'restored_generation': 1}, d"
	# a damaged generation: ok false, the error names the file
	local img
	img=$(ls "$IMG/$GNAME/gen-000001"/proc-*.img | head -n 1)
	printf 'X' | dd of="$img" bs=1 seek=200 conv=notrunc 2>/dev/null
	"$COHORT" verify --json "$IMG/$GNAME" >"$TD/verify2.json" 2>"$TD/verify2.err"
	[ $? = 1 ] || fail "verify --json of a damaged generation did not exit 1"
	json_check "$TD/verify2.json" "assert d['ok'] is False and 'proc-' in d['error'], d"
}

# The group's outside stdout is a file: each restart writes to its caller's
# stdout, and the first file is neither rolled back nor written again.
t_stdout_restart() {
	local s=$TD/count.sh
	counter_script "$s" 60
	straight_start 0 /bin/sh "$s"
	bg_start run0 --file "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/sh "$s"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "line 10"
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	cp "$TD/run0.out" "$TD/run0.at-kill"
	bg_start run1 --file "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	wait_line "$TD/run1.out" "line 30"
	ckpt_or_fail "checkpoint 2 (--kill)" "$GNAME" 2 --kill
	bg_wait run1
	cp "$TD/run1.out" "$TD/run1.at-kill"
	# the third round's stdout is a pipe: the kind may change between restarts
	: >"$TT/fast"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	[ "$RC" = 0 ] || fail "last restart: status $RC ($(first_line "$TD/run2.err"))"
	cmp -s "$TD/run0.out" "$TD/run0.at-kill" || fail "the first run's stdout file changed after its group ended"
	cmp -s "$TD/run1.out" "$TD/run1.at-kill" || fail "the first restart's stdout file changed after its group ended"
	[ -s "$TD/run1.out" ] || fail "nothing reached the first restart's stdout"
	[ -s "$TD/run2.out" ] || fail "nothing reached the second restart's stdout"
	final_check 0 "$RC" run2 run0 run1 run2
}

# The group's stdin is /dev/null and the program opens /dev/null itself, as
# a shell does for `cmd >/dev/null`: at the restart its own opens come back
# as its own (fd 3 writable, fd 4 read-only and empty), and only the fd 0 it
# was started with is the restart caller's stdin (a file, here).
t_stdio_devnull_own() {
	need_cmd bash
	local s=$TD/devnull.sh
	cat >"$s" <<'EOF'
exec 3>/dev/null 4</dev/null
i=0
while [ $i -lt 60 ]; do
	echo "line $i"
	echo "w$i" >&3 || { echo "ERROR line $i: its own /dev/null (fd 3) is not writable"; exit 1; }
	read -r x <&4 && { echo "ERROR line $i: its own /dev/null (fd 4) gave '$x'"; exit 1; }
	i=$((i + 1))
	[ -e "$COHORT_TEST_TMP/fast" ] || sleep 0.05
done
read -r l
echo "stdin: $l"
echo RESULT done
EOF
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- bash "$s"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "line 10"
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	echo from-restart >"$TD/in"
	: >"$TT/fast"
	STDIN_SRC=$TD/in bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	grep -q ERROR "$TD/run1.out" && fail "after the restart: $(grep ERROR "$TD/run1.out" | head -n 1)"
	[ "$RC" = 0 ] || fail "restart: status $RC ($(first_line "$TD/run1.err"))"
	grep -qx "stdin: from-restart" "$TD/run1.out" ||
		fail "fd 0 is not the restart caller's stdin: $(grep stdin: "$TD/run1.out" || echo 'no stdin line')"
	grep -qx "RESULT done" "$TD/run1.out" || fail "the restarted script did not reach its end"
}

# checkpoint --kill ends run and restart with status 75 and one line saying so
t_kill_status() {
	local s=$TD/count.sh round tag
	counter_script "$s" 400
	for round in 1 2; do
		tag=run$round
		if [ $round = 1 ]; then
			bg_start $tag "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/sh "$s"
		else
			bg_start $tag "$COHORT" restart "$GNAME" --images "$IMG"
		fi
		wait_ready "$GNAME" $tag
		ckpt_or_fail "checkpoint $round (--kill)" "$GNAME" $round --kill
		bg_wait $tag
		[ "$RC" = 75 ] || fail "$tag after checkpoint --kill: status $RC, expected 75"
		one_line_error "$RC" 75 "$TD/$tag.err" "$tag after checkpoint --kill"
		grep -q "checkpoint --kill.*generation $round.*cohort restart $GNAME" "$TD/$tag.err" ||
			fail "$tag: message does not name generation $round and the restart: $(first_line "$TD/$tag.err")"
	done
}

# Default names: another command line with the same program name is refused
t_name_collision() {
	local prog=$TD/$GNAME # its base name is the default group name
	cp /bin/sleep "$prog" || fail "cannot copy /bin/sleep"
	sleeper() { # sleeper TAG GEN [RUN-OPTIONS] -- ARGS: run, checkpoint GEN --kill
		local tag=$1 gen=$2
		shift 2
		bg_start "$tag" "$COHORT" run --images "$IMG" "$@"
		wait_ready "$GNAME" "$tag"
		ckpt_or_fail "checkpoint $gen of $tag" "$GNAME" "$gen" --kill
		bg_wait "$tag"
	}
	sleeper a 1 -- "$prog" 30
	# the same command line continues the group's generations
	sleeper b 2 -- "$prog" 30
	# another one is refused in one line that says what to do
	"$COHORT" run --images "$IMG" -- "$prog" 31 >"$TD/c.out" 2>"$TD/c.err"
	one_line_error $? 2 "$TD/c.err" "run of another command line under an existing default name"
	grep -q -- "--name.*--replace" "$TD/c.err" || fail "refusal does not mention --name and --replace: $(first_line "$TD/c.err")"
	[ -d "$IMG/$GNAME/gen-000002" ] || fail "the refused run harmed the images"
	# a name given explicitly is the user's choice
	sleeper d 3 --name "$GNAME" -- "$prog" 32
	# --replace starts over: the old generations go, the new one is 1
	sleeper e 1 --replace -- "$prog" 33
	[ ! -d "$IMG/$GNAME/gen-000002" ] && [ ! -d "$IMG/$GNAME/gen-000003" ] || fail "--replace kept old generations"
	bg_start f "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" f
	"$COHORT" status "$GNAME" >"$TD/f.status"
	grep -q "$prog 33" "$TD/f.status" || { note_file status "$TD/f.status"; fail "restart after --replace is not the new command line"; }
	"$COHORT" kill "$GNAME" --signal KILL >/dev/null
	bg_wait f
}

# A stopped process: the checkpoint says so (not "without the cohort agent"), soon
t_stopped_message() {
	local s=$TD/count.sh
	counter_script "$s" 100000
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/sh "$s"
	wait_ready "$GNAME" run0
	local host
	host=$("$COHORT" status "$GNAME" --json | "$PYTHON" -c 'import json,sys; print([p["host_pid"] for p in json.load(sys.stdin)["processes"] if p["pid"] == 2][0])') ||
		fail "no host pid for pid 2"
	kill -STOP "$host"
	timeout -k 5 25 "$COHORT" checkpoint "$GNAME" --images "$IMG" >"$TD/ck.out" 2>"$TD/ck.err"
	local rc=$?
	kill -CONT "$host"
	[ $rc != 124 ] || fail "checkpoint of a stopped process hung"
	one_line_error $rc 1 "$TD/ck.err" "checkpoint of a stopped process"
	grep -q "pid 2 (sh) is stopped.*kill -CONT $host" "$TD/ck.err" || fail "message: $(first_line "$TD/ck.err")"
	# the group runs on and can be checkpointed
	wait_line "$TD/run0.out" "line 5"
	ckpt_or_fail "checkpoint after CONT" "$GNAME" 1 --kill
	bg_wait run0
}

# the demo of examples/demo.sh shortened (10 steps of 250 ms, checkpointed
# 1 s in, instead of 20 of 500 ms 3 s in): what it shows is the same
DEMO_SHORT=(DEMO_ARGS="10 250" DEMO_DELAY=1)

# make install DESTDIR=...: the installed command finds its agent and restorer, runs the demo elsewhere
t_install_layout() {
	local dest=$TD/dest prefix=/opt/cohort-test
	make -s -C "$ROOT" install DESTDIR="$dest" PREFIX="$prefix" >"$TD/install.log" 2>&1 ||
		{ note_file "make install" "$TD/install.log"; fail "make install failed"; }
	local f
	for f in bin/cohort lib/cohort/libcohort.so lib/cohort/cohort-restore share/man/man1/cohort.1 \
		share/bash-completion/completions/cohort; do
		[ -f "$dest$prefix/$f" ] || fail "make install did not install $prefix/$f"
	done
	# the man page renders; completion loads
	if command -v man >/dev/null; then
		man -l "$dest$prefix/share/man/man1/cohort.1" 2>/dev/null | grep -q 'checkpoint' || fail "the installed man page does not render"
	fi
	bash --norc -c ". '$dest$prefix/share/bash-completion/completions/cohort' && complete -p cohort" >/dev/null 2>&1 ||
		fail "the installed completion does not register"
	# from another directory, with no build tree beside the command
	(cd / && env COHORT=$dest$prefix/bin/cohort DEMO_BIN=$ROOT/build/examples/demo "${DEMO_SHORT[@]}" \
		bash "$ROOT/examples/demo.sh" >"$TD/demo.out" 2>&1) ||
		{ note_file "demo with the installed command" "$TD/demo.out"; fail "the installed cohort cannot run the demo"; }
	make -s -C "$ROOT" uninstall DESTDIR="$dest" PREFIX="$prefix" >"$TD/uninstall.log" 2>&1 || fail "make uninstall failed"
	local left
	left=$(find "$dest" -type f | head -n 3)
	[ -z "$left" ] || fail "make uninstall left $left"
}

# A fresh machine: `make demo` installs what the build needs by itself. The
# zstd headers are removed for the test and must come back through make.
# All of it happens in a private mount namespace, with overlays over /usr,
# /var and /etc (their changes in a tmpfs, thrown away at the end): the
# package is removed only from what this test sees, not from under other
# builds of the machine.
t_fresh_setup() {
	[ "$(id -u)" = 0 ] || skip "needs root (removes and reinstalls libzstd-dev)"
	command -v apt-get >/dev/null || skip "not a Debian or Ubuntu machine"
	command -v unshare >/dev/null || skip "no unshare(1)"
	# a tree another user can read (the work directory is private)
	local src
	src=$(mktemp -d "${TMPDIR:-/tmp}/cohort-fresh.XXXX") || fail "mktemp failed"
	echo "$src" >"$TD/fresh-src"
	chmod 755 "$src"
	(cd "$ROOT" && git ls-files -z 2>/dev/null | xargs -0 -I{} cp --parents {} "$src/") ||
		fail "cannot copy the source tree"
	[ -f "$src/Makefile" ] || fail "the copied tree has no Makefile (not a git checkout?)"
	chmod -R a+rwX "$src"
	mkdir -p "$TD/ovl"
	cat >"$TD/inside.sh" <<'INSIDE'
# run in the private overlays: $1 the source tree, $2 where results go
src=$1 out=$2
unset COHORT # a fresh machine's demo uses the cohort it builds, not the suite's
say() { echo "$*" >"$out/result"; exit 0; }
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq libzstd-dev >"$out/remove.log" 2>&1 || say "cannot remove libzstd-dev"
[ ! -e /usr/include/zstd.h ] || say "zstd.h is still there"
if id nobody >/dev/null 2>&1; then
	su nobody -s /bin/bash -c "make -C '$src' demo" >"$out/nobody.log" 2>&1 && say "make demo succeeded as a user without zstd.h"
	grep -q "apt-get install.*libzstd-dev" "$out/nobody.log" || say "as a user, make demo did not name libzstd-dev and the command"
fi
env DEMO_ARGS="10 250" DEMO_DELAY=1 make -C "$src" -j2 demo >"$out/demo.log" 2>&1
rc=$?
[ -e /usr/include/zstd.h ] || say "make demo did not install libzstd-dev"
[ $rc = 0 ] || say "make demo on a machine without zstd.h failed"
say ok
INSIDE
	# the overlays: /usr, /var and /etc below, a tmpfs above (what apt-get and dpkg change)
	unshare -m --propagation private bash -c '
		set -e
		o=$1 td=$2 src=$3
		mount -t tmpfs tmpfs "$o"
		for d in /usr /var /etc; do
			mkdir -p "$o/u$d" "$o/w$d"
			mount -t overlay overlay -o "lowerdir=$d,upperdir=$o/u$d,workdir=$o/w$d" "$d"
		done
		exec /bin/bash "$td/inside.sh" "$src" "$td"
	' fresh "$TD/ovl" "$TD" "$src" >"$TD/ns.log" 2>&1 || { note_file "namespace" "$TD/ns.log"; fail "cannot make the private overlays"; }
	[ -e /usr/include/zstd.h ] || fail "zstd.h went missing outside the test's overlay"
	local r
	r=$(cat "$TD/result" 2>/dev/null)
	[ "$r" = ok ] || {
		note_file "make demo" "$TD/demo.log"
		note_file "make demo as nobody" "$TD/nobody.log"
		fail "${r:-the test in the overlay gave no result}"
	}
	rm -rf "$src"
}
