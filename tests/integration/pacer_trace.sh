#!/usr/bin/env bash
# pacer_trace: `hymig migrate --trace-pacer FILE` over loopback UDP. Asserts: a FILE that cannot be
# opened is a usage error (exit 2) naming the option, before any session starts; two migrations
# append to one FILE under one header, each line has every column, a known phase and finite,
# non-negative rates, the sessions are told apart by their `start`, and the rows show the pacer
# at work (a rate set from the reports); both migrations commit.
set -u -o pipefail
HM_TEST_NAME=pacer_trace
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 200
hm_tmpdir
trace=$HM_TMP/trace.csv

mkdir -p "$HM_TMP/store"
hm_start_serve "$HM_TMP/serve.log" --listen 127.0.0.1:0 --store "$HM_TMP/store" --timeout 10 --allow-synthetic
out=$HM_TMP/report.json err=$HM_TMP/migrate.err

hm_migrate_run 60 "$out" "$err" --image synthetic:size=64M --to "$HM_SERVE_ADDR" --bind 127.0.0.1 --bulk udp \
  --trace-pacer "$HM_TMP/no-such-dir/trace.csv"
[ "$HM_RC" -eq 2 ] || hm_fail "--trace-pacer into a missing directory exited $HM_RC, expected 2 (usage); stderr: $(cat "$err")"
grep -q -- "--trace-pacer $HM_TMP/no-such-dir/trace.csv: No such file or directory" "$err" ||
  hm_fail "the error does not name the option and the reason: $(cat "$err")"
grep -q "session" "$HM_TMP/serve.log" && hm_fail "a session started although the trace could not be opened: $(cat "$HM_TMP/serve.log")"

for i in 1 2; do
  hm_migrate_run 120 "$out" "$err" --image "synthetic:size=256M,seed=$i" --to "$HM_SERVE_ADDR" --bind 127.0.0.1 \
    --bulk udp --report json --rate-memory off --trace-pacer "$trace"
  hm_assert_committed "$HM_RC" "$out" "$err" "migration $i with --trace-pacer"
done

header='start,t_s,round,phase,rate_mbps,send_mbps,delivered_mbps,loss,random_loss,qdelay_ms,receiver_queue_ms,rtt_ms,datagrams,link_mbps,long_link_mbps,typical_link_mbps,foreign_of_16'
[ "$(head -1 "$trace")" = "$header" ] || hm_fail "trace header: '$(head -1 "$trace")', expected '$header'"
[ "$(grep -c '^start,' "$trace")" -eq 1 ] || hm_fail "the second migration wrote the header again (append, header once)"
bad=$(awk -F, 'NR > 1 && (NF != 17 || $4 !~ /^(startup|drain|cruise|share|compete)$/ ||
                 $5 !~ /^[0-9]+\.[0-9]$/ || $6 !~ /^[0-9]+\.[0-9]$/ || $7 !~ /^[0-9]+\.[0-9]$/ ||
                 $8 < 0 || $8 > 1 || $2 < 0)' "$trace" | head -3)
[ -z "$bad" ] || hm_fail "malformed trace lines: $bad"
sessions=$(awk -F, 'NR > 1 {print $1}' "$trace" | sort -u | wc -l)
[ "$sessions" -eq 2 ] || hm_fail "$sessions distinct start values in the trace, expected 2 (one per migration)"
for s in $(awk -F, 'NR > 1 {print $1}' "$trace" | sort -u); do
  n=$(awk -F, -v s="$s" '$1 == s' "$trace" | wc -l)
  [ "$n" -ge 5 ] || hm_fail "session $s has $n trace lines, expected at least 5 for a 256 MiB migration"
  awk -F, -v s="$s" '$1 == s && $5 > 0 && $7 > 0 {found = 1} END {exit !found}' "$trace" ||
    hm_fail "session $s: no line with a rate set and bytes delivered"
done
hm_log "trace: $(($(wc -l <"$trace") - 1)) lines, phases: $(awk -F, 'NR > 1 {print $4}' "$trace" | sort | uniq -c | tr -s ' \n' ' ')"
exit 0
