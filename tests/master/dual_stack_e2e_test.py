"""IPv4 and IPv6 clients end to end (real ddv_master, its watchdog, real
ddv_hello workers): `[::]:port` with v6only = false serves 127.0.0.1 and
::1 and shows each client as what it is; v6only = true (the default) lets
an IPv4 listener share the port; proxy_protocol_from matches IPv4 clients
of a dual-stack listener as IPv4; and reloads that change v6only, or move
IPv4 clients from a dual-stack socket to their own, rebind under load
without a failed request."""
import socket
import subprocess
import unittest

import harness
from harness import fields, free_port, parse_response, recv_all, wait_for
from pyddv.load import start_load
from tests.testing import proxy_header as pp


def free_dual_port():
    """A port free on both 127.0.0.1 and ::1 a moment ago."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on both families")


def config(ddv, listeners):
    """`listeners`: [(name, address, extra TOML lines, default site)]."""
    text = f"""
[master]
control_socket = "{ddv.control_socket}"
peek_timeout_ms = 3000
"""
    for name, address, extra, default_site in listeners:
        text += f"""
[[listener]]
name = "{name}"
address = "{address}"
protocol = "http"
default_site = "{default_site}"
{extra}
"""
    for site, processes in (("a", 2), ("b", 1)):
        text += f"""
[[site]]
id = "{site}"
command = ["{ddv.hello}", "--site={site}", "--ring_entries=256"]
processes = {processes}
hosts = ["{site}.localhost"]
"""
    return text


def get(address, port, data=None):
    """One request on a new connection to `address`; (status, body)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(10)
        s.connect((address, port))
        s.sendall(data or b"GET / HTTP/1.1\r\nHost: x.localhost\r\n"
                          b"Connection: close\r\n\r\n")
        return parse_response(recv_all(s))


def refused(address, port):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(2)
        try:
            s.connect((address, port))
            return False
        except ConnectionRefusedError:
            return True


