# tests/cases/wirecrypt.sh - sourced by tests/run.sh: the migration stream
# is encrypted and authenticated after the proof of the token
# (src/cli/wire_crypt.c), on the hosts and pipeline of tests/cases/migrate.sh.
#   wirecrypt_sealed    the group holds a random mark in memory (its images at
#                       A have it in the clear: the bytes sent carry it); what
#                       each side put on the socket (COHORT_WIRE_TAP) is at
#                       least the size of those images and holds no trace of
#                       it; the group ends right at B
#   wirecrypt_tampered  one bit of one frame changed on its way
#                       (COHORT_WIRE_FLIP): from the source in the middle of
#                       the generation, then one left out (COHORT_WIRE_DROP),
#                       then one changed from the target in its first
#                       answer; the side that reads it refuses the frame in
#                       one line naming it, the other gives up, the group
#                       runs on at A, B keeps nothing, and it ends right

# wc_mark: a mark of random hex in MARK, held by the pipeline's first process (its
# command line, and a variable of it); MIG_CMD runs the pipeline with it
wc_mark() {
	MARK=wire-mark-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	MIG_CMD="mark=$MARK; mark2=\${mark}\${mark}; $MIG_PROG"
}

# tap_clean TAP: TD/TAP was written, and holds no trace of the mark
tap_clean() {
	[ -s "$TD/$1" ] || fail "$1: nothing was tapped (COHORT_WIRE_TAP)"
	! grep -aqF "$MARK" "$TD/$1" || fail "$1: the mark crossed the wire in the clear"
	! grep -aqF "${MARK#wire-mark-}" "$TD/$1" || fail "$1: the mark's digits crossed the wire in the clear"
}

t_wirecrypt_sealed() {
	wc_mark
	mig_hosts
	mig_run run0
	mig_receive recvB B COHORT_WIRE_TAP="$TD/tapB"
	COHORT_WIRE_TAP=$TD/tapA mig_go A mig1
	mig_ok mig1
	migrated run0 "$TO"
	# the control: what was sent (the generations at A) has the mark in the clear
	local sent
	sent=$(cat "$IMG/A/$GNAME"/gen-*/proc-*.img | wc -c)
	cat "$IMG/A/$GNAME"/gen-*/proc-*.img | grep -aqF "$MARK" ||
		fail "the images at A do not hold the mark: the test shows nothing"
	tap_clean tapA
	tap_clean tapB
	[ "$(stat -c %s "$TD/tapA")" -ge "$sent" ] ||
		fail "A put $(stat -c %s "$TD/tapA") bytes on the socket, less than the $sent of its images"
	: >"$TT/go.1"
	: >"$TT/go.2"
	bg_wait recvB
	final_check 0 "$RC" recvB run0 recvB
}

# wc_source_tampered TAG RECV VAR=N WHAT: migrate (TAG) sends with frame 20
# damaged by VAR=N: the receiver RECV refuses it in one line naming frame
# 20 and keeps nothing; the group runs on at A
wc_source_tampered() {
	local tag=$1 recv=$2 env=$3 what=$4
	mig_receive "$recv" B
	local -x "$env" # for migrate alone
	mig_go A "$tag"
	unset "${env%%=*}"
	mig_failed "$tag" "the group runs on here"
	bg_wait "$recv"
	[ "$RC" = 1 ] || fail "$recv: status $RC with $what, expected 1: $(first_line "$TD/$recv.err")"
	grep -q "migration stream from 10.77.0.1:[0-9]*: frame 20 failed authentication" "$TD/$recv.err" ||
		fail "$recv: $(tail -n 1 "$TD/$recv.err")"
	[ "$(grep -vc '^listening on' "$TD/$recv.err")" = 1 ] || fail "$recv: not one line: $(tr '\n' '|' <"$TD/$recv.err")"
	no_generation B
}

t_wirecrypt_tampered() {
	mig_hosts
	mig_run run0
	# frame 20 from the source: within the first generation's images (HELLO is frame 1, each message
	# a frame of its own, the images 64 KiB a frame), with more to come right after it
	wc_source_tampered src recvB COHORT_WIRE_FLIP=20 "a frame changed"
	# frame 20 left out: frame 21 comes where 20 was due, and fails as 20
	wc_source_tampered drop recvB3 COHORT_WIRE_DROP=20 "a frame left out"
	# frame 1 from the target: its OK to HELLO
	mig_receive recvB2 B COHORT_WIRE_FLIP=1
	mig_go A dst
	mig_failed dst "migration stream from $TO: frame 1 failed authentication"
	bg_wait recvB2
	[ "$RC" = 1 ] || fail "recvB2: status $RC, expected 1: $(first_line "$TD/recvB2.err")"
	no_generation B
	: >"$TT/go.1"
	: >"$TT/go.2"
	bg_wait run0
	final_check 0 "$RC" run0 run0
}
