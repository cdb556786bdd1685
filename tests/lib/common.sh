# shellcheck shell=bash
# Shared helpers of the hymig integration tests. Source it; it sets no options of its own beyond
# what the helpers need and installs one EXIT trap that runs every registered cleanup.
#
#   hm_require_tools             skip (77) unless $HYMIG and $HYMIG_TEST_WRITER are executables and jq exists
#   hm_tmpdir                    makes (once) a scratch dir under /dev/shm, removed on exit: $HM_TMP;
#                                with $HYMIG set, also a throwaway cluster key there ($HYMIG_KEY_FILE)
#   hm_on_exit CMD...            registers a cleanup command (run in reverse order on exit)
#   hm_track_pid PID             a process to kill (by PID, SIGKILL) on exit if still alive
#   hm_start_serve LOG ARGS...   starts `hymig serve ARGS` (stderr to LOG), waits for its listening line:
#                                sets HM_SERVE_PID, HM_SERVE_ADDR (HOST:PORT), HM_SERVE_PORT
#   hm_wait_pid PID SEC          waits at most SEC seconds for a child to end; sets HM_RC (124 on timeout)
#   hm_wait_for SEC CMD...       polls CMD until it succeeds; fails after SEC seconds
#   hm_wait_lines SEC F PAT N    waits until file F has more than N lines matching PAT
#   hm_proc_state PID            prints the state letter of PID from /proc (nothing if gone)
#   hm_assert_json FILE FILTER   asserts that jq FILTER on FILE is true
#   hm_deadline SEC              ends the test (with cleanup) after SEC seconds
#   hm_fail MSG / hm_log MSG     report

HM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HM_TEST_NAME=${HM_TEST_NAME:-$(basename "${0%.sh}")}
HM_CLEANUPS=()
HM_PIDS=()
HM_TMP=""
HM_SERVE_PREFIX=()
HM_MIGRATE_PREFIX=()

hm_log() { printf '[%s %s] %s\n' "$HM_TEST_NAME" "$(date +%H:%M:%S.%N | cut -c1-12)" "$*" >&2; }

hm_fail() {
  printf '[%s] FAIL: %s\n' "$HM_TEST_NAME" "$*" >&2
  exit 1
}

hm_skip() {
  printf '[%s] SKIP: %s\n' "$HM_TEST_NAME" "$*" >&2
  exit 77
}

hm_on_exit() { HM_CLEANUPS+=("$*"); }

hm_track_pid() { HM_PIDS+=("$1"); }

