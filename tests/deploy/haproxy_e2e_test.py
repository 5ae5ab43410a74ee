"""Two ddv instances behind a real HAProxy in `mode tcp` (docs/deploy.md):
HAProxy is the L4 tier, speaks PROXY v2 to each instance (`send-proxy-v2`)
and health-checks them through it (`check-send-proxy`, an HTTP check that
ddv routes to a worker). Each instance is a whole ddv (watchdog, master,
log writer, ddv_hello workers) on its own loopback address, 127.0.0.2 and
127.0.0.3, trusting PROXY headers from HAProxy's address only.

Checked: requests spread over both instances; workers see the client's
own address, not HAProxy's; an instance killed outright (every process of
it) is marked down by the health check, and from then on no request fails
(python/pyddv/load.py counts every outcome, with times)."""
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "master"))
import harness  # noqa: E402
from harness import (fields, free_port, parse_response, recv_all,  # noqa: E402
                     wait_for)
from pyddv.load import start_load  # noqa: E402
from pyddv.procs import tree  # noqa: E402

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
INSTANCES = ("127.0.0.2", "127.0.0.3")


def instance_config(ddv, address, port):
    return f"""
[master]
control_socket = "{ddv.control_socket}"
peek_timeout_ms = 3000

[[listener]]
name = "lb"
address = "{address}:{port}"
protocol = "http"
proxy_protocol = true
# HAProxy connects from 127.0.0.1; anyone else is reset.
proxy_protocol_from = ["127.0.0.1/32"]

[[site]]
id = "web"
command = ["{ddv.hello}", "--site=web", "--ring_entries=256"]
processes = 2
hosts = ["web.localhost"]
default = true
log_all = "{ddv.dir}/web.log"
"""


def haproxy_config(frontend, port, stats):
    servers = "\n".join(
        f"    server ddv{i} {address}:{port} send-proxy-v2 check "
        f"check-send-proxy inter 200ms fall 2 rise 2"
        for i, address in enumerate(INSTANCES))
    return f"""
global
    stats socket {stats} mode 600 level admin
    maxconn 2000

defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # A connection to an instance that died but is not marked down yet is
    # tried again on the other one.
    retries 2
    option redispatch

frontend front
    bind 127.0.0.1:{frontend}
    default_backend ddv

backend ddv
    balance roundrobin
    default-server source 127.0.0.1
    # The check speaks PROXY (a v2 LOCAL header) and HTTP: it passes only
    # when ddv routed it to a live worker.
    option httpchk
    http-check send meth GET uri / ver HTTP/1.1 hdr Host check.localhost
    http-check expect status 200
{servers}
"""


def instance_groups(ddv, ours):
    """The process groups of one ddv instance, the watchdog's first: every
    group of a process below the watchdog this test started (each worker
    leads its own), never the test's own `ours`."""
    groups = []
    for pid in tree([ddv.proc.pid]):
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            continue  # gone since the tree was read
        if group != ours and group not in groups:
            groups.append(group)
    return groups


def signal_group(group, sig):
    """killpg; False when the group has no process left (all of it exited
    and was reaped), which for a kill is the outcome wanted."""
    try:
        os.killpg(group, sig)
        return True
    except ProcessLookupError:
        return False


