"""Access logs end to end (docs/metrics.md): a real master and ddv_hello
workers, real clients; the lines read back and parsed, JSON and logfmt.

- one line per connection, for every outcome, with its listener, peer,
  PROXY peer, Host or SNI, ALPN, site, worker pid and microseconds;
- two listeners may share a file; sampling logs about the share asked;
- files moved away and reopened (`ddvctl reopen`, SIGUSR1 to the master,
  SIGUSR1 to the watchdog) under load: the files together hold exactly one
  line per connection;
- a reload can start a log, and one naming a file that cannot be opened
  fails with the reason.
"""
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import time
import unittest

import harness
from harness import fields, free_port, http_get, wait_for
from pyddv import load as pyload
from scrape import scrape, total, value


def ddvctl(ddv, *args):
    return subprocess.run(
        [harness.runfile("src/ddvctl"), f"--control_socket={ddv.control_socket}",
         *args], capture_output=True, text=True, timeout=10)


LOGFMT_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    out = {}
    for key, raw in LOGFMT_PAIR.findall(line):
        out[key] = json.loads(raw) if raw.startswith('"') else raw
    # Everything on the line is key=value: nothing left over.
    rest = LOGFMT_PAIR.sub("", line).strip()
    if rest:
        raise ValueError(f"not logfmt: {line!r} (left: {rest!r})")
    return out


def read_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    if text and not text.endswith("\n"):
        raise ValueError(f"{path}: a partial last line")
    return text.splitlines()


def config(ddv, sample=0.25, extra_listener=""):
    ddv.sampled_port = getattr(ddv, "sampled_port", None) or free_port()
    ddv.proxied_port = getattr(ddv, "proxied_port", None) or free_port()
    return f"""
[master]
control_socket = "{ddv.control_socket}"
peek_timeout_ms = 500
max_peek_bytes = 1024

[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"
access_log = "{ddv.dir}/access.log"

[[listener]]
name = "strict"
address = "127.0.0.1:{ddv.strict_port}"
protocol = "http"
access_log = "{ddv.dir}/strict.log"
access_log_format = "logfmt"

[[listener]]
name = "tls"
address = "127.0.0.1:{ddv.tls_port}"
protocol = "tls"
access_log = "{ddv.dir}/access.log"

[[listener]]
name = "proxied"
address = "127.0.0.1:{ddv.proxied_port}"
protocol = "http"
proxy_protocol = true
access_log = "{ddv.dir}/access.log"

[[listener]]
name = "sampled"
address = "127.0.0.1:{ddv.sampled_port}"
protocol = "http"
access_log = "{ddv.dir}/sampled.log"
access_log_sample = {sample}
{extra_listener}
[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a", "--ring_entries=256"]
hosts = ["a.localhost"]

[[site]]
id = "b"
command = ["{ddv.hello}", "--site=b", "--ring_entries=256"]
hosts = ["b.localhost"]
"""


