#!/usr/bin/env bash
# Builds and runs the whole test suite; tests needing root, namespaces, QEMU or the guest kernel
# package skip with a printed reason when they cannot run. In order, so a break shows in minutes:
#   1. the fast lane: the lint of the newest commit (scripts/lint.sh: clang-format on its changed
#      lines, clang-tidy and shellcheck on its changed files; HYMIG_LINT=0 leaves it out), then unit
#      and integration tests on the release build, then hymig built without rdma-core in
#      build/noverbs (HYMIG_WITH_VERBS=OFF; HYMIG_NOVERBS=0 leaves it out);
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
if [ "${HYMIG_NOVERBS:-1}" != 0 ]; then
  echo "test: hymig without rdma-core (build/noverbs, HYMIG_WITH_VERBS=OFF) still builds, runs and sees no RDMA"
  cmake -S . -B build/noverbs -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHYMIG_WITH_VERBS=OFF >/dev/null
  cmake --build build/noverbs --target hymig -j"$(nproc)"
  build/noverbs/cli/hymig --version
  build/noverbs/cli/hymig probe --json | grep -q '"rdma_ud": false' ||
    { echo "test: build/noverbs: hymig probe --json does not report rdma_ud false" >&2; exit 1; }
fi
[ "${HYMIG_SANITIZERS:-1}" = 0 ] || bash scripts/sanitize.sh
[ "${HYMIG_FUZZ:-1}" = 0 ] || bash scripts/fuzz.sh
run "bench|lab|vm" "$@"
