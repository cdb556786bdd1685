#!/usr/bin/env bash
# bench/vm-side-by-side.sh: the same libvirt guest migrated back and forth between two libvirt
# daemons on this machine (tests/vm/libvirt_lib.sh: own network/mount/UTS namespaces, a veth
# 10.77.0.1 <-> 10.77.0.2) by libvirt's own live migration and by hymig, side by side.
#
#   bash bench/vm-side-by-side.sh [--sizes 256,1024] [--runs N] [--methods native,hymig]
#                                 [--out FILE] [--build DIR]
#     --sizes    guest RAM sizes in MiB, comma-separated (default 256,1024)
#     --runs     migrations per size and method (default 3); each is one hop, alternating
#                lv1 -> lv2 -> lv1 ...
#     --methods  native (virsh migrate --live --persistent --undefinesource), hymig
#                (hymig serve --libvirt on the destination, hymig migrate --domain on the source);
#                default both. hymig is left out (said in the output) when the build's hymig has
#                no `migrate --domain` / `serve --libvirt` yet
#     --out      also write the markdown (summary and every run) to FILE
#     --build    the build directory (default $HYMIG_BUILD_DIR, else build/release)
#
# The guest is the vm lane's (tests/vm/lib.sh: Debian's kernel + guest_init as /init, dirtying
# 256 pages per 20 ms tick of a 96 MiB working set and checking every page), 1 vCPU, TCG. Per run:
#   total     the migrating command's wall time (virsh migrate / hymig migrate), and the tool's
#             own figure (libvirt: domjobinfo --completed time elapsed; hymig: report total_ms)
#   blackout  seen by the guest: host time between the arrival of the source console's last and
#             the destination console's first tick line minus the guest's own clock between them
#             (hymig-vm-watch; tests/vm/lib.sh vm_blackout_ms); and the tool's own figure
#             (libvirt: domjobinfo downtime; hymig: report downtime_ms)
#   moved     bytes on the wire (libvirt: data processed; hymig: bulk + reliable channel bytes)
#   clean     the destination continues the source's counter (no reboot, no tick twice) with
#             bad=0 through two full check passes; and the domain runs and is persistent on the
#             destination, is not defined on the source, and one QEMU runs it
# A guest lost after a run (crashed or hung: QEMU 7.2 under TCG loses guest writes during its own
# precopy in some runs, consistent with the TCG dirty-tracking bug fixed upstream in 9.0 by
# 03bfc2188f; hymig finds modified pages by hashing) counts as not clean, and a fresh guest takes
# the remaining runs (at most 3 per size and method).
# The table gives the median and min-max over the runs that completed. Needs root, libvirt 9
# (libvirtd, virsh), QEMU and the guest kernel (tests/lab/fetch-kernel.sh); exits 77 with the
# reason otherwise. One guest at a time (TCG on a small machine: leave the cores to it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
sizes=256,1024
runs=3
methods=native,hymig
out=""
build=${HYMIG_BUILD_DIR:-$ROOT/build/release}
usage() { sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) sizes=${2:?--sizes needs a value}; shift 2 ;;
    --runs) runs=${2:?--runs needs a value}; shift 2 ;;
    --methods) methods=${2:?--methods needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --build) build=${2:?--build needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "vm-side-by-side.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "vm-side-by-side.sh: --runs must be a positive number" >&2; exit 2; }
[[ $sizes =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "vm-side-by-side.sh: --sizes must be MiB numbers, comma-separated" >&2; exit 2; }
[[ $methods =~ ^(native|hymig)(,(native|hymig))*$ ]] || { echo "vm-side-by-side.sh: --methods takes native and/or hymig" >&2; exit 2; }
[ -z "$out" ] || out=$(realpath -m "$out")
build=$(realpath -m "$build")
export HYMIG_BUILD_DIR=$build
export HYMIG=$build/cli/hymig HYMIG_VM_QMP=$build/tests/vm/hymig-vm-qmp HYMIG_VM_WATCH=$build/tests/vm/hymig-vm-watch \
  HYMIG_VM_GUEST_INIT=$build/tests/vm/guest/hymig-vm-guest-init
for b in "$HYMIG" "$HYMIG_VM_QMP" "$HYMIG_VM_WATCH" "$HYMIG_VM_GUEST_INIT"; do
  [ -x "$b" ] || { echo "vm-side-by-side.sh: $b is missing: build first (cmake --build $build)" >&2; exit 2; }
done

# shellcheck disable=SC2034  # read by common.sh
HM_TEST_NAME=vm-side-by-side
# shellcheck source=../tests/lib/common.sh
source "$ROOT/tests/lib/common.sh"
# shellcheck source=../tests/vm/lib.sh
source "$ROOT/tests/vm/lib.sh"
# shellcheck source=../tests/vm/libvirt_lib.sh
source "$ROOT/tests/vm/libvirt_lib.sh"
trap 'hm_fail "unexpected failure (status $?) at line $LINENO: $BASH_COMMAND"' ERR
hm_tmpdir
lv_require

want_native=0 want_hymig=0 hymig_note=""
[[ ,$methods, == *,native,* ]] && want_native=1
if [[ ,$methods, == *,hymig,* ]]; then
  if "$HYMIG" migrate --help 2>&1 | grep -q -- '--domain' && "$HYMIG" serve --help 2>&1 | grep -q -- '--libvirt'; then
    want_hymig=1
  else
    hymig_note="hymig not measured: $HYMIG has no \`migrate --domain\` / \`serve --libvirt\` (libvirt backend not in this build)"
    hm_log "$hymig_note"
  fi
fi
((want_native + want_hymig > 0)) || hm_skip "nothing to measure (${hymig_note:-no method chosen})"

vm_watch_start
lv_start_pair
runs_tsv=$HM_TMP/runs.tsv
: >"$runs_tsv"

# guest_check SRC_TAG DST_TAG: "yes", or "no: <why>" (the vm helpers end a subshell with hm_fail).
guest_check() {
  local err=$HM_TMP/check.err
  if (lv_vm vm_wait_running_after "$2" "$(vm_first_tick "$2")" && lv_vm vm_check_handover "$1" "$2") 2>"$err"; then
    echo yes
  else
    echo "no: $(grep -m1 FAIL "$err" | sed 's/.*FAIL: //' | tr '|' '/')"
  fi
}

# record SIZE METHOD RUN HOP RC WALL_MS OWN_MS GUEST_MS TOOL_DOWNTIME_MS BYTES CLEAN STATE
record() { (IFS=$'\t'; echo "$*") >>"$runs_tsv"; }

# hop_native FROM TO NAME SIZE RUN: one libvirt live migration; sets `moved` (1 if the guest moved).
hop_native() {
  local from=$1 to=$2 name=$3 size=$4 run=$5 rc=0 guest="?" clean="-" state="-"
  lv_native_migrate "$from" "$to" "$name" || rc=$?
  moved=0
  if [ "$rc" -eq 0 ]; then
    moved=1
    state=$(lv_placement "$from" "$to" "$name")
    clean=$(guest_check "$LV_MIG_SRC_TAG" "$LV_MIG_DST_TAG")
    read -r guest _ < <(vm_blackout_ms "$LV_MIG_SRC_TAG" "$LV_MIG_DST_TAG")
  else
    state="virsh migrate exited $rc: $(tr '\n|' ' /' <<<"$LV_MIG_OUT" | cut -c1-200)"
  fi
  hop_clean=$clean
  record "$size" native "$run" "lv$from->lv$to" "$rc" "$LV_MIG_WALL_MS" "${LV_JOB[time_elapsed]:-?}" "$guest" \
    "${LV_JOB[downtime]:-?}" "${LV_JOB[data_processed]:-?}" "$clean" "$state"
  hm_log "native $size MiB run $run lv$from->lv$to: rc $rc, virsh $LV_MIG_WALL_MS ms, ${LV_JOB_LINE:-no job figures}; guest blackout $guest ms; clean $clean; $state"
}

# hop_hymig FROM TO NAME SIZE RUN: one migration by hymig; sets `moved`.
hop_hymig() {
  local from=$1 to=$2 name=$3 size=$4 run=$5 rc guest="?" clean="-" state="-" serve_pid src_pid
  local j=$HM_TMP/hymig-$size-$run.json e=$HM_TMP/hymig-$size-$run.err own="?" down="?" bytes="?"
  src_pid=$(lv_qemu_pid "$from" "$name")
  lv_serve "$to" "$HM_TMP/hymig-$size-$run.serve.log" --timeout 10
  serve_pid=$HM_SERVE_PID
  lv_hymig_migrate 600 "$from" "$to" "$name" "$j" "$e"
  rc=$HM_RC
  hm_wait_pid "$serve_pid" 30
  [ "$HM_RC" -ne 124 ] || kill -KILL "$serve_pid" 2>/dev/null || true
  if jq -e 'type == "object"' "$j" >/dev/null 2>&1; then
    own=$(jq -r '.total_ms // "?" | if type == "number" then floor else . end' "$j")
    down=$(jq -r '.downtime_ms // "?" | if type == "number" then floor else . end' "$j")
    bytes=$(jq -r 'if .bulk then ((.bulk.bytes // 0) + (.reliable.bytes // 0)) else "?" end' "$j")
  fi
  moved=0
  if [ "$rc" -eq 0 ]; then
    moved=1
    [ -z "$src_pid" ] || lv_wait_qemu_gone "$src_pid" 15 || true
    state=$(lv_placement "$from" "$to" "$name")
    clean=$(guest_check "$LV_MIG_SRC_TAG" "$LV_MIG_DST_TAG")
    read -r guest _ < <(vm_blackout_ms "$LV_MIG_SRC_TAG" "$LV_MIG_DST_TAG")
  else
    state="hymig migrate exited $rc: $(grep -m1 'error:' "$e" | tr '|' '/' | cut -c1-200); source $(lv_domstate_reason "$from" "$name"), destination $(lv_domstate_reason "$to" "$name")"
  fi
  hop_clean=$clean
  record "$size" hymig "$run" "lv$from->lv$to" "$rc" "$LV_MIG_WALL_MS" "$own" "$guest" "$down" "$bytes" "$clean" "$state"
  hm_log "hymig $size MiB run $run lv$from->lv$to: rc $rc, wall $LV_MIG_WALL_MS ms, report total $own ms, downtime $down ms, $bytes B; guest blackout $guest ms; clean $clean; $state"
}

# fresh_guest NAME SIZE: NAME gone from both daemons, then defined and started anew on lv1.
fresh_guest() {
  local n
  for n in 1 2; do
    lv_virsh "$n" destroy "$1" >/dev/null 2>&1 || true
    lv_virsh "$n" undefine "$1" >/dev/null 2>&1 || true
  done
  lv_define_start 1 "$1" "$2"
  at=1
}

IFS=, read -r -a size_list <<<"$sizes"
for size in "${size_list[@]}"; do
  name=sbs$size
  fresh_guest "$name" "$size"
  for method in native hymig; do
    if [ "$method" = native ]; then ((want_native)) || continue; else ((want_hymig)) || continue; fi
    restarts=0
    for ((run = 1; run <= runs; run++)); do
      to=$((3 - at))
      moved=0 hop_clean=yes
      if [ "$method" = native ]; then
        hop_native "$at" "$to" "$name" "$size" "$run"
      else
        hop_hymig "$at" "$to" "$name" "$size" "$run"
      fi
      ((moved)) && at=$to
      # A guest lost (crashed or hung after arriving, or gone with a failed migration): a fresh
      # one on lv1 for the remaining runs, at most 3 times per size and method.
      if [ "$(lv_domstate "$at" "$name")" != running ] || [ "${hop_clean%%:*}" = no ]; then
        hm_log "guest $name lost after run $run ($method; lv$at: $(lv_domstate_reason "$at" "$name"); clean: $hop_clean): a fresh guest on lv1"
        fresh_guest "$name" "$size"
        restarts=$((restarts + 1))
        ((restarts < 3)) || { hm_log "guest $name lost $restarts times by $method; no more $method runs of $size MiB"; break; }
      fi
    done
  done
  lv_virsh "$at" destroy "$name" >/dev/null 2>&1 || true
  lv_virsh "$at" undefine "$name" >/dev/null 2>&1 || true
done

# The markdown: one summary row per (size, method), then every run.
summary() {
  awk -F'\t' '
    function stat(list,    n, a, i, j, t, med) {
      n = split(list, a, " ")
      if (n == 0) return "-"
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) {t = a[i]; a[i] = a[j]; a[j] = t}
      med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      if (n == 1) return sprintf("%.0f", med)
      return sprintf("%.0f (%.0f–%.0f)", med, a[1], a[n])
    }
    # Figures of the runs that left the guest clean ("c" lists), and of every run that migrated
    # ("a" lists), used (marked *) only when no run left the guest clean.
    function add(set, k, v) { if (v ~ /^[0-9.]+$/) vals[set SUBSEP k] = vals[set SUBSEP k] " " v }
    function addrun(set, k) {
      add(set, k SUBSEP "wall", $6); add(set, k SUBSEP "own", $7); add(set, k SUBSEP "guest", $8); add(set, k SUBSEP "down", $9)
      if ($10 ~ /^[0-9]+$/) add(set, k SUBSEP "mib", $10 / 1048576)
    }
    {
      k = $1 SUBSEP $2
      if (!(k in seen)) { seen[k] = 1; order[++n] = k }
      runs[k]++
      if ($5 != 0) next
      ok[k]++
      addrun("a", k)
      if ($11 == "yes") { clean[k]++; addrun("c", k) }
      if ($12 == "ok") placed[k]++
    }
    END {
      print "| guest | method | migrated | guest clean | domain placed | total, command (ms) | total, tool (ms) | blackout seen by guest (ms) | downtime, tool (ms) | moved (MiB) |"
      print "|---|---|---|---|---|---|---|---|---|---|"
      for (i = 1; i <= n; i++) {
        k = order[i]; split(k, p, SUBSEP)
        set = clean[k] > 0 ? "c" : "a"; mark = clean[k] > 0 ? "" : " *"
        if (!ok[k]) mark = ""
        printf "| %s MiB | %s | %d/%d | %d/%d | %d/%d | %s%s | %s%s | %s%s | %s%s | %s%s |\n", p[1], p[2] == "native" ? "libvirt native" : "hymig",
          ok[k], runs[k], clean[k], ok[k], placed[k], ok[k],
          stat(vals[set SUBSEP k SUBSEP "wall"]), mark, stat(vals[set SUBSEP k SUBSEP "own"]), mark,
          stat(vals[set SUBSEP k SUBSEP "guest"]), mark, stat(vals[set SUBSEP k SUBSEP "down"]), mark,
          stat(vals[set SUBSEP k SUBSEP "mib"]), mark
      }
    }' "$runs_tsv"
}
runs_table() {
  echo "| guest | method | run | hop | exit | total, command (ms) | total, tool (ms) | blackout seen by guest (ms) | downtime, tool (ms) | moved (bytes) | guest clean | domain placed |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' '{printf "| %s MiB | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12}' "$runs_tsv"
}
report() {
  echo "## VM migration side by side: libvirt's own live migration and hymig"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, TCG guest (1 vCPU, qemu64; 96 MiB working set, 256 pages dirtied per 20 ms), $(libvirtd --version | awk '{print $NF}') libvirt, QEMU $(qemu-system-x86_64 --version | awk 'NR == 1 {print $4}'), two libvirt daemons in network namespaces joined by a veth; $runs run(s) per size and method; median (min–max) over the runs that migrated and left the guest clean (* no run left it clean: the figures of the runs that migrated). Machine load (1-min average) at the end: $(cut -d' ' -f1 /proc/loadavg)."
  [ -z "$hymig_note" ] || { echo; echo "$hymig_note."; }
  echo
  summary
  echo
  echo "Every run:"
  echo
  runs_table
}
report | tee "$HM_TMP/report.md"
[ -z "$out" ] || cp "$HM_TMP/report.md" "$out"
exit 0
