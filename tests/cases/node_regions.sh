# tests/cases/node_regions.sh - sourced by tests/run.sh.
#
# Memory laid out as V8 (Node.js) lays it out: regions the program marked
# MADV_DONTFORK, with data, some of them PROT_NONE, and large PROT_NONE
# reservations of which a small part is in use; besides, one region
# MADV_WIPEONFORK and one MADV_DONTDUMP (tests/progs/dontfork.c, which
# checks every page, its protections and its VmFlags at every step).  A
# snapshot must hold these regions as they were at the pause, the restart
# must give them back with their flags, and the reservations cost nothing.
#   dontfork       the standard flow (checkpoint --kill, restart, twice):
#                  a row of tests/cases/std.list;
#   dontfork_live  live checkpoints of every kind: pre-copied full,
#                  incremental, --stop, --no-precopy; then --kill, restart,
#                  a live one of the restarted group, --kill, restart to the
#                  end; then restarts of the pre-copied generation, the
#                  --stop one and an incremental one.  No image may exceed
#                  NR_MAX_MIB: the program uses 58 MiB of its 1.3 GiB of
#                  address space;
#   node_regions   Node.js itself (skipped without /usr/bin/node):
#                  tests/progs/node_timers.js (timers, a Map, fs.promises
#                  writing progress lines) checkpointed live (pre-copied
#                  full, incremental), --incremental --kill (restarted from
#                  the chain back to the pre-copied image), restarted,
#                  checkpointed live again, --kill, restarted to the end:
#                  the output must be the straight run's, and no image may
#                  exceed NODE_MAX_MIB (it was 1 GB: every reserved page
#                  saved as zeros).  (Its log file is closed between steps,
#                  so not part of an image: an older generation restarted
#                  once the program has gone on finds the file as the
#                  program left it, and fails.)

TEST_TIMEOUTS[dontfork_live]=120
TEST_TIMEOUTS[node_regions]=120

NR_MAX_MIB=128
NODE_MAX_MIB=256
NODE=/usr/bin/node

# nr_small TAG WHAT MAX_MIB: the checkpoint whose --json is TD/TAG.json wrote at most MAX_MIB
nr_small() {
	local b
	b=$(json_fields "$TD/$1.json" bytes) || fail "$2: cannot read bytes from its --json output"
	note "$2: $b bytes, pause $(json_fields "$TD/$1.json" pause_ms) ms"
	[ "$b" -le $(($3 << 20)) ] || fail "$2: $b bytes, more than $3 MiB (reserved address space saved?)"
}

# nr_ckpt TAG WHAT KIND MAX_MIB [ARGS...]: ickpt TAG ARGS, a generation of kind KIND of at most MAX_MIB
nr_ckpt() {
	local tag=$1 what=$2 kind=$3 max=$4
	shift 4
	ickpt "$tag" "$@"
	[ "$IKIND" = "$kind" ] || fail "$what: a $IKIND generation, expected $kind"
	nr_small "$tag" "$what" "$max"
}

t_dontfork_live() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found (needed to read --json output)"
	prog_cmd dontfork
	PCMD+=(70)
	straight_start 0 "${PCMD[@]}"
	# held at its end (common.h's end gate) until checkpoint 8: on a busy
	# machine the restarted group ran its 70 steps out before it was taken
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 5 run0
	nr_ckpt c1 "checkpoint 1 (pre-copied full)" full $NR_MAX_MIB
	local precopy_gen=$IGEN
	[ "$(json_fields "$TD/c1.json" precopied)" = 1 ] || note "checkpoint 1 was not pre-copied"
	nr_flags_recorded "$IGEN"
	nr_ckpt c2 "checkpoint 2 (--incremental)" incremental $NR_MAX_MIB --incremental
	nr_ckpt c3 "checkpoint 3 (--stop)" full $NR_MAX_MIB --stop
	local stop_gen=$IGEN
	nr_ckpt c4 "checkpoint 4 (--no-precopy)" full $NR_MAX_MIB --no-precopy
	wait_lines $(($(out_lines run0) + 3)) run0
	nr_ckpt c5 "checkpoint 5 (--incremental)" incremental $NR_MAX_MIB --incremental
	local incr_gen=$IGEN
	nr_ckpt c6 "checkpoint 6 (--incremental --kill)" incremental $NR_MAX_MIB --incremental --kill
	bg_wait run0
	merges_done

	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	wait_lines $(($(out_lines run0) + 5)) run0 run1
	nr_ckpt c7 "checkpoint 7 (of the restarted group)" full $NR_MAX_MIB
	nr_ckpt c8 "checkpoint 8 (--incremental --kill)" incremental $NR_MAX_MIB --incremental --kill
	: >"$TT/end" # every restart from here on ends when its steps do
	bg_wait run1
	merges_done
	: >"$TT/fast" # the restarts from here on run to the end: no pause between steps
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2

	# the pre-copied generation, the --stop one, and an incremental one rebuilt from its chain
	merges_done
	rm -rf "$IMG/$GNAME"/full-*
	nr_restarts "$precopy_gen" "$stop_gen" "$incr_gen"
}

