#!/usr/bin/env bash
# serve_concurrent: one `hymig serve` receiving several migrations at once (--max-incoming).
# The first source of each case is held at 16 or 8 MiB/s (--rate: 4 or 8 s for its 64 MiB) so it
# is still moving when the next one arrives and, in case 2, through the second's whole wait.
#   1. --max-incoming 2: two sources at once both commit, verified; serve logs two committed lines.
#   2. --max-incoming 1 --timeout 2: a second source arriving while the first moves is refused as
#      busy (exit 1, "busy", naming --max-incoming) and the first still commits.
#   3. --max-incoming 2 --max-image-bytes 100M: two synthetic images of 64 MiB would hold 128 MiB
#      at once: the second is refused (naming --max-image-bytes), the first commits.
# The daemon keeps running through all of it and stops on SIGTERM with exit 0.
set -u -o pipefail
HM_TEST_NAME=serve_concurrent
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 200
hm_tmpdir
mkdir -p "$HM_TMP/store"

image="synthetic:size=64M,seed=3"
common=(--bind 127.0.0.1 --report json --timeout 10)

# migrate_bg NAME ARGS...: a source in the background; its pid in PID_<NAME>.
migrate_bg() {
  local name=$1
  shift
  hm_migrate_bg "$HM_TMP/$name.json" "$HM_TMP/$name.err" "$@"
  printf -v "PID_$name" '%s' "$HM_MIGRATE_PID"
}
# moving NAME: its first progress line is out (it authenticated and streams).
moving() { grep -q '"progress"' "$HM_TMP/$1.err" 2>/dev/null; }
# finish NAME: waits for it; HM_RC its exit status.
finish() {
  local pid_var="PID_$1"
  hm_wait_pid "${!pid_var}" 90
  [ "$HM_RC" -ne 124 ] || hm_fail "migrate $1 did not end within 90 s: $(tail -c 2000 "$HM_TMP/$1.err")"
}
# stop_serve LOG: SIGTERM ends the daemon with exit 0.
stop_serve() {
  kill -TERM "$HM_SERVE_PID"
  hm_wait_pid "$HM_SERVE_PID" 20
  [ "$HM_RC" -eq 0 ] || hm_fail "serve exited $HM_RC on SIGTERM, expected 0; log: $(tail -c 2000 "$1")"
}
# second_refused NAME REGEX WHAT SERVE-ARGS...: a daemon with SERVE-ARGS; while a first source held
# at 8 MiB/s moves, a second one must fail cleanly with REGEX on its stderr, and the first commit.
second_refused() {
  local name=$1 regex=$2 what=$3
  shift 3
  hm_start_serve "$HM_TMP/$name.log" --listen 127.0.0.1:0 --store "$HM_TMP/store" --allow-synthetic "$@"
  migrate_bg "${name}_first" --image "$image" --to "$HM_SERVE_ADDR" --rate 8M "${common[@]}" --progress json
  hm_wait_for 30 moving "${name}_first" || hm_fail "$what: the first source never started moving: $(tail -c 2000 "$HM_TMP/${name}_first.err")"
  migrate_bg "${name}_second" --image "$image" --to "$HM_SERVE_ADDR" "${common[@]}" --progress off
  finish "${name}_second"
  hm_assert_failed_cleanly "$HM_RC" "$HM_TMP/${name}_second.err" "$what"
  grep -q -E "$regex" "$HM_TMP/${name}_second.err" ||
    hm_fail "$what: the refused source's error does not match '$regex': $(tail -c 1000 "$HM_TMP/${name}_second.err")"
  finish "${name}_first"
  hm_assert_committed "$HM_RC" "$HM_TMP/${name}_first.json" "$HM_TMP/${name}_first.err" "$what: the first source"
  stop_serve "$HM_TMP/$name.log"
}

# 1. Two at once.
hm_start_serve "$HM_TMP/serve.log" --listen 127.0.0.1:0 --store "$HM_TMP/store" --allow-synthetic --max-incoming 2
migrate_bg a --image "$image" --to "$HM_SERVE_ADDR" --rate 16M "${common[@]}" --progress json
hm_wait_for 30 moving a || hm_fail "the first source never started moving: $(tail -c 2000 "$HM_TMP/a.err")"
migrate_bg b --image "$image" --to "$HM_SERVE_ADDR" --rate 16M "${common[@]}" --progress json
hm_wait_for 30 moving b || hm_fail "the second source never started moving: $(tail -c 2000 "$HM_TMP/b.err")"
hm_alive "$PID_a" || hm_fail "the first source ended before the second moved: they did not overlap"
finish a
hm_assert_committed "$HM_RC" "$HM_TMP/a.json" "$HM_TMP/a.err" "first of two concurrent sources"
finish b
hm_assert_committed "$HM_RC" "$HM_TMP/b.json" "$HM_TMP/b.err" "second of two concurrent sources"
n=$(hm_count_lines "$HM_TMP/serve.log" "session [0-9a-f]+: committed [^ ]+ 67108864 bytes")
[ "$n" -eq 2 ] || hm_fail "serve logged $n committed sessions, expected 2: $(cat "$HM_TMP/serve.log")"
stop_serve "$HM_TMP/serve.log"

# 2. One slot: the second waits --timeout (2 s), then is refused as busy.
second_refused busy 'busy.*--max-incoming 1' "a source beyond --max-incoming 1" --max-incoming 1 --timeout 2
# 3. Memory for synthetic images is counted over the sessions under way.
second_refused memory 'under way.*--max-image-bytes' "a synthetic image beyond --max-image-bytes in all" \
  --max-incoming 2 --max-image-bytes 100M
[ -z "$(hm_store_files "$HM_TMP/store")" ] || hm_fail "synthetic images left files in the store: $(hm_store_files "$HM_TMP/store")"
exit 0
