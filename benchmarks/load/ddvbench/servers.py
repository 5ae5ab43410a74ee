"""Each path's server set-up. A set-up returns a dict: port, roots (pids
whose process tree is the server side), procs (to stop, in order), and for
ddv master (its pid) and control (its control socket).

Configs are the files in benchmarks/load/templates/, every `{{name}}` filled
in by render(); nothing else is substituted, so nginx's `$var` and
HAProxy's `{ ... }` stay literal."""
import os
import re
import shlex
import subprocess
import tempfile
import time

from pyddv.control import wait_workers_ready
from pyddv.net import free_port, http_get, https_get

from .common import (ACCESSLOG, BASELINE, HOST, NGINX_STREAM_MODULE, SHARDS2,
                     TEMPLATES)

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render(template, **values):
    """The template file's text with every {{name}} replaced."""
    with open(os.path.join(TEMPLATES, template)) as f:
        text = f.read()
    missing = sorted({m for m in _PLACEHOLDER.findall(text)
                      if m not in values})
    if missing:
        raise KeyError(f"{template}: no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)


def write_config(path, template, **values):
    with open(path, "w") as f:
        f.write(render(template, **values))
    return path


def wait_http(port, procs, timeout=15.0, what="server", tls=False):
    """Until the server answers 200 (over TLS: with our SNI seen)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what} exited early (rc {p.returncode})")
        try:
            if tls:
                status, body = https_get(port, HOST, timeout=2.0)
            else:
                status, body = http_get(port, HOST, timeout=2.0)[:2]
            if status == 200 and (not tls or f"sni={HOST} " in body and
                                  "tls=1" in body):
                return body
            last = f"status {status}: {body.strip()}"
        except (OSError, ValueError, IndexError) as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"{what} not answering 200 on port {port}: {last}")


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


def start_hello(ctx, name, tls=False):
    """A standalone ddv_hello (the build under test) on a free port."""
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


def setup_ddv(ctx, tls=False, path="ddv"):
    """ddv_master --watchdog=false, one listener, one site; `path` picks the
    build (ddv, or ddv-before for --baseline_bin_dir) and, for
    ddv-accesslog, the templates with an access log (this build's binaries)."""
    build = ctx.builds["ddv" if path in (ACCESSLOG, SHARDS2) else path]
    d = os.path.join(ctx.dir, path + ("-tls" if tls else ""))
    os.makedirs(d, exist_ok=True)
    port = free_port()
    # Unix socket paths are limited to 108 bytes: a short directory in /tmp.
    ctl = os.path.join(tempfile.mkdtemp(prefix="ddv-load-", dir="/tmp"),
                       "control.sock")
    ctx.cleanup_dirs.append(os.path.dirname(ctl))
    template = "ddv-tls.toml" if tls else "ddv.toml"
    if path == ACCESSLOG:
        template = template.replace("ddv", "ddv-accesslog", 1)
    cfg = write_config(
        os.path.join(d, "ddv.toml"), template,
        control_socket=ctl, handoff=ctx.args.ddv_handoff, port=port,
        hello=build.hello, host=HOST, dir=d, cert=ctx.cert, key=ctx.key)
    flags = ctx.args.ddv_flags
    if path == BASELINE and ctx.args.baseline_ddv_flags is not None:
        flags = ctx.args.baseline_ddv_flags
    argv = [build.master, f"--config={cfg}", "--watchdog=false",
            f"--log_dir={d}"] + shlex.split(flags)
    if path == SHARDS2:
        argv.append("--shards=2")
    p = ctx.procs.start(argv, ctx.args.server_cpu,
                        os.path.join(d, "master.out"))
    try:
        wait_workers_ready(p, ctl, timeout=15.0, what=path)
    except RuntimeError as e:
        raise RuntimeError(f"{e}; see {d}") from None
    wait_http(port, [p], what=path, tls=tls)
    return {"port": port, "roots": [p.pid], "procs": [p], "master": p.pid,
            "control": ctl, "config": cfg}


def setup_haproxy(ctx, name, tls=False):
    template = f"{name}.cfg"
    if tls:
        template, name = "haproxy-tcp-tls.cfg", name + "-tls"
    hello, bport = start_hello(ctx, f"{name}-backend", tls)
    port = free_port()
    cfg = write_config(os.path.join(ctx.dir, f"{name}.cfg"), template,
                       port=port, backend=bport, host=HOST)
    p = ctx.procs.start([ctx.tools["haproxy"], "-db", "-f", cfg],
                        ctx.args.server_cpu, os.path.join(ctx.dir, f"{name}.log"))
    wait_http(port, [p, hello], what=name, tls=tls)
    return {"port": port, "roots": [p.pid, hello.pid], "procs": [p, hello]}


def start_nginx(ctx, name, template, **values):
    """nginx -p DIR -c DIR/nginx.conf from the template; returns the
    process."""
    d = os.path.join(ctx.dir, name)
    os.makedirs(d, exist_ok=True)
    cfg = write_config(os.path.join(d, "nginx.conf"), template, dir=d,
                       host=HOST, **values)
    return ctx.procs.start([ctx.tools["nginx"], "-p", d, "-e",
                            f"{d}/error.log", "-c", cfg],
                           ctx.args.server_cpu, os.path.join(d, "nginx.out"))


def setup_nginx(ctx, tls=False):
    hello, bport = start_hello(ctx, "nginx-backend")
    port = free_port()
    p = start_nginx(ctx, "nginx", "nginx.conf", port=port, backend=bport)
    wait_http(port, [p, hello], what="nginx")
    return {"port": port, "roots": [p.pid, hello.pid], "procs": [p, hello]}


def setup_nginx_direct(ctx, tls=False):
    port = free_port()
    # Same body length as ddv_hello's standalone answer.
    body = ctx.hello_body.rstrip("\n")
    body = body.replace("\\", "").replace('"', "")
    p = start_nginx(ctx, "nginx-direct", "nginx-direct.conf", port=port,
                    body=body)
    wait_http(port, [p], what="nginx-direct")
    return {"port": port, "roots": [p.pid], "procs": [p]}


def setup_nginx_stream(ctx, tls=True):
    """nginx stream, ssl_preread: SNI routing without terminating TLS."""
    hello, bport = start_hello(ctx, "nginx-stream-backend", tls=True)
    port = free_port()
    p = start_nginx(ctx, "nginx-stream", "nginx-stream.conf", port=port,
                    backend=bport, stream_module=NGINX_STREAM_MODULE)
    wait_http(port, [p, hello], what="nginx-stream", tls=True)
    return {"port": port, "roots": [p.pid, hello.pid], "procs": [p, hello]}


def setup_sniproxy(ctx, tls=False):
    """sniproxy 0.6: `protocol http` (Host) or `tls` (SNI), one table entry
    to a ddv_hello backend; it copies the bytes both ways."""
    hello, bport = start_hello(ctx, "sniproxy-backend" + ("-tls" if tls
                                                          else ""), tls)
    port = free_port()
    d = os.path.join(ctx.dir, "sniproxy" + ("-tls" if tls else ""))
    os.makedirs(d, exist_ok=True)
    cfg = write_config(os.path.join(d, "sniproxy.conf"), "sniproxy.conf",
                       user="root", dir=d, port=port, backend=bport,
                       host=HOST, proto="tls" if tls else "http")
    # -f: foreground (no fork, so the process tree is the one we started).
    p = ctx.procs.start([ctx.tools["sniproxy"], "-f", "-c", cfg],
                        ctx.args.server_cpu, os.path.join(d, "sniproxy.out"))
    wait_http(port, [p, hello], what="sniproxy", tls=tls)
    return {"port": port, "roots": [p.pid, hello.pid], "procs": [p, hello]}


SETUPS = {
    "direct": setup_direct,
    "ddv": setup_ddv,
    BASELINE: lambda ctx, tls=False: setup_ddv(ctx, tls, BASELINE),
    ACCESSLOG: lambda ctx, tls=False: setup_ddv(ctx, tls, ACCESSLOG),
    SHARDS2: lambda ctx, tls=False: setup_ddv(ctx, tls, SHARDS2),
    "haproxy-http": lambda ctx, tls=False: setup_haproxy(
        ctx, "haproxy-http", tls),
    "haproxy-tcp": lambda ctx, tls=False: setup_haproxy(
        ctx, "haproxy-tcp", tls),
    "nginx": setup_nginx,
    "nginx-direct": setup_nginx_direct,
    "nginx-stream": setup_nginx_stream,
    "sniproxy": setup_sniproxy,
}


def probe_hello_body(ctx):
    """ddv_hello's own answer body (nginx-direct returns one as long)."""
    h, hport = start_hello(ctx, "probe")
    try:
        return http_get(hport, HOST, timeout=2.0)[1]
    finally:
        ctx.procs.stop(h)
