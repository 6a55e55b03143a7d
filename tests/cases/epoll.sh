# tests/cases/epoll.sh - sourced by tests/run.sh: the items of epoll sets
# come back watching the files they watched, with the numbers they were
# added with, their events and data (src/kinds/epoll.c), or the checkpoint
# refuses while the program runs on, in one line naming the process and
# the set's descriptor.

# a set whose items' numbers are no longer their files' (closed and taken
# by another file, or left empty; two items with one number), fired
# EPOLLONESHOT items (disabled: they must stay so, though one's pipe has
# hung up), a signalfd (added back by the process: its signals wake the
# set); every item checked at every step (tests/progs/epoll_items.c)
t_epoll_items() { std epoll_items 0 4 4; }

# the same through live checkpoints: finding the files (kcmp) and polling
# a fired item's file change nothing
t_epoll_items_live() { steps_live_flow epoll_items 10; }

# a set a parent and its child share, each with items on its own files
# under the same numbers, a pidfd's among them (tests/progs/epoll_family.c)
t_epoll_family() { std epoll_family 0 4 4; }

# a set watching a pipe that only a message in flight holds: refused, as
# CRIU does (no process could add it back)
t_epoll_gone_refused() {
	refused epoll_items gone "^cohort: .*pid [0-9]+: fd [0-9]+: epoll watches a file \(tfd [0-9]+\) no longer open in the group$" gone
}

# a fired EPOLLONESHOT item on an empty pipe: it can be made disabled
# again only by letting it fire, which an empty pipe cannot: refused
t_epoll_idle_refused() {
	refused epoll_items idle "^cohort: .*pid [0-9]+: fd [0-9]+: epoll has a fired EPOLLONESHOT item \(tfd [0-9]+\) on pipe:\[[0-9]+\], ready for nothing now: cohort cannot make it fire once to disable it again$" idle
}
