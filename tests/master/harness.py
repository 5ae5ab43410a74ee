"""Starts a real ddv_master (and through it real ddv_hello workers) for tests.

Everything is real: the binaries from runfiles, loopback sockets, and the
control socket. Every wait is bounded. The generic helpers (ports, requests,
the control socket, stopping a process) live in //python:pyddv, shared with
the load benchmark; they are re-exported here for the tests.
"""
import atexit
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from pyddv.control import control, counters as control_counters, \
    status as control_status, \
    wait_workers_ready
from pyddv.net import free_port, http_get, parse_response, recv_all
from pyddv.procs import stop_process
from pyddv.runfiles import runfile

__all__ = ["runfile", "free_port", "control", "control_counters", "Ddv",
           "HttpConnection",
           "crashy_worker", "tls_hello",
           "http_get", "recv_all", "parse_response", "fields", "full_log",
           "wait_for"]



def node_preload():
    """The ddv-worker package's preload.js when the test has it in its
    runfiles (Node tests), else "": masters under test never pick up one
    installed on the machine."""
    try:
        return runfile("node/ddv-worker/preload.js")
    except FileNotFoundError:
        return ""


class Ddv:
    """A running ddv_master --watchdog=false with a generated config."""

    def __init__(self, handoff="scm_rights", peek_timeout_ms=1500,
                 max_peek_bytes=16384, extra_flags=(), watchdog=False,
                 config_text=None, prefix=()):
        """`prefix`: argv before ddv_master's, e.g. a prlimit command that
        execs it (the process stays the master)."""
        self.dir = tempfile.mkdtemp(prefix="ddv-test-",
                                    dir=os.environ.get("TEST_TMPDIR"))
        self.hello = runfile("src/ddv_hello")
        self.master_bin = runfile("src/ddv_master")
        self.http_port = free_port()
        self.strict_port = free_port()   # no default site: unknown -> 421
        self.tls_port = free_port()
        self.tcp_port = free_port()
        # Unix socket paths are limited to 108 bytes; the test tmpdir is long.
        control_dir = tempfile.mkdtemp(prefix="ddv-", dir="/tmp")
        # Outside the test's tmpdir: removed when the test process ends.
        atexit.register(shutil.rmtree, control_dir, True)
        self.control_socket = os.path.join(control_dir, "control.sock")
        self.config_path = os.path.join(self.dir, "ddv.toml")
        if config_text is None:
            self.write_config(handoff, peek_timeout_ms, max_peek_bytes)
        else:
            self.write_text(config_text(self))
        self.log = open(os.path.join(self.dir, "master.log"), "w")
        self.proc = subprocess.Popen(
            [*prefix, self.master_bin, f"--config={self.config_path}",
             f"--watchdog={'true' if watchdog else 'false'}",
             "--backoff_initial_ms=50",
             # io_uring rings count against the user's RLIMIT_MEMLOCK,
             # which every test's masters share (8 MiB here, and not
             # raisable in CI's container): a small ring (~25 KiB locked
             # instead of ~400) lets parallel tests start theirs.
             "--ring_entries=256",
             f"--node_preload={node_preload()}",
             *extra_flags],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.wait_ready()
        except BaseException:
            # No test holds this Ddv to stop it: the master and its workers
            # would outlive the failure.
            self.stop()
            raise

    def write_text(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)

    def write_config(self, handoff="scm_rights", peek_timeout_ms=1500,
                     max_peek_bytes=16384, b_hosts=("b.localhost",)):
        b_hosts_toml = ", ".join(f'"{h}"' for h in b_hosts)
        with open(self.config_path, "w") as f:
            f.write(f"""
[master]
control_socket = "{self.control_socket}"
peek_timeout_ms = {peek_timeout_ms}
max_peek_bytes = {max_peek_bytes}
handoff = "{handoff}"

[[listener]]
name = "http"
address = "127.0.0.1:{self.http_port}"
protocol = "http"
default_site = "fallback"

[[listener]]
name = "strict"
address = "127.0.0.1:{self.strict_port}"
protocol = "http"

[[listener]]
name = "https"
address = "127.0.0.1:{self.tls_port}"
protocol = "tls"

[[listener]]
name = "raw"
address = "127.0.0.1:{self.tcp_port}"
protocol = "tcp"
default_site = "b"

[[site]]
id = "a"
command = ["{self.hello}", "--site=a", "--ring_entries=256"]
processes = 2
hosts = ["a.localhost", "*.a.localhost"]
listeners = ["http", "strict", "https"]
log_all = "{self.dir}/a.log"

[[site]]
id = "b"
command = ["{self.hello}", "--site=b", "--ring_entries=256"]
processes = 1
hosts = [{b_hosts_toml}]
log_all = "{self.dir}/b.log"

[[site]]
id = "fallback"
command = ["{self.hello}", "--site=fallback", "--ring_entries=256"]
processes = 1
listeners = ["http"]
log_all = "{self.dir}/fallback.log"
""")

    def status(self):
        return control_status(self.control_socket)

    def wait_ready(self, timeout=15.0):
        """Until every worker is ready, and /metrics is served when asked
        for: a master that could not bind its metrics address serves
        without it (docs/metrics.md), and a scrape would reach whoever
        holds the port instead, with a confusing answer (a TLS listener
        resets it)."""
        try:
            status = wait_workers_ready(self.proc, self.control_socket,
                                        timeout)
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n{self.read_log()}") from None
        if "metrics_address" in status and status["metrics_address"] is None:
            raise RuntimeError(f"ddv_master did not bind its metrics "
                               f"address\n{self.read_log()}")
        return status

    def read_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(os.path.join(self.dir, "master.log")) as f:
            return f.read()[-4000:]

    def worker_pids(self, site):
        for s in self.status()["sites"]:
            if s["id"] == site:
                return [w["pid"] for w in s["workers"]]
        raise KeyError(site)

    def stop(self):
        stop_process(self.proc, timeout=20)
        self.log.close()
        return self.proc.returncode


class HttpConnection:
    """One keep-alive HTTP/1.1 connection (TLS with `sni`, the certificate
    not checked); each ask() sends one request and reads its whole answer."""

    def __init__(self, port, sni=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        if sni is None:
            self.sock = raw
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["http/1.1"])
            self.sock = ctx.wrap_socket(raw, server_hostname=sni)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def ask(self, host, target="/", version="1.1"):
        head = f"GET {target} HTTP/{version}\r\n"
        if host is not None:
            head += f"Host: {host}\r\n"
        self.send((head + "\r\n").encode())
        return self.read()

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            data = b""
        if not data:
            raise EOFError("closed")
        self.buf += data

    def read(self):
        """(status, headers dict, body) of the next answer."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip()
                   for k, v in (l.split(":", 1) for l in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body.decode()

    def closed_by_peer(self):
        """True when the server has closed its side (EOF with nothing more)."""
        try:
            self._fill()
        except EOFError:
            return True
        return False


def crashy_worker(ddv, site="crashy", flag_name="healthy"):
    """A worker command that runs ddv_hello as `site` while the file
    `flag_name` exists in ddv.dir and exits 1 at once otherwise: remove the
    flag to make the site crash-loop, create it again to fix it. Returns
    (flag path, script path); the flag exists."""
    flag = os.path.join(ddv.dir, flag_name)
    script = os.path.join(ddv.dir, f"{site}.sh")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\n[ -e {flag} ] || exit 1\n"
                f"exec {ddv.hello} --site={site}\n")
    os.chmod(script, 0o755)
    open(flag, "w").close()
    return flag, script


def full_log(ddv):
    """The master's whole log so far (read_log keeps only the tail)."""
    if not ddv.log.closed:
        ddv.log.flush()
    with open(os.path.join(ddv.dir, "master.log")) as f:
        return f.read()


def tls_hello(port, sni, alpn=()):
    """A TLS handshake on loopback `port` offering `sni` (and `alpn`); the
    error it ended with, or None when it completed."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if alpn:
        c.set_alpn_protocols(list(alpn))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with c.wrap_socket(raw, server_hostname=sni):
                pass
        except (ssl.SSLError, OSError) as e:
            return e
    return None


def wait_for(predicate, timeout=10.0, interval=0.05):
    """Polls `predicate` until it returns something true or `timeout`
    passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def fields(body):
    """'site=a worker=0 ...' -> dict."""
    return dict(item.split("=", 1) for item in body.split())
