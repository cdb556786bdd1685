# shellcheck shell=bash
# Two libvirt daemons on one machine, for the vm lane's libvirt tests and bench/vm-side-by-side.sh.
# Source after tests/lib/common.sh and tests/vm/lib.sh (and after hm_tmpdir: everything lives in
# $HM_TMP, which is in /dev/shm). Needs root. No systemd: each daemon is `libvirtd --listen`, in the
# foreground as a background job (its own error, if it cannot start, is in the test's failure).
#
# Each daemon N (1, 2) is a "host": a named network namespace LV_NS[N] (hmlvN-<pid>) holding a
# keeper process (our child) that owns a private mount + UTS namespace in which /etc/libvirt,
# /run, /var/lib, /var/log, /var/cache, /etc/passwd and /etc/group are bind mounts of
# $HM_TMP/lvN/{etc,run,varlib,varlog,varcache,passwd,group}. libvirtd is started into the keeper's
# namespaces and root (nsenter --root: also inside a chroot), so it can be killed and started again
# while the namespaces stay. The bind mounts exist only inside those namespaces: nothing is mounted
# on the host, nothing to unmount.
# The two network namespaces and the veth pair joining them are tests/lib/netlab.sh's (netlab_up:
# the same lab as the integration and bench lanes, NETLAB_NS_SRC / NETLAB_NS_DST); LV_* name them
# per daemon.
#
#   lv_require                 skip (77, reason printed) unless root with libvirtd, virsh,
#                              qemu-system-x86_64, unshare, nsenter, ip (netns); then vm_require
#                              (kernel + initramfs: VM_KERNEL, VM_INITRD)
#   lv_start_pair              starts both daemons and the veth; sets (bash arrays, for the
#                              sourcing script: arrays are not exported to child processes)
#       LV_URI[N]     qemu+unix:///system?socket=$HM_TMP/lvN/run/libvirt/libvirt-sock (host-usable)
#       LV_TCP_URI[N] qemu+tcp://LV_ADDR[N]/system (usable from inside the other namespace)
#       LV_NS[N]      the network namespace (ip netns exec LV_NS[N] ...): NETLAB_NS_SRC, _DST
#       LV_ADDR[N]    its address on the veth (NETLAB_ADDR_SRC, NETLAB_ADDR_DST)
#       LV_IF[N]      its end of the veth
#       LV_RUNDIR[N]  $HM_TMP/lvN-hymig: a host-visible directory for hymig (serve --vm-runtime-dir)
#       LV_RAMDIR[N]  $HM_TMP/lvN-ram: the daemon's memory_backing_dir (tmpfs, host-visible)
#       LV_ROOT[N]    $HM_TMP/lvN: the daemon's private trees (varlog/libvirt/libvirtd.log, ...)
#     The cleanup (exit trap) kills by PID every process of both namespaces (keeper, libvirtd, the
#     QEMUs libvirt started: only this run's processes can be in them); netlab_down then deletes
#     the namespaces (the veth goes with them).
#   lv_start_daemon N          (re)starts libvirtd N in its namespaces (lv_start_pair calls it);
#                              fails with libvirtd's exit status and the tail of what it wrote
#                              (LV_ROOT[N]/libvirtd.out, its stdout + stderr, and its log) if it
#                              ends or does not answer within 30 s
#   lv_kill_daemon N           SIGKILL of libvirtd N only: its QEMUs run on
#   lv_daemon_pid N            libvirtd N's PID (empty if it does not run)
#   lv_virsh N ARGS...         virsh -c LV_URI[N] ARGS (from the host's namespace)
#   lv_domain_xml NAME MEM_MIB SERIAL_PATH
#                              prints a domain XML: TCG, 1 vCPU qemu64, RAM in a shared file under
#                              memory_backing_dir, direct boot of VM_KERNEL/VM_INITRD with VM_APPEND,
#                              serial+console to SERIAL_PATH (a path as the daemon sees it),
#                              memballoon none, reboot/crash/poweroff = destroy (QEMU -no-reboot);
#                              LV_MEMORY_BACKING=anonymous leaves <memoryBacking> out (RAM that is
#                              not a shared file: what hymig refuses, libvirt migrates natively)
#   lv_serial_path NAME        the console path every daemon's guest NAME writes
#                              (/var/log/hymig/NAME.serial in the daemon's namespace)
#   lv_console N NAME          the host path of that file for daemon N ($HM_TMP/lvN/varlog/hymig/..)
#   lv_expect N NAME           before guest NAME starts on or migrates to daemon N: moves an earlier
#                              stint's console on N aside (NAME.serial.K, its tag's link follows it)
#                              and makes a new tag NAME@lvN.K (K = 1, 2, ... per daemon) with the
#                              link $HM_TMP/NAME@lvN.K.serial -> lv_console N NAME, so the vm lane's
#                              helpers (vm_ticks, vm_last_tick, vm_first_tick, vm_wait_ticks,
#                              vm_wait_running_after, vm_check_console, vm_check_handover,
#                              vm_blackout_ms with vm_watch_start's hymig-vm-watch) take the tag as
#                              the guest name. Sets LV_LAST_TAG. lv_define_start and
#                              lv_native_migrate call it; call it yourself before another tool
#                              (hymig) brings a guest to N.
#   lv_tag N NAME              the current tag of NAME on N (from the last lv_expect N NAME)
#   lv_define_start N NAME MEM_MIB
#                              defines (persistent) and starts guest NAME on N, waits for its first
#                              tick and two check passes; XML in $HM_TMP/NAME.xml
#   lv_domstate N NAME         "running", "paused", "shut off", ... or "none" (not defined on N)
#   lv_domstate_reason N NAME  the same with libvirt's reason, e.g. "running (migrated)"
#   lv_is_persistent N NAME    true if N has NAME defined persistently
#   lv_domain_defined N NAME   true if N knows NAME at all (running or defined)
#   lv_qemu_pid N NAME         PID of NAME's QEMU on N (from libvirt's pid file), empty if none runs
#   lv_qemus N                 "NAME:PID" of every QEMU running in N's namespace (by /proc)
#   lv_wait_qemu_gone PID SEC  waits for a QEMU (not our child) to end; false after SEC s
#   lv_link_down / lv_link_up  cuts / restores the veth (both ends down / up); lv_link_up waits
#                              until LV_ADDR[2] answers from LV_NS[1] again
#   lv_native_migrate FROM TO NAME [VIRSH-MIGRATE-ARGS...]
#                              libvirt's own live migration, run inside LV_NS[FROM]:
#                              virsh -c LV_URI[FROM] migrate --live --persistent --undefinesource
#                              NAME LV_TCP_URI[TO] --migrateuri tcp://LV_ADDR[TO] ARGS. Returns
#                              virsh's status (124 after LV_MIGRATE_TIMEOUT s, default 300). Sets
#                              LV_MIG_OUT (virsh's output), LV_MIG_WALL_MS (virsh's wall time),
#                              LV_MIG_SRC_TAG / LV_MIG_DST_TAG (console tags of both ends), and on
#                              success LV_JOB[...] from `domjobinfo --completed --rawstats` on TO:
#                              LV_JOB[time_elapsed] ms, LV_JOB[downtime] ms, LV_JOB[data_processed]
#                              and LV_JOB[data_total] bytes, LV_JOB[memory_processed], ... (every
#                              raw field); LV_JOB_LINE: one line of the main figures
#   lv_jobinfo N NAME          fills LV_JOB from N's completed job statistics of NAME
#   lv_serve N LOG [ARGS...]   `hymig serve --once --libvirt` inside LV_NS[N] on LV_ADDR[N]:0 with
#                              --connect LV_URI[N] --vm-runtime-dir LV_RUNDIR[N] --store
#                              $HM_TMP/lvN-store (hm_start_serve: sets HM_SERVE_PID, HM_SERVE_ADDR)
#   lv_hymig_migrate SEC FROM TO NAME OUT ERR [ARGS...]
#                              lv_expect TO NAME, then `hymig migrate --domain NAME --connect
#                              LV_URI[FROM] --to $HM_SERVE_ADDR --report json --progress off ARGS`
#                              inside LV_NS[FROM] (hm_migrate_run: at most SEC s, sets HM_RC);
#                              sets LV_MIG_WALL_MS, LV_MIG_SRC_TAG, LV_MIG_DST_TAG like
#                              lv_native_migrate
#   lv_placement FROM TO NAME  prints "ok" when NAME runs and is persistent on TO, is not defined
#                              on FROM, and exactly one QEMU (TO's) runs it; else what is wrong
#   lv_assert_one_qemu N NAME  fails unless the only QEMU of NAME on either daemon is N's
#   lv_vm VM-HELPER ARGS...    runs one of tests/vm/lib.sh's helpers (vm_check_console,
#                              vm_check_handover, ...) with errexit suspended: they are written for
#                              `set -u -o pipefail` (a grep without a match is an empty answer, not
#                              a failure) and fail through hm_fail; a script under `set -e` calls
#                              them through lv_vm

