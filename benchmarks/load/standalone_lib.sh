# Shared by the standalone scripts (idle_churn.sh, shards_unpinned.sh):
# sourced, not run. A ddv_master of an opt build with one http listener and
# one site of ddv_hello, alone (--watchdog=false), on a free loopback port.

# standalone_init NAME: sets `work`, a directory under /tmp removed at exit,
# and `pids`, the background processes killed at exit (a script empties it
# once it waited for them: their pids may be reused).
standalone_init() {
  work=$(mktemp -d "/tmp/ddv-$1.XXXXXX")
  pids=()
  trap standalone_cleanup EXIT
}

standalone_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# A port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# utime + stime of process $1, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# metric BIN CONTROL_SOCKET NAME: an unlabelled counter's value.
metric() {
  "$1/src/ddvctl" --control_socket="$2" metrics |
    awk -v n="$3" '$1 == n {print $2}'
}

# start_master BIN DIR PORT PROCESSES [WRAPPER... --] [FLAG...]: writes
# DIR/ddv.toml (control socket DIR/ctl.sock, listener 127.0.0.1:PORT, site
# `a` of PROCESSES ddv_hello on a.localhost), starts the master in the
# background (after WRAPPER, e.g. `taskset -c 0`, when given with its `--`),
# waits for its control socket, sets `master` to its pid and adds it to
# `pids`.
start_master() {
  local bin=$1 dir=$2 port=$3 processes=$4
  shift 4
  local wrapper=()
  if [[ " $* " == *" -- "* ]]; then
    while [[ $1 != "--" ]]; do wrapper+=("$1"); shift; done
    shift
  fi
  cat > "$dir/ddv.toml" <<TOML
[master]
control_socket = "$dir/ctl.sock"

[[listener]]
name = "http"
address = "127.0.0.1:$port"
protocol = "http"

[[site]]
id = "a"
command = ["$bin/src/ddv_hello", "--site=a"]
processes = $processes
hosts = ["a.localhost"]
TOML
  "${wrapper[@]}" "$bin/src/ddv_master" --config="$dir/ddv.toml" \
    --watchdog=false --log_dir="$dir" "$@" > "$dir/master.out" 2>&1 &
  master=$!
  pids+=("$master")
  for _ in $(seq 50); do [[ -S "$dir/ctl.sock" ]] && break; sleep 0.1; done
}
