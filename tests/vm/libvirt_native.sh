#!/usr/bin/env bash
# vm.libvirt_native: libvirt's own live migration between two libvirt daemons on this machine
# (tests/vm/libvirt_lib.sh: each in its own network, mount and UTS namespaces, joined by a veth),
# the baseline the hymig libvirt backend is measured against and the proof that the two-daemon
# setup works. A 256 MiB guest (the vm lane's kernel + guest_init, dirtying and checking its
# memory) is defined and started on lv1, then migrated lv1 -> lv2 -> lv1 by
# `virsh migrate --live --persistent --undefinesource` over the veth while it works. After each hop:
# the domain runs and is persistent on the destination and is not defined on the source any more,
# exactly one QEMU (the destination's, libvirt's pid file) runs the guest, and the destination's
# console continues the source's counter (no reboot, no tick twice) with bad=0 through two full
# check passes. Prints per hop libvirt's job figures (domjobinfo --completed on the destination)
# and the guest-visible blackout from the console lines' arrival times (hymig-vm-watch).
#
# QEMU 7.2 under TCG loses guest writes during its own precopy in some runs (here ~1 hop in 10 at
# 256 MiB, most first hops at 1 GiB, anonymous RAM too; consistent with the TCG dirty-tracking bug
# fixed upstream in 9.0 by 03bfc2188f "physmem: Fix migration dirty bitmap coherency with TCG
# memory access"; KVM is not affected): the guest oopses or hangs right after arriving, libvirt
# having reported a downtime of 10-80 ms. That is QEMU's, not this setup's, so the guest's health
# after a hop is asserted only with HYMIG_VM_NATIVE_STRICT=1 (on a QEMU with that fix, or under
# KVM); without it a guest lost that way is printed with its console (VM-FIGURE guest lost) and the
# sequence ends there. Where the domain is after each hop (running, persistent, undefined at the
# source, one QEMU) is asserted every time, and no run is ever retried.
# No timing is asserted. Exits 77 (reason printed) without root, libvirt, QEMU or a guest kernel.
set -euo pipefail
# shellcheck disable=SC2034  # read by common.sh
HM_TEST_NAME=vm_libvirt_native
# shellcheck source=libvirt_test.sh
source "$(dirname "$0")/libvirt_test.sh"

mem=${HYMIG_LV_MEM_MIB:-256}
strict=${HYMIG_VM_NATIVE_STRICT:-0}

# guest_health SRC_TAG DST_TAG: the guest ticks on at the destination, continuing the source's
# counter, bad=0 through two check passes. False (the reason in $HM_TMP/health.err) otherwise:
# the vm helpers end with hm_fail, here inside a subshell.
guest_health() {
  (
    hm_wait_for 60 vm__tick_at_least "$2" 1 ||
      hm_fail "the guest printed no tick within 60 s of arriving; its console: $(tail -c 1200 "$HM_TMP/$2.serial" 2>/dev/null | tr -d '\r')"
    lv_vm vm_wait_running_after "$2" "$(vm_first_tick "$2")"
    lv_vm vm_check_handover "$1" "$2"
  ) 2>"$HM_TMP/health.err"
}

# run_sequence NAME: lv1 -> lv2 -> lv1. Returns 1 if libvirt's migration lost the guest (figures
# and reason logged; a failure with HYMIG_VM_NATIVE_STRICT=1), ends the test on any other failure.
run_sequence() {
  local name=$1 from=1 to hop st src dst guest_ms gap line
  lv_define_start 1 "$name" "$mem"
  lv_is_persistent 1 "$name" || hm_fail "lv1: $name is not persistent after define + start"
  ! lv_domain_defined 2 "$name" || hm_fail "lv2 knows $name before any migration"
  for to in 2 1; do
    hop="lv$from->lv$to"
    if ! lv_native_migrate "$from" "$to" "$name"; then
      hm_fail "$hop: virsh migrate failed: $LV_MIG_OUT; source state $(lv_domstate_reason "$from" "$name"), destination $(lv_domstate_reason "$to" "$name"); destination QEMU log: $(tail -c 1500 "${LV_ROOT[$to]}/varlog/libvirt/qemu/$name.log" 2>/dev/null)"
    fi
    src=$LV_MIG_SRC_TAG dst=$LV_MIG_DST_TAG
    st=$(lv_domstate "$to" "$name")
    if [ "$st" = running ]; then
      lv_is_persistent "$to" "$name" || hm_fail "$hop: $name is not persistent on the destination (--persistent)"
      lv_assert_one_qemu "$to" "$name"
    fi
    ! lv_domain_defined "$from" "$name" ||
      hm_fail "$hop: $name is still known on the source ($(lv_domstate_reason "$from" "$name")) after --undefinesource"
    rm -f "$HM_TMP/health.err"
    if [ "$st" != running ] || ! guest_health "$src" "$dst"; then
      hm_log "$hop: libvirt's migration completed ($LV_JOB_LINE) but lost the guest: domain $(lv_domstate_reason "$to" "$name"); $(sed -n 's/.*FAIL: //p' "$HM_TMP/health.err" 2>/dev/null | head -c 1500)$( [ "$st" = running ] || tail -c 1200 "$(lv_console "$to" "$name")" 2>/dev/null | tr -d '\r')"
      echo "VM-FIGURE guest lost: hop $hop ($mem MiB): virsh migrate $LV_MIG_WALL_MS ms; libvirt: $LV_JOB_LINE"
      [ "$strict" != 1 ] || hm_fail "$hop: libvirt's own migration lost the guest (HYMIG_VM_NATIVE_STRICT=1)"
      return 1
    fi
    read -r guest_ms gap < <(vm_blackout_ms "$src" "$dst")
    line="hop $hop ($mem MiB): virsh migrate $LV_MIG_WALL_MS ms; libvirt: $LV_JOB_LINE; guest-visible blackout $guest_ms ms (console gap $gap ms); ticks $(vm_last_tick "$src") -> $(vm_first_tick "$dst"), bad=0"
    hm_log "$line"
    figures+=("$line")
    from=$to
  done
  # The whole sequence: every console clean, one QEMU left, on lv1.
  for tag in "$name@lv1.1" "$name@lv2.1" "$name@lv1.2"; do lv_vm vm_check_console "$tag"; done
  lv_assert_one_qemu 1 "$name"
}

figures=()
if ! run_sequence lvg; then
  hm_log "libvirt's own migration lost the guest (QEMU 7.2's TCG precopy, see above); its health is asserted only with HYMIG_VM_NATIVE_STRICT=1"
fi
for l in "${figures[@]}"; do echo "VM-FIGURE $l"; done
exit 0
