# tests/cases/exact_mem.sh - sourced by tests/run.sh: memory and files come
# back exactly as they were (issue 11), or the checkpoint refuses while the
# program still runs, in one line naming process, region or descriptor.

# private mappings of a file, a deleted file, a memfd and a shm object,
# partly the file's pages and partly the program's: every byte checked
t_mem_private() { std mem_private 0 4 4; }

# the same through live checkpoints (the snapshot fork faults the
# untouched pages in, in its own copy) and an incremental one
t_mem_private_live() { steps_live_flow mem_private 9 --incremental; }

# shared anonymous memory between a parent and its child, and private
# memory each writes after the fork (the other must not see it)
t_mem_fork() { std mem_fork 0 4 4; }

# madvise flags (smaps VmFlags and what fork does with them), THP
# disabled, a mapped file's device and inode, mprotect of file mappings
t_mem_attrs() { std mem_attrs 0 4 4; }

# mem_lock (std.list) through live checkpoints and an incremental one
# (the written-page tracking over locked regions), and under mlockall
t_mem_lock_live() { steps_live_flow mem_lock 8; }
t_mem_lock_all_live() { FLOW_ARGS=all steps_live_flow mem_lock 8; }

# fsize_limit (std.list) through live checkpoints (the snapshot child
# writes) and an incremental one
t_fsize_limit_live() { steps_live_flow fsize_limit 7; }

# more than 8192 regions (10,000 one-page regions).  (It once lost a page
# from /proc/self/maps after a restart, one run in three: the checkpoint
# had caught it reading maps half-way; see proc_files.sh.)
t_mem_many() { std mem_many 0 2 2; }

# a PROT_NONE page between readable ones, MAP_GROWSDOWN (guard pages: below)
t_mem_guard() {
	: >"$TT/go.1"
	std mem_guard 0 4 4 pipe noguard
}

# pages a parent and child share copy-on-write since the fork must come
# back shared copy-on-write (the restorer forks the child from the
# restored parent's memory, which keeps those pages: docs/architecture.md,
# "Pages shared copy-on-write after a fork")
t_mem_fork_cow() { std mem_fork 0 4 4 pipe cow; }

# refused PROG TAG REGEX [ARGS...]: the program waits (go.1) after
# "ready"; a checkpoint then must fail in one line matching REGEX, commit
# nothing, and leave the program running on to the straight run's output
refused() {
	local prog=$1 tag=$2 re=$3
	shift 3
	prog_cmd "$prog"
	: >"$TT/go.1"
	straight_start 0 "${PCMD[@]}" "$@"
	rm -f "$TT/go.1"
	bg_start "$tag" "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}" "$@"
	wait_ready "$GNAME" "$tag"
	wait_line "$TD/$tag.out" ready
	ckpt_refused "$tag" "$prog" "$re"
	: >"$TT/go.1"
	bg_wait "$tag"
	final_check 0 "$RC" "$tag" "$tag"
}

# guard pages cannot be recorded yet: the checkpoint refuses, naming the
# process, the region and the guard page's address (the writer used to
# read the guard page and die of SIGSEGV: "the image writer died")
t_mem_guard_refused() {
	refused mem_guard guard "pid [0-9]+.*region [0-9a-f]+-[0-9a-f]+ .*guard page \(MADV_GUARD_INSTALL\) at [0-9a-f]+ cannot be saved"
}

# memfd_secret(2) memory cannot be read by a checkpoint: refused, naming
# the descriptor, or the region of a mapping of it (it once said the file
# "/secretmem (deleted)" was still linked under another name)
secret_mem_needs() { need_prog secret_mem; "$BIN/secret_mem" probe || skip "no memfd_secret on this kernel"; }
t_secret_fd_refused() {
	secret_mem_needs
	refused secret_mem secret "^cohort: .*pid [0-9]+: fd [0-9]+: secret memory \(memfd_secret\) cannot be saved$" fd
}
t_secret_map_refused() {
	secret_mem_needs
	refused secret_mem secret "^cohort: .*pid [0-9]+: region [0-9a-f]+-[0-9a-f]+: secret memory \(memfd_secret\) cannot be saved$" map
}

# --- files (issue 11).  Their fixes belong in src/res/files.c and
# src/cli/shared.c, which are being rewritten (one file per kernel object
# kind): those that fail today are in GROUP_TESTS until then, each with
# what it finds.

# deleted files: one file opened twice, a file still linked under another
# name, a sparse file, owner/group/mode (captured once for the group,
# src/kinds/file.c; the other name found by co_find_link)
t_file_deleted2() { std file_deleted2 0 4 4; }

