#!/usr/bin/env python3
"""Side-by-side load benchmark: ddv (through the master) vs direct vs proxies.

One invocation runs every path for the same duration, each under the same
workloads (two wrk ones, one TLS handshake one), with every server process
pinned to one CPU and the client pinned to another:

  direct        ddv_hello --port (one process)
  ddv           ddv_master --watchdog=false, one http listener, one site
                (processes = 1, ddv_hello), Host routing
  haproxy-http  HAProxy, mode http, use_backend on hdr(host), in front of a
                ddv_hello --port backend (keep-alive to the backend)
  haproxy-tcp   HAProxy, mode tcp, tcp-request inspect-delay, routing on
                req.ssl_sni / req.hdr(host), same backend
  nginx         nginx proxy_pass to ddv_hello, keepalive upstream, server_name
  nginx-direct  nginx `return 200` of a body of the same size (a reference:
                DESIGN.md's anchors used nginx as the direct baseline)
  nginx-stream  (tls-new only) nginx stream, ssl_preread, map on the SNI

Workloads (`--workloads`, default all):
  keepalive  `wrk -t1 -cC -dNs -H 'Host: a.localhost'`
  newconn    the same plus `-H 'Connection: close'`
  tls-new    full TLS handshakes: benchmarks/load/tls_client.c (built here
             with `cc -O2 ... -lssl -lcrypto`), C connections in flight, each
             a new connection with SNI a.localhost, a full handshake (no
             resumption), one GET with Connection: close, read, close. wrk is
             not used for TLS: its client keeps the session for resumption
             (SSL_clear) and sends the URL's host (127.0.0.1) as SNI.
             Paths for tls-new: direct (`ddv_hello --port --tls`), ddv (a
             `tls` listener, the site with tls_cert/tls_key), haproxy-tcp
             (req.ssl_sni to the TLS ddv_hello) and nginx-stream
             (ssl_preread); one self-signed EC P-256 certificate for all.

For every run: req/s from wrk, and server CPU per request = utime + stime of
the path's whole server process tree (from /proc/PID/stat, threads and
children included) over the run, divided by wrk's request count. Efficiency =
direct's CPU per request / the path's. Also CPU 0's busy time from /proc/stat
(includes softirq time and anything else on CPU 0).

The floor: benchmarks/load/accept_floor.c (built here with `cc -O2`), a
blocking accept4 + close loop on CPU 0 under wrk's Connection: close load;
its CPU per accepted connection is compared with the ddv master process's own
CPU (workers excluded) per routed connection.

Stdlib only (plus cc and OpenSSL headers for tls_client.c). Loopback only. Every process it starts is stopped in a finally.
See benchmarks/load/README.md.
"""
import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "a.localhost"
ALL_PATHS = ["direct", "ddv", "haproxy-http", "haproxy-tcp", "nginx",
             "nginx-direct", "nginx-stream"]
INSTALL_HINT = "apt-get install -y haproxy nginx-light libnginx-mod-stream"
SECTION = "## Load: through the master vs direct"
TLS_SECTION = "### TLS handshakes: through the master vs direct (tls-new)"
TARGETS = {"keep-alive": 0.98, "new-conn": 0.85, "tls-new": 0.95,
           "floor": 1.1}
# Workloads: name in the table, then the spellings --workloads accepts.
WORKLOADS = ["keep-alive", "new-conn", "tls-new"]
WORKLOAD_ALIASES = {"keepalive": "keep-alive", "keep-alive": "keep-alive",
                    "newconn": "new-conn", "new-conn": "new-conn",
                    "tls-new": "tls-new", "tls": "tls-new"}
HTTP_WORKLOADS = ("keep-alive", "new-conn")
# Which workloads each path serves.
PATH_WORKLOADS = {
    "direct": WORKLOADS, "ddv": WORKLOADS, "haproxy-tcp": WORKLOADS,
    "haproxy-http": HTTP_WORKLOADS, "nginx": HTTP_WORKLOADS,
    "nginx-direct": HTTP_WORKLOADS, "nginx-stream": ("tls-new",),
}
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# /proc helpers


def proc_ticks(pid):
    """utime + stime of a process (all its threads, live and exited)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime is field 14, stime field 15.
    return int(rest[11]) + int(rest[12])


def children(pid):
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
    seen, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(children(p))
    return seen


def tree_ticks(pids):
    snap = {}
    for p in tree(pids):
        try:
            snap[p] = proc_ticks(p)
        except OSError:
            pass
    return snap


def delta_ticks(before, after):
    return sum(t - before.get(p, 0) for p, t in after.items())


def cpu_stat():
    """{cpuN: (busy_ticks, total_ticks)} from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *vals = line.split()
            vals = [int(v) for v in vals[:8]]
            idle = vals[3] + vals[4]
            out[name] = (sum(vals) - idle, sum(vals))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, host=HOST, timeout=2.0):
    """One GET on a new connection; returns (status, body) or raises."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n"
                  "Connection: close\r\n\r\n".encode())
        chunks = []
        while True:
            d = s.recv(65536)
            if not d:
                break
            chunks.append(d)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace")


def https_get(port, host=HOST, timeout=2.0):
    """One GET over TLS (SNI host) on a new connection: (status, body)."""
    import ssl
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with c.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n"
                      "Connection: close\r\n\r\n".encode())
            chunks = []
            while True:
                try:
                    d = s.recv(65536)
                except ssl.SSLEOFError:  # closed without close_notify
                    break
                if not d:
                    break
                chunks.append(d)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace")


def wait_http(port, procs, timeout=15.0, what="server", tls=False):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what} exited early (rc {p.returncode})")
        try:
            status, body = (https_get if tls else http_get)(port)
            if status == 200 and (not tls or f"sni={HOST} " in body and
                                  "tls=1" in body):
                return body
            last = f"status {status}: {body.strip()}"
        except (OSError, ValueError, IndexError) as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"{what} not answering 200 on port {port}: {last}")


def control(sock_path, command, timeout=5.0):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            d = s.recv(65536)
            if not d:
                break
            chunks.append(d)
    return b"".join(chunks).decode()


def ddv_counters(sock_path):
    out = {}
    for line in control(sock_path, "metrics").splitlines():
        if line.startswith("ddv_") and "{" not in line:
            name, _, val = line.partition(" ")
            try:
                out[name] = float(val)
            except ValueError:
                pass
    return out


# --------------------------------------------------------------------------
# Processes


class Procs:
    """Every process the driver starts; stop_all() ends them by pid."""

    def __init__(self):
        self.procs = []

    def start(self, argv, cpu, log_path, **kw):
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
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
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
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
                log(f"warning: stopping pid {p.pid}: {e}")


# --------------------------------------------------------------------------
# Servers. Each setup returns a dict: port, roots (pids whose tree is the
# server side), master (ddv master pid or None), control (socket or None).


def start_hello(ctx, name, tls=False):
    port = free_port()
    argv = [ctx.hello, f"--port={port}", "--address=127.0.0.1", "--site=a"]
    if tls:
        argv += ["--tls", f"--tls_cert={ctx.cert}", f"--tls_key={ctx.key}"]
    p = ctx.procs.start(argv, ctx.args.server_cpu,
                        os.path.join(ctx.dir, f"{name}.log"))
    wait_http(port, [p], what=f"ddv_hello ({name})", tls=tls)
    return p, port


def setup_direct(ctx, tls=False):
    p, port = start_hello(ctx, "direct-hello" + ("-tls" if tls else ""), tls)
    return {"port": port, "roots": [p.pid], "procs": [p]}


def make_cert(ctx):
    """One self-signed EC P-256 certificate for every TLS server."""
    ctx.cert = os.path.join(ctx.dir, "a.crt")
    ctx.key = os.path.join(ctx.dir, "a.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}",
         "-keyout", ctx.key, "-out", ctx.cert],
        check=True, capture_output=True, timeout=30)


def setup_ddv(ctx, tls=False):
    d = os.path.join(ctx.dir, "ddv-tls" if tls else "ddv")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    ctl = os.path.join(tempfile.mkdtemp(prefix="ddv-load-", dir="/tmp"),
                       "control.sock")
    ctx.cleanup_dirs.append(os.path.dirname(ctl))
    cfg = os.path.join(d, "ddv.toml")
    with open(cfg, "w") as f:
        f.write(f"""[master]
