#!/usr/bin/env bash
# netlab_selftest: the network lab itself works, or none of the netns tests mean anything.
# Namespaces come up and reach each other over the veth; the loss rule drops exactly what it should
# (100 %: every datagram; 30 %: a plausible share, UDP and TCP); tbf carries the sender's traffic;
# a cut makes the peer unreachable and an uncut restores it; netlab_down and the exit trap (normal
# exit, error exit, SIGTERM) leave no namespace, no link and no process behind.
set -u -o pipefail
HM_TEST_NAME=netlab_selftest
source "$(dirname "$0")/../lib/netlab.sh"
netlab_require
hm_deadline 120
hm_tmpdir

# connect_result NS ADDR: "refused" (reachable, closed port), "timeout" or the error text.
connect_result() {
  local out
  out=$(ip netns exec "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/9" 2>&1)
  local rc=$?
  case $out in
    *"Connection refused"*) echo refused ;;
    *) if [ $rc -eq 124 ]; then echo timeout; else echo "rc=$rc $out"; fi ;;
  esac
}

# send_udp NS ADDR N: N datagrams from NS to ADDR:9 (bash builtins, no fork per datagram).
send_udp() {
  ip netns exec "$1" bash -c "for ((i = 0; i < $3; i++)); do echo x 2>/dev/null >/dev/udp/$2/9; done"
}

netlab_up 9000
[ "$(ip -n "$NETLAB_NS_SRC" -o link show "$NETLAB_IF_SRC" | grep -o 'mtu [0-9]*')" = "mtu 9000" ] ||
  hm_fail "MTU 9000 not set on $NETLAB_IF_SRC: $(ip -n "$NETLAB_NS_SRC" -o link show "$NETLAB_IF_SRC")"
ip link show | grep -q "hm$$" && hm_fail "veth ends leaked into the host namespace: $(ip link show | grep "hm$$")"
[ "$(connect_result "$NETLAB_NS_DST" "$NETLAB_ADDR_SRC")" = refused ] || hm_fail "DST cannot reach SRC"

# Nothing leaves the lab: no default route in either namespace.
for ns in "$NETLAB_NS_SRC" "$NETLAB_NS_DST"; do
  ip -n "$ns" route show default | grep -q . && hm_fail "namespace $ns has a default route"
done

