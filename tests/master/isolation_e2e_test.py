"""What keeps one site from another (docs/isolation.md), end to end, with a
real ddv_master, its watchdog and log writer, and real workers: ddv_hello,
a C worker on the C API, and a stock Node app.

- What a worker inherits: fd_report, put before each site's command,
  records every fd the worker was started with; and the live workers'
  fds are compared with everything ddv's own processes hold.
- Limits, working directory, no_new_privs, a session of its own.
- Credentials (as root, with test users made here and removed after):
  groups, and signals refused to the master and to another site.
- The caps: max_connections and max_pending refuse with 503 or a TLS
  alert, per site, counted.
- cgroups: where a writable cgroup2 exists, ddv runs inside a cgroup made
  for the test; the leaf, the site cgroups and their files are checked.
Outside the Bazel sandbox: setgroups(), useradd and cgroupfs need it.
"""
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness
from harness import http_get, wait_for

NODE = shutil.which("node")
IS_ROOT = os.geteuid() == 0


def fd_targets(pid):
    """{fd: readlink target} of a live process."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:  # closed meanwhile
            pass
    return out


def inodes(targets):
    """The socket:[N] and pipe:[N] of a fd map, as {target}."""
    return {t for t in targets.values()
            if t.startswith("socket:[") or t.startswith("pipe:[")}


def children(pid):
    """Pids whose parent is `pid`."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(name))
    return out


def proc_status(pid):
    """Uid, Gid, Groups and NoNewPrivs lines of /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups", "NoNewPrivs"):
                out[key] = value.split()
    return out


def site_of(status, site_id):
    return next(s for s in status["sites"] if s["id"] == site_id)


def live_pids(ddv, site_id):
    return [w["pid"] for w in site_of(ddv.status(), site_id)["workers"]
            if w["pid"] > 0]


class InheritNothingTest(unittest.TestCase):
    """A worker starts with stdin, stdout, stderr and its channel, and
    nothing else: no listener, no other worker's channel, no control
    socket, no log file (docs/isolation.md, "What a worker inherits")."""

    def setUp(self):
        self.reports = tempfile.mkdtemp(prefix="ddv-fds-",
                                        dir=os.environ.get("TEST_TMPDIR"))
        shim = harness.runfile("tests/master/fd_report")
        c_worker = harness.runfile("tests/master/c_worker")
        node_app = harness.runfile("tests/node/apps/http_app.js")
        reports = self.reports

        def config(ddv):
            node_site = "" if NODE is None else f"""
[[site]]
id = "node"
runtime = "node"
command = ["{shim}", "{reports}", "{NODE}", "{node_app}"]
hosts = ["node.test"]
log_all = "{ddv.dir}/node.log"
"""
            return f"""
