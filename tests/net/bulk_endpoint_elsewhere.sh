#!/usr/bin/env bash
# A destination (holding the key) that names another host's datagram endpoint in ready, to have
# the source stream an image at a third party: the source refuses before sending any datagram,
# exits 1 naming the reason, and its workload runs on.
set -u -o pipefail
HM_TEST_NAME=bulk_endpoint_elsewhere
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
[ -x "${HYMIG_TEST_PEER:-}" ] || hm_fail "HYMIG_TEST_PEER is not set (build/release/tests/tools/hymig-test-peer)"
hm_deadline 120
hm_tmpdir
hm_store_setup

for endpoint in 127.0.0.2:9 node7.example:9; do
  # The last round's output goes first: the wait below could read its "listening on" line before
  # the new fake's shell truncates the file (then the address read after it is empty).
  rm -f "$HM_TMP/fake.out"
  "$HYMIG_TEST_PEER" fake-destination --listen 127.0.0.1:0 --key-file "$HYMIG_KEY_FILE" --bulk-endpoint "$endpoint" \
    >"$HM_TMP/fake.out" 2>&1 &
  fake_pid=$!
  hm_track_pid "$fake_pid"
  hm_wait_for 10 grep -q "listening on" "$HM_TMP/fake.out" || hm_fail "the fake destination did not start: $(cat "$HM_TMP/fake.out")"
  addr=$(sed -n 's/^fake destination listening on //p' "$HM_TMP/fake.out")
  img=$HM_TMP/src/victim.bin
  "$HYMIG_TEST_WRITER" --create "$img" --size 8M --seed 1 2>/dev/null || hm_fail "create $img"
  hm_start_writer "$img" 500
  hm_migrate_run 60 "$HM_TMP/m.json" "$HM_TMP/m.err" --image "file:$img,pause-pid=$HM_WRITER_PID" --to "$addr" --bulk udp \
    --timeout 3 --report json
  hm_assert_failed_cleanly "$HM_RC" "$HM_TMP/m.err" "bulk endpoint $endpoint"
  grep -q -E "another host|not a numeric" "$HM_TMP/m.err" || hm_fail "$endpoint: unclear refusal: $(cat "$HM_TMP/m.err")"
  hm_assert_writer_resumed "$HM_WRITER_PID"
  hm_kill "$HM_WRITER_PID"
  hm_wait_pid "$fake_pid" 10
done
exit 0
