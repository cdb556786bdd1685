#!/bin/bash
# Smoke test of hymig-microbench: every benchmark runs briefly and reports a positive bytes/s.
# No timing thresholds: the machines are shared, only "it runs and measures something" is checked.
# Usage: smoke.sh BINARY JSON_OUT
set -euo pipefail
bin=$1 out=$2
rm -f "$out"
# A bare number of seconds: libbenchmark 1.7.1 (Debian 12) rejects the "0.01s" form 1.8 added, and
# 1.8 still reads a bare number as seconds.
"$bin" --benchmark_min_time=0.01 --benchmark_format=json --benchmark_out="$out" --benchmark_out_format=json >/dev/null
jq -e . "$out" >/dev/null || { echo "smoke: $out is not valid JSON" >&2; exit 1; }
count=$(jq '.benchmarks | length' "$out")
if [ "$count" -eq 0 ]; then echo "smoke: no benchmarks ran" >&2; exit 1; fi
bad=$(jq -r '.benchmarks[] | select((.error_occurred // false) or ((.bytes_per_second // 0) <= 0)) | .name' "$out")
if [ -n "$bad" ]; then
  echo "smoke: benchmarks with an error or without bytes_per_second > 0:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "smoke: $count benchmarks, all with bytes_per_second > 0"
