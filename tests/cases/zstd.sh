# tests/cases/zstd.sh - sourced by tests/run.sh: compressed images
# (--compress): stored as NAME.zst, read back through the same records and
# checksums.

# zstd_stored DIR: every image file of generation DIR (process images, page
# streams, shared.img) is stored compressed, none plain
zstd_stored() {
	local d=$1 f
	ls "$d"/proc-*.img.zst >/dev/null 2>&1 || fail "$(basename "$d") has no proc-*.img.zst: $(cd "$d" && echo *)"
	[ -f "$d/shared.img.zst" ] || fail "$(basename "$d") has no shared.img.zst: $(cd "$d" && echo *)"
	for f in "$d"/*.img; do
		[ -e "$f" ] && fail "$(basename "$d") holds an uncompressed $(basename "$f")"
	done
	return 0
}

# zstd_bytes DIR: bytes stored for the process images of generation DIR
zstd_bytes() { cat "$1"/proc-*.img* | wc -c; }

# two rounds of checkpoint --kill + restart, compressed: a plain checkpoint
# (gen 1, the size to beat), `checkpoint --compress --kill` (gen 2),
# `restart --compress` (so its checkpoints are compressed), `checkpoint
# --kill` (gen 3), restart to the end; the output must be the straight
# run's.  A group of processes with pipes and shared memory (shared.img),
# whose memory compresses well: gen 2 must take under half of gen 1's bytes
# on disk, and `--json` must report its bytes after compression.  The
# program waits at its end (common.h's end gate, its children still there)
# until checkpoint 3 is taken: on a busy machine its steps ran out first.
t_zstd_rounds() {
	local AT_END_FILE=$COHORT_TEST_TMP/at-end
	prog_cmd shm_counters
	straight_start 0 "${PCMD[@]}"
	COHORT_TEST_END_GATE=1 bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 3 run0
	ckpt_or_fail "checkpoint 1 (plain)" "$GNAME" 1
	wait_lines 5 run0
	ckpt_or_fail "checkpoint 2 (--compress --kill)" "$GNAME" 2 --compress --kill
	bg_wait run0
	local g1 g2 plain packed json raw k
	g1=$(gen_dir "$GNAME" 1)
	g2=$(gen_dir "$GNAME" 2)
	ls "$g1"/*.zst >/dev/null 2>&1 && fail "checkpoint without --compress stored compressed files: $(cd "$g1" && echo *)"
	zstd_stored "$g2"
	plain=$(zstd_bytes "$g1")
	packed=$(zstd_bytes "$g2")
	note "process images: $plain bytes plain (gen 1), $packed bytes compressed (gen 2)"
	[ $((packed * 2)) -lt "$plain" ] || fail "compressed images take $packed bytes, not under half of the plain $plain"
	read -r json raw < <(json_fields "$TD/ck2.json" bytes raw_bytes)
	[ "$json" = "$packed" ] || fail "checkpoint --json reports $json bytes, the compressed images take $packed"
	[ "$raw" -gt "$packed" ] || fail "checkpoint --json reports raw_bytes $raw, not more than the compressed $packed"

	k=$(out_lines run0)
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG" --compress
	wait_ready "$GNAME" run1
	wait_lines $((k + 2)) run0 run1
	bg_alive run1 || { bg_wait run1; note_file "restart 1 stderr" "$TD/run1.err"; fail "restarted program ended (status $RC) before checkpoint 3: $(first_line "$TD/run1.err")"; }
	# every restorer has read its image: the FIFOs and their feeders are gone
	[ -e "$COHORT_RUN_DIR/$GNAME/images" ] && fail "the restart's FIFO directory is still there: $(ls "$COHORT_RUN_DIR/$GNAME/images")"
	[ -z "$(our_comm_pids cohort-zstd)" ] || fail "cohort-zstd processes still run after the restart"
	ckpt_or_fail "checkpoint 3 (--kill, restarted with --compress)" "$GNAME" 3 --kill
	bg_wait run1
	: >"$TT/end"
	zstd_stored "$(gen_dir "$GNAME" 3)"
	bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	final_check 0 "$RC" run2 run0 run1 run2
	[ -z "$(ls -A "$COHORT_RUN_DIR/$GNAME" 2>/dev/null)" ] || fail "left in the run directory: $(ls -A "$COHORT_RUN_DIR/$GNAME")"
	[ -z "$(our_comm_pids cohort-zstd)" ] || fail "cohort-zstd processes still run after the restarts"
	incr_verify "of the compressed generations"
}

# the incremental chain of incr_chain with `run --compress`: a compressed
# full, compressed incrementals, merged fulls written compressed by the
# background merge and by the restart that rebuilds the chain; each restart
# must give what the straight run gives
t_zstd_chain() {
	local RUN_OPTS=(--compress) d
	t_incr_chain
	for d in "$IMG/$GNAME"/gen-* "$IMG/$GNAME"/full-*; do zstd_stored "$d"; done
	[ -d "$(full_dir 5)" ] || fail "$(full_dir 5) was not rebuilt by the restart"
}

# a damaged byte in a .zst file: verify finds it, restart refuses it with
# one line naming the file
t_zstd_damaged() { damaged_flow zst --compress; }

# a compression that fails (here: the coordinator's file size limit stops
# the compressing child) commits nothing and leaves the running group
# alone; the next checkpoint works, and the program ends as the straight
# run does; a restart of that generation prints the rest of the output
t_zstd_fail() {
	command -v prlimit >/dev/null || skip "prlimit not found"
	prog_cmd threads_mutex_cond
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local coord rc
	coord=$("$COHORT" status "$GNAME" --json | sed -n 's/.*"coordinator_pid":\([0-9]*\).*/\1/p')
	[ -n "$coord" ] || fail "cohort status --json names no coordinator_pid"
	prlimit --pid "$coord" --fsize=4096:unlimited || fail "prlimit --pid $coord failed"
	wait_lines 2 run0
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --compress >"$TD/ckf.out" 2>"$TD/ckf.err"
	rc=$?
	note_file "failed checkpoint stderr" "$TD/ckf.err" 3
	prlimit --pid "$coord" --fsize=unlimited:unlimited
	[ "$rc" != 0 ] || fail "checkpoint --compress succeeded although the compression could not write"
	[ "$rc" != 124 ] || fail "checkpoint --compress timed out"
	grep -q "compress" "$TD/ckf.err" || fail "the error does not say the compression failed: $(first_line "$TD/ckf.err")"
	[ "$(wc -l <"$TD/ckf.err")" = 1 ] || fail "expected one line on stderr, got $(wc -l <"$TD/ckf.err")"
	# (its LOCK is the running group's: IMAGES/NAME/LOCK, held for the group's life)
	[ -z "$(ls -A "$IMG/$GNAME" 2>/dev/null | grep -vx LOCK)" ] || fail "the failed checkpoint left $(ls -A "$IMG/$GNAME")"
	bg_alive run0 || { bg_wait run0; fail "the program ended after the failed compression (status $RC)"; }
	ckpt_or_fail "checkpoint --compress after the failure" "$GNAME" 1 --compress
	zstd_stored "$(gen_dir "$GNAME" 1)"
	bg_wait run0
	final_check 0 "$RC" run0 run0
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	check_suffix run1 run0 || fail "restart of the compressed generation: wrong output"
	[ "$RC" = 0 ] || fail "restart of the compressed generation: status $RC: $(first_line "$TD/run1.err")"
}
