"""Chaos: kill -9 one worker under load.

Keep-alive and new-connection traffic to site "a" (two workers) and site
"b". One worker of "a" is stopped (SIGSTOP), the TCP connections it holds
are read from /proc, and it is killed (SIGKILL). "Only the connections that
worker held fail" means, precisely:
- every failed request was on a connection the killed worker held (by the
  client's port), and failed at or after the kill;
- they failed as resets or closes, never as a refused connect, a timeout
  or a non-2xx answer (its unread handoffs go to its sibling);
- at least one keep-alive connection it held did fail (the test killed a
  busy worker);
- site "b" and the other worker of "a" lost nothing.
Its replacement, in the same slot, answers within 1 s of the kill."""
import os
import signal
import sys
import time
import unittest

from pyddv import procs
from tests.chaos import chaos
from tests.chaos.chaos import Site

REPLACEMENT_WITHIN = 1.0  # seconds


class WorkerKillTest(chaos.ChaosTest):
    def test_only_the_killed_workers_connections_fail(self):
        ddv = chaos.start_front_door(self, [
            Site("a", hosts=("a.localhost",), processes=2),
            Site("b", hosts=("b.localhost",)),
            Site("fallback")])
        hosts = ["a.localhost", "b.localhost"]
        start = time.monotonic()
        loads = chaos.start_traffic(self, ddv.http_port, hosts, duration=30)
        time.sleep(1.0)  # every keep-alive connection reaches a worker
        (index, victim, _), (_, sibling, _) = chaos.workers(ddv, "a")
        b_pids = chaos.live_pids(ddv, "b")

        # Stopped, its connections cannot change while they are listed
        # (reading /proc/net/tcp takes a while with the load's TIME_WAITs).
        os.kill(victim, signal.SIGSTOP)
        held = procs.tcp_connections(victim)
        killed_at = time.monotonic()  # before: the loads see it at once
        os.kill(victim, signal.SIGKILL)
        held_ports = {remote for local, remote in held
                      if local == ddv.http_port}

        seen = {}

        def replaced():
            site = next(s for s in ddv.status()["sites"] if s["id"] == "a")
            worker = site["workers"][index]
            if worker["pid"] in (0, victim):
                return None
            seen.setdefault("spawned", time.monotonic() - killed_at)
            if not worker["ready"]:
                return None
            seen.setdefault("ready", time.monotonic() - killed_at)
            return worker["pid"]
        # Polled gently: each status is work for the master, which is
        # restarting the worker meanwhile.
        replacement = chaos.wait_for(replaced, timeout=5, interval=0.05)
        self.assertTrue(replacement, ddv.status())
        time.sleep(1.5)  # traffic on the replacement for a while
        seconds = time.monotonic() - start
        keepalive, new_connection = chaos.finish(loads)
        print(f"killed {victim} holding {len(held_ports)} connections; "
              f"replacement {replacement} (seen after the kill: {seen})",
              file=sys.stderr)

        for result, rate in ((keepalive, chaos.KEEPALIVE_RATE),
                             (new_connection, chaos.NEW_CONNECTION_RATE)):
            self.assertRan(result, rate, seconds)
            self.assertAnsweredBy(result, {"a.localhost": "a",
                                           "b.localhost": "b"})
            for kind in ("status", "connect", "timeout", "bad_response"):
                self.assertEqual(result["failures"][kind], 0,
                                 result.summary())
            self.assertEqual(len(result["events"]), result.failed())
            for event in result["events"]:
                self.assertIn(event["port"], held_ports, event)
                self.assertEqual(event["host"], "a.localhost", event)
                self.assertGreaterEqual(event["t"], killed_at, event)
            # The sibling's and b's answers never stopped.
            self.assertIn(sibling, result.pids_of("a"))
        self.assertGreater(keepalive.failed(), 0,
                           f"the killed worker held {held}")
        self.assertEqual(chaos.live_pids(ddv, "b"), b_pids)
        self.assertIn(sibling, chaos.live_pids(ddv, "a"))

        # The replacement answered within 1 s of the kill.
        answers = [r.pids_of("a")[replacement]["first"]
                   for r in (keepalive, new_connection)
                   if replacement in r.pids_of("a")]
        self.assertTrue(answers, new_connection.summary())
        first = min(answers)
        self.assertLessEqual(first - killed_at, REPLACEMENT_WITHIN,
                             new_connection.summary())


if __name__ == "__main__":
    unittest.main()
