#!/usr/bin/env bash
# vm.libvirt_faults: a libvirt domain (lvg, on lv1 of libvirt_lib.sh's two daemons) that must
# survive failed hymig migrations to lv2 untouched. Each strikes while round 0 streams (--rate 20M):
#   1. serve killed: `hymig serve` SIGKILLed;
#   2. link cut: the veth between the two hosts goes down (both ends time out);
#   3. digest mismatch: a page of kernel text (never rewritten, never resent) is corrupted in the
#      destination copy's RAM file after it arrived;
#   4. destination QEMU killed (SIGKILL);
#   5. destination libvirtd killed (SIGKILL): hymig's session runs on, but the copy can be neither
#      defined nor resumed through libvirt: hymig kills the copy's QEMU itself; libvirtd restarted.
#   7. the fault matrix's VM cells (docs/operations.md "Faults"): the copy's QEMU killed, and the
#      destination's libvirtd killed, at each phase exactly (the process stops itself there:
#      HYMIG_STOP_AT): connect (libvirtd only: no copy exists yet), ready, round 0, round 1, final
#      delta, verify, device state: as above, exit 1
#      and the guest runs on at lv1; commit: migrate exits 3 (commit sent, unconfirmed), the guest
#      stays paused at lv1 and the copy does not run at lv2; following docs/operations.md, the
#      operator removes what is left at lv2 and resumes the guest at lv1, where it runs on alone.
# After each: migrate exits 1 with an error; lvg runs on lv1 (running, persistent, x-ignore-shared
# off, its counter grows through two full check passes with bad=0); the copy on lv2 never ran (no
# tick on its console), no QEMU of lvg is left on lv2 and lv2 does not know lvg. Then (6.) the
# domain still migrates to lv2, and exactly one QEMU runs it.
set -euo pipefail
# shellcheck disable=SC2034  # read by common.sh
HM_TEST_NAME=vm_libvirt_faults
# shellcheck source=libvirt_test.sh
source "$(dirname "$0")/libvirt_test.sh"

name=lvg
lv_define_start 1 "$name" "${HYMIG_LV_MEM_MIB:-256}"
src=$(lv_tag 1 "$name")
# The guest's RAM files, by the names vm_stable_page / vm_wait_page_arrived look for.
ram_file() { find "${LV_RAMDIR[$1]}" -type f -name '*ram*' 2>/dev/null | head -n1; }
ln -sfn "$(ram_file 1)" "$HM_TMP/lvsrc.ram"
page=$(lv_vm vm_stable_page lvsrc)
hm_log "lvg runs on lv1 (RAM $(readlink "$HM_TMP/lvsrc.ram")); kernel-text page $page is stable"

# strike_mid_round CASE: serve on lv2 and a slow migration; returns once page $page landed in the
# copy's RAM file (HM_MIGRATE_PID, SERVE_PID, DST_TAG set).
strike_mid_round() {
  local what=$1 dst_ram
  lvh_serve 2 "$HM_TMP/$what.serve.log" --timeout 3
  SERVE_PID=$HM_SERVE_PID
  DST_TAG=$LV_LAST_TAG
  HM_MIGRATE_PREFIX=(ip netns exec "${LV_NS[1]}")
  hm_migrate_bg "$HM_TMP/$what.json" "$HM_TMP/$what.err" --domain "$name" --connect "${LV_URI[1]}" \
    --to "$HM_SERVE_ADDR" --report json --progress off --rate 20M --timeout 3
  HM_MIGRATE_PREFIX=()
  hm_wait_for 30 lv__copy_has_ram || hm_fail "$what: no RAM file of the copy appeared on lv2 within 30 s; serve: $(cat "$HM_TMP/$what.serve.log")"
  dst_ram=$(ram_file 2)
  ln -sfn "$dst_ram" "$HM_TMP/lvdst.ram"
  lv_vm vm_wait_page_arrived lvsrc lvdst "$page" 30
  hm_alive "$HM_MIGRATE_PID" || hm_fail "$what: the migration ended before it could be struck mid-round"
  hm_log "$what: pages are landing in the copy on lv2 ($dst_ram)"
}
lv__copy_has_ram() { [ -n "$(ram_file 2)" ]; }
lv__copy_gone() { [ -z "$(lv_qemus 2 | grep "^$name:" || true)" ] && ! lv_domain_defined 2 "$name"; }

