#!/usr/bin/env bash
# vm.libvirt_drain (labels vm, ops): `hymig drain` empties a libvirt daemon (libvirt_lib.sh's two,
# in their own namespaces) of three working guests, then is cancelled on the way back.
#   1. Targets: three `hymig serve --libvirt` daemons for lv2: T1 and T2 (--max-incoming 1 each),
#      T3 with --max-image-bytes 64M (no room for any guest). A fourth guest keeps its RAM anonymous.
#      A --dry-run plans the three largest first to T1 or T2, never T3, says the fourth cannot move
#      (anonymous RAM) and exits 1; with --fallback native it exits 0; against T3 alone it exits 1
#      naming its room.
#   1b. A drain whose --completion-timeout-per-gib cannot be met: each migration cancelled before
#      its pause, exit 1, every guest still on lv1 only.
#   2. The drain lv1 -> lv2 (--parallel 2, --fallback native): T1 is SIGKILLed while a guest
#      streams to it; that guest is retried on T2; the fourth goes by libvirt's own migration. `hymig status` is scraped from T2 while it receives. Exit 0; every guest
#      runs on lv2 only (one QEMU, persistent, not on lv1), its console continues the source's
#      counter with bad=0; two migrations overlapped; T3 never got one.
#   3. The drain back lv2 -> lv1 handed to lv2's daemon (`drain --node T2 --async`, --parallel 1,
#      slow --bandwidth; a second request while it runs is refused), cancelled there (`--cancel`)
#      while the first guest streams: T2's status shows it running, then done with exit 1 and a
#      report that says cancelled; one migration had started; every guest runs on exactly one host
#      with bad=0, none paused.
#   4. `drain --node T2` again, followed to its end: exit 0, every guest back on lv1 with bad=0.
# No timing is asserted. Exits 77 (reason printed) without root, libvirt, QEMU or a guest kernel.
set -euo pipefail
# shellcheck disable=SC2034  # read by common.sh
HM_TEST_NAME=vm_libvirt_drain
# shellcheck source=libvirt_test.sh
source "$(dirname "$0")/libvirt_test.sh"

guests=(dg1 dg2 dg3)
declare -A mem=([dg1]=224 [dg2]=192 [dg3]=160)
# Three TCG guests share two cores: a smaller working set each (checked whole as often).
VM_APPEND=${VM_APPEND/hymig.ws_mib=96/hymig.ws_mib=48}
for g in "${guests[@]}"; do lv_define_start 1 "$g" "${mem[$g]}"; done
# A fourth guest whose RAM is anonymous: hymig cannot move it; --fallback native hands it to libvirt.
# It dirties nothing (as libvirt_refusals.sh's "plain"): QEMU 7.2's TCG precopy loses guest writes
# in some runs (docs/vm-performance.md) and once left this guest shut off on lv2 after libvirt had
# reported success; with no dirtier the only writes during libvirt's migration are the kernel's few.
dga_append=${VM_APPEND/hymig.dirty=256/hymig.dirty=0}
dga_append=${dga_append/hymig.ws_mib=48/hymig.ws_mib=8}
[[ " $dga_append " == *" hymig.dirty=0 "* && " $dga_append " == *" hymig.ws_mib=8 "* ]] ||
  hm_fail "dga's command line has no hymig.dirty=0 and hymig.ws_mib=8: $dga_append"
VM_APPEND=$dga_append LV_MEMORY_BACKING=anonymous lv_define_start 1 dga 144

# status_json N ADDR: `hymig status ADDR --json` from daemon N's namespace (empty on failure).
status_json() { ip netns exec "${LV_NS[$1]}" "$HYMIG" status "$2" --json 2>/dev/null || true; }
incoming_bytes() { status_json "$1" "$2" | jq -r '[.incoming[]?.bytes_received] | add // 0'; }
receiving() { [ "$(incoming_bytes "$1" "$2")" -gt $((8 << 20)) ]; }

lvh_daemon 2 "$HM_TMP/t1.log" 0 --max-incoming 1
T1=$HM_SERVE_ADDR T1_PID=$HM_SERVE_PID
lvh_daemon 2 "$HM_TMP/t2.log" 0 --max-incoming 1
T2=$HM_SERVE_ADDR T2_PID=$HM_SERVE_PID
lvh_daemon 2 "$HM_TMP/t3.log" 0 --max-image-bytes 64M
T3=$HM_SERVE_ADDR

