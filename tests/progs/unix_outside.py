#!/usr/bin/python3
# unix_outside.py - a Unix socket server outside the group, for
# tests/cases/unix.sh (not a test program itself):
#   unix_outside.py dgram PATH LOG   a syslog-like datagram listener at PATH:
#                                    every message, one line each, to LOG
#   unix_outside.py stream PATH LOG  a stream server at PATH answering each
#                                    line "ping N" with "pong N"; one line per
#                                    connection accepted ("accept") to LOG
# PATH.ready appears once it is ready.
import os
import socket
import sys
import threading

kind, path, log = sys.argv[1:4]
out = open(log, "a", buffering=1)
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_STREAM)
s.bind(path)
if kind != "dgram":
    s.listen(8)
open(path + ".ready", "w").close()
if kind == "dgram":
    while True:
        out.write(s.recv(4096).rstrip(b"\0").decode(errors="replace") + "\n")


def serve(c):
    f = c.makefile("rb")
    for line in f:
        c.sendall(line.replace(b"ping", b"pong"))


while True:
    c, _ = s.accept()
    out.write("accept\n")
    threading.Thread(target=serve, args=(c,), daemon=True).start()
