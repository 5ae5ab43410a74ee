"""Master shards (docs/shards.md): ddv_master --shards=2, a real master with
real ddv_hello workers and real clients.

- Under new-connection load on every listener kind, both loops take
  connections and the shard hands most of its own to workers itself; no
  request fails, and every answer comes from the site the Host names.
- What a shard cannot finish itself it forwards to the primary, unread,
  and the client gets exactly what one loop would have answered: 421 for
  an unknown name on a listener without a default, 400 for garbage, 408
  for an idle peer at the peek deadline, the TLS and raw TCP paths.
- `ddvctl status --json` and /metrics show per-shard figures, and the
  totals include the shard's connections.
- A reload under load changes hosts and process counts with no failure.
- A graceful stop drains the shards too.
- A shard whose loop fails (injected with --shard_fault_after) under load
  is replaced: no request fails, the new shard routes, no fd is left.
- Each loop accepts on a socket of its own: every listener is a
  SO_REUSEPORT group of one socket per loop, which the kernel spreads
  connections over; nobody else can bind the port; the group survives a
  master kill and an upgrade under load without growing, and a listener a
  reload adds gets one too, drained whole when a reload removes it.
- A bad --shards value is refused with a message that says why.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

from pyddv import load as pyload
from tests.master import harness
from tests.master.harness import fields, http_get, wait_for

SHARDS = [f"--shards={os.environ.get('DDV_TEST_SHARDS', '2')}"]
LOOPS = int(SHARDS[0].split("=")[1])


def listening_sockets(port):
    """Sockets listening on 127.0.0.1:`port` (the kernel's table, any
    process): a SO_REUSEPORT group is one line per socket."""
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local == f"0100007F:{port:04X}":
                count += 1
    return count


def loop_shares(status):
    """Connections accepted by each loop, the primary first."""
    shards = sorted(status["shards"], key=lambda s: s["id"])
    total = status["counters"]["connections_accepted"]
    taken = [s["accepted"] for s in shards[1:]]
    return [total - sum(taken)] + taken


def shard(status, shard_id):
    return next(s for s in status["shards"] if s["id"] == shard_id)


def raw_request(port, data, timeout=5.0):
    """Sends `data`, returns everything the server sent until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def kill_master(test, ddv):
    """SIGKILLs the master (under the watchdog) and waits until the next one
    answers; returns the time of the kill."""
    old = ddv.status()["pid"]
    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    def restarted():
        try:
            return ddv.status()["pid"] != old
        except (OSError, ValueError, KeyError):
            return False  # between masters
    test.assertTrue(wait_for(restarted, timeout=20), ddv.read_log())
    return killed