# 1. Dry runs.
plan=$HM_TMP/plan.json
rc=0
ip netns exec "${LV_NS[1]}" "$HYMIG" drain --connect "${LV_URI[1]}" --targets "$T1,$T2,$T3" --dry-run --report json \
  >"$plan" 2>"$HM_TMP/plan.err" || rc=$?
[ "$rc" -eq 1 ] || hm_fail "dry run with an unmovable guest exited $rc, expected 1: $(cat "$HM_TMP/plan.err") $(cat "$plan")"
hm_assert_json "$plan" '.dry_run == true and (.domains | length) == 4 and ([.domains[] | select(.outcome == "planned")] | length) == 3' "dry-run plan"
hm_assert_json "$plan" '.domains[] | select(.name == "dga") | .outcome == "not-movable" and (.why | test("anonymous"))' \
  "dry run: the anonymous-RAM guest cannot move, and why"
hm_assert_json "$plan" "all(.domains[]; .target != \"$T3\") and ([.domains[].name] == [\"dg1\",\"dg2\",\"dg3\",\"dga\"])" \
  "dry-run: largest first, never the target without room"
rc=0
ip netns exec "${LV_NS[1]}" "$HYMIG" drain --connect "${LV_URI[1]}" --targets "$T1,$T2,$T3" --dry-run --fallback native \
  --report json >"$HM_TMP/plan-native.json" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || hm_fail "dry run with --fallback native exited $rc: $(cat "$HM_TMP/plan-native.json")"
rc=0
ip netns exec "${LV_NS[1]}" "$HYMIG" drain --connect "${LV_URI[1]}" --targets "$T3" --dry-run >"$HM_TMP/plan3.txt" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || hm_fail "dry run against a target without room exited $rc, expected 1: $(cat "$HM_TMP/plan3.txt")"
grep -q "no target has room" "$HM_TMP/plan3.txt" || hm_fail "dry run without room does not say why: $(cat "$HM_TMP/plan3.txt")"
hm_log "dry runs: $(jq -c '[.domains[] | {(.name): (.target // .outcome)}] | add' "$plan"); with --fallback native every guest has a target; against T3 alone: exit 1, no room"

# 1b. A completion timeout (2 s per GiB, at least one GiB's worth; 8 MiB/s cannot move 160 MiB in
#     that): every migration is cancelled before its pause, no retry (--retries 0), exit 1, and the
#     guests run on at lv1 only.
rc=0
ip netns exec "${LV_NS[1]}" "$HYMIG" drain --connect "${LV_URI[1]}" --targets "$T2" --parallel 2 --retries 0 \
  --bandwidth 8M --completion-timeout-per-gib 2 --report json --progress off >"$HM_TMP/timeout.json" 2>"$HM_TMP/timeout.err" || rc=$?
[ "$rc" -eq 1 ] || hm_fail "the drain that times out exited $rc: $(cat "$HM_TMP/timeout.err") $(cat "$HM_TMP/timeout.json")"
hm_assert_json "$HM_TMP/timeout.json" '[.domains[] | select(.name != "dga")] | all(.outcome == "failed" and (.attempts | length) == 1 and (.attempts[0].error | test("completion timeout")) and .attempts[0].report.downtime_ms == 0)' \
  "every migration timed out before its pause"
for g in "${guests[@]}"; do lvh_assert_only_on 1 "$g" "after the completion timeout, $g"; done
# The target ends its side of those sessions (destroys the copies) in its own time: wait for that.
t2_idle() { [ "$(status_json 2 "$T2" | jq '.incoming | length')" = 0 ] && [ -z "$(lv_qemus 2)" ]; }
hm_wait_for 60 t2_idle || hm_fail "T2 still holds the timed-out sessions: $(status_json 2 "$T2" | jq -c .incoming); QEMUs on lv2: $(lv_qemus 2)"
hm_log "completion timeout: $(jq -c '[.domains[] | {(.name): .outcome}] | add' "$HM_TMP/timeout.json"), guests on lv1"

# 2. The drain lv1 -> lv2 with T1 killed midway.
declare -A src
for g in "${guests[@]}"; do
  src[$g]=$(lv_tag 1 "$g")
  lv_expect 2 "$g"
