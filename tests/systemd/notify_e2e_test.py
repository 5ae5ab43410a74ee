"""What ddv tells systemd (Type=notify, docs/lifecycle.md "systemd"), end
to end without systemd: the test owns NOTIFY_SOCKET and reads what a real
ddv_master (watchdog, master, ddv_hello workers) sends, from which pid, in
what order, across a start, `ddvctl reload` (applied and refused), a master
kill, `ddvctl upgrade`, `ddvctl stop` and SIGTERM; WATCHDOG=1 at half of
WATCHDOG_USEC, also through an upgrade's binary check and re-execution;
and a master running alone (--watchdog=false) that tells systemd itself.
"""
import os
import re
import signal
import statistics
import subprocess
import time
import unittest

from tests.master import harness
from tests.systemd.service_manager import NotifySocket, environment

BROKEN = "[[site]]\nid = 'x'\nprocesses = 'many'\n"


def ddvctl(ddv, *args, timeout=60):
    return subprocess.run(
        [harness.runfile("src/ddvctl"),
         f"--control_socket={ddv.control_socket}", *args],
        capture_output=True, text=True, timeout=timeout)


def kill_master(ddv):
    """SIGKILLs the running master; returns its pid once another answers."""
    old = ddv.status()["pid"]
    os.kill(old, signal.SIGKILL)

    def replaced():
        try:
            return ddv.status()["pid"] != old
        except OSError:
            return False
    assert harness.wait_for(replaced, timeout=10)
    return old


