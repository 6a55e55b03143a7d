# Kernel objects (src/kinds/): a group holding one descriptor of every kind
# it can share (tests/progs/kinds_all.c: pipe, eventfd, signalfd, timerfd,
# epoll, Unix socket pair, shared memory, a shared regular file).
#   kinds_all      the standard flow (checkpoint --kill, restart, twice)
#   kinds_inspect  `cohort inspect` of a generation names the kind of every
#                  descriptor of both processes (never "?"), and shared.img
#                  holds each object; the regular file both processes hold
#                  is one record, in shared.img, which each image names as
#                  "shared file" (no offset of its own); the group runs on
#                  to its native output
# Sourced by tests/run.sh.


t_kinds_all() { std kinds_all 0 6 6; }

t_kinds_inspect() {
	prog_cmd kinds_all
	straight_start 0 "${PCMD[@]}"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_lines 5 run0
	ckpt_or_fail "checkpoint 1" "$GNAME" 1
	local g
	g=$(gen_dir "$GNAME" 1)
	"$COHORT" inspect "$g" >"$TD/insp.out" 2>"$TD/insp.err" || fail "inspect $g: $(first_line "$TD/insp.err")"
	"$COHORT" inspect "$g/shared.img" >"$TD/shared.out" 2>"$TD/shared.err" ||
		fail "inspect $g/shared.img: $(first_line "$TD/shared.err")"
	bg_wait run0
	final_check 0 "$RC" run0 run0
	note_file "inspect" "$TD/insp.out" 40
	# "  OFFSET descriptor fd N KIND flags ...": the kind, one or two words before "flags"
	sed -n 's/^ *[0-9]* descriptor  *fd [0-9]* \(.*\) flags .*/\1/p' "$TD/insp.out" | sort | uniq -c >"$TD/kinds"
	note_file "descriptor kinds" "$TD/kinds"
	[ -s "$TD/kinds" ] || fail "inspect shows no descriptor"
	grep -qE ' (\?|shared)$' "$TD/kinds" && fail "inspect does not name the kind of every descriptor"
	local k
	for k in pipe eventfd signalfd timerfd epoll "unix socket" "shared memory" "shared file"; do
		grep -q " $k\$" "$TD/kinds" || fail "no descriptor of kind '$k' in the inspected generation"
	done
	# the shared file: in both processes' images, without an offset of their own
	[ "$(grep -c ' descriptor .* shared file flags [0-7]* (object in shared.img) ' "$TD/insp.out")" = 2 ] ||
		fail "the file both processes hold is not named 'shared file' (object in shared.img) in both images"
	for k in "pipe " "object .*eventfd" "object .*signalfd" "object .*timerfd" "object .*epoll" \
		"unix socket +[0-9]+: stream pair" "shared memory " "shared file "; do
		grep -qE "^ *[0-9]+ $k" "$TD/shared.out" || { note_file "shared.img" "$TD/shared.out" 40; fail "shared.img has no record matching '$k'"; }
	done
	return 0
}
