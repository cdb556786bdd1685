#!/usr/bin/env bash
# vm.migrate_pingpong: one guest migrated A -> B -> A -> B -> A over loopback by hymig (QMP
# backend) while it dirties and checks its memory. Each leg: a fresh destination QEMU waiting in
# -incoming defer, `hymig serve --once --vm-qmp`, `hymig migrate --image qmp:`. After each leg:
# migrate exits 0 with a committed, verified report with the device state in it; the source QEMU
# is gone and its RAM file deleted; the destination runs and its console continues the source's
# counter (no reboot, no tick printed twice) with bad=0 through two full check passes of the
# working set; x-ignore-shared is off again on the destination. At the end exactly one QEMU runs.
# Prints per leg hymig's blackout (pause to committed, by part) and the guest-visible one: host time
# between the arrival of the source's last and the destination's first console tick line, minus the
# guest's own clock between them (it stops while the guest is frozen).
set -u -o pipefail
HM_TEST_NAME=vm_migrate_pingpong
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"
hm_deadline 560
hm_tmpdir
mkdir -p "$HM_TMP/store"
vm_require
vm_watch_start

legs=${HYMIG_VM_LEGS:-4}
vm_start g0
vm_wait_ticks g0 1 120
vm_wait_running_after g0 "$(vm_last_tick g0)"
hm_log "guest g0 runs: tick $(vm_last_tick g0)"

src=g0
summary=() hymig_ms=() guest_all=()
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {if (NR) printf "%.0f", a[int((NR + 1) / 2)]; else print "?"}'; }
for ((leg = 1; leg <= legs; leg++)); do
  dst=g$leg
  vm_start "$dst" --incoming
  vm_serve "$dst" "$HM_TMP/leg$leg.serve.log"
  serve_pid=$HM_SERVE_PID
  hm_migrate_run 180 "$HM_TMP/leg$leg.json" "$HM_TMP/leg$leg.err" \
    --image "qmp:$HM_TMP/$src.qmp" --to "$HM_SERVE_ADDR" --report json --timeout 10
  hm_assert_committed "$HM_RC" "$HM_TMP/leg$leg.json" "$HM_TMP/leg$leg.err" "leg $leg ($src -> $dst)"
  hm_assert_json "$HM_TMP/leg$leg.json" '.image.kind == "vm" and .device_state_bytes > 10000' "leg $leg report"
  hm_wait_pid "$serve_pid" 10
  [ "$HM_RC" -eq 0 ] || hm_fail "leg $leg: hymig serve --once exited $HM_RC: $(cat "$HM_TMP/leg$leg.serve.log")"
  grep -q 'committed .*device state [0-9]* bytes' "$HM_TMP/leg$leg.serve.log" ||
    hm_fail "leg $leg: serve logged no commit with a device state: $(cat "$HM_TMP/leg$leg.serve.log")"

  vm_wait_gone "$src" 15
  [ ! -e "$HM_TMP/$src.ram" ] || hm_fail "leg $leg: the source's RAM file $src.ram still exists after the handover"
  st=$(vm_status "$dst")
  [ "$st" = running ] || hm_fail "leg $leg: the destination QEMU is '$st', expected running"
  vm_ctl "$dst" query-migrate-capabilities | jq -e '.[] | select(.capability == "x-ignore-shared") | .state == false' >/dev/null ||
    hm_fail "leg $leg: x-ignore-shared is still on in the destination QEMU"
  vm_wait_running_after "$dst" "$(vm_first_tick "$dst")"
  vm_check_handover "$src" "$dst"

  read -r guest_ms gap < <(vm_blackout_ms "$src" "$dst")
  line=$(jq -r --arg gap "$gap" --arg guest "$guest_ms" --arg leg "$leg" --arg path "$src->$dst" --arg last "$(vm_last_tick "$src")" --arg first "$(vm_first_tick "$dst")" \
    '"leg \($leg) \($path): blackout \(.downtime_ms | floor) ms (pause \(.downtime_parts.pause_ms | floor), final delta \(.downtime_parts.final_delta_ms | floor) [\(.final_delta_pages) pages], verify \(.downtime_parts.verify_ms | floor), device state \(.downtime_parts.device_state_ms | floor) [\(.device_state_bytes) B], commit \(.downtime_parts.commit_ms | floor)); guest-visible \($guest) ms (console gap \($gap) ms); total \(.total_ms | floor) ms, \(.rounds) rounds; ticks \($last) -> \($first), bad=0"' \
    "$HM_TMP/leg$leg.json")
  hm_log "$line"
  summary+=("$line")
  hymig_ms+=("$(jq -r '.downtime_ms' "$HM_TMP/leg$leg.json")")
  guest_all+=("$guest_ms")
  src=$dst
done

alive=$(vm_alive_qemus | tr '\n' ' ')
[ "$alive" = "$src " ] || hm_fail "expected exactly one QEMU ($src) running at the end, found: ${alive:-none}"
hm_log "tick period on the last console: $(vm_period_ms "$src") ms"
for l in "${summary[@]}"; do echo "VM-FIGURE $l"; done
echo "VM-FIGURE median of $legs legs: blackout $(median "${hymig_ms[@]}") ms by hymig's clock (pause to committed), $(median "${guest_all[@]}") ms seen by the guest"
exit 0
