#!/usr/bin/env bash
# netns_loss [SCENARIO...]: migrations over a veth pair between two network namespaces, `hymig
# serve` in one, `hymig migrate` in the other. Scenarios (default: all, in this order):
#   loss0    no impairment
#   loss5    nftables drops 5 % of incoming UDP and TCP at random on the receiving side
#   loss30   the same at 30 %
#   tbf200   tc tbf 200mbit on the sender's veth
# Each: a fresh 64 MiB file image dirtied by a writer process (pause-pid). Asserts per scenario:
# migrate exits 0 with a committed + verified report (bulk over udp); the writer was SIGKILLed by
# the handover; serve logged the commit of that file, and the stored file is cmp-equal to the
# source; no .part is left; for loss scenarios, the loss rule really dropped datagrams.
# One daemon serves all scenarios in turn (it must stay alive throughout).
set -u -o pipefail
HM_TEST_NAME=netns_loss
source "$(dirname "$0")/../lib/netlab.sh"
hm_require_tools
netlab_require
hm_deadline 285
hm_tmpdir
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(loss0 loss5 loss30 tbf200)

netlab_up "${HM_NETLAB_MTU:-1500}"
hm_serve_across_netlab 30
size=$((64 << 20))

for sc in "${scenarios[@]}"; do
  loss=0
  case $sc in
    loss0) ;;
    loss5) loss=5 ;;
    loss30) loss=30 ;;
    tbf200) netlab_rate 200mbit ;;
    *) hm_fail "unknown scenario '$sc'" ;;
  esac
  netlab_loss "$loss"
  img=$HM_TMP/src/$sc.bin
  "$HYMIG_TEST_WRITER" --create "$img" --size "$size" --seed "$RANDOM" --zero-fraction 0.05 2>/dev/null || hm_fail "create $img"
  hm_start_writer "$img" 2000
  hm_log "$sc: migrating $img"
  hm_migrate_run 150 "$HM_TMP/$sc.json" "$HM_TMP/$sc.err" --image "file:$img,pause-pid=$HM_WRITER_PID" \
    --to "$HM_SERVE_ADDR" --bulk udp --report json --timeout 30
  drops=$(netlab_loss_drops)
  hm_assert_committed "$HM_RC" "$HM_TMP/$sc.json" "$HM_TMP/$sc.err" "$sc"
  hm_assert_json "$HM_TMP/$sc.json" '.bulk.transport == "udp" and .bulk.datagrams > 0' "$sc report"
  hm_assert_writer_killed_by_handover "$HM_WRITER_PID"
  hm_wait_for 10 grep -q -E "session [0-9a-f]+: committed $sc\.bin $size bytes" "$log" ||
    hm_fail "$sc: serve did not log the commit of $sc.bin: $(cat "$log")"
  cmp "$img" "$store/$sc.bin" || hm_fail "$sc: the stored image differs from the source"
  hm__has_part "$store" && hm_fail "$sc: a .part file is left in the store: $(hm_store_files "$store" | tr '\n' ' ')"
  if ((loss > 0)); then
    udp=${drops#udp=}
    udp=${udp%% *}
    [ "$udp" -gt 0 ] || hm_fail "$sc: the loss rule dropped no datagram ($drops): the scenario did not happen"
  fi
  hm_alive "$serve_pid" || hm_fail "serve died during $sc: $(cat "$log")"
  hm_log "$sc: committed, dropped $drops; $(jq -c '{rounds, total_ms, downtime_ms, missing_pages, final_delta_pages, random_loss: .bulk.random_loss, gbps: .throughput_gbps}' "$HM_TMP/$sc.json")"
  rm -f "$store/$sc.bin" "$img"
  netlab_rate off
done
exit 0
