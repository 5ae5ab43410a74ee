"""The side-by-side load benchmark behind benchmarks/load/run_load.py.

  common    names shared by all: paths, workloads, targets, the run context
  cpu       CPU accounting from /proc (process trees, per-CPU busy time)
  servers   each path's server set-up, configs from ../templates/
  loadgen   load generators: wrk, tls_client.c, the accept+close floor
  measure   one measured run: load + CPU before/after + master counters
  perf      perf record on the ddv master during an extra run
  tables    medians, the Markdown tables and the verdicts
  report    the RESULTS.md section text, and writing it into RESULTS.md
  cli       the command line and the round loop

Process, port and control-socket helpers come from python/pyddv, shared with
the end-to-end tests.
"""
