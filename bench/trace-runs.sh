#!/usr/bin/env bash
# Single migrations over the veth lab, one after another, each with its pacer trace: for finding
# the run in N that goes wrong and reading why (docs/protocol.md "Pacing" has the trace's columns).
# Root only (network namespaces, nftables).
#
#   bash bench/trace-runs.sh [--runs N] [--size S] [--dirty-rate R] [--loss PCT] [--mtu M]
#                            [--rate R] [--out DIR] [-- MIGRATE-OPTIONS...]
#     --runs N        migrations (default 8)
#     --size S        the synthetic image's size (default 2G)
#     --dirty-rate R  dirty it at R per second while it moves (default: idle)
#     --loss PCT      nftables random loss into the destination, 0-100 (default 5)
#     --mtu M         the veth's MTU (default 1500)
#     --rate R        a tc tbf of R (tc's units: 1gbit) on the sender's veth (default: none)
#     --out DIR       where the traces, reports and logs go (default bench/out/trace-runs)
#     -- ...          more options for `hymig migrate` (for example: -- --bulk tcp)
# Prints one line per run: its exit code and wall seconds. Environment: HYMIG_BUILD (default
# build/release).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
RUNS=8 SIZE=2G DIRTY="" LOSS=5 MTU=1500 RATE="" OUT=bench/out/trace-runs
MIGRATE_EXTRA=()
while (($#)); do
  case $1 in
    --runs) RUNS=${2:?--runs needs a number}; shift ;;
    --size) SIZE=${2:?--size needs a size}; shift ;;
    --dirty-rate) DIRTY=${2:?--dirty-rate needs a rate}; shift ;;
    --loss) LOSS=${2:?--loss needs a percentage}; shift ;;
    --mtu) MTU=${2:?--mtu needs a number}; shift ;;
    --rate) RATE=${2:?--rate needs a rate}; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    --) shift; MIGRATE_EXTRA=("$@"); break ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "trace-runs: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $RUNS =~ ^[0-9]+$ ]] && ((RUNS > 0)) || { echo "trace-runs: --runs must be a positive number" >&2; exit 2; }
HYMIG=${HYMIG_BUILD:-build/release}/cli/hymig
[ -x "$HYMIG" ] || { echo "trace-runs: $HYMIG is not built (cmake --build --preset release)" >&2; exit 2; }
((EUID == 0)) || { echo "trace-runs: needs root (network namespaces, nftables)" >&2; exit 2; }

# shellcheck source=tests/lib/netlab.sh
source tests/lib/netlab.sh
mkdir -p "$OUT" || exit 2
netlab_up "$MTU"
netlab_loss "$LOSS"
[ -n "$RATE" ] && netlab_rate "$RATE"
rm -f "$OUT/key"
"$HYMIG" keygen "$OUT/key" >/dev/null 2>&1 || { echo "trace-runs: hymig keygen failed" >&2; exit 1; }
listening() { [ -n "$(ip netns exec "$NETLAB_NS_DST" ss -Hltn "sport = :7571")" ]; }
image="synthetic:size=$SIZE"
[ -n "$DIRTY" ] && image+=",dirty-rate=$DIRTY"
status=0
for i in $(seq 1 "$RUNS"); do
  store=$OUT/store
  rm -rf "$store" "$OUT/trace$i.csv" && mkdir -p "$store"
  ip netns exec "$NETLAB_NS_DST" "$HYMIG" serve --key-file "$OUT/key" --listen "$NETLAB_ADDR_DST:7571" --once \
    --allow-synthetic --store "$store" --timeout 30 >"$OUT/serve$i.log" 2>&1 &
  serve=$!
  hm_track_pid "$serve"
  hm_wait_for 10 listening || { echo "trace-runs: hymig serve did not listen (see $OUT/serve$i.log)" >&2; exit 1; }
  start=$(date +%s.%N)
  ip netns exec "$NETLAB_NS_SRC" timeout 300 "$HYMIG" migrate --key-file "$OUT/key" --image "$image" \
    --to "$NETLAB_ADDR_DST:7571" --report json --progress json --trace-pacer "$OUT/trace$i.csv" "${MIGRATE_EXTRA[@]}" \
    >"$OUT/report$i.json" 2>"$OUT/progress$i.log"
  rc=$?
  end=$(date +%s.%N)
  wait "$serve" || true
  ((rc == 0)) || status=1
  printf 'run %d: exit %d, %.1f s\n' "$i" "$rc" "$(echo "$end - $start" | bc)"
done
rm -rf "$OUT/store"
netlab_down
echo "traces, reports and logs in $OUT"
exit $status
