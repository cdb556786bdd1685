#!/usr/bin/env bash
# The core benchmark (issue 2's figures), every baseline measured in the same run:
#   A. loopback, idle synthetic image: hymig UDP+TCP vs hymig --bulk tcp vs a raw TCP stream
#   B. veth pair between two namespaces, nftables random loss 0/1/5 %: hymig vs --bulk tcp,
#      each relative to its own lossless time (root only; skipped otherwise)
#   C. a dirtying image: rounds, downtime, final delta, total time
# Prints a table and writes bench/out/core-bench.json. No thresholds: these machines are shared.
#   SIZE=4G LOSS_SIZE=1G REPS=1 bash bench/core-bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
SIZE=${SIZE:-4G}
LOSS_SIZE=${LOSS_SIZE:-1G}
REPS=${REPS:-1}
HYMIG=${HYMIG:-build/release/cli/hymig}
STREAM=${STREAM:-build/release/bench/hymig-tcpstream}
[ -x "$HYMIG" ] && [ -x "$STREAM" ] || { echo "build first: bash scripts/build.sh" >&2; exit 2; }
mkdir -p bench/out
results=bench/out/core-bench.jsonl
: >"$results"
# The integration tests' helpers: namespaces, veth, nftables loss, cleanup of PIDs on exit.
HYMIG_TEST_WRITER=${HYMIG_TEST_WRITER:-build/release/tests/tools/hymig-test-writer}
HM_TEST_NAME=core-bench
source tests/lib/common.sh
source tests/lib/netlab.sh
hm_tmpdir
work=$HM_TMP

# run_pair NAME [ns-prefix-dst] [ns-prefix-src] ADDR -- migrate args...
# Starts `hymig serve --once` (optionally in a namespace), runs one migration, appends its JSON.
hymig_run() {
  local name=$1 dst_exec=$2 src_exec=$3 addr=$4
  shift 4
  $dst_exec "$HYMIG" serve --listen "$addr:0" --once 2>"$work/serve.log" &
  local sp=$!
  hm_track_pid "$sp"
  local listen=""
  for _ in $(seq 100); do
    listen=$(sed -n 's/.*listening on //p' "$work/serve.log" | head -n1)
    [ -n "$listen" ] && break
    sleep 0.1
  done
  [ -n "$listen" ] || { cat "$work/serve.log" >&2; return 1; }
  local out
  out=$($src_exec "$HYMIG" migrate --to "$listen" --report json --progress off "$@" 2>"$work/migrate.err" || true)
  wait "$sp" 2>/dev/null || true
  if [ -z "$out" ]; then cat "$work/migrate.err" >&2; out='{"committed":false}'; fi
  jq -c --arg name "$name" '{name: $name, committed, verified, total_ms, downtime_ms, rounds, final_delta_pages,
      missing_pages, modified_pages, throughput_gbps, bulk: .bulk.transport, loss: .bulk.random_loss}' <<<"$out" | tee -a "$results"
}

stream_run() {
  local name=$1 dst_exec=$2 src_exec=$3 addr=$4 size=$5
  local port=$((20000 + RANDOM % 20000))
  $dst_exec "$STREAM" --listen "$addr:$port" >"$work/stream.out" &
  local sp=$!
  hm_track_pid "$sp"
  local out
  out=$($src_exec "$STREAM" --connect "$addr:$port" --bytes "$size")
  wait "$sp" || true
  jq -c --arg name "$name" '{name: $name, committed: true, total_ms: (.seconds * 1000), throughput_gbps: .gbps}' <<<"$out" | tee -a "$results"
}

echo "== A. loopback, idle ${SIZE} synthetic image, ${REPS} repetition(s)"
for r in $(seq "$REPS"); do
  hymig_run "loopback hymig udp+tcp" "" "" 127.0.0.1 --image "synthetic:size=$SIZE"
  hymig_run "loopback hymig --bulk tcp" "" "" 127.0.0.1 --image "synthetic:size=$SIZE" --bulk tcp
  stream_run "loopback raw tcp stream" "" "" 127.0.0.1 "$SIZE"
done

echo "== C. dirtying image: ${SIZE}, dirty-rate 256M over a 1G working set"
for r in $(seq "$REPS"); do
  hymig_run "loopback dirty 256M/1G" "" "" 127.0.0.1 --image "synthetic:size=$SIZE,dirty-rate=256M,working-set=1G"
done

if [ "$(id -u)" -eq 0 ] && ip netns add "hymig-bench-probe-$$" 2>/dev/null; then
  ip netns del "hymig-bench-probe-$$"
  echo "== B. veth pair (MTU 1500) between namespaces, ${LOSS_SIZE} idle image, nftables random loss"
  netlab_up 1500
  IN_SRC="ip netns exec $NETLAB_NS_SRC" IN_DST="ip netns exec $NETLAB_NS_DST" ADDR_DST=$NETLAB_ADDR_DST
  for loss in 0 1 5; do
    netlab_loss "$loss"
    for r in $(seq "$REPS"); do
      hymig_run "veth loss $loss% hymig udp+tcp" "$IN_DST" "$IN_SRC" "$ADDR_DST" --image "synthetic:size=$LOSS_SIZE" --timeout 30
      hymig_run "veth loss $loss% hymig --bulk tcp" "$IN_DST" "$IN_SRC" "$ADDR_DST" --image "synthetic:size=$LOSS_SIZE" --bulk tcp --timeout 30
    done
  done
else
  echo "== B. skipped: needs root and network namespaces"
fi

echo
echo "== summary (medians over repetitions; ratios against baselines measured in this run)"
jq -s -r '
  def med: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
  group_by(.name) | map({key: .[0].name, value: {ms: (map(.total_ms) | med), down: (map(.downtime_ms // 0) | med),
      ok: (map(.committed) | all), rounds: (map(.rounds // 0) | med), fd: (map(.final_delta_pages // 0) | med)}}) | from_entries
  | . as $m
  | (to_entries[] | "\(.key | .[0:34] | . + " " * (34 - length))  \(.value.ms | floor) ms  downtime \(.value.down | floor) ms  rounds \(.value.rounds)  final-delta \(.value.fd)  committed \(.value.ok)"),
    "",
    "loopback: raw TCP / hymig = \(($m["loopback raw tcp stream"].ms / $m["loopback hymig udp+tcp"].ms * 100 | floor) / 100)  (above 1: hymig faster)",
    "loopback: --bulk tcp / hymig = \(($m["loopback hymig --bulk tcp"].ms / $m["loopback hymig udp+tcp"].ms * 100 | floor) / 100)",
    (if $m["veth loss 0% hymig udp+tcp"] then
      (["1", "5"][] as $l |
        "veth loss \($l)%: hymig \(($m["veth loss \($l)% hymig udp+tcp"].ms / $m["veth loss 0% hymig udp+tcp"].ms * 100 | floor) / 100)x its lossless time; --bulk tcp \(($m["veth loss \($l)% hymig --bulk tcp"].ms / $m["veth loss 0% hymig --bulk tcp"].ms * 100 | floor) / 100)x") else empty end)
' "$results" | tee bench/out/core-bench.txt
