# numpy (tests/cases/real.sh, real_numpy): 50 steps of matrix products on
# float64 matrices that hold small integers, so that every result is exact
# whatever the BLAS and its threads; each product computed by blocks of rows
# on a pool of 3 threads (numpy lets go of the GIL while it multiplies, so
# they run at once); a 512 KiB array kept across the steps.
# After each step the product is checked against an integer (int64)
# recomputation of some of its rows and the running checksum against one
# recomputed from all the history; prints "step N sum S"; "RESULT ..." at
# the end.  A mismatch prints "ERROR ..." and exits 1.
# COHORT_TEST_GATES="S1 S2 ...": after step Sk it waits until the file go.k
# exists in COHORT_TEST_TMP (tests/cases/migrate_real.sh migrates it at
# known steps); unset, it never waits.
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

STEPS = 50
N = 160


def gate(step):
    gates = os.environ.get("COHORT_TEST_GATES", "").split()
    if str(step) in gates:
        go = os.path.join(os.environ["COHORT_TEST_TMP"], "go.%d" % (gates.index(str(step)) + 1))
        while not os.path.exists(go):
            time.sleep(0.02)


def fail(msg):
    print("ERROR", msg, flush=True)
    sys.exit(1)


rng = np.random.default_rng(1234)
a = rng.integers(0, 10, size=(N, N)).astype(np.float64)
b = rng.integers(0, 10, size=(N, N)).astype(np.float64)
big = np.arange(64 * 1024, dtype=np.int64)
sums = []
pool = ThreadPoolExecutor(max_workers=3)
blocks = [slice(i, min(i + 40, N)) for i in range(0, N, 40)]
for step in range(1, STEPS + 1):
    c = np.vstack(list(pool.map(lambda rows: a[rows] @ b, blocks)))
    ai, bi = a.astype(np.int64), b.astype(np.int64)
    for r in (0, step % N, N - 1):
        if not np.array_equal(c[r].astype(np.int64), ai[r] @ bi):
            fail("step %d: row %d of the product is wrong" % (step, r))
    a, b = b, np.mod(c, 10.0)
    big = (big * 3 + step) % 1000003
    s = int(c.sum()) + int(big.sum())
    sums.append(s)
    if int(np.mod(c, 10.0).astype(np.int64).sum()) != int(b.sum()):
        fail("step %d: the next matrix does not hold integers" % step)
    check = np.arange(64 * 1024, dtype=np.int64)
    for k in range(1, step + 1):
        check = (check * 3 + k) % 1000003
    if not np.array_equal(check, big):
        fail("step %d: the kept array differs from its recomputation" % step)
    print("step %d sum %d" % (step, s), flush=True)
    gate(step)
    time.sleep(0.06)
print("RESULT steps %d total %d last %d" % (STEPS, sum(sums), sums[-1]), flush=True)