class ShardsTest(unittest.TestCase):
    def start(self, **kw):
        ddv = harness.Ddv(extra_flags=SHARDS, **kw)
        self.addCleanup(ddv.stop)
        return ddv

    def start_loads(self, ddv, rate, duration):
        """New-connection and keep-alive load on a and b at `rate` each."""
        hosts = ["a.localhost", "b.localhost"]
        loads = [pyload.start_load(ddv.http_port, hosts, shape,
                                   connections=8, rate=rate,
                                   duration=duration)
                 for shape in ("new_connection", "keepalive")]
        for load in loads:
            self.addCleanup(load.kill)
        return loads

    def assertNoLoadFailed(self, loads, min_ok=0):
        """Every load ended with no failure and more than `min_ok` answers;
        returns the results."""
        results = [load.result() for load in loads]
        for result in results:
            print(result.summary(), file=sys.stderr)
            self.assertEqual(result.failed(), 0, result.summary())
            self.assertGreater(result["ok"], min_ok, result.summary())
        return results

    def test_both_loops_route_under_load(self):
        ddv = self.start()
        results = self.assertNoLoadFailed(
            self.start_loads(ddv, rate=1500, duration=4), min_ok=1500)
        for result in results:
            sites = {info["site"] for info in result.pids_of().values()}
            self.assertEqual(sites, {"a", "b"}, result.summary())
        status = ddv.status()
        print(status["shards"], file=sys.stderr)
        self.assertEqual([s["id"] for s in status["shards"]], [0, 1])
        one = shard(status, 1)
        accepted = status["counters"]["connections_accepted"]
        # Both loops took connections (each on its own socket of every
        # listener, which the kernel hashes connections over), and the
        # shard finished most of its own: a forward is for refusals and the
        # like, not the common case.
        self.assertGreater(one["accepted"], 0.25 * accepted, status["shards"])
        self.assertGreater(accepted - one["accepted"], 0.25 * accepted,
                           status["shards"])
        self.assertGreater(one["handed_off"], 0.9 * one["accepted"],
                           status["shards"])
        # The totals count the shard's handoffs.
        self.assertGreaterEqual(status["counters"]["connections_handed_off"],
                                one["handed_off"])
        handed = sum(w["handed_off"] for s in status["sites"]
                     for w in s["workers"])
        self.assertEqual(handed, status["counters"]["connections_handed_off"])
        ddvctl = subprocess.run(
            [harness.runfile("src/ddvctl"),
             f"--control_socket={ddv.control_socket}", "status"],
            capture_output=True, text=True, timeout=20)
        self.assertEqual(ddvctl.returncode, 0, ddvctl.stderr)
        self.assertIn("shard 0 (primary) holds", ddvctl.stdout)
        if LOOPS > 1:
            self.assertRegex(ddvctl.stdout,
                             rf"listener http +127\.0\.0\.1:\d+ +http "
                             rf"\({LOOPS} sockets\)")
        self.assertRegex(ddvctl.stdout,
                         r"shard 1 holds \d+; accepted \d+, handed off \d+,"
                         r" forwarded \d+")
        metrics = harness.control(ddv.control_socket, "metrics")
        for family in ("ddv_shards 2", 'ddv_shard_connections{shard="1"}',
                       'ddv_shard_connections_accepted_total{shard="1"}',
                       'ddv_shard_connections_handed_off_total{shard="1"}',
                       'ddv_shard_connections_forwarded_total{shard="1"}'):
            self.assertIn(family, metrics)

    def test_what_a_shard_forwards_gets_the_one_loop_answer(self):
        ddv = self.start(peek_timeout_ms=700)
        # Enough of each that the kernel gives the shard some of them.
        for _ in range(40):
            status, body, _ = http_get(ddv.http_port, "a.localhost")
            self.assertEqual((status, fields(body)["site"]), (200, "a"))
            status, _, _ = http_get(ddv.strict_port, "nobody.localhost")
            self.assertEqual(status, 421)
            answer = raw_request(ddv.http_port, b"\x00\x01garbage\r\n\r\n")
            self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer)
            with socket.create_connection(("127.0.0.1", ddv.tcp_port),
                                          timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
                self.assertIn(b"site=b", s.recv(65536))
        # TLS: routed by SNI (site a's handoffs grow by one per hello; its
        # ddv_hello has no certificate, so the handshake itself fails
        # there), and an unknown SNI is refused by the master with an
        # alert, never handed off.
        def handed(site):
            return sum(w["handed_off"] for s in ddv.status()["sites"]
                       if s["id"] == site for w in s["workers"])
        before = handed("a")
        for _ in range(20):
            harness.tls_hello(ddv.tls_port, "a.localhost")
            self.assertIsNotNone(harness.tls_hello(ddv.tls_port, "nobody.tls"))
        self.assertEqual(handed("a") - before, 20)
        # Idle peers: 408 at the deadline, from whichever loop held them.
        idle = [socket.create_connection(("127.0.0.1", ddv.http_port))
                for _ in range(20)]
        started = time.monotonic()
        for s in idle:
            s.settimeout(5)
            s.sendall(b"GET / HTTP/1.1\r\n")  # never finished
        for s in idle:
            answer = s.recv(4096)
            self.assertTrue(answer.startswith(b"HTTP/1.1 408"), answer)
            s.close()
        self.assertLess(time.monotonic() - started, 3.0)
        # Peers that send nothing at all: whichever loop holds them, they get
        # their 408 at the deadline, which counts TCP_DEFER_ACCEPT's hold.
        silent = [socket.create_connection(("127.0.0.1", ddv.http_port))
                  for _ in range(20)]
        started = time.monotonic()
        for s in silent:
            s.settimeout(5)
            answer = s.recv(4096)
            self.assertTrue(answer.startswith(b"HTTP/1.1 408"), answer)
            self.assertEqual(s.recv(4096), b"", "a FIN follows the 408")
        self.assertLess(time.monotonic() - started, 3.0)
        # With nothing to drain, no loop lingers on them (a lingering close
        # would hold each for --linger, 1 s, as the clients keep theirs
        # open): both tables are empty well before that.
        time.sleep(0.3)
        self.assertEqual([s["connections"] for s in ddv.status()["shards"]],
                         [0, 0])
        for s in silent:
            s.close()
        one = shard(ddv.status(), 1)
        self.assertGreater(one["forwarded"], 0, one)
        self.assertGreater(one["handed_off"], 0, one)

    def test_a_forwarded_connection_keeps_its_deadline(self):
        # A peer silent through TCP_DEFER_ACCEPT's 1 s hold, then a head
        # larger than a peek buffer: a shard forwards it to the primary
        # (which grows buffers), after counting the hold against the
        # deadline. The 408 must come at peek_timeout from connect, the
        # hold counted once, from either loop: 2.5 s here, not 3.5.
        ddv = harness.Ddv(extra_flags=SHARDS + ["--peek_buffer_size=1024"],
                          peek_timeout_ms=2500)
        self.addCleanup(ddv.stop)
        before = shard(ddv.status(), 1)["forwarded"]
        peers = []
        for _ in range(16):
            s = socket.create_connection(("127.0.0.1", ddv.http_port))
            s.settimeout(6)
            self.addCleanup(s.close)
            peers.append((s, time.monotonic()))
        time.sleep(1.5)  # past the hold: each was accepted without a byte
        head = (b"GET / HTTP/1.1\r\nHost: a.localhost\r\nX-Pad: "
                + b"p" * 2000)  # never finished
        for s, _ in peers:
            s.sendall(head)
        for s, connected in peers:
            answer = s.recv(4096)
            waited = time.monotonic() - connected
            self.assertTrue(answer.startswith(b"HTTP/1.1 408"), answer)
            self.assertGreater(waited, 2.2)
            self.assertLess(waited, 3.1, "the hold was not counted")
        if LOOPS > 1:
            self.assertGreater(shard(ddv.status(), 1)["forwarded"], before)

    def test_reload_under_load(self):
        ddv = self.start()
        loads = self.start_loads(ddv, rate=800, duration=6)
        time.sleep(1)
        # b gets a second worker and a new name; a's wildcard goes.
        with open(ddv.config_path) as f:
            text = f.read()
        text = text.replace('hosts = ["a.localhost", "*.a.localhost"]',
                            'hosts = ["a.localhost"]')
        text = text.replace('hosts = ["b.localhost"]',
                            'hosts = ["b.localhost", "new.localhost"]')
        text = text.replace('--site=b", "--ring_entries=256"]\nprocesses = 1',
                            '--site=b", "--ring_entries=256"]\nprocesses = 2')
        ddv.write_text(text)
        self.assertIn("ok", harness.control(ddv.control_socket, "reload",
                                            timeout=20))
        time.sleep(1)
        ddv.write_text(text.replace("processes = 2", "processes = 1"))
        self.assertIn("ok", harness.control(ddv.control_socket, "reload",
                                            timeout=20))
        self.assertNoLoadFailed(loads)
        status, body, _ = http_get(ddv.http_port, "new.localhost")
        self.assertEqual((status, fields(body)["site"]), (200, "b"))
        status, body, _ = http_get(ddv.http_port, "x.a.localhost")
        self.assertEqual(fields(body)["site"], "fallback")

    def test_graceful_stop_drains_the_shards(self):
        ddv = self.start()
        load = pyload.start_load(ddv.http_port, ["a.localhost"],
                                 "new_connection", connections=8, rate=800,
                                 duration=3)
        self.addCleanup(load.kill)
        time.sleep(1.5)
        stopped_at = time.monotonic()
        ddv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(ddv.proc.wait(timeout=20), 0, ddv.read_log())
        result = load.result()
        print(result.summary(), file=sys.stderr)
        # Every request sent before the stop was answered. After it, a
        # master without a watchdog closes its listeners: connects are
        # refused, and what waited in a backlog is reset (as with one
        # loop). Never a timeout, a bad answer or a reset before the stop.
        self.assertGreater(result["ok"], 800, result.summary())
        for kind, count in result["failures"].items():
            if kind not in ("connect", "reset"):
                self.assertEqual(count, 0, result.summary())
        for event in result["events"]:
            self.assertGreaterEqual(event["t"], stopped_at, event)
            self.assertEqual(event["reqs"], 0, event)

    def test_a_restarted_master_routes_from_its_shard_at_once(self):
        # After a master kill the workers are adopted ready, so the first
        # snapshot the new master's shard gets already names them: the shard
        # must send to them itself, not forward everything to the primary.
        ddv = self.start(watchdog=True)
        kill_master(self, ddv)
        load = pyload.start_load(ddv.http_port, ["a.localhost", "b.localhost"],
                                 "new_connection", connections=8, rate=800,
                                 duration=3)
        self.addCleanup(load.kill)
        result = load.result()
        print(result.summary(), file=sys.stderr)
        self.assertEqual(result.failed(), 0, result.summary())
        one = shard(ddv.status(), 1)
        print(one, file=sys.stderr)
        self.assertGreater(one["accepted"], 100, one)
        self.assertGreater(one["handed_off"], 0.9 * one["accepted"], one)

    def test_a_failed_shard_is_replaced_under_load(self):
        if SHARDS[0] == "--shards=1":
            self.skipTest("needs a shard")
        ddv = harness.Ddv(extra_flags=SHARDS + ["--shard_fault_after=400"])
        self.addCleanup(ddv.stop)
        pid = ddv.status()["pid"]

        def master_fds():
            # Sockets, rings, eventfds, pidfds: not files (glog opens its
            # WARNING and ERROR files at their first line).
            fds = f"/proc/{pid}/fd"
            return sum(not os.readlink(f"{fds}/{fd}").startswith("/")
                       for fd in os.listdir(fds))

        idle_fds = master_fds()
        self.assertNoLoadFailed(self.start_loads(ddv, rate=1000, duration=4),
                                min_ok=1000)
        log = harness.full_log(ddv)
        self.assertEqual(log.count("master shard 1 stopped: injected fault"),
                         1, log)
        metrics = harness.control(ddv.control_socket, "metrics")
        self.assertIn("ddv_shards_replaced_total 1\n", metrics)
        # The replacement took connections and handed them off itself (its
        # figures start at zero).
        one = shard(ddv.status(), 1)
        self.assertGreater(one["accepted"], 100, one)
        self.assertGreater(one["handed_off"], 0.9 * one["accepted"], one)
        # Nothing the failed loop held stayed open: the master's fds come
        # back to what it had idle (the new ring and wake-up replace the
        # old ones).
        self.assertTrue(wait_for(lambda: master_fds() == idle_fds, timeout=5),
                        f"master fds {master_fds()}, idle {idle_fds}")
        # And it still answers.
        status, body, _ = http_get(ddv.http_port, "b.localhost")
        self.assertEqual((status, fields(body)["site"]), (200, "b"))

    def assertGroups(self, ddv, ports):
        for listener in ddv.status()["listeners"]:
            self.assertEqual(listener["sockets"], LOOPS, listener)
        for port in ports:
            self.assertEqual(listening_sockets(port), LOOPS, port)

    def test_each_loop_accepts_on_a_socket_of_its_own(self):
        ddv = self.start(watchdog=True)
        ports = [ddv.http_port, ddv.strict_port, ddv.tls_port, ddv.tcp_port]
        self.assertGroups(ddv, ports)
        # Only the master's user with SO_REUSEPORT could join the group; a
        # plain bind (another server, a second ddv) is refused as ever.
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with self.assertRaises(OSError) as refused:
                other.bind(("127.0.0.1", ddv.http_port))
            self.assertEqual(refused.exception.errno, 98)  # EADDRINUSE

        loads = self.start_loads(ddv, rate=1000, duration=9)
        time.sleep(2)
        # The kernel hashes each connection to one socket: every loop gets
        # about its share, none most of them.
        shares = loop_shares(ddv.status())
        print("accepted by loop:", shares, file=sys.stderr)
        for share in shares:
            self.assertGreater(share, 0.5 * sum(shares) / LOOPS, shares)
        # A master killed under load: the next one takes the same group
        # (--listen_fds names each socket) and binds nothing more.
        killed = kill_master(self, ddv)
        kill_window = (killed, time.monotonic() + 0.5)
        self.assertGroups(ddv, ports)
        time.sleep(1)
        # An upgrade: the watchdog's saved state carries every socket.
        old = ddv.status()["pid"]
        upgrade = subprocess.run(
            [harness.runfile("src/ddvctl"),
             f"--control_socket={ddv.control_socket}", "upgrade"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(upgrade.returncode, 0, upgrade.stderr)
        self.assertRegex(upgrade.stdout, rf"ok: master {old} replaced by \d+")
        self.assertGroups(ddv, ports)
        # The binary check may outlast the loads: the new master's shares
        # from a load of its own.
        probe = pyload.start_load(ddv.http_port, ["a.localhost"],
                                  "new_connection", connections=8, rate=800,
                                  duration=2)
        self.addCleanup(probe.kill)
        self.assertNoLoadFailed([probe], min_ok=1000)
        shares = loop_shares(ddv.status())
        print("accepted by loop after the upgrade:", shares, file=sys.stderr)
        for share in shares:
            self.assertGreater(share, 0.5 * sum(shares) / LOOPS, shares)
        new_connection, keepalive = [load.result() for load in loads]
        for result in (new_connection, keepalive):
            print(result.summary(), file=sys.stderr)
            self.assertGreater(result["ok"], 3000, result.summary())
        self.assertEqual(keepalive.failed(), 0, keepalive.summary())
        # What the killed master held undecided is reset (docs/lifecycle.md,
        # "What is lost"); nothing else, and nothing in the upgrade.
        self.assertEqual(new_connection.failed(),
                         new_connection["failures"].get("reset", 0),
                         new_connection.summary())
        for event in new_connection["events"]:
            self.assertTrue(kill_window[0] <= event["t"] <= kill_window[1],
                            (event, kill_window))

    def test_a_listener_a_reload_adds_is_a_group_drained_whole(self):
        ddv = self.start(watchdog=True)
        extra = harness.free_port()
        with open(ddv.config_path) as f:
            text = f.read()
        listener = (f'[[listener]]\nname = "extra"\n'
                    f'address = "127.0.0.1:{extra}"\nprotocol = "http"\n'
                    f'default_site = "b"\n\n')
        added = text.replace('[[site]]\nid = "a"',
                             listener + '[[site]]\nid = "a"', 1)
        ddv.write_text(added)
        self.assertIn("ok", harness.control(ddv.control_socket, "reload",
                                            timeout=20))
        self.assertEqual(listening_sockets(extra), LOOPS)
        load = pyload.start_load(extra, ["b.localhost"], "new_connection",
                                 connections=8, rate=800, duration=2)
        self.addCleanup(load.kill)
        result = load.result()
        print(result.summary(), file=sys.stderr)
        self.assertEqual(result.failed(), 0, result.summary())
        self.assertGreater(result["ok"], 800, result.summary())
        # Removed: every socket of the group is drained and closed, and
        # the watchdog holds none of them either.
        ddv.write_text(text)
        self.assertIn("ok", harness.control(ddv.control_socket, "reload",
                                            timeout=20))
        self.assertTrue(wait_for(lambda: listening_sockets(extra) == 0,
                                 timeout=10), listening_sockets(extra))
        self.assertGroups(ddv, [ddv.http_port])

    def test_a_shard_that_cannot_be_replaced_leaves_the_groups(self):
        if LOOPS < 2:
            self.skipTest("needs a shard")
        # Shard 1 fails after 400 accepts and its replacement cannot start:
        # its socket of each group stops listening (what waited in it is
        # reset), the kernel hashes over the others, and nothing hangs.
        ddv = harness.Ddv(extra_flags=SHARDS + ["--shard_fault_after=400",
                                                "--shard_fault=lost"],
                          watchdog=True)
        self.addCleanup(ddv.stop)
        ports = [ddv.http_port, ddv.strict_port, ddv.tls_port, ddv.tcp_port]
        new_connection, keepalive = self.start_loads(ddv, rate=800,
                                                     duration=4)
        results = [load.result() for load in (new_connection, keepalive)]
        for result in results:
            print(result.summary(), file=sys.stderr)
            self.assertGreater(result["ok"], 2500, result.summary())
            # Resets only: connections that waited in the lost socket.
            self.assertEqual(result.failed(),
                             result["failures"].get("reset", 0),
                             result.summary())
            self.assertLess(result.failed(), 50, result.summary())
        log = harness.full_log(ddv)
        self.assertIn("master shard 1 could not be replaced", log)
        self.assertIn("shard 1's socket left the group", log)
        for port in ports:
            self.assertEqual(listening_sockets(port), LOOPS - 1, port)
        self.assertEqual({l["sockets"] for l in ddv.status()["listeners"]},
                         {LOOPS - 1})
        # The watchdog dropped them too: after a master kill the next one
        # finds LOOPS - 1 sockets and grows each group back to LOOPS.
        self.assertNotIn(1, [s["id"] for s in ddv.status()["shards"]])
        # Every request on a new connection is answered, none hangs.
        probe = pyload.start_load(ddv.http_port, ["a.localhost"],
                                  "new_connection", connections=8, rate=800,
                                  duration=2)
        self.addCleanup(probe.kill)
        self.assertNoLoadFailed([probe], min_ok=1000)
        # The watchdog dropped them too: after a master kill the next one
        # finds LOOPS - 1 sockets and grows each group back to LOOPS.
        kill_master(self, ddv)
        self.assertGroups(ddv, ports)

    def test_bad_value_is_refused(self):
        master = harness.runfile("src/ddv_master")
        for value in ("0", "65", "many"):
            run = subprocess.run([master, f"--shards={value}",
                                  "--watchdog=false"],
                                 capture_output=True, text=True, timeout=20)
            self.assertEqual(run.returncode, 2, run.stderr)
            self.assertIn("--shards must be 1..64 or auto", run.stderr)


if __name__ == "__main__":
    unittest.main()
