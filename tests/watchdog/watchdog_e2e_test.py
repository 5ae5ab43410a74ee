"""The watchdog role of ddv_master, end to end: it owns the listeners, so a
master crash loses no queued connection; it forwards SIGHUP (reload) and
SIGTERM (drain and stop, nothing left behind); a restarted master runs the
last good config, never a file broken since; and a master that cannot start
is retried with growing back-off while the watchdog holds the listeners;
--master_hang_timeout and --master_start_timeout below 2 s are refused."""
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "master"))
import harness  # noqa: E402
from harness import fields, http_get, full_log, wait_for  # noqa: E402

BROKEN = "[[site]]\nid = 'x'\nprocesses = 'many'\n"
# Back-off short enough to watch it grow within a test; the watchdog's own
# lines go to the log (glog would write INFO under TEST_TMPDIR otherwise).
FLAGS = ["--backoff_max_ms=800", "--log_dir="]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; so is one reaped since the kill().
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone while reading
        return False


def snapshot_path(ddv):
    return os.path.join(os.path.dirname(ddv.control_socket),
                        "control.last-good.toml")


def read(path):
    with open(path) as f:
        return f.read()


def kill_master(ddv):
    """SIGKILLs the running master and waits until it is gone."""
    master = ddv.status()["pid"]
    os.kill(master, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(master) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not alive(master)
    return master


def site_of(ddv, host):
    status, body, _ = http_get(ddv.http_port, host, timeout=10)
    return fields(body)["site"] if status == 200 else status


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


class HangTimeoutFlagTest(unittest.TestCase):
    def test_master_hang_timeout_below_2_seconds_exits_2(self):
        # A serving master reports every second: 1 s would kill busy ones.
        # The behaviour itself: tests/chaos/master_hang_chaos_test.py.
        for value in ("1", "-1"):
            result = subprocess.run(
                [harness.runfile("src/ddv_master"),
                 f"--master_hang_timeout={value}", "--check_config"],
                capture_output=True, text=True, timeout=10)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn("--master_hang_timeout must be 0 (never) or at "
                          "least 2 seconds (a serving master reports every "
                          f"second), not {value}", result.stderr)

    def test_master_start_timeout_below_2_seconds_exits_2(self):
        # The master says it serves after half of it at the latest: under
        # a second would not leave it its own start. The behaviour itself:
        # tests/chaos/master_start_chaos_test.py.
        for value in ("1", "-1"):
            result = subprocess.run(
                [harness.runfile("src/ddv_master"),
                 f"--master_start_timeout={value}", "--check_config"],
                capture_output=True, text=True, timeout=10)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn("--master_start_timeout must be 0 (never) or at "
                          "least 2 seconds (a master says it serves after "
                          f"half of it at the latest), not {value}",
                          result.stderr)


class LostInCrashTest(unittest.TestCase):
    def test_connections_a_dead_master_held_are_counted(self):
        # No TCP_DEFER_ACCEPT, and peeks that wait long: clients that
        # connect and send nothing are held by the master, undecided.
        ddv = harness.Ddv(watchdog=True, peek_timeout_ms=30000,
                          extra_flags=FLAGS + ["--defer_accept_seconds=0"])
        clients = []
        try:
            for _ in range(5):
                clients.append(socket.create_connection(
                    ("127.0.0.1", ddv.http_port), timeout=5))
            counters = lambda: harness.control_counters(  # noqa: E731
                ddv.control_socket)
            self.assertTrue(wait_for(
                lambda: counters().get("ddv_connections_undecided") == 5,
                timeout=5), counters())
            old = kill_master(ddv)
            def restarted():
                try:
                    return ddv.status()["pid"] != old
                except OSError:  # no master listening yet
                    return False
            self.assertTrue(wait_for(restarted, timeout=10))
            self.assertEqual(
                counters()["ddv_connections_lost_in_master_crashes_total"], 5)
            self.assertIn(f"master pid {old} died holding 5 connections",
                          full_log(ddv))
            # They were lost indeed: each client sees its connection end.
            for c in clients:
                c.settimeout(5)
                try:
                    self.assertEqual(c.recv(1), b"")
                except ConnectionResetError:
                    pass
            self.assertEqual(site_of(ddv, "a.localhost"), "a")
        finally:
            for c in clients:
                c.close()
            self.assertEqual(ddv.stop(), 0)


class LastGoodConfigTest(unittest.TestCase):
    def test_restarted_master_runs_the_last_good_config_not_a_broken_file(self):
        ddv = harness.Ddv(watchdog=True, extra_flags=FLAGS)
        try:
            good = read(ddv.config_path)
            snapshot = snapshot_path(ddv)
            self.assertEqual(read(snapshot), good)
            self.assertEqual(stat.S_IMODE(os.stat(snapshot).st_mode), 0o600)

            ddv.write_text(BROKEN)
            old = kill_master(ddv)
            # The new master runs the snapshot: everything still routes.
            self.assertEqual(site_of(ddv, "a.localhost"), "a")
            self.assertEqual(site_of(ddv, "b.localhost"), "b")
            status = ddv.status()
            self.assertNotEqual(status["pid"], old)
            # Reloads and messages still name --config.
            self.assertEqual(status["config"], ddv.config_path)
            self.assertIn("does not load", full_log(ddv))  # the master says why it ran the snapshot

            reply = harness.control(ddv.control_socket, "reload")
            self.assertRegex(
                reply, r"^error: reload failed, keeping the running config: "
                + re.escape(ddv.config_path) + r":\d+:\d+: ")
            self.assertEqual(site_of(ddv, "a.localhost"), "a")
            self.assertEqual(read(snapshot), good)

            # A good reload becomes the last good config, and the next
            # restart runs it.
            ddv.write_config(b_hosts=("b.localhost", "c.localhost"))
            changed = read(ddv.config_path)
            reply = harness.control(ddv.control_socket, "reload")
            self.assertTrue(reply.startswith("ok: reloaded"), reply)
            self.assertEqual(read(snapshot), changed)
            ddv.write_text(BROKEN)
            kill_master(ddv)
            self.assertEqual(site_of(ddv, "c.localhost"), "b")
        finally:
            self.assertEqual(ddv.stop(), 0, full_log(ddv)[-3000:])

    def test_a_new_watchdog_replaces_a_snapshot_left_by_an_earlier_run(self):
        def text(ddv):
            # The earlier run's last good config routed c.localhost to b.
            ddv.write_config(b_hosts=("b.localhost", "c.localhost"))
            with open(snapshot_path(ddv), "w") as f:
                f.write(read(ddv.config_path))
            ddv.write_config()
            return read(ddv.config_path)

        ddv = harness.Ddv(watchdog=True, extra_flags=FLAGS, config_text=text)
        try:
            self.assertEqual(site_of(ddv, "c.localhost"), "fallback")
            self.assertEqual(read(snapshot_path(ddv)), read(ddv.config_path))
            kill_master(ddv)
            self.assertEqual(site_of(ddv, "c.localhost"), "fallback")
        finally:
            self.assertEqual(ddv.stop(), 0)


class NeverGivesUpTest(unittest.TestCase):
    def test_master_that_cannot_start_is_retried_until_the_file_is_fixed(self):
        ddv = harness.Ddv(watchdog=True, extra_flags=FLAGS)
        try:
            good = read(ddv.config_path)
            # Nothing usable left: the file and the snapshot are broken.
            ddv.write_text(BROKEN)
            with open(snapshot_path(ddv), "w") as f:
                f.write(BROKEN)
            kill_master(ddv)
            # Every start fails with status 2; the delays grow to the cap
            # (50 ms after the kill, then 100, 200, 400, 800, 800...) and the
            # watchdog stays up.
            delays = lambda: [int(d) for d in re.findall(  # noqa: E731
                r"watchdog: .*restarting in (\d+)ms", full_log(ddv))]
            self.assertTrue(wait_for(lambda: len(delays()) >= 7, timeout=15),
                            full_log(ddv)[-3000:])
            self.assertIsNone(ddv.proc.poll())
            self.assertEqual(delays()[:7], [50, 100, 200, 400, 800, 800, 800])
            log = full_log(ddv)
            self.assertGreaterEqual(log.count("it refused its config or flags"), 4)
            self.assertIn("the master is crash-looping", log)

            # A client arriving meanwhile waits in the backlog.
            result = {}

            def client():
                result["site"] = site_of(ddv, "a.localhost")

            waiting = threading.Thread(target=client)
            waiting.start()
            time.sleep(0.3)
            self.assertNotIn("site", result)

            # Fixed: the next restart (at most 800 ms away) serves.
            ddv.write_text(good)
            waiting.join(timeout=10)
            self.assertEqual(result.get("site"), "a", full_log(ddv)[-3000:])
            self.assertEqual(site_of(ddv, "b.localhost"), "b")
            self.assertTrue(wait_for(lambda: read(snapshot_path(ddv)) == good))
        finally:
            self.assertEqual(ddv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
