#!/bin/sh
# selftest: the lab itself. Checks that the Soft-RoCE devices are up with RoCE v2 GIDs for the lab's
# addresses, that libibverbs in the guest loads the rxe provider and carries UD and RC traffic from
# rxe0 to rxe1 over the veth (rdma-core's pingpong examples), that IP traffic between 10.9.0.1 and
# 10.9.0.2 crosses the veth (not lo), that hymig runs in the guest (`hymig probe --json`), and that
# netem on veth0 installs, drops, delays and goes away.
. /lab/lib.sh

# The guest's clock source (run-lab.sh asks for tsc: hpet makes every clock read an emulated MMIO
# access under TCG).
info "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>&1) (available: $(cat /sys/devices/system/clocksource/clocksource0/available_clocksource 2>&1))"

# rxe0/rxe1 exist and their ports are ACTIVE.
rdma link show >/tmp/rdma-link 2>&1
lab_show /tmp/rdma-link "rdma link show"
why=""
for d in rxe0 rxe1; do
  grep -q -E "^link $d/1 state ACTIVE" /tmp/rdma-link || why="$why $d not ACTIVE in 'rdma link show';"
  lab_rxe_active "$d" || why="$why $d port 1 sysfs state '$(cat /sys/class/infiniband/$d/ports/1/state 2>&1)';"
done
result rxe-devices-active "$([ -z "$why" ] && echo 0 || echo 1)" "$why"

# RoCE v2 GIDs for the lab's IPv4 addresses (index from sysfs, never a fixed number).
g0=$(gid_index rxe0 "$LAB_SRC") g1=$(gid_index rxe1 "$LAB_DST")
info "RoCE v2 GID index: rxe0 ($LAB_SRC) ${g0:-none}, rxe1 ($LAB_DST) ${g1:-none}"
[ -n "$g0" ] && [ -n "$g1" ]
result roce-v2-gids $? "no RoCE v2 GID for $LAB_SRC on rxe0 or $LAB_DST on rxe1: $(cat /sys/class/infiniband/rxe0/ports/1/gids/* 2>/dev/null | sort -u | tr '\n' ' ')"

# The userspace path a verbs backend takes: libibverbs loads the rxe provider, the ports are ACTIVE,
# and UD and RC traffic flows rxe0 -> veth0 -> veth1 -> rxe1 (rdma-core's own pingpong examples; the
# out-of-band exchange goes over 127.0.0.1).
if [ -x /usr/bin/ibv_devinfo ]; then
  ibv_devinfo >/tmp/devinfo 2>&1
  drc=$?
  lab_show /tmp/devinfo "ibv_devinfo (exit $drc)"
  n=$(grep -c 'PORT_ACTIVE' /tmp/devinfo)
  [ "$drc" = 0 ] && grep -q 'hca_id:.*rxe0' /tmp/devinfo && grep -q 'hca_id:.*rxe1' /tmp/devinfo && [ "$n" -ge 2 ]
  result verbs-provider-loads $? "ibv_devinfo exit $drc, $n ports PORT_ACTIVE: libibverbs does not see rxe0 and rxe1 (rxe.driver, librxe-rdmav*.so?)"
  info "RoCE active_mtu: $(grep active_mtu /tmp/devinfo | awk '{ print $2 }' | tr '\n' ' ')"
else
  result verbs-provider-loads 1 "no ibv_devinfo in the image (install ibverbs-utils on the host: scripts/bootstrap.sh)"
fi
for qp in ud rc; do
  if [ ! -x "/usr/bin/ibv_${qp}_pingpong" ]; then
    result "rdma-$qp-pingpong" 1 "no ibv_${qp}_pingpong in the image (install ibverbs-utils on the host: scripts/bootstrap.sh)"
    continue
  fi
  size=""
  [ "$qp" = ud ] && size="-s 1024"
  s0=$(rxe_count rxe0 sent_pkts) r0=$(rxe_count rxe1 rcvd_pkts) tx0=$(net_count veth0 tx_packets)
  PAIR_READY_PORT=18515   # the examples' default out-of-band port
  pair "rdma-$qp-pingpong" 120 "ibv_${qp}_pingpong -d rxe1 -g ${g1:-1} $size -n 500" \
    "ibv_${qp}_pingpong -d rxe0 -g ${g0:-1} $size -n 500 127.0.0.1"
  PAIR_READY_PORT=""
  s=$(($(rxe_count rxe0 sent_pkts) - s0)) r=$(($(rxe_count rxe1 rcvd_pkts) - r0)) tx=$(($(net_count veth0 tx_packets) - tx0))
  info "rdma-$qp-pingpong: rxe0 sent_pkts +$s, rxe1 rcvd_pkts +$r, veth0 tx_packets +$tx"
  [ "$PAIR_SRV_RC" = 0 ] && [ "$PAIR_CLI_RC" = 0 ] && [ "$s" -ge 500 ] && [ "$r" -ge 500 ] && [ "$tx" -ge 500 ]
  result "rdma-$qp-pingpong" $? "server exit $PAIR_SRV_RC, client exit $PAIR_CLI_RC, rxe0 sent +$s, rxe1 received +$r, veth0 tx +$tx (expected >= 500 each)"
done

