# tests/cases/proc_files.sh - sourced by tests/run.sh.
#
# Files of a process's /proc directory (maps, smaps, status, ...) are text
# the kernel makes as they are read, and a checkpoint changes them (the
# agent's memory and thread are in them before, the restorer's are never
# in them after): a descriptor read part-way at the pause would go on in
# other text after a restart (a line cut, a region never seen: dontfork
# and mem_many failed so, once in a few runs).
#   proc_read_midway  tests/progs/procread.c holds /proc/self/smaps read
#                     700 bytes in: a checkpoint tries nine times in about
#                     a second and is refused in one line naming the
#                     descriptor, the file and the byte, while the program
#                     runs on; then, reading /proc/self/maps in small
#                     pieces at every step (part-way much of the time), it
#                     goes through a live checkpoint, --kill, a restart, a
#                     live one of the restarted group, --kill and a
#                     restart to its end: its checks of every line pass
#                     and its output is the straight run's.  It waits at
#                     its end (common.h's end gate) until checkpoint 4 is
#                     taken: on a busy machine, with the tries of each
#                     checkpoint, the restarted program ran its steps out
#                     first.

#   proc_thread_file  tests/progs/proc_thread_file.c: a thread holds its
#                     own /proc/thread-self/status open; that thread comes
#                     back after the descriptors, so the restart could not
#                     open it again (it failed so): a checkpoint waits for
#                     its close and is refused in one line naming it, and
#                     the program runs on to the straight run's end.

pr_tries() { note "$1: $(json_fields "$TD/ck$2.json" tries) tries"; }

t_proc_read_midway() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found (needed to read --json output)"
	local k AT_END_FILE=$TT/at-end
	prog_cmd procread
	PCMD+=(60)
	: >"$TT/go.1"
	straight_start 0 "${PCMD[@]}"
	rm -f "$TT/go.1"
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_line "$TD/run0.out" "holding smaps at byte 700"
	ckpt_refused run0 "smaps read part-way" \
		"pid [0-9]+: fd [0-9]+ \(/proc/[0-9]+/smaps\) was being read, up to byte 700: the rest would be other text after a restart" --kill
	: >"$TT/go.1"
	wait_line "$TD/run0.out" "step 5 ok"
	ckpt_or_fail "checkpoint 1 (live)" "$GNAME" 1
	pr_tries "checkpoint 1" 1
	wait_line "$TD/run0.out" "step 12 ok"
	ckpt_or_fail "checkpoint 2 (--kill)" "$GNAME" 2 --kill
	pr_tries "checkpoint 2" 2
	bg_wait run0
	# (steps counted from where checkpoint 2 caught the program: on a busy
	# machine, its tries may have taken it well past step 12)
	k=$(out_lines run0)
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_lines $((k + 8)) run0 run1
	ckpt_or_fail "checkpoint 3 (live, restarted group)" "$GNAME" 3
	pr_tries "checkpoint 3" 3
	wait_lines $((k + 14)) run0 run1
	ckpt_or_fail "checkpoint 4 (--kill)" "$GNAME" 4 --kill
	pr_tries "checkpoint 4" 4
	bg_wait run1
	: >"$TT/end"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}

t_proc_thread_file() {
	refused proc_thread_file thread \
		"pid [0-9]+: fd [0-9]+ \(/proc/[0-9]+/task/[0-9]+/status\) is a file of another of its threads, which comes back only after the descriptors"
}