# shellcheck source=../lib/netlab.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/netlab.sh"

declare -A LV_URI=() LV_TCP_URI=() LV_NS=() LV_ADDR=() LV_IF=() LV_RUNDIR=() LV_RAMDIR=() LV_ROOT=()
declare -A LV_KEEPER=() LV_NETNS_ID=() LV_TAG=() LV_STINT=() LV_JOB=()
LV_UP=0
LV_LAST_TAG=""
# shellcheck disable=SC2034  # read by the scripts that source this file
LV_MIG_OUT="" LV_MIG_WALL_MS="" LV_MIG_SRC_TAG="" LV_MIG_DST_TAG="" LV_JOB_LINE=""

lv_require() {
  [ "$(id -u)" -eq 0 ] || hm_skip "the libvirt lane needs root (network and mount namespaces, libvirtd); running as uid $(id -u)"
  local c
  for c in libvirtd virsh qemu-system-x86_64 unshare nsenter ip; do
    command -v "$c" >/dev/null ||
      hm_skip "'$c' is not installed (Debian packages libvirt-daemon-system libvirt-clients qemu-system-x86 util-linux iproute2)"
  done
  [ -n "$(find /usr/lib /usr/lib64 -path '*libvirt/connection-driver/libvirt_driver_qemu.so' -print -quit 2>/dev/null)" ] ||
    hm_skip "libvirt's QEMU driver is not installed (Debian package libvirt-daemon-driver-qemu)"
  ip netns list >/dev/null 2>&1 || hm_skip "'ip netns' does not work here: $(ip netns list 2>&1 | head -n1)"
  unshare --mount --uts --propagation private true 2>/dev/null ||
    hm_skip "cannot create mount + UTS namespaces here (unshare -m -u): $(unshare --mount --uts true 2>&1 | head -n1)"
  vm_require
}

