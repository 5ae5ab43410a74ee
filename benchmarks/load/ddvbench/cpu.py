"""CPU accounting from /proc: a process tree's utime + stime, and each CPU's
busy time."""
import os

from pyddv.procs import tree


def proc_ticks(pid):
    """utime + stime of a process (all its threads, live and exited)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime is field 14, stime field 15.
    return int(rest[11]) + int(rest[12])


def tree_ticks(pids):
    """{pid: ticks} for `pids` and all their descendants."""
    snap = {}
    for p in tree(pids):
        try:
            snap[p] = proc_ticks(p)
        except OSError:
            pass
    return snap


def delta_ticks(before, after):
    """Ticks between two tree_ticks snapshots (a process new in `after`
    counts from 0)."""
    return sum(t - before.get(p, 0) for p, t in after.items())


def wakeups(pid):
    """Voluntary context switches of a process, summed over its live
    threads (the master's shards are threads): how often it went to sleep,
    each one a wake-up later."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


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
