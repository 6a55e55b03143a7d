# multiprocessing (tests/cases/real.sh, real_multiprocessing): a Pool of 2
# worker processes (fork; pipes, a semaphore and the pool's threads in the
# parent), 40 steps of 8 tasks each, each also handed to a Queue-fed
# process that keeps a running total.  After each step the results are
# checked against the parent's own computation; prints "step N sum S";
# "RESULT ..." at the end.  A mismatch prints "ERROR ..." and exits 1.
import multiprocessing as mp
import sys
import time

STEPS = 40
TASKS = 8


def work(n):
    x = n
    for _ in range(20000):
        x = (x * 1103515245 + 12345) % 2147483648
    return x


def keeper(inq, outq):
    total = 0
    while True:
        v = inq.get()
        if v is None:
            return
        total += v
        outq.put(total)


def fail(msg):
    print("ERROR", msg, flush=True)
    sys.exit(1)


def main():
    ctx = mp.get_context("fork")
    inq, outq = ctx.Queue(), ctx.Queue()
    kp = ctx.Process(target=keeper, args=(inq, outq))
    kp.start()
    total = 0
    with ctx.Pool(2) as pool:
        for step in range(1, STEPS + 1):
            args = list(range(step * TASKS, step * TASKS + TASKS))
            got = pool.map(work, args)
            want = [work(n) for n in args]
            if got != want:
                fail("step %d: pool results %r, expected %r" % (step, got, want))
            s = sum(got)
            total += s
            inq.put(s)
            kt = outq.get(timeout=20)
            if kt != total:
                fail("step %d: the keeper's total is %d, expected %d" % (step, kt, total))
            print("step %d sum %d" % (step, s), flush=True)
            time.sleep(0.05)
    inq.put(None)
    kp.join()
    if kp.exitcode != 0:
        fail("the keeper exited with %s" % kp.exitcode)
    print("RESULT steps %d total %d" % (STEPS, total), flush=True)


if __name__ == "__main__":
    main()