# Called on the left of ||, the helper runs with errexit off; hm_fail inside still ends the test.
lv_vm() { "$@" || return $?; }

lv__ensure_tmp() { if [ -z "${HM_TMP:-}" ] || [ ! -d "$HM_TMP" ]; then hm_fail "libvirt_lib.sh: call hm_tmpdir first"; fi; }

# lv__conf N: the daemon's private trees and configuration files.
lv__conf() {
  local n=$1 b=${LV_ROOT[$1]} uuid
  mkdir -p "$b/etc/qemu" "$b/run/libvirt" "$b/varlib/libvirt" "$b/varlog/libvirt/qemu" "$b/varlog/hymig" \
    "$b/varcache/libvirt" "${LV_RAMDIR[$n]}" "${LV_RUNDIR[$n]}"
  local f
  for f in libvirt.conf libvirt-admin.conf; do
    [ -f "/etc/libvirt/$f" ] && cp "/etc/libvirt/$f" "$b/etc/"
  done
  uuid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$b/etc/libvirtd.conf" <<EOF
# written by tests/vm/libvirt_lib.sh for daemon lv$n of test run $$
host_uuid = "$uuid"
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
listen_tls = 0
listen_tcp = 1
auth_tcp = "none"
listen_addr = "0.0.0.0"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
  if [ -n "${LV_DEBUG_LOG:-}" ]; then
    echo 'log_filters = "1:qemu 1:libvirt 4:object 4:json 4:event 4:util 4:rpc 4:security 4:conf"' >>"$b/etc/libvirtd.conf"
    sed -i 's|^log_outputs = .*|log_outputs = "3:file:/var/log/libvirt/libvirtd.log 1:file:/var/log/libvirt/libvirtd-debug.log"|' "$b/etc/libvirtd.conf"
  fi
  cat >"$b/etc/qemu.conf" <<EOF
# written by tests/vm/libvirt_lib.sh for daemon lv$n of test run $$
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
memory_backing_dir = "${LV_RAMDIR[$n]}"
EOF
  cp /etc/passwd "$b/passwd"
  cp /etc/group "$b/group"
  grep -q '^libvirt-qemu:' "$b/passwd" || echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin' >>"$b/passwd"
  grep -q '^libvirt-qemu:' "$b/group" || echo 'libvirt-qemu:x:64055:' >>"$b/group"
  grep -q '^kvm:' "$b/group" || echo 'kvm:x:64056:' >>"$b/group"
}

