# shellcheck shell=bash
# netlab: two network namespaces joined by a veth pair, with loss (nftables), rate (tc tbf) and
# link cuts, for the hymig integration tests. Source it after (or instead of) common.sh.
#
#   netlab_require               skip (exit 77, with the reason) unless root with ip netns, nft and tc
#   netlab_up [MTU] [middle]     creates the namespaces and the veth pair; removed again on exit.
#                                With `middle`, a third namespace NETLAB_NS_MID routes between two
#                                veth pairs (SRC 10.213.X.1 <-> .2 MID .5 <-> .6 DST): a bottleneck
#                                that is neither end's own qdisc (netlab_rate_middle)
#       NETLAB_NS_SRC   hymig-<pid>-src  (where the source, `hymig migrate`, runs)
#       NETLAB_NS_DST   hymig-<pid>-dst  (where the receiver, `hymig serve`, runs)
#       NETLAB_IF_SRC / NETLAB_IF_DST    veth ends in each namespace
#       NETLAB_ADDR_SRC 10.213.X.1, NETLAB_ADDR_DST 10.213.X.2 (a /30; X from the PID)
#   netlab_bg NS LOG CMD...      runs CMD inside NS in the background, stdout+stderr appended to LOG;
#                                its PID in NETLAB_LAST_PID (killed by PID in netlab_down)
#   netlab_loss PCT              drops PCT % of incoming UDP and TCP at random in the receiving (DST)
#                                namespace (nftables numgen random); 0 removes the rule
#   netlab_loss_drops            prints "udp=N tcp=M": packets the loss rule dropped so far
#   netlab_rate RATE             tc tbf on the sender's veth (e.g. 200mbit); `netlab_rate off` removes it
#   netlab_rate_middle RATE      (middle only) tc tbf on the middle namespace's way to DST
#   netlab_cut / netlab_uncut    drop everything arriving over the veth, in both namespaces
#   netlab_down                  kills the processes netlab_bg started (by PID), deletes the namespaces
#
# Traffic stays between the two namespaces' addresses (or their loopbacks): nothing is routed out.

if ! declare -F hm_on_exit >/dev/null; then
  # shellcheck source=common.sh
  source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fi

NETLAB_UP=0
NETLAB_PIDS=()
NETLAB_NS_SRC=""
NETLAB_NS_DST=""
NETLAB_NS_MID=""

netlab_require() {
  [ "$(id -u)" -eq 0 ] || hm_skip "netlab needs root (network namespaces, nftables, tc); running as uid $(id -u)"
  command -v ip >/dev/null || hm_skip "the 'ip' command (iproute2) is not installed"
  command -v nft >/dev/null || hm_skip "the 'nft' command (nftables) is not installed"
  command -v tc >/dev/null || hm_skip "the 'tc' command (iproute2) is not installed"
  ip netns list >/dev/null 2>&1 || hm_skip "'ip netns' does not work here: $(ip netns list 2>&1 | head -1)"
}

netlab_bg() {
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" >>"$log" 2>&1 &
  NETLAB_LAST_PID=$!
  NETLAB_PIDS+=("$NETLAB_LAST_PID")
}

netlab__nft() { # netlab__nft NS: reads a ruleset on stdin
  ip netns exec "$1" nft -f -
}

