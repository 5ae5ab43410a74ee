"""421 Misdirected Request, end to end (docs/isolation.md): a connection the
master handed to one site's worker carries a request for another site's
host (a reused keep-alive connection, HTTP/2-style coalescing, a pipelined
request). The worker refuses it with 421 and Connection: close, so the
client retries on a new connection, which the master routes by that host.
Real master, real ddv_hello workers, a C++ worker on the worker library and
a C one on its C API, real clients over loopback and TLS."""
import os
import re
import signal
import time
import unittest

import harness
from harness import HttpConnection as Connection, fields, wait_for
from pyddv.load import start_load
from tests.testing.certificates import make_self_signed


def config(ddv, a_hosts=("a.test",), lax_strict=False, extra="",
           moved=False):
    """`moved`: move-a.test (a's) and move-c.test (cw's) are b's now."""
    hello = ddv.hello
    checker = harness.runfile("tests/master/host_check_worker")
    c_worker = harness.runfile("tests/master/c_worker")
    cert, key = make_self_signed(ddv.dir, "shared",
                                 ["a.test", "b.test", "*.wild.test"])
    movers = ("move-a.test", "move-c.test")
    a_hosts = tuple(a_hosts) + (() if moved else movers[:1])
    a_hosts_toml = ", ".join(f'"{h}"' for h in a_hosts)
    b_hosts_toml = ", ".join(f'"{h}"' for h in ("b.test",) +
                             (movers if moved else ()))
    cw_hosts_toml = ", ".join(f'"{h}"' for h in ("cw.test",) +
                              (() if moved else movers[1:]))
    return f"""
[master]
control_socket = "{ddv.control_socket}"
peek_timeout_ms = 3000

[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"
default_site = "fallback"

[[listener]]
name = "strict"
address = "127.0.0.1:{ddv.strict_port}"
protocol = "http"

[[listener]]
name = "tls"
address = "127.0.0.1:{ddv.tls_port}"
protocol = "tls"

[[site]]
id = "a"
command = ["{hello}", "--site=a", "--ring_entries=256"]
hosts = [{a_hosts_toml}]
tls_cert = ["{cert}"]
tls_key = ["{key}"]
log_all = "{ddv.dir}/a.log"

[[site]]
id = "b"
command = ["{hello}", "--site=b", "--ring_entries=256"]
hosts = [{b_hosts_toml}]
tls_cert = ["{cert}"]
tls_key = ["{key}"]
log_all = "{ddv.dir}/b.log"

[[site]]
id = "wild"
command = ["{hello}", "--site=wild", "--ring_entries=256"]
hosts = ["*.wild.test"]
tls_cert = ["{cert}"]
tls_key = ["{key}"]
log_all = "{ddv.dir}/wild.log"

[[site]]
id = "exact"
command = ["{hello}", "--site=exact", "--ring_entries=256"]
hosts = ["x.wild.test"]
log_all = "{ddv.dir}/exact.log"

[[site]]
id = "lax"
command = ["{hello}", "--site=lax", "--ring_entries=256"]
hosts = ["lax.test"]
strict_host = {"true" if lax_strict else "false"}
log_all = "{ddv.dir}/lax.log"

[[site]]
id = "fallback"
command = ["{hello}", "--site=fallback", "--ring_entries=256"]
listeners = ["http"]
log_all = "{ddv.dir}/fallback.log"

[[site]]
id = "c"
command = ["{checker}"]
hosts = ["c-base.test"]
claimable_hosts = ["c.test"]
env = {{ CLAIM_HOSTS = "c.test", CLAIM_ONCE = "{ddv.dir}/claimed" }}
log_all = "{ddv.dir}/c.log"

[[site]]
id = "cw"
command = ["{c_worker}"]
hosts = [{cw_hosts_toml}]
log_all = "{ddv.dir}/cw.log"
{extra}"""


