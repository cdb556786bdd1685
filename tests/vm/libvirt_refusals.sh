#!/usr/bin/env bash
# vm.libvirt_refusals: domains and flags `hymig migrate --domain` refuses, each with an error that
# names the fix and nothing touched, and --fallback native handing a domain hymig cannot move to
# libvirt's own live migration. On libvirt_lib.sh's two daemons:
#   - a domain that does not exist, a libvirt that does not answer, flags that do not go together,
#     a defined domain that does not run: exit 2 (usage) naming the problem;
#   - guest "plain" keeps its RAM in anonymous memory (no <memoryBacking> file): exit 2 naming
#     <memoryBacking> and --fallback native; paused: exit 2 naming virsh resume; it runs on at lv1;
#   - a domain with a device QEMU will not migrate (ivshmem): exit 2 naming it;
#   - guest "lvg" (RAM in a shared file) sent to a `hymig serve` without --libvirt: exit 1 naming
#     --libvirt, lvg runs on at lv1 and lv2 knows nothing of it;
#   - `--fallback native` moves "plain" by libvirt's own migration: exit 0, a JSON report saying so
#     with libvirt's job figures, plain runs (persistent) on lv2 only, its counter continues, bad=0.
set -euo pipefail
# shellcheck disable=SC2034  # read by common.sh
HM_TEST_NAME=vm_libvirt_refusals
# shellcheck source=libvirt_test.sh
source "$(dirname "$0")/libvirt_test.sh"

# refused RC REGEX WHAT ARGS...: hymig migrate ARGS (in lv1's namespace) exits RC with an error
# matching REGEX.
refused() {
  local want_rc=$1 want=$2 what=$3 rc=0
  shift 3
  ip netns exec "${LV_NS[1]}" "$HYMIG" migrate "$@" --report none --progress off >"$HM_TMP/$what.out" 2>"$HM_TMP/$what.err" || rc=$?
  [ "$rc" -eq "$want_rc" ] || hm_fail "$what: migrate exited $rc, expected $want_rc; stderr: $(cat "$HM_TMP/$what.err")"
  grep -q -E -e "$want" "$HM_TMP/$what.err" || hm_fail "$what: the error does not match /$want/: $(cat "$HM_TMP/$what.err")"
  hm_log "$what: refused (exit $rc): $(head -n1 "$HM_TMP/$what.err")"
}

u1=${LV_URI[1]}
refused 2 "no domain 'nosuch'" nosuch --domain nosuch --connect "$u1" --to 10.77.0.2:9
refused 2 "cannot connect to libvirt at 'qemu\+unix:///system\?socket=$HM_TMP/none'" bad_uri --domain x --connect "qemu+unix:///system?socket=$HM_TMP/none" --to 10.77.0.2:9
refused 2 "exactly one of --image" both --domain x --image synthetic:size=1M --to 10.77.0.2:9
refused 2 "exactly one of --image" neither --to 10.77.0.2:9
refused 2 "--connect goes with --domain" connect_alone --image synthetic:size=1M --connect "$u1" --to 10.77.0.2:9
refused 2 "--fallback native goes with --domain" fallback_alone --image synthetic:size=1M --fallback native --to 10.77.0.2:9
refused 2 "--fallback must be none or native" fallback_bad --domain x --fallback sometimes --to 10.77.0.2:9
rc=0
"$HYMIG" serve --connect "$u1" >"$HM_TMP/serve_flags.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--connect goes with --libvirt" "$HM_TMP/serve_flags.out" ||
  hm_fail "serve --connect without --libvirt: exit $rc: $(cat "$HM_TMP/serve_flags.out")"

# A defined domain that does not run.
lv_domain_xml stopped 256 "$(lv_serial_path stopped)" >"$HM_TMP/stopped.xml"
lv_virsh 1 define "$HM_TMP/stopped.xml" >/dev/null
refused 2 "domain 'stopped' is not running \('shut off'\).*virsh start stopped" stopped --domain stopped --connect "$u1" --to 10.77.0.2:9
[ "$(lv_domstate 1 stopped)" = "shut off" ] || hm_fail "stopped: the domain is '$(lv_domstate 1 stopped)' after the refusal"
lv_virsh 1 undefine stopped >/dev/null

# A guest whose RAM is anonymous memory: hymig cannot move it.
# It writes no pages of its own (hymig.dirty=0): it is migrated by libvirt's own precopy below, and
# QEMU 7.2 under TCG loses guest writes during that in some runs (see bench/vm-side-by-side.sh),
# which this test is not about.
lv_domain_xml plain 256 "$(lv_serial_path plain)" | sed -e '/<memoryBacking>/,/<\/memoryBacking>/d' -e 's/hymig\.dirty=[0-9]*/hymig.dirty=0/' \
  >"$HM_TMP/plain.xml"
grep -q 'hymig.dirty=0' "$HM_TMP/plain.xml" || hm_fail "plain.xml: no hymig.dirty=0 on the guest's command line"
lv_expect 1 plain
plain_src=$LV_LAST_TAG
lv_virsh 1 define "$HM_TMP/plain.xml" >/dev/null
lv_virsh 1 start plain >/dev/null
lv_vm vm_wait_ticks "$plain_src" 1 240
refused 2 "anonymous memory.*<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>.*--fallback native" \
  anonymous_ram --domain plain --connect "$u1" --to 10.77.0.2:9
