# tests/cases/trust_images.sh - sourced by tests/run.sh: a restart treats
# its images as untrusted input (issue 12).
#   images_foreign    a generation another user owns, or in a group
#                     directory others may write, is refused in one line
#                     naming the file and --trust-images; with
#                     --trust-images it restarts to the straight run's output
#   fcopy_symlink     a file the group had open for writing is put back at
#                     a restart; a symbolic link another user put in its
#                     place (to a file of root's) is not followed: the
#                     restart fails in one line saying so, and the link's
#                     target keeps its content
TI_USER=nobody
ti_loop='echo line 0; echo line 1; while [ ! -e "$COHORT_TEST_TMP/go.1" ]; do sleep 0.05; done; echo line 2; echo RESULT done'

# ti_killed TAG CMD...: CMD under cohort up to "line 1", then checkpoint --kill (generation 1)
ti_killed() {
	local tag=$1
	shift
	bg_start "$tag" "$COHORT" run --name "$GNAME" --images "$IMG" -- "$@"
	wait_line "$TD/$tag.out" "line 1"
	ckpt_or_fail "checkpoint --kill" "$GNAME" 1 --kill
	bg_wait "$tag"
}

# ti_restart_refused WHAT ERE [ARGS]: restart fails within TMO, one line on stderr matching ERE
ti_restart_refused() {
	local what=$1 ere=$2
	shift 2
	cmd_refused "restart ($what)" "$ere" "$COHORT" restart "$GNAME" --images "$IMG" "$@"
}

# ti_started: the straight run of ti_loop, then the same under cohort (run0) up to "line 1"
ti_started() {
	: >"$TT/go.1"
	straight 0 /bin/bash -c "$ti_loop"
	rm -f "$TT/go.1"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/bash -c "$ti_loop"
	wait_line "$TD/run0.out" "line 1"
}

t_images_foreign() {
	id "$TI_USER" >/dev/null 2>&1 || skip "no user $TI_USER"
	: >"$TT/go.1"
	straight 0 /bin/bash -c "$ti_loop"
	rm -f "$TT/go.1"
	ti_killed run0 /bin/bash -c "$ti_loop"
	local g
	g=$(gen_dir "$GNAME" 1)
	chown "$TI_USER" "$g/manifest"
	ti_restart_refused "a file of another user's" "image file $g/manifest belongs to uid [0-9]+, not to you.*--trust-images"
	chown root "$g/manifest"
	chmod 777 "$IMG/$GNAME"
	ti_restart_refused "a group directory others may write" "group directory $IMG/$GNAME is writable by others.*--trust-images"
	: >"$TT/go.1"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG" --trust-images
	bg_wait run1
	chmod 700 "$IMG/$GNAME"
	final_check 0 "$RC" run1 run0 run1
}

t_fcopy_symlink() {
	id "$TI_USER" >/dev/null 2>&1 || skip "no user $TI_USER"
	local shared=$TT/shared
	mkdir -p "$shared"
	chmod 1777 "$shared"
	chmod 755 "$WORK" "$TD" "$TT"
	printf 'precious\n' >"$TT/victim"
	local prog="exec 3>>\"$shared/out\"; echo written >&3; $ti_loop"
	: >"$TT/go.1"
	straight 0 /bin/bash -c "$prog"
	rm -f "$TT/go.1" "$shared/out"
	ti_killed run0 /bin/bash -c "$prog"
	grep -q '"files/' /dev/null
	# the file goes (cleaned up by its owner), another user puts a link in its place
	rm -f "$shared/out"
	runuser -u "$TI_USER" -- ln -s "$TT/victim" "$shared/out" || fail "cannot plant the link as $TI_USER"
	ti_restart_refused "a link where the file was" "cannot put back $shared/out .*symbolic link.*not followed"
	[ "$(cat "$TT/victim")" = precious ] || fail "the link's target was written: $(head -c 100 "$TT/victim")"
	# without the link, the restart puts the file back and runs on
	rm -f "$shared/out"
	: >"$TT/go.1"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
	[ "$(cat "$shared/out")" = written ] || fail "the file was not put back as it was: $(head -c 100 "$shared/out")"
}

