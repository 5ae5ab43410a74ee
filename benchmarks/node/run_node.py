#!/usr/bin/env python3
"""Node.js side by side: the same stock Node apps served three ways, in one
run, interleaved in rounds:

  single   one `node APP` listening on its own port (the baseline)
  cluster  Node's own cluster primary (apps/cluster_primary.js) with N
           workers of APP, round-robin (Node's default on Linux)
  ddv      ddv_master --watchdog=false: one http listener, one site with
           runtime = "node" and processes = N running APP

under wrk keep-alive and Connection: close, every server process on one CPU
and wrk on another; it reports req/s and the server process tree's CPU per
request. The measuring is benchmarks/load's ddvbench package (wrk runner,
/proc CPU accounting, medians, the ddv_master build); this file adds only
the Node set-ups and the report. See benchmarks/node/README.md.
"""
import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(REPO, "benchmarks", "load"),
                os.path.join(REPO, "python")]

from ddvbench.cli import locate_binaries, source_revision  # noqa: E402
from ddvbench.common import HOST, Ctx, log  # noqa: E402
from ddvbench.loadgen import wrk_display  # noqa: E402
from ddvbench.measure import measure  # noqa: E402
from ddvbench.report import tool_versions  # noqa: E402
from ddvbench.servers import wait_http, write_config  # noqa: E402
from ddvbench.tables import fmt, summarize  # noqa: E402
from pyddv.control import wait_workers_ready  # noqa: E402
from pyddv.net import free_port  # noqa: E402
from pyddv.procs import Procs  # noqa: E402

PATHS = ["single", "cluster", "ddv"]
APPS = {"http": "http_app.js", "express": "express_app.js"}
WORKLOADS = ["keep-alive", "new-conn"]
WORKLOAD_TEXT = {"keep-alive": "keep-alive", "new-conn": "new connections"}
WORKLOAD_ALIASES = {"keepalive": "keep-alive", "keep-alive": "keep-alive",
                    "newconn": "new-conn", "new-conn": "new-conn"}
