#!/usr/bin/env python3
"""`ddvctl top` in a real terminal: tmux runs it against a real master
with two sites of ddv_hello workers; capture-pane reads the screen.

- load to site a moves a's connection rate (site and workers) and not b's;
- connections a stopped worker holds move a's OUTST column, not b's;
- a killed worker shows in a's RESTARTS;
- a resized window gets a frame that fits it;
- q (and Ctrl-C) exit 0 with the terminal restored: the normal screen,
  the cursor shown, canonical mode and echo back;
- --once prints one frame on standard output.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from tests.master import harness

TMUX = shutil.which("tmux") or "/usr/bin/tmux"


def config(ddv):
    # pidfd handoff: a connection stays outstanding until its worker takes
    # it, so a stopped worker's backlog shows in OUTST.
    return f"""
[master]
control_socket = "{ddv.control_socket}"
handoff = "pidfd"

[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"

[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a", "--ring_entries=256"]
processes = 2
hosts = ["a.localhost"]

[[site]]
id = "b"
command = ["{ddv.hello}", "--site=b", "--ring_entries=256"]
processes = 2
hosts = ["b.localhost"]
default = true
"""


class Tmux:
    """A private tmux server (its own socket) with one detached session."""

    def __init__(self, command, width=100, height=30):
        self.dir = tempfile.mkdtemp(prefix="ddv-tmux-", dir="/tmp")
        self.socket = os.path.join(self.dir, "tmux.sock")
        self.run("-f", "/dev/null", "new-session", "-d", "-s", "top",
                 "-x", str(width), "-y", str(height), command)

    def run(self, *args):
        return subprocess.run([TMUX, "-S", self.socket, *args],
                              capture_output=True, text=True, timeout=10,
                              check=True).stdout

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "top").splitlines()

    def display(self, fmt):
        return self.run("display-message", "-p", "-t", "top", fmt).strip()

    def keys(self, *keys):
        self.run("send-keys", "-t", "top", *keys)

    def resize(self, width, height):
        self.run("resize-window", "-t", "top", "-x", str(width),
                 "-y", str(height))

    def close(self):
        subprocess.run([TMUX, "-S", self.socket, "kill-server"],
                       capture_output=True, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def rows(screen):
    """{"a": [...], "a#0": [...], ...}: the table's rows as words, site rows
    under the site id, worker rows under "site#index"."""
    table, site = {}, None
    in_table = False
    for line in screen:
        if line.startswith("SITE/WORKER"):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        words = line.split()
        if line.startswith("  #"):
            table[f"{site}{words[0]}"] = words
        else:
            site = words[0].rstrip("*")
            table[site] = words
    return table


# Site rows: id, "2/2", "up", CONN/S, OUTST, UNREAD, RESTARTS, 503/S.
# Worker rows: #i, pid, state, CONN/S, OUTST, UNREAD, RESTARTS.
SITE_CONN, SITE_OUTST, SITE_RESTARTS = 3, 4, 6
WORKER_CONN = 3


def number(word):
    return -1.0 if word == "-" else float(word.rstrip("k"))


class TopTest(unittest.TestCase):

    def setUp(self):
        self.ddv = harness.Ddv(config_text=config)
        self.ctl = harness.runfile("src/ddvctl")
        self.state = os.path.join(tempfile.mkdtemp(dir="/tmp"), "stty")
        self.tmux = None

    def tearDown(self):
        for pid in self.stopped_workers():
            os.kill(pid, signal.SIGCONT)
        if self.tmux:
            self.tmux.close()
        self.ddv.stop()

    def stopped_workers(self):
        return getattr(self, "_stopped", [])

    def start_top(self, width=100, height=30):
        # The shell prints a marker before and after, saves the terminal's
        # mode once top is gone, and stays so the pane can be read.
        command = (f"echo BEFORE-TOP; {self.ctl} "
                   f"--control_socket={self.ddv.control_socket} top "
                   f"--interval=0.5; echo EXIT=$?; stty -a > {self.state}; "
                   f"exec sleep 600")
        self.tmux = Tmux(command, width, height)
        self.wait_screen(lambda s: "a" in rows(s) and "b" in rows(s),
                         "the first frame")

    def wait_screen(self, predicate, what, timeout=15.0):
        deadline = time.monotonic() + timeout
        screen = []
        while time.monotonic() < deadline:
            screen = self.tmux.screen()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        self.fail(f"no {what} within {timeout}s; screen:\n" +
                  "\n".join(screen))

    def load(self, host, seconds, stop):
        """Requests to `host` one after another for `seconds` (at most
        5000), until `stop` is set; returns the number answered 200."""
        ok = 0
        deadline = time.monotonic() + seconds
        for _ in range(5000):
            if stop.is_set() or time.monotonic() > deadline:
                break
            try:
                status, _, _ = harness.http_get(self.ddv.http_port, host,
                                                timeout=2.0)
                ok += status == 200
            except OSError:
                pass
        return ok

    def test_rates_outstanding_restarts_resize_and_quit(self):
        self.start_top()

        # Load to a: its rate moves, b's stays 0.
        stop = threading.Event()
        answered = []
        loader = threading.Thread(
            target=lambda: answered.append(self.load("a.localhost", 8, stop)))
        loader.start()
        try:
            screen = self.wait_screen(
                lambda s: ("a" in rows(s) and
                           number(rows(s)["a"][SITE_CONN]) >= 5 and
                           number(rows(s)["a#0"][WORKER_CONN]) > 0 and
                           number(rows(s)["a#1"][WORKER_CONN]) > 0),
                "rate for site a")
        finally:
            stop.set()
            loader.join()
        self.assertGreater(answered[0], 0)
        table = rows(screen)
        self.assertEqual(number(table["b"][SITE_CONN]), 0.0, screen)
        self.assertEqual(number(table["b#0"][WORKER_CONN]), 0.0, screen)
        self.assertEqual(number(table["b#1"][WORKER_CONN]), 0.0, screen)

        # Stop a's workers and open connections: the master hands them off
        # (pidfd) and they stay outstanding until a worker takes them.
        self._stopped = [w["pid"] for s in self.ddv.status()["sites"]
                         if s["id"] == "a" for w in s["workers"]]
        for pid in self._stopped:
            os.kill(pid, signal.SIGSTOP)
        clients = []
        for _ in range(4):
            c = socket.create_connection(("127.0.0.1", self.ddv.http_port),
                                         timeout=5)
            c.sendall(b"GET / HTTP/1.1\r\nHost: a.localhost\r\n"
                      b"Connection: close\r\n\r\n")
            clients.append(c)
        screen = self.wait_screen(
            lambda s: number(rows(s)["a"][SITE_OUTST]) == 4,
            "4 outstanding on site a")
        self.assertEqual(number(rows(screen)["b"][SITE_OUTST]), 0, screen)
        for pid in self._stopped:
            os.kill(pid, signal.SIGCONT)
        self._stopped = []
        for c in clients:
            with c:
                status, body = harness.parse_response(harness.recv_all(c))[:2]
                self.assertEqual(status, 200)
        self.wait_screen(lambda s: number(rows(s)["a"][SITE_OUTST]) == 0,
                         "a's outstanding back to 0")

        # Kill a worker of a: a's RESTARTS counts it, b's does not.
        victim = self.ddv.worker_pids("a")[0]
        os.kill(victim, signal.SIGKILL)
        screen = self.wait_screen(
            lambda s: number(rows(s)["a"][SITE_RESTARTS]) == 1,
            "a restart on site a")
        self.assertEqual(number(rows(screen)["b"][SITE_RESTARTS]), 0)

        # A smaller window: the next frame fits it.
        self.tmux.resize(50, 8)
        screen = self.wait_screen(
            lambda s: (len(s) <= 8 and s and s[0].startswith("ddv top") and
                       max(len(line) for line in s) <= 50 and
                       any(line.startswith("... ") for line in s)),
            "a frame fitting 50x8")

        # q: top exits 0 and the shell's screen and terminal mode are back.
        self.assertEqual(self.tmux.display("#{alternate_on}"), "1")
        self.tmux.keys("q")
        screen = self.wait_screen(lambda s: "EXIT=0" in s, "EXIT=0")
        self.assertIn("BEFORE-TOP", screen)
        self.assertFalse(any(line.startswith("SITE/WORKER")
                             for line in screen), screen)
        self.assertEqual(self.tmux.display("#{alternate_on}"), "0")
        self.assertEqual(self.tmux.display("#{cursor_flag}"), "1")
        self.assert_terminal_restored()

    def test_ctrl_c_quits_and_restores(self):
        self.start_top()
        self.tmux.keys("C-c")
        self.wait_screen(lambda s: "EXIT=0" in s, "EXIT=0")
        self.assertEqual(self.tmux.display("#{alternate_on}"), "0")
        self.assertEqual(self.tmux.display("#{cursor_flag}"), "1")
        self.assert_terminal_restored()

    def assert_terminal_restored(self):
        def read_state():
            if not os.path.exists(self.state):
                return ""
            with open(self.state) as f:
                return f.read()
        state = harness.wait_for(read_state)
        words = state.split()
        self.assertIn("icanon", words, state)
        self.assertIn("echo", words, state)
        self.assertNotIn("-icanon", words)
        self.assertNotIn("-echo", words)

    def test_once_prints_one_frame(self):
        result = subprocess.run(
            [self.ctl, f"--control_socket={self.ddv.control_socket}", "top",
             "--once", "--interval=0.3"],
            capture_output=True, text=True, timeout=15)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ddv top: master "), lines)
        self.assertNotIn("\x1b", result.stdout)
        table = rows(lines)
        self.assertEqual(sorted(table),
                         ["a", "a#0", "a#1", "b", "b#0", "b#1"])
        self.assertEqual(table["a"][1:3], ["2/2", "up"])
        self.assertEqual(number(table["a"][SITE_CONN]), 0.0)

    def test_once_without_a_master_exits_3(self):
        result = subprocess.run(
            [self.ctl, "--control_socket=/nonexistent/ddv.sock", "top",
             "--once"], capture_output=True, text=True, timeout=15)
        self.assertEqual(result.returncode, 3)
        self.assertIn("not running", result.stderr)

    def test_top_without_a_terminal_says_use_once(self):
        result = subprocess.run(
            [self.ctl, f"--control_socket={self.ddv.control_socket}", "top"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=15)
        self.assertEqual(result.returncode, 1)
        self.assertIn("--once", result.stderr)


if __name__ == "__main__":
    unittest.main()
