#!/usr/bin/env bash
# loss_patterns [ROW...]: migrations of a dirtying file image under loss patterns beyond random,
# each row in a lab of its own (tests/lib/netlab.sh), `hymig serve` in DST, `hymig migrate` in SRC.
# The host kernel has no netem: bursts come from nftables (deterministic runs) or from
# hymig-test-relay, a user-space wire in a middle namespace (AF_PACKET, offloads off so each frame
# is one datagram) with a seeded Gilbert–Elliott chain, reordering and duplication. Rows (default:
# all, in this order):
#   burst_runs   nftables in DST drops 5 consecutive UDP datagrams out of every 50 (numgen inc)
#   burst_ge     relay: Gilbert–Elliott, Good->Bad 1 %, Bad->Good 10 %, loss 0.1 % in Good, 90 % in
#                Bad (about 8 % lost, in runs of ~5)
#   reorder      relay: 10 % of the datagrams held back and sent after the next 16
#   duplicate    relay: 10 % of the datagrams sent twice
#   mixed        relay on UDP and TCP (the control channel too): bursts, reordering and duplication
#   mtu_shrink   routed middle namespace, jumbo path (MTU 9000): while round 0 streams, the middle's
#                link to DST drops to MTU 1500; the router answers DF datagrams with ICMP
#                "fragmentation needed". (GSO runs longer than the MTU leave without DF and the
#                router fragments them silently; --rate 8M keeps batches small, so many datagrams
#                leave on their own, with DF.)
# Asserts per row: migrate exits 0 with a committed + verified report (bulk over udp); the writer
# was SIGKILLed by the handover; serve logged the commit with 0 bad-mac datagrams; the stored file
# is cmp-equal to the source; no .part is left; the daemon stops cleanly on SIGTERM. And the
# impairment happened (else the row fails): burst_runs the nftables counter and the loss the
# receiver reported; burst_ge the relay's drops in runs averaging at least 2 datagrams (random loss
# would average ~1.1) and the loss the receiver reported; reorder datagrams the relay sent late;
# duplicate the copies it sent and the replays the receiving daemon counted; mixed all of these on
# both channels; mtu_shrink the router's ICMP and refused DF datagram, the source's route learnt
# MTU 1500, and the source fragmenting datagrams afterwards. Relay rows also assert that no frame
# above the MTU crossed (the impairment acted on datagrams, not on GSO super-frames).
# Seeds: HYMIG_LOSS_SEED (default 1) for the relay; printed.
set -u -o pipefail
HM_TEST_NAME=loss_patterns
source "$(dirname "$0")/../lib/netlab.sh"
hm_require_tools
netlab_require
hm_deadline 170
hm_tmpdir
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(burst_runs burst_ge reorder duplicate mixed mtu_shrink)
HM_RELAY_SEED=${HYMIG_LOSS_SEED:-1}
[[ $HM_RELAY_SEED =~ ^[0-9]+$ ]] || hm_fail "HYMIG_LOSS_SEED must be a number, got '$HM_RELAY_SEED'"
size=$((64 << 20))

# row_start ROW SIZE PAGES_PER_SEC: the daemon in DST and a dirtying image in SRC's hands.
row_start() {
  local row=$1
  hm_serve_across_netlab 10
  img=$HM_TMP/src/$row.bin
  rm -f "$HM_TMP/writer.log"
  "$HYMIG_TEST_WRITER" --create "$img" --size "$2" --seed "$RANDOM" --zero-fraction 0.05 2>/dev/null || hm_fail "$row: create $img"
  hm_start_writer "$img" "$3"
  out=$HM_TMP/$row.json err=$HM_TMP/$row.err
  row_began=$SECONDS
}

