#!/usr/bin/env bash
# systemd-analyze verify (Debian's systemd package, scripts/setup.sh) on
# package/ddv.service and package/ddv.socket, laid out as installed:
# ddv_master, ddvctl and the man pages the units name under a throwaway
# root, this machine's own units beside them (sysinit.target...). Any
# message fails it: unknown keys and bad values are only warnings to
# systemd. A deliberately broken copy must fail, so the check can fail.
set -uo pipefail

runfiles=${TEST_SRCDIR:-$PWD/..}/${TEST_WORKSPACE:-ddv}
tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/units.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze is missing: bash scripts/setup.sh installs systemd" >&2
  exit 1
fi

# root DIR SERVICE SOCKET: the units and what they name under DIR.
root() {
  local dir=$1
  mkdir -p "$dir/usr/lib/systemd/system" "$dir/lib/systemd/system" \
    "$dir/etc/systemd/system" "$dir/usr/sbin" "$dir/usr/bin" \
    "$dir/usr/share/man/man5" "$dir/usr/share/man/man8"
  cp -a /lib/systemd/system/. "$dir/usr/lib/systemd/system/"
  cp "$2" "$dir/lib/systemd/system/ddv.service"
  # Where docs/package.md tells the admin to put the example.
  cp "$3" "$dir/etc/systemd/system/ddv.socket"
  install -m 0755 "$runfiles/src/ddv_master" "$dir/usr/sbin/ddv_master"
  install -m 0755 "$runfiles/src/ddvctl" "$dir/usr/bin/ddvctl"
  gzip -9n <"$runfiles/package/man/ddv_master.8" \
    >"$dir/usr/share/man/man8/ddv_master.8.gz"
  gzip -9n <"$runfiles/package/man/ddvctl.8" \
    >"$dir/usr/share/man/man8/ddvctl.8.gz"
  gzip -9n <"$runfiles/package/man/ddv.toml.5" \
    >"$dir/usr/share/man/man5/ddv.toml.5.gz"
}

verify() {
  MANPATH=$1/usr/share/man systemd-analyze verify --root="$1" \
    /lib/systemd/system/ddv.service /etc/systemd/system/ddv.socket 2>&1
}

service=$runfiles/package/ddv.service
socket=$runfiles/package/ddv.socket
failed=0

root "$tmp/good" "$service" "$socket"
out=$(verify "$tmp/good")
rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
  echo "FAIL: systemd-analyze verify (rc $rc):"
  echo "$out"
  failed=1
else
  echo "ok: systemd-analyze verify: ddv.service and ddv.socket are clean"
fi

# What the docs promise of the units.
grep -qx 'Type=notify' "$service" || { echo "FAIL: not Type=notify"; failed=1; }
grep -qx 'NotifyAccess=main' "$service" ||
  { echo "FAIL: NotifyAccess is not main"; failed=1; }
grep -qx 'WatchdogSec=30s' "$service" || { echo "FAIL: WatchdogSec"; failed=1; }
grep -qx 'FileDescriptorName=http' "$socket" ||
  { echo "FAIL: the socket is not named like the packaged listener"; failed=1; }

# The control: the same check must fail on a broken unit.
sed -e 's/^WatchdogSec=30s/WatchdogSec=soon/' "$service" >"$tmp/broken.service"
sed -e 's/^ListenStream=.*/ListenStream=nowhere:x/' "$socket" >"$tmp/broken.socket"
root "$tmp/broken" "$tmp/broken.service" "$tmp/broken.socket"
out=$(verify "$tmp/broken")
if [[ "$out" == *"Failed to parse sec value"* &&
      "$out" == *"Failed to parse address value"* ]]; then
  echo "ok: a broken unit fails the same check"
else
  echo "FAIL: broken units passed systemd-analyze verify: $out"
  failed=1
fi
exit "$failed"