class DualStackTest(unittest.TestCase):
    def tearDown(self):
        if getattr(self, "ddv", None) is not None:
            self.ddv.stop()

    def start(self, listeners, watchdog=False):
        self.listeners = listeners
        self.ddv = harness.Ddv(watchdog=watchdog, extra_flags=["--log_dir="],
                               config_text=lambda d: config(d, listeners))

    def reload(self, listeners):
        self.ddv.write_text(config(self.ddv, listeners))
        return subprocess.run(
            [harness.runfile("src/ddvctl"),
             f"--control_socket={self.ddv.control_socket}", "reload"],
            capture_output=True, text=True, timeout=30)

    def test_dual_stack_listener_serves_both_families(self):
        port = free_dual_port()
        self.start([("web", f"[::]:{port}", "v6only = false", "a")])
        status, body = get("127.0.0.1", port)
        self.assertEqual(status, 200, body)
        # A mapped IPv4 peer (::ffff:127.0.0.1) shows as IPv4.
        self.assertRegex(fields(body)["peer"], r"^127\.0\.0\.1:\d+$")
        status, body = get("::1", port)
        self.assertEqual(status, 200, body)
        self.assertRegex(fields(body)["peer"], r"^\[::1\]:\d+$")

    def test_v6only_listener_shares_its_port_with_an_ipv4_one(self):
        port = free_dual_port()
        self.start([("v6", f"[::]:{port}", "", "a"),
                    ("v4", f"0.0.0.0:{port}", "", "b")])
        status, body = get("::1", port)
        self.assertEqual((status, fields(body)["site"]), (200, "a"), body)
        status, body = get("127.0.0.1", port)
        self.assertEqual((status, fields(body)["site"]), (200, "b"), body)
        self.assertRegex(fields(body)["peer"], r"^127\.0\.0\.1:\d+$")

    def test_trusted_networks_match_mapped_ipv4_clients(self):
        port = free_dual_port()
        self.start([("lb", f"[::]:{port}",
                     'v6only = false\nproxy_protocol = true\n'
                     'proxy_protocol_from = ["127.0.0.0/8"]', "a")])
        header = pp.v1("::ffff:203.0.113.5", "::ffff:192.0.2.1", 7, 80)
        request = (b"GET / HTTP/1.1\r\nHost: a.localhost\r\n"
                   b"Connection: close\r\n\r\n")
        status, body = get("127.0.0.1", port, header + request)
        self.assertEqual(status, 200, body)
        self.assertEqual(fields(body)["peer"], "203.0.113.5:7")
        # ::1 is not in 127.0.0.0/8: reset unread.
        self.assertEqual(get("::1", port, header + request), (None, ""))
        self.assertEqual(harness.control_counters(self.ddv.control_socket)
                         ["ddv_proxy_untrusted_total"], 1)

    def load(self, address, port):
        # Keep-alive connections that are replaced every few requests, so
        # new connections reach the listeners all through the reload.
        return start_load(port, ["a.localhost"], mode="keepalive",
                          connections=6, duration=60, rate=400,
                          requests_per_connection=10, address=address)

    def finish(self, loads):
        results = []
        for load in loads:
            load.stop()
            results.append(load.result(timeout=30))
        for result in results:
            self.assertEqual(result.failed(), 0, result.summary())
            self.assertGreater(result["ok"], 50, result.summary())
        return results

    def test_reloads_that_change_v6only_rebind_under_load(self):
        port = free_dual_port()
        # Split: IPv6 on a v6-only socket, IPv4 on its own listener.
        split = [("web", f"[::]:{port}", "", "a"),
                 ("v4", f"0.0.0.0:{port}", "", "b")]
        # Joined: one dual-stack socket for both.
        joined = [("web", f"[::]:{port}", "v6only = false", "a")]
        self.start(split, watchdog=True)
        # Clients of both families keep coming while the sockets are
        # replaced by ones bound beside them, three times each way.
        loads = [self.load("::1", port), self.load("127.0.0.1", port)]
        for _ in range(3):
            for listeners in (joined, split):
                wait_for(lambda: False, timeout=0.5)
                result = self.reload(listeners)
                self.assertEqual(result.returncode, 0, result.stderr)
        wait_for(lambda: False, timeout=0.5)
        self.finish(loads)
        status, body = get("127.0.0.1", port)
        self.assertEqual((status, fields(body)["site"]), (200, "b"), body)
        status, body = get("::1", port)
        self.assertEqual((status, fields(body)["site"]), (200, "a"), body)
        log = harness.full_log(self.ddv)
        self.assertEqual(log.count(f"bound listener \"web\" to [::]:{port}"),
                         6, log[-3000:])
        self.assertEqual(log.count("Address already in use"), 0, log[-3000:])
        self.assertEqual(
            [(l["name"], l["address"], l.get("v6only"))
             for l in self.ddv.status()["listeners"]],
            [("web", f"[::]:{port}", True), ("v4", f"0.0.0.0:{port}", None)])

    def test_a_failed_rebind_changes_nothing(self):
        port, other = free_dual_port(), free_dual_port()
        v6only = [("web", f"[::]:{port}", "", "a")]
        self.start(v6only, watchdog=True)
        self.assertTrue(refused("127.0.0.1", port))
        # Someone else holds IPv4 `port`: the dual-stack socket that would
        # replace "web" cannot bind, and the reload fails with the bind's
        # reason, before anything changed (the other new listener is not
        # kept either).
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", port))
            squatter.listen(1)
            result = self.reload(
                [("web", f"[::]:{port}", "v6only = false", "a"),
                 ("more", f"[::]:{other}", "", "a")])
        self.assertEqual(result.returncode, 1)
        self.assertIn("Address already in use", result.stderr)
        self.assertEqual(get("::1", port)[0], 200)
        self.assertTrue(refused("::1", other))
        self.assertEqual([l.get("v6only")
                          for l in self.ddv.status()["listeners"]], [True])
        # The old socket no longer lets anyone bind beside it.
        with socket.socket(socket.AF_INET6) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            with self.assertRaises(OSError):
                s.bind(("::", port))


if __name__ == "__main__":
    unittest.main()
