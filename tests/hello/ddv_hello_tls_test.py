"""ddv_hello terminating TLS itself (standalone --tls), driven by real
clients, each a separate program or library: curl, openssl s_client, Python's
ssl module and Node's https. Also: SNI certificate choice checked by real
verification, ALPN, TLS 1.2/1.3, keep-alive and pipelining through TLS,
/bytes/N streamed through TLS, session resumption across two ddv_hello
processes sharing a ticket secret (flag and environment), SIGHUP certificate
reload, handshake failures, and the exit code for bad TLS flags.

Loopback only; every wait is bounded."""
import hashlib
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from pyddv.runfiles import runfile
from tests.testing.certificates import make_self_signed

SECRET = "5a" * 32
OTHER_SECRET = "a5" * 32


HELLO = runfile("src/ddv_hello")
TMP = tempfile.mkdtemp(prefix="ddv-hello-tls-",
                       dir=os.environ.get("TEST_TMPDIR"))


def make_cert(name, hosts):
    return make_self_signed(TMP, name, hosts)


A_CERT, A_KEY = make_cert("a", ["a.localhost", "*.a.localhost"])
B_CERT, B_KEY = make_cert("b", ["b.localhost"])


def fields(body):
    return dict(item.split("=", 1) for item in body.split())


class Hello:
    """A running `ddv_hello --port=0 --tls ...`."""

    def __init__(self, *flags, env=None, certs=True):
        args = [HELLO, "--port=0", "--tls"]
        if certs:
            args += [f"--tls_cert={A_CERT},{B_CERT}",
                     f"--tls_key={A_KEY},{B_KEY}"]
        args += list(flags)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.log_path = os.path.join(TMP, f"hello-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=self.log, env=full_env)
        line = self._readline(10.0)
        # "ddv_hello listening on 127.0.0.1:PORT (site ..., pid ...)"
        if "listening on" not in line:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"no listening line: {line!r}\n{self.read_log()}")
        self.port = int(line.split(" (site")[0].rsplit(":", 1)[1])

    def _readline(self, timeout):
        deadline = time.monotonic() + timeout
        data = b""
        fd = self.proc.stdout.fileno()
        while not data.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 1)
                if not chunk:
                    break
                data += chunk
        return data.decode(errors="replace")

    def read_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        """SIGTERM; returns (exit code, log)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self.proc.stdout.close()
        self.log.close()
        return code, self.read_log()


_CONTEXTS = {}


def client_context(alpn=("http/1.1",), version=None, cafile=None):
    # One context per configuration: Python resumes a session only through
    # the context that made it.
    key = (tuple(alpn or ()), version, cafile)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = _new_context(alpn, version, cafile)
    return _CONTEXTS[key]


def _new_context(alpn, version, cafile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def read_until_close(tls):
    chunks = []
    while True:
        try:
            data = tls.recv(65536)
        except (ssl.SSLZeroReturnError, ConnectionResetError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_responses(tls, count):
    """Reads `count` Content-Length responses from a kept-alive socket."""
    buf = b""
    out = []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            data = tls.recv(65536)
            if not data:
                raise AssertionError(f"closed after {len(out)} responses")
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            data = tls.recv(65536)
            if not data:
                raise AssertionError("closed inside a body")
            rest += data
        out.append((int(head.split(b" ")[1]), rest[:length]))
        buf = rest[length:]
    return out


def python_get(port, sni, alpn=("http/1.1",), version=None, session=None,
               cafile=None, path="/"):
    ctx = client_context(alpn, version, cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni, session=session) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni or 'none'}\r\n"
                        "Connection: close\r\n\r\n".encode())
            data = read_until_close(tls)
            head, _, body = data.partition(b"\r\n\r\n")
            return {"status": int(head.split(b" ")[1]), "body": body,
                    "session": tls.session, "reused": tls.session_reused,
                    "version": tls.version(),
                    "alpn": tls.selected_alpn_protocol()}


class TlsStandaloneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hello = Hello()

    @classmethod
    def tearDownClass(cls):
        code, log = cls.hello.stop()
        assert code == 0, log
        # The two junk connections of the handshake-failure test, nothing
        # else; and kTLS was asked for on every handshake (this kernel has
        # no tls ULP, so each one fell back to user-space records).
        assert ", 2 failed;" in log, log
        assert " 0 active," in log, log

    def test_curl(self):
        port = self.hello.port
        out = subprocess.run(
            ["curl", "-sS", "-k", "--max-time", "5", "--resolve",
             f"a.localhost:{port}:127.0.0.1", f"https://a.localhost:{port}/"],
            capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        f = fields(out.stdout)
        self.assertEqual(
            (f["tls"], f["sni"], f["alpn"], f["host"], f["site"], f["pid"]),
            ("1", "a.localhost", "http/1.1", f"a.localhost:{port}",
             "standalone", str(self.hello.proc.pid)))
        self.assertTrue(f["peer"].startswith("127.0.0.1:"))

    def test_curl_verifies_the_certificate_chosen_by_sni(self):
        # No -k: curl checks the chain and the name, so each host must get
        # its own certificate.
        port = self.hello.port
        for host, cafile in [("b.localhost", B_CERT),
                             ("a.localhost", A_CERT),
                             ("deep.a.localhost", A_CERT)]:
            out = subprocess.run(
                ["curl", "-sS", "--cacert", cafile, "--max-time", "5",
                 "--resolve", f"{host}:{port}:127.0.0.1",
                 f"https://{host}:{port}/", "https://" + host + f":{port}/again"],
                capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 0, f"{host}: {out.stderr}")
            self.assertIn(f"sni={host} ", out.stdout)
            self.assertEqual(out.stdout.count("tls=1"), 2)  # keep-alive

    def test_curl_bytes_streamed_through_tls(self):
        port = self.hello.port
        n = 5_000_000
        out = subprocess.run(
            ["curl", "-sS", "-k", "--max-time", "20", "--resolve",
             f"a.localhost:{port}:127.0.0.1",
             f"https://a.localhost:{port}/bytes/{n}"],
            capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(out.stdout), n)
        self.assertEqual(out.stdout[:64], (bytes(range(97, 97 + 26)) * 3)[:63] + b"\n")

    def test_openssl_s_client(self):
        port = self.hello.port
        for sni, cn in [("b.localhost", "b.localhost"),
                        ("a.localhost", "a.localhost"),
                        ("x.a.localhost", "a.localhost")]:
            out = subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                 "-servername", sni, "-alpn", "h2,http/1.1", "-ign_eof"],
                input=f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close"
                      "\r\n\r\n".encode(),
                capture_output=True, timeout=10)
            text = out.stdout.decode(errors="replace")
            self.assertIn(f"subject=CN = {cn}", text)
            self.assertIn("ALPN protocol: http/1.1", text)
            self.assertIn(f"sni={sni} alpn=http/1.1 tls=1", text)
        # Only acme-tls/1 offered: no ALPN at all, and still served.
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
             "-servername", "a.localhost", "-alpn", "acme-tls/1", "-ign_eof"],
            input=b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            capture_output=True, timeout=10)
        text = out.stdout.decode(errors="replace")
        self.assertIn("No ALPN negotiated", text)
        self.assertIn("sni=a.localhost alpn=- tls=1", text)
        # No SNI: the default (first) certificate and sni=-.
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
             "-noservername", "-ign_eof"],
            input=b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            capture_output=True, timeout=10)
        text = out.stdout.decode(errors="replace")
        self.assertIn("subject=CN = a.localhost", text)
        self.assertIn("sni=- alpn=- tls=1", text)

    def test_python_tls12_and_tls13_with_verification(self):
        for version, name in [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                              (ssl.TLSVersion.TLSv1_3, "TLSv1.3")]:
            r = python_get(self.hello.port, "b.localhost",
                           alpn=("h2", "http/1.1"), version=version,
                           cafile=B_CERT)
            self.assertEqual(r["status"], 200)
            self.assertEqual(r["version"], name)
            self.assertEqual(r["alpn"], "http/1.1")
            f = fields(r["body"].decode())
            self.assertEqual((f["sni"], f["alpn"], f["tls"]),
                             ("b.localhost", "http/1.1", "1"))

    def test_python_keep_alive_and_pipelining(self):
        ctx = client_context()
        with socket.create_connection(("127.0.0.1", self.hello.port),
                                      timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.localhost") as tls:
                tls.sendall(b"GET /1 HTTP/1.1\r\nHost: one\r\n\r\n")
                [(status, body)] = read_responses(tls, 1)
                self.assertEqual(fields(body.decode())["host"], "one")
                # Three requests in one write, a /bytes body in the middle.
                tls.sendall(b"GET /2 HTTP/1.1\r\nHost: two\r\n\r\n"
                            b"GET /bytes/300000 HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"GET /4 HTTP/1.1\r\nHost: four\r\n\r\n")
                responses = read_responses(tls, 3)
                self.assertEqual(fields(responses[0][1].decode())["host"], "two")
                self.assertEqual(len(responses[1][1]), 300000)
                self.assertEqual(fields(responses[2][1].decode())["host"],
                                 "four")
                # A request split across many TLS records.
                for piece in (b"GET /5 HT", b"TP/1.1\r\nHo", b"st: five\r\n",
                              b"\r\n"):
                    tls.sendall(piece)
                    time.sleep(0.01)
                [(status, body)] = read_responses(tls, 1)
                self.assertEqual(fields(body.decode())["host"], "five")

    def test_python_slow_reader_of_a_big_body(self):
        # The server must not buffer the whole body: it encrypts piece by
        # piece as the client reads. A client that reads slowly still gets
        # every byte.
        ctx = client_context()
        n = 20_000_000
        with socket.create_connection(("127.0.0.1", self.hello.port),
                                      timeout=10) as raw:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            with ctx.wrap_socket(raw, server_hostname="a.localhost") as tls:
                tls.sendall(f"GET /bytes/{n} HTTP/1.1\r\nHost: a\r\n"
                            "Connection: close\r\n\r\n".encode())
                time.sleep(0.5)  # let the server hit the full socket
                data = read_until_close(tls)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertEqual(len(body), n)
        self.assertIn(f"Content-Length: {n}".encode(), head)

    def test_node_https(self):
        node = shutil.which("node") or "/usr/bin/node"
        if not os.path.exists(node):
            self.skipTest("node is not installed")
        script = f"""
