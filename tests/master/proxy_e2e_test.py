"""PROXY protocol end to end (real ddv_master, real ddv_hello workers, real
sockets): v1 and v2 headers on `tcp` and `http` listeners reach the worker
as its peer, destination and TLVs (ddv_hello's GET /proxy shows them);
proxy_protocol_from resets every other source unread and counts it; bad
headers are refused; IPv6 headers and IPv4-mapped sources show as what
they are."""
import socket
import time
import unittest

import harness
from harness import fields, free_port, parse_response, recv_all, wait_for
from tests.testing import proxy_header as pp

GET = b"GET / HTTP/1.1\r\nHost: a.localhost\r\nConnection: close\r\n\r\n"
GET_PROXY = (b"GET /proxy HTTP/1.1\r\nHost: a.localhost\r\n"
             b"Connection: close\r\n\r\n")


def config(ddv, ports):
    hello = ddv.hello
    return f"""
[master]
control_socket = "{ddv.control_socket}"
peek_timeout_ms = 1500

[[listener]]
name = "tcp"
address = "127.0.0.1:{ports['tcp']}"
protocol = "tcp"
proxy_protocol = true

[[listener]]
name = "http"
address = "127.0.0.1:{ports['http']}"
protocol = "http"
proxy_protocol = true

[[listener]]
name = "trusted"
address = "127.0.0.1:{ports['trusted']}"
protocol = "tcp"
proxy_protocol = true
proxy_protocol_from = ["127.0.0.2/32", "::1"]

[[listener]]
name = "tcp6"
address = "[::1]:{ports['tcp6']}"
protocol = "tcp"
proxy_protocol = true
proxy_protocol_from = ["::1/128"]

[[listener]]
name = "plain"
address = "127.0.0.1:{ports['plain']}"
protocol = "tcp"

[[site]]
id = "a"
command = ["{hello}", "--site=a", "--ring_entries=256"]
processes = 1
hosts = ["a.localhost"]
default = true
log_all = "{ddv.dir}/a.log"
"""


def exchange(port, data, host="127.0.0.1", source=None, pause=None,
             timeout=5.0):
    """Connects (from `source` when given), sends `data` (the first
    `pause[0]` bytes, then the rest after `pause[1]` seconds), returns
    (everything read until EOF or a reset, whether it was a reset)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        if source is not None:
            s.bind((source, 0))
        s.connect((host, port))
        try:
            if pause is None:
                s.sendall(data)
            else:
                s.sendall(data[:pause[0]])
                time.sleep(pause[1])
                s.sendall(data[pause[0]:])
        except (ConnectionResetError, BrokenPipeError):
            return b"", True
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return b"".join(chunks), True
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)


def lines(body):
    """GET /proxy's body -> {key: value}."""
    return dict(line.split("=", 1) for line in body.splitlines())


