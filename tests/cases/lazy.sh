# tests/cases/lazy.sh - sourced by tests/run.sh: `cohort restart --lazy`,
# the program running before its memory is all in place (src/restore/lazy.c,
# src/cli/filler.c, src/cli/coord/lazy.c).

# 256 MiB checked page by page at every step, natively and under cohort side
# by side (and with the ASan build): more than the default time on a busy
# machine, for the test and for each of its commands (TMO, local to each)
TEST_TIMEOUTS[lazy_mem]=120
TEST_TIMEOUTS[lazy_thp_always]=120
TEST_TIMEOUTS[lazy_group]=120
TEST_TIMEOUTS[lazy_ckpt_filling]=120
TEST_TIMEOUTS[lazy_chain]=120
TEST_TIMEOUTS[lazy_chain_group]=120

# lazy_fillers TAG: the page fillers of the restart started as TAG
lazy_fillers() {
	local p
	for p in $(tree_pids "$(cat "$TD/$1.pid")"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = cohort-filler ] && echo "$p"
	done
	return 0
}

# lazy_flow EXP_RC AT1 AT2 CMD...: the standard flow (flow_standard) with
# both restarts --lazy: run, checkpoint --kill, restart --lazy,
# checkpoint --kill, restart --lazy; the output must be the straight run's.
# LAZY_ENV: environment for the restarts (COHORT_LAZY_SLOW=MS).
lazy_flow() {
	local exp_rc=$1 at1=$2 at2=$3 k0 AT_END_FILE=$COHORT_TEST_TMP/at-end
	shift 3
	straight_start "$exp_rc" "$@"
	# held at its end until checkpoint 2 is taken (common.h's end gate), as in flow_standard
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "$@"
	wait_ready "$GNAME" run0
	flow_at "$at1" run0
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	k0=$(out_lines run0)
	bg_start run1 env ${LAZY_ENV:-} "$COHORT" restart "$GNAME" --images "$IMG" --lazy
	wait_ready "$GNAME" run1
	flow_at "$at2" run0 run1 "$k0"
	bg_alive run1 || { bg_wait run1; note_file "restart 1 stderr" "$TD/run1.err"; fail "restarted program ended (status $RC) before the second checkpoint: $(first_line "$TD/run1.err")"; }
	ckpt_or_fail "checkpoint 2 (--kill, after restart --lazy)" "$GNAME" 2 --kill
	bg_wait run1
	: >"$COHORT_TEST_TMP/end"
	bg_start run2 env ${LAZY_ENV:-} "$COHORT" restart "$GNAME" --images "$IMG" --lazy
	bg_wait run2
	final_check "$exp_rc" "$RC" run2 run0 run1 run2
}

# 256 MiB in five regions; right after each restart the program drops
# ranges (zeros, never the image's pages), writes pages again, moves a
# region, unmaps half of one, forks a child that checks its own copy, and
# checks every page (tests/progs/lazy_mem.c).  The fill is slowed (5 ms a
# MiB) so that all of that meets pages still to come.
t_lazy_mem() {
	local TMO=55
	prog_cmd lazy_mem
	LAZY_ENV=COHORT_LAZY_SLOW=5 lazy_flow 0 4 4 "${PCMD[@]}" 256 1 9
}

# mem_lock (exact_mem.sh) restarted --lazy: locked regions are not left
# to the filler (mlock would fault them in), their pages are in place and
# locked when the program runs; under mlockall too
t_lazy_lock() { prog_cmd mem_lock; lazy_flow 0 4 4 "${PCMD[@]}"; }
t_lazy_lock_all() { prog_cmd mem_lock; lazy_flow 0 4 4 "${PCMD[@]}" all; }

# mappings the program split (mprotect, madvise) restarted --lazy: made
# alike again they join into one, which mremap grows (tests/progs/mem_rejoin.c;
# the filler's pages once gave each part an anon_vma of its own: EFAULT)
t_lazy_rejoin() { prog_cmd mem_rejoin; lazy_flow 0 4 4 "${PCMD[@]}"; }

