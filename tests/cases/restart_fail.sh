# tests/cases/restart_fail.sh - sourced by tests/run.sh.

# restart_fail (issues 11 and 12): procs_pipes (four processes: a parent, a
# child with a thread and a child of its own, another child; pipes between
# them) checkpointed once plain and once compressed, then restarted with
# the fault switch COHORT_FAULT (src/common/report.h) at every stage of
# the restore: the restorer (or init) fails there, or stops for ever, or
# `cohort restart` is killed (SIGKILL at five stages, SIGTERM and SIGINT at two each) while it is stopped
# there.  Every time `cohort restart` must end by itself (a stop: once
# nothing moved for 5 s, which its line says), non-zero, with
# exactly one line naming the process and the stage (a failure and a stop:
# "cohort: restore failed: pid N, STAGE: why", never an empty reason), run
# none of the program, and leave no process behind: it runs under a child
# subreaper (tests/progs/subreaper.c), which inherits whatever it leaves,
# feeders of compressed images and restorers included.  At the end a
# restart without the fault runs each generation to the straight run's
# output: nothing was harmed.
TEST_TIMEOUTS[restart_fail]=240

# what the message says for each stage of the switch (report.h)
declare -A RF_TEXT=(
	[start]="starting" [children]="creating its child processes" [files]="restoring its descriptors"
	[cgroups]="joining its cgroups" [map]="checking its memory map" [memory]="restoring its memory"
	[attrs]="restoring its process attributes" [pidfds]="opening its pidfds again"
	[locks]="taking its file locks again" [threads]="restoring its threads"
	[thread]="a thread taking its ids back" [jump]="returning into the program"
	[shared]="restoring the group's shared objects"
)

# rf_start TAG NAME FAULT: `cohort restart NAME` with COHORT_FAULT=FAULT, under the subreaper
rf_start() {
	COHORT_FAULT=$3 bg_start "$1" "$BIN/subreaper" "$TD/$1.left" "$COHORT" restart "$2" --images "$IMG"
}

# rf_wait TAG: wait for it to end by itself (sets RC).  The bound is the
# restart's own, which the line it ends with shows ("no progress for 5 s"
# when nothing moved); a restart that never ends is killed after TMO s
# (bg_start's timeout, status 124).  No clock of the test's: on a busy
# machine a restart that ended within the bound took the test longer.
rf_wait() {
	bg_wait "$1"
	[ "$RC" != 124 ] || { note_file "$1 stderr" "$TD/$1.err" 3; fail "$1: cohort restart still ran after $TMO s"; }
}

# rf_clean TAG: it ran none of the program and left nothing behind
rf_clean() {
	[ -s "$TD/$1.out" ] && fail "$1: the failed restart ran the program: $(head -n 1 "$TD/$1.out")"
	[ -f "$TD/$1.left" ] || fail "$1: the subreaper wrote no list (status $RC: $(first_line "$TD/$1.err"))"
	[ -s "$TD/$1.left" ] && fail "$1: left behind: $(tr '\n' ' ' <"$TD/$1.left")"
	return 0
}

# rf_fault TAG NAME FAULT WHO STAGE-RE: restart with the fault; one line "restore failed: WHO, STAGE: ..."
rf_fault() {
	rf_start "$1" "$2" "$3"
	rf_failed "$1" "$3" "$4" "$5"
}

# rf_failed TAG FAULT WHO STAGE-RE [WHY-RE]: the restart rf_start began ends so
rf_failed() {
	local tag=$1 fault=$2 who=$3 re=$4 why=${5:-[^ ]}
	rf_wait "$tag"
	note_file "$tag ($fault)" "$TD/$tag.err" 2
	[ "$RC" != 0 ] || fail "$tag: restart with COHORT_FAULT=$fault succeeded"
	[ "$(wc -l <"$TD/$tag.err")" = 1 ] || fail "$tag ($fault): expected one line on stderr, got $(wc -l <"$TD/$tag.err"): $(first_line "$TD/$tag.err")"
	grep -qE "^cohort: restore failed: $who, ($re): $why" "$TD/$tag.err" ||
		fail "$tag ($fault): the line does not name $who and the stage${5:+ (and say '$5')}: $(first_line "$TD/$tag.err")"
	rf_clean "$tag"
}