# From the issue: ddv's efficiency against one Node process, per workload;
# and ahead of Node's cluster on req/s and CPU per request in every row.
TARGETS = {"keep-alive": 0.95, "new-conn": 0.85}
SECTION = "## Node.js: through the master vs one process vs Node cluster"
BODY = "hello\n"  # what every app answers
APP_DIR = os.path.join(HERE, "apps")
PRIMARY = os.path.join(APP_DIR, "cluster_primary.js")
TEMPLATE = os.path.join(HERE, "templates", "ddv-node.toml")
NODE_MODULES = os.path.join(REPO, "node", "ddv-worker", "node_modules")
NODE_ENV = "production"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10,
                    help="seconds per measured run (default 10)")
    ap.add_argument("--warmup", type=int, default=2,
                    help="unmeasured seconds of load before each run "
                         "(default 2: V8 compiles the hot paths)")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every path this many times, interleaved; "
                         "the table shows medians (and ranges)")
    ap.add_argument("--apps", default=",".join(APPS),
                    help="comma-separated subset of " + ",".join(APPS))
    ap.add_argument("--paths", default=",".join(PATHS),
                    help="comma-separated subset of " + ",".join(PATHS)
                    + " (single, the baseline, is always added)")
    ap.add_argument("--workloads", default="keepalive,newconn",
                    help="comma-separated subset of keepalive,newconn")
    ap.add_argument("--workers", type=int, default=1, metavar="N",
                    help="cluster workers and the ddv site's processes "
                         "(default 1)")
    ap.add_argument("--server_cpu", type=int, default=0)
    ap.add_argument("--client_cpu", type=int, default=1)
    ap.add_argument("--node", default=shutil.which("node"),
                    help="the node binary (default: node from PATH)")
    ap.add_argument("--bin_dir", help="where src/ddv_master is (default: "
                    "build //src:ddv_master with bazel --config=opt in "
                    "--output_base)")
    ap.add_argument("--output_base",
                    default="/root/.cache/bazel-ddv-nodebench")
    ap.add_argument("--no_build", action="store_true",
                    help="take ddv_master from --output_base's bazel-bin "
                         "without building")
    ap.add_argument("--json", metavar="FILE", help="write every run here")
    ap.add_argument("--keep_dir", action="store_true",
                    help="keep the temporary directory (configs, logs)")
    args = ap.parse_args(argv)
    for name in ("bin_dir", "output_base", "json", "node"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    return args


def split_choices(text, known, what, aliases=None):
    out = []
    for x in text.split(","):
        if not x:
            continue
        x = (aliases or {}).get(x, x)
        if x not in known:
            sys.exit(f"unknown {what} {x!r}; known: {', '.join(known)}")
        if x not in out:
            out.append(x)
    if not out:
        sys.exit(f"--{what}s: nothing to run")
    return [k for k in known if k in out]  # canonical order


def node_version(node):
    r = subprocess.run([node, "--version"], capture_output=True, text=True,
                       timeout=10)
    return r.stdout.strip()


def express_version():
    try:
        with open(os.path.join(NODE_MODULES, "express", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return None


# --------------------------------------------------------------------------
# The three set-ups. Each returns what ddvbench's measure() takes: port,
# roots (the server process tree), procs (to stop), and `master` (the
# process measured alone: the cluster primary, the ddv master) and, for ddv,
# `control` (its control socket, for the handoff counters).


def node_env(ctx, **extra):
    """The same environment for the app on every path."""
    env = dict(os.environ)
    env.update(NODE_PATH=NODE_MODULES, NODE_ENV=NODE_ENV)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def check_body(body, what):
    if body != BODY:
        raise RuntimeError(f"{what} answered {body!r}, expected {BODY!r}")


def setup_single(ctx, app):
    port = free_port()
    p = ctx.procs.start([ctx.args.node, os.path.join(APP_DIR, APPS[app])],
                        ctx.args.server_cpu,
                        os.path.join(ctx.dir, f"single-{app}.log"),
                        env=node_env(ctx, PORT=port))
    check_body(wait_http(port, [p], what=f"single ({app})"), "single")
    return {"port": port, "roots": [p.pid], "procs": [p]}


def wait_log_line(proc, prefix, timeout, what):
    """The first line of proc's log starting with `prefix`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(proc.log_path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.strip()
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early (rc {proc.returncode}); "
                               f"see {proc.log_path}")
        time.sleep(0.05)
    raise RuntimeError(f"{what}: no {prefix!r} line within {timeout} s; see "
                       f"{proc.log_path}")


def setup_cluster(ctx, app):
    port = free_port()
    p = ctx.procs.start([ctx.args.node, PRIMARY,
                         os.path.join(APP_DIR, APPS[app])],
                        ctx.args.server_cpu,
                        os.path.join(ctx.dir, f"cluster-{app}.log"),
                        env=node_env(ctx, PORT=port,
                                     WORKERS=ctx.args.workers))
    what = f"cluster ({app})"
    ready = wait_log_line(p, "ready ", 15.0, what)
    ctx.cluster_policy.add(ready.split("policy=")[1].split()[0])
    check_body(wait_http(port, [p], what=what), what)
    return {"port": port, "roots": [p.pid], "procs": [p], "master": p.pid}


def setup_ddv(ctx, app):
    d = os.path.join(ctx.dir, f"ddv-{app}")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    # Unix socket paths are limited to 108 bytes: a short directory in /tmp.
    ctl = os.path.join(tempfile.mkdtemp(prefix="ddv-node-", dir="/tmp"),
                       "control.sock")
    ctx.cleanup_dirs.append(os.path.dirname(ctl))
    cfg = write_config(
        os.path.join(d, "ddv.toml"), TEMPLATE,  # absolute: not load's dir
        control_socket=ctl, port=port, node=ctx.args.node,
        app=os.path.join(APP_DIR, APPS[app]), workers=ctx.args.workers,
        host=HOST, dir=d, node_path=NODE_MODULES, node_env=NODE_ENV)
    p = ctx.procs.start([ctx.master, f"--config={cfg}", "--watchdog=false",
                         f"--log_dir={d}"], ctx.args.server_cpu,
                        os.path.join(d, "master.out"))
    what = f"ddv ({app})"
    try:
        st = wait_workers_ready(p, ctl, timeout=20.0, what=what)
    except RuntimeError as e:
        raise RuntimeError(f"{e}; see {d}") from None
    n = sum(len(s["workers"]) for s in st["sites"])
    if n != ctx.args.workers:
        raise RuntimeError(f"{what}: {n} workers ready, expected "
                           f"{ctx.args.workers}")
    check_body(wait_http(port, [p], what=what), what)
    return {"port": port, "roots": [p.pid], "procs": [p], "master": p.pid,
            "control": ctl}


SETUPS = {"single": setup_single, "cluster": setup_cluster, "ddv": setup_ddv}


# --------------------------------------------------------------------------
# The rounds


def run_rounds(ctx, results):
    args = ctx.args
    ctx.dir = tempfile.mkdtemp(prefix="ddv-node-bench-")
    ctx.procs = Procs(warn=log)
    try:
        for rnd in range(args.rounds):
            order = ctx.paths if rnd % 2 == 0 else list(reversed(ctx.paths))
            for app in ctx.apps:
                for path in order:
                    log(f"round {rnd + 1}/{args.rounds}: {app} on {path}")
                    server = SETUPS[path](ctx, app)
                    try:
                        for w in ctx.workloads:
                            r = measure(ctx, server, w)
                            r["round"] = rnd + 1
                            results[path][app].setdefault(w, []).append(r)
                            errs = r["errors"] + r["non2xx"]
                            log(f"  {w}: {r['rps']:.0f} req/s, "
                                f"{r['server_us']:.2f} µs server CPU"
                                + (f", {'master' if path == 'ddv' else 'primary'}"
                                   f" {r['master_us']:.2f} µs"
                                   if "master_us" in r else "")
                                + (f", errors {errs}" if errs else ""))
                    finally:
                        for p in reversed(server["procs"]):
                            ctx.procs.stop(p)
    finally:
        ctx.procs.stop_all()
        for d in ctx.cleanup_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if args.keep_dir:
            log(f"kept {ctx.dir}")
        else:
            shutil.rmtree(ctx.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# The report


def capitalized(text):
    return text[:1].upper() + text[1:]


def rate(x):
    return f"{x / 1000:.1f}k"


def main_table(ctx, summ):
    lines = ["| app | workload | path | processes | req/s | req/s vs single "
             "| server CPU µs/req | efficiency | primary/master alone µs/req "
             "| CPU 0 µs/req | CPU 0 / CPU 1 busy | errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for app in ctx.apps:
        for w in ctx.workloads:
            base = summ[app].get("single", {}).get(w)
            for path in ctx.paths:
                m = summ[app].get(path, {}).get(w)
                if not m:
                    continue
                runs = ctx.results[path][app][w]
                procs = sorted({r["pids"] for r in runs})
                rps = rate(m["rps"])
                us = fmt(m["server_us"], 2)
                if m["n"] > 1:
                    rps += (f" ({rate(m['rps_range'][0])[:-1]}–"
                            f"{rate(m['rps_range'][1])})")
                    us += (f" ({fmt(m['us_range'][0], 2)}–"
                           f"{fmt(m['us_range'][1], 2)})")
                ratio = fmt(m["rps"] / base["rps"], 2) if base else "–"
                eff = fmt(base["server_us"] / m["server_us"], 2) if base \
                    else "–"
                alone = fmt(m["master_us"], 2) \
                    if m.get("master_us") is not None else "–"
                lines.append(
                    f"| {app} | {w} | {path} | "
                    f"{'/'.join(str(x) for x in procs)} | {rps} | {ratio} | "
                    f"{us} | {eff} | {alone} | {fmt(m['cpu0_us'], 2)} | "
                    f"{m['cpu0_busy'] * 100:.0f}% / "
                    f"{m['cpu1_busy'] * 100:.0f}% | {m['errors']} |")
    return lines


def ddv_vs_cluster(ctx, summ):
    """ddv ÷ cluster per app and workload: medians, then round by round
    (the two ran next to each other in every round)."""
    if "ddv" not in ctx.paths or "cluster" not in ctx.paths:
        return []
    lines = ["| app | workload | req/s ddv ÷ cluster | server CPU/req ddv ÷ "
             "cluster | req/s by round | CPU/req by round |",
             "|---|---|---|---|---|---|"]
    for app in ctx.apps:
        for w in ctx.workloads:
            v = summ[app].get("ddv", {}).get(w)
            c = summ[app].get("cluster", {}).get(w)
            if not v or not c:
                continue
            pairs = list(zip(ctx.results["ddv"][app][w],
                             ctx.results["cluster"][app][w]))
            lines.append(
                f"| {app} | {w} | {fmt(v['rps'] / c['rps'], 3)} | "
                f"{fmt(v['server_us'] / c['server_us'], 3)} | "
                + ", ".join(fmt(a["rps"] / b["rps"], 2) for a, b in pairs)
                + " | "
                + ", ".join(fmt(a["server_us"] / b["server_us"], 2)
                            for a, b in pairs) + " |")
    return lines


def verdicts(ctx, summ):
    """One line per target and app: (text, met)."""
    out = []
    for app in ctx.apps:
        s, v = summ[app].get("single", {}), summ[app].get("ddv", {})
        for w in ctx.workloads:
            if w in s and w in v:
                eff = s[w]["server_us"] / v[w]["server_us"]
                ok = eff >= TARGETS[w]
                out.append((
                    f"ddv {w}, {app}: efficiency {eff:.3f} of single "
                    f"(target ≥ {TARGETS[w]}), req/s {v[w]['rps'] / s[w]['rps']:.2f} "
                    f"of single", ok))
    for app in ctx.apps:
        v, c = summ[app].get("ddv", {}), summ[app].get("cluster", {})
        for w in ctx.workloads:
            if w in v and w in c:
                faster = v[w]["rps"] >= c[w]["rps"]
                cheaper = v[w]["server_us"] < c[w]["server_us"]
                out.append((
                    f"ddv ahead of Node cluster, {app} {w}: req/s "
                    f"{rate(v[w]['rps'])} vs {rate(c[w]['rps'])} "
                    f"({'ahead' if faster else 'behind'}), CPU "
                    f"{v[w]['server_us']:.2f} vs {c[w]['server_us']:.2f} µs/req "
                    f"({'ahead' if cheaper else 'behind'})", faster and cheaper))
    return out


def notes(ctx, summ):
    out = []
    for app in ctx.apps:
        for w in ctx.workloads:
            runs = ctx.results.get("ddv", {}).get(app, {}).get(w, [])
            handed = sum(r.get("handed_off", 0) for r in runs)
            reqs = sum(r["requests"] for r in runs)
            if runs and w == "new-conn":
                m = summ[app]["ddv"][w]
                per = [r["master_us_per_handoff"] for r in runs
                       if r.get("master_us_per_handoff")]
                out.append(
                    f"- ddv, {app} new-conn: {handed} connections handed off "
                    f"to the Node worker(s) for {reqs} requests over the "
                    f"measured runs; the master alone "
                    f"{fmt(m['master_us'], 2)} µs per request"
                    + (f" ({fmt(sorted(per)[len(per) // 2], 2)} µs per "
                       f"handed-off connection)" if per else "") + ".")
    # What the Node processes themselves spend (tree minus primary/master),
    # against the single process: the cluster protocol's cost in the child.
    for app in ctx.apps:
        for w in ctx.workloads:
            s = summ[app].get("single", {}).get(w)
            parts = []
            for path in ("cluster", "ddv"):
                m = summ[app].get(path, {}).get(w)
                if s and m and m.get("master_us") is not None:
                    parts.append(f"{path} {fmt(m['server_us'] - m['master_us'], 2)}")
            if parts:
                out.append(f"- {app} {w}, the Node worker process(es) alone "
                           f"(server tree minus primary/master), µs/req: "
                           f"single {fmt(s['server_us'], 2)}, "
                           + ", ".join(parts) + ".")
    errs = [(p, a, w) for p in ctx.paths for a in ctx.apps
            for w in ctx.workloads
            if summ[a].get(p, {}).get(w, {}).get("errors")]
    if errs:
        out.append("- Runs with wrk socket errors or non-2xx answers: "
                   + ", ".join(f"{p} {a} {w}" for p, a, w in errs) + ".")
    if ctx.cluster_policy and ctx.cluster_policy != {"rr"}:
        out.append(f"- Node cluster scheduling policy seen: "
                   f"{', '.join(sorted(ctx.cluster_policy))} (expected rr).")
    return out


APP_TEXT = {
    "http": "http = `http.createServer`, `res.end('hello\\n')`",
    "express": "express = one route, `app.get('/', ...)` answering "
               "`res.type('text/plain').send('hello\\n')`",
}


def describe_path(ctx, path):
    n = ctx.args.workers
    if path == "single":
        return "**single** = one `node APP` listening on its port"
    if path == "cluster":
        policy = "/".join(sorted(ctx.cluster_policy)) or "rr"
        return (f"**cluster** = `node cluster_primary.js APP`, Node's own "
                f"`cluster` primary forking {n} worker(s), scheduling "
                f"{policy} (Node's default on Linux: the primary accepts and "
                f"sends each connection to a worker)")
    return (f"**ddv** = `ddv_master --watchdog=false`, one `http` listener, "
            f"one site with `runtime = \"node\"`, `processes = {n}`, "
            f"`hosts = [\"{HOST}\"]`, `command = [\"node\", APP]`")


def compose(ctx, run):
    args = ctx.args
    summ = {app: summarize({p: ctx.results[p][app] for p in ctx.paths})
            for app in ctx.apps}
    versions = [f"node {run.node_version}"]
    if "express" in ctx.apps:
        versions.append(f"express {run.express_version}")
    versions += tool_versions(ctx)
    if run.src_rev:
        versions.append(run.src_rev)
    text = [SECTION, "",
            f"Measured {run.started:%Y-%m-%d %H:%M} by", "",
            f"    {run.command}", "",
            "The same unmodified apps (`benchmarks/node/apps/`, each calls "
            "`server.listen(PORT, '127.0.0.1')`) served as: "
            + "; ".join(describe_path(ctx, p) for p in ctx.paths)
            + ". Apps: " + "; ".join(APP_TEXT[a] for a in ctx.apps)
            + f". `NODE_ENV={NODE_ENV}` and `NODE_PATH` = "
            f"`node/ddv-worker/node_modules` on every path.", "",
            f"Each path ran {args.duration} s per workload ({args.rounds} "
            f"round(s), paths interleaved, their order reversed every other "
            f"round; {args.warmup} s unmeasured warm-up before each run, a "
            f"fresh server per app and path), all server processes pinned to "
            f"CPU {args.server_cpu} with `taskset`, wrk on CPU "
            f"{args.client_cpu}, loopback. "
            + capitalized("; ".join(
                f"{WORKLOAD_TEXT[w]}: `{wrk_display(ctx, w == 'new-conn')}`"
                for w in ctx.workloads))
            + f". Load average before / after: "
            f"{run.load_before[0]:.2f} / {run.load_after[0]:.2f}. "
            + "; ".join(versions) + ".", "",
            "Server CPU = utime + stime of the path's whole server process "
            "tree (`/proc/PID/stat`: the node process; the cluster primary + "
            "workers; the ddv master + Node workers) over the run ÷ wrk's "
            "requests. Efficiency = single's server CPU per request ÷ the "
            "path's (per request, so per worker whatever N). "
            "Primary/master alone = the cluster primary or the ddv master "
            "process by itself. CPU 0 µs/req is CPU 0's busy time from "
            "`/proc/stat` (includes softirq and any other process on that "
            "CPU) ÷ requests. Processes = the server tree's size."
            + (" Ranges are min–max over rounds; the first number is the "
               "median." if args.rounds > 1 else ""), ""]
    text += main_table(ctx, summ)
    vc = ddv_vs_cluster(ctx, summ)
    if vc:
        text += ["", "ddv ÷ cluster (medians, then round by round; req/s "
                 "above 1 and CPU below 1 mean ddv is ahead):", ""] + vc
    nt = notes(ctx, summ)
    if nt:
        text += [""] + nt
    vd = verdicts(ctx, summ)
    if vd:
        text += ["", f"Against the targets (ddv new connections ≥ "
                 f"{TARGETS['new-conn']}× single's CPU efficiency, keep-alive "
                 f"≥ {TARGETS['keep-alive']}×, ahead of Node cluster on req/s "
                 f"and CPU in every row; medians):", ""]
        text += [f"- {t}: **{'met' if ok else 'NOT met'}**." for t, ok in vd]
        text.append(f"- {sum(ok for _, ok in vd)} of {len(vd)} met.")
    return "\n".join(text) + "\n"


def main(argv=None):
    args = parse_args(argv)
    # Interrupted or terminated: the finally blocks stop every server.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = "python3 benchmarks/node/run_node.py" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    ctx = Ctx(args)
    ctx.apps = split_choices(args.apps, list(APPS), "app")
    ctx.paths = split_choices(args.paths, PATHS, "path")
    if "single" not in ctx.paths:
        ctx.paths.insert(0, "single")
    ctx.workloads = split_choices(args.workloads, WORKLOADS, "workload",
                                  WORKLOAD_ALIASES)
    ctx.cluster_policy = set()
    for t in ("wrk", "taskset"):
        ctx.tools[t] = shutil.which(t)
        if not ctx.tools[t]:
            sys.exit(f"missing {t} (apt-get install -y wrk util-linux)")
    if not args.node or not os.access(args.node, os.X_OK):
        sys.exit("no node binary: put node on PATH or pass --node")
    if "express" in ctx.apps and express_version() is None:
        sys.exit(f"express not found in {NODE_MODULES}; install it with:\n"
                 f"    (cd {os.path.dirname(NODE_MODULES)} && npm ci)")
    if args.workers < 1:
        sys.exit("--workers must be at least 1")
    if os.cpu_count() < 2 or args.server_cpu == args.client_cpu:
        sys.exit("needs two distinct CPUs for server and client")

    run = argparse.Namespace(command=command, src_rev=source_revision(args),
                             node_version=node_version(args.node),
                             express_version=express_version())
    if "ddv" in ctx.paths:
        bin_dir = locate_binaries(args, targets=("//src:ddv_master",))
        ctx.master = os.path.join(bin_dir, "src", "ddv_master")
        if not os.access(ctx.master, os.X_OK):
            sys.exit(f"not found: {ctx.master}")
    ctx.results = {p: {a: {} for a in ctx.apps} for p in ctx.paths}
    run.load_before = os.getloadavg()
    run.started = datetime.datetime.now()
    run_rounds(ctx, ctx.results)
    run.load_after = os.getloadavg()

    print(compose(ctx, run))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command, "started": run.started.isoformat(),
                       "node": run.node_version,
                       "express": run.express_version,
                       "workers": args.workers,
                       "cluster_policy": sorted(ctx.cluster_policy),
                       "load_before": run.load_before,
                       "load_after": run.load_after,
                       "results": ctx.results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
