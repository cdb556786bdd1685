#!/usr/bin/env bash
# fault_link_cut: the veth between the two namespaces goes dark (nftables drops everything both
# ways) in the middle of a migration whose source is a writer process (pause-pid).
# Phase mid_round: cut during a bulk round (--rate 20M, 256 MiB image).
# Phase paused:    cut while the source is paused (writer in state T) and the final delta streams:
#                  tbf 50mbit, --max-rounds 1 (with a downtime target that lets it pause whatever
#                  is missing) and a writer dirtying every page make that phase
#                  last seconds.
# Asserts per phase: migrate exits 1 within 60 s (--timeout 3) with an error line and a report
# saying committed false; the writer is alive and running again (not stopped: hymig SIGCONTed it);
# nothing under the final name in the store; the daemon logs the session as aborted within 30 s,
# deletes its .part file and stays alive.
set -u -o pipefail
HM_TEST_NAME=fault_link_cut
source "$(dirname "$0")/../lib/netlab.sh"
hm_require_tools
netlab_require
hm_deadline 270
hm_tmpdir

netlab_up 1500
hm_serve_across_netlab 3

check_outcome() { # check_outcome PHASE ABORTS_BEFORE
  local phase=$1 aborts_before=$2
  hm_wait_pid "$HM_MIGRATE_PID" 60
  hm_assert_failed_cleanly "$HM_RC" "$HM_TMP/$phase.err" "$phase"
  hm_assert_json "$HM_TMP/$phase.json" '.committed == false and (.error | type) == "string"' "$phase report"
  hm_assert_writer_resumed "$HM_WRITER_PID"
  [ -e "$store/$phase.bin" ] && hm_fail "$phase: $phase.bin exists under its final name after a failed migration"
  hm_wait_lines 30 "$log" 'session [0-9a-f]+: aborted: ' "$aborts_before" ||
    hm_fail "$phase: serve did not log the session as aborted within 30 s: $(cat "$log")"
  hm_wait_for 10 hm_store_empty "$store" ||
    hm_fail "$phase: the store still holds '$(hm_store_files "$store" | tr '\n' ' ')' after the abort"
  hm_alive "$serve_pid" || hm_fail "$phase: serve died: $(cat "$log")"
  grep -q committed "$log" && hm_fail "$phase: serve logged a commit: $(cat "$log")"
  hm_log "$phase: serve says $(grep -E 'aborted' "$log" | tail -1)"
  hm_kill "$HM_WRITER_PID"
  netlab_uncut
  netlab_rate off
}

# Phase 1: cut mid-round.
img=$HM_TMP/src/mid_round.bin
"$HYMIG_TEST_WRITER" --create "$img" --size 256M --seed 51 2>/dev/null || hm_fail "create $img"
hm_start_writer "$img" 2000
aborts=$(hm_count_lines "$log" 'aborted')
hm_migrate_mid_round "$HM_TMP/mid_round.json" "$HM_TMP/mid_round.err" "$store" "file:$img,pause-pid=$HM_WRITER_PID"
hm_stopped "$HM_WRITER_PID" && hm_fail "mid_round: the writer is already paused; the cut would not be mid-round"
netlab_cut
check_outcome mid_round "$aborts"
rm -f "$img"

# Phase 2: cut while the source is paused.
img=$HM_TMP/src/paused.bin
"$HYMIG_TEST_WRITER" --create "$img" --size 64M --seed 52 2>/dev/null || hm_fail "create $img"
hm_start_writer "$img" 8000
netlab_rate 50mbit
aborts=$(hm_count_lines "$log" 'aborted')
hm_migrate_bg "$HM_TMP/paused.json" "$HM_TMP/paused.err" --image "file:$img,pause-pid=$HM_WRITER_PID" \
  --to "$HM_SERVE_ADDR" --bulk udp --max-rounds 1 --downtime-ms 600000 --timeout 3 --report json
hm_wait_writer_paused 120 ||
  hm_fail "paused: hymig never paused the writer within 120 s; migrate stderr: $(tail -c 2000 "$HM_TMP/paused.err")"
hm_stopped "$HM_WRITER_PID" ||
  hm_fail "paused: migrate ended (report: $(head -c 1500 "$HM_TMP/paused.json")) before the writer was seen paused; cannot cut during the pause"
netlab_cut
hm_log "paused: writer pid $HM_WRITER_PID is stopped; link cut"
check_outcome paused "$aborts"
exit 0