# nr_flags_recorded GEN: in generation GEN, the image of dontfork (not that of
# a child it may have forked meanwhile) records A, B and the three parts of C
# MADV_DONTFORK, D's used part MADV_DONTDUMP and E MADV_WIPEONFORK
nr_flags_recorded() {
	local img
	for img in "$(gen_dir "$GNAME" "$1")"/proc-*.img; do
		"$COHORT" inspect "$img" >"$TD/insp.out" 2>&1 || fail "inspect $img failed: $(first_line "$TD/insp.out")"
		# adjacent regions alike counted once: the kernel may keep two
		# apart for what the image does not show (seen once: C's used
		# part and its latest growth, likely the dirty tracking's uffd-wp
		# registration, armed before the growth)
		awk '$2 == "region" { split($3, r, "-"); rest = $0; sub(/^.*region +[^ ]+ /, "", rest)
			if (r[1] == end && rest == prev) { end = r[2]; next }
			end = r[2]; prev = rest } { print }' "$TD/insp.out" >"$TD/insp.merged"
		[ "$(grep -c ' region .* anon (dontfork) ' "$TD/insp.merged")" = 5 ] &&
			[ "$(grep -c ' region .* rw-p anon (dontdump) ' "$TD/insp.merged")" = 1 ] &&
			[ "$(grep -c ' region .* rw-p anon (wipeonfork) ' "$TD/insp.merged")" = 1 ] && return 0
	done
	note_file "inspect (last image)" "$TD/insp.out" 60
	fail "generation $1: no image records the regions' madvise flags as the program set them"
}

# nr_restarts GEN...: each generation (taken before the first --kill) restarts
# and prints the rest of the straight run
nr_restarts() {
	local g
	for g in "$@"; do
		bg_start "rg$g" "$COHORT" restart "$GNAME" --images "$IMG" --generation "$g"
		bg_wait "rg$g"
		check_suffix "rg$g" run0 || fail "restart of generation $g: wrong output"
		[ "$RC" = 0 ] || { note_file "restart stderr" "$TD/rg$g.err"; fail "restart of generation $g: status $RC: $(first_line "$TD/rg$g.err")"; }
	done
}

t_node_regions() {
	[ -x "$NODE" ] || skip "$NODE not found"
	[ -x "$PYTHON" ] || skip "$PYTHON not found (needed to read --json output)"
	PCMD=("$NODE" "$PROGS/node_timers.js" 60)
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 10 run0
	nr_ckpt n1 "checkpoint 1 (live, pre-copied full)" full $NODE_MAX_MIB
	nr_ckpt n2 "checkpoint 2 (live, --incremental)" incremental $NODE_MAX_MIB --incremental
	nr_ckpt n3 "checkpoint 3 (--incremental --kill)" incremental $NODE_MAX_MIB --incremental --kill
	bg_wait run0
	merges_done

	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	wait_lines $(($(out_lines run0) + 10)) run0 run1
	nr_ckpt n4 "checkpoint 4 (live, of the restarted group)" full $NODE_MAX_MIB
	nr_ckpt n5 "checkpoint 5 (--kill)" full $NODE_MAX_MIB --kill
	bg_wait run1
	: >"$TT/fast" # the restart runs to the end: no pause between steps
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
}
