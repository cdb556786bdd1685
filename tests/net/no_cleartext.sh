#!/usr/bin/env bash
# What crosses the wire: a packet capture on loopback (tcpdump) of migrations of an image full of a
# marker text must not contain the marker — neither the datagram stream nor the TCP session (a
# --bulk tcp session too). With --encrypt off (the datagrams authenticated only) the marker must
# show in the capture: the check can fail. Needs root and tcpdump (scripts/bootstrap.sh installs it).
set -u -o pipefail
HM_TEST_NAME=no_cleartext
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
[ "$(id -u)" -eq 0 ] || hm_skip "needs root (packet capture)"
command -v tcpdump >/dev/null || hm_skip "tcpdump is not installed (scripts/bootstrap.sh installs it)"
hm_deadline 240
hm_tmpdir
hm_store_setup
hm_start_serve "$log" --listen 127.0.0.1:0 --store "$store" --timeout 10 --replace

marker="HYMIG-CLEARTEXT-MARKER-$$-"
img=$HM_TMP/src/marked.bin
yes "$marker" | head -c $((8 << 20)) >"$img"

# capture NAME MIGRATE-ARGS...: one migration under tcpdump; sets cap to the capture file.
capture() {
  local name=$1
  shift
  cap=$HM_TMP/$name.pcap
  # A 256 MiB capture buffer: every packet of the session must be in the file, or the check below
  # proves nothing (tcpdump says how many the kernel dropped; none may be). --immediate-mode: without
  # it libpcap hands packets over in blocks retired up to a second late, and the last ones of the
  # session may still be in the kernel's ring when tcpdump is stopped.
  tcpdump -i lo -B 262144 --immediate-mode -U -w "$cap" "tcp port $HM_SERVE_PORT or udp" 2>"$HM_TMP/$name.tcpdump" &
  local tp=$!
  hm_track_pid "$tp"
  hm_wait_for 10 grep -q "listening on" "$HM_TMP/$name.tcpdump" || hm_fail "tcpdump did not start: $(cat "$HM_TMP/$name.tcpdump")"
  hm_migrate_run 60 "$HM_TMP/$name.json" "$HM_TMP/$name.err" --image "file:$img" --to "$HM_SERVE_ADDR" --report json "$@"
  hm_assert_committed "$HM_RC" "$HM_TMP/$name.json" "$HM_TMP/$name.err" "$name"
  cmp "$img" "$store/marked.bin" || hm_fail "$name: image differs"
  # The source's report says how many bytes it sent on both channels (after compression): the
  # capture, headers included, must grow past that, or it missed part of the session.
  local sent bytes
  sent=$(jq '.bulk.bytes + .reliable.bytes' "$HM_TMP/$name.json")
  holds_session() { bytes=$(stat -c %s "$cap") && [ "$bytes" -gt "$sent" ]; }
  hm_wait_for 10 holds_session || true
  kill -INT "$tp"
  hm_wait_pid "$tp" 10
  bytes=$(stat -c %s "$cap")
  grep -q "^0 packets dropped by kernel" "$HM_TMP/$name.tcpdump" ||
    hm_fail "$name: the capture is incomplete: $(tr '\n' ' ' <"$HM_TMP/$name.tcpdump")"
  [ "$bytes" -gt "$sent" ] || hm_fail "$name: the capture holds only $bytes bytes of the $sent sent: it missed the session"
}

# no_marker NAME MIGRATE-ARGS...: a captured migration whose capture holds none of the marker.
no_marker() {
  capture "$@"
  hits=$(grep -a -c -- "$marker" "$cap" || true)
  [ "$hits" -eq 0 ] || hm_fail "$1: the capture holds the image's text in clear ($hits lines)"
}

no_marker udp --bulk udp --rate 100M
# The marked image compresses well, so the session above may have sent zstd frames; this one sends
# every page as it is.
no_marker udp-raw --bulk udp --rate 100M --compress off
no_marker tcp --bulk tcp
capture clear --bulk udp --rate 100M --encrypt off --compress off
hits=$(grep -a -c -- "$marker" "$cap" || true)
[ "$hits" -gt 0 ] || hm_fail "--encrypt off: the marker is not in the capture; the check above proves nothing"
hm_log "no marker in the encrypted sessions' captures; $hits lines of it with --encrypt off"
exit 0
