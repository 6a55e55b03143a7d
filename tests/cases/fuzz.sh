# tests/cases/fuzz.sh - sourced by tests/run.sh.
#   fuzz_images  the image readers under libFuzzer (build/fuzz/fuzz_image,
#                tests/fuzz/fuzz_image.c: inspect of any file, the manifest
#                reader and the check of the files a manifest lists), seeded
#                with the files of real generations made here (a full one
#                of two processes holding every kind of shared object, an
#                incremental one with parent maps, a compressed one), its
#                mutations resealed so they reach past the checksums: no
#                crash, no sanitizer finding, no hang in FUZZ_RUNS inputs.
#                A longer run: build/fuzz/fuzz_image -close_fd_mask=3 DIR
#                (docs/architecture.md, "Trust model").  First, each input
#                the fuzzing once found a fault with (tests/fuzz/found/) is
#                run alone; an input found now is kept in build/fuzz-found/.
FUZZ_RUNS=${FUZZ_RUNS:-1500}
TEST_TIMEOUTS[fuzz_images]=180

t_fuzz_images() {
	local fz
	fz=$(dirname "$COHORT")/fuzz/fuzz_image
	[ -x "$fz" ] || fz=$ROOT/build/fuzz/fuzz_image
	[ -x "$fz" ] || fail "no fuzz target (make fuzz)"
	# inputs that once hung or crashed a reader, each run alone (libFuzzer: files as arguments)
	mkdir -p "$TD/tmp0"
	TMPDIR=$TD/tmp0 timeout -k 5 60 "$fz" -close_fd_mask=3 -timeout=20 "$ROOT"/tests/fuzz/found/* >"$TD/found.out" 2>&1 ||
		{ note_file "libFuzzer" "$TD/found.out" 8; fail "an input of tests/fuzz/found fails again: $(grep -m1 -E 'ERROR|SUMMARY|Timeout|deadly' "$TD/found.out" | cut -c1-200)"; }
	prog_cmd kinds_all
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	ckpt_or_fail "checkpoint 1 (full)" "$GNAME" 1
	ckpt_or_fail "checkpoint 2 (incremental)" "$GNAME" 2 --incremental
	ckpt_or_fail "checkpoint 3 (compressed, --kill)" "$GNAME" 3 --compress --kill
	bg_wait run0
	mkdir -p "$TD/corpus" "$TD/tmp"
	local g f
	for g in 1 2 3; do
		for f in "$(gen_dir "$GNAME" $g)"/*; do
			[ -f "$f" ] && cp "$f" "$TD/corpus/$g-$(basename "$f")"
		done
	done
	[ "$(ls "$TD/corpus" | wc -l)" -ge 10 ] || fail "too few seed files: $(ls "$TD/corpus" | tr '\n' ' ')"
	TMPDIR=$TD/tmp timeout -k 5 170 "$fz" -close_fd_mask=3 -seed=1 -runs="$FUZZ_RUNS" -max_len=32768 -timeout=60 \
		-rss_limit_mb=4096 -artifact_prefix="$TD/" "$TD/corpus" >"$TD/fuzz.out" 2>&1
	local rc=$?
	note_file "libFuzzer" "$TD/fuzz.out" 4
	# what it found outlives the work directory, to be looked at and added to tests/fuzz/found
	local a
	for a in "$TD"/crash-* "$TD"/timeout-* "$TD"/leak-* "$TD"/oom-*; do
		[ -f "$a" ] || continue
		mkdir -p "$ROOT/build/fuzz-found" && cp "$a" "$ROOT/build/fuzz-found/" && note "input kept: $ROOT/build/fuzz-found/${a##*/}"
	done
	[ $rc = 0 ] || fail "the fuzz target stopped (status $rc): $(grep -m1 -E 'ERROR|SUMMARY|Timeout|deadly' "$TD/fuzz.out" | cut -c1-200)"
	grep -q "Done $FUZZ_RUNS runs" "$TD/fuzz.out" || fail "the fuzz target did not run its $FUZZ_RUNS inputs"
}
