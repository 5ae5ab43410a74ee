#!/usr/bin/env python3
"""Full (or resumed) TLS handshakes per second against ddv_hello standalone
(--tls), with `openssl s_time` as the client; optionally nginx terminating
TLS with the same certificate, interleaved with it in every round.

What it is for: the TLS library's own cost (ddv_hello against nginx; TLS 1.2;
resumed handshakes). Not for ddv through the master against direct: that is
benchmarks/load/run_load.py --workloads tls-new,tls-latency, which starts
both paths itself, pinned, counts each one's whole process tree and
interleaves them (benchmarks/RESULTS.md, "TLS and low-rate cost (session
4)", says why this driver's old --target mode gave 1.01-1.08 there).

Reports, per path: handshakes/s (s_time keeps one connection in flight and
sends no request: latency-bound, neither side saturated) and the server's
CPU per handshake (utime+stime of its process from /proc/PID/stat, the
steadier figure), each run and then the medians with min-max over rounds.
Loopback only; every run is bounded by --seconds.

  python3 benchmarks/tls_handshake/run_handshakes.py \
      --hello bazel-bin/src/ddv_hello --seconds 10 --nginx
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total / CLK_TCK


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory):
    cert = os.path.join(directory, "bench.crt")
    key = os.path.join(directory, "bench.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=bench.localhost",
         "-addext", "subjectAltName=DNS:bench.localhost",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=30)
    return cert, key


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def taskset(cpu, argv):
    if cpu is None or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(cpu)] + argv


def start_hello(args, cert, key, port):
    argv = [args.hello, f"--port={port}", "--tls", f"--tls_cert={cert}",
            f"--tls_key={key}", "--minloglevel=1"]
    proc = subprocess.Popen(taskset(args.server_cpu, argv),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port)
    return proc, [proc.pid]


def start_nginx(args, cert, key, port, directory):
    conf = os.path.join(directory, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
master_process off;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache off;
  ssl_session_tickets on;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{ return 200 "hello\\n"; }}
  }}
}}
""")
    proc = subprocess.Popen(
        taskset(args.server_cpu, ["nginx", "-c", conf, "-p", directory]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port)
    return proc, [proc.pid]


def s_time(args, port, extra=()):
    """Runs `openssl s_time` for args.seconds; returns (connections, secs)."""
    argv = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}",
            "-time", str(args.seconds)] + list(extra)
    if args.resume:
        argv.append("-reuse")
    else:
        argv.append("-new")
    if args.tls12:
        argv.append("-tls1_2")
    out = subprocess.run(taskset(args.client_cpu, argv), capture_output=True,
                         text=True, timeout=args.seconds + 30)
    text = out.stdout + out.stderr
    matches = re.findall(r"(\d+) connections in (\d+(?:\.\d+)?) real seconds",
                         text)
    if not matches:
        raise RuntimeError(f"unexpected s_time output:\n{text}")
    # With -reuse s_time prints the first (full) round, then the reused one.
    connections, seconds = matches[-1]
    return int(connections), float(seconds)


def measure(name, args, port, pids):
    s_time(argparse.Namespace(**{**vars(args), "seconds": 1}), port)  # warm
    before = cpu_seconds(pids)
    start = time.monotonic()
    connections, _ = s_time(args, port)
    wall = time.monotonic() - start
    cpu = cpu_seconds(pids) - before
    rate = connections / max(wall, 1e-9)
    per = cpu / connections * 1e6 if connections else float("nan")
    print(f"{name:<34} {rate:>10.0f} handshakes/s   "
          f"{per:>7.1f} µs server CPU/handshake   ({connections} in "
          f"{wall:.1f}s)")
    sys.stdout.flush()
    return rate, per


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hello", default="bazel-bin/src/ddv_hello",
                        help="ddv_hello binary (build with --config=opt)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1,
                        help="interleaved rounds per path")
    parser.add_argument("--server_cpu", type=int, default=0)
    parser.add_argument("--client_cpu", type=int, default=1)
    parser.add_argument("--nginx", action="store_true",
                        help="also measure nginx with the same certificate")
    parser.add_argument("--resume", action="store_true",
                        help="resumed handshakes (s_time -reuse) instead")
    parser.add_argument("--tls12", action="store_true",
                        help="force TLS 1.2 (default: TLS 1.3)")
    args = parser.parse_args()

    directory = tempfile.mkdtemp(prefix="ddv-tls-bench-")
    cert, key = make_cert(directory)
    kind = "resumed" if args.resume else "full"
    version = "TLS 1.2" if args.tls12 else "TLS 1.3"
    print(f"# {kind} {version} handshakes, openssl s_time on CPU "
          f"{args.client_cpu}, server on CPU {args.server_cpu}, "
          f"{args.seconds}s per run")
    paths = []
    port = free_port()
    proc, pids = start_hello(args, cert, key, port)
    paths.append(("ddv_hello --tls (direct)", proc, port, pids))
    if args.nginx:
        port = free_port()
        proc, pids = start_nginx(args, cert, key, port, directory)
        paths.append(("nginx (same cert)", proc, port, pids))
    runs = {name: [] for name, _, _, _ in paths}
    try:
        for rnd in range(args.rounds):
            # Every other round in reverse: each path goes first as often.
            order = paths if rnd % 2 == 0 else list(reversed(paths))
            for name, _, port, pids in order:
                runs[name].append(measure(name, args, port, pids))
        if args.rounds > 1:
            print(f"# medians (min-max) over {args.rounds} rounds")
            for name, got in runs.items():
                rates = [r for r, _ in got]
                pers = [p for _, p in got]
                print(f"{name:<34} {statistics.median(rates):>10.0f} "
                      f"({min(rates):.0f}-{max(rates):.0f}) handshakes/s   "
                      f"{statistics.median(pers):>7.1f} "
                      f"({min(pers):.1f}-{max(pers):.1f}) µs server "
                      f"CPU/handshake")
    finally:
        for _, proc, _, _ in paths:
            if proc is not None:
                stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
