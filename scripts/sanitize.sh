#!/usr/bin/env bash
# The sanitizer lanes: builds the asan preset (AddressSanitizer + UndefinedBehaviorSanitizer) and
# runs the unit and integration tests on it, then builds the tsan preset (ThreadSanitizer) and runs
# the unit tests on it. Any report fails the lane: UBSan does not recover (-fno-sanitize-recover),
# ASan and TSan stop at their first report with a non-zero exit.
#   bash scripts/sanitize.sh [asan|tsan]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
lanes=("$@")
[ ${#lanes[@]} -gt 0 ] || lanes=(asan tsan)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# tests/tsan.supp: only the simulated guest's stores into image memory (precopy's race by design).
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp}
for lane in "${lanes[@]}"; do
  case $lane in
    asan) labels="unit|integration" ;;
    tsan) labels="unit" ;;
    *) echo "sanitize.sh: unknown lane '$lane' (asan, tsan)" >&2; exit 2 ;;
  esac
  [ -f "build/$lane/build.ninja" ] || cmake --preset "$lane"
  cmake --build --preset "$lane" -j"$(nproc)"
  echo "sanitize.sh: $lane lane: ctest -L '$labels'"
  (cd "build/$lane" && ctest -L "$labels" -j1 --timeout 900 --output-on-failure)
done