# lv__keeper N: the process that holds daemon N's mount + UTS namespaces (inside LV_NS[N]).
lv__keeper() {
  local n=$1 b=${LV_ROOT[$1]}
  # shellcheck disable=SC2016  # expanded by the inner bash
  nsenter --net="/run/netns/${LV_NS[$n]}" unshare --mount --uts --propagation private bash -c '
    set -e
    b=$1
    mount --bind "$b/passwd" /etc/passwd
    mount --bind "$b/group" /etc/group
    mount --bind "$b/etc" /etc/libvirt
    mount --bind "$b/run" /run
    mount --bind "$b/varlib" /var/lib
    mount --bind "$b/varlog" /var/log
    mount --bind "$b/varcache" /var/cache
    hostname "$2"
    ip link set lo up
    cd /
    : >"$b/keeper.ready"
    exec sleep infinity' lv-keeper "$b" "${LV_NS[$n]}" </dev/null >"$b/keeper.log" 2>&1 &
  LV_KEEPER[$n]=$!
  hm_track_pid "${LV_KEEPER[$n]}"
  hm_wait_for 10 test -e "$b/keeper.ready" ||
    hm_fail "lv$n: the namespace keeper did not come up: $(cat "$b/keeper.log")"
}

lv_daemon_pid() {
  local f=${LV_ROOT[$1]}/run/libvirtd.pid pid
  [ -f "$f" ] || return 0
  read -r pid <"$f" || [ -n "${pid:-}" ] || return 0
  lv__ours "$1" "$pid" && echo "$pid"
  return 0
}

# lv__ours N PID: PID is alive and in daemon N's network namespace (a guard against PID reuse).
lv__ours() {
  [ -n "$2" ] && hm_alive "$2" || return 1
  [ "$(readlink "/proc/$2/ns/net" 2>/dev/null)" = "net:[${LV_NETNS_ID[$1]}]" ]
}

lv__daemon_answers() { virsh -q -c "${LV_URI[$1]}" uri >/dev/null 2>&1; }

# lv__since FILE OFFSET: the last 2000 bytes FILE gained after OFFSET (what this start wrote).
lv__since() {
  [ -f "$1" ] || { echo "(no $1)"; return 0; }
  tail -c +"$(($2 + 1))" "$1" | tail -c 2000
}

# lv__start_report N OUT_OFF LOG_OFF: libvirtd N's own words since it was started: its stdout and
# stderr (libvirtd.out: what it prints before its configuration is read and whatever a daemon that
# does not use the lane's configuration logs, libvirt's default output being stderr) and the log
# file the lane's configuration names (varlog/libvirt/libvirtd.log).
lv__start_report() {
  local b=${LV_ROOT[$1]}
  printf '\n--- %s:\n%s\n--- %s:\n%s' "$b/libvirtd.out" "$(lv__since "$b/libvirtd.out" "$2")" \
    "$b/varlog/libvirt/libvirtd.log" "$(lv__since "$b/varlog/libvirt/libvirtd.log" "$3")"
}

lv__size() { if [ -f "$1" ]; then stat -c %s "$1"; else echo 0; fi; }

