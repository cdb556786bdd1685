#!/usr/bin/env bash
# vm.libvirt_migrate: hymig live-migrates a libvirt domain between two libvirt daemons on this
# machine (tests/vm/libvirt_lib.sh: own network, mount and UTS namespaces each, joined by a veth):
# `hymig serve --libvirt` in the destination's namespace, `hymig migrate --domain` in the
# source's, lv1 -> lv2 -> lv1 -> lv2 -> lv1 while the guest works (the vm lane's kernel +
# guest_init, dirtying and checking its memory). After each hop: migrate exits 0 with a committed,
# verified report that moved device state; the domain runs on the destination, persistent (as it
# was at the source), with x-ignore-shared off again (a later native migration must send the RAM);
# it is not defined on the source any more; exactly one QEMU runs the guest; the destination's
# console continues the source's counter with bad=0 through two full check passes. Finally
# libvirt's own migration of the same domain still works (lv1 -> lv2): it moves the RAM again.
# Prints per hop hymig's figures and the guest-visible blackout. No timing is asserted. Exits 77
# (reason printed) without root, libvirt, QEMU or a guest kernel.
set -euo pipefail
# shellcheck disable=SC2034  # read by common.sh
HM_TEST_NAME=vm_libvirt_migrate
# shellcheck source=libvirt_test.sh
source "$(dirname "$0")/libvirt_test.sh"

name=lvg
mem=${HYMIG_LV_MEM_MIB:-256}
lv_define_start 1 "$name" "$mem"

figures=()
from=1
for to in 2 1 2 1; do
  hop="lv$from->lv$to"
  src=$(lv_tag "$from" "$name")
  lvh_migrate "$from" "$to" "$name" "$hop"
  lvh_assert_arrived "$from" "$to" "$name" "$hop"
  dst=$(lv_tag "$to" "$name")
  lv_vm vm_wait_running_after "$dst" "$(vm_first_tick "$dst")"
  lv_vm vm_check_handover "$src" "$dst"
  read -r guest_ms gap < <(vm_blackout_ms "$src" "$dst")
  line="hop $hop ($mem MiB): $(lvh_report_line "$LVH_OUT"); guest-visible blackout $guest_ms ms (console gap $gap ms); ticks $(vm_last_tick "$src") -> $(vm_first_tick "$dst"), bad=0"
  hm_log "$line"
  figures+=("$line")
  from=$to
done

# libvirt's own migration still works after hymig's: x-ignore-shared is off, the definition clean.
if ! lv_native_migrate 1 2 "$name"; then
  hm_fail "libvirt's own migration after hymig's failed: $LV_MIG_OUT; destination QEMU log: $(tail -c 1500 "${LV_ROOT[2]}/varlog/libvirt/qemu/$name.log" 2>/dev/null)"
fi
# With x-ignore-shared left on, QEMU would have sent no RAM (and the guest would crash on arrival).
moved=${LV_JOB[memory_processed]:-${LV_JOB[data_processed]:-0}}
[ "$moved" -gt $((64 << 20)) ] || hm_fail "libvirt's own migration after hymig's moved only $moved bytes of RAM: x-ignore-shared still on? ($LV_JOB_LINE)"
! lv_domain_defined 1 "$name" || hm_fail "native lv1->lv2: $name is still known on lv1"
lv_is_persistent 2 "$name" || hm_fail "native lv1->lv2: $name is not persistent on lv2"
figures+=("native hop lv1->lv2 after hymig's ($mem MiB): $LV_JOB_LINE; guest afterwards: $(lv_domstate_reason 2 "$name")")

# Every console of hymig's hops is clean. (The guest's health after libvirt's own precopy is not
# asserted: QEMU 7.2 under TCG loses guest writes during it in some runs; bench/vm-side-by-side.sh.)
for f in "$HM_TMP"/"$name"@lv*.serial; do
  tag=$(basename "$f" .serial)
  [ "$tag" = "$LV_MIG_DST_TAG" ] && continue
  lv_vm vm_check_console "$tag"
done
for l in "${figures[@]}"; do echo "VM-FIGURE $l"; done
exit 0