# rf_stopped TAG AT: the process that hang:AT (or hold:AT) stops (in-group pid N of
# STAGE:N, init for "shared") has got there, under TAG's subreaper: a thread
# of the restorer waits in nanosleep for 3600 s (reached(), restorer.c), or
# init in pause() (init_reached(), nsinit.c); or TAG has ended
rf_stopped() {
	local pid=1 p t sc
	[ "$2" = shared ] || pid=${2#*:}
	bg_alive "$1" || return 0
	for p in $(tree_pids "$(cat "$TD/$1.pid")"); do
		[ "$(sed -n 's/^NSpid:.*[[:space:]]//p' "/proc/$p/status" 2>/dev/null)" = "$pid" ] || continue
		for t in /proc/"$p"/task/*; do
			read -r -a sc <"$t/syscall" 2>/dev/null || continue
			if [ "$2" = shared ]; then
				[ "${sc[0]}" = 34 ] && return 0
			elif [ "${sc[0]}" = 35 ] && [ "$(dd if="$t/mem" iflag=skip_bytes skip=$((sc[1])) bs=8 count=1 2>/dev/null |
				od -An -tu8 | tr -d ' ')" = 3600 ]; then
				return 0
			fi
		done
	done
	return 1
}

# rf_kill TAG NAME STAGE:PID SIG: stop the restorer there, kill `cohort
# restart` with SIG.  The stop is COHORT_FAULT=hold: as hang, but the
# coordinator does not end the restart after 5 s without progress: on a
# busy machine the test saw the stop later than that ("no progress for
# 5 s", the restart over before the signal).
rf_kill() {
	local tag=$1 name=$2 at=$3 sig=$4 sub coord
	rf_start "$tag" "$name" "hold:$at"
	wait_for "$tag: the restore stopped at $at (COHORT_FAULT=hold:$at)" rf_stopped "$tag" "$at"
	sub=$(pgrep -P "$(cat "$TD/$tag.pid")")
	coord=$(pgrep -P "$sub" | head -n 1)
	[ -n "$coord" ] || { bg_wait "$tag"; fail "$tag: cohort restart (hold:$at) ended by itself: $(first_line "$TD/$tag.err")"; }
	kill -"$sig" "$coord"
	rf_wait "$tag"
	note_file "$tag (hold:$at, SIG$sig)" "$TD/$tag.err" 2
	case $sig in
	KILL) [ "$RC" = 137 ] || fail "$tag: status $RC after SIGKILL" ;;
	*)
		local n
		n=$(kill -l "$sig")
		[ "$RC" = $((128 + n)) ] || fail "$tag: status $RC after SIG$sig, expected $((128 + n)): $(first_line "$TD/$tag.err")"
		[ "$(wc -l <"$TD/$tag.err")" = 1 ] && grep -q "interrupted" "$TD/$tag.err" ||
			fail "$tag: SIG$sig: expected one line saying the restart was interrupted: $(first_line "$TD/$tag.err")"
		;;
	esac
	rf_clean "$tag"
}

t_restart_fail() {
	need_prog subreaper
	prog_cmd procs_pipes
	straight_start 0 "${PCMD[@]}"
	local z=$GNAME-z
	# both held at their end (common.h's end gate, every process still
	# there) until both checkpoints are taken: on a busy machine the second
	# group ran its steps out while the first was checkpointed
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	COHORT_TEST_END_GATE=1 bg_start runz "$COHORT" run --name "$z" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_ready "$z" runz
	wait_lines 4 run0
	wait_lines 4 runz
	ckpt_or_fail "checkpoint --kill" "$GNAME" 1 --kill
	ckpt_or_fail "checkpoint --kill --compress" "$z" 1 --kill --compress
	bg_wait run0
	bg_wait runz
	: >"$TT/end"
	ls "$(gen_dir "$z" 1)"/proc-*.img.zst >/dev/null 2>&1 || fail "checkpoint --compress stored no proc-*.img.zst"

	# a failure at each stage, of one process (3 has a thread and a child, 5 is that child, 2 their parent)
	local f k=0
	for f in start:2 children:3 files:5 cgroups:3 map:4 memory:3 attrs:2 pidfds:5 locks:4 threads:3 thread:3 jump:5 \
		shared; do
		k=$((k + 1))
		if [ "$f" = shared ]; then
			rf_fault "f$k" "$GNAME" "fail:$f" init "${RF_TEXT[$f]}"
		else
			rf_fault "f$k" "$GNAME" "fail:$f" "pid ${f#*:}" "${RF_TEXT[${f%:*}]}"
		fi
	done
	# of every process at once: still one line
	rf_fault fall "$GNAME" fail:memory "pid [0-9]+" "${RF_TEXT[memory]}"
	rf_fault zf "$z" fail:files:3 "pid 3" "${RF_TEXT[files]}"
	# stopped for ever: in a child while its parent waits, in a thread while the main one waits, in init
	# (the coordinator waits 5 s for progress: two groups, two at once)
	rf_start h1 "$GNAME" hang:memory:5
	rf_start h3 "$z" hang:shared
	rf_failed h1 hang:memory:5 "pid 5" "${RF_TEXT[memory]}" "no progress for 5 s$"
	rf_failed h3 hang:shared init "${RF_TEXT[shared]}" "no progress for 5 s$"
	rf_fault h2 "$GNAME" hang:thread:3 "pid 3" "${RF_TEXT[threads]}|${RF_TEXT[thread]}"

	# killed while a restorer is stopped (compressed: the others wait in the open of their FIFO):
	# SIGKILL at every stage, SIGTERM and SIGINT (caught: the restart stops itself) at two each
	local at
	for at in shared memory:3 jump:2; do rf_kill "kKILL-${at%:*}" "$GNAME" "$at" KILL; done
	for at in files:3 thread:3; do rf_kill "kzKILL-${at%:*}" "$z" "$at" KILL; done
	rf_kill kTERM-memory "$GNAME" memory:3 TERM
	rf_kill kzTERM-files "$z" files:3 TERM
	rf_kill kINT-jump "$GNAME" jump:2 INT
	rf_kill kzINT-thread "$z" thread:3 INT

	# the generations are intact
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_start runz1 "$COHORT" restart "$z" --images "$IMG"
	bg_wait run1
	local r1=$RC
	bg_wait runz1
	final_check 0 "$r1" run1 run0 run1
	final_check 0 "$RC" runz1 runz runz1
}