class AccessLogTest(unittest.TestCase):
    def setUp(self):
        self.ddv = harness.Ddv(config_text=config,
                               extra_flags=["--defer_accept_seconds=0"])
        self.path = os.path.join(self.ddv.dir, "access.log")

    def tearDown(self):
        self.assertEqual(self.ddv.stop(), 0, self.ddv.read_log())

    def wait_lines(self, path, n, timeout=10):
        lines = wait_for(lambda: (lambda l: l if len(l) >= n else None)(
            read_lines(path)), timeout=timeout)
        self.assertTrue(lines, f"{path}: {read_lines(path)}")
        self.assertEqual(len(lines), n, lines)
        return lines

    def test_one_line_per_connection_for_every_outcome(self):
        ddv = self.ddv
        started = datetime.datetime.now(datetime.timezone.utc)
        status, body, routed_port = http_get(ddv.http_port, "a.localhost")
        self.assertEqual(status, 200)
        worker_pid = int(fields(body)["pid"])
        self.assertEqual(http_get(ddv.http_port, "nobody.test")[0], 421)
        big = (b"GET / HTTP/1.1\r\nHost: a.localhost\r\nX: " + b"a" * 2000
               + b"\r\n\r\n")
        self.assertEqual(http_get(ddv.http_port, raw=big)[0], 431)
        self.assertEqual(http_get(ddv.http_port,
                                  raw=b"get / HTTP/1.1\r\n\r\n")[0], 400)
        with socket.create_connection(("127.0.0.1", ddv.http_port),
                                      timeout=5) as idle:
            timeout_port = idle.getsockname()[1]
            self.assertEqual(
                harness.parse_response(harness.recv_all(idle))[0], 408)
        with socket.create_connection(("127.0.0.1", ddv.http_port),
                                      timeout=5) as gone:
            gone.sendall(b"GET / HT")
        self.assertIsNotNone(harness.tls_hello(ddv.tls_port, "nobody.tls",
                                       ["h2", "http/1.1"]))
        proxy = (b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n"
                 b"GET / HTTP/1.1\r\nHost: b.localhost\r\n"
                 b"Connection: close\r\n\r\n")
        status, body, _ = http_get(ddv.proxied_port, raw=proxy)
        self.assertEqual((status, fields(body)["peer"]),
                         (200, "203.0.113.7:5555"))
        self.assertEqual(http_get(ddv.strict_port, "b.localhost")[0], 200)

        lines = [json.loads(l) for l in self.wait_lines(self.path, 8)]
        for line in lines:
            self.assertEqual(list(line), ["time", "listener", "peer",
                                          "proxy_peer", "host", "alpn",
                                          "site", "worker_pid", "outcome",
                                          "us"])
            t = datetime.datetime.strptime(line["time"],
                                           "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc)
            self.assertLess(abs((t - started).total_seconds()), 60)
            self.assertIsInstance(line["us"], int)
            self.assertGreaterEqual(line["us"], 0)
            self.assertRegex(line["peer"], r"^127\.0\.0\.1:\d+$")
        by_outcome = {}
        for line in lines:
            by_outcome.setdefault(line["outcome"], []).append(line)
        self.assertEqual(sorted(by_outcome), ["closed", "malformed", "no_site",
                                              "routed", "timeout",
                                              "too_large"])
        routed = by_outcome["routed"]
        self.assertEqual(len(routed), 2)
        self.assertEqual(routed[0]["listener"], "http")
        self.assertEqual(routed[0]["peer"], f"127.0.0.1:{routed_port}")
        self.assertEqual(routed[0]["host"], "a.localhost")
        self.assertEqual(routed[0]["site"], "a")
        self.assertEqual(routed[0]["worker_pid"], worker_pid)
        self.assertIsNone(routed[0]["proxy_peer"])
        self.assertEqual(routed[1]["listener"], "proxied")
        self.assertEqual(routed[1]["proxy_peer"], "203.0.113.7:5555")
        self.assertEqual(routed[1]["site"], "b")
        no_site = sorted(by_outcome["no_site"], key=lambda l: l["listener"])
        self.assertEqual([(l["listener"], l["host"], l["alpn"], l["site"],
                           l["worker_pid"]) for l in no_site],
                         [("http", "nobody.test", None, None, None),
                          ("tls", "nobody.tls", "h2,http/1.1", None, None)])
        timeout = by_outcome["timeout"][0]
        self.assertEqual(timeout["peer"], f"127.0.0.1:{timeout_port}")
        self.assertGreaterEqual(timeout["us"], 400000)  # the peek deadline
        self.assertIsNone(timeout["host"])

        strict = [parse_logfmt(l) for l in
                  self.wait_lines(os.path.join(ddv.dir, "strict.log"), 1)]
        self.assertEqual(strict[0]["listener"], "strict")
        self.assertEqual(strict[0]["outcome"], "routed")
        self.assertEqual(strict[0]["site"], "b")
        self.assertEqual(strict[0]["host"], "b.localhost")
        self.assertNotIn("proxy_peer", strict[0])
        self.assertRegex(strict[0]["time"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertRegex(strict[0]["us"], r"^\d+$")
        m = scrape_counters(ddv)
        self.assertEqual(m["ddv_access_log_lines_total"], 9)
        self.assertEqual(m["ddv_access_log_dropped_lines_total"], 0)
        # Files as the log writer makes them: 0640 (under the umask).
        umask = os.umask(0)
        os.umask(umask)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o640 & ~umask)

    def test_sampling_logs_about_the_share(self):
        ddv = self.ddv
        for _ in range(400):
            self.assertEqual(http_get(ddv.sampled_port, "a.localhost")[0], 200)
        sampled = os.path.join(ddv.dir, "sampled.log")
        # 400 connections at 0.25: 100 expected, sigma 8.7.
        wait_for(lambda: scrape_counters(ddv)["ddv_access_log_lines_total"]
                 == len(read_lines(sampled)))
        n = len(read_lines(sampled))
        self.assertGreater(n, 50)
        self.assertLess(n, 150)
        self.assertEqual(scrape_counters(ddv)["ddv_access_log_lines_total"], n)

    def test_reopen_after_rename_under_load_loses_no_line(self):
        ddv = self.ddv
        load = pyload.start_load(ddv.http_port, ["a.localhost", "b.localhost"],
                                 "new_connection", connections=4, rate=300,
                                 duration=4)
        try:
            moved = []
            for i in range(4):
                time.sleep(0.7)
                dest = f"{self.path}.{i}"
                os.rename(self.path, dest)
                moved.append(dest)
                if i % 2 == 0:
                    out = ddvctl(ddv, "reopen")
                    self.assertEqual(out.returncode, 0, out.stderr)
                else:
                    ddv.proc.send_signal(signal.SIGUSR1)
            result = load.result()
        finally:
            load.kill()
        self.assertEqual(result.failed(), 0, result.summary())
        files = moved + [self.path]

        def counts():
            m = scrape_counters(ddv)
            return (sum(len(read_lines(f)) for f in files),
                    m["ddv_access_log_lines_total"])
        self.assertTrue(wait_for(lambda: (lambda c: c[0] == c[1])(counts())),
                        counts())
        lines = [json.loads(l) for f in files for l in read_lines(f)]
        self.assertEqual(len(lines), result["connections"], result.summary())
        self.assertEqual({l["outcome"] for l in lines}, {"routed"})
        # A line written twice would repeat its time and peer (a peer port
        # alone may be reused by the client).
        keys = [(l["time"], l["peer"]) for l in lines]
        self.assertEqual(len(set(keys)), len(keys), "a line twice")
        for f in files:
            self.assertTrue(read_lines(f), f"{f} got no line")

    def test_reload_starts_a_log_and_refuses_one_it_cannot_open(self):
        ddv = self.ddv
        extra_port = free_port()
        good = f"""
[[listener]]
name = "extra"
address = "127.0.0.1:{extra_port}"
protocol = "http"
access_log = "{ddv.dir}/extra.log"
access_log_format = "logfmt"
"""
        ddv.write_text(config(ddv, extra_listener=good))
        out = ddvctl(ddv, "reload")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(http_get(extra_port, "a.localhost")[0], 200)
        line = parse_logfmt(
            self.wait_lines(os.path.join(ddv.dir, "extra.log"), 1)[0])
        self.assertEqual((line["listener"], line["outcome"]),
                         ("extra", "routed"))
        bad = good.replace(f"{ddv.dir}/extra.log",
                           f"{ddv.dir}/no-such-dir/extra.log")
        ddv.write_text(config(ddv, extra_listener=bad))
        out = ddvctl(ddv, "reload")
        self.assertEqual(out.returncode, 1)
        self.assertIn(f'open() failed while opening access log '
                      f'"{ddv.dir}/no-such-dir/extra.log"', out.stderr)
        self.assertIn('for listener "extra"', out.stderr)
        # The running config stands: still logged where it was.
        self.assertEqual(http_get(extra_port, "a.localhost")[0], 200)
        self.wait_lines(os.path.join(ddv.dir, "extra.log"), 2)


def scrape_counters(ddv):
    return harness.control_counters(ddv.control_socket)


class WatchdogReopenTest(unittest.TestCase):
    def test_sigusr1_to_the_watchdog_reopens_the_access_log(self):
        ddv = harness.Ddv(config_text=config, watchdog=True)
        try:
            path = os.path.join(ddv.dir, "access.log")
            self.assertEqual(http_get(ddv.http_port, "a.localhost")[0], 200)
            self.assertTrue(wait_for(lambda: len(read_lines(path)) == 1))
            os.rename(path, path + ".1")
            os.kill(ddv.proc.pid, signal.SIGUSR1)  # the watchdog
            self.assertTrue(wait_for(lambda: os.path.exists(path)),
                            "not reopened")
            self.assertEqual(http_get(ddv.http_port, "b.localhost")[0], 200)
            self.assertTrue(wait_for(lambda: len(read_lines(path)) == 1))
            self.assertEqual(len(read_lines(path + ".1")), 1)
            self.assertEqual(json.loads(read_lines(path)[0])["site"], "b")
        finally:
            self.assertEqual(ddv.stop(), 0, ddv.read_log())


if __name__ == "__main__":
    unittest.main()
