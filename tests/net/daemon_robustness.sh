#!/usr/bin/env bash
# The daemon against the review's findings, one `hymig serve` throughout: connections reset in the
# accept backlog; a client dribbling a TLS record a byte a second next to a real migration (which
# must not wait for it); authenticated peers sending a hello nested 30,000 levels deep, a notify
# over the size limit, and a notify announcing 2^40 pages (refused at once, no memory taken); an
# existing image (never replaced without --replace; replaced with it); a source file whose name
# cannot fit the store. After each: serve alive, nothing stored but the real images.
set -u -o pipefail
HM_TEST_NAME=daemon_robustness
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
[ -x "${HYMIG_TEST_PEER:-}" ] || hm_fail "HYMIG_TEST_PEER is not set (build/release/tests/tools/hymig-test-peer)"
hm_deadline 240
hm_tmpdir
hm_store_setup
hm_start_serve "$log" --listen 127.0.0.1:0 --store "$store" --timeout 3 --handshake-timeout 3
serve_pid=$HM_SERVE_PID

alive() {
  hm_alive "$serve_pid" || { hm_wait_pid "$serve_pid" 1; hm_fail "serve died (status $HM_RC) after: $1; log: $(tail -n 20 "$log")"; }
}

hm_log "resets in the accept backlog"
"$HYMIG_TEST_PEER" rst-flood --to "$HM_SERVE_ADDR" --count 64 >"$HM_TMP/rst.out" 2>&1 || hm_fail "rst-flood: $(cat "$HM_TMP/rst.out")"
hm_sleep 1
alive "64 connections reset in the backlog"

hm_log "authenticated peers with hostile messages"
"$HYMIG_TEST_PEER" deep-hello --to "$HM_SERVE_ADDR" --key-file "$HYMIG_KEY_FILE" >"$HM_TMP/deep.out" 2>&1
alive "a hello nested 30,000 deep"
hm_wait_for 5 grep -q "nested deeper" "$log" || hm_fail "serve did not refuse the deep hello: $(tail -n 5 "$log"; cat "$HM_TMP/deep.out")"
"$HYMIG_TEST_PEER" oversized-notify --to "$HM_SERVE_ADDR" --key-file "$HYMIG_KEY_FILE" >"$HM_TMP/big.out" 2>&1
alive "a notify over the size limit"
hm_wait_for 5 grep -q "exceeds limit" "$log" || hm_fail "serve did not refuse the oversized notify: $(tail -n 5 "$log"; cat "$HM_TMP/big.out")"
t0=$SECONDS
"$HYMIG_TEST_PEER" huge-notify --to "$HM_SERVE_ADDR" --key-file "$HYMIG_KEY_FILE" >"$HM_TMP/huge.out" 2>&1
alive "a notify announcing 2^40 pages"
grep -q "max-image-bytes" "$HM_TMP/huge.out" || hm_fail "the huge notify was not refused by --max-image-bytes: $(cat "$HM_TMP/huge.out")"
[ $((SECONDS - t0)) -le 5 ] || hm_fail "refusing the huge notify took $((SECONDS - t0)) s"
rss_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$serve_pid/status")
[ "$rss_kb" -lt 204800 ] || hm_fail "serve's peak RSS is $rss_kb KiB after the hostile notifies"
hm_log "serve peak RSS $rss_kb KiB"

hm_log "a dribbling client next to a real migration"
"$HYMIG_TEST_PEER" dribble --to "$HM_SERVE_ADDR" --seconds 20 >"$HM_TMP/dribble.out" 2>&1 &
dribble_pid=$!
hm_track_pid "$dribble_pid"
hm_sleep 0.5
img=$HM_TMP/src/real.bin
"$HYMIG_TEST_WRITER" --create "$img" --size 16M --seed 3 2>/dev/null || hm_fail "create $img"
t0=$SECONDS
hm_migrate_run 60 "$HM_TMP/real.json" "$HM_TMP/real.err" --image "file:$img" --to "$HM_SERVE_ADDR" --report json
hm_assert_committed "$HM_RC" "$HM_TMP/real.json" "$HM_TMP/real.err" "a migration while a client dribbles"
[ $((SECONDS - t0)) -le 10 ] || hm_fail "the migration took $((SECONDS - t0)) s next to the dribbling client"
cmp "$img" "$store/real.bin" || hm_fail "real.bin differs"
hm_wait_pid "$dribble_pid" 30
kept=$(sed -n 's/.*kept the connection \([0-9]*\) ms.*/\1/p' "$HM_TMP/dribble.out")
[ -n "$kept" ] && [ "$kept" -le 5000 ] || hm_fail "the dribbling client was kept ${kept:-?} ms (--handshake-timeout 3): $(cat "$HM_TMP/dribble.out")"
hm_log "the dribbling client was dropped after $kept ms"
alive "a dribbling client"

hm_log "an existing image is never replaced silently"
cp "$img" "$HM_TMP/first.bin"
"$HYMIG_TEST_WRITER" --create "$img" --size 16M --seed 4 2>/dev/null || hm_fail "recreate $img"
hm_migrate_run 60 "$HM_TMP/again.json" "$HM_TMP/again.err" --image "file:$img" --to "$HM_SERVE_ADDR" --report json
[ "$HM_RC" -eq 1 ] || hm_fail "a second image of the same name: exit $HM_RC, expected 1"
grep -q -- "--replace" "$HM_TMP/again.err" || hm_fail "the refusal does not name --replace: $(cat "$HM_TMP/again.err")"
cmp "$HM_TMP/first.bin" "$store/real.bin" || hm_fail "the stored image was replaced"
[ "$(hm_store_files "$store")" = real.bin ] || hm_fail "store holds $(hm_store_files "$store" | tr '\n' ' ')"
alive "a refused replacement"

hm_log "a name that cannot fit the store is refused at the source"
long=$HM_TMP/src/$(printf 'n%.0s' {1..240}).bin
cp "$img" "$long"
st=0
"$HYMIG" migrate --image "file:$long" --to "$HM_SERVE_ADDR" --report none 2>"$HM_TMP/long.err" || st=$?
[ "$st" -eq 2 ] || hm_fail "a 244-byte image name: exit $st, expected 2: $(cat "$HM_TMP/long.err")"
grep -q "name" "$HM_TMP/long.err" || hm_fail "unclear refusal of a long name: $(cat "$HM_TMP/long.err")"

kill -TERM "$serve_pid"
hm_wait_pid "$serve_pid" 15
[ "$HM_RC" -eq 0 ] || hm_fail "serve exited $HM_RC on SIGTERM"

hm_log "with --replace the image is replaced"
hm_start_serve "$log.2" --listen 127.0.0.1:0 --store "$store" --timeout 3 --replace
hm_migrate_run 60 "$HM_TMP/replace.json" "$HM_TMP/replace.err" --image "file:$img" --to "$HM_SERVE_ADDR" --report json
hm_assert_committed "$HM_RC" "$HM_TMP/replace.json" "$HM_TMP/replace.err" "a replacement with --replace"
cmp "$img" "$store/real.bin" || hm_fail "the image was not replaced with --replace"
exit 0
