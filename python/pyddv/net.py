"""Loopback networking: free ports and one-shot HTTP(S) requests."""
import socket
import ssl


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recv_all(s):
    """Everything until EOF (a reset counts as EOF)."""
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def parse_response(data):
    """Raw HTTP/1.x answer -> (status, body); (None, "") when empty."""
    if not data:
        return (None, "")
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return (status, body.decode(errors="replace"))


def request_bytes(host=None, path="/"):
    """A GET with Connection: close (and Host when given)."""
    head = f"GET {path} HTTP/1.1\r\n"
    if host is not None:
        head += f"Host: {host}\r\n"
    return (head + "Connection: close\r\n\r\n").encode()


def http_get(port, host=None, path="/", raw=None, timeout=5.0):
    """One request on a new connection; returns (status, body, local_port)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw if raw is not None else request_bytes(host, path))
        data = recv_all(s)
        return parse_response(data) + (s.getsockname()[1],)


def https_get(port, host, path="/", timeout=5.0):
    """One GET over TLS on a new connection, SNI `host`, ALPN http/1.1, the
    certificate not checked; returns (status, body)."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with c.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(request_bytes(host, path))
            chunks = []
            while True:
                try:
                    data = s.recv(65536)
                except ssl.SSLEOFError:  # closed without close_notify
                    break
                if not data:
                    break
                chunks.append(data)
    return parse_response(b"".join(chunks))