# lazy_mem with transparent huge pages for every mapping (the machine's
# setting made "always" for the test, and put back after it by run.sh
# from TD/undo; a test alone: it changes what every process gets).  The
# restore writes and drops one page of each anonymous region before the
# filler gets it (mem.c, one_anon_vma): a 2 MiB page brought by that write
# would keep its other pages as zeros where the filler must put the
# image's, and the filler takes a page already there as the program's.
# It did, before the restore turned huge pages off for that write
# (lazy_mem: "region 0 page 64 ... holds zeros").
t_lazy_thp_always() {
	local f=/sys/kernel/mm/transparent_hugepage/enabled old
	[ -w "$f" ] || skip "$f cannot be changed here"
	old=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$f")
	[ -n "$old" ] || skip "$f: no setting in brackets"
	printf 'echo %s >%s\n' "$old" "$f" >"$TD/undo"
	echo always >"$f" 2>/dev/null || skip "$f cannot be set to always here"
	t_lazy_mem
}

# regions side by side whose pages follow one another in the image (one
# mapping split by mprotect): the filler's runs and fault clusters that
# cross from one into the next must be copied in parts (the kernel copies
# within one mapping), never dropped as gone (the program's reads fault
# first, the fill slowed; the background fill meets the rest)
t_lazy_split() {
	local TMO=55
	prog_cmd lazy_split
	LAZY_ENV=COHORT_LAZY_SLOW=5 lazy_flow 0 3 3 "${PCMD[@]}" 32 30
}

# lazy_held TAG: (COHORT_TRACE=1) every filler of the restart TAG began its
# background fill only once the coordinator had let the group run, not
# beside the restore's last steps (filler.c, await_release)
lazy_held() {
	awk '/cohort-trace: .* lazy: the group runs/ { if (!go) go = $2 }
	     /cohort-trace: .* filler of pid [0-9]*: the group runs/ { n++; if (!go || $2 < go) bad++ }
	     END { exit !(n > 0 && !bad) }' "$TD/$1.err" ||
		{ note "$(grep -E 'filler of|lazy:|is back' "$TD/$1.err")"; fail "$1: a page filler filled in the background before the group ran"; }
}

# a group of three processes, each with its own filler, which begins its
# background fill once the group runs
t_lazy_group() {
	local TMO=55
	prog_cmd lazy_mem
	LAZY_ENV=COHORT_TRACE=1 lazy_flow 0 4 4 "${PCMD[@]}" 192 3 10
	lazy_held run1
	lazy_held run2
}

# the fill made slow (10 ms a MiB: ~3 s for the 256 MiB): the program runs
# on its faults meanwhile; a checkpoint asked for while the fill runs
# waits until it is done, and what it saves restarts right
t_lazy_ckpt_filling() {
	local TMO=55 k0 fillers t0 AT_END_FILE=$COHORT_TEST_TMP/at-end
	prog_cmd lazy_mem
	# the restarted program must still run after the fill that checkpoint
	# 2 waits for (256 MiB at 10 ms per MiB), so that checkpoint 3 finds
	# it: it is held at its end until then (common.h's end gate), so 8
	# steps do, the checkpoints' 3 + 2 and more (each checks 256 MiB twice,
	# one of them in a child it forks: 40 steps took 54 s on a PVM guest).
	straight_start 0 "${PCMD[@]}" 256 1 8
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}" 256 1 8
	wait_ready "$GNAME" run0
	flow_at 3 run0
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	k0=$(out_lines run0)
	bg_start run1 env COHORT_LAZY_SLOW=10 COHORT_LAZY_HOLD="$TD/fill" "$COHORT" restart "$GNAME" --images "$IMG" --lazy
	wait_ready "$GNAME" run1
	group_status
	grep -q '"filling":[1-9]' "$TD/status.json" || fail "status --json does not say the memory is filling: $(cat "$TD/status.json")"
	fillers=$(lazy_fillers run1 | wc -l)
	[ "$fillers" -ge 1 ] || { note "$(tree_pids "$(cat "$TD/run1.pid")" | while read -r p; do echo "$p $(cat /proc/$p/comm)"; done)"; fail "no page filler runs right after restart --lazy"; }
	: >"$TD/fill" # the background fills begin only now (they served faults until then)
	t0=$SECONDS
	ckpt_or_fail "checkpoint 2 (while the fill runs)" "$GNAME" 2
	fillers=$(lazy_fillers run1 | wc -l)
	[ "$fillers" = 0 ] || fail "checkpoint 2 committed while a page filler still ran"
	flow_at 2 run0 run1 "$k0"
	ckpt_or_fail "checkpoint 3 (--kill)" "$GNAME" 3 --kill
	bg_wait run1
	: >"$COHORT_TEST_TMP/end"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG" --lazy
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
	note "checkpoint 2 took $((SECONDS - t0)) s (it waited for the fill)"
}

