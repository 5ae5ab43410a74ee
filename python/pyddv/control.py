"""The ddv master's control socket: commands, status, metrics."""
import json
import socket
import time


def control(sock_path, command, timeout=5.0):
    """Sends one command line, returns the whole answer."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode()


def status(sock_path, timeout=5.0):
    return json.loads(control(sock_path, "status", timeout))


def counters(sock_path):
    """The unlabelled ddv_* metrics as {name: value}."""
    out = {}
    for line in control(sock_path, "metrics").splitlines():
        if line.startswith("ddv_") and "{" not in line:
            name, _, val = line.partition(" ")
            try:
                out[name] = float(val)
            except ValueError:
                pass
    return out


def wait_workers_ready(proc, sock_path, timeout=15.0, what="ddv_master"):
    """Polls `status` until every worker of every site is ready; returns the
    status. Raises RuntimeError if `proc` (a Popen) exits or time runs out;
    the message ends with the last status or error seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early (rc {proc.returncode})")
        try:
            st = status(sock_path)
            workers = [w for s in st["sites"] for w in s["workers"]]
            if workers and all(w.get("ready") for w in workers):
                return st
            last = st
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready: {last}")
