#!/usr/bin/env bash
# Shared-secret authentication: a source without the secret or with another one is refused with a
# clear message and nothing is stored; with the same secret the migration commits.
source "$(dirname "$0")/lib.sh"
printf 'correct horse battery staple' >"$WORK/secret"
printf 'another secret' >"$WORK/wrong"
mkdir -p "$WORK/store"
start_serve "" 127.0.0.1 --store "$WORK/store" --secret-file "$WORK/secret"
img=$(make_image vm.ram 8M)
try() {
  local st=0
  "$HYMIG" migrate --image "file:$img" --to "$SERVE_ADDR" --report none --progress off --timeout 3 "$@" 2>"$WORK/err" || st=$?
  return "$st"
}
try && fail "a source without the secret was accepted"
grep -qi "secret\|authenticat" "$WORK/err" || fail "unclear refusal: $(cat "$WORK/err")"
try --secret-file "$WORK/wrong" && fail "a source with another secret was accepted"
grep -qi "authentication failed\|secret" "$WORK/err" || fail "unclear refusal: $(cat "$WORK/err")"
[ -z "$(ls -A "$WORK/store")" ] || fail "something was stored for a refused source"
try --secret-file "$WORK/secret" || fail "the right secret was refused: $(cat "$WORK/err")"
cmp "$img" "$WORK/store/vm.ram" || fail "image differs"
kill -0 "$SERVE_PID" || fail "serve died"
echo "PASS"