[master]
control_socket = "{ddv.control_socket}"
[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"
[[listener]]
name = "tls"
address = "127.0.0.1:{ddv.tls_port}"
protocol = "tls"
[[site]]
id = "hello"
command = ["{shim}", "{reports}", "{ddv.hello}", "--site=hello",
           "--ring_entries=256"]
processes = 2
hosts = ["hello.test"]
log_all = "{ddv.dir}/hello.log"
[[site]]
id = "c"
command = ["{shim}", "{reports}", "{c_worker}"]
hosts = ["c.test"]
log_output = "{ddv.dir}/c.out"
log_error = "{ddv.dir}/c.err"
[[site]]
id = "nolog"
command = ["{shim}", "{reports}", "{ddv.hello}", "--site=nolog",
           "--ring_entries=256"]
hosts = ["nolog.test"]
{node_site}"""

        self.ddv = harness.Ddv(config_text=config, watchdog=True)
        self.addCleanup(self.ddv.stop)
        self.addCleanup(shutil.rmtree, self.reports, True)

    def test_each_worker_starts_with_stdio_and_its_channel_only(self):
        ddv = self.ddv
        status = ddv.status()
        master = status["pid"]
        watchdog = ddv.proc.pid
        log_writers = [p for p in children(watchdog) if p != master]
        self.assertEqual(len(log_writers), 1, log_writers)
        # Everything ddv's own processes hold: listeners (the watchdog's and
        # the master's copies), both ends of every channel, the control
        # socket, the log writer's pipes and files.
        ours = {pid: fd_targets(pid) for pid in (watchdog, master,
                                                 log_writers[0])}
        infra = set().union(*(inodes(t) for t in ours.values()))
        # The sites' log files (its own stdout and stderr aside).
        log_files = {t for fd, t in ours[log_writers[0]].items()
                     if fd > 2 and t.startswith(ddv.dir)}
        self.assertTrue(log_files, ours[log_writers[0]])

        sites = ["hello", "c", "nolog"] + ([] if NODE is None else ["node"])
        for site in sites:
            self.assertEqual(
                http_get(ddv.http_port, f"{site}.test")[0], 200, site)
        channels = {}
        for site in sites:
            for pid in live_pids(ddv, site):
                with self.subTest(site=site, pid=pid):
                    path = os.path.join(self.reports, str(pid))
                    self.assertTrue(wait_for(lambda: os.path.exists(path)),
                                    f"no fd report from {site} pid {pid}")
                    with open(path) as f:
                        at_start = {int(l.split(" ", 1)[0]):
                                    l.split(" ", 1)[1].rstrip("\n")
                                    for l in f if l.strip()}
                    # Exactly stdin, stdout, stderr and the channel.
                    self.assertEqual(sorted(at_start), [0, 1, 2, 3], at_start)
                    self.assertEqual(at_start[0], "/dev/null")
                    if site == "nolog":
                        # No log file: the master's own stdout and stderr.
                        self.assertEqual(at_start[1], ours[master][1])
                        self.assertEqual(at_start[2], ours[master][2])
                    else:
                        # Pipes to the log writer; one for log_all.
                        self.assertRegex(at_start[1], r"^pipe:\[\d+\]$")
                        self.assertRegex(at_start[2], r"^pipe:\[\d+\]$")
                        self.assertEqual(at_start[1] == at_start[2],
                                         site != "c")
                    channel = at_start[3]
                    self.assertRegex(channel, r"^socket:\[\d+\]$")
                    # The master holds it (the channel's child end), and no
                    # other worker has it.
                    self.assertIn(channel, inodes(ours[master]))
                    self.assertNotIn(channel, channels.values())
                    channels[pid] = channel

                    # Live: whatever the worker opened since is its own;
                    # nothing of ddv's but its stdio and channel.
                    now = fd_targets(pid)
                    allowed = {channel, at_start[1], at_start[2]}
                    leaked = (inodes(now) & infra) - allowed
                    self.assertEqual(leaked, set(),
                                     f"{site} pid {pid} holds {leaked}: "
                                     f"{now}")
                    self.assertFalse(
                        {t for fd, t in now.items() if fd > 2} & log_files,
                        now)
                    self.assertNotIn(ddv.control_socket, now.values())


@unittest.skipUnless(IS_ROOT, "needs root")
class LimitsTest(unittest.TestCase):
    """limits, cwd, no_new_privs, a session of its own; what a reload
    changes live and what it restarts."""

    def config(self, nofile, max_pending, cpu_weight):
        def text(ddv):
            return f"""
[master]
control_socket = "{ddv.control_socket}"
[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"
[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a", "--ring_entries=256"]
hosts = ["a.test"]
limits = {{ nofile = {nofile}, core = 0, as_bytes = "unlimited" }}
cwd = "{ddv.dir}"
cpu_weight = {cpu_weight}
max_pending = {max_pending}
log_all = "{ddv.dir}/a.log"
[[site]]
id = "b"
command = ["{ddv.hello}", "--site=b", "--ring_entries=256"]
hosts = ["b.test"]
"""
        return text

    def test_limits_cwd_and_privileges(self):
        ddv = harness.Ddv(config_text=self.config(512, 7, 200))
        self.addCleanup(ddv.stop)
        (a,) = live_pids(ddv, "a")
        (b,) = live_pids(ddv, "b")
        with open(f"/proc/{a}/limits") as f:
            limits = f.read()
        self.assertRegex(limits, r"Max open files\s+512\s+512\s")
        self.assertRegex(limits, r"Max core file size\s+0\s+0\s")
        self.assertRegex(limits,
                         r"Max address space\s+unlimited\s+unlimited\s")
        self.assertEqual(os.readlink(f"/proc/{a}/cwd"), ddv.dir)
        # b sets nothing: the master's limits, and "/", never the master's
        # working directory.
        with open(f"/proc/{ddv.proc.pid}/limits") as f:
            master_nofile = re.search(r"Max open files.*", f.read()).group(0)
        with open(f"/proc/{b}/limits") as f:
            self.assertIn(master_nofile, f.read())
        self.assertEqual(os.readlink(f"/proc/{b}/cwd"), "/")
        for pid in (a, b):
            self.assertEqual(proc_status(pid)["NoNewPrivs"], ["1"])
            self.assertEqual(os.getsid(pid), pid)  # its own session
        site = site_of(ddv.status(), "a")
        self.assertEqual(site["limits"], {"nofile": 512, "core": 0,
                                          "as_bytes": "unlimited"})
        self.assertEqual(site["cwd"], ddv.dir)
        self.assertEqual(site["connections"]["max_pending"], 7)
        self.assertIsNone(site["connections"]["max_connections"])
        # No cgroup here (the test runs outside one of its own): usage
        # comes from the worker processes themselves.
        if site["cgroup"] is None:
            self.assertEqual(site["usage"]["source"], "processes")
            self.assertEqual(site["usage"]["processes"], 1)
            self.assertGreater(site["usage"]["memory_bytes"], 0)
        out = subprocess.run(
            [harness.runfile("src/ddvctl"),
             f"--control_socket={ddv.control_socket}", "status"],
            capture_output=True, text=True, check=True).stdout
        self.assertIn(f"limits: as_bytes=unlimited core=0 nofile=512 "
                      f"cwd={ddv.dir}", out)
        self.assertIn("pending 0 of 7", out)

        # Caps and cpu_weight apply to the running workers; limits restart.
        ddv.write_text(self.config(512, 9, 300)(ddv))
        self.assertTrue(harness.control(ddv.control_socket,
                                        "reload").startswith("ok"))
        self.assertEqual(site_of(ddv.status(), "a")["connections"]
                         ["max_pending"], 9)
        self.assertEqual(live_pids(ddv, "a"), [a])
        ddv.write_text(self.config(600, 9, 300)(ddv))
        self.assertTrue(harness.control(ddv.control_socket,
                                        "reload").startswith("ok"))
        self.assertTrue(wait_for(
            lambda: live_pids(ddv, "a") not in ([a], [])
            and ddv.status()["sites"][0]["workers"][0]["ready"]))
        (a2,) = live_pids(ddv, "a")
        with open(f"/proc/{a2}/limits") as f:
            self.assertRegex(f.read(), r"Max open files\s+600\s+600\s")


KILL_SCRIPT = """#!/bin/sh
# Site a's worker: which processes may it signal? One line per target:
# "PID OK" or "PID: the shell's error". Then it becomes ddv_hello.
out={out}/kill-$$.txt
{{
  for pid in $$ $(cat {out}/targets 2>/dev/null); do
    if err=$(kill -0 "$pid" 2>&1); then echo "$pid OK"; else echo "$pid: $err"; fi
  done
}} > "$out.tmp" && mv "$out.tmp" "$out"
exec {hello} --site=a --ring_entries=256
"""


@unittest.skipUnless(IS_ROOT and shutil.which("useradd"),
                     "needs root and useradd")
class CredentialsTest(unittest.TestCase):
    """Sites under their own users: groups exactly the account's (never the
    master's), every uid and gid switched, no_new_privs; and a worker
    cannot signal the master, the watchdog, the log writer or another
    site's worker."""

    USERS = ("ddvt-iso-a", "ddvt-iso-b")
    EXTRA = "ddvt-iso-extra"

    @classmethod
    def setUpClass(cls):
        cls.tearDownClass()  # a run that died left them behind
        subprocess.run(["groupadd", "--system", cls.EXTRA], check=True)
        for user in cls.USERS:
            subprocess.run(["useradd", "--system", "--user-group",
                            "--no-create-home", "--shell", "/usr/sbin/nologin",
                            user], check=True)
        subprocess.run(["usermod", "-a", "-G", cls.EXTRA, cls.USERS[0]],
                       check=True)

    @classmethod
    def tearDownClass(cls):
        for user in cls.USERS:
            subprocess.run(["userdel", user], capture_output=True)
        for group in (cls.EXTRA,) + cls.USERS:
            subprocess.run(["groupdel", group], capture_output=True)

    def setUp(self):
        # The workers run as the test users: binaries and scripts they can
        # reach, outside /root.
        self.dir = tempfile.mkdtemp(prefix="ddv-iso-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.hello = os.path.join(self.dir, "ddv_hello")
        shutil.copy(harness.runfile("src/ddv_hello"), self.hello)
        os.chmod(self.hello, 0o755)
        self.out = os.path.join(self.dir, "out")
        os.mkdir(self.out)
        os.chown(self.out, pwd.getpwnam(self.USERS[0]).pw_uid, -1)
        self.script = os.path.join(self.dir, "a.sh")
        with open(self.script, "w") as f:
            f.write(KILL_SCRIPT.format(out=self.out, hello=self.hello))
        os.chmod(self.script, 0o755)

    def config(self, ddv):
        a, b = self.USERS
        return f"""
[master]
control_socket = "{ddv.control_socket}"
[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"
[[site]]
id = "a"
command = ["{self.script}"]
hosts = ["a.test"]
user = "{a}"
[[site]]
id = "b"
command = ["{self.hello}", "--site=b", "--ring_entries=256"]
hosts = ["b.test"]
user = "{b}"
[[site]]
id = "c"
command = ["{self.hello}", "--site=c", "--ring_entries=256"]
hosts = ["c.test"]
user = "{b}"
group = "{self.EXTRA}"
"""

    def test_groups_ids_and_signals(self):
        ddv = harness.Ddv(config_text=self.config, watchdog=True)
        self.addCleanup(ddv.stop)
        a_user, b_user = (pwd.getpwnam(u) for u in self.USERS)
        extra = grp.getgrnam(self.EXTRA).gr_gid
        # What this (root) process's groups are does not matter: the
        # workers get the accounts' groups, and no other.
        (a,) = live_pids(ddv, "a")
        (b,) = live_pids(ddv, "b")
        (c,) = live_pids(ddv, "c")
        expected = {
            a: (a_user.pw_uid, a_user.pw_gid, {a_user.pw_gid, extra}),
            b: (b_user.pw_uid, b_user.pw_gid, {b_user.pw_gid}),
            # `group` replaces the primary group; the user's memberships
            # (none beyond its own group) come along.
            c: (b_user.pw_uid, extra, {extra}),
        }
        for pid, (uid, gid, groups) in expected.items():
            with self.subTest(pid=pid):
                st = proc_status(pid)
                self.assertEqual(st["Uid"], [str(uid)] * 4)  # real..fs
                self.assertEqual(st["Gid"], [str(gid)] * 4)
                self.assertEqual({int(g) for g in st["Groups"]}, groups)
                self.assertEqual(st["NoNewPrivs"], ["1"])

        # Site a's worker, started again once it knows whom to try.
        master = ddv.status()["pid"]
        watchdog = ddv.proc.pid
        writer = next(p for p in children(watchdog) if p != master)
        with open(os.path.join(self.out, "targets"), "w") as f:
            f.write(f"{master} {watchdog} {writer} {b} {c}\n")
        self.assertTrue(harness.control(ddv.control_socket,
                                        "restart a").startswith("ok"))
        self.assertTrue(wait_for(lambda: live_pids(ddv, "a") not in ([a], [])))
        (a2,) = live_pids(ddv, "a")
        report = os.path.join(self.out, f"kill-{a2}.txt")
        self.assertTrue(wait_for(lambda: os.path.exists(report)))
        with open(report) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], f"{a2} OK")  # it may signal itself
        for line, target in zip(lines[1:], (master, watchdog, writer, b, c)):
            self.assertTrue(line.startswith(f"{target}:"), lines)
            self.assertIn("not permitted", line)
        self.assertEqual(len(lines), 6, lines)
        self.assertEqual(http_get(ddv.http_port, "a.test")[0], 200)


@unittest.skipUnless(IS_ROOT, "needs root")
class CapsTest(unittest.TestCase):
    """max_connections and max_pending: past them a site's new connections
    get 503, or a TLS internal_error alert; the other sites do not notice;
    each refusal is counted for its site."""

    def config(self, ddv):
        return f"""
[master]
control_socket = "{ddv.control_socket}"
[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"
[[listener]]
name = "tls"
address = "127.0.0.1:{ddv.tls_port}"
protocol = "tls"
[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a", "--ring_entries=256"]
hosts = ["a.test"]
max_connections = 3
[[site]]
id = "b"
command = ["{ddv.hello}", "--site=b", "--ring_entries=256"]
hosts = ["b.test"]
[[site]]
id = "down"
command = ["{ddv.hello}", "--site=down", "--ring_entries=256"]
hosts = ["down.test"]
max_pending = 2
"""

    def test_max_connections_counts_what_workers_hold(self):
        ddv = harness.Ddv(config_text=self.config)
        self.addCleanup(ddv.stop)
        # Three keep-alive connections, each with a request answered: the
        # worker holds them open and says so.
        held = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", ddv.http_port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            self.assertIn(b"200 OK", s.recv(65536))
            held.append(s)
        self.addCleanup(lambda: [s.close() for s in held])
        self.assertTrue(wait_for(
            lambda: site_of(ddv.status(), "a")["connections"]["open"] == 3),
            site_of(ddv.status(), "a"))
        # The fourth is refused, on HTTP with 503 ...
        status, body, _ = http_get(ddv.http_port, "a.test")
        self.assertEqual(status, 503, body)
        # ... on TLS with a fatal alert, before any worker sees it.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", ddv.tls_port),
                                      timeout=5) as raw:
            with self.assertRaisesRegex(ssl.SSLError, "INTERNAL_ERROR"):
                context.wrap_socket(raw, server_hostname="a.test")
        # Site b is not affected.
        self.assertEqual(http_get(ddv.http_port, "b.test")[0], 200)
        a = site_of(ddv.status(), "a")["connections"]
        self.assertEqual(a["refused_max_connections"], 2)
        self.assertEqual(a["refused_max_pending"], 0)
        self.assertEqual(site_of(ddv.status(), "b")["connections"]
                         ["refused_max_connections"], 0)
        counters = harness.control_counters(ddv.control_socket)
        self.assertEqual(counters["ddv_site_connections_refused_total"], 2)
        # Closing them frees the site: the worker's next report says so.
        for s in held:
            s.close()
        self.assertTrue(wait_for(
            lambda: site_of(ddv.status(), "a")["connections"]["open"] == 0))
        self.assertEqual(http_get(ddv.http_port, "a.test")[0], 200)

    def test_max_pending_counts_what_waits_for_a_worker(self):
        # Site "down" loses its worker, which then waits a minute to
        # restart: its connections wait in the master (--worker_wait_ms).
        ddv = harness.Ddv(config_text=self.config,
                          extra_flags=["--backoff_initial_ms=60000",
                                       "--worker_wait_ms=4000"])
        self.addCleanup(ddv.stop)
        (down,) = live_pids(ddv, "down")
        os.kill(down, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: live_pids(ddv, "down") == []))
        waiting = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", ddv.http_port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: down.test\r\n\r\n")
            waiting.append(s)
        self.addCleanup(lambda: [s.close() for s in waiting])
        self.assertTrue(wait_for(
            lambda: site_of(ddv.status(), "down")["connections"]["pending"]
            == 2))
        start = time.monotonic()
        status, body, _ = http_get(ddv.http_port, "down.test")
        self.assertEqual(status, 503, body)
        self.assertLess(time.monotonic() - start, 2.0)  # at once, no wait
        down = site_of(ddv.status(), "down")["connections"]
        self.assertEqual(down["refused_max_pending"], 1)
        self.assertEqual(http_get(ddv.http_port, "b.test")[0], 200)
        counters = harness.control_counters(ddv.control_socket)
        self.assertEqual(counters["ddv_site_pending_refused_total"], 1)
        # The two that waited get their 503 at --worker_wait_ms.
        for s in waiting:
            s.settimeout(8)
            self.assertIn(b" 503 ", s.recv(65536))
        self.assertEqual(site_of(ddv.status(), "down")["connections"]
                         ["pending"], 0)


