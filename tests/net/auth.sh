#!/usr/bin/env bash
# Cluster-key authentication between real processes on loopback: there is no unauthenticated mode.
# - keygen writes a 0600 key, refuses to replace one; a key readable by others is refused (exit 2);
# - serve and migrate without a readable key refuse to run (exit 2, naming `hymig keygen`);
# - a source with another key is refused on both sides, learns nothing (a generic error), and
#   nothing is stored; the destination logs why; serve stays up;
# - with the same key the migration commits and the image is byte-equal; --secret-file still works
#   as the old name of --key-file.
set -u -o pipefail
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 120
hm_tmpdir
hm_store_setup

key=$HYMIG_KEY_FILE
other=$HM_TMP/other.key

# keygen: mode 0600, never over an existing file.
"$HYMIG" keygen "$other" 2>"$HM_TMP/err" || hm_fail "keygen failed: $(cat "$HM_TMP/err")"
[ "$(stat -c %a "$other")" = 600 ] || hm_fail "keygen made mode $(stat -c %a "$other"), expected 600"
grep -qE '^[0-9a-f]{64}$' "$other" || hm_fail "the key file is not 64 hex digits: $(head -c 100 "$other")"
st=0
"$HYMIG" keygen "$other" 2>"$HM_TMP/err" || st=$?
[ "$st" -eq 2 ] || hm_fail "keygen over an existing key exited $st, expected 2"
grep -q "never replaces" "$HM_TMP/err" || hm_fail "unclear refusal to replace a key: $(cat "$HM_TMP/err")"

# No key, a key others can read, not a key: refused before anything happens, naming the fix.
expect_key_refusal() {
  local what=$1 needle=$2
  shift 2
  local st=0
  "$@" 2>"$HM_TMP/err" >/dev/null || st=$?
  [ "$st" -eq 2 ] || hm_fail "$what: exit $st, expected 2 ($(cat "$HM_TMP/err"))"
  grep -q -- "$needle" "$HM_TMP/err" || hm_fail "$what: the error does not say '$needle': $(cat "$HM_TMP/err")"
}
expect_key_refusal "serve without a key" "hymig keygen" env -u HYMIG_KEY_FILE "$HYMIG" serve --listen 127.0.0.1:0 --key-file "$HM_TMP/none.key"
expect_key_refusal "migrate without a key" "hymig keygen" env -u HYMIG_KEY_FILE "$HYMIG" migrate --image synthetic:size=1M --to 127.0.0.1:9 --key-file "$HM_TMP/none.key"
cp "$other" "$HM_TMP/open.key"
chmod 644 "$HM_TMP/open.key"
expect_key_refusal "a world-readable key" "chmod 600" "$HYMIG" serve --listen 127.0.0.1:0 --key-file "$HM_TMP/open.key"
printf 'correct horse battery staple\n' >"$HM_TMP/phrase.key"
chmod 600 "$HM_TMP/phrase.key"
expect_key_refusal "a passphrase as key" "not a hymig cluster key" "$HYMIG" serve --listen 127.0.0.1:0 --key-file "$HM_TMP/phrase.key"

hm_start_serve "$log" --listen 127.0.0.1:0 --store "$store" --timeout 3 --key-file "$key"
img=$HM_TMP/src/vm.ram
"$HYMIG_TEST_WRITER" --create "$img" --size 8M >/dev/null 2>&1 || hm_fail "create $img"
try() {
  local st=0
  "$HYMIG" migrate --image "file:$img" --to "$HM_SERVE_ADDR" --report none --progress off --timeout 3 "$@" 2>"$HM_TMP/err" || st=$?
  return "$st"
}
st=0
try --key-file "$other" || st=$?
[ "$st" -eq 1 ] || hm_fail "a source with another key: exit $st, expected 1 ($(cat "$HM_TMP/err"))"
grep -qi "authentication with the destination failed" "$HM_TMP/err" || hm_fail "unclear refusal: $(cat "$HM_TMP/err")"
grep -qiE "store|$store|committed|listening" "$HM_TMP/err" && hm_fail "the refused source learnt about the destination: $(cat "$HM_TMP/err")"
hm_wait_for 10 grep -q "rejected" "$log" || hm_fail "serve did not log the rejection: $(cat "$log")"
[ -z "$(ls -A "$store")" ] || hm_fail "something was stored for a refused source"
hm_alive "$HM_SERVE_PID" || hm_fail "serve died after a refused source"

try --key-file "$key" || hm_fail "the right key was refused: $(cat "$HM_TMP/err")"
cmp "$img" "$store/vm.ram" || hm_fail "image differs"
rm -f "$store/vm.ram"
try --secret-file "$key" || hm_fail "--secret-file (the old name of --key-file) was refused: $(cat "$HM_TMP/err")"
cmp "$img" "$store/vm.ram" || hm_fail "image differs (--secret-file)"
hm_alive "$HM_SERVE_PID" || hm_fail "serve died"
echo "PASS"
