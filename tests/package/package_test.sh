#!/usr/bin/env bash
# The Debian package end to end: builds it (scripts/package.sh), runs
# lintian, extracts it into a throwaway root with `dpkg -x`, and from that
# root: --check_config on the packaged config, a C worker compiled and
# linked with `pkg-config --cflags --libs ddv-worker`, the installed
# ddv_master serving ddv_hello, that C worker and a Node.js app using the
# installed ddv-worker module, ddvctl as ddv.service's ExecReload runs it,
# `ddvctl upgrade` as the postinst runs it, a rotation by the packaged
# logrotate file, a graceful stop, and `systemd-analyze verify` of the unit.
#
# Outside Bazel (packaging needs the --config=opt outputs and dpkg tools):
# scripts/test.sh runs it. Prints one "PASSED NAME" or "FAILED NAME" line
# per check; with --results=DIR it also writes DIR/package-NAME.result for
# scripts/count_results.py. Exit status: 0 when every check passed.
#
#   bash tests/package/package_test.sh [--results=DIR] [--keep]
#
# shellcheck disable=SC2317  # the checks are functions check() calls
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
repo=$(pwd)
here=$repo/tests/package

results=""
keep=0
for arg in "$@"; do
  case "$arg" in
    --results=*) results=${arg#--results=} ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--results=DIR] [--keep]" >&2; exit 2 ;;
  esac
done

tmp=$(mktemp -d)
# Workers may run as nobody (below): they must reach their binaries.
chmod 0755 "$tmp"
root=$tmp/root      # the extracted package
state=$tmp/state    # logs and control socket of the serve check
mkdir -p "$state"
master_pid=""
cleanup() {
  if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
    kill -KILL "$master_pid" 2>/dev/null
  fi
  if [ "$keep" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

failed=0
# check NAME FUNCTION: runs FUNCTION (in this shell: it may set variables
# later checks use), prints its output indented, and records the result.
check() {
  local name=$1 fn=$2 status
  echo "== $name"
  if "$fn" >"$tmp/check.log" 2>&1; then
    status=PASSED
  else
    status=FAILED
    failed=1
  fi
  sed 's/^/  /' "$tmp/check.log"
  echo "$status $name"
  if [ -n "$results" ]; then echo "$status" >"$results/package-$name.result"; fi
}

fail() { echo "FAIL: $*"; return 1; }

# The io_uring of the master and of each ddv_hello pins memory charged to
# RLIMIT_MEMLOCK (docs/design.md); the unit sets LimitMEMLOCK=infinity.
ulimit -l unlimited 2>/dev/null || true

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
libdir=/usr/lib/$multiarch
deb=""

build() {
  bash scripts/package.sh --out="$tmp" || return 1
  deb=$(ls "$tmp"/ddv_*_*.deb) || return 1
  dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'
  dpkg-deb --extract "$deb" "$root"
}

# 0 errors; every tag (warnings, info, pedantic, overrides) is printed.
lint() {
  lintian --fail-on error --display-info --pedantic --show-overrides \
    "$deb" 2>&1 | grep -v 'running with root privileges'
  return "${PIPESTATUS[0]}"
}

contents() {
  local f
  for f in /usr/sbin/ddv_master /usr/bin/ddvctl /usr/lib/ddv/ddv_hello; do
    [ -x "$root$f" ] || fail "$f is not an executable" || return 1
  done
  for f in /etc/ddv/ddv.toml /etc/logrotate.d/ddv \
      /lib/systemd/system/ddv.service \
      /usr/include/ddv/ddv_worker.h "$libdir/libddv_worker.so.0" \
      "$libdir/pkgconfig/ddv-worker.pc" \
      /usr/lib/ddv/node/ddv-worker/index.js \
      /usr/lib/ddv/node/ddv-worker/preload.js \
      /usr/lib/ddv/node/ddv-worker/package.json \
      /usr/share/man/man8/ddv_master.8.gz /usr/share/man/man8/ddvctl.8.gz \
      /usr/share/man/man5/ddv.toml.5.gz /usr/share/doc/ddv/copyright; do
    [ -f "$root$f" ] || fail "$f is missing" || return 1
  done
  [ -d "$root/var/log/ddv" ] || fail "/var/log/ddv is missing" || return 1
  for f in /etc/ddv/ddv.toml /etc/logrotate.d/ddv; do
    dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx "$f" ||
      fail "$f is not a conffile" || return 1
  done
  local depends
  depends=$(dpkg-deb --field "$deb" Depends)
  echo "Depends: $depends"
  for f in libc6 libabsl liburing2 libssl3 adduser; do
    [[ "$depends" == *"$f"* ]] || fail "Depends lacks $f" || return 1
  done

  # The library: its soname, exactly the C header's functions exported, and
  # every symbol it needs found in the libraries it names.
  local lib=$root$libdir/libddv_worker.so.0 soname exported declared
  soname=$(objdump -p "$lib" | sed -n 's/^ *SONAME *//p')
  [ "$soname" = libddv_worker.so.0 ] || fail "soname is '$soname'" || return 1
  exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' |
    sed 's/@.*//' | sort)
  declared=$(grep -o '\bddv_worker_[a-z_]*(' src/worker/ddv_worker.h |
    tr -d '(' | sort -u)
  if [ "$exported" != "$declared" ]; then
    diff <(echo "$declared") <(echo "$exported")
    fail "exports differ from ddv_worker.h (< header, > library)"
    return 1
  fi
  echo "exports the $(echo "$exported" | wc -l) functions of ddv_worker.h"
  # DDV_WORKER_0 never grows: a function added later is named under a newer
  # node of ddv_worker.map (else its ddv_worker_* pattern takes it, and an
  # app using it loads against an older library and fails at the call).
  local first frozen
  first=$(objdump -T "$lib" |
    awk 'NF >= 7 && $(NF-1) == "DDV_WORKER_0" && $NF ~ /^ddv_/ {print $NF}' |
    sort)
  frozen=$(printf '%s\n' ddv_worker_call ddv_worker_destroy ddv_worker_drain \
    ddv_worker_fd ddv_worker_from_environment ddv_worker_index \
    ddv_worker_last_error ddv_worker_master_gone ddv_worker_next_timeout_ms \
    ddv_worker_on_connection ddv_worker_on_master_gone ddv_worker_on_message \
    ddv_worker_on_shutdown ddv_worker_options_init ddv_worker_ping \
    ddv_worker_poll_events ddv_worker_run ddv_worker_send_to_worker \
    ddv_worker_shutdown_requested ddv_worker_site ddv_worker_status \
    ddv_worker_stopped ddv_worker_update_server_conf | sort)
  if [ "$first" != "$frozen" ]; then
    diff <(echo "$frozen") <(echo "$first")
    fail "DDV_WORKER_0 changed (< frozen, > library): name new functions under a new node of ddv_worker.map"
    return 1
  fi
  if ldd -r "$lib" 2>&1 | grep -E 'undefined symbol|not found'; then
    fail "libddv_worker.so.0 leaves symbols unresolved"
    return 1
  fi
}

# The man pages render without a warning from groff.
man_pages() {
  local page out bad=0
  for page in "$root"/usr/share/man/man*/*.gz; do
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z \
      "$page" 2>&1 >/dev/null)
    if [ -n "$out" ]; then echo "$page: $out"; bad=1; fi
  done
  return "$bad"
}

c_worker() {
  local flags
  flags=$(PKG_CONFIG_SYSROOT_DIR=$root \
    PKG_CONFIG_LIBDIR=$root$libdir/pkgconfig \
    pkg-config --cflags --libs ddv-worker) || return 1
  echo "pkg-config --cflags --libs ddv-worker: $flags"
  # shellcheck disable=SC2086  # flags are words
  gcc -std=c11 -Wall -Wextra -Werror -o "$tmp/c_worker" "$here/c_worker.c" \
    $flags || return 1
  readelf -d "$tmp/c_worker" | grep -q 'NEEDED.*\[libddv_worker.so.0\]' ||
    fail "c_worker does not need libddv_worker.so.0" || return 1
}

port=""
config=$tmp/ddv.toml

# The packaged config, moved into the extracted root (installed_config.py),
# plus a site for the C worker and one for a Node app.
check_config() {
  local user=() node
  port=$(python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # As root, the packaged sites' user and group become nobody's: workers
  # switch users as under ddv.service. Otherwise they run as the tester.
  if [ "$(id -u)" -eq 0 ]; then
    site_user=nobody
    user=(--user=nobody --group="$(id -gn nobody)")
  fi
  node=$(command -v node) || fail "node is not installed" || return 1
  cp "$here/node_app.js" "$tmp/node_app.js"
  python3 "$here/installed_config.py" --config="$root/etc/ddv/ddv.toml" \
    --root="$root" --state="$state" --port="$port" "${user[@]}" \
    --add_site="id = \"c\"
command = [\"$tmp/c_worker\"]
hosts = [\"c.localhost\"]
env = { LD_LIBRARY_PATH = \"$root$libdir\" }
log_all = \"$state/c.log\"" \
    --add_site="id = \"node\"
runtime = \"node\"
command = [\"$node\", \"$tmp/node_app.js\"]
hosts = [\"node.localhost\"]
env = { NODE_PATH = \"$root/usr/lib/ddv/node\" }
log_all = \"$state/node.log\"" >"$config" || return 1
  "$root/usr/sbin/ddv_master" --check_config --config="$config"
}

last_body=""
# get HOST EXPECTED: curls the front door until the body starts with
# EXPECTED (workers take a moment to start), at most ~15 s.
get() {
  local body
  for _ in $(seq 1 60); do
    body=$(curl -s --max-time 2 -H "Host: $1" "http://127.0.0.1:$port/")
    if [[ "$body" == "$2"* ]]; then
      echo "$1 -> $body"
      last_body=$body
      return 0
    fi
    sleep 0.25
  done
  fail "$1: expected '$2...', got '$body'"
}

site_user=""  # set by check_config when the sites run as nobody

# The body get() saw last names ddv_hello's pid: as root, the worker must
# run as its site's user, as under ddv.service.
hello_runs_as_site_user() {
  [ -n "$site_user" ] || return 0
  local pid owner
  pid=$(sed -n 's/.* pid=\([0-9]*\) .*/\1/p' <<<"$last_body")
  owner=$(stat -c %U "/proc/$pid")
  echo "ddv_hello pid $pid runs as $owner"
  [ "$owner" = "$site_user" ] || fail "expected $site_user"
}

# What the postinst runs on a package upgrade: the watchdog re-executes the
# binary on disk in place and its new master adopts the running workers, so
# ddv_hello answers from the same pid afterwards.
upgrade_keeps_workers() {
  local before after
  get anything.example site=hello || return 1
  before=$(sed -n 's/.* pid=\([0-9]*\) .*/\1/p' <<<"$last_body")
  "${ctl[@]}" upgrade || return 1
  kill -0 "$master_pid" || fail "the watchdog's pid changed" || return 1
  for _ in $(seq 1 20); do  # either ddv_hello may answer
    get anything.example site=hello >/dev/null || return 1
    after=$(sed -n 's/.* pid=\([0-9]*\) .*/\1/p' <<<"$last_body")
    if [ "$after" = "$before" ]; then
      echo "after the upgrade ddv_hello pid $after still answers"
      return 0
    fi
  done
  fail "ddv_hello pid $before did not answer after the upgrade"
}

# The packaged /etc/logrotate.d/ddv, its paths moved to the test's: a forced
# rotation moves the C worker's log away, its postrotate (ddvctl reopen)
# makes the log writer open a new one, and the next request's line is there.
logrotate_reopens() {
  local conf=$tmp/logrotate.conf
  sed -e "s|/var/log/ddv/|$state/|g" \
    -e "s|/run/ddv/control.sock|$state/control.sock|g" \
    -e "s|ddvctl |$root/usr/bin/ddvctl |" \
    "$root/etc/logrotate.d/ddv" >"$conf"
  grep -q "$state/\*.log" "$conf" && grep -q "$root/usr/bin/ddvctl" "$conf" &&
    grep -q "\-S $state/control.sock" "$conf" ||
    fail "the packaged logrotate file no longer has the paths this rewrites" ||
    return 1
  chmod 0644 "$conf"
  logrotate --force --state="$tmp/logrotate.state" "$conf" || return 1
  [ -s "$state/c.log.1" ] || fail "c.log was not rotated" || return 1
  echo "rotated: $(cd "$state" && echo c.log.*)"
  get c.localhost "c_worker site=c" >/dev/null || return 1
  for _ in $(seq 1 40); do
    if grep -q "c_worker served" "$state/c.log" 2>/dev/null; then
      echo "after ddvctl reopen, the new c.log has: $(tail -n 1 "$state/c.log")"
      return 0
    fi
    sleep 0.05
  done
  fail "no line in the new c.log after the rotation"
}

serve() {
  ctl=("$root/usr/bin/ddvctl" --control_socket="$state/control.sock")
  "$root/usr/sbin/ddv_master" --config="$config" >"$state/master.log" 2>&1 &
  master_pid=$!
  local ok=0
  get anything.example site=hello && hello_runs_as_site_user &&
    get c.localhost "c_worker site=c host=c.localhost" &&
    get node.localhost "node_app site=node host=node.localhost" &&
    "${ctl[@]}" status &&
    "${ctl[@]}" reload &&  # what ddv.service's ExecReload runs
    get c.localhost "c_worker site=c" &&
    upgrade_keeps_workers &&
    logrotate_reopens && ok=1
  # A graceful stop, as systemctl stop sends it to the main process.
  kill -TERM "$master_pid"
  local waited=0
  while kill -0 "$master_pid" 2>/dev/null && [ "$waited" -lt 450 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  local rc=0
  wait "$master_pid" || rc=$?
  master_pid=""
  echo "ddv_master exited with $rc after SIGTERM"
  if [ "$rc" -ne 0 ]; then ok=0; fi
  if pgrep -f "^$tmp/" >/dev/null || pgrep -f "$root/usr/" >/dev/null; then
    pgrep -af "$tmp/"
    fail "processes of the test root outlived the stop"
    ok=0
  fi
  if [ "$ok" -ne 1 ]; then
    tail -n 30 "$state"/*.log
    return 1
  fi
}

# systemd-analyze verify reads the unit under --root; the units it depends
# on (sysinit.target...) come from this machine's systemd. Any message is a
# failure: unknown keys and bad values are only warnings to it.
verify_unit() {
  local vroot=$tmp/verify out
  mkdir -p "$vroot/usr/lib/systemd/system"
  cp -a "$root/." "$vroot/"
  cp -a /lib/systemd/system/. "$vroot/usr/lib/systemd/system/"
  out=$(MANPATH=$vroot/usr/share/man systemd-analyze verify --root="$vroot" \
    /lib/systemd/system/ddv.service 2>&1)
  local rc=$?
  [ -z "$out" ] || echo "$out"
  [ "$rc" -eq 0 ] && [ -z "$out" ] && echo "systemd-analyze verify: clean"
}

# The maintainer scripts, run for real in a private mount namespace whose
# /etc, /var/log, /var/lib/systemd and unit directory are throwaway copies:
# postinst creates the ddv system user, gives /var/log/ddv to root:adm 2750
# and enables the unit; a second configure (an upgrade) changes nothing;
# remove and purge take back what they should. Needs root (unshare, mount);
# skipped otherwise.
maintainer_scripts() {
  local ns=$tmp/ns
  mkdir -p "$ns/control" "$ns/units"
  dpkg-deb --control "$deb" "$ns/control" || return 1
  cp -a /etc "$ns/etc"
  cp -a /lib/systemd/system/. "$ns/units/"
  cp "$root/lib/systemd/system/ddv.service" "$ns/units/"
  # shellcheck disable=SC2016  # the script is bash's, not this shell's
  unshare --mount --propagation private bash -euo pipefail -c '
    ns=$1
    # run SCRIPT ARGS...: as dpkg runs a maintainer script (deb-systemd-helper
    # refuses to run without these).
    run() {
      DPKG_MAINTSCRIPT_PACKAGE=ddv DPKG_MAINTSCRIPT_NAME=$1 \
        DPKG_MAINTSCRIPT_ARCH=$(dpkg --print-architecture) \
        sh -e "$ns/control/$@"
    }
    mount --bind "$ns/etc" /etc
    mount --bind "$ns/units" /lib/systemd/system
    mount -t tmpfs tmpfs /var/log
    mount -t tmpfs tmpfs /var/lib/systemd
    mkdir /var/log/ddv  # as dpkg unpacks it: root:root 0755
    wants=/etc/systemd/system/multi-user.target.wants/ddv.service

    echo "postinst configure (install)"
    run postinst configure ""
    getent passwd ddv
    IFS=: read -r _ _ uid gid _ home shell < <(getent passwd ddv)
    [ "$uid" -lt 1000 ] || { echo "ddv is not a system user"; exit 1; }
    [ "$(getent group ddv | cut -d: -f3)" = "$gid" ] ||
      { echo "no group ddv as its primary group"; exit 1; }
    [ "$home" = /nonexistent ] && [ "$shell" = /usr/sbin/nologin ] ||
      { echo "ddv has a home or a shell"; exit 1; }
    stat -c "/var/log/ddv %U:%G %a" /var/log/ddv
    [ "$(stat -c "%U:%G %a" /var/log/ddv)" = "root:adm 2750" ] ||
      { echo "wrong owner or mode"; exit 1; }
    [ -L "$wants" ] || { echo "ddv.service not enabled"; exit 1; }
    echo "enabled: $wants -> $(readlink "$wants")"

    echo "postinst configure 0.0.1 (upgrade), after the admin disabled it"
    rm "$wants"
    run postinst configure 0.0.1
    [ "$(getent passwd ddv | cut -d: -f3)" = "$uid" ] ||
      { echo "the upgrade changed the user"; exit 1; }
    [ ! -e "$wants" ] || { echo "the upgrade enabled it again"; exit 1; }

    echo "prerm remove, postrm remove, postrm purge"
    run prerm remove
    run postrm remove
    run postrm purge
    [ ! -e /var/log/ddv ] || { echo "purge left /var/log/ddv"; exit 1; }
    getent passwd ddv >/dev/null || { echo "purge removed the user"; exit 1; }
    echo "purged; the ddv user stays"
  ' bash "$ns"
}

check build build
if [ -z "$deb" ]; then
  echo "no package: nothing else to check"
  exit 1
fi
check lintian lint
check contents contents
check man_pages man_pages
if [ "$(id -u)" -eq 0 ] && unshare --mount true 2>/dev/null; then
  check maintainer_scripts maintainer_scripts
else
  echo "== maintainer_scripts: skipped (needs root and mount namespaces)"
fi
check c_worker c_worker
check check_config check_config
check serve serve
check systemd_verify verify_unit
exit "$failed"
