#!/bin/sh
# migrate [ROW...]: real migrations between the lab's two sides: `hymig serve --once` on 10.9.0.2
# (veth1, rxe1) and `hymig migrate --bind 10.9.0.1` (veth0, rxe0), the path crossing the veth pair.
#
# ROW is TRANSPORT:LOSS (default: every one of them):
#   TRANSPORT  udp+tcp  --bulk udp --reliable tcp   UDP page stream, TCP control + final delta
#              tcp      --bulk tcp --reliable tcp   everything over TCP (the baseline)
#              ud+rc    --bulk ud --reliable rc     RoCE UD page stream, RDMA RC control + final delta
#              ud+tcp   --bulk ud --reliable tcp    RoCE UD page stream, TCP control + final delta (mixed)
#              rc       --bulk rc, or where --bulk has no rc: --bulk tcp --reliable rc
#                                                   everything over the reliable channel, RDMA RC
#              udp+tcp-file  as udp+tcp, but a file image dirtied by hymig-test-writer, and the
#                            stored copy compared with `cmp` (a check independent of hymig's digest)
#   LOSS       loss0    no impairment
#              loss5    netem loss 5% delay 1ms on veth0's egress (source -> destination)
#   A TRANSPORT may end in /send or /write (e.g. ud+rc/send:loss5): the final delta's method
#   (migrate --final-delta), checked against the report's final_delta.method.
#
# Each row is one check: migrate exits 0; the JSON report says committed, verified (hymig's digest of
# the whole image matched on both sides: the destination equals the source byte for byte), a 32 MiB
# image, pages modified while it moved (the image was dirtied), the transports of the row; serve
# logs the commit and exits 0; the bytes crossed the veth (UDP/TCP) or rxe0 (RDMA) and, under loss,
# netem really dropped packets. Every row runs: one this build cannot run fails with the reason.
# Each migration's throughput (image bytes / total seconds of the report) is printed as
# LAB-FIGURE TRANSPORT LOSS MB/s.
. /lab/lib.sh

SIZE=$((32 << 20))
SPEC="synthetic:size=32M,dirty-rate=8M,working-set=8M"
MIGRATE_TIMEOUT=${MIGRATE_TIMEOUT:-240}
rows=$*
[ -n "$rows" ] || rows="udp+tcp:loss0 tcp:loss0 ud+rc:loss0 ud+tcp:loss0 rc:loss0 udp+tcp-file:loss0 udp+tcp:loss5 tcp:loss5 ud+rc:loss5 rc:loss5 udp+tcp-file:loss5"

# need_flags ROW: sets FLAGS (the row's transport options) and BULK_RE/REL_RE (what the report must
# name); returns 2 for a row name it does not know. Every row runs: a transport this build lacks is
# a failure, not a skip.
need_flags() {
  case $1 in
    udp+tcp | udp+tcp-file) FLAGS="--bulk udp --reliable tcp" BULK_RE='^udp$' REL_RE='^tcp$' ;;
    tcp) FLAGS="--bulk tcp --reliable tcp" BULK_RE='^tcp$' REL_RE='^tcp$' ;;
    ud+rc) FLAGS="--bulk ud --reliable rc" BULK_RE='^(rdma[_-]?)?ud$' REL_RE='^(rdma[_-]?)?rc$' ;;
    ud+tcp) FLAGS="--bulk ud --reliable tcp" BULK_RE='^(rdma[_-]?)?ud$' REL_RE='^tcp$' ;;
    rc) FLAGS="--bulk tcp --reliable rc" BULK_RE='^tcp$' REL_RE='^(rdma[_-]?)?rc$' ;;
    *) WHY="unknown transport '$1'"; return 2 ;;
  esac
  return 0
}

