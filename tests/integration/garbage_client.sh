#!/usr/bin/env bash
# garbage_client: clients that are not hymig sources must cost the daemon nothing lasting.
# Sent to `hymig serve --timeout 3` over loopback, one after another: 64 KiB of random bytes; a
# well-formed frame header (magic HYMC, version 1, hello) announcing a ~4 GiB body; a connection
# that opens and closes at once; a half-sent header followed by silence, held open past the daemon's
# timeout while a real migration starts.
# Asserts: serve stays alive after each; the real migration (16 MiB file with a writer) commits
# and verifies, its file is cmp-equal; serve logs exactly one commit (the real one); the store
# holds only that file; serve is still alive (kill -0) at the end and exits 0 on SIGTERM.
set -u -o pipefail
HM_TEST_NAME=garbage_client
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 240
hm_tmpdir
hm_store_setup

hm_start_serve "$log" --listen 127.0.0.1:0 --store "$store" --timeout 3
serve_pid=$HM_SERVE_PID
port=$HM_SERVE_PORT

still_alive() {
  hm_alive "$serve_pid" || { hm_wait_pid "$serve_pid" 1; hm_fail "serve died (status $HM_RC) after: $1; log: $(cat "$log")"; }
  kill -0 "$serve_pid" || hm_fail "kill -0 serve failed after: $1"
}

# Each garbage client runs in a subshell with bash's /dev/tcp; write errors (the daemon hung up) are fine.
hm_log "garbage 1: 64 KiB of random bytes"
timeout 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; head -c 65536 /dev/urandom >&3; sleep 0.5; exec 3>&-" 2>/dev/null
still_alive "random bytes"

hm_log "garbage 2: frame header announcing a 4 GiB body"
# magic HYMC | version 1 | type 1 (hello) | flags 0 | body length 0xfffffff0 | payload length 0
timeout 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port
  printf 'HYMC\x01\x01\x00\x00\xf0\xff\xff\xff\x00\x00\x00\x00' >&3
  head -c 100000 /dev/urandom >&3; sleep 0.5; exec 3>&-" 2>/dev/null
still_alive "huge length header"

hm_log "garbage 3: 50 connections that open and close at once"
timeout 20 bash -c "for i in {1..50}; do exec 3<>/dev/tcp/127.0.0.1/$port; exec 3>&-; done" 2>/dev/null
still_alive "open/close connections"

hm_log "garbage 4: half a header, then silence (held open)"
exec {silent}<>"/dev/tcp/127.0.0.1/$port" || hm_fail "cannot connect to serve on port $port"
printf 'HYMC\x01\x01' >&"$silent"
hm_sleep 5 # longer than serve's --timeout 3: a daemon that honours it has dropped this client
still_alive "half-sent frame"

img=$HM_TMP/src/real.bin
"$HYMIG_TEST_WRITER" --create "$img" --size 16M --seed 41 2>/dev/null || hm_fail "create $img"
hm_start_writer "$img" 1000
hm_migrate_run 120 "$HM_TMP/report.json" "$HM_TMP/migrate.err" --image "file:$img,pause-pid=$HM_WRITER_PID" \
  --to "$HM_SERVE_ADDR" --report json --timeout 10
hm_assert_committed "$HM_RC" "$HM_TMP/report.json" "$HM_TMP/migrate.err" "real migration after the garbage clients"
hm_assert_writer_killed_by_handover "$HM_WRITER_PID"
exec {silent}>&-

hm_wait_for 10 grep -q -E "session [0-9a-f]+: committed real\.bin $((16 << 20)) bytes" "$log" ||
  hm_fail "serve did not log the real session's commit: $(cat "$log")"
n=$(hm_count_lines "$log" 'committed')
[ "$n" -eq 1 ] || hm_fail "serve logged $n commits, expected exactly 1 (garbage must never commit): $(cat "$log")"
cmp "$img" "$store/real.bin" || hm_fail "real.bin differs from its source"
[ "$(hm_store_files "$store")" = real.bin ] || hm_fail "store holds '$(hm_store_files "$store" | tr '\n' ' ')', expected only real.bin"
still_alive "the real migration"
hm_log "serve log: $(grep -c . "$log") lines; rejections: $(grep -c -E 'rejected|aborted' "$log")"

kill -TERM "$serve_pid"
hm_wait_pid "$serve_pid" 15
[ "$HM_RC" -eq 0 ] || hm_fail "serve exited $HM_RC on SIGTERM (124: did not exit within 15 s), expected a clean exit 0"
exit 0
