"""Socket activation end to end (docs/package.md, "ddv.socket"):
systemd-socket-activate, from Debian's systemd package, binds the
listeners and passes them by name to a real ddv_master, as a .socket unit
would; curl gets answers from real ddv_hello workers through each of them.
The watchdog owns the passed sockets like ones it bound: they survive
master kills and an upgrade under load with no failed request (only a
connection the dead master had accepted may be reset, as without
activation; docs/lifecycle.md). A name that does not match the config
fails the start with a clear message and exit status 2; a reload may not
change the listeners systemd passed; a master alone takes passed sockets
too."""
import os
import re
import signal
import subprocess
import sys
import time
import unittest

from pyddv import load as pyload
from tests.master import harness
from tests.master.harness import fields
from tests.systemd import service_manager
from tests.systemd.service_manager import NotifySocket

HOSTS = ["a.localhost", "b.localhost"]
LOAD_SECONDS = 12


def curl(*args):
    out = subprocess.run(["curl", "-sS", "--max-time", "10", *args],
                         capture_output=True, text=True, timeout=20)
    return out.returncode, out.stdout + out.stderr


def sites_through_every_listener(test, ddv):
    """curl through each passed socket; returns {listener: site}."""
    got = {}
    rc, body = curl("-H", "Host: a.localhost",
                    f"http://127.0.0.1:{ddv.http_port}/")
    test.assertEqual(rc, 0, body)
    got["http"] = fields(body)["site"]
    rc, body = curl("-H", "Host: a.localhost",
                    f"http://127.0.0.1:{ddv.strict_port}/")
    test.assertEqual(rc, 0, body)
    got["strict"] = fields(body)["site"]
    rc, body = curl("-k", "--resolve",
                    f"a.localhost:{ddv.tls_port}:127.0.0.1",
                    f"https://a.localhost:{ddv.tls_port}/")
    test.assertEqual(rc, 0, body)
    test.assertEqual(fields(body)["tls"], "1")
    got["https"] = fields(body)["site"]
    rc, body = curl(f"http://127.0.0.1:{ddv.tcp_port}/")  # tcp: site b
    test.assertEqual(rc, 0, body)
    got["raw"] = fields(body)["site"]
    return got


EVERY_LISTENER = {"http": "a", "strict": "a", "https": "a", "raw": "b"}