def site(body):
    """The site that answered: ddv_hello's "site=a ..." or c_worker's
    "c_worker site=cw host=..."."""
    match = re.search(r"(?:^| )site=(\S+)", body)
    return match.group(1) if match else None


class MisdirectedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ddv = harness.Ddv(config_text=config)

    @classmethod
    def tearDownClass(cls):
        cls.ddv.stop()

    def setUp(self):
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()

    def connect(self, port=None, sni=None):
        c = Connection(port or self.ddv.http_port, sni)
        self.conns.append(c)
        return c

    def assert_misdirected(self, answer, conn):
        status, headers, _ = answer
        self.assertEqual(status, 421, answer)
        self.assertEqual(headers.get("connection"), "close")
        self.assertTrue(conn.closed_by_peer())

    def test_pipelined_requests_for_two_sites(self):
        c = self.connect()
        c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        status, _, body = c.read()
        self.assertEqual((status, site(body)), (200, "a"))
        self.assert_misdirected(c.read(), c)
        # The client's retry on a new connection reaches b.
        self.assertEqual(site(self.connect().ask("b.test")[2]), "b")

    def test_keep_alive_connection_reused_for_another_site(self):
        c = self.connect()
        self.assertEqual(site(c.ask("a.test")[2]), "a")
        self.assertEqual(site(c.ask("A.TEST:%d" % self.ddv.http_port)[2]), "a")
        self.assertEqual(site(c.ask("a.test.")[2]), "a")
        self.assert_misdirected(c.ask("b.test"), c)

    def test_absolute_form_target_names_the_host(self):
        c = self.connect()
        self.assertEqual(site(c.ask("a.test")[2]), "a")
        self.assertEqual(site(c.ask("b.test", target="http://a.test/x")[2]),
                         "a")
        self.assert_misdirected(c.ask("a.test", target="http://b.test/"), c)

    def test_http10_without_host_is_left_alone(self):
        c = self.connect()
        self.assertEqual(site(c.ask("a.test")[2]), "a")
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, _, body = c.read()
        self.assertEqual((status, site(body)), (200, "a"))
        # HTTP/1.1 without Host stays a 400 matter.
        c.send(b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(c.read()[0], 400)

    def test_tls_host_other_than_the_sni(self):
        c = self.connect(self.ddv.tls_port, sni="a.test")
        status, _, body = c.ask("a.test")
        self.assertEqual((status, site(body)), (200, "a"))
        self.assertEqual(fields(body)["sni"], "a.test")
        self.assert_misdirected(c.ask("b.test"), c)
        # First request already for another site than the SNI's.
        c = self.connect(self.ddv.tls_port, sni="a.test")
        self.assert_misdirected(c.ask("b.test"), c)
        # A Host the SNI's site also serves is not misdirected: the
        # connection's site is the one the master would pick for it.
        c = self.connect(self.ddv.tls_port, sni="q.wild.test")
        self.assertEqual(site(c.ask("q.wild.test")[2]), "wild")
        self.assertEqual(site(c.ask("r.s.wild.test")[2]), "wild")
        self.assert_misdirected(c.ask("x.wild.test"), c)

    def test_wildcard_and_exact_sites(self):
        c = self.connect()
        self.assertEqual(site(c.ask("y.wild.test")[2]), "wild")
        self.assertEqual(site(c.ask("z.y.wild.test")[2]), "wild")
        # x.wild.test is exact's, though wild's "*.wild.test" covers it.
        self.assert_misdirected(c.ask("x.wild.test"), c)
        c = self.connect()
        self.assertEqual(site(c.ask("x.wild.test")[2]), "exact")
        self.assert_misdirected(c.ask("y.wild.test"), c)

    def test_default_site_answers_unknown_names_only(self):
        c = self.connect()
        self.assertEqual(site(c.ask("unknown.test")[2]), "fallback")
        self.assertEqual(site(c.ask("other.unknown")[2]), "fallback")
        self.assertEqual(site(c.ask("127.0.0.1:%d" % self.ddv.http_port)[2]),
                         "fallback")
        self.assert_misdirected(c.ask("a.test"), c)
        # On a listener without a default, an unknown name is nobody's.
        c = self.connect(self.ddv.strict_port)
        self.assertEqual(site(c.ask("a.test")[2]), "a")
        self.assert_misdirected(c.ask("unknown.test"), c)

    def test_strict_host_false_serves_any_name(self):
        c = self.connect()
        self.assertEqual(site(c.ask("lax.test")[2]), "lax")
        self.assertEqual(site(c.ask("b.test")[2]), "lax")
        self.assertEqual(site(c.ask("anything.test")[2]), "lax")

    def test_c_api_worker(self):
        c = self.connect()
        self.assertEqual(site(c.ask("cw.test")[2]), "cw")
        self.assertEqual(site(c.ask("CW.test:1")[2]), "cw")
        self.assert_misdirected(c.ask("b.test"), c)
        c = self.connect()
        self.assertEqual(site(c.ask("cw.test")[2]), "cw")
        status, headers, _ = c.ask("cw.test:abc")
        self.assertEqual((status, headers.get("connection")), (400, "close"))

    def test_bad_host_on_a_connection_is_400(self):
        c = self.connect()
        self.assertEqual(site(c.ask("a.test")[2]), "a")
        status, headers, _ = c.ask("a.test:abc")
        self.assertEqual((status, headers.get("connection")), (400, "close"))


class ClaimsTest(unittest.TestCase):
    """Hosts claimed at run time are accepted after the claim, and refused
    once the claiming process is gone; the other sites learn both."""

    def setUp(self):
        self.ddv = harness.Ddv(config_text=config)

    def tearDown(self):
        self.ddv.stop()

    def claimed(self):
        for s in self.ddv.status()["sites"]:
            if s["id"] == "c":
                return [h["host"] for h in s["claimed_hosts"]]
        return []

    def test_claim_then_worker_death(self):
        self.assertTrue(wait_for(lambda: self.claimed() == ["c.test"]),
                        self.ddv.read_log())
        # The claimer's own worker (Worker::CheckRequest) takes its claim.
        c = Connection(self.ddv.http_port)
        status, _, body = c.ask("c-base.test")
        self.assertEqual((status, site(body)), (200, "c"))
        status, _, body = c.ask("c.test")
        self.assertEqual((status, fields(body)["host"]), (200, "c.test"))
        c.close()
        # The default site now refuses it: c.test routes to c.
        c = Connection(self.ddv.http_port)
        self.assertEqual(site(c.ask("unknown.test")[2]), "fallback")
        self.assertEqual(c.ask("c.test")[0], 421)
        c.close()

        # The claiming process dies; its replacement does not claim again
        # (CLAIM_ONCE), so the claim is dropped.
        pid = self.ddv.worker_pids("c")[0]
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: self.claimed() == []))
        self.assertTrue(wait_for(
            lambda: self.ddv.worker_pids("c")[0] not in (0, pid)))
        self.ddv.wait_ready()

        def answer(first, then):
            """(site of `first`, status of `then`) on one new connection."""
            conn = Connection(self.ddv.http_port)
            try:
                status, _, body = conn.ask(first)
                if status != 200:
                    return None
                return (site(body), conn.ask(then)[0])
            except EOFError:
                return None
            finally:
                conn.close()

        # The new view reaches every worker within a loop turn or so.
        self.assertTrue(wait_for(
            lambda: answer("c-base.test", "c.test") == ("c", 421)))
        self.assertTrue(wait_for(
            lambda: answer("unknown.test", "c.test") == ("fallback", 200)))


