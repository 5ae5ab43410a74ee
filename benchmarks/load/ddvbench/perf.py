"""`perf record` on the ddv master during one extra, unmeasured run."""
import os
import signal
import subprocess
import time

from .loadgen import run_load

# Inclusive time of the kernel and master entry points that say where a
# routed connection's master CPU goes.
ENTRY_POINTS = ["io_cqring_wait", "io_run_task_work", "tcp_close",
                "io_accept", "io_recv", "io_sendmsg", "io_poll_task_func",
                "net_rx_action", "schedule", "ddv::master::Master::Run",
                "ddv::master::Master::OnChannelReadable"]
TLS_ENTRY_POINTS = ["ddv::sniff::SniffTlsClientHello"]


def run_perf(ctx, server, workload="new-conn"):
    """A separate (unmeasured) run of a connection workload (new-conn or
    tls-new) with perf on the master. Returns (report path, summary
    lines)."""
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
    wanted = ENTRY_POINTS + (TLS_ENTRY_POINTS if workload == "tls-new"
                             else [])
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
