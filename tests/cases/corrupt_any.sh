# tests/cases/corrupt_any.sh - sourced by tests/run.sh: a damaged byte
# anywhere in any file of a generation is found.

# ipc_kinds (two processes, shared.img with sockets, signalfd, timerfd) gets a
# full checkpoint and an incremental one with --kill; once the background
# merge is done, every file of both generations (manifest, process images,
# page streams, shared.img) gets, one at a time, a flipped bit at its first
# and last byte and at 48 offsets spread over it (record headers, payloads,
# alignment padding, hashes): each time `cohort verify` of that generation
# must fail with one line naming the file, and pass again once the byte is
# back.  Then the incremental generation restarts and finishes the run.
t_corrupt_any() {
	prog_cmd ipc_kinds
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 5 run0
	ickpt ck1 --full
	wait_lines 8 run0
	ickpt ck2 --incremental --kill
	[ "$IKIND" = incremental ] || fail "checkpoint --incremental has kind '$IKIND'"
	bg_wait run0
	merges_done
	"$PYTHON" - "$COHORT" "$(gen_dir "$GNAME" 1)" "$(gen_dir "$GNAME" 2)" >"$TD/flips.out" 2>&1 <<'PY'
import os, subprocess, sys
cohort, dirs = sys.argv[1], sys.argv[2:]
bad, flips = [], 0
for d in dirs:
    names = sorted(f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))
    if "shared.img" not in names or not any(f.endswith(".p1.img") for f in names):
        bad.append("%s: expected shared.img and page streams, found %s" % (d, names))
    for f in names:
        p = os.path.join(d, f)
        size = os.path.getsize(p)
        for off in sorted(set([0, size - 1] + [size * i // 48 for i in range(48)])):
            with open(p, "r+b") as fh:
                fh.seek(off)
                b = fh.read(1)
                fh.seek(off)
                fh.write(bytes([b[0] ^ 0x20]))
            r = subprocess.run([cohort, "verify", d], capture_output=True, text=True)
            flips += 1
            lines = r.stderr.strip().splitlines()
            if r.returncode == 0:
                bad.append("%s byte %d: verify passed" % (f, off))
            elif len(lines) != 1 or f not in lines[0]:
                bad.append("%s byte %d: verify said %r" % (f, off, r.stderr.strip()[:300]))
            with open(p, "r+b") as fh:
                fh.seek(off)
                fh.write(b)
    r = subprocess.run([cohort, "verify", d], capture_output=True, text=True)
    if r.returncode != 0:
        bad.append("%s: verify fails after every byte was put back: %s" % (d, r.stderr.strip()))
print("%d flips, %d not reported as they should be" % (flips, len(bad)))
for b in bad[:10]:
    print(b)
sys.exit(1 if bad else 0)
PY
	local rc=$?
	note_file "flips" "$TD/flips.out" 12
	[ $rc = 0 ] || fail "$(head -n 1 "$TD/flips.out")"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG" --generation 2
	bg_wait run1
	check_suffix run1 run0 || fail "restart of the incremental generation: wrong output"
	[ "$RC" = 0 ] || fail "restart of the incremental generation: status $RC: $(first_line "$TD/run1.err")"
}
