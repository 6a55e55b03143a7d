# CPU-time clocks across checkpoints and restarts (issue 11,
# src/agent/cpuclock.c): the kernel's start again from 0 in a restored
# process; the agent adds back what the program had seen.
#   cpuclock       two workers burn CPU; every thread clock (its own, by
#                  pthread_getcpuclockid, the other worker's), the process
#                  clock (also by clock_getcpuclockid), clock(), getrusage
#                  (RUSAGE_SELF, RUSAGE_THREAD) and times() never go back
#                  and move no more than the wall time allows; an
#                  absolute sleep on the process clock ends on time; the
#                  standard flow (two restarts: the second checkpoint
#                  saves the corrected times, which accumulate)
#   cpuclock_live  the same program through a live checkpoint (pre-copied),
#                  a live incremental one, checkpoint --kill --incremental
#                  and a restart from that incremental image (the times
#                  noted in the pause must be in it, not the parent's)
#   py_cpuclock    Python's time.process_time() and time.thread_time()
#                  through the standard flow (tests/progs/py_cpuclock.py)
# Sourced by tests/run.sh.

t_cpuclock() { std cpuclock 0 12 12; }

t_cpuclock_live() { steps_live_flow cpuclock 14 --incremental; }

t_py_cpuclock() {
	[ -x "$PYTHON" ] || skip "$PYTHON not found"
	flow_standard 0 25 25 pipe "$PYTHON" "$PROGS/py_cpuclock.py"
}