control_socket = "{ctl}"
handoff = "{ctx.args.ddv_handoff}"

[[listener]]
name = "{"tls" if tls else "http"}"
address = "127.0.0.1:{port}"
protocol = "{"tls" if tls else "http"}"

[[site]]
id = "a"
command = ["{ctx.hello}", "--site=a"]
processes = 1
hosts = ["{HOST}"]
log_all = "{d}/a.log"
""")
        if tls:
            f.write(f'tls_cert = ["{ctx.cert}"]\ntls_key = ["{ctx.key}"]\n')
    argv = [ctx.master, f"--config={cfg}", "--watchdog=false",
            f"--log_dir={d}"] + shlex.split(ctx.args.ddv_flags)
    p = ctx.procs.start(argv, ctx.args.server_cpu,
                        os.path.join(d, "master.out"))
    deadline = time.monotonic() + 15
    while True:
        if p.poll() is not None:
            raise RuntimeError(f"ddv_master exited (rc {p.returncode}); "
                               f"see {p.log_path}")
        try:
            st = json.loads(control(ctl, "status"))
            ws = [w for s in st["sites"] for w in s["workers"]]
            if ws and all(w.get("ready") for w in ws):
                break
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"ddv not ready; see {d}")
        time.sleep(0.05)
    wait_http(port, [p], what="ddv_master", tls=tls)
    return {"port": port, "roots": [p.pid], "procs": [p], "master": p.pid,
            "control": ctl}


HAPROXY_HTTP = """global
    nbthread 1
    maxconn 8000
    log stdout format raw local0 err
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
frontend fe
    bind 127.0.0.1:{port}
    use_backend be_a if {{ hdr(host) -i {host} }}
backend be_a
    http-reuse always
    server s1 127.0.0.1:{backend}
"""

HAPROXY_TCP = """global
    nbthread 1
    maxconn 8000
    log stdout format raw local0 err
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{port}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.ssl_hello_type 1 }} or HTTP
    use_backend be_a if {{ req.ssl_sni -i {host} }}
    use_backend be_a if {{ req.hdr(host) -i {host} }}
backend be_a
    server s1 127.0.0.1:{backend}
"""


# TLS passthrough: route on the ClientHello's SNI, no termination.
HAPROXY_TLS = """global
    nbthread 1
    maxconn 8000
    log stdout format raw local0 err
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:{port}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend be_a if {{ req.ssl_sni -i {host} }}
backend be_a
    server s1 127.0.0.1:{backend}
"""


def setup_haproxy(ctx, template, name, tls=False):
    if tls:
        template, name = HAPROXY_TLS, name + "-tls"
    hello, bport = start_hello(ctx, f"{name}-backend", tls)
    port = free_port()
    cfg = os.path.join(ctx.dir, f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write(template.format(port=port, backend=bport, host=HOST))
    p = ctx.procs.start([ctx.tools["haproxy"], "-db", "-f", cfg],
                        ctx.args.server_cpu, os.path.join(ctx.dir, f"{name}.log"))
    wait_http(port, [p, hello], what=name, tls=tls)
    return {"port": port, "roots": [p.pid, hello.pid], "procs": [p, hello]}


def nginx_conf(ctx, name, port, server_block):
    d = os.path.join(ctx.dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "nginx.conf")
    with open(cfg, "w") as f:
        f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name _;
        return 421;
    }}
{server_block}
}}
""")
    return d, cfg


def setup_nginx(ctx, tls=False):
    hello, bport = start_hello(ctx, "nginx-backend")
    port = free_port()
    d, cfg = nginx_conf(ctx, "nginx", port, f"""
    upstream hello {{
        server 127.0.0.1:{bport};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name {HOST};
        location / {{
            proxy_pass http://hello;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
        }}
    }}""")
    p = ctx.procs.start([ctx.tools["nginx"], "-p", d, "-e", f"{d}/error.log",
                         "-c", cfg], ctx.args.server_cpu,
                        os.path.join(d, "nginx.out"))
    wait_http(port, [p, hello], what="nginx")
    return {"port": port, "roots": [p.pid, hello.pid], "procs": [p, hello]}


def setup_nginx_direct(ctx, tls=False):
    port = free_port()
    # Same body length as ddv_hello's standalone answer.
    body = ctx.hello_body.rstrip("\n")
    body = body.replace("\\", "").replace('"', "")
    d, cfg = nginx_conf(ctx, "nginx-direct", port, f"""
    server {{
        listen 127.0.0.1:{port};
        server_name {HOST};
        default_type text/plain;
        location / {{ return 200 "{body}\\n"; }}
    }}""")
    p = ctx.procs.start([ctx.tools["nginx"], "-p", d, "-e", f"{d}/error.log",
                         "-c", cfg], ctx.args.server_cpu,
                        os.path.join(d, "nginx.out"))
    wait_http(port, [p], what="nginx-direct")
    return {"port": port, "roots": [p.pid], "procs": [p]}


