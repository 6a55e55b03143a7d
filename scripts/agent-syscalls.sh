#!/bin/sh
# agent-syscalls.sh SYS_H FILE... - the system calls the agent makes inside
# a program's process, as C table rows { SYS_name, "name" }, for the
# coordinator's check of a program's seccomp filters (src/cli/seccomp.c).
#
# Read from the source, so that a system call the agent starts to make is
# checked from then on: every SYS_name in FILE..., and those of the co_*
# wrappers of SYS_H (src/common/sys.h) each file calls, leaving out what
# is compiled into the restorer only (#ifdef COHORT_RESTORER, #else of
# #ifndef COHORT_RESTORER).  The system calls of the assembly files are
# named in the table by hand (FIXED below).  A line marked "seccomp:
# unfiltered only" is left out: its call is made only where PR_GET_SECCOMP
# says there is no filter (boost.c's sched_setattr).
set -e
sys_h=$1
shift
# rt_sigreturn: ctx.S and the return from the handler; clone3, exit: clone.S
FIXED="rt_sigreturn clone3 exit"
{
	# "WRAPPER name SYS..." : each wrapper of sys.h with what its body names
	awk '
	/^static inline/ && match($0, /co_[a-z0-9_]+\(/) {
		fn = substr($0, RSTART, RLENGTH - 1)
	}
	fn != "" {
		line = $0
		while (match(line, /SYS_[a-z0-9_]+|co_[a-z0-9_]+\(/)) {
			tok = substr(line, RSTART, RLENGTH)
			sub(/\($/, "", tok)
			if (tok != fn)
				uses[fn] = uses[fn] " " tok
			line = substr(line, RSTART + RLENGTH)
		}
	}
	/^}/ || /^static inline.*}$/ { if (fn != "") print "WRAPPER", fn, uses[fn]; fn = "" }
	' "$sys_h"
	# "USE token" : every SYS_ and co_ name outside restorer-only code
	for f in "$@"; do
		awk '
		/^#[ \t]*if/ {
			r = /ifdef[ \t]+COHORT_RESTORER/ || /if[ \t]+defined\(COHORT_RESTORER\)/ ? 1 : /ifndef[ \t]+COHORT_RESTORER/ ? 2 : 0
			st[++d] = r
			next
		}
		/^#[ \t]*else/ { if (st[d] == 1) st[d] = 2; else if (st[d] == 2) st[d] = 1; next }
		/^#[ \t]*endif/ { d--; next }
		/^#[ \t]*define/ { next }
		# a call the agent makes only in a process without seccomp filters (boost.c)
		/seccomp: unfiltered only/ { next }
		{
			for (i = 1; i <= d; i++)
				if (st[i] == 1)
					next
			line = $0
			while (match(line, /SYS_[a-z0-9_]+|co_[a-z0-9_]+\(/)) {
				tok = substr(line, RSTART, RLENGTH)
				sub(/\($/, "", tok)
				print "USE", tok
				line = substr(line, RSTART + RLENGTH)
			}
		}' "$f"
	done
} | awk -v fixed="$FIXED" '
	$1 == "WRAPPER" { for (i = 3; i <= NF; i++) w[$2] = w[$2] " " $i; next }
	$1 == "USE" { want[$2] = 1 }
	function add(tok,   n, a, i) {
		if (seen[tok]++)
			return
		if (tok ~ /^SYS_/) {
			sys[substr(tok, 5)] = 1
			return
		}
		n = split(w[tok], a, " ")
		for (i = 1; i <= n; i++)
			add(a[i])
	}
	END {
		for (t in want)
			add(t)
		n = split(fixed, a, " ")
		for (i = 1; i <= n; i++)
			sys[a[i]] = 1
		for (s in sys)
			if (s !~ /^sys[0-9]$/)
				print s
	}' | sort | while read -r name; do
	printf '#ifdef SYS_%s\n{ SYS_%s, "%s" },\n#endif\n' "$name" "$name" "$name"
done
