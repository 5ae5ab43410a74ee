"""Overload, end to end: at --max_connections the master stops accepting and
clients wait in the kernel's listen backlog; none is accepted just to be
reset, and each is served once a slot frees."""
import os
import signal
import socket
import threading
import time
import unittest

import harness
from harness import fields, wait_for
from pyddv.control import counters
from pyddv.net import parse_response, request_bytes

# Idle clients are accepted at once, not held back by TCP_DEFER_ACCEPT until
# their first byte, so they fill the table.
FLAGS = ["--max_connections=8", "--defer_accept_seconds=0"]


def fetch(port, host, results, lock, timeout=15.0):
    """One GET on a new connection; appends ("ok", site, seconds) or
    ("error", why, seconds)."""
    start = time.monotonic()
    outcome = None
    try:
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=timeout) as s:
            s.sendall(request_bytes(host))
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        status, body = parse_response(b"".join(chunks))
        if status == 200:
            outcome = ("ok", fields(body)["site"])
        else:
            outcome = ("error", f"status {status}")
    except ConnectionResetError:
        outcome = ("error", "reset")
    except OSError as e:
        outcome = ("error", repr(e))
    with lock:
        results.append(outcome + (time.monotonic() - start,))


def run_clients(port, count, host="a.localhost"):
    results, lock = [], threading.Lock()
    threads = [threading.Thread(target=fetch,
                                args=(port, host, results, lock))
               for _ in range(count)]
    for t in threads:
        t.start()
    return threads, results


