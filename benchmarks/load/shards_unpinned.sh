#!/bin/bash
# shards_unpinned.sh: the master's CPU per new connection with one loop and
# with two, nothing pinned: the master's threads, its two workers and wrk
# share every CPU, so two loops can run at once (run_load.py pins every
# server process to one CPU, where two loops can only take turns).
#
# usage: benchmarks/load/shards_unpinned.sh [--rounds N] BIN_DIR
#
# BIN_DIR holds src/ddv_master, src/ddv_hello and src/ddvctl (an opt build).
# Each round runs --shards=1 and --shards=2 (order alternating): a master
# with one http listener and one site of 2 ddv_hello processes, 2 s of
# `wrk -t2 -c100 ... Connection: close` unmeasured, then 8 s measured; the
# master's utime+stime over the 8 s divided by its
# ddv_connections_handed_off_total over them, and the connections per
# handoff message (ddv_handoff_batches_total).
set -euo pipefail

rounds=3
if [[ "${1:-}" == "--rounds" ]]; then rounds=$2; shift 2; fi
if [[ $# -ne 1 ]]; then
  sed -n 7,15p "$0" >&2
  exit 2
fi
bin=$1
# shellcheck source=benchmarks/load/standalone_lib.sh
source "$(cd "$(dirname "$0")" && pwd)/standalone_lib.sh"
standalone_init shards-unpinned

measure() {
  local shards=$1 dir port master
  dir=$(mktemp -d "$work/run.XXXX")
  port=$(free_port)
  start_master "$bin" "$dir" "$port" 2 --shards="$shards"
  sleep 1.5
  local url="http://127.0.0.1:$port/"
  local hdr=(-H 'Host: a.localhost' -H 'Connection: close')
  wrk -t2 -c100 -d2s "${hdr[@]}" "$url" > /dev/null
  local t0 h0 b0 t1 h1 b1 rps
  t0=$(ticks "$master")
  h0=$(metric "$bin" "$dir/ctl.sock" ddv_connections_handed_off_total)
  b0=$(metric "$bin" "$dir/ctl.sock" ddv_handoff_batches_total)
  rps=$(wrk -t2 -c100 -d8s "${hdr[@]}" "$url" | awk '/Requests\/sec/ {print $2}')
  t1=$(ticks "$master")
  h1=$(metric "$bin" "$dir/ctl.sock" ddv_connections_handed_off_total)
  b1=$(metric "$bin" "$dir/ctl.sock" ddv_handoff_batches_total)
  kill "$master"; wait "$master" || true
  pids=()  # waited for: its pid may be reused
  local hz; hz=$(getconf CLK_TCK)
  python3 -c "
h = $h1 - $h0; b = $b1 - $b0; t = ($t1 - $t0) / $hz
print(f'--shards=$shards: {float(\"$rps\"):.0f} req/s, master '
      f'{t * 1e6 / max(h, 1):.2f} us per connection, '
      f'{h / max(b, 1):.2f} connections per handoff message')"
}

for r in $(seq "$rounds"); do
  if (( r % 2 )); then measure 1; measure 2; else measure 2; measure 1; fi
done
