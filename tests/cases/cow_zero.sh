# tests/cases/cow_zero.sh - sourced by tests/run.sh.

# cow_zero: a process forked from its restored parent keeps the parent's
# pages where it shared them copy-on-write at the checkpoint (the image's
# copy-on-write map, src/res/pages.c); a page the image does not hold must
# not be among them.  tests/progs/cow_zero.c: the child drops pages at step
# 2 without reading them and reads them at step 3, which maps the zero
# page there, write-protected: unwritten since the checkpoint of step 2,
# which held nothing there, so the incremental image of step 3 leaves the
# page out (it reads zero), while no process maps the zero page alone.
# Incremental checkpoints after steps 1, 2 and 3 (--kill); the chain
# restarted merged, then (the merged image removed) lazily from the chain
# with every region eager and with the regions lazy, then each generation
# alone.  The child checks its pages at every step: listed as shared, a
# page kept the parent's data ("child, step 4: page 1000 byte 0 holds 0x33").
cow_zero_flow() {
	local INCR_STEPS=5 s gens=()
	incr_straight cow_zero
	bg_start run0 env "$@" "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	for s in 1 2 3; do
		incr_wait_step run0 $s
		if [ $s = 3 ]; then
			ickpt ck$s --incremental --kill
		else
			ickpt ck$s --incremental
		fi
		[ $s = 1 ] || [ "$IKIND" = incremental ] || fail "checkpoint --incremental at step $s has kind '$IKIND'"
		gens[$s]=$IGEN
		[ $s = 3 ] || : >"$TT/go.$s"
	done
	bg_wait run0
	incr_go_all
	merges_done
	incr_restart r3 3
	rm -rf "$IMG/$GNAME"/full-*
	COHORT_LAZY_CHAIN=1 COHORT_LAZY_NONE=1 incr_restart r3e 3 --lazy
	COHORT_LAZY_CHAIN=1 incr_restart r3l 3 --lazy
	for s in 1 2; do
		incr_restart "rg$s" $s --generation "${gens[$s]}"
	done
}
t_cow_zero() { cow_zero_flow; }

# cow_zero_guard: the same with images whose copy-on-write map lists the
# pages the image leaves out, as images written before that rule did
# (COHORT_TEST_COWMAP_ALL, tests only): the restorer drops the pages
# kept from the parent that no page stream read (src/res/pages.c,
# drop_unread), so these images too come back right
t_cow_zero_guard() { cow_zero_flow COHORT_TEST_COWMAP_ALL=1; }
