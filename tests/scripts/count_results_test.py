"""scripts/count_results.py counts what a test run did, from the files Bazel
and scripts/test.sh leave: GoogleTest cases from test.xml, Python unittest
cases from test.log's last summary, a target without either once, and the
fuzz and package .result files."""
import importlib.util
import pathlib
import tempfile
import unittest

from pyddv.runfiles import runfile

def load_script():
    spec = importlib.util.spec_from_file_location(
        "count_results", runfile("scripts/count_results.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


count_results = load_script()

GTEST_XML = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="3">
  <testsuite name="RouteTest" tests="3">
    <testcase name="Exact" status="run" result="completed" />
    <testcase name="Wildcard" status="run" result="completed">
      <failure message="boom" />
    </testcase>
    <testcase name="Disabled" status="notrun" result="suppressed" />
  </testsuite>
</testsuites>
"""

# What Bazel writes for a test that wrote no XML of its own.
BAZEL_XML = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="{name}" tests="1" failures="0" errors="0">
    <testcase name="{name}" status="run" duration="4" time="4"></testcase>
  </testsuite>
</testsuites>
"""


class CountResultsTest(unittest.TestCase):
    def setUp(self):
        self.dir = pathlib.Path(tempfile.mkdtemp())
        self.testlogs = self.dir / "testlogs"
        self.lines = []

    def target(self, name, status, xml=None, log=None):
        """A target in the step's console log, with its test.xml/test.log."""
        self.lines.append(f"//tests/x:{name}    {status} in 1.0s")
        d = self.testlogs / "tests" / "x" / name
        d.mkdir(parents=True)
        if xml is not None:
            (d / "test.xml").write_text(xml.format(name=f"tests/x/{name}"))
        if log is not None:
            (d / "test.log").write_text(log)

    def count(self):
        results = self.dir / "results"
        results.mkdir(exist_ok=True)
        (results / "1-all.bazel.log").write_text(
            "INFO: ...\n" + "\n".join(self.lines) + "\n")
        (results / "1-all.testlogs").write_text(str(self.testlogs) + "\n")
        return results

    def run_count(self, results):
        import contextlib
        import io
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = count_results.main(str(results))
        return out.getvalue().strip(), status

    def test_gtest_cases_come_from_the_xml(self):
        self.target("route_test", "FAILED", xml=GTEST_XML)
        self.assertEqual(self.run_count(self.count()), ("1 passed, 1 failed", 1))

    def test_unittest_cases_come_from_the_last_summary(self):
        # A test that runs an inner suite prints an inner summary first.
        self.target("py_test", "PASSED", xml=BAZEL_XML, log=(
            "Ran 7 tests in 2.1s\n\nOK\n...\n"
            "----------------------------------------------------------------\n"
            "Ran 11 tests in 46.079s\n\nOK (skipped=2)\n"
            "1795.1: linux-sandbox.cc:233: child exited normally\n"))
        self.assertEqual(self.run_count(self.count()), ("9 passed, 0 failed", 0))

    def test_failed_unittest_cases_are_counted_each(self):
        self.target("py_test", "FAILED", xml=BAZEL_XML, log=(
            "Ran 5 tests in 1.0s\n\nFAILED (failures=1, errors=1)\n"))
        self.assertEqual(self.run_count(self.count()), ("3 passed, 2 failed", 1))

    def test_a_target_without_cases_counts_once(self):
        self.target("sh_test", "PASSED", xml=BAZEL_XML, log="all good\n")
        self.target("crashed", "FAILED")
        self.assertEqual(self.run_count(self.count()), ("1 passed, 1 failed", 1))

    def test_result_files_count_once_each(self):
        results = self.count()
        (results / "fuzz-a.result").write_text("PASSED\n")
        (results / "package-b.result").write_text("FAILED\n")
        self.assertEqual(self.run_count(results), ("1 passed, 1 failed", 1))

    def test_nothing_run_is_a_failure(self):
        self.assertEqual(self.run_count(self.count()), ("0 passed, 0 failed", 1))


if __name__ == "__main__":
    unittest.main()
