# tests/cases/incr_unmerged.sh - sourced by tests/run.sh.

# restarts from incremental generations nobody merged: PROG (incr_pages:
# a region mapped at step 3, 1 MiB of another unmapped at step 4; or
# incr_family: a process born at step 3, one a zombie from step 4, memory
# unmapped at step 2 and mapped again at step 4) is checkpointed at steps
# 1..6 with --incremental (generation 1 full, 2..6 incremental, each on the
# one before) and then runs to its end like a straight run.  Then
# (a) generation 6 restarts from the full-6 the background merge built,
#     one generation at a time;
# (b) with every full-* deleted, generation 4 restarts from the chain
#     1+2+3+4, whose full-4 must be built in one pass: no full-2 or full-3;
# (c) with every full-* deleted again, generation 6 restarts from the chain
#     1+2..6; the full-6 built in one pass must have the same metadata and
#     page contents, process by process, as the full-6 of (a);
# each restart must print exactly the native output after its step.
incr_unmerged() {
	incr_straight "$1"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	local s g want last=$INCR_STEPS
	for ((s = 1; s <= last; s++)); do
		incr_wait_step run0 $s
		ickpt ck$s --incremental
		[ "$IGEN" = $s ] || fail "checkpoint at step $s committed generation $IGEN, expected $s"
		want=incremental
		[ $s = 1 ] && want=full
		[ "$IKIND" = $want ] || fail "checkpoint --incremental at step $s has kind '$IKIND', expected $want"
		: >"$TT/go.$s"
	done
	bg_wait run0
	final_check 0 "$RC" run0 run0
	incr_wait_full $last 20 || fail "the background merge did not build $(full_dir $last) within 20 s"
	merges_done
	# (a)
	incr_restart ra $last --generation $last
	incr_page_digest "$(full_dir $last)" >"$TD/linked.digest" 2>"$TD/digest.err" ||
		fail "reading $(full_dir $last): $(first_line "$TD/digest.err")"
	# (b)
	rm -rf "$IMG/$GNAME"/full-*
	incr_restart rb 4 --generation 4
	[ -f "$(full_dir 4)/manifest" ] || fail "restart --generation 4 left no $(full_dir 4)"
	for g in 2 3; do
		[ -e "$(full_dir $g)" ] && fail "restart --generation 4 wrote $(full_dir $g): not one pass over the chain"
	done
	# (c)
	rm -rf "$IMG/$GNAME"/full-*
	incr_restart rc $last --generation $last
	incr_page_digest "$(full_dir $last)" >"$TD/chain.digest" 2>"$TD/digest.err" ||
		fail "reading $(full_dir $last): $(first_line "$TD/digest.err")"
	[ -s "$TD/chain.digest" ] || fail "no image in $(full_dir $last)"
	if ! cmp -s "$TD/linked.digest" "$TD/chain.digest"; then
		note "$(full_dir $last): one generation at a time (<) and in one pass (>):"
		diff "$TD/linked.digest" "$TD/chain.digest" | head -n 8 | sed 's/^/    /' >>"$TD/details"
		fail "full-$last built in one pass over the chain differs from the one built one generation at a time"
	fi
	[ "$(cd "$IMG/$GNAME" && echo full-*)" = "$(basename "$(full_dir $last)")" ] ||
		fail "restart --generation $last wrote more than its full image: $(cd "$IMG/$GNAME" && echo full-*)"
	incr_verify "after the restarts"
}
t_incr_unmerged() { incr_unmerged incr_pages; }
t_incr_unmerged_group() { incr_unmerged incr_family; }

# incr_page_digest DIR: one line per record of every process image of the
# generation directory DIR and of its manifest (type and SHA-1 of the
# payload; head and end records left out), except that page data comes
# as one line per page (address and SHA-1), in address order over all the
# page streams of an image: equal digests mean equal metadata and equal
# page contents, however the pages are cut into records
incr_page_digest() {
	"$PYTHON" - "$1" <<'PY'
import glob, hashlib, os, struct, sys

def records(path):
    data = open(path, "rb").read()
    off = 0
    while off < len(data):
        magic, typ, _flags, pad, _check, length, _seq = struct.unpack_from("<IHHIIQQ", data, off)
        if magic != 0x43524F43:
            raise SystemExit("%s: byte %d: no record header" % (path, off))
        start = off + 32 + pad
        yield typ, data[start:start + length]
        off = start + length + 8

d = sys.argv[1]
for img in sorted(glob.glob(os.path.join(d, "proc-*.img"))) + [os.path.join(d, "manifest")]:
    name = os.path.basename(img)
    if name.count(".") > 1:
        continue  # page stream N of an image: read with it
    pages, runs = {}, []
    for path in [img] + sorted(glob.glob(img[:-4] + ".p*.img") if img.endswith(".img") else []):
        for typ, p in records(path):
            if typ == 7:  # page map: its runs, for the page data after it
                nruns = struct.unpack_from("<QI", p)[1]
                runs = [struct.unpack_from("<QQ", p, 16 + 16 * i) for i in range(nruns)]
            elif typ == 8:
                at = 0
                for addr, n in runs:
                    for i in range(n):
                        pages[addr + 4096 * i] = hashlib.sha1(p[at:at + 4096]).hexdigest()
                        at += 4096
            elif typ not in (1, 9):
                print(name, "record", typ, hashlib.sha1(p).hexdigest())
    for addr in sorted(pages):
        print(name, "page %x" % addr, pages[addr])
PY
}
