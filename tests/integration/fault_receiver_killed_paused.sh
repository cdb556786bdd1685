#!/usr/bin/env bash
# fault_receiver_killed_paused: `hymig serve` is killed with SIGKILL while the source is paused (its
# writer process in state T) and the final delta streams. The pause is made to last seconds by a
# veth between two namespaces shaped to 50mbit (tc tbf), --max-rounds 1 (and --downtime-ms large
# enough to pause whatever is missing) and a writer dirtying
# every page. Asserts: migrate exits 1 within 60 s (--timeout 3) with an error line and a report
# saying committed false; the writer, stopped at the kill, is alive and running again afterwards
# (hymig SIGCONTed it, did not SIGKILL it); nothing exists under the final name on the destination.
set -u -o pipefail
HM_TEST_NAME=fault_receiver_killed_paused
source "$(dirname "$0")/../lib/netlab.sh"
hm_require_tools
netlab_require
hm_deadline 200
hm_tmpdir

netlab_up 1500
hm_serve_across_netlab 3

img=$HM_TMP/src/image.bin
"$HYMIG_TEST_WRITER" --create "$img" --size 64M --seed 61 2>/dev/null || hm_fail "create $img"
hm_start_writer "$img" 8000
netlab_rate 50mbit
hm_migrate_bg "$HM_TMP/report.json" "$HM_TMP/migrate.err" --image "file:$img,pause-pid=$HM_WRITER_PID" \
  --to "$HM_SERVE_ADDR" --bulk udp --max-rounds 1 --downtime-ms 600000 --timeout 3 --report json
hm_wait_writer_paused 120 ||
  hm_fail "hymig never paused the writer within 120 s; migrate stderr: $(tail -c 2000 "$HM_TMP/migrate.err")"
[ "$(hm_proc_state "$HM_WRITER_PID")" = T ] ||
  hm_fail "migrate ended (report: $(head -c 1500 "$HM_TMP/report.json")) before the writer was seen paused"
kill -KILL "$serve_pid"
hm_log "writer pid $HM_WRITER_PID stopped by hymig; serve (pid $serve_pid) killed"
hm_wait_pid "$serve_pid" 10

hm_wait_pid "$HM_MIGRATE_PID" 60
hm_assert_failed_cleanly "$HM_RC" "$HM_TMP/migrate.err" "receiver killed during the pause"
hm_assert_json "$HM_TMP/report.json" '.committed == false and (.error | type) == "string"' "report"
hm_assert_writer_resumed "$HM_WRITER_PID"
[ -e "$store/image.bin" ] && hm_fail "image.bin exists under its final name on the destination"
exit 0