const https = require('https');
const req = https.get({{host: '127.0.0.1', port: {self.hello.port},
  servername: 'b.localhost', headers: {{Host: 'b.localhost'}},
  rejectUnauthorized: false}}, res => {{
  let body = '';
  const cert = res.socket.getPeerCertificate();
  const protocol = res.socket.getProtocol();
  res.on('data', d => body += d);
  res.on('end', () => {{
    process.stdout.write(JSON.stringify({{body, status: res.statusCode,
      san: cert.subjectaltname, protocol}}));
  }});
}});
req.on('error', e => {{ console.error(e); process.exit(1); }});
req.setTimeout(5000, () => {{ console.error('timeout'); process.exit(1); }});
"""
        out = subprocess.run([node, "-e", script], capture_output=True,
                             text=True, timeout=15)
        self.assertEqual(out.returncode, 0, out.stderr)
        import json
        r = json.loads(out.stdout)
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["san"], "DNS:b.localhost")
        self.assertEqual(r["protocol"], "TLSv1.3")
        f = fields(r["body"])
        self.assertEqual((f["tls"], f["sni"], f["host"]),
                         ("1", "b.localhost", "b.localhost"))

    def test_handshake_failures_are_closed_and_the_server_goes_on(self):
        for junk in (b"GET / HTTP/1.1\r\nHost: plain\r\n\r\n",
                     b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"):
            with socket.create_connection(("127.0.0.1", self.hello.port),
                                          timeout=5) as s:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                # Nothing but (at most) a TLS alert record came back.
                self.assertTrue(data == b"" or data[0] == 21, data)
        r = python_get(self.hello.port, "a.localhost")
        self.assertEqual(r["status"], 200)


class TicketSharingTest(unittest.TestCase):
    """Two ddv_hello processes with one secret resume each other's sessions;
    a third with another secret does not."""

    def check_sharing(self, first, second, third):
        try:
            for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
                issued = python_get(first.port, "a.localhost", version=version)
                self.assertFalse(issued["reused"])
                self.assertIsNotNone(issued["session"])
                self.assertTrue(issued["session"].has_ticket, version)
                on_second = python_get(second.port, "a.localhost",
                                       version=version,
                                       session=issued["session"])
                self.assertTrue(on_second["reused"], version)
                f = fields(on_second["body"].decode())
                self.assertEqual(f["pid"], str(second.proc.pid))
                self.assertEqual(f["sni"], "a.localhost")
                on_third = python_get(third.port, "a.localhost",
                                      version=version,
                                      session=issued["session"])
                self.assertFalse(on_third["reused"], version)
                self.assertEqual(on_third["status"], 200)
        finally:
            logs = [p.stop() for p in (first, second, third)]
        for code, log in logs:
            self.assertEqual(code, 0, log)
        self.assertIn("(2 resumed)", logs[1][1])
        self.assertIn("(0 resumed)", logs[2][1])

    def test_flag_secret(self):
        self.check_sharing(Hello(f"--ticket_secret={SECRET}"),
                           Hello(f"--ticket_secret={SECRET}"),
                           Hello(f"--ticket_secret={OTHER_SECRET}"))

    def test_master_environment_contract(self):
        # What the master sets: cert/key paths joined by ':' and the secret.
        def env(secret):
            return {"DDV_TLS_CERT": f"{A_CERT}:{B_CERT}",
                    "DDV_TLS_KEY": f"{A_KEY}:{B_KEY}",
                    "DDV_TLS_TICKET_SECRET": secret}
        first = Hello(env=env(SECRET), certs=False)
        second = Hello(env=env(SECRET), certs=False)
        third = Hello(env=env(OTHER_SECRET), certs=False)
        # The environment's second pair is served for its host.
        r = python_get(second.port, "b.localhost", cafile=B_CERT)
        self.assertEqual(r["status"], 200)
        self.check_sharing(first, second, third)


class ReloadTest(unittest.TestCase):
    def subject(self, port):
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
             "-servername", "a.localhost"],
            input=b"", capture_output=True, timeout=10)
        for line in out.stdout.decode(errors="replace").splitlines():
            if line.startswith("subject="):
                return line
        return None

    def test_sighup_reloads_certificates_and_a_bad_file_keeps_the_old(self):
        live_cert = os.path.join(TMP, "live.crt")
        live_key = os.path.join(TMP, "live.key")
        shutil.copy(A_CERT, live_cert)
        shutil.copy(A_KEY, live_key)
        new_cert, new_key = make_cert("new", ["new.localhost"])
        hello = Hello(f"--tls_cert={live_cert}", f"--tls_key={live_key}",
                      certs=False)
        try:
            self.assertEqual(self.subject(hello.port), "subject=CN = a.localhost")
            # A connection open across the reload keeps working.
            ctx = client_context()
            raw = socket.create_connection(("127.0.0.1", hello.port), timeout=5)
            kept = ctx.wrap_socket(raw, server_hostname="a.localhost")
            shutil.copy(new_cert, live_cert)
            shutil.copy(new_key, live_key)
            hello.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while (self.subject(hello.port) != "subject=CN = new.localhost"
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            self.assertEqual(self.subject(hello.port),
                             "subject=CN = new.localhost")
            kept.sendall(b"GET / HTTP/1.1\r\nHost: kept\r\n\r\n")
            [(status, body)] = read_responses(kept, 1)
            self.assertEqual(fields(body.decode())["host"], "kept")
            kept.close()
            # A broken file: the reload fails, the old certificate stays.
            with open(live_cert, "w") as f:
                f.write("garbage\n")
            hello.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while ("TLS reload failed" not in hello.read_log()
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            self.assertIn(live_cert, hello.read_log())
            self.assertEqual(self.subject(hello.port),
                             "subject=CN = new.localhost")
            self.assertIsNone(hello.proc.poll())
        finally:
            code, log = hello.stop()
        self.assertEqual(code, 0, log)
        self.assertIn("1 reloads", log)


class BadFlagsTest(unittest.TestCase):
    def run_hello(self, *flags):
        out = subprocess.run([HELLO, "--port=0", *flags], capture_output=True,
                             text=True, timeout=10)
        return out.returncode, out.stderr

    def test_bad_tls_flags_exit_2(self):
        code, err = self.run_hello("--tls", f"--tls_cert={A_CERT}",
                                   f"--tls_key={A_KEY}", "--alpn=h2,http/1.1")
        self.assertEqual(code, 2)
        self.assertIn("HTTP/2", err)
        code, err = self.run_hello("--tls")
        self.assertEqual(code, 2)
        self.assertIn("--tls_cert", err)
        code, err = self.run_hello("--tls", f"--tls_cert={A_CERT},{B_CERT}",
                                   f"--tls_key={A_KEY}")
        self.assertEqual(code, 2)
        self.assertIn("pairs", err)
        code, err = self.run_hello("--tls", "--tls_cert=/nonexistent/x.crt",
                                   f"--tls_key={A_KEY}")
        self.assertEqual(code, 2)
        self.assertIn("/nonexistent/x.crt", err)
        code, err = self.run_hello("--tls", f"--tls_cert={A_CERT}",
                                   f"--tls_key={B_KEY}")
        self.assertEqual(code, 2)
        self.assertIn("does not match", err)
        code, err = self.run_hello("--tls", f"--tls_cert={A_CERT}",
                                   f"--tls_key={A_KEY}", "--ticket_secret=xyz")
        self.assertEqual(code, 2)
        self.assertIn("64 hex digits", err)


if __name__ == "__main__":
    unittest.main()