class NotifyTest(unittest.TestCase):
    def start(self, abstract=False, watchdog_usec=None, watchdog=True,
              watchdog_pid=None):
        self.systemd = NotifySocket(abstract=abstract)
        self.addCleanup(self.systemd.close)
        with environment(NOTIFY_SOCKET=self.systemd.address,
                         WATCHDOG_USEC=watchdog_usec,
                         WATCHDOG_PID=watchdog_pid):
            self.ddv = harness.Ddv(watchdog=watchdog, extra_flags=["--log_dir="])
        self.addCleanup(self.ddv.stop)
        self.ready = self.systemd.wait_kind("READY")
        self.assertIsNotNone(self.ready, self.systemd.all())
        return self.ddv

    def assertAllFrom(self, pid):
        """Every message came from `pid`: the main process systemd knows
        (NotifyAccess=main drops the others')."""
        self.assertEqual({m.pid for m in self.systemd.all()}, {pid},
                         self.systemd.all())

    def test_start_reloads_and_sigterm(self):
        ddv = self.start()
        watchdog = ddv.proc.pid
        master = ddv.status()["pid"]
        # Before READY=1 only what is going on; READY=1 once every worker
        # said hello.
        self.assertEqual(self.systemd.all()[0].text,
                         f"STATUS=starting master pid {master}")
        self.assertEqual(self.ready.fields["STATUS"],
                         f"master {master}: 3 sites, 4/4 workers ready")
        self.assertTrue(all(w["ready"] for s in ddv.status()["sites"]
                            for w in s["workers"]))

        # An applied reload: RELOADING=1 with the time it began, then
        # READY=1, both before or right after ddvctl's answer.
        mark = self.systemd.count()
        before = time.monotonic()
        self.assertEqual(harness.control(ddv.control_socket, "reload"),
                         f"ok: reloaded {ddv.config_path}\n")
        done = self.systemd.wait(
            lambda m: m.kind() == "READY", start=mark, timeout=10)
        self.assertIsNotNone(done, self.systemd.since(mark))
        self.assertEqual(self.systemd.kinds(mark), ["RELOADING", "READY"])
        reloading = self.systemd.since(mark)[0]
        began = int(reloading.fields["MONOTONIC_USEC"]) / 1e6
        self.assertLessEqual(before - 0.01, began)
        self.assertLessEqual(began, reloading.t + 0.01)
        self.assertEqual(reloading.fields["STATUS"],
                         f"reloading {ddv.config_path}")
        self.assertEqual(done.fields["STATUS"],
                         f"reloaded {ddv.config_path}; master {master}: "
                         "3 sites, 4/4 workers ready")

        # A refused reload ends the same way (READY=1: the service runs
        # on), and STATUS= says why.
        ddv.write_text(BROKEN)
        mark = self.systemd.count()
        reply = harness.control(ddv.control_socket, "reload")
        self.assertTrue(reply.startswith("error: reload failed"), reply)
        done = self.systemd.wait(
            lambda m: m.kind() == "READY", start=mark, timeout=10)
        self.assertIsNotNone(done, self.systemd.since(mark))
        self.assertEqual(self.systemd.kinds(mark), ["RELOADING", "READY"])
        self.assertRegex(
            done.fields["STATUS"],
            r"^reload failed, running the previous config: "
            + re.escape(ddv.config_path) + r":\d+:\d+: .*; master "
            + f"{master}: 3 sites, 4/4 workers ready$")

        # SIGHUP to the watchdog is a reload too.
        mark = self.systemd.count()
        ddv.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(self.systemd.wait_kind("READY", start=mark))
        self.assertEqual(self.systemd.kinds(mark), ["RELOADING", "READY"])

        # SIGTERM: STOPPING=1 at once, one, and nothing after it says the
        # service is up.
        mark = self.systemd.count()
        ddv.proc.send_signal(signal.SIGTERM)
        stopping = self.systemd.wait_kind("STOPPING", start=mark, timeout=5)
        self.assertIsNotNone(stopping, self.systemd.since(mark))
        self.assertEqual(ddv.proc.wait(timeout=30), 0)
        self.assertEqual(self.systemd.kinds(mark), ["STOPPING"])
        self.assertEqual(stopping.fields["STATUS"],
                         f"stopping: master {master} drains its workers "
                         "(up to 40s)")
        self.assertEqual(self.systemd.kinds(), [
            "READY", "RELOADING", "READY", "RELOADING", "READY", "RELOADING",
            "READY", "STOPPING"])
        self.assertAllFrom(watchdog)

    def test_master_kill_is_status_only(self):
        """The watchdog restarts the master and its workers keep serving:
        for systemd the service never went. STATUS= says what happened;
        no READY=1, RELOADING=1 or STOPPING=1."""
        ddv = self.start(abstract=True)
        mark = self.systemd.count()
        old = kill_master(ddv)
        new = ddv.status()["pid"]
        serving = self.systemd.wait(
            lambda m: m.fields.get("STATUS", "").startswith(f"master {new}:"),
            start=mark)
        self.assertIsNotNone(serving, self.systemd.since(mark))
        texts = [m.text for m in self.systemd.since(mark)
                 if m.kind() != "WATCHDOG"]
        self.assertRegex(texts[0], rf"^STATUS=master pid {old} ended with "
                         r"signal 9.*; restarting in \d+ms; the listeners "
                         r"stay open and clients wait in the backlog; 4 "
                         r"workers keep serving and wait for it$")
        self.assertEqual(texts[1:], [
            f"STATUS=starting master pid {new}",
            f"STATUS=master {new}: 3 sites, 4/4 workers ready"])
        self.assertEqual(self.systemd.kinds(mark), [])
        self.assertEqual(harness.http_get(ddv.http_port, "a.localhost")[0],
                         200)
        self.assertAllFrom(ddv.proc.pid)

    def test_upgrade_is_one_reload_from_the_same_pid(self):
        """`ddvctl upgrade` re-executes the watchdog in place: systemd's
        MainPID stays. RELOADING=1 when the master hands over, READY=1 once
        the re-executed watchdog's master serves: one of each; the new
        image does not repeat READY=1 for later master restarts. WATCHDOG=1
        keeps coming through the binary check and the execve."""
        ddv = self.start(watchdog_usec=2000000)
        watchdog = ddv.proc.pid
        mark = self.systemd.count()
        old = ddv.status()["pid"]
        upgraded = ddvctl(ddv, "upgrade")
        self.assertEqual(upgraded.returncode, 0, upgraded.stderr)
        new = int(re.search(rf"ok: master {old} replaced by (\d+)",
                            upgraded.stdout).group(1))
        done = self.systemd.wait(
            lambda m: m.kind() == "READY", start=mark, timeout=10)
        self.assertIsNotNone(done, self.systemd.since(mark))
        self.assertEqual(self.systemd.kinds(mark), ["RELOADING", "READY"])
        statuses = [m.fields.get("STATUS") for m in self.systemd.since(mark)
                    if m.kind() != "WATCHDOG"]
        self.assertRegex(statuses[0], rf"^upgrading: master {old} hands over, "
                         r"then .*ddv_master re-executes in place$")
        self.assertIn(f"starting master pid {new}", statuses)
        self.assertEqual(done.fields["STATUS"],
                         f"master {new}: 3 sites, 4/4 workers ready")
        self.assertEqual(ddv.proc.pid, watchdog)
        self.assertIsNone(ddv.proc.poll())

        # What the new image was told survived the execve: a master kill
        # now is STATUS only, as before.
        mark = self.systemd.count()
        kill_master(ddv)
        latest = ddv.status()["pid"]
        self.assertIsNotNone(self.systemd.wait(
            lambda m: m.fields.get("STATUS", "").startswith(f"master {latest}:"),
            start=mark))
        self.assertEqual(self.systemd.kinds(mark), [])

        # systemd kills a service whose pings stop for WATCHDOG_USEC: none
        # stopped, across everything above.
        pings = self.systemd.pings()
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertGreater(len(pings), 3, pings)
        self.assertLess(max(gaps), 2.0, gaps)
        self.assertAllFrom(watchdog)

    def test_ddvctl_stop_says_stopping(self):
        ddv = self.start()
        mark = self.systemd.count()
        self.assertEqual(ddvctl(ddv, "stop").returncode, 0)
        self.assertEqual(ddv.proc.wait(timeout=30), 0)
        self.assertEqual(self.systemd.kinds(mark), ["STOPPING"])
        master_said = self.systemd.wait_kind("STOPPING", start=mark)
        self.assertRegex(master_said.fields["STATUS"],
                         r"^stopping: master \d+ drains its workers \(up to "
                         r"30s\)$")
        self.assertAllFrom(ddv.proc.pid)

    def test_watchdog_pings_at_half_of_watchdog_usec(self):
        ddv = self.start(abstract=True, watchdog_usec=1000000,
                         watchdog_pid=None)
        time.sleep(3.2)
        pings = self.systemd.pings()
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertGreaterEqual(len(pings), 6, pings)
        # Every 0.5 s (the loop wakes for it), never near the 1 s after
        # which systemd would kill the service.
        self.assertLess(abs(statistics.median(gaps) - 0.5), 0.1, gaps)
        self.assertLess(max(gaps), 0.9, gaps)
        self.assertAllFrom(ddv.proc.pid)

    def test_no_pings_for_another_processes_watchdog(self):
        # WATCHDOG_PID names another process (a parent's variables): not
        # ours to answer. READY=1 still comes.
        self.start(watchdog_usec=600000, watchdog_pid=1)
        time.sleep(1)
        self.assertEqual(self.systemd.pings(), [])


