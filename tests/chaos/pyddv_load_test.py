"""pyddv.load, the chaos suite's traffic: each failure kind is counted
exactly (against a fake server that misbehaves on purpose, by Host), a
load against a real ddv_hello succeeds and honours its rate cap, the
download client checks every byte and its pace, and a load that overruns
its bound is killed."""
import os
import re
import socket
import socketserver
import struct
import subprocess
import threading
import time
import unittest

from pyddv import load as pyload
from pyddv.procs import stop_process
from tests.master import harness

BODY = b"site=s worker=3 pid=4242 host=x\n"
HALF = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"


class FakeHandler(socketserver.BaseRequestHandler):
    """Answers each request by its Host: ok, status, reset, close, half,
    stall, garbage, close-header; /bytes/N with a corrupt or short body."""

    def handle(self):
        s = self.request
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = s.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            host = re.search(rb"Host: (\S+)", head).group(1).decode()
            target = head.split(b" ")[1].decode()
            if not self.answer(s, host, target):
                return

    def answer(self, s, host, target):
        kind = host.split(".")[0]
        if target.startswith("/bytes/"):
            size = int(target[7:])
            body = bytearray(pyload.hello_bytes(0, size))
            if kind == "corrupt":
                body[1000003] ^= 1
            elif kind == "short":
                body = body[:size // 2]
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
                      + bytes(body))
            return False
        if kind == "ok":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                      % len(BODY) + BODY)
            return True
        if kind == "status":
            s.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
            return True
        if kind == "closeheader":
            s.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
            return False
        if kind == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            s.close()  # an RST, before socketserver's own shutdown()
            return False
        if kind == "half":
            s.sendall(HALF)
            return False
        if kind == "stall":
            self.server.stop.wait(10)
            return False
        if kind == "garbage":
            s.sendall(b"garbage\r\n\r\n")
            return False
        return False  # "close": no answer


class FakeServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.stop = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]

    def close(self):
        self.stop.set()
        self.shutdown()
        self.server_close()


class FailureKindsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = FakeServer()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def run_load(self, host, mode="keepalive", requests=10, **kw):
        load = pyload.start_load(self.server.port, [host], mode,
                                 connections=2, max_requests=requests,
                                 duration=10, **kw)
        self.addCleanup(load.kill)
        result = load.result()
        self.assertEqual(result["requests"], requests, result.summary())
        return result

    def test_ok_counts_pids_and_hosts(self):
        for mode in ("keepalive", "new_connection"):
            result = self.run_load("ok.test", mode, requests=50)
            self.assertEqual(result["ok"], 50)
            self.assertEqual(result.failed(), 0)
            self.assertEqual(result.pids_of(),
                             {4242: {"site": "s", "worker": 3, "count": 50,
                                     "first": result["pids"]["4242"]["first"],
                                     "last": result["pids"]["4242"]["last"]}})
            self.assertEqual(result["hosts"]["ok.test"],
                             {"ok": 50, "failed": 0, "sites": {"s": 50}})
            self.assertEqual(result["connections"],
                             2 if mode == "keepalive" else 50)

    def test_each_failure_kind(self):
        cases = {
            "status.test": ("status", "503"),
            "reset.test": ("reset", "ECONNRESET"),
            "close.test": ("closed", "before any answer byte"),
            "half.test": ("closed", f"after {len(HALF)} answer bytes"),
            "garbage.test": ("bad_response", "garbage\r\n\r\n"),
        }
        for host, (kind, detail) in cases.items():
            result = self.run_load(host)
            self.assertEqual(result["ok"], 0, host)
            self.assertEqual(result.failed(), 10, result.summary())
            self.assertEqual(result["failures"][kind], 10, result.summary())
            self.assertEqual(len(result["events"]), 10)
            for event in result["events"]:
                self.assertEqual((event["kind"], event["host"]),
                                 (kind, host))
                self.assertEqual(event["detail"], detail)
                self.assertIsInstance(event["port"], int)
            self.assertEqual(result["hosts"][host]["failed"], 10)
        self.assertEqual(self.run_load("status.test")["statuses"],
                         {"503": 10})

    def test_timeout(self):
        start = time.monotonic()
        result = self.run_load("stall.test", requests=4, timeout=0.3)
        self.assertEqual(result["failures"]["timeout"], 4, result.summary())
        # Two at a time, each after 0.3 s.
        self.assertGreater(time.monotonic() - start, 0.55)

    def test_refused_connect(self):
        port = harness.free_port()  # nothing listens there
        load = pyload.start_load(port, ["x"], "new_connection",
                                 connections=2, max_requests=6, duration=10)
        result = load.result()
        self.assertEqual(result["failures"]["connect"], 6, result.summary())
        self.assertEqual({e["detail"] for e in result["events"]},
                         {"ECONNREFUSED"})

    def test_connection_close_answer_is_followed_not_failed(self):
        result = self.run_load("closeheader.test", requests=20)
        self.assertEqual(result["ok"], 20, result.summary())
        self.assertEqual(result["told_to_close"], 20)
        self.assertEqual(result["connections"], 20)

    def test_download_mismatch_and_short_body(self):
        size = 3 * 1000 * 1000
        corrupt = pyload.start_download(self.server.port, "corrupt.test",
                                        size, rate=100e6).result()
        self.assertEqual(corrupt["mismatch"], 1000003, corrupt)
        self.assertEqual(corrupt["received"], size)
        self.assertFalse(corrupt["complete"])
        short = pyload.start_download(self.server.port, "short.test",
                                      size, rate=100e6).result()
        self.assertEqual(short["received"], size // 2, short)
        self.assertIsNone(short["mismatch"])
        self.assertFalse(short["complete"])

    def test_a_load_past_its_bound_is_killed(self):
        load = pyload.start_load(self.server.port, ["stall.test"],
                                 connections=1, duration=60, timeout=60)
        pid = load.pid
        with self.assertRaises(TimeoutError):
            load.result(timeout=0.5)
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)


class HelloTest(unittest.TestCase):
    """Against a real standalone ddv_hello."""

    @classmethod
    def setUpClass(cls):
        cls.hello = subprocess.Popen(
            [harness.runfile("src/ddv_hello"), "--port=0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = cls.hello.stdout.readline()
        cls.port = int(re.search(r":(\d+) \(", line).group(1))

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.hello)

    def test_rate_cap_and_answers(self):
        for mode in ("keepalive", "new_connection"):
            load = pyload.start_load(self.port, ["a.test", "b.test"], mode,
                                     connections=4, rate=1000, duration=1.0)
            result = load.result()
            self.assertEqual(result.failed(), 0, result.summary())
            self.assertLessEqual(result["requests"], 1000 * 1.0 + 4)
            self.assertGreater(result["requests"], 250, result.summary())
            self.assertEqual(list(result.pids_of()), [self.hello.pid])
            for host in ("a.test", "b.test"):
                self.assertEqual(list(result["hosts"][host]["sites"]),
                                 ["standalone"])

    def test_download_is_exact_and_paced(self):
        size = 3 * 1000 * 1000
        got = pyload.start_download(self.port, "x", size,
                                    rate=10e6).result()
        self.assertTrue(got["complete"], got)
        self.assertEqual(got["received"], size)
        # 3 MB at 10 MB/s: 0.3 s, however fast loopback is.
        self.assertGreater(got["ended"] - got["started"], 0.28)


class PatternTest(unittest.TestCase):
    def test_hello_bytes_is_the_documented_pattern(self):
        data = pyload.hello_bytes(0, 200)
        self.assertEqual(data[:3], b"abc")
        self.assertEqual(data[63:64], b"\n")
        self.assertEqual(data[64:67], b"abc")
        for offset in (0, 1, 63, 64, 1000003):
            self.assertEqual(pyload.hello_bytes(offset, 130),
                             pyload.hello_bytes(0, offset + 130)[offset:])


if __name__ == "__main__":
    unittest.main()
