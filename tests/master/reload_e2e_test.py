"""Reload and run-time changes, end to end: SIGHUP re-reads the config and
adds or removes sites, changes process counts and commands (rolling
restart); a worker's update_server_conf RPC claims hosts (as far as its
site's claimable_hosts allow, never another site's names) and processes,
and its claims outlive reloads but not the process; `restart SITE`
replaces workers one at a time while requests keep succeeding."""
import os
import signal
import tempfile
import time
import unittest

import harness
from harness import fields, http_get, full_log, wait_for


def config(ddv, a_processes=1, with_b=True, with_c=False, a_args=()):
    a_command = ", ".join(f'"{x}"' for x in [ddv.hello, "--site=a", *a_args])
    text = f"""
[master]
control_socket = "{ddv.control_socket}"
peek_timeout_ms = 2000

[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"
default_site = "fallback"

[[site]]
id = "a"
command = [{a_command}]
processes = {a_processes}
hosts = ["a.localhost"]

[[site]]
id = "fallback"
command = ["{ddv.hello}", "--site=fallback"]
"""
    if with_b:
        text += f"""
[[site]]
id = "b"
command = ["{ddv.hello}", "--site=b"]
hosts = ["b.localhost"]
"""
    if with_c:
        text += f"""
[[site]]
id = "c"
command = ["{ddv.hello}", "--site=c"]
hosts = ["c.localhost"]
"""
    return text


def rpc_config(ddv):
    worker = harness.runfile("tests/master/rpc_worker")
    return config(ddv) + f"""
[[site]]
id = "dyn"
command = ["{worker}"]
hosts = ["dyn.localhost"]
claimable_hosts = ["extra.localhost", "*.more.localhost"]
env = {{ RPC_UPDATE = '{{"add_hosts": ["extra.localhost", "*.more.localhost"], "processes": 5}}' }}

[[site]]
id = "greedy"
command = ["{worker}"]
hosts = ["greedy.localhost"]
claimable_hosts = ["*.localhost"]
env = {{ RPC_UPDATE = '{{"add_hosts": ["a.localhost"]}}' }}

[[site]]
id = "victim"
command = ["{ddv.hello}", "--site=victim"]
hosts = ["*.victim.localhost"]

[[site]]
id = "sneaky"
command = ["{worker}"]
hosts = ["sneaky.localhost"]
claimable_hosts = ["*.localhost"]
env = {{ RPC_UPDATE = '{{"add_hosts": ["x.victim.localhost"]}}' }}

[[site]]
id = "plain"
command = ["{worker}"]
hosts = ["plain.localhost"]
env = {{ RPC_UPDATE = '{{"add_hosts": ["plain-extra.localhost"]}}' }}
"""


def once_config(ddv, claimable=("once.localhost",), marker=None):
    """Site "once": its first process claims once.localhost, and only it."""
    worker = harness.runfile("tests/master/rpc_worker")
    marker = marker or os.path.join(ddv.dir, "claimed")
    claimable_toml = ", ".join(f'"{h}"' for h in claimable)
    return config(ddv) + f"""
[[site]]
id = "once"
command = ["{worker}"]
hosts = ["once-home.localhost"]
claimable_hosts = [{claimable_toml}]
env = {{ RPC_UPDATE = '{{"add_hosts": ["once.localhost"]}}', RPC_ONCE = "{marker}" }}
"""


def site_status(ddv, site):
    return next(s for s in ddv.status()["sites"] if s["id"] == site)


# The master's INFO lines, which say what it did to its workers, go to its
# stderr (glog would write them under TEST_TMPDIR otherwise).
LOG_INFO_TO_STDERR = ["--log_dir="]


def site_of(ddv, host):
    status, body, _ = http_get(ddv.http_port, host)
    return fields(body)["site"] if status == 200 else status


