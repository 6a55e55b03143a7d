# tests/cases/completion.sh - sourced by tests/run.sh.
#
# completion: scripts/cohort.bash, sourced into `bash --norc --noprofile`
# (once on its own, once after bash-completion's helpers when they are
# installed). Each case sets COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT,
# calls _cohort and compares COMPREPLY, sorted, with the exact expected set.
# Group names and generations come from fake image directories under $TD,
# running groups from a fake cohort that answers `list`; the real cohort
# binary is not used.

t_completion() {
	local script=$ROOT/scripts/cohort.bash
	[ -f "$script" ] || fail "missing $script"

	# image directories: --images, $COHORT_IMAGES, $XDG_DATA_HOME/cohort, ~/.local/share/cohort
	local imgs=$TD/imgs
	mkdir -p "$imgs/grp/gen-000001" "$imgs/grp/gen-000012" "$imgs/grp/full-000012" \
		"$imgs/empty" "$imgs/.hidden/gen-000001" \
		"$TD/xdg/cohort/xgrp/gen-000007" "$TD/home/.local/share/cohort/hgrp/gen-000100" \
		"$TD/bin" "$TD/args/sub" || fail "mkdir failed"
	: >"$imgs/notadir"
	: >"$imgs/grp/gen-000020" # a file, not a generation
	local g1=$imgs/grp/gen-000001
	mkdir -p "$g1/files" && : >"$g1/manifest" && : >"$g1/proc-2.img" && : >"$g1/proc-3.img.zst" ||
		fail "cannot create $g1"
	printf '#!/bin/sh\n' >"$TD/bin/prog" && chmod +x "$TD/bin/prog"
	: >"$TD/args/file1" && : >"$TD/args/file2"
	# a fake cohort: `list` prints two running groups
	mkdir -p "$TD/fake" "$TD/fakepath"
	printf '#!/bin/sh\n[ "$1" = list ] && printf "alpha\\nbeta\\n"\nexit 0\n' >"$TD/fake/cohort-fake"
	printf '#!/bin/sh\n[ "$1" = list ] && printf "gamma\\n"\nexit 0\n' >"$TD/fakepath/cohort"
	chmod +x "$TD/fake/cohort-fake" "$TD/fakepath/cohort"

	# ---- the cases ----
	local cases=$TD/cases.sh
	local -A exp=()
	local -a order=()
	: >"$cases"
	# want LABEL 'EXPECTED WORDS' [VAR=VALUE...] -- WORD...: the last word is the one
	# being completed, or word CASE_CWORD when that is among the variables
	want() {
		local label=$1 e=$2 v
		shift 2
		local -a envs=()
		while [ $# -gt 0 ] && [ "$1" != -- ]; do
			envs+=("$1")
			shift
		done
		shift
		exp[$label]=$(printf '%s\n' $e | LC_ALL=C sort | paste -sd' ' -)
		order+=("$label")
		{
			printf '('
			for v in "${envs[@]}"; do printf 'export %q; ' "$v"; done
			printf 'c %q' "$label"
			printf ' %q' "$@"
			printf ')\n'
		} >>"$cases"
	}
	local cmds="run checkpoint restart status list kill inspect verify migrate receive help"
	local ckopts="--images --kill --json --stop --incremental --full --compress --no-precopy --reconnect-outside --help"

	want top_all "$cmds" -- cohort ''
	want top_ch "checkpoint" -- cohort ch
	want top_r "run restart receive" -- cohort r
	want top_dashdash "--help --version" -- cohort --
	want top_none "" -- cohort zz
	want help_cmds "$cmds" -- cohort help ''
	want help_v "verify" -- cohort help v
	want help_done "" -- cohort help kill ''

	want ckpt_k "--kill" -- cohort checkpoint --k
	want ckpt_opts "$ckopts" -- cohort checkpoint alpha --
	want ckpt_in "--incremental" -- cohort checkpoint alpha --in
	want restart_n "--no-precopy" -- cohort restart grp --n
	want run_opts_f "--full-every" -- cohort run --f
	want run_r "--replace" -- cohort run --name x --r
	want list_opts "--json --help" -- cohort list -
	want kill_opts "--signal --json --help" -- cohort kill alpha --
	want migrate_to "--to --token-file" -- cohort migrate alpha --to
	want receive_opts "--listen --token-file --images --json --help" -- cohort receive --
	want migrate_running "alpha beta" COHORT="$TD/fake/cohort-fake" -- cohort migrate ''

	# running groups: `$COHORT list`, else `cohort list` from PATH
	want ckpt_running "alpha beta" COHORT="$TD/fake/cohort-fake" -- cohort checkpoint ''
	want status_running_b "beta" COHORT="$TD/fake/cohort-fake" -- cohort status b
	want kill_running "alpha beta" COHORT="$TD/fake/cohort-fake" -- cohort kill ''
	want ckpt_path "gamma" PATH="$TD/fakepath:$PATH" -- cohort checkpoint ''
	want ckpt_second "" COHORT="$TD/fake/cohort-fake" -- cohort checkpoint alpha ''

	# groups with images, from each source of the images directory
	want restart_images "grp" -- cohort restart --images "$imgs" ''
	want restart_images_eq "grp" -- cohort restart --images = "$imgs" ''
	want restart_images_after "grp" CASE_CWORD=2 -- cohort restart '' --images "$imgs"
	want restart_images_g "grp" -- cohort restart --images "$imgs" g
	want restart_env "grp" COHORT_IMAGES="$imgs" XDG_DATA_HOME="$TD/xdg" -- cohort restart ''
	want restart_xdg "xgrp" XDG_DATA_HOME="$TD/xdg" -- cohort restart ''
	want restart_home "hgrp" -- cohort restart ''
	want restart_second "" -- cohort restart grp --images "$imgs" ''

	# generations of the group on the line
	want gen_all "1 12" -- cohort restart grp --images "$imgs" --generation ''
	want gen_1 "1 12" -- cohort restart grp --images "$imgs" --generation 1
	want gen_12 "12" -- cohort restart grp --images "$imgs" --generation 12
	want gen_eq "1 12" -- cohort restart grp --images "$imgs" --generation =
	want gen_eq_1 "12" -- cohort restart grp --images "$imgs" --generation = 12
	want gen_before "1 12" CASE_CWORD=4 -- cohort restart grp --generation '' --images "$imgs"
	want gen_env "7" XDG_DATA_HOME="$TD/xdg" -- cohort restart xgrp --generation ''
	want gen_home "100" -- cohort restart hgrp --generation ''
	want gen_nogroup "" -- cohort restart --images "$imgs" --generation ''

	# signals
	want sig_k "KILL" -- cohort kill alpha --signal K
	want sig_t "TERM TRAP TSTP TTIN TTOU" -- cohort kill alpha --signal T
	want sig_sigk "SIGKILL" -- cohort kill alpha --signal SIGK
	want sig_run "" -- cohort run --signal ''
	want sig_count "HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH POLL PWR SYS" \
		-- cohort kill alpha --signal ''

	# directories and image files
	want images_dir "$imgs/grp" -- cohort checkpoint alpha --images "$imgs/g"
	want verify_dir "$imgs/grp" -- cohort verify "$imgs/g"
	want verify_gens "$imgs/grp/full-000012 $imgs/grp/gen-000001 $imgs/grp/gen-000012" -- cohort verify "$imgs/grp/"
	want inspect_gen "$g1/files $g1/proc-2.img $g1/proc-3.img.zst" -- cohort inspect "$g1/"

	# run: options, then the program (commands, or files for a path), then its arguments
	want run_prog "zzcohortprog" -- cohort run --name x -- zzcohort
	want run_prog_nodash "zzcohortprog" -- cohort run --interval 5 zzcohort
	want run_prog_path "$TD/bin/prog" -- cohort run -- "$TD/bin/p"
	want run_args "$TD/args/file1 $TD/args/file2" -- cohort run -- "$TD/bin/prog" "$TD/args/f"
	want run_name_value "" -- cohort run --name ''

	# ---- run them: plain bash, then with bash-completion ----
	local driver=$TD/driver.sh
	cat >"$driver" <<'EOF'
# driver.sh SCRIPT CASES [BASH_COMPLETION]
if [ -n "${3-}" ]; then
	. "$3" || exit 90
else
	set -u # the completion must work under nounset too
fi
. "$1" || exit 91
zzcohortprog() { :; }
c() {
	local label=$1
	shift
	COMP_WORDS=("$@")
	COMP_CWORD=${CASE_CWORD:-$(($# - 1))}
	COMP_LINE="$*"
	local upto="${COMP_WORDS[*]:0:COMP_CWORD+1}"
	COMP_POINT=${#upto}
	COMPREPLY=()
	_cohort
	printf '%s\t%s\n' "$label" "$( ((${#COMPREPLY[@]})) && printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort | paste -sd' ' -)"
}
. "$2"
EOF
	local modes=(plain) bc=/usr/share/bash-completion/bash_completion
	if [ -f "$bc" ]; then
		modes+=(bash-completion)
	else
		note "bash-completion is not installed: checked in plain bash only"
	fi
	local mode out err rc label got bad=0
	for mode in "${modes[@]}"; do
		out=$TD/out.$mode
		err=$TD/err.$mode
		(cd "$TD/home" && env -i HOME="$TD/home" PATH="$PATH" TERM=dumb LC_ALL=C \
			bash --norc --noprofile "$driver" "$script" "$cases" \
			"$([ "$mode" = plain ] || echo "$bc")") >"$out" 2>"$err" </dev/null
		rc=$?
		[ $rc = 0 ] || { note_file "stderr ($mode)" "$err"; fail "$mode: the driver exited with status $rc"; }
		if [ -s "$err" ]; then
			note_file "stderr ($mode)" "$err"
			fail "$mode: completion wrote to stderr"
		fi
		for label in "${order[@]}"; do
			got=$(awk -F '\t' -v l="$label" '$1 == l { print $2; n++ } END { exit n != 1 }' "$out") ||
				{ note "$mode $label: no (or several) results"; bad=$((bad + 1)); continue; }
			if [ "$got" != "${exp[$label]}" ]; then
				note "$mode $label: expected [${exp[$label]}], got [$got]"
				bad=$((bad + 1))
			fi
		done
	done
	[ $bad = 0 ] || fail "$bad completion case(s) wrong"
	note "${#order[@]} cases checked (${modes[*]})"
}