# files open(DIR, O_TMPFILE) made (tests/progs/file_tmpfile.c; its
# standard flow is a row of std.list): made so again, nameless, by init
# (src/kinds/file.c), so that the program can link one after a restart;
# linked ones opened again by their name without O_TMPFILE's flags.  The
# live flow: one linked between the live checkpoints, one after the
# restart.  py_tmpfile: Python's tempfile.TemporaryFile, standard flow.
t_file_tmpfile_live() { steps_live_flow file_tmpfile 10; }
t_py_tmpfile() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	flow_standard 0 4 4 pipe "$PYTHON" "$PROGS/py_tmpfile.py"
}

# a deleted directory held open, and a deleted working directory (made
# again and removed by init, src/kinds/file.c)
t_file_dirs() { std file_dirs 0 4 4; }

# directories whose open file description parent and child share
# (tests/progs/dir_shared.c; its standard flow is a row of std.list): one
# read position, status flags and SIGIO owner for both after a restart,
# through live checkpoints (the dump reads the position from fdinfo: the
# program's moves on as it reads)
t_dir_shared_live() { steps_live_flow dir_shared 10; }

# a /proc directory (/proc/self/fd), then a /proc file (/proc/self/status),
# whose description parent and child share: init opens such a description
# again before any process is back, when /proc/PID is not there yet (the
# restart failed: 'cannot reopen /proc/2/status: No such file or
# directory').  Each checkpoint is refused in one line naming process,
# descriptor and path, and the program runs on; both closed, a checkpoint
# --kill and a restart end as the native run did.
t_dir_shared_proc_refused() {
	local why="an open file description it shares with another process, is in the /proc directory of process [0-9]+, which cohort cannot open again before that process is back"
	prog_cmd dir_shared
	PCMD+=(proc)
	: >"$TT/go.1"
	: >"$TT/go.2"
	: >"$TT/go.3"
	straight_start 0 "${PCMD[@]}"
	rm -f "$TT/go.1" "$TT/go.2" "$TT/go.3"
	bg_start run0 "$COHORT" run --name "$GNAME" --images "$IMG" -- "${PCMD[@]}"
	wait_ready "$GNAME" run0
	wait_line "$TD/run0.out" "proc directory shared"
	ckpt_refused run0 "a shared /proc directory" "^cohort: .*pid [0-9]+: fd [0-9]+: /proc/[0-9]+/fd, $why$"
	: >"$TT/go.1"
	wait_line "$TD/run0.out" "proc file shared"
	ckpt_refused run0 "a shared /proc file" "^cohort: .*pid [0-9]+: fd [0-9]+: /proc/[0-9]+/status, $why$"
	: >"$TT/go.2"
	wait_line "$TD/run0.out" "proc closed"
	ckpt_or_fail "checkpoint 1 (--kill, both closed)" "$GNAME" 1 --kill
	bg_wait run0
	: >"$TT/go.3"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# more descriptors of objects recorded for the whole group than the
# coordinator's table holds (CO_MAX_REFS, 8192): 2800 descriptions of a
# directory, each its own, that a parent and two children share.  The
# ones past the table were left out without a word: their holders
# reopened them each (another description, which kcmp tells), a pipe
# would have been missing at the restart.  Refused in one line; all but
# 100 closed, a checkpoint --kill and a restart end as the native run
# did (each kept one still one description in the three, kcmp).
t_dir_shared_many_refused() {
	prog_cmd dir_shared
	PCMD+=(many)
	refused_then_kept "many shared" "8400 shared descriptors" \
		"^cohort: .*pid [0-9]+: fd [0-9]+: /[^ ]*: the group holds more than 8192 descriptors of the objects cohort records for the whole group \(files, directories, pipes, sockets, \.\.\.\), more than it can record$" \
		"many closed"
}

# mtime and atime of files the restore writes back (opened for writing,
# mapped shared-writable) as they were at the checkpoint: the copy is read
# with O_NOATIME and its times recorded (CO_R_FTIMES, src/kinds/file.c),
# set back after it is written back; the restorer maps with O_NOATIME
t_file_times() { std file_times 0 4 4; }

# files a restart opens and maps again by path must be the files the
# checkpoint saw (their size and mtime in the image, struct co_fstamp): a
# file put in the place of one the program reads through a read-only
# descriptor and maps MAP_PRIVATE (tests/progs/file_replaced.c), as a
# package upgrade renames a new file over the old one, is refused in one
# line naming the process, the descriptor and the file, and the program
# does not run; the file put back as it was (content and mtime), the
# restart runs on to the native run's end.
#   file_replaced_refused         the process's own descriptor (the restorer)
#   file_replaced_shared_refused  a descriptor parent and child share (init)
#   exe_replaced_refused          the program's executable (a copy of
#                                 file_replaced in the test's directory)
#                                 replaced by another: refused, naming the
#                                 region; put back, it runs on
t_file_replaced_refused() { file_replaced_flow; }
t_file_replaced_shared_refused() { file_replaced_flow shared; }

# file_replaced_flow [shared]: file_replaced checkpointed, its file replaced, restarted
file_replaced_flow() {
	local f=$TT/file_replaced.data
	run_then_kill file_replaced "$@"
	cp -p "$f" "$TD/orig" || fail "cannot keep $f"
	# another file, the same size, renamed over it (as an upgrade does)
	head -c 8192 /dev/zero | tr '\0' q >"$f.new" && mv "$f.new" "$f" || fail "cannot replace $f"
	cmd_refused "restart with $f replaced" \
		"^cohort: restore failed: (pid [0-9]+, [a-z ]+: |init, [a-z' ]+: pid [0-9]+: )fd [0-9]+: $f changed since the checkpoint \(modified [-0-9: .]+ -> [-0-9: .]+ UTC\): cohort cannot restore it$" \
		"$COHORT" restart "$GNAME" --images "$IMG"
	[ -s "$TD/refused.out" ] && fail "the refused restart ran the program: $(first_line "$TD/refused.out")"
	# put back as it was: its content and its mtime (another inode: not compared)
	cat "$TD/orig" >"$f" && touch -r "$TD/orig" "$f" || fail "cannot put $f back"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

t_exe_replaced_refused() {
	local exe=$TT/file_replaced
	need_prog file_replaced
	need_prog files_offsets
	cp "$BIN/file_replaced" "$exe" || fail "cannot copy file_replaced to $exe"
	cmd_then_kill "$exe"
	mv "$exe" "$TD/exe.orig" || fail "cannot keep $exe"
	cp "$BIN/files_offsets" "$exe.new" && mv "$exe.new" "$exe" || fail "cannot replace $exe"
	cmd_refused "restart with $exe replaced" \
		"^cohort: restore failed: pid [0-9]+, [a-z ]+: region [0-9a-f]+-[0-9a-f]+ \($exe\) changed since the checkpoint \(size [0-9]+ -> [0-9]+, modified [-0-9: .]+ -> [-0-9: .]+ UTC\): cohort cannot restore it$" \
		"$COHORT" restart "$GNAME" --images "$IMG"
	[ -s "$TD/refused.out" ] && fail "the refused restart ran the program: $(first_line "$TD/refused.out")"
	mv "$TD/exe.orig" "$exe" || fail "cannot put $exe back"
	bg_start run1 "$COHORT" restart "$GNAME" --images "$IMG"
	bg_wait run1
	final_check 0 "$RC" run1 run0 run1
}

# descriptor state: O_NONBLOCK and O_ASYNC on pipes and FIFOs, O_APPEND,
# F_SETOWN, F_SETSIG (CO_R_FDOWNER, src/res/files.c), close-on-exec, memfd
# seals (src/kinds/shm.c), O_PATH (also on a symlink), /proc/self/status
t_fd_state() { std fd_state 0 4 4; }

# memfds (src/kinds/shm.c, tests/progs/memfd_state.c): names (with spaces),
# modes, sizes, content, seals (MFD_NOEXEC_SEAL's F_SEAL_EXEC without the
# write and size seals it would add to an executable one), each open file
# description on its own (a read-only reopen through /proc/self/fd stays
# read-only, a write-only O_APPEND one so, each with its offset; a dup
# and a parent and child still share theirs), a MAP_SHARED mapping that
# is one with the descriptors
t_memfd_state() { std memfd_state 0 4 4; }

# the same through live checkpoints (the dump reads each memfd through a
# description of its own: no offset moves)
t_memfd_state_live() { steps_live_flow memfd_state 9; }

# a hugetlb memfd (MFD_HUGETLB) cannot be made again as it was: refused in
# one line naming process and descriptor, the program runs on
t_memfd_huge_refused() {
	grep -qw hugetlbfs /proc/filesystems || skip "no hugetlbfs"
	refused memfd_state huge "^cohort: .*pid [0-9]+: fd [0-9]+: /memfd:huge one \(deleted\) is a memfd on hugetlbfs \(MFD_HUGETLB\), which cohort cannot restore$" huge
}

# huge_pages_need N: N huge pages free in the pool (HugePages_Free), as
# root raising vm.nr_hugepages as far as that needs (and leaving it so:
# tests beside this one may use them), else the test is skipped
huge_pages_need() {
	local free total
	free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
	[ -n "$free" ] || skip "no hugetlb pool on this kernel (no HugePages_Free in /proc/meminfo)"
	if [ "$free" -lt "$1" ] && total=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null); then
		echo $((total + $1 - free)) 2>/dev/null >/proc/sys/vm/nr_hugepages
		free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
	fi
	[ "$free" -ge "$1" ] || skip "needs $1 free huge pages, the pool has $free (as root: echo 20 > /proc/sys/vm/nr_hugepages)"
}

# memory of the hugetlb pool (tests/progs/mem_hugetlb.c): anonymous
# MAP_HUGETLB, shared by parent and child or private, a private mapping of
# an MFD_HUGETLB memfd whose descriptor is closed, an attached SysV segment
# made with SHM_HUGETLB.  Each came back as memory of 4 KiB pages (shared
# memory, private memory, a segment): refused in one line naming process
# and region, the program runs on
hugetlb_refused() {
	huge_pages_need 8
	refused mem_hugetlb "$1" "^cohort: .*pid [0-9]+: region [0-9a-f]+-[0-9a-f]+: $2 is huge page memory \\(hugetlb\\), which cohort cannot restore$" "$1"
}
t_mem_hugetlb_shared_refused() { hugetlb_refused shared "/anon_hugepage \\(deleted\\)"; }
t_mem_hugetlb_private_refused() { hugetlb_refused private "/anon_hugepage \\(deleted\\)"; }
t_mem_hugetlb_memfd_refused() { hugetlb_refused memfd "/memfd:huge private \\(deleted\\)"; }
t_mem_hugetlb_sysv_refused() { hugetlb_refused sysv "/SYSV00000000 \\(deleted\\)"; }

# a SysV segment made with SHM_HUGETLB that nothing attaches at the
# checkpoint (tests/progs/sysv_huge.c: it attaches it at each step only):
# no mapping shows it, its mode keeps permission bits only, and it came
# back as a segment of 4 KiB pages; refused in one line naming the
# segment, the program runs on
t_sysv_huge_refused() {
	huge_pages_need 2
	refused sysv_huge huge "^cohort: .*sysv shm segment [0-9]+ is huge page memory \\(SHM_HUGETLB\\), which cohort cannot restore$"
}

# shared memory mapped read-only (tests/progs/mem_shared_ro.c): memfds
# mapped through a read-only reopen, sealed F_SEAL_WRITE or
# F_SEAL_FUTURE_WRITE before the mapping, /dev/shm files opened O_RDONLY
# (linked and deleted), and a memfd mapped from its read-write descriptor:
# maps, VmFlags mw, mprotect(PROT_WRITE) failing with EACCES (or working
# for the last) and every byte, as before the checkpoint
t_mem_shared_ro() { std mem_shared_ro 0 4 4; }

# the same through live checkpoints and an incremental one (the regions
# read from the snapshot)
t_mem_shared_ro_live() { steps_live_flow mem_shared_ro 9; }

# a memfd mapped read-only from its read-write descriptor, then sealed
# F_SEAL_FUTURE_WRITE: mprotect can make the mapping writable, which a
# restart (sealing before it maps) could not give it: refused in one line
# naming process and region, the program runs on
t_mem_shared_ro_refused() {
	refused mem_shared_ro premapped "^cohort: .*pid [0-9]+: region [0-9a-f]+-[0-9a-f]+: /memfd:premapped future \(deleted\) is mapped where mprotect can make it writable and sealed with F_SEAL_FUTURE_WRITE, which cohort cannot restore$" premapped
}

# one object mapped shared twice, read-only first (in maps order, or by
# the parent) and read-write after (tests/progs/mem_shared_twice.c): a
# file mapped by one process, a file mapped by parent and child, a memfd
# window; the files overwritten while the group is down (size and mtime
# kept) must come back as the checkpoint saw them (it once copied no file
# the read-only mapping came first for)
t_mem_shared_twice() { FLOW_DOWN=twice_overwrite std mem_shared_twice 0 4 4; }

# twice_overwrite: the files of mem_shared_twice, all bytes 0xff, their size and mtime as they were
twice_overwrite() {
	local f
	for f in "$COHORT_TEST_TMP/twice.one" "$COHORT_TEST_TMP/twice.two"; do
		[ -f "$f" ] || fail "no $f to overwrite"
		touch -r "$f" "$TD/twice.times" &&
			head -c "$(stat -c %s "$f")" /dev/zero | tr '\0' '\377' | dd of="$f" conv=notrunc status=none &&
			touch -r "$TD/twice.times" "$f" || fail "cannot overwrite $f"
	done
}

# flock, POSIX record locks and OFD locks held by the same process on the
# same ranges (taken again by the restorer: files.c, co_locks_restore);
# file_lease: a read lease kept (or the checkpoint refused, quickly)
# GROUP_TESTS: file_lease, because leases are not restored yet: the
# checkpoint refuses a process that holds one (test lease_refused), so it
# fails at its first checkpoint.  It does not freeze for the lease-break
# time.
GROUP_TESTS+=(file_lease)
t_file_locks() { std file_locks 0 4 4; }
t_file_lease() { std file_locks 0 4 4 pipe lease; }
