#!/usr/bin/env bash
# Builds ddv's Debian package: `bazel build --config=opt`, then lays out the
# tree docs/package.md describes and makes ddv_<version>_<arch>.deb with
# dpkg-deb. Dependencies come from the shared libraries the binaries link
# (dpkg-shlibdeps). Needs what scripts/setup.sh installs; runs as any user.
#
#   bash scripts/package.sh [--out=DIR]    (DIR: the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

out_dir=$repo
for arg in "$@"; do
  case "$arg" in
    --out=*) out_dir=${arg#--out=} ;;
    *) echo "usage: bash scripts/package.sh [--out=DIR]" >&2; exit 2 ;;
  esac
done

pkg=$repo/package
version=$(dpkg-parsechangelog -l "$pkg/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
soversion=0  # libddv_worker.so.0: -soname in src/worker/BUILD.bazel
deb=$out_dir/ddv_${version}_${arch}.deb

targets=(//src:ddv_master //src:ddvctl //src:ddv_hello
         //src/worker:libddv_worker.so)
echo "package: bazel build --config=opt ${targets[*]}"
bazel build --config=opt "${targets[@]}"
bin=$(bazel info --config=opt bazel-bin 2>/dev/null)

# Every timestamp in the package is the changelog's, not the build's
# (dpkg-deb honours it; gzip -n stores none).
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$pkg/debian/changelog" -S Timestamp)
export SOURCE_DATE_EPOCH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Laid out as a source package's debian/ddv, where dpkg-shlibdeps expects
# the files it reads.
root=$work/debian/ddv
umask 022

# put MODE SOURCE DEST: one file into the tree, parent directories made.
put() { install -D -m "$1" "$2" "$root$3"; }

# Programs and the library, stripped as dh_strip does (no debug package yet).
put 0755 "$bin/src/ddv_master" /usr/sbin/ddv_master
put 0755 "$bin/src/ddvctl" /usr/bin/ddvctl
put 0755 "$bin/src/ddv_hello" /usr/lib/ddv/ddv_hello
strip --remove-section=.comment --remove-section=.note \
  "$root/usr/sbin/ddv_master" "$root/usr/bin/ddvctl" \
  "$root/usr/lib/ddv/ddv_hello"
libdir=/usr/lib/$multiarch
lib=libddv_worker.so.$soversion  # the soname, a real file (as libssl.so.3)
put 0644 "$bin/src/worker/libddv_worker.so" "$libdir/$lib"
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
  "$root$libdir/$lib"
# The link -lddv_worker finds (pkg-config's Libs).
ln -s "$lib" "$root$libdir/libddv_worker.so"
put 0644 src/worker/ddv_worker.h /usr/include/ddv/ddv_worker.h
mkdir -p "$root$libdir/pkgconfig"
sed -e "s|@VERSION@|$version|" -e "s|@MULTIARCH@|$multiarch|" \
  "$pkg/ddv-worker.pc.in" >"$root$libdir/pkgconfig/ddv-worker.pc"

# The Node.js module: the files its package.json publishes.
node_dir=/usr/lib/ddv/node/ddv-worker
put 0644 node/ddv-worker/package.json "$node_dir/package.json"
put 0644 node/ddv-worker/index.js "$node_dir/index.js"
# ddv_master's --node_preload default: every Node worker loads it.
put 0644 node/ddv-worker/preload.js "$node_dir/preload.js"
for f in node/ddv-worker/lib/*.js; do
  put 0644 "$f" "$node_dir/lib/$(basename "$f")"
done

# Config, service, run-time directories.
put 0644 "$pkg/ddv.toml" /etc/ddv/ddv.toml
put 0644 "$pkg/logrotate" /etc/logrotate.d/ddv
put 0644 "$pkg/ddv.service" /lib/systemd/system/ddv.service
# Socket activation is the admin's choice: an example to copy, not enabled.
put 0644 "$pkg/ddv.socket" /usr/share/doc/ddv/examples/ddv.socket
put 0644 "$repo/contrib/grafana/ddv.json" /usr/share/doc/ddv/examples/grafana-ddv.json
mkdir -p "$root/var/log/ddv"  # owner and mode: postinst

# Documentation.
for page in "$pkg"/man/*.[1-8]; do
  name=$(basename "$page")
  section=${name##*.}
  mkdir -p "$root/usr/share/man/man$section"
  gzip -9n <"$page" >"$root/usr/share/man/man$section/$name.gz"
done
doc=/usr/share/doc/ddv
put 0644 "$pkg/debian/copyright" "$doc/copyright"
mkdir -p "$root$doc"
gzip -9n <"$pkg/debian/changelog" >"$root$doc/changelog.gz"
put 0644 README.md "$doc/README.md"
for f in docs/*.md; do put 0644 "$f" "$doc/$f"; done
put 0644 node/ddv-worker/README.md "$doc/node/ddv-worker/README.md"
put 0644 "$pkg/debian/lintian-overrides" /usr/share/lintian/overrides/ddv

# Control files. dpkg-shlibdeps reads the source package's debian/control;
# its output is the Depends of what the binaries and the library link. It
# finds the package's root by its DEBIAN directory.
mkdir -p "$root/DEBIAN"
printf 'Source: ddv\n\nPackage: ddv\nArchitecture: any\n' \
  >"$work/debian/control"
shlibs_depends=$(cd "$work" && dpkg-shlibdeps -O \
  debian/ddv/usr/sbin/ddv_master debian/ddv/usr/bin/ddvctl \
  debian/ddv/usr/lib/ddv/ddv_hello "debian/ddv$libdir/$lib" |
  sed -n 's/^shlibs:Depends=//p')
if [ -z "$shlibs_depends" ]; then
  echo "package: dpkg-shlibdeps found no dependencies" >&2
  exit 1
fi
installed_size=$(du -sk --apparent-size "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" \
  -e "s|@INSTALLED_SIZE@|$installed_size|" \
  -e "s|@SHLIBS_DEPENDS@|$shlibs_depends|" \
  "$pkg/debian/control" >"$root/DEBIAN/control"
sed -e "s|@VERSION@|$version|" -e "s|@SOVERSION@|$soversion|" \
  "$pkg/debian/shlibs" >"$root/DEBIAN/shlibs"
install -m 0644 "$pkg/debian/conffiles" "$pkg/debian/triggers" "$root/DEBIAN/"
install -m 0755 "$pkg/debian/postinst" "$pkg/debian/prerm" \
  "$pkg/debian/postrm" "$root/DEBIAN/"
# dh_md5sums leaves conffiles out: dpkg keeps their sums itself.
(cd "$root" && find . \( -path ./DEBIAN -o -path ./etc \) -prune -o -type f -printf '%P\0' |
  LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

# Every file's time is the changelog's.
find "$root" -newermt "@$SOURCE_DATE_EPOCH" -print0 |
  xargs -0 touch --no-dereference --date="@$SOURCE_DATE_EPOCH"
mkdir -p "$out_dir"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "package: $deb"
