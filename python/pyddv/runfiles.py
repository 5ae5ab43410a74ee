"""Files a Bazel test reads from its runfiles (its `data`), by their path in
the repository; outside Bazel, the same path from the working directory."""
import os

RUNFILES = os.environ.get("TEST_SRCDIR", "")
WORKSPACE = os.environ.get("TEST_WORKSPACE", "ddv")


def runfile(path):
    """The absolute path of the repository's `path` in the runfiles, or as
    given when that exists; FileNotFoundError when neither does."""
    for candidate in (os.path.join(RUNFILES, WORKSPACE, path), path):
        if os.path.exists(candidate):
            return os.path.abspath(candidate)
    raise FileNotFoundError(path)
