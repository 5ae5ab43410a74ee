"""--drain_timeout, end to end: a download in progress when the master gets
SIGTERM completes if it fits the drain, and is cut at the drain otherwise;
either way the master exits 0 once its workers are gone."""
import signal
import socket
import time
import unittest

import harness

SIZE = 20 * 1000 * 1000
RATE = 5 * 1000 * 1000  # bytes per second the client reads


def slow_download(port, sigterm_at, on_sigterm, size=SIZE, rate=RATE):
    """GET /bytes/<size>, read at `rate`; calls on_sigterm() once
    `sigterm_at` body bytes have arrived. Returns (head, body bytes, seconds
    after the signal until EOF)."""
    with socket.socket() as s:
        # A small receive buffer, so the worker is still sending (not done
        # and waiting in kernel buffers) when the signal comes.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: a.localhost\r\n"
                  f"Connection: close\r\n\r\n".encode())
        data = bytearray()
        head = None
        start = time.monotonic()
        signalled = None
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            if head is None and b"\r\n\r\n" in data:
                head, _, rest = bytes(data).partition(b"\r\n\r\n")
                data = bytearray(rest)
            if head is not None and signalled is None and len(data) >= sigterm_at:
                on_sigterm()
                signalled = time.monotonic()
            # Pace: never ahead of `rate`.
            ahead = len(data) / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        return head, len(data), time.monotonic() - (signalled or start)


class DrainTest(unittest.TestCase):
    def test_download_that_fits_the_drain_completes(self):
        ddv = harness.Ddv(extra_flags=["--drain_timeout=10"])
        try:
            head, received, after = slow_download(
                ddv.http_port, sigterm_at=2 * 1000 * 1000,
                on_sigterm=lambda: ddv.proc.send_signal(signal.SIGTERM))
            self.assertIsNotNone(head)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            self.assertIn(f"Content-Length: {SIZE}".encode(), head)
            self.assertEqual(received, SIZE, ddv.read_log())
            # It was still going when the signal came: ~3.6 s of reading left.
            self.assertGreater(after, 2.5)
            self.assertEqual(ddv.proc.wait(timeout=15), 0, ddv.read_log())
        finally:
            ddv.stop()

    def test_download_longer_than_the_drain_is_cut_at_the_drain(self):
        ddv = harness.Ddv(extra_flags=["--drain_timeout=1"])
        try:
            head, received, after = slow_download(
                ddv.http_port, sigterm_at=1000 * 1000,
                on_sigterm=lambda: ddv.proc.send_signal(signal.SIGTERM))
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            self.assertLess(received, SIZE)
            # Cut after the one-second drain (not ddv_hello's own 10 s stop
            # timeout), and the master is gone soon after.
            self.assertGreater(after, 0.8)
            self.assertLess(after, 3.5)
            self.assertEqual(ddv.proc.wait(timeout=10), 0, ddv.read_log())
        finally:
            ddv.stop()


if __name__ == "__main__":
    unittest.main()
