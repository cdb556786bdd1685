#!/usr/bin/env bash
# fetch-kernel.sh [CACHE_DIR]: the guest kernel of the Soft-RoCE lab, fetched by name at test time.
#
# Picks the newest linux-image-6.1.0-NN-amd64 (Debian's stock, signed kernel; not cloud, rt, dbg or
# unsigned) that apt-cache knows, `apt-get download`s it (never installs it) and `dpkg -x`es it into
# CACHE_DIR/linux-image-6.1.0-NN-amd64/. Prints that directory (it holds boot/vmlinuz-KVER and
# lib/modules/KVER) on stdout; messages go to stderr.
#
# CACHE_DIR defaults to $HYMIG_LAB_CACHE, else $HYMIG_BUILD_DIR/lab-cache. A complete unpacked
# kernel already in the cache is reused; when the newest is not cached and cannot be downloaded, an
# older cached one is used. HYMIG_LAB_KERNEL_PKG=linux-image-6.1.0-NN-amd64 pins the package.
# Exit 0: printed a kernel dir; 77: no kernel can be had (no apt, no mirror) — the reason on stderr.
set -euo pipefail

say() { printf 'fetch-kernel: %s\n' "$*" >&2; }
skip() { say "SKIP: $*"; exit 77; }

cache=${1:-${HYMIG_LAB_CACHE:-}}
if [ -z "$cache" ]; then
  [ -n "${HYMIG_BUILD_DIR:-}" ] || { say "usage: $0 CACHE_DIR (or set HYMIG_LAB_CACHE or HYMIG_BUILD_DIR)"; exit 2; }
  cache=$HYMIG_BUILD_DIR/lab-cache
fi
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# One fetch at a time per cache (two ctest invocations may share it).
exec {lock_fd}>"$cache/.fetch.lock"
flock -w 900 "$lock_fd" || skip "could not lock $cache/.fetch.lock within 900 s"

pkg_re='^linux-image-6\.1\.0-[0-9]+-amd64$'

# A cached kernel is complete when its .complete marker exists (written after dpkg -x succeeded).
cached_dir() { [ -f "$cache/$1/.complete" ] && printf '%s\n' "$cache/$1"; }
newest_cached() {
  local d
  d=$(find "$cache" -mindepth 2 -maxdepth 2 -name .complete -printf '%h\n' 2>/dev/null |
    xargs -r -n1 basename | grep -E "$pkg_re" | sort -V | tail -n1)
  [ -n "$d" ] && printf '%s\n' "$cache/$d"
}

want=${HYMIG_LAB_KERNEL_PKG:-}
if [ -z "$want" ]; then
  newest_known() { apt-cache pkgnames linux-image-6.1.0- 2>/dev/null | grep -E "$pkg_re" | sort -V | tail -n1 || true; }
  if command -v apt-cache >/dev/null; then
    want=$(newest_known)
    # Package lists never fetched (a fresh container): fetch them once, as bootstrap.sh would.
    if [ -z "$want" ] && [ "$(id -u)" -eq 0 ] && [ -z "$(newest_cached)" ]; then
      say "apt-cache knows no linux-image-6.1.0-NN-amd64: apt-get update"
      timeout 300 apt-get update -qq >&2 || true
      want=$(newest_known)
    fi
  fi
  if [ -z "$want" ]; then
    d=$(newest_cached) && { say "apt-cache knows no linux-image-6.1.0-NN-amd64; using the cached $(basename "$d")"; echo "$d"; exit 0; }
    command -v apt-cache >/dev/null || skip "no apt-cache on this host and no kernel cached in $cache: the lab needs Debian's linux-image-6.1.0-NN-amd64"
    skip "apt-cache knows no linux-image-6.1.0-NN-amd64 package (run apt-get update?) and none is cached in $cache"
  fi
fi
[[ $want =~ $pkg_re ]] || { say "HYMIG_LAB_KERNEL_PKG=$want is not a linux-image-6.1.0-NN-amd64 name"; exit 2; }

if d=$(cached_dir "$want"); then
  echo "$d"
  exit 0
fi

fallback() {
  local d
  d=$(newest_cached) && { say "$1; using the cached $(basename "$d") instead"; echo "$d"; exit 0; }
  skip "$1, and no kernel is cached in $cache"
}
command -v apt-get >/dev/null || fallback "no apt-get to download $want"
command -v dpkg >/dev/null || fallback "no dpkg to unpack $want"

tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
say "downloading $want (apt-get download; it is unpacked, not installed)"
if ! (cd "$tmp" && timeout 600 apt-get download -q "$want") >"$tmp/apt.log" 2>&1; then
  fallback "apt-get download $want failed ($(grep -E '^(E|W|Err):' "$tmp/apt.log" | head -n2 | tr '\n' ' ' || true))"
fi
deb=$(find "$tmp" -maxdepth 1 -name "${want}_*.deb" | head -n1)
[ -n "$deb" ] || fallback "apt-get download $want left no .deb"
mkdir -p "$tmp/root"
dpkg -x "$deb" "$tmp/root" || fallback "dpkg -x $(basename "$deb") failed"
rm -f -- "$deb"
kver=${want#linux-image-}
[ -f "$tmp/root/boot/vmlinuz-$kver" ] || fallback "$want has no boot/vmlinuz-$kver"
[ -d "$tmp/root/lib/modules/$kver" ] || [ -d "$tmp/root/usr/lib/modules/$kver" ] || fallback "$want has no lib/modules/$kver"
basename "$deb" >"$tmp/root/.complete"
rm -rf -- "${cache:?}/$want"
mv "$tmp/root" "$cache/$want"
say "unpacked $want into $cache/$want"
echo "$cache/$want"