# the filler killed while pages are still to come: the group ends with
# one line naming the process, status 70; nothing runs on with zeros
t_lazy_filler_killed() {
	prog_cmd lazy_mem
	local filler
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}" 256 1 40
	wait_ready "$GNAME" run0
	flow_at 3 run0
	ckpt_or_fail "checkpoint 1 (--kill)" "$GNAME" 1 --kill
	bg_wait run0
	bg_start run1 env COHORT_LAZY_SLOW=50 COHORT_LAZY_HOLD="$TD/fill" "$COHORT" restart "$GNAME" --images "$IMG" --lazy
	wait_ready "$GNAME" run1
	filler=$(lazy_fillers run1 | head -n 1)
	[ -n "$filler" ] || fail "no page filler runs right after restart --lazy"
	kill -9 "$filler" # its pages still to come: its background fill was held
	: >"$TD/fill"
	bg_wait run1
	[ "$RC" = 70 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart exit status $RC after its filler was killed, expected 70"; }
	grep -q '^cohort: lazy restore of pid [0-9]* failed: its page filler was killed by signal 9' "$TD/run1.err" ||
		{ note_file "restart stderr" "$TD/run1.err"; fail "no line naming the process whose filler was killed"; }
	! grep -q 'RESULT' "$TD/run1.out" || fail "the program ran to its end after its filler was killed"
}

# a byte of page data damaged in a lazy region: the restorer passes over it,
# the filler checks the record (8 MiB, a snapshot's) before a page of it
# goes in and ends the group with one line naming the file and the
# record, status 70
t_lazy_damaged() { lazy_damaged_flow; }
# the same with the image written by the stopped group (--stop: a record
# per region, 64 MiB here, too long for a fault to wait for its check):
# its pages go out first, the record is checked once the group runs, or at
# its end should the program end first (it may have read the damaged
# page): status 70 and the line all the same, never the program's status
t_lazy_damaged_stop() { lazy_damaged_flow --stop; }
lazy_damaged_flow() {
	local TMO=55 img size
	prog_cmd lazy_mem
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}" 128 1 30
	wait_ready "$GNAME" run0
	flow_at 3 run0
	ckpt_or_fail "checkpoint 1 (--kill $*)" "$GNAME" 1 --kill "$@"
	bg_wait run0
	# the first process's (pid 2): a child the checkpoint caught checking
	# its copy may end before its filler reads the damaged record
	img=$(gen_dir "$GNAME" 1)/proc-2.img
	size=$(stat -c %s "$img")
	"$PYTHON" - "$img" $((size / 2 / 4096 * 4096 + 100)) <<'PY' || fail "cannot damage $img"
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))
PY
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG" --lazy
	bg_wait run1
	[ "$RC" = 70 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart --lazy of a damaged image: status $RC, expected 70"; }
	grep -q "^cohort: lazy restore of pid [0-9]* failed: .*$(basename "$img"): byte [0-9]*: checksum mismatch in page data record" "$TD/run1.err" ||
		{ note_file "restart stderr" "$TD/run1.err"; fail "no line naming the damaged record"; }
}

