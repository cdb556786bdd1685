#!/usr/bin/env bash
# Installs what is missing, then configures and builds the release preset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
[ -f build/release/build.ninja ] || cmake --preset release
cmake --build --preset release -j"$(nproc)"
