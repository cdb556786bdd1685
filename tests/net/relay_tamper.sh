#!/usr/bin/env bash
# An on-path relay that does not hold the cluster key flips one bit after the handshake: in the
# stream from the source (pages of a --bulk tcp session) and in the stream back (the destination's
# reports during UDP rounds). Every case: the session fails on both sides (migrate exits 1, the
# destination logs an authentication failure), the source's workload runs on (its writer resumed,
# never killed), nothing lands in the store, serve stays up and then serves a clean session.
set -u -o pipefail
HM_TEST_NAME=relay_tamper
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
[ -x "${HYMIG_TEST_PEER:-}" ] || hm_fail "HYMIG_TEST_PEER is not set (build/release/tests/tools/hymig-test-peer)"
hm_deadline 240
hm_tmpdir
hm_store_setup
hm_start_serve "$log" --listen 127.0.0.1:0 --store "$store" --timeout 5

# start_relay N DIRECTION: a relay to serve that flips byte N of DIRECTION; sets relay_addr, relay_pid.
start_relay() {
  # The last relay's output goes first: the wait below could read its "listening on" line before
  # the new relay's shell truncates the file.
  rm -f "$HM_TMP/relay.out"
  "$HYMIG_TEST_PEER" relay --listen 127.0.0.1:0 --to "$HM_SERVE_ADDR" --flip-at "$1" --direction "$2" \
    >"$HM_TMP/relay.out" 2>&1 &
  relay_pid=$!
  hm_track_pid "$relay_pid"
  hm_wait_for 10 grep -q "relay listening on" "$HM_TMP/relay.out" || hm_fail "the relay did not start: $(cat "$HM_TMP/relay.out")"
  relay_addr=$(sed -n 's/^relay listening on //p' "$HM_TMP/relay.out")
}

n=0
for case in "s2d tcp 300000" "s2d udp 2500" "d2s udp 3000"; do
  read -r dir bulk at <<<"$case"
  n=$((n + 1))
  img=$HM_TMP/src/tamper$n.bin
  "$HYMIG_TEST_WRITER" --create "$img" --size 32M --seed "$n" 2>/dev/null || hm_fail "create $img"
  hm_start_writer "$img" 2000
  start_relay "$at" "$dir"
  aborted=$(hm_count_lines "$log" 'aborted')
  hm_migrate_run 90 "$HM_TMP/t$n.json" "$HM_TMP/t$n.err" --image "file:$img,pause-pid=$HM_WRITER_PID" \
    --to "$relay_addr" --bulk "$bulk" --rate 100M --timeout 5 --report json
  grep -q "relay flipped byte $at" "$HM_TMP/relay.out" ||
    hm_fail "$case: the relay never reached byte $at (the session was shorter): $(cat "$HM_TMP/relay.out"; tail -c 1000 "$HM_TMP/t$n.err")"
  hm_assert_failed_cleanly "$HM_RC" "$HM_TMP/t$n.err" "$case"
  hm_assert_writer_resumed "$HM_WRITER_PID"
  hm_wait_lines 15 "$log" 'aborted' "$aborted" ||
    hm_fail "$case: serve did not abort the session: $(tail -n 5 "$log")"
  # The side that reads the flipped byte notices: its tag fails, or (a length field hit) the frame
  # is refused before it; the other side learns of it from the abort or the closed connection.
  if [ "$dir" = s2d ]; then
    grep -E 'aborted' "$log" | tail -n 1 | grep -q -E 'failed authentication|exceeds limit|bad frame' ||
      hm_fail "$case: serve aborted for another reason than the tampering: $(grep aborted "$log" | tail -n 1)"
  else
    grep -q -E 'failed authentication|exceeds limit|bad frame' "$HM_TMP/t$n.err" ||
      hm_fail "$case: the source's error does not name the tampering: $(tail -c 1000 "$HM_TMP/t$n.err")"
  fi
  [ -z "$(hm_store_files "$store")" ] || hm_fail "$case: the store holds $(hm_store_files "$store" | tr '\n' ' ')"
  hm_alive "$HM_SERVE_PID" || hm_fail "$case: serve died"
  hm_kill "$HM_WRITER_PID"
  hm_log "$case: failed on both sides; $(grep -m1 'error:' "$HM_TMP/t$n.err")"
done

# And a clean session through the same daemon still commits.
img=$HM_TMP/src/clean.bin
"$HYMIG_TEST_WRITER" --create "$img" --size 8M --seed 9 2>/dev/null || hm_fail "create $img"
hm_migrate_run 60 "$HM_TMP/clean.json" "$HM_TMP/clean.err" --image "file:$img" --to "$HM_SERVE_ADDR" --report json
hm_assert_committed "$HM_RC" "$HM_TMP/clean.json" "$HM_TMP/clean.err" "a clean session after the tampering"
cmp "$img" "$store/clean.bin" || hm_fail "the clean image differs"
exit 0
