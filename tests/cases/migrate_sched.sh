# tests/cases/migrate_sched.sh - sourced by tests/run.sh: a migration's
# incremental rounds and small stop run cohort's steps at SCHED_FIFO 1 (src/common/boost.h), and
# nothing of it stays, in the program or in cohort's processes.
#   migrate_sched  thread_attrs8 (threads at SCHED_IDLE nice 4, SCHED_FIFO 5
#                  nice 6 and the default, each checking its own at every
#                  step) moves A -> B after two rounds (round 1 and the stop
#                  incremental): migrate and receive say (COHORT_TRACE) that
#                  their part of the stop ran at SCHED_FIFO 1, A's
#                  coordinator that its part of round 1 and the stop did;
#                  at B each thread has the policy, priority and nice it
#                  had at A, every process of cohort's there
#                  (receive, init, fillers) runs at SCHED_OTHER again, and the
#                  program ends with the straight run's output.
#   migrate_seccomp  seccomp_filters (filters over every thread; one kills
#                  the process at sched_setattr) moves A -> B the same way,
#                  round 1 and the stop boosted: the agent's manager,
#                  made under the program's filters, must leave its own
#                  boost out (PR_GET_SECCOMP), and the restorer at B must
#                  put its threads' scheduling back before it installs the
#                  filters again; each thread goes on checking its filters
#                  at B, and the output is the straight run's.

# thread_sched PID...: "comm policy rt_priority nice" of each thread of each PID, sorted
thread_sched() {
	local p t f c
	for p in "$@"; do
		for t in /proc/"$p"/task/*; do
			# the fields after the comm: state is the first; nice, rt_priority, policy are 19, 40, 41
			f=$(sed 's/^.*) //' "$t/stat" 2>/dev/null | awk '{ print $39, $38, $17 }')
			c=$(cat "$t/comm" 2>/dev/null)
			[ -n "$f" ] && printf '%s %s\n' "$c" "$f" # (a thread gone meanwhile: none)
		done
	done | sort
}

# group_host_pids HOST: the host pids of the group's processes at HOST
group_host_pids() {
	real_pids "$1" | tr ' ' '\n' | sed -n 's/^[0-9]*://p'
}

# descendants PID: PID's descendants (not PID), one a line
descendants() {
	local p
	for p in $(ps -e -o pid= -o ppid= | awk -v pp="$1" '$2 == pp { print $1 }'); do
		echo "$p"
		descendants "$p"
	done
}

# gated_start PROG LINES: PROG (with its argument "gate") runs at A as run0
# until LINES lines and its gate "mid"; the straight run beside it
gated_start() {
	prog_cmd "$1"
	MIG_ARGV=("${PCMD[@]}" gate)
	mig_hosts
	COHORT_TRACE=1 COHORT_TEST_END_GATE=1 mig_run run0 "$2"
	wait_for "the program at its gate 'mid'" test -e "$TT/at-mid"
}

# gated_end: the program let go at B (recvB) to its end, the straight run's output
gated_end() {
	: >"$TT/mid"
	: >"$TT/end"
	bg_wait recvB
	final_check 0 "$RC" recvB run0 recvB
}

# boosted_migration: run0 (at A, its coordinator traced) moves to B after
# two rounds, so that round 1 and the stop are incremental and boosted:
# migrate, receive (recvB) and A's coordinator say under COHORT_TRACE that
# their part ran at SCHED_FIFO 1, the coordinator for round 1 and the stop
# only (the full round 0 is not boosted)
boosted_migration() {
	mig_receive recvB B COHORT_TRACE=1
	# (a downtime nothing fits in: round 0 never ends the rounds)
	COHORT_TRACE=1 mig_go A mig1 --json --max-rounds 2 --downtime-ms 0.001
	mig_ok mig1
	migrated run0 "$TO"
	grep -q '"rounds":2,.*"stop":"incremental"' "$TD/mig1.out" ||
		fail "mig1: not two rounds and an incremental stop: $(head -c 300 "$TD/mig1.out")"
	grep -q 'migrate: the stop at SCHED_FIFO 1' "$TD/mig1.err" ||
		fail "mig1: the stop did not run at SCHED_FIFO 1 at A (no trace line; $(grep -c . "$TD/mig1.err") lines)"
	grep -q 'receive: the stop at SCHED_FIFO 1' "$TD/recvB.err" ||
		fail "recvB: the stop did not run at SCHED_FIFO 1 at B (no trace line)"
	local boosted
	boosted=$(sed -n 's/^cohort-trace: [0-9.]* [0-9]* checkpoint \([0-9]*\): at SCHED_FIFO 1$/\1/p' "$TD/run0.err" | tr '\n' ' ')
	[ "$boosted" = "2 3 " ] ||
		fail "A's coordinator: the checkpoints at SCHED_FIFO 1 were '$boosted', not round 1's and the stop's (2 3)"
}

t_migrate_sched() {
	[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, SCHED_FIFO)"
	gated_start thread_attrs8 9
	local at_a at_b p pids bad own=0
	pids=$(group_host_pids A)
	[ -n "$pids" ] || fail "no process of the group at A: $(first_line "$TD/status.err")"
	# shellcheck disable=SC2086 # a list
	at_a=$(thread_sched $pids)
	grep -q ' 1 5 6$' <<<"$at_a" || fail "no thread at SCHED_FIFO 5 nice 6 at A: $at_a"
	boosted_migration
	pids=$(group_host_pids B)
	[ -n "$pids" ] || fail "no process of the group at B: $(first_line "$TD/status.err")"
	# shellcheck disable=SC2086 # a list
	at_b=$(thread_sched $pids)
	[ "$at_a" = "$at_b" ] || fail "the threads' scheduling at B is not A's: at A: $(tr '\n' ';' <<<"$at_a") at B: \
$(tr '\n' ';' <<<"$at_b")"
	# receive and what it started, but the group: at SCHED_OTHER (0)
	for p in $(cat "$TD/recvB.pid") $(descendants "$(cat "$TD/recvB.pid")"); do
		grep -qx "$p" <<<"$pids" && continue
		own=$((own + 1))
		bad=$(thread_sched "$p" | awk '$(NF - 2) != 0')
		[ -z "$bad" ] || fail "pid $p of cohort's at B left at a policy other than SCHED_OTHER: $(tr '\n' ';' <<<"$bad")"
	done
	[ "$own" -ge 2 ] || fail "only $own processes of cohort's seen at B (receive and init at least)"
	gated_end
}

t_migrate_seccomp() {
	[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, seccomp filters, SCHED_FIFO)"
	gated_start seccomp_filters 5
	boosted_migration
	gated_end
}
