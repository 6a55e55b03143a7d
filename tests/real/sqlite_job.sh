#!/bin/bash
# sqlite3 (tests/cases/real.sh, real_sqlite): one sqlite3 process, fed
# through a coprocess, inserts 10 rows a step for 50 steps into the database
# file DB (a transaction each), and after each step the script asks it for
# the row count and the sum and checks them; prints "step N rows R sum S";
# "RESULT ..." at the end.  A mismatch prints "ERROR ..." and exits 1.  The
# test checks the file afterwards (integrity_check, count, sum).
# COHORT_TEST_GATES="S1 S2 ...": after step Sk it waits until the file go.k
# exists in COHORT_TEST_TMP (tests/cases/migrate_real.sh migrates it at
# known steps); unset, it never waits.
# usage: sqlite_job.sh DB
set -u
DB=$1
STEPS=50
PER=10
rm -f "$DB" "$DB-journal"
coproc SQL { sqlite3 -batch "$DB"; }
# (bash unsets SQL_PID once it has reaped the coprocess: which may come
# before the wait below, once its input is closed)
sql_pid=$SQL_PID
gate() { # gate STEP
	local k=0 g
	for g in ${COHORT_TEST_GATES:-}; do
		k=$((k + 1))
		[ "$g" = "$1" ] || continue
		while [ ! -e "$COHORT_TEST_TMP/go.$k" ]; do sleep 0.02; done
	done
}
sql() { printf '%s\n' "$@" >&"${SQL[1]}"; }
ask() { # ask QUERY: one line of answer into ANS
	sql "$1"
	IFS= read -r -t 20 ANS <&"${SQL[0]}" || { echo "ERROR no answer from sqlite3 to: $1"; exit 1; }
}
sql "CREATE TABLE t (id INTEGER PRIMARY KEY, step INTEGER, v INTEGER, s TEXT);"
rows=0
sum=0
for ((step = 1; step <= STEPS; step++)); do
	sql "BEGIN;"
	for ((k = 0; k < PER; k++)); do
		v=$(((step * 7919 + k * 104729) % 10007))
		sql "INSERT INTO t (step, v, s) VALUES ($step, $v, 'row $step.$k');"
		rows=$((rows + 1))
		sum=$((sum + v))
	done
	sql "COMMIT;"
	ask "SELECT count(*) || ' ' || sum(v) FROM t;"
	[ "$ANS" = "$rows $sum" ] || { echo "ERROR step $step: the database has '$ANS', expected '$rows $sum'"; exit 1; }
	ask "SELECT count(*) FROM t WHERE step = $step AND s LIKE 'row $step.%';"
	[ "$ANS" = "$PER" ] || { echo "ERROR step $step: $ANS rows of this step"; exit 1; }
	echo "step $step rows $rows sum $sum"
	gate "$step"
	sleep 0.06
done
ask "PRAGMA integrity_check;"
[ "$ANS" = ok ] || { echo "ERROR integrity_check: $ANS"; exit 1; }
exec {SQL[1]}>&-
wait "$sql_pid" || { echo "ERROR sqlite3 exited with $?"; exit 1; }
echo "RESULT steps $STEPS rows $rows sum $sum"
