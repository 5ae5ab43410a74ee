"""Loopback networking: free ports and one-shot HTTP(S) requests."""
import fcntl
import os
import socket
import ssl
import threading

# One byte per port, locked (a POSIX record lock) by the process that was
# given the port, for as long as that process lives; shared by every test
# process on the machine, whoever's checkout it runs from.
PORT_LOCKS = "/tmp/ddv-test-ports.lock"
_ports_lock = threading.Lock()
_ports_given = set()
_ports_fd = None


def free_port(attempts=200):
    """A TCP port free on 127.0.0.1 a moment ago, given to no one else.

    The caller binds it later (a master binds its config's addresses), and
    until then the kernel may give the same port to any other bind(0): to
    this process's next call (two listeners of one config on one address,
    which the master refuses with exit 2), or to another test running
    beside it, whose listener then answers our clients. So a port is
    handed out once per process, and only if no other live process that
    uses this function holds it: a lock on byte `port` of PORT_LOCKS.<uid>,
    released by the kernel when the holder exits, however it exits. A
    program that binds ports by other means can still take one; the
    master then fails to bind and says so."""
    global _ports_fd
    with _ports_lock:
        if _ports_fd is None:
            # Never closed: closing any fd of the file drops the process's
            # locks on it.
            # One file per user: another user's (umask 022) could not be
            # opened for writing, nor, with fs.protected_regular, created.
            _ports_fd = os.open(f"{PORT_LOCKS}.{os.getuid()}",
                                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        for _ in range(attempts):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port in _ports_given:
                continue
            try:
                fcntl.lockf(_ports_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
            except OSError:
                continue  # another live process was given it
            _ports_given.add(port)
            return port
    raise RuntimeError(f"no free port after {attempts} tries: every one the "
                       f"kernel offered was given already ({PORT_LOCKS})")


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
