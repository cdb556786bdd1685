#!/usr/bin/env bash
# hymig-bench --quick under a real `mpirun -np 2`, then checks that every output exists and is
# well-formed: CSV with its header and rows, JSON that parses with runs and a summary, PNG and SVG
# plots, and a report. No timing thresholds: only that the suite ran and hymig's runs verified.
#   bench_smoke.sh [netns]   netns: ranks in the two namespaces of the integration lab, with loss
#                            and the shared-link scenario (root only; skips otherwise)
set -uo pipefail
HM_TEST_NAME=bench_smoke${1:+_$1}
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/../../bench/mpirun.sh"
: "${HYMIG_BENCH:?set HYMIG_BENCH to the hymig-bench binary}"
[ -x "$HYMIG_BENCH" ] || hm_skip "hymig-bench was not built (OpenMPI missing at build time?)"
command -v mpirun >/dev/null || hm_skip "mpirun is not installed (Debian: openmpi-bin)"
command -v jq >/dev/null || hm_skip "jq is not installed"
hm_tmpdir
out=$HM_TMP/out
args=(--quick --out "$out")
if [ "${1:-}" = netns ]; then
  source "$(dirname "$0")/../lib/netlab.sh"
  netlab_up 1500
  # A smaller matrix than --quick's: the point is the placement, the loss rules and the shared link.
  args+=(--netns "$NETLAB_NS_SRC,$NETLAB_NS_DST" --loss 0,5 --dirty-rates 0 --reps 1 --sizes 128M
    --shared-link --shared-loss 1 --shared-size 128M --shared-cc reno --shared-reps 2)
fi
hm_deadline 900
hm_log "mpirun -np 2 hymig-bench ${args[*]}"
hm_mpirun -np 2 "$HYMIG_BENCH" "${args[@]}" >"$HM_TMP/bench.log" 2>&1
rc=$?
cat "$HM_TMP/bench.log" >&2
[ "$rc" -eq 0 ] || hm_fail "hymig-bench exited with $rc"

for f in results.csv summary.csv results.json report.md; do
  [ -s "$out/$f" ] || hm_fail "$f is missing or empty"
done
head -n1 "$out/results.csv" | grep -q '^scenario,pair,transport,size,dirty_rate,loss,rep,status,' ||
  hm_fail "results.csv has no header"
rows=$(($(wc -l <"$out/results.csv") - 1))
runs=$(jq '.runs | length' "$out/results.json") || hm_fail "results.json does not parse"
[ "$rows" -eq "$runs" ] || hm_fail "results.csv has $rows rows, results.json $runs runs"
# Every transport of the matrix appears; hymig's runs all committed and verified.
for t in hymig hymig-lanes2 hymig-tcp tcp-stream memcpy iperf3 udt; do
  jq -e --arg t "$t" '[.runs[] | select(.transport == $t)] | length > 0' "$out/results.json" >/dev/null ||
    hm_fail "no run of $t in results.json"
done
hm_assert_json "$out/results.json" '[.runs[] | select(.scenario == "matrix" and (.transport == "hymig" or .transport == "hymig-lanes2" or .transport == "hymig-tcp"))] | length > 0 and all(.status == "ok" and .verified)'
# CPU per side was measured for hymig (its report and the serve process) and the stream baseline.
hm_assert_json "$out/results.json" '[.runs[] | select(.scenario == "matrix" and (.transport == "hymig" or .transport == "hymig-tcp") and .status == "ok")] | all(.sender_cpu_s > 0 and .receiver_cpu_s > 0)'
hm_assert_json "$out/results.json" '[.runs[] | select(.transport == "tcp-stream" and .status == "ok")] | all(.sender_cpu_s > 0 and .receiver_cpu_s > 0)'
grep -q 'CPU s/GiB send' "$out/report.md" || hm_fail "report.md has no CPU columns"
hm_assert_json "$out/results.json" '[.runs[] | select(.transport == "tcp-stream") | .status] | all(. == "ok")'
hm_assert_json "$out/results.json" '(.summary | length > 0) and (.meta.ranks == 2) and (.headlines | length > 0)'
# Skips say why (RDMA here: no device).
hm_assert_json "$out/results.json" '[.runs[] | select(.status == "skipped") | .note | length > 0] | all'
for p in total_time throughput_vs_loss_*; do
  for png in "$out"/$p.png; do
    [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || hm_fail "$png is not a PNG"
    grep -q '<svg' "${png%.png}.svg" || hm_fail "${png%.png}.svg is not an SVG"
  done
done
grep -q '^### Headline ratios' "$out/report.md" || hm_fail "report.md has no headline table"
if [ "${1:-}" = netns ]; then
  hm_assert_json "$out/results.json" '[.runs[] | select(.loss == 5)] | length > 0'
  # Two runs together (--shared-reps 2), one headline share: their median, with the range.
  hm_assert_json "$out/results.json" '[.runs[] | select(.scenario == "shared-link" and .transport == "hymig-shared" and .status == "ok") | .rep] == [0, 1]'
  hm_assert_json "$out/results.json" '[.headlines[] | select(.what | test("hymig.s share"))] | length == 1 and (.[0].detail | test("^median of 2 runs")) and .[0].value > 0 and .[0].value < 1'
  hm_assert_json "$out/results.json" '[.runs[] | select(.scenario == "shared-link" and .transport == "iperf3-shared") | .series | length > 2] | all'
  [ -s "$out/shared_link_loss1.png" ] || hm_fail "no shared-link plot"
  # The competing flow ran the congestion control asked for, and the report says which.
  hm_assert_json "$out/results.json" '[.runs[] | select(.scenario == "shared-link" and (.transport | startswith("iperf3"))) | .note == "TCP reno"] | all and length == 3'
  grep -q 'iperf3 reno' "$out/report.md" || hm_fail "report.md does not name the competing flow's congestion control"
  # The rules are gone again: nothing left in the receiving namespace.
  ip netns exec "$NETLAB_NS_DST" nft list tables | grep -q hymig_bench && hm_fail "the loss table was left behind"
fi
hm_log "PASS: $(jq -r '[.runs[] | .status] | group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$out/results.json")"
