"""Workers under another user (`user =` in a site), end to end. Outside the
Bazel sandbox, which denies setgroups()."""
import os
import shutil
import tempfile
import time
import unittest

import harness
from harness import fields, http_get


def copy_hello():
    # The worker runs as nobody: it must be able to reach and run the binary.
    directory = tempfile.mkdtemp(prefix="ddv-nobody-", dir="/tmp")
    os.chmod(directory, 0o755)
    hello = os.path.join(directory, "ddv_hello")
    shutil.copy(harness.runfile("src/ddv_hello"), hello)
    os.chmod(hello, 0o755)
    return directory, hello


def nobody_config(handoff, hello):
    def text(ddv):
        return f"""
[master]
control_socket = "{ddv.control_socket}"
handoff = "{handoff}"
[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"
[[site]]
id = "n"
command = ["{hello}", "--site=n"]
default = true
user = "nobody"
"""
    return text


@unittest.skipIf(os.geteuid() != 0, "needs root to run a worker as nobody")
class CredentialsTest(unittest.TestCase):
    def setUp(self):
        self.directory, self.hello = copy_hello()

    def tearDown(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def test_scm_rights_worker_runs_as_nobody(self):
        ddv = harness.Ddv(config_text=nobody_config("scm_rights", self.hello))
        try:
            status, body, _ = http_get(ddv.http_port, "x.test")
            self.assertEqual(status, 200, body)
            pid = int(fields(body)["pid"])
            with open(f"/proc/{pid}/status") as f:
                uid_line = next(l for l in f if l.startswith("Uid:"))
            self.assertNotEqual(uid_line.split()[1], "0")
        finally:
            ddv.stop()

    def test_pidfd_pull_failure_is_refused_not_held(self):
        # A worker running as another user cannot pidfd_getfd from a root
        # master: the connection must get 503 at once, not hang.
        ddv = harness.Ddv(config_text=nobody_config("pidfd", self.hello))
        try:
            start = time.monotonic()
            status, body, _ = http_get(ddv.http_port, "x.test")
            self.assertEqual(status, 503, body)
            self.assertLess(time.monotonic() - start, 2)
            self.assertEqual(ddv.status()["sites"][0]["workers"][0]["outstanding"], 0)
        finally:
            ddv.stop()


if __name__ == "__main__":
    unittest.main()
