"""The control socket end to end: who may use it (file mode and group, then
the master's SO_PEERCRED check), and ddvctl's exit codes for each way a
command can fail. Clients run as `nobody` in forked children; switching
user needs root, and setgroups(), which Bazel's sandbox denies."""
import grp
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import unittest

import harness
from harness import http_get, wait_for

NOBODY = pwd.getpwnam("nobody")


def config(mode=None, group=None):
    def text(ddv):
        master = f'control_socket = "{ddv.control_socket}"\n'
        if mode is not None:
            master += f'control_socket_mode = "{mode}"\n'
        if group is not None:
            master += f'control_socket_group = "{group}"\n'
        return f"""
[master]
{master}
[[listener]]
name = "http"
address = "127.0.0.1:{ddv.http_port}"
protocol = "http"

[[site]]
id = "a"
command = ["{ddv.hello}", "--site=a"]
hosts = ["a.localhost"]
default = true
"""
    return text


def as_user(uid, gid, groups, fn):
    """Runs fn() in a forked child with these credentials; returns what it
    returned (a string), or "raised <ExceptionClass>" if it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            try:
                result = fn()
            except Exception as e:  # reported to the parent
                result = f"raised {type(e).__name__}"
            os.write(write_end, result.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return out


def ask(path, command="status"):
    return lambda: harness.control(path, command, timeout=5)


def other_group():
    """A group that exists and is not nobody's primary group."""
    for name in ("daemon", "users", "adm", "sys", "bin"):
        try:
            g = grp.getgrnam(name)
        except KeyError:
            continue
        if g.gr_gid != NOBODY.pw_gid:
            return g
    return None


def open_to_nobody(ddv):
    # The harness makes the socket's directory 0700: let nobody reach the
    # socket, so what is tested is the socket's own mode and the master.
    os.chmod(os.path.dirname(ddv.control_socket), 0o711)


@unittest.skipIf(os.geteuid() != 0, "needs root to run clients as nobody")
class ControlAccessTest(unittest.TestCase):
    def start(self, **kw):
        ddv = harness.Ddv(config_text=config(**kw),
                          extra_flags=["--log_dir="])
        self.addCleanup(ddv.stop)
        open_to_nobody(ddv)
        return ddv

    def test_socket_is_0600_and_refuses_others_at_connect_by_default(self):
        ddv = self.start()
        st = os.stat(ddv.control_socket)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, 0)
        self.assertEqual(
            as_user(NOBODY.pw_uid, NOBODY.pw_gid, [], ask(ddv.control_socket)),
            "raised PermissionError")
        # Root, the owner, still may.
        self.assertIn('"sites"', harness.control(ddv.control_socket, "status"))

    def test_peer_check_refuses_a_non_owner_the_mode_lets_in(self):
        # A wide mode is only the first gate: the master still refuses
        # whoever is not root, its own user or in control_socket_group.
        ddv = self.start(mode="0666")
        self.assertEqual(stat.S_IMODE(os.stat(ddv.control_socket).st_mode),
                         0o666)
        for command in ("status", "reload", "stop", "restart a"):
            reply = as_user(NOBODY.pw_uid, NOBODY.pw_gid, [],
                            ask(ddv.control_socket, command))
            self.assertEqual(reply,
                             f"error: permission denied (uid {NOBODY.pw_uid})\n")
        self.assertIsNone(ddv.proc.poll(), "a refused stop stopped the master")
        self.assertEqual(http_get(ddv.http_port, "a.localhost")[0], 200)
        # Logged with uid and pid, rate-limited: four refusals, one line.
        log = ddv.read_log()
        self.assertRegex(log, rf"control client refused: uid {NOBODY.pw_uid} "
                              r"pid \d+ is not root")
        self.assertEqual(log.count("control client refused"), 1, log)
        self.assertEqual(ddv.status()["counters"]["control_refused"], 4)

    def test_control_group_members_may_use_it(self):
        group = other_group()
        if group is None:
            self.skipTest("no group to test with")
        ddv = self.start(mode="0660", group=group.gr_name)
        st = os.stat(ddv.control_socket)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, group.gr_gid)
        # Supplementary and primary membership both count.
        for gid, groups in ((NOBODY.pw_gid, [group.gr_gid]),
                            (group.gr_gid, [])):
            reply = as_user(NOBODY.pw_uid, gid, groups,
                            ask(ddv.control_socket))
            self.assertIn('"sites"', reply, (gid, groups))
        # Not a member: the file's mode refuses at connect.
        self.assertEqual(
            as_user(NOBODY.pw_uid, NOBODY.pw_gid, [], ask(ddv.control_socket)),
            "raised PermissionError")

    def test_reload_applies_mode_and_group(self):
        group = other_group()
        if group is None:
            self.skipTest("no group to test with")
        ddv = self.start()
        ddv.write_text(config(mode="0660", group=group.gr_name)(ddv))
        self.assertTrue(harness.control(ddv.control_socket, "reload")
                        .startswith("ok"))
        st = os.stat(ddv.control_socket)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid),
                         (0o660, group.gr_gid))
        self.assertIn('"sites"', as_user(NOBODY.pw_uid, NOBODY.pw_gid,
                                         [group.gr_gid],
                                         ask(ddv.control_socket)))
        # And back: the group loses the file and the check.
        ddv.write_text(config(mode="0666")(ddv))
        self.assertTrue(harness.control(ddv.control_socket, "reload")
                        .startswith("ok"))
        self.assertEqual(os.stat(ddv.control_socket).st_gid, 0)
        self.assertEqual(
            as_user(NOBODY.pw_uid, NOBODY.pw_gid, [group.gr_gid],
                    ask(ddv.control_socket)),
            f"error: permission denied (uid {NOBODY.pw_uid})\n")