def live_pids(ddv, site):
    for s in ddv.status()["sites"]:
        if s["id"] == site:
            return sorted(w["pid"] for w in s["workers"]
                          if w["pid"] and not w["retired"]
                          and w["state"] in ("starting", "running"))
    return []


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.ddv = harness.Ddv(config_text=config)

    def tearDown(self):
        code = self.ddv.stop()
        self.assertEqual(code, 0, self.ddv.read_log())

    def reload(self, text):
        self.ddv.write_text(text)
        self.ddv.proc.send_signal(signal.SIGHUP)

    def test_add_and_remove_sites(self):
        self.assertEqual(site_of(self.ddv, "c.localhost"), "fallback")
        b_pids = live_pids(self.ddv, "b")
        self.reload(config(self.ddv, with_b=False, with_c=True))
        self.assertTrue(wait_for(
            lambda: site_of(self.ddv, "c.localhost") == "c"))
        self.assertEqual(site_of(self.ddv, "b.localhost"), "fallback")
        self.assertNotIn("b", [s["id"] for s in self.ddv.status()["sites"]])
        # b's worker was stopped, not left behind.
        self.assertTrue(wait_for(
            lambda: not os.path.exists(f"/proc/{b_pids[0]}/status")))
        # And it can come back.
        self.reload(config(self.ddv, with_b=True, with_c=True))
        self.assertTrue(wait_for(
            lambda: site_of(self.ddv, "b.localhost") == "b"))

    def test_process_count_and_command_change(self):
        self.reload(config(self.ddv, a_processes=3))
        self.assertTrue(wait_for(lambda: len(live_pids(self.ddv, "a")) == 3))
        self.ddv.wait_ready()
        seen = {fields(http_get(self.ddv.http_port, "a.localhost")[1])["pid"]
                for _ in range(30)}
        self.assertEqual(len(seen), 3)
        old = live_pids(self.ddv, "a")
        self.reload(config(self.ddv, a_processes=2,
                           a_args=("--idle_timeout_ms=30000",)))
        # Shrunk to 2, and both replaced by processes with the new command.
        self.assertTrue(wait_for(
            lambda: (lambda p: len(p) == 2 and not set(p) & set(old))(
                live_pids(self.ddv, "a")), timeout=15))
        for pid in live_pids(self.ddv, "a"):
            with open(f"/proc/{pid}/cmdline") as f:
                self.assertIn("--idle_timeout_ms=30000", f.read())

    def test_retired_worker_is_asked_to_leave_and_leaves_cleanly(self):
        # Fewer processes: the master sends the retired worker kShutdown;
        # ddv_hello drains and exits 0 by itself, no signal needed, and the
        # supervisor records a stop, not a crash to restart.
        ddv = harness.Ddv(config_text=lambda d: config(d, a_processes=2),
                          extra_flags=LOG_INFO_TO_STDERR)
        try:
            self.assertTrue(wait_for(lambda: len(live_pids(ddv, "a")) == 2))
            ddv.wait_ready()
            before = live_pids(ddv, "a")
            ddv.write_text(config(ddv, a_processes=1))
            ddv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: len(live_pids(ddv, "a")) == 1))
            gone = (set(before) - set(live_pids(ddv, "a"))).pop()
            self.assertTrue(wait_for(
                lambda: f"pid {gone} exited with status 0; stopped"
                in full_log(ddv)), full_log(ddv)[-3000:])
            log = full_log(ddv)
            self.assertRegex(log, rf"asked worker a#1 pid {gone} to finish "
                                  r"and exit \(kShutdown")
            self.assertIn("master asked for shutdown", log)
            self.assertNotIn("SIGTERM", log)
            self.assertGreaterEqual(
                ddv.status()["counters"]["worker_shutdowns"], 1)
            self.assertEqual(site_of(ddv, "a.localhost"), "a")
        finally:
            ddv.stop()

    def test_graceful_stop_lets_every_worker_leave_by_itself(self):
        ddv = harness.Ddv(config_text=config, extra_flags=LOG_INFO_TO_STDERR)
        ddv.wait_ready()
        workers = sum(len(s["workers"]) for s in ddv.status()["sites"])
        self.assertEqual(ddv.stop(), 0)
        log = full_log(ddv)
        self.assertEqual(log.count("master asked for shutdown"), workers, log)
        self.assertEqual(log.count("exited with status 0; stopped"), workers,
                         log)
        self.assertNotIn("signal 15: stopping", log)
        self.assertNotIn("SIGKILL", log)

    def test_worker_ignoring_kshutdown_gets_sigterm_after_the_grace(self):
        # A worker that stops reading its channel after kShutdown (as the
        # library's Run() does) is not taken for a hung one by the
        # heartbeat: it has its drain grace, and then SIGTERM.
        worker = harness.runfile("tests/master/shutdown_worker")

        def text(ddv, with_slow=True):
            extra = f"""
[[site]]
id = "slow"
command = ["{worker}", "--ignore_shutdown"]
hosts = ["slow.localhost"]
""" if with_slow else ""
            return config(ddv) + extra

        ddv = harness.Ddv(config_text=text,
                          extra_flags=LOG_INFO_TO_STDERR + [
                              "--heartbeat_interval_ms=100",
                              "--heartbeat_timeout_ms=500",
                              "--drain_timeout=2"])
        try:
            pid = live_pids(ddv, "slow")[0]
            ddv.write_text(text(ddv, with_slow=False))
            ddv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(
                lambda: f"pid {pid} killed by signal 15" in full_log(ddv),
                timeout=10), full_log(ddv)[-3000:])
            log = full_log(ddv)
            self.assertIn("still running past its kShutdown grace; SIGTERM",
                          log)
            self.assertNotIn("said nothing for", log)
            self.assertNotIn("SIGKILL", log)
        finally:
            ddv.stop()

    def test_ddvctl_reload_reports_the_outcome(self):
        self.ddv.write_text(config(self.ddv, with_c=True))
        reply = harness.control(self.ddv.control_socket, "reload")
        self.assertTrue(reply.startswith("ok: reloaded"), reply)
        # Applied before the reply: the new site's hosts already route.
        self.assertTrue(wait_for(
            lambda: site_of(self.ddv, "c.localhost") == "c"))
        self.ddv.write_text("[[site]]\nid = 'x'\nprocesses = 'many'\n")
        reply = harness.control(self.ddv.control_socket, "reload")
        self.assertTrue(reply.startswith("error: reload failed"), reply)
        self.assertEqual(site_of(self.ddv, "c.localhost"), "c")

    def test_command_line_overrides_survive_a_reload(self):
        # --handoff and --control_socket win over the file at start and at
        # every reload; before, the first reload took the file's [master]
        # and then refused nothing.
        flag_socket = os.path.join(tempfile.mkdtemp(prefix="ddv-", dir="/tmp"),
                                   "flag.sock")

        def text(d):
            file_text = config(d)        # names the file's control socket
            d.control_socket = flag_socket  # the one the master binds
            return file_text

        ddv = harness.Ddv(config_text=text,
                          extra_flags=["--handoff=pidfd",
                                       f"--control_socket={flag_socket}"])
        try:
            file_socket = flag_socket + ".file"  # any path but the flag's
            ddv.write_text(config(ddv, with_c=True).replace(
                flag_socket, file_socket))
            reply = harness.control(flag_socket, "reload")
            self.assertTrue(reply.startswith("ok: reloaded"), reply)
            self.assertEqual(site_of(ddv, "c.localhost"), "c")
            self.assertEqual(site_of(ddv, "a.localhost"), "a")
            # The file says scm_rights now: the flag still wins.
            ddv.write_text(config(ddv, with_c=True).replace(
                "[master]\n", '[master]\nhandoff = "scm_rights"\n'))
            reply = harness.control(flag_socket, "reload")
            self.assertTrue(reply.startswith("ok: reloaded"), reply)
            self.assertEqual(site_of(ddv, "a.localhost"), "a")
        finally:
            ddv.stop()

    def test_handoff_change_needs_a_restart(self):
        self.ddv.write_text(config(self.ddv, with_c=True).replace(
            "[master]\n", '[master]\nhandoff = "pidfd"\n'))
        reply = harness.control(self.ddv.control_socket, "reload")
        self.assertEqual(
            reply, "error: reload failed, keeping the running config: "
            '[master] handoff changed from "scm_rights" to "pidfd"; '
            "restart ddv_master to apply that\n")
        self.assertEqual(site_of(self.ddv, "c.localhost"), "fallback")
        self.assertEqual(site_of(self.ddv, "a.localhost"), "a")

    def test_bad_reload_keeps_the_running_config(self):
        self.ddv.write_text("[[site]]\nid = 'x'\nprocesses = 'many'\n")
        self.ddv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertEqual(site_of(self.ddv, "a.localhost"), "a")
        self.assertIn("reload failed", self.ddv.read_log())

    def test_restart_revives_a_worker_in_back_off(self):
        # A worker waiting out its back-off has no process to stop: restart
        # must start it at once instead of waiting for an exit that never
        # comes.
        ddv = harness.Ddv(config_text=config,
                          extra_flags=["--backoff_initial_ms=20000"])
        try:
            old = live_pids(ddv, "b")[0]
            os.kill(old, signal.SIGKILL)
            self.assertTrue(wait_for(lambda: live_pids(ddv, "b") == []))
            reply = harness.control(ddv.control_socket, "restart b")
            self.assertTrue(reply.startswith("ok"), reply)
            self.assertTrue(wait_for(lambda: len(live_pids(ddv, "b")) == 1,
                                     timeout=5))
            self.assertEqual(site_of(ddv, "b.localhost"), "b")
        finally:
            ddv.stop()

    def test_restart_revives_a_site_whose_workers_all_failed(self):
        # Two workers crash-loop until a file exists; both end failed. Once
        # the cause is fixed, `restart` must start both: neither may wait
        # for the other to say hello (it used to, and nothing started).
        def text(ddv):
            _, script = harness.crashy_worker(ddv, flag_name="fixed")
            return config(ddv) + f"""
[[site]]
id = "crashy"
command = ["{script}"]
processes = 2
hosts = ["crashy.localhost"]
"""

        # Three quick exits fail a site: the crashy one fails fast, and a
        # worker that fails once for another reason fails nothing.
        ddv = harness.Ddv(config_text=text,
                          extra_flags=["--crash_loop_limit=2"] +
                          LOG_INFO_TO_STDERR)
        try:
            self.assertEqual(site_of(ddv, "crashy.localhost"), "crashy")
            os.unlink(os.path.join(ddv.dir, "fixed"))
            for pid in live_pids(ddv, "crashy"):
                os.kill(pid, signal.SIGKILL)

            def states():
                return [w["state"] for s in ddv.status()["sites"]
                        if s["id"] == "crashy" for w in s["workers"]]
            self.assertTrue(wait_for(
                lambda: states() == ["failed", "failed"]), states())
            self.assertEqual(site_of(ddv, "crashy.localhost"), 503)

            open(os.path.join(ddv.dir, "fixed"), "w").close()
            reply = harness.control(ddv.control_socket, "restart crashy")
            self.assertTrue(reply.startswith("ok: restarting 2 workers"),
                            reply)
            self.assertTrue(wait_for(
                lambda: len(live_pids(ddv, "crashy")) == 2, timeout=10),
                ddv.status())
            ddv.wait_ready()
            workers = set()
            for _ in range(20):
                status, body, _ = http_get(ddv.http_port, "crashy.localhost")
                self.assertEqual(status, 200,
                                 f"{body}\n{ddv.status()}\n{full_log(ddv)}")
                workers.add(fields(body)["worker"])
            self.assertEqual(workers, {"0", "1"})
        finally:
            ddv.stop()

    def test_retired_failed_worker_releases_its_channel(self):
        # a#1 exits at once, every time, and is soon failed (three quick
        # exits): it has no process when a reload retires it, so no exit
        # will come to release its channel; the retirement must.
        def text(d, processes):
            script = os.path.join(d.dir, "no_second.sh")
            with open(script, "w") as f:
                f.write('#!/bin/sh\n[ "$DDV_WORKER_INDEX" = 1 ] && exit 1\n'
                        f'exec {d.hello} --site=a\n')
            os.chmod(script, 0o755)
            return config(d, a_processes=processes).replace(
                f'"{d.hello}", "--site=a"', f'"{script}"')

        ddv = harness.Ddv(config_text=lambda d: text(d, 1),
                          extra_flags=["--crash_loop_limit=2"])
        try:
            def fds():  # sockets: glog opens its files when it likes
                fd_dir = f"/proc/{ddv.proc.pid}/fd"
                count = 0
                for fd in os.listdir(fd_dir):
                    try:
                        count += os.readlink(
                            os.path.join(fd_dir, fd)).startswith("socket:")
                    except OSError:
                        pass  # closed meanwhile
                return count

            def states():
                return [w["state"] for s in ddv.status()["sites"]
                        if s["id"] == "a" for w in s["workers"]]
            before = fds()
            ddv.write_text(text(ddv, 2))
            reply = harness.control(ddv.control_socket, "reload")
            self.assertTrue(reply.startswith("ok"), reply)
            self.assertTrue(wait_for(lambda: states()[1:] == ["failed"]),
                            states())
            self.assertEqual(fds(), before + 2, "a#1's channel, both ends")
            ddv.write_text(text(ddv, 1))
            reply = harness.control(ddv.control_socket, "reload")
            self.assertTrue(reply.startswith("ok"), reply)
            self.assertEqual(len(states()), 1)
            self.assertTrue(wait_for(lambda: fds() == before), fds())
            self.assertEqual(site_of(ddv, "a.localhost"), "a")
        finally:
            ddv.stop()

    def test_rolling_restart_keeps_serving(self):
        self.reload(config(self.ddv, a_processes=2))
        self.assertTrue(wait_for(lambda: len(live_pids(self.ddv, "a")) == 2))
        self.ddv.wait_ready()
        old = live_pids(self.ddv, "a")
        reply = harness.control(self.ddv.control_socket, "restart a")
        self.assertTrue(reply.startswith("ok"), reply)
        deadline = time.monotonic() + 15
        failures = 0
        while time.monotonic() < deadline:
            status, _, _ = http_get(self.ddv.http_port, "a.localhost")
            failures += status != 200
            pids = live_pids(self.ddv, "a")
            if len(pids) == 2 and not set(pids) & set(old):
                break
        self.assertFalse(set(live_pids(self.ddv, "a")) & set(old))
        self.assertEqual(failures, 0)
        # Every op's completion met its own slot: no exit poll was armed
        # twice for one process (docs/master.md, "Op tags").
        self.ddv.wait_ready()
        self.assertEqual(
            self.ddv.status()["counters"]["stale_completions"], 0)


