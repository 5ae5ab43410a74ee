"""Node.js sites through a real ddv_master: stock `node` processes as
cluster workers (runtime = "node"), real clients on loopback. Apps under
tests/node/apps/ are unmodified (they call server.listen(PORT)) except
ddv_worker_app.js, written against the ddv-worker package."""
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "master"))
import harness  # noqa: E402
from harness import fields, http_get, runfile, wait_for  # noqa: E402
from tests.testing import proxy_header as pp  # noqa: E402
from tests.testing.certificates import make_self_signed  # noqa: E402

# The node binary the sites run: PATH's (the machine's Node 20) unless a
# caller (node_versions_test.py) points this at another version.
NODE = shutil.which("node")


def repo_path(path):
    """The source-tree path of a runfile (node_modules is not a runfile)."""
    return os.path.dirname(os.path.realpath(runfile(path)))


PACKAGE = repo_path("node/ddv-worker/package.json")
NODE_MODULES = os.path.join(PACKAGE, "node_modules")


def node_config(apps, extra_sites=""):
    """A config with HTTP and TLS listeners and the given Node sites."""
    def render(d):
        cert, key = make_self_signed(d.dir, "n", ["n.localhost", "*.n.localhost"])
        sites = []
        for site_id, app, processes, hosts, env, *claimable in apps:
            env_toml = ", ".join(f'{k} = "{v}"' for k, v in env.items())
            # An optional sixth element: what the site's workers may claim
            # with updateServerConf.
            claimable_toml = (
                "claimable_hosts = [" +
                ", ".join(f'"{h}"' for h in claimable[0]) + "]\n"
                if claimable else "")
            sites.append(f"""
[[site]]
id = "{site_id}"
runtime = "node"
command = ["{NODE}", "{runfile('tests/node/apps/' + app)}"]
processes = {processes}
hosts = [{", ".join(f'"{h}"' for h in hosts)}]
{claimable_toml}log_all = "{d.dir}/{site_id}.log"
tls_cert = "{cert}"
tls_key = "{key}"
env = {{ NODE_PATH = "{NODE_MODULES}", DDV_WORKER_PACKAGE = "{PACKAGE}"{", " + env_toml if env_toml else ""} }}
""")
        return f"""
[master]
control_socket = "{d.control_socket}"
peek_timeout_ms = 3000

[[listener]]
name = "http"
address = "127.0.0.1:{d.http_port}"
protocol = "http"

[[listener]]
name = "https"
address = "127.0.0.1:{d.tls_port}"
protocol = "tls"
""" + "".join(sites) + extra_sites
    return render


def read_file(path):
    """The file's text so far ("" before it exists)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def request_on(port, host, path="/"):
    status, body, _ = http_get(port, host, path=path, timeout=10)
    return status, body


def request(port, host, path="/", timeout=10):
    status, body, _ = http_get(port, host, path=path, timeout=timeout)
    return status, body


class NodeSiteTest(unittest.TestCase):
    def start(self, apps, **kwargs):
        ddv = harness.Ddv(config_text=node_config(apps), **kwargs)
        self.addCleanup(ddv.stop)
        return ddv

    def test_unmodified_http_app_serves_through_the_master(self):
        ddv = self.start([("n", "http_app.js", 2, ["n.localhost"], {})])
        status, body = request(ddv.http_port, "n.localhost")
        self.assertEqual(status, 200, body)
        f = fields(body)
        self.assertEqual(f["site"], "n")
        self.assertEqual(f["host"], "n.localhost")
        # The app sees the client itself, not the master.
        self.assertTrue(f["peer"].startswith("127.0.0.1:"))
        # The log writer appends the app's lines a moment after they are
        # written (docs/logs.md): wait for it, bounded.
        self.assertTrue(wait_for(lambda: f"listening port={ddv.http_port}"
                                 in read_file(os.path.join(ddv.dir, "n.log"))),
                        read_file(os.path.join(ddv.dir, "n.log")))
        site = [s for s in ddv.status()["sites"] if s["id"] == "n"][0]
        self.assertEqual(site["runtime"], "node")
        self.assertTrue(all(w["ready"] for w in site["workers"]))

    def test_proxy_header_reaches_node_apps_as_the_socket_address(self):
        lb = harness.free_port()
        listener = f"""
