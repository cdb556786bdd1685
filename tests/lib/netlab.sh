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
#   netlab_link_down / netlab_link_up
#                                both veth ends down / up (a cut the kernel sees: routes go, sends
#                                fail at once); netlab_link_up waits up to 10 s for DST to answer
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

  hm_wait_for 10 netlab__reachable ||
    hm_fail "netlab: $NETLAB_ADDR_DST not reachable from $NETLAB_NS_SRC over the veth: $NETLAB_REACH_OUT"
  hm_log "netlab up: $NETLAB_NS_SRC ($NETLAB_ADDR_SRC, $NETLAB_IF_SRC) <-> ${NETLAB_NS_MID:+$NETLAB_NS_MID <-> }$NETLAB_NS_DST ($NETLAB_ADDR_DST, $NETLAB_IF_DST), mtu $mtu"
}

# Reachability without ping: a TCP connect to a closed port of DST is refused (RST), not timed out.
netlab__reachable() {
  NETLAB_REACH_OUT=$(ip netns exec "$NETLAB_NS_SRC" timeout 2 bash -c "exec 3<>/dev/tcp/$NETLAB_ADDR_DST/9" 2>&1)
  [[ $NETLAB_REACH_OUT == *"Connection refused"* ]]
}

netlab_link_down() {
  ip -n "$NETLAB_NS_SRC" link set "$NETLAB_IF_SRC" down || hm_fail "netlab: $NETLAB_IF_SRC down"
  ip -n "$NETLAB_NS_DST" link set "$NETLAB_IF_DST" down || hm_fail "netlab: $NETLAB_IF_DST down"
  hm_log "netlab: veth $NETLAB_IF_SRC <-> $NETLAB_IF_DST down"
}

