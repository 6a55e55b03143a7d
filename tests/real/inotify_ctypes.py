# inotify through ctypes (as inotify_simple and watchdog do: the libc
# handle's inotify_init1, which no preloaded library sees) and os.read: a
# file made, written, renamed and removed, queued when the checkpoint comes
# (after "queued"); read once go.1 exists in COHORT_TEST_TMP.
import ctypes, os, select, struct, time

libc = ctypes.CDLL("libc.so.6", use_errno=True)
tmp = os.environ.get("COHORT_TEST_TMP", "/tmp")
d = os.path.join(tmp, "watched-py")
os.makedirs(d, exist_ok=True)
fd = libc.inotify_init1(os.O_CLOEXEC)
assert fd >= 0, ctypes.get_errno()
IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO, IN_CLOSE_WRITE = 0x100, 0x200, 0x40, 0x80, 0x8
wd = libc.inotify_add_watch(fd, d.encode(), IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE)
assert wd == 1, wd
# a first event read at once, as a watcher's loop does
open(os.path.join(d, "first"), "w").close()
os.read(fd, 4096)
with open(os.path.join(d, "a"), "w") as f:
    f.write("x")
os.rename(os.path.join(d, "a"), os.path.join(d, "b"))
os.unlink(os.path.join(d, "b"))
os.unlink(os.path.join(d, "first"))
print("queued", flush=True)
while not os.path.exists(os.path.join(tmp, "go.1")):
    time.sleep(0.01)
p = select.poll()
p.register(fd, select.POLLIN)
assert p.poll(0), "not readable"
buf = os.read(fd, 4096)
cookies = set()
while buf:
    w, mask, cookie, n = struct.unpack_from("iIII", buf)
    name = buf[16:16 + n].rstrip(b"\0").decode()
    if cookie:
        cookies.add(cookie)
    print(w, hex(mask), name, n)
    buf = buf[16 + n:]
assert len(cookies) == 1, cookies
assert not p.poll(0), "readable when all was read"
print("RESULT inotify_ctypes ok", flush=True)
