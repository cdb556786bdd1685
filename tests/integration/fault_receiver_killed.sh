#!/usr/bin/env bash
# fault_receiver_killed: `hymig serve` is killed with SIGKILL in the middle of a bulk round (the
# stream paced at --rate 20M so a 256 MiB image takes ~13 s).
# Phase 1, no writer: migrate exits 1 (failed before commit) within 60 s (--timeout 3), prints
# "hymig migrate: error: ...", its JSON report says committed false with an error; the source file's
# checksum is unchanged; the store holds nothing under the final name.
# Phase 2, with a writer process as pause-pid: the same, and the writer is alive and running (not
# stopped, not killed) afterwards.
set -u -o pipefail
HM_TEST_NAME=fault_receiver_killed
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 270
hm_tmpdir

run_phase() { # run_phase NAME WITH_WRITER
  local name=$1 with_writer=$2
  local dir=$HM_TMP/$name
  mkdir -p "$dir/src" "$dir/store"
  local img=$dir/src/image.bin spec sum_before=""
  "$HYMIG_TEST_WRITER" --create "$img" --size 256M --seed 21 2>/dev/null || hm_fail "create $img"
  spec="file:$img"
  if [ "$with_writer" = 1 ]; then
    hm_start_writer "$img" 2000
    spec+=",pause-pid=$HM_WRITER_PID"
  else
    sum_before=$(sha256sum <"$img")
  fi
  hm_start_serve "$dir/serve.log" --listen 127.0.0.1:0 --store "$dir/store" --timeout 3
  local serve_pid=$HM_SERVE_PID
  hm_migrate_mid_round "$dir/report.json" "$dir/migrate.err" "$dir/store" "$spec"
  hm_log "$name: killing serve (pid $serve_pid) mid-round"
  hm_kill "$serve_pid"
  hm_wait_pid "$HM_MIGRATE_PID" 60
  hm_assert_failed_cleanly "$HM_RC" "$dir/migrate.err" "$name"
  hm_assert_json "$dir/report.json" '.committed == false' "$name report"
  hm_assert_json "$dir/report.json" '(.error | type) == "string" and (.error | length) > 0' "$name report (error string)"
  [ -e "$dir/store/image.bin" ] && hm_fail "$name: the store holds image.bin under its final name after a failed migration"
  if [ "$with_writer" = 1 ]; then
    hm_assert_writer_resumed "$HM_WRITER_PID"
    hm_kill "$HM_WRITER_PID"
  else
    [ "$(sha256sum <"$img")" = "$sum_before" ] || hm_fail "$name: the source image changed although nothing wrote to it"
  fi
}

run_phase no_writer 0
run_phase with_writer 1
exit 0
