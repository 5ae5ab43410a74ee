"""Chaos: a master that hangs is killed and replaced; one that works is not.

The front door runs under its watchdog with --master_hang_timeout=2
(docs/lifecycle.md, "A master that hangs"):
- Under keep-alive and new-connection load (clients wait up to 10 s, more
  than the hang timeout), the master is stopped (SIGSTOP). The watchdog
  kills it within the timeout plus a margin, and not before the master
  can have been silent for it; a new master serves, adopting the same
  workers; the log names the hang; ddv_master_restarts and
  ddv_master_hang_kills are 1. Keep-alive requests (served by the workers
  throughout) all succeed; requests on new connections made during the
  hang wait in the backlog and are answered by the next master, as are
  probes sent while the master is stopped. What may fail is what a
  SIGKILL loses (master_kill_chaos_test): new connections the stopped
  master had accepted and not yet handed off, reset, within the hang.
- A master that works, under the same load for more than 3x the timeout,
  through a reload and an upgrade whose binary check blocks the watchdog
  for 4 s (twice the timeout) and then fails, is never killed: the same
  master pid, 0 restarts, 0 failed requests.
- With --master_hang_timeout=0 a master stopped for twice the timeout the
  others use is not killed; it serves again once continued.
- A master from before the check (injected: --fault_no_heartbeats, its
  `serving` without `alive_every_ms`, no `alive`) stopped under load for
  more than twice the timeout is not killed: version skew never kills. It
  serves again once continued, and nothing failed (new connections waited
  in the backlog through the stop).
- With --shards=2, a shard whose loop stops turning while the primary runs
  (injected: --shard_fault=hang) withholds the heartbeat: the primary logs
  it, the watchdog kills the master, and the next one serves."""
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import unittest

from tests.chaos import chaos
from tests.chaos.chaos import Site
from tests.master import harness
from tests.master.harness import wait_for

HANG_TIMEOUT = 2.0        # --master_hang_timeout, seconds
HEARTBEAT = 1.0           # the master's `alive` interval
# From SIGSTOP to the master's end: at most the timeout (it may have just
# sent a heartbeat), plus the watchdog's turn and reaping; at least the
# timeout less one heartbeat and a loop turn (it sent its last one before
# the stop).
KILLED_WITHIN = HANG_TIMEOUT + 1.0
KILLED_NOT_BEFORE = HANG_TIMEOUT - HEARTBEAT - 0.2
RESTART_WITHIN = 5.0      # from the master's end to the next one's answer
CLIENT_TIMEOUT = 10.0     # > HANG_TIMEOUT + restart: clients wait it out
PROBES = 6
SITES = [Site("a", hosts=("a.localhost",), processes=2),
         Site("b", hosts=("b.localhost",)),
         Site("fallback")]


def metric(ddv, name):
    return harness.control_counters(ddv.control_socket).get(name)


def start_loads(test, ddv, duration):
    """The suite's keep-alive and new-connection loads, with
    CLIENT_TIMEOUT: a request may wait through a hang."""
    return chaos.start_traffic(test, ddv.http_port,
                               ["a.localhost", "b.localhost"], duration,
                               timeout=CLIENT_TIMEOUT)


