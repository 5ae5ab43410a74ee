"""The watchdog role of ddv_master, end to end: it owns the listeners, so a
master crash loses no queued connection; it forwards SIGHUP (reload) and
SIGTERM (drain and stop, nothing left behind)."""
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "master"))
import harness  # noqa: E402
from harness import fields, http_get  # noqa: E402


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


class WatchdogTest(unittest.TestCase):
    def setUp(self):
        self.ddv = harness.Ddv(watchdog=True)

    def tearDown(self):
        self.ddv.stop()

    def test_master_crash_is_survived(self):
        master = self.ddv.status()["pid"]
        self.assertNotEqual(master, self.ddv.proc.pid)
        os.kill(master, signal.SIGKILL)
        # kill() returns before the master is gone: until its exit has
        # cancelled the ring's multishot accept, a connection can still be
        # accepted by the dying process and reset (the one window the
        # lifecycle work has to count). Connect once it is dead.
        deadline = time.monotonic() + 5
        while alive(master) and time.monotonic() < deadline:
            time.sleep(0.001)
        self.assertFalse(alive(master))
        # Connections made while no master runs queue on the watchdog's
        # listening socket and are served once the new master is up.
        for _ in range(10):
            status, body, _ = http_get(self.ddv.http_port, "a.localhost",
                                       timeout=10)
            self.assertEqual(status, 200)
            self.assertEqual(fields(body)["site"], "a")
        self.assertNotEqual(self.ddv.status()["pid"], master)

    def test_sighup_reloads_hosts(self):
        status, body, _ = http_get(self.ddv.http_port, "c.localhost")
        self.assertEqual(fields(body)["site"], "fallback")
        self.ddv.write_config(b_hosts=("b.localhost", "c.localhost"))
        self.ddv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        site = None
        while time.monotonic() < deadline:
            site = fields(http_get(self.ddv.http_port, "c.localhost")[1])["site"]
            if site == "b":
                break
            time.sleep(0.1)
        self.assertEqual(site, "b")

    def test_sigterm_while_master_is_in_back_off(self):
        master = self.ddv.status()["pid"]
        os.kill(master, signal.SIGKILL)
        time.sleep(0.02)
        self.ddv.proc.send_signal(signal.SIGTERM)
        self.ddv.proc.wait(timeout=5)
        # The listening sockets are released with the watchdog.
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.ddv.http_port),
                                     timeout=1)

    def test_ddvctl_stop_is_final_under_the_watchdog(self):
        reply = harness.control(self.ddv.control_socket, "stop")
        self.assertTrue(reply.startswith("ok"), reply)
        self.assertEqual(self.ddv.proc.wait(timeout=15), 0)

    def test_sigterm_stops_everything(self):
        status = self.ddv.status()
        pids = [status["pid"]] + [w["pid"] for s in status["sites"]
                                  for w in s["workers"]]
        self.assertEqual(self.ddv.stop(), 0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.05)
        self.assertEqual([p for p in pids if alive(p)], [])


if __name__ == "__main__":
    unittest.main()