# row_finish ROW: waits for the migration (HM_MIGRATE_PID) and asserts the image arrived whole.
row_finish() {
  local row=$1 line
  hm_wait_pid "$HM_MIGRATE_PID" 90
  [ "$HM_RC" -ne 124 ] || hm_fail "$row: hymig migrate did not end within 90 s: $(tail -c 3000 "$err")"
  hm_assert_committed "$HM_RC" "$out" "$err" "$row"
  hm_assert_json "$out" '.bulk.transport == "udp" and .bulk.datagrams > 0' "$row report"
  hm_assert_writer_killed_by_handover "$HM_WRITER_PID"
  hm_wait_for 10 grep -q -E "session [0-9a-f]+: committed $row\.bin " "$log" ||
    hm_fail "$row: serve did not log the commit of $row.bin: $(cat "$log")"
  line=$(grep -E "session [0-9a-f]+: committed $row\.bin " "$log")
  [[ $line =~ \(([0-9]+)\ datagrams,\ ([0-9]+)\ invalid:\ ([0-9]+)\ bad-mac,\ ([0-9]+)\ replayed,\ ([0-9]+)\ future-round\;\ ([0-9]+)\ stale ]] ||
    hm_fail "$row: cannot read the counters of serve's commit line: $line"
  dst_datagrams=${BASH_REMATCH[1]} dst_bad_mac=${BASH_REMATCH[3]} dst_replayed=${BASH_REMATCH[4]}
  dst_future=${BASH_REMATCH[5]} dst_stale=${BASH_REMATCH[6]}
  [ "$dst_bad_mac" -eq 0 ] || hm_fail "$row: the daemon counted $dst_bad_mac datagrams failing authentication: $line"
  cmp "$img" "$store/$row.bin" || hm_fail "$row: the stored image differs from the source"
  hm__has_part "$store" && hm_fail "$row: a .part file is left in the store: $(hm_store_files "$store" | tr '\n' ' ')"
  hm_alive "$serve_pid" || hm_fail "$row: serve died: $(cat "$log")"
  hm_log "$row: committed in $((SECONDS - row_began)) s; $(jq -c '{rounds, total_ms, downtime_ms, missing_pages, final_delta_pages, datagrams: .bulk.datagrams, datagram_bytes: .bulk.datagram_bytes, receiver_loss: [.round_stats[].loss]}' "$out"); serve: $dst_datagrams datagrams, $dst_replayed replayed, $dst_future future-round, $dst_stale stale"
}

# row_end: the daemon stops on SIGTERM with exit 0; the lab goes.
row_end() {
  kill -TERM "$serve_pid"
  hm_wait_pid "$serve_pid" 20
  [ "$HM_RC" -eq 0 ] || hm_fail "serve exited $HM_RC on SIGTERM, expected 0: $(tail -c 2000 "$log")"
  [ -n "$NETLAB_RELAY_PID" ] && netlab_relay_stop
  netlab_down
  rm -rf "$HM_TMP/src" "$HM_TMP/store"
}

# migrate_bg ARGS...: the migration of $img from SRC to the daemon, in the background.
migrate_bg() {
  hm_migrate_bg "$out" "$err" --image "file:$img,pause-pid=$HM_WRITER_PID" --to "$HM_SERVE_ADDR" \
    --bulk udp --report json --timeout 10 --rate-memory off "$@"
}

# relay_row ROW RELAY-ARGS...: one migration through the relay; its counters in NETLAB_RELAY_STATS.
relay_row() {
  local row=$1
  shift
  netlab_up_relay 1500 "$@"
  row_start "$row" "$size" 8000
  migrate_bg --downtime-ms 5
  row_finish "$row"
  netlab_relay_stop
  hm_log "$row: relay $NETLAB_RELAY_STATS"
  [ "$(netlab_relay_stat oversize)" -eq 0 ] ||
    hm_fail "$row: $(netlab_relay_stat oversize) frames above the MTU crossed the relay: offloads were on, the impairment acted on GSO super-frames"
  [ "$(netlab_relay_stat matched)" -ge "$dst_datagrams" ] ||
    hm_fail "$row: the relay saw $(netlab_relay_stat matched) matching frames but the daemon took $dst_datagrams datagrams: the stream did not cross the relay"
}

# gt A B WHAT: fails unless the number A > B.
gt() { [ "$1" -gt "$2" ] 2>/dev/null || hm_fail "$3 (got $1, expected more than $2)"; }
# loss_reported ROW: the receiver's progress reports showed loss in some round.
loss_reported() {
  jq -e '[.round_stats[].loss] | max > 0' "$out" >/dev/null ||
    hm_fail "$1: the receiver reported no loss in any round ($(jq -c '[.round_stats[].loss]' "$out")): the impairment did not reach it"
}

for row in "${rows[@]}"; do
  case $row in
    burst_runs)
      netlab_up 1500
      netlab_offload_off
      netlab_loss_runs 50 5
      row_start "$row" "$size" 8000
      migrate_bg --downtime-ms 5
      row_finish "$row"
      drops=$(netlab_loss_drops)
      udp=${drops#udp=}
      udp=${udp%% *}
      gt "$udp" 0 "$row: the nftables rule dropped no datagram ($drops)"
      loss_reported "$row"
      hm_log "$row: nftables dropped $udp datagrams in runs of 5"
      ;;
    burst_ge)
      relay_row "$row" --ge 0.01,0.1,0.001,0.9
      gt "$(netlab_relay_stat dropped)" 0 "$row: the relay dropped nothing"
      gt "$(netlab_relay_stat dropped)" "$((2 * $(netlab_relay_stat drop_runs) - 1))" \
        "$row: drops do not come in runs (dropped $(netlab_relay_stat dropped) in $(netlab_relay_stat drop_runs) runs; want a mean run of 2 or more)"
      loss_reported "$row"
      ;;
    reorder)
      relay_row "$row" --reorder 0.1,16
      gt "$(netlab_relay_stat sent_late)" 0 "$row: the relay sent no datagram late"
      [ "$(netlab_relay_stat dropped)" -eq 0 ] || hm_fail "$row: the relay dropped datagrams in a reorder-only row"
      ;;
    duplicate)
      relay_row "$row" --dup 0.1
      gt "$(netlab_relay_stat duplicated)" 0 "$row: the relay duplicated nothing"
      gt "$dst_replayed" 0 "$row: the daemon counted no replayed datagram although the relay sent $(netlab_relay_stat duplicated) copies"
      [ "$dst_replayed" -le "$(netlab_relay_stat duplicated)" ] ||
        hm_fail "$row: the daemon counted $dst_replayed replays, more than the $(netlab_relay_stat duplicated) copies sent"
      ;;
    mixed)
      relay_row "$row" --match ip --ge 0.005,0.2,0,1 --reorder 0.05,8 --dup 0.05
      for k in dropped sent_late duplicated; do gt "$(netlab_relay_stat "$k")" 0 "$row: relay counter $k"; done
      gt "$dst_replayed" 0 "$row: the daemon counted no replayed datagram"
      loss_reported "$row"
      ;;
    mtu_shrink)
      netlab_up 9000 middle
      row_start "$row" $((24 << 20)) 1000
      icmp_before=$(netlab_snmp "$NETLAB_NS_MID" Icmp OutDestUnreachs)
      migrate_bg --rate 8M
      hm_wait_mid_transfer "$store" "$HM_MIGRATE_PID" 0.5
      hm_stopped "$HM_WRITER_PID" && hm_fail "$row: the writer is already paused; the path would not shrink mid-stream"
      frag_before=$(netlab_snmp "$NETLAB_NS_SRC" Ip FragCreates)
      netlab_mtu_middle 1500
      row_finish "$row"
      hm_assert_json "$out" '.bulk.datagram_bytes == 8972' "$row report (jumbo datagrams chosen before the shrink)"
      icmp=$(($(netlab_snmp "$NETLAB_NS_MID" Icmp OutDestUnreachs) - icmp_before))
      refused=$(netlab_snmp "$NETLAB_NS_MID" Ip FragFails)
      frags=$(($(netlab_snmp "$NETLAB_NS_SRC" Ip FragCreates) - frag_before))
      route=$(ip netns exec "$NETLAB_NS_SRC" ip route get "$NETLAB_ADDR_DST")
      hm_log "$row: router sent $icmp ICMP unreachable, refused $refused DF datagrams; the source made $frags fragments; route: $(tr -s ' \n' ' ' <<<"$route")"
      gt "$icmp" 0 "$row: the router sent no ICMP fragmentation-needed: no DF datagram met the narrower link"
      gt "$refused" 0 "$row: the router refused no DF datagram"
      grep -q 'mtu 1500' <<<"$route" || hm_fail "$row: the source's route did not learn the path MTU 1500: $route"
      gt "$frags" 0 "$row: the source never fragmented a datagram after the shrink: the stream did not go on over the narrower path"
      ;;
    *) hm_fail "unknown row '$row' (rows: burst_runs burst_ge reorder duplicate mixed mtu_shrink)" ;;
  esac
  row_end
done
exit 0
