#!/usr/bin/env bash
# A synthetic image with writer threads dirtying 64 MiB/s over a 64 MiB working set, over loopback.
source "$(dirname "$0")/lib.sh"
start_serve "" 127.0.0.1 --once
"$HYMIG" migrate --image synthetic:size=256M,dirty-rate=64M,working-set=64M --to "$SERVE_ADDR" \
  --report json --progress off >"$WORK/report.json" || fail "migrate failed: $(cat "$WORK/report.json")"
assert_committed "$WORK/report.json"
[ "$(json "$WORK/report.json" .rounds)" -ge 1 ] || fail "no round"
[ "$(json "$WORK/report.json" '.final_delta_pages >= .modified_pages and .final_delta_pages >= .missing_pages')" = true ] ||
  fail "final delta is not the union of missing and modified"
[ "$(json "$WORK/report.json" .pages_total)" -eq 65536 ] || fail "pages_total"
wait_pid "$SERVE_PID" 20 || fail "serve did not commit"
grep -q "committed synthetic" "$WORK/serve.log" || fail "no committed line in the serve log"
echo "PASS"
