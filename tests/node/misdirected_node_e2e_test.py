"""421 Misdirected Request in unmodified Node apps, through a real
ddv_master: the master adds the ddv-worker package's preload to NODE_OPTIONS
(--node_preload) and sends each Node worker its site view; an http, express
or https app then refuses a request for another site's host before its own
handlers run, except a connection's first request naming the host the
master routed it by (docs/isolation.md, docs/node.md)."""
import json
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "master"))
import harness  # noqa: E402
from harness import HttpConnection, fields, wait_for  # noqa: E402
from node_e2e_test import NODE, NODE_MODULES, PACKAGE, node_config  # noqa: E402
from tests.testing import proxy_header as pp  # noqa: E402


def sites(lax_hosts=("lax.localhost",)):
    """A ddv_hello site b, and a Node site with strict_host = false whose
    env sets NODE_OPTIONS of its own (the master appends the preload)."""
    def render(d):
        hosts = ", ".join(f'"{h}"' for h in lax_hosts)
        app = harness.runfile("tests/node/apps/http_app.js")
        return f"""
[[site]]
id = "b"
command = ["{d.hello}", "--site=b", "--ring_entries=256"]
hosts = ["b.localhost"]
log_all = "{d.dir}/b.log"

[[site]]
id = "lax"
runtime = "node"
command = ["{NODE}", "{app}"]
hosts = [{hosts}]
strict_host = false
log_all = "{d.dir}/lax.log"
env = {{ NODE_PATH = "{NODE_MODULES}", NODE_OPTIONS = "--max-http-header-size=20000" }}
"""
    return render


def config(n_hosts=("n.localhost",)):
    apps = [("n", "http_app.js", 2, list(n_hosts), {}),
            ("e", "express_app.js", 1, ["e.localhost"], {}),
            ("s", "https_app.js", 1, ["s.localhost"], {})]

    def render(d):
        return node_config(apps)(d) + sites()(d)
    return render