class ReloadTest(unittest.TestCase):
    """A reload changes the names live: open connections are checked
    against the new ones, and strict_host turns on and off."""

    def setUp(self):
        self.ddv = harness.Ddv(config_text=config)

    def tearDown(self):
        code = self.ddv.stop()
        self.assertEqual(code, 0, self.ddv.read_log())

    def reload(self, **kwargs):
        self.ddv.write_text(config(self.ddv, **kwargs))
        reply = harness.control(self.ddv.control_socket, "reload")
        self.assertTrue(reply.startswith("ok"), reply)

    def test_hosts_and_strict_host_change_live(self):
        a = Connection(self.ddv.http_port)
        lax = Connection(self.ddv.http_port)
        self.assertEqual(site(a.ask("a.test")[2]), "a")
        self.assertEqual(site(lax.ask("lax.test")[2]), "lax")
        self.reload(a_hosts=("a.test", "a2.test"), lax_strict=True)
        # Views go out in the loop turn after the reload: the reply came
        # from that turn's control point.
        time.sleep(0.2)
        self.assertEqual(site(a.ask("a2.test")[2]), "a")
        self.assert_misdirected_on(lax, "b.test")
        self.reload(a_hosts=("a2.test",), lax_strict=False)
        time.sleep(0.2)
        self.assertEqual(site(a.ask("a2.test")[2]), "a")
        self.assert_misdirected_on(a, "a.test")
        lax = Connection(self.ddv.http_port)
        self.assertEqual(site(lax.ask("lax.test")[2]), "lax")
        self.assertEqual(site(lax.ask("b.test")[2]), "lax")
        lax.close()

    def assert_misdirected_on(self, conn, host):
        status, headers, _ = conn.ask(host)
        self.assertEqual((status, headers.get("connection")), (421, "close"))
        conn.close()

    def test_no_spurious_421_under_load_while_things_change(self):
        """Keep-alive load on every site's own names while reloads, a
        rolling restart and a claimer's death change the views: every
        request succeeds, none is refused."""
        # Not c: its test worker serves one connection at a time.
        hosts = ["a.test", "b.test", "y.wild.test", "x.wild.test",
                 "unknown.test"]
        load = start_load(self.ddv.http_port, hosts, connections=12,
                          duration=8.0, rate=1500)
        try:
            time.sleep(0.5)
            self.reload(a_hosts=("a.test", "a2.test"))
            time.sleep(0.5)
            reply = harness.control(self.ddv.control_socket, "restart b")
            self.assertTrue(reply.startswith("ok"), reply)
            time.sleep(0.5)
            self.reload(a_hosts=("a.test",), lax_strict=True)
            time.sleep(0.5)
            os.kill(self.ddv.worker_pids("c")[0], signal.SIGKILL)
            time.sleep(0.5)
            self.reload(a_hosts=("a.test", "a3.test"))
        finally:
            result = load.result(timeout=30)
        self.assertGreater(result["ok"], 1000, result.summary())
        self.assertFalse(result.failed(), result.summary())


