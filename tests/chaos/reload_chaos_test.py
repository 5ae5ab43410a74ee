"""Chaos: five reloads under load, each changing hosts, process counts and
listeners.

Keep-alive and new-connection traffic to a.localhost and b.localhost (whose
sites never change) and to three hosts that move between "a", "b" and the
default site from one reload to the next, while the process counts of "a"
and "b" grow and shrink. After each reload: the master answers `ok`, each
site runs its new count of workers, every moving host routes to its new
site, and every listener of the step answers. Throughout: zero failed
requests of any kind, and a.localhost and b.localhost answered only by
their sites.

Each reload also adds or removes a listener ("extra", then "extra2", then
"extra" again on its old port): a listener a step adds answers, one it
drops refuses connections (docs/master.md, "Listeners change live"). The
front door runs under its watchdog, which binds the new sockets."""
import dataclasses
import socket
import time
import unittest

from pyddv import load as pyload
from tests.chaos import chaos
from tests.chaos.chaos import Site
from tests.master.harness import free_port

MOVING = ("r1.localhost", "r2.localhost", "r3.localhost")
MOVING_RATE = 300
DWELL = 0.8  # seconds of traffic before each reload, and after the last


@dataclasses.dataclass
class Step:
    a_processes: int
    b_processes: int
    routes: dict                  # moving host -> "a" or "b"; else fallback
    listeners: tuple = ("http",)  # of the ports chosen at start


STEPS = [
    Step(3, 1, {"r1.localhost": "a"}, ("http", "extra")),
    Step(1, 2, {"r1.localhost": "b", "r2.localhost": "a"}, ("http",)),
    Step(2, 1, {"r1.localhost": "b", "r3.localhost": "b"},
         ("http", "extra2")),
    Step(4, 3, {"r1.localhost": "a", "r3.localhost": "a"},
         ("extra", "http")),
    Step(2, 1, {}, ("http",)),
]


def sites(step):
    def hosts(site, own):
        return (own,) + tuple(h for h, s in step.routes.items() if s == site)
    return [Site("a", hosts=hosts("a", "a.localhost"),
                 processes=step.a_processes),
            Site("b", hosts=hosts("b", "b.localhost"),
                 processes=step.b_processes),
            Site("fallback")]


def refuses(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


class ReloadTest(chaos.ChaosTest):
    def test_five_reloads_under_load_fail_nothing(self):
        first = Step(2, 1, {})
        ddv = chaos.start_front_door(self, sites(first),  # listener "http"
                                     watchdog=True)
        ports = {"http": ddv.http_port, "extra": free_port(),
                 "extra2": free_port()}
        stable = ["a.localhost", "b.localhost"]
        start = time.monotonic()
        loads = [
            *chaos.start_traffic(self, ddv.http_port, stable, duration=60),
            # The moving hosts: new connections, so each is routed anew.
            pyload.start_load(ddv.http_port, list(MOVING),
                                    "new_connection", connections=4,
                                    rate=MOVING_RATE, duration=60),
        ]
        self.addCleanup(loads[2].kill)

        previous = first
        for number, step in enumerate(STEPS, 1):
            time.sleep(DWELL)
            listeners = {name: ports[name] for name in step.listeners}
            reply = chaos.reload(ddv, sites(step), listeners=listeners)
            self.assertTrue(reply.startswith("ok: reloaded"),
                            f"step {number}: {reply}")
            for site, count in (("a", step.a_processes),
                                ("b", step.b_processes)):
                self.assertTrue(chaos.wait_for(
                    lambda: len(chaos.live_pids(ddv, site)) == count,
                    timeout=10), f"step {number}: {site}: {ddv.status()}")
            for host in MOVING:
                self.assertEqual(chaos.site_of(ddv.http_port, host),
                                 step.routes.get(host, "fallback"),
                                 f"step {number}: {host}")
            for name in step.listeners:
                self.assertEqual(chaos.site_of(ports[name], "a.localhost"),
                                 "a", f"step {number}: listener {name}")
            for name in set(previous.listeners) - set(step.listeners):
                self.assertTrue(chaos.wait_for(lambda: refuses(ports[name]),
                                               timeout=5),
                                f"step {number}: listener {name} removed")
            previous = step
        time.sleep(DWELL)

        seconds = time.monotonic() - start
        keepalive, new_connection, moving = chaos.finish(loads)
        self.assertCleanRun(keepalive, new_connection, seconds, ddv)
        self.assertNoFailures(moving, ddv)
        self.assertRan(moving, MOVING_RATE, seconds)
        # Every moving host was answered by each site it belonged to.
        for host in MOVING:
            owners = {s.routes.get(host, "fallback") for s in STEPS}
            self.assertTrue(owners <= set(moving["hosts"][host]["sites"]),
                            f"{host}: {moving['hosts'][host]}")
        self.assertEqual(ddv.status()["counters"]["stale_completions"], 0)


if __name__ == "__main__":
    unittest.main()