# Loss 100 %: every datagram and every SYN is dropped, and counted.
netlab_loss 100
send_udp "$NETLAB_NS_SRC" "$NETLAB_ADDR_DST" 500
[ "$(connect_result "$NETLAB_NS_SRC" "$NETLAB_ADDR_DST")" = timeout ] || hm_fail "TCP got through 100 % loss"
drops=$(netlab_loss_drops)
udp=${drops#udp=}; udp=${udp%% *}; tcp=${drops##*tcp=}
[ "$udp" -eq 500 ] || hm_fail "100 % loss dropped $udp of 500 datagrams ($drops)"
[ "$tcp" -ge 1 ] || hm_fail "100 % loss dropped no TCP segment ($drops)"
hm_log "loss 100: $drops"

# Loss 30 %: the share dropped is plausible (expected 600 of 2000, sd ~20: bounds are > 10 sd away).
netlab_loss 30
send_udp "$NETLAB_NS_SRC" "$NETLAB_ADDR_DST" 2000
drops=$(netlab_loss_drops)
udp=${drops#udp=}; udp=${udp%% *}
((udp >= 400 && udp <= 800)) || hm_fail "30 % loss dropped $udp of 2000 datagrams"
hm_log "loss 30: $drops of 2000 datagrams"
netlab_loss 0
ip netns exec "$NETLAB_NS_DST" nft list tables | grep -q loss && hm_fail "netlab_loss 0 left the loss table"
[ "$(netlab_loss_drops)" = "udp=0 tcp=0" ] || hm_fail "netlab_loss_drops without a table: $(netlab_loss_drops)"

# tbf: loads with the asked rate and carries the sender's traffic.
netlab_rate 200mbit
q=$(ip netns exec "$NETLAB_NS_SRC" tc -s qdisc show dev "$NETLAB_IF_SRC")
grep -q 'tbf .*rate 200Mbit' <<<"$q" || hm_fail "no tbf at 200Mbit on $NETLAB_IF_SRC: $q"
send_udp "$NETLAB_NS_SRC" "$NETLAB_ADDR_DST" 100
sent=$(ip netns exec "$NETLAB_NS_SRC" tc -s qdisc show dev "$NETLAB_IF_SRC" | grep -o 'Sent [0-9]* bytes [0-9]* pkt' | head -1)
pkts=$(awk '{print $4}' <<<"$sent")
[ "${pkts:-0}" -ge 100 ] || hm_fail "tbf saw ${pkts:-0} packets after 100 datagrams ($sent)"
netlab_rate off
ip netns exec "$NETLAB_NS_SRC" tc qdisc show dev "$NETLAB_IF_SRC" | grep -q tbf && hm_fail "netlab_rate off left tbf"

# Cut and uncut.
netlab_cut
[ "$(connect_result "$NETLAB_NS_SRC" "$NETLAB_ADDR_DST")" = timeout ] || hm_fail "SRC still reaches DST after the cut"
[ "$(connect_result "$NETLAB_NS_DST" "$NETLAB_ADDR_SRC")" = timeout ] || hm_fail "DST still reaches SRC after the cut"
netlab_uncut
[ "$(connect_result "$NETLAB_NS_SRC" "$NETLAB_ADDR_DST")" = refused ] || hm_fail "SRC does not reach DST after the uncut"

# Background processes: recorded, inside the namespace, killed by netlab_down.
netlab_bg "$NETLAB_NS_DST" "$HM_TMP/bg.log" sleep 300
bgpid=$NETLAB_LAST_PID
hm_wait_for 5 bash -c "ip netns pids $NETLAB_NS_DST | grep -qx $bgpid" || hm_fail "netlab_bg pid $bgpid is not in $NETLAB_NS_DST"
src=$NETLAB_NS_SRC dst=$NETLAB_NS_DST
netlab_down
hm_alive "$bgpid" && hm_fail "netlab_down left pid $bgpid running"
ip netns list | grep -qE "^($src|$dst)( |$)" && hm_fail "netlab_down left a namespace: $(ip netns list)"
ip link show | grep -q "hm$$" && hm_fail "netlab_down left a link: $(ip link show | grep "hm$$")"

# The exit trap cleans up after a script that exits normally, fails, or is killed with SIGTERM.
lib=$(cd "$(dirname "$0")/../lib" && pwd)
for how in exit error sigterm; do
  info=$HM_TMP/child-$how
  bash -c '
    source "$1/netlab.sh"
    netlab_up
    netlab_bg "$NETLAB_NS_DST" /dev/null sleep 300
    echo "$NETLAB_NS_SRC $NETLAB_NS_DST $NETLAB_LAST_PID $$" >"$2"
    case $3 in
      exit) exit 0 ;;
      error) set -e; false ;;
      sigterm) hm_sleep 60 ;;
    esac' child "$lib" "$info" "$how" 2>>"$HM_TMP/child.log" &
  child=$!
  hm_track_pid "$child"
  hm_wait_for 20 test -s "$info" || hm_fail "child ($how) did not bring netlab up: $(cat "$HM_TMP/child.log")"
  read -r csrc cdst cpid _ <"$info"
  [ "$how" = sigterm ] && kill -TERM "$child"
  hm_wait_pid "$child" 20
  [ "$HM_RC" -ne 124 ] || hm_fail "child ($how) did not end"
  hm_alive "$cpid" && hm_fail "child ($how) left its background pid $cpid running"
  ip netns list | grep -qE "^($csrc|$cdst)( |$)" && hm_fail "child ($how, status $HM_RC) left a namespace: $(ip netns list)"
  hm_log "trap cleanup after $how (status $HM_RC): nothing left"
done
exit 0