netlab_link_up() {
  ip -n "$NETLAB_NS_SRC" link set "$NETLAB_IF_SRC" up || hm_fail "netlab: $NETLAB_IF_SRC up"
  ip -n "$NETLAB_NS_DST" link set "$NETLAB_IF_DST" up || hm_fail "netlab: $NETLAB_IF_DST up"
  hm_wait_for 10 netlab__reachable ||
    hm_fail "netlab: $NETLAB_ADDR_DST not reachable from $NETLAB_NS_SRC 10 s after the veth came up: $NETLAB_REACH_OUT"
  hm_log "netlab: veth $NETLAB_IF_SRC <-> $NETLAB_IF_DST up"
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

# ---- loss patterns beyond random (tests/integration/loss_patterns.sh) ---------------------------
#
#   netlab_up_relay MTU RELAY-ARGS...
#                                like netlab_up, but SRC (NETLAB_ADDR_SRC 10.213.X.1) and DST
#                                (NETLAB_ADDR_DST 10.213.X.2, the same /30) are joined through the
#                                middle namespace NETLAB_NS_MID by a user-space wire, not by the
#                                kernel: hymig-test-relay ($HYMIG_TEST_RELAY) bridges its two veth
#                                ends (no addresses, no forwarding) and impairs frames from SRC to
#                                DST as RELAY-ARGS say (--ge, --reorder, --dup, --match; see
#                                tests/tools/test_relay.cpp). Offloads are off on all four veth ends,
#                                so frames are single datagrams of at most the MTU.
#   netlab_relay_start ARGS...   (re)starts the relay with ARGS (--seed $HM_RELAY_SEED or 1 added)
#   netlab_relay_stop            SIGTERM to the relay; its final counters (JSON) in NETLAB_RELAY_STATS
#   netlab_relay_stat KEY        prints one counter of NETLAB_RELAY_STATS
#   netlab_offload_off           offloads off on both ends of netlab_up's veth (direct topology)
#   netlab_loss_runs N K         drops K consecutive incoming UDP packets out of every N in DST
#                                (nftables numgen inc: deterministic runs); counted by netlab_loss_drops
#   netlab_mtu_middle MTU        (middle only) sets the MTU of the middle's link towards DST, both ends:
#                                the path shrinks (or grows) under whatever is running
#   netlab_snmp NS PROTO FIELD   prints a counter of /proc/net/snmp in NS (e.g. Icmp OutDestUnreachs)

NETLAB_RELAY_PID=""
NETLAB_RELAY_STATS=""

netlab__require_relay() {
  [ -n "${HYMIG_TEST_RELAY:-}" ] || hm_fail "HYMIG_TEST_RELAY is not set (build/release/tests/tools/hymig-test-relay)"
  [ -x "$HYMIG_TEST_RELAY" ] || hm_fail "HYMIG_TEST_RELAY=$HYMIG_TEST_RELAY is not an executable"
  HYMIG_TEST_RELAY=$(realpath "$HYMIG_TEST_RELAY")
}

# netlab__offload NS IFACE...: offloads off (hymig-test-relay --offload-off) on the named interfaces.
netlab__offload() {
  local ns=$1 out
  shift
  out=$(ip netns exec "$ns" "$HYMIG_TEST_RELAY" --offload-off "$@" 2>&1) ||
    hm_fail "netlab: turning offloads off on $* in $ns failed: $out"
}

netlab_up_relay() {
  local mtu=$1
  shift
  netlab_require
  netlab__require_relay
  ((NETLAB_UP)) && hm_fail "netlab_up_relay: the lab is already up (netlab_down first)"
  local id=$$ out ns ifc
  local x=$((id % 250 + 1))
  NETLAB_NS_SRC="hymig-$id-src"
  NETLAB_NS_DST="hymig-$id-dst"
  NETLAB_NS_MID="hymig-$id-mid"
  NETLAB_IF_SRC="hm${id}s"
  NETLAB_IF_DST="hm${id}d"
  NETLAB_IF_MID_SRC="hm${id}ms"
  NETLAB_IF_MID_DST="hm${id}md"
  NETLAB_ADDR_SRC="10.213.$x.1"
  NETLAB_ADDR_DST="10.213.$x.2"
  if ! out=$(ip netns add "$NETLAB_NS_SRC" 2>&1); then
    hm_skip "cannot create network namespace $NETLAB_NS_SRC: $out"
  fi
  NETLAB_UP=1
  hm_on_exit netlab_down
  for ns in "$NETLAB_NS_MID" "$NETLAB_NS_DST"; do
    out=$(ip netns add "$ns" 2>&1) || hm_fail "netlab: ip netns add $ns: $out"
  done
  ip link add "$NETLAB_IF_SRC" netns "$NETLAB_NS_SRC" mtu "$mtu" type veth \
    peer name "$NETLAB_IF_MID_SRC" netns "$NETLAB_NS_MID" mtu "$mtu" || hm_skip "cannot create a veth pair"
  ip link add "$NETLAB_IF_MID_DST" netns "$NETLAB_NS_MID" mtu "$mtu" type veth \
    peer name "$NETLAB_IF_DST" netns "$NETLAB_NS_DST" mtu "$mtu" || hm_fail "netlab: second veth pair"
  # The middle is a wire, not a host: no IPv6 of its own (no router solicitations to carry).
  ip netns exec "$NETLAB_NS_MID" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 ||
    hm_fail "netlab: disabling IPv6 in $NETLAB_NS_MID"
  for ns in "$NETLAB_NS_SRC" "$NETLAB_NS_MID" "$NETLAB_NS_DST"; do
    ip -n "$ns" link set lo up || hm_fail "netlab: lo up in $ns"
  done
  ip -n "$NETLAB_NS_SRC" addr add "$NETLAB_ADDR_SRC/30" dev "$NETLAB_IF_SRC" || hm_fail "netlab: address on $NETLAB_IF_SRC"
  ip -n "$NETLAB_NS_DST" addr add "$NETLAB_ADDR_DST/30" dev "$NETLAB_IF_DST" || hm_fail "netlab: address on $NETLAB_IF_DST"
  for ifc in "$NETLAB_NS_SRC:$NETLAB_IF_SRC" "$NETLAB_NS_MID:$NETLAB_IF_MID_SRC" "$NETLAB_NS_MID:$NETLAB_IF_MID_DST" \
    "$NETLAB_NS_DST:$NETLAB_IF_DST"; do
    netlab__offload "${ifc%%:*}" "${ifc#*:}"
    ip -n "${ifc%%:*}" link set "${ifc#*:}" up || hm_fail "netlab: ${ifc#*:} up"
  done
  if ! out=$(printf 'table inet hymig_probe {\n}\n' | netlab__nft "$NETLAB_NS_DST" 2>&1); then
    hm_skip "nftables does not work in a network namespace here: $out"
  fi
  ip netns exec "$NETLAB_NS_DST" nft delete table inet hymig_probe
  netlab_relay_start "$@"
  # Reachability through the relay (TCP: not impaired unless --match ip/all asks; a lost SYN is
  # sent again within the 5 s).
  out=$(ip netns exec "$NETLAB_NS_SRC" timeout 5 bash -c "exec 3<>/dev/tcp/$NETLAB_ADDR_DST/9" 2>&1)
  case $out in
    *"Connection refused"*) ;;
    *) hm_fail "netlab: $NETLAB_ADDR_DST not reachable from $NETLAB_NS_SRC through the relay: $out; relay: $(cat "$HM_TMP/relay.log")" ;;
  esac
  hm_log "netlab up: $NETLAB_NS_SRC ($NETLAB_ADDR_SRC) <-> relay in $NETLAB_NS_MID ($NETLAB_IF_MID_SRC<->$NETLAB_IF_MID_DST) <-> $NETLAB_NS_DST ($NETLAB_ADDR_DST), mtu $mtu, offloads off"
}