class DdvctlExitCodeTest(unittest.TestCase):
    """ddvctl exits non-zero with the reason on stderr, a code per kind."""

    @classmethod
    def setUpClass(cls):
        cls.ddvctl = harness.runfile("src/ddvctl")

    def run_ddvctl(self, socket_path, *args, **kw):
        return subprocess.run(
            [self.ddvctl, f"--control_socket={socket_path}", *args],
            capture_output=True, text=True, timeout=20, **kw)

    def test_help_lists_the_exit_codes(self):
        result = subprocess.run([self.ddvctl, "--help"], capture_output=True,
                                text=True, timeout=10)
        self.assertEqual(result.returncode, 0)
        for line in ("exit codes:", "3  the master is not running",
                     "4  the master did not answer in time",
                     "5  permission denied"):
            self.assertIn(line, result.stdout)

    def test_broken_reload_exits_1_with_file_line_col(self):
        ddv = harness.Ddv(config_text=config())
        self.addCleanup(ddv.stop)
        ok = self.run_ddvctl(ddv.control_socket, "reload")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertTrue(ok.stdout.startswith("ok: reloaded"), ok.stdout)
        ddv.write_text(config()(ddv) + "processes = 'many'\n")
        bad = self.run_ddvctl(ddv.control_socket, "reload")
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(bad.stdout, "")
        self.assertRegex(
            bad.stderr,
            rf"^ddvctl: reload failed, keeping the running config: "
            rf"{ddv.config_path}:\d+:\d+: processes must be an integer")
        self.assertEqual(self.run_ddvctl(ddv.control_socket, "restart", "nope")
                         .returncode, 1)

    def test_default_socket_comes_from_the_environment(self):
        ddv = harness.Ddv(config_text=config())
        self.addCleanup(ddv.stop)
        env = dict(os.environ, DDV_CONTROL_SOCKET=ddv.control_socket)
        ok = subprocess.run([self.ddvctl, "status"], capture_output=True,
                            text=True, timeout=20, env=env)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn("master", ok.stdout)
        # --control_socket wins over the environment.
        directory = tempfile.mkdtemp(prefix="ddv-", dir="/tmp")
        self.addCleanup(shutil.rmtree, directory, True)
        other = os.path.join(directory, "control.sock")
        missing = subprocess.run(
            [self.ddvctl, f"--control_socket={other}", "status"],
            capture_output=True, text=True, timeout=20, env=env)
        self.assertEqual(missing.returncode, 3)
        self.assertIn(other, missing.stderr)

    def test_no_master_exits_3(self):
        directory = tempfile.mkdtemp(prefix="ddv-", dir="/tmp")
        self.addCleanup(shutil.rmtree, directory, True)
        missing = self.run_ddvctl(os.path.join(directory, "control.sock"),
                                  "status")
        self.assertEqual(missing.returncode, 3)
        self.assertIn("ddv_master is not running: no control socket at",
                      missing.stderr)
        # A socket left behind by a master that is gone.
        path = os.path.join(directory, "stale.sock")
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(path)
        stale = self.run_ddvctl(path, "reload")
        self.assertEqual(stale.returncode, 3)
        self.assertIn("nothing listens on", stale.stderr)

    def test_busy_master_exits_4(self):
        directory = tempfile.mkdtemp(prefix="ddv-", dir="/tmp")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "control.sock")
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(path)
            s.listen(1)  # connects wait in the backlog; nobody answers
            start = time.monotonic()
            result = self.run_ddvctl(path, "--timeout_ms=300", "status")
            self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(result.returncode, 4)
        self.assertIn("did not answer", result.stderr)

    @unittest.skipIf(os.geteuid() != 0, "needs root to run ddvctl as nobody")
    def test_permission_denied_exits_5(self):
        # nobody must be able to run the binary: a copy outside runfiles.
        directory = tempfile.mkdtemp(prefix="ddv-", dir="/tmp")
        self.addCleanup(shutil.rmtree, directory, True)
        os.chmod(directory, 0o755)
        ddvctl = os.path.join(directory, "ddvctl")
        shutil.copy(self.ddvctl, ddvctl)
        os.chmod(ddvctl, 0o755)
        for mode, why in (("0600", "permission denied on"),
                          ("0666", "the master refused: permission denied "
                                   f"(uid {NOBODY.pw_uid})")):
            ddv = harness.Ddv(config_text=config(mode=mode))
            try:
                open_to_nobody(ddv)
                result = subprocess.run(
                    [ddvctl, f"--control_socket={ddv.control_socket}",
                     "status"], capture_output=True, text=True, timeout=20,
                    user=NOBODY.pw_uid, group=NOBODY.pw_gid, extra_groups=[])
                self.assertEqual(result.returncode, 5, result.stderr)
                self.assertIn(why, result.stderr)
                self.assertIn("control_socket_group", result.stderr)
            finally:
                ddv.stop()


if __name__ == "__main__":
    unittest.main()
