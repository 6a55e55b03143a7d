# tests/harness/checkpoint.sh - sourced by tests/run.sh: a group under
# cohort: ready, checkpointed (--json checked), its status and generations.

# wait_ready NAME TAG: poll `cohort status NAME` until it succeeds (TMO s max)
wait_ready() {
	local name=$1 tag=$2 end=$((SECONDS + TMO))
	while [ $SECONDS -lt $end ]; do
		if "$COHORT" status "$name" >/dev/null 2>"$TD/status.err"; then
			record_tree "$(cat "$TD/$tag.pid")"
			return 0
		fi
		if ! bg_alive "$tag"; then
			bg_wait "$tag"
			note_file "$tag stderr" "$TD/$tag.err"
			fail "$tag exited (status $RC) before the group became ready: $(first_line "$TD/$tag.err")"
		fi
		sleep 0.05
	done
	note_file "last 'cohort status' stderr" "$TD/status.err"
	note_file "$tag stderr" "$TD/$tag.err"
	fail "$tag: group $name not ready after $TMO s"
}

gen_dir() { printf '%s/%s/gen-%06d' "$IMG" "$1" "$2"; }

check_json() { # check_json FILE GEN: checkpoint --json output
	[ -x "$PYTHON" ] || return 0
	"$PYTHON" - "$1" "$2" 2>"$TD/json.err" <<'EOF' || { note_file "checkpoint --json" "$1"; note_file "json check" "$TD/json.err" 3; return 1; }
import json, sys
text = open(sys.argv[1]).read()
objs = [l for l in text.splitlines() if l.strip()]
assert len(objs) == 1, "expected exactly one line of JSON, got %d" % len(objs)
d = json.loads(objs[0])
for k in ("generation", "kind", "processes", "bytes", "pause_ms", "duration_ms"):
    assert k in d, "missing key %r" % k
assert d["generation"] == int(sys.argv[2]), "generation %r, expected %s" % (d["generation"], sys.argv[2])
assert isinstance(d["processes"], int) and d["processes"] >= 1, "processes %r" % d["processes"]
assert isinstance(d["bytes"], int) and d["bytes"] > 0, "bytes %r" % d["bytes"]
# the pause as the program's threads lived it: none when --kill ended the group
p = d.get("program_pause_ms", "missing")
if d.get("killed"):
    assert p is None, "program_pause_ms %r with --kill, expected null" % (p,)
else:
    assert isinstance(p, (int, float)) and p >= 0, "program_pause_ms %r" % (p,)
# how long a member held its threads to prepare (0: none did), inside the checkpoint's time
h = d.get("prepare_hold_ms", "missing")
assert isinstance(h, (int, float)) and 0 <= h <= d["duration_ms"], "prepare_hold_ms %r" % (h,)
# where the time went: the phases in order, from preparing to committing, adding up to the duration
ph = d.get("phases_ms")
assert isinstance(ph, dict) and ph, "phases_ms %r" % (ph,)
names = list(ph)
assert names[0] == "preparing" and names[-1] == "committing", "phases %r" % (names,)
assert "snapshot" in names, "no snapshot phase in %r" % (names,)
assert all(isinstance(v, (int, float)) and v >= 0 for v in ph.values()), "phases_ms %r" % (ph,)
# pauses taken: more than one only when a process was caught reading a /proc file half-way
t = d.get("tries")
assert isinstance(t, int) and 1 <= t <= 9, "tries %r" % (t,)
assert sum(ph.values()) <= d["duration_ms"] + 1, "phases add up to %.2f ms, the duration is %.2f" % (sum(ph.values()), d["duration_ms"])
EOF
}

# ckpt NAME GEN [ARGS...]: checkpoint that must commit generation GEN;
# on failure sets CK_WHY
ckpt() {
	local name=$1 gen=$2 rc d
	shift 2
	CK_WHY=
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$name" --images "$IMG" --json "$@" >"$TD/ck$gen.json" 2>"$TD/ck$gen.err"
	rc=$?
	if [ $rc != 0 ]; then
		note_file "checkpoint $gen stderr" "$TD/ck$gen.err"
		CK_WHY="status $rc: $(first_line "$TD/ck$gen.err")"
		[ $rc = 124 ] && CK_WHY="timed out after $TMO s"
		return 1
	fi
	if ! check_json "$TD/ck$gen.json" "$gen"; then
		CK_WHY="bad --json output: $(tail -n 1 "$TD/json.err" | cut -c1-200)"
		return 1
	fi
	d=$(gen_dir "$name" "$gen")
	if [ ! -f "$d/manifest" ] || ! ls "$d"/proc-*.img* >/dev/null 2>&1; then
		CK_WHY="committed, but $d has no manifest or no proc-*.img[.zst]"
		return 1
	fi
	return 0
}

