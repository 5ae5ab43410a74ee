"""Listeners change live, end to end (real ddv_master with its watchdog and
ddv_hello workers): a reload adds a listener (it answers), removes one (new
connections are refused, the ones already waiting in its backlog and those
accepted on it are served), re-addresses one; a bind error fails the reload
with its reason and changes nothing; a master killed after a listener
change is followed by one serving the new set with the same workers; and
five reloads under load, each changing hosts, process counts and a
listener, fail no request."""
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import fields, free_port, full_log, http_get, wait_for

FULL = b"GET / HTTP/1.1\r\nHost: a.localhost\r\nConnection: close\r\n\r\n"
# An unfinished head: the master keeps peeking (a slot taken) until the
# rest comes.
PARTIAL = b"GET / HTTP/1.1\r\nHost: a.localhost\r\n"


def config(ddv, listeners, a_processes=2, b_hosts=("b.localhost",),
           peek_timeout_ms=3000):
    """`listeners`: [(name, port)] (http) or [(name, port, protocol)];
    every site serves every listener, `fallback` is the default."""
    text = f"""
[master]
control_socket = "{ddv.control_socket}"
peek_timeout_ms = {peek_timeout_ms}
"""
    for name, port, *protocol in listeners:
        text += f"""
[[listener]]
name = "{name}"
address = "127.0.0.1:{port}"
protocol = "{protocol[0] if protocol else 'http'}"
"""
    hosts = ", ".join(f'"{h}"' for h in b_hosts)
    text += f"""
[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a"]
processes = {a_processes}
hosts = ["a.localhost"]

[[site]]
id = "b"
command = ["{ddv.hello}", "--site=b"]
hosts = [{hosts}]

[[site]]
id = "fallback"
command = ["{ddv.hello}", "--site=fallback"]
default = true
"""
    return text


def start(listeners, watchdog=True, extra_flags=(), **kw):
    return harness.Ddv(watchdog=watchdog,
                       extra_flags=["--log_dir=", *extra_flags],
                       config_text=lambda d: config(d, listeners, **kw))


def ddvctl(ddv, *args):
    return subprocess.run(
        [harness.runfile("src/ddvctl"),
         f"--control_socket={ddv.control_socket}", *args],
        capture_output=True, text=True, timeout=30)


def reload(ddv, listeners, **kw):
    ddv.write_text(config(ddv, listeners, **kw))
    return ddvctl(ddv, "reload")


def site_on(port, host="a.localhost"):
    status, body, _ = http_get(port, host, timeout=10)
    return fields(body)["site"] if status == 200 else status


def refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def listener_index(ddv, name):
    for listener in ddv.status()["listeners"]:
        if listener["name"] == name:
            return listener["index"]
    return None


def worker_pids(ddv):
    return sorted(w["pid"] for s in ddv.status()["sites"]
                  for w in s["workers"])


def alive(pid):
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def read_response(sock):
    sock.settimeout(15)
    return harness.parse_response(harness.recv_all(sock))


