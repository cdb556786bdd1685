#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS from its seed corpus (read only: what it finds goes to a
# scratch directory, removed afterwards). A crash, leak, sanitizer report, broken promise
# (FUZZ_CHECK) or timeout fails the test; the input that did it is kept in ARTIFACTS and named in
# the output, to be replayed with `FUZZER INPUT` and turned into a regression test.
#   run-fuzzer.sh FUZZER CORPUS_DIR ARTIFACTS_DIR SECONDS
set -u -o pipefail
fuzzer=$1 corpus=$2 artifacts=$3 seconds=$4
[ -d "$corpus" ] || { echo "run-fuzzer: no seed corpus at $corpus" >&2; exit 1; }
mkdir -p "$artifacts"
work=$(mktemp -d /tmp/hymig-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
name=$(basename "$fuzzer")
rc=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$artifacts/$name-" "$work" "$corpus" >"$work.log" 2>&1 || rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log")
if [ "$rc" -ne 0 ]; then
  tail -n 60 "$work.log" >&2
  echo "run-fuzzer: $name FAILED (exit $rc) after ${execs:-?} executions; reproducer: $(ls -t "$artifacts"/"$name"-* 2>/dev/null | head -n1)" >&2
  rm -f "$work.log"
  exit 1
fi
echo "run-fuzzer: $name: ${execs:-?} executions in ${seconds}s, no finding ($(grep -c . <<<"$(ls "$work")") new inputs)"
rm -f "$work.log"
exit 0