hm__cleanup() {
  local rc=$? i pid
  trap - EXIT
  set +e
  for pid in "${HM_PIDS[@]}"; do
    # SIGKILL: a stopped process would not act on SIGTERM. Only PIDs this test started.
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null
  done
  for pid in "${HM_PIDS[@]}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null
  done
  for ((i = ${#HM_CLEANUPS[@]} - 1; i >= 0; i--)); do
    eval "${HM_CLEANUPS[$i]}"
  done
  if [ -n "$HM_TMP" ] && [ -d "$HM_TMP" ]; then
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -n "${HM_KEEP_ON_FAILURE:-}" ]; then
      echo "[$HM_TEST_NAME] keeping $HM_TMP for inspection" >&2
    else
      rm -rf -- "$HM_TMP"
    fi
  fi
  if [ "$rc" -eq 0 ]; then echo "[$HM_TEST_NAME] PASS" >&2; fi
  exit "$rc"
}
trap hm__cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# hm_deadline SEC: the test ends itself (SIGTERM, so the cleanup trap runs) after SEC seconds,
# before ctest's own TIMEOUT would SIGKILL it and leave namespaces or processes behind.
hm_deadline() {
  local sec=$1 me=$$
  (
    trap - EXIT INT TERM
    read -r -t "$sec" _ <> <(:)
    echo "[$HM_TEST_NAME] FAIL: deadline of $sec s exceeded; ending the test" >&2
    kill -TERM "$me" 2>/dev/null
  ) &
  hm_track_pid $!
}

hm_require_tools() {
  command -v jq >/dev/null || hm_skip "jq is not installed (scripts/bootstrap.sh installs it)"
  [ -n "${HYMIG:-}" ] || hm_fail "HYMIG is not set: run through ctest, or HYMIG=build/release/cli/hymig bash $0"
  [ -x "$HYMIG" ] || hm_fail "HYMIG=$HYMIG is not an executable"
  [ -n "${HYMIG_TEST_WRITER:-}" ] || hm_fail "HYMIG_TEST_WRITER is not set (build/release/tests/tools/hymig-test-writer)"
  [ -x "$HYMIG_TEST_WRITER" ] || hm_fail "HYMIG_TEST_WRITER=$HYMIG_TEST_WRITER is not an executable"
  HYMIG=$(realpath "$HYMIG")
  HYMIG_TEST_WRITER=$(realpath "$HYMIG_TEST_WRITER")
}

hm_tmpdir() {
  if [ -z "$HM_TMP" ]; then
    local base=/dev/shm
    [ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
    HM_TMP=$(mktemp -d "$base/hymig-it-$HM_TEST_NAME.XXXXXX") || hm_fail "mktemp -d in $base"
    # Every hymig session is authenticated: the test's processes share a key of their own, found
    # through $HYMIG_KEY_FILE (serve and migrate read it when no --key-file is given).
    if [ -n "${HYMIG:-}" ] && [ -x "$HYMIG" ] && [ -z "${HM_KEEP_KEY_FILE:-}" ]; then
      "$HYMIG" keygen "$HM_TMP/cluster.key" 2>/dev/null || hm_fail "hymig keygen $HM_TMP/cluster.key failed"
      export HYMIG_KEY_FILE=$HM_TMP/cluster.key
    fi
  fi
}

# hm_proc_state PID: R, S, D, T, t, Z, ... or nothing when the process is gone.
hm_proc_state() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
  stat=${stat##*) }   # the comm field may hold spaces and parentheses: cut after the last ')'
  printf '%s\n' "${stat%% *}"
}

# hm_alive PID: true while PID exists and is not a zombie.
hm_alive() {
  local s
  s=$(hm_proc_state "$1")
  [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}

# Sleeps without forking (read on a pipe nobody writes).
hm__sleep_fd=""
hm_sleep() {
  if [ -z "$hm__sleep_fd" ]; then
    exec {hm__sleep_fd}<> <(:)
  fi
  read -r -t "$1" -u "$hm__sleep_fd" _ || true
}

# hm_wait_pid PID SEC: waits for a child of this shell to end, at most SEC seconds.
# Sets HM_RC to its exit status (128+signal if killed), or 124 if it is still running.
hm_wait_pid() {
  local pid=$1 limit=$2 start=$SECONDS
  while hm_alive "$pid"; do
    if ((SECONDS - start >= limit)); then
      HM_RC=124
      return 0
    fi
    hm_sleep 0.05
  done
  HM_RC=0
  wait "$pid" 2>/dev/null || HM_RC=$?
  return 0
}

# hm_wait_for SEC CMD...: polls CMD every 50 ms until it succeeds; returns 1 after SEC seconds.
hm_wait_for() {
  local limit=$1 start=$SECONDS
  shift
  until "$@"; do
    ((SECONDS - start >= limit)) && return 1
    hm_sleep 0.05
  done
  return 0
}

# hm_start_serve LOG ARGS...: starts `$HYMIG serve ARGS` in the background, stderr to LOG (stdout to
# LOG.out), and waits at most HM_SERVE_START_SEC (20) seconds for "listening on H:P" in its log.
# A prefix command (e.g. `ip netns exec NS`) may be given in the array HM_SERVE_PREFIX.
hm_start_serve() {
  local log=$1
  shift
  : >"$log"
  "${HM_SERVE_PREFIX[@]}" "$HYMIG" serve "$@" 2>"$log" >"$log.out" &
  HM_SERVE_PID=$!
  hm_track_pid "$HM_SERVE_PID"
  local start=$SECONDS line=""
  while :; do
    line=$(grep -m1 -o -E 'listening on [^ ]+:[0-9]+' "$log" || true)
    [ -n "$line" ] && break
    if ! hm_alive "$HM_SERVE_PID"; then
      hm_wait_pid "$HM_SERVE_PID" 1
      hm_fail "hymig serve $* exited (status $HM_RC) before listening; its stderr: $(cat "$log")"
    fi
    ((SECONDS - start >= ${HM_SERVE_START_SEC:-20})) &&
      hm_fail "hymig serve $* did not print 'listening on' within ${HM_SERVE_START_SEC:-20} s; its stderr: $(cat "$log")"
    hm_sleep 0.05
  done
  HM_SERVE_ADDR=${line#listening on }
  HM_SERVE_PORT=${HM_SERVE_ADDR##*:}
  [ "$HM_SERVE_PORT" -gt 0 ] 2>/dev/null || hm_fail "serve printed a bad address: '$line'"
  hm_log "serve pid $HM_SERVE_PID listening on $HM_SERVE_ADDR"
}

# hm_count_lines FILE REGEX: number of lines of FILE matching the extended REGEX.
hm_count_lines() { grep -c -E "$2" "$1" 2>/dev/null || true; }

# hm_wait_lines SEC FILE PATTERN N: waits until FILE has more than N lines matching PATTERN (the
# count is taken anew at every poll).
hm_wait_lines() { hm_wait_for "$1" hm__more_lines "$2" "$3" "$4"; }
hm__more_lines() { [ "$(hm_count_lines "$1" "$2")" -gt "$3" ]; }

# hm_assert_json FILE FILTER [WHAT]: FILTER must evaluate to true on the JSON object in FILE.
hm_assert_json() {
  local got
  jq -e 'type == "object"' "$1" >/dev/null 2>&1 ||
    hm_fail "${3:-report} $1 does not hold one JSON object: $(head -c 2000 "$1")"
  got=$(jq -r "$2" "$1" 2>&1)
  [ "$got" = true ] || hm_fail "${3:-report}: expected ($2) to be true, got '$got'; report: $(jq -c . "$1")"
}

# hm_assert_report_ok FILE: the migrate report says committed and verified, and is self-consistent.
hm_assert_report_ok() {
  local f=$1
  hm_assert_json "$f" '.committed == true' "report"
  hm_assert_json "$f" '.verified == true' "report"
  hm_assert_json "$f" '(.error // "") == ""' "report of a committed migration carries no error"
  hm_assert_json "$f" '(.rounds | type) == "number" and .rounds >= 1' "report"
  hm_assert_json "$f" '(.page_size | type) == "number" and .page_size > 0' "report"
  hm_assert_json "$f" '(.pages_total | type) == "number" and .pages_total > 0' "report"
  hm_assert_json "$f" '[.missing_pages, .modified_pages, .final_delta_pages] | all(type == "number" and . >= 0)' "report"
  hm_assert_json "$f" '.final_delta_pages <= .pages_total' "report"
  # The final delta is (pages the destination missed) ∪ (pages modified since they were sent).
  hm_assert_json "$f" '.final_delta_pages >= ([.missing_pages, .modified_pages] | max) and .final_delta_pages <= .missing_pages + .modified_pages' "report (final delta = missing ∪ modified)"
  hm_assert_json "$f" '[.total_ms, .downtime_ms, .throughput_gbps] | all(type == "number" and . >= 0)' "report"
  hm_assert_json "$f" '.downtime_ms <= .total_ms' "report"
  hm_assert_json "$f" '(.bulk.transport | type) == "string" and (.bulk.bytes | type) == "number" and (.bulk.datagrams | type) == "number"' "report"
  hm_assert_json "$f" '(.reliable.transport | type) == "string" and (.reliable.bytes | type) == "number" and .reliable.bytes > 0' "report"
}

# hm_start_writer FILE PAGES_PER_SEC [WORKING_SET_PAGES]: starts the test writer; sets HM_WRITER_PID.
hm_start_writer() {
  local args=(--file "$1" --pages-per-sec "$2" --seed "$RANDOM")
  [ -n "${3:-}" ] && args+=(--working-set-pages "$3")
  touch "$HM_TMP/writer.log"
  "$HYMIG_TEST_WRITER" "${args[@]}" 2>>"$HM_TMP/writer.log" &
  HM_WRITER_PID=$!
  hm_track_pid "$HM_WRITER_PID"
  # It must be up and writing (not dead on a usage error) before the migration starts.
  hm_wait_for 10 grep -q "pid $HM_WRITER_PID writing" "$HM_TMP/writer.log" ||
    hm_fail "test writer did not start: $(cat "$HM_TMP/writer.log")"
  hm_alive "$HM_WRITER_PID" || hm_fail "test writer died: $(cat "$HM_TMP/writer.log")"
}

# hm_assert_writer_killed_by_handover PID: after a commit hymig SIGKILLs the paused workload.
hm_assert_writer_killed_by_handover() {
  local pid=$1
  hm_wait_pid "$pid" 10
  [ "$HM_RC" -ne 124 ] || hm_fail "writer pid $pid still exists after a committed migration (state $(hm_proc_state "$pid")); the contract says hymig SIGKILLs it on commit"
  [ "$HM_RC" -eq 137 ] || hm_fail "writer pid $pid ended with status $HM_RC, expected 137 (SIGKILL from hymig at commit)"
}

# hm_assert_writer_resumed PID: after a failed migration the workload runs on (not stopped, not dead).
hm_assert_writer_resumed() {
  local pid=$1 st
  st=$(hm_proc_state "$pid")
  [ -n "$st" ] && [ "$st" != Z ] || { hm_wait_pid "$pid" 1; hm_fail "writer pid $pid is gone after a FAILED migration (status $HM_RC): the source workload must survive"; }
  # hymig may still be on its way out when migrate exits; give SIGCONT a moment, bounded.
  if [ "$st" = T ] || [ "$st" = t ]; then
    hm_wait_for 5 hm__not_stopped "$pid" || hm_fail "writer pid $pid is still stopped (state $(hm_proc_state "$pid")) after a failed migration: hymig did not SIGCONT it"
  fi
  # And it really runs: its loop sleeps 1 ms per pass, so its voluntary context switches grow.
  local before
  before=$(hm__ctxt "$pid")
  hm_wait_for 10 hm__ctxt_grew "$pid" "$before" ||
    hm_fail "writer pid $pid is not stopped (state $(hm_proc_state "$pid")) but makes no progress in 10 s"
  hm_log "writer pid $pid running again (state $(hm_proc_state "$pid"))"
}
hm__ctxt() { awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$1/status" 2>/dev/null; }
hm__ctxt_grew() { local now; now=$(hm__ctxt "$1"); [ -n "$now" ] && [ "$now" -gt "$2" ]; }
hm__not_stopped() { local s; s=$(hm_proc_state "$1"); [ -n "$s" ] && [ "$s" != T ] && [ "$s" != t ]; }

# hm_migrate OUT ERR ARGS...: runs `$HYMIG migrate ARGS` in the background; sets HM_MIGRATE_PID.
# A prefix command may be given in the array HM_MIGRATE_PREFIX.
hm_migrate_bg() {
  local out=$1 err=$2
  shift 2
  "${HM_MIGRATE_PREFIX[@]}" "$HYMIG" migrate "$@" >"$out" 2>"$err" &
  HM_MIGRATE_PID=$!
  hm_track_pid "$HM_MIGRATE_PID"
}

# hm_migrate_run SEC OUT ERR ARGS...: runs migrate and waits at most SEC seconds; sets HM_RC.
hm_migrate_run() {
  local limit=$1
  shift
  hm_migrate_bg "$@"
  hm_wait_pid "$HM_MIGRATE_PID" "$limit"
  if [ "$HM_RC" -eq 124 ]; then
    kill -KILL "$HM_MIGRATE_PID" 2>/dev/null
    hm_fail "hymig migrate ${*:3} did not end within $limit s; stderr: $(tail -c 3000 "$3")"
  fi
}

# hm_assert_committed RC OUT ERR WHAT: exit 0 and a report that says committed + verified.
hm_assert_committed() {
  local rc=$1 out=$2 err=$3 what=$4
  [ "$rc" -eq 0 ] || hm_fail "$what: hymig migrate exited $rc, expected 0; stderr: $(tail -c 3000 "$err"); stdout: $(head -c 3000 "$out")"
  hm_assert_report_ok "$out"
}

# hm_assert_failed_cleanly RC ERR WHAT: exit 1 (failed, source intact) and one error line.
hm_assert_failed_cleanly() {
  local rc=$1 err=$2 what=$3
  [ "$rc" -ne 124 ] || hm_fail "$what: hymig migrate did not end in the bounded wait"
  [ "$rc" -ne 0 ] || hm_fail "$what: hymig migrate exited 0 although the migration could not complete; stderr: $(tail -c 2000 "$err")"
  [ "$rc" -eq 1 ] || hm_fail "$what: hymig migrate exited $rc, expected 1 (failed before commit: source resumed, destination discarded); stderr: $(tail -c 2000 "$err")"
  grep -q -E '^hymig migrate: error: .+' "$err" ||
    hm_fail "$what: no 'hymig migrate: error: <reason>' line on stderr: $(tail -c 2000 "$err")"
  hm_log "$what: migrate failed as expected: $(grep -m1 -E '^hymig migrate: error:' "$err")"
}

# hm_store_files DIR: lists every file under DIR (hidden ones too).
hm_store_files() { find "$1" -mindepth 1 -printf '%P\n' 2>/dev/null | sort; }
# hm_store_empty DIR: true when DIR holds nothing (for hm_wait_for: looked at anew at every poll).
hm_store_empty() { [ -z "$(hm_store_files "$1")" ]; }

# hm_wait_mid_transfer STORE PID [SEC_AFTER]: waits (at most 30 s) until the destination's partial
# file STORE/.*.part exists, i.e. pages are flowing, then SEC_AFTER (default 1) more seconds;
# fails if the migration PID ended meanwhile (too fast to be interrupted mid-round).
hm_wait_mid_transfer() {
  local store=$1 pid=$2 after=${3:-1}
  hm_wait_for 30 hm__has_part "$store" || hm_fail "no .part file appeared in $store within 30 s (files: $(hm_store_files "$store" | tr '\n' ' '))"
  hm_sleep "$after"
  hm_alive "$pid" || hm_fail "the migration (pid $pid) ended before it could be interrupted mid-round"
}
hm__has_part() { compgen -G "$1/.*.part" >/dev/null; }

# hm_migrate_mid_round OUT ERR STORE SPEC [ARGS...]: a slow (20M) migration of SPEC to
# $HM_SERVE_ADDR in the background (HM_MIGRATE_PID), returned from once its pages are landing in
# STORE: the moment the fault tests strike "mid-round".
hm_migrate_mid_round() {
  local out=$1 err=$2 store=$3 spec=$4
  shift 4
  hm_migrate_bg "$out" "$err" --image "$spec" --to "$HM_SERVE_ADDR" --bulk udp --rate 20M --timeout 3 --report json "$@"
  hm_wait_mid_transfer "$store" "$HM_MIGRATE_PID" 1
}

# hm_kill PID: SIGKILL, then reap it (at most 10 s; sets HM_RC).
hm_kill() {
  kill -KILL "$1" 2>/dev/null
  hm_wait_pid "$1" 10
}

# hm_stopped PID: the process is stopped (SIGSTOP), as hymig leaves a writer while paused.
hm_stopped() { local s; s=$(hm_proc_state "$1"); [ "$s" = T ] || [ "$s" = t ]; }

# hm_wait_writer_paused SEC: waits until hymig paused the writer ($HM_WRITER_PID) or the migration
# ($HM_MIGRATE_PID) ended; false after SEC seconds.
hm_wait_writer_paused() { hm_wait_for "$1" hm__paused_or_ended; }
hm__paused_or_ended() { [ "$(hm_proc_state "$HM_WRITER_PID")" = T ] || ! kill -0 "$HM_MIGRATE_PID" 2>/dev/null; }

# hm_store_setup: the source and store folders every migration test uses; sets `store` and `log`.
hm_store_setup() {
  mkdir -p "$HM_TMP/src" "$HM_TMP/store"
  store=$HM_TMP/store
  log=$HM_TMP/serve.log
}

# hm_serve_across_netlab TIMEOUT: after netlab_up, starts serve in the destination namespace and
# points migrations at it from the source namespace; sets `serve_pid` (and `store`, `log`).
hm_serve_across_netlab() {
  hm_store_setup
  HM_SERVE_PREFIX=(ip netns exec "$NETLAB_NS_DST")
  HM_MIGRATE_PREFIX=(ip netns exec "$NETLAB_NS_SRC")
  hm_start_serve "$log" --listen "$NETLAB_ADDR_DST:0" --store "$store" --timeout "$1"
  serve_pid=$HM_SERVE_PID
}
