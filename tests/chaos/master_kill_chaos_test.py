"""Chaos: kill -9 the master three times under load.

The front door runs under its watchdog, which keeps the listeners and
every worker's channel (docs/lifecycle.md). During 15 s of keep-alive and
new-connection traffic, and a 50 MB download read at 5 MB/s, the master is
killed (SIGKILL) three times, a few seconds apart. Each time a new master
answers within RESTART_WITHIN; the workers are adopted, not restarted:
- the same worker pids before, between and after the kills, and no other
  pid ever answers;
- zero keep-alive failures, and the download complete and byte-exact;
- new connections fail only as resets within a kill's restart window: the
  ones the dead master had accepted and not yet handed off are lost with
  it (docs/lifecycle.md, "What is lost"; measured: 1 reset in 15 kills).
  That is the one difference left from the issue's "0 socket errors". The
  watchdog counts what each dead master held as far as it knew
  (ddv_connections_lost_in_master_crashes_total, checked exactly in
  watchdog_e2e_test); accepts the kernel completed that the master had
  not read yet are not in that count."""
import os
import sys
import time
import unittest

from pyddv import load as pyload
from tests.chaos import chaos
from tests.chaos.chaos import Site
from tests.master import harness

SECONDS = 15
KILLS = 3
RESTART_WITHIN = 5.0  # seconds from a kill to the next master's answer
DOWNLOAD_BYTES = 50 * 1000 * 1000
DOWNLOAD_RATE = 5 * 1000 * 1000


class MasterKillTest(chaos.ChaosTest):
    def test_three_master_kills_under_load(self):
        ddv = chaos.start_front_door(self, [
            Site("a", hosts=("a.localhost",), processes=2),
            Site("b", hosts=("b.localhost",)),
            Site("fallback")], watchdog=True)
        workers = chaos.worker_pids(ddv)
        watchdog = ddv.proc.pid
        loads = chaos.start_traffic(self, ddv.http_port,
                                    ["a.localhost", "b.localhost"],
                                    duration=SECONDS)
        download = pyload.start_download(ddv.http_port, "a.localhost",
                                         DOWNLOAD_BYTES, DOWNLOAD_RATE)
        self.addCleanup(download.kill)

        windows = []
        for _ in range(KILLS):
            time.sleep(2.5)
            killed_at, master = chaos.kill_master(ddv,
                                                  timeout=RESTART_WITHIN)
            answered_at = time.monotonic()
            self.assertTrue(master, harness.full_log(ddv)[-3000:])
            windows.append((killed_at, answered_at))
            self.assertEqual(chaos.worker_pids(ddv), workers)
        keepalive, new_connection = [load.result() for load in loads]
        for result in (keepalive, new_connection):
            print(result.summary(), file=sys.stderr)
        got = download.result()
        print(f"download: {got}; restarts: "
              f"{[round(b - a, 3) for a, b in windows]} s", file=sys.stderr)

        self.assertEqual(ddv.proc.pid, watchdog)
        self.assertIsNone(ddv.proc.poll())
        self.assertEqual(chaos.worker_pids(ddv), workers)
        self.assertNoFailures(keepalive, ddv)
        self.assertServedByWorkers(keepalive, new_connection, SECONDS,
                                   workers)
        self.assertEqual(new_connection.failed(),
                         new_connection["failures"]["reset"],
                         new_connection.summary())
        for event in new_connection["events"]:
            # A reset seen a moment after the probe saw the new master:
            # the load runs in another process.
            self.assertTrue(any(a <= event["t"] <= b + 0.5
                                for a, b in windows), (event, windows))
        self.assertTrue(got["complete"], got)
        self.assertIsNone(got["mismatch"])
        # The download ran through every kill.
        self.assertLess(got["started"], windows[0][0])
        self.assertGreater(got["ended"], windows[-1][1])


if __name__ == "__main__":
    unittest.main()