# images_locked: two groups of one name with different run directories
# (COHORT_RUN_DIR) cannot write the same images: while the first lives,
# a second `run` and a `restart` of it are refused in one line naming the
# holder's pid; once it has ended, they may
t_images_locked() {
	ti_started
	ckpt_or_fail "checkpoint (live)" "$GNAME" 1
	mkdir -p "$TD/run2"
	chmod 700 "$TD/run2"
	local why="the images in $IMG/$GNAME are in use by another cohort \(pid [0-9]+\)"
	COHORT_RUN_DIR=$TD/run2 cmd_refused "a second run" "$why" \
		"$COHORT" run --name "$GNAME" --images "$IMG" -- /bin/bash -c "$ti_loop"
	COHORT_RUN_DIR=$TD/run2 cmd_refused "a restart" "$why" "$COHORT" restart "$GNAME" --images "$IMG"
	: >"$TT/go.1"
	bg_wait run0
	final_check 0 "$RC" run0 run0
	COHORT_RUN_DIR=$TD/run2 bg_start run2 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run2
	[ "$RC" = 0 ] || fail "the restart once the first group had ended: status $RC: $(first_line "$TD/run2.err")"
}

# recover_on_start: what dead writers left in a group's images (a
# checkpoint's .tmp-gen-N, a merge's .tmp-full-N.PID, a merged full-N
# whose generation was pruned) is gone once a restart holds the images;
# the committed generations are untouched and the group runs on
t_recover_on_start() {
	: >"$TT/go.1"
	straight 0 /bin/bash -c "$ti_loop"
	rm -f "$TT/go.1"
	ti_killed run0 /bin/bash -c "$ti_loop"
	local gd=$IMG/$GNAME
	mkdir -p "$gd/.tmp-gen-000002" "$gd/.tmp-full-000001.999999" "$gd/full-000007"
	: >"$gd/.tmp-gen-000002/proc-2.img"
	: >"$gd/full-000007/manifest"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	wait_ready "$GNAME" run1
	local left
	left=$(ls -A "$gd" | grep -E '^\.tmp-|^full-000007$')
	[ -z "$left" ] || fail "left in $gd after the restart began: $left"
	[ -d "$(gen_dir "$GNAME" 1)" ] || fail "generation 1 is gone"
	: >"$TT/go.1"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# images_bound: the files of a generation are bound together (format 7):
# its manifest lists each with its size, and each file's head names its
# group, generation, process and stream.  A shared.img of the same size
# from the generation before, or a page stream deleted, is found by
# verify and refused by restart in one line naming the file; the files
# put back, the restart runs to the straight run's output
t_images_bound() {
	ti_started
	ckpt_or_fail "checkpoint 1 (live)" "$GNAME" 1
	ckpt_or_fail "checkpoint 2 (--kill)" "$GNAME" 2 --kill
	bg_wait run0
	local g1 g2
	g1=$(gen_dir "$GNAME" 1)
	g2=$(gen_dir "$GNAME" 2)
	cp -a "$g2" "$TD/g2.orig"
	[ "$(stat -c %s "$g1/shared.img")" = "$(stat -c %s "$g2/shared.img")" ] ||
		fail "the two shared.img differ in size; this test needs them alike"
	cp "$g1/shared.img" "$g2/shared.img"
	"$COHORT" verify "$g2" >"$TD/v.out" 2>"$TD/v.err" && fail "verify accepts generation 1's shared.img in generation 2"
	note_file "verify (swapped shared.img)" "$TD/v.err" 2
	grep -q "shared.img: this file belongs to group [0-9a-f]*, generation 1, .* not to group [0-9a-f]*, generation 2" "$TD/v.err" ||
		fail "verify does not say the shared.img is another generation's: $(first_line "$TD/v.err")"
	ti_restart_refused "generation 1's shared.img" "shared.img: this file belongs to .*generation 1.*generation 2"
	cp "$TD/g2.orig/shared.img" "$g2/shared.img"
	local p1
	p1=$(ls "$g2"/proc-*.p1.img | head -n 1)
	[ -n "$p1" ] || fail "no page stream file in $g2"
	mv "$p1" "$TD/p1.saved"
	"$COHORT" verify "$g2" >"$TD/v.out" 2>"$TD/v.err" && fail "verify accepts a generation without $(basename "$p1")"
	grep -q "$(basename "$p1"): listed in the generation's manifest, but missing" "$TD/v.err" ||
		fail "verify does not name the missing stream: $(first_line "$TD/v.err")"
	ti_restart_refused "a missing page stream" "$(basename "$p1"): listed in the generation's manifest, but missing"
	mv "$TD/p1.saved" "$p1"
	"$COHORT" verify "$g2" >/dev/null 2>"$TD/v.err" || fail "verify of the generation put back: $(first_line "$TD/v.err")"
	: >"$TT/go.1"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# fcopy_digest: the copy of a file the group wrote (files/N) is checked
# against its manifest's digest: one byte changed in it (same size) is
# found by verify and refused by restart in one line, before the file is
# written over; put right, the restart puts the file back as it was
t_fcopy_digest() {
	local out=$TT/written
	local prog="exec 3>>\"$out\"; echo written >&3; $ti_loop"
	: >"$TT/go.1"
	straight 0 /bin/bash -c "$prog"
	rm -f "$TT/go.1" "$out"
	ti_killed run0 /bin/bash -c "$prog"
	local g c
	g=$(gen_dir "$GNAME" 1)
	c=$(ls "$g"/files/* 2>/dev/null | head -n 1)
	[ -n "$c" ] || fail "no copy of $out in $g/files"
	cp "$c" "$TD/copy.orig"
	printf 'X' | dd of="$c" bs=1 seek=0 conv=notrunc 2>/dev/null
	printf 'changed since\n' >"$out"
	"$COHORT" verify "$g" >/dev/null 2>"$TD/v.err" && fail "verify accepts a changed copy"
	grep -q "$(basename "$c"): its content is not what the manifest says" "$TD/v.err" ||
		fail "verify does not name the changed copy: $(first_line "$TD/v.err")"
	ti_restart_refused "a changed copy" "files/$(basename "$c"): the copy of $out is not what the manifest says"
	[ "$(cat "$out")" = "changed since" ] || fail "the refused restart wrote over $out: $(head -c 100 "$out")"
	cp "$TD/copy.orig" "$c"
	: >"$TT/go.1"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
	[ "$(cat "$out")" = written ] || fail "$out was not put back as it was: $(head -c 100 "$out")"
}

# fcopy_target: the target of a file copy comes from shared.img, which is
# untrusted input: rewritten (record checksum made good) to name a file no
# process of the group had open, the restart must refuse in one line and
# leave that file alone; put back as it was, the restart runs on
t_fcopy_target() {
	need_prog uid_forge
	local out=$TT/written
	local prog="exec 3>>\"$out\"; echo written >&3; $ti_loop"
	printf 'precious\n' >"$TT/vic"
	: >"$TT/go.1"
	straight 0 /bin/bash -c "$prog"
	rm -f "$TT/go.1" "$out"
	ti_killed run0 /bin/bash -c "$prog"
	local s
	s=$(gen_dir "$GNAME" 1)/shared.img
	cp -p "$s" "$TD/shared.kept"
	"$BIN/uid_forge" "$s" fcopy "$TT/vic" 2>"$TD/forge.err" || fail "cannot rewrite shared.img: $(first_line "$TD/forge.err")"
	"$COHORT" inspect "$s" | grep -q "$TT/vic" || fail "the rewritten shared.img does not name $TT/vic"
	ti_restart_refused "a copy aimed elsewhere" "a copy is to be put back over $TT/vic, which no process of the generation had open or mapped"
	[ "$(cat "$TT/vic")" = precious ] || fail "the refused restart wrote over $TT/vic: $(head -c 100 "$TT/vic")"
	cp -p "$TD/shared.kept" "$s"
	: >"$TT/go.1"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
	[ "$(cat "$out")" = written ] || fail "$out was not put back as it was: $(head -c 100 "$out")"
}

# room_refused: a checkpoint that cannot fit in its images directory (a
# 24 MiB file system, a program of 64 MiB) fails before anything is
# written, in one line saying how much it needs and how much is free; the
# program runs on to the straight run's output
t_room_refused() {
	need_prog bigmem
	mkdir -p "$TD/small"
	mount -t tmpfs -o size=24m tmpfs "$TD/small" 2>/dev/null || skip "cannot mount a tmpfs here"
	trap 'umount -l "$TD/small" 2>/dev/null' EXIT
	prog_cmd bigmem
	PCMD+=(64)
	straight 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$TD/small" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local i
	for ((i = 0; i < 400; i++)); do # its memory all written: "step 1 ok sum=..."
		grep -q '^step 1 ok' "$TD/run0.out" && break
		sleep 0.05
	done
	grep -q '^step 1 ok' "$TD/run0.out" || fail "no 'step 1 ok' from the program after 20 s"
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" >"$TD/ck.out" 2>"$TD/ck.err"
	local rc=$?
	note_file "refused checkpoint" "$TD/ck.err" 2
	[ $rc != 0 ] || fail "a checkpoint that cannot fit succeeded"
	[ "$(wc -l <"$TD/ck.err")" = 1 ] || fail "the refusal is not one line"
	grep -qE "not enough room in $TD/small: the images take about [0-9]+ MiB \(the group's memory\), [0-9]+ MiB are free" "$TD/ck.err" ||
		fail "the refusal does not say why: $(first_line "$TD/ck.err")"
	[ -z "$(ls -A "$TD/small/$GNAME" 2>/dev/null | grep -v '^LOCK$\|^command$')" ] ||
		fail "left in the images directory: $(ls -A "$TD/small/$GNAME")"
	bg_wait run0
	final_check 0 "$RC" run0 run0
}

# verify_fulls: `cohort verify GROUPDIR` checks the merged full images too
# (a restart of an incremental generation uses full-N in its place): one
# byte flipped in full-2 is found, named, and the group's verify fails
t_verify_fulls() {
	ti_started
	ckpt_or_fail "checkpoint 1 (full)" "$GNAME" 1
	ckpt_or_fail "checkpoint 2 (incremental)" "$GNAME" 2 --incremental
	local full=$IMG/$GNAME/full-000002 i
	for ((i = 0; i < 400; i++)); do # the background merge
		[ -f "$full/manifest" ] && break
		sleep 0.05
	done
	[ -f "$full/manifest" ] || fail "no merged $full after 20 s"
	: >"$TT/go.1"
	bg_wait run0
	"$COHORT" verify "$IMG/$GNAME" >"$TD/v.out" 2>"$TD/v.err" || fail "verify of the intact group: $(first_line "$TD/v.err")"
	grep -q "full-000002: .*: ok" "$TD/v.out" || fail "verify does not look at full-000002: $(tr '\n' ' ' <"$TD/v.out" | cut -c1-200)"
	local img
	img=$(ls "$full"/proc-*.img | head -n 1)
	printf '\377' | dd of="$img" bs=1 seek=200 conv=notrunc 2>/dev/null
	"$COHORT" verify "$IMG/$GNAME" >"$TD/v.out" 2>"$TD/v.err" && fail "verify accepts a damaged $img"
	grep -q "full-000002/proc-" "$TD/v.err" || fail "verify does not name the damaged full image: $(first_line "$TD/v.err")"
}
