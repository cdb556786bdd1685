#!/bin/sh
# faults [TRANSPORT...]: a peer killed mid-stream over RDMA. For each transport (default ud+rc and
# rc: --bulk tcp --reliable rc), two checks:
#   dest-killed   `hymig serve` is SIGKILLed while pages stream: `hymig migrate` must end with exit 1
#                 and a failed report naming an error within its --timeout (never hang), and its
#                 image must have run on (the report says the source resumed: outcome failed).
#   source-killed `hymig migrate` is SIGKILLed while pages stream: `serve --once` must end with exit 1,
#                 log the aborted session, and leave nothing in its store.
# Each run waits until rxe0 has sent packets of the session before killing, so the fault lands
# mid-stream, not during the handshake.
. /lab/lib.sh

HYMIG=/usr/bin/hymig
JQ=/usr/bin/jq
transports=${*:-"ud+rc rc"}
port=7600

flags_of() {
  case $1 in
    ud+rc) echo "--bulk ud --reliable rc" ;;
    rc) echo "--bulk tcp --reliable rc" ;;
    *) return 1 ;;
  esac
}

# started_streaming R0: rxe0 sent at least 2000 packets since R0 (pages, not just the handshake).
started_streaming() { [ $(($(rxe_count rxe0 sent_pkts) - $1)) -ge 2000 ]; }

for tr in $transports; do
  flags=$(flags_of "$tr") || { result "faults-$tr" 1 "unknown transport '$tr'"; continue; }

  # --- the destination dies ---
  check=dest-killed-$tr port=$((port + 1))
  rm -rf /tmp/store && mkdir -p /tmp/store
  $HYMIG serve --listen "$LAB_DST:$port" --once --allow-synthetic --store /tmp/store --timeout 30 >/tmp/$check.srv 2>&1 &
  srv=$!
  lab_wait_for 20 grep -q 'listening on' /tmp/$check.srv
  r0=$(rxe_count rxe0 sent_pkts)
  start=$(lab_uptime)
  # shellcheck disable=SC2086
  timeout 120 $HYMIG migrate --image synthetic:size=64M,dirty-rate=4M,working-set=8M --to "$LAB_DST:$port" \
    --bind "$LAB_SRC" $flags --rate 2M --timeout 5 --report json --progress off >/tmp/$check.json 2>/tmp/$check.cli &
  cli=$!
  why=""
  if lab_wait_for 60 started_streaming "$r0"; then
    kill -KILL "$srv"
  else
    why="no pages streamed within 60 s;"
    kill -KILL "$srv" 2>/dev/null
  fi
  wait "$srv" 2>/dev/null
  wait "$cli"
  rc=$?
  lab_show /tmp/$check.cli "$check: migrate's stderr"
  lab_show /tmp/$check.json "$check: report"
  [ "$rc" = 1 ] || why="$why hymig migrate exited $rc, expected 1$( [ "$rc" = 124 ] && echo ' (hung: killed after 120 s)');"
  problems=$($JQ -r '[ (if .outcome != "failed" then "outcome \(.outcome)" else empty end),
                       ((.error // "") | if . == "" then "no error in the report" else empty end) ] | join("; ")' \
    /tmp/$check.json 2>&1) || problems="the report is not JSON: $problems"
  [ -z "$problems" ] || why="$why $problems;"
  info "$check: migrate ended $(lab_elapsed "$start") s after it started; $(grep -m1 error /tmp/$check.cli)"
  if [ -z "$why" ]; then pass "$check"; else result "$check" 1 "$why"; fi

  # --- the source dies ---
  check=source-killed-$tr port=$((port + 1))
  rm -rf /tmp/store && mkdir -p /tmp/store
  $HYMIG serve --listen "$LAB_DST:$port" --once --allow-synthetic --store /tmp/store --timeout 5 >/tmp/$check.srv 2>&1 &
  srv=$!
  lab_wait_for 20 grep -q 'listening on' /tmp/$check.srv
  r0=$(rxe_count rxe0 sent_pkts)
  # A file image, so that a partial copy in the store would show.
  img=/dev/shm/$check.img
  dd if=/dev/urandom of="$img" bs=1M count=64 2>/dev/null
  # shellcheck disable=SC2086
  $HYMIG migrate --image "file:$img" --to "$LAB_DST:$port" --bind "$LAB_SRC" $flags --rate 2M --timeout 5 \
    --report none --progress off >/tmp/$check.cli 2>&1 &
  cli=$!
  why=""
  if lab_wait_for 60 started_streaming "$r0"; then
    kill -KILL "$cli"
  else
    why="no pages streamed within 60 s;"
    kill -KILL "$cli" 2>/dev/null
  fi
  wait "$cli" 2>/dev/null
  start=$(lab_uptime)
  if lab_wait_for 90 pair__ended "$srv"; then
    wait "$srv"
    rc=$?
    [ "$rc" = 1 ] || why="$why serve --once exited $rc, expected 1;"
  else
    why="$why serve --once still runs 90 s after its source died (hung);"
    kill -KILL "$srv" 2>/dev/null
    wait "$srv" 2>/dev/null
  fi
  lab_show /tmp/$check.srv "$check: serve's log"
  grep -q -E 'session [0-9a-f]+: aborted' /tmp/$check.srv || why="$why serve logged no aborted session;"
  left=$(ls -A /tmp/store)
  [ -z "$left" ] || why="$why the store still holds: $left;"
  rm -f "$img"
  info "$check: serve ended $(lab_elapsed "$start") s after the source died"
  if [ -z "$why" ]; then pass "$check"; else result "$check" 1 "$why"; fi
done