# IP traffic from 10.9.0.1 to 10.9.0.2 goes out of veth0 (the policy routing works).
ip rule show | sed 's/^/  | /'
tx0=$(net_count veth0 tx_packets) rx0=$(net_count veth1 rx_packets)
ping -c 3 -W 2 -I "$LAB_SRC" "$LAB_DST" >/tmp/ping 2>&1
prc=$?
tx=$(($(net_count veth0 tx_packets) - tx0)) rx=$(($(net_count veth1 rx_packets) - rx0))
lab_show /tmp/ping "ping -c 3 -I $LAB_SRC $LAB_DST (exit $prc)"
info "during the ping: veth0 tx_packets +$tx, veth1 rx_packets +$rx"
[ "$prc" = 0 ] && [ "$tx" -ge 3 ] && [ "$rx" -ge 3 ]
result ping-crosses-veth $? "ping exit $prc, veth0 tx +$tx, veth1 rx +$rx (expected >= 3 each: did it go over lo?)"

# hymig runs here and reports its view of the host.
timeout 60 "$HYMIG" probe --json >/tmp/probe.json 2>/tmp/probe.err
prc=$?
lab_show /tmp/probe.err "hymig probe --json stderr (exit $prc)"
if [ "$prc" = 0 ] && $JQ -e 'type == "object"' /tmp/probe.json >/dev/null 2>&1; then
  result hymig-probe-json 0
  info "hymig probe: $($JQ -c '{capabilities, plan: (.plan | {bulk, reliable, datagram_bytes})}' /tmp/probe.json)"
  # "true", "false" or "absent" each
  # shellcheck disable=SC2046  # split on purpose: two words, one per capability
  set -- $($JQ -r '.capabilities | [if has("rdma_ud") then .rdma_ud else "absent" end, if has("rdma_rc") then .rdma_rc else "absent" end] | map(tostring) | join(" ")' /tmp/probe.json)
  ud=${1:-absent} rc=${2:-absent}
  # Both devices are ACTIVE here: hymig's probe must offer both RDMA transports.
  [ "$ud" = true ] && [ "$rc" = true ]
  result hymig-probe-sees-rdma $? "hymig probe says rdma_ud=$ud rdma_rc=$rc with rxe0/rxe1 ACTIVE (both must be true)"
  # rxe is software RoCE: the policy must say so and put sockets first, with the reason; forced,
  # it must pick UD and RC.
  $JQ -e '.capabilities.rdma_software == true and .plan.bulk == "udp" and .plan.reliable == "tcp"
          and (.plan.reasons[0] | test("software RoCE"))' /tmp/probe.json >/dev/null
  result hymig-probe-soft-rdma-policy $? "expected rdma_software=true and a udp/tcp plan naming software RoCE: $($JQ -c '{caps: .capabilities.rdma_software, bulk: .plan.bulk, reliable: .plan.reliable, why: .plan.reasons[0]}' /tmp/probe.json)"
  timeout 60 "$HYMIG" probe --json --bulk ud --reliable rc >/tmp/probe-forced.json 2>&1
  $JQ -e '.plan.bulk == "ud" and .plan.reliable == "rc" and .plan.datagram_bytes == 1024' /tmp/probe-forced.json >/dev/null
  result hymig-probe-forced-rdma $? "hymig probe --bulk ud --reliable rc: $(head -c 400 /tmp/probe-forced.json)"
else
  lab_show /tmp/probe.json "hymig probe --json stdout"
  result hymig-probe-json 1 "hymig probe --json exited $prc or printed no JSON object"
fi

# netem on veth0: the migrate test's impairment installs; 100 % loss drops; a delay delays; removal restores.
netem loss 5% delay 1ms
nrc=$?
tc qdisc show dev veth0 | sed 's/^/  | /'
tc qdisc show dev veth0 | grep -q 'netem.*delay 1ms.*loss 5%'
result netem-loss5-delay1ms "$(( nrc | $? ))" "tc qdisc add dev veth0 root netem loss 5% delay 1ms (exit $nrc) is not what tc shows"

netem loss 100%
d0=$(netem_drops)
ping -c 3 -W 1 -I "$LAB_SRC" "$LAB_DST" >/dev/null 2>&1
prc=$?
d=$(($(netem_drops) - d0))
info "netem loss 100%: ping exit $prc, netem dropped +$d"
[ "$prc" != 0 ] && [ "$d" -ge 3 ]
result netem-drops $? "with netem loss 100% ping exit $prc, netem dropped $d (expected failure and >= 3 drops)"

netem delay 50ms
ping -c 3 -W 3 -I "$LAB_SRC" "$LAB_DST" >/tmp/ping 2>&1
prc=$?
avg=$(sed -n 's|.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*|\1|p' /tmp/ping)
info "netem delay 50ms: ping exit $prc, avg rtt ${avg:-?} ms"
[ "$prc" = 0 ] && awk -v a="${avg:-0}" 'BEGIN { exit !(a >= 50) }'
result netem-delays $? "with netem delay 50ms ping exit $prc, avg rtt ${avg:-?} ms (expected >= 50)"

netem_off
tc qdisc show dev veth0 | grep -q netem && nrc=1 || nrc=0
ping -c 2 -W 2 -I "$LAB_SRC" "$LAB_DST" >/dev/null 2>&1
prc=$?
[ "$nrc" = 0 ] && [ "$prc" = 0 ]
result netem-removed $? "after tc qdisc del: netem still shown ($nrc) or ping exit $prc"
counters selftest
exit 0
