"""What the chaos scenarios share: a real front door (ddv_master and real
ddv_hello workers on loopback, tests/master/harness.py) with a config built
from a few values, real traffic from pyddv.load while a scenario acts, and
the assertions on what that traffic saw.

Every scenario is bounded: each load stops at its duration (or earlier when
the scenario is done), every wait has a deadline, and cleanup ends only the
processes the test started, by pid (the load children, the front door).
"""
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from pyddv import load as pyload
from tests.master import harness
from tests.master.harness import fields, http_get, wait_for

# Rates the 2-core test machine sustains beside the front door and other
# tests (each load alone reaches 10-40 k/s there): keep-alive and one new
# connection per request, requests per second across each load's
# connections.
KEEPALIVE_RATE = 2000
KEEPALIVE_CONNECTIONS = 16
NEW_CONNECTION_RATE = 800
NEW_CONNECTION_CONNECTIONS = 8
# A load must reach this share of its rate, or it did not test much.
MIN_RATE_SHARE = 0.25

# ddv_master's own back-off (the harness' 50 ms is for other tests); glog's
# INFO lines to the master's log.
MASTER_FLAGS = ["--backoff_initial_ms=100", "--log_dir="]


@dataclasses.dataclass
class Site:
    id: str
    hosts: tuple = ()
    processes: int = 1
    args: tuple = ()          # after ddv_hello --site=ID
    command: tuple = None     # instead of ddv_hello
    listeners: tuple = None   # every listener when None
    extra: str = ""           # more TOML lines for the [[site]] table


def config_text(ddv, sites, listeners=None, master=""):
    """The TOML of a front door: `listeners` {name: port} (default: "http"
    on ddv.http_port, whose default_site is "fallback" when such a site is
    given), `sites` a list of Site."""
    if listeners is None:
        listeners = {"http": ddv.http_port}
    has_fallback = any(s.id == "fallback" for s in sites)
    text = f'[master]\ncontrol_socket = "{ddv.control_socket}"\n{master}\n'
    for name, port in listeners.items():
        text += (f'[[listener]]\nname = "{name}"\n'
                 f'address = "127.0.0.1:{port}"\nprotocol = "http"\n')
        if has_fallback:
            text += 'default_site = "fallback"\n'
        text += "\n"
    for s in sites:
        argv = list(s.command) if s.command else [
            ddv.hello, f"--site={s.id}", "--ring_entries=256", *s.args]
        command = ", ".join(f'"{a}"' for a in argv)
        hosts = ", ".join(f'"{h}"' for h in s.hosts)
        text += (f'[[site]]\nid = "{s.id}"\ncommand = [{command}]\n'
                 f"processes = {s.processes}\nhosts = [{hosts}]\n"
                 f'log_all = "{ddv.dir}/{s.id}.log"\n')
        if s.listeners is not None:
            text += "listeners = [" + ", ".join(
                f'"{n}"' for n in s.listeners) + "]\n"
        text += s.extra + "\n"
    return text


def start_front_door(test, sites, watchdog=False, flags=(), **kw):
    """A running ddv_master with these sites; stopped at the test's end.
    With DDV_CHAOS_SHARDS=N (chaos_test's `shards`), --shards=N."""
    shards = os.environ.get("DDV_CHAOS_SHARDS")
    if shards:
        flags = (*flags, f"--shards={shards}")
    ddv = harness.Ddv(config_text=lambda d: config_text(d, sites, **kw),
                      watchdog=watchdog,
                      extra_flags=[*MASTER_FLAGS, *flags])
    test.addCleanup(ddv.stop)
    return ddv


def reload(ddv, sites, **kw):
    """Writes the new config and reloads it with ddvctl's command; returns
    the master's answer."""
    ddv.write_text(config_text(ddv, sites, **kw))
    return harness.control(ddv.control_socket, "reload", timeout=20)


def workers(ddv, site):
    """[(index, pid, state)] of `site`'s workers that are not retired."""
    for s in ddv.status()["sites"]:
        if s["id"] == site:
            return [(i, w["pid"], w["state"])
                    for i, w in enumerate(s["workers"]) if not w["retired"]]
    return []


def live_pids(ddv, site):
    """Pids of `site`'s workers that run and said hello, not retired
    ("starting" is a worker within its first seconds: it may be ready)."""
    for s in ddv.status()["sites"]:
        if s["id"] == site:
            return sorted(w["pid"] for w in s["workers"]
                          if not w["retired"] and w["ready"]
                          and w["state"] in ("starting", "running"))
    return []


def wait_replaced(ddv, site, old, count, timeout=20.0):
    """Waits until `site` runs `count` ready workers none of which is in
    `old`; returns their pids (or what there is at the deadline)."""
    def done():
        pids = live_pids(ddv, site)
        if len(pids) == count and not set(pids) & set(old):
            return pids
        return None
    return wait_for(done, timeout=timeout) or live_pids(ddv, site)


def master_pid(ddv):
    """The running master's pid, or None while none answers."""
    try:
        return ddv.status()["pid"]
    except (OSError, ValueError, KeyError):
        return None


def kill_master(ddv, timeout=10.0):
    """SIGKILLs the running master (under the watchdog) and waits until the
    next one answers on the control socket; returns (the time of the kill,
    the new master's pid or None)."""
    old = master_pid(ddv)
    killed_at = time.monotonic()
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: master_pid(ddv) not in (None, old) and
                   master_pid(ddv), timeout=timeout, interval=0.02)
    return killed_at, new or None


