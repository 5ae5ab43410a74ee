"""chaos_test: one scenario of the chaos suite (README.md)."""

def chaos_test(name, data = []):
    """A py_test of `name`.py on the chaos library.

    Tagged "cpu:2", so that no other test shares the machine with its
    load, and "no-sandbox": the test raises its CPU priority, its own and
    its session's (chaos.raise_priority), so that builds sharing the
    machine do not decide its time bounds, which Bazel's sandbox does not
    allow; some scenarios also run ddvctl as another user (setgroups(),
    denied there too).
    """
    native.py_test(
        name = name,
        size = "medium",
        srcs = [name + ".py"],
        data = data,
        python_version = "PY3",
        tags = [
            "cpu:2",
            "no-sandbox",
        ],
        deps = [":chaos"],
    )
