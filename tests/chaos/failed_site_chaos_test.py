"""Chaos: a site driven into the failed state, then `ddvctl restart SITE`.

Site "crashy" runs two ddv_hello workers through a script that exits 1
while a file is missing. The file is removed and both workers are killed:
their restarts crash in a loop until the site is failed. Meanwhile its
host is refused at once (503, well within --worker_wait_ms), and traffic
to the other sites loses nothing. Once the file is back, `ddvctl restart
crashy` brings both workers back and the site serves again."""
import os
import signal
import subprocess
import time
import unittest

from tests.chaos import chaos
from tests.chaos.chaos import Site
from tests.master import harness
from tests.master.harness import fields, http_get

CRASH_LOOP_LIMIT = 3  # exits within the window that fail a worker


class FailedSiteTest(chaos.ChaosTest):
    def test_failed_site_serves_again_after_restart(self):
        scripts = {}

        def text(ddv):
            scripts["flag"], script = harness.crashy_worker(ddv)
            return chaos.config_text(ddv, [
                Site("a", hosts=("a.localhost",), processes=2),
                Site("b", hosts=("b.localhost",)),
                Site("crashy", hosts=("crashy.localhost",), processes=2,
                     command=(script,)),
                Site("fallback")])
        ddv = harness.Ddv(config_text=text, extra_flags=[
            *chaos.MASTER_FLAGS, f"--crash_loop_limit={CRASH_LOOP_LIMIT}"])
        self.addCleanup(ddv.stop)
        ddvctl = harness.runfile("src/ddvctl")
        self.assertEqual(chaos.site_of(ddv.http_port, "crashy.localhost"),
                         "crashy")
        start = time.monotonic()
        loads = chaos.start_traffic(self, ddv.http_port,
                                    ["a.localhost", "b.localhost"],
                                    duration=60)
        time.sleep(0.5)

        # Crash loop: every start of either worker exits 1.
        os.unlink(scripts["flag"])
        for pid in chaos.live_pids(ddv, "crashy"):
            os.kill(pid, signal.SIGKILL)

        def failed():
            site = next(s for s in ddv.status()["sites"]
                        if s["id"] == "crashy")
            return site["failed"] and all(
                w["state"] == "failed" for w in site["workers"])
        self.assertTrue(chaos.wait_for(failed, timeout=20), ddv.status())
        for _ in range(5):
            asked = time.monotonic()
            status, _, _ = http_get(ddv.http_port, "crashy.localhost")
            self.assertEqual(status, 503)
            self.assertLess(time.monotonic() - asked, 0.5,
                            "a failed site refuses at once")

        open(scripts["flag"], "w").close()
        restart = subprocess.run(
            [ddvctl, f"--control_socket={ddv.control_socket}", "restart",
             "crashy"], capture_output=True, text=True, timeout=20)
        self.assertEqual(restart.returncode, 0, restart.stderr)
        self.assertTrue(restart.stdout.startswith("ok: restarting 2 workers"),
                        restart.stdout)
        self.assertTrue(chaos.wait_for(
            lambda: len(chaos.live_pids(ddv, "crashy")) == 2, timeout=10),
            ddv.status())
        answered = set()
        for _ in range(20):
            status, body, _ = http_get(ddv.http_port, "crashy.localhost")
            self.assertEqual(status, 200, body)
            self.assertEqual(fields(body)["site"], "crashy")
            answered.add(int(fields(body)["pid"]))
        self.assertEqual(answered, set(chaos.live_pids(ddv, "crashy")))
        time.sleep(0.5)

        seconds = time.monotonic() - start
        keepalive, new_connection = chaos.finish(loads)
        self.assertCleanRun(keepalive, new_connection, seconds, ddv)


if __name__ == "__main__":
    unittest.main()
