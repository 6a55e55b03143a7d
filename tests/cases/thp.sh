# Transparent huge pages.  A region the kernel backs with huge pages is not
# write-protected but compared by page hashes in the image writer, and its
# huge pages split by a snapshot's copy-on-write are collapsed again
# (src/agent/dirty_thp.c, "Huge pages"): its incremental images must stay exact.
# These tests run the incremental flows of run.sh with incr_pages' two
# regions aligned to 2 MiB and madvise(MADV_HUGEPAGE)d (incr_pages --thp:
# random pages written in every step, a region mapped at step 3, 1 MiB of
# one unmapped at step 4, one whole huge page dropped at step 5, every
# word checked after each step).  Correctness only: no timing is asserted
# (bench/thp.sh measures).  Sourced by tests/run.sh.

# huge pages there to be had (else skip), and incr_pages asked for them
thp_need() {
	case $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null) in
	*'[always]'* | *'[madvise]'*) ;;
	*) skip "transparent huge pages are disabled (/sys/kernel/mm/transparent_hugepage/enabled)" ;;
	esac
	INCR_ARGS=(--thp)
}

# thp_note TAG: the program's huge pages after each step (its stderr), for the details
thp_note() {
	note "AnonHugePages (KiB) natively: $(grep -o 'after step [0-9]* thp_kib [0-9-]*' "$TD/exp.err" | awk '{ printf "%s ", $NF }')"
	note "AnonHugePages (KiB) under cohort: $(grep -o 'after step [0-9]* thp_kib [0-9-]*' "$TD/$1.err" | awk '{ printf "%s ", $NF }')"
}

# incr_chain's flow: full, incrementals each on the one before (a new
# region, a cut, dropped pages), the last with --kill; restarts of the
# full generation, of generation 4 from the merged full-4, and of
# generation 5 from the chain; each prints the native output after its step
t_thp_chain() {
	thp_need
	t_incr_chain
	thp_note run0
}

# incr_written's flow: a full then incrementals; each incremental
# generation stores at least the pages the program wrote in its step and at
# most 256 more (a region saved whole fails), and every generation
# restarts.  The full is not pre-copied ("precopied": 0): huge pages are
# not read ahead, so less than an eighth of the memory would be, and the
# coordinator declines a pre-copy that would save little and cost a merge.
t_thp_written() {
	thp_need
	incr_written 0
	thp_note run0
}

# incr_unmerged's flow: generation 6 from the background merge's full-6,
# generation 4 and 6 from chains nobody merged, built in one pass; the
# full-6 of both ways page for page the same
t_thp_unmerged() {
	thp_need
	incr_unmerged incr_pages
	thp_note run0
}
