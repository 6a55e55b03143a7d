#!/usr/bin/python3
# unix_syslog.py - Python's logging.handlers.SysLogHandler writing to the
# datagram socket at $UNIX_SYSLOG_PATH (a listener outside the group,
# tests/progs/unix_outside.py) every step, across checkpoints and restarts.
import logging
import logging.handlers
import os
import time

h = logging.handlers.SysLogHandler(address=os.environ["UNIX_SYSLOG_PATH"])
# the pid, as syslog(3) with LOG_PID: the test tells the native run beside from ours
h.setFormatter(logging.Formatter("python[%(process)d] %(message)s"))
log = logging.getLogger("unix_syslog")
log.addHandler(h)
log.setLevel(logging.INFO)
for s in range(12):
    log.info("step %d", s)
    print("step %d ok" % s, flush=True)
    time.sleep(0.2)
print("RESULT 12 messages", flush=True)
