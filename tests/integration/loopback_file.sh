#!/usr/bin/env bash
# loopback_file [udp|tcp]: a 64 MiB file image, dirtied by a writer process while it moves, from
# `hymig migrate --bulk udp|tcp` to `hymig serve --once --store DIR` over loopback.
# Asserts: migrate exits 0; its JSON report says committed and verified, names the bulk transport
# asked for (and, for udp, that datagrams carried bytes), counts the image's pages; serve logs one
# committed line with the file's name and size and exits 0 (--once); the stored file equals the
# source byte for byte (cmp) and nothing else (no .part) is left in the store; the writer really
# changed the source while it moved; the writer was SIGKILLed by the handover (status 137).
set -u -o pipefail
BULK=${1:-udp}
HM_TEST_NAME=loopback_file_$BULK
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 240
hm_tmpdir
case $BULK in udp | tcp) ;; *) hm_fail "usage: $0 [udp|tcp]" ;; esac

mkdir -p "$HM_TMP/src" "$HM_TMP/store"
img=$HM_TMP/src/image.bin
size=$((64 << 20))
"$HYMIG_TEST_WRITER" --create "$img" --size "$size" --seed 11 --zero-fraction 0.1 2>/dev/null || hm_fail "create $img"
cp "$img" "$HM_TMP/pristine.bin"

# 4000 pages/s (16 MB/s) over the whole image: pages go dirty during every round.
hm_start_writer "$img" 4000
hm_start_serve "$HM_TMP/serve.log" --listen 127.0.0.1:0 --once --store "$HM_TMP/store" --timeout 10

out=$HM_TMP/report.json err=$HM_TMP/migrate.err
hm_migrate_run 120 "$out" "$err" --image "file:$img,pause-pid=$HM_WRITER_PID" --to "$HM_SERVE_ADDR" \
  --bulk "$BULK" --report json --timeout 10
hm_assert_committed "$HM_RC" "$out" "$err" "migration over loopback (bulk $BULK)"
hm_assert_json "$out" ".bulk.transport == \"$BULK\"" "report"
hm_assert_json "$out" ".reliable.transport == \"tcp\"" "report"
hm_assert_json "$out" ".pages_total * .page_size >= $size and (.pages_total - 1) * .page_size < $size" "report (pages_total covers the 64 MiB image)"
if [ "$BULK" = udp ]; then
  hm_assert_json "$out" '.bulk.datagrams > 0 and .bulk.bytes > 0' "report (udp bulk carried datagrams)"
fi

hm_assert_writer_killed_by_handover "$HM_WRITER_PID"

hm_wait_pid "$HM_SERVE_PID" 30
[ "$HM_RC" -eq 0 ] || hm_fail "serve --once exited $HM_RC (124: still running) after a committed session, expected 0; log: $(cat "$HM_TMP/serve.log")"
n=$(hm_count_lines "$HM_TMP/serve.log" "session [0-9a-f]+: committed image\.bin $size bytes")
[ "$n" -eq 1 ] || hm_fail "serve log has $n 'session <id>: committed image.bin $size bytes' lines, expected 1: $(cat "$HM_TMP/serve.log")"
grep -q 'aborted' "$HM_TMP/serve.log" && hm_fail "serve logged an abort: $(cat "$HM_TMP/serve.log")"

[ "$(hm_store_files "$HM_TMP/store")" = image.bin ] || hm_fail "store holds '$(hm_store_files "$HM_TMP/store" | tr '\n' ' ')', expected only image.bin"
cmp "$img" "$HM_TMP/store/image.bin" || hm_fail "destination image differs from the source image"
cmp -s "$img" "$HM_TMP/pristine.bin" && hm_fail "the writer never changed the source image: the test did not exercise dirty pages"
hm_log "committed: $(jq -c '{rounds, total_ms, downtime_ms, modified_pages, missing_pages, final_delta_pages, bulk}' "$out")"
exit 0
