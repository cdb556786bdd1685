# Shared helpers of the integration tests: real processes, loopback or a veth pair between two
# namespaces the test creates; everything started is killed by PID and removed on exit.
set -euo pipefail
: "${HYMIG:?set HYMIG to the hymig binary}"
: "${WRITER:?set WRITER to hymig-test-writer}"

WORK=$(mktemp -d /dev/shm/hymig-test.XXXXXX)
PIDS=()
NETNS=()
cleanup() {
  local p n
  for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -9 "$p" 2>/dev/null || true; done
  for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; [ -f "$WORK/serve.log" ] && sed 's/^/  serve: /' "$WORK/serve.log"; exit 1; }
note() { echo "-- $*"; }

need_root_netns() {
  [ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces"
  command -v nft >/dev/null || skip "nft (nftables) is not installed"
  ip netns add "hymig-probe-$$" 2>/dev/null || skip "cannot create network namespaces here"
  ip netns del "hymig-probe-$$"
}

# start_serve EXEC_PREFIX LISTEN_ADDR [serve args...]: sets SERVE_PID and SERVE_ADDR.
start_serve() {
  local prefix=$1 addr=$2
  shift 2
  $prefix "$HYMIG" serve --listen "$addr:0" --timeout "${SERVE_TIMEOUT:-3}" "$@" 2>"$WORK/serve.log" &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  SERVE_ADDR=""
  for _ in $(seq 100); do
    SERVE_ADDR=$(sed -n 's/.*listening on //p' "$WORK/serve.log" | head -n1)
    [ -n "$SERVE_ADDR" ] && return 0
    sleep 0.1
  done
  fail "hymig serve did not start"
}

# wait_pid PID SECONDS: waits for a child to end, returns its status; fails the test on timeout.
wait_pid() {
  local pid=$1 limit=$2 i
  for ((i = 0; i < limit * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      local st=0
      wait "$pid" || st=$?
      return "$st"
    fi
    sleep 0.1
  done
  fail "process $pid still running after $limit s"
}

# make_image NAME SIZE: a pseudo-random file image; prints its path.
make_image() {
  "$WRITER" --create "$WORK/$1" --size "$2" --zero-fraction 0.1 >/dev/null
  echo "$WORK/$1"
}

# start_writer PATH PAGES_PER_SEC: dirties the image; sets WRITER_PID.
start_writer() {
  "$WRITER" --file "$1" --pages-per-sec "$2" --working-set-pages 4096 &
  WRITER_PID=$!
  PIDS+=("$WRITER_PID")
  sleep 0.2
}

proc_state() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1; }

# json FILE FILTER: a field of a migrate report.
json() { jq -r "$2" "$1"; }

# assert_committed REPORT: committed and verified.
assert_committed() {
  [ "$(json "$1" .committed)" = true ] || fail "not committed: $(json "$1" .error)"
  [ "$(json "$1" .verified)" = true ] || fail "not verified"
}

# netns_up [MTU]: two namespaces joined by a veth pair; sets NS_SRC NS_DST ADDR_SRC ADDR_DST.
netns_up() {
  local mtu=${1:-1500} x=$(($$ % 250 + 1))
  NS_SRC="hymig-$$-src"
  NS_DST="hymig-$$-dst"
  ip netns add "$NS_SRC"
  NETNS+=("$NS_SRC")
  ip netns add "$NS_DST"
  NETNS+=("$NS_DST")
  ip link add "hys$$" netns "$NS_SRC" mtu "$mtu" type veth peer name "hyd$$" netns "$NS_DST" mtu "$mtu"
  ADDR_SRC="10.213.$x.1"
  ADDR_DST="10.213.$x.2"
  ip -n "$NS_SRC" addr add "$ADDR_SRC/30" dev "hys$$"
  ip -n "$NS_DST" addr add "$ADDR_DST/30" dev "hyd$$"
  for ns in "$NS_SRC" "$NS_DST"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "hy${ns: -3:1}$$" up
  done
  IN_SRC="ip netns exec $NS_SRC"
  IN_DST="ip netns exec $NS_DST"
}

# netns_loss PCT: drop PCT % of incoming UDP and TCP in the destination namespace, at random.
netns_loss() {
  ip netns exec "$NS_DST" nft delete table inet loss 2>/dev/null || true
  [ "$1" -gt 0 ] || return 0
  ip netns exec "$NS_DST" nft -f - <<NFT
table inet loss {
  chain in {
    type filter hook input priority 0;
    meta l4proto udp numgen random mod 100 < $1 drop
    meta l4proto tcp numgen random mod 100 < $1 drop
  }
}
NFT
}

# netns_rate RATE: tc tbf on the source's side of the veth.
netns_rate() { ip netns exec "$NS_SRC" tc qdisc replace dev "hys$$" root tbf rate "$1" burst 64kb latency 50ms; }

# netns_cut: drop everything in both directions.
netns_cut() {
  for ns in "$NS_SRC" "$NS_DST"; do
    ip netns exec "$ns" nft -f - <<NFT
table inet cut {
  chain in {
    type filter hook input priority -10; policy drop;
  }
  chain out {
    type filter hook output priority -10; policy drop;
  }
}
NFT
  done
}
