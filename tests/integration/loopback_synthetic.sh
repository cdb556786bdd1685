#!/usr/bin/env bash
# loopback_synthetic: a 256 MiB synthetic image (in-process memory dirtied at 64 MiB/s over a 64 MiB
# working set) from `hymig migrate --bind 127.0.0.1` (transports left to the policy) to `hymig serve --once`.
# Asserts: exit 0; the report says committed and verified, at least one round, a page count that
# covers exactly 256 MiB, a final delta that is missing ∪ modified (max <= delta <= sum), pages
# modified while it moved (the writer threads really dirtied memory), a known bulk transport that
# carried bytes; serve logs one committed line of 268435456 bytes and exits 0; the store stays
# empty (synthetic images are held in memory).
set -u -o pipefail
HM_TEST_NAME=loopback_synthetic
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 240
hm_tmpdir
mkdir -p "$HM_TMP/store"
size=$((256 << 20))

hm_start_serve "$HM_TMP/serve.log" --listen 127.0.0.1:0 --once --store "$HM_TMP/store" --timeout 10 --allow-synthetic
out=$HM_TMP/report.json err=$HM_TMP/migrate.err
hm_migrate_run 150 "$out" "$err" --image "synthetic:size=256M,dirty-rate=64M,working-set=64M,seed=7" \
  --to "$HM_SERVE_ADDR" --bind 127.0.0.1 --report json --timeout 10
hm_assert_committed "$HM_RC" "$out" "$err" "synthetic migration over loopback"
hm_assert_json "$out" ".pages_total * .page_size == $size" "report (pages_total * page_size is the 256 MiB image)"
hm_assert_json "$out" '.modified_pages > 0' "report (64 MiB/s of dirtying left no modified page: are the writer threads running?)"
hm_assert_json "$out" '.bulk.transport == "udp" or .bulk.transport == "tcp"' "report"
hm_assert_json "$out" 'if .bulk.transport == "udp" then .bulk.datagrams > 0 and .bulk.bytes > 0 else true end' \
  "report (the pages went over the bulk transport it names)"

hm_wait_pid "$HM_SERVE_PID" 30
[ "$HM_RC" -eq 0 ] || hm_fail "serve --once exited $HM_RC (124: still running) after a committed session; log: $(cat "$HM_TMP/serve.log")"
n=$(hm_count_lines "$HM_TMP/serve.log" "session [0-9a-f]+: committed [^ ]+ $size bytes")
[ "$n" -eq 1 ] || hm_fail "serve log has $n 'session <id>: committed <name> $size bytes' lines, expected 1: $(cat "$HM_TMP/serve.log")"
[ -z "$(hm_store_files "$HM_TMP/store")" ] || hm_fail "a synthetic image left files in the store: $(hm_store_files "$HM_TMP/store")"
hm_log "committed: $(jq -c '{rounds, total_ms, downtime_ms, modified_pages, missing_pages, final_delta_pages, bulk: .bulk.transport}' "$out")"
exit 0
