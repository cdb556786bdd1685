#!/usr/bin/env bash
# Shared-secret authentication: a source without the secret or with another one is refused with a
# clear message and nothing is stored; with the same secret the migration commits.
set -u -o pipefail
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 120
hm_tmpdir
hm_store_setup
printf 'correct horse battery staple' >"$HM_TMP/secret"
printf 'another secret' >"$HM_TMP/wrong"
hm_start_serve "$log" --listen 127.0.0.1:0 --store "$store" --timeout 3 --secret-file "$HM_TMP/secret"
img=$HM_TMP/src/vm.ram
"$HYMIG_TEST_WRITER" --create "$img" --size 8M >/dev/null 2>&1 || hm_fail "create $img"
try() {
  local st=0
  "$HYMIG" migrate --image "file:$img" --to "$HM_SERVE_ADDR" --report none --progress off --timeout 3 "$@" 2>"$HM_TMP/err" || st=$?
  return "$st"
}
try && hm_fail "a source without the secret was accepted"
grep -qi "secret\|authenticat" "$HM_TMP/err" || hm_fail "unclear refusal: $(cat "$HM_TMP/err")"
try --secret-file "$HM_TMP/wrong" && hm_fail "a source with another secret was accepted"
grep -qi "authentication failed\|secret" "$HM_TMP/err" || hm_fail "unclear refusal: $(cat "$HM_TMP/err")"
[ -z "$(ls -A "$store")" ] || hm_fail "something was stored for a refused source"
try --secret-file "$HM_TMP/secret" || hm_fail "the right secret was refused: $(cat "$HM_TMP/err")"
cmp "$img" "$store/vm.ram" || hm_fail "image differs"
hm_alive "$HM_SERVE_PID" || hm_fail "serve died"
echo "PASS"