# survived CASE: the failure was clean and the guest runs on at lv1 only.
survived() {
  local what=$1 tick
  hm_wait_pid "$HM_MIGRATE_PID" 90
  hm_assert_failed_cleanly "$HM_RC" "$HM_TMP/$what.err" "$what"
  hm_assert_json "$HM_TMP/$what.json" '.committed == false and .outcome == "failed"' "$what report"
  hm_wait_for 30 lv__copy_gone ||
    hm_fail "$what: lv2 still has lvg: QEMUs $(lv_qemus 2 | tr '\n' ' '), state $(lv_domstate_reason 2 "$name")"
  lvh_assert_only_on 1 "$name" "$what"
  lv_is_persistent 1 "$name" || hm_fail "$what: lvg is no longer persistent on lv1"
  [ "$(lvh_ignore_shared 1 "$name")" = false ] || hm_fail "$what: x-ignore-shared is still on at the source"
  tick=$(vm_last_tick "$src")
  lv_vm vm_wait_running_after "$src" "$tick"
  lv_vm vm_check_console "$src"
  [ -z "$(vm_ticks "$DST_TAG")" ] || hm_fail "$what: the copy on lv2 ran the guest: $(vm_ticks "$DST_TAG" | head -n3 | tr '\n' ' ')"
  hm_log "$what: migrate failed ($(grep -m1 -E '^hymig migrate: error:' "$HM_TMP/$what.err")); lvg runs on lv1 at tick $(vm_last_tick "$src"), bad=0; nothing of it on lv2"
}

# 1. hymig serve dies mid-round: the copy's incoming stream closes and its QEMU ends.
strike_mid_round serve_killed
hm_kill "$SERVE_PID"
survived serve_killed

# 2. the link between the hosts is cut mid-round.
strike_mid_round link_cut
lv_link_down
hm_wait_pid "$HM_MIGRATE_PID" 60
lv_link_up
hm_wait_pid "$SERVE_PID" 30
[ "$HM_RC" -eq 1 ] || hm_fail "link_cut: serve --once exited $HM_RC, expected 1"
survived link_cut

# 3. the destination's copy differs at verify.
strike_mid_round digest
printf 'HYMIG-TEST-CORRUPTION' | dd of="$HM_TMP/lvdst.ram" bs=1 seek=$((page * 4096 + 100)) conv=notrunc status=none ||
  hm_fail "cannot write into the copy's RAM file"
survived digest
grep -q -i 'digest' "$HM_TMP/digest.err" || hm_fail "digest: migrate's error does not name the digest: $(cat "$HM_TMP/digest.err")"

# 4. the copy's QEMU dies.
strike_mid_round qemu_killed
qpid=$(lv_qemu_pid 2 "$name")
[ -n "$qpid" ] || hm_fail "qemu_killed: no QEMU of the copy on lv2"
kill -KILL "$qpid"
hm_log "qemu_killed: SIGKILL the copy's QEMU (pid $qpid)"
survived qemu_killed

# 5. the destination's libvirtd dies: the copy cannot be made persistent or resumed.
strike_mid_round libvirtd_killed
lv_kill_daemon 2
hm_wait_pid "$HM_MIGRATE_PID" 90
[ -z "$(lv_qemus 2 | grep "^$name:" || true)" ] ||
  hm_fail "libvirtd_killed: the copy's QEMU still runs on lv2 after the failed session: $(lv_qemus 2 | tr '\n' ' ')"
lv_start_daemon 2
survived libvirtd_killed

# strike_at WHO:POINT CASE: serve on lv2 and a migration that stops (the source, or the daemon)
# at POINT; returns once it did (HM_MIGRATE_PID, SERVE_PID, DST_TAG, STOPPED_PID set).
strike_at() {
  local at=$1 what=$2
  LVH_STOP_AT=
  [ "${at%%:*}" = destination ] && LVH_STOP_AT=$at
  lvh_serve 2 "$HM_TMP/$what.serve.log" --timeout 3
  LVH_STOP_AT=
  SERVE_PID=$HM_SERVE_PID
  DST_TAG=$LV_LAST_TAG
  HM_MIGRATE_PREFIX=(ip netns exec "${LV_NS[1]}")
  [ "${at%%:*}" = source ] && HM_MIGRATE_PREFIX+=(env "HYMIG_STOP_AT=$at")
  hm_migrate_bg "$HM_TMP/$what.json" "$HM_TMP/$what.err" --domain "$name" --connect "${LV_URI[1]}" \
    --to "$HM_SERVE_ADDR" --report json --progress off --timeout 3 --downtime-ms 1 --max-rounds 3
  HM_MIGRATE_PREFIX=()
  STOPPED_PID=$HM_MIGRATE_PID
  [ "${at%%:*}" = destination ] && STOPPED_PID=$SERVE_PID
  hm_wait_for 90 hm_stopped "$STOPPED_PID" ||
    hm_fail "$what: never stopped at $at; migrate: $(tail -c 800 "$HM_TMP/$what.err"); serve: $(tail -n 5 "$HM_TMP/$what.serve.log")"
  hm_log "$what: stopped at $at"
}

