#!/usr/bin/env bash
# Wrong flags and bad specs: exit 2 with a message, nothing started.
set -u -o pipefail
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 60
hm_tmpdir
expect_usage() {
  local st=0 out
  out=$("$HYMIG" "$@" 2>&1) || st=$?
  [ "$st" -eq 2 ] || hm_fail "hymig $* exited $st, expected 2: $out"
  grep -qi "error\|usage\|unknown\|required" <<<"$out" || hm_fail "no message for hymig $*: $out"
}
expect_usage migrate --to 127.0.0.1:1
expect_usage migrate --image synthetic:size=1G
expect_usage migrate --image synthetic:size=lots --to 127.0.0.1:1
expect_usage migrate --image synthetic:colour=blue --to 127.0.0.1:1
expect_usage migrate --image floppy:/dev/fd0 --to 127.0.0.1:1
expect_usage migrate --image "file:$HM_TMP/absent" --to 127.0.0.1:1
expect_usage migrate --image synthetic:size=1M --to nowhere
expect_usage migrate --image synthetic:size=1M --to 127.0.0.1:1 --bulk pigeon
expect_usage migrate --image synthetic:size=1M --to 127.0.0.1:1 --rate fast
expect_usage migrate --image synthetic:size=1M --to 127.0.0.1:1 --reliable pigeon
# An address this host does not have: refused before any connection is tried.
expect_usage migrate --image synthetic:size=1M --to 127.0.0.1:1 --bind 192.0.2.77
expect_usage migrate --image synthetic:size=1M --to 127.0.0.1:1 --bind ::1
expect_usage migrate --frobnicate
expect_usage serve --listen
expect_usage frobnicate
"$HYMIG" migrate --help | grep -q "IMAGE SPECS" || hm_fail "migrate --help lacks the image specs"
# A destination that is not there: a clear error, exit 1, within the timeout.
st=0
"$HYMIG" migrate --image synthetic:size=1M --to 127.0.0.1:9 --timeout 2 --report none 2>"$HM_TMP/err" || st=$?
[ "$st" -eq 1 ] || hm_fail "unreachable destination: exit $st"
grep -q "127.0.0.1:9" "$HM_TMP/err" || hm_fail "the error does not name the address: $(cat "$HM_TMP/err")"
echo "PASS"
