# tests/cases/flags_kept.sh - sourced by tests/run.sh.
#
# flags_kept: a checkpoint takes the regions' madvise flags from the pause
# before when no wrapper call changed them and every region is the same
# mapping (src/res/mem.c, known_flags; the write tracker tells: a region
# mapped anew is not registered with its userfaultfd).  tests/progs/flags_kept.c
# maps three flagged regions anew by raw system calls, at the same place,
# between two checkpoints (a read-write one, a PROT_NONE one, one replaced
# by MAP_FIXED), and munlocks a fourth; one keeps its flag throughout.
# Incremental checkpoints at every step, --kill at step 4, restart, two
# more (the second again from the flags of the first after the restart),
# --kill, restart to the end; then each generation of the first run
# restarted alone.  The program checks every region's VmFlags and pages at
# every step: a flag taken from the pause before for a region mapped anew
# fails the step after the restart.

t_flags_kept() {
	local INCR_STEPS=8
	incr_straight flags_kept
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local s gens=()
	for ((s = 1; s <= 7; s++)); do
		if [ $s = 5 ]; then # the generation of step 4, restarted from its chain
			bg_wait run0
			grep -q '^RESULT' "$TD/run0.out" && fail "the program finished although checkpoint 4 had --kill"
			: >"$TT/go.4"
			bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
			wait_ready "$GNAME" run1
		fi
		incr_wait_step "$([ $s -lt 5 ] && echo run0 || echo run1)" $s
		if [ $s = 4 ] || [ $s = 7 ]; then
			ickpt ck$s --incremental --kill
		else
			ickpt ck$s --incremental
		fi
		[ $s = 1 ] || [ $s = 5 ] || [ "$IKIND" = incremental ] ||
			fail "checkpoint --incremental at step $s has kind '$IKIND'"
		gens[$s]=$IGEN
		[ $s = 4 ] || [ $s = 7 ] || : >"$TT/go.$s"
	done
	bg_wait run1
	sed -n '/^STEP 4 pages /,$p' "$TD/exp.out" | tail -n +2 | head -n 3 >"$TD/exp1.out"
	cmp -s "$TD/run1.out" "$TD/exp1.out" || fail "the restarted run printed $(head -c 200 "$TD/run1.out"), expected steps 5 to 7"
	incr_go_all
	incr_restart run2 7
	for s in 1 2 3 6; do
		incr_restart "rg$s" $s --generation "${gens[$s]}"
	done
}

# flags_ahead: a first, pre-copied full checkpoint takes the flags read
# while the program ran, right after the pre-copy's arming
# (co_mem_flags_ahead, mem.c).  The coordinator is held after the
# pre-copy (COHORT_CRASH=precopied:FILE, store.c) while the program maps A
# anew by raw system calls (its step 2); then the checkpoint goes on.  A
# restart of that generation must give A no MADV_DONTFORK: the flags read
# ahead still had it, and A is no longer the mapping they were read of.
t_flags_ahead() {
	local INCR_STEPS=8
	incr_straight flags_kept
	COHORT_CRASH="precopied:$TT/release" bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	incr_wait_step run0 1
	bg_start ck1 "$COHORT" checkpoint "$GNAME" --images "$IMG" --json
	wait_for "the checkpoint held after its pre-copy" test -e "$TT/release.at"
	: >"$TT/go.1"
	incr_wait_step run0 2
	: >"$TT/release"
	bg_wait ck1
	[ "$RC" = 0 ] || { note_file "checkpoint stderr" "$TD/ck1.err"; fail "checkpoint failed (status $RC): $(first_line "$TD/ck1.err")"; }
	local gen precopied
	read -r gen precopied < <(json_fields "$TD/ck1.out" generation precopied)
	[ "$precopied" = 1 ] || fail "the checkpoint was not pre-copied (precopied '$precopied'): nothing tested"
	"$COHORT" kill "$GNAME" >/dev/null 2>&1
	bg_wait run0
	incr_go_all
	incr_restart r1 2 --generation "$gen"
}