ckpt_or_fail() { # ckpt_or_fail WHAT NAME GEN [ARGS...]
	local what=$1
	shift
	ckpt "$@" || fail "$what failed: $CK_WHY"
}

# group_status: `cohort status NAME --json` of the running group into TD/status.json
group_status() {
	timeout -k 5 "$TMO" "$COHORT" status "$GNAME" --json >"$TD/status.json" 2>"$TD/status.err" ||
		{ note_file "status stderr" "$TD/status.err"; fail "cohort status --json failed: $(first_line "$TD/status.err")"; }
}

# json_fields FILE KEY...: the values of KEYs in the (last) JSON object of
# FILE, on one line ("-" for a missing key)
json_fields() {
	"$PYTHON" - "$@" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
try:
    d = json.loads(text)
except ValueError:
    d = json.loads([l for l in text.splitlines() if l.strip()][-1])
print(" ".join("-" if d.get(k) is None else str(d[k]) for k in sys.argv[2:]))
PY
}

# cmd_refused WHAT ERE CMD...: CMD fails (not by timing out) within TMO, with
# one line on stderr matching ERE
cmd_refused() {
	local what=$1 ere=$2 rc
	shift 2
	timeout -k 5 "$TMO" "$@" >"$TD/refused.out" 2>"$TD/refused.err" </dev/null
	rc=$?
	note_file "$what" "$TD/refused.err" 3
	[ $rc != 0 ] && [ $rc != 124 ] || fail "$what: status $rc, expected a refusal"
	[ "$(wc -l <"$TD/refused.err")" = 1 ] || fail "$what: the refusal is not one line"
	grep -qE "$ere" "$TD/refused.err" || fail "$what: the refusal does not say why: $(first_line "$TD/refused.err")"
}

# ckpt_refused TAG WHAT ERE [ARGS...]: a checkpoint of GNAME (with ARGS) that
# must be refused while the program runs on: a non-zero status, one line on
# stderr matching ERE, no generation committed, and TAG's command still alive
ckpt_refused() {
	local tag=$1 what=$2 ere=$3 rc
	shift 3
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" "$@" >"$TD/ck.out" 2>"$TD/ck.err"
	rc=$?
	note_file "refused checkpoint ($what)" "$TD/ck.err" 3
	[ $rc != 0 ] || fail "a checkpoint with $what succeeded"
	[ "$(wc -l <"$TD/ck.err")" = 1 ] || fail "the refusal ($what) is not one line"
	grep -qE "$ere" "$TD/ck.err" || fail "the refusal ($what) does not say what it should: $(first_line "$TD/ck.err")"
	[ ! -d "$IMG/$GNAME/gen-000001" ] || fail "a generation was committed ($what)"
	bg_alive "$tag" || fail "the program ended after the refused checkpoint ($what)"
}

# refused_then_kept BEFORE WHAT ERE AFTER [ARGS...]: the program of PCMD
# (prog_cmd), run natively with go.1 and go.2 there, then under cohort:
# once it prints the line BEFORE a checkpoint (with ARGS) is refused
# (ckpt_refused WHAT ERE); go.1 lets it on until it prints AFTER; then
# checkpoint --kill, go.2, and the restart must end as the native run did
refused_then_kept() {
	local before=$1 what=$2 ere=$3 after=$4
	shift 4
	: >"$TT/go.1"
	: >"$TT/go.2"
	straight_start 0 "${PCMD[@]}"
	rm -f "$TT/go.1" "$TT/go.2"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "$before"
	ckpt_refused run0 "$what" "$ere" "$@"
	: >"$TT/go.1"
	wait_line "$TD/run0.out" "$after"
	ckpt_or_fail "checkpoint 1 (--kill, after $after)" "$GNAME" 1 --kill
	bg_wait run0
	: >"$TT/go.2"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# watch_report TAG PREFIX: SIGUSR1 to the group's program (a watch program,
# tests/progs/common.h), until TAG's stdout has its report, a line beginning
# PREFIX
watch_report() {
	timeout -k 5 "$TMO" "$COHORT" kill "$GNAME" --signal USR1 >/dev/null 2>&1 || fail "cohort kill --signal USR1 failed"
	wait_for "$1's report" grep -q "^$2" "$TD/$1.out"
}

# watch_end TAG: SIGTERM to the group's program, which must end with status 0
watch_end() {
	timeout -k 5 "$TMO" "$COHORT" kill "$GNAME" >/dev/null 2>&1
	bg_wait "$1"
	[ "$RC" = 0 ] || fail "$1 ended with status $RC: $(first_line "$TD/$1.err")"
}