def own_cgroup_dir():
    """The cgroup2 directory this process is in, or None."""
    with open("/proc/self/cgroup") as f:
        path = next((l[3:].strip() for l in f if l.startswith("0::")), None)
    if path is None:
        return None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            if fields[dash + 1] == "cgroup2" and fields[3] == "/":
                return fields[4] + ("" if path == "/" else path)
    return None


def cgroup_of(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        return next(l[3:].strip() for l in f if l.startswith("0::"))


@unittest.skipUnless(IS_ROOT, "needs root")
class CgroupTest(unittest.TestCase):
    """ddv started inside a cgroup of its own (as systemd's Delegate=yes
    gives it) takes it over: its processes into the leaf `ddv`, each site's
    workers into `site-<id>` with memory.max and cpu.weight. The test makes
    that cgroup below its own and removes it after."""

    def setUp(self):
        home = own_cgroup_dir()
        if home is None:
            self.skipTest("no cgroup2 mounted")
        self.cgroup = os.path.join(home, f"ddv-iso-{os.getpid()}")
        try:
            os.mkdir(self.cgroup)
        except OSError as e:
            self.skipTest(f"cannot make a cgroup under {home}: {e}")
        self.addCleanup(self.remove_cgroup)
        with open(os.path.join(self.cgroup, "cgroup.controllers")) as f:
            self.controllers = f.read().split()

    def remove_cgroup(self):
        # Once ddv's processes are gone, its cgroups can go.
        def remove():
            for name in os.listdir(self.cgroup):
                child = os.path.join(self.cgroup, name)
                if os.path.isdir(child):
                    try:
                        os.rmdir(child)
                    except OSError:
                        pass
            try:
                os.rmdir(self.cgroup)
                return True
            except OSError:
                return False
        self.assertTrue(wait_for(remove, timeout=20),
                        f"{self.cgroup} could not be removed")

    def config(self, with_b):
        def text(ddv):
            b = "" if not with_b else f"""
[[site]]
id = "b"
command = ["{ddv.hello}", "--site=b", "--ring_entries=256"]
hosts = ["b.test"]
"""
            return f"""
[master]
control_socket = "{ddv.control_socket}"
[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"
[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a", "--ring_entries=256"]
processes = 2
hosts = ["a.test"]
memory_max = "256M"
cpu_weight = 300
{b}"""
        return text

    def test_sites_get_cgroups_and_ddv_a_leaf(self):
        # The wrapper moves itself into the cgroup, then becomes ddv_master.
        enter = ["/bin/sh", "-c",
                 f'echo $$ > {self.cgroup}/cgroup.procs && exec "$@"', "sh"]
        # --log_dir=: INFO lines to stderr, not under TEST_TMPDIR.
        ddv = harness.Ddv(config_text=self.config(True), watchdog=True,
                          prefix=enter, extra_flags=["--log_dir="])
        self.addCleanup(ddv.stop)
        relative = cgroup_of(ddv.proc.pid).rsplit("/", 1)[0]
        self.assertTrue(relative.endswith(f"/ddv-iso-{os.getpid()}"),
                        relative)
        status = ddv.status()
        master = status["pid"]
        watchdog = ddv.proc.pid
        writer = next(p for p in children(watchdog) if p != master)
        for pid in (watchdog, writer, master):
            self.assertEqual(cgroup_of(pid), relative + "/ddv")
        for site in ("a", "b"):
            pids = live_pids(ddv, site)
            self.assertEqual(len(pids), 2 if site == "a" else 1)
            for pid in pids:
                self.assertEqual(cgroup_of(pid), f"{relative}/site-{site}")
        # "No internal processes": the claimed cgroup itself holds none.
        with open(os.path.join(self.cgroup, "cgroup.procs")) as f:
            self.assertEqual(f.read(), "")
        a = site_of(status, "a")
        self.assertEqual(a["cgroup"]["path"],
                         os.path.join(self.cgroup, "site-a"))
        self.assertEqual(a["usage"]["source"], "cgroup")
        self.assertEqual(a["usage"]["processes"], 2)
        self.assertEqual(a["cgroup"]["memory_max"], 256 << 20)
        site_a = os.path.join(self.cgroup, "site-a")
        if "memory" in self.controllers:
            with open(os.path.join(site_a, "memory.max")) as f:
                self.assertEqual(f.read().strip(), str(256 << 20))
            self.assertTrue(a["cgroup"]["memory_max_applied"])
            self.assertGreater(a["usage"]["memory_bytes"], 0)
        else:
            # Bound to cgroup v1 here (this VM): said once, shown as such.
            self.assertFalse(a["cgroup"]["memory_max_applied"])
            self.assertIn("not applied: memory_max or cpu_weight of site "
                          '"a"', harness.full_log(ddv))
        if "cpu" in self.controllers:
            with open(os.path.join(site_a, "cpu.weight")) as f:
                self.assertEqual(f.read().strip(), "300")
            self.assertTrue(a["cgroup"]["cpu_weight_applied"])
        else:
            self.assertFalse(a["cgroup"]["cpu_weight_applied"])

        # A master killed and restarted in the leaf claims the same tree;
        # the workers it adopts stay in their cgroups.
        a_pids = sorted(live_pids(ddv, "a"))
        os.kill(master, signal.SIGKILL)

        def new_master():
            try:
                return ddv.status()["pid"] != master
            except (OSError, ValueError):  # between two masters
                return False
        self.assertTrue(wait_for(new_master, timeout=15))
        ddv.wait_ready()
        self.assertEqual(sorted(live_pids(ddv, "a")), a_pids)
        self.assertEqual(cgroup_of(ddv.status()["pid"]), relative + "/ddv")
        self.assertEqual(
            harness.full_log(ddv).count(f"cgroup subtree {self.cgroup}:"), 2)

        # A site removed by a reload takes its cgroup along with its last
        # worker.
        ddv.write_text(self.config(False)(ddv))
        self.assertTrue(harness.control(ddv.control_socket,
                                        "reload").startswith("ok"))
        self.assertTrue(wait_for(
            lambda: not os.path.exists(os.path.join(self.cgroup, "site-b")),
            timeout=15))
        self.assertEqual(http_get(ddv.http_port, "a.test")[0], 200)


if __name__ == "__main__":
    unittest.main()
