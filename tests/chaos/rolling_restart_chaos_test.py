"""Chaos: rolling restarts under load lose no request.

Keep-alive and new-connection traffic to two sites while site "a" is
replaced worker by worker: twice by `ddvctl restart a`, then by reloads
that change its command and its process count. A 15 MB download from "a",
read at 5 MB/s, runs through the first restart. Zero failed requests of
any kind; every answer from the right site; every old worker of "a" gone
each time; "b" untouched; the download complete and byte-exact."""
import sys
import time
import unittest

from pyddv import load as pyload
from tests.chaos import chaos
from tests.chaos.chaos import Site
from tests.master import harness

DOWNLOAD_BYTES = 15 * 1000 * 1000
DOWNLOAD_RATE = 5 * 1000 * 1000
# Traffic to each generation of workers before the next change.
DWELL = 1.0


def sites(a_processes=2, a_args=()):
    return [Site("a", hosts=("a.localhost",), processes=a_processes,
                 args=a_args),
            Site("b", hosts=("b.localhost",)),
            Site("fallback")]


class RollingRestartTest(chaos.ChaosTest):
    def test_restart_and_command_changes_under_load_fail_nothing(self):
        ddv = chaos.start_front_door(self, sites())
        b_pids = chaos.live_pids(ddv, "b")
        hosts = ["a.localhost", "b.localhost"]
        start = time.monotonic()
        loads = chaos.start_traffic(self, ddv.http_port, hosts, duration=60)
        download = pyload.start_download(ddv.http_port, "a.localhost",
                                         DOWNLOAD_BYTES, DOWNLOAD_RATE)
        self.addCleanup(download.kill)

        # ddvctl restart, twice: each replaces both workers of "a". The
        # first waits for the download's worker to finish it (the drain).
        restarted = []
        for _ in range(2):
            time.sleep(DWELL)
            old = chaos.live_pids(ddv, "a")
            reply = harness.control(ddv.control_socket, "restart a")
            restarted.append(time.monotonic())
            self.assertTrue(reply.startswith("ok: restarting 2 workers"),
                            reply)
            new = chaos.wait_replaced(ddv, "a", old, 2)
            self.assertFalse(set(new) & set(old), ddv.status())
            self.assertEqual(len(new), 2, ddv.status())

        # A changed command is a rolling restart too; with it, 2 -> 3
        # workers, then back to the first command and 2 workers.
        for processes, args in ((3, ("--idle_timeout_ms=59000",)), (2, ())):
            time.sleep(DWELL)
            old = chaos.live_pids(ddv, "a")
            reply = chaos.reload(ddv, sites(processes, args))
            self.assertTrue(reply.startswith("ok: reloaded"), reply)
            new = chaos.wait_replaced(ddv, "a", old, processes)
            self.assertEqual(len(new), processes, ddv.status())
        time.sleep(DWELL)

        seconds = time.monotonic() - start
        keepalive, new_connection = chaos.finish(loads)
        got = download.result()
        print(f"download: {got}", file=sys.stderr)
        self.assertCleanRun(keepalive, new_connection, seconds, ddv)
        # Old workers answered, and so did the new ones of every round.
        self.assertGreaterEqual(len(new_connection.pids_of("a")), 8)
        self.assertEqual(chaos.live_pids(ddv, "b"), b_pids)
        # The download was still running when the first restart began.
        self.assertGreater(got["ended"], restarted[0])
        self.assertTrue(got["complete"], got)
        self.assertEqual(got["received"], DOWNLOAD_BYTES)
        self.assertIsNone(got["mismatch"])
        self.assertEqual(ddv.status()["counters"]["stale_completions"], 0)


if __name__ == "__main__":
    unittest.main()
