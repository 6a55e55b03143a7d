# bash completion for cohort(1)                                -*- shell-script -*-
#
# Installed as PREFIX/share/bash-completion/completions/cohort; it can also be
# sourced directly (`. scripts/cohort.bash`), with or without the
# bash-completion package: its helpers (_filedir, _command_offset) are used
# only when they are defined, plain compgen otherwise.
#
# Running groups come from `cohort list` ($COHORT, else the cohort in PATH);
# groups with images and their generations from the images directory
# (--images DIR on the line, else $COHORT_IMAGES, else $XDG_DATA_HOME/cohort,
# else ~/.local/share/cohort).

_cohort_commands=(run checkpoint restart status list kill inspect verify migrate receive help)

# Options of each command; the ones that take a value are listed again below.
_cohort_opts_run=(--name --images --interval --full-every --keep --compress --no-precopy --signal --replace --json --help)
_cohort_opts_checkpoint=(--images --kill --json --stop --incremental --full --compress --no-precopy --reconnect-outside --help)
_cohort_opts_restart=(--images --generation --interval --full-every --keep --compress --no-precopy --json --trust-images --lazy --help)
_cohort_opts_status=(--json --help)
_cohort_opts_list=(--json --help)
_cohort_opts_kill=(--signal --json --help)
_cohort_opts_inspect=(--json --help)
_cohort_opts_verify=(--json --help)
_cohort_opts_migrate=(--to --token-file --json --max-rounds --downtime-ms --postcopy --copy-files --help)
_cohort_opts_receive=(--listen --token-file --images --json --help)
_cohort_opts_help=(--help)
_cohort_valued=" --name --images --interval --full-every --keep --signal --generation --to --token-file --max-rounds --downtime-ms --listen "

# The names `cohort kill --signal` accepts (signals 1-31, as glibc names them).
_cohort_signals=(HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH POLL PWR SYS)

# _cohort_add WORD...: add to COMPREPLY the words that start with $cur.
_cohort_add()
{
	local w
	for w in "$@"; do
		[[ $w == "$cur"* ]] && COMPREPLY+=("$w")
	done
}

# Lines of a command's output (one candidate a line) that start with $cur.
_cohort_add_lines()
{
	local line
	while IFS= read -r line; do
		[[ -n $line && $line == "$cur"* ]] && COMPREPLY+=("$line")
	done
}

_cohort_dirs()
{
	if declare -F _filedir >/dev/null; then
		_filedir -d
	else
		compopt -o filenames 2>/dev/null
		_cohort_add_lines < <(compgen -d -- "$cur")
	fi
}

_cohort_files()
{
	if declare -F _filedir >/dev/null; then
		_filedir
	else
		compopt -o filenames 2>/dev/null
		_cohort_add_lines < <(compgen -f -- "$cur")
	fi
}

# inspect: directories, and image files (*.img, *.img.zst)
_cohort_inspectable()
{
	if declare -F _filedir >/dev/null; then
		_filedir '@(img|zst)'
	else
		compopt -o filenames 2>/dev/null
		local f p
		while IFS= read -r f; do
			p=$(_cohort_path "$f")
			[[ -d $p || $p == *.img || $p == *.img.zst ]] && COMPREPLY+=("$f")
		done < <(compgen -f -- "$cur")
	fi
}

# A word from the line as a path: quotes dropped, a leading ~ expanded.
_cohort_path()
{
	local p=$1
	p=${p//\'/}
	p=${p//\"/}
	# shellcheck disable=SC2088 # the tilde is matched, not expanded
	case $p in
	"~") p=${HOME-} ;;
	"~/"*) p=${HOME-}/${p#"~/"} ;;
	esac
	printf '%s\n' "$p"
}

# The images directory that applies to the line (_cohort_images_opt: the
# value of --images, found by _cohort's scan of the words).
_cohort_images()
{
	if [[ -n $_cohort_images_opt ]]; then
		_cohort_path "$_cohort_images_opt"
	elif [[ -n ${COHORT_IMAGES-} ]]; then
		printf '%s\n' "$COHORT_IMAGES"
	elif [[ -n ${XDG_DATA_HOME-} ]]; then
		printf '%s\n' "$XDG_DATA_HOME/cohort"
	else
		printf '%s\n' "${HOME-}/.local/share/cohort"
	fi
}

# Running groups, from `cohort list`.
_cohort_running()
{
	_cohort_add_lines < <(command "${COHORT:-cohort}" list 2>/dev/null)
}

# Groups that have at least one generation in the images directory.
_cohort_stored()
{
	local dir d g
	dir=$(_cohort_images)
	for d in "$dir"/*/; do
		d=${d%/}
		g=${d##*/}
		[[ -d $d && $g != .* ]] || continue
		compgen -G "$d/gen-*" >/dev/null || continue
		_cohort_add "$g"
	done
}