# lazy_chain_make MIB PROCS STEPS: run lazy_mem, checkpoint it full, then
# incrementally twice (pages dropped, written again, a region moved and
# half of one unmapped between them: lazy_mem's steps), the last with
# --kill; every merged full-N deleted once the background merges are done
lazy_chain_make() {
	local mib=$1 procs=$2 steps=$3 held=${4:-} AT_END_FILE=$COHORT_TEST_TMP/at-end
	prog_cmd lazy_mem
	straight_start 0 "${PCMD[@]}" "$mib" "$procs" "$steps" $held
	# held at its end (common.h's end gate) until the caller has looked at
	# the restarted group: a slow machine, or the ASan build, took the
	# three checkpoints after its last step
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}" "$mib" "$procs" "$steps" $held
	wait_ready "$GNAME" run0
	flow_at 3 run0
	ckpt_or_fail "checkpoint 1 (full)" "$GNAME" 1 --incremental
	flow_at 6 run0
	ckpt_or_fail "checkpoint 2 (incremental)" "$GNAME" 2 --incremental
	flow_at 9 run0
	ckpt_or_fail "checkpoint 3 (incremental, --kill)" "$GNAME" 3 --incremental --kill
	bg_wait run0
	merges_done
	rm -rf "$IMG/$GNAME"/full-*
}