port=7470
for row in $rows; do
  tr=${row%%:*} loss=${row#*:}
  method=""
  case $tr in */send | */write) method=${tr##*/} tr=${tr%/*} ;; esac
  check=migrate-$tr${method:+-$method}-$loss
  port=$((port + 1))
  need_flags "$tr" || { result "$check" 1 "$WHY"; continue; }
  case $loss in
    loss0) netem_off ;;
    loss5) netem loss 5% delay 1ms || { result "$check" 1 "tc qdisc add dev veth0 root netem loss 5% delay 1ms failed"; continue; } ;;
    *) result "$check" 1 "unknown loss '$loss'"; continue ;;
  esac

  image=$SPEC,seed=$port writer_pid="" img=""
  rm -rf /tmp/store && mkdir -p /tmp/store
  if [ "$tr" = udp+tcp-file ]; then
    img=/dev/shm/$check.img
    if [ ! -x /usr/bin/hymig-test-writer ]; then result "$check" 1 "no hymig-test-writer in the image"; continue; fi
    /usr/bin/hymig-test-writer --create "$img" --size "$SIZE" --seed "$port" --zero-fraction 0.05 2>/tmp/writer.log ||
      { result "$check" 1 "hymig-test-writer --create failed: $(cat /tmp/writer.log)"; continue; }
    /usr/bin/hymig-test-writer --file "$img" --pages-per-sec 2000 --working-set-pages 2048 --seed "$port" 2>>/tmp/writer.log &
    writer_pid=$!
    lab_wait_for 20 grep -q "pid $writer_pid writing" /tmp/writer.log ||
      { result "$check" 1 "hymig-test-writer did not start: $(cat /tmp/writer.log)"; kill -KILL "$writer_pid" 2>/dev/null; continue; }
    image="file:$img,pause-pid=$writer_pid"
  fi

  d0=$(netem_drops) tx0=$(net_count veth0 tx_bytes) r0=$(rxe_count rxe0 sent_pkts)
  report=/tmp/$check.json
  PAIR_READY='listening on'
  # shellcheck disable=SC2086
  pair "$check" "$MIGRATE_TIMEOUT" \
    "$HYMIG serve --listen $LAB_DST:$port --once --allow-synthetic --store /tmp/store --timeout 30" \
    "$HYMIG migrate --image $image --to $LAB_DST:$port --bind $LAB_SRC $FLAGS ${method:+--final-delta $method} --report json --progress off --timeout 30 >$report"
  drops=$(($(netem_drops) - d0)) txb=$(($(net_count veth0 tx_bytes) - tx0)) rxe=$(($(rxe_count rxe0 sent_pkts) - r0))
  netem_off
  lab_show "$report" "$check: report"
  info "$check: veth0 tx_bytes +$txb, rxe0 sent_pkts +$rxe, netem dropped +$drops"

  why=""
  [ "$PAIR_CLI_RC" = 0 ] || why="$why hymig migrate exited $PAIR_CLI_RC$( [ "$PAIR_CLI_RC" = 124 ] || [ "$PAIR_CLI_RC" = 143 ] && echo " (killed after ${MIGRATE_TIMEOUT} s)"): $(grep -m1 'error' "$PAIR_CLI_OUT");"
  [ "$PAIR_SRV_RC" = 0 ] || why="$why hymig serve --once exited $PAIR_SRV_RC;"
  problems=$($JQ -r --arg bulk "$BULK_RE" --arg rel "$REL_RE" --argjson size "$SIZE" '
    [ (if .outcome != "committed" then "outcome \(.outcome)" else empty end),
      (if .committed != true then "committed \(.committed)" else empty end),
      (if .verified != true then "verified \(.verified): the digests of source and destination differ" else empty end),
      ((.error // "") | if . != "" then "error: \(.)" else empty end),
      (if .pages_total * .page_size != $size then "the image is \(.pages_total * .page_size) bytes, not \($size)" else empty end),
      (if (.modified_pages // 0) <= 0 then "no page modified while it moved: was it dirtied?" else empty end),
      (if (.bulk.transport // "" | test($bulk)) | not then "bulk.transport \(.bulk.transport), expected /\($bulk)/" else empty end),
      (if (.reliable.transport // "" | test($rel)) | not then "reliable.transport \(.reliable.transport), expected /\($rel)/" else empty end),
      (if (.total_ms // 0) <= 0 then "total_ms \(.total_ms)" else empty end)
    ] | join("; ")' "$report" 2>&1) || problems="the report is not JSON: $problems"
  [ -z "$problems" ] || why="$why $problems;"
  if [ -n "$method" ]; then
    got=$($JQ -r '.final_delta.method // "none"' "$report" 2>/dev/null)
    [ "$got" = "$method" ] || why="$why final_delta.method $got, expected $method ($($JQ -r '.final_delta.note // ""' "$report" 2>/dev/null));"
  fi
  grep -q -E "session [0-9a-f]+: committed [^ ]+ $SIZE bytes" "$PAIR_SRV_OUT" || why="$why serve logged no commit of $SIZE bytes;"
  case $tr in
    ud+rc | ud+tcp | rc) [ "$rxe" -ge $((SIZE / 4096)) ] || why="$why rxe0 sent only $rxe packets for a $SIZE-byte image: the pages did not go over RDMA;" ;;
    *) [ "$txb" -ge "$SIZE" ] || why="$why veth0 carried only $txb bytes for a $SIZE-byte image: the migration did not cross the veth;" ;;
  esac
  [ "$loss" = loss0 ] || [ "$drops" -gt 0 ] || why="$why netem dropped nothing: the loss scenario did not happen;"
  if [ -n "$img" ]; then
    lab_wait_for 10 pair__ended "$writer_pid" || { why="$why the writer (pid $writer_pid) still runs after the migration;"; kill -KILL "$writer_pid" 2>/dev/null; }
    wait "$writer_pid" 2>/dev/null
    stored=/tmp/store/$(basename "$img")
    if [ ! -f "$stored" ]; then why="$why no $stored on the destination;"
    elif ! cmp "$img" "$stored" >/dev/null 2>&1; then why="$why the stored image differs from the source (cmp);"
    fi
    rm -f "$img" "$stored"
  fi
  result "$check" "$([ -z "$why" ] && echo 0 || echo 1)" "$why"

  mbs=$($JQ -r 'if (.total_ms // 0) > 0 then (.image.bytes / (.total_ms / 1000) / 1000000 * 100 | floor / 100) else "n/a" end' "$report" 2>/dev/null)
  [ -n "$mbs" ] && [ "$PAIR_CLI_RC" = 0 ] && figure "$tr${method:+/$method}" "$loss" "$mbs"
  # The final delta alone: pages, milliseconds (missing report to final-end), MB/s, method.
  fd=$($JQ -r 'if .final_delta_pages > 0 and .downtime_parts.final_delta_ms > 0 then
      "\(.final_delta_pages) pages \(.downtime_parts.final_delta_ms * 10 | floor / 10) ms \(.final_delta_pages * .page_size / (.downtime_parts.final_delta_ms / 1000) / 1000000 * 100 | floor / 100) MB/s by \(.final_delta.method // "send")"
    else empty end' "$report" 2>/dev/null)
  [ -n "$fd" ] && [ "$PAIR_CLI_RC" = 0 ] && figure "final-delta:$tr${method:+/$method}" "$loss" "$fd"
  info "$check: $($JQ -c '{rounds, total_ms, downtime_ms, modified_pages, missing_pages, final_delta_pages, stop_reason, random_loss: .bulk.random_loss}' "$report" 2>/dev/null)"
done
counters migrate
exit 0
