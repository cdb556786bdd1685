#!/usr/bin/env bash
# fault_matrix FAULT [--synthetic] [PHASE...]: the fault matrix of docs/operations.md ("Faults"), one
# row (FAULT) over the phases given (default: all), on a file image dirtied by a writer process
# (pause-pid) migrated between two namespaces (netlab), or with --synthetic on a synthetic image
# dirtied inside the source process (no writer, nothing stored: the daemon's log and migrate's exit
# tell the outcome). Each cell strikes at exactly its phase: the process
# named by the cell stops itself there (HYMIG_STOP_AT=ROLE:POINT, protocol/stop_point.hpp), the
# test applies the fault, then lets it go on. Per cell it asserts the documented outcome:
#   failed        migrate exits 1 with an error line; the writer runs again; the store holds
#                 neither the image nor a partial file once the daemon gave up; the daemon lives
#   unknown       migrate exits 3 (commit sent, unconfirmed): the writer stays stopped; the image
#                 is committed at the destination (unknown:committed) or the store holds nothing
#                 of it (unknown:absent, the source resumable: the test resumes it)
#   committed     migrate exits 0; the stored image equals the source; the writer was handed over
#   dropped       (source killed) the daemon drops the session and keeps nothing; the writer runs
#                 (dropped:running) or stays paused, resumable (dropped:paused: the test resumes it)
#   dst-committed (source killed after commit) the image is committed at the destination and the
#                 writer stays paused: the workload runs on exactly one host
# After a destination kill the restarted daemon must remove the partial file the dead one left.
# Faults: source-killed destination-killed link-cut destination-stalled source-stalled disk-full.
# Phases: connect notify round0 round1 final-delta verify commit.
set -u -o pipefail
HM_TEST_NAME=fault_matrix
source "$(dirname "$0")/../lib/netlab.sh"
hm_require_tools
netlab_require
hm_deadline 280
hm_tmpdir

fault=${1:-}
shift || true
kind="file"
if [ "${1:-}" = --synthetic ]; then kind=synthetic; shift; fi
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(connect notify round0 round1 final-delta verify commit)
case $fault in
  source-killed | destination-killed | link-cut | destination-stalled | source-stalled | disk-full) ;;
  *) hm_fail "unknown fault '$fault'" ;;
esac
# A synthetic image is held in memory at the destination: a full disk cannot touch it.
[ "$kind:$fault" != synthetic:disk-full ] || hm_fail "disk-full does not apply to synthetic images (docs/operations.md)"

TIMEOUT=2  # both sides' --timeout (and the daemon's --handshake-timeout)

# expected FAULT PHASE: the outcome docs/operations.md documents for the cell.
expected() {
  case $1:$2 in
    source-killed:connect | source-killed:notify | source-killed:round0 | source-killed:round1) echo dropped:running ;;
    source-killed:final-delta | source-killed:verify) echo dropped:paused ;;
    source-killed:commit) echo dst-committed ;;
    destination-killed:commit) echo unknown:absent ;;
    link-cut:commit) echo unknown:committed ;;
    destination-stalled:commit) echo unknown:committed ;;
    source-stalled:commit) echo committed ;;
    disk-full:connect) echo failed ;;
    disk-full:*) echo committed ;;
    *) echo failed ;;
  esac
}

# Who stops at the phase: the source, except where the destination's own point is the moment:
# verifying (the digest taken, the answer not yet sent: had it been sent, the source would already
# be committing), its commit taken but not acted on, its space reserved and ready sent.
stopper_of() {
  case $1:$2 in
    destination-killed:verify | link-cut:verify | destination-stalled:verify) echo destination:verify ;;
    destination-killed:commit | destination-stalled:commit | link-cut:commit) echo destination:commit ;;
    disk-full:notify) echo destination:ready ;;
    *) echo "source:$2" ;;
  esac
}

