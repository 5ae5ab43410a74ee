#!/usr/bin/env bash
# Installs every Debian 12 package that ddv's build, tests and benchmarks need,
# and the npm packages the Node tests need (from committed lockfiles).
# Idempotent: does nothing when all are present. Fails loudly, naming the
# package it could not get.
set -euo pipefail

PACKAGES=(
  # Build.
  bazel-bootstrap g++ liburing-dev libabsl-dev libgoogle-glog-dev
  libgflags-dev libgtest-dev libgmock-dev libbenchmark-dev libssl-dev
  libtomlplusplus-dev nlohmann-json3-dev
  # clang + libFuzzer for --config=fuzz.
  clang libclang-rt-14-dev llvm-14
  # Real clients the tests drive, and the load generator; tmux is the
  # terminal ddvctl top is tested in (tests/control/top_e2e_test.py).
  curl openssl python3 wrk iproute2 procps tmux
  # The L4 tier in front of two ddv instances (tests/deploy).
  haproxy
  # The Debian package (scripts/package.sh, tests/package): dpkg-shlibdeps,
  # lintian, pkg-config for the C worker, systemd-analyze for the units
  # and systemd-socket-activate for tests/systemd, logrotate for its
  # /etc/logrotate.d/ddv.
  dpkg-dev lintian pkg-config systemd logrotate
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

# npm packages, pinned by their committed lockfiles: express for the Node
# tests (node/ddv-worker's devDependencies) and Node 18 and 22 binaries for
# the compatibility tests (third_party/node_versions). `npm ci` runs only
# when the lockfile changed since the last install.
install_npm() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "setup: node and npm are needed (Node.js 18, 20 or 22)" >&2
    exit 1
  fi
  local dir
  for dir in node/ddv-worker third_party/node_versions; do
    local stamp="$dir/node_modules/.ddv-lock"
    if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
      continue
    fi
    echo "setup: npm ci in $dir"
    if ! (cd "$dir" && npm ci --no-audit --no-fund >/tmp/ddv-npm.log 2>&1); then
      echo "setup: npm ci failed in $dir; see /tmp/ddv-npm.log" >&2
      exit 1
    fi
    cp "$dir/package-lock.json" "$stamp"
  done
}
cd "$(dirname "$0")/.."

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  install_npm
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "setup: installing ${missing[*]}"
if ! $SUDO apt-get update -q >/tmp/ddv-apt-update.log 2>&1; then
  echo "setup: apt-get update failed; see /tmp/ddv-apt-update.log" >&2
  exit 1
fi
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >/tmp/ddv-apt-install.log 2>&1; then
  # Retry one by one so the message names the package that failed.
  for pkg in "${missing[@]}"; do
    if ! $SUDO apt-get install -y -q --no-install-recommends "$pkg" \
        >>/tmp/ddv-apt-install.log 2>&1; then
      echo "setup: could not install Debian package '$pkg'" \
           "(see /tmp/ddv-apt-install.log)" >&2
      exit 1
    fi
  done
fi
echo "setup: installed ${#missing[@]} packages"
install_npm
