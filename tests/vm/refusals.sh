#!/usr/bin/env bash
# vm.refusals: guests hymig cannot migrate this way get an error that names the fix, and nothing
# is touched. No guest kernel needed: QEMUs that run their firmware only.
# Source side (migrate exits 2 before connecting anywhere): RAM not in a file (plain -m), a file
# mapped privately (share=off), mem-path a directory, a paused guest, a migration blocker.
# Destination side (migrate exits 1, the source runs on): serve without --vm-qmp, a destination
# QEMU that is not waiting in -incoming defer (it is a running guest: it must survive untouched),
# a destination with another RAM size (left alone too).
set -u -o pipefail
HM_TEST_NAME=vm_refusals
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/lib.sh"
hm_deadline 200
hm_tmpdir
mkdir -p "$HM_TMP/store"
command -v qemu-system-x86_64 >/dev/null ||
  hm_skip "qemu-system-x86_64 is not installed (Debian package qemu-system-x86; scripts/bootstrap.sh installs it)"
command -v jq >/dev/null || hm_skip "jq is not installed (scripts/bootstrap.sh installs it)"
[ -x "${HYMIG:-}" ] && [ -x "${HYMIG_VM_QMP:-}" ] || hm_fail "HYMIG and HYMIG_VM_QMP must be executables: run through ctest (ctest -L vm)"

# refused_at_source NAME EXPECT-REGEX QEMU-ARGS...: migrate exits 2 naming the fix; the QEMU is
# in the state it was.
refused_at_source() {
  local name=$1 want=$2 st_before st_after
  shift 2
  vm_start_bare "$name" "$@"
  st_before=$(vm_status "$name")
  "$HYMIG" migrate --image "qmp:$HM_TMP/$name.qmp" --to 127.0.0.1:9 --report none >/dev/null 2>"$HM_TMP/$name.err"
  local rc=$?
  [ "$rc" -eq 2 ] || hm_fail "$name: migrate exited $rc, expected 2 (usage); stderr: $(cat "$HM_TMP/$name.err")"
  grep -q -E "$want" "$HM_TMP/$name.err" || hm_fail "$name: the error does not match /$want/: $(cat "$HM_TMP/$name.err")"
  st_after=$(vm_status "$name")
  [ "$st_after" = "$st_before" ] || hm_fail "$name: QEMU went from '$st_before' to '$st_after'"
  hm_log "$name: refused: $(head -n1 "$HM_TMP/$name.err")"
  hm_kill "${VM_PID[$name]}"
}

refused_at_source plain_ram 'memory-backend-file' -m 64M
refused_at_source private_file 'share=on' -m 64M -object "memory-backend-file,id=pc.ram,size=64M,mem-path=$HM_TMP/private.ram,share=off" -machine pc,memory-backend=pc.ram
mkdir -p "$HM_TMP/ramdir"
refused_at_source ram_dir 'not a regular file' -m 64M -object "memory-backend-file,id=pc.ram,size=64M,mem-path=$HM_TMP/ramdir,share=on" -machine pc,memory-backend=pc.ram
# shellcheck disable=SC2046
refused_at_source paused 'not running.*cont it first' $(vm_shared_ram paused) -S
# shellcheck disable=SC2046
refused_at_source blocked 'refuses to migrate.*ivshmem' $(vm_shared_ram blocked) -object memory-backend-ram,id=hs,size=1M,share=on -device ivshmem-plain,memdev=hs

# refused_at_destination NAME EXPECT-REGEX SERVE-ARGS...: migrate exits 1 naming the fix; the
# source guest runs on.
refused_at_destination() {
  local name=$1 want=$2
  shift 2
  hm_start_serve "$HM_TMP/$name.serve.log" --listen 127.0.0.1:0 --store "$HM_TMP/store" --once "$@"
  local serve_pid=$HM_SERVE_PID
  hm_migrate_run 60 "$HM_TMP/$name.json" "$HM_TMP/$name.err" --image "qmp:$HM_TMP/src.qmp" --to "$HM_SERVE_ADDR" --report json --timeout 5
  hm_assert_failed_cleanly "$HM_RC" "$HM_TMP/$name.err" "$name"
  grep -q -E "$want" "$HM_TMP/$name.err" || hm_fail "$name: the error does not match /$want/: $(cat "$HM_TMP/$name.err")"
  hm_wait_pid "$serve_pid" 10
  [ "$(vm_status src)" = running ] || hm_fail "$name: the source is '$(vm_status src)' after the refusal, expected running"
}

# shellcheck disable=SC2046
vm_start_bare src $(vm_shared_ram src)
refused_at_destination no_vm_qmp 'receives no VM.*--vm-qmp'
# shellcheck disable=SC2046
vm_start_bare running_dst $(vm_shared_ram running_dst)
refused_at_destination not_incoming "is 'running', not waiting for an incoming migration.*-incoming defer" --vm-qmp "$HM_TMP/running_dst.qmp"
hm_alive "${VM_PID[running_dst]}" && [ "$(vm_status running_dst)" = running ] && [ -e "$HM_TMP/running_dst.ram" ] ||
  hm_fail "not_incoming: the running destination QEMU was touched (state $(vm_status running_dst))"
# shellcheck disable=SC2046
vm_start_bare small_dst $(vm_shared_ram small_dst 32M) -incoming defer
refused_at_destination wrong_size 'has 33554432 bytes of RAM, the source.s guest 67108864' --vm-qmp "$HM_TMP/small_dst.qmp"
hm_alive "${VM_PID[small_dst]}" && [ "$(vm_status small_dst)" = inmigrate ] && [ -e "$HM_TMP/small_dst.ram" ] ||
  hm_fail "wrong_size: the destination QEMU was touched (state $(vm_status small_dst))"
hm_log "destination refusals: the source ran on each time; the destinations that were refused are untouched"
exit 0
