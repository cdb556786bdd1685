# shellcheck shell=bash
# hymig between the two libvirt daemons of libvirt_lib.sh. Source after it.
#
#   lvh_serve TO LOG [ARGS]     `hymig serve --once --libvirt` for daemon TO, in LV_NS[TO], on
#                               LV_ADDR[TO] (any free port); HM_SERVE_PID, HM_SERVE_ADDR. Allows
#                               what the lane's domain uses (lvh_policy_args) and names daemon
#                               TO's memory_backing_dir (LV_RAMDIR[TO]) as the RAM files' directory
#   lvh_policy_args             the serve options that allow the lane's domain (lv_domain_xml):
#                               its kernel's and initramfs's directories and the consoles'
#                               /var/log/hymig (paths as the daemons see them)
#   lvh_daemon N LOG PORT [ARGS]
#                               a long-running `hymig serve --libvirt` for daemon N (not --once), in
#                               LV_NS[N] on LV_ADDR[N]:PORT (0: any free port); HM_SERVE_PID,
#                               HM_SERVE_ADDR. The same allowances as lvh_serve
#   lvh_migrate FROM TO NAME WHAT [ARGS]
#                               serve on TO, then `hymig migrate --domain NAME` from FROM (in
#                               LV_NS[FROM]); asserts exit 0 and a committed, verified report with
#                               device state, and serve's exit 0; LVH_OUT is the JSON report
#   lvh_assert_arrived FROM TO NAME WHAT
#                               NAME runs and is persistent on TO, x-ignore-shared off there, is
#                               not defined on FROM, and exactly one QEMU runs it (TO's)
#   lvh_assert_moved FROM TO NAME SRC_TAG WHAT
#                               lvh_assert_arrived, then the guest runs on at TO and TO's console
#                               continues SRC_TAG's counter with bad=0 (vm_check_handover)
#   lvh_assert_only_on N NAME WHAT
#                               NAME runs on N only (domstate running, one QEMU, N's)
#   lvh_ignore_shared N NAME    "true"/"false": the x-ignore-shared capability of NAME's QEMU on N
#   lvh_report_line JSON        hymig's main figures from a report, one line

lvh_policy_args() {
  printf '%s\n' --allow-path "$(dirname "$VM_KERNEL")" --allow-path "$(dirname "$VM_INITRD")" \
    --allow-path "$(dirname "$(lv_serial_path x)")"
}

lvh_serve() {
  local to=$1 log=$2 policy
  shift 2
  lv_expect "$to" "$name"
  mapfile -t policy < <(lvh_policy_args)
  # LVH_STOP_AT=destination:POINT: the daemon stops itself there (protocol/stop_point.hpp).
  HM_SERVE_PREFIX=(ip netns exec "${LV_NS[$to]}" env "HYMIG_STOP_AT=${LVH_STOP_AT:-}")
  hm_start_serve "$log" --listen "${LV_ADDR[$to]}:0" --once --libvirt --connect "${LV_URI[$to]}" \
    --vm-runtime-dir "${LV_RUNDIR[$to]}" --store "$HM_TMP/store$to" \
    --memory-backing-dir "${LV_RAMDIR[$to]}" "${policy[@]}" "$@"
  HM_SERVE_PREFIX=()
}

lvh_daemon() {
  local n=$1 log=$2 port=$3 policy
  shift 3
  mapfile -t policy < <(lvh_policy_args)
  mkdir -p "$HM_TMP/store$n"
  HM_SERVE_PREFIX=(ip netns exec "${LV_NS[$n]}")
  hm_start_serve "$log" --listen "${LV_ADDR[$n]}:$port" --libvirt --connect "${LV_URI[$n]}" \
    --vm-runtime-dir "${LV_RUNDIR[$n]}" --store "$HM_TMP/store$n" --memory-backing-dir "${LV_RAMDIR[$n]}" "${policy[@]}" "$@"
  HM_SERVE_PREFIX=()
}

