"""Node 18 and 22 as ddv workers (Node 20 is the machine's own, covered by
node_e2e_test): the same end-to-end cases that depend on Node's cluster
code, run with each version's binary (installed by scripts/setup.sh from
third_party/node_versions' lockfile). Also runs the ddv-worker package's own
tests (`node --test`) with every version."""
import glob
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import node_e2e_test  # noqa: E402
from node_e2e_test import PACKAGE, repo_path  # noqa: E402

VERSIONS_DIR = os.path.join(repo_path("third_party/node_versions/package.json"),
                            "node_modules")
BINARIES = {
    "18": os.path.join(VERSIONS_DIR, "node18", "bin", "node"),
    "22": os.path.join(VERSIONS_DIR, "node22", "bin", "node"),
    "20 (PATH)": node_e2e_test.NODE,
}
CASES = [
    "test_unmodified_http_app_serves_through_the_master",
    "test_keep_alive_and_pipelined_requests",
    "test_express_app",
    "test_https_app_terminates_tls_itself",
    "test_update_server_conf_accepted_and_refused",
    "test_reload_replaces_node_workers_under_load_without_a_failure",
    # The package fills Node's address caches: private, so on every version.
    "test_proxy_header_reaches_node_apps_as_the_socket_address",
]


def failures(tap):
    """Each failed subtest of node --test's TAP output with its details (the
    indented YAML block after its "not ok" line), or the tail of the output
    when none is found."""
    blocks = re.findall(r"^ *not ok .*?(?=^ *(?:ok|not ok) |\Z)", tap,
                        re.M | re.S)
    return "\n".join(b[:3000] for b in blocks) or tap[-5000:]


class NodeVersionsTest(unittest.TestCase):
    def test_binaries_are_installed_and_report_their_version(self):
        for major in ("18", "22"):
            out = subprocess.run([BINARIES[major], "--version"],
                                 capture_output=True, text=True, check=True)
            self.assertTrue(out.stdout.startswith(f"v{major}."), out.stdout)

    def test_master_cases_on_each_version(self):
        for major in ("18", "22"):
            node_e2e_test.NODE = BINARIES[major]
            suite = unittest.TestSuite(
                node_e2e_test.NodeSiteTest(name) for name in CASES)
            result = unittest.TextTestRunner(verbosity=0).run(suite)
            self.assertTrue(result.wasSuccessful(),
                            f"Node {major}: {result.failures + result.errors}")

    def test_ddv_worker_package_tests_on_each_version(self):
        tests = sorted(glob.glob(os.path.join(PACKAGE, "test", "*.test.js")))
        self.assertTrue(tests)
        for major, binary in BINARIES.items():
            out = subprocess.run([binary, "--test", *tests], cwd=PACKAGE,
                                 capture_output=True, text=True, timeout=300)
            passed = re.search(r"^# pass (\d+)", out.stdout, re.M)
            failed = re.search(r"^# fail (\d+)", out.stdout, re.M)
            self.assertIsNotNone(passed, f"Node {major}:\n{out.stdout[-3000:]}")
            self.assertGreater(int(passed.group(1)), 20, f"Node {major}")
            self.assertEqual(int(failed.group(1)), 0,
                             f"Node {major}:\n{failures(out.stdout)}")


if __name__ == "__main__":
    unittest.main()
