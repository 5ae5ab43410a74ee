"""Chaos: what must be refused under load is refused, and costs the traffic
nothing.

- A non-owner uid on the control socket: `ddvctl` run as nobody (setpriv)
  is refused every command, first by the socket file's default 0600 mode,
  then, with the mode opened to 0666 by a reload, by the master's own peer
  check; nothing it asked for happens (same master, same workers).
- A worker claiming another site's host: site "greedy" (two rpc_worker
  processes) asks at each start for b.localhost, which site "b" serves;
  every claim is refused, the refusal is what its workers were told, and
  b.localhost keeps going to "b" only, through three generations of
  greedy workers.
Keep-alive and new-connection traffic to a.localhost and b.localhost runs
throughout and loses nothing."""
import os
import pwd
import shutil
import sys
import time
import unittest

from tests.chaos import chaos
from tests.chaos.chaos import Site
from tests.master import harness
from tests.master.harness import fields, http_get

NOBODY = pwd.getpwnam("nobody")
COMMANDS = (("status",), ("reload",), ("stop",), ("restart", "a"))


def sites(with_greedy=False):
    out = [Site("a", hosts=("a.localhost",), processes=2),
           Site("b", hosts=("b.localhost",)),
           Site("fallback")]
    if with_greedy:
        worker = harness.runfile("tests/master/rpc_worker")
        out.append(Site(
            "greedy", hosts=("greedy.localhost",), processes=2,
            command=(worker,),
            extra='claimable_hosts = ["*.localhost"]\n'
                  "env = { RPC_UPDATE = "
                  """'{"add_hosts": ["b.localhost"]}' }\n"""))
    return out


@unittest.skipIf(os.geteuid() != 0, "needs root to run ddvctl as nobody")
class RefusalTest(chaos.ChaosTest):
    def setUp(self):
        self.ddv = chaos.start_front_door(self, sites())
        # nobody reaches the socket's directory and may run a copy of
        # ddvctl (runfiles are not reachable for it).
        os.chmod(os.path.dirname(self.ddv.control_socket), 0o711)
        self.ddvctl = chaos.copy_for_nobody(harness.runfile("src/ddvctl"))
        self.addCleanup(shutil.rmtree, os.path.dirname(self.ddvctl), True)
        self.start = time.monotonic()
        self.loads = chaos.start_traffic(
            self, self.ddv.http_port, ["a.localhost", "b.localhost"],
            duration=60)

    def finish(self):
        seconds = time.monotonic() - self.start
        results = chaos.finish(self.loads)
        for result, rate in zip(results, (chaos.KEEPALIVE_RATE,
                                          chaos.NEW_CONNECTION_RATE)):
            self.assertNoFailures(result, self.ddv)
            self.assertRan(result, rate, seconds)
            self.assertAnsweredBy(result, {"a.localhost": "a",
                                           "b.localhost": "b"})

    def nobody_ddvctl(self, *args):
        return chaos.run_as_nobody(
            [self.ddvctl, f"--control_socket={self.ddv.control_socket}",
             *args])

    def test_non_owner_uid_on_the_control_socket_is_refused(self):
        ddv = self.ddv
        before = ddv.status()
        pids = {s["id"]: sorted(w["pid"] for w in s["workers"])
                for s in before["sites"]}
        # The default mode: the file refuses nobody at connect.
        for command in COMMANDS:
            result = self.nobody_ddvctl(*command)
            self.assertEqual(result.returncode, 5, result)
            self.assertIn("permission denied on", result.stderr)
        self.assertEqual(ddv.status()["counters"]["control_refused"], 0)

        # Opened to everyone: the master's peer check refuses.
        reply = chaos.reload(ddv, sites(),
                             master='control_socket_mode = "0666"\n')
        self.assertTrue(reply.startswith("ok: reloaded"), reply)
        for command in COMMANDS:
            result = self.nobody_ddvctl(*command)
            self.assertEqual(result.returncode, 5, result)
            self.assertIn("the master refused: permission denied "
                          f"(uid {NOBODY.pw_uid})", result.stderr)
        time.sleep(0.5)  # a stop or restart would have begun by now

        after = ddv.status()
        self.assertEqual(after["counters"]["control_refused"], len(COMMANDS))
        self.assertEqual(after["pid"], before["pid"])
        self.assertFalse(after["stopping"])
        self.assertEqual({s["id"]: sorted(w["pid"] for w in s["workers"])
                          for s in after["sites"]}, pids)
        self.finish()

    def test_worker_claiming_another_sites_host_is_refused(self):
        ddv = self.ddv
        refused_before = ddv.status()["counters"]["claims_refused"]
        reply = chaos.reload(ddv, sites(with_greedy=True))
        self.assertTrue(reply.startswith("ok: reloaded"), reply)
        generations = 3
        for generation in range(generations):
            if generation:
                old = chaos.live_pids(ddv, "greedy")
                reply = harness.control(ddv.control_socket, "restart greedy")
                self.assertTrue(reply.startswith("ok"), reply)
                chaos.wait_replaced(ddv, "greedy", old, 2)
            # Each greedy worker's answer says what the master told it
            # ("none" until the answer to its claim has come).
            told = {}
            def answered():
                status, body, _ = http_get(ddv.http_port, "greedy.localhost")
                self.assertEqual(status, 200, body)
                f = fields(body)
                if f["rpc"] != "none":
                    told[f["pid"]] = f["rpc"]
                return len(told) == 2
            self.assertTrue(chaos.wait_for(answered, timeout=10), told)
            for rpc in told.values():
                self.assertIn('"b.localhost"_is_served_by_site_"b"', rpc)
            self.assertEqual(chaos.site_of(ddv.http_port, "b.localhost"), "b")
        status = ddv.status()
        greedy = next(s for s in status["sites"] if s["id"] == "greedy")
        self.assertEqual(greedy["claimed_hosts"], [])
        # One refused claim per greedy process started: 2 per generation.
        self.assertTrue(chaos.wait_for(
            lambda: ddv.status()["counters"]["claims_refused"]
            - refused_before == 2 * generations, timeout=5), status)
        print(f"claims refused: {2 * generations}", file=sys.stderr)
        self.finish()


if __name__ == "__main__":
    unittest.main()