class StartedDdv(harness.Ddv):
    """harness.Ddv that does not wait for every worker: some never are."""

    def wait_ready(self, timeout=15.0):
        def answers():
            try:
                return self.status()
            except (OSError, ValueError):
                return None
        if not harness.wait_for(answers, timeout=timeout):
            raise RuntimeError(f"no status\n{self.read_log()}")


class NotAllWorkersTest(unittest.TestCase):
    """READY=1 waits for the workers, but not for ever."""

    def start(self, site, flags=()):
        systemd = NotifySocket()
        self.addCleanup(systemd.close)

        def config(ddv):
            ddv.write_config()
            with open(ddv.config_path) as f:
                return f.read() + site(ddv)
        with environment(NOTIFY_SOCKET=systemd.address):
            ddv = StartedDdv(watchdog=True, config_text=config,
                             extra_flags=["--log_dir=", "--drain_timeout=1",
                                          *flags])
        self.addCleanup(ddv.stop)
        return ddv, systemd

    def test_a_crash_looping_site_does_not_hold_up_ready(self):
        def crashy(ddv):
            flag, script = harness.crashy_worker(ddv)
            os.remove(flag)  # it exits at once, every time
            return (f'\n[[site]]\nid = "crashy"\ncommand = ["{script}"]\n'
                    'hosts = ["crashy.localhost"]\n')
        ddv, systemd = self.start(crashy)
        ready = systemd.wait_kind("READY", timeout=20)
        self.assertIsNotNone(ready, systemd.all())
        self.assertRegex(ready.fields["STATUS"],
                         r"^master \d+: 4 sites, 4/5 workers ready; failed "
                         r"\(crash loop\): crashy$")

    def test_a_worker_that_never_says_hello_delays_ready_30_s(self):
        def silent(ddv):
            return ('\n[[site]]\nid = "silent"\ncommand = ["/bin/sleep", '
                    '"300"]\nhosts = ["silent.localhost"]\n')
        started = time.monotonic()
        ddv, systemd = self.start(silent, ["--heartbeat_timeout_ms=120000"])
        # The other sites serve meanwhile; systemd still waits.
        self.assertEqual(harness.http_get(ddv.http_port, "a.localhost")[0],
                         200)
        self.assertIsNone(systemd.wait_kind("READY", timeout=20))
        ready = systemd.wait_kind("READY", timeout=20)
        self.assertIsNotNone(ready, systemd.all())
        self.assertGreater(ready.t - started, 29)
        self.assertRegex(ready.fields["STATUS"],
                         r"^master \d+: 4 sites, 4/5 workers ready$")
        self.assertIn("serving although not every worker is up after 30s",
                      harness.full_log(ddv))


