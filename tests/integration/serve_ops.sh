#!/usr/bin/env bash
# serve_ops (labels integration, ops): the daemon as a service, on loopback.
#   1. Started with no option but $HYMIG_CONFIG (a config file naming listen, allow-synthetic,
#      max-incoming, metrics) and NOTIFY_SOCKET (hymig-notify-listen standing in for systemd): it
#      tells READY=1 once it listens; its log lines are levelled and timestamped.
#   2. `hymig status` (text and --json) before, during and after a migration: during it the
#      migration shows with its phase, round and bytes; after it the last results list it.
#   3. The metrics endpoint scraped during and after: a running migration with its remaining
#      bytes, then one committed with a blackout and a total time observed; other paths 404.
#   4. What status and drain refuse: a wrong key (exit 1, the daemon logs the rejection), nothing
#      listening (exit 1), a bad flag (exit 2), drain --node against a daemon without --libvirt.
#   5. SIGTERM during a migration: STOPPING=1, the migration still commits, exit 0.
set -u -o pipefail
HM_TEST_NAME=serve_ops
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 200
hm_tmpdir
[ -n "${HYMIG_NOTIFY_LISTEN:-}" ] || hm_fail "HYMIG_NOTIFY_LISTEN is not set (build/release/tests/tools/hymig-notify-listen)"
command -v curl >/dev/null || hm_skip "curl is not installed (scripts/bootstrap.sh installs it)"

"$HYMIG_NOTIFY_LISTEN" "$HM_TMP/notify.sock" "$HM_TMP/notify.txt" &
hm_track_pid $!
cat >"$HM_TMP/hymig.conf" <<CONF
# as /etc/hymig/hymig.conf would hold it
listen = 127.0.0.1:0
allow-synthetic = true
max-incoming = 1
metrics = 127.0.0.1:0
store = $HM_TMP/store
CONF
HYMIG_CONFIG=$HM_TMP/hymig.conf NOTIFY_SOCKET=$HM_TMP/notify.sock hm_start_serve "$HM_TMP/serve.log"
addr=$HM_SERVE_ADDR
metrics=$(grep -o -m1 'http://[^ ]*/metrics' "$HM_TMP/serve.log") || hm_fail "serve logged no metrics address: $(cat "$HM_TMP/serve.log")"
ready() { grep -q "READY=1" "$HM_TMP/notify.txt" 2>/dev/null; }
hm_wait_for 10 ready || hm_fail "no READY=1 on NOTIFY_SOCKET: $(cat "$HM_TMP/notify.txt" 2>/dev/null)"
grep -q -E '^[0-9-]+ [0-9:.]+ hymig serve: \[info\] listening on' "$HM_TMP/serve.log" ||
  hm_fail "the log lines are not levelled and timestamped: $(head -n3 "$HM_TMP/serve.log")"

# 2, 3. status and metrics around a migration.
"$HYMIG" status "$addr" --json >"$HM_TMP/st0.json" || hm_fail "hymig status failed: $(cat "$HM_TMP/st0.json")"
hm_assert_json "$HM_TMP/st0.json" '.capacity.max_incoming == 1 and .capacity.memory_available > 0 and (.incoming | length) == 0 and .drain.state == "none"' "status before"
hm_migrate_bg "$HM_TMP/m1.json" "$HM_TMP/m1.err" --image synthetic:size=256M,dirty-rate=32M --to "$addr" --rate 64M --report json
m1=$HM_MIGRATE_PID
receiving() { "$HYMIG" status "$addr" --json 2>/dev/null | jq -e '(.incoming | length) == 1 and .incoming[0].bytes_received > 0' >/dev/null; }
hm_wait_for 30 receiving || hm_fail "status never showed the migration: $(cat "$HM_TMP/m1.err")"
"$HYMIG" status "$addr" --json >"$HM_TMP/st1.json"
hm_assert_json "$HM_TMP/st1.json" '.incoming[0].image_kind == "synthetic" and .incoming[0].image_bytes == 268435456 and (.incoming[0].phase | IN("rounds","final-delta","verifying","committing"))' "status during"
"$HYMIG" status "$addr" >"$HM_TMP/st1.txt" || hm_fail "hymig status (text) failed"
grep -q -E 'synthetic:synthetic +(rounds|final-delta)' "$HM_TMP/st1.txt" || hm_fail "status text does not show the migration: $(cat "$HM_TMP/st1.txt")"
curl -sf "$metrics" >"$HM_TMP/metrics1.txt" || hm_fail "cannot scrape $metrics"
grep -q '^hymig_incoming_running 1$' "$HM_TMP/metrics1.txt" || hm_fail "metrics during: $(grep -v '^#' "$HM_TMP/metrics1.txt")"
grep -q -E '^hymig_incoming_remaining_bytes\{session="[0-9a-f]{16}",image="synthetic:synthetic"\} [0-9]+$' "$HM_TMP/metrics1.txt" ||
  hm_fail "no remaining bytes of the running migration: $(grep -v '^#' "$HM_TMP/metrics1.txt")"
