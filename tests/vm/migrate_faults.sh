#!/usr/bin/env bash
# vm.migrate_faults: one guest (g0) that must survive failed migrations untouched.
#   1. serve killed: `hymig serve` SIGKILLed while round 0 streams (--rate 20M).
#   2. digest mismatch: a page of kernel text (never rewritten, so never resent) is corrupted in
#      the destination's RAM file after it arrived: the digests differ at verify.
#   3. destination QEMU killed (SIGKILL) while round 0 streams: the device state finds no QEMU.
# After each: migrate exits 1 with an error; the guest runs at the source (state running, its
# counter keeps growing through two full check passes, bad=0, x-ignore-shared off); the
# destination QEMU never ran the guest (no tick on its console) and is gone; where serve lived on
# it exited 1 and deleted the destination's RAM file. Then the guest still migrates (4.), and at
# the end exactly one QEMU runs.
set -u -o pipefail
HM_TEST_NAME=vm_migrate_faults
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"
hm_deadline 560
hm_tmpdir
mkdir -p "$HM_TMP/store"
vm_require
vm_watch_start

vm_start g0
vm_wait_ticks g0 1 120
vm_wait_running_after g0 "$(vm_last_tick g0)"
page=$(vm_stable_page g0)
hm_log "guest g0 runs (tick $(vm_last_tick g0)); kernel-text page $page is stable"

# Slow enough (20 MiB/s: ~13 s for 256 MiB) to strike while round 0 streams.
slow_migrate() { # slow_migrate NAME DST
  hm_migrate_bg "$HM_TMP/$1.json" "$HM_TMP/$1.err" --image "qmp:$HM_TMP/g0.qmp" --to "$HM_SERVE_ADDR" \
    --report json --rate 20M --timeout 3
}

# The source runs on, clean; the destination never ran the guest and is gone.
assert_survived() { # assert_survived CASE DST
  local what=$1 dst=$2 st tick caps
  hm_wait_pid "$HM_MIGRATE_PID" 60
  hm_assert_failed_cleanly "$HM_RC" "$HM_TMP/$what.err" "$what"
  hm_assert_json "$HM_TMP/$what.json" '.committed == false and .outcome == "failed"' "$what report"
  st=$(vm_status g0)
  [ "$st" = running ] || hm_fail "$what: the source guest is '$st' after the failed migration, expected running"
  caps=$(vm_ctl g0 query-migrate-capabilities)
  jq -e '.[] | select(.capability == "x-ignore-shared") | .state == false' >/dev/null <<<"$caps" ||
    hm_fail "$what: x-ignore-shared is still on at the source"
  tick=$(vm_last_tick g0)
  vm_wait_running_after g0 "$tick"
  vm_check_console g0
  [ -z "$(vm_ticks "$dst")" ] || hm_fail "$what: the destination $dst ran the guest: $(vm_ticks "$dst" | head -n3 | tr '\n' ' ')"
  vm_wait_gone "$dst" 15
  hm_log "$what: migrate failed ($(grep -m1 -E '^hymig migrate: error:' "$HM_TMP/$what.err")); g0 runs on at tick $(vm_last_tick g0), bad=0; $dst gone without running"
}

# 1. the destination daemon dies mid-round
vm_start d1 --incoming
vm_serve d1 "$HM_TMP/serve_killed.serve.log" --timeout 3
serve_pid=$HM_SERVE_PID
slow_migrate serve_killed
vm_wait_page_arrived g0 d1 "$page" 30
hm_log "serve_killed: pages are landing in d1; SIGKILL serve (pid $serve_pid)"
hm_kill "$serve_pid"
# Nothing is left to kill d1: its incoming stream (a socket whose other end was serve's) closed,
# and a QEMU whose incoming migration fails exits by itself.
assert_survived serve_killed d1
rm -f "$HM_TMP/d1.ram"

# 2. the digest differs at verify
vm_start d2 --incoming
vm_serve d2 "$HM_TMP/digest.serve.log" --timeout 3
serve_pid=$HM_SERVE_PID
slow_migrate digest
vm_wait_page_arrived g0 d2 "$page" 30
printf 'HYMIG-TEST-CORRUPTION' | dd of="$HM_TMP/d2.ram" bs=1 seek=$((page * 4096 + 100)) conv=notrunc status=none ||
  hm_fail "cannot write into d2's RAM file"
hm_log "digest: page $page arrived in d2 and was corrupted there"
assert_survived digest d2
grep -q -i 'digest' "$HM_TMP/digest.err" || hm_fail "digest: migrate's error does not name the digest: $(cat "$HM_TMP/digest.err")"
hm_wait_pid "$serve_pid" 10
[ "$HM_RC" -eq 1 ] || hm_fail "digest: serve --once exited $HM_RC, expected 1"
[ ! -e "$HM_TMP/d2.ram" ] || hm_fail "digest: serve left the destination's RAM file d2.ram behind"

# 3. the destination QEMU dies before it could resume
vm_start d3 --incoming
vm_serve d3 "$HM_TMP/qemu_killed.serve.log" --timeout 3
serve_pid=$HM_SERVE_PID
slow_migrate qemu_killed
vm_wait_page_arrived g0 d3 "$page" 30
hm_log "qemu_killed: pages are landing in d3; SIGKILL its QEMU (pid ${VM_PID[d3]})"
kill -KILL "${VM_PID[d3]}"
assert_survived qemu_killed d3
hm_wait_pid "$serve_pid" 10
[ "$HM_RC" -eq 1 ] || hm_fail "qemu_killed: serve --once exited $HM_RC, expected 1"
[ ! -e "$HM_TMP/d3.ram" ] || hm_fail "qemu_killed: serve left the destination's RAM file d3.ram behind"

# 4. after all that, it still migrates
vm_start g1 --incoming
vm_serve g1 "$HM_TMP/final.serve.log"
hm_migrate_run 120 "$HM_TMP/final.json" "$HM_TMP/final.err" --image "qmp:$HM_TMP/g0.qmp" --to "$HM_SERVE_ADDR" --report json
hm_assert_committed "$HM_RC" "$HM_TMP/final.json" "$HM_TMP/final.err" "final migration g0 -> g1"
vm_wait_gone g0 15
vm_wait_running_after g1 "$(vm_first_tick g1)"
vm_check_handover g0 g1
alive=$(vm_alive_qemus | tr '\n' ' ')
[ "$alive" = "g1 " ] || hm_fail "expected exactly one QEMU (g1) running at the end, found: ${alive:-none}"
hm_log "final migration committed (blackout $(jq -r '.downtime_ms | floor' "$HM_TMP/final.json") ms, guest-visible $(vm_blackout_ms g0 g1 | cut -d" " -f1) ms); g1 alone runs, bad=0"
exit 0