netlab_up 1500
mkdir -p "$HM_TMP/src" "$HM_TMP/disk"
# The store on a file system of its own (a 96 MiB tmpfs) that the disk-full row can fill.
mount -t tmpfs -o size=96m hymig-fault-matrix "$HM_TMP/disk" || hm_fail "cannot mount a tmpfs for the store"
hm_on_exit "umount -l '$HM_TMP/disk'"
store=$HM_TMP/disk/store
mkdir -p "$store"
log=$HM_TMP/serve.log
HM_MIGRATE_PREFIX=(ip netns exec "$NETLAB_NS_SRC")

# start_daemon [STOP_AT]: (re)starts the daemon in the destination namespace.
start_daemon() {
  local extra=()
  [ "$kind" = synthetic ] && extra=(--allow-synthetic)
  HM_SERVE_PREFIX=(ip netns exec "$NETLAB_NS_DST" env "HYMIG_STOP_AT=${1:-}")
  hm_start_serve "$log" --listen "$NETLAB_ADDR_DST:0" --store "$store" --timeout "$TIMEOUT" --handshake-timeout "$TIMEOUT" "${extra[@]}"
  serve_pid=$HM_SERVE_PID
}

# A session is over at the daemon: no partial file any more (it discarded it) or the image committed.
no_partial() { ! compgen -G "$store/.*.part" >/dev/null; }
# The daemon's log says the session committed (a synthetic image leaves nothing else behind).
daemon_committed() { grep -q -E 'session [0-9a-f]+: committed' "$log"; }
writer_running() { local s; s=$(hm_proc_state "$1"); [ -n "$s" ] && [ "$s" != T ] && [ "$s" != t ] && [ "$s" != Z ]; }

cell() {
  local phase=$1 want stop_at who name img err out
  want=$(expected "$fault" "$phase")
  stop_at=$(stopper_of "$fault" "$phase")
  who=${stop_at%%:*}
  name="$fault-$phase"
  img=$HM_TMP/src/$name.bin
  out=$HM_TMP/$name.json
  err=$HM_TMP/$name.err
  hm_log "cell $name: stop at $stop_at, expect $want"

  if [ "$who" = destination ]; then start_daemon "$stop_at"; else start_daemon; fi
  local writer="" spec src_env=()
  if [ "$kind" = file ]; then
    "$HYMIG_TEST_WRITER" --create "$img" --size 16M --seed 7 2>/dev/null || hm_fail "$name: cannot create the image"
    hm_start_writer "$img" 4000
    writer=$HM_WRITER_PID
    spec="file:$img,pause-pid=$writer"
  else
    # The same size and dirty rate as the file image's writer (4000 pages/s), inside the source.
    spec="synthetic:size=16M,dirty-rate=16M,seed=7"
  fi
  [ "$who" = source ] && src_env=(env "HYMIG_STOP_AT=$stop_at")
  HM_MIGRATE_PREFIX=(ip netns exec "$NETLAB_NS_SRC" "${src_env[@]}")
  hm_migrate_bg "$out" "$err" --image "$spec" --to "$HM_SERVE_ADDR" --bulk udp --rate 200M \
    --timeout "$TIMEOUT" --downtime-ms 1 --max-rounds 3 --report json
  local migrate=$HM_MIGRATE_PID stopped_pid=$HM_MIGRATE_PID
  [ "$who" = destination ] && stopped_pid=$serve_pid
  hm_wait_for 30 hm_stopped "$stopped_pid" ||
    hm_fail "$name: the $who never stopped at $stop_at (migrate: $(tail -c 600 "$err"); serve: $(tail -n 5 "$log"))"

  # The fault, at the phase.
  case $fault in
    source-killed) hm_kill "$migrate" ;;
    destination-killed) hm_kill "$serve_pid" ;;
    link-cut) netlab_cut ;;
    destination-stalled) kill -STOP "$serve_pid" ;;
    source-stalled) ;;  # the stop itself is the stall
    disk-full) fallocate -l "$(df --output=avail -B1 "$HM_TMP/disk" | tail -n1)" "$HM_TMP/disk/filler" 2>/dev/null ||
                 hm_fail "$name: cannot fill the store's file system" ;;
  esac
  # The rest of the session.
  case $fault in
    source-killed) ;;
    source-stalled)
      # A stall longer than the daemon's --timeout: it gives up (or, after commit, finishes) first.
      hm_sleep $((TIMEOUT + 2))
      hm_wait_for 20 no_partial || hm_fail "$name: the daemon kept the partial image past its --timeout: $(tail -n 5 "$log")"
      kill -CONT "$migrate" ;;
    destination-stalled)
      [ "$who" = source ] && kill -CONT "$migrate"
      # Longer than the source's longest wait: it gives `ready` 30 s (a destination may be
      # starting a VM). Stopped before it answered notify, the daemon is woken only after the
      # source gave up; waking it at 30 s raced that deadline and let the session complete.
      hm_wait_pid "$migrate" 40
      kill -CONT "$serve_pid" ;;
    *) kill -CONT "$stopped_pid" 2>/dev/null ;;
  esac
  local rc=137
  if [ "$fault" != source-killed ]; then
    hm_wait_pid "$migrate" 30
    rc=$HM_RC
    [ "$rc" -ne 124 ] || hm_fail "$name: migrate did not end within 30 s: $(tail -c 600 "$err")"
  fi
  [ "$fault" = link-cut ] && netlab_uncut
  [ "$fault" = disk-full ] && rm -f "$HM_TMP/disk/filler"

  # The outcome.
  if [ "$kind" = file ]; then
    file_outcome
  else
    synthetic_outcome
  fi
  hm_alive "$serve_pid" || hm_fail "$name: the daemon died: $(tail -n 5 "$log")"
  [ -n "$writer" ] && hm_kill "$writer"
  rm -f "$store/$name.bin"
  kill -TERM "$serve_pid"
  hm_wait_pid "$serve_pid" 10
  hm_log "cell $name: $want (exit $rc)"
}

