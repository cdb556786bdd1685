#!/usr/bin/env bash
# Builds and runs the whole test suite; tests needing root, namespaces, QEMU or the guest kernel
# package skip with a printed reason when they cannot run. In order, so a break shows in minutes:
#   1. the fast lane: the lint of the newest commit (scripts/lint.sh: clang-format on its changed
#      lines, clang-tidy and shellcheck on its changed files; HYMIG_LINT=0 leaves it out), then unit
#      and integration tests on the release build, then hymig built without rdma-core and libvirt
#      (scripts/minimal-build.sh; HYMIG_MINIMAL=0 leaves it out);
#   2. the sanitizer lanes (scripts/sanitize.sh): unit + integration under ASan+UBSan, unit under
#      TSan (HYMIG_SANITIZERS=0 leaves them out);
#   3. the fuzz lane (scripts/fuzz.sh): every libFuzzer target for a few seconds from its seed
#      corpus (HYMIG_FUZZ=0 leaves it out);
#   4. the slow lanes: bench smoke tests, the Soft-RoCE lab and the VM lane under QEMU.
# HYMIG_TEST_LABELS=REGEX runs only the release tests with those ctest labels (no sanitizers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
run() { ctest --preset release -L "$1" -j1 --timeout 600 "${@:2}"; }
if [ -n "${HYMIG_TEST_LABELS:-}" ]; then
  run "$HYMIG_TEST_LABELS" "$@"
  exit 0
fi
[ "${HYMIG_LINT:-1}" = 0 ] || bash scripts/lint.sh
run "unit|integration" "$@"
[ "${HYMIG_MINIMAL:-1}" = 0 ] || bash scripts/minimal-build.sh
[ "${HYMIG_SANITIZERS:-1}" = 0 ] || bash scripts/sanitize.sh
[ "${HYMIG_FUZZ:-1}" = 0 ] || bash scripts/fuzz.sh
run "bench|lab|vm" "$@"
