"""The load shapes beyond keep-alive and new connections, measured with
benchmarks/load/conn_shapes.c (and wrk for download):

- download: wrk keep-alive fetching 1 MiB answers (`/bytes/1048576`);
- idle: --idle_count connections that never send a byte, held open while
  the new-connection load runs (reopened as the server closes them: ddv
  does at its 5 s peek_timeout_ms); the server's RSS while they idle;
- idle-held (ddv only): the same, with ddv's peek_timeout_ms raised by a
  reload to --idle_held_peek_timeout_ms (60 s) for the hold, so they stay
  open: the routing rate while 15k really idle;
- slow: --slow_count clients sending one byte per second while the
  new-connection load runs; how many the server closed, after how long;
- latency: new connections at a fixed --latency_rate (open loop), p50/p99
  from the scheduled start to the end of the answer;
- tls-latency: the same with a full TLS handshake per connection
  (tls_client.c with RATE), on the TLS servers.
Both latency tables split the server CPU into the ddv master's own and the
rest (its worker), and count the master's wake-ups (voluntary context
switches) per connection: its cost at a low rate, where every connection is
a wake-up, against new-conn and tls-new (saturation).

idle and slow are judged against the same path's new-conn run in the same
round (ddv's targets: rate >= 0.9x without them; master RSS <= 64 MiB with
15k idle)."""
import os
import re
import select
import subprocess
import sys
import time

from pyddv.control import control
from pyddv.procs import tree

from .common import HERE, HOST, SHAPES, log

IDLE_RSS_TARGET_MIB = 64
SHAPE_RATE_TARGET = 0.9


def build_conn_shapes(ctx):
    src = os.path.join(HERE, "conn_shapes.c")
    out = os.path.join(ctx.dir, "conn_shapes")
    r = subprocess.run([ctx.tools["cc"], "-O2", "-o", out, src],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"building conn_shapes.c failed:\n{r.stderr}")
    return out


