#!/usr/bin/env bash
# The loopback demo: a receiver on 127.0.0.1 and a 1 GiB synthetic image that keeps dirtying
# 256 MiB/s over a 256 MiB working set, migrated live, authenticated and encrypted; prints the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
HYMIG=build/release/cli/hymig
log=$(mktemp)
keydir=$(mktemp -d)
trap 'kill "$serve_pid" 2>/dev/null || true; rm -rf "$log" "$keydir"' EXIT

# Every session is authenticated by a cluster key both ends hold; the demo makes a throwaway one
# (a cluster makes one with `hymig keygen /etc/hymig/cluster.key` and copies it to every node).
"$HYMIG" keygen "$keydir/cluster.key"
export HYMIG_KEY_FILE=$keydir/cluster.key

"$HYMIG" serve --listen 127.0.0.1:0 --once --allow-synthetic 2>"$log" &
serve_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$log" && break
  sleep 0.1
done
addr=$(sed -n 's/.*listening on //p' "$log" | head -n1)
[ -n "$addr" ] || { cat "$log"; echo "demo: the receiver did not start" >&2; exit 1; }

echo "demo: migrating a 1 GiB synthetic image (dirtying 256 MiB/s) to $addr"
status=0
"$HYMIG" migrate --image synthetic:size=1G,dirty-rate=256M,working-set=256M --to "$addr" --report "${REPORT:-text}" || status=$?
# A source that failed before it authenticated leaves serve --once waiting: end it.
[ "$status" -eq 0 ] || kill "$serve_pid" 2>/dev/null || true
wait "$serve_pid" || true
cat "$log"
exit "$status"
