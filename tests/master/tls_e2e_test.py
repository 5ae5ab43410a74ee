"""TLS through the master, end to end: the master peeks at the ClientHello
(SNI, ALPN) without consuming it and hands the raw socket over; ddv_hello
terminates TLS. Real clients: curl, openssl s_client, Python ssl, Node."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

import harness
from tests.testing.certificates import make_self_signed
from harness import fields


def tls_config(ddv):
    a_cert, a_key = make_self_signed(ddv.dir, "a", ["a.localhost", "*.a.localhost"])
    b_cert, b_key = make_self_signed(ddv.dir, "b", ["b.localhost"])
    ddv.tls_default_port = harness.free_port()
    return f"""
[master]
control_socket = "{ddv.control_socket}"
peek_timeout_ms = 3000

[[listener]]
name = "tls"
address = "127.0.0.1:{ddv.tls_port}"
protocol = "tls"

[[listener]]
name = "tls_default"
address = "127.0.0.1:{ddv.tls_default_port}"
protocol = "tls"
default_site = "b"

[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a"]
processes = 2
hosts = ["a.localhost", "*.a.localhost"]
tls_cert = ["{a_cert}"]
tls_key = ["{a_key}"]
log_all = "{ddv.dir}/a.log"

[[site]]
id = "b"
command = ["{ddv.hello}", "--site=b"]
hosts = ["b.localhost"]
tls_cert = ["{b_cert}"]
tls_key = ["{b_key}"]
log_all = "{ddv.dir}/b.log"

[[site]]
id = "acme"
command = ["{ddv.hello}", "--site=acme"]
hosts = ["a.localhost"]
alpn = ["acme-tls/1"]
tls_cert = ["{a_cert}"]
tls_key = ["{a_key}"]
log_all = "{ddv.dir}/acme.log"
"""


def client_context(alpn=("http/1.1",)):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def request(host):
    return (f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            ).encode()


def read_response(tls_sock):
    chunks = []
    while True:
        try:
            data = tls_sock.recv(65536)
        except (ssl.SSLZeroReturnError, ConnectionResetError):
            break
        if not data:
            break
        chunks.append(data)
    return harness.parse_response(b"".join(chunks))


class MemoryHandshake:
    """A TLS client over an SSLObject, so a test controls how the first
    flight (the ClientHello) reaches the wire."""

    def __init__(self, ctx, server_name, sock):
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing,
                                server_hostname=server_name)
        self.sock = sock

    def client_hello(self):
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()

    def _pump(self):
        out = self.outgoing.read()
        if out:
            self.sock.sendall(out)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed during handshake")
        self.incoming.write(data)

    def finish(self):
        while True:
            try:
                self.tls.do_handshake()
                out = self.outgoing.read()
                if out:
                    self.sock.sendall(out)
                return
            except ssl.SSLWantReadError:
                self._pump()

    def get(self, host):
        self.tls.write(request(host))
        self.sock.sendall(self.outgoing.read())
        data = b""
        while True:
            try:
                chunk = self.tls.read(65536)
                if not chunk:
                    break
                data += chunk
            except ssl.SSLWantReadError:
                more = self.sock.recv(65536)
                if not more:
                    break
                self.incoming.write(more)
                out = self.outgoing.read()
                if out:
                    self.sock.sendall(out)
            except ssl.SSLZeroReturnError:
                break
        return harness.parse_response(data)


def split_records(flight, size):
    """Re-frames TLS handshake records into records of `size` bytes."""
    out = b""
    while flight:
        content_type, version = flight[0], flight[1:3]
        length = int.from_bytes(flight[3:5], "big")
        body, flight = flight[5:5 + length], flight[5 + length:]
        for i in range(0, len(body), size):
            part = body[i:i + size]
            out += bytes([content_type]) + version + len(part).to_bytes(2, "big") + part
    return out


class TlsThroughMasterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ddv = harness.Ddv(config_text=tls_config)

    @classmethod
    def tearDownClass(cls):
        code = cls.ddv.stop()
        assert code == 0, cls.ddv.read_log()

    def python_get(self, sni, port=None, alpn=("http/1.1",), session=None,
                   ctx=None):
        port = port or self.ddv.tls_port
        ctx = ctx or client_context(alpn)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni,
                                 session=session) as tls:
                tls.sendall(request(sni or "none"))
                status, body = read_response(tls)
                return status, fields(body), tls.session, tls.session_reused

    def test_curl(self):
        port = self.ddv.tls_port
        out = subprocess.run(
            ["curl", "-sS", "-k", "--max-time", "5", "--resolve",
             f"a.localhost:{port}:127.0.0.1", f"https://a.localhost:{port}/"],
            capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        f = fields(out.stdout)
        self.assertEqual((f["site"], f["tls"], f["sni"], f["alpn"]),
                         ("a", "1", "a.localhost", "http/1.1"))

    def test_openssl_s_client_each_site(self):
        for sni, site in [("a.localhost", "a"), ("x.a.localhost", "a"),
                          ("b.localhost", "b")]:
            out = subprocess.run(
                ["openssl", "s_client", "-connect",
                 f"127.0.0.1:{self.ddv.tls_port}", "-servername", sni,
                 "-quiet", "-ign_eof"],
                input=request(sni), capture_output=True, timeout=10)
            self.assertIn(f"site={site} ".encode(), out.stdout, out.stderr)
            self.assertIn(f"sni={sni} ".encode(), out.stdout)

    def test_unknown_sni_gets_unrecognized_name_alert(self):
        out = subprocess.run(
            ["openssl", "s_client", "-connect",
             f"127.0.0.1:{self.ddv.tls_port}", "-servername", "nobody.test"],
            input=b"", capture_output=True, timeout=10)
        self.assertIn(b"unrecognized name", out.stderr + out.stdout)
        with self.assertRaises(ssl.SSLError) as raised:
            self.python_get("nobody.test")
        self.assertIn("UNRECOGNIZED_NAME", str(raised.exception))

    def test_no_sni_goes_to_listener_default(self):
        status, f, _, _ = self.python_get(None, port=self.ddv.tls_default_port)
        self.assertEqual(status, 200)
        self.assertEqual((f["site"], f["sni"]), ("b", "-"))

    def test_python_ssl_tls12_and_tls13(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_context()
            ctx.minimum_version = ctx.maximum_version = version
            with socket.create_connection(("127.0.0.1", self.ddv.tls_port),
                                          timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="b.localhost") as tls:
                    tls.sendall(request("b.localhost"))
                    status, body = read_response(tls)
            self.assertEqual(status, 200, version)
            self.assertEqual(fields(body)["site"], "b")

    def test_node_https(self):
        node = shutil.which("node")
        if node is None:
            self.skipTest("node is not installed")
        script = f"""
const https = require('https');
https.get({{host: '127.0.0.1', port: {self.ddv.tls_port},
  servername: 'b.localhost', headers: {{Host: 'b.localhost'}},
  rejectUnauthorized: false}}, res => {{
  let body = ''; res.on('data', d => body += d);
  res.on('end', () => {{ process.stdout.write(body); }});
}}).on('error', e => {{ console.error(e); process.exit(1); }});
"""
        out = subprocess.run([node, "-e", script], capture_output=True,
                             text=True, timeout=15)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(fields(out.stdout)["site"], "b")
        self.assertEqual(fields(out.stdout)["tls"], "1")

    def handshake_with(self, sni, transform, delay=0.0, alpn=("http/1.1",)):
        with socket.create_connection(("127.0.0.1", self.ddv.tls_port),
                                      timeout=10) as sock:
            hs = MemoryHandshake(client_context(alpn), sni, sock)
            flight = transform(hs.client_hello())
            if delay:
                for i in range(len(flight)):
                    sock.sendall(flight[i:i + 1])
                    time.sleep(delay)
            else:
                sock.sendall(flight)
            hs.finish()
            return hs.get(sni)

    def test_client_hello_one_byte_at_a_time(self):
        status, body = self.handshake_with("b.localhost", lambda f: f,
                                           delay=0.002)
        self.assertEqual(status, 200)
        self.assertEqual(fields(body)["site"], "b")

    def test_client_hello_split_into_many_records(self):
        status, body = self.handshake_with(
            "b.localhost", lambda f: split_records(f, 40))
        self.assertEqual(status, 200)
        self.assertEqual(fields(body)["site"], "b")

    def test_client_hello_over_12k(self):
        alpn = [("x%03d" % i) * 50 for i in range(60)] + ["http/1.1"]
        with socket.create_connection(("127.0.0.1", self.ddv.tls_port),
                                      timeout=10) as sock:
            hs = MemoryHandshake(client_context(alpn), "a.localhost", sock)
            flight = hs.client_hello()
            self.assertGreater(len(flight), 12 * 1024)
            sock.sendall(flight)
            hs.finish()
            status, body = hs.get("a.localhost")
        self.assertEqual(status, 200)
        self.assertEqual(fields(body)["site"], "a")
        self.assertEqual(fields(body)["alpn"], "http/1.1")

    def test_alpn_claim_routes_to_the_claiming_site(self):
        # acme claims acme-tls/1 on a.localhost; everything else goes to a.
        status, f, _, _ = self.python_get("a.localhost", alpn=("acme-tls/1",))
        self.assertEqual((status, f["site"]), (200, "acme"))
        status, f, _, _ = self.python_get("a.localhost", alpn=("h2", "http/1.1"))
        self.assertEqual((f["site"], f["alpn"]), ("a", "http/1.1"))

    def test_session_resumes_on_another_process_of_the_site(self):
        ctx = client_context()  # a session resumes only in its own context
        status, first, session, _ = self.python_get("a.localhost", ctx=ctx)
        self.assertEqual(status, 200)
        resumed_pids = set()
        for _ in range(20):
            status, f, _, reused = self.python_get("a.localhost",
                                                   session=session, ctx=ctx)
            self.assertEqual(status, 200)
            self.assertTrue(reused)
            resumed_pids.add(f["pid"])
        self.assertEqual(len(resumed_pids), 2, resumed_pids)

    def test_master_counted_sni_and_alpn(self):
        self.python_get("b.localhost")
        counters = self.ddv.status()["counters"]
        self.assertGreater(counters["tls_sni_found"], 0)
        self.assertGreater(counters["tls_alpn_found"], 0)


class CertificateRenewalTest(unittest.TestCase):
    def test_reload_makes_workers_reread_renewed_certificates(self):
        ddv = harness.Ddv(config_text=tls_config)
        try:
            def serial():
                out = subprocess.run(
                    ["openssl", "s_client", "-connect",
                     f"127.0.0.1:{ddv.tls_port}", "-servername", "b.localhost"],
                    input=b"", capture_output=True, timeout=10).stdout
                cert = subprocess.run(["openssl", "x509", "-noout", "-serial"],
                                      input=out, capture_output=True,
                                      timeout=10).stdout
                self.assertTrue(cert.startswith(b"serial="), out[-300:])
                return cert

            before = serial()
            # Renew in place: same path, new certificate, then reload.
            make_self_signed(ddv.dir, "b", ["b.localhost"])
            ddv.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            after = before
            while time.monotonic() < deadline and after == before:
                time.sleep(0.1)
                after = serial()
            self.assertNotEqual(after, before)
        finally:
            ddv.stop()


if __name__ == "__main__":
    unittest.main()
