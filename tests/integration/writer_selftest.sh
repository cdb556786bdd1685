#!/usr/bin/env bash
# writer_selftest: hymig-test-writer does what the other tests rely on.
# --create: exact size, deterministic per seed, different across seeds, the asked share of zero
# pages; --file: writes only inside the working set, whole pages with a sequence number first,
# stops on SIGTERM with status 0, freezes under SIGSTOP; usage errors exit 2, I/O errors 1.
set -u -o pipefail
HM_TEST_NAME=writer_selftest
source "$(dirname "$0")/../lib/common.sh"
W=${HYMIG_TEST_WRITER:-}
[ -n "$W" ] && [ -x "$W" ] || hm_fail "HYMIG_TEST_WRITER='$W' is not an executable"
W=$(realpath "$W")
hm_deadline 120
hm_tmpdir
cd "$HM_TMP" || hm_fail "cd $HM_TMP"

"$W" --help | grep -q -- '--pages-per-sec' || hm_fail "--help does not describe --pages-per-sec"

expect_rc() { # expect_rc RC CMD...
  local want=$1 rc
  shift
  "$@" >/dev/null 2>err.txt
  rc=$?
  [ "$rc" -eq "$want" ] || hm_fail "'$*' exited $rc, expected $want: $(cat err.txt)"
  [ "$want" -eq 0 ] || grep -q . err.txt || hm_fail "'$*' failed without saying why"
}
expect_rc 2 "$W"
expect_rc 2 "$W" --create a
expect_rc 2 "$W" --create a --size 12Q
expect_rc 2 "$W" --create a --size 1M --zero-fraction 1.5
expect_rc 2 "$W" --create a --file b --size 1M
expect_rc 2 "$W" --file a
expect_rc 2 "$W" --bogus
expect_rc 1 "$W" --create "$HM_TMP/no/such/dir/x" --size 1M
expect_rc 1 "$W" --file "$HM_TMP/missing" --pages-per-sec 10

# --create
"$W" --create a.img --size 8M --seed 5 --zero-fraction 0.5 2>/dev/null || hm_fail "--create a.img"
"$W" --create b.img --size 8M --seed 5 --zero-fraction 0.5 2>/dev/null || hm_fail "--create b.img"
"$W" --create c.img --size 8M --seed 6 --zero-fraction 0.5 2>/dev/null || hm_fail "--create c.img"
[ "$(stat -c %s a.img)" -eq $((8 << 20)) ] || hm_fail "a.img is $(stat -c %s a.img) bytes, expected 8 MiB"
cmp -s a.img b.img || hm_fail "same seed, different files"
cmp -s a.img c.img && hm_fail "different seeds, same file"
"$W" --create odd.img --size 10000 2>/dev/null || hm_fail "--create odd size"
[ "$(stat -c %s odd.img)" -eq 10000 ] || hm_fail "odd.img is $(stat -c %s odd.img) bytes"
"$W" --create z.img --size 1M --zero-fraction 1 2>/dev/null || hm_fail "--create all-zero"
cmp -s -n $((1 << 20)) z.img /dev/zero || hm_fail "--zero-fraction 1 left non-zero bytes"
"$W" --create r.img --size 4M --seed 9 --zero-fraction 0 2>/dev/null || hm_fail "--create r.img"
# zero pages among the 2048 of a.img: expected 1024, sd 23; among the 1024 of r.img: none.
count_zero_pages() {
  local f=$1 n i z=0
  n=$(($(stat -c %s "$f") / 4096))
  for ((i = 0; i < n; i++)); do
    cmp -s -n 4096 -i $((i * 4096)):0 "$f" /dev/zero && z=$((z + 1))
  done
  echo "$z"
}
z=$(count_zero_pages a.img)
((z >= 800 && z <= 1250)) || hm_fail "--zero-fraction 0.5 gave $z zero pages of 2048"
z=$(count_zero_pages r.img)
[ "$z" -eq 0 ] || hm_fail "--zero-fraction 0 gave $z zero pages"
hm_log "create: sizes, determinism and zero fractions ok"

# --file: 1000 pages/s over the first 16 pages of a 4 MiB file.
cp r.img r.orig
expect_rc 2 "$W" --file r.img --pages-per-sec 10 --working-set-pages 1025
"$W" --file r.img --pages-per-sec 1000 --working-set-pages 16 --seed 3 2>w.log &
wp=$!
hm_track_pid "$wp"
hm_wait_for 10 grep -q "pid $wp writing" w.log || hm_fail "writer did not start: $(cat w.log)"
hm_wait_for 20 bash -c '! cmp -s -n 65536 r.img r.orig' || hm_fail "writer changed nothing in 20 s"
kill -STOP "$wp"
hm_wait_for 5 bash -c "[ \"\$(awk '{print \$3}' /proc/$wp/stat)\" = T ]" || hm_fail "writer not stopped by SIGSTOP"
sum1=$(cksum <r.img)
hm_sleep 0.3
sum2=$(cksum <r.img)
[ "$sum1" = "$sum2" ] || hm_fail "the file changed while the writer was stopped"
kill -CONT "$wp"
hm_wait_for 20 bash -c "[ \"\$(cksum <r.img)\" != '$sum2' ]" || hm_fail "writer did not resume after SIGCONT"
kill -TERM "$wp"
hm_wait_pid "$wp" 10
[ "$HM_RC" -eq 0 ] || hm_fail "writer exited $HM_RC on SIGTERM, expected 0: $(cat w.log)"
grep -q 'stopped after [0-9]* page writes' w.log || hm_fail "writer did not report its writes: $(cat w.log)"
cmp -s -i 65536 r.img r.orig || hm_fail "writer wrote outside its 16-page working set"
# Every changed page: a small sequence number in its first 8 bytes, and the rest changed too.
changed=0
for ((i = 0; i < 16; i++)); do
  cmp -s -n 4096 -i $((i * 4096)):$((i * 4096)) r.img r.orig && continue
  changed=$((changed + 1))
  seq=$(od -An -t u8 -N 8 -j $((i * 4096)) r.img | tr -d ' ')
  ((seq >= 1 && seq <= 10000000)) || hm_fail "page $i starts with $seq, not a sequence number"
  cmp -s -n 4088 -i $((i * 4096 + 8)):$((i * 4096 + 8)) r.img r.orig && hm_fail "page $i: only the sequence number changed"
done
((changed >= 2)) || hm_fail "only $changed of the 16 working-set pages changed"
hm_log "file: $changed of 16 pages rewritten, nothing outside the working set; $(grep -o 'stopped after.*' w.log)"
exit 0