def alive(pid):
    """Runs and is not a zombie (the watchdog reaps its master)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class Probe(threading.Thread):
    """One GET on a new connection, waiting up to `timeout`; `outcome` is
    the answering site, or the exception's class name."""

    def __init__(self, port, timeout):
        super().__init__(daemon=True)
        self.port = port
        self.timeout = timeout
        self.outcome = None
        self.done_at = None

    def run(self):
        try:
            status, body, _ = http_get(self.port, "a.localhost",
                                       timeout=self.timeout)
            self.outcome = fields(body)["site"] if status == 200 else status
        except OSError as e:
            self.outcome = type(e).__name__
        self.done_at = time.monotonic()


def start_probes(port, count, timeout):
    """`count` Probes, started."""
    probes = [Probe(port, timeout) for _ in range(count)]
    for probe in probes:
        probe.start()
    return probes


def worker_pids(ddv):
    """{site: sorted pids of its workers}."""
    return {s["id"]: sorted(w["pid"] for w in s["workers"])
            for s in ddv.status()["sites"]}


def site_of(port, host):
    status, body, _ = http_get(port, host, timeout=10)
    return fields(body)["site"] if status == 200 else status


def start_traffic(test, port, hosts, duration,
                  keepalive_rate=KEEPALIVE_RATE,
                  new_connection_rate=NEW_CONNECTION_RATE, **load_kw):
    """A keep-alive load and a new-connection load on `hosts`, for at most
    `duration` s; killed at the test's end if still running. Returns the
    two Loads. `load_kw` (e.g. the clients' `timeout`) goes to both."""
    loads = [
        pyload.start_load(port, hosts, "keepalive",
                          connections=KEEPALIVE_CONNECTIONS,
                          rate=keepalive_rate, duration=duration, **load_kw),
        pyload.start_load(port, hosts, "new_connection",
                          connections=NEW_CONNECTION_CONNECTIONS,
                          rate=new_connection_rate, duration=duration,
                          **load_kw),
    ]
    for load in loads:
        test.addCleanup(load.kill)
    return loads


def finish(loads):
    """Stops the loads now and returns their results, each summarised on
    stderr (the test log)."""
    for load in loads:
        load.stop()
    results = [load.result() for load in loads]
    for result in results:
        print(result.summary(), file=sys.stderr)
    return results


class ChaosTest(unittest.TestCase):
    """Assertions on what a load saw."""

    def assertGone(self, ddv, pid, timeout):
        """Waits up to `timeout` s for process `pid` (a master the watchdog
        kills and reaps) to be gone; returns when it was seen gone."""
        gone = wait_for(lambda: not alive(pid), timeout=timeout,
                        interval=0.01)
        gone_at = time.monotonic()
        self.assertTrue(gone, harness.full_log(ddv)[-3000:])
        return gone_at

    def assertNoFailures(self, result, ddv=None):
        log = f"\n{harness.full_log(ddv)[-3000:]}" if ddv else ""
        self.assertEqual(result.failed(), 0, result.summary() + log)

    def assertRan(self, result, rate, seconds):
        """The load did real work: at least MIN_RATE_SHARE of `rate` over
        `seconds`."""
        self.assertGreaterEqual(result["ok"], MIN_RATE_SHARE * rate * seconds,
                                result.summary())

    def assertAnsweredBy(self, result, expected):
        """Every 2xx answer to each host in `expected` ({host: site}) came
        from that site, and each host got some."""
        for host, site in expected.items():
            sites = result["hosts"][host]["sites"]
            self.assertEqual(list(sites), [site],
                             f"{host}: {sites}; {result.summary()}")

    def assertServedByWorkers(self, keepalive, new_connection, seconds,
                              workers, expected=None):
        """Both standard loads did real work for `seconds`, each host
        answered by its site (`expected`, as in assertCleanRun), and only
        by `workers` ({site: [pid]}, those running before the event: none
        was replaced). Their failures are the caller's to judge."""
        if expected is None:
            expected = {"a.localhost": "a", "b.localhost": "b"}
        answered_by = {pid for pids in workers.values() for pid in pids}
        for result, rate in ((keepalive, KEEPALIVE_RATE),
                             (new_connection, NEW_CONNECTION_RATE)):
            self.assertRan(result, rate, seconds)
            self.assertAnsweredBy(result, expected)
            self.assertLessEqual(set(result.pids_of()), answered_by)

    def assertCleanRun(self, keepalive, new_connection, seconds, ddv,
                       expected=None):
        """Both standard loads (KEEPALIVE_RATE, NEW_CONNECTION_RATE) did
        real work for `seconds` with no failure, each host answered by its
        site (`expected`, default a.localhost -> a, b.localhost -> b)."""
        if expected is None:
            expected = {"a.localhost": "a", "b.localhost": "b"}
        for result, rate in ((keepalive, KEEPALIVE_RATE),
                             (new_connection, NEW_CONNECTION_RATE)):
            self.assertNoFailures(result, ddv)
            self.assertRan(result, rate, seconds)
            self.assertAnsweredBy(result, expected)


def copy_for_nobody(path):
    """A copy of the binary at `path` that user nobody may run (runfiles are
    not reachable for it); returns its path, in a directory removed by the
    caller."""
    directory = tempfile.mkdtemp(prefix="ddv-chaos-", dir="/tmp")
    os.chmod(directory, 0o755)
    copy = os.path.join(directory, os.path.basename(path))
    shutil.copy(path, copy)
    os.chmod(copy, 0o755)
    return copy


def run_as_nobody(argv, timeout=20):
    """Runs argv as nobody:nogroup with no supplementary groups (setpriv,
    util-linux); returns the CompletedProcess."""
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         *argv], capture_output=True, text=True, timeout=timeout)