class MasterAloneTest(unittest.TestCase):
    def test_a_master_alone_tells_systemd_itself(self):
        systemd = NotifySocket(abstract=True)
        self.addCleanup(systemd.close)
        with environment(NOTIFY_SOCKET=systemd.address, WATCHDOG_USEC=1000000,
                         WATCHDOG_PID=None):
            ddv = harness.Ddv(watchdog=False, extra_flags=["--log_dir="])
        self.addCleanup(ddv.stop)
        ready = systemd.wait_kind("READY")
        self.assertIsNotNone(ready, systemd.all())
        self.assertEqual(ready.fields["STATUS"],
                         f"master {ddv.proc.pid}: 3 sites, 4/4 workers ready")
        mark = systemd.count()
        self.assertTrue(harness.control(ddv.control_socket, "reload")
                        .startswith("ok"))
        self.assertIsNotNone(systemd.wait_kind("READY", start=mark))
        self.assertEqual(systemd.kinds(mark), ["RELOADING", "READY"])
        self.assertIn("MONOTONIC_USEC", systemd.since(mark)[0].fields)
        time.sleep(1.5)  # pings from the master's loop, every 0.5 s
        mark = systemd.count()
        ddv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(ddv.proc.wait(timeout=30), 0)
        self.assertEqual(systemd.kinds(mark), ["STOPPING"])
        pings = systemd.pings()
        self.assertGreaterEqual(len(pings), 3, pings)
        self.assertLess(max(b - a for a, b in zip(pings, pings[1:])), 1.0,
                        pings)
        # The master is the main process here; its workers never speak.
        self.assertEqual({m.pid for m in systemd.all()}, {ddv.proc.pid})


if __name__ == "__main__":
    unittest.main()
