#!/usr/bin/env bash
# vm.slurm_drain (labels vm, ops, slurm): the Slurm hook against real Slurm daemons from Debian's
# packages. munged (a fresh key), slurmctld in lv2's namespace (its own UTS namespace, hostname
# hmctl) and slurmd for node lv1 in lv1's, from a generated slurm.conf; libvirt_lib.sh's two
# libvirt daemons; `hymig serve --libvirt` on both nodes (lv1's is the daemon the hook hands off to).
#   1. The reboot guard (RebootProgram) on lv1 while two working guests run there: refuses (exit
#      1), runs no reboot command, drains the node with a reason that says so; resumed after.
#   2. strigger --set --node --drained --flags=PERM --program=contrib/slurm/hymig-slurm-drain;
#      `scontrol update nodename=lv1 state=drain`: the trigger hands the evacuation to lv1's daemon,
#      the reason goes "hymig: evacuating VMs", then "hymig: evacuated, 2 VMs moved".
#   3. Both guests run on lv2 only with bad=0; the guard now runs the reboot command.
# Exits 77 (reason printed) without root, libvirt, QEMU, a guest kernel or Slurm and munge.
set -euo pipefail
# shellcheck disable=SC2034  # read by common.sh
HM_TEST_NAME=vm_slurm_drain
# shellcheck source=libvirt_test.sh
source "$(dirname "$0")/libvirt_test.sh"
for t in slurmctld slurmd munged scontrol strigger sinfo; do
  command -v "$t" >/dev/null || hm_skip "$t is not installed (scripts/bootstrap.sh installs slurm-wlm and munge)"
done
CONTRIB=$(cd "$VM_TEST_DIR/../../contrib/slurm" && pwd)

guests=(sg1 sg2)
VM_APPEND=${VM_APPEND/hymig.ws_mib=96/hymig.ws_mib=48}
lv_define_start 1 sg1 192
lv_define_start 1 sg2 160

# The nodes' daemons (not --once), on the port the hook's configuration names.
lvh_daemon 1 "$HM_TMP/serve1.log" 7470
lvh_daemon 2 "$HM_TMP/serve2.log" 7470
echo "${LV_ADDR[2]}:7470" >"$HM_TMP/targets"

# Slurm: munged, slurmctld (lv2's namespace), slurmd (lv1's), all from a generated configuration.
S=$HM_TMP/slurm
mkdir -p "$S/run" "$S/state" "$S/spool" "$S/log"
chmod 755 "$S" "$S/run"
dd if=/dev/urandom of="$S/munge.key" bs=1 count=1024 status=none
chmod 400 "$S/munge.key"
munged -F -f --socket="$S/run/munge.sock" --key-file="$S/munge.key" --log-file="$S/log/munged.log" \
  --pid-file="$S/run/munged.pid" --seed-file="$S/munged.seed" >"$S/log/munged.out" 2>&1 &
