"""Log files end to end (docs/logs.md), with a real watchdog, master, log
writer and workers: line_worker prints numbered lines on stdout and stderr
without a pause, ddv_hello serves requests meanwhile.

- SIGUSR1 three times and `ddvctl reopen` once, each after moving the files
  away as logrotate does, under load: no failed request, the same worker
  pids, new files, and every numbered line exactly once across the old and
  new files.
- kill -9 of the master: the log writer is the watchdog's child, so it
  keeps the files, and the workers (adopted by the next master) keep their
  pipes; no line written is lost.
- kill -9 of the log writer: the watchdog restarts it, it takes the pipes
  back from the park, and no worker notices.
- `ddvctl upgrade`: the re-executed watchdog takes the same writer back;
  no worker is touched and no line lost.
"""
import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "master"))
import harness  # noqa: E402
from harness import http_get, full_log, wait_for  # noqa: E402
from pyddv.procs import children  # noqa: E402

LINE = re.compile(r"^(line|end) pid=(\d+) (out|err) (\d+)$")


def config(line_worker, interval_us=500, rotation=""):
    def text(ddv):
        return f"""
[master]
control_socket = "{ddv.control_socket}"

[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"

[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a"]
processes = 2
hosts = ["a.localhost"]
log_all = "{ddv.dir}/a.log"

[[site]]
id = "lines"
command = ["{line_worker}", "{interval_us}"]
processes = 2
hosts = ["lines.localhost"]
log_output = "{ddv.dir}/lines.out"
log_error = "{ddv.dir}/lines.err"
{rotation}
"""
    return text


def read_lines(paths):
    """Every line of `paths` (missing files are empty)."""
    lines = []
    for path in paths:
        try:
            with open(path) as f:
                lines.extend(f.read().splitlines())
        except FileNotFoundError:
            pass
    return lines


def check_every_line_once(test, lines, stream):
    """Per worker pid: lines 0..count-1 each exactly once, in order, then
    its end line saying count. Returns {pid: count}."""
    seen = collections.defaultdict(list)
    ends = {}
    for line in lines:
        m = LINE.match(line)
        test.assertIsNotNone(m, f"not a whole line: {line!r}")
        kind, pid, s, n = m.group(1), int(m.group(2)), m.group(3), int(
            m.group(4))
        test.assertEqual(s, stream, line)
        if kind == "end":
            test.assertNotIn(pid, ends, f"two end lines for {pid}")
            ends[pid] = n
        else:
            test.assertNotIn(pid, ends, f"a line after the end: {line}")
            seen[pid].append(n)
    test.assertTrue(seen, "no line at all")
    for pid, numbers in seen.items():
        test.assertIn(pid, ends, f"pid {pid} wrote no end line ({stream})")
        test.assertEqual(numbers, list(range(ends[pid])),
                         f"pid {pid} {stream}: lost, repeated or out of "
                         f"order (wrote {ends[pid]}, {len(numbers)} here)")
    return ends


def count_lines(path):
    try:
        with open(path) as f:
            return f.read().count("\n")
    except FileNotFoundError:
        return 0


def log_writer_pid(ddv):
    """The log writer beside the master: the watchdog's child running
    ddv_master --log_writer."""
    for pid in children(ddv.proc.pid):
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                if "--log_writer" in f.read().split("\0"):
                    return pid
        except OSError:
            pass
    return None


class Load:
    """HTTP requests to site a in a thread, one after another, until stop();
    `failures` lists what went wrong."""

    def __init__(self, port):
        self.port = port
        self.done = threading.Event()
        self.requests = 0
        self.failures = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.monotonic() + 120  # bounded, whatever happens
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                status, body, _ = http_get(self.port, "a.localhost",
                                           timeout=5)
                if status != 200 or "site=a" not in body:
                    self.failures.append(f"{status} {body[:80]}")
            except OSError as e:
                self.failures.append(repr(e))
            self.requests += 1

    def stop(self):
        self.done.set()
        self.thread.join(timeout=10)


