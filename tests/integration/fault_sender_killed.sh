#!/usr/bin/env bash
# fault_sender_killed: `hymig migrate` is killed with SIGKILL in the middle of a bulk round.
# Asserts: the daemon logs "session <id>: aborted: <reason>" within 30 s (serve --timeout 3), and
# leaves no .part file and no file under the final name in its store; it is still alive; it then
# serves a second migration that commits (exit 0, committed + verified report, cmp-equal file,
# a committed line in its log), after which the store holds exactly that file.
set -u -o pipefail
HM_TEST_NAME=fault_sender_killed
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 240
hm_tmpdir
hm_store_setup

img=$HM_TMP/src/big.bin
"$HYMIG_TEST_WRITER" --create "$img" --size 256M --seed 31 2>/dev/null || hm_fail "create $img"
hm_start_serve "$log" --listen 127.0.0.1:0 --store "$store" --timeout 3
serve_pid=$HM_SERVE_PID

hm_migrate_mid_round "$HM_TMP/r1.json" "$HM_TMP/m1.err" "$store" "file:$img"
hm_log "killing migrate (pid $HM_MIGRATE_PID) mid-round"
hm_kill "$HM_MIGRATE_PID"

hm_wait_for 30 grep -q -E 'session [0-9a-f]+: aborted: .+' "$log" ||
  hm_fail "serve did not log 'session <id>: aborted: <reason>' within 30 s of the source's death: $(cat "$log")"
hm_log "serve: $(grep -m1 -E 'session [0-9a-f]+: aborted' "$log")"
grep -q 'committed' "$log" && hm_fail "serve logged a commit for a source that was killed: $(cat "$log")"
hm_alive "$serve_pid" || hm_fail "serve died after the source was killed: $(cat "$log")"
# The abort line may precede the unlink by a moment: bounded wait for an empty store.
hm_wait_for 10 hm_store_empty "$store" ||
  hm_fail "after the aborted session the store still holds: $(hm_store_files "$store" | tr '\n' ' ')"

# The daemon serves the next migration.
img2=$HM_TMP/src/second.bin
"$HYMIG_TEST_WRITER" --create "$img2" --size 16M --seed 32 2>/dev/null || hm_fail "create $img2"
hm_migrate_run 120 "$HM_TMP/r2.json" "$HM_TMP/m2.err" --image "file:$img2" --to "$HM_SERVE_ADDR" --report json --timeout 10
hm_assert_committed "$HM_RC" "$HM_TMP/r2.json" "$HM_TMP/m2.err" "second migration after the killed one"
hm_wait_for 10 grep -q -E "session [0-9a-f]+: committed second\.bin $((16 << 20)) bytes" "$log" ||
  hm_fail "serve did not log the second session's commit: $(cat "$log")"
cmp "$img2" "$store/second.bin" || hm_fail "second.bin differs from its source"
[ "$(hm_store_files "$store")" = second.bin ] || hm_fail "store holds '$(hm_store_files "$store" | tr '\n' ' ')', expected only second.bin"
hm_alive "$serve_pid" || hm_fail "serve is gone after the second session"
exit 0