class MasterHangTest(chaos.ChaosTest):
    def test_stopped_master_is_killed_and_replaced_under_load(self):
        ddv = chaos.start_front_door(
            self, SITES, watchdog=True,
            flags=[f"--master_hang_timeout={int(HANG_TIMEOUT)}"])
        workers = chaos.worker_pids(ddv)
        watchdog = ddv.proc.pid
        start = time.monotonic()
        loads = start_loads(self, ddv, duration=12)

        # At any point of the master's heartbeat second.
        time.sleep(3 + random.random())
        old = chaos.master_pid(ddv)
        os.kill(old, signal.SIGSTOP)
        stopped_at = time.monotonic()
        # Requests on new connections while it is stopped: they wait in
        # the backlog.
        time.sleep(0.3)
        probes = chaos.start_probes(ddv.http_port, PROBES, CLIENT_TIMEOUT)
        gone_at = self.assertGone(ddv, old, timeout=10)
        new = wait_for(lambda: chaos.master_pid(ddv) not in (None, old) and
                       chaos.master_pid(ddv), timeout=RESTART_WITHIN,
                       interval=0.02)
        answered_at = time.monotonic()
        self.assertTrue(new, harness.full_log(ddv)[-3000:])
        for probe in probes:
            probe.join(CLIENT_TIMEOUT + 5)
        # Dwell under load with the new master, then stop the loads.
        time.sleep(max(0.0, 10 - (time.monotonic() - start)))
        seconds = time.monotonic() - start
        keepalive, new_connection = chaos.finish(loads)
        log = harness.full_log(ddv)
        print(f"stopped -> killed {gone_at - stopped_at:.2f} s, "
              f"-> answered {answered_at - stopped_at:.2f} s; probes "
              f"{[(p.outcome, round(p.done_at - stopped_at, 2)) for p in probes]}"
              f"; {[l for l in log.splitlines() if 'died holding' in l]}",
              file=sys.stderr)

        # Killed by the hang check, in time and not before.
        self.assertLessEqual(gone_at - stopped_at, KILLED_WITHIN)
        self.assertGreaterEqual(gone_at - stopped_at, KILLED_NOT_BEFORE)
        self.assertRegex(
            log, rf"watchdog: master pid {old} sent no heartbeat for "
                 rf"[0-9.]+s \(--master_hang_timeout=2s\); killing it")
        self.assertIn(f"master pid {old} ended with signal 9 (Killed), "
                      "killed by the watchdog: it hung", log)
        self.assertEqual(metric(ddv, "ddv_master_hang_kills"), 1)
        self.assertEqual(metric(ddv, "ddv_master_restarts"), 1)
        # The same watchdog; the workers adopted, not restarted.
        self.assertEqual(ddv.proc.pid, watchdog)
        self.assertIsNone(ddv.proc.poll())
        self.assertEqual(chaos.worker_pids(ddv), workers)

        # The probes made during the hang were answered by the next master.
        for probe in probes:
            self.assertEqual(probe.outcome, "a", [p.outcome for p in probes])
            self.assertGreater(probe.done_at, gone_at)
        # Keep-alive connections are the workers': nothing fails.
        self.assertNoFailures(keepalive, ddv)
        self.assertServedByWorkers(keepalive, new_connection, seconds,
                                   workers)
        # New connections: only what a kill loses, reset, within the hang.
        self.assertEqual(new_connection.failed(),
                         new_connection["failures"]["reset"],
                         new_connection.summary())
        for event in new_connection["events"]:
            self.assertTrue(stopped_at <= event["t"] <= answered_at + 0.5,
                            (event, stopped_at, answered_at))
        # Requests started during the hang waited it out and succeeded.
        self.assertGreaterEqual(new_connection["latency_max"],
                                gone_at - stopped_at - 0.3,
                                new_connection.summary())

    def test_working_master_is_never_killed(self):
        # The watchdog runs from a copy of ddv_master, so that the binary
        # an upgrade checks can be replaced by one whose check is slow.
        bindir = tempfile.mkdtemp(prefix="ddv-hang-", dir="/tmp")
        copy = os.path.join(bindir, "ddv_master")
        real = harness.runfile("src/ddv_master")
        with open(real, "rb") as src, open(copy, "wb") as dst:
            dst.write(src.read())
        os.chmod(copy, 0o755)
        self.addCleanup(shutil.rmtree, bindir, ignore_errors=True)
        ddv = harness.Ddv(
            config_text=lambda d: chaos.config_text(d, SITES),
            watchdog=True,
            extra_flags=[*chaos.MASTER_FLAGS,
                         f"--master_hang_timeout={int(HANG_TIMEOUT)}"],
            # The same process execs the copy: its /proc/self/exe, the
            # binary it upgrades to, is the copy.
            prefix=["/bin/sh", "-c", f'shift; exec {copy} "$@"', "sh"])
        self.addCleanup(ddv.stop)
        master = chaos.master_pid(ddv)
        start = time.monotonic()
        loads = start_loads(self, ddv, duration=30)

        time.sleep(2)
        # A reload that adds a listener: config work and a bind through
        # the watchdog, inside the master's loop.
        extra = harness.free_port()
        reply = chaos.reload(ddv, SITES, listeners={"http": ddv.http_port,
                                                    "extra": extra})
        self.assertTrue(reply.startswith("ok"), reply)
        # An upgrade whose binary check takes 4 s and fails: the watchdog
        # reads nothing meanwhile (its loop blocks in the check), while the
        # master's heartbeats queue in the link.
        slow = os.path.join(bindir, "slow")
        with open(slow, "w") as f:
            f.write("#!/bin/sh\n"
                    'case " $* " in *" --check_config "*)\n'
                    f"  sleep {2 * HANG_TIMEOUT}; echo slow check refuses >&2;"
                    " exit 1;;\nesac\n"
                    f'exec {real} "$@"\n')
        os.chmod(slow, 0o755)
        os.rename(slow, copy)
        blocked_at = time.monotonic()
        ddv.proc.send_signal(signal.SIGUSR2)
        self.assertTrue(wait_for(
            lambda: "upgrade refused" in harness.full_log(ddv),
            timeout=4 * HANG_TIMEOUT + 5), harness.full_log(ddv)[-3000:])
        self.assertGreaterEqual(time.monotonic() - blocked_at,
                                2 * HANG_TIMEOUT)
        # Longer than the timeout after the block, still under load.
        time.sleep(2 * HANG_TIMEOUT)
        seconds = time.monotonic() - start
        self.assertGreater(seconds, 3 * HANG_TIMEOUT)
        keepalive, new_connection = chaos.finish(loads)

        log = harness.full_log(ddv)
        self.assertNotIn("sent no heartbeat", log)
        self.assertIn("slow check refuses", log)
        self.assertEqual(chaos.master_pid(ddv), master)
        self.assertEqual(metric(ddv, "ddv_master_restarts"), 0)
        self.assertEqual(metric(ddv, "ddv_master_hang_kills"), 0)
        self.assertCleanRun(keepalive, new_connection, seconds, ddv)

    def test_master_without_heartbeats_is_never_killed(self):
        ddv = chaos.start_front_door(
            self, SITES, watchdog=True,
            flags=[f"--master_hang_timeout={int(HANG_TIMEOUT)}",
                   "--fault_no_heartbeats"])
        master = chaos.master_pid(ddv)
        workers = chaos.worker_pids(ddv)
        start = time.monotonic()
        loads = start_loads(self, ddv, duration=12)
        time.sleep(2)
        os.kill(master, signal.SIGSTOP)
        try:
            time.sleep(2 * HANG_TIMEOUT + HEARTBEAT)
            self.assertTrue(chaos.alive(master))
        finally:
            os.kill(master, signal.SIGCONT)
        self.assertEqual(wait_for(lambda: chaos.master_pid(ddv), timeout=5),
                         master)
        time.sleep(2)
        seconds = time.monotonic() - start
        keepalive, new_connection = chaos.finish(loads)
        log = harness.full_log(ddv)
        # The watchdog judged it only until it said `serving`.
        self.assertIn("hangs and is killed (--master_hang_timeout)", log)
        self.assertNotIn("sent no heartbeat", log)
        self.assertEqual(chaos.master_pid(ddv), master)
        self.assertEqual(metric(ddv, "ddv_master_restarts"), 0)
        self.assertEqual(metric(ddv, "ddv_master_hang_kills"), 0)
        self.assertCleanRun(keepalive, new_connection, seconds, ddv)
        self.assertServedByWorkers(keepalive, new_connection, seconds,
                                   workers)
        # Requests started during the stop waited it out and succeeded.
        self.assertGreaterEqual(new_connection["latency_max"],
                                2 * HANG_TIMEOUT, new_connection.summary())

    def test_a_stuck_shard_gets_the_master_replaced(self):
        ddv = chaos.start_front_door(
            self, SITES, watchdog=True,
            flags=[f"--master_hang_timeout={int(HANG_TIMEOUT)}",
                   "--shards=2", "--shard_fault=hang",
                   "--shard_fault_after=30"])
        old = chaos.master_pid(ddv)
        # New connections until shard 1 has taken 30 and hangs (the
        # primary keeps taking its share and answering).
        deadline = time.monotonic() + 15
        while ("master shard 1 hangs" not in harness.full_log(ddv)
               and time.monotonic() < deadline):
            for _ in range(20):
                probe = chaos.Probe(ddv.http_port, CLIENT_TIMEOUT)
                probe.start()
            time.sleep(0.2)
        hung_at = time.monotonic()
        self.assertIn("master shard 1 hangs", harness.full_log(ddv))
        # Killed once the heartbeats stop: within the timeout, plus the
        # second the primary takes to notice.
        gone = wait_for(lambda: not chaos.alive(old),
                        timeout=HANG_TIMEOUT + 2 * HEARTBEAT + 3,
                        interval=0.01)
        log = harness.full_log(ddv)
        self.assertTrue(gone, log[-3000:])
        print(f"killed {time.monotonic() - hung_at:.2f} s after the hang",
              file=sys.stderr)
        self.assertIn("master shard 1 has not turned its loop", log)
        self.assertIn("sent no heartbeat", log)
        new = wait_for(lambda: (pid := chaos.master_pid(ddv)) != old and pid,
                       timeout=RESTART_WITHIN)
        self.assertTrue(new, log[-3000:])
        self.assertEqual(chaos.site_of(ddv.http_port, "b.localhost"), "b")
        self.assertEqual(metric(ddv, "ddv_master_hang_kills"), 1)

    def test_zero_timeout_never_kills_a_stopped_master(self):
        ddv = chaos.start_front_door(self, SITES, watchdog=True,
                                     flags=["--master_hang_timeout=0"])
        master = chaos.master_pid(ddv)
        os.kill(master, signal.SIGSTOP)
        try:
            time.sleep(2 * HANG_TIMEOUT + HEARTBEAT)
            self.assertTrue(chaos.alive(master))
        finally:
            os.kill(master, signal.SIGCONT)
        self.assertEqual(wait_for(lambda: chaos.master_pid(ddv), timeout=5),
                         master)
        self.assertEqual(chaos.site_of(ddv.http_port, "a.localhost"), "a")
        log = harness.full_log(ddv)
        self.assertNotIn("sent no heartbeat", log)
        self.assertNotIn("hangs and is killed (--master_hang_timeout)", log)
        self.assertEqual(metric(ddv, "ddv_master_restarts"), 0)


if __name__ == "__main__":
    unittest.main()
