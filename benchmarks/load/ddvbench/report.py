"""The report: the text of the RESULTS.md section (and its TLS
subsection) for a run, and writing it into benchmarks/RESULTS.md."""
import os
import re
import subprocess

from .common import (BASELINE, HOST, HTTP_WORKLOADS, NEEDS, SECTION,
                     TARGETS, TLS_SECTION)
from .loadgen import tls_client_display, wrk_display
from .tables import (baseline_lines, summarize, table, tls_table,
                     tls_verdicts, verdicts)


def tool_versions(ctx):
    """First lines of `haproxy -v`, `nginx -v` (when a path used them) and
    `wrk -v`."""
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
    return versions


def tls_versions(ctx, run, versions):
    """What the TLS numbers depend on: ddv's commit (when built here),
    OpenSSL, the proxies."""
    out = []
    if run.src_rev:
        out.append(run.src_rev)
        try:
            r = subprocess.run(["openssl", "version"], capture_output=True,
                               text=True, timeout=10)
            out.append(r.stdout.strip() + " (client and servers)")
        except Exception:
            pass
        out += [v for v in versions if not v.startswith("wrk")]
    return out


def baseline_note(ctx):
    """One sentence on ddv-before, when --baseline_bin_dir is given."""
    if BASELINE not in ctx.paths:
        return ""
    return (f" {BASELINE} = the same set-up as ddv with `ddv_master` and "
            f"`ddv_hello` from `{ctx.builds[BASELINE].bin_dir}` (ddv's from "
            f"`{ctx.builds['ddv'].bin_dir}`), run next to ddv in every "
            f"round."
            + (f" ddv's master flags: `{ctx.args.ddv_flags}`;"
               f" {BASELINE}'s: `{ctx.args.baseline_ddv_flags}`."
               if ctx.args.baseline_ddv_flags is not None else ""))


def baseline_block(ctx, summ, results, workloads):
    lines = baseline_lines(summ, results, workloads)
    if not lines:
        return []
    return ["", f"ddv against {BASELINE} (medians; × = ddv ÷ {BASELINE}, "
            f"below 1.000 means ddv costs less):", ""] + lines


def compose(ctx, run):
    """The Markdown text of the run: the HTTP section when an HTTP workload
    ran, the TLS subsection when tls-new ran. `run` carries command,
    started, load_before, load_after, results, floor, perf_top, perf_tls,
    src_rev."""
    args = ctx.args
    summ = summarize(run.results)
    rows, floor_lines = table(ctx, summ, run.floor)
    verdict = verdicts(summ, run.floor)
    versions = tool_versions(ctx)
    tls = "tls-new" in ctx.workloads
    tls_vers = tls_versions(ctx, run, versions) if tls else []
    http_ran = any(w in HTTP_WORKLOADS for w in ctx.workloads)
    text = []
    if http_ran:
        text = [SECTION, "",
            f"Measured {run.started:%Y-%m-%d %H:%M} by",
            "",
            f"    {run.command}",
            "",
            f"Each path ran {args.duration} s per workload ({args.rounds} "
            f"round(s), paths interleaved; {args.warmup} s unmeasured warm-up "
            f"before each run), all server processes pinned to CPU "
            f"{args.server_cpu} with `taskset`, wrk on CPU {args.client_cpu}, "
            f"loopback. Keep-alive: `{wrk_display(ctx, False)}`; new "
            f"connections: `{wrk_display(ctx, True)}`. Load average before / "
            f"after: {run.load_before[0]:.2f} / {run.load_after[0]:.2f}. "
            + ("; ".join(versions) + "." if versions else ""),
            "",
            "Server CPU = utime + stime of the path's whole server process "
            "tree (`/proc/PID/stat`: ddv master + worker, proxy + ddv_hello "
            "backend) over the run ÷ wrk's requests. Efficiency = direct's "
            "server CPU per request ÷ the path's. CPU 0 µs/req is CPU 0's "
            "busy time from `/proc/stat` (includes softirq and any other "
            "process on that CPU) ÷ requests."
            + (" Ranges are min–max over rounds; the first number is the "
               "median." if args.rounds > 1 else "")
            + baseline_note(ctx),
            ""] + rows + [""] + floor_lines
    if verdict:
        text += ["", "Against the targets in docs/design.md:", ""] + verdict
    text += baseline_block(ctx, summ, run.results, HTTP_WORKLOADS)
    if run.perf_top:
        text += ["", f"`perf record -g -p <master>` during an extra "
                 f"new-connection run, self time by symbol (top entries, "
                 f"full report in {run.perf_top[0]}), then inclusive time of a "
                 f"few entry points:", "", "```"] + run.perf_top[1] + ["```"]
    if tls:
        t_rows, t_notes = tls_table(ctx, summ, run.floor, run.results)
        t_verdict = tls_verdicts(summ)
        if text:
            text.append("")
        text += [TLS_SECTION, "",
                 f"Measured {run.started:%Y-%m-%d %H:%M} by",
                 "",
                 f"    {run.command}",
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
                 f"{run.load_before[0]:.2f} / {run.load_after[0]:.2f}. "
                 + ("; ".join(tls_vers) + "." if tls_vers else ""),
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
                    "the median." if args.rounds > 1 else "")
                 + baseline_note(ctx),
                 ""] + t_rows + [""] + t_notes
        if t_verdict:
            text += ["", "Against the target in docs/design.md (TLS handshakes ≥ "
                     f"{TARGETS['tls-new']}):", ""] + t_verdict
        text += baseline_block(ctx, summ, run.results, ("tls-new",))
        if run.perf_tls:
            text += ["", f"`perf record -g -p <master>` during an extra "
                     f"tls-new run, self time by symbol (top entries, full "
                     f"report in {run.perf_tls[0]}), then inclusive time of a "
                     f"few entry points:", "", "```"] + run.perf_tls[1] + ["```"]
    return "\n".join(text) + "\n"


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