class MasterRestartTest(unittest.TestCase):
    """Workers outlive their master: the next master adopts them and sends
    its own view (its listener numbering), and connections opened before
    the restart are still checked."""

    def setUp(self):
        self.ddv = harness.Ddv(config_text=config, watchdog=True)

    def tearDown(self):
        self.ddv.stop()

    def master_pid(self):
        try:
            return self.ddv.status()["pid"]
        except (OSError, ValueError, KeyError):
            return None

    def test_connections_across_a_master_restart(self):
        before = Connection(self.ddv.http_port)
        self.assertEqual(site(before.ask("a.test")[2]), "a")
        a_pid = self.ddv.worker_pids("a")
        old = self.master_pid()
        os.kill(old, signal.SIGKILL)
        self.assertTrue(wait_for(
            lambda: self.master_pid() not in (None, old)), self.ddv.read_log())
        self.ddv.wait_ready()
        self.assertEqual(self.ddv.worker_pids("a"), a_pid)  # adopted
        # A reload the new master applies: a2.test is a's now.
        self.ddv.write_text(config(self.ddv, a_hosts=("a.test", "a2.test")))
        reply = harness.control(self.ddv.control_socket, "reload")
        self.assertTrue(reply.startswith("ok"), reply)
        time.sleep(0.2)
        self.assertEqual(site(before.ask("a2.test")[2]), "a")
        self.assertEqual(before.ask("b.test")[0], 421)
        before.close()
        after = Connection(self.ddv.http_port)
        self.assertEqual(site(after.ask("a.test")[2]), "a")
        self.assertEqual(after.ask("b.test")[0], 421)
        after.close()