# netlab_up [MTU] [middle]
netlab_up() {
  local mtu=${1:-1500} middle=${2:-}
  netlab_require
  ((NETLAB_UP)) && return 0
  local id=$$
  NETLAB_NS_SRC="hymig-$id-src"
  NETLAB_NS_DST="hymig-$id-dst"
  NETLAB_IF_SRC="hm${id}s"
  NETLAB_IF_DST="hm${id}d"
  local x=$((id % 250 + 1))
  NETLAB_ADDR_SRC="10.213.$x.1"
  NETLAB_ADDR_DST="10.213.$x.2"

  local out
  if ! out=$(ip netns add "$NETLAB_NS_SRC" 2>&1); then
    hm_skip "cannot create network namespace $NETLAB_NS_SRC: $out"
  fi
  NETLAB_UP=1
  hm_on_exit netlab_down
  out=$(ip netns add "$NETLAB_NS_DST" 2>&1) || hm_fail "netlab: ip netns add $NETLAB_NS_DST: $out"
  local ns ifc addr
  if [ "$middle" = middle ]; then
    NETLAB_NS_MID="hymig-$id-mid"
    NETLAB_IF_MID_SRC="hm${id}ms"
    NETLAB_IF_MID_DST="hm${id}md"
    NETLAB_ADDR_DST="10.213.$x.6"
    out=$(ip netns add "$NETLAB_NS_MID" 2>&1) || hm_fail "netlab: ip netns add $NETLAB_NS_MID: $out"
    ip link add "$NETLAB_IF_SRC" netns "$NETLAB_NS_SRC" mtu "$mtu" type veth \
      peer name "$NETLAB_IF_MID_SRC" netns "$NETLAB_NS_MID" mtu "$mtu" || hm_skip "cannot create a veth pair"
    ip link add "$NETLAB_IF_MID_DST" netns "$NETLAB_NS_MID" mtu "$mtu" type veth \
      peer name "$NETLAB_IF_DST" netns "$NETLAB_NS_DST" mtu "$mtu" || hm_fail "netlab: second veth pair"
    for ns in "$NETLAB_NS_SRC" "$NETLAB_NS_MID" "$NETLAB_NS_DST"; do
      ip -n "$ns" link set lo up || hm_fail "netlab: lo up in $ns"
    done
    ip -n "$NETLAB_NS_SRC" addr add "$NETLAB_ADDR_SRC/30" dev "$NETLAB_IF_SRC" || hm_fail "netlab: address on $NETLAB_IF_SRC"
    ip -n "$NETLAB_NS_MID" addr add "10.213.$x.2/30" dev "$NETLAB_IF_MID_SRC" || hm_fail "netlab: address on $NETLAB_IF_MID_SRC"
    ip -n "$NETLAB_NS_MID" addr add "10.213.$x.5/30" dev "$NETLAB_IF_MID_DST" || hm_fail "netlab: address on $NETLAB_IF_MID_DST"
    ip -n "$NETLAB_NS_DST" addr add "$NETLAB_ADDR_DST/30" dev "$NETLAB_IF_DST" || hm_fail "netlab: address on $NETLAB_IF_DST"
    for ifc in "$NETLAB_NS_SRC:$NETLAB_IF_SRC" "$NETLAB_NS_MID:$NETLAB_IF_MID_SRC" "$NETLAB_NS_MID:$NETLAB_IF_MID_DST" \
      "$NETLAB_NS_DST:$NETLAB_IF_DST"; do
      ip -n "${ifc%%:*}" link set "${ifc#*:}" up || hm_fail "netlab: ${ifc#*:} up"
    done
    ip netns exec "$NETLAB_NS_MID" sysctl -qw net.ipv4.ip_forward=1 || hm_fail "netlab: forwarding in $NETLAB_NS_MID"
    ip -n "$NETLAB_NS_SRC" route add "10.213.$x.4/30" via "10.213.$x.2" || hm_fail "netlab: route in $NETLAB_NS_SRC"
    ip -n "$NETLAB_NS_DST" route add "10.213.$x.0/30" via "10.213.$x.5" || hm_fail "netlab: route in $NETLAB_NS_DST"
  else
    # Both ends are created directly inside their namespaces: nothing appears in the host's namespace.
    if ! out=$(ip link add "$NETLAB_IF_SRC" netns "$NETLAB_NS_SRC" mtu "$mtu" type veth \
      peer name "$NETLAB_IF_DST" netns "$NETLAB_NS_DST" mtu "$mtu" 2>&1); then
      hm_skip "cannot create a veth pair (is the veth module available?): $out"
    fi
    for ns in "$NETLAB_NS_SRC" "$NETLAB_NS_DST"; do
      ip -n "$ns" link set lo up || hm_fail "netlab: lo up in $ns"
    done
    ip -n "$NETLAB_NS_SRC" addr add "$NETLAB_ADDR_SRC/30" dev "$NETLAB_IF_SRC" || hm_fail "netlab: address on $NETLAB_IF_SRC"
    ip -n "$NETLAB_NS_DST" addr add "$NETLAB_ADDR_DST/30" dev "$NETLAB_IF_DST" || hm_fail "netlab: address on $NETLAB_IF_DST"
    ip -n "$NETLAB_NS_SRC" link set "$NETLAB_IF_SRC" up || hm_fail "netlab: $NETLAB_IF_SRC up"
    ip -n "$NETLAB_NS_DST" link set "$NETLAB_IF_DST" up || hm_fail "netlab: $NETLAB_IF_DST up"
  fi

  # nftables must work inside a namespace, or none of the loss/cut scenarios mean anything.
  if ! out=$(printf 'table inet hymig_probe {\n}\n' | netlab__nft "$NETLAB_NS_DST" 2>&1); then
    hm_skip "nftables does not work in a network namespace here: $out"
  fi
  ip netns exec "$NETLAB_NS_DST" nft delete table inet hymig_probe

  # Reachability without ping: a TCP connect to a closed port must be refused (RST), not time out.
  out=$(ip netns exec "$NETLAB_NS_SRC" timeout 5 bash -c "exec 3<>/dev/tcp/$NETLAB_ADDR_DST/9" 2>&1)
  case $out in
    *"Connection refused"*) ;;
    *) hm_fail "netlab: $NETLAB_ADDR_DST not reachable from $NETLAB_NS_SRC over the veth: $out" ;;
  esac
  hm_log "netlab up: $NETLAB_NS_SRC ($NETLAB_ADDR_SRC, $NETLAB_IF_SRC) <-> ${NETLAB_NS_MID:+$NETLAB_NS_MID <-> }$NETLAB_NS_DST ($NETLAB_ADDR_DST, $NETLAB_IF_DST), mtu $mtu"
}

