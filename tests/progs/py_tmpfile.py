# py_tmpfile: Python's tempfile.TemporaryFile (open(DIR, O_TMPFILE) on
# Linux) through the standard flow (tests/cases/exact_mem.sh).  At every
# step the file is written through its buffer and flushed, and then must
# hold what was written (read back through the file object and through a
# description of its own), at its position, with no links, mode 0600, and
# its descriptor's flags as they were (O_TMPFILE's bits included); the
# same of a second one, made in $COHORT_TEST_TMP.  (Python makes them with
# O_EXCL: the kernel never lets the program link them, a restored one it
# would: see docs.)  Output: "step N ok" lines and a RESULT line.  With
# COHORT_TEST_END_GATE set it waits at its end, as the C programs do
# (tests/progs/common.h's end gate), for "$COHORT_TEST_TMP/end".
import fcntl
import hashlib
import os
import stat
import sys
import tempfile
import time

STEPS = 60


def fail(msg):
    sys.stdout.flush()
    sys.stderr.write("py_tmpfile: FAILED: %s\n" % msg)
    sys.stderr.flush()
    os._exit(1)


def check(f, what, want, flags, step):
    st = os.fstat(f.fileno())
    if st.st_nlink != 0 or stat.S_IMODE(st.st_mode) != 0o600 or st.st_size != len(want):
        fail("step %d: %s: %d links, mode %o, size %d (expected 0, 600, %d)"
             % (step, what, st.st_nlink, stat.S_IMODE(st.st_mode), st.st_size, len(want)))
    if f.tell() != len(want):
        fail("step %d: %s: at %d, expected %d" % (step, what, f.tell(), len(want)))
    got = fcntl.fcntl(f.fileno(), fcntl.F_GETFL)
    if got != flags:
        fail("step %d: %s: F_GETFL %o, expected %o" % (step, what, got, flags))
    with open("/proc/self/fd/%d" % f.fileno(), "rb") as r:
        if r.read() != want:
            fail("step %d: %s: the content differs (read by a description of its own)" % (step, what))
    f.seek(0)
    if f.read() != want:
        fail("step %d: %s: the content differs" % (step, what))


def end_gate(gate):
    where = os.environ.get("COHORT_TEST_TMP")
    if not gate or not where:
        return
    open(os.path.join(where, "at-end"), "w").close()
    while not os.path.exists(os.path.join(where, "end")):
        time.sleep(0.01)


def main():
    sys.stdout.reconfigure(line_buffering=True)
    gate = os.environ.pop("COHORT_TEST_END_GATE", None)
    where = os.environ.get("COHORT_TEST_TMP") or "/tmp"
    f = tempfile.TemporaryFile()
    g = tempfile.TemporaryFile(dir=where)
    flags = fcntl.fcntl(f.fileno(), fcntl.F_GETFL)
    if flags & os.O_TMPFILE != os.O_TMPFILE:
        fail("TemporaryFile did not use O_TMPFILE (F_GETFL %o)" % flags)
    want, wg = b"", b""
    for step in range(STEPS):
        check(f, "TemporaryFile", want, flags, step)
        check(g, "the second TemporaryFile", wg, flags, step)
        line = ("line %d %s\n" % (step, hashlib.sha256(want).hexdigest())).encode()
        f.write(line)
        f.flush()
        want += line
        g.write(line * 3)
        g.flush()
        wg += line * 3
        print("step %d ok" % step)
        time.sleep(0.1)
    check(f, "TemporaryFile", want, flags, STEPS)
    check(g, "the second TemporaryFile", wg, flags, STEPS)
    print("RESULT py_tmpfile %s" % hashlib.sha256(want + wg).hexdigest())
    end_gate(gate)


main()
