"""chaos_test: one scenario of the chaos suite (README.md)."""

def chaos_test(name, data = [], shards = 0, src = None):
    """A py_test of `name`.py (or `src`) on the chaos library.

    `shards`: the front door runs with --shards=N (docs/shards.md), set
    through DDV_CHAOS_SHARDS, so that one scenario file tests both.

    Tagged "cpu:2", so that no other test shares the machine with its
    load, and "no-sandbox": in Bazel's sandbox the front door's io_uring
    rings lose CAP_IPC_LOCK and are charged to the one RLIMIT_MEMLOCK
    budget of every root process on the machine (docs/design.md, "Kernel
    facts"), which other tests exhaust at times (ENOMEM at ring set-up);
    some scenarios also run ddvctl as another user (setgroups(), which the
    sandbox denies).
    """
    src = src or name + ".py"
    native.py_test(
        name = name,
        size = "medium",
        srcs = [src],
        main = src,
        env = {"DDV_CHAOS_SHARDS": str(shards)} if shards else {},
        data = data,
        python_version = "PY3",
        tags = [
            "cpu:2",
            "no-sandbox",
        ],
        deps = [":chaos"],
    )
