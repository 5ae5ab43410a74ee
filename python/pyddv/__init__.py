"""Helpers shared by ddv's end-to-end tests and its load benchmark.

Stdlib only, no Bazel assumptions: `net` (free ports, one-shot HTTP and
HTTPS requests), `control` (the master's control socket), `procs` (process
trees, starting and stopping processes by pid, the TCP connections a
process holds), `runfiles` (a test's data files), `load` (bounded keep-alive and new-connection load that
counts every outcome, and a paced, byte-checked download: the chaos
suite's traffic).
"""
