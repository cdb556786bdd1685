#!/usr/bin/env bash
# The fuzz lane: builds the fuzz preset (clang, libFuzzer, ASan+UBSan) and runs every fuzz target
# for SECONDS (default 8) from its seed corpus under fuzz/corpus/; any crash, sanitizer report,
# broken promise or timeout fails it, and the input is kept in build/fuzz/fuzz/artifacts/.
#   bash scripts/fuzz.sh [SECONDS]       (docs/fuzzing.md: a long run, replaying a finding)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || { echo "fuzz.sh: SECONDS must be a positive whole number" >&2; exit 2; }
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is not installed (scripts/bootstrap.sh installs it)" >&2; exit 1; }
cmake --preset fuzz -DHYMIG_FUZZ_SECONDS="$seconds" >/dev/null
cmake --build --preset fuzz -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "fuzz.sh: every target for ${seconds}s"
# Each target is one process on one core: as many at once as there are cores.
ctest --preset fuzz -L fuzz -j"$(nproc)" --timeout $((seconds + 300))
