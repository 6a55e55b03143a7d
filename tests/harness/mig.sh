# tests/harness/mig.sh - sourced by tests/run.sh: the migration tests'
# two hosts and their commands (issue 14; tests/cases/migrate.sh,
# postcopy.sh, wirecrypt.sh, migrate_real.sh).  Two network namespaces
# joined by a veth pair (tests/harness/hosts.sh) are hosts A (10.77.0.1)
# and B (10.77.0.2), each with its own run directory (TD/runA, TD/runB)
# and images directory (IMG/A, IMG/B); with MIG_MNT=1 also its own tmpfs
# over TT/work and over each directory the array MIG_MNT_DIRS names.  The
# group's command line is MIG_ARGV when the test sets it, else bash -c
# MIG_CMD, else bash -c MIG_PROG (migrate.sh's pipeline).
MIG_MNT_DIRS=()

# mig_argv: MIG_ARGV set to the group's command line (see above)
mig_argv() {
	[ -n "${MIG_ARGV+set}" ] || MIG_ARGV=(/bin/bash -c "${MIG_CMD:-$MIG_PROG}")
}

# mig_ns: a process in a network namespace of its own (unshare -n), kept
# for the test's life: its pid in NSPID.  The namespace goes with it, and it
# goes when the test ends however it ends (it carries the test's marker).
mig_ns() {
	if [ -n "${MIG_MNT:-}" ]; then
		unshare -n -m --propagation private sleep 100000 &
	else
		unshare -n sleep 100000 &
	fi
	NSPID=$!
	echo "$NSPID" >>"$TD/pids"
	wait_for "a network namespace of its own" netns_made "$NSPID"
}

# mig_hosts: the two namespaces joined by a veth pair, the token, the
# straight run (go files made for it in advance) and each side's directories
mig_hosts() {
	mig_net
	: >"$TT/go.1"
	: >"$TT/go.2"
	mig_argv
	straight_start 0 "${MIG_ARGV[@]}"
	rm -f "$TT/go.1" "$TT/go.2"
}