# netlab_rate_middle RATE|off: token bucket in the middle namespace, on its way to DST.
netlab_rate_middle() {
  local rate=$1
  [ -n "$NETLAB_NS_MID" ] || hm_fail "netlab_rate_middle: netlab_up was not given 'middle'"
  ip netns exec "$NETLAB_NS_MID" tc qdisc del dev "$NETLAB_IF_MID_DST" root 2>/dev/null
  [ "$rate" = off ] && return 0
  ip netns exec "$NETLAB_NS_MID" tc qdisc add dev "$NETLAB_IF_MID_DST" root tbf rate "$rate" burst 256kb latency 50ms ||
    hm_fail "netlab_rate_middle: tc rejected tbf rate $rate"
  hm_log "netlab: tbf rate $rate in $NETLAB_NS_MID on $NETLAB_IF_MID_DST"
}

# netlab_loss PCT: random loss of incoming UDP and TCP in the receiving namespace.
netlab_loss() {
  local pct=$1
  [[ $pct =~ ^[0-9]+$ ]] && ((pct <= 100)) || hm_fail "netlab_loss: '$pct' is not a percentage 0..100"
  ip netns exec "$NETLAB_NS_DST" nft delete table inet loss 2>/dev/null
  ((pct == 0)) && return 0
  local match="numgen random mod 100 < $pct "
  ((pct == 100)) && match=""   # nft: the right-hand side of "mod 100 <" must be 0..99
  # The closing braces need a newline between them: nft 1.0.6 rejects "} }" after a rule line.
  netlab__nft "$NETLAB_NS_DST" <<EOF || hm_fail "netlab_loss: nft rejected the loss table"
table inet loss { chain in { type filter hook input priority 0;
meta l4proto udp ${match}counter drop
meta l4proto tcp ${match}counter drop
}
}
EOF
  hm_log "netlab: dropping $pct % of incoming UDP and TCP in $NETLAB_NS_DST"
}

# netlab_loss_drops: "udp=N tcp=M", packets dropped by the loss table (0 0 without one).
netlab_loss_drops() {
  local json
  json=$(ip netns exec "$NETLAB_NS_DST" nft -j list table inet loss 2>/dev/null) || {
    echo "udp=0 tcp=0"
    return 0
  }
  jq -r '[.nftables[] | select(.rule) | .rule.expr | map(select(.counter)) | .[0].counter.packets] |
         "udp=\(.[0] // 0) tcp=\(.[1] // 0)"' <<<"$json"
}

# netlab_rate RATE|off: token bucket on the sender's veth (traffic from SRC to DST).
netlab_rate() {
  local rate=$1
  ip netns exec "$NETLAB_NS_SRC" tc qdisc del dev "$NETLAB_IF_SRC" root 2>/dev/null
  [ "$rate" = off ] && return 0
  # burst well above a 64 KB GSO segment; latency bounds the queue (rate * 50 ms).
  ip netns exec "$NETLAB_NS_SRC" tc qdisc add dev "$NETLAB_IF_SRC" root tbf rate "$rate" burst 256kb latency 50ms ||
    hm_fail "netlab_rate: tc rejected tbf rate $rate"
  hm_log "netlab: tbf rate $rate on $NETLAB_IF_SRC"
}

# netlab_cut: the link goes dark both ways (every packet arriving over the veth is dropped).
netlab_cut() {
  local ns ifc
  for ns in "$NETLAB_NS_SRC" "$NETLAB_NS_DST"; do
    ifc=$NETLAB_IF_SRC
    [ "$ns" = "$NETLAB_NS_DST" ] && ifc=$NETLAB_IF_DST
    netlab__nft "$ns" <<EOF || hm_fail "netlab_cut: nft rejected the cut table in $ns"
table inet cut { chain in { type filter hook input priority -10;
iifname "$ifc" counter drop
}
}
EOF
  done
  hm_log "netlab: link cut (everything over the veth dropped, both ways)"
}

netlab_uncut() {
  local ns
  for ns in "$NETLAB_NS_SRC" "$NETLAB_NS_DST"; do
    ip netns exec "$ns" nft delete table inet cut 2>/dev/null
  done
  return 0
}

# netlab_down: idempotent; run by the exit trap.
netlab_down() {
  ((NETLAB_UP)) || return 0
  local pid ns left
  for pid in "${NETLAB_PIDS[@]}"; do
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null
  done
  for pid in "${NETLAB_PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  NETLAB_PIDS=()
  for ns in "$NETLAB_NS_SRC" "$NETLAB_NS_MID" "$NETLAB_NS_DST"; do
    [ -n "$ns" ] || continue
    left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    [ -n "$left" ] && echo "[${HM_TEST_NAME:-netlab}] warning: processes still in $ns: $left(not ours to kill; the namespace goes when they end)" >&2
    ip netns del "$ns" 2>/dev/null
  done
  NETLAB_NS_MID=""
  NETLAB_UP=0
}
