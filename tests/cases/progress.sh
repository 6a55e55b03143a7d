# tests/cases/progress.sh - sourced by tests/run.sh.
#
# progress: the status line of checkpoint and restart (src/cli/progress.c)
# is drawn on a terminal only, and erased before anything else is printed.
# script(1) gives a command a pseudo-terminal; its output (what the
# terminal got) is compared after the last erase-to-end-of-line, which is
# what a terminal shows once the line has been erased.  The line appears
# only after half a second of work: COHORT_PROGRESS_DELAY=0 shows it at
# once, whatever the speed of the machine.
#   (1) `checkpoint` on a terminal: progress lines (a phase and MiB), then
#       the result line alone;
#   (2) with stdout and stderr in a file, with stderr alone in a file (the
#       result line on the terminal), and with TERM=dumb: the result line
#       and not one byte more;
#   (3) `restart` on a terminal: "restoring" progress, erased before the
#       program's output; on pipes: the program's output alone.

PROGRESS_MIB=320

# progress_wait_line TAG TEXT: wait until TD/TAG.out has a line starting with TEXT
progress_wait_line() {
	local end=$((SECONDS + TMO))
	while [ $SECONDS -lt $end ]; do
		grep -q "^$2" "$TD/$1.out" && return 0
		bg_alive "$1" || { bg_wait "$1"; note_file "$1 stderr" "$TD/$1.err"; fail "$1 ended (status $RC) before printing '$2'"; }
		sleep 0.02
	done
	fail "$1: no '$2' line after $TMO s"
}

# on_tty FILE CMD: run the shell command CMD on a pseudo-terminal (TERM=xterm
# unless set in CMD, no delay), what the terminal got into FILE; sets RC
on_tty() {
	TERM=xterm COHORT_PROGRESS_DELAY=0 timeout -k 5 "$TMO" script -qec "$2" /dev/null <"$STDIN_SRC" >"$1" 2>"$1.err"
	RC=$?
}

# tty_final FILE: what a terminal shows of FILE's output after the last
# "erase to end of line", line endings as a pipe has them ("\r\n" -> "\n")
tty_final() {
	local s
	s=$(cat "$1")
	s=${s##*$'\033[K'}
	printf '%s\n' "${s//$'\r'/}"
}

# progress_one_line FILE WHAT: FILE holds exactly one line, the result of a checkpoint
progress_one_line() {
	local n
	n=$(tr -d '\r' <"$1" | wc -l)
	[ "$n" = 1 ] || { note_file "$2" "$1" 5; fail "$2: $n lines, expected the result line alone"; }
	grep -q $'\033' "$1" && { note_file "$2" "$1" 5; fail "$2: escape sequences although no terminal was to get progress"; }
	grep -q "^generation [0-9]* of '$GNAME'" "$1" || { note_file "$2" "$1" 5; fail "$2: not the result line"; }
}

t_progress() {
	command -v script >/dev/null || skip "script(1) not found"
	prog_cmd progress_mem
	: >"$TT/go.1"
	straight 0 "${PCMD[@]}" $PROGRESS_MIB
	rm -f "$TT/go.1"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}" $PROGRESS_MIB
	wait_ready "$GNAME" run0
	progress_wait_line run0 filled

	# (1) on a terminal
	on_tty "$TD/tty1.out" "$COHORT checkpoint $GNAME --images $IMG"
	[ "$RC" = 0 ] || { note_file "checkpoint on a terminal" "$TD/tty1.out"; fail "checkpoint on a terminal: status $RC"; }
	note "on a terminal: $(tr '\r' '\n' <"$TD/tty1.out" | grep -ac "^checkpoint '$GNAME': ") progress lines"
	grep -aq $'\r'"checkpoint '$GNAME': preparing" "$TD/tty1.out" ||
		{ note_file "terminal output" "$TD/tty1.out" 5; fail "no 'preparing' progress line on a terminal"; }
	grep -aEq "checkpoint '$GNAME': (pre-copying|writing images|merging pre-copy|committing) +[0-9.]+ MiB" "$TD/tty1.out" ||
		{ note_file "terminal output" "$TD/tty1.out" 5; fail "no progress line with a phase and MiB on a terminal"; }
	tty_final "$TD/tty1.out" >"$TD/tty1.final"
	progress_one_line "$TD/tty1.final" "what the terminal shows after checkpoint 1"
	grep -q "^generation 1 of '$GNAME' (full): 1 process" "$TD/tty1.final" ||
		fail "checkpoint on a terminal: the result line is $(first_line "$TD/tty1.final")"

	# (2) no terminal: stdout and stderr in a file
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" >"$TD/plain.out" 2>&1 ||
		{ note_file "checkpoint output" "$TD/plain.out"; fail "checkpoint 2 failed"; }
	progress_one_line "$TD/plain.out" "checkpoint with stdout and stderr in a file"
	grep -q $'\r' "$TD/plain.out" && fail "checkpoint with stdout and stderr in a file printed a carriage return"
	# stderr in a file, the result on the terminal; TERM=dumb
	on_tty "$TD/tty2.out" "$COHORT checkpoint $GNAME --images $IMG 2>$TD/tty2.stderr"
	[ "$RC" = 0 ] || fail "checkpoint 3 (stderr in a file): status $RC"
	[ -s "$TD/tty2.stderr" ] && { note_file "stderr" "$TD/tty2.stderr"; fail "checkpoint with stderr in a file wrote to it"; }
	progress_one_line "$TD/tty2.out" "checkpoint with stderr in a file"
	on_tty "$TD/tty3.out" "TERM=dumb $COHORT checkpoint $GNAME --images $IMG --kill"
	[ "$RC" = 0 ] || fail "checkpoint 4 (TERM=dumb, --kill): status $RC"
	progress_one_line "$TD/tty3.out" "checkpoint with TERM=dumb"
	bg_wait run0

	# (3) restart on a terminal, then on pipes; the program finishes at once
	: >"$TT/go.1"
	local result
	result=$(grep '^RESULT ' "$TD/exp.out")
	bg_start rtty script -qec "TERM=xterm COHORT_PROGRESS_DELAY=0 $COHORT restart $GNAME --images $IMG" /dev/null
	bg_wait rtty
	[ "$RC" = 0 ] || { note_file "restart on a terminal" "$TD/rtty.out"; fail "restart on a terminal: status $RC"; }
	grep -aEq $'\r'"restart '$GNAME': restoring +[0-9.]+ (B|KiB|MiB) / [0-9.]+ MiB" "$TD/rtty.out" ||
		{ note_file "terminal output" "$TD/rtty.out" 5; fail "no 'restoring' progress on a terminal"; }
	tty_final "$TD/rtty.out" >"$TD/rtty.final"
	[ "$(cat "$TD/rtty.final")" = "$result" ] ||
		{ note_file "terminal output" "$TD/rtty.out" 5; fail "restart on a terminal: the program's output is not alone after the progress line: $(first_line "$TD/rtty.final")"; }
	bg_start rpipe "$COHORT" restart "$GNAME" --images "$IMG" --generation 2
	bg_wait rpipe
	[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/rpipe.err"; fail "restart on pipes: status $RC"; }
	[ -s "$TD/rpipe.err" ] && { note_file "restart stderr" "$TD/rpipe.err"; fail "restart on pipes wrote to stderr"; }
	[ "$(cat "$TD/rpipe.out")" = "$result" ] || fail "restart on pipes: output $(first_line "$TD/rpipe.out"), expected $result"
}