def message_config(ddv):
    worker = harness.runfile("tests/master/rpc_worker")
    return config(ddv) + f"""
[[site]]
id = "dst"
command = ["{worker}"]
processes = 2
hosts = ["dst.localhost"]

[[site]]
id = "any"
command = ["{worker}"]
hosts = ["any.localhost"]
env = {{ RPC_MESSAGE_SITE = "dst", RPC_MESSAGE_COUNT = "10" }}

[[site]]
id = "second"
command = ["{worker}"]
hosts = ["second.localhost"]
env = {{ RPC_MESSAGE_SITE = "dst", RPC_MESSAGE_COUNT = "3", RPC_MESSAGE_WORKER = "1" }}
"""


class MessageTest(unittest.TestCase):
    def test_messages_to_any_worker_rotate_and_to_one_reach_it(self):
        # 10 messages to any worker of "dst" are shared between its two
        # workers (they all went to the first one); 3 to worker 1 reach it.
        ddv = harness.Ddv(config_text=message_config)
        try:
            def received():
                seen = {}
                for _ in range(20):
                    status, body, _ = http_get(ddv.http_port, "dst.localhost")
                    if status == 200:
                        f = fields(body)
                        seen[f["worker"]] = int(f["messages"])
                return seen

            self.assertTrue(wait_for(
                lambda: received() == {"0": 5, "1": 8}), received())
        finally:
            ddv.stop()