# lazy_chain_flow MIB PROCS STEPS: lazy_chain_make, then restart --lazy of
# the last incremental, the fill slowed: it must run straight from the
# chain (no full-3 while it runs; its fillers read gen-3 and the full base
# gen-1), every page right to the end.
lazy_chain_flow() {
	local k0 f fds AT_END_FILE=$COHORT_TEST_TMP/at-end
	lazy_chain_make "$@"
	k0=$(out_lines run0)
	bg_start run1 env COHORT_LAZY_SLOW=25 COHORT_LAZY_HOLD="$TD/fill" COHORT_LAZY_CHAIN=1 "$COHORT" restart "$GNAME" --images "$IMG" --lazy
	wait_ready "$GNAME" run1
	[ -e "$(full_dir 3)" ] && fail "restart --lazy of incremental generation 3 merged $(full_dir 3) before the program ran"
	fds=
	for f in $(lazy_fillers run1); do
		fds+=$(ls -l "/proc/$f/fd" 2>/dev/null)
	done
	[ -n "$fds" ] || fail "no page filler runs right after restart --lazy"
	grep -q "gen-000003/proc-" <<<"$fds" && grep -q "gen-000001/proc-" <<<"$fds" ||
		{ note "$fds"; note_file "restart stderr" "$TD/run1.err"; fail "the fillers do not read gen-3 and the full base gen-1"; }
	: >"$TD/fill" # the background fills begin only now (they served faults until then)
	: >"$COHORT_TEST_TMP/end"
	flow_at 2 run0 run1 "$k0"
	[ -e "$(full_dir 3)" ] && fail "$(full_dir 3) was built while the restarted program ran"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# restart --lazy of an incremental chain, without merging it first
t_lazy_chain() {
	local TMO=55
	lazy_chain_flow 128 1 13
}

# the same, a group of three processes, each with its own filler and chain
t_lazy_chain_group() {
	local TMO=55
	lazy_chain_flow 96 3 13
}

# the chain of lazy_chain_make restarted with no region lazy at all
# (COHORT_LAZY_NONE, tests only): each process's filler comes without
# ranges and writes every page its image leaves to the chain before the
# program runs (it may end as soon as the group runs: looked for in the
# trace); the chain is still not merged (before, a process without a lazy
# region merged it), and every page is right to the end
t_lazy_chain_eager() {
	local TMO=55 k0 p AT_END_FILE=$COHORT_TEST_TMP/at-end
	lazy_chain_make 64 2 13
	k0=$(out_lines run0)
	bg_start run1 env COHORT_LAZY_NONE=1 COHORT_LAZY_CHAIN=1 COHORT_TRACE=1 "$COHORT" restart "$GNAME" --images "$IMG" --lazy
	wait_ready "$GNAME" run1
	[ -e "$(full_dir 3)" ] && fail "restart --lazy of incremental generation 3 merged $(full_dir 3) before the program ran"
	: >"$COHORT_TEST_TMP/end"
	flow_at 2 run0 run1 "$k0"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
	! grep -q "restarting from the merged full image" "$TD/run1.err" || fail "$(grep merged "$TD/run1.err")"
	# every process handed over (those of gen-3, which a slow machine may have taken with one process only)
	local pids
	pids=$(sed -n 's/.* lazy: pid \([0-9]*\) hands over its regions$/\1/p' "$TD/run1.err")
	[ -n "$pids" ] || fail "no process handed its pages over to a filler: $(grep -c filler "$TD/run1.err") filler lines"
	for p in $pids; do
		grep -q "filler of pid $p: eager pages written" "$TD/run1.err" ||
			fail "no filler wrote the pages pid $p left to the chain: $(grep -c filler "$TD/run1.err") filler lines"
	done
}

# the same, each process with a holder that shares its pages (lazy_mem
# held), the second forking a new one every 5 ms: processes and holders
# whose images leave pages to gen-1 in regions shared copy-on-write, which
# come back eagerly and are filled before the program runs; nothing is
# merged, and every copy is right to the end.  (The main thread's TLS,
# written in each pause, stays lazy: lazy_chain_eager is the test of a
# process with no lazy region at all.)
t_lazy_chain_held() {
	local TMO=55
	lazy_chain_flow 64 2 13 held
	! grep -q "restarting from the merged full image" "$TD/run1.err" || fail "$(grep merged "$TD/run1.err")"
}

# a byte of page data damaged in the full base of the chain (gen-1), in a
# lazy region that no incremental rewrote: the filler checks each record
# (8 MiB at most, a snapshot's) before a page of it goes in, and ends the
# group, naming gen-1's file; the program never sees the damaged page
# (lazy_mem checks every page, each step)
t_lazy_chain_damaged() {
	local TMO=55 img size
	lazy_chain_make 128 1 13
	# the largest image in gen-1 of a process that gen-3 has too (a child
	# the first checkpoint caught checking its copy has exited since)
	local f
	img=
	for f in $(ls -S "$(gen_dir "$GNAME" 1)"/proc-*.img); do
		[ -e "$(gen_dir "$GNAME" 3)/$(basename "$f")" ] && { img=$f; break; }
	done
	[ -n "$img" ] || fail "gen-1 has no image of a process gen-3 has"
	size=$(stat -c %s "$img")
	# a byte in each eighth of it: the later generations rewrote, dropped
	# or unmapped some of gen-1's pages (never read then), not all
	"$PYTHON" - "$img" "$size" <<'PY' || fail "cannot damage $img"
import sys
size = int(sys.argv[2])
with open(sys.argv[1], "r+b") as f:
    for i in range(1, 8):
        at = size * i // 8 // 4096 * 4096 + 100
        f.seek(at); b = f.read(1); f.seek(at); f.write(bytes([b[0] ^ 0xff]))
PY
	# (the program stays at its end gate: the fill reads every record it still needs, the damaged among them)
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG" --lazy
	bg_wait run1
	[ -e "$(full_dir 3)" ] && fail "restart --lazy merged $(full_dir 3) instead of reading the chain"
	[ "$RC" = 70 ] || { note_file "restart stderr" "$TD/run1.err"; fail "restart --lazy of a chain with a damaged base: status $RC, expected 70"; }
	grep -q "^cohort: lazy restore of pid [0-9]* failed: .*gen-000001/$(basename "$img"): byte [0-9]*: checksum mismatch in page data record" "$TD/run1.err" ||
		{ note_file "restart stderr" "$TD/run1.err"; fail "no line naming the damaged record of gen-1"; }
	! grep -q "^lazy_mem: .*not what it must be" "$TD/run1.err" ||
		{ note_file "restart stderr" "$TD/run1.err"; fail "the program saw the damaged page before the restart failed"; }
}