def node_options(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        for item in f.read().split(b"\0"):
            if item.startswith(b"NODE_OPTIONS="):
                return item.split(b"=", 1)[1].decode()
    return None


class NodeMisdirectedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ddv = harness.Ddv(config_text=config())

    @classmethod
    def tearDownClass(cls):
        cls.ddv.stop()

    def connect(self, port=None, sni=None):
        c = HttpConnection(port or self.ddv.http_port, sni)
        self.addCleanup(c.close)
        return c

    def assert_misdirected(self, conn, host):
        status, headers, _ = conn.ask(host)
        self.assertEqual((status, headers.get("connection")), (421, "close"))
        self.assertTrue(conn.closed_by_peer())

    def test_preload_is_in_node_options(self):
        preload = harness.node_preload()
        self.assertTrue(preload)
        for pid in self.ddv.worker_pids("n"):
            self.assertEqual(node_options(pid), f'--require "{preload}"')
        self.assertEqual(node_options(self.ddv.worker_pids("lax")[0]),
                         f'--max-http-header-size=20000 --require "{preload}"')

    def test_unmodified_http_app(self):
        c = self.connect()
        status, _, body = c.ask("n.localhost")
        self.assertEqual((status, fields(body)["site"]), (200, "n"))
        self.assertEqual(fields(c.ask("N.LOCALHOST:1")[2])["site"], "n")
        self.assert_misdirected(c, "b.localhost")
        # Pipelined: the second is refused, the third never answered.
        c = self.connect()
        c.send(b"GET / HTTP/1.1\r\nHost: n.localhost\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: e.localhost\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: n.localhost\r\n\r\n")
        self.assertEqual(c.read()[0], 200)
        status, headers, _ = c.read()
        self.assertEqual((status, headers.get("connection")), (421, "close"))
        self.assertTrue(c.closed_by_peer())

    def test_unmodified_express_app(self):
        c = self.connect()
        status, _, body = c.ask("e.localhost", target="/hello/ddv")
        self.assertEqual((status, json.loads(body)["site"]), (200, "e"))
        self.assert_misdirected(c, "n.localhost")

    def test_unmodified_https_app_host_other_than_sni(self):
        c = self.connect(self.ddv.tls_port, sni="s.localhost")
        status, _, body = c.ask("s.localhost")
        self.assertEqual(status, 200, body)
        self.assertIn("sni=s.localhost", body)
        self.assert_misdirected(c, "n.localhost")

    def test_strict_host_false_node_site(self):
        c = self.connect()
        self.assertEqual(fields(c.ask("lax.localhost")[2])["site"], "lax")
        self.assertEqual(fields(c.ask("b.localhost")[2])["site"], "lax")


class NodeProxyTest(unittest.TestCase):
    """Behind an L4 tier the ddv-worker package makes a socket's
    localAddress the one the client connected to at the balancer; the
    guard still finds the listener ddv accepted it on."""

    def test_listener_found_behind_a_proxy_header(self):
        lb = harness.free_port()
        listener = f"""
[[listener]]
name = "lb"
address = "127.0.0.1:{lb}"
protocol = "http"
proxy_protocol = true
"""
        ddv = harness.Ddv(config_text=lambda d: node_config(
            [("p", "ddv_worker_app.js", 1, ["p.localhost"], {}),
             ("n", "http_app.js", 1, ["n.localhost"], {})])(d) + listener)
        self.addCleanup(ddv.stop)
        for first, other, site in (("p.localhost", "n.localhost", "p"),
                                   ("n.localhost", "p.localhost", "n")):
            c = HttpConnection(lb)
            self.addCleanup(c.close)
            c.send(pp.v1("203.0.113.9", "192.0.2.1", 4242, 443))
            status, _, body = c.ask(first)
            self.assertEqual(status, 200, body)
            self.assertIn(f'"{site}"' if site == "p" else "site=n", body)
            status, headers, _ = c.ask(other)
            self.assertEqual((status, headers.get("connection")),
                             (421, "close"), site)


def reload_config(n_hosts):
    """One Node site without certificates: a reload re-reads a site's
    certificates by SIGHUP, which an app without a SIGHUP handler does not
    survive (a separate matter, docs/isolation.md)."""
    def render(d):
        hosts = ", ".join(f'"{h}"' for h in n_hosts)
        app = harness.runfile("tests/node/apps/http_app.js")
        return f"""
[master]
control_socket = "{d.control_socket}"

[[listener]]
name = "http"
address = "127.0.0.1:{d.http_port}"
protocol = "http"

[[site]]
id = "n"
runtime = "node"
command = ["{NODE}", "{app}"]
processes = 2
hosts = [{hosts}]
log_all = "{d.dir}/n.log"
"""
    return render


class NodeReloadTest(unittest.TestCase):
    def test_reload_reaches_running_node_workers(self):
        ddv = harness.Ddv(
            config_text=reload_config(("n.localhost", "n2.localhost")))
        self.addCleanup(ddv.stop)
        c = HttpConnection(ddv.http_port)
        self.addCleanup(c.close)
        self.assertEqual(fields(c.ask("n2.localhost")[2])["site"], "n")
        pids = ddv.worker_pids("n")
        ddv.write_text(reload_config(("n.localhost",))(ddv))
        reply = harness.control(ddv.control_socket, "reload")
        self.assertTrue(reply.startswith("ok"), reply)
        # The view is a line on the cluster channel: give it a moment.
        time.sleep(0.3)
        self.assertEqual(fields(c.ask("n.localhost")[2])["site"], "n")
        status, headers, _ = c.ask("n2.localhost")
        self.assertEqual((status, headers.get("connection")), (421, "close"))
        self.assertEqual(ddv.worker_pids("n"), pids)  # not restarted


def move_config(moved):
    """Node sites n (an unmodified http app) and p (on the ddv-worker
    package), each with a name that a reload (`moved`) gives ddv_hello's
    site b. No certificates: see reload_config."""
    def render(d):
        stock = harness.runfile("tests/node/apps/http_app.js")
        package_app = harness.runfile("tests/node/apps/ddv_worker_app.js")
        n_hosts = '"n.localhost"' + ("" if moved else ', "move-n.localhost"')
        p_hosts = '"p.localhost"' + ("" if moved else ', "move-p.localhost"')
        b_hosts = '"b.localhost"' + (
            ', "move-n.localhost", "move-p.localhost"' if moved else "")
        return f"""
[master]
control_socket = "{d.control_socket}"

[[listener]]
name = "http"
address = "127.0.0.1:{d.http_port}"
protocol = "http"

[[site]]
id = "n"
runtime = "node"
command = ["{NODE}", "{stock}"]
hosts = [{n_hosts}]
log_all = "{d.dir}/n.log"

[[site]]
id = "p"
runtime = "node"
command = ["{NODE}", "{package_app}"]
hosts = [{p_hosts}]
log_all = "{d.dir}/p.log"
env = {{ NODE_PATH = "{NODE_MODULES}", DDV_WORKER_PACKAGE = "{PACKAGE}" }}

[[site]]
id = "b"
command = ["{d.hello}", "--site=b", "--ring_entries=256"]
hosts = [{b_hosts}]
log_all = "{d.dir}/b.log"
"""
    return render


def answered_by(body):
    """The site in http_app.js's "site=n ..." or ddv_worker_app.js's JSON;
    None for anything else (a refusal)."""
    if body.startswith("{"):
        return json.loads(body).get("site")
    match = re.search(r"(?:^| )site=(\S+)", body)
    return match.group(1) if match else None


class NodeFirstRequestTest(unittest.TestCase):
    """The first request names what the master routed the connection by
    (docs/isolation.md): a reload moves move-n.localhost and
    move-p.localhost to b while a connection routed by each waits unread in
    its Node worker. The race, made certain: each worker is stopped
    (SIGSTOP) from before the newconn message until the new view's lines
    are in its channel behind it, so the preload's guard holds the new view
    before the app's server reads a byte. Of the two requests pipelined on
    the connection the first is answered (the newconn message named its
    host) and the second refused."""

    MOVERS = (("n", "move-n.localhost"), ("p", "move-p.localhost"))

    def worker(self, ddv, site_id):
        for s in ddv.status()["sites"]:
            if s["id"] == site_id:
                (w,) = s["workers"]
                return w
        raise KeyError(site_id)

    def test_first_request_routed_before_a_move_is_answered(self):
        ddv = harness.Ddv(config_text=move_config(moved=False))
        self.addCleanup(ddv.stop)
        pids = [self.worker(ddv, site_id)["pid"] for site_id, _ in self.MOVERS]
        conns = []
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            for site_id, host in self.MOVERS:
                unread = self.worker(ddv, site_id)["unread_bytes"]
                c = HttpConnection(ddv.http_port)
                self.addCleanup(c.close)
                conns.append(c)
                c.send(2 * f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"
                       .encode())
                # The newconn line (with the socket) is in the channel.
                self.assertTrue(wait_for(
                    lambda: self.worker(ddv, site_id)["unread_bytes"] > unread),
                    ddv.read_log())
            unread = [self.worker(ddv, s)["unread_bytes"]
                      for s, _ in self.MOVERS]
            ddv.write_text(move_config(moved=True)(ddv))
            reply = harness.control(ddv.control_socket, "reload")
            self.assertTrue(reply.startswith("ok"), reply)
            # The new views' lines are queued behind the connections.
            self.assertTrue(wait_for(lambda: all(
                self.worker(ddv, s)["unread_bytes"] > before
                for (s, _), before in zip(self.MOVERS, unread))))
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        for (site_id, host), c in zip(self.MOVERS, conns):
            with self.subTest(site=site_id):
                status, _, body = c.read()
                self.assertEqual((status, answered_by(body)), (200, site_id),
                                 body)
                status, headers, _ = c.read()
                self.assertEqual((status, headers.get("connection")),
                                 (421, "close"))
                fresh = HttpConnection(ddv.http_port)
                self.addCleanup(fresh.close)
                status, _, body = fresh.ask(host)
                self.assertEqual((status, fields(body)["site"]), (200, "b"))


if __name__ == "__main__":
    unittest.main()
