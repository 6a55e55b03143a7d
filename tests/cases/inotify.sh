# inotify descriptors (src/kinds/inotify.c; tests/progs/inotify_kind.c: two
# inotify objects, watches with gaps in their wds, events checked each step).
#   inotify_std   the standard flow (checkpoint --kill, restart, twice); at
#                 least one generation kept events queued at the checkpoint
#                 (shared.img), which the restarted program then read
#   inotify_live  live checkpoints (the program reads the events the
#                 checkpoint read and put back), then --kill and a restart
#   inotify_held  a create event left unread: cohort cannot make it again,
#                 so the checkpoint does not read the queue, tries again for
#                 about a second and is refused in one line naming process,
#                 descriptor and kind; the program then reads its event
# Sourced by tests/run.sh.

# inotify_queued GEN...: some generation's shared.img holds queued inotify events
inotify_queued() {
	local g
	for g in "$@"; do
		"$COHORT" inspect "$(gen_dir "$GNAME" "$g")/shared.img" >"$TD/shared.$g" 2>&1 ||
			fail "inspect generation $g: $(first_line "$TD/shared.$g")"
		grep -q 'inotify events inotify [0-9]*: wd ' "$TD/shared.$g" && return 0
	done
	note_file "shared.img" "$TD/shared.$1" 20
	fail "no checkpoint found inotify events queued (generations $*)"
}

t_inotify_std() {
	std inotify_kind 0 5 5
	inotify_queued 1 2
}

t_inotify_live() {
	steps_live_flow inotify_kind 12
	inotify_queued 1 2 3
}

t_inotify_held() {
	refused inotify_kind held "^cohort: .*pid [0-9]+: fd [0-9]+: inotify: [0-9]+ bytes of events queued, and watch 1 \(.*/a, mask 0x308\) may have queued some cohort cannot make again .*: the program has not read them$" hold
}