class UpdateServerConfTest(unittest.TestCase):
    def setUp(self):
        self.ddv = harness.Ddv(config_text=rpc_config)

    def tearDown(self):
        self.ddv.stop()

    def test_worker_adds_hosts_and_processes(self):
        f = fields(http_get(self.ddv.http_port, "dyn.localhost")[1])
        self.assertEqual(f["ping"], "ok")
        self.assertEqual(f["rpc"], "ok")
        self.assertEqual(site_of(self.ddv, "extra.localhost"), "dyn")
        self.assertEqual(site_of(self.ddv, "x.more.localhost"), "dyn")
        # Growing from 1 to 5 workers while the loop holds a reference to
        # the calling worker (a use-after-free before workers lived in a
        # deque). Every new worker asks again for 5: still 5.
        self.assertTrue(wait_for(
            lambda: len(live_pids(self.ddv, "dyn")) == 5))
        self.assertIsNone(self.ddv.proc.poll())

    def test_host_of_another_site_is_refused(self):
        f = fields(http_get(self.ddv.http_port, "greedy.localhost")[1])
        self.assertTrue(f["rpc"].startswith("error:"), f)
        self.assertIn('"a.localhost"_is_served_by_site_"a"', f["rpc"])
        self.assertEqual(site_of(self.ddv, "a.localhost"), "a")

    def test_host_under_another_sites_wildcard_is_refused(self):
        f = fields(http_get(self.ddv.http_port, "sneaky.localhost")[1])
        self.assertIn('"x.victim.localhost"_falls_under_site_"victim"\'s_'
                      '"*.victim.localhost"', f["rpc"])
        self.assertEqual(site_of(self.ddv, "x.victim.localhost"), "victim")

    def test_host_not_in_claimable_hosts_is_refused(self):
        f = fields(http_get(self.ddv.http_port, "plain.localhost")[1])
        self.assertIn('"plain-extra.localhost"_is_not_in_site_"plain"\'s_'
                      'claimable_hosts', f["rpc"])
        self.assertEqual(site_of(self.ddv, "plain-extra.localhost"),
                         "fallback")
        self.assertGreaterEqual(
            self.ddv.status()["counters"]["claims_refused"], 3)

    def test_status_shows_config_hosts_and_claimed_hosts_apart(self):
        self.assertEqual(site_of(self.ddv, "extra.localhost"), "dyn")
        dyn = site_status(self.ddv, "dyn")
        self.assertEqual(dyn["hosts"], ["dyn.localhost"])
        claimed = {(c["host"], c["worker"]) for c in dyn["claimed_hosts"]}
        self.assertIn(("extra.localhost", 0), claimed)
        self.assertIn(("*.more.localhost", 0), claimed)
        self.assertEqual(site_status(self.ddv, "greedy")["claimed_hosts"], [])


