#!/usr/bin/env python3
"""Counts test results for scripts/test.sh and prints "N passed, M failed".

Each bazel step left a console log (NAME.bazel.log) and the path of its
testlogs (NAME.testlogs). A test target counts its GoogleTest cases from its
test.xml; a Python unittest target (whose XML Bazel writes with one case, the
target) counts the cases of its last "Ran N tests" summary in test.log; a
target with neither (it failed to build or crashed before writing one)
counts once. Each fuzz run left a .result file. Exit status: 0 only when
nothing failed and something ran.
"""
import pathlib
import re
import sys
import xml.etree.ElementTree as ET

STATUS_LINE = re.compile(
    r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|"
    r"FAILED TO BUILD|INCOMPLETE|REMOTE FAILURE)\b")


def count_xml(xml_path):
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    passed = failed = 0
    for suite in suites:
        for case in suite.findall("testcase"):
            if case.get("status") == "notrun" or case.find("skipped") is not None:
                continue
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            else:
                passed += 1
    return passed, failed


UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in ", re.M)
UNITTEST_END = re.compile(r"^(OK|FAILED)(?: \((.*)\))?$", re.M)


def count_unittest_log(log_path):
    """(passed, failed) from the last unittest summary in `log_path`, or None
    when it has none. Skipped cases count as neither."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    ran = list(UNITTEST_RAN.finditer(text))
    if not ran:
        return None
    end = UNITTEST_END.search(text, ran[-1].end())
    if end is None:
        return None
    counts = dict(part.split("=") for part in (end.group(2) or "").split(", ")
                  if "=" in part)
    failed = int(counts.get("failures", 0)) + int(counts.get("errors", 0))
    if end.group(1) == "FAILED" and failed == 0:
        failed = 1
    skipped = int(counts.get("skipped", 0))
    return max(int(ran[-1].group(1)) - failed - skipped, 0), failed


def main(results_dir):
    results = pathlib.Path(results_dir)
    passed = failed = 0
    for log in sorted(results.glob("*.bazel.log")):
        testlogs_file = log.with_name(log.name.replace(".bazel.log", ".testlogs"))
        testlogs = pathlib.Path(testlogs_file.read_text().strip()) \
            if testlogs_file.exists() else None
        seen = set()
        for line in log.read_text(errors="replace").splitlines():
            m = STATUS_LINE.match(line)
            if not m or m.group(1) in seen:
                continue
            target, status = m.group(1), m.group(2)
            seen.add(target)
            pkg, _, name = target[2:].partition(":")
            xml = testlogs / pkg / name / "test.xml" if testlogs else None
            p = f = 0
            if xml is not None and xml.exists():
                try:
                    p, f = count_xml(xml)
                except ET.ParseError:
                    pass
            if xml is not None and p + f <= 1:
                # Bazel's own XML for a test that wrote none: one case.
                cases = count_unittest_log(xml.with_name("test.log"))
                if cases is not None:
                    p, f = cases
            if status != "PASSED" and f == 0:
                f = 1  # the target failed outside any test case
            if p == 0 and f == 0:
                p = 1  # a passing target with no test cases in its XML
            passed += p
            failed += f
    for result in sorted(results.glob("*.result")):
        if result.read_text().strip() == "PASSED":
            passed += 1
        else:
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
