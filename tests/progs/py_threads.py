#!/usr/bin/python3
"""py_threads: CPython with several threading.Thread workers, a Lock and a
Condition, time.sleep between steps, deterministic output.

Workers take jobs from a shared queue (Condition-protected list), compute a
deterministic value and add it to shared totals under a Lock. The main
thread drives steps and checks totals, its pid and every thread's native id
(which must not change across checkpoint/restart). Run as:
    /usr/bin/python3 tests/progs/py_threads.py
"""
import hashlib
import os
import sys
import threading
import time

NWORKERS = 4
STEPS = 10
JOBS_PER_STEP = 50


def fail(msg):
    sys.stdout.flush()
    sys.stderr.write("py_threads: FAILED: %s\n" % msg)
    sys.stderr.flush()
    os._exit(1)


def job_value(step, i):
    h = hashlib.sha256(("%d/%d" % (step, i)).encode()).digest()
    return int.from_bytes(h[:8], "little")


class Shared:
    def __init__(self):
        self.cond = threading.Condition()
        self.queue = []
        self.done = False
        self.lock = threading.Lock()
        self.total = 0
        self.count = 0
        self.per_worker = [0] * NWORKERS


shared = Shared()
pid0 = os.getpid()


def worker(idx, ident_out):
    tid0 = threading.get_native_id()
    ident_out[idx] = tid0
    local = threading.local()
    local.marker = ("worker", idx)
    while True:
        with shared.cond:
            while not shared.queue and not shared.done:
                shared.cond.wait()
            if not shared.queue and shared.done:
                break
            step, i = shared.queue.pop(0)
        if threading.get_native_id() != tid0:
            fail("worker %d: native thread id changed" % idx)
        if os.getpid() != pid0:
            fail("worker %d: pid changed" % idx)
        if local.marker != ("worker", idx):
            fail("worker %d: thread-local data changed" % idx)
        v = job_value(step, i)
        time.sleep(0.001)
        with shared.lock:
            shared.total = (shared.total + v) % (1 << 64)
            shared.count += 1
            shared.per_worker[idx] += 1
        with shared.cond:
            shared.cond.notify_all()


def main():
    tid_main = threading.get_native_id()
    idents = [None] * NWORKERS
    threads = [threading.Thread(target=worker, args=(i, idents), name="w%d" % i)
               for i in range(NWORKERS)]
    for t in threads:
        t.start()
    expect_total = 0
    for step in range(STEPS):
        for i in range(JOBS_PER_STEP):
            expect_total = (expect_total + job_value(step, i)) % (1 << 64)
        with shared.cond:
            shared.queue.extend((step, i) for i in range(JOBS_PER_STEP))
            shared.cond.notify_all()
            deadline = time.monotonic() + 30
            while True:
                with shared.lock:
                    if shared.count == (step + 1) * JOBS_PER_STEP:
                        break
                if time.monotonic() > deadline:
                    fail("step %d: jobs not finished" % step)
                shared.cond.wait(0.1)
        with shared.lock:
            if shared.total != expect_total:
                fail("step %d: total %d != %d" % (step, shared.total, expect_total))
            if sum(shared.per_worker) != shared.count:
                fail("per-worker counts inconsistent")
        if os.getpid() != pid0 or threading.get_native_id() != tid_main:
            fail("main: pid/tid changed")
        if any(t is None for t in idents) or len(set(idents)) != NWORKERS:
            fail("worker ids not distinct")
        for t in threads:
            if not t.is_alive():
                fail("worker %s died" % t.name)
        print("step %d ok count=%d total=%d" % (step, shared.count, shared.total), flush=True)
        t0 = time.monotonic()
        time.sleep(0.3)
        if time.monotonic() - t0 < 0.3:
            fail("time.sleep returned early")
    with shared.cond:
        shared.done = True
        shared.cond.notify_all()
    for t in threads:
        t.join()
    print("RESULT %d" % shared.total, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