hm_track_pid $!
munge_up() { [ -S "$S/run/munge.sock" ]; }
hm_wait_for 10 munge_up || hm_fail "munged did not start: $(cat "$S/log/munged.out" "$S/log/munged.log" 2>/dev/null)"
export SLURM_CONF=$S/slurm.conf
cat >"$SLURM_CONF" <<CONF
ClusterName=hymiglab
SlurmctldHost=hmctl(${LV_ADDR[2]})
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$S/run/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/linear
ReturnToService=2
MpiDefault=none
RebootProgram="$CONTRIB/hymig-slurm-reboot-guard --conf $HM_TMP/hook.conf"
NodeName=lv1 NodeAddr=${LV_ADDR[1]} CPUs=1 RealMemory=1000 State=UNKNOWN
PartitionName=main Nodes=lv1 Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$HM_TMP/hook.conf" <<CONF
HYMIG=$HYMIG
HYMIG_KEY_FILE=$HYMIG_KEY_FILE
HYMIG_PORT=7470
HYMIG_TARGETS_FILE=$HM_TMP/targets
HYMIG_DRAIN_ARGS="--parallel 2 --bandwidth 24M --retry-delay 3"
HYMIG_POLL=1
HYMIG_LIBVIRT_URI=${LV_URI[1]}
HYMIG_REBOOT_COMMAND="touch $HM_TMP/rebooted"
HYMIG_NODE_NAME=lv1
CONF
ip netns exec "${LV_NS[2]}" unshare --uts sh -c "hostname hmctl; exec slurmctld -D -f $SLURM_CONF" >"$S/log/slurmctld.out" 2>&1 &
hm_track_pid $!
hm_sleep 1
# nsenter --net, not `ip netns exec`: that one mounts a fresh /sys without the cgroups slurmd needs.
nsenter --net="/run/netns/${LV_NS[1]}" slurmd -D -N lv1 -f "$SLURM_CONF" >"$S/log/slurmd.out" 2>&1 &
hm_track_pid $!
# Slurm's commands from the controller's network (the host's cannot reach it).
scontrol() { ip netns exec "${LV_NS[2]}" scontrol "$@"; }
sinfo() { ip netns exec "${LV_NS[2]}" sinfo "$@"; }
strigger() { ip netns exec "${LV_NS[2]}" strigger "$@"; }
node_field() { scontrol show node lv1 -o 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p"; }
node_reason() { scontrol show node lv1 -o 2>/dev/null | sed -n 's/.* Reason=\(.*\) \[.*/\1/p'; }
idle() { [ "$(node_field State)" = IDLE ]; }
hm_wait_for 60 idle || hm_fail "node lv1 never became IDLE (state '$(node_field State)'): $(tail -n 5 "$S/log/slurmctld.log" "$S/log/slurmd.log" 2>/dev/null)"
hm_log "Slurm up: $(sinfo -N -h -o '%N %T') (slurmd of lv1 at $(node_field NodeAddr), slurmctld at ${LV_ADDR[2]})"

# 1. The guard refuses while the guests run.
rc=0
ip netns exec "${LV_NS[1]}" "$CONTRIB/hymig-slurm-reboot-guard" --conf "$HM_TMP/hook.conf" >"$HM_TMP/guard1.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || hm_fail "the reboot guard exited $rc with guests running: $(cat "$HM_TMP/guard1.out")"
[ ! -e "$HM_TMP/rebooted" ] || hm_fail "the reboot guard ran the reboot command with guests running"
[[ "$(node_reason)" == "hymig: reboot refused: 2 VMs"* ]] || hm_fail "the node's reason after the refusal: '$(node_reason)'"
hm_log "guard: $(tail -n1 "$HM_TMP/guard1.out"); node $(node_field State)"
scontrol update nodename=lv1 state=resume || hm_fail "cannot resume lv1"
hm_wait_for 30 idle || hm_fail "lv1 did not return to IDLE"

# 2. The drain trigger.
declare -A src
for g in "${guests[@]}"; do
  src[$g]=$(lv_tag 1 "$g")
  lv_expect 2 "$g"
done
strigger --set --node --drained --flags=PERM --program="$CONTRIB/hymig-slurm-drain --conf $HM_TMP/hook.conf" ||
  hm_fail "strigger --set failed"
scontrol update nodename=lv1 state=drain reason="maintenance" || hm_fail "scontrol cannot drain lv1"
evacuating() { [[ "$(node_reason)" == "hymig: evac"* ]]; }
hm_wait_for 90 evacuating || hm_fail "the trigger did not hand off within 90 s: reason '$(node_reason)'; $(strigger --get 2>&1); $(tail -n 5 "$S/log/slurmctld.log")"
hm_log "trigger fired: reason '$(node_reason)'"
evacuated() { [[ "$(node_reason)" == "hymig: evacuated"* || "$(node_reason)" == "hymig: "*"remain"* || "$(node_reason)" == "hymig: the drain failed"* ]]; }
hm_wait_for 300 evacuated || hm_fail "no outcome within 300 s: reason '$(node_reason)'; $(ip netns exec "${LV_NS[1]}" "$HYMIG" status "${LV_ADDR[1]}:7470" --json | jq -c .drain)"
[ "$(node_reason)" = "hymig: evacuated, 2 VMs moved" ] || hm_fail "the node's reason: '$(node_reason)'"
[[ "$(node_field State)" == *DRAIN* ]] || hm_fail "lv1 is '$(node_field State)', expected drained"

# 3. Where the guests are, and the guard now.
for g in "${guests[@]}"; do lvh_assert_moved 1 2 "$g" "${src[$g]}" "slurm drain $g"; done
ip netns exec "${LV_NS[1]}" "$CONTRIB/hymig-slurm-reboot-guard" --conf "$HM_TMP/hook.conf" >"$HM_TMP/guard2.out" 2>&1 ||
  hm_fail "the reboot guard refused an empty node: $(cat "$HM_TMP/guard2.out")"
[ -e "$HM_TMP/rebooted" ] || hm_fail "the reboot guard did not run the reboot command on an empty node"
hm_log "slurm drain: reason '$(node_reason)', guests on lv2 with bad=0, the guard lets the empty node reboot"
exit 0
