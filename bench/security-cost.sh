#!/usr/bin/env bash
# What protection costs: the same migrations, alternating in one run, by
#   base       a hymig built from before sessions were protected (--base BIN; protocol 1, no key)
#   encrypted  this build, default flags (authenticated and encrypted)
#   mac-only   this build with --encrypt off (datagrams authenticated, pages in clear)
# on loopback and across a veth pair between two namespaces (MTU 1500 and 9000):
#   idle       a 2 GiB synthetic image nothing writes (throughput = image bytes / total time)
#   tcp        the same over --bulk tcp (the sealed control channel carries every page)
#   dirty      1 GiB dirtying 256 MiB/s over 256 MiB (the blackout: downtime_ms)
# and prints, per case and variant, the median of --runs and the ratio to base. Run it with
# nothing else on the machine (2 shared cores: a build or a test beside it makes the ratios lie).
#
#   bash bench/security-cost.sh --base /path/to/old/hymig [--runs 3] [--out FILE] [--where lo,veth1500,veth9000]
#
# Needs root for the veth cases (they are skipped otherwise). A base binary: e.g.
#   git worktree add /tmp/hymig-base a9a5645 && cmake --preset release -S /tmp/hymig-base &&
#   cmake --build /tmp/hymig-base/build/release --target hymig
set -u -o pipefail
HM_TEST_NAME=security-cost
here=$(cd "$(dirname "$0")/.." && pwd)
HYMIG=${HYMIG:-$here/build/release/cli/hymig}
HYMIG_TEST_WRITER=${HYMIG_TEST_WRITER:-$here/build/release/tests/tools/hymig-test-writer}
base="" runs=3 out="" where="lo,veth1500,veth9000"
while [ $# -gt 0 ]; do
  case $1 in
    --base) base=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --where) where=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "security-cost: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done
[ -x "$HYMIG" ] || { echo "security-cost: build first ($HYMIG missing)" >&2; exit 2; }
[ -z "$base" ] || [ -x "$base" ] || { echo "security-cost: --base $base is not an executable" >&2; exit 2; }
# shellcheck source=../tests/lib/netlab.sh
source "$here/tests/lib/netlab.sh"
hm_tmpdir
results=$HM_TMP/results.tsv
: >"$results"

# one WHERE VARIANT CASE: one migration; appends "where variant case seconds downtime_ms" to results.
one() {
  local where=$1 variant=$2 case=$3 bin=$HYMIG prefix_s=() prefix_d=() host=127.0.0.1 serve_extra=() mig_extra=()
  [ "$variant" = base ] && bin=$base
  if [ "$where" != lo ]; then
    prefix_s=(ip netns exec "$NETLAB_NS_SRC")
    prefix_d=(ip netns exec "$NETLAB_NS_DST")
    host=$NETLAB_ADDR_DST
  fi
  [ "$variant" = base ] || serve_extra=(--allow-synthetic)
  [ "$variant" = mac-only ] && mig_extra=(--encrypt off)
  local spec
  case $case in
    idle) spec="synthetic:size=2G,zero-fraction=0" ;;
    tcp) spec="synthetic:size=2G,zero-fraction=0"; mig_extra+=(--bulk tcp) ;;
    dirty) spec="synthetic:size=1G,dirty-rate=256M,working-set=256M,zero-fraction=0" ;;
  esac
  local log=$HM_TMP/serve.log
  "${prefix_d[@]}" "$bin" serve --listen "$host:0" --once "${serve_extra[@]}" 2>"$log" &
  local sp=$!
  local addr="" i
  for i in $(seq 100); do
    addr=$(grep -m1 -o -E 'listening on [^ ]+:[0-9]+' "$log" | sed 's/listening on //')
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || { echo "security-cost: serve did not start: $(cat "$log")" >&2; kill "$sp"; return 1; }
  local rep=$HM_TMP/report.json
  "${prefix_s[@]}" "$bin" migrate --image "$spec" --to "$addr" --report json --progress off "${mig_extra[@]}" >"$rep" 2>"$HM_TMP/migrate.err"
  wait "$sp" 2>/dev/null
  if [ "$(jq -r '.outcome // empty' "$rep" 2>/dev/null)" != committed ]; then
    echo "security-cost: $where $variant $case failed: $(tail -c 300 "$HM_TMP/migrate.err")" >&2
    return 1
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$where" "$variant" "$case" "$(jq -r '.total_ms / 1000' "$rep")" "$(jq -r '.downtime_ms' "$rep")" >>"$results"
}

variants=(encrypted mac-only)
[ -n "$base" ] && variants=(base encrypted mac-only)
IFS=, read -r -a places <<<"$where"
for w in "${places[@]}"; do
  if [ "$w" != lo ]; then
    [ "$(id -u)" -eq 0 ] || { echo "security-cost: $w needs root; skipped" >&2; continue; }
    netlab_up "${w#veth}"
  fi
  for case in idle tcp dirty; do
    for ((r = 0; r < runs; r++)); do
      for v in "${variants[@]}"; do one "$w" "$v" "$case" || true; done
    done
  done
  [ "$w" = lo ] || netlab_down
done

{
  echo "# What protection costs ($(date -u +%F), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), median of $runs)"
  echo
  echo "| where | case | variant | time (s) | GiB/s | blackout (ms) | throughput vs base | blackout vs base |"
  echo "|---|---|---|---|---|---|---|---|"
  awk -F'\t' '
    { k = $1 SUBSEP $3 SUBSEP $2; n[k]++; t[k, n[k]] = $4; d[k, n[k]] = $5; seen[$1 SUBSEP $3] = 1; vs[$2] = 1 }
    function median(a, k, m,   i, j, x, v) { for (i = 1; i <= m; i++) v[i] = a[k, i];
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
      return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2 }
    END {
      split("base encrypted mac-only", order, " ")
      for (wc in seen) {
        split(wc, p, SUBSEP)
        size = (p[2] == "dirty") ? 1 : 2
        bk = p[1] SUBSEP p[2] SUBSEP "base"
        bt = (bk in n) ? median(t, bk, n[bk]) : 0; bd = (bk in n) ? median(d, bk, n[bk]) : 0
        for (o = 1; o <= 3; o++) {
          k = p[1] SUBSEP p[2] SUBSEP order[o]
          if (!(k in n)) continue
          mt = median(t, k, n[k]); md = median(d, k, n[k])
          printf "| %s | %s | %s | %.2f | %.2f | %.0f | %s | %s |\n", p[1], p[2], order[o], mt, size / mt, md,
            bt ? sprintf("%.2f", bt / mt) : "-", bd ? sprintf("%.2f", md / bd) : "-"
        }
      }
    }' "$results" | sort
} | tee "${out:-/dev/null}"