# libvirtd runs in the foreground (no -d) as a background job in its own session (setsid, as -d
# would do), its stdout and stderr appended to $b/libvirtd.out: a daemon that ends before it answers
# fails the test with its exit status and its own error (libvirtd -d reports only "Unable to
# initialize network sockets" and the like, the cause being in a log that may be elsewhere). Once it
# answers the job is disowned: it is not waited for, the cleanup kills it by namespace.
# nsenter --root --wd: the daemon gets the keeper's root and working directory ("/"). Entering a
# mount namespace resets a process's root to the namespace's root, so without --root a test run
# inside a chroot would start the libvirtd (and read the /etc/libvirt, /run, ...) of the
# filesystem the chroot lives in, not the chroot's.
lv_start_daemon() {
  local n=$1 b=${LV_ROOT[$1]} old pid rc out_off log_off start=$SECONDS
  old=$(lv_daemon_pid "$n")
  [ -z "$old" ] || hm_fail "lv$n: libvirtd already runs (pid $old)"
  rm -f "$b/run/libvirtd.pid"
  out_off=$(lv__size "$b/libvirtd.out")
  log_off=$(lv__size "$b/varlog/libvirt/libvirtd.log")
  setsid -w nsenter --target "${LV_KEEPER[$n]}" --net --mount --uts --root --wd \
    libvirtd --listen -f /etc/libvirt/libvirtd.conf -p /run/libvirtd.pid </dev/null >>"$b/libvirtd.out" 2>&1 &
  pid=$!
  until lv__daemon_answers "$n"; do
    if ! hm_alive "$pid"; then
      rc=0
      wait "$pid" || rc=$?
      hm_fail "lv$n: libvirtd exited with status $rc before it answered on ${LV_URI[$n]}:$(lv__start_report "$n" "$out_off" "$log_off")"
    fi
    ((SECONDS - start < 30)) ||
      hm_fail "lv$n: libvirtd does not answer on ${LV_URI[$n]} after 30 s:$(lv__start_report "$n" "$out_off" "$log_off")"
    hm_sleep 0.1
  done
  disown "$pid"
  hm_log "lv$n: libvirtd pid $(lv_daemon_pid "$n") in ${LV_NS[$n]} (${LV_ADDR[$n]}), ${LV_URI[$n]}"
}

lv_kill_daemon() {
  local n=$1 pid
  pid=$(lv_daemon_pid "$n")
  [ -n "$pid" ] || hm_fail "lv$n: libvirtd does not run"
  kill -KILL "$pid"
  hm_wait_for 10 lv__gone "$pid" || hm_fail "lv$n: libvirtd pid $pid survived SIGKILL for 10 s"
  hm_log "lv$n: libvirtd pid $pid killed (SIGKILL); its QEMUs: $(lv_qemus "$n" | tr '\n' ' ')"
}
lv__gone() { ! hm_alive "$1"; }

lv_start_pair() {
  lv__ensure_tmp
  ((LV_UP)) && return 0
  local n out
  # netlab_up first: its cleanup (deleting the namespaces) runs after ours (killing what is in them).
  netlab_up 1500
  LV_NS[1]=$NETLAB_NS_SRC LV_ADDR[1]=$NETLAB_ADDR_SRC LV_IF[1]=$NETLAB_IF_SRC
  LV_NS[2]=$NETLAB_NS_DST LV_ADDR[2]=$NETLAB_ADDR_DST LV_IF[2]=$NETLAB_IF_DST
  for n in 1 2; do
    LV_ROOT[$n]="$HM_TMP/lv$n"
    LV_RAMDIR[$n]="$HM_TMP/lv$n-ram"
    LV_RUNDIR[$n]="$HM_TMP/lv$n-hymig"
    LV_URI[$n]="qemu+unix:///system?socket=$HM_TMP/lv$n/run/libvirt/libvirt-sock"
    LV_TCP_URI[$n]="qemu+tcp://${LV_ADDR[$n]}/system"
  done
  LV_UP=1
  hm_on_exit lv__cleanup
  for n in 1 2; do
    LV_NETNS_ID[$n]=$(stat -L -c %i "/run/netns/${LV_NS[$n]}")
    lv__conf "$n"
    lv__keeper "$n"
  done
  for n in 1 2; do lv_start_daemon "$n"; done
  # Each daemon reaches the other's libvirtd over the veth (what a p2p migration does).
  out=$(ip netns exec "${LV_NS[1]}" virsh -q -c "${LV_TCP_URI[2]}" uri 2>&1) ||
    hm_fail "lv1 cannot reach lv2's libvirtd at ${LV_TCP_URI[2]}: $out"
}