class OverloadTest(unittest.TestCase):
    def test_clients_wait_in_the_backlog_while_idle_ones_fill_the_table(self):
        ddv = harness.Ddv(peek_timeout_ms=500, extra_flags=FLAGS)
        try:
            idle = []
            for _ in range(8):
                idle.append(socket.create_connection(
                    ("127.0.0.1", ddv.http_port), timeout=10))
            self.assertTrue(wait_for(
                lambda: counters(ddv.control_socket)
                ["ddv_connections_undecided"] == 8), ddv.read_log())
            self.assertTrue(wait_for(
                lambda: counters(ddv.control_socket)["ddv_accept_paused"] == 1))
            threads, results = run_clients(ddv.http_port, 20)
            time.sleep(0.2)
            # The 20 are in the backlog, not in the master.
            m = counters(ddv.control_socket)
            self.assertEqual(m["ddv_connections_accepted_total"], 8, m)
            self.assertEqual(m["ddv_connections_held"], 0, m)
            for t in threads:
                t.join(timeout=30)
            self.assertEqual(len(results), 20)
            errors = [r for r in results if r[0] != "ok"]
            self.assertEqual(errors, [], ddv.read_log())
            # Served only once the idle ones reached their peek deadline.
            self.assertGreaterEqual(min(r[2] for r in results), 0.25)
            for s in idle:
                status, _ = parse_response(harness.recv_all(s))
                self.assertEqual(status, 408)
                s.close()
            m = counters(ddv.control_socket)
            self.assertGreaterEqual(m["ddv_accept_paused_total"], 1, m)
            self.assertGreater(m["ddv_accept_paused_seconds_total"], 0.2, m)
            self.assertEqual(m["ddv_accept_paused"], 0, m)
            self.assertEqual(m["ddv_connections_accepted_total"], 28, m)
            self.assertEqual(m["ddv_peek_timeout_total"], 8, m)
        finally:
            self.assertEqual(ddv.stop(), 0)

    def test_dead_workers_unread_connections_wait_for_a_slot(self):
        # Site b's only worker is stopped, so what the master hands it stays
        # unread in its channel; then idle clients fill the table and the
        # worker is killed. The master takes those connections back with no
        # slot for them: they wait for one, not reset, and are served by the
        # restarted worker once the idle ones time out.
        ddv = harness.Ddv(peek_timeout_ms=700, extra_flags=FLAGS)
        try:
            b = ddv.worker_pids("b")[0]
            os.kill(b, signal.SIGSTOP)
            threads, results = run_clients(ddv.http_port, 5, "b.localhost")
            self.assertTrue(wait_for(
                lambda: counters(ddv.control_socket)
                ["ddv_connections_handed_off_total"] == 5))
            idle = [socket.create_connection(("127.0.0.1", ddv.http_port),
                                             timeout=10) for _ in range(8)]
            self.assertTrue(wait_for(
                lambda: counters(ddv.control_socket)["ddv_accept_paused"] == 1))
            os.kill(b, signal.SIGKILL)
            for t in threads:
                t.join(timeout=30)
            self.assertEqual([r[:2] for r in results], [("ok", "b")] * 5,
                             ddv.read_log())
            m = counters(ddv.control_socket)
            self.assertEqual(m["ddv_handoff_worker_gone_total"], 5, m)
            for s in idle:
                s.close()
        finally:
            self.assertEqual(ddv.stop(), 0)

    def test_out_of_fds_pauses_accepts_instead_of_failing_clients(self):
        # 34 fds: the master uses about 23 itself (the log writer's link
        # among them) and a worker's start a few more for a moment, so a
        # table of 16 runs out of fds first. accept() then fails with EMFILE (the kernel takes no
        # connection): the master pauses, and the clients past the limit
        # wait in the backlog until idle ones time out and free their fds.
        ddv = harness.Ddv(peek_timeout_ms=500,
                          extra_flags=["--max_connections=16",
                                       "--defer_accept_seconds=0",
                                       "--ring_entries=256"],
                          prefix=["prlimit", "--nofile=34:34", "--"])
        try:
            idle = [socket.create_connection(("127.0.0.1", ddv.http_port),
                                             timeout=20) for _ in range(14)]
            threads, results = run_clients(ddv.http_port, 20)
            for t in threads:
                t.join(timeout=60)
            errors = [r for r in results if r[0] != "ok"]
            self.assertEqual(len(results), 20)
            self.assertEqual(errors, [], ddv.read_log())
            for s in idle:
                status, _ = parse_response(harness.recv_all(s))
                self.assertEqual(status, 408)
                s.close()
            m = counters(ddv.control_socket)
            self.assertGreaterEqual(m["ddv_accept_errors_total"], 1, m)
            self.assertGreaterEqual(m["ddv_accept_paused_total"], 1, m)
            self.assertEqual(m["ddv_connections_accepted_total"], 34, m)
            self.assertIn("Too many open files", ddv.read_log())
        finally:
            self.assertEqual(ddv.stop(), 0)

    def test_many_concurrent_clients_on_a_small_table_are_all_served(self):
        # 64 clients at a time, 640 connections, through the 2 slots that 6
        # idle clients leave of a table of 8: it fills again and again, and
        # every client must get its answer.
        ddv = harness.Ddv(peek_timeout_ms=10000, extra_flags=FLAGS)
        try:
            idle = [socket.create_connection(("127.0.0.1", ddv.http_port),
                                             timeout=20) for _ in range(6)]
            self.assertTrue(wait_for(
                lambda: counters(ddv.control_socket)
                ["ddv_connections_undecided"] == 6))
            results, lock = [], threading.Lock()

            def client():
                for _ in range(10):
                    fetch(ddv.http_port, "a.localhost", results, lock)

            threads = [threading.Thread(target=client) for _ in range(64)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            self.assertEqual(len(results), 640)
            errors = [r for r in results if r[0] != "ok"]
            self.assertEqual(errors, [], ddv.read_log())
            self.assertEqual({r[1] for r in results}, {"a"})
            m = counters(ddv.control_socket)
            self.assertEqual(m["ddv_connections_handed_off_total"], 640, m)
            self.assertEqual(m["ddv_accept_errors_total"], 0, m)
            self.assertEqual(m["ddv_connections_held"], 0, m)
            self.assertGreaterEqual(m["ddv_accept_paused_total"], 1, m)
            self.assertEqual(m["ddv_connections_undecided"], 6, m)
            for s in idle:
                s.close()
        finally:
            self.assertEqual(ddv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
