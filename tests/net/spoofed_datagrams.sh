#!/usr/bin/env bash
# Datagrams injected from the source's own address and port while a migration runs on loopback:
# replays of the source's datagrams, copies with a flipped bit, copies claiming the next round, and
# forgeries (right header, random payload and tag), several for every datagram of the stream
# (tests/tools/test_peer.cpp spoof: AF_PACKET capture, raw IP injection; root needed). Asserts:
# the migration commits, the image is byte-equal, and serve counted the injected datagrams as
# replayed, bad-mac and future-round: none of them landed. All of it runs in a network namespace of
# its own: the spoofer copies whatever hymig datagrams cross its loopback, and on the host's loopback
# that was once another test's migration running beside this one (ctest -j2: 1600 injected, 0 here).
set -u -o pipefail
HM_TEST_NAME=spoofed_datagrams
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
[ -x "${HYMIG_TEST_PEER:-}" ] || hm_fail "HYMIG_TEST_PEER is not set (build/release/tests/tools/hymig-test-peer)"
[ "$(id -u)" -eq 0 ] || hm_skip "needs root (raw sockets to spoof the source's address)"
hm_deadline 240
hm_tmpdir
hm_store_setup
ns=hymig-spoof-$$
ip netns add "$ns" || hm_fail "ip netns add $ns"
hm_on_exit "ip netns del $ns 2>/dev/null"
ip netns exec "$ns" ip link set lo up || hm_fail "cannot bring up lo in $ns"
HM_SERVE_PREFIX=(ip netns exec "$ns")
HM_MIGRATE_PREFIX=(ip netns exec "$ns")
hm_start_serve "$log" --listen 127.0.0.1:0 --store "$store" --timeout 10

img=$HM_TMP/src/spoofed.bin
"$HYMIG_TEST_WRITER" --create "$img" --size 64M --seed 5 2>/dev/null || hm_fail "create $img"
hm_start_writer "$img" 2000
ip netns exec "$ns" "$HYMIG_TEST_PEER" spoof --seconds 60 --max 400 >"$HM_TMP/spoof.out" 2>&1 &
spoof_pid=$!
hm_track_pid "$spoof_pid"
hm_sleep 0.5
# Slow enough (200 MiB/s) that the spoofer's copies arrive while the rounds still take datagrams.
hm_migrate_run 120 "$HM_TMP/report.json" "$HM_TMP/migrate.err" --image "file:$img,pause-pid=$HM_WRITER_PID" \
  --to "$HM_SERVE_ADDR" --rate 200M --report json
hm_assert_committed "$HM_RC" "$HM_TMP/report.json" "$HM_TMP/migrate.err" "migration under spoofed datagrams"
hm_assert_writer_killed_by_handover "$HM_WRITER_PID"
cmp "$img" "$store/spoofed.bin" || hm_fail "the committed image differs from the source"
hm_wait_pid "$spoof_pid" 20  # it ends 2 s after the stream stopped
injected=$(sed -n 's/.*injected \([0-9]*\).*/\1/p' "$HM_TMP/spoof.out")
[ "${injected:-0}" -gt 0 ] || hm_fail "the spoofer injected nothing: $(cat "$HM_TMP/spoof.out")"
hm_wait_for 10 grep -q 'committed spoofed.bin' "$log" || hm_fail "serve did not log the commit: $(cat "$log")"
line=$(grep 'committed spoofed.bin' "$log")
bad_mac=$(sed -n 's/.* \([0-9]*\) bad-mac.*/\1/p' <<<"$line")
replayed=$(sed -n 's/.* \([0-9]*\) replayed.*/\1/p' <<<"$line")
future=$(sed -n 's/.* \([0-9]*\) future-round.*/\1/p' <<<"$line")
hm_log "spoofer: $(cat "$HM_TMP/spoof.out"); serve: $bad_mac bad-mac, $replayed replayed, $future future-round"
[ "${bad_mac:-0}" -gt 0 ] || hm_fail "no datagram counted bad-mac: $line"
[ "${replayed:-0}" -gt 0 ] || hm_fail "no datagram counted replayed: $line"
exit 0