done
out=$HM_TMP/drain.json
ip netns exec "${LV_NS[1]}" "$HYMIG" drain --connect "${LV_URI[1]}" --targets "$T1,$T2,$T3" --parallel 2 \
  --retry-delay 3 --bandwidth 24M --fallback native --report json --progress off >"$out" 2>"$HM_TMP/drain.err" &
drain_pid=$!
hm_track_pid "$drain_pid"
hm_wait_for 120 receiving 2 "$T1" || hm_fail "T1 received nothing within 120 s: $(cat "$HM_TMP/drain.err") $(cat "$HM_TMP/t1.log")"
hm_kill "$T1_PID"
hm_log "T1 (pid $T1_PID) killed while it received"
snapshots=0
while hm_alive "$drain_pid"; do
  s=$(status_json 2 "$T2")
  if [ -n "$s" ] && [ "$(jq '.incoming | length' <<<"$s")" -gt 0 ]; then
    [ "$snapshots" -gt 0 ] || hm_log "status of T2 while it receives: $(jq -c '.incoming[0] | {image_name, phase, round, bytes_received}' <<<"$s")"
    jq -e '.incoming[0].phase | test("^(preparing|rounds|final-delta|verifying|device-state|committing|committed|failed)$")' <<<"$s" >/dev/null ||
      hm_fail "T2's status shows an unknown phase: $s"
    snapshots=$((snapshots + 1))
  fi
  hm_sleep 0.3
done
hm_wait_pid "$drain_pid" 5
[ "$HM_RC" -eq 0 ] || hm_fail "drain exited $HM_RC: $(tail -c 3000 "$HM_TMP/drain.err") $(jq -c '.domains[] | {name, outcome, why, attempts: [.attempts[] | {target, outcome, error}]}' "$out" 2>/dev/null)"
[ "$snapshots" -gt 0 ] || hm_fail "hymig status never showed T2 receiving"
hm_assert_json "$out" 'all(.domains[]; .outcome == "moved") and (.remaining | length) == 0' "drain report"
hm_assert_json "$out" "any(.domains[]; (.attempts | length) >= 2 and .attempts[0].target == \"$T1\" and .attempts[0].outcome != \"moved\" and .attempts[-1].outcome == \"moved\")" \
  "the guest T1 was receiving was retried elsewhere"
hm_assert_json "$out" "all(.domains[].attempts[]; .target != \"$T3\")" "T3 (no room) got nothing"
hm_assert_json "$out" '[.domains[].attempts[]] as $a | any($a[]; . as $x | any($a[]; . != $x and .started_s < $x.started_s + $x.seconds and $x.started_s < .started_s + .seconds))' \
  "with --parallel 2 two migrations overlapped"
[ "$(status_json 2 "$T2" | jq '[.recent[] | select(.outcome == "committed")] | length')" -ge 2 ] ||
  hm_fail "T2's status lists fewer than two committed results: $(status_json 2 "$T2")"
for g in "${guests[@]}"; do lvh_assert_moved 1 2 "$g" "${src[$g]}" "drain $g"; done
# The anonymous-RAM guest went by libvirt's own migration (its console is not checked: QEMU 7.2
# under TCG loses guest writes in its own precopy, bench/vm-side-by-side.sh); then it leaves.
hm_assert_json "$out" '.domains[] | select(.name == "dga") | .attempts[-1].report.migrated_by == "libvirt"' "dga by libvirt"
lvh_assert_only_on 2 dga "drain dga (--fallback native)"
lv_virsh 2 destroy dga >/dev/null && lv_virsh 2 undefine dga >/dev/null || hm_fail "cannot remove dga from lv2"
hm_log "drain lv1 -> lv2 in $(jq -r '.seconds' "$out") s: $(jq -c '[.domains[] | {(.name): [.attempts[] | "\(.target) \(.outcome) \(.seconds | floor) s"]}] | add' "$out")"

# 3. The drain back, handed to lv2's own daemon (T2: `hymig drain --node --async`, as the Slurm hook
#    does), then cancelled there (`--cancel`) while the first guest streams.
lvh_daemon 1 "$HM_TMP/t4.log" 0
T4=$HM_SERVE_ADDR
for g in "${guests[@]}"; do
  src[$g]=$(lv_tag 2 "$g")
  lv_expect 1 "$g"
