#!/bin/bash
# SIGPIPE in a pipeline (tests/cases/real.sh, real_yes_head): 40 steps of
# `yes | head -1`, each of which must end with yes killed by SIGPIPE (141)
# and head exiting 0, as outside cohort; prints "step N status 141 0";
# "RESULT ..." at the end.  Anything else prints "ERROR ..." and exits 1.
for ((i = 1; i <= 40; i++)); do
	line=$(yes "y$i" | head -n 1)
	[ "$line" = "y$i" ] || { echo "ERROR step $i: head printed '$line'"; exit 1; }
	yes | head -1 >/dev/null
	st="${PIPESTATUS[*]}"
	[ "$st" = "141 0" ] || { echo "ERROR step $i: yes | head -1 ended with status $st"; exit 1; }
	echo "step $i status $st"
	sleep 0.08
done
echo "RESULT steps 40"
