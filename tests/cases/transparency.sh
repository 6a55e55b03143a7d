# Transparency on real programs: what a program sees under cohort must be
# what it sees without it.  Sourced by tests/run.sh (t_NAME functions).

ALL_TESTS+=(wrap_null wrap_null_storm)

# every wrapped function called with NULL, partly NULL and invalid pointers
# and edge values, before and after checkpoints: the same answers (return
# value, errno) as a native run, never a crash; the program waits in
# select()/pselect() with NULL sets (make's jobserver, readline) and in
# sleeps whose rem is the request itself or invalid, where the checkpoints land
t_wrap_null() { std wrap_null 0 0.8 0.8; }
# the same under a storm of checkpoints (no --kill), the last one --kill
t_wrap_null_storm() { storm wrap_null 2; }