# mig_net: mig_hosts but for the straight run
mig_net() {
	[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
	command -v ip >/dev/null || skip "needs ip (iproute2)"
	mig_ns
	PA=$NSPID
	mig_ns
	PB=$NSPID
	hosts_join "$PA" "$PB" || fail "cannot join the two network namespaces"
	mkdir -p "$TD/runA" "$TD/runB" "$IMG/A" "$IMG/B"
	if [ -n "${MIG_MNT:-}" ]; then # the work directory: each host's own (the straight run: TT's copy's)
		local d
		for d in "$TT/work" "${MIG_MNT_DIRS[@]}"; do
			mkdir -p "$d" &&
				nsenter -t "$PA" -m mount -t tmpfs -o size=16m,mode=700 work "$d" &&
				nsenter -t "$PB" -m mount -t tmpfs -o size=16m,mode=700 work "$d" ||
				fail "cannot mount a tmpfs over $d in each host"
		done
	fi
	chmod 700 "$TD/runA" "$TD/runB"
	printf 'the secret of this test\n' >"$TD/token"
	chmod 600 "$TD/token"
}

# host HOST: in ON, the command line that runs a command as HOST (A or B)
# does: in its network namespace, with its run directory (nsenter keeps
# the environment, and so the test's marker); on HOST CMD... runs one
host() {
	local pid=$PA
	[ "$1" = B ] && pid=$PB
	# (entering a mount namespace moves to its root: the working directory is kept, for a relative COHORT)
	ON=(nsenter -t "$pid" -n ${MIG_MNT:+-m "--wd=$PWD"} env COHORT_RUN_DIR="$TD/run$1")
}
on() {
	host "$1"
	"${ON[@]}" "${@:2}"
}

# mig_run TAG [N]: the group starts on A, and has printed its first N lines (10)
mig_run() {
	mig_argv
	host A
	bg_start "$1" "${ON[@]}" "$COHORT" run --name "$GNAME" --images "$IMG/A" -- "${MIG_ARGV[@]}"
	wait_lines "${2:-10}" "$1"
}

# mig_receive TAG HOST [ENV...]: `cohort receive` on HOST, on a port it picks; its port in PORT
mig_receive() {
	local tag=$1 host=$2 addr=10.77.0.1
	shift 2
	[ "$host" = B ] && addr=10.77.0.2
	host "$host"
	bg_start "$tag" "${ON[@]}" "$@" "$COHORT" receive --listen "$addr:0" --token-file "$TD/token" \
		--images "$IMG/$host"
	mig_listening "$tag" "$addr"
}

# mig_listening TAG ADDR: wait for receive TAG's "listening on ADDR:PORT"; its port in PORT, TO=ADDR:PORT
mig_listening() {
	wait_for "$1: no 'listening on' line" grep -qs "^listening on $2:[0-9]" "$TD/$1.err"
	PORT=$(sed -n "s/^listening on $2:\([0-9]*\)\$/\1/p" "$TD/$1.err")
	TO=$2:$PORT
}

# mig_go HOST TAG [ARGS...]: `cohort migrate` of the group from HOST to TO; its status in RC, output in TD/TAG.*
mig_go() {
	local host=$1 tag=$2
	shift 2
	# in a child: the notice of bash about a background job killed meanwhile must not go to TAG.err
	host "$host"
	("${ON[@]}" timeout -k 5 "$TMO" "$COHORT" migrate "$GNAME" --to "$TO" --token-file "$TD/token" "$@" \
		>"$TD/$tag.out" 2>"$TD/$tag.err")
	RC=$?
}

# mig_ok TAG: the migration TAG succeeded
mig_ok() {
	[ "$RC" = 0 ] || fail "$1: status $RC: $(first_line "$TD/$1.err")"
}

# mig_failed TAG TEXT: the migration TAG failed (status 1) in one line holding TEXT
mig_failed() {
	[ "$RC" = 1 ] || fail "$1: status $RC, expected 1: $(first_line "$TD/$1.err")"
	[ "$(wc -l <"$TD/$1.err")" = 1 ] || fail "$1: not one line on stderr: $(tr '\n' '|' <"$TD/$1.err")"
	grep -q -- "$2" "$TD/$1.err" || fail "$1: no '$2' in: $(first_line "$TD/$1.err")"
}

# migrated TAG TO: TAG (a run, restart or receive) ended with status 0, saying the group went to TO
migrated() {
	bg_wait "$1"
	[ "$RC" = 0 ] || fail "$1: status $RC after the group left: $(first_line "$TD/$1.err")"
	grep -qx "cohort: group $GNAME migrated to $2" "$TD/$1.err" ||
		fail "$1: no 'migrated to $2' line: $(first_line "$TD/$1.err")"
}

# runs_at HOST: the group answers `cohort status` at HOST
runs_at() { on "$1" "$COHORT" status "$GNAME" >/dev/null 2>&1; }

# no_generation HOST: nothing of the group was kept on HOST
no_generation() {
	local left
	left=$(ls -A "$IMG/$1/$GNAME" 2>/dev/null | grep -v '^LOCK$' | tr '\n' ' ')
	[ -z "$left" ] || fail "$1 kept $left of a migration that failed"
}

# rounds_of TAG: the rounds migrate --json TAG reported
rounds_of() { sed -n 's/.*"rounds":\([0-9]*\).*/\1/p' "$TD/$1.out"; }

# committed_at HOST: the generations HOST has of the group (committed ones: gen-N)
committed_at() { ls "$IMG/$1/$GNAME" 2>/dev/null | grep '^gen-' | tr '\n' ' '; }

# mig_restart_a GEN: the pipeline's steps let go, the group restarted at A
# from generation GEN ends with the RESULT (a background merge a dead
# coordinator started may hold the images a moment longer: waited for)
mig_restart_a() {
	: >"$TT/go.1"
	: >"$TT/go.2"
	flock -w "$TMO" "$IMG/A/$GNAME/LOCK" true || fail "the images at A stay locked"
	host A
	bg_start rsA "${ON[@]}" "$COHORT" restart "$GNAME" --images "$IMG/A" --generation "$1"
	bg_wait rsA
	final_check 0 "$RC" rsA run0 rsA
}
