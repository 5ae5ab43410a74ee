#!/usr/bin/env python3
"""A file with many mistakes, through the real binaries: `ddv_master
--check_config` lists every error as FILE:LINE:COL in file order, and
`ddvctl reload` of that file shows the count and the first ones while the
running config keeps serving."""
import os
import re
import subprocess
import unittest

from tests.master import harness

# Eight independent mistakes, each on its own line. {hello} is ddv_hello.
BROKEN = """\
[master]
control_socket = "{control_socket}"
peek_timeout_ms = 0
handof = "pidfd"

[[listener]]
name = "http"
address = "127.0.0.1:{http_port}"
protocol = "htp"

[[site]]
id = "a"
command = ["{hello}", "--site=a", "--ring_entries=256"]
processes = 0
hosts = ["a.localhost", "a.*.b"]
listeners = ["http", "https"]

[[site]]
id = "a b"
command = ["/nonexistent/ddv_hello"]
user = "ddv-no-such-user"
"""

EXPECTED = [
    (3, 19, "peek_timeout_ms must be between 1 and 600000, got 0"),
    (4, 1, 'unknown key "handof" in [master] (did you mean "handoff"?)'),
    (9, 12, 'protocol "htp" must be "http", "tls" or "tcp"'),
    (14, 13, "processes must be between 1 and 1024, got 0"),
    (15, 25, 'host "a.*.b" has a misplaced "*"'),
    (16, 22, 'no listener named "https"'),
    (19, 6, 'site id "a b" must be non-empty'),
    (20, 12, 'command[0] "/nonexistent/ddv_hello" does not exist'),
    (21, 8, 'user "ddv-no-such-user" does not exist'),
]


def broken_text(ddv):
    return BROKEN.format(control_socket=ddv.control_socket,
                         http_port=ddv.http_port, hello=ddv.hello)


class CheckConfigTest(unittest.TestCase):

    def test_lists_every_error_in_file_order(self):
        tmp = os.environ.get("TEST_TMPDIR", "/tmp")
        path = os.path.join(tmp, "broken.toml")
        with open(path, "w") as f:
            f.write(BROKEN.format(control_socket="/tmp/x.sock",
                                  http_port=8080,
                                  hello=harness.runfile("src/ddv_hello")))
        result = subprocess.run(
            [harness.runfile("src/ddv_master"), f"--config={path}",
             "--check_config"], capture_output=True, text=True, timeout=10)
        self.assertEqual(result.returncode, 2, result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(lines[-1], f"{len(EXPECTED)} errors in {path}")
        self.assertEqual(len(lines), len(EXPECTED) + 1, result.stderr)
        for line, (row, col, what) in zip(lines, EXPECTED):
            self.assertTrue(line.startswith(f"{path}:{row}:{col}: {what}"),
                            f"{line!r} is not {row}:{col}: {what}")
            self.assertRegex(line, rf"^{re.escape(path)}:\d+:\d+: \S")

    def test_one_error_is_one_line(self):
        tmp = os.environ.get("TEST_TMPDIR", "/tmp")
        path = os.path.join(tmp, "one.toml")
        with open(path, "w") as f:
            f.write('[[listener]]\nname = "x"\naddress = "127.0.0.1:80"\n'
                    'protocol = "http"\n[[site]]\nid = "a"\n'
                    'command = ["/bin/sh"]\nproceses = 2\n')
        result = subprocess.run(
            [harness.runfile("src/ddv_master"), f"--config={path}",
             "--check_config"], capture_output=True, text=True, timeout=10)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr,
            f'{path}:8:1: unknown key "proceses" in [[site]] (did you mean '
            f'"processes"?)\n')


class ReloadTest(unittest.TestCase):

    def setUp(self):
        self.ddv = harness.Ddv()

    def tearDown(self):
        self.ddv.stop()

    def test_reload_of_a_broken_file_shows_count_and_errors(self):
        self.ddv.write_text(broken_text(self.ddv))
        result = subprocess.run(
            [harness.runfile("src/ddvctl"),
             f"--control_socket={self.ddv.control_socket}", "reload"],
            capture_output=True, text=True, timeout=20)
        self.assertEqual(result.returncode, 1, result.stderr)
        path = self.ddv.config_path
        lines = result.stderr.splitlines()
        # The first line reads as when the file had one error.
        prefix = "ddvctl: reload failed, keeping the running config: "
        self.assertTrue(lines[0].startswith(prefix), lines[0])
        lines[0] = lines[0][len(prefix):]
        self.assertEqual(lines[-1], f"{len(EXPECTED)} errors in {path}")
        self.assertEqual(len(lines), len(EXPECTED) + 1, result.stderr)
        for line, (row, col, what) in zip(lines, EXPECTED):
            self.assertTrue(line.startswith(f"{path}:{row}:{col}: {what}"),
                            line)
        # The running config still serves.
        status, body, _ = harness.http_get(self.ddv.http_port, "a.localhost")
        self.assertEqual(status, 200)
        self.assertIn("site=a", body)

    def test_reload_shows_the_first_twenty_of_many(self):
        # 30 unknown keys in [master]: the reply stays short.
        text = broken_text(self.ddv).replace(
            'handof = "pidfd"\n',
            "".join(f"zz{i} = {i}\n" for i in range(30)))
        self.ddv.write_text(text)
        result = subprocess.run(
            [harness.runfile("src/ddvctl"),
             f"--control_socket={self.ddv.control_socket}", "reload"],
            capture_output=True, text=True, timeout=20)
        self.assertEqual(result.returncode, 1)
        lines = result.stderr.splitlines()
        total = len(EXPECTED) - 1 + 30
        self.assertEqual(len(lines), 20 + 1, result.stderr)
        self.assertEqual(
            lines[-1], f"{total} errors in {self.ddv.config_path}, the first "
            f"20 above (ddv_master --check_config "
            f"--config={self.ddv.config_path} lists every one)")


if __name__ == "__main__":
    unittest.main()