class LogsE2ETest(unittest.TestCase):
    def setUp(self):
        self.line_worker = harness.runfile("tests/logwriter/line_worker")
        self.ddvctl = harness.runfile("src/ddvctl")

    def start(self, **kw):
        ddv = harness.Ddv(watchdog=True,
                          config_text=config(self.line_worker, **kw),
                          extra_flags=["--log_dir="])
        self.addCleanup(ddv.stop)
        return ddv

    def paths(self, ddv):
        return (os.path.join(ddv.dir, "lines.out"),
                os.path.join(ddv.dir, "lines.err"),
                os.path.join(ddv.dir, "a.log"))

    def all_pids(self, ddv):
        return {s["id"]: sorted(w["pid"] for w in s["workers"])
                for s in ddv.status()["sites"]}

    def stop_and_check(self, ddv, moved):
        """Stops ddv (workers end with their end lines, the writer drains)
        and checks every line of every worker, old files and new."""
        self.assertEqual(ddv.stop(), 0, full_log(ddv)[-3000:])
        out, err, _ = self.paths(ddv)
        ends_out = check_every_line_once(
            self, read_lines([p for p in moved if ".out" in p] + [out]),
            "out")
        ends_err = check_every_line_once(
            self, read_lines([p for p in moved if ".err" in p] + [err]),
            "err")
        self.assertEqual(ends_out, ends_err)
        return ends_out

    def test_reopen_under_load_loses_no_line_and_touches_no_worker(self):
        ddv = self.start()
        out, err, alog = self.paths(ddv)
        self.assertTrue(wait_for(lambda: count_lines(out) > 20))
        before = self.all_pids(ddv)
        writer = log_writer_pid(ddv)
        self.assertIsNotNone(writer)
        load = Load(ddv.http_port)
        moved = []
        try:
            for n in range(4):
                time.sleep(0.3)
                for path in (out, err, alog):
                    os.rename(path, f"{path}.{n}")
                    moved.append(f"{path}.{n}")
                if n < 3:
                    os.kill(ddv.proc.pid, signal.SIGUSR1)  # the watchdog
                else:
                    result = subprocess.run(
                        [self.ddvctl, f"--control_socket={ddv.control_socket}",
                         "reopen"], capture_output=True, text=True,
                        timeout=10)
                    self.assertEqual(result.returncode, 0, result.stderr)
                    self.assertRegex(result.stdout,
                                     r"^ok: reopened \d+ log files\n$")
                # Reopened: the new files appear and fill.
                self.assertTrue(wait_for(lambda: count_lines(out) > 20 and
                                         count_lines(err) > 20),
                                full_log(ddv)[-2000:])
                self.assertTrue(wait_for(lambda: os.path.exists(alog)))
        finally:
            load.stop()
        self.assertGreater(load.requests, 20)
        self.assertEqual(load.failures, [], full_log(ddv)[-2000:])
        self.assertEqual(self.all_pids(ddv), before)
        self.assertEqual(log_writer_pid(ddv), writer)
        log = full_log(ddv)
        self.assertEqual(log.count("log writer: reopened 3 log files"), 4, log)
        ends = self.stop_and_check(ddv, moved)
        self.assertEqual(sorted(ends), before["lines"])
        # The moved files hold lines up to the reopen, each of them.
        for path in moved:
            if ".out." in path:
                self.assertGreater(count_lines(path), 0, path)

    def test_master_crash_loses_no_line(self):
        ddv = self.start()
        out, _, _ = self.paths(ddv)
        self.assertTrue(wait_for(lambda: count_lines(out) > 20))
        writer = log_writer_pid(ddv)
        master = ddv.status()["pid"]
        old = set(self.all_pids(ddv)["lines"])
        os.kill(master, signal.SIGKILL)
        # A new master, which adopts the same workers: their pipes never
        # had the master as a reader, so they write on throughout.
        self.assertTrue(wait_for(
            lambda: self.ready_master(ddv, master), timeout=20),
            full_log(ddv)[-3000:])
        self.assertEqual(set(self.all_pids(ddv)["lines"]), old)
        size = count_lines(out)
        self.assertTrue(wait_for(lambda: count_lines(out) > size + 50))
        # The writer never stopped: the files were never the master's.
        self.assertEqual(log_writer_pid(ddv), writer)
        ends = self.stop_and_check(ddv, [])
        self.assertEqual(set(ends), old)

    def test_upgrade_keeps_the_writer_and_every_line(self):
        ddv = self.start()
        out, err, _ = self.paths(ddv)
        self.assertTrue(wait_for(lambda: count_lines(out) > 20))
        before = self.all_pids(ddv)
        writer = log_writer_pid(ddv)
        watchdog = ddv.proc.pid
        result = subprocess.run(
            [self.ddvctl, f"--control_socket={ddv.control_socket}",
             "upgrade"], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0,
                         result.stderr + full_log(ddv)[-3000:])
        self.assertIn("kept across the upgrade", full_log(ddv))
        # The same writer, re-adopted by the re-executed watchdog, and the
        # same workers: nothing was reopened or restarted.
        self.assertEqual(log_writer_pid(ddv), writer)
        self.assertEqual(self.all_pids(ddv), before)
        self.assertEqual(ddv.proc.pid, watchdog)
        # And it still answers a reopen.
        os.rename(out, out + ".0")
        os.rename(err, err + ".0")
        os.kill(ddv.proc.pid, signal.SIGUSR1)
        self.assertTrue(wait_for(lambda: count_lines(out) > 20 and
                                 count_lines(err) > 20),
                        full_log(ddv)[-2000:])
        ends = self.stop_and_check(ddv, [out + ".0", err + ".0"])
        self.assertEqual(sorted(ends), before["lines"])

    def ready_master(self, ddv, dead):
        try:
            st = ddv.status()
        except (OSError, ValueError):
            return False
        workers = [w for s in st["sites"] for w in s["workers"]]
        return st["pid"] != dead and all(w.get("ready") for w in workers)

    def test_log_writer_crash_is_restarted_and_workers_never_notice(self):
        ddv = self.start()
        out, _, _ = self.paths(ddv)
        self.assertTrue(wait_for(lambda: count_lines(out) > 20))
        before = self.all_pids(ddv)
        writer = log_writer_pid(ddv)
        os.kill(writer, signal.SIGKILL)
        self.assertTrue(wait_for(
            lambda: log_writer_pid(ddv) not in (None, writer), timeout=10))
        self.assertIn("pipes back from the park", full_log(ddv))
        # Lines keep coming, from the same workers.
        size = count_lines(out)
        self.assertTrue(wait_for(lambda: count_lines(out) > size + 50))
        self.assertEqual(self.all_pids(ddv), before)
        self.assertEqual(ddv.stop(), 0, full_log(ddv)[-3000:])
        # A writer killed mid-way loses what it had read and not yet
        # written; everything else arrives, in order.
        for stream, path in (("out", out), ("err", out[:-3] + "err")):
            lines = read_lines([path])
            per_pid = collections.defaultdict(list)
            for line in lines:
                m = LINE.match(line)
                self.assertIsNotNone(m, line)
                if m.group(1) == "line":
                    per_pid[int(m.group(2))].append(int(m.group(4)))
            for pid, numbers in per_pid.items():
                self.assertEqual(numbers, sorted(set(numbers)), pid)
                lost = numbers[-1] + 1 - len(numbers)
                self.assertLess(lost, 200, f"{pid} {stream}: {lost} lost")

    def test_rotation_by_size_keeps_every_line_whole(self):
        ddv = self.start(interval_us=200,
                         rotation="log_max_bytes = 20000\nlog_keep = 1000")
        out, err, _ = self.paths(ddv)
        self.assertTrue(wait_for(lambda: os.path.exists(out + ".3"),
                                 timeout=20), full_log(ddv)[-2000:])
        self.assertEqual(ddv.stop(), 0, full_log(ddv)[-3000:])
        for stream, path in (("out", out), ("err", err)):
            rotated = sorted(
                (p for p in os.listdir(ddv.dir)
                 if p.startswith(os.path.basename(path) + ".")),
                key=lambda p: -int(p.rsplit(".", 1)[1]))
            files = [os.path.join(ddv.dir, p) for p in rotated] + [path]
            for f in files[:-1]:
                self.assertLessEqual(os.path.getsize(f), 20000, f)
            check_every_line_once(self, read_lines(files), stream)


if __name__ == "__main__":
    unittest.main()