lv__ns_exists() { [ -n "${LV_NS[$1]:-}" ] && [ -e "/run/netns/${LV_NS[$1]}" ]; }

lv__cleanup() {
  ((LV_UP)) || return 0
  local n pid pids=() left
  for n in 1 2; do
    lv__ns_exists "$n" || continue
    # Every process in this run's namespaces is this run's: the keeper, libvirtd, its QEMUs.
    for pid in $(ip netns pids "${LV_NS[$n]}" 2>/dev/null); do
      lv__ours "$n" "$pid" && kill -KILL "$pid" 2>/dev/null && pids+=("$pid")
    done
  done
  for pid in "${pids[@]}"; do
    hm_wait_for 10 lv__gone "$pid" || echo "[${HM_TEST_NAME:-libvirt}] warning: pid $pid survived SIGKILL" >&2
  done
  LV_UP=0  # netlab_down (next in the exit trap) deletes the namespaces
}

lv_virsh() {
  local n=$1
  shift
  virsh -q -c "${LV_URI[$n]}" "$@"
}

lv_serial_path() { echo "/var/log/hymig/$1.serial"; }
lv_console() { echo "${LV_ROOT[$1]}/varlog/hymig/$2.serial"; }

lv__memory_backing() {
  case ${LV_MEMORY_BACKING:-file-shared} in
    file-shared) printf '  <memoryBacking>\n    <source type='"'file'"'/>\n    <access mode='"'shared'"'/>\n  </memoryBacking>\n' ;;
    anonymous) ;;
    *) hm_fail "LV_MEMORY_BACKING=$LV_MEMORY_BACKING: file-shared or anonymous" ;;
  esac
}

lv_domain_xml() {
  local name=$1 mem=$2 serial=$3
  cat <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>$mem</memory>
  <currentMemory unit='MiB'>$mem</currentMemory>
  <vcpu placement='static'>1</vcpu>
$(lv__memory_backing)
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$VM_KERNEL</kernel>
    <initrd>$VM_INITRD</initrd>
    <cmdline>$VM_APPEND</cmdline>
  </os>
  <cpu mode='custom' match='exact'>
    <model fallback='forbid'>qemu64</model>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <serial type='file'>
      <source path='$serial'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='$serial'/>
      <target type='serial' port='0'/>
    </console>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

lv_tag() { echo "${LV_TAG[$1:$2]:-}"; }

lv_expect() {
  local n=$1 name=$2 key="$1:$2" con k tag
  con=$(lv_console "$n" "$name")
  k=${LV_STINT[$key]:-0}
  if [ -e "$con" ]; then
    # An earlier stint's console (its QEMU has ended): keep it under its tag, start a fresh file.
    mv "$con" "$con.$k"
    [ -n "${LV_TAG[$key]:-}" ] && ln -sfn "$con.$k" "$HM_TMP/${LV_TAG[$key]}.serial"
  fi
  k=$((k + 1))
  LV_STINT[$key]=$k
  tag="$name@lv$n.$k"
  LV_TAG[$key]=$tag
  ln -sfn "$con" "$HM_TMP/$tag.serial"
  LV_LAST_TAG=$tag
}

lv_domain_defined() { lv_virsh "$1" domuuid "$2" >/dev/null 2>&1; }

lv_domstate() {
  local s
  s=$(lv_virsh "$1" domstate "$2" 2>/dev/null) || { echo none; return 0; }
  echo "$s"
}

lv_domstate_reason() {
  local s
  s=$(lv_virsh "$1" domstate --reason "$2" 2>/dev/null) || { echo none; return 0; }
  echo "$s"
}

lv_is_persistent() {
  local p
  p=$(lv_virsh "$1" dominfo "$2" 2>/dev/null | awk -F': *' '$1 == "Persistent" {print $2}')
  [ "$p" = yes ]
}

lv_qemu_pid() {
  local f=${LV_ROOT[$1]}/run/libvirt/qemu/$2.pid pid
  [ -f "$f" ] || return 0
  read -r pid <"$f" 2>/dev/null || [ -n "${pid:-}" ] || return 0
  lv__ours "$1" "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != libvirtd ] && echo "$pid"
  return 0
}

# lv_qemus N: "NAME:PID" per QEMU process in daemon N's namespace (the guest name from -name).
lv_qemus() {
  local pid name
  for pid in $(ip netns pids "${LV_NS[$1]}" 2>/dev/null); do
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */qemu-system-* ]] || continue
    hm_alive "$pid" || continue
    name=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | awk 'p {sub(/^guest=/, ""); sub(/,.*/, ""); print; exit} $0 == "-name" {p = 1}')
    echo "$name:$pid"
  done | sort
}

