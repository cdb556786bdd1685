#!/usr/bin/env bash
# The whole benchmark suite, every baseline and peer measured in the same run, and
# docs/performance.md regenerated from what it measured:
#   1. hymig-bench under `mpirun -np 2` over loopback: 2 GiB and 8 GiB, idle and dirtied at 256 MiB/s
#   2. hymig-bench with its ranks in the two network namespaces of the integration lab (a veth
#      pair, MTU 1500), random loss by nftables (0, 1, 5, 10 %), and the shared-link scenario on a
#      tc tbf link (root only)
#   3. a 1 Gbit/s tbf link and memory that compresses: hymig's zstd against none and against TCP
#   4. the namespaces' matrix again at MTU 9000
#   5. the shared-link scenario again with the bottleneck in a middle namespace (a router)
#   6. the Google Benchmark microbenchmarks of the hot paths
#   (with --lab, between 5 and 6: hymig-bench under mpirun inside the Soft-RoCE lab guest)
#
#   bash bench/run-suite.sh [--quick] [--no-docs] [--lab]
#     --quick    the quick matrix (a minute or two per part) instead of the full one
#     --no-docs  leave docs/performance.md alone (results stay in bench/out/)
#     --lab      also the lab guest's run (QEMU TCG, ~4 min; tests/lab/run-lab.sh bench)
# Environment: HYMIG_BUILD (default build/release), HYMIG_MPIRUN_ARGS (extra mpirun options).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
QUICK=""
DOCS=1
LAB=0
for a in "$@"; do
  case $a in
    --quick) QUICK=--quick ;;
    --no-docs) DOCS=0 ;;
    --lab) LAB=1 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-suite.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
  esac
done
BUILD=${HYMIG_BUILD:-build/release}
BENCH=$BUILD/bench/suite/hymig-bench
MICRO=$BUILD/bench/micro/hymig-microbench
for b in "$BENCH" "$MICRO" "$BUILD/cli/hymig"; do
  [ -x "$b" ] || { echo "run-suite.sh: $b is missing: build first (bash scripts/build.sh)" >&2; exit 2; }
done
command -v mpirun >/dev/null || { echo "run-suite.sh: mpirun not found (bash scripts/bootstrap.sh installs OpenMPI)" >&2; exit 2; }
source bench/mpirun.sh
HM_TEST_NAME=run-suite
source tests/lib/common.sh
source tests/lib/netlab.sh

OUT=bench/out
rm -rf "$OUT/loopback" "$OUT/veth" "$OUT/veth9000" "$OUT/zstd" "$OUT/middle" "$OUT/micro.json"
mkdir -p "$OUT"
status=0

# The matrices (the quick one: hymig-bench's own --quick sizes, one run less).
# A single shared-link run's share moves by 0.1 between runs: the full suite takes the median of 3.
# A 2 GiB run over the veth is fast or slow by whether its receiver touches memory this host took
# back (docs/data-path.md, "Still open"): 3 runs a cell, so that one slow run is not the median.
if [ -n "$QUICK" ]; then
  SHARED_REPS=1
  LOOP_OPTS=(--quick)
  VETH_OPTS=(--quick --loss 0,1,5,10)
  ZSTD_OPTS=(--quick --sizes 256M --dirty-rates 0)
else
  SHARED_REPS=3
  LOOP_OPTS=(--sizes 2G,8G --dirty-rates 0,256M --reps 3)
  VETH_OPTS=(--sizes 2G --dirty-rates 0,256M --loss 0,1,5,10 --reps 3)
  ZSTD_OPTS=(--sizes 1G --dirty-rates 0 --reps 3)
fi
ZSTD_OPTS+=(--rate-limit 1gbit --compressible 0.6 --transports hymig,hymig-nozstd,hymig-tcp,tcp-stream)

echo "== 1. loopback"
CMD_LOOP="mpirun -np 2 hymig-bench ${LOOP_OPTS[*]}"
hm_mpirun -np 2 "$BENCH" "${LOOP_OPTS[@]}" --title "loopback: both ranks on one host" --out "$OUT/loopback" || status=1

