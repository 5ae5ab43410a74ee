#!/usr/bin/env bash
# Installs every Debian 12 package that ddv's build, tests and benchmarks need.
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
  # Real clients the tests drive, and the load generator.
  curl openssl python3 wrk iproute2 procps
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
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