lv_wait_qemu_gone() { hm_wait_for "$2" lv__gone "$1"; }

lv_define_start() {
  local n=$1 name=$2 mem=$3 out tag
  lv_domain_xml "$name" "$mem" "$(lv_serial_path "$name")" >"$HM_TMP/$name.xml"
  lv_expect "$n" "$name"
  tag=$LV_LAST_TAG
  out=$(lv_virsh "$n" define "$HM_TMP/$name.xml" 2>&1) || hm_fail "lv$n: virsh define $name: $out"
  out=$(lv_virsh "$n" start "$name" 2>&1) ||
    hm_fail "lv$n: virsh start $name: $out; QEMU log: $(tail -c 2000 "${LV_ROOT[$n]}/varlog/libvirt/qemu/$name.log" 2>/dev/null)"
  hm_log "lv$n: guest $name ($mem MiB) started, QEMU pid $(lv_qemu_pid "$n" "$name"), console $tag"
  lv_vm vm_wait_ticks "$tag" 1 240
  lv_vm vm_wait_running_after "$tag" "$(vm_last_tick "$tag")"
  hm_log "lv$n: guest $name runs: tick $(vm_last_tick "$tag")"
}

lv_link_down() { netlab_link_down; }
lv_link_up() { netlab_link_up; }

