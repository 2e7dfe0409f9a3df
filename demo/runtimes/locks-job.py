"""A job of two processes holding file locks (tests/events.rs): the parent
holds an flock lock on `a`, its child an fcntl record lock on `b`. The
parent says "ready" and waits for a line on stdin (the checkpoint comes
there); then the child checks that `a` is still held (by its parent, once
restarted), and both end."""
import fcntl
import os
import sys

r, w = os.pipe()  # parent to child: go on
locked_r, locked_w = os.pipe()  # child to parent: b is locked
child = os.fork()
if child == 0:
    os.close(w)
    b = open("b", "w")
    fcntl.lockf(b, fcntl.LOCK_EX)
    os.write(1, b"child: b locked\n")
    os.write(locked_w, b"x")
    os.read(r, 1)
    try:
        fcntl.flock(open("a", "w"), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(1, b"child: took a, which its parent should hold\n")
    except OSError:
        os.write(1, b"child: a is held\n")
    os._exit(0)
os.close(r)
os.read(locked_r, 1)
a = open("a", "w")  # (after the fork: the child does not share it)
fcntl.flock(a, fcntl.LOCK_EX)
print("ready", flush=True)
sys.stdin.readline()
os.write(w, b"x")
os.waitpid(child, 0)
print("done", flush=True)
