"""The command line: which paths and workloads, which binaries; then the
rounds (every path in turn, order reversed every other round), the report
and RESULTS.md."""
import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import types

from pyddv.procs import Procs

from .common import (ACCESSLOG, SHARDS2, ALL_HTTP, ALL_PATHS, BASELINE, HELD,
                     DEFAULT_WORKLOADS, HTTP_WORKLOADS, INSTALL_HINT, NEEDS,
                     NGINX_STREAM_MODULE, PATH_WORKLOADS, REPO, SECTION, SHAPES,
                     TLS_WORKLOADS, WORKLOAD_ALIASES, WORKLOADS, Build, Ctx,
                     log)
from .loadgen import build_floor, build_tls_client, measure_floor
from .measure import measure
from .perf import run_perf
from .report import compose, write_results, write_results_tls
from .shapes import build_conn_shapes, compose_shapes, write_results_shapes
from .servers import SETUPS, make_cert, probe_hello_body

DESCRIPTION = ("Side-by-side load benchmark: ddv (through the master) vs "
               "direct vs proxies.")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=DESCRIPTION)
    ap.add_argument("--duration", type=int, default=10,
                    help="seconds per measured run (default 10)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="unmeasured seconds of load before each run (default 1)")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every path this many times, interleaved; "
                         "the table shows medians (and ranges)")
    ap.add_argument("--paths", default=",".join(ALL_PATHS),
                    help="comma-separated subset of " + ",".join(ALL_PATHS)
                    + f" ({BASELINE} comes with --baseline_bin_dir; "
                    f"{ACCESSLOG}, ddv with an access log, and {SHARDS2}, "
                    "ddv with --shards=2, only when named)")
    ap.add_argument("--workloads", default=DEFAULT_WORKLOADS,
                    help="comma-separated subset of " + ",".join(WORKLOADS)
                         + f", or all (default {DEFAULT_WORKLOADS}); a path "
                         "runs the ones it serves; idle, idle-held (ddv "
                         "only) and slow bring new-conn along (they are "
                         "judged against it)")
    ap.add_argument("--download_connections", type=int, default=10,
                    help="wrk's -c for download (1 MiB answers)")
    ap.add_argument("--idle_count", type=int, default=15000,
                    help="connections held idle during the idle workload")
    ap.add_argument("--idle_held_peek_timeout_ms", type=int, default=60000,
                    help="ddv's peek_timeout_ms (set by a reload) while "
                         "idle-held holds its connections: longer than the "
                         "hold, so they stay open and idle")
    ap.add_argument("--slow_count", type=int, default=5000,
                    help="one-byte-per-second clients during slow")
    ap.add_argument("--latency_rate", type=int, default=1000,
                    help="new connections per second for latency")
    ap.add_argument("--tls_latency_rate", type=int, default=250,
                    help="full TLS handshakes per second for tls-latency "
                         "(the client spends 0.5-1 ms of CPU per handshake: "
                         "near the rate tls-new reaches, ~1000/s here, it "
                         "cannot keep the schedule)")
    ap.add_argument("--no_floor", action="store_true")
    ap.add_argument("--server_cpu", type=int, default=0)
    ap.add_argument("--client_cpu", type=int, default=1)
    ap.add_argument("--ddv_handoff", default="scm_rights",
                    choices=["scm_rights", "pidfd"])
    ap.add_argument("--ddv_flags", default="",
                    help="extra ddv_master flags, e.g. '--handoff_batch=64'")
    ap.add_argument("--baseline_ddv_flags", metavar="FLAGS",
                    help=f"ddv_master flags for {BASELINE} instead of "
                         f"--ddv_flags: the same build measured with and "
                         f"without a flag (--baseline_bin_dir can name the "
                         f"same bin dir)")
    ap.add_argument("--bin_dir", help="where src/ddv_master and src/ddv_hello "
                    "are (default: build with bazel and ask bazel info)")
    ap.add_argument("--baseline_bin_dir", metavar="DIR",
                    help=f"a second build of ddv (DIR/src/ddv_master, "
                         f"DIR/src/ddv_hello) measured as path {BASELINE}: "
                         f"the same set-up as ddv, next to it in every "
                         f"round, for before/after comparisons")
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
    args = ap.parse_args(argv)
    # Generated configs name binaries and files: absolute, whatever the cwd.
    for name in ("bin_dir", "baseline_bin_dir", "output_base", "perf",
                 "json"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    return args


def find_tools(paths):
    tools, missing = {}, []
    for t in ("wrk", "taskset", "cc"):
        tools[t] = shutil.which(t)
        if not tools[t]:
            missing.append(t)
    if missing:
        sys.exit(f"missing required tools: {', '.join(missing)} "
                 f"(apt-get install -y wrk util-linux gcc)")
    for t in ("haproxy", "nginx", "perf", "sniproxy"):
        tools[t] = shutil.which(t) or (f"/usr/sbin/{t}"
                                       if os.path.exists(f"/usr/sbin/{t}")
                                       else None)
    need = sorted({NEEDS[p] for p in paths if p in NEEDS and not tools[NEEDS[p]]})
    if need:
        log(f"{' and '.join(need)} not installed; those rows are skipped. "
            f"Install with:\n    {INSTALL_HINT}")
    return tools


def locate_binaries(args, targets=("//src:ddv_master", "//src:ddv_hello")):
    """args.bin_dir, or the bazel-bin of args.output_base after building
    `targets` there with --config=opt (unless args.no_build)."""
    if args.bin_dir:
        return args.bin_dir
    base = ["bazel", f"--output_base={args.output_base}"]
    if not args.no_build:
        log(f"building {' '.join(targets)} (--config=opt) ...")
        subprocess.run(base + ["build", "--config=opt", "--symlink_prefix=/",
                               *targets],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    out = subprocess.run(base + ["info", "--config=opt", "bazel-bin"], cwd=REPO,
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def select_paths(ctx):
    """--paths and --workloads -> ctx.paths, ctx.workloads, ctx.tools."""
    args = ctx.args
    ctx.paths = [p for p in args.paths.split(",") if p]
    for p in ctx.paths:
        if p not in SETUPS:
            sys.exit(f"unknown path {p!r}; known: "
                     f"{', '.join(ALL_PATHS + [ACCESSLOG, SHARDS2])}")
    if "direct" not in ctx.paths:
        ctx.paths.insert(0, "direct")
    if args.baseline_bin_dir and BASELINE not in ctx.paths:
        # Right after ddv: the two run back to back in every round.
        at = ctx.paths.index("ddv") + 1 if "ddv" in ctx.paths else \
            len(ctx.paths)
        ctx.paths.insert(at, BASELINE)
    if BASELINE in ctx.paths and not args.baseline_bin_dir:
        sys.exit(f"path {BASELINE} needs --baseline_bin_dir")
    spec = ",".join(WORKLOADS) if args.workloads == "all" else args.workloads
    for w in spec.split(","):
        if not w:
            continue
        if w not in WORKLOAD_ALIASES:
            sys.exit(f"unknown workload {w!r}; known: "
                     f"{','.join(WORKLOADS)} or all")
        if WORKLOAD_ALIASES[w] not in ctx.workloads:
            ctx.workloads.append(WORKLOAD_ALIASES[w])
    if set(HELD) & set(ctx.workloads) and \
            "new-conn" not in ctx.workloads:
        ctx.workloads.append("new-conn")
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


def source_revision(args):
    """'ddv built from commit X' when this checkout's ddv is built here."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                              cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"],
                               cwd=REPO, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        if head and not args.bin_dir:
            return (f"ddv built from commit {head}"
                    + (" plus uncommitted changes in src/" if dirty else ""))
    except Exception:
        pass
    return None


def run_path(ctx, run, rnd, path):
    """One path's turn in a round: a server per workload group (HTTP, TLS),
    each measured under the group's workloads."""
    args = ctx.args
    groups = [[w for w in ctx.workloads if w in ALL_HTTP
               and w in PATH_WORKLOADS[path]],
              [w for w in ctx.workloads if w in TLS_WORKLOADS
               and w in PATH_WORKLOADS[path]]]
    for group in groups:
        if not group:
            continue
        is_tls = group[0] in TLS_WORKLOADS
        log(f"round {rnd + 1}/{args.rounds}: {path}"
            + (" (TLS)" if is_tls else ""))
        server = SETUPS[path](ctx, tls=is_tls)
        try:
            for w in group:
                r = measure(ctx, server, w)
                run.results[path].setdefault(w, []).append(r)
                unit = "handshakes/s" if is_tls else "req/s"
                log(f"  {w}: {r['rps']:.0f} {unit}, "
                    f"{r['server_us']:.2f} µs server CPU"
                    + (f", master {r['master_us']:.2f} µs"
                       if "master_us" in r else "")
                    + (f", p50/p99 {r['p50_us']:.0f}/{r['p99_us']:.0f} µs"
                       if w in ("latency", "tls-latency") else "")
                    + (f", errors {r['errors'] + r['non2xx']}"
                       if r['errors'] + r['non2xx'] else "")
                    + (f", resumed {r['resumed']}"
                       if r.get("resumed") else ""))
            if path == "ddv" and args.perf and rnd == args.rounds - 1:
                if "new-conn" in group:
                    log("  perf record on the master (extra new-conn run) ...")
                    run.perf_top = run_perf(ctx, server, "new-conn")
                if "tls-new" in group:
                    log("  perf record on the master (extra tls-new run) ...")
                    run.perf_tls = run_perf(ctx, server, "tls-new")
        finally:
            for p in reversed(server["procs"]):
                ctx.procs.stop(p)


def run_rounds(ctx, run):
    args = ctx.args
    tls = any(w in TLS_WORKLOADS for w in ctx.workloads)
    # The floor is measured under wrk's Connection: close load.
    use_floor = not args.no_floor and "new-conn" in ctx.workloads
    ctx.dir = tempfile.mkdtemp(prefix="ddv-load-")
    ctx.procs = Procs(warn=log)
    try:
        floor_bin = build_floor(ctx) if use_floor else None
        if tls:
            ctx.tls_client = build_tls_client(ctx)
            make_cert(ctx)
        if set(SHAPES) & set(ctx.workloads):
            ctx.conn_shapes = build_conn_shapes(ctx)
        if "nginx-direct" in ctx.paths:
            ctx.hello_body = probe_hello_body(ctx)
        for rnd in range(args.rounds):
            order = ctx.paths if rnd % 2 == 0 else list(reversed(ctx.paths))
            for path in order:
                run_path(ctx, run, rnd, path)
            if floor_bin:
                log(f"round {rnd + 1}/{args.rounds}: accept floor")
                f = measure_floor(ctx, floor_bin)
                run.floor.append(f)
                log(f"  {f['rate']:.0f} conn/s, {f['floor_us']:.2f} µs/conn")
    finally:
        ctx.procs.stop_all()
        for d in ctx.cleanup_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if not args.keep_dir:
            shutil.rmtree(ctx.dir, ignore_errors=True)
        else:
            log(f"kept {ctx.dir}")


def main(argv=None):
    args = parse_args(argv)
    command = "python3 benchmarks/load/run_load.py" + "".join(
        " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    ctx = Ctx(args)
    select_paths(ctx)
    if any(w in TLS_WORKLOADS for w in ctx.workloads) and \
            not shutil.which("openssl"):
        sys.exit("tls-new and tls-latency need the openssl command "
                 "(apt-get install -y openssl)")
    if args.perf and not ctx.tools["perf"]:
        sys.exit("--perf: perf not installed (apt-get install -y linux-perf)")
    if os.cpu_count() < 2 or args.server_cpu == args.client_cpu:
        sys.exit("needs two distinct CPUs for server and client")

    run = types.SimpleNamespace(
        command=command, src_rev=source_revision(args), results={},
        floor=[], perf_top=None, perf_tls=None)
    ctx.builds["ddv"] = Build(locate_binaries(args))
    if args.baseline_bin_dir:
        ctx.builds[BASELINE] = Build(args.baseline_bin_dir)
    for build in ctx.builds.values():
        for b in build.missing():
            sys.exit(f"not found: {b}")
    run.results = {p: {} for p in ctx.paths}
    run.load_before = os.getloadavg()
    run.started = datetime.datetime.now()
    run_rounds(ctx, run)
    run.load_after = os.getloadavg()

    out = compose(ctx, run)
    shapes_out = compose_shapes(ctx, run)
    print(out + ("\n" + shapes_out if shapes_out else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command, "started": run.started.isoformat(),
                       "results": run.results, "floor": run.floor}, f,
                      indent=1)
    if args.write_results:
        results_md = os.path.join(REPO, "benchmarks", "RESULTS.md")
        if any(w in HTTP_WORKLOADS for w in ctx.workloads):
            write_results(results_md, out)
            log("wrote the section into benchmarks/RESULTS.md")
        elif "tls-new" in ctx.workloads:
            write_results_tls(results_md, out)
            log("wrote the TLS subsection into benchmarks/RESULTS.md")
        if shapes_out:
            write_results_shapes(results_md, shapes_out)
            log("wrote the load-shapes section into benchmarks/RESULTS.md")
    return 0