def parse_fields(line):
    """'name value name value ...' -> dict of floats."""
    parts = line.split()
    return {parts[i]: float(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}


def run_latency(ctx, port, duration):
    """conn_shapes rate: fixed-rate new connections, latency percentiles."""
    argv = ["taskset", "-c", str(ctx.args.client_cpu), ctx.conn_shapes,
            "rate", str(port), str(ctx.args.latency_rate), str(duration),
            HOST]
    res = subprocess.run(argv, capture_output=True, text=True,
                         timeout=duration + 60)
    line = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    if not line.startswith("requests "):
        raise RuntimeError(f"conn_shapes rate failed (rc {res.returncode}): "
                           f"{res.stderr}{res.stdout}")
    f = parse_fields(line)
    return {"requests": int(f["requests"]), "rps": f["achieved_rps"],
            "errors": int(f["errors"]), "non2xx": int(f["non2xx"]),
            "p50_us": f["p50_us"], "p90_us": f["p90_us"],
            "p99_us": f["p99_us"], "max_us": f["max_us"]}


def latency_display(ctx):
    return (f"conn_shapes rate PORT {ctx.args.latency_rate} "
            f"{ctx.args.duration} {HOST}")


def rss_kib(pids):
    """VmRSS of each pid in `pids` (KiB); missing processes count 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def hold_display(ctx, workload):
    mode = "slow" if workload == "slow" else "idle"
    count = ctx.args.slow_count if mode == "slow" else ctx.args.idle_count
    return f"conn_shapes hold PORT {count} {mode} SECONDS {HOST}"


def set_peek_timeout(server, ms):
    """Rewrites ddv's config with peek_timeout_ms = `ms` (None: the
    template's own, the 5 s default) and reloads it; it applies to the
    connections accepted from then on (docs/config.md)."""
    with open(server["config"]) as f:
        lines = [l for l in f.read().splitlines(True)
                 if not l.startswith("peek_timeout_ms")]
    if ms is not None:
        at = lines.index("[master]\n") + 1
        lines.insert(at, f"peek_timeout_ms = {ms}\n")
    with open(server["config"], "w") as f:
        f.writelines(lines)
    answer = control(server["control"], "reload", timeout=30)
    if not answer.startswith("ok"):
        raise RuntimeError(f"ddv reload for peek_timeout_ms={ms}: {answer}")


def measure_held(ctx, server, workload, measure_newconn):
    """Holds idle or slow connections while `measure_newconn` (a function
    running one measured new-conn run) runs; returns its result with the
    holder's figures and the server's RSS added. idle-held raises ddv's
    peek_timeout_ms for the hold and puts it back after."""
    if workload == "idle-held":
        try:  # the config is put back even when the first reload failed
            set_peek_timeout(server, ctx.args.idle_held_peek_timeout_ms)
            return _measure_held(ctx, server, "idle", measure_newconn)
        finally:
            set_peek_timeout(server, None)
    return _measure_held(ctx, server, workload, measure_newconn)


def _measure_held(ctx, server, mode, measure_newconn):
    count = ctx.args.idle_count if mode == "idle" else ctx.args.slow_count
    # Long enough for the ramp, the warm-up and the run; ended by SIGTERM.
    seconds = 60 + ctx.args.warmup + ctx.args.duration
    argv = ["taskset", "-c", str(ctx.args.client_cpu), ctx.conn_shapes,
            "hold", str(server["port"]), str(count), mode, str(seconds), HOST]
    holder = subprocess.Popen(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        r, _, _ = select.select([holder.stdout], [], [], 40)
        first = holder.stdout.readline() if r else ""
        if not first.startswith("holding"):
            raise RuntimeError(f"conn_shapes hold: {first!r}")
        held_at_start = int(first.split()[1])
        time.sleep(1.0)  # let the server take them in
        rss_before = rss_kib(tree(server["roots"]))
        master_rss_before = (rss_kib([server["master"]])
                             if server.get("master") else None)
        result = measure_newconn()
        rss_after = rss_kib(tree(server["roots"]))
        master_rss_after = (rss_kib([server["master"]])
                            if server.get("master") else None)
    finally:
        holder.terminate()
        out, err = holder.communicate(timeout=30)
    line = [l for l in out.splitlines() if l.startswith("open ")]
    if not line:
        raise RuntimeError(f"conn_shapes hold gave no report: {out}{err}")
    f = parse_fields(line[-1])
    result.update({
        "held": held_at_start, "held_open_at_end": int(f["open"]),
        "closed_by_server": int(f["closed_by_server"]),
        "lifetime_p50_ms": f["lifetime_p50_ms"],
        "connect_errors": int(f["connect_errors"]),
        "tree_rss_mib": max(rss_before, rss_after) / 1024.0})
    if master_rss_before is not None:
        result["master_rss_mib"] = max(master_rss_before,
                                       master_rss_after) / 1024.0
    log(f"  {mode}: held {held_at_start}, closed by the server "
        f"{result['closed_by_server']} (p50 lifetime "
        f"{result['lifetime_p50_ms']:.0f} ms), server RSS "
        f"{result['tree_rss_mib']:.1f} MiB"
        + (f", master {result['master_rss_mib']:.1f} MiB"
           if "master_rss_mib" in result else ""))
    return result


# --------------------------------------------------------------------------
# The report: one table per shape, medians over rounds with min–max.

SHAPES_SECTION = "## Load shapes: ddv vs direct vs the proxies"


def _med(runs, key):
    vals = sorted(r[key] for r in runs if key in r)
    if not vals:
        return None, None, None
    n = len(vals)
    mid = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    return mid, vals[0], vals[-1]


def _cell(runs, key, nd=1, scale=1.0, suffix=""):
    m, lo, hi = _med(runs, key)
    if m is None:
        return "–"
    s = f"{m * scale:.{nd}f}{suffix}"
    if len(runs) > 1 and lo != hi:
        s += f" ({lo * scale:.{nd}f}–{hi * scale:.{nd}f})"
    return s


def _errors(runs):
    return sum(r.get("errors", 0) + r.get("non2xx", 0) for r in runs)


def _ratio(runs, base_runs, key):
    """median(runs[key]) / median(base_runs[key]), 2 decimals."""
    a, _, _ = _med(runs, key)
    b, _, _ = _med(base_runs or [], key)
    return f"{a / b:.2f}" if a and b else "–"


def compose_shapes(ctx, run):
    """The Markdown of the load-shapes section ('' when no shape ran)."""
    from .loadgen import tls_client_display, wrk_display
    from .common import DOWNLOAD_PATH
    shapes = [w for w in SHAPES_ORDER if w in ctx.workloads]
    if not shapes:
        return ""
    args = ctx.args
    res = run.results
    direct = res.get("direct", {})
    text = [SHAPES_SECTION, "",
            f"Measured {run.started:%Y-%m-%d %H:%M} by", "",
            f"    {run.command}", "",
            f"Every server process on CPU {args.server_cpu}, every client on "
            f"CPU {args.client_cpu}, loopback; {args.duration} s per run, "
            f"{args.rounds} round(s), paths interleaved; medians, min–max in "
            f"brackets. Server CPU is the path's whole process tree (as in "
            f"the section above). Load average before / after: "
            f"{run.load_before[0]:.2f} / {run.load_after[0]:.2f}.", ""]
    if "download" in shapes:
        text += [f"**download** (1 MiB answers, keep-alive): "
                 f"`{wrk_display(ctx, False, DOWNLOAD_PATH, args.download_connections)}`. "
                 f"Efficiency = direct's server CPU per answer ÷ the path's.",
                 "", "| path | answers/s (= MiB/s) | server CPU µs/answer | "
                 "efficiency | errors |", "|---|---|---|---|---|"]
        for path in ctx.paths:
            runs = res.get(path, {}).get("download")
            if not runs:
                continue
            d = direct.get("download")
            eff = "–"
            if d:
                a, _, _ = _med(d, "server_us")
                b, _, _ = _med(runs, "server_us")
                eff = f"{a / b:.2f}" if a and b else "–"
            text.append(f"| {path} | {_cell(runs, 'rps', 0)} | "
                        f"{_cell(runs, 'server_us', 1)} | {eff} | "
                        f"{_errors(runs)} |")
        text.append("")
    idle_what = "connections that never send a byte"
    for mode, count, what, target in (
            ("idle", args.idle_count, idle_what,
             f" ddv closes them at its peek_timeout_ms (5 s) and the holder "
             f"reopens them, about {args.idle_count // 5:,} a second, beside "
             f"the load and on its CPU: the rate carries that churn (the "
             f"master's CPU per closed peer: "
             f"`benchmarks/load/idle_churn.sh`). Target for ddv: master RSS "
             f"≤ {IDLE_RSS_TARGET_MIB} MiB."),
            ("idle-held", args.idle_count, idle_what,
             f" ddv only, its peek_timeout_ms raised to "
             f"{args.idle_held_peek_timeout_ms} ms by a reload for the hold, "
             f"so they stay open and idle. Targets for ddv: rate ≥ "
             f"{SHAPE_RATE_TARGET} × without, master RSS ≤ "
             f"{IDLE_RSS_TARGET_MIB} MiB."),
            ("slow", args.slow_count, "clients sending one byte per second",
             f" Targets for ddv: rate ≥ {SHAPE_RATE_TARGET} × without, the "
             f"slow ones closed at peek_timeout_ms (5 s).")):
        if mode not in shapes:
            continue
        text += [f"**{mode}** ({count} {what}, held by "
                 f"`{hold_display(ctx, mode)}` on the client CPU, from "
                 f"127.0.0.2 and up, 1000 per address, reopened "
                 f"when the server closes them) while "
                 f"`{wrk_display(ctx, True)}` runs. Rate vs without = this "
                 f"run's req/s ÷ the same path's new-conn req/s (above)."
                 + target, "",
                 "| path | held | req/s | rate vs without | server CPU "
                 "µs/req | server RSS MiB | master RSS MiB | closed by "
                 "server | their median life ms | errors |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for path in ctx.paths:
            runs = res.get(path, {}).get(mode)
            if not runs:
                continue
            text.append(
                f"| {path} | {_cell(runs, 'held', 0)} | "
                f"{_cell(runs, 'rps', 0)} | "
                f"{_ratio(runs, res[path].get('new-conn'), 'rps')} | "
                f"{_cell(runs, 'server_us', 2)} | "
                f"{_cell(runs, 'tree_rss_mib', 1)} | "
                f"{_cell(runs, 'master_rss_mib', 1)} | "
                f"{_cell(runs, 'closed_by_server', 0)} | "
                f"{_cell(runs, 'lifetime_p50_ms', 0)} | {_errors(runs)} |")
        text.append("")
    if "latency" in shapes:
        text += [f"**latency** of new connections at a fixed "
                 f"{args.latency_rate}/s (open loop, not saturation): "
                 f"`{latency_display(ctx)}`; from the scheduled start to the "
                 f"server's close after the answer.", "",
                 "| path | answers/s | p50 µs | p90 µs | p99 µs | max µs | "
                 "server CPU µs/req | ddv master µs/req | master wake-ups "
                 "/req | rest µs/req | errors |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        text += _latency_rows(ctx, res, "latency")
        text.append("")
    if "tls-latency" in shapes:
        text += [f"**tls-latency**: full TLS handshakes at a fixed "
                 f"{args.tls_latency_rate}/s (open loop), each with one `GET /` "
                 f"(as tls-new): `{tls_client_display(ctx, args.tls_latency_rate)}`"
                 f"; from the scheduled start to the end of the answer. "
                 f"Client CPU = tls_client's own per handshake (it includes "
                 f"its timer wake-ups here). A p50 of many milliseconds "
                 f"means the client (one thread, ~0.5 ms of CPU per "
                 f"handshake) fell behind its schedule: the CPU columns "
                 f"still hold, the latencies do not.", "",
                 "| path | handshakes/s | p50 µs | p90 µs | p99 µs | max µs | "
                 "server CPU µs/handshake | ddv master µs/handshake | master "
                 "wake-ups /handshake | rest µs/handshake | client CPU "
                 "µs/handshake | errors |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        text += _latency_rows(ctx, res, "tls-latency", client=True)
        text.append("")
    return "\n".join(text)


def _latency_rows(ctx, res, workload, client=False):
    """One row per path: rate, percentiles, server CPU, and (ddv) the
    master's and the rest's share."""
    rows = []
    for path in ctx.paths:
        runs = res.get(path, {}).get(workload)
        if not runs:
            continue
        rows.append(
            f"| {path} | {_cell(runs, 'rps', 0)} | "
            f"{_cell(runs, 'p50_us', 0)} | {_cell(runs, 'p90_us', 0)} | "
            f"{_cell(runs, 'p99_us', 0)} | {_cell(runs, 'max_us', 0)} | "
            f"{_cell(runs, 'server_us', 1)} | {_cell(runs, 'master_us', 1)} | "
            f"{_cell(runs, 'master_wakeups', 2)} | "
            f"{_cell(runs, 'workers_us', 1)} | "
            + (f"{_cell(runs, 'client_us', 1)} | " if client else "")
            + f"{_errors(runs)} |")
    return rows


SHAPES_ORDER = ("download", "idle", "idle-held", "slow", "latency",
                "tls-latency")


def write_results_shapes(path, text):
    """Replace (or append) the load-shapes section of RESULTS.md."""
    with open(path) as f:
        content = f.read()
    start = content.find(SHAPES_SECTION)
    if start < 0:
        content = content.rstrip("\n") + "\n\n" + text
    else:
        nxt = content.find("\n## ", start + len(SHAPES_SECTION))
        end = len(content) if nxt < 0 else nxt + 1
        tail = content[end:]
        content = content[:start] + text + ("\n" + tail if tail else "")
    with open(path, "w") as f:
        f.write(content)