def setup_nginx_stream(ctx, tls=True):
    """nginx stream, ssl_preread: SNI routing without terminating TLS."""
    hello, bport = start_hello(ctx, "nginx-stream-backend", tls=True)
    port = free_port()
    d = os.path.join(ctx.dir, "nginx-stream")
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "nginx.conf")
    with open(cfg, "w") as f:
        f.write(f"""load_module {NGINX_STREAM_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
stream {{
    map $ssl_preread_server_name $backend {{
        {HOST} hello;
        default 127.0.0.1:1;
    }}
    upstream hello {{
        server 127.0.0.1:{bport};
    }}
    server {{
        listen 127.0.0.1:{port};
        ssl_preread on;
        preread_timeout 5s;
        proxy_pass $backend;
    }}
}}
""")
    p = ctx.procs.start([ctx.tools["nginx"], "-p", d, "-e", f"{d}/error.log",
                         "-c", cfg], ctx.args.server_cpu,
                        os.path.join(d, "nginx.out"))
    wait_http(port, [p, hello], what="nginx-stream", tls=True)
    return {"port": port, "roots": [p.pid, hello.pid], "procs": [p, hello]}


SETUPS = {
    "direct": setup_direct,
    "ddv": setup_ddv,
    "haproxy-http": lambda ctx, tls=False: setup_haproxy(
        ctx, HAPROXY_HTTP, "haproxy-http", tls),
    "haproxy-tcp": lambda ctx, tls=False: setup_haproxy(
        ctx, HAPROXY_TCP, "haproxy-tcp", tls),
    "nginx": setup_nginx,
    "nginx-direct": setup_nginx_direct,
    "nginx-stream": setup_nginx_stream,
}
NEEDS = {"haproxy-http": "haproxy", "haproxy-tcp": "haproxy",
         "nginx": "nginx", "nginx-direct": "nginx", "nginx-stream": "nginx"}


# --------------------------------------------------------------------------
# wrk


def wrk_argv(ctx, port, close, duration):
    argv = ["taskset", "-c", str(ctx.args.client_cpu), ctx.tools["wrk"],
            "-t1", f"-c{ctx.args.connections}", f"-d{duration}s",
            "-H", f"Host: {HOST}"]
    if close:
        argv += ["-H", "Connection: close"]
    return argv + [f"http://127.0.0.1:{port}/"]


def wrk_display(ctx, close):
    s = f"wrk -t1 -c{ctx.args.connections} -d{ctx.args.duration}s -H 'Host: {HOST}'"
    if close:
        s += " -H 'Connection: close'"
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


def run_wrk(ctx, port, close, duration):
    argv = wrk_argv(ctx, port, close, duration)
    res = subprocess.run(argv, capture_output=True, text=True,
                         timeout=duration + 60)
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed: {res.stderr}{res.stdout}")
    return parse_wrk(res.stdout)


def tls_client_argv(ctx, port, duration):
    return ["taskset", "-c", str(ctx.args.client_cpu), ctx.tls_client,
            str(port), str(duration), str(ctx.args.connections), HOST]


def tls_client_display(ctx):
    return (f"tls_client PORT {ctx.args.duration} {ctx.args.connections} "
            f"{HOST}")


def run_tls_client(ctx, port, duration):
    res = subprocess.run(tls_client_argv(ctx, port, duration),
                         capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"requests (\d+) handshakes (\d+) errors (\d+) non2xx "
                  r"(\d+) resumed (\d+) seconds ([\d.]+) rps ([\d.]+) "
                  r"cpu_us (\d+)", res.stdout)
    if res.returncode != 0 or not m:
        raise RuntimeError(f"tls_client failed (rc {res.returncode}): "
                           f"{res.stderr}{res.stdout}")
    g = m.groups()
    return {"requests": int(g[0]), "handshakes": int(g[1]),
            "errors": int(g[2]), "non2xx": int(g[3]), "resumed": int(g[4]),
            "rps": float(g[6]), "client_cpu_us": float(g[7])}


def run_load(ctx, port, workload, duration):
    if workload == "tls-new":
        return run_tls_client(ctx, port, duration)
    return run_wrk(ctx, port, workload == "new-conn", duration)


def measure(ctx, server, workload):
    """Warm up, then one measured load run (wrk, or tls_client for
    tls-new); returns the numbers."""
    if ctx.args.warmup > 0:
        run_load(ctx, server["port"], workload, ctx.args.warmup)
        time.sleep(0.3)  # let closing connections finish on both sides
    roots = server["roots"]
    master = server.get("master")
    ctr0 = ddv_counters(server["control"]) if server.get("control") else None
    cpu0 = cpu_stat()
    t0 = tree_ticks(roots)
    m0 = proc_ticks(master) if master else 0
    w = run_load(ctx, server["port"], workload, ctx.args.duration)
    t1 = tree_ticks(roots)
    m1 = proc_ticks(master) if master else 0
    cpu1 = cpu_stat()
    ctr1 = ddv_counters(server["control"]) if server.get("control") else None
    # Sanity: the tree must be the same processes (no restart mid-run).
    gone = set(t0) - set(t1)
    if gone:
        log(f"warning: processes {sorted(gone)} ended during the run")
    req = max(w["requests"], 1)
    usec = 1e6 / CLK_TCK
    s, c = f"cpu{ctx.args.server_cpu}", f"cpu{ctx.args.client_cpu}"
    r = dict(w)
    r["server_us"] = delta_ticks(t0, t1) * usec / req
    r["cpu0_us"] = (cpu1[s][0] - cpu0[s][0]) * usec / req
    r["cpu0_busy"] = (cpu1[s][0] - cpu0[s][0]) / max(cpu1[s][1] - cpu0[s][1], 1)
    r["cpu1_busy"] = (cpu1[c][0] - cpu0[c][0]) / max(cpu1[c][1] - cpu0[c][1], 1)
    r["pids"] = len(t1)
    if "client_cpu_us" in w:
        # The client's own CPU per handshake: identical work on every path,
        # so server_us / client_us cancels how fast the machine ran.
        r["client_us"] = w["client_cpu_us"] / req
        r["server_per_client"] = r["server_us"] / max(r["client_us"], 1e-9)
    if master:
        r["master_us"] = (m1 - m0) * usec / req
        if ctr0 is not None and ctr1 is not None:
            handed = (ctr1.get("ddv_connections_handed_off_total", 0) -
                      ctr0.get("ddv_connections_handed_off_total", 0))
            batches = (ctr1.get("ddv_handoff_batches_total", 0) -
                       ctr0.get("ddv_handoff_batches_total", 0))
            r["handed_off"] = int(handed)
            r["batch"] = handed / batches if batches else 0.0
            if handed:
                r["master_us_per_handoff"] = (m1 - m0) * usec / handed
    return r


