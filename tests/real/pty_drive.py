#!/usr/bin/python3
"""Drive an interactive program on pseudo-terminals, step by step.

usage: pty_drive.py native|cohort STEPS LOGPREFIX

STEPS is a file of steps, one a line (blank lines and lines starting with
'#' are skipped):
  start CMD...   start CMD (split as a shell would) on a new pseudo-terminal;
                 in cohort mode as `$COHORT run --name $GNAME --images $IMG
                 -- CMD...`
  send TEXT      type TEXT (Python string escapes: \\r is Enter)
  expect REGEX   wait (20 s at most) until the output of the current terminal
                 since the last match holds REGEX (a Python regex)
  checkpoint     cohort mode: `cohort checkpoint` (no --kill), must commit
  kill           cohort mode: `cohort checkpoint --kill`, must commit; then
                 the program's `cohort run`/`restart` must end with status 75
                 after saying on the terminal that checkpoint --kill ended it
  restart        cohort mode: `cohort restart` on a new pseudo-terminal
  migrate        cohort mode, with MIG_HOSTS set: the group moves to the other
                 host: `cohort receive` there on a new pseudo-terminal, then
                 `cohort migrate` from this one, which must succeed; the
                 `cohort run`/`receive` here must end with status 0 after
                 saying on its terminal where the group went, and the group
                 then answer `cohort status` there, not here
  exit RC        the program must end with status RC
  sleep SECONDS  wait, reading the output (for debugging a session by hand:
                 never needed for a step to be right)
In native mode checkpoint, kill, restart and migrate do nothing: the same
steps run the program straight, on one terminal.

MIG_HOSTS (tests/harness/mig.sh): two hosts, "A ADDR PREFIX;B ADDR PREFIX",
each PREFIX the command line (shell words) that runs a command as that host;
the group starts at A, its images in $IMG/A (and $IMG/B at B), and the hosts
prove the token in $MIG_TOKEN.

What each terminal got goes to LOGPREFIX.N (N = 0, 1, ...).  On the first
step that goes wrong: one line on stderr, "step K (LINE): WHAT", then the
end of the terminal's output; exit status 1.
"""
import os, pty, re, select, shlex, signal, subprocess, sys, time, fcntl, termios, struct

mode, steps_file, logprefix = sys.argv[1:4]
COHORT = os.environ.get("COHORT", "cohort")
GNAME = os.environ.get("GNAME", "")
IMG = os.environ.get("IMG", "")
TMO = float(os.environ.get("DRIVE_TIMEOUT", "20"))
KILLED_MSG = "ended by 'checkpoint --kill'"
HOSTS = [h.strip().split(None, 2) for h in os.environ.get("MIG_HOSTS", "").split(";") if h.strip()]
HOST = 0  # the host where the group runs (an index into HOSTS)


def on_host(argv, host=None):
    """argv run as host HOST (the current one by default), as itself without MIG_HOSTS"""
    if not HOSTS:
        return argv
    return shlex.split(HOSTS[HOST if host is None else host][2]) + argv


def images(host=None):
    return "%s/%s" % (IMG, HOSTS[HOST if host is None else host][0]) if HOSTS else IMG


class Fail(Exception):
    pass


class Term:
    n = 0

    def __init__(self, argv):
        self.log = open("%s.%d" % (logprefix, Term.n), "wb")
        Term.n += 1
        self.buf = b""      # everything received
        self.pos = 0        # where the next expect starts looking
        self.status = None
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def pump(self, timeout):
        """read what is there (waiting up to timeout); False at end of output"""
        if self.fd is None:
            return False
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            os.close(self.fd)
            self.fd = None
            return False
        self.buf += data
        self.log.write(data)
        self.log.flush()
        return True

    def expect(self, regex):
        rx = re.compile(regex.encode())
        end = time.monotonic() + TMO
        while True:
            m = rx.search(self.buf, self.pos)
            if m:
                self.pos = m.end()
                return
            if time.monotonic() > end:
                raise Fail("no %r within %g s" % (regex, TMO))
            if not self.pump(0.1):
                self.wait(5)
                if not rx.search(self.buf, self.pos):
                    raise Fail("the program ended (status %s) without printing %r" % (self.status, regex))

    def send(self, text):
        if self.fd is None:
            raise Fail("the terminal is closed (the program ended, status %s)" % self.wait(1))
        os.write(self.fd, text.encode())

    def wait(self, timeout):
        """the exit status (128+N for signal N), reading the output meanwhile"""
        end = time.monotonic() + timeout
        while self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                if self.status < 0:
                    self.status = 128 - self.status
                break
            if time.monotonic() > end:
                return None
            if not self.pump(0.05):
                time.sleep(0.02)
        while self.pump(0.2):
            pass
        return self.status

    def tail(self):
        return self.buf[-400:].decode(errors="replace")


