# tests/harness/test.sh - sourced by tests/run.sh: what a test reports
# (fail, skip, note) and the commands it starts in the background.  Each
# test runs in its own subshell; TD is the test's directory, TT its
# COHORT_TEST_TMP, IMG its images directory, GNAME its group's name.

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

# bg_kill9 TAG: SIGKILL a command started with bg_start (and its timeout)
bg_kill9() {
	local p
	p=$(cat "$TD/$1.pid")
	{
		kill -9 $(pgrep -P "$p") "$p"
		bg_wait "$1"
	} 2>/dev/null
}

# Waiting: a test waits for the state it needs (a line printed, a file, a
# status), never for a fixed time, so that it passes on a busy machine; each
# wait fails the test after TMO s saying what did not come.

# wait_for WHAT CMD...: run CMD every 20 ms until it succeeds; after TMO s
# fail with "WHAT: not after TMO s"
wait_for() {
	local what=$1 end=$((SECONDS + TMO))
	shift
	until "$@"; do
		[ $SECONDS -lt $end ] || fail "$what: not after $TMO s"
		sleep 0.02
	done
}

# wait_line FILE TEXT: until FILE holds a line TEXT
wait_line() { wait_for "no line '$2' in $(basename "$1")" grep -qsx -- "$2" "$1"; }

# out_lines TAG...: the lines of stdout the commands TAG... printed, together
out_lines() {
	local t
	for t in "$@"; do cat "$TD/$t.out" 2>/dev/null; done | wc -l
}

# wait_lines N TAG...: until the commands TAG... have printed N lines of
# stdout together (the pieces of one program's output across its restarts);
# the last TAG is the one that runs: fail if it ends first
wait_lines() {
	local n=$1 end=$((SECONDS + TMO)) k last
	shift
	last=${!#}
	while k=$(out_lines "$@") && [ "$k" -lt "$n" ]; do
		# a program held at its end (AT_END_FILE: flow_standard's end gate) prints no more
		[ -z "${AT_END_FILE:-}" ] || [ ! -e "$AT_END_FILE" ] || return 0
		if ! bg_alive "$last"; then
			bg_wait "$last"
			note_file "$last stderr" "$TD/$last.err"
			fail "$last ended (status $RC) after $k of the $n lines waited for: $(first_line "$TD/$last.err")"
		fi
		[ $SECONDS -lt $end ] || fail "$last: $k of the $n lines waited for after $TMO s"
		sleep 0.02
	done
}

# group_procs NAME: how many processes `cohort status NAME --json` lists
group_procs() {
	"$COHORT" status "$1" --json 2>/dev/null | grep -o '"host_pid":' | wc -l
}

# procs_at_least NAME N TAG: the group NAME has N processes; fail if TAG has ended
procs_at_least() {
	[ "$(group_procs "$1")" -ge "$2" ] && return 0
	bg_alive "$3" && return 1
	bg_wait "$3"
	note_file "$3 stderr" "$TD/$3.err"
	fail "$3 ended (status $RC) before group $1 had $2 processes: $(first_line "$TD/$3.err")"
}

# wait_procs NAME N TAG: until the group NAME (of the command TAG) has N processes
wait_procs() { wait_for "group $1 with $2 processes" procs_at_least "$1" "$2" "$3"; }
