#!/usr/bin/env bash
# bench/drain-side-by-side.sh: the wall time to empty a node of N working guests, between the two
# libvirt daemons of tests/vm/libvirt_lib.sh (tests/lib/netlab.sh's two namespaces and veth):
#   hymig drain --parallel 1   lv1 -> lv2
#   hymig drain --parallel 2   lv2 -> lv1
#   virsh migrate --live, one guest after the other (libvirt's own, what an operator's loop does)
#                              lv1 -> lv2
# all in the same run, on the same guests (the vm lane's: TCG, 1 vCPU, dirtying and checking a
# 48 MiB working set), after both libvirt daemons computed their capabilities.
#
#   bash bench/drain-side-by-side.sh [--guests N] [--mem MIB] [--out FILE] [--build DIR]
#     --guests   guests to drain (default 3), --mem their RAM in MiB (default 256)
#     --out      also write the table to FILE
# Prints each drain's wall time and the guests' per-migration times. Needs root, libvirt, QEMU and
# the guest kernel; exits 77 with the reason otherwise. Run it on a quiet machine: N TCG guests
# already keep two cores busy.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
guests=3 mem=256 out=""
build=${HYMIG_BUILD_DIR:-$ROOT/build/release}
while [ $# -gt 0 ]; do
  case $1 in
    --guests) guests=${2:?}; shift 2 ;;
    --mem) mem=${2:?}; shift 2 ;;
    --out) out=$(realpath -m "${2:?}"); shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "drain-side-by-side.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $guests =~ ^[1-9]$ && $mem =~ ^[1-9][0-9]*$ ]] || { echo "drain-side-by-side.sh: --guests 1..9, --mem MiB" >&2; exit 2; }
build=$(realpath -m "$build")
export HYMIG_BUILD_DIR=$build HYMIG=$build/cli/hymig HYMIG_VM_QMP=$build/tests/vm/hymig-vm-qmp \
  HYMIG_VM_WATCH=$build/tests/vm/hymig-vm-watch HYMIG_VM_GUEST_INIT=$build/tests/vm/guest/hymig-vm-guest-init
# shellcheck disable=SC2034  # read by common.sh
HM_TEST_NAME=drain-side-by-side
HYMIG_VM_DEADLINE=3000
# shellcheck source=../tests/vm/libvirt_test.sh
source "$ROOT/tests/vm/libvirt_test.sh"
VM_APPEND=${VM_APPEND/hymig.ws_mib=96/hymig.ws_mib=48}

names=()
for i in $(seq 1 "$guests"); do
  names+=("bg$i")
  lv_define_start 1 "bg$i" "$mem"
done
lvh_daemon 1 "$HM_TMP/serve1.log" 7470
lvh_daemon 2 "$HM_TMP/serve2.log" 7470
# A freshly started libvirtd computes its capabilities on the first request (8 s here); serve asks
# at its start, and a node's daemon has long been running when a drain comes. Not measured here.
for n in 1 2; do lv_virsh "$n" capabilities >/dev/null; done

rows=()
drain() {  # FROM TO PARALLEL
  local from=$1 to=$2 p=$3 t0 t1 j=$HM_TMP/drain-$1-$3.json
  for g in "${names[@]}"; do lv_expect "$to" "$g"; done
  t0=$(date +%s%N)
  ip netns exec "${LV_NS[$from]}" "$HYMIG" drain --connect "${LV_URI[$from]}" --targets "${LV_ADDR[$to]}:7470" \
    --parallel "$p" --report json --progress off >"$j" 2>"$j.err" || hm_fail "drain lv$from->lv$to --parallel $p: $(cat "$j.err")"
  t1=$(date +%s%N)
  rows+=("| hymig drain --parallel $p | lv$from -> lv$to | $(((t1 - t0) / 1000000)) | $(jq -r '[.domains[] | "\(.name) \(.attempts[-1].seconds * 10 | floor / 10) s (setup \(.attempts[-1].report.setup_ms / 1000 * 10 | floor / 10) s)"] | join(", ")' "$j") |")
  hm_log "${rows[-1]}"
}
drain 1 2 1
drain 2 1 2
t0=$(date +%s%N)
per=()
for g in "${names[@]}"; do
  lv_native_migrate 1 2 "$g" || hm_fail "virsh migrate $g: $LV_MIG_OUT"
  per+=("$g $((LV_MIG_WALL_MS / 100))")
done
t1=$(date +%s%N)
rows+=("| virsh migrate --live, one by one | lv1 -> lv2 | $(((t1 - t0) / 1000000)) | $(printf '%s, ' "${per[@]}" | sed -E 's/ ([0-9]+)([0-9]),/ \1.\2 s,/g; s/, $//') |")
hm_log "${rows[-1]}"
{
  echo "Draining $guests guests of $mem MiB (TCG, 1 vCPU, dirtying 48 MiB) between two libvirt daemons on $(nproc) cores, $(date -u +%F):"
  echo
  echo "| method | direction | wall ms | per guest |"
  echo "|---|---|---:|---|"
  printf '%s\n' "${rows[@]}"
} | tee "${out:-/dev/null}"
exit 0