CMD_VETH="" CMD_JUMBO="" CMD_ZSTD="" CMD_MID=""
if [ "$(id -u)" -eq 0 ] && ( netlab_require ) 2>/dev/null; then
  echo "== 2. veth pair between two namespaces, MTU 1500"
  netlab_up 1500
  CMD_VETH="mpirun -np 2 hymig-bench --netns SRC,DST ${VETH_OPTS[*]} --shared-link --shared-reps $SHARED_REPS"
  hm_mpirun -np 2 "$BENCH" --netns "$NETLAB_NS_SRC,$NETLAB_NS_DST" "${VETH_OPTS[@]}" --shared-link --shared-reps "$SHARED_REPS" \
    --title "veth pair between two network namespaces (MTU 1500), nftables random loss" --out "$OUT/veth" || status=1
  echo "== 3. 1 Gbit/s link, memory that compresses"
  CMD_ZSTD="mpirun -np 2 hymig-bench --netns SRC,DST ${ZSTD_OPTS[*]}"
  hm_mpirun -np 2 "$BENCH" --netns "$NETLAB_NS_SRC,$NETLAB_NS_DST" "${ZSTD_OPTS[@]}" \
    --title "1 Gbit/s tbf link (MTU 1500), pages 60 % compressible: zstd or not" --out "$OUT/zstd" || status=1
  netlab_down
  echo "== 4. veth pair between two namespaces, MTU 9000"
  netlab_up 9000
  CMD_JUMBO="mpirun -np 2 hymig-bench --netns SRC,DST ${VETH_OPTS[*]}"
  hm_mpirun -np 2 "$BENCH" --netns "$NETLAB_NS_SRC,$NETLAB_NS_DST" "${VETH_OPTS[@]}" \
    --title "veth pair between two network namespaces (MTU 9000), nftables random loss" --out "$OUT/veth9000" || status=1
  netlab_down
  echo "== 5. the shared link with its bottleneck in a middle namespace (a router's queue)"
  netlab_up 1500 middle
  netlab_rate_middle 1gbit
  MID_OPTS=(--transports hymig --sizes 256M --dirty-rates 0 --reps 1 --shared-link --shared-rate external:1gbit --shared-reps "$SHARED_REPS")
  [ -n "$QUICK" ] && MID_OPTS+=(--quick)
  CMD_MID="mpirun -np 2 hymig-bench --netns SRC,DST ${MID_OPTS[*]}"
  hm_mpirun -np 2 "$BENCH" --netns "$NETLAB_NS_SRC,$NETLAB_NS_DST" "${MID_OPTS[@]}" \
    --title "shared 1 Gbit/s link, the bottleneck a tbf in a middle namespace" --out "$OUT/middle" || status=1
  netlab_down
else
  echo "== 2-5. skipped: the namespace parts need root with network namespaces, nftables and tc"
fi

LAB_FIGS=""
if ((LAB)); then
  echo "== lab guest: hymig-bench under mpirun inside the Soft-RoCE lab (tests/lab)"
  if bash tests/lab/run-lab.sh bench --build-dir "$BUILD"; then LAB_FIGS=$BUILD/lab-figures.txt; else status=1; fi
fi

echo "== 6. microbenchmarks"
MICRO_ARGS=()
[ -n "$QUICK" ] && MICRO_ARGS=(--benchmark_min_time=0.05)
"$MICRO" "${MICRO_ARGS[@]}" --benchmark_format=console --benchmark_out="$OUT/micro.json" --benchmark_out_format=json || status=1

((DOCS)) || exit $status
bash bench/render-performance.sh "$OUT" "$QUICK" "$CMD_LOOP" "$CMD_VETH" "$CMD_JUMBO" "$CMD_ZSTD" "$CMD_MID" "$LAB_FIGS" >docs/performance.md.new && mv docs/performance.md.new docs/performance.md
echo "docs/performance.md regenerated (plots in docs/perf/)"
exit $status