# restart_after_kill: a killed daemon is restarted, and removes what the dead one left.
restart_after_kill() {
  [ "$fault" = destination-killed ] || return 0
  start_daemon
  hm_wait_for 5 no_partial || hm_fail "$name: the restarted daemon left the dead one's partial file: $(hm_store_files "$store" | tr '\n' ' ')"
  if [ "$kind" = file ] && [ "$phase" != connect ]; then
    grep -q "removed the partial image" "$log" || hm_fail "$name: the restarted daemon did not say it removed the partial image: $(tail -n 5 "$log")"
  fi
}

# file_outcome: the cell's outcome for a file image (variables of cell()).
file_outcome() {
  case $want in
    failed)
      hm_assert_failed_cleanly "$rc" "$err" "$name"
      hm_assert_writer_resumed "$writer" ;;
    unknown:*)
      assert_unconfirmed
      hm_stopped "$writer" || hm_fail "$name: the writer runs (state $(hm_proc_state "$writer")) although the commit may have landed" ;;
    committed)
      hm_assert_committed "$rc" "$out" "$err" "$name"
      hm_assert_writer_killed_by_handover "$writer" ;;
    dropped:*)
      if [ "$want" = dropped:running ]; then
        writer_running "$writer" || hm_fail "$name: the writer is not running (state $(hm_proc_state "$writer")): the source never paused"
      else
        hm_stopped "$writer" || hm_fail "$name: the writer is not paused (state $(hm_proc_state "$writer")) after the source died paused"
      fi ;;
    dst-committed)
      hm_stopped "$writer" || hm_fail "$name: the writer runs (state $(hm_proc_state "$writer")) although the destination committed" ;;
  esac

  restart_after_kill
  hm_wait_for $((TIMEOUT + 10)) no_partial || hm_fail "$name: a partial image is still in the store: $(hm_store_files "$store" | tr '\n' ' ')"
  case $want in
    committed | unknown:committed | dst-committed)
      hm_wait_for 10 test -e "$store/$name.bin" || hm_fail "$name: the image is not in the store: $(hm_store_files "$store" | tr '\n' ' '); serve: $(tail -n 5 "$log")"
      cmp -s "$img" "$store/$name.bin" || hm_fail "$name: the stored image differs from the (paused) source" ;;
    *)
      [ -e "$store/$name.bin" ] && hm_fail "$name: the image is in the store although the migration did not commit"
      ;;
  esac

  # Whatever stayed paused for the operator is resumable: resume it, as the operator would when
  # the destination holds nothing.
  case $want in
    unknown:absent | dropped:paused)
      kill -CONT "$writer"
      hm_assert_writer_resumed "$writer" ;;
  esac
}

