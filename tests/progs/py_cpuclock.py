# py_cpuclock: Python's CPU-time clocks go on across checkpoints and
# restarts (issue 11; tests/cases/cpuclock.sh).  A worker thread and the
# main thread burn CPU at every step; time.process_time() and each
# thread's time.thread_time() must never go back, and may move by no
# more than the wall time since the last step allows (time.monotonic(),
# which the group's time namespace carries across a restart).  Output:
# "step N ok" lines and a RESULT line, never a time.
import os
import sys
import threading
import time

STEPS = 100
SLACK = 0.02


def fail(msg):
    sys.stdout.flush()
    sys.stderr.write("py_cpuclock: FAILED: %s\n" % msg)
    sys.stderr.flush()
    os._exit(1)  # the other thread may be waiting at a barrier: no join


class Track:
    def __init__(self, what, threads):
        self.what, self.threads, self.last, self.wall = what, threads, None, None

    def advance(self, now, wall, step):
        if self.last is not None:
            if now < self.last:
                fail("step %d: %s went back by %.1f ms" % (step, self.what, (self.last - now) * 1e3))
            most = (wall - self.wall) * self.threads + SLACK
            if now - self.last > most:
                fail("step %d: %s jumped %.1f ms in %.1f ms of wall time"
                     % (step, self.what, (now - self.last) * 1e3, (wall - self.wall) * 1e3))
        self.last, self.wall = now, wall


def burn(seconds):
    t0 = time.thread_time()
    x = 0
    while time.thread_time() - t0 < seconds:
        for i in range(2000):
            x += i * i
    return x


go = [threading.Barrier(2), threading.Barrier(2)]


def worker():
    own = Track("the worker's thread_time()", 1)
    for step in range(1, STEPS + 1):
        go[0].wait()
        burn(0.004)
        own.advance(time.thread_time(), time.monotonic(), step)
        go[1].wait()


def main():
    sys.stdout.reconfigure(line_buffering=True)
    t = threading.Thread(target=worker)
    t.start()
    proc = Track("process_time()", 3)
    own = Track("the main thread's thread_time()", 1)
    for step in range(1, STEPS + 1):
        go[0].wait()
        burn(0.004)
        go[1].wait()
        wall = time.monotonic()
        proc.advance(time.process_time(), wall, step)
        own.advance(time.thread_time(), wall, step)
        print("step %d ok" % step)
        time.sleep(0.02)
    t.join()
    print("RESULT steps %d" % STEPS)


main()