lv_jobinfo() {
  local n=$1 name=$2 raw k v line
  LV_JOB=()
  raw=$(lv_virsh "$n" domjobinfo --completed --keep-completed --rawstats "$name" 2>&1) || return 1
  while IFS= read -r line; do
    # "memory_processed: 12345" (raw typed parameters) and "Job type: Completed"
    k=${line%%:*}
    v=${line#*:}
    v=${v#"${v%%[![:space:]]*}"}
    [[ $k =~ ^[a-z_.]+$ ]] && LV_JOB[$k]=$v
  done <<<"$raw"
  [ -n "${LV_JOB[time_elapsed]:-}" ]
}

lv_native_migrate() {
  local from=$1 to=$2 name=$3 rc=0 t0 t1 src_pid
  shift 3
  LV_MIG_OUT="" LV_MIG_WALL_MS="" LV_JOB_LINE=""
  LV_JOB=()
  # shellcheck disable=SC2034  # read by the caller
  LV_MIG_SRC_TAG=$(lv_tag "$from" "$name")
  src_pid=$(lv_qemu_pid "$from" "$name")
  lv_expect "$to" "$name"
  # shellcheck disable=SC2034  # read by the caller
  LV_MIG_DST_TAG=$LV_LAST_TAG
  t0=$(date +%s%N)
  # -k: a virsh that ignores SIGTERM in the middle of a migration is killed 10 s later (the test's
  # own deadline cannot interrupt a command substitution; a hung virsh ran into ctest's timeout).
  LV_MIG_OUT=$(ip netns exec "${LV_NS[$from]}" timeout -k 10 "${LV_MIGRATE_TIMEOUT:-300}" \
    virsh -q -c "${LV_URI[$from]}" migrate --live --persistent --undefinesource "$@" \
    "$name" "${LV_TCP_URI[$to]}" --migrateuri "tcp://${LV_ADDR[$to]}" 2>&1) || rc=$?
  t1=$(date +%s%N)
  LV_MIG_WALL_MS=$(((t1 - t0) / 1000000))
  if [ "$rc" -ne 0 ]; then
    hm_log "lv$from -> lv$to: virsh migrate $name exited $rc after $LV_MIG_WALL_MS ms: $LV_MIG_OUT"
    return "$rc"
  fi
  [ -z "$src_pid" ] || lv_wait_qemu_gone "$src_pid" 15 ||
    hm_log "lv$from -> lv$to: warning: the source QEMU pid $src_pid still runs 15 s after the migration"
  if lv_jobinfo "$to" "$name"; then
    LV_JOB_LINE="elapsed ${LV_JOB[time_elapsed]} ms, downtime ${LV_JOB[downtime]:-?} ms, data processed ${LV_JOB[data_processed]:-?} B of ${LV_JOB[data_total]:-?} B, memory iterations ${LV_JOB[memory_iteration]:-?}"
  else
    LV_JOB_LINE="no completed job statistics on lv$to"
  fi
  hm_log "lv$from -> lv$to: $name migrated by libvirt in $LV_MIG_WALL_MS ms (virsh); jobinfo: $LV_JOB_LINE"
  return 0
}

lv_serve() {
  local n=$1 log=$2
  shift 2
  mkdir -p "$HM_TMP/lv$n-store"
  # shellcheck disable=SC2034  # read by hm_start_serve (bash scoping is dynamic)
  local -a HM_SERVE_PREFIX=(ip netns exec "${LV_NS[$n]}")
  hm_start_serve "$log" --listen "${LV_ADDR[$n]}:0" --once --libvirt --connect "${LV_URI[$n]}" \
    --vm-runtime-dir "${LV_RUNDIR[$n]}" --store "$HM_TMP/lv$n-store" \
    --memory-backing-dir "${LV_RAMDIR[$n]}" --allow-path "$(dirname "$VM_KERNEL")" \
    --allow-path "$(dirname "$VM_INITRD")" --allow-path "$(dirname "$(lv_serial_path x)")" "$@"
}

lv_hymig_migrate() {
  local sec=$1 from=$2 to=$3 name=$4 out=$5 err=$6 t0 t1
  shift 6
  # shellcheck disable=SC2034  # read by the caller
  LV_MIG_SRC_TAG=$(lv_tag "$from" "$name")
  lv_expect "$to" "$name"
  # shellcheck disable=SC2034  # read by the caller
  LV_MIG_DST_TAG=$LV_LAST_TAG
  # shellcheck disable=SC2034  # read by hm_migrate_bg (bash scoping is dynamic)
  local -a HM_MIGRATE_PREFIX=(ip netns exec "${LV_NS[$from]}")
  t0=$(date +%s%N)
  hm_migrate_run "$sec" "$out" "$err" --domain "$name" --connect "${LV_URI[$from]}" --to "$HM_SERVE_ADDR" \
    --report json --progress off "$@"
  t1=$(date +%s%N)
  # shellcheck disable=SC2034  # read by the caller
  LV_MIG_WALL_MS=$(((t1 - t0) / 1000000))
}

lv_placement() {
  local from=$1 to=$2 name=$3 pid all
  if [ "$(lv_domstate "$to" "$name")" != running ]; then
    echo "not running on lv$to: $(lv_domstate_reason "$to" "$name")"
  elif ! lv_is_persistent "$to" "$name"; then
    echo "not persistent on lv$to"
  elif lv_domain_defined "$from" "$name"; then
    echo "still known on lv$from: $(lv_domstate_reason "$from" "$name")"
  else
    pid=$(lv_qemu_pid "$to" "$name")
    all=$( (lv_qemus 1; lv_qemus 2) | awk -F: -v n="$name" '$1 == n' | tr '\n' ' ')
    if [ -z "$pid" ] || [ "$all" != "$name:$pid " ]; then
      echo "QEMUs of $name: ${all:-none} (lv$to's pid file: ${pid:-none})"
    else
      echo ok
    fi
  fi
}

lv_assert_one_qemu() {
  local n=$1 name=$2 pid all
  pid=$(lv_qemu_pid "$n" "$name")
  [ -n "$pid" ] || hm_fail "lv$n: no QEMU runs $name (no live pid in libvirt's pid file)"
  all=$( (lv_qemus 1; lv_qemus 2) | awk -F: -v n="$name" '$1 == n' | tr '\n' ' ')
  [ "$all" = "$name:$pid " ] || hm_fail "expected exactly one QEMU of $name (pid $pid on lv$n), found: ${all:-none}"
}
