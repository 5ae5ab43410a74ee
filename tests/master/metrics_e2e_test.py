"""/metrics and /healthz end to end (docs/metrics.md): a real master with
real ddv_hello workers, scraped with curl, the text read by the Prometheus
client library's parser.

- every outcome moves its own labelled series, by listener and site, and
  the histograms count exactly the routed connections;
- /metrics and `ddvctl metrics` are the same text;
- protocol errors get their status, and every scrape connection is counted;
- /healthz is 503 while a site's workers are all down (a crash loop) and
  200 again after `ddvctl restart`;
- 100 slow, idle and oversized scrape connections while load runs: routing
  fails nothing, each is closed by its deadline (or cut for room), counted,
  and a normal scrape still works meanwhile;
- a reload moves the metrics address.
"""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import fields, free_port, http_get, wait_for
from pyddv import load as pyload
from scrape import curl, parse, scrape, total, value

DEADLINE = 2.0  # MetricsServer::kDeadlineNs


def ddvctl(ddv, *args):
    return subprocess.run(
        [harness.runfile("src/ddvctl"), f"--control_socket={ddv.control_socket}",
         *args], capture_output=True, text=True, timeout=10)


def raw_exchange(port, data, timeout=5.0):
    """Sends `data` and the end of it, returns everything until the server
    closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return harness.recv_all(s)


class MetricsTest(unittest.TestCase):
    def setUp(self):
        self.metrics_port = free_port()
        self.ddv = harness.Ddv(
            peek_timeout_ms=600, max_peek_bytes=1024,
            extra_flags=[f"--metrics_address=127.0.0.1:{self.metrics_port}",
                         # Idle clients reach the master at once.
                         "--defer_accept_seconds=0"])

    def tearDown(self):
        self.assertEqual(self.ddv.stop(), 0, self.ddv.read_log())

    def test_labels_follow_outcomes_and_histograms_count_routed(self):
        ddv = self.ddv
        before = scrape(self.metrics_port)
        self.assertEqual(value(before, "ddv_listener_accepted_total",
                               listener="http"), 0)
        for host, site in [("a.localhost", "a")] * 3 + [("b.localhost", "b")] * 2:
            status, body, _ = http_get(ddv.http_port, host)
            self.assertEqual((status, fields(body)["site"]), (200, site))
        status, body, _ = http_get(ddv.http_port, "nobody.test")
        self.assertEqual(fields(body)["site"], "fallback")
        status, body, _ = http_get(ddv.tcp_port, "whatever.test")
        self.assertEqual(fields(body)["site"], "b")
        # One refusal per reason.
        self.assertEqual(http_get(ddv.strict_port, "nobody.test")[0], 421)
        big = (b"GET / HTTP/1.1\r\nHost: a.localhost\r\nX: " + b"a" * 2000
               + b"\r\n\r\n")
        self.assertEqual(http_get(ddv.http_port, raw=big)[0], 431)
        self.assertEqual(http_get(ddv.http_port,
                                  raw=b"get / HTTP/1.1\r\n\r\n")[0], 400)
        self.assertEqual(http_get(ddv.http_port,
                                  raw=b"\x16\x03\x01\x00\x05hello")[0], 400)
        with socket.create_connection(("127.0.0.1", ddv.http_port),
                                      timeout=5) as idle:
            status, _ = harness.parse_response(harness.recv_all(idle))
            self.assertEqual(status, 408)
        with socket.create_connection(("127.0.0.1", ddv.http_port),
                                      timeout=5) as gone:
            gone.sendall(b"GET / HT")
            time.sleep(0.1)
        m = wait_for(lambda: (lambda m: m if value(
            m, "ddv_connections_total", listener="http",
            outcome="closed") == 1 else None)(scrape(self.metrics_port)))
        self.assertTrue(m, "the peer that left was not counted")

        def outcome(listener, o):
            return value(m, "ddv_connections_total", listener=listener,
                         outcome=o)
        self.assertEqual(outcome("http", "routed"), 6)
        self.assertEqual(outcome("raw", "routed"), 1)
        self.assertEqual(outcome("strict", "no_site"), 1)
        self.assertEqual(outcome("http", "too_large"), 1)
        self.assertEqual(outcome("http", "malformed"), 1)
        self.assertEqual(outcome("http", "not_this_protocol"), 1)
        self.assertEqual(outcome("http", "timeout"), 1)
        self.assertEqual(outcome("http", "no_site"), 0)
        self.assertEqual(outcome("https", "routed"), 0)
        # Every connection accepted is accounted for, none pending.
        for listener in ("http", "strict", "https", "raw"):
            self.assertEqual(
                value(m, "ddv_listener_accepted_total", listener=listener),
                total(m, "ddv_connections_total", listener=listener), listener)
            self.assertEqual(value(m, "ddv_connections_pending",
                                   listener=listener), 0)
        site = lambda s: value(m, "ddv_site_connections_total", site=s,
                               outcome="routed")
        self.assertEqual((site("a"), site("b"), site("fallback")), (3, 3, 1))
        # The histograms: one observation per routed connection (latency),
        # per decision on a peeked listener (bytes).
        for listener, routed in (("http", 6), ("raw", 1), ("strict", 0)):
            self.assertEqual(value(m, "ddv_handoff_latency_seconds_count",
                                   listener=listener), routed)
            self.assertEqual(value(m, "ddv_handoff_latency_seconds_bucket",
                                   listener=listener, le="+Inf"), routed)
        self.assertGreater(value(m, "ddv_handoff_latency_seconds_sum",
                                 listener="http"), 0)
        self.assertEqual(total(m, "ddv_handoff_latency_seconds_count"),
                         total(m, "ddv_site_connections_total",
                               outcome="routed"))
        # 6 routed + too_large + malformed + not_this_protocol; the raw
        # listener is not peeked, the timeout and the leaver never decided.
        self.assertEqual(value(m, "ddv_peek_bytes_count", listener="http"), 9)
        self.assertEqual(value(m, "ddv_peek_bytes_count", listener="raw"), 0)
        self.assertEqual(value(m, "ddv_peek_bytes_bucket", listener="http",
                               le="1024"), 8,
                         "the 431 was decided on more than 1024 bytes")
        # Workers and health.
        self.assertEqual(value(m, "ddv_site_workers_alive", site="a"), 2)
        self.assertEqual(value(m, "ddv_site_workers_ready", site="b"), 1)
        self.assertEqual(value(m, "ddv_site_failed", site="a"), 0)
        self.assertEqual(value(m, "ddv_healthy"), 1)
        self.assertEqual(value(m, "ddv_master_restarts"), 0)
        self.assertGreater(value(m, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(value(m, "process_open_fds"), 5)
        self.assertLess(abs(value(m, "process_start_time_seconds")
                            - time.time()), 120)
        # The flat counters are still there, unchanged.
        self.assertEqual(value(m, "ddv_connections_handed_off_total"), 7)

    def test_ddvctl_metrics_is_the_same_text(self):
        http_get(self.ddv.http_port, "a.localhost")
        web = scrape(self.metrics_port)
        out = ddvctl(self.ddv, "metrics")
        self.assertEqual(out.returncode, 0, out.stderr)
        ctl = parse(out.stdout)
        self.assertEqual(set(web), set(ctl))
        # What no scrape or clock moves is equal too.
        for key in web:
            if key[0].startswith(("ddv_connections_total", "ddv_site_",
                                  "ddv_listener_")):
                self.assertEqual(web[key], ctl[key], key)

    def test_protocol_errors_and_scrape_outcomes(self):
        port = self.metrics_port
        status, head, body = curl(f"http://127.0.0.1:{port}/metrics")
        self.assertEqual(status, 200)
        self.assertIn("Content-Type: text/plain; version=0.0.4; "
                      "charset=utf-8", head)
        self.assertIn("Connection: close", head)
        length = int(head.split("Content-Length: ")[1].split("\r\n")[0])
        self.assertEqual(length, len(body.encode()))
        # HEAD: the head GET would get, no body.
        answer = raw_exchange(port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
        self.assertIn(b"\r\nContent-Length: 3\r\n", answer)
        self.assertTrue(answer.endswith(b"\r\n\r\n"), answer)
        status, head, body = curl(f"http://127.0.0.1:{port}/metrics",
                                  "-X", "POST")
        self.assertEqual(status, 405)
        self.assertIn("Allow: GET, HEAD", head)
        self.assertEqual(curl(f"http://127.0.0.1:{port}/")[0], 404)
        answer = raw_exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer)
        answer = raw_exchange(
            port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000)
        self.assertTrue(answer.startswith(b"HTTP/1.1 431 "), answer)
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /metr")
            answer = harness.recv_all(s)
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer)
        self.assertLess(abs(time.monotonic() - start - DEADLINE), 0.5)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # leaves without a request
        m = wait_for(lambda: (lambda m: m if value(
            m, "ddv_metrics_connections_total",
            outcome="closed") == 1 else None)(scrape(port)))
        self.assertTrue(m)
        outcome = lambda o: value(m, "ddv_metrics_connections_total",
                                  outcome=o)
        # Two curls, and wait_for's scrapes but the last (still open).
        self.assertGreaterEqual(outcome("served"), 2)
        self.assertEqual(outcome("method_not_allowed"), 1)
        self.assertEqual(outcome("not_found"), 1)
        self.assertEqual(outcome("bad_request"), 1)
        self.assertEqual(outcome("too_large"), 1)
        self.assertEqual(outcome("timeout"), 1)
        self.assertEqual(value(m, "ddv_metrics_connections_open"), 1)
        # status --json says where it is served.
        self.assertEqual(self.ddv.status()["metrics_address"],
                         f"127.0.0.1:{port}")

    def test_reload_moves_the_metrics_address(self):
        ddv = self.ddv
        new_port = free_port()
        with open(ddv.config_path) as f:
            text = f.read()
        text = text.replace(
            "[master]\n", f'[master]\nmetrics_address = "127.0.0.1:{new_port}"\n')
        ddv.write_text(text)
        # The command line wins over the file, at start and at every reload:
        # the address stays where --metrics_address put it.
        out = ddvctl(ddv, "reload")
        self.assertEqual(out.returncode, 0, out.stderr)
        scrape(self.metrics_port)
        self.assertEqual(ddv.status()["metrics_address"],
                         f"127.0.0.1:{self.metrics_port}")


class MetricsFromTheFileTest(unittest.TestCase):
    """[master] metrics_address: a reload that changes it rebinds; one whose
    address cannot be bound fails and changes nothing."""

    def test_reload_rebinds_and_a_taken_address_fails_the_reload(self):
        first, second = free_port(), free_port()
        ddv = harness.Ddv()
        try:
            with open(ddv.config_path) as f:
                base = f.read()

            def with_metrics(port):
                return base.replace(
                    "[master]\n", f'[master]\nmetrics_address = "127.0.0.1:{port}"\n')
            ddv.write_text(with_metrics(first))
            self.assertEqual(ddvctl(ddv, "reload").returncode, 0)
            self.assertEqual(curl(f"http://127.0.0.1:{first}/healthz")[0], 200)
            ddv.write_text(with_metrics(second))
            self.assertEqual(ddvctl(ddv, "reload").returncode, 0)
            self.assertEqual(curl(f"http://127.0.0.1:{second}/healthz")[0],
                             200)
            with self.assertRaises(RuntimeError):
                curl(f"http://127.0.0.1:{first}/healthz")
            # A port someone else holds: the reload fails with the bind's
            # reason, and /metrics stays where it was.
            with socket.socket() as holder:
                holder.bind(("127.0.0.1", 0))
                holder.listen(1)
                taken = holder.getsockname()[1]
                ddv.write_text(with_metrics(taken))
                out = ddvctl(ddv, "reload")
                self.assertEqual(out.returncode, 1)
                self.assertIn(f"metrics_address: bind() failed while binding "
                              f"listener \"metrics\" to 127.0.0.1:{taken}: "
                              f"Address already in use", out.stderr)
            self.assertEqual(curl(f"http://127.0.0.1:{second}/healthz")[0],
                             200)
            # Removed from the file: no longer served.
            ddv.write_text(base)
            self.assertEqual(ddvctl(ddv, "reload").returncode, 0)
            with self.assertRaises(RuntimeError):
                curl(f"http://127.0.0.1:{second}/healthz")
            self.assertNotIn("metrics_address", ddv.status())
        finally:
            self.assertEqual(ddv.stop(), 0, ddv.read_log())


class HealthTest(unittest.TestCase):
    def test_healthz_503_while_a_site_crash_loops_then_200(self):
        metrics_port = free_port()

        def config(ddv):
            flag, script = harness.crashy_worker(ddv)
            return f"""