[[listener]]
name = "lb"
address = "127.0.0.1:{lb}"
protocol = "http"
proxy_protocol = true
"""
        ddv = harness.Ddv(config_text=lambda d: node_config(
            [("p", "proxy_app.js", 1, ["p.localhost"], {}),
             ("n", "http_app.js", 1, ["n.localhost"], {})])(d) + listener)
        self.addCleanup(ddv.stop)
        tlvs = (pp.tlv(pp.ALPN, "h2") + pp.tlv(pp.AUTHORITY, "p.example") +
                pp.tlv(pp.UNIQUE_ID, b"\x01\x02") +
                pp.ssl_tlv(pp.CLIENT_SSL, 0, version="TLSv1.3", cn="c"))
        header = pp.v2("203.0.113.9", "192.0.2.1", 4242, 443, tlvs)
        request = (b"GET /x HTTP/1.1\r\nHost: p.localhost\r\n"
                   b"Connection: close\r\n\r\n")
        status, body, _ = http_get(lb, raw=header + request)
        self.assertEqual(status, 200, body)
        got = json.loads(body)
        # The app read the request, not the header, and sees the client.
        self.assertEqual(got["url"], "/x")
        self.assertEqual((got["remoteAddress"], got["remotePort"],
                          got["remoteFamily"]), ("203.0.113.9", 4242, "IPv4"))
        self.assertEqual((got["localAddress"], got["localPort"]),
                         ("192.0.2.1", 443))
        self.assertEqual(got["proxy"]["alpn"], "h2")
        self.assertEqual(got["proxy"]["authority"], "p.example")
        self.assertEqual(got["proxy"]["uniqueId"], "0102")
        self.assertEqual(got["proxy"]["ssl"], {"client": 1, "verify": 0,
                                               "version": "TLSv1.3",
                                               "cn": "c"})
        # A connection without PROXY facts after one with: the socket's
        # own addresses (nothing carried over).
        status, body = request_on(ddv.http_port, "p.localhost")
        got = json.loads(body)
        self.assertEqual(got["remoteAddress"], "127.0.0.1")
        self.assertIsNone(got["proxy"])
        # IPv6 in a v1 header.
        status, body, _ = http_get(lb, raw=pp.v1("2001:db8::5", "2001:db8::1",
                                                 5, 80) + request)
        got = json.loads(body)
        self.assertEqual((got["remoteAddress"], got["remoteFamily"]),
                         ("2001:db8::5", "IPv6"))
        # A stock app without the package: the header is gone from its
        # stream all the same; it sees the master's peer, the L4 tier.
        status, body, _ = http_get(
            lb, raw=header + request.replace(b"p.localhost", b"n.localhost"))
        self.assertEqual(status, 200, body)
        self.assertTrue(fields(body)["peer"].startswith("127.0.0.1:"), body)

    def test_keep_alive_and_pipelined_requests(self):
        ddv = self.start([("n", "http_app.js", 1, ["n.localhost"], {})])
        with socket.create_connection(("127.0.0.1", ddv.http_port),
                                      timeout=10) as s:
            one = b"GET /%d HTTP/1.1\r\nHost: n.localhost\r\n\r\n"
            # Pipelined: three requests in one write, then one more.
            s.sendall(one % 1 + one % 2 + one % 3)
            data = b""
            while data.count(b"HTTP/1.1 200") < 3:
                chunk = s.recv(65536)
                self.assertTrue(chunk, data)
                data += chunk
            s.sendall(one % 4)
            while data.count(b"HTTP/1.1 200") < 4:
                chunk = s.recv(65536)
                self.assertTrue(chunk, data)
                data += chunk
        pids = {line.split(b"pid=")[1].split()[0]
                for line in data.split(b"\n") if b"pid=" in line}
        self.assertEqual(len(pids), 1)  # one connection, one worker

    def test_a_thousand_new_connections_without_an_error(self):
        ddv = self.start([("n", "http_app.js", 2, ["n.localhost"], {})])

        def one(_):
            status, body = request(ddv.http_port, "n.localhost")
            return status == 200 and fields(body)["site"] == "n"
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(1000)))
        self.assertEqual(results.count(False), 0)
        handed = harness.control(ddv.control_socket, "metrics")
        self.assertIn("ddv_connections_handed_off_total", handed)

    def test_one_connection_in_flight_as_nodes_own_primary(self):
        ddv = self.start([("n", "http_app.js", 2, ["n.localhost"], {})],
                         extra_flags=["--node_max_unaccepted=1"])

        def one(_):
            return request(ddv.http_port, "n.localhost")[0] == 200
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(300)))
        self.assertEqual(results.count(False), 0)

    def test_express_app(self):
        ddv = self.start([("e", "express_app.js", 1, ["e.localhost"], {})])
        status, body = request(ddv.http_port, "e.localhost", "/hello/ddv")
        self.assertEqual(status, 200, body)
        reply = json.loads(body)
        self.assertEqual(reply["hello"], "ddv")
        self.assertEqual(reply["site"], "e")

    def test_https_app_terminates_tls_itself(self):
        ddv = self.start([("n", "https_app.js", 2, ["n.localhost"], {})])
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", ddv.tls_port),
                                          timeout=10) as raw:
                with context.wrap_socket(raw,
                                         server_hostname="n.localhost") as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: n.localhost\r\n"
                              b"Connection: close\r\n\r\n")
                    data = harness.recv_all(s)
            self.assertIn(b"200 OK", data)
            self.assertIn(b"sni=n.localhost tls=1", data)

    def test_killed_worker_is_restarted_and_serves(self):
        ddv = self.start([("n", "http_app.js", 1, ["n.localhost"], {})])
        old = ddv.worker_pids("n")[0]
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 10
        new = None
        while time.monotonic() < deadline:
            pids = ddv.worker_pids("n")
            site = [s for s in ddv.status()["sites"] if s["id"] == "n"][0]
            if pids[0] not in (0, old) and site["workers"][0]["ready"]:
                new = pids[0]
                break
            time.sleep(0.05)
        self.assertIsNotNone(new, ddv.read_log())
        status, body = request(ddv.http_port, "n.localhost")
        self.assertEqual(status, 200)
        self.assertEqual(fields(body)["pid"], str(new))

    def test_reload_replaces_node_workers_under_load_without_a_failure(self):
        apps = [("n", "http_app.js", 2, ["n.localhost"], {"APP_TAG": "one"})]
        ddv = self.start(apps)
        old = set(ddv.worker_pids("n"))
        failures, done, stop = [], [0], threading.Event()

        def load():
            while not stop.is_set():
                try:
                    status, body = request(ddv.http_port, "n.localhost",
                                           "/slow/20")
                    if status != 200:
                        failures.append((status, body))
                    done[0] += 1
                except OSError as e:
                    failures.append(repr(e))
        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            # A new env is a new spec: a rolling restart, each old worker
            # drained with Node's own `disconnect`.
            ddv.write_text(node_config(
                [("n", "http_app.js", 2, ["n.localhost"],
                  {"APP_TAG": "two"})])(ddv))
            reply = harness.control(ddv.control_socket, "reload")
            self.assertTrue(reply.startswith("ok"), reply)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                pids = set(ddv.worker_pids("n"))
                site = [s for s in ddv.status()["sites"] if s["id"] == "n"][0]
                if not (pids & old) and 0 not in pids and all(
                        w["ready"] for w in site["workers"]):
                    break
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=20)
        self.assertFalse(set(ddv.worker_pids("n")) & old, ddv.read_log())
        self.assertEqual(failures, [], ddv.read_log())
        self.assertGreater(done[0], 50)
        self.assertEqual(fields(request(ddv.http_port, "n.localhost")[1])["tag"],
                         "two")

    def test_update_server_conf_accepted_and_refused(self):
        ddv = self.start([("w", "ddv_worker_app.js", 1, ["w.localhost"], {},
                           ["*.localhost"]),
                          ("x", "http_app.js", 1, ["x.localhost"], {})])
        status, body = request(ddv.http_port, "w.localhost",
                               "/claim?host=new.localhost")
        self.assertEqual(json.loads(body), {"ok": True, "error": None})
        status, body = request(ddv.http_port, "new.localhost")
        self.assertEqual(json.loads(body)["site"], "w")
        # x.localhost belongs to site x: refused, with the master's reason.
        status, body = request(ddv.http_port, "w.localhost",
                               "/claim?host=x.localhost")
        reply = json.loads(body)
        self.assertFalse(reply["ok"])
        self.assertIn('"x.localhost" is served by site "x"', reply["error"])
        self.assertEqual(fields(request(ddv.http_port, "x.localhost")[1])["site"],
                         "x")

    def test_message_between_two_node_workers(self):
        ddv = self.start([("w", "ddv_worker_app.js", 1, ["w.localhost"], {}),
                          ("v", "ddv_worker_app.js", 1, ["v.localhost"], {})])
        request(ddv.http_port, "w.localhost", "/send?site=v&text=hi")
        deadline = time.monotonic() + 5
        last = None
        while time.monotonic() < deadline:
            last = json.loads(request(ddv.http_port, "v.localhost",
                                      "/last-message")[1])
            if last:
                break
            time.sleep(0.05)
        self.assertEqual(last["msg"], {"text": "hi", "from": "w"})
        self.assertEqual(last["from"]["site"], "w")

    def test_headers_timeout_still_closes_a_slow_client_after_handoff(self):
        ddv = self.start([("n", "http_app.js", 1, ["n.localhost"],
                           {"HEADERS_TIMEOUT_MS": "1000"})])
        with socket.create_connection(("127.0.0.1", ddv.http_port),
                                      timeout=10) as s:
            # Enough for the master to route it; the head never ends.
            s.sendall(b"GET / HTTP/1.1\r\nHost: n.localhost\r\n")
            start = time.monotonic()
            data = harness.recv_all(s)
            elapsed = time.monotonic() - start
        self.assertIn(b"408", data)
        self.assertLess(elapsed, 5)
        self.assertGreater(elapsed, 0.8)


class NodeBehaviourTest(unittest.TestCase):
    def start(self, apps, **kwargs):
        ddv = harness.Ddv(config_text=node_config(apps), **kwargs)
        self.addCleanup(ddv.stop)
        return ddv

    def test_max_connections_refusal_goes_to_another_worker_then_503(self):
        # Each worker takes one connection at a time (server.maxConnections
        # = 1): it answers `accepted: false` for a second one, which goes to
        # the other worker; with both busy, the master answers 503.
        ddv = self.start([("n", "http_app.js", 2, ["n.localhost"],
                           {"MAX_CONNECTIONS": "1"})])
        held = []
        try:
            pids = set()
            for _ in range(2):
                s = socket.create_connection(("127.0.0.1", ddv.http_port),
                                             timeout=10)
                s.sendall(b"GET / HTTP/1.1\r\nHost: n.localhost\r\n\r\n")
                data = s.recv(65536)
                self.assertIn(b"200 OK", data)
                pids.add(data.split(b"pid=")[1].split()[0])
                held.append(s)  # keep-alive: the worker still holds it
            self.assertEqual(len(pids), 2)
            status, _ = request(ddv.http_port, "n.localhost")
            self.assertEqual(status, 503)
            counters = harness.control(ddv.control_socket, "metrics")
            refused = [l for l in counters.splitlines()
                       if l.startswith("ddv_node_not_accepted_total")]
            self.assertTrue(refused and float(refused[0].split()[1]) >= 2,
                            refused)
        finally:
            for s in held:
                s.close()
        # Once a worker is free again it serves.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if request(ddv.http_port, "n.localhost")[0] == 200:
                break
            time.sleep(0.05)
        self.assertEqual(request(ddv.http_port, "n.localhost")[0], 200)

    def test_tls_sessions_resume_across_the_sites_processes(self):
        # The master gives every worker the first one's server data (a TLS
        # server's ticket keys), as Node's own primary does.
        ddv = self.start([("n", "https_app.js", 2, ["n.localhost"], {})])
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.maximum_version = ssl.TLSVersion.TLSv1_2

        def get(session=None):
            with socket.create_connection(("127.0.0.1", ddv.tls_port),
                                          timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="n.localhost",
                                         session=session) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: n.localhost\r\n"
                              b"Connection: close\r\n\r\n")
                    data = harness.recv_all(s)
                    pid = data.split(b"pid=")[1].split()[0]
                    return s.session, s.session_reused, pid
        session, _, first_pid = get()
        resumed_on_other = False
        for _ in range(6):
            _, reused, pid = get(session)
            self.assertTrue(reused)
            resumed_on_other |= pid != first_pid
        self.assertTrue(resumed_on_other)

    def test_heartbeats_kill_a_stopped_ddv_worker_app_not_a_stock_app(self):
        ddv = self.start(
            [("w", "ddv_worker_app.js", 1, ["w.localhost"], {}),
             ("n", "http_app.js", 1, ["n.localhost"], {})],
            extra_flags=["--heartbeat_interval_ms=100",
                         "--heartbeat_timeout_ms=1000"])
        stopped_w = ddv.worker_pids("w")[0]
        stopped_n = ddv.worker_pids("n")[0]
        # Busy but alive: the package answers pings from the event loop.
        time.sleep(1.5)
        self.assertEqual(ddv.worker_pids("w")[0], stopped_w)
        os.kill(stopped_w, signal.SIGSTOP)
        os.kill(stopped_n, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if ddv.worker_pids("w")[0] not in (0, stopped_w):
                    break
                time.sleep(0.1)
            self.assertNotIn(ddv.worker_pids("w")[0], (0, stopped_w))
            # A stock app cannot answer pings: it is never killed for it.
            self.assertEqual(ddv.worker_pids("n")[0], stopped_n)
        finally:
            os.kill(stopped_n, signal.SIGCONT)
        status, body = request(ddv.http_port, "w.localhost")
        self.assertEqual(status, 200)


class HungNodeWorkerTest(unittest.TestCase):
    def test_a_hung_stock_app_with_a_connection_waiting_is_replaced(self):
        # A stock app cannot answer pings, but one whose event loop does not
        # take a handed-off connection within the heartbeat timeout is hung:
        # it is killed and the connection is served by its replacement.
        ddv = harness.Ddv(
            config_text=node_config([("n", "http_app.js", 1,
                                      ["n.localhost"], {})]),
            extra_flags=["--heartbeat_interval_ms=100",
                         "--heartbeat_timeout_ms=1000",
                         "--worker_wait_ms=10000"])
        self.addCleanup(ddv.stop)
        hung = ddv.worker_pids("n")[0]
        os.kill(hung, signal.SIGSTOP)
        start = time.monotonic()
        status, body = request(ddv.http_port, "n.localhost", timeout=20)
        self.assertEqual(status, 200, ddv.read_log())
        self.assertNotEqual(fields(body)["pid"], str(hung))
        self.assertLess(time.monotonic() - start, 10)
        self.assertIn("has not taken a connection", ddv.read_log())


class ReadmeExampleTest(unittest.TestCase):
    """ddv-worker's own README example (testworker.js + index.js with
    express), with only the require path changed, as a ddv site."""

    def test_readme_example_claims_its_host_and_serves(self):
        index = runfile("node/ddv-worker/fixtures/readme/index.js")

        def config(d):
            return node_config([])(d) + f"""