def alive(pid):
    """Running or stopped; False once it is a zombie or gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def kill_instance(ddv, timeout=10.0):
    """SIGKILL to every process of one ddv instance, by process group;
    returns once none is alive, with the groups killed.

    Every group is stopped first (SIGSTOP, the watchdog's first), then
    killed. Killed one after the other while running, the rest would not
    wait their turn: once the watchdog and the master are dead, their
    workers see EOF on their channels and exit by themselves
    (docs/lifecycle.md), so a killpg could find a group gone (ESRCH) and
    the test would watch workers leave, not die. Stopped, no process exits
    or starts another; the tree is read again until it holds no group not
    yet stopped (a process forked before its parent stopped)."""
    ours = os.getpgid(0)
    groups = []
    for _ in range(10):
        new = [g for g in instance_groups(ddv, ours) if g not in groups]
        if not new:
            break
        groups += [g for g in new if signal_group(g, signal.SIGSTOP)]
    else:
        raise RuntimeError(f"ddv pid {ddv.proc.pid}: new process groups "
                           f"still appear after 10 reads: {groups}")
    pids = tree([ddv.proc.pid])
    for group in groups:
        signal_group(group, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"still alive {timeout} s after SIGKILL: "
                               f"{[pid for pid in pids if alive(pid)]}")
        time.sleep(0.01)
    return groups


def server_states(stats):
    """{server name: status} of backend "ddv", from HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(stats)
        s.sendall(b"show stat\n")
        text = recv_all(s).decode()
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {row["svname"]: row["status"] for row in rows
            if row["pxname"] == "ddv" and row["svname"] not in
            ("FRONTEND", "BACKEND")}


class HaproxyTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(HAPROXY):
            self.fail("haproxy is not installed: run scripts/setup.sh")
        port = free_port()
        self.instances = []
        for address in INSTANCES:
            # Its own session: the instance's processes are its own to kill.
            ddv = harness.Ddv(
                watchdog=True, prefix=["setsid"], extra_flags=["--log_dir="],
                config_text=lambda d, a=address: instance_config(d, a, port))
            self.addCleanup(ddv.stop)
            self.instances.append(ddv)
        self.dir = tempfile.mkdtemp(prefix="ddv-haproxy-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.stats = os.path.join(self.dir, "stats.sock")
        self.frontend = free_port()
        config = os.path.join(self.dir, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(haproxy_config(self.frontend, port, self.stats))
        self.haproxy_log = open(os.path.join(self.dir, "haproxy.log"), "w")
        self.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", config],
                                        stdout=self.haproxy_log,
                                        stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_haproxy)
        up = wait_for(lambda: os.path.exists(self.stats) and
                      set(self.states().values()) == {"UP"}, timeout=15)
        self.assertTrue(up, f"{self.states()}\n{self.log()}")

    def stop_haproxy(self):
        harness.stop_process(self.haproxy, timeout=10)
        self.haproxy_log.close()

    def log(self):
        self.haproxy_log.flush()
        with open(self.haproxy_log.name) as f:
            return f.read()[-3000:]

    def states(self):
        try:
            return server_states(self.stats)
        except OSError:
            return {}

    def get(self):
        """One request through HAProxy: (status, body, our local port)."""
        with socket.create_connection(("127.0.0.1", self.frontend),
                                      timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: web.localhost\r\n"
                      b"Connection: close\r\n\r\n")
            return parse_response(recv_all(s)) + (s.getsockname()[1],)

    def pids_of(self, ddv):
        return {str(pid) for pid in ddv.worker_pids("web")}

    def test_workers_see_the_client_not_haproxy(self):
        status, body, port = self.get()
        self.assertEqual(status, 200, f"{body}\n{self.log()}\n"
                         f"{self.instances[0].read_log()}")
        self.assertEqual(fields(body)["peer"], f"127.0.0.1:{port}")

    def test_a_killed_instance_is_taken_out_with_no_failure_after(self):
        pids = [self.pids_of(ddv) for ddv in self.instances]
        loads = [
            start_load(self.frontend, ["web.localhost"],
                       mode="new_connection", connections=4, duration=60,
                       rate=250),
            start_load(self.frontend, ["web.localhost"], mode="keepalive",
                       connections=4, duration=60, rate=250,
                       requests_per_connection=20),
        ]
        try:
            time.sleep(1.5)
            killed_at = time.monotonic()
            self.assertTrue(kill_instance(self.instances[0]))
            down = wait_for(lambda: self.states().get("ddv0") == "DOWN",
                            timeout=10, interval=0.02)
            down_at = time.monotonic()
            self.assertTrue(down, f"{self.states()}\n{self.log()}")
            time.sleep(2.0)
        finally:
            for load in loads:
                load.stop()
        results = [load.result(timeout=30) for load in loads]
        # Spread over both instances before the kill (HAProxy balances
        # connections: the keep-alive load's few may all land on one)...
        answered = set(results[0]["pids"]) | set(results[1]["pids"])
        summaries = "\n".join(r.summary() for r in results)
        self.assertTrue(answered & pids[0], summaries)
        self.assertTrue(answered & pids[1], summaries)
        for result in results:
            answered = set(result["pids"])
            # ...and after detection no request failed.
            late = [e for e in result["events"] if e["t"] >= down_at]
            self.assertEqual(late, [], result.summary())
            # The killed instance answered nothing after its kill.
            for pid in answered & pids[0]:
                self.assertLess(result["pids"][pid]["last"], killed_at + 0.1)
            self.assertGreater(result["ok"], 500, result.summary())
        # For the record: how long detection took, and what failed before.
        print(f"marked down {down_at - killed_at:.3f} s after the kill; "
              f"before that: " + "; ".join(r.summary() for r in results))
        self.assertEqual(self.states(), {"ddv0": "DOWN", "ddv1": "UP"})
        # The survivor still serves, and still sees the client.
        status, body, port = self.get()
        self.assertEqual(status, 200, body)
        self.assertEqual(fields(body)["peer"], f"127.0.0.1:{port}")
        self.assertIn(fields(body)["pid"], pids[1])


if __name__ == "__main__":
    unittest.main()
