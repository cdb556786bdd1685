#!/usr/bin/env bash
# Builds and runs the whole test suite (unit + integration + bench smoke tests + the Soft-RoCE lab and the VM lane under QEMU; tests
# needing root, namespaces, QEMU or the guest kernel package skip with a printed reason when they cannot run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --preset release -L "${HYMIG_TEST_LABELS:-unit|integration|bench|lab|vm}" -j1 --timeout 600 "$@"
