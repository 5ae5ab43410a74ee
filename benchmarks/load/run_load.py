#!/usr/bin/env python3
"""Side-by-side load benchmark: ddv (through the master) vs direct vs proxies.

One invocation runs every path (direct ddv_hello, ddv_master, HAProxy,
nginx; with --baseline_bin_dir also ddv-before, a second build of ddv) under
the same workloads (wrk keep-alive and Connection: close, full TLS
handshakes with tls_client.c), every server process pinned to one CPU and
the client to another, and reports throughput and server CPU per request.

This is the entry point only; the code is the ddvbench package next to it,
the server configs are in templates/, and the process/port/control-socket
helpers come from python/pyddv (shared with tests/master/harness.py).
Stdlib only (plus cc and the OpenSSL headers for tls_client.c). See
benchmarks/load/README.md.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                   "python")]

from ddvbench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