# unconfirmed CASE: migrate ended with exit 3 (commit sent, unconfirmed) and the copy does not
# run at lv2: the guest stays paused at lv1. Then the operator's part (docs/operations.md, exit 3):
# the copy's definition, if one stayed, goes at lv2 and the guest resumes at lv1, where it runs on.
unconfirmed() {
  local what=$1 tick
  [ "$HM_RC" -eq 3 ] || hm_fail "$what: migrate exited $HM_RC, expected 3: $(tail -c 800 "$HM_TMP/$what.err")"
  grep -q "commit sent but not confirmed" "$HM_TMP/$what.err" || hm_fail "$what: no 'commit sent but not confirmed': $(tail -c 800 "$HM_TMP/$what.err")"
  hm_wait_for 30 lv__copy_stopped || hm_fail "$what: the copy's QEMU still runs on lv2: $(lv_qemus 2 | tr '\n' ' ')"
  case $(lv_domstate 2 "$name") in running | paused) hm_fail "$what: the copy on lv2 is $(lv_domstate_reason 2 "$name")" ;; esac
  [ "$(lv_domstate 1 "$name")" = paused ] || hm_fail "$what: lvg is '$(lv_domstate_reason 1 "$name")' on lv1, expected paused (exit 3)"
  [ -z "$(vm_ticks "$DST_TAG")" ] || hm_fail "$what: the copy on lv2 ran the guest"
  if lv_domain_defined 2 "$name"; then lv_virsh 2 undefine "$name" >/dev/null || hm_fail "$what: virsh undefine at lv2 failed"; fi
  lv_virsh 1 qemu-monitor-command "$name" \
    '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"x-ignore-shared","state":false}]}}' >/dev/null ||
    hm_fail "$what: cannot switch x-ignore-shared off at lv1"
  lv_virsh 1 resume "$name" >/dev/null || hm_fail "$what: virsh resume at lv1 failed"
  lvh_assert_only_on 1 "$name" "$what"
  tick=$(vm_last_tick "$src")
  lv_vm vm_wait_running_after "$src" "$tick"
  lv_vm vm_check_console "$src"
  hm_log "$what: exit 3, lvg paused at lv1 and not running at lv2; resumed by hand, it runs on at lv1, bad=0"
}
lv__copy_stopped() { [ -z "$(lv_qemus 2 | grep "^$name:" || true)" ]; }

# 7. The fault matrix's VM cells (docs/operations.md, "Faults"): the copy's QEMU killed, and the
# destination's libvirtd killed, at each phase (the copy's QEMU only where the copy exists: from
# ready on). The daemon stops itself at the phase (connection accepted, before the handshake; ready
# sent; a round begun; paused; the digest taken; the commit taken, not acted on),
# except in the device-state phase, where the source stops before sending it. Before the commit:
# exit 1 and the guest runs on at lv1 (survived). At the commit: exit 3 (unconfirmed).
for phase in connect ready round0 round1 final-delta verify device-state commit; do
  at=destination:$phase
  [ "$phase" = device-state ] && at=source:device-state
  for fault in qemu libvirtd; do
    # At connect (the daemon has accepted the connection, before the handshake) no copy exists yet:
    # only libvirtd can be killed there.
    [ "$phase:$fault" = connect:qemu ] && continue
    what=${fault}_killed_$phase
    strike_at "$at" "$what"
    if [ "$fault" = qemu ]; then
      qpid=$(lv_qemu_pid 2 "$name")
      [ -n "$qpid" ] || hm_fail "$what: no QEMU of the copy on lv2"
      kill -KILL "$qpid"
    else
      lv_kill_daemon 2
    fi
    kill -CONT "$STOPPED_PID"
    hm_wait_pid "$HM_MIGRATE_PID" 90
    rc=$HM_RC
    if [ "$fault" = libvirtd ]; then
      hm_wait_pid "$SERVE_PID" 30
      # A libvirtd that died at the commit leaves the copy's definition, shut off; hymig says so.
      lv_start_daemon 2
    fi
    HM_RC=$rc
    if [ "$phase" = commit ]; then
      unconfirmed "$what"
      if [ "$fault" = libvirtd ] && ! grep -q "definition stays on this host" "$HM_TMP/$what.serve.log"; then
        hm_fail "$what: serve did not say the copy's definition stays: $(tail -n 5 "$HM_TMP/$what.serve.log")"
      fi
    else
      survived "$what"
    fi
  done
done

# 6. after all that, it still migrates.
lvh_migrate 1 2 "$name" "final lv1->lv2"
lvh_assert_arrived 1 2 "$name" "final lv1->lv2"
dst=$(lv_tag 2 "$name")
lv_vm vm_wait_running_after "$dst" "$(vm_first_tick "$dst")"
lv_vm vm_check_handover "$src" "$dst"
hm_log "final migration committed ($(lvh_report_line "$LVH_OUT")); lvg runs on lv2 alone, bad=0"
exit 0