[[site]]
id = "readme"
runtime = "node"
command = ["{NODE}", "{index}"]
hosts = ["readme.localhost"]
claimable_hosts = ["rpc.iceovideo.ping-qu.com"]
log_all = "{d.dir}/readme.log"
env = {{ NODE_PATH = "{NODE_MODULES}", DDV_WORKER_PACKAGE = "{PACKAGE}" }}
"""
        ddv = harness.Ddv(config_text=config)
        self.addCleanup(ddv.stop)
        # index.js calls updateServerConf with listen[].host =
        # rpc.iceovideo.ping-qu.com: the master routes that host to it.
        # Until the claim is applied the name has no site (421); then the
        # example's express app answers (it defines no route: 404).
        deadline = time.monotonic() + 10
        status = body = None
        while time.monotonic() < deadline:
            status, body = request(ddv.http_port, "rpc.iceovideo.ping-qu.com")
            if status != 421:
                break
            time.sleep(0.1)
        self.assertEqual(status, 404, ddv.read_log())
        self.assertIn("Cannot GET /", body)
        readme_log = os.path.join(ddv.dir, "readme.log")
        self.assertTrue(wait_for(lambda: "更新服务器监听配置参数成功"
                                 in read_file(readme_log)),
                        read_file(readme_log))


if __name__ == "__main__":
    unittest.main()
