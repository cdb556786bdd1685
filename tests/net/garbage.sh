#!/usr/bin/env bash
# The daemon survives clients that send garbage, lie about lengths, stall mid-frame or vanish, and
# then serves a real migration.
source "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/store"
start_serve "" 127.0.0.1 --store "$WORK/store"
host=${SERVE_ADDR%:*} port=${SERVE_ADDR##*:}
send() { timeout 10 bash -c "exec 3<>/dev/tcp/$host/$port; $1; sleep ${2:-0.2}; exec 3>&-" 2>/dev/null || true; }
send 'head -c 4096 /dev/urandom >&3'                               # random bytes
send 'printf "HYMC\x01\x01\x00\x00\xff\xff\xff\x7f\x00\x00\x00\x00" >&3'  # hello with a 2 GiB body
send 'printf "HYMC\x01\x01\x00\x00\x20\x00\x00\x00\x00\x00\x00\x00{\"vers" >&3' 4  # half a frame, then silence past --timeout
send ':'                                                            # connect and close
send 'printf "HYMC\x09\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00{}" >&3'  # wrong version
send 'printf "HYMC\x01\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00{}" >&3'  # hello without fields
kill -0 "$SERVE_PID" || fail "serve died"
n=$(grep -c "rejected" "$WORK/serve.log" || true)
[ "$n" -ge 4 ] || fail "expected the bad clients to be logged as rejected, got $n"
img=$(make_image after.ram 16M)
"$HYMIG" migrate --image "file:$img" --to "$SERVE_ADDR" --report json --progress off >"$WORK/report.json" ||
  fail "a real migration after the garbage failed: $(cat "$WORK/report.json")"
cmp "$img" "$WORK/store/after.ram" || fail "image differs"
kill -0 "$SERVE_PID" || fail "serve died"
echo "PASS"
