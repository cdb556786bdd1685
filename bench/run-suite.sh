#!/usr/bin/env bash
# The whole benchmark suite, every baseline and peer measured in the same run, and
# docs/performance.md regenerated from what it measured:
#   1. hymig-bench under `mpirun -np 2` over loopback
#   2. hymig-bench with its ranks in the two network namespaces of the integration lab (a veth
#      pair), random loss by nftables, and the shared-link scenario on a tc tbf link (root only)
#   3. the Google Benchmark microbenchmarks of the hot paths
#   (with --lab, between 2 and 3: hymig-bench under mpirun inside the Soft-RoCE lab guest)
#
#   bash bench/run-suite.sh [--quick] [--no-docs] [--lab]
#     --quick    the quick matrix (a minute or two per part) instead of the full one
#     --no-docs  leave docs/performance.md alone (results stay in bench/out/)
#     --lab      also the lab guest's run (QEMU TCG, ~4 min; tests/lab/run-lab.sh bench)
# Environment: HYMIG_BUILD (default build/release), HYMIG_MPIRUN_ARGS (extra mpirun options).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=""
DOCS=1
LAB=0
for a in "$@"; do
  case $a in
    --quick) QUICK=--quick ;;
    --no-docs) DOCS=0 ;;
    --lab) LAB=1 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
rm -rf "$OUT/loopback" "$OUT/veth" "$OUT/micro.json"
mkdir -p "$OUT"
status=0

echo "== 1. loopback"
CMD_LOOP="mpirun -np 2 hymig-bench $QUICK --title loopback"
hm_mpirun -np 2 "$BENCH" $QUICK --title "loopback: both ranks on one host" --out "$OUT/loopback" || status=1

echo "== 2. veth pair between two namespaces"
VETH_OPTS=(--loss 0,1,5,10 --shared-link)
CMD_VETH=""
if [ "$(id -u)" -eq 0 ] && ( netlab_require ) 2>/dev/null; then
  netlab_up 1500
  CMD_VETH="mpirun -np 2 hymig-bench $QUICK --netns SRC,DST ${VETH_OPTS[*]}"
  hm_mpirun -np 2 "$BENCH" $QUICK --netns "$NETLAB_NS_SRC,$NETLAB_NS_DST" "${VETH_OPTS[@]}" \
    --title "veth pair between two network namespaces (MTU 1500), nftables random loss" --out "$OUT/veth" || status=1
  netlab_down
else
  echo "   skipped: needs root with network namespaces, nftables and tc"
fi

LAB_FIGS=""
if ((LAB)); then
  echo "== lab guest: hymig-bench under mpirun inside the Soft-RoCE lab (tests/lab)"
  if bash tests/lab/run-lab.sh bench --build-dir "$BUILD"; then LAB_FIGS=$BUILD/lab-figures.txt; else status=1; fi
fi

echo "== 3. microbenchmarks"
MICRO_ARGS=()
[ -n "$QUICK" ] && MICRO_ARGS=(--benchmark_min_time=0.05)
"$MICRO" "${MICRO_ARGS[@]}" --benchmark_format=console --benchmark_out="$OUT/micro.json" --benchmark_out_format=json || status=1

((DOCS)) || exit $status
bash bench/render-performance.sh "$OUT" "$QUICK" "$CMD_LOOP" "$CMD_VETH" "$LAB_FIGS" >docs/performance.md.new && mv docs/performance.md.new docs/performance.md
echo "docs/performance.md regenerated (plots in docs/perf/)"
exit $status
