"""systemd's side of a service, for tests without systemd as PID 1.

`NotifySocket` is the service manager's end of NOTIFY_SOCKET: a datagram
socket the test owns (a path, or an abstract name) that records every
message with the sender's pid (SCM_CREDENTIALS, as systemd checks it for
NotifyAccess=main) and the CLOCK_MONOTONIC time it arrived.
`start_activated` runs ddv_master under systemd-socket-activate (Debian's
systemd package), which binds the listeners and passes them by name as a
.socket unit would. Every wait is bounded.
"""
import contextlib
import os
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid

from tests.master import harness
from tests.testing.certificates import make_self_signed


class Message:
    def __init__(self, t, pid, text):
        self.t = t          # time.monotonic() when it arrived
        self.pid = pid      # the sender, as the kernel says
        self.text = text
        self.fields = dict(line.split("=", 1) for line in text.split("\n")
                           if "=" in line)

    def kind(self):
        """READY, RELOADING, STOPPING, WATCHDOG or STATUS: what it says
        first."""
        for key in ("READY", "RELOADING", "STOPPING", "WATCHDOG"):
            if self.fields.get(key) == "1":
                return key
        return "STATUS" if "STATUS" in self.fields else "OTHER"

    def __repr__(self):
        return f"<{self.t:.3f} pid={self.pid} {self.text!r}>"


class NotifySocket:
    """Binds NOTIFY_SOCKET's address and records what arrives."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.address = f"@ddv-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.sock.bind("\0" + self.address[1:])
        else:
            # sun_path is 108 bytes; TEST_TMPDIR may be longer.
            directory = tempfile.mkdtemp(prefix="ddv-notify-", dir="/tmp")
            self.address = os.path.join(directory, "notify")
            self.sock.bind(self.address)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        creds = struct.calcsize("iII")
        while not self.closed:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(
                    65536, socket.CMSG_SPACE(creds))
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            pid = None
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", value[:creds])[0]
            with self.lock:
                self.messages.append(Message(now, pid, data.decode()))

    def close(self):
        self.closed = True
        self.thread.join(timeout=2)
        self.sock.close()
        if not self.address.startswith("@"):
            try:
                os.unlink(self.address)
                os.rmdir(os.path.dirname(self.address))
            except OSError:
                pass

    def all(self):
        with self.lock:
            return list(self.messages)

    def since(self, index):
        return self.all()[index:]

    def count(self):
        with self.lock:
            return len(self.messages)

    def wait(self, predicate, start=0, timeout=15.0):
        """Waits for a message from index `start` on that satisfies
        `predicate`; returns it, or None at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.since(start):
                if predicate(m):
                    return m
            time.sleep(0.02)
        return None

    def wait_kind(self, kind, start=0, timeout=15.0):
        return self.wait(lambda m: m.kind() == kind, start, timeout)

    def kinds(self, start=0, status=False):
        """The kinds of the messages from `start` on, without the watchdog
        pings (and without STATUS-only ones unless `status`)."""
        return [m.kind() for m in self.since(start)
                if m.kind() != "WATCHDOG" and (status or m.kind() != "STATUS")]

    def pings(self):
        return [m.t for m in self.all() if m.kind() == "WATCHDOG"]


@contextlib.contextmanager
def environment(**values):
    """os.environ with `values` set (None: unset), for the processes
    started inside; restored after."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


LISTENERS = ("http", "strict", "https", "raw")


def harness_config(ports):
    """config_text for harness.Ddv with these ports ({listener: port}): the
    harness' own config (its four listeners and three sites), site "a"
    with a certificate for its TLS listener."""
    def text(ddv):
        ddv.http_port = ports["http"]
        ddv.strict_port = ports["strict"]
        ddv.tls_port = ports["https"]
        ddv.tcp_port = ports["raw"]
        ddv.write_config()
        cert, key = make_self_signed(ddv.dir, "a", ["a.localhost"])
        with open(ddv.config_path) as f:
            return f.read().replace(
                'id = "a"\n',
                f'id = "a"\ntls_cert = ["{cert}"]\ntls_key = ["{key}"]\n', 1)
    return text


def activation_argv(ports, names=None, env=()):
    """systemd-socket-activate listening on 127.0.0.1:PORT for each of
    `ports` ({name: port}), each named `names[name]` (default: its own
    name), passing `env` (NAME=VALUE strings) through."""
    names = names or {}
    argv = ["systemd-socket-activate"]
    for e in env:
        argv.append(f"-E{e}")
    for name, port in ports.items():
        argv += ["-l", f"127.0.0.1:{port}"]
    argv.append("--fdname=" + ":".join(names.get(n, n) for n in ports))
    return argv


class Trigger:
    """systemd-socket-activate starts its command at the first connection:
    this one sends a request on `port` and keeps what it gets (served once
    the front door is up)."""

    def __init__(self, port, host="a.localhost"):
        self.result = None
        self.error = None

        def run():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    self.result = harness.http_get(port, host, timeout=20)
                    return
                except ConnectionRefusedError:
                    time.sleep(0.02)  # not listening yet
                except OSError as e:
                    self.error = e
                    return

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, timeout=25):
        self.thread.join(timeout)
        return self.result


def start_activated(watchdog=True, env=(), names=None, extra_flags=()):
    """harness.Ddv under systemd-socket-activate, every listener passed
    (named `names` where given); returns (ddv, trigger). ddv.proc is the
    process systemd would know (systemd-socket-activate execs ddv_master
    in place)."""
    ports = {name: harness.free_port() for name in LISTENERS}
    trigger = Trigger(ports["http"])
    ddv = harness.Ddv(watchdog=watchdog, config_text=harness_config(ports),
                      prefix=activation_argv(ports, names, env),
                      extra_flags=list(extra_flags))
    return ddv, trigger


def run_activated_until_exit(ports, names, config_text, timeout=20):
    """Runs ddv_master under systemd-socket-activate with `config_text`
    (a harness.Ddv-like object is not needed: the config is written to a
    file here) until it exits; returns (returncode, output)."""
    directory = tempfile.mkdtemp(prefix="ddv-activation-",
                                 dir=os.environ.get("TEST_TMPDIR"))
    path = os.path.join(directory, "ddv.toml")
    with open(path, "w") as f:
        f.write(config_text)
    argv = activation_argv(ports, names) + [
        harness.runfile("src/ddv_master"), f"--config={path}",
        "--ring_entries=256"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    trigger = Trigger(next(iter(ports.values())))
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    trigger.wait(5)
    return proc.returncode, out
