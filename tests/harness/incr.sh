# tests/harness/incr.sh - sourced by tests/run.sh: helpers of the tests on
# incremental checkpoints (tests/cases/incr_*.sh, zstd.sh, thp.sh,
# corrupt_any.sh).
#
# Most use tests/progs/incr_pages.c: after each step the program prints
# "STEP s pages K" (K = distinct pages it wrote in step s) and waits for the
# file $TT/go.s, so every checkpoint lands at a known step and the pages
# written between two checkpoints are known exactly.  Step 3 maps a new
# 4 MiB region (all 1024 pages written), step 4 unmaps the last 1 MiB of the
# 64 MiB one.  A restart of the generation taken at step s (all go files
# made first) must print exactly the native output after "STEP s".

INCR_STEPS=6
INCR_ARGS=() # more arguments for the program (tests/cases/thp.sh: --thp)

# incr_straight [PROG]: native run of PROG (default incr_pages; it must
# follow incr_pages' STEP protocol) with every go file made in advance
# (expected output in TD/exp.out); the go files are removed again afterwards
incr_straight() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found (needed to read --json output)"
	prog_cmd "${1:-incr_pages}"
	PCMD+=("$INCR_STEPS" ${INCR_ARGS[@]+"${INCR_ARGS[@]}"})
	incr_go_all
	straight 0 "${PCMD[@]}"
	rm -f "$TT"/go.*
	[ "$(grep -c '^STEP [0-9]* pages [0-9]*$' "$TD/exp.out")" = "$INCR_STEPS" ] ||
		fail "native run: expected $INCR_STEPS 'STEP s pages K' lines"
}

incr_go_all() {
	local s
	for ((s = 1; s <= INCR_STEPS; s++)); do : >"$TT/go.$s"; done
}

# incr_k STEP: the number of pages the program wrote in STEP (native run)
incr_k() { sed -n "s/^STEP $1 pages \([0-9]*\)\$/\1/p" "$TD/exp.out"; }

# incr_wait_step TAG STEP: wait until TAG has printed the line of STEP (the
# program then waits for go.STEP)
incr_wait_step() {
	local tag=$1 s=$2 end=$((SECONDS + TMO))
	while [ $SECONDS -lt $end ]; do
		grep -q "^STEP $s pages " "$TD/$tag.out" && return 0
		if ! bg_alive "$tag"; then
			bg_wait "$tag"
			note_file "$tag stderr" "$TD/$tag.err"
			fail "$tag ended (status $RC) before step $s: $(first_line "$TD/$tag.err")"
		fi
		sleep 0.02
	done
	fail "$tag: no 'STEP $s' line after $TMO s"
}

# ickpt TAG [ARGS...]: `checkpoint NAME --json ARGS` that must commit a
# generation; sets IGEN IKIND IPARENT from its output (TD/TAG.json)
ickpt() {
	local tag=$1 rc
	shift
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" --json "$@" >"$TD/$tag.json" 2>"$TD/$tag.err"
	rc=$?
	if [ $rc != 0 ]; then
		note_file "$tag: checkpoint $* stderr" "$TD/$tag.err"
		[ $rc = 124 ] && fail "$tag: checkpoint $* timed out after $TMO s"
		fail "$tag: checkpoint $* failed (status $rc): $(first_line "$TD/$tag.err")"
	fi
	read -r IGEN IKIND IPARENT < <(json_fields "$TD/$tag.json" generation kind parent 2>"$TD/json.err")
	if [ -z "${IGEN:-}" ] || ! check_json "$TD/$tag.json" "$IGEN"; then
		note_file "$tag: checkpoint --json" "$TD/$tag.json" 3
		note_file "json error" "$TD/json.err" 3
		fail "$tag: checkpoint $*: bad --json output"
	fi
	[ -f "$(gen_dir "$GNAME" "$IGEN")/manifest" ] ||
		fail "$tag: checkpoint $* reported generation $IGEN, but $(gen_dir "$GNAME" "$IGEN")/manifest does not exist"
	return 0
}

# incr_restart TAG STEP [ARGS...]: `restart NAME ARGS` (every go file exists)
# must print exactly the native output after "STEP STEP" and exit 0
incr_restart() {
	local tag=$1 s=$2 what
	shift 2
	what="restart ${*:-(newest generation)}"
	bg_start "$tag" "$COHORT" restart "$GNAME" --images "$IMG" "$@"
	bg_wait "$tag"
	sed -n "/^STEP $s pages /,\$p" "$TD/exp.out" | tail -n +2 >"$TD/$tag.exp"
	if ! cmp -s "$TD/$tag.exp" "$TD/$tag.out"; then
		note "$what (taken at step $s): stdout differs from the native run after STEP $s (< expected, > got):"
		diff "$TD/$tag.exp" "$TD/$tag.out" | head -n 12 | cut -c1-200 | sed 's/^/    /' >>"$TD/details"
		note_file "$what stderr" "$TD/$tag.err" 5
		fail "$what: wrong output (status $RC): $(first_line "$TD/$tag.err")"
	fi
	[ "$RC" = 0 ] || { note_file "$what stderr" "$TD/$tag.err"; fail "$what: status $RC: $(first_line "$TD/$tag.err")"; }
}

full_dir() { printf '%s/%s/full-%06d' "$IMG" "$GNAME" "$1"; }

# incr_wait_full GEN SECS: wait until the merged full-GEN is there
incr_wait_full() {
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt "$end" ]; do
		[ -f "$(full_dir "$1")/manifest" ] && return 0
		sleep 0.05
	done
	return 1
}

# incr_merges_idle SECS: wait until no cohort-merge process of ours runs
# (the background merge of an incremental generation holds the images'
# LOCK after its group has ended: a restart meanwhile is refused)
incr_merges_idle() {
	local end=$((SECONDS + $1))
	while [ -n "$(our_comm_pids cohort-merge)" ]; do
		[ $SECONDS -lt "$end" ] || return 1
		sleep 0.05
	done
	return 0
}

# merges_done: incr_merges_idle, or fail after TMO s (before a restart of a
# group whose last checkpoints were incremental)
merges_done() { incr_merges_idle "$TMO" || fail "a background merge still runs $TMO s after the group ended"; }

# incr_verify WHAT: `cohort verify IMG/NAME` must pass
incr_verify() {
	timeout -k 5 "$TMO" "$COHORT" verify "$IMG/$GNAME" >"$TD/verify.out" 2>"$TD/verify.err" ||
		{ note_file "verify stderr" "$TD/verify.err" 5; fail "cohort verify $IMG/$GNAME failed $1: $(first_line "$TD/verify.err")"; }
}
