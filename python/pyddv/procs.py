"""Process trees from /proc, and starting and stopping processes by pid."""
import os
import signal
import subprocess


def children(pid):
    """Direct children of every thread of `pid` (empty once it is gone)."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.extend(int(p) for p in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree(pids):
    """`pids` and all their descendants, parents first."""
    seen, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(children(p))
    return seen


def stop_process(proc, timeout=10.0):
    """SIGTERM, then SIGKILL after `timeout` s; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


class Procs:
    """Every process a driver starts; stop_all() ends them by pid.

    Each runs in its own session, optionally pinned to one CPU with taskset,
    output to a log file (proc.log_path)."""

    def __init__(self, warn=None):
        self.procs = []
        self.warn = warn or (lambda msg: None)

    def start(self, argv, cpu, log_path, **kw):
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + list(argv)
        logf = open(log_path, "w")
        p = subprocess.Popen(argv, stdout=kw.pop("stdout", logf),
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, **kw)
        p.log_path = log_path
        p.logf = logf
        self.procs.append(p)
        return p

    def stop(self, p, timeout=10.0):
        if p not in self.procs:
            return
        self.procs.remove(p)
        desc = tree([p.pid]) if p.poll() is None else []
        stop_process(p, timeout)
        # Leftover descendants (a worker that outlived its master): by pid.
        for d in desc:
            if d == p.pid:
                continue
            try:
                os.kill(d, signal.SIGKILL)
            except OSError:
                pass
        p.logf.close()

    def stop_all(self):
        for p in list(reversed(self.procs)):
            try:
                self.stop(p)
            except Exception as e:  # keep stopping the others
                self.warn(f"warning: stopping pid {p.pid}: {e}")


def tcp_connections(pid):
    """The TCP sockets `pid` holds, as {(local_port, remote_port)}: its fds'
    socket inodes looked up in /proc/net/tcp and tcp6 (its network
    namespace). Listening sockets have remote port 0."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[9] in inodes:
                local = int(cols[1].rsplit(":", 1)[1], 16)
                remote = int(cols[2].rsplit(":", 1)[1], 16)
                found.add((local, remote))
    return found