def listening_inodes(pid):
    """The socket inodes `pid` holds that listen (from /proc/net/tcp)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    listening = set()
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # TCP_LISTEN
                listening.add(cols[9])
    return listening


class SocketActivationTest(unittest.TestCase):
    def test_passed_sockets_serve_and_survive_kills_and_an_upgrade(self):
        systemd = NotifySocket()
        self.addCleanup(systemd.close)
        ddv, trigger = service_manager.start_activated(
            env=[f"NOTIFY_SOCKET={systemd.address}"],
            extra_flags=["--log_dir="])
        self.addCleanup(ddv.stop)
        watchdog = ddv.proc.pid
        log = harness.full_log(ddv)
        self.assertIn("socket activation: 4 listening sockets passed for 4 "
                      "listeners", log)
        # The connection that started it waited in the backlog and was
        # served by a worker.
        status, body, _ = trigger.wait()
        self.assertEqual((status, fields(body)["site"]), (200, "a"))
        self.assertIsNotNone(systemd.wait_kind("READY"), systemd.all())
        self.assertEqual(sites_through_every_listener(self, ddv),
                         EVERY_LISTENER)
        # The watchdog holds the very sockets it was passed; the master
        # and the workers never saw LISTEN_FDS.
        passed = listening_inodes(watchdog)
        self.assertEqual(len(passed), 4)
        master = ddv.status()["pid"]
        with open(f"/proc/{master}/environ", "rb") as f:
            self.assertNotIn(b"LISTEN_", f.read())

        workers = {s["id"]: sorted(w["pid"] for w in s["workers"])
                   for s in ddv.status()["sites"]}
        loads = [pyload.start_load(ddv.http_port, HOSTS, "keepalive",
                                   connections=8, rate=1000,
                                   duration=LOAD_SECONDS),
                 pyload.start_load(ddv.http_port, HOSTS, "new_connection",
                                   connections=4, rate=400,
                                   duration=LOAD_SECONDS)]
        for load in loads:
            self.addCleanup(load.kill)
        windows = []
        for _ in range(2):
            time.sleep(2)
            old = ddv.status()["pid"]
            killed = time.monotonic()
            os.kill(old, signal.SIGKILL)
            self.assertTrue(harness.wait_for(
                lambda: self._master(ddv) not in (None, old), timeout=10))
            windows.append((killed, time.monotonic()))
        time.sleep(2)
        upgraded = subprocess.run(
            [harness.runfile("src/ddvctl"),
             f"--control_socket={ddv.control_socket}", "upgrade"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(upgraded.returncode, 0, upgraded.stderr)
        time.sleep(2)
        keepalive, new_connection = [load.result() for load in loads]
        for result in (keepalive, new_connection):
            print(result.summary(), file=sys.stderr)

        self.assertEqual(ddv.proc.pid, watchdog)
        self.assertIsNone(ddv.proc.poll())
        self.assertEqual(listening_inodes(watchdog), passed)
        self.assertEqual({s["id"]: sorted(w["pid"] for w in s["workers"])
                          for s in ddv.status()["sites"]}, workers)
        self.assertEqual(keepalive.failed(), 0, keepalive.summary())
        self.assertGreater(keepalive["ok"], 1000, keepalive.summary())
        self.assertGreater(new_connection["ok"], 500, new_connection.summary())
        # New connections: only resets, and only when a master died
        # (docs/lifecycle.md, "What is lost"); none in the upgrade.
        self.assertEqual(new_connection.failed(),
                         new_connection["failures"]["reset"],
                         new_connection.summary())
        for event in new_connection["events"]:
            self.assertTrue(any(a <= event["t"] <= b + 0.5
                                for a, b in windows), (event, windows))
        self.assertEqual(sites_through_every_listener(self, ddv),
                         EVERY_LISTENER)
        # systemd heard READY=1 at the start and after the upgrade only.
        self.assertEqual(systemd.kinds(), ["READY", "RELOADING", "READY"])
        self.assertEqual({m.pid for m in systemd.all()}, {watchdog})

    def test_with_shards_every_loop_accepts_on_the_passed_sockets(self):
        # systemd's sockets are not grown into a group per loop (a socket
        # of ours would close with us): the loops share each one.
        ddv, trigger = service_manager.start_activated(
            extra_flags=["--log_dir=", "--shards=2"])
        self.addCleanup(ddv.stop)
        status, body, _ = trigger.wait()
        self.assertEqual((status, fields(body)["site"]), (200, "a"))
        self.assertIn("the listeners are systemd's: every loop accepts on "
                      "the one socket of each", harness.full_log(ddv))
        self.assertEqual(len(listening_inodes(ddv.proc.pid)), 4)
        self.assertEqual([l["sockets"] for l in ddv.status()["listeners"]],
                         [1, 1, 1, 1])
        load = pyload.start_load(ddv.http_port, HOSTS, "new_connection",
                                 connections=4, rate=400, duration=2)
        self.addCleanup(load.kill)
        result = load.result()
        print(result.summary(), file=sys.stderr)
        self.assertEqual(result.failed(), 0, result.summary())
        shard = next(s for s in ddv.status()["shards"] if s["id"] == 1)
        self.assertGreater(shard["accepted"], 50, shard)
        self.assertEqual(sites_through_every_listener(self, ddv),
                         EVERY_LISTENER)

    def test_a_reload_may_not_change_the_passed_listeners(self):
        ddv, trigger = service_manager.start_activated()
        self.addCleanup(ddv.stop)
        trigger.wait()
        good = open(ddv.config_path).read()
        new_port = harness.free_port()
        ddv.write_text(good + f'\n[[listener]]\nname = "extra"\n'
                       f'address = "127.0.0.1:{new_port}"\nprotocol = "http"\n')
        reply = harness.control(ddv.control_socket, "reload")
        self.assertEqual(
            reply,
            "error: reload failed, keeping the running config: the listening "
            "sockets came from systemd (socket activation) and stay as its "
            f"units pass them: listener \"extra\" (127.0.0.1:{new_port}) is "
            "new. Change the .socket units and the config together, then "
            "restart the service\n")
        ddv.write_text(good.replace('name = "raw"', 'name = "renamed"'))
        reply = harness.control(ddv.control_socket, "reload")
        self.assertIn(f'listener "renamed" (127.0.0.1:{ddv.tcp_port}) is new',
                      reply)
        self.assertIn(f'listener "raw" (127.0.0.1:{ddv.tcp_port}) is gone',
                      reply)
        # Anything else still reloads: hosts move, the sockets stay.
        ddv.write_text(good.replace('hosts = ["b.localhost"]',
                                    'hosts = ["b.localhost", "c.localhost"]'))
        reply = harness.control(ddv.control_socket, "reload")
        self.assertTrue(reply.startswith("ok: reloaded"), reply)
        rc, body = curl("-H", "Host: c.localhost",
                        f"http://127.0.0.1:{ddv.http_port}/")
        self.assertEqual(fields(body)["site"], "b")
        # The next master gets the same sockets.
        old = ddv.status()["pid"]
        os.kill(old, signal.SIGKILL)
        self.assertTrue(harness.wait_for(
            lambda: self._master(ddv) not in (None, old), timeout=10))
        self.assertEqual(sites_through_every_listener(self, ddv),
                         EVERY_LISTENER)
        # An upgraded watchdog still knows the sockets are systemd's.
        upgraded = subprocess.run(
            [harness.runfile("src/ddvctl"),
             f"--control_socket={ddv.control_socket}", "upgrade"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(upgraded.returncode, 0, upgraded.stderr)
        current = open(ddv.config_path).read()
        ddv.write_text(current + f'\n[[listener]]\nname = "extra"\n'
                       f'address = "127.0.0.1:{new_port}"\n'
                       'protocol = "http"\n')
        reply = harness.control(ddv.control_socket, "reload")
        self.assertIn('listener "extra"', reply)
        self.assertIn("came from systemd", reply)
        self.assertEqual(sites_through_every_listener(self, ddv),
                         EVERY_LISTENER)

    def test_a_master_alone_takes_passed_sockets(self):
        ddv, trigger = service_manager.start_activated(watchdog=False)
        self.addCleanup(ddv.stop)
        self.assertEqual(fields(trigger.wait()[1])["site"], "a")
        self.assertEqual(ddv.status()["pid"], ddv.proc.pid)
        self.assertEqual(sites_through_every_listener(self, ddv),
                         EVERY_LISTENER)
        ddv.write_text(open(ddv.config_path).read().replace(
            f"127.0.0.1:{ddv.strict_port}", f"127.0.0.1:{harness.free_port()}"))
        reply = harness.control(ddv.control_socket, "reload")
        self.assertIn('listener "strict" moves from', reply)
        self.assertEqual(ddv.stop(), 0)

    def test_names_that_do_not_match_fail_the_start(self):
        ports = {"http": harness.free_port(), "https": harness.free_port()}
        config = (f'[master]\ncontrol_socket = "/tmp/ddv-no-{os.getpid()}.sock"\n'
                  f'[[listener]]\nname = "http"\n'
                  f'address = "127.0.0.1:{ports["http"]}"\n'
                  f'protocol = "http"\n'
                  f'[[listener]]\nname = "https"\n'
                  f'address = "127.0.0.1:{ports["https"]}"\nprotocol = "tls"\n'
                  f'[[site]]\nid = "a"\ncommand = ["/bin/true"]\n'
                  f'default = true\n')
        rc, out = service_manager.run_activated_until_exit(
            ports, {"https": "admin"}, config)
        self.assertEqual(rc, 2, out)
        self.assertIn(
            "socket activation: the sockets passed (LISTEN_FDNAMES) do not "
            f"match the config's listeners: listener \"https\" "
            f"(127.0.0.1:{ports['https']}) has no socket among those passed "
            "(\"http\", \"admin\"): add ListenStream=127.0.0.1:"
            f"{ports['https']} with FileDescriptorName=https to a .socket "
            "unit of the service; fd 4 is named \"admin\" and no [[listener]] "
            "has that name (the config has \"http\", \"https\")", out)

        # The right names on the wrong addresses.
        swapped = {"http": ports["https"], "https": ports["http"]}
        rc, out = service_manager.run_activated_until_exit(
            {"https": ports["http"], "http": ports["https"]}, {}, config)
        self.assertEqual(rc, 2, out)
        self.assertRegex(out, r'fd \d "http" listens on 127.0.0.1:'
                         f'{swapped["http"]}; listener "http" has address '
                         f'127.0.0.1:{ports["http"]}')

    @staticmethod
    def _master(ddv):
        try:
            return ddv.status()["pid"]
        except (OSError, ValueError, KeyError):
            return None


if __name__ == "__main__":
    unittest.main()
