# tests/cases/exact_mem.sh - sourced by tests/run.sh: memory and files come
# back exactly as they were (issue 11), or the checkpoint refuses while the
# program still runs, in one line naming process, region or descriptor.

# private mappings of a file, a deleted file, a memfd and a shm object,
# partly the file's pages and partly the program's: every byte checked
ALL_TESTS+=(mem_private mem_fork mem_attrs mem_many mem_guard)
t_mem_private() { std mem_private 0 0.4 0.4; }

# shared anonymous memory between a parent and its child, and private
# memory each writes after the fork (the other must not see it)
t_mem_fork() { std mem_fork 0 0.4 0.4; }

# madvise flags (smaps VmFlags and what fork does with them), THP
# disabled, a mapped file's device and inode, mprotect of file mappings
t_mem_attrs() { std mem_attrs 0 0.4 0.4; }

# more than 8192 regions (10,000 one-page regions)
t_mem_many() { std mem_many 0 0.4 0.4; }

# a PROT_NONE page between readable ones, MAP_GROWSDOWN (guard pages: below)
t_mem_guard() {
	: >"$TT/go.1"
	std mem_guard 0 0.4 0.4 pipe noguard
}

# pages a parent and child share copy-on-write since the fork must come
# back shared copy-on-write.  GROUP_TESTS: each process's memory is
# restored on its own, so shared pages come back as two copies (content
# right, memory doubled, pagemap exclusive); the restore would have to
# fork the child from the restored parent's memory.
ALL_TESTS+=(mem_fork_cow)
GROUP_TESTS+=(mem_fork_cow)
t_mem_fork_cow() { std mem_fork 0 0.4 0.4 pipe cow; }

# refused PROG TAG REGEX [ARGS...]: the program waits (go.1) after
# "ready"; a checkpoint then must fail in one line matching REGEX, commit
# nothing, and leave the program running on to the straight run's output
refused() {
	local prog=$1 tag=$2 re=$3
	shift 3
	prog_cmd "$prog"
	: >"$TT/go.1"
	straight 0 "${PCMD[@]}" "$@"
	rm -f "$TT/go.1"
	bg_start "$tag" "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}" "$@"
	wait_ready "$GNAME" "$tag"
	wait_line "$TD/$tag.out" ready
	timeout -k 5 "$TMO" "$COHORT" checkpoint "$GNAME" --images "$IMG" >"$TD/ck.out" 2>"$TD/ck.err"
	local rc=$?
	note_file "refused checkpoint" "$TD/ck.err" 3
	[ $rc != 0 ] || fail "the checkpoint succeeded; it must be refused"
	[ "$(wc -l <"$TD/ck.err")" = 1 ] || fail "the refusal is not one line"
	grep -qE "$re" "$TD/ck.err" || fail "the refusal does not say where and why: $(first_line "$TD/ck.err")"
	[ ! -d "$IMG/$GNAME/gen-000001" ] || fail "a generation was committed"
	bg_alive "$tag" || fail "the program ended after the refused checkpoint"
	: >"$TT/go.1"
	bg_wait "$tag"
	final_check 0 "$RC" "$tag" "$tag"
}

# guard pages cannot be recorded yet: the checkpoint refuses, naming the
# process, the region and the guard page's address (the writer used to
# read the guard page and die of SIGSEGV: "the image writer died")
ALL_TESTS+=(mem_guard_refused)
t_mem_guard_refused() {
	refused mem_guard guard "pid [0-9]+.*region [0-9a-f]+-[0-9a-f]+ .*guard page \(MADV_GUARD_INSTALL\) at [0-9a-f]+ cannot be saved"
}