class ProxyE2eTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ports = {name: free_port()
                     for name in ("tcp", "http", "trusted", "tcp6", "plain")}
        cls.ddv = harness.Ddv(config_text=lambda d: config(d, cls.ports),
                              extra_flags=["--log_dir="])  # log to stderr

    @classmethod
    def tearDownClass(cls):
        cls.ddv.stop()

    def counter(self, name):
        return harness.control_counters(self.ddv.control_socket).get(name, 0)

    def get(self, listener, header, request=GET, **kwargs):
        data, reset = exchange(self.ports[listener], header + request,
                               **kwargs)
        self.assertFalse(reset, f"reset on {listener}")
        return parse_response(data)

    def test_tcp_listener_reads_a_v1_header(self):
        status, body = self.get(
            "tcp", pp.v1("203.0.113.7", "198.51.100.1", 4000, 5432))
        self.assertEqual(status, 200, body)
        self.assertEqual(fields(body)["peer"], "203.0.113.7:4000")
        status, body = self.get(
            "tcp", pp.v1("203.0.113.7", "198.51.100.1", 4000, 5432),
            request=GET_PROXY)
        self.assertEqual(lines(body), {"proxy": "1",
                                       "source": "203.0.113.7:4000",
                                       "destination": "198.51.100.1:5432"})

    def test_tcp_listener_passes_every_v2_tlv(self):
        tlvs = (pp.tlv(pp.NOOP, b"\0" * 10) + pp.tlv(pp.ALPN, "h2") +
                pp.tlv(pp.AUTHORITY, "shop.example") +
                pp.tlv(pp.UNIQUE_ID, bytes(range(16))) +
                pp.ssl_tlv(pp.CLIENT_SSL | pp.CLIENT_CERT_CONN, 0,
                           version="TLSv1.3", cn="client one",
                           cipher="TLS_AES_256_GCM_SHA384",
                           sig_alg="SHA256", key_alg="RSA2048") +
                pp.tlv(pp.NETNS, "blue") + pp.tlv(0xEA, b"\x01vpce-12"))
        header = pp.v2("192.0.2.10", "192.0.2.20", 40000, 443, tlvs,
                       with_crc=True)
        status, body = self.get("tcp", header, request=GET_PROXY)
        self.assertEqual(status, 200, body)
        self.assertEqual(lines(body), {
            "proxy": "1",
            "source": "192.0.2.10:40000",
            "destination": "192.0.2.20:443",
            "alpn": "h2",
            "authority": "shop.example",
            "unique_id": bytes(range(16)).hex(),
            "ssl_client": "3",
            "ssl_verify": "0",
            "ssl_version": "TLSv1.3",
            "ssl_cn": "client\\x20one",
            "ssl_cipher": "TLS_AES_256_GCM_SHA384",
            "ssl_sig_alg": "SHA256",
            "ssl_key_alg": "RSA2048",
            "netns": "blue",
            "tlv_0xea": b"\x01vpce-12".hex(),
        })

    def test_tlvs_over_what_a_handoff_carries_are_left_out_and_counted(self):
        before = self.counter("ddv_proxy_tlvs_dropped_total")
        tlvs = (pp.tlv(pp.AUTHORITY, "a" * 250) + pp.tlv(0xE0, b"x" * 400) +
                pp.tlv(pp.UNIQUE_ID, b"u" * 128))
        status, body = self.get(
            "http", pp.v2("192.0.2.1", "192.0.2.2", 1, 80, tlvs),
            request=GET_PROXY)
        self.assertEqual(status, 200, body)
        got = lines(body)
        self.assertEqual(got["authority"], "a" * 250)
        self.assertEqual(got["unique_id"], (b"u" * 128).hex())
        self.assertNotIn("tlv_0xe0", got)  # 250 + 400 + 128 > 640
        self.assertEqual(got["tlvs_truncated"], "1")
        self.assertEqual(self.counter("ddv_proxy_tlvs_dropped_total"),
                         before + 1)

    def test_tcp_listener_waits_for_a_header_sent_in_two_parts(self):
        header = pp.v2("192.0.2.10", "192.0.2.20", 40000, 443,
                       pp.tlv(pp.AUTHORITY, "slow.example"))
        data, reset = exchange(self.ports["tcp"], header + GET,
                               pause=(20, 0.3))
        self.assertFalse(reset)
        status, body = parse_response(data)
        self.assertEqual(status, 200, body)
        self.assertEqual(fields(body)["peer"], "192.0.2.10:40000")

    def test_tcp_listener_closes_a_connection_without_a_header(self):
        before = self.counter("ddv_malformed_total")
        data, _ = exchange(self.ports["tcp"], GET)
        self.assertEqual(data, b"")  # no protocol to answer in: closed
        self.assertEqual(self.counter("ddv_malformed_total"), before + 1)
        # A listener without proxy_protocol takes the same bytes as the
        # client's own.
        status, body = parse_response(exchange(self.ports["plain"], GET)[0])
        self.assertEqual(status, 200, body)
        self.assertTrue(fields(body)["peer"].startswith("127.0.0.1:"))

    def test_a_checksum_that_does_not_match_is_refused(self):
        header = bytearray(pp.v2("192.0.2.1", "192.0.2.2", 1, 80,
                                 pp.tlv(pp.AUTHORITY, "a.example"),
                                 with_crc=True))
        status, _ = self.get("http", bytes(header))
        self.assertEqual(status, 200)
        header[-1] ^= 0x01  # a byte of the authority
        status, _ = self.get("http", bytes(header))
        self.assertEqual(status, 400)

    def test_headers_without_addresses_keep_the_real_peer(self):
        for header in (pp.v1_unknown(),
                       pp.v2(command=pp.LOCAL),
                       pp.v2(tlvs=pp.tlv(pp.UNIQUE_ID, b"id"))):
            status, body = self.get("http", header)
            self.assertEqual(status, 200, body)
            self.assertTrue(fields(body)["peer"].startswith("127.0.0.1:"),
                            body)
        # AF_UNSPEC with TLVs: the TLVs still travel.
        status, body = self.get("http", pp.v2(tlvs=pp.tlv(pp.UNIQUE_ID,
                                                          b"id")),
                                request=GET_PROXY)
        self.assertEqual(lines(body), {"proxy": "1",
                                       "unique_id": b"id".hex()})

    def test_tcp6_header_with_a_mapped_source_shows_ipv4(self):
        status, body = self.get(
            "http", pp.v1("::ffff:198.51.100.1", "::ffff:198.51.100.2",
                          1234, 80))
        self.assertEqual(status, 200, body)
        self.assertEqual(fields(body)["peer"], "198.51.100.1:1234")

    def test_ipv6_listener_takes_a_v2_inet6_header(self):
        status, body = self.get(
            "tcp6", pp.v2("2001:db8::7", "2001:db8::1", 50000, 443,
                          pp.tlv(pp.ALPN, "http/1.1")),
            request=GET_PROXY, host="::1")
        self.assertEqual(status, 200, body)
        self.assertEqual(lines(body), {"proxy": "1",
                                       "source": "[2001:db8::7]:50000",
                                       "destination": "[2001:db8::1]:443",
                                       "alpn": "http/1.1"})
        status, body = self.get("tcp6", pp.v1("2001:db8::7", "2001:db8::1",
                                              50000, 443), host="::1")
        self.assertEqual(fields(body)["peer"], "[2001:db8::7]:50000")

    def test_only_trusted_sources_may_send_a_header(self):
        before = self.counter("ddv_proxy_untrusted_total")
        header = pp.v1("203.0.113.9", "192.0.2.1", 999, 80)
        # 127.0.0.1 is not in proxy_protocol_from: reset, nothing read.
        data, reset = exchange(self.ports["trusted"], header + GET)
        self.assertEqual(data, b"")
        self.assertTrue(reset, "an untrusted source is reset, not closed")
        self.assertEqual(
            wait_for(lambda: self.counter("ddv_proxy_untrusted_total") ==
                     before + 1), True)
        # 127.0.0.2 is.
        status, body = self.get("trusted", header, source="127.0.0.2")
        self.assertEqual(status, 200, body)
        self.assertEqual(fields(body)["peer"], "203.0.113.9:999")
        self.assertEqual(self.counter("ddv_proxy_untrusted_total"),
                         before + 1)
        self.assertIn("which is not in its proxy_protocol_from",
                      harness.full_log(self.ddv))

    def test_proxy_protocol_from_matches_ipv6_sources(self):
        status, body = self.get(
            "tcp6", pp.v1("2001:db8::9", "2001:db8::1", 9, 443), host="::1")
        self.assertEqual(status, 200, body)
        self.assertEqual(fields(body)["peer"], "[2001:db8::9]:9")


if __name__ == "__main__":
    unittest.main()