lvh_assert_only_on 1 plain anonymous_ram
lv_virsh 1 suspend plain >/dev/null
refused 2 "'paused', not running: virsh resume it first" paused --domain plain --connect "$u1" --to 10.77.0.2:9
[ "$(lv_domstate 1 plain)" = paused ] || hm_fail "paused: plain is '$(lv_domstate 1 plain)' after the refusal"
lv_virsh 1 resume plain >/dev/null
lvh_assert_only_on 1 plain paused

# A device QEMU will not migrate (an ivshmem shared-memory device): refused, naming it.
lv_domain_xml blocked 256 "$(lv_serial_path blocked)" |
  sed "s|<memballoon model='none'/>|<shmem name='hm-ivshmem-$$'><model type='ivshmem-plain'/><size unit='M'>1</size></shmem><memballoon model='none'/>|" \
    >"$HM_TMP/blocked.xml"
lv_expect 1 blocked
lv_virsh 1 create "$HM_TMP/blocked.xml" >/dev/null
refused 2 "QEMU refuses to migrate domain 'blocked': .*ivshmem.*remove the device" blocked_device --domain blocked --connect "$u1" --to 10.77.0.2:9
[ "$(lv_domstate 1 blocked)" = running ] || hm_fail "blocked_device: the domain is '$(lv_domstate 1 blocked)' after the refusal"
lv_virsh 1 destroy blocked >/dev/null
rm -f "/dev/shm/hm-ivshmem-$$"

# A migratable guest sent to a daemon that takes no libvirt domains: refused there, runs on here.
lv_define_start 1 lvg 256
lvg_src=$(lv_tag 1 lvg)
HM_SERVE_PREFIX=(ip netns exec "${LV_NS[2]}")
hm_start_serve "$HM_TMP/nolibvirt.serve.log" --listen "${LV_ADDR[2]}:0" --once --store "$HM_TMP/store2"
HM_SERVE_PREFIX=()
HM_MIGRATE_PREFIX=(ip netns exec "${LV_NS[1]}")
hm_migrate_run 60 "$HM_TMP/nolibvirt.json" "$HM_TMP/nolibvirt.err" --domain lvg --connect "$u1" --to "$HM_SERVE_ADDR" --report json --progress off
HM_MIGRATE_PREFIX=()
hm_assert_failed_cleanly "$HM_RC" "$HM_TMP/nolibvirt.err" nolibvirt
grep -q -- "receives no libvirt domain.*--libvirt" "$HM_TMP/nolibvirt.err" || hm_fail "nolibvirt: the error does not name --libvirt: $(cat "$HM_TMP/nolibvirt.err")"
lvh_assert_only_on 1 lvg nolibvirt
! lv_domain_defined 2 lvg || hm_fail "nolibvirt: lv2 knows lvg"
[ "$(lvh_ignore_shared 1 lvg)" = false ] || hm_fail "nolibvirt: x-ignore-shared is on at the source"
lv_vm vm_wait_running_after "$lvg_src" "$(vm_last_tick "$lvg_src")"
lv_vm vm_check_console "$lvg_src"

# --fallback native: libvirt's own migration moves what hymig cannot (dest URI and stream address
# default to qemu+tcp://HOST/system and tcp://HOST, HOST from --to).
lv_expect 2 plain
plain_dst=$LV_LAST_TAG
rc=0
ip netns exec "${LV_NS[1]}" "$HYMIG" migrate --domain plain --connect "$u1" --to "${LV_ADDR[2]}:7470" --fallback native \
  --report json --progress off >"$HM_TMP/fallback.json" 2>"$HM_TMP/fallback.err" || rc=$?
[ "$rc" -eq 0 ] || hm_fail "fallback: migrate --fallback native exited $rc: $(cat "$HM_TMP/fallback.err")"
hm_assert_json "$HM_TMP/fallback.json" '.outcome == "committed" and .migrated_by == "libvirt"' "fallback report"
hm_assert_json "$HM_TMP/fallback.json" '.fallback_reason | test("anonymous memory")' "fallback report"
hm_assert_json "$HM_TMP/fallback.json" '.dest_uri == "qemu+tcp://'"${LV_ADDR[2]}"'/system"' "fallback report"
grep -q -- "--fallback native: libvirt's own live migration" "$HM_TMP/fallback.err" || hm_fail "fallback: stderr does not say so: $(cat "$HM_TMP/fallback.err")"
lvh_assert_only_on 2 plain fallback
lv_is_persistent 2 plain || hm_fail "fallback: plain is not persistent on lv2"
! lv_domain_defined 1 plain || hm_fail "fallback: plain is still defined on lv1"
lv_vm vm_wait_running_after "$plain_dst" "$(vm_first_tick "$plain_dst")"
lv_vm vm_check_handover "$plain_src" "$plain_dst"
hm_log "fallback: plain moved by libvirt ($(jq -c '.libvirt_job | {time_elapsed, downtime, data_total}' "$HM_TMP/fallback.json")), runs on lv2, bad=0"
exit 0
