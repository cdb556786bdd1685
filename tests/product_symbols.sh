#!/usr/bin/env bash
# unit.product_has_no_test_doubles BINARY: the `hymig` binary carries the engine (run_source) and
# none of testing/'s doubles (make_fake_*), which a peer could otherwise reach.
set -u -o pipefail
bin=${1:?usage: product_symbols.sh BINARY}
command -v nm >/dev/null || { echo "SKIP: nm (binutils) is not installed"; exit 77; }
syms=$(nm -C "$bin" 2>&1) || { echo "FAIL: nm cannot read $bin: $syms"; exit 1; }
grep -q 'hymig::run_source(' <<<"$syms" || { echo "FAIL: no hymig::run_source in $bin: its symbols are unreadable (stripped?)"; exit 1; }
if fakes=$(grep -E 'hymig::(make_fake_|Fake[A-Z])' <<<"$syms"); then
  echo "FAIL: $bin links test doubles: $(head -n 3 <<<"$fakes")"
  exit 1
fi
echo "PASS: $bin has the engine and no test doubles"