lvh_migrate() {
  local from=$1 to=$2 dom=$3 what=$4
  shift 4
  local n=$((${LVH_N:-0} + 1))
  LVH_N=$n
  lvh_serve "$to" "$HM_TMP/lvh$n.serve.log"
  local serve_pid=$HM_SERVE_PID
  LVH_OUT=$HM_TMP/lvh$n.json
  HM_MIGRATE_PREFIX=(ip netns exec "${LV_NS[$from]}")
  hm_migrate_run 240 "$LVH_OUT" "$HM_TMP/lvh$n.err" --domain "$dom" --connect "${LV_URI[$from]}" \
    --to "$HM_SERVE_ADDR" --report json --progress off "$@"
  HM_MIGRATE_PREFIX=()
  [ "$HM_RC" -eq 0 ] || hm_fail "$what: hymig migrate exited $HM_RC; stderr: $(tail -c 2500 "$HM_TMP/lvh$n.err"); serve: $(tail -c 1500 "$HM_TMP/lvh$n.serve.log"); destination QEMU log: $(tail -c 1500 "${LV_ROOT[$to]}/varlog/libvirt/qemu/$dom.log" 2>/dev/null)"
  hm_assert_report_ok "$LVH_OUT"
  [ "$(jq -r '.device_state_bytes // 0' "$LVH_OUT")" -gt 0 ] || hm_fail "$what: the report moved no device state"
  hm_wait_pid "$serve_pid" 30
  [ "$HM_RC" -eq 0 ] || hm_fail "$what: serve exited $HM_RC: $(tail -c 1500 "$HM_TMP/lvh$n.serve.log")"
  grep -q "committed" "$HM_TMP/lvh$n.serve.log" || hm_fail "$what: serve logged no commit: $(cat "$HM_TMP/lvh$n.serve.log")"
}

lvh_ignore_shared() {
  lv_virsh "$1" qemu-monitor-command "$2" '{"execute":"query-migrate-capabilities"}' |
    jq -r '.return[] | select(.capability == "x-ignore-shared") | .state'
}

lvh_assert_only_on() {
  local n=$1 dom=$2 what=$3 pid all
  [ "$(lv_domstate "$n" "$dom")" = running ] || hm_fail "$what: $dom is '$(lv_domstate_reason "$n" "$dom")' on lv$n, expected running"
  pid=$(lv_qemu_pid "$n" "$dom")
  [ -n "$pid" ] || hm_fail "$what: no QEMU runs $dom on lv$n"
  all=$( (lv_qemus 1; lv_qemus 2) | grep "^$dom:" | tr '\n' ' ' || true)
  [ "$all" = "$dom:$pid " ] || hm_fail "$what: expected exactly one QEMU of $dom (pid $pid on lv$n), found: ${all:-none}"
}

lvh_assert_arrived() {
  local from=$1 to=$2 dom=$3 what=$4
  lvh_assert_only_on "$to" "$dom" "$what"
  lv_is_persistent "$to" "$dom" || hm_fail "$what: $dom is not persistent on the destination (it was at the source)"
  ! lv_domain_defined "$from" "$dom" || hm_fail "$what: $dom is still known on the source ($(lv_domstate_reason "$from" "$dom"))"
  local ign
  ign=$(lvh_ignore_shared "$to" "$dom")
  [ "$ign" = false ] || hm_fail "$what: x-ignore-shared is '$ign' on the destination's QEMU, expected false"
}

lvh_assert_moved() {
  local from=$1 to=$2 dom=$3 src=$4 what=$5 dst
  lvh_assert_arrived "$from" "$to" "$dom" "$what"
  dst=$(lv_tag "$to" "$dom")
  lv_vm vm_wait_running_after "$dst" "$(vm_first_tick "$dst")"
  lv_vm vm_check_handover "$src" "$dst"
}

lvh_report_line() {
  jq -r '"hymig: total \(.total_ms | floor) ms, blackout \(.downtime_ms | floor) ms, \(.rounds) rounds, \(.bulk.bytes + .reliable.bytes) bytes (\(.bulk.transport) + \(.reliable.transport)), device state \(.device_state_bytes) bytes"' "$1" 2>/dev/null ||
    echo "(report unreadable)"
}