[master]
control_socket = "{ddv.control_socket}"
metrics_address = "127.0.0.1:{metrics_port}"

[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"

[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a", "--ring_entries=256"]
hosts = ["a.localhost"]

[[site]]
id = "crashy"
command = ["{script}"]
hosts = ["crashy.localhost"]
"""
        ddv = harness.Ddv(config_text=config,
                          extra_flags=["--worker_wait_ms=300",
                                       "--crash_loop_limit=3"])
        try:
            healthz = lambda: curl(f"http://127.0.0.1:{metrics_port}/healthz")
            self.assertEqual(healthz()[::2], (200, "ok\n"))
            os.remove(os.path.join(ddv.dir, "healthy"))
            os.kill(ddv.worker_pids("crashy")[0], signal.SIGKILL)
            failed = wait_for(lambda: "crash loop" in healthz()[2], timeout=15)
            status, _, body = healthz()
            self.assertTrue(failed, body)
            self.assertEqual(status, 503)
            self.assertEqual(body, 'unhealthy: site "crashy" has no ready '
                                   'worker (failed: crash loop)\n')
            m = scrape(metrics_port)
            self.assertEqual(value(m, "ddv_healthy"), 0)
            self.assertEqual(value(m, "ddv_site_failed", site="crashy"), 1)
            self.assertEqual(value(m, "ddv_site_workers_alive", site="crashy"),
                             0)
            self.assertEqual(value(m, "ddv_site_failed", site="a"), 0)
            st = ddv.status()
            self.assertFalse(st["healthy"])
            self.assertIn("crashy", st["unhealthy_because"])
            # Its connections: 503, counted by listener and by site.
            self.assertEqual(http_get(ddv.http_port, "crashy.localhost")[0],
                             503)
            self.assertEqual(http_get(ddv.http_port, "a.localhost")[0], 200)
            m = scrape(metrics_port)
            self.assertEqual(value(m, "ddv_connections_total", listener="http",
                                   outcome="unavailable"), 1)
            self.assertEqual(value(m, "ddv_site_connections_total",
                                   site="crashy", outcome="unavailable"), 1)
            self.assertEqual(value(m, "ddv_site_connections_total",
                                   site="a", outcome="routed"), 1)
            # Fixed and restarted: healthy again.
            open(os.path.join(ddv.dir, "healthy"), "w").close()
            out = ddvctl(ddv, "restart", "crashy")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertTrue(wait_for(lambda: healthz()[0] == 200, timeout=15),
                            healthz())
            self.assertEqual(value(scrape(metrics_port), "ddv_healthy"), 1)
        finally:
            self.assertEqual(ddv.stop(), 0, ddv.read_log())


class MasterRestartTest(unittest.TestCase):
    def test_a_restarted_master_binds_again_and_counts_the_restart(self):
        metrics_port = free_port()
        ddv = harness.Ddv(watchdog=True, extra_flags=[
            f"--metrics_address=127.0.0.1:{metrics_port}"])
        try:
            self.assertEqual(value(scrape(metrics_port),
                                   "ddv_master_restarts"), 0)
            first = ddv.status()["pid"]
            os.kill(first, signal.SIGKILL)

            def new_master():
                try:
                    st = ddv.status()
                except (OSError, ValueError):
                    return None
                return st if st["pid"] != first else None
            self.assertTrue(wait_for(new_master, timeout=15), ddv.read_log())
            # The new master binds the address again at once (SO_REUSEADDR)
            # and says it is the watchdog's first restart.
            m = wait_for(lambda: (lambda m: m if value(
                m, "ddv_master_restarts") == 1 else None)(
                    scrape_or_none(metrics_port)), timeout=15)
            self.assertTrue(m, ddv.read_log())
            self.assertEqual(http_get(ddv.http_port, "a.localhost")[0], 200)
        finally:
            self.assertEqual(ddv.stop(), 0, ddv.read_log())


def scrape_or_none(port):
    try:
        return scrape(port)
    except RuntimeError:
        return {}


class SiteLimitTest(unittest.TestCase):
    def test_a_site_at_its_cap_is_its_own_outcome(self):
        metrics_port = free_port()

        def config(ddv):
            return f"""
[master]
control_socket = "{ddv.control_socket}"
metrics_address = "127.0.0.1:{metrics_port}"

[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"

[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a", "--ring_entries=256"]
hosts = ["a.localhost"]
max_connections = 1
"""
        ddv = harness.Ddv(config_text=config)
        try:
            held = socket.create_connection(("127.0.0.1", ddv.http_port),
                                            timeout=5)
            held.sendall(b"GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
            self.assertIn(b"200 OK", held.recv(65536))
            a = lambda: next(s for s in ddv.status()["sites"]
                             if s["id"] == "a")["connections"]["open"]
            self.assertTrue(wait_for(lambda: a() == 1), ddv.status())
            self.assertEqual(http_get(ddv.http_port, "a.localhost")[0], 503)
            held.close()
            m = scrape(metrics_port)
            self.assertEqual(value(m, "ddv_connections_total", listener="http",
                                   outcome="site_limit"), 1)
            self.assertEqual(value(m, "ddv_connections_total", listener="http",
                                   outcome="unavailable"), 0)
            self.assertEqual(value(m, "ddv_site_connections_total", site="a",
                                   outcome="site_limit"), 1)
            self.assertEqual(value(m, "ddv_site_connections_total", site="a",
                                   outcome="routed"), 1)
        finally:
            self.assertEqual(ddv.stop(), 0, ddv.read_log())


class UntrustedProxyTest(unittest.TestCase):
    def test_an_untrusted_proxy_peer_is_its_own_outcome(self):
        metrics_port = free_port()

        def config(ddv):
            return f"""
[master]
control_socket = "{ddv.control_socket}"
metrics_address = "127.0.0.1:{metrics_port}"

[[listener]]
name = "lb"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"
proxy_protocol = true
proxy_protocol_from = ["10.0.0.0/8"]
access_log = "{ddv.dir}/access.log"

[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a", "--ring_entries=256"]
hosts = ["a.localhost"]
"""
        ddv = harness.Ddv(config_text=config)
        try:
            with socket.create_connection(("127.0.0.1", ddv.http_port),
                                          timeout=5) as s:
                s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n"
                          b"GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
                local = s.getsockname()[1]
                self.assertEqual(harness.recv_all(s), b"")  # reset
            m = scrape(metrics_port)
            self.assertEqual(value(m, "ddv_connections_total", listener="lb",
                                   outcome="untrusted_proxy"), 1)
            self.assertEqual(value(m, "ddv_listener_accepted_total",
                                   listener="lb"), 1)
            path = os.path.join(ddv.dir, "access.log")
            self.assertTrue(wait_for(lambda: os.path.exists(path) and
                                     open(path).read().count("\n") == 1))
            with open(path) as f:
                line = json.loads(f.read())
            self.assertEqual((line["outcome"], line["peer"], line["proxy_peer"]),
                             ("untrusted_proxy", f"127.0.0.1:{local}", None))
        finally:
            self.assertEqual(ddv.stop(), 0, ddv.read_log())


class HostileScrapersTest(unittest.TestCase):
    # 100 in all, interleaved: the newest keep their slots to the end.
    KINDS = ["idle", "slow", "idle", "slow", "oversized"] * 20

    def test_hostile_scrapers_cost_routing_nothing(self):
        metrics_port = free_port()
        ddv = harness.Ddv(extra_flags=[
            f"--metrics_address=127.0.0.1:{metrics_port}"])
        loads = []
        try:
            loads = [
                pyload.start_load(ddv.http_port, ["a.localhost", "b.localhost"],
                                  "keepalive", connections=4, rate=400,
                                  duration=6),
                pyload.start_load(ddv.http_port, ["a.localhost"],
                                  "new_connection", connections=4, rate=200,
                                  duration=6),
            ]
            time.sleep(0.5)
            conns = []
            for kind in self.KINDS:
                s = socket.create_connection(("127.0.0.1", metrics_port),
                                             timeout=5)
                s.setblocking(False)
                if kind == "oversized":
                    head = (b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                            + b"X-Pad: " + b"a" * 10000)
                    try:
                        s.send(head)
                    except BlockingIOError:
                        pass
                conns.append({"kind": kind, "sock": s,
                              "opened": time.monotonic(), "closed": None,
                              "data": b"", "sent": 0})
            # A normal scrape while all 100 are there.
            during = scrape(metrics_port)
            self.assertIn(("ddv_healthy", frozenset()), during)
            slow_request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
            deadline = time.monotonic() + DEADLINE + 4
            while (time.monotonic() < deadline
                   and any(c["closed"] is None for c in conns)):
                for c in conns:
                    if c["closed"] is not None:
                        continue
                    s = c["sock"]
                    if c["kind"] == "slow" and c["sent"] < len(slow_request):
                        try:
                            s.send(slow_request[c["sent"]:c["sent"] + 1])
                            c["sent"] += 1
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            c["closed"] = time.monotonic()
                            continue
                    try:
                        while True:
                            data = s.recv(65536)
                            if not data:
                                c["closed"] = time.monotonic()
                                break
                            c["data"] += data
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        c["closed"] = time.monotonic()
                time.sleep(0.1)
            for c in conns:
                c["sock"].close()
            results = [load.result() for load in loads]
            for r in results:
                self.assertEqual(r.failed(), 0, r.summary())
                self.assertGreater(r["ok"], 100, r.summary())
            still_open = [c["kind"] for c in conns if c["closed"] is None]
            self.assertEqual(still_open, [], "not closed by the server")
            lifetimes = [c["closed"] - c["opened"] for c in conns]
            self.assertLess(max(lifetimes), DEADLINE + 1.5, lifetimes)
            # The ones that kept a slot lasted until their deadline.
            at_deadline = [c for c in conns
                           if c["closed"] - c["opened"] >= DEADLINE - 0.3]
            self.assertGreaterEqual(len(at_deadline), 8, lifetimes)
            answered_408 = [c for c in at_deadline
                            if c["data"].startswith(b"HTTP/1.1 408 ")]
            self.assertTrue(answered_408, [c["data"][:40] for c in at_deadline])
            m = scrape(metrics_port)
            outcome = lambda o: value(m, "ddv_metrics_connections_total",
                                      outcome=o)
            self.assertEqual(outcome("timeout") + outcome("evicted")
                             + outcome("too_large"), len(conns),
                             {o: outcome(o) for o in ("timeout", "evicted",
                                                      "too_large", "closed",
                                                      "served")})
            self.assertGreaterEqual(outcome("timeout"), 8)
            self.assertEqual(outcome("served"), 1)  # the scrape during
            self.assertEqual(value(m, "ddv_metrics_connections_open"), 1)
            # And routing refused nothing (a load's last new connection may
            # close unused as it stops: "closed").
            self.assertEqual(total(m, "ddv_connections_total", listener="http")
                             - value(m, "ddv_connections_total",
                                     listener="http", outcome="routed")
                             - value(m, "ddv_connections_total",
                                     listener="http", outcome="closed"), 0)
        finally:
            for load in loads:
                load.kill()
            self.assertEqual(ddv.stop(), 0, ddv.read_log())


if __name__ == "__main__":
    unittest.main()