class ListenersTest(unittest.TestCase):
    def tearDown(self):
        if getattr(self, "ddv", None) is not None:
            self.ddv.stop()

    def test_added_listener_answers_and_removed_one_refuses(self):
        http, old, new = free_port(), free_port(), free_port()
        self.ddv = start([("http", http), ("old", old)])
        self.assertEqual(site_on(old), "a")
        self.assertEqual(listener_index(self.ddv, "http"), 0)

        result = reload(self.ddv, [("http", http), ("new", new)])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(site_on(new), "a")
        self.assertEqual(site_on(new, "b.localhost"), "b")
        self.assertTrue(wait_for(lambda: refused(old), timeout=5))
        self.assertEqual(site_on(http), "a")
        # A listener that goes on keeps its index (workers see it as
        # listener_index); a new one takes the next.
        self.assertEqual(listener_index(self.ddv, "http"), 0)
        self.assertEqual(listener_index(self.ddv, "new"), 2)
        self.assertEqual([l["name"] for l in self.ddv.status()["listeners"]],
                         ["http", "new"])

    def test_removed_listener_serves_its_backlog_and_what_it_accepted(self):
        http, old = free_port(), free_port()
        # Two slots: two unfinished heads fill the table, so what comes next
        # waits in the kernel's backlog.
        self.ddv = start([("http", http), ("old", old)],
                         extra_flags=["--max_connections=2"],
                         peek_timeout_ms=20000)
        held_on_http = socket.create_connection(("127.0.0.1", http))
        held_on_old = socket.create_connection(("127.0.0.1", old))
        held_on_http.sendall(PARTIAL)
        held_on_old.sendall(PARTIAL)
        self.assertTrue(wait_for(lambda: self.ddv.status()["accept_paused"]))
        queued = []
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", old))
            s.sendall(FULL)
            queued.append(s)
        time.sleep(0.2)  # the requests are in, the connections queued

        result = reload(self.ddv, [("http", http)])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(wait_for(lambda: refused(old), timeout=5))
        # At most one was accepted (and held) as the table filled; the rest
        # were taken from the backlog as the listener closed.
        drained = re.search(r'listener "old" \S+ closed; (\d+) connections '
                            r'waiting in its backlog were accepted',
                            full_log(self.ddv))
        self.assertIsNotNone(drained, full_log(self.ddv)[-3000:])
        self.assertGreaterEqual(int(drained.group(1)), 4)

        # The ones accepted on "old" before the reload finish their heads
        # and are routed as "old" routed them.
        for s in (held_on_http, held_on_old):
            s.sendall(b"Connection: close\r\n\r\n")
        for s in [held_on_http, held_on_old] + queued:
            with s:
                status, body = read_response(s)
                self.assertEqual(status, 200, body)
                self.assertEqual(fields(body)["site"], "a")

    def test_re_addressed_listener_moves(self):
        http, before, after = free_port(), free_port(), free_port()
        self.ddv = start([("http", http), ("extra", before)])
        index = listener_index(self.ddv, "extra")
        result = reload(self.ddv, [("http", http), ("extra", after)])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(site_on(after), "a")
        self.assertTrue(wait_for(lambda: refused(before), timeout=5))
        self.assertNotEqual(listener_index(self.ddv, "extra"), index)
        # Moved back: the old address is free again.
        result = reload(self.ddv, [("http", http), ("extra", before)])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(site_on(before), "a")
        self.assertTrue(wait_for(lambda: refused(after), timeout=5))

    def test_protocol_change_keeps_the_socket(self):
        http, extra = free_port(), free_port()
        self.ddv = start([("http", http), ("extra", extra)])
        index = listener_index(self.ddv, "extra")
        self.assertEqual(site_on(extra), "a")
        # An unfinished head accepted as http is still routed as http.
        accepted = socket.create_connection(("127.0.0.1", extra))
        accepted.sendall(PARTIAL)
        time.sleep(0.2)
        result = reload(self.ddv, [("http", http), ("extra", extra, "tcp")])
        self.assertEqual(result.returncode, 0, result.stderr)
        # tcp: nothing is peeked, everything goes to the default site.
        self.assertEqual(site_on(extra), "fallback")
        self.assertNotEqual(listener_index(self.ddv, "extra"), index)
        with accepted:
            accepted.sendall(b"Connection: close\r\n\r\n")
            status, body = read_response(accepted)
            self.assertEqual((status, fields(body)["site"]), (200, "a"))

    def check_bind_error(self, watchdog):
        http, fine, busy = free_port(), free_port(), free_port()
        self.ddv = start([("http", http)], watchdog=watchdog)
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", busy))
        holder.listen(1)
        before = self.ddv.status()["listeners"]
        with holder:
            result = reload(self.ddv, [("http", http), ("fine", fine),
                                       ("busy", busy)])
            self.assertEqual(result.returncode, 1, result.stdout)
            self.assertIn(f'binding listener "busy" to 127.0.0.1:{busy}',
                          result.stderr)
            self.assertIn("Address already in use", result.stderr)
            # Nothing changed: the running listeners serve, the one bound
            # before the failure was closed again, the config is the old.
            self.assertEqual(site_on(http), "a")
            self.assertTrue(wait_for(lambda: refused(fine), timeout=5))
            self.assertEqual(self.ddv.status()["listeners"], before)
        result = ddvctl(self.ddv, "reload")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(site_on(busy), "a")
        self.assertEqual(site_on(fine), "a")

    def test_bind_error_fails_the_reload_under_the_watchdog(self):
        self.check_bind_error(watchdog=True)

    def test_bind_error_fails_the_reload_of_a_master_alone(self):
        self.check_bind_error(watchdog=False)

    def test_master_killed_after_a_change_comes_back_with_the_new_set(self):
        http, old, new = free_port(), free_port(), free_port()
        self.ddv = start([("http", http), ("old", old)])
        result = reload(self.ddv, [("new", new), ("http", http)])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(wait_for(lambda: refused(old), timeout=5))
        workers = worker_pids(self.ddv)
        master = self.ddv.status()["pid"]
        os.kill(master, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: not alive(master), timeout=5))
        # Served by the next master: queued on the watchdog's sockets
        # meanwhile.
        self.assertEqual(site_on(new), "a")
        self.assertEqual(site_on(http), "a")
        self.assertNotEqual(self.ddv.status()["pid"], master)
        self.assertTrue(refused(old))
        self.assertEqual([l["name"] for l in self.ddv.status()["listeners"]],
                         ["new", "http"])
        # The workers outlived the master and were adopted.
        self.assertEqual(worker_pids(self.ddv), workers)
        self.assertNotIn("was not passed on", full_log(self.ddv))

    def test_master_dead_before_its_snapshot_binds_what_the_snapshot_has(self):
        """A master that dies between the watchdog's commit and writing the
        last good config: the next one runs the older snapshot, and binds
        what it has that the watchdog's set lacks."""
        http, old, new = free_port(), free_port(), free_port()
        self.ddv = start([("http", http), ("old", old)])
        snapshot = os.path.join(os.path.dirname(self.ddv.control_socket),
                                "control.last-good.toml")
        with open(snapshot) as f:
            before = f.read()
        result = reload(self.ddv, [("http", http), ("new", new)])
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(snapshot, "w") as f:
            f.write(before)  # as if the master died before writing it
        master = self.ddv.status()["pid"]
        os.kill(master, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: not alive(master), timeout=5))
        # "old" listens again once the next master has bound it (the
        # watchdog did not hold it meanwhile).
        self.assertTrue(wait_for(lambda: not refused(old), timeout=10))
        self.assertEqual(site_on(old), "a")
        self.assertEqual(site_on(http), "a")
        self.assertTrue(wait_for(lambda: refused(new), timeout=5))
        self.assertIn('listener "old" 127.0.0.1:%d was not passed on' % old,
                      full_log(self.ddv))
        # Its start commit made that the watchdog's set: the master after
        # it is passed "old" again.
        master = self.ddv.status()["pid"]
        os.kill(master, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: not alive(master), timeout=5))
        self.assertEqual(site_on(old), "a")
        self.assertEqual(
            full_log(self.ddv).count('listener "old" 127.0.0.1:%d was not '
                                     'passed on' % old), 1)

    def test_five_reloads_under_load_fail_no_request(self):
        http, web = free_port(), free_port()
        stable = [("http", http), ("web", web)]
        self.ddv = start(stable)
        stop = threading.Event()
        lock = threading.Lock()
        counts = {"ok": 0}
        failures = []

        def load(n):
            i = 0
            while not stop.is_set():
                port = (http, web)[i % 2]
                host, site = (("a.localhost", "a"),
                              ("b.localhost", "b"))[(i // 2 + n) % 2]
                i += 1
                try:
                    status, body, _ = http_get(port, host, timeout=10)
                    ok = status == 200 and fields(body)["site"] == site
                    what = f"{port} {host}: {status} {body[:80]!r}"
                except OSError as e:
                    ok, what = False, f"{port} {host}: {e!r}"
                with lock:
                    if ok:
                        counts["ok"] += 1
                    else:
                        failures.append(what)

        threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            previous = None
            for i in range(5):
                time.sleep(0.5)
                extra = (f"x{i}", free_port())
                result = reload(self.ddv, stable + [extra],
                                a_processes=2 + i % 2,
                                b_hosts=("b.localhost", f"c{i}.localhost"))
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(site_on(extra[1]), "a")
                self.assertEqual(site_on(http, f"c{i}.localhost"), "b")
                if previous is not None:
                    self.assertTrue(
                        wait_for(lambda: refused(previous[1]), timeout=5))
                previous = extra
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        print(f"\nunder load: {counts['ok']} requests answered, "
              f"{len(failures)} failed", flush=True)
        self.assertEqual(failures, [])
        self.assertGreater(counts["ok"], 100)
        a = [s for s in self.ddv.status()["sites"] if s["id"] == "a"][0]
        self.assertEqual(len([w for w in a["workers"] if not w["retired"]]),
                         2 + 4 % 2)


if __name__ == "__main__":
    unittest.main()