done
hymig1() { ip netns exec "${LV_NS[1]}" "$HYMIG" "$@"; }
drain_state() { status_json 2 "$T2" | jq -r '.drain.state // "none"'; }
drain_done() { [ "$(drain_state)" = "done" ]; }
rc=0
hymig1 drain --node "$T2" --async --targets "$T4" --parallel 1 --bandwidth 8M >"$HM_TMP/async.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || hm_fail "drain --node --async exited $rc: $(cat "$HM_TMP/async.out")"
[ "$(drain_state)" = running ] || hm_fail "after --async, T2's status shows drain state '$(drain_state)'"
rc=0
hymig1 drain --node "$T2" --async --targets "$T4" >"$HM_TMP/async2.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "running already" "$HM_TMP/async2.out" ||
  hm_fail "a second drain while one runs: exit $rc, $(cat "$HM_TMP/async2.out")"
hm_wait_for 120 receiving 1 "$T4" || hm_fail "T4 received nothing within 120 s: $(status_json 2 "$T2" | jq -c .drain)"
live=$(status_json 2 "$T2" | jq -c '.drain.live')
jq -e 'any(.[]; .outcome == "running")' <<<"$live" >/dev/null || hm_fail "T2's status shows no running domain in its drain: $live"
hymig1 drain --node "$T2" --cancel >/dev/null || hm_fail "drain --node --cancel failed"
hm_wait_for 60 drain_done || hm_fail "the cancelled drain did not end within 60 s: $(status_json 2 "$T2" | jq -c .drain)"
back=$HM_TMP/back.json
status_json 2 "$T2" | jq '.drain' >"$back"
hm_assert_json "$back" '.exit_code == 1 and .report.cancelled == true and (.report.remaining | length) >= 2' "cancelled drain"
hm_assert_json "$back" '[.report.domains[] | select(.outcome == "cancelled")] | length >= 2' "the guests not moved are reported cancelled"
hm_assert_json "$back" '[.report.domains[].attempts[]] | length == 1' "--parallel 1: one migration had started"
for g in "${guests[@]}"; do
  if [ "$(jq -r --arg g "$g" '.report.domains[] | select(.name == $g) | .outcome' "$back")" = moved ]; then
    lvh_assert_arrived 2 1 "$g" "cancelled drain, $g (it finished)"
    src[$g]=$(lv_tag 1 "$g")
  else
    lvh_assert_only_on 2 "$g" "cancelled drain, $g"
  fi
  lv_vm vm_wait_running_after "${src[$g]}" "$(vm_last_tick "${src[$g]}")"
  lv_vm vm_check_console "${src[$g]}"
done
hm_log "cancelled drain: $(jq -c '[.report.domains[] | {(.name): .outcome}] | add' "$back")"

# 4. Asked again and followed to the end (`hymig drain --node` without --async): every guest back on lv1.
for g in "${guests[@]}"; do [ "$(lv_domstate 2 "$g")" = running ] && lv_expect 1 "$g"; done
rc=0
hymig1 drain --node "$T2" --targets "$T4" --retry-delay 3 --report json --progress off >"$HM_TMP/sync.json" 2>"$HM_TMP/sync.err" || rc=$?
[ "$rc" -eq 0 ] || hm_fail "drain --node exited $rc: $(cat "$HM_TMP/sync.err") $(cat "$HM_TMP/sync.json")"
hm_assert_json "$HM_TMP/sync.json" '(.remaining | length) == 0 and .cancelled == false' "drain --node report"
for g in "${guests[@]}"; do
  lvh_assert_only_on 1 "$g" "drain back, $g"
  dst=$(lv_tag 1 "$g")
  lv_vm vm_wait_running_after "$dst" "$(vm_last_tick "$dst")"
  lv_vm vm_check_console "$dst"
done
hm_log "drain back by lv2's daemon: $(jq -c '[.domains[] | {(.name): .outcome}] | add' "$HM_TMP/sync.json")"
echo "VM-FIGURE drain of 3 guests (${mem[dg1]}+${mem[dg2]}+${mem[dg3]} MiB) lv1->lv2, --parallel 2, --bandwidth 24M, one target killed: $(jq -r '.seconds' "$out") s"
exit 0
