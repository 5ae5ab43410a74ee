"""Medians over rounds, the Markdown tables, and the verdicts against
the targets in docs/design.md (and, with --baseline_bin_dir, against ddv-before)."""
import statistics

from .common import ACCESSLOG, BASELINE, SHARDS2, TARGETS


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
                  "client_us", "server_per_client", "master_wakeups")}
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
    if floor:
        f_us = statistics.median(r["floor_us"] for r in floor)
        f_rate = statistics.median(r["rate"] for r in floor)
        fl.append(f"- Floor (accept_floor.c, blocking accept4 + close on CPU "
                  f"{ctx.args.server_cpu}, wrk Connection: close load): "
                  f"{f_rate / 1000:.1f}k conn/s, **{fmt(f_us, 2)} µs** of its "
                  f"CPU per connection.")
        for path in ("ddv", ACCESSLOG, SHARDS2, BASELINE):
            nc = summ.get(path, {}).get("new-conn")
            if nc and nc.get("master_us") is not None:
                fl.append(master_vs_floor(path, nc, f_us))
    fl.extend(access_log_cost(summ))
    return lines, fl


def access_log_cost(summ):
    """ddv-accesslog's master CPU per connection against ddv's (the access
    log's target: at most 5% more)."""
    out = []
    for w in ("new-conn", "keep-alive"):
        v = summ.get("ddv", {}).get(w)
        a = summ.get(ACCESSLOG, {}).get(w)
        if not v or not a or not v.get("master_us") or \
                a.get("master_us") is None:
            continue
        more = (a["master_us"] / v["master_us"] - 1) * 100
        out.append(f"- {ACCESSLOG}, {w}: master **{fmt(a['master_us'], 2)} "
                   f"µs** per request against ddv's {fmt(v['master_us'], 2)}:"
                   f" **{more:+.1f}%** with every connection logged "
                   f"(target ≤ +5%).")
    return out


def master_vs_floor(path, nc, f_us):
    """The master process alone per routed connection, against the floor."""
    ratio = nc["master_us"] / f_us
    extra = ""
    if nc.get("master_us_per_handoff"):
        extra = (f"; {fmt(nc['master_us_per_handoff'], 2)} µs per "
                 f"handed-off connection by the master's own counter, "
                 f"{fmt(nc['batch'], 2)} connections per handoff "
                 f"batch")
    return (f"- {path} master process alone (workers excluded), "
            f"new connections: **{fmt(nc['master_us'], 2)} µs** "
            f"per routed connection{extra}. Ratio to the floor: "
            f"**{fmt(ratio, 2)}×** (target ≤ {TARGETS['floor']}×).")


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
        effs = [d["server_us"] / v["server_us"] for d, v in pairs]
        shares = [v["master_us"] / d["server_us"] for d, v in pairs
                  if v.get("master_us") is not None]
        # The figure to quote (benchmarks/load/README.md): the median of
        # the pairs, with their range, and the master's own share, which
        # the VM's drift moves far less than the whole handshake.
        notes.append(
            f"- **The TLS figure: efficiency {fmt(statistics.median(effs), 2)} "
            f"(median of {len(effs)} round pairs, "
            f"{fmt(min(effs), 2)}–{fmt(max(effs), 2)})**"
            + (f"; the master alone "
               f"{fmt(100 * statistics.median(shares), 1)}% of direct's "
               f"handshake ({fmt(100 * min(shares), 1)}–"
               f"{fmt(100 * max(shares), 1)}%)." if shares else "."))
    v = summ.get("ddv", {}).get(w)
    if v and base and v.get("master_us") is not None:
        notes.append(f"- ddv master process alone: {fmt(v['master_us'], 1)} "
                     f"µs per handshake, {fmt(100 * v['master_us'] / base['server_us'], 1)}"
                     f"% of direct's whole per-handshake server CPU; "
                     f"{fmt(v.get('master_wakeups') or 0, 2)} master "
                     f"wake-ups per handshake.")
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


def baseline_lines(summ, results, workloads):
    """ddv against ddv-before (the --baseline_bin_dir build), per workload:
    medians, and round by round (the two ran next to each other in every
    round). × is ddv ÷ ddv-before: below 1.00 means ddv costs less."""
    out = []
    v_all, b_all = summ.get("ddv", {}), summ.get(BASELINE, {})
    d_all = summ.get("direct", {})
    for w in workloads:
        v, b = v_all.get(w), b_all.get(w)
        if not v or not b:
            continue
        unit = "handshake" if w == "tls-new" else "req"
        rate_unit = "handshakes/s" if w == "tls-new" else "req/s"
        rate = (lambda m: f"{m['rps']:.0f}") if w == "tls-new" else \
            (lambda m: f"{m['rps'] / 1000:.1f}k")
        line = (f"- {w}: server CPU {fmt(v['server_us'], 2)} vs "
                f"{fmt(b['server_us'], 2)} µs/{unit}, "
                f"**×{fmt(v['server_us'] / b['server_us'], 3)}**")
        # Keep-alive: the master is idle after the handoff; no ratio.
        if w != "keep-alive" and v.get("master_us") is not None and \
                b.get("master_us"):
            line += (f"; master alone {fmt(v['master_us'], 2)} vs "
                     f"{fmt(b['master_us'], 2)} µs/{unit}, "
                     f"×{fmt(v['master_us'] / b['master_us'], 3)}")
        if v.get("server_per_client") and b.get("server_per_client"):
            spc = v["server_per_client"] / b["server_per_client"]
            line += f"; server ÷ client CPU ×{fmt(spc, 3)}"
        line += (f"; {rate(v)} vs {rate(b)} {rate_unit}, "
                 f"×{fmt(v['rps'] / b['rps'], 3)}")
        d = d_all.get(w)
        if d:
            line += (f"; efficiency vs direct "
                     f"{fmt(d['server_us'] / v['server_us'], 2)} vs "
                     f"{fmt(d['server_us'] / b['server_us'], 2)}")
        v_runs = results.get("ddv", {}).get(w, [])
        b_runs = results.get(BASELINE, {}).get(w, [])
        if len(v_runs) == len(b_runs) > 1:
            line += ("; server CPU round by round ×" + ", ×".join(
                fmt(x["server_us"] / y["server_us"], 3)
                for x, y in zip(v_runs, b_runs)))
        out.append(line + ".")
    return out
