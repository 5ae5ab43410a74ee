"""One measured run: warm-up, then the load with the server tree's CPU,
the server CPU's busy time and the ddv master's counters read before and
after."""
import time

from pyddv.control import counters

from .common import HELD, USEC_PER_TICK, log
from .cpu import cpu_stat, delta_ticks, proc_ticks, tree_ticks, wakeups
from .loadgen import run_load


def measure(ctx, server, workload):
    """Warm up, then one measured load run (wrk, tls_client for tls-new,
    conn_shapes for latency; idle, idle-held and slow: new-conn with
    conn_shapes holding connections meanwhile); returns the numbers."""
    if workload in HELD:
        from .shapes import measure_held
        return measure_held(ctx, server, workload,
                            lambda: measure_one(ctx, server, workload))
    return measure_one(ctx, server, workload)


def measure_one(ctx, server, workload):
    if ctx.args.warmup > 0:
        run_load(ctx, server["port"], workload, ctx.args.warmup)
        time.sleep(0.3)  # let closing connections finish on both sides
    roots = server["roots"]
    master = server.get("master")
    ctr0 = counters(server["control"]) if server.get("control") else None
    cpu0 = cpu_stat()
    t0 = tree_ticks(roots)
    m0 = proc_ticks(master) if master else 0
    s0 = wakeups(master) if master else 0
    w = run_load(ctx, server["port"], workload, ctx.args.duration)
    t1 = tree_ticks(roots)
    m1 = proc_ticks(master) if master else 0
    s1 = wakeups(master) if master else 0
    cpu1 = cpu_stat()
    ctr1 = counters(server["control"]) if server.get("control") else None
    # Sanity: the tree must be the same processes (no restart mid-run).
    gone = set(t0) - set(t1)
    if gone:
        log(f"warning: processes {sorted(gone)} ended during the run")
    req = max(w["requests"], 1)
    usec = USEC_PER_TICK
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
        # The rest of the tree: the site's worker (and the log writer).
        r["workers_us"] = r["server_us"] - r["master_us"]
        r["master_wakeups"] = (s1 - s0) / req
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