netlab_relay_start() {
  [ -n "$NETLAB_NS_MID" ] || hm_fail "netlab_relay_start: no middle namespace (netlab_up_relay)"
  hm_tmpdir
  [ -n "$NETLAB_RELAY_PID" ] && netlab_relay_stop
  : >"$HM_TMP/relay.log"
  netlab_bg "$NETLAB_NS_MID" "$HM_TMP/relay.log" "$HYMIG_TEST_RELAY" --a "$NETLAB_IF_MID_SRC" --b "$NETLAB_IF_MID_DST" \
    --seed "${HM_RELAY_SEED:-1}" "$@"
  NETLAB_RELAY_PID=$NETLAB_LAST_PID
  hm_wait_for 10 grep -q '^relay ready' "$HM_TMP/relay.log" ||
    hm_fail "hymig-test-relay $* did not get ready: $(cat "$HM_TMP/relay.log")"
  hm_alive "$NETLAB_RELAY_PID" || hm_fail "hymig-test-relay $* died: $(cat "$HM_TMP/relay.log")"
  hm_log "netlab: relay pid $NETLAB_RELAY_PID: $* (seed ${HM_RELAY_SEED:-1})"
}

netlab_relay_stop() {
  [ -n "$NETLAB_RELAY_PID" ] || hm_fail "netlab_relay_stop: no relay running"
  kill -TERM "$NETLAB_RELAY_PID" 2>/dev/null
  hm_wait_pid "$NETLAB_RELAY_PID" 10
  [ "$HM_RC" -eq 0 ] || hm_fail "hymig-test-relay exited $HM_RC on SIGTERM, expected 0: $(cat "$HM_TMP/relay.log")"
  NETLAB_RELAY_STATS=$(grep '^{' "$HM_TMP/relay.log" | tail -1)
  jq -e 'type == "object"' <<<"$NETLAB_RELAY_STATS" >/dev/null 2>&1 ||
    hm_fail "hymig-test-relay printed no counters: $(cat "$HM_TMP/relay.log")"
  NETLAB_RELAY_PID=""
}

netlab_relay_stat() { jq -r ".$1" <<<"$NETLAB_RELAY_STATS"; }

netlab_offload_off() {
  netlab__require_relay
  netlab__offload "$NETLAB_NS_SRC" "$NETLAB_IF_SRC"
  netlab__offload "$NETLAB_NS_DST" "$NETLAB_IF_DST"
  hm_log "netlab: offloads off on $NETLAB_IF_SRC and $NETLAB_IF_DST"
}

netlab_loss_runs() {
  local n=$1 k=$2
  [[ $n =~ ^[0-9]+$ && $k =~ ^[0-9]+$ ]] && ((k > 0 && k < n)) || hm_fail "netlab_loss_runs: want 0 < K < N, got N=$n K=$k"
  ip netns exec "$NETLAB_NS_DST" nft delete table inet loss 2>/dev/null
  netlab__nft "$NETLAB_NS_DST" <<EOF2 || hm_fail "netlab_loss_runs: nft rejected the loss table"
table inet loss { chain in { type filter hook input priority 0;
meta l4proto udp numgen inc mod $n < $k counter drop
}
}
EOF2
  hm_log "netlab: dropping runs of $k consecutive incoming UDP packets out of every $n in $NETLAB_NS_DST"
}

netlab_mtu_middle() {
  local mtu=$1
  [ -n "$NETLAB_NS_MID" ] || hm_fail "netlab_mtu_middle: netlab_up was not given 'middle'"
  ip -n "$NETLAB_NS_MID" link set "$NETLAB_IF_MID_DST" mtu "$mtu" || hm_fail "netlab_mtu_middle: mtu $mtu on $NETLAB_IF_MID_DST"
  ip -n "$NETLAB_NS_DST" link set "$NETLAB_IF_DST" mtu "$mtu" || hm_fail "netlab_mtu_middle: mtu $mtu on $NETLAB_IF_DST"
  hm_log "netlab: mtu $mtu on $NETLAB_NS_MID's link to $NETLAB_NS_DST"
}

netlab_snmp() {
  ip netns exec "$1" cat /proc/net/snmp | awk -v p="$2:" -v f="$3" '
    $1 == p && !names { for (i = 2; i <= NF; i++) col[$i] = i; names = 1; next }
    $1 == p && names { if (f in col) print $col[f]; exit }'
}