class ClaimLifetimeTest(unittest.TestCase):
    """A claim is kept across reloads that allow it, and goes with the
    process that made it."""

    def test_claim_survives_a_reload_and_dies_with_its_worker(self):
        ddv = harness.Ddv(config_text=once_config,
                          extra_flags=LOG_INFO_TO_STDERR)
        self.addCleanup(ddv.stop)
        self.assertTrue(wait_for(
            lambda: site_of(ddv, "once.localhost") == "once"))
        self.assertEqual(site_status(ddv, "once")["claimed_hosts"],
                         [{"host": "once.localhost", "worker": 0}])
        # A reload rebuilds routes from the file; the claim is re-applied.
        ddv.write_text(once_config(ddv) + "\n# touched\n")
        reply = harness.control(ddv.control_socket, "reload")
        self.assertTrue(reply.startswith("ok"), reply)
        self.assertEqual(site_of(ddv, "once.localhost"), "once")
        self.assertEqual(site_status(ddv, "once")["claimed_hosts"],
                         [{"host": "once.localhost", "worker": 0}])
        # The claiming process dies; its successor claims nothing.
        pid = live_pids(ddv, "once")[0]
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(wait_for(
            lambda: site_of(ddv, "once.localhost") == "fallback"))
        self.assertEqual(site_status(ddv, "once")["claimed_hosts"], [])
        self.assertTrue(wait_for(lambda: live_pids(ddv, "once") not in
                                 ([], [pid])))
        self.assertEqual(site_of(ddv, "once-home.localhost"), "once")
        self.assertEqual(site_of(ddv, "once.localhost"), "fallback")
        self.assertIn('claim of once#0 on "once.localhost" dropped: its '
                      'worker process exited', full_log(ddv))

    def test_reload_drops_a_claim_the_new_config_forbids(self):
        ddv = harness.Ddv(config_text=once_config,
                          extra_flags=LOG_INFO_TO_STDERR)
        self.addCleanup(ddv.stop)
        self.assertTrue(wait_for(
            lambda: site_of(ddv, "once.localhost") == "once"))
        pid = live_pids(ddv, "once")[0]
        ddv.write_text(once_config(ddv, claimable=("other.localhost",)))
        reply = harness.control(ddv.control_socket, "reload")
        self.assertTrue(reply.startswith("ok"), reply)
        self.assertEqual(site_of(ddv, "once.localhost"), "fallback")
        self.assertEqual(site_status(ddv, "once")["claimed_hosts"], [])
        self.assertEqual(live_pids(ddv, "once"), [pid], "no restart needed")
        self.assertIn('claim of once#0 on "once.localhost" dropped: the '
                      'reloaded config refuses it: add_hosts: '
                      '"once.localhost" is not in site "once"\'s '
                      'claimable_hosts', full_log(ddv))
        self.assertEqual(ddv.status()["counters"]["claims_dropped"], 1)


if __name__ == "__main__":
    unittest.main()
