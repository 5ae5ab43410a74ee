#!/bin/bash
# idle_churn.sh: the master's CPU per idle connection it closes at the peek
# deadline, with nothing else running.
#
# usage: benchmarks/load/idle_churn.sh [--rounds N] BIN_DIR [BIN_DIR...]
#
# Each BIN_DIR holds src/ddv_master, src/ddv_hello and src/ddvctl (an opt
# build: `bazel build --config=opt //src:ddv_master //src:ddv_hello
# //src:ddvctl`, then bazel-bin). For every round and every BIN_DIR in turn
# (interleaved): a master on CPU 0 with one http listener and one site,
# `conn_shapes hold PORT 15000 idle` on CPU 1 (15k peers that never send,
# reopened as the master closes them at peek_timeout_ms, 5 s: about 3,000
# timeouts a second); after 10 s of that, the master's utime+stime over
# 10 s divided by its ddv_peek_timeout_total over the same 10 s.
set -euo pipefail

rounds=2
if [[ "${1:-}" == "--rounds" ]]; then rounds=$2; shift 2; fi
if [[ $# -lt 1 ]]; then
  sed -n 4,13p "$0" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=benchmarks/load/standalone_lib.sh
source "$here/standalone_lib.sh"
standalone_init idle-churn
cc -O2 -o "$work/conn_shapes" "$here/conn_shapes.c"

measure() {
  local bin=$1 dir port master
  dir=$(mktemp -d "$work/run.XXXX")
  port=$(free_port)
  start_master "$bin" "$dir" "$port" 1 taskset -c 0 --
  sleep 1
  taskset -c 1 "$work/conn_shapes" hold "$port" 15000 idle 30 a.localhost \
    > "$dir/hold.out" 2>&1 &
  local holder=$!
  pids+=("$holder")
  sleep 10
  local t0 n0 t1 n1
  t0=$(ticks "$master"); n0=$(metric "$bin" "$dir/ctl.sock" ddv_peek_timeout_total)
  sleep 10
  t1=$(ticks "$master"); n1=$(metric "$bin" "$dir/ctl.sock" ddv_peek_timeout_total)
  kill -INT "$holder"; wait "$holder" || true
  kill "$master"; wait "$master" || true
  pids=()  # both waited for: their pids may be reused
  local hz; hz=$(getconf CLK_TCK)
  python3 -c "
t = ($t1 - $t0) / $hz; n = $n1 - $n0
if n <= 0:
    print('$bin: no peer timed out in 10 s: no figure')
else:
    print(f'$bin: {n:.0f} timed out in 10 s, master {t * 1e3:.0f} ms, '
          f'{t * 1e6 / n:.1f} us each')"
}

for r in $(seq "$rounds"); do
  for bin in "$@"; do measure "$bin"; done
done
