# tests/cases/incr_written.sh - sourced by tests/run.sh.

# pages stored per incremental generation: checkpoints at steps 1 (--full)
# and 2..5 (--incremental), the program runs to its end; then for each
# incremental generation g, `inspect --json` of gen-g must show, for the
# program's process, pages >= K_g (the pages it wrote in step g, between
# checkpoints g-1 and g; K_3 includes the 1024 pages of the new region) and
# pages <= K_g + 256 (also at step 4, which unmapped the last 1 MiB: the
# rest of that region was not written).  The slack covers what else the
# process writes between two checkpoints: incr_pages' own bookkeeping (17 KiB
# of expected-version tables: 5-6 pages), its stdout buffer, the stack pages
# of the step code, of printf and of the checkpoint signal frame (xsave
# state), libc and TLS data, and the agent's own memory (thread table, the
# manager thread's stack, its image writers' buffers: every page the agent
# touches while taking checkpoint g-1 is written after that snapshot).
# Measured with the uffd-wp tracker: 25 to 160 extra pages per incremental.
# 256 (1 MiB) leaves room above that yet stays far below the region (16384
# pages), so saving whole regions, or missing the new one, fails.  Also:
# parent_pages > 0, pages + parent_pages covers every page the program has
# mapped, the full generation stores every page and takes none from a
# parent, and every incremental's bytes are under a fifth of the full's.
INCR_SLACK=256
# The full checkpoint at step 1 is pre-copied (the default with a snapshot):
# with uffd-wp tracking --json must say so.  incr_written_plain takes it with
# --no-precopy (the whole snapshot fork) and checks the same written sets.
t_incr_written() { incr_written 1; }
t_incr_written_plain() { incr_written 0 --no-precopy; }
# incr_written_stop: the incrementals written in place (--stop), as a migration's stop is: the
# unwritten stretches passed over as a lean snapshot leaves them out, the same written sets.  The
# writer's own buffers are then written in the process, not in a snapshot, and count as written
# in the next image: two 256 KiB stream buffers, two 64 KiB page map windows, the helper's 64 KiB
# stack (~210 pages; 1459 stored in one run where the program wrote 1188): 256 more slack
t_incr_written_stop() {
	local INCR_CKPT_ARGS=(--stop) INCR_SLACK=$((INCR_SLACK + 256))
	incr_written 1
}
incr_written() { # incr_written PRECOPIED [FIRST_CHECKPOINT_ARGS...]; INCR_CKPT_ARGS: the incrementals' own
	local want_pre=$1
	shift
	incr_straight
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	group_status
	local tracking s g
	tracking=$(json_fields "$TD/status.json" tracking 2>"$TD/json.err") ||
		{ note_file "cohort status --json" "$TD/status.json" 3; fail "cohort status --json: not JSON"; }
	[ -n "$tracking" ] && [ "$tracking" != - ] || fail "cohort status --json has no \"tracking\" key"
	note "tracking: $tracking"
	for ((s = 1; s <= 5; s++)); do
		incr_wait_step run0 $s
		if [ $s = 1 ]; then
			ickpt ck$s --full "$@"
			[ "$IKIND" = full ] || fail "checkpoint --full $* has kind '$IKIND'"
			local pre
			pre=$(json_fields "$TD/ck1.json" precopied)
			[ "$tracking" = uffd-wp ] || want_pre=0
			[ "$pre" = "$want_pre" ] || fail "checkpoint --full $* (tracking $tracking): \"precopied\" is '$pre', expected $want_pre"
		else
			ickpt ck$s --incremental ${INCR_CKPT_ARGS[@]+"${INCR_CKPT_ARGS[@]}"}
			[ "$IKIND" = incremental ] || fail "checkpoint --incremental at step $s has kind '$IKIND', expected incremental"
		fi
		[ "$IGEN" = $s ] || fail "checkpoint at step $s committed generation $IGEN, expected $s"
		: >"$TT/go.$s"
	done
	incr_go_all
	bg_wait run0
	final_check 0 "$RC" run0 run0
	local args=()
	for ((g = 1; g <= 5; g++)); do
		timeout -k 5 "$TMO" "$COHORT" inspect "$(gen_dir "$GNAME" $g)" --json >"$TD/insp$g.json" 2>"$TD/insp$g.err" ||
			{ note_file "inspect stderr" "$TD/insp$g.err"; fail "cohort inspect $(gen_dir "$GNAME" $g) --json failed: $(first_line "$TD/insp$g.err")"; }
		args+=("$g:$(incr_k $g)")
	done
	"$PYTHON" - "$INCR_SLACK" "$TD" "${args[@]}" >"$TD/pages.out" 2>"$TD/pages.err" <<'PY'
import json, sys
slack, td = int(sys.argv[1]), sys.argv[2]
K = {int(a.split(":")[0]): int(a.split(":")[1]) for a in sys.argv[3:]}
R1, CUT, R2 = 16384, 256, 1024	# incr_pages: 64 MiB region, 1 MiB cut at step 4, 4 MiB region from step 3
errs = []

def load(path):
    text = open(path).read()
    try:
        return json.loads(text)
    except ValueError:
        return json.loads([l for l in text.splitlines() if l.strip()][-1])

def prog(d, g):
    ps = d.get("processes") or []
    for sel in (lambda p: p.get("pid") == 2,
                lambda p: str(p.get("image", "")).endswith("proc-2.img"),
                lambda p: len(ps) == 1):
        c = [p for p in ps if sel(p)]
        if len(c) == 1:
            return c[0]
    raise SystemExit("gen %d: cannot tell the program's process (pid 2) among %d processes" % (g, len(ps)))

full_bytes = load(td + "/ck1.json")["bytes"]
for g in sorted(K):
    d = load("%s/insp%d.json" % (td, g))
    ck = load("%s/ck%d.json" % (td, g))
    p = prog(d, g)
    missing = [k for k in ("pages", "parent_pages") if not isinstance(p.get(k), int)]
    if missing:
        errs.append("gen %d: inspect --json: the process has no %s (keys: %s)" % (g, " or ".join(missing), ",".join(sorted(p))))
        if "pages" in missing:
            continue
    pages, ppages = p["pages"], p.get("parent_pages", -1)
    # step 5 drops 512 pages (MADV_DONTNEED): they are zero, and neither stored nor kept unless written again
    mapped = (R1 - CUT if g >= 4 else R1) + (R2 if g >= 3 else 0) - (512 if g >= 5 else 0)
    print("gen %d: kind %s parent %s  K %d  pages %d  parent_pages %d  bytes %d" %
          (g, d.get("kind"), d.get("parent"), K[g], pages, ppages, ck["bytes"]))
    if d.get("ok") is not True:
        errs.append("gen %d: inspect says ok=%r" % (g, d.get("ok")))
    if d.get("generation") != g:
        errs.append("gen %d: inspect says generation %r" % (g, d.get("generation")))
    if g == 1:
        if d.get("kind") != "full":
            errs.append("gen 1: kind %r, expected full" % d.get("kind"))
        if pages < R1:
            errs.append("gen 1 (full): %d pages stored, fewer than the %d of the region" % (pages, R1))
        if ppages > 0:
            errs.append("gen 1 (full): parent_pages %d, expected 0" % ppages)
        continue
    if d.get("kind") != "incremental":
        errs.append("gen %d: kind %r, expected incremental" % (g, d.get("kind")))
    if d.get("parent") != g - 1:
        errs.append("gen %d: parent %r, expected %d" % (g, d.get("parent"), g - 1))
    if pages < K[g]:
        errs.append("gen %d: %d pages stored, but the program wrote %d pages since generation %d" % (g, pages, K[g], g - 1))
    if pages > K[g] + slack:
        errs.append("gen %d: %d pages stored, more than the %d the program wrote + %d slack" % (g, pages, K[g], slack))
    if g == 3 and pages < R2:
        errs.append("gen 3: %d pages stored, fewer than the %d of the region mapped in step 3" % (pages, R2))
    if ppages == 0:
        errs.append("gen %d: parent_pages %d, expected > 0" % (g, ppages))
    if ppages >= 0 and pages + ppages < mapped:
        errs.append("gen %d: pages + parent_pages = %d, fewer than the %d pages the program has mapped" % (g, pages + ppages, mapped))
    if ck["bytes"] * 5 >= full_bytes:
        errs.append("gen %d: %d bytes, not much smaller than the full generation's %d" % (g, ck["bytes"], full_bytes))
for e in errs:
    print(e, file=sys.stderr)
sys.exit(1 if errs else 0)
PY
	local rc=$?
	while IFS= read -r l; do note "$l"; done <"$TD/pages.out"
	if [ $rc != 0 ]; then
		note_file "errors" "$TD/pages.err" 12
		fail "$(head -n 1 "$TD/pages.err" | cut -c1-200)"
	fi
	incr_verify "at the end"
}
