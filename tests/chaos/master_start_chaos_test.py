"""Chaos: a master that hangs in its start is killed and replaced.

The front door runs under its watchdog with --master_start_timeout=5
(docs/lifecycle.md, "A master that hangs"). A master hangs in its start,
after starting or adopting its workers and before it says `serving`, when
it removes the file --start_hang_token names: one file, one hung master,
whichever start comes next.
- The first master of a fresh front door hangs. Under keep-alive and
  new-connection load started during the hang (clients wait up to 10 s,
  more than the start timeout and the restart), the watchdog kills it
  once it has not served for the timeout (not before the timeout after
  the front door was started, not much after it), the log names why,
  ddv_master_restarts and ddv_master_hang_kills are 1, and the next master
  serves, adopting the workers the hung one started. Nothing fails: the
  hung master never accepted, so every client waited in the backlog and
  was answered; so were probes sent during the hang.
- The first master of a watchdog re-executed by `ddvctl upgrade` hangs,
  under load from before the upgrade: killed and replaced the same way,
  the same watchdog and workers throughout, 0 failed requests.
- A master restarted after a crash (SIGKILL) hangs: killed and replaced,
  probes sent during its hang answered.
- A slow start is not a hung one: with a site whose worker never says
  hello, the master says `serving` after half the start timeout (not
  after its usual 30 s) and is never killed.
- A stop during a hung start: SIGTERM to the watchdog is a stop, not a
  start that takes long. The start check is off (no kill for it, no
  restart); the stop's own bound (--drain_timeout + 10 s) ends the hung
  master, and the watchdog exits 0."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from tests.chaos import chaos
from tests.chaos.chaos import Site
from tests.master import harness
from tests.master.harness import wait_for

START_TIMEOUT = 5.0       # --master_start_timeout, seconds
RESTART_WITHIN = 5.0      # from a master's end to the next one's answer
CLIENT_TIMEOUT = 10.0     # > START_TIMEOUT + restart: clients wait it out
PROBES = 6
SITES = [Site("a", hosts=("a.localhost",), processes=2),
         Site("b", hosts=("b.localhost",)),
         Site("fallback")]
WORKERS = 4               # in SITES


def metric(ddv, name):
    return harness.control_counters(ddv.control_socket).get(name)


def started_masters(ddv):
    """Pids of the masters the watchdog started, in order."""
    return [int(pid) for pid in re.findall(r"watchdog \d+ started master (\d+)",
                                           harness.full_log(ddv))]


class StartingDdv(harness.Ddv):
    """A front door whose start the test waits for itself: its first
    master may hang."""

    def wait_ready(self, timeout=15.0):
        if getattr(self, "starting", True):
            self.starting = False
            return None
        return super().wait_ready(timeout)


def start_loads(test, ddv, duration):
    """The suite's keep-alive and new-connection loads, with
    CLIENT_TIMEOUT: a request may wait through a hang."""
    return chaos.start_traffic(test, ddv.http_port,
                               ["a.localhost", "b.localhost"], duration,
                               timeout=CLIENT_TIMEOUT)


class MasterStartTest(chaos.ChaosTest):
    def setUp(self):
        directory = tempfile.mkdtemp(prefix="ddv-start-", dir="/tmp")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", directory]))
        self.token = os.path.join(directory, "hang-token")

    def arm_token(self):
        """The next master to start hangs in it."""
        with open(self.token, "w"):
            pass

    def front_door(self, flags=(), wait=True, sites=SITES):
        flags = [*chaos.MASTER_FLAGS,
                 f"--master_start_timeout={int(START_TIMEOUT)}",
                 f"--start_hang_token={self.token}", *flags]
        shards = os.environ.get("DDV_CHAOS_SHARDS")
        if shards:
            flags.append(f"--shards={shards}")
        kind = harness.Ddv if wait else StartingDdv
        ddv = kind(config_text=lambda d: chaos.config_text(d, sites),
                   watchdog=True, extra_flags=flags)
        self.addCleanup(ddv.stop)
        return ddv

    def wait_hung(self, ddv):
        """Waits until a master has logged its injected hang; returns its
        pid (glog's thread id: the master's main thread)."""
        def hung():
            return re.findall(r" (\d+) \S+:\d+\] master hangs in its start",
                              harness.full_log(ddv))
        self.assertTrue(wait_for(hung, timeout=15),
                        harness.full_log(ddv)[-3000:])
        self.assertFalse(os.path.exists(self.token))
        self.assertEqual(len(hung()), 1, hung())
        return int(hung()[0])

    def assertKilledForItsStart(self, ddv, hung):
        log = harness.full_log(ddv)
        self.assertRegex(
            log, rf"watchdog: master pid {hung} has not said it serves "
                 rf"5(\.\d)?s after its start \(--master_start_timeout=5s\): "
                 r"it hangs starting; killing it \(SIGKILL\)")
        self.assertRegex(
            log, rf"master pid {hung} ended with signal 9 \(Killed\), killed "
                 r"by the watchdog: it hung \(not serving 5(\.\d)?s after its "
                 r"start\); restarting in")
        self.assertNotIn("sent no heartbeat", log)

    def test_first_master_hung_in_its_start_is_replaced_under_load(self):
        self.arm_token()
        launched_at = time.monotonic()
        ddv = self.front_door(wait=False)
        watchdog = ddv.proc.pid
        hung = self.wait_hung(ddv)
        hung_seen_at = time.monotonic()
        # The listeners are the watchdog's: clients queue in the backlog.
        loads = start_loads(self, ddv, duration=12)
        probes = chaos.start_probes(ddv.http_port, PROBES, CLIENT_TIMEOUT)

        gone_at = self.assertGone(ddv, hung, timeout=START_TIMEOUT + 5)
        ddv.wait_ready(timeout=RESTART_WITHIN + 5)
        answered_at = time.monotonic()
        new = chaos.master_pid(ddv)
        for probe in probes:
            probe.join(CLIENT_TIMEOUT + 5)
        workers = chaos.worker_pids(ddv)
        time.sleep(2)
        keepalive, new_connection = chaos.finish(loads)
        print(f"hung master seen {hung_seen_at - launched_at:.2f} s after "
              f"the launch, killed {gone_at - launched_at:.2f} s after, "
              f"answered {answered_at - launched_at:.2f} s after; probes "
              f"{[(p.outcome, round(p.done_at - launched_at, 2)) for p in probes]}",
              file=sys.stderr)

        # Killed for its start, in time and not before.
        self.assertGreaterEqual(gone_at - launched_at, START_TIMEOUT)
        self.assertLessEqual(gone_at - hung_seen_at, START_TIMEOUT + 1.5)
        self.assertKilledForItsStart(ddv, hung)
        self.assertEqual(metric(ddv, "ddv_master_hang_kills"), 1)
        self.assertEqual(metric(ddv, "ddv_master_restarts"), 1)
        self.assertEqual(started_masters(ddv), [hung, new])
        self.assertEqual(ddv.proc.pid, watchdog)
        self.assertIsNone(ddv.proc.poll())
        # The workers the hung master started outlived it, and the next
        # one adopted them.
        self.assertIn(f"adopted {WORKERS} running workers from the previous "
                      "master", harness.full_log(ddv))
        # Everything that connected meanwhile waited and was answered.
        for probe in probes:
            self.assertEqual(probe.outcome, "a", [p.outcome for p in probes])
            self.assertGreater(probe.done_at, gone_at)
        self.assertNoFailures(keepalive, ddv)
        self.assertNoFailures(new_connection, ddv)
        for result in (keepalive, new_connection):
            self.assertAnsweredBy(result, {"a.localhost": "a",
                                           "b.localhost": "b"})
            self.assertLessEqual(set(result.pids_of()),
                                 {p for ps in workers.values() for p in ps})
        # Requests made during the hang waited through it.
        self.assertGreaterEqual(new_connection["latency_max"],
                                gone_at - hung_seen_at - 0.5,
                                new_connection.summary())

    def test_master_started_by_an_upgrade_hangs_and_is_replaced(self):
        ddv = self.front_door()
        ddvctl = harness.runfile("src/ddvctl")
        workers = chaos.worker_pids(ddv)
        watchdog = ddv.proc.pid
        old = chaos.master_pid(ddv)
        start = time.monotonic()
        loads = start_loads(self, ddv, duration=30)
        time.sleep(1.5)

        self.arm_token()
        upgraded_at = time.monotonic()
        result = subprocess.run(
            [ddvctl, f"--control_socket={ddv.control_socket}", "upgrade"],
            capture_output=True, text=True, timeout=60)
        hung = self.wait_hung(ddv)
        self.assertEqual(result.returncode, 0, result.stderr)
        new = chaos.master_pid(ddv)
        self.assertNotIn(new, (None, old, hung))
        self.assertRegex(result.stdout, rf"ok: master {old} replaced by {new}")
        replaced_at = time.monotonic()
        time.sleep(1.5)
        seconds = time.monotonic() - start
        keepalive, new_connection = chaos.finish(loads)
        print(f"upgrade -> next master answering "
              f"{replaced_at - upgraded_at:.2f} s", file=sys.stderr)

        self.assertGreaterEqual(replaced_at - upgraded_at, START_TIMEOUT)
        self.assertKilledForItsStart(ddv, hung)
        self.assertIn("upgraded in place", harness.full_log(ddv))
        # Counted by the re-executed watchdog, which started it.
        self.assertEqual(metric(ddv, "ddv_master_hang_kills"), 1)
        self.assertEqual(metric(ddv, "ddv_master_restarts"), 1)
        self.assertEqual(started_masters(ddv)[-2:], [hung, new])
        self.assertEqual(ddv.proc.pid, watchdog)
        self.assertIsNone(ddv.proc.poll())
        self.assertEqual(chaos.worker_pids(ddv), workers)
        self.assertCleanRun(keepalive, new_connection, seconds, ddv)
        self.assertServedByWorkers(keepalive, new_connection, seconds,
                                   workers)

    def test_master_restarted_after_a_crash_hangs_and_is_replaced(self):
        ddv = self.front_door()
        workers = chaos.worker_pids(ddv)
        old = chaos.master_pid(ddv)
        self.arm_token()
        os.kill(old, signal.SIGKILL)
        hung = self.wait_hung(ddv)
        probes = chaos.start_probes(ddv.http_port, PROBES, CLIENT_TIMEOUT)
        gone_at = self.assertGone(ddv, hung, timeout=START_TIMEOUT + 5)
        new = wait_for(lambda: chaos.master_pid(ddv) not in (None, old, hung)
                       and chaos.master_pid(ddv), timeout=RESTART_WITHIN)
        self.assertTrue(new, harness.full_log(ddv)[-3000:])
        for probe in probes:
            probe.join(CLIENT_TIMEOUT + 5)

        self.assertKilledForItsStart(ddv, hung)
        self.assertEqual(started_masters(ddv), [old, hung, new])
        self.assertEqual(metric(ddv, "ddv_master_hang_kills"), 1)
        self.assertEqual(metric(ddv, "ddv_master_restarts"), 2)
        self.assertEqual(chaos.worker_pids(ddv), workers)
        for probe in probes:
            self.assertEqual(probe.outcome, "a", [p.outcome for p in probes])
            self.assertGreater(probe.done_at, gone_at)

    def test_workers_slow_to_start_do_not_make_the_master_hung(self):
        # A worker that never says hello: the site waits for it.
        never_ready = Site("never", hosts=("never.localhost",),
                           command=("/bin/sleep", "60"))
        ddv = self.front_door(sites=[*SITES, never_ready], wait=False)
        self.assertTrue(wait_for(
            lambda: "serving although not every worker is up after 2.5s"
                    in harness.full_log(ddv), timeout=START_TIMEOUT + 5),
            harness.full_log(ddv)[-3000:])
        master = wait_for(lambda: chaos.master_pid(ddv), timeout=5)
        time.sleep(2 * START_TIMEOUT)
        self.assertEqual(chaos.master_pid(ddv), master)
        self.assertEqual(chaos.site_of(ddv.http_port, "a.localhost"), "a")
        log = harness.full_log(ddv)
        self.assertNotIn("has not said it serves", log)
        self.assertEqual(started_masters(ddv), [master])
        self.assertEqual(metric(ddv, "ddv_master_restarts"), 0)
        self.assertEqual(metric(ddv, "ddv_master_hang_kills"), 0)

    def test_stop_during_a_hung_start_is_a_stop(self):
        # The stop's bound: --drain_timeout + 10 s, more than twice the
        # start timeout.
        self.arm_token()
        ddv = self.front_door(flags=["--drain_timeout=1"], wait=False)
        hung = self.wait_hung(ddv)
        stopped_at = time.monotonic()
        ddv.proc.send_signal(signal.SIGTERM)
        try:
            ddv.proc.wait(timeout=11 + 5)
        except subprocess.TimeoutExpired:
            self.fail(harness.full_log(ddv)[-3000:])
        took = time.monotonic() - stopped_at
        log = harness.full_log(ddv)
        print(f"stopped in {took:.2f} s", file=sys.stderr)
        self.assertEqual(ddv.proc.returncode, 0, log[-3000:])
        self.assertFalse(chaos.alive(hung))
        # Ended by the stop's SIGKILL after its grace (its SIGTERM is
        # blocked in the hang), not by the start check.
        self.assertGreaterEqual(took, 11 - 0.5)
        self.assertNotIn("has not said it serves", log)
        self.assertNotIn(f"master pid {hung} ended with", log)
        self.assertEqual(started_masters(ddv), [hung])
        self.assertIn(f"master pid {hung} stopped (signal 9", log)


if __name__ == "__main__":
    unittest.main()