class FirstRequestTest(unittest.TestCase):
    """The first request names what the master routed the connection by
    (docs/isolation.md): a reload moves move-a.test (ddv_hello's) and
    move-c.test (the C worker's) to b while a connection routed by each
    waits unread in its worker, so the worker reads it under the new view.
    The race, made certain: each worker is stopped (SIGSTOP) from before the
    handoff until the new view is in its channel, behind the connection.
    The two requests pipelined on each connection are read after both, so
    the second one's 421 shows the first was checked against the new view
    too, and answered only by the first-request rule."""

    MOVERS = (("a", "move-a.test"), ("cw", "move-c.test"))

    def setUp(self):
        self.ddv = harness.Ddv(config_text=config)
        self.addCleanup(self.ddv.stop)

    def worker(self, site_id):
        for s in self.ddv.status()["sites"]:
            if s["id"] == site_id:
                (w,) = s["workers"]
                return w
        raise KeyError(site_id)

    def test_first_request_routed_before_a_move_is_answered(self):
        pids = [self.worker(site_id)["pid"] for site_id, _ in self.MOVERS]
        conns = []
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            for site_id, host in self.MOVERS:
                handed = self.worker(site_id)["handed_off"]
                c = Connection(self.ddv.http_port)
                self.addCleanup(c.close)
                conns.append(c)
                c.send(2 * f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"
                       .encode())
                self.assertTrue(wait_for(
                    lambda: self.worker(site_id)["handed_off"] > handed),
                    self.ddv.read_log())
            unread = [self.worker(s)["unread_bytes"] for s, _ in self.MOVERS]
            self.ddv.write_text(config(self.ddv, moved=True))
            reply = harness.control(self.ddv.control_socket, "reload")
            self.assertTrue(reply.startswith("ok"), reply)
            # The new views are queued behind the connections.
            self.assertTrue(wait_for(lambda: all(
                self.worker(s)["unread_bytes"] > before
                for (s, _), before in zip(self.MOVERS, unread))))
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        for (site_id, host), c in zip(self.MOVERS, conns):
            with self.subTest(site=site_id):
                status, _, body = c.read()
                self.assertEqual((status, site(body)), (200, site_id), body)
                status, headers, _ = c.read()
                self.assertEqual((status, headers.get("connection")),
                                 (421, "close"))
                # A new connection for the name goes to its new site.
                fresh = Connection(self.ddv.http_port)
                self.addCleanup(fresh.close)
                status, _, body = fresh.ask(host)
                self.assertEqual((status, site(body)), (200, "b"))


class CountsTest(unittest.TestCase):
    def test_ddv_hello_counts_its_421s(self):
        ddv = harness.Ddv(config_text=config)
        try:
            for _ in range(3):
                c = Connection(ddv.http_port)
                c.ask("a.test")
                self.assertEqual(c.ask("b.test")[0], 421)
                c.close()
        finally:
            self.assertEqual(ddv.stop(), 0)
        with open(os.path.join(ddv.dir, "a.log")) as f:
            log = f.read()
        counts = re.findall(r"\((\d+) refused 421 Misdirected Request\)", log)
        self.assertEqual(counts, ["3"], log[-2000:])


if __name__ == "__main__":
    unittest.main()