# --------------------------------------------------------------------------
# The accept+close floor


def build_floor(ctx):
    src = os.path.join(HERE, "accept_floor.c")
    out = os.path.join(ctx.dir, "accept_floor")
    subprocess.run([ctx.tools["cc"], "-O2", "-o", out, src], check=True)
    return out


def build_tls_client(ctx):
    src = os.path.join(HERE, "tls_client.c")
    out = os.path.join(ctx.dir, "tls_client")
    r = subprocess.run([ctx.tools["cc"], "-O2", "-o", out, src, "-lssl",
                        "-lcrypto"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"building tls_client.c failed (needs OpenSSL headers: "
                 f"apt-get install -y libssl-dev):\n{r.stderr}")
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
            import select
            r, _, _ = select.select([p.stdout], [], [], 0.5)
            if not r:
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                except OSError:
                    pass
            l = p.stdout.readline()
            return int(l.split()[1])

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
        usec = 1e6 / CLK_TCK
        s = f"cpu{ctx.args.server_cpu}"
        return {"conns": n1 - n0, "rate": (n1 - n0) / ctx.args.duration,
                "floor_us": (t1 - t0) * usec / conns,
                "cpu0_us": (c1[s][0] - c0[s][0]) * usec / conns}
    finally:
        ctx.procs.stop(p)


# --------------------------------------------------------------------------
# perf


def run_perf(ctx, server, workload="new-conn"):
    """A separate (unmeasured) run of a connection workload (new-conn or
    tls-new) with perf on the master."""
    tag = "master" if workload == "new-conn" else f"master.{workload}"
    out = os.path.join(ctx.args.perf, f"{tag}.perf.data")
    os.makedirs(ctx.args.perf, exist_ok=True)
    rec = subprocess.Popen(
        ["taskset", "-c", str(ctx.args.client_cpu), ctx.tools["perf"],
         "record", "-g", "-o", out, "-p", str(server["master"]), "--",
         "sleep", str(ctx.args.duration)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        run_load(ctx, server["port"], workload, ctx.args.duration)
        rec.wait(timeout=ctx.args.duration + 60)
    finally:
        if rec.poll() is None:
            rec.send_signal(signal.SIGINT)
            try:
                rec.wait(timeout=20)
            except subprocess.TimeoutExpired:
                rec.kill()
                rec.wait()
    report = subprocess.run(
        [ctx.tools["perf"], "report", "-i", out, "--stdio", "--no-children",
         "--sort", "sym", "-g", "none", "--percent-limit", "0.7"],
        capture_output=True, text=True, timeout=300)
    path = os.path.join(ctx.args.perf, f"{tag}.report.txt")
    with open(path, "w") as f:
        f.write(report.stdout)
    callers = subprocess.run(
        [ctx.tools["perf"], "report", "-i", out, "--stdio", "--children",
         "--sort", "sym", "-g", "none", "--percent-limit", "3"],
        capture_output=True, text=True, timeout=300)
    with open(os.path.join(ctx.args.perf, f"{tag}.children.txt"), "w") as f:
        f.write(callers.stdout)
    top = [l for l in report.stdout.splitlines()
           if l.strip() and not l.startswith("#")][:12]
    # Inclusive time of the kernel and master entry points that say where a
    # routed connection's master CPU goes.
    wanted = ["io_cqring_wait", "io_run_task_work", "tcp_close", "io_accept",
              "io_recv", "io_sendmsg", "io_poll_task_func", "net_rx_action",
              "schedule", "ddv::master::Master::Run",
              "ddv::master::Master::OnChannelReadable"]
    if workload == "tls-new":
        wanted += ["ddv::sniff::SniffTlsClientHello"]
    incl = {}
    for l in callers.stdout.splitlines():
        parts = l.split()
        if len(parts) >= 4 and parts[0].endswith("%"):
            sym = " ".join(parts[3:])
            for w in wanted:
                if (sym == w or sym.startswith(w + "(")) and w not in incl:
                    incl[w] = f"{parts[0]:>8} incl.  {w}"
    top += ["", "inclusive (children included):"] + \
        [incl[w] for w in wanted if w in incl]
    return path, top


# --------------------------------------------------------------------------
# Report


def fmt(x, nd=1):
    return f"{x:.{nd}f}"


def median_of(runs, key):
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else None


def summarize(results):
    """results[path][workload] = [run, ...] -> medians."""
    out = {}
    for path, wl in results.items():
        out[path] = {}
        for w, runs in wl.items():
            m = {k: median_of(runs, k) for k in
                 ("rps", "server_us", "cpu0_us", "cpu0_busy", "cpu1_busy",
                  "master_us", "master_us_per_handoff", "batch",
                  "client_us", "server_per_client")}
            m["errors"] = sum(r["errors"] + r["non2xx"] for r in runs)
            m["resumed"] = sum(r.get("resumed", 0) for r in runs)
            m["n"] = len(runs)
            m["rps_range"] = (min(r["rps"] for r in runs),
                              max(r["rps"] for r in runs))
            m["us_range"] = (min(r["server_us"] for r in runs),
                             max(r["server_us"] for r in runs))
            out[path][w] = m
    return out


def table(ctx, summ, floor):
    lines = []
    d = summ.get("direct", {})
    lines.append("| path | workload | req/s | req/s vs direct | server CPU "
                 "µs/req | efficiency | CPU 0 µs/req | CPU 0 / CPU 1 busy | "
                 "errors |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for path in ctx.paths:
        if path not in summ:
            continue
        for w in ("keep-alive", "new-conn"):
            m = summ[path].get(w)
            if not m:
                continue
            base = d.get(w)
            ratio = fmt(m["rps"] / base["rps"], 2) if base else "–"
            eff = fmt(base["server_us"] / m["server_us"], 2) if base else "–"
            rps = f"{m['rps'] / 1000:.1f}k"
            us = fmt(m["server_us"], 2)
            if m["n"] > 1:
                rps += (f" ({m['rps_range'][0] / 1000:.1f}–"
                        f"{m['rps_range'][1] / 1000:.1f}k)")
                us += f" ({fmt(m['us_range'][0], 2)}–{fmt(m['us_range'][1], 2)})"
            lines.append(
                f"| {path} | {w} | {rps} | {ratio} | {us} | {eff} | "
                f"{fmt(m['cpu0_us'], 2)} | {m['cpu0_busy'] * 100:.0f}% / "
                f"{m['cpu1_busy'] * 100:.0f}% | {m['errors']} |")
    fl = []
    ddv_nc = summ.get("ddv", {}).get("new-conn")
    if floor:
        f_us = statistics.median(r["floor_us"] for r in floor)
        f_rate = statistics.median(r["rate"] for r in floor)
        fl.append(f"- Floor (accept_floor.c, blocking accept4 + close on CPU "
                  f"{ctx.args.server_cpu}, wrk Connection: close load): "
                  f"{f_rate / 1000:.1f}k conn/s, **{fmt(f_us, 2)} µs** of its "
                  f"CPU per connection.")
        if ddv_nc and ddv_nc.get("master_us") is not None:
            ratio = ddv_nc["master_us"] / f_us
            extra = ""
            if ddv_nc.get("master_us_per_handoff"):
                extra = (f"; {fmt(ddv_nc['master_us_per_handoff'], 2)} µs per "
                         f"handed-off connection by the master's own counter, "
                         f"{fmt(ddv_nc['batch'], 2)} connections per handoff "
                         f"batch")
            fl.append(f"- ddv master process alone (workers excluded), "
                      f"new connections: **{fmt(ddv_nc['master_us'], 2)} µs** "
                      f"per routed connection{extra}. Ratio to the floor: "
                      f"**{fmt(ratio, 2)}×** (target ≤ {TARGETS['floor']}×).")
    return lines, fl


def tls_table(ctx, summ, floor, results):
    """The tls-new rows: handshakes/s, server and master CPU per handshake,
    and the same efficiency normalized by the client's CPU per handshake."""
    w = "tls-new"
    base = summ.get("direct", {}).get(w)
    lines = ["| path | handshakes/s | vs direct | server CPU µs/handshake | "
             "efficiency | master-only µs/handshake | client CPU "
             "µs/handshake | server ÷ client CPU | efficiency, "
             "client-normalized | CPU 0 / CPU 1 busy | errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in ctx.paths:
        m = summ.get(path, {}).get(w)
        if not m:
            continue
        ratio = fmt(m["rps"] / base["rps"], 2) if base else "–"
        eff = fmt(base["server_us"] / m["server_us"], 2) if base else "–"
        neff = (fmt(base["server_per_client"] / m["server_per_client"], 2)
                if base else "–")
        rps = f"{m['rps']:.0f}"
        us = fmt(m["server_us"], 1)
        if m["n"] > 1:
            rps += f" ({m['rps_range'][0]:.0f}–{m['rps_range'][1]:.0f})"
            us += f" ({fmt(m['us_range'][0], 1)}–{fmt(m['us_range'][1], 1)})"
        mu = "–"
        if m.get("master_us") is not None:
            mu = fmt(m["master_us"], 1)
            if m.get("batch"):
                mu += f" (batch {fmt(m['batch'], 2)})"
        spc = [r["server_per_client"] for r in results[path][w]]
        spc_s = fmt(m["server_per_client"], 3)
        if len(spc) > 1:
            spc_s += f" ({fmt(min(spc), 3)}–{fmt(max(spc), 3)})"
        lines.append(f"| {path} | {rps} | {ratio} | {us} | {eff} | {mu} | "
                     f"{fmt(m['client_us'], 1)} | {spc_s} | {neff} | "
                     f"{m['cpu0_busy'] * 100:.0f}% / "
                     f"{m['cpu1_busy'] * 100:.0f}% | {m['errors']} |")
    notes = []
    resumed = sum(m.get(w, {}).get("resumed", 0) for m in summ.values())
    notes.append(f"- Handshakes that resumed a session, all runs: {resumed} "
                 f"(every handshake full).")
    d_runs = results.get("direct", {}).get(w, [])
    v_runs = results.get("ddv", {}).get(w, [])
    if d_runs and len(d_runs) == len(v_runs) and len(d_runs) > 1:
        pairs = list(zip(d_runs, v_runs))
        notes.append(
            "- ddv paired with direct round by round (same round, adjacent "
            "in time): efficiency "
            + ", ".join(fmt(d["server_us"] / v["server_us"], 2)
                        for d, v in pairs)
            + "; client-normalized "
            + ", ".join(fmt(d["server_per_client"] / v["server_per_client"],
                            2) for d, v in pairs)
            + "; handshakes/s ratio "
            + ", ".join(fmt(v["rps"] / d["rps"], 2) for d, v in pairs) + ".")
    v = summ.get("ddv", {}).get(w)
    if v and base and v.get("master_us") is not None:
        notes.append(f"- ddv master process alone: {fmt(v['master_us'], 1)} "
                     f"µs per handshake, {fmt(100 * v['master_us'] / base['server_us'], 1)}"
                     f"% of direct's whole per-handshake server CPU.")
    if floor and v and v.get("master_us") is not None:
        f_us = statistics.median(r["floor_us"] for r in floor)
        notes.append(f"- ddv master alone: {fmt(v['master_us'], 2)} µs per "
                     f"handshake = {fmt(v['master_us'] / f_us, 2)}× this "
                     f"run's accept+close floor ({fmt(f_us, 2)} µs, measured "
                     f"under wrk's plain Connection: close load).")
    return lines, notes


def tls_verdicts(summ):
    out = []
    w = "tls-new"
    d = summ.get("direct", {}).get(w)
    v = summ.get("ddv", {}).get(w)
    if not d or not v:
        return out
    eff = d["server_us"] / v["server_us"]
    neff = d["server_per_client"] / v["server_per_client"]
    rr = v["rps"] / d["rps"]
    t = TARGETS[w]
    out.append(f"- ddv TLS handshakes: efficiency {eff:.3f} (target ≥ {t}): "
               f"**{'met' if eff >= t else 'NOT met'}**; client-normalized "
               f"{neff:.3f}: **{'met' if neff >= t else 'NOT met'}**; "
               f"handshakes/s {rr:.3f} of direct (target ≥ {t}): "
               f"**{'met' if rr >= t else 'NOT met'}** (medians).")
    for other in ("haproxy-tcp", "nginx-stream"):
        o = summ.get(other, {}).get(w)
        if not o:
            continue
        ahead = v["server_us"] < o["server_us"] and v["rps"] >= o["rps"]
        out.append(f"- ddv vs {other}, tls-new: {v['server_us']:.1f} vs "
                   f"{o['server_us']:.1f} µs/handshake, {v['rps']:.0f} vs "
                   f"{o['rps']:.0f} handshakes/s: "
                   f"{'ahead' if ahead else '**not ahead**'}.")
    return out


def verdicts(summ, floor):
    out = []
    d, v = summ.get("direct"), summ.get("ddv")
    if not d or not v:
        return out
    for w, key in (("keep-alive", "keep-alive"), ("new-conn", "new-conn")):
        if w in d and w in v:
            eff = d[w]["server_us"] / v[w]["server_us"]
            rr = v[w]["rps"] / d[w]["rps"]
            ok = eff >= TARGETS[key]
            out.append(f"- ddv {w}: efficiency {eff:.2f} (target ≥ "
                       f"{TARGETS[key]}), req/s {rr:.2f} of direct: "
                       f"**{'met' if ok else 'NOT met'}**.")
    if floor and "new-conn" in v and v["new-conn"].get("master_us") is not None:
        f_us = statistics.median(r["floor_us"] for r in floor)
        ratio = v["new-conn"]["master_us"] / f_us
        out.append(f"- Master CPU per routed connection: {ratio:.2f}× the floor "
                   f"(target ≤ {TARGETS['floor']}×): "
                   f"**{'met' if ratio <= TARGETS['floor'] else 'NOT met'}**.")
    for other in ("haproxy-http", "haproxy-tcp", "nginx"):
        o = summ.get(other)
        if not o:
            continue
        for w in ("keep-alive", "new-conn"):
            if w in o and w in v:
                ahead = v[w]["server_us"] < o[w]["server_us"] and \
                    v[w]["rps"] >= o[w]["rps"]
                out.append(f"- ddv vs {other}, {w}: {v[w]['server_us']:.2f} vs "
                           f"{o[w]['server_us']:.2f} µs/req, "
                           f"{v[w]['rps'] / 1000:.1f}k vs "
                           f"{o[w]['rps'] / 1000:.1f}k req/s: "
                           f"{'ahead' if ahead else '**not ahead**'}.")
    return out


def write_results_tls(path, text):
    """Replace (or add at the end of the load section) only the TLS
    subsection: a tls-new-only run leaves the HTTP tables alone."""
    with open(path) as f:
        content = f.read()
    sec = content.find(SECTION)
    if sec < 0:
        content = content.rstrip("\n") + "\n\n" + SECTION + "\n\n" + text
    else:
        nxt = content.find("\n## ", sec + len(SECTION))
        sec_end = len(content) if nxt < 0 else nxt + 1
        start = content.find(TLS_SECTION, sec, sec_end)
        if start < 0:
            body = content[:sec_end].rstrip("\n") + "\n\n" + text
        else:
            nxt3 = content.find("\n### ", start + len(TLS_SECTION), sec_end)
            end = sec_end if nxt3 < 0 else nxt3 + 1
            body = content[:start] + text + \
                ("\n" + content[end:sec_end] if end < sec_end else "")
        tail = content[sec_end:]
        content = body + ("\n" + tail if tail else "")
    with open(path, "w") as f:
        f.write(content)


def write_results(path, text):
    with open(path) as f:
        content = f.read()
    start = content.find(SECTION)
    if start < 0:
        content = content.rstrip("\n") + "\n\n" + text
    else:
        nxt = content.find("\n## ", start + len(SECTION))
        end = len(content) if nxt < 0 else nxt + 1
        tail = content[end:]
        content = content[:start] + text + ("\n" + tail if tail else "")
    with open(path, "w") as f:
        f.write(content)


# --------------------------------------------------------------------------


class Ctx:
    pass


def find_tools(paths):
    tools, missing = {}, []
    for t in ("wrk", "taskset", "cc"):
        tools[t] = shutil.which(t)
        if not tools[t]:
            missing.append(t)
    if missing:
        sys.exit(f"missing required tools: {', '.join(missing)} "
                 f"(apt-get install -y wrk util-linux gcc)")
    for t in ("haproxy", "nginx", "perf"):
        tools[t] = shutil.which(t) or (f"/usr/sbin/{t}"
                                       if os.path.exists(f"/usr/sbin/{t}")
                                       else None)
    need = sorted({NEEDS[p] for p in paths if p in NEEDS and not tools[NEEDS[p]]})
    if need:
        log(f"{' and '.join(need)} not installed; those rows are skipped. "
            f"Install with:\n    {INSTALL_HINT}")
    return tools


def locate_binaries(args):
    if args.bin_dir:
        return args.bin_dir
    base = ["bazel", f"--output_base={args.output_base}"]
    if not args.no_build:
        log("building //src:ddv_master //src:ddv_hello (--config=opt) ...")
        subprocess.run(base + ["build", "--config=opt", "--symlink_prefix=/",
                               "//src:ddv_master", "//src:ddv_hello"],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    out = subprocess.run(base + ["info", "--config=opt", "bazel-bin"], cwd=REPO,
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10,
                    help="seconds per measured run (default 10)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="unmeasured seconds of load before each run (default 1)")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every path this many times, interleaved; "
                         "the table shows medians (and ranges)")
    ap.add_argument("--paths", default=",".join(ALL_PATHS),
                    help="comma-separated subset of " + ",".join(ALL_PATHS))
    ap.add_argument("--workloads", default="keepalive,newconn,tls-new",
                    help="comma-separated subset of keepalive,newconn,tls-new "
                         "(default all); a path runs the ones it serves")
    ap.add_argument("--no_floor", action="store_true")
    ap.add_argument("--server_cpu", type=int, default=0)
    ap.add_argument("--client_cpu", type=int, default=1)
    ap.add_argument("--ddv_handoff", default="scm_rights",
                    choices=["scm_rights", "pidfd"])
    ap.add_argument("--ddv_flags", default="",
                    help="extra ddv_master flags, e.g. '--handoff_batch=64'")
    ap.add_argument("--bin_dir", help="where src/ddv_master and src/ddv_hello "
                    "are (default: build with bazel and ask bazel info)")
    ap.add_argument("--output_base", default="/root/.cache/bazel-ddv-bench")
    ap.add_argument("--no_build", action="store_true")
    ap.add_argument("--perf", metavar="DIR",
                    help="after the measured runs, record the ddv master with "
                         "perf during one extra new-connection run (and one "
                         "extra tls-new run); reports go to DIR")
    ap.add_argument("--json", metavar="FILE", help="write every run here")
    ap.add_argument("--write_results", action="store_true",
                    help="replace the '" + SECTION + "' section of "
                         "benchmarks/RESULTS.md (with --workloads tls-new "
                         "alone: only its TLS subsection)")
    ap.add_argument("--keep_dir", action="store_true",
                    help="keep the temporary directory (configs, logs)")
    args = ap.parse_args()

    command = "python3 benchmarks/load/run_load.py" + "".join(
        " " + shlex.quote(a) for a in sys.argv[1:])
    ctx = Ctx()
    ctx.args = args
    ctx.paths = [p for p in args.paths.split(",") if p]
    for p in ctx.paths:
        if p not in SETUPS:
            sys.exit(f"unknown path {p!r}; known: {', '.join(ALL_PATHS)}")
    if "direct" not in ctx.paths:
        ctx.paths.insert(0, "direct")
    ctx.workloads = []
    for w in args.workloads.split(","):
        if not w:
            continue
        if w not in WORKLOAD_ALIASES:
            sys.exit(f"unknown workload {w!r}; known: keepalive,newconn,"
                     f"tls-new")
        if WORKLOAD_ALIASES[w] not in ctx.workloads:
            ctx.workloads.append(WORKLOAD_ALIASES[w])
    ctx.workloads = [w for w in WORKLOADS if w in ctx.workloads]
    if not ctx.workloads:
        sys.exit("--workloads: nothing to run")
    # Only the paths that serve at least one chosen workload.
    ctx.paths = [p for p in ctx.paths
                 if any(w in PATH_WORKLOADS[p] for w in ctx.workloads)]
    ctx.tools = find_tools(ctx.paths)
    ctx.paths = [p for p in ctx.paths
                 if p not in NEEDS or ctx.tools[NEEDS[p]]]
    if "nginx-stream" in ctx.paths and not os.path.exists(NGINX_STREAM_MODULE):
        log(f"nginx-stream skipped: {NGINX_STREAM_MODULE} missing; install "
            f"with:\n    apt-get install -y libnginx-mod-stream")
        ctx.paths.remove("nginx-stream")
    tls = "tls-new" in ctx.workloads
    if tls and not shutil.which("openssl"):
        sys.exit("tls-new needs the openssl command (apt-get install -y "
                 "openssl)")
    if args.perf and not ctx.tools["perf"]:
        sys.exit("--perf: perf not installed (apt-get install -y linux-perf)")
    if os.cpu_count() < 2 or args.server_cpu == args.client_cpu:
        sys.exit("needs two distinct CPUs for server and client")

    src_rev = None
    try:  # what the binaries are built from (recorded with the TLS table)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                              cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"],
                               cwd=REPO, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        if head and not args.bin_dir:
            src_rev = (f"ddv built from commit {head}"
                       + (" plus uncommitted changes in src/" if dirty else ""))
    except Exception:
        pass
    bin_dir = locate_binaries(args)
    ctx.master = os.path.join(bin_dir, "src", "ddv_master")
    ctx.hello = os.path.join(bin_dir, "src", "ddv_hello")
    for b in (ctx.master, ctx.hello):
        if not os.access(b, os.X_OK):
            sys.exit(f"not found: {b}")
    ctx.dir = tempfile.mkdtemp(prefix="ddv-load-")
    ctx.cleanup_dirs = []
    ctx.procs = Procs()
    load_before = os.getloadavg()
    started = datetime.datetime.now()
    results = {p: {} for p in ctx.paths}
    floor = []
    perf_top = None
    perf_tls = None
    # The floor is measured under wrk's Connection: close load.
    use_floor = not args.no_floor and "new-conn" in ctx.workloads
    try:
        floor_bin = build_floor(ctx) if use_floor else None
        if tls:
            ctx.tls_client = build_tls_client(ctx)
            make_cert(ctx)
        if "nginx-direct" in ctx.paths:
            # The body nginx-direct returns: ddv_hello's own, same length.
            h, hport = start_hello(ctx, "probe")
            ctx.hello_body = http_get(hport)[1]
            ctx.procs.stop(h)
        for rnd in range(args.rounds):
            order = ctx.paths if rnd % 2 == 0 else list(reversed(ctx.paths))
            for path in order:
                groups = [[w for w in ctx.workloads if w in HTTP_WORKLOADS
                           and w in PATH_WORKLOADS[path]],
                          [w for w in ctx.workloads if w == "tls-new"
                           and w in PATH_WORKLOADS[path]]]
                for group in groups:
                    if not group:
                        continue
                    is_tls = group == ["tls-new"]
                    log(f"round {rnd + 1}/{args.rounds}: {path}"
                        + (" (TLS)" if is_tls else ""))
                    server = SETUPS[path](ctx, tls=is_tls)
                    try:
                        for w in group:
                            r = measure(ctx, server, w)
                            results[path].setdefault(w, []).append(r)
                            unit = "handshakes/s" if is_tls else "req/s"
                            log(f"  {w}: {r['rps']:.0f} {unit}, "
                                f"{r['server_us']:.2f} µs server CPU"
                                + (f", master {r['master_us']:.2f} µs"
                                   if "master_us" in r else "")
                                + (f", errors {r['errors'] + r['non2xx']}"
                                   if r['errors'] + r['non2xx'] else "")
                                + (f", resumed {r['resumed']}"
                                   if r.get("resumed") else ""))
                        if (path == "ddv" and args.perf
                                and rnd == args.rounds - 1):
                            if "new-conn" in group:
                                log("  perf record on the master (extra "
                                    "new-conn run) ...")
                                perf_top = run_perf(ctx, server, "new-conn")
                            if is_tls:
                                log("  perf record on the master (extra "
                                    "tls-new run) ...")
                                perf_tls = run_perf(ctx, server, "tls-new")
                    finally:
                        for p in reversed(server["procs"]):
                            ctx.procs.stop(p)
            if floor_bin:
                log(f"round {rnd + 1}/{args.rounds}: accept floor")
                f = measure_floor(ctx, floor_bin)
                floor.append(f)
                log(f"  {f['rate']:.0f} conn/s, {f['floor_us']:.2f} µs/conn")
    finally:
        ctx.procs.stop_all()
        for d in ctx.cleanup_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if not args.keep_dir:
            shutil.rmtree(ctx.dir, ignore_errors=True)
        else:
            log(f"kept {ctx.dir}")

    summ = summarize(results)
    rows, floor_lines = table(ctx, summ, floor)
    verdict = verdicts(summ, floor)
    versions = []
    for t, flag in (("haproxy", "-v"), ("nginx", "-v"), ("wrk", "-v")):
        if ctx.tools.get(t) and any(NEEDS.get(p) == t for p in ctx.paths) or \
                t == "wrk":
            try:
                r = subprocess.run([ctx.tools[t], flag], capture_output=True,
                                   text=True, timeout=10)
                first = (r.stdout + r.stderr).strip().splitlines()[0]
                first = re.split(r" - https?://| Copyright", first)[0]
                versions.append(first.strip())
            except Exception:
                pass
    tls_versions = []
    if tls and src_rev:
        tls_versions.append(src_rev)
        try:
            r = subprocess.run(["openssl", "version"], capture_output=True,
                               text=True, timeout=10)
            tls_versions.append(r.stdout.strip() + " (client and servers)")
        except Exception:
            pass
        tls_versions += [v for v in versions if not v.startswith("wrk")]
    load_after = os.getloadavg()

    http_ran = any(w in HTTP_WORKLOADS for w in ctx.workloads)
    text = []
    if http_ran:
        text = [SECTION, "",
            f"Measured {started:%Y-%m-%d %H:%M} by",
            "",
            f"    {command}",
            "",
            f"Each path ran {args.duration} s per workload ({args.rounds} "
            f"round(s), paths interleaved; {args.warmup} s unmeasured warm-up "
            f"before each run), all server processes pinned to CPU "
            f"{args.server_cpu} with `taskset`, wrk on CPU {args.client_cpu}, "
            f"loopback. Keep-alive: `{wrk_display(ctx, False)}`; new "
            f"connections: `{wrk_display(ctx, True)}`. Load average before / "
            f"after: {load_before[0]:.2f} / {load_after[0]:.2f}. "
            + ("; ".join(versions) + "." if versions else ""),
            "",
            "Server CPU = utime + stime of the path's whole server process "
            "tree (`/proc/PID/stat`: ddv master + worker, proxy + ddv_hello "
            "backend) over the run ÷ wrk's requests. Efficiency = direct's "
            "server CPU per request ÷ the path's. CPU 0 µs/req is CPU 0's "
            "busy time from `/proc/stat` (includes softirq and any other "
            "process on that CPU) ÷ requests."
            + (" Ranges are min–max over rounds; the first number is the "
               "median." if args.rounds > 1 else ""),
            ""] + rows + [""] + floor_lines
    if verdict:
        text += ["", "Against DESIGN.md's targets:", ""] + verdict
    if perf_top:
        text += ["", f"`perf record -g -p <master>` during an extra "
                 f"new-connection run, self time by symbol (top entries, "
                 f"full report in {perf_top[0]}), then inclusive time of a "
                 f"few entry points:", "", "```"] + perf_top[1] + ["```"]
    if tls:
        t_rows, t_notes = tls_table(ctx, summ, floor, results)
        t_verdict = tls_verdicts(summ)
        if text:
            text.append("")
        text += [TLS_SECTION, "",
                 f"Measured {started:%Y-%m-%d %H:%M} by",
                 "",
                 f"    {command}",
                 "",
                 f"Workload tls-new: every connection a full TLS handshake "
                 f"(no resumption: the client keeps no session and offers no "
                 f"ticket), SNI `{HOST}`, ALPN `http/1.1`, one `GET /` with "
                 f"`Connection: close`, read to the end of the answer, close. "
                 f"Client: `benchmarks/load/tls_client.c` (`cc -O2 ... -lssl "
                 f"-lcrypto`, one thread, epoll), `{tls_client_display(ctx)}` "
                 f"on CPU {args.client_cpu}; every server process on CPU "
                 f"{args.server_cpu}; loopback. TLS 1.3 with X25519 (the "
                 f"client's default), one self-signed EC P-256 certificate "
                 f"(`openssl req -x509 -newkey ec -pkeyopt "
                 f"ec_paramgen_curve:prime256v1`) for every server. "
                 f"{args.duration} s per run, {args.rounds} round(s), paths "
                 f"interleaved, {args.warmup} s unmeasured warm-up before "
                 f"each run. Load average before / after: "
                 f"{load_before[0]:.2f} / {load_after[0]:.2f}. "
                 + ("; ".join(tls_versions) + "." if tls_versions else ""),
                 "",
                 "Paths: direct = `ddv_hello --port --tls` alone; ddv = "
                 "`ddv_master --watchdog=false`, one `tls` listener, site "
                 "`a` (`processes = 1`, `tls_cert`/`tls_key`); haproxy-tcp = "
                 "HAProxy `mode tcp`, `tcp-request inspect-delay 5s`, "
                 "`use_backend` on `req.ssl_sni` to a `ddv_hello --tls` "
                 "backend; nginx-stream = nginx `stream` with `ssl_preread` "
                 "and a `map` on `$ssl_preread_server_name` to the same kind "
                 "of backend. Handshakes/s = the client's complete answers "
                 "÷ time. Server CPU = utime + stime of the path's whole "
                 "server process tree ÷ handshakes; efficiency = direct's ÷ "
                 "the path's; master-only = the ddv master process alone "
                 "(worker excluded). Client CPU = the client process's own "
                 "utime + stime (getrusage) ÷ handshakes: the same work on "
                 "every path, so it measures how fast the shared VM ran "
                 "during that run; server ÷ client CPU cancels that drift, "
                 "and the client-normalized efficiency is direct's server ÷ "
                 "client ratio over the path's."
                 + (" Ranges are min–max over rounds; the first number is "
                    "the median." if args.rounds > 1 else ""),
                 ""] + t_rows + [""] + t_notes
        if t_verdict:
            text += ["", "Against DESIGN.md's target (TLS handshakes ≥ "
                     f"{TARGETS['tls-new']}):", ""] + t_verdict
        if perf_tls:
            text += ["", f"`perf record -g -p <master>` during an extra "
                     f"tls-new run, self time by symbol (top entries, full "
                     f"report in {perf_tls[0]}), then inclusive time of a "
                     f"few entry points:", "", "```"] + perf_tls[1] + ["```"]
    out = "\n".join(text) + "\n"
    print(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command, "started": started.isoformat(),
                       "results": results, "floor": floor}, f, indent=1)
    if args.write_results:
        results_md = os.path.join(REPO, "benchmarks", "RESULTS.md")
        if http_ran:
            write_results(results_md, out)
            log("wrote the section into benchmarks/RESULTS.md")
        else:
            write_results_tls(results_md, out)
            log("wrote the TLS subsection into benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