hm_wait_pid "$m1" 60
hm_assert_committed "$HM_RC" "$HM_TMP/m1.json" "$HM_TMP/m1.err" "m1"
"$HYMIG" status "$addr" --json >"$HM_TMP/st2.json"
hm_assert_json "$HM_TMP/st2.json" '(.incoming | length) == 0 and .recent[0].outcome == "committed" and .recent[0].image_bytes == 268435456' "status after"
curl -sf "$metrics" >"$HM_TMP/metrics2.txt"
for want in 'hymig_incoming_migrations_total{outcome="committed"} 1' 'hymig_blackout_seconds_count 1' \
  'hymig_migration_seconds_count 1' 'hymig_incoming_running 0' 'hymig_datagrams_dropped_total{reason="bad_mac"} 0'; do
  grep -q -F -x "$want" "$HM_TMP/metrics2.txt" || hm_fail "metrics after: no '$want' in $(grep -v '^#' "$HM_TMP/metrics2.txt")"
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "${metrics%/metrics}/other")" = 404 ] || hm_fail "a path other than /metrics is not 404"
hm_log "status and metrics: $(jq -c '.recent[0] | {outcome, seconds}' "$HM_TMP/st2.json"), blackout $(grep '^hymig_blackout_seconds_sum' "$HM_TMP/metrics2.txt")"

# 4. Refusals.
"$HYMIG" keygen "$HM_TMP/other.key" 2>/dev/null
rc=0
"$HYMIG" status "$addr" --key-file "$HM_TMP/other.key" >"$HM_TMP/wrongkey.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || hm_fail "status with the wrong key exited $rc: $(cat "$HM_TMP/wrongkey.out")"
grep -q -i "key" "$HM_TMP/wrongkey.out" || hm_fail "the wrong key's error does not say so: $(cat "$HM_TMP/wrongkey.out")"
rejected() { grep -q "rejected" "$HM_TMP/serve.log"; }
hm_wait_for 5 rejected || hm_fail "serve did not log the rejected status query: $(cat "$HM_TMP/serve.log")"
rc=0
"$HYMIG" status 127.0.0.1:1 >"$HM_TMP/nothing.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || hm_fail "status of nothing exited $rc: $(cat "$HM_TMP/nothing.out")"
rc=0
"$HYMIG" status --lsat 3 >"$HM_TMP/badflag.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || hm_fail "status with a bad flag exited $rc: $(cat "$HM_TMP/badflag.out")"
rc=0
"$HYMIG" drain --node "$addr" --targets 127.0.0.1:2 --async >"$HM_TMP/nodrain.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q -- "--libvirt" "$HM_TMP/nodrain.out" || hm_fail "drain --node without --libvirt: exit $rc, $(cat "$HM_TMP/nodrain.out")"

# 5. SIGTERM while a migration runs: it finishes, then the daemon exits 0.
hm_migrate_bg "$HM_TMP/m2.json" "$HM_TMP/m2.err" --image synthetic:size=128M --to "$addr" --rate 64M --report json
m2=$HM_MIGRATE_PID
hm_wait_for 30 receiving || hm_fail "the second migration never showed: $(cat "$HM_TMP/m2.err")"
kill -TERM "$HM_SERVE_PID"
hm_wait_pid "$m2" 60
hm_assert_committed "$HM_RC" "$HM_TMP/m2.json" "$HM_TMP/m2.err" "m2 (serve got SIGTERM meanwhile)"
hm_wait_pid "$HM_SERVE_PID" 20
[ "$HM_RC" -eq 0 ] || hm_fail "serve exited $HM_RC after SIGTERM: $(tail -n5 "$HM_TMP/serve.log")"
grep -q "STOPPING=1" "$HM_TMP/notify.txt" || hm_fail "no STOPPING=1 on NOTIFY_SOCKET: $(cat "$HM_TMP/notify.txt")"
hm_log "SIGTERM: the running migration committed, serve exited 0; notifications: $(tr '\n' '|' <"$HM_TMP/notify.txt")"
exit 0
