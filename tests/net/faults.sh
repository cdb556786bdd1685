#!/usr/bin/env bash
# Faults mid-migration. The source must survive every one: the command fails with a clear message
# within a bounded time, the writer runs on, the source file is untouched by hymig, and the
# destination keeps nothing under the final name.
#   faults.sh receiver-killed | sender-killed | link-cut
source "$(dirname "$0")/lib.sh"
case=$1
src_exec="" dst_exec="" addr=127.0.0.1
if [ "$case" = link-cut ]; then
  need_root_netns
  netns_up 1500
  src_exec=$IN_SRC dst_exec=$IN_DST addr=$ADDR_DST
fi
img=$(make_image guest.ram 256M)
mkdir -p "$WORK/store"
start_serve "$dst_exec" "$addr" --store "$WORK/store"
start_writer "$img" 200

# 20 MiB/s: the first round lasts ~13 s, so the fault lands mid-round.
$src_exec "$HYMIG" migrate --image "file:$img,pause-pid=$WRITER_PID" --to "$SERVE_ADDR" --rate 20M --timeout 3 \
  --report json --progress off >"$WORK/report.json" 2>"$WORK/migrate.err" &
mig=$!
PIDS+=("$mig")
sleep 1.5
case $case in
  receiver-killed) kill -9 "$SERVE_PID" ;;
  sender-killed) kill -9 "$mig" ;;
  link-cut) netns_cut ;;
esac

st=0
wait_pid "$mig" 60 || st=$?
if [ "$case" = sender-killed ]; then
  # The daemon notices (silence past --timeout), discards, and serves the next source.
  for _ in $(seq 100); do grep -q "aborted" "$WORK/serve.log" && break; sleep 0.1; done
  grep -q "aborted" "$WORK/serve.log" || fail "serve did not log the aborted session"
  [ -z "$(ls -A "$WORK/store")" ] || fail "store not empty after abort: $(ls -A "$WORK/store")"
  kill -CONT "$WRITER_PID"
  small=$(make_image second.ram 8M)
  "$HYMIG" migrate --image "file:$small" --to "$SERVE_ADDR" --report json --progress off >"$WORK/second.json" ||
    fail "second migration failed: $(cat "$WORK/second.json")"
  cmp "$small" "$WORK/store/second.ram" || fail "second image differs"
  echo "PASS"
  exit 0
fi
[ "$st" -ne 0 ] || fail "migrate succeeded although the $case"
[ "$st" -eq 1 ] || fail "migrate exited $st, expected 1 (failed, source resumed)"
grep -q "hymig migrate: error:" "$WORK/migrate.err" || fail "no error line: $(cat "$WORK/migrate.err")"
note "error: $(cat "$WORK/migrate.err")"
[ "$(json "$WORK/report.json" .committed)" = false ] || fail "report says committed"
kill -0 "$WRITER_PID" || fail "the writer died"
[ "$(proc_state "$WRITER_PID")" != T ] || fail "the writer was left stopped"
[ ! -e "$WORK/store/guest.ram" ] || fail "the destination kept the image under its final name"
echo "PASS"
