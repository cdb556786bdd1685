#!/usr/bin/env bash
# The core without the optional parts: hymig configured with HYMIG_WITH_VERBS=OFF and
# HYMIG_WITH_LIBVIRT=OFF in build/minimal builds, migrates a synthetic image over UDP+TCP on
# loopback (verified, committed), sees no RDMA, and refuses libvirt domains (migrate --domain,
# serve --libvirt) as usage errors (exit 2) naming the option.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "minimal-build: hymig without rdma-core and libvirt (build/minimal)"
cmake -S . -B build/minimal -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHYMIG_WITH_VERBS=OFF \
  -DHYMIG_WITH_LIBVIRT=OFF >/dev/null
cmake --build build/minimal --target hymig -j"$(nproc)"
HYMIG=build/minimal/cli/hymig
fail() {
  echo "minimal-build: $*" >&2
  exit 1
}
"$HYMIG" --version
if ldd "$HYMIG" | grep -E 'libibverbs|librdmacm|libvirt'; then fail "the binary still links the libraries above"; fi
"$HYMIG" probe --json | grep -q '"rdma_ud": false' || fail "hymig probe --json does not report rdma_ud false"

work=$(mktemp -d)
serve_pid=""
cleanup() {
  [ -z "$serve_pid" ] || kill "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$HYMIG" keygen "$work/cluster.key" >/dev/null
export HYMIG_KEY_FILE=$work/cluster.key

rc=0
"$HYMIG" migrate --domain guest --to 127.0.0.1:9 >"$work/domain.out" 2>&1 || rc=$?
if [ "$rc" -ne 2 ] || ! grep -q "HYMIG_WITH_LIBVIRT=OFF" "$work/domain.out"; then
  fail "migrate --domain: expected exit 2 naming HYMIG_WITH_LIBVIRT=OFF, got $rc: $(cat "$work/domain.out")"
fi

rc=0
"$HYMIG" serve --listen 127.0.0.1:0 --libvirt >"$work/libvirt.out" 2>&1 || rc=$?
if [ "$rc" -ne 2 ] || ! grep -q "HYMIG_WITH_LIBVIRT=OFF" "$work/libvirt.out"; then
  fail "serve --libvirt: expected exit 2 naming HYMIG_WITH_LIBVIRT=OFF, got $rc: $(cat "$work/libvirt.out")"
fi

"$HYMIG" serve --listen 127.0.0.1:0 --once --allow-synthetic 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/serve.log" && break
  sleep 0.1
done
addr=$(sed -n 's/.*listening on //p' "$work/serve.log" | head -n1)
[ -n "$addr" ] || fail "the receiver did not start: $(cat "$work/serve.log")"
"$HYMIG" migrate --image synthetic:size=64M,dirty-rate=32M --to "$addr" --report json >"$work/report.json" ||
  fail "the migration failed: $(cat "$work/report.json" "$work/serve.log")"
wait "$serve_pid" || fail "the receiver exited with an error: $(cat "$work/serve.log")"
serve_pid=""
grep -q '"committed": *true' "$work/report.json" || fail "the report does not say committed: $(cat "$work/report.json")"
grep -q '"verified": *true' "$work/report.json" || fail "the report does not say verified: $(cat "$work/report.json")"
echo "minimal-build: built without rdma-core and libvirt; a synthetic image migrated and verified; --domain and --libvirt refused"
