#!/usr/bin/env bash
# A file image that a writer process keeps dirtying, migrated live between two real processes.
#   migrate_file.sh loopback udp|tcp         over 127.0.0.1
#   migrate_file.sh netns LOSS_PCT [RATE]    over a veth pair between two namespaces, with
#                                            nftables random loss and optionally a tc tbf limit
# Asserts: exit 0, committed and verified, the destination file equals the paused source byte for
# byte, the writer is gone (the workload moved), nothing partial left in the store.
source "$(dirname "$0")/lib.sh"
mode=$1
src_exec="" dst_exec="" addr=127.0.0.1 extra=()
if [ "$mode" = netns ]; then
  need_root_netns
  netns_up 1500
  netns_loss "$2"
  [ -n "${3:-}" ] && netns_rate "$3"
  src_exec=$IN_SRC dst_exec=$IN_DST addr=$ADDR_DST
  # TCP under 30 % loss stalls for seconds in retransmission backoff: allow it.
  SERVE_TIMEOUT=30 mig_timeout=30
  note "veth, loss $2 %, rate ${3:-unlimited}"
else
  extra=(--bulk "$2")
fi

img=$(make_image guest.ram 64M)
start_writer "$img" 2000
mkdir -p "$WORK/store"
start_serve "$dst_exec" "$addr" --once --store "$WORK/store"
st=0
$src_exec "$HYMIG" migrate --image "file:$img,pause-pid=$WRITER_PID" --to "$SERVE_ADDR" \
  --report json --progress off --timeout "${mig_timeout:-10}" "${extra[@]}" >"$WORK/report.json" || st=$?
[ "$st" -eq 0 ] || fail "migrate exited $st: $(cat "$WORK/report.json")"
assert_committed "$WORK/report.json"
wait_pid "$SERVE_PID" 20 || fail "serve --once did not report a committed session"
cmp "$img" "$WORK/store/guest.ram" || fail "destination differs from the source"
sleep 0.2
kill -0 "$WRITER_PID" 2>/dev/null && [ "$(proc_state "$WRITER_PID")" != Z ] && fail "the writer still runs after the handover"
[ -z "$(ls -A "$WORK/store" | grep -v '^guest.ram$' || true)" ] || fail "leftovers in the store: $(ls -A "$WORK/store")"
[ "$mode" = loopback ] && [ "$(json "$WORK/report.json" .bulk.transport)" != "$2" ] && fail "bulk transport is not $2"
note "$(json "$WORK/report.json" '"rounds \(.rounds), final delta \(.final_delta_pages) pages, \(.total_ms|floor) ms, downtime \(.downtime_ms|floor) ms, bulk \(.bulk.transport)"')"
echo "PASS"