def cohort(*args):
    p = subprocess.run(on_host([COHORT, *args]), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, text=True)
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or [""])[0]
        raise Fail("cohort %s: status %d: %s" % (args[0], p.returncode, err))


def wait_group(term):
    """until `cohort status` knows the group (10 s at most)"""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if subprocess.run(on_host([COHORT, "status", GNAME]), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            return
        term.pump(0.05)
        if term.fd is None or term.wait(0) is not None:
            raise Fail("the program ended (status %s) before the group was ready" % term.wait(1))
    raise Fail("group %s not ready after 10 s" % GNAME)


def migrate(term):
    """the group from HOST to the other host; the new terminal"""
    global HOST
    if len(HOSTS) != 2:
        raise Fail("migrate needs MIG_HOSTS (two hosts)")
    to = 1 - HOST
    addr = HOSTS[to][1]
    rx = Term(on_host([COHORT, "receive", "--listen", addr + ":0", "--token-file",
                       os.environ["MIG_TOKEN"], "--images", images(to)], to))
    rx.expect(r"listening on %s:\d+" % re.escape(addr))
    dest = re.findall(rb"listening on (\S+:\d+)", rx.buf)[0].decode()
    cohort("migrate", GNAME, "--to", dest, "--token-file", os.environ["MIG_TOKEN"])
    st = term.wait(20)
    if st is None:
        raise Fail("cohort run/receive still running 20 s after the group left")
    if ("migrated to %s" % dest).encode() not in term.buf:
        raise Fail("no line saying the group migrated to %s on the terminal (status %s)" % (dest, st))
    if st != 0:
        raise Fail("cohort run/receive ended with status %s after the group left, not 0" % st)
    HOST = to
    for host, want in ((to, 0), (1 - to, 1)):
        st = subprocess.run(on_host([COHORT, "status", GNAME], host), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode
        if (st != 0) != want:
            raise Fail("after the migration the group %s at %s" % (("does not answer", "still answers")[want],
                                                                    HOSTS[host][0]))
    return rx


def main():
    term = None
    lines = open(steps_file).read().splitlines()
    k = 0
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        k += 1
        word, _, arg = line.strip().partition(" ")
        try:
            if word == "start":
                argv = shlex.split(arg)
                if mode == "cohort":
                    argv = on_host([COHORT, "run", "--name", GNAME, "--images", images(), "--"] + argv)
                term = Term(argv)
                if mode == "cohort":
                    wait_group(term)
            elif word == "send":
                term.send(arg.encode().decode("unicode_escape"))
            elif word == "expect":
                term.expect(arg)
            elif word == "checkpoint":
                if mode == "cohort":
                    cohort("checkpoint", GNAME, "--images", images())
            elif word == "kill":
                if mode == "cohort":
                    cohort("checkpoint", GNAME, "--images", images(), "--kill")
                    st = term.wait(20)
                    if st is None:
                        raise Fail("cohort run/restart still running 20 s after checkpoint --kill")
                    if KILLED_MSG.encode() not in term.buf:
                        raise Fail("no line saying %s on the terminal (status %s)" % (KILLED_MSG, st))
                    if st != 75:
                        raise Fail("cohort run/restart ended with status %s after checkpoint --kill, not 75" % st)
            elif word == "restart":
                if mode == "cohort":
                    term = Term(on_host([COHORT, "restart", GNAME, "--images", images()]))
                    wait_group(term)
            elif word == "migrate":
                if mode == "cohort":
                    term = migrate(term)
            elif word == "sleep":
                end = time.monotonic() + float(arg)
                while time.monotonic() < end:
                    term.pump(0.05)
            elif word == "exit":
                st = term.wait(TMO)
                if st is None:
                    raise Fail("the program still runs %g s later" % TMO)
                if st != int(arg):
                    raise Fail("status %s, expected %s" % (st, arg))
            else:
                raise Fail("unknown step")
        except Fail as e:
            sys.stderr.write("step %d (%s): %s\n" % (k, line.strip()[:60], e))
            if term is not None:
                term.pump(0.3)
                sys.stderr.write("terminal %d ends with:\n%s\n" % (Term.n - 1, term.tail()))
                if term.status is None:
                    try:
                        os.kill(term.pid, signal.SIGKILL)
                    except OSError:
                        pass
            return 1
    return 0


sys.exit(main())
