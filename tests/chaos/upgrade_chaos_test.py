"""Chaos: binary upgrades under load lose no request.

The front door runs under its watchdog. Under keep-alive and
new-connection traffic, and a 15 MB download read at 5 MB/s, it is
upgraded twice: `ddvctl upgrade`, then SIGUSR2 to the watchdog. Each time
the master hands off what it holds and exits, the watchdog re-executes
itself in place, and its new master adopts the workers
(docs/lifecycle.md, "Upgrades"). Zero failed requests of any kind; the
same watchdog pid and worker pids throughout, and no other pid answers; a
new master each time; the download complete and byte-exact."""
import signal
import subprocess
import sys
import time
import unittest

from pyddv import load as pyload
from tests.chaos import chaos
from tests.chaos.chaos import Site
from tests.master import harness

DOWNLOAD_BYTES = 15 * 1000 * 1000
DOWNLOAD_RATE = 5 * 1000 * 1000
DWELL = 1.5  # seconds of traffic before, between and after the upgrades


class UpgradeTest(chaos.ChaosTest):
    def test_upgrades_under_load_fail_nothing(self):
        ddv = chaos.start_front_door(self, [
            Site("a", hosts=("a.localhost",), processes=2),
            Site("b", hosts=("b.localhost",)),
            Site("fallback")], watchdog=True)
        ddvctl = harness.runfile("src/ddvctl")
        workers = chaos.worker_pids(ddv)
        watchdog = ddv.proc.pid
        start = time.monotonic()
        loads = chaos.start_traffic(self, ddv.http_port,
                                    ["a.localhost", "b.localhost"],
                                    duration=60)
        download = pyload.start_download(ddv.http_port, "a.localhost",
                                         DOWNLOAD_BYTES, DOWNLOAD_RATE)
        self.addCleanup(download.kill)

        time.sleep(DWELL)
        old = chaos.master_pid(ddv)
        upgraded = time.monotonic()
        result = subprocess.run(
            [ddvctl, f"--control_socket={ddv.control_socket}", "upgrade"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, rf"ok: master {old} replaced by \d+")
        self.assertNotEqual(chaos.master_pid(ddv), old)
        self.assertEqual(chaos.worker_pids(ddv), workers)

        time.sleep(DWELL)
        old = chaos.master_pid(ddv)
        ddv.proc.send_signal(signal.SIGUSR2)
        self.assertTrue(chaos.wait_for(
            lambda: chaos.master_pid(ddv) not in (None, old), timeout=20),
            harness.full_log(ddv)[-3000:])
        self.assertEqual(chaos.worker_pids(ddv), workers)
        time.sleep(DWELL)

        seconds = time.monotonic() - start
        keepalive, new_connection = chaos.finish(loads)
        got = download.result()
        print(f"download: {got}", file=sys.stderr)
        self.assertEqual(ddv.proc.pid, watchdog)
        self.assertIsNone(ddv.proc.poll())
        self.assertEqual(chaos.worker_pids(ddv), workers)
        self.assertCleanRun(keepalive, new_connection, seconds, ddv)
        self.assertServedByWorkers(keepalive, new_connection, seconds,
                                   workers)
        self.assertTrue(got["complete"], got)
        self.assertLess(got["started"], upgraded)
        self.assertGreater(got["ended"], upgraded)


if __name__ == "__main__":
    unittest.main()