# Generation numbers of group $1 (gen-000012 -> 12).
_cohort_generations()
{
	local dir d n
	[[ -n $1 ]] || return
	dir=$(_cohort_images)/$1
	for d in "$dir"/gen-*; do
		[[ -d $d ]] || continue
		n=${d##*/gen-}
		[[ $n =~ ^[0-9]+$ ]] || continue
		_cohort_add "$((10#$n))"
	done
}

_cohort()
{
	COMPREPLY=()
	local cword=$COMP_CWORD
	local -a words=("${COMP_WORDS[@]}")
	local cur=${words[cword]-} prev=
	((cword > 0)) && prev=${words[cword - 1]}

	# --opt=VALUE: bash splits it into "--opt" "=" "VALUE"
	if [[ $cur == "=" ]]; then
		prev=${words[cword - 1]}
		cur=
	elif [[ $prev == "=" ]] && ((cword >= 2)); then
		prev=${words[cword - 2]}
	fi

	if ((cword <= 1)); then
		if [[ $cur == -* ]]; then
			_cohort_add --help -h --version
		else
			_cohort_add "${_cohort_commands[@]}"
		fi
		return 0
	fi

	local cmd=${words[1]}

	# Scan the words before the cursor: --images' value, the first operand
	# (a group name), and for run where the program starts.
	local i w name='' prog=-1 _cohort_images_opt=''
	for ((i = 2; i < cword; i++)); do
		w=${words[i]}
		if [[ $cmd == run && $w == -- ]]; then
			prog=$((i + 1))
			break
		fi
		if [[ $w == --* ]]; then
			local val=
			if [[ ${words[i + 1]-} == "=" ]]; then
				((i + 2 < cword)) && val=${words[i + 2]}
				i=$((i + 2))
			elif [[ $_cohort_valued == *" $w "* ]]; then
				((i + 1 < cword)) && val=${words[i + 1]}
				i=$((i + 1))
			fi
			[[ $w == --images ]] && _cohort_images_opt=$val
			continue
		fi
		if [[ $cmd == run ]]; then
			prog=$i
			break
		fi
		[[ -z $name ]] && name=$w
	done
	# --images given after the cursor counts too
	for ((i = cword + 1; i < ${#words[@]}; i++)); do
		if [[ ${words[i]} == --images ]]; then
			if [[ ${words[i + 1]-} == "=" ]]; then
				_cohort_images_opt=${words[i + 2]-}
			else
				_cohort_images_opt=${words[i + 1]-}
			fi
		fi
	done

	# run: the program and its arguments
	if [[ $cmd == run ]]; then
		if ((prog < 0)) && [[ $cur != -* && $prev != "=" && $_cohort_valued != *" $prev "* ]]; then
			prog=$cword
		fi
		if ((prog >= 0)); then
			if ((cword == prog)); then
				if [[ $cur == */* ]]; then
					_cohort_files
				else
					_cohort_add_lines < <(compgen -c -- "$cur" | sort -u)
				fi
			elif declare -F _command_offset >/dev/null; then
				_command_offset "$prog"
			else
				_cohort_files
			fi
			return 0
		fi
	fi

	# the value of an option
	case $prev in
	--images)
		_cohort_dirs
		return 0
		;;
	--generation)
		[[ $cmd == restart ]] && _cohort_generations "$name"
		return 0
		;;
	--signal)
		if [[ $cmd == kill ]]; then
			if [[ $cur == SIG* ]]; then
				local s
				for s in "${_cohort_signals[@]}"; do
					_cohort_add "SIG$s"
				done
			else
				_cohort_add "${_cohort_signals[@]}"
			fi
		fi
		return 0
		;;
	--token-file)
		_cohort_files
		return 0
		;;
	--name | --interval | --full-every | --keep | --to | --listen | --max-rounds | --downtime-ms)
		return 0
		;;
	esac

	if [[ $cur == -* ]]; then
		case " ${_cohort_commands[*]} " in
		*" $cmd "*)
			local opts="_cohort_opts_${cmd}[@]"
			_cohort_add "${!opts}"
			;;
		esac
		return 0
	fi

	case $cmd in
	checkpoint | status | kill | migrate)
		[[ -z $name ]] && _cohort_running
		;;
	restart)
		[[ -z $name ]] && _cohort_stored
		;;
	help)
		((cword == 2)) && _cohort_add "${_cohort_commands[@]}"
		;;
	verify)
		[[ -z $name ]] && _cohort_dirs
		;;
	inspect)
		[[ -z $name ]] && _cohort_inspectable
		;;
	esac
	return 0
}

complete -F _cohort cohort