# synthetic_outcome: the cell's outcome for a synthetic image. Its pages live in the source process
# and, at the destination, in the daemon's memory until verified: migrate's exit code and the
# daemon's log say where it ended, and the store must stay untouched throughout.
synthetic_outcome() {
  case $want in
    failed) hm_assert_failed_cleanly "$rc" "$err" "$name" ;;
    unknown:*) assert_unconfirmed ;;
    committed) hm_assert_committed "$rc" "$out" "$err" "$name" ;;
  esac
  case $want in
    committed | unknown:committed | dst-committed)
      hm_wait_for 10 daemon_committed || hm_fail "$name: the daemon did not log the commit: $(tail -n 5 "$log")" ;;
    *)
      # Given the daemon's --timeout to give the session up, it must not have committed it.
      [ "$fault" = destination-killed ] || hm_wait_for $((TIMEOUT + 10)) session_over ||
        hm_fail "$name: the daemon did not end the session: $(tail -n 5 "$log")"
      daemon_committed && hm_fail "$name: the daemon committed an image whose migration did not commit: $(tail -n 5 "$log")"
      ;;
  esac
  restart_after_kill
  hm_store_empty "$store" || hm_fail "$name: a synthetic migration left '$(hm_store_files "$store" | tr '\n' ' ')' in the store"
}

# assert_unconfirmed: exit 3 and the documented message (commit sent, its answer never came).
assert_unconfirmed() {
  [ "$rc" -eq 3 ] || hm_fail "$name: migrate exited $rc, expected 3 (commit sent, unconfirmed): $(tail -c 600 "$err")"
  grep -q "commit sent but not confirmed" "$err" || hm_fail "$name: no 'commit sent but not confirmed' on stderr: $(tail -c 600 "$err")"
}

# session_over: the daemon has no session coming in (it ended this one, or never began it).
session_over() {
  ip netns exec "$NETLAB_NS_SRC" "$HYMIG" status "$HM_SERVE_ADDR" --json 2>/dev/null | jq -e '(.incoming | length) == 0' >/dev/null
}

for p in "${phases[@]}"; do cell "$p"; done

# Nothing left behind: the store is empty and the daemon, restarted, serves a migration.
start_daemon
hm_store_empty "$store" || hm_fail "the store holds '$(hm_store_files "$store" | tr '\n' ' ')' after the row"
"$HYMIG_TEST_WRITER" --create "$HM_TMP/src/after.bin" --size 4M --seed 9 2>/dev/null
HM_MIGRATE_PREFIX=(ip netns exec "$NETLAB_NS_SRC")
hm_migrate_run 60 "$HM_TMP/after.json" "$HM_TMP/after.err" --image "file:$HM_TMP/src/after.bin" --to "$HM_SERVE_ADDR" --report json
hm_assert_committed "$HM_RC" "$HM_TMP/after.json" "$HM_TMP/after.err" "a migration after the row"
hm_log "row $fault: ${#phases[@]} cells as documented"
exit 0
