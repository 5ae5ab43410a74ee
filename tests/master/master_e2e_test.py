"""ddv_master end to end: real master, real ddv_hello workers, real clients
(raw sockets and curl) on loopback. Run for both handoff modes."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import fields, http_get, wait_for
from pyddv.control import counters


class MasterScmRightsTest(unittest.TestCase):
    HANDOFF = "scm_rights"

    @classmethod
    def setUpClass(cls):
        cls.ddv = harness.Ddv(handoff=cls.HANDOFF)

    @classmethod
    def tearDownClass(cls):
        code = cls.ddv.stop()
        assert code == 0, f"master exit code {code}\n{cls.ddv.read_log()}"

    def get(self, host, **kw):
        status, body, local_port = http_get(self.ddv.http_port, host, **kw)
        self.assertEqual(status, 200, body)
        return fields(body), local_port

    def test_routes_by_host_and_worker_sees_real_peer(self):
        for host, site in [("a.localhost", "a"), ("b.localhost", "b")]:
            f, local_port = self.get(host)
            self.assertEqual(f["site"], site)
            self.assertEqual(f["host"], host)
            self.assertEqual(f["peer"], f"127.0.0.1:{local_port}")

    def test_curl(self):
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "5", "-H", "Host: a.localhost",
             f"http://127.0.0.1:{self.ddv.http_port}/"],
            capture_output=True, text=True, check=True).stdout
        self.assertEqual(fields(out)["site"], "a")

    def test_wildcard_case_trailing_dot_and_port(self):
        for host in ["x.a.localhost", "x.y.a.localhost", "A.LocalHost.",
                     f"a.localhost:{self.ddv.http_port}"]:
            self.assertEqual(self.get(host)[0]["site"], "a", host)

    def test_absolute_form_wins_over_host(self):
        raw = (b"GET http://b.localhost/ HTTP/1.1\r\nHost: a.localhost\r\n"
               b"Connection: close\r\n\r\n")
        status, body, _ = http_get(self.ddv.http_port, raw=raw)
        self.assertEqual(status, 200)
        self.assertEqual(fields(body)["site"], "b")

    def test_unknown_host_goes_to_listener_default(self):
        self.assertEqual(self.get("nobody.test")[0]["site"], "fallback")

    def test_unknown_host_without_default_gets_421(self):
        status, body, _ = http_get(self.ddv.strict_port, "nobody.test")
        self.assertEqual(status, 421, body)

    def test_http10_without_host_goes_to_default(self):
        status, body, _ = http_get(self.ddv.http_port,
                                   raw=b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertEqual(fields(body)["site"], "fallback")

    def test_tcp_listener_routes_to_its_default_without_peeking(self):
        # The raw listener has no peek: the request is only read by the worker.
        status, body, _ = http_get(self.ddv.tcp_port, "whatever.test")
        self.assertEqual(fields(body)["site"], "b")

    def test_one_byte_every_50ms_still_routes(self):
        request = (b"GET / HTTP/1.1\r\nHost: b.localhost\r\n"
                   b"Connection: close\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.ddv.http_port),
                                      timeout=10) as s:
            for i in range(len(request)):
                s.sendall(request[i:i + 1])
                time.sleep(0.05 if i < 20 else 0.005)
            status, body = harness.parse_response(harness.recv_all(s))
        self.assertEqual(status, 200)
        self.assertEqual(fields(body)["site"], "b")

    def test_partial_head_gets_408_at_the_deadline(self):
        with socket.create_connection(("127.0.0.1", self.ddv.http_port),
                                      timeout=10) as s:
            start = time.monotonic()
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.loc")
            status, _ = harness.parse_response(harness.recv_all(s))
            elapsed = time.monotonic() - start
        self.assertEqual(status, 408)
        self.assertGreater(elapsed, 1.2)
        self.assertLess(elapsed, 3.0)

    def test_silent_peer_is_closed_at_the_deadline(self):
        # TCP_DEFER_ACCEPT holds a silent connection in the kernel for a
        # second; the 1.5 s deadline must still count from the connect.
        with socket.create_connection(("127.0.0.1", self.ddv.http_port),
                                      timeout=10) as s:
            start = time.monotonic()
            harness.recv_all(s)
            elapsed = time.monotonic() - start
        self.assertGreater(elapsed, 1.2)
        self.assertLess(elapsed, 2.3)

    def test_20k_head_gets_431(self):
        raw = (b"GET / HTTP/1.1\r\nHost: a.localhost\r\nX-Big: " +
               b"x" * 20480 + b"\r\n\r\n")
        status, _, _ = http_get(self.ddv.http_port, raw=raw)
        self.assertEqual(status, 431)

    def test_garbage_gets_400(self):
        status, _, _ = http_get(self.ddv.http_port,
                                raw=b"\x00\x01garbage\r\n\r\n")
        self.assertEqual(status, 400)

    def test_keep_alive_requests_hit_the_same_pid(self):
        with socket.create_connection(("127.0.0.1", self.ddv.http_port),
                                      timeout=5) as s:
            pids = []
            for _ in range(2):
                s.sendall(b"GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
                data = b""
                while b"\n" not in data.partition(b"\r\n\r\n")[2]:
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, "connection closed")
                    data += chunk
                pids.append(fields(harness.parse_response(data)[1])["pid"])
        self.assertEqual(pids[0], pids[1])

    def test_both_processes_of_a_site_are_used(self):
        pids = {self.get("a.localhost")[0]["pid"] for _ in range(20)}
        self.assertEqual(len(pids), 2, pids)

    def test_status_and_metrics(self):
        status = self.ddv.status()
        self.assertEqual({l["name"] for l in status["listeners"]},
                         {"http", "strict", "https", "raw"})
        site_a = next(s for s in status["sites"] if s["id"] == "a")
        self.assertEqual(site_a["hosts"], ["a.localhost", "*.a.localhost"])
        self.assertEqual(len(site_a["workers"]), 2)
        for w in site_a["workers"]:
            self.assertGreater(w["pid"], 0)
            self.assertIn(w["state"], ("starting", "running"))
        metrics = harness.control(self.ddv.control_socket, "metrics")
        self.assertIn("ddv_connections_accepted_total ", metrics)
        self.assertIn("ddv_connections_handed_off_total ", metrics)

    def test_ddvctl(self):
        ddvctl = harness.runfile("src/ddvctl")
        out = subprocess.run(
            [ddvctl, f"--control_socket={self.ddv.control_socket}", "status",
             "--json"], capture_output=True, text=True, check=True).stdout
        self.assertIn('"sites"', out)
        bad = subprocess.run(
            [ddvctl, f"--control_socket={self.ddv.control_socket}", "frob"],
            capture_output=True, text=True)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("unknown command", bad.stderr)

    def test_killed_worker_comes_back_and_requests_keep_succeeding(self):
        old = self.ddv.worker_pids("b")[0]
        os.kill(old, signal.SIGKILL)
        # Requests during the restart wait for the new worker (worker_wait).
        for _ in range(10):
            self.assertEqual(self.get("b.localhost")[0]["site"], "b")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pids = self.ddv.worker_pids("b")
            if pids[0] not in (0, old):
                break
            time.sleep(0.05)
        self.assertNotIn(self.ddv.worker_pids("b")[0], (0, old))
        self.assertEqual(self.get("b.localhost")[0]["pid"],
                         str(self.ddv.worker_pids("b")[0]))

    def test_bad_traffic_leaks_no_fd(self):
        def fd_count():
            return len(os.listdir(f"/proc/{self.ddv.proc.pid}/fd"))

        self.get("a.localhost")  # warm up
        before = fd_count()
        bad = [b"\x00garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: nope.test\r\n\r\n",
               b"get / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"]
        for i in range(1000):
            with socket.create_connection(("127.0.0.1", self.ddv.strict_port),
                                          timeout=5) as s:
                s.sendall(bad[i % len(bad)])
                harness.recv_all(s)
        # Clients that vanish mid-head.
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", self.ddv.http_port))
            s.sendall(b"GET / HT")
            s.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and fd_count() != before:
            time.sleep(0.1)
        self.assertEqual(fd_count(), before)
        status = self.ddv.status()
        self.assertGreaterEqual(status["counters"]["malformed"], 500)
        self.assertGreaterEqual(status["counters"]["no_site"], 250)


class MasterPidfdTest(MasterScmRightsTest):
    HANDOFF = "pidfd"


class RobustnessTest(unittest.TestCase):
    def test_idle_control_clients_do_not_stall_routing(self):
        ddv = harness.Ddv()
        try:
            idle = []
            for _ in range(16):
                s = socket.socket(socket.AF_UNIX)
                s.connect(ddv.control_socket)
                idle.append(s)
            start = time.monotonic()
            status, body, _ = http_get(ddv.http_port, "a.localhost")
            self.assertEqual(status, 200)
            self.assertLess(time.monotonic() - start, 0.5)
            for s in idle:
                s.close()
            self.assertIn("sites", harness.control(ddv.control_socket, "status"))
        finally:
            ddv.stop()

    def test_deadlines_hold_with_a_tiny_ring(self):
        # With an 8-entry ring, a peek and its linked timeout must still go
        # out together, or an idle client would never be closed.
        ddv = harness.Ddv(extra_flags=["--ring_entries=8"])
        try:
            clients = []
            for _ in range(12):
                s = socket.create_connection(("127.0.0.1", ddv.http_port))
                s.sendall(b"GET / HTTP/1.1\r\nHost: a.lo")
                s.settimeout(5)
                clients.append(s)
            start = time.monotonic()
            for s in clients:
                status, _ = harness.parse_response(harness.recv_all(s))
                self.assertEqual(status, 408)
                s.close()
            self.assertLess(time.monotonic() - start, 3.5)
        finally:
            ddv.stop()


class TimeoutCloseTest(unittest.TestCase):
    """What the master holds after a 408, while the client keeps its end
    open: a peer that sent a partial head gets the lingering close (its
    slot stays until the linger deadline), a silent one is closed at once."""

    @classmethod
    def setUpClass(cls):
        # Accepted at once (no TCP_DEFER_ACCEPT hold), so the 0.5 s deadline
        # is the master's alone.
        cls.ddv = harness.Ddv(peek_timeout_ms=500,
                              extra_flags=["--defer_accept_seconds=0"])

    @classmethod
    def tearDownClass(cls):
        cls.ddv.stop()

    def undecided(self):
        return counters(self.ddv.control_socket)["ddv_connections_undecided"]

    def refused_then_held(self, first_bytes):
        """The 408, then how many connections the master holds right after
        it while this client keeps its socket open."""
        self.assertTrue(wait_for(lambda: self.undecided() == 0))
        with socket.create_connection(("127.0.0.1", self.ddv.http_port),
                                      timeout=10) as s:
            if first_bytes:
                s.sendall(first_bytes)
            status, _ = harness.parse_response(harness.recv_all(s))
            held = self.undecided()
        return status, held

    def test_silent_peer_is_not_lingered_on(self):
        status, held = self.refused_then_held(b"")
        self.assertEqual(status, 408)
        self.assertEqual(held, 0)

    def test_partial_head_is_lingered_on(self):
        status, held = self.refused_then_held(b"GET / HTTP/1.1\r\nHost: a.lo")
        self.assertEqual(status, 408)
        self.assertEqual(held, 1)  # reading until EOF or the linger deadline


class HeartbeatTest(unittest.TestCase):
    def test_hung_worker_is_replaced_and_its_request_served(self):
        ddv = harness.Ddv(extra_flags=["--heartbeat_interval_ms=200",
                                       "--heartbeat_timeout_ms=1000"])
        try:
            hung = ddv.worker_pids("b")[0]
            os.kill(hung, signal.SIGSTOP)
            start = time.monotonic()
            # Handed to the stopped worker, never acknowledged: the master
            # must notice the silence, kill it and give the socket to the
            # replacement.
            status, body, _ = http_get(ddv.http_port, "b.localhost",
                                       timeout=10)
            self.assertEqual(status, 200, body)
            self.assertNotEqual(int(fields(body)["pid"]), hung)
            self.assertLess(time.monotonic() - start, 5)
            # Killed and reaped by the master.
            self.assertFalse(os.path.exists(f"/proc/{hung}"))
        finally:
            ddv.stop()


class SignalTest(unittest.TestCase):
    def test_sigusr1_kills_no_worker(self):
        # logrotate's `kill -USR1`: the log writer reopens the files
        # (tests/logwriter has the full story); the master once forwarded
        # the signal, whose default action killed every worker.
        message = "log writer: reopened 3 log files"
        ddv = harness.Ddv(extra_flags=["--log_dir="])  # INFO to stderr
        try:
            def pids():
                return {s["id"]: sorted(w["pid"] for w in s["workers"])
                        for s in ddv.status()["sites"]}
            before = pids()
            for n in (1, 2):
                ddv.proc.send_signal(signal.SIGUSR1)
                deadline = time.monotonic() + 5
                while (ddv.read_log().count(message) < n and
                       time.monotonic() < deadline):
                    time.sleep(0.05)
                self.assertEqual(ddv.read_log().count(message), n,
                                 ddv.read_log())
            time.sleep(0.3)  # a killed worker would be seen dead by now
            self.assertIsNone(ddv.proc.poll())
            self.assertEqual(pids(), before)
            for host, site in (("a.localhost", "a"), ("b.localhost", "b"),
                               ("other.localhost", "fallback")):
                status, body, _ = http_get(ddv.http_port, host)
                self.assertEqual(status, 200, body)
                self.assertEqual(fields(body)["site"], site)
            # And a stray SIGUSR1 sent straight to ddv_hello is ignored.
            worker = before["b"][0]
            os.kill(worker, signal.SIGUSR1)
            time.sleep(0.3)
            self.assertEqual(pids(), before)
            status, body, _ = http_get(ddv.http_port, "b.localhost")
            self.assertEqual(status, 200, body)
            self.assertEqual(int(fields(body)["pid"]), worker)
        finally:
            ddv.stop()

    def test_master_ignores_sigpipe(self):
        ddv = harness.Ddv()
        try:
            with open(f"/proc/{ddv.proc.pid}/status") as f:
                ignored = next(int(line.split()[1], 16) for line in f
                               if line.startswith("SigIgn:"))
            self.assertTrue(ignored & (1 << (signal.SIGPIPE - 1)),
                            hex(ignored))
        finally:
            ddv.stop()


class ConfigErrorTest(unittest.TestCase):
    def test_config_error_exits_2_with_file_line_col(self):
        path = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "bad.toml")
        with open(path, "w") as f:
            f.write('[[listener]]\nname = "x"\naddress = "127.0.0.1:80"\n'
                    'protocol = "htp"\n')
        result = subprocess.run(
            [harness.runfile("src/ddv_master"), f"--config={path}",
             "--watchdog=false"], capture_output=True, text=True, timeout=10)
        self.assertEqual(result.returncode, 2)
        self.assertRegex(result.stderr, rf"{path}:4:\d+: ")

    def test_handoff_batch_outside_1_to_64_exits_2(self):
        # 0 would queue every connection forever.
        for value in ("0", "65"):
            result = subprocess.run(
                [harness.runfile("src/ddv_master"), f"--handoff_batch={value}",
                 "--check_config"], capture_output=True, text=True,
                timeout=10)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn(f"--handoff_batch must be 1..64 (connections per "
                          f"handoff message), not {value}", result.stderr)


if __name__ == "__main__":
    unittest.main()
