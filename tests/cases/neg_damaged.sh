# tests/cases/neg_damaged.sh - sourced by tests/run.sh: a damaged image is
# found by verify and refused by restart (damaged_flow also serves
# zstd_damaged in zstd.sh).

# negative: a damaged image must be refused; the undamaged one must work
t_neg_damaged_image() { damaged_flow img; }

# damaged_flow img|zst [RUN ARGS...]: one checkpoint --kill, then a byte in
# the middle of the largest process image file (proc-*.img, or with zst its
# compressed proc-*.img.zst) flipped: verify must find it and restart refuse
# it with one line naming the file; once repaired, both must work again
damaged_flow() {
	local kind=$1
	shift
	prog_cmd exit_status
	straight_start 7 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" "$@" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 3 run0
	ckpt_or_fail "checkpoint --kill" "$GNAME" 1 --kill
	bg_wait run0
	local img size off orig flip suffix=
	[ "$kind" = zst ] && suffix=.zst
	img=$(ls -S "$(gen_dir "$GNAME" 1)"/proc-*.img* 2>/dev/null | head -n 1)
	[ -n "$img" ] || fail "no proc-*.img* in $(gen_dir "$GNAME" 1)"
	case $img in
	*.img$suffix) ;;
	*) fail "the largest image file is $(basename "$img"), expected a proc-*.img$suffix" ;;
	esac
	size=$(stat -c %s "$img")
	off=$((size / 2))
	orig=$(od -An -tu1 -j "$off" -N 1 "$img" | tr -d ' \n')
	flip=$((orig ^ 255))
	printf '%b' "\\0$(printf '%03o' "$flip")" | dd of="$img" bs=1 seek="$off" count=1 conv=notrunc status=none
	[ "$(od -An -tu1 -j "$off" -N 1 "$img" | tr -d ' \n')" = "$flip" ] || fail "could not damage $img"
	# cohort verify finds it without restoring anything, naming the file
	"$COHORT" verify "$(gen_dir "$GNAME" 1)" >"$TD/vf.out" 2>"$TD/vf.err" && fail "verify of a damaged generation succeeded"
	grep -qF "$(basename "$img")" "$TD/vf.err" || fail "verify does not name $(basename "$img"): $(first_line "$TD/vf.err")"
	bg_start rs "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait rs
	note_file "restart stderr" "$TD/rs.err" 4
	[ "$RC" != 124 ] || fail "restart of a damaged image timed out"
	[ "$RC" != 0 ] || fail "restart of a damaged image succeeded"
	[ ! -s "$TD/rs.out" ] || fail "restart of a damaged image ran the program"
	grep -qF "$(basename "$img")" "$TD/rs.err" || fail "error does not name $(basename "$img"): $(first_line "$TD/rs.err")"
	[ "$(wc -l <"$TD/rs.err")" = 1 ] || fail "expected exactly one line on stderr, got $(wc -l <"$TD/rs.err")"
	# nothing of the refused restart stays behind (with zst: FIFOs and their feeders, some never opened)
	[ -z "$(our_comm_pids cohort-zstd)" ] || fail "cohort-zstd processes still run after the refused restart"
	[ ! -e "$COHORT_RUN_DIR/$GNAME" ] || fail "the refused restart left $COHORT_RUN_DIR/$GNAME: $(ls -A "$COHORT_RUN_DIR/$GNAME")"
	# repair it: the generation must be usable again
	printf '%b' "\\0$(printf '%03o' "$orig")" | dd of="$img" bs=1 seek="$off" count=1 conv=notrunc status=none
	"$COHORT" verify "$(gen_dir "$GNAME" 1)" >"$TD/vf.out" 2>"$TD/vf.err" || fail "verify of the repaired generation failed: $(first_line "$TD/vf.err")"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 7 "$RC" run1 run0 run1
}
