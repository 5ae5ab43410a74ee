"""Load generators, all on the client CPU: wrk (keep-alive, new-conn),
tls_client.c (tls-new), and the accept+close floor (accept_floor.c on the
server CPU under wrk's Connection: close load)."""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

from pyddv.net import free_port

from .common import DOWNLOAD_PATH, HELD, HERE, HOST, USEC_PER_TICK
from .cpu import cpu_stat, proc_ticks

# --------------------------------------------------------------------------
# wrk


def wrk_argv(ctx, port, close, duration, path="/", connections=None):
    connections = connections or ctx.args.connections
    argv = ["taskset", "-c", str(ctx.args.client_cpu), ctx.tools["wrk"],
            "-t1", f"-c{connections}", f"-d{duration}s",
            "-H", f"Host: {HOST}"]
    if close:
        argv += ["-H", "Connection: close"]
    return argv + [f"http://127.0.0.1:{port}{path}"]


def wrk_display(ctx, close, path="/", connections=None):
    connections = connections or ctx.args.connections
    s = f"wrk -t1 -c{connections} -d{ctx.args.duration}s -H 'Host: {HOST}'"
    if close:
        s += " -H 'Connection: close'"
    if path != "/":
        s += f" http://127.0.0.1:PORT{path}"
    return s


def parse_wrk(out):
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if not m:
        raise RuntimeError("cannot parse wrk output:\n" + out)
    r = {"requests": int(m.group(1))}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    r["errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    return r


def run_wrk(ctx, port, close, duration, path="/", connections=None):
    argv = wrk_argv(ctx, port, close, duration, path, connections)
    try:
        res = subprocess.run(argv, capture_output=True, text=True,
                             timeout=duration + 60)
    except subprocess.TimeoutExpired:
        # A server that stopped answering (a proxy at its maxconn under the
        # idle shape): a row of errors, not the end of the whole run.
        return {"requests": 0, "rps": 0.0, "errors": 1, "non2xx": 0,
                "timed_out": True}
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed: {res.stderr}{res.stdout}")
    return parse_wrk(res.stdout)


# --------------------------------------------------------------------------
# tls_client.c


def build_tls_client(ctx):
    src = os.path.join(HERE, "tls_client.c")
    out = os.path.join(ctx.dir, "tls_client")
    r = subprocess.run([ctx.tools["cc"], "-O2", "-o", out, src, "-lssl",
                        "-lcrypto"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"building tls_client.c failed (needs OpenSSL headers: "
                 f"apt-get install -y libssl-dev):\n{r.stderr}")
    return out


def tls_rate_slots(rate):
    """tls_client's most connections in flight at a fixed rate: 5 s of
    answers (its own cap is 10000)."""
    return min(max(rate * 5, 16), 10000)


def tls_client_argv(ctx, port, duration, rate=0):
    conns = tls_rate_slots(rate) if rate else ctx.args.connections
    argv = ["taskset", "-c", str(ctx.args.client_cpu), ctx.tls_client,
            str(port), str(duration), str(conns), HOST]
    return argv + ([str(rate)] if rate else [])


def tls_client_display(ctx, rate=0):
    if rate:
        return (f"tls_client PORT {ctx.args.duration} "
                f"{tls_rate_slots(rate)} {HOST} {rate}")
    return (f"tls_client PORT {ctx.args.duration} {ctx.args.connections} "
            f"{HOST}")


def run_tls_client(ctx, port, duration, rate=0):
    """tls_client as many handshakes as it can (rate 0) or `rate` per
    second on a fixed schedule."""
    res = subprocess.run(tls_client_argv(ctx, port, duration, rate),
                         capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"requests (\d+) handshakes (\d+) errors (\d+) non2xx "
                  r"(\d+) resumed (\d+) seconds ([\d.]+) rps ([\d.]+) "
                  r"cpu_us (\d+) p50_us (\d+) p90_us (\d+) p99_us (\d+) "
                  r"max_us (\d+)", res.stdout)
    if res.returncode != 0 or not m:
        raise RuntimeError(f"tls_client failed (rc {res.returncode}): "
                           f"{res.stderr}{res.stdout}")
    g = m.groups()
    return {"requests": int(g[0]), "handshakes": int(g[1]),
            "errors": int(g[2]), "non2xx": int(g[3]), "resumed": int(g[4]),
            "rps": float(g[6]), "client_cpu_us": float(g[7]),
            "p50_us": float(g[8]), "p90_us": float(g[9]),
            "p99_us": float(g[10]), "max_us": float(g[11])}


def run_load(ctx, port, workload, duration):
    """One load run of `workload` against 127.0.0.1:port."""
    if workload == "tls-new":
        return run_tls_client(ctx, port, duration)
    if workload == "tls-latency":
        return run_tls_client(ctx, port, duration, ctx.args.tls_latency_rate)
    if workload == "download":
        return run_wrk(ctx, port, False, duration, DOWNLOAD_PATH,
                       ctx.args.download_connections)
    if workload == "latency":
        from .shapes import run_latency
        return run_latency(ctx, port, duration)
    # new-conn, and the new-conn load idle and slow run under.
    return run_wrk(ctx, port, workload in ("new-conn",) + HELD,
                   duration)


# --------------------------------------------------------------------------
# The accept+close floor


def build_floor(ctx):
    src = os.path.join(HERE, "accept_floor.c")
    out = os.path.join(ctx.dir, "accept_floor")
    subprocess.run([ctx.tools["cc"], "-O2", "-o", out, src], check=True)
    return out


def measure_floor(ctx, binary):
    """accept4+close loop on the server CPU under wrk's Connection: close
    load. Measured inside the wrk run (wrk counts no requests here: every
    connection is closed unanswered), from SIGUSR1 count snapshots."""
    port = free_port()
    p = ctx.procs.start([binary, str(port)], ctx.args.server_cpu,
                        os.path.join(ctx.dir, "floor.log"),
                        stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line.startswith("listening"):
            raise RuntimeError(f"accept_floor: {line!r}")

        def count():
            p.send_signal(signal.SIGUSR1)
            # A signal landing just before accept4 blocks waits for the next
            # connection; poke once if no answer comes soon.
            r, _, _ = select.select([p.stdout], [], [], 0.5)
            if not r:
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                except OSError:
                    pass
            return int(p.stdout.readline().split()[1])

        lead = max(ctx.args.warmup, 1)
        argv = wrk_argv(ctx, port, True, lead + ctx.args.duration + 1)
        wrk = subprocess.Popen(argv, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(lead)
            n0, t0, c0 = count(), proc_ticks(p.pid), cpu_stat()
            time.sleep(ctx.args.duration)
            n1, t1, c1 = count(), proc_ticks(p.pid), cpu_stat()
            wrk.communicate(timeout=ctx.args.duration + 60)
        finally:
            if wrk.poll() is None:
                wrk.kill()
                wrk.wait()
        conns = max(n1 - n0, 1)
        s = f"cpu{ctx.args.server_cpu}"
        return {"conns": n1 - n0, "rate": (n1 - n0) / ctx.args.duration,
                "floor_us": (t1 - t0) * USEC_PER_TICK / conns,
                "cpu0_us": (c1[s][0] - c0[s][0]) * USEC_PER_TICK / conns}
    finally:
        ctx.procs.stop(p)
