"""pyddv.net.free_port: a port is given once per process, and never while
another live process holds it; a process's ports are free for others once
it exits. Without these, two listeners of one test's config shared a port
(the master exits 2), or a test's scrape reached another test's listener.
"""
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

from pyddv import net
from pyddv.net import free_port

# A lock file of this test's own: other tests running beside it take ports
# in the shared one, and may be given the holder's ports once it exits.
# Set before the first free_port, which opens it.
LOCKS = os.path.join(tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR")),
                     "ports.lock")
net.PORT_LOCKS = LOCKS

# Enough that plain bind(0) repeats itself (about 1 in 14000 per pair of
# picks: ~35 repeats expected in 1000, ~140 in 2000).
MANY = 1000

CHILD = textwrap.dedent("""
    import fcntl, os, sys
    sys.path[:0] = {path!r}
    from pyddv import net
    net.PORT_LOCKS = {locks!r}
    if sys.argv[1] == "hold":
        print(" ".join(str(net.free_port()) for _ in range(int(sys.argv[2]))),
              flush=True)
        sys.stdin.read()  # holds them until the test closes our stdin
    else:  # probe: which of these ports could another process take now?
        fd = os.open(f"{{net.PORT_LOCKS}}.{{os.getuid()}}", os.O_RDWR)
        free = []
        for port in map(int, sys.argv[2:]):
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
                free.append(port)
            except OSError:
                pass
        print(" ".join(map(str, free)))
""").format(path=sys.path, locks=LOCKS)


def child(*args, **kw):
    return subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, **kw)


def probe(ports):
    out = subprocess.run([sys.executable, "-c", CHILD, "probe", *ports],
                         capture_output=True, text=True, timeout=30,
                         check=True)
    return out.stdout.split()


class FreePortTest(unittest.TestCase):
    def test_a_process_never_gets_the_same_port_twice(self):
        ports = [free_port() for _ in range(2 * MANY)]
        self.assertEqual(len(set(ports)), len(ports))

    def test_not_while_another_process_holds_it_and_again_after(self):
        ours = {free_port() for _ in range(MANY)}
        holder = child("hold", MANY)
        try:
            theirs = holder.stdout.readline().split()
            self.assertEqual(len(theirs), MANY)
            self.assertEqual(ours & set(map(int, theirs)), set())
            # Held: nobody else may take them.
            self.assertEqual(probe(theirs), [])
        finally:
            holder.stdin.close()
            self.assertEqual(holder.wait(timeout=30), 0)
        # The holder is gone, and its locks with it.
        self.assertEqual(probe(theirs), theirs)


if __name__ == "__main__":
    unittest.main()
