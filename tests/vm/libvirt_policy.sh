#!/usr/bin/env bash
# vm.libvirt_policy: what an authenticated peer may not make a node's libvirt run. A peer holding
# the cluster key (tests/tools/test_peer.cpp notify-domain, from lv1's namespace) announces domains
# to `hymig serve --libvirt` at lv2 (which allows only what the lane's guests use: their kernel's,
# initramfs's and consoles' directories). Each definition is the lane's domain plus one hostile
# element: foreign qemu: arguments, another emulator, a host PCI device, a host block device as a
# disk, a filesystem exporting /, an interface script, a static seclabel running QEMU as root;
# and malformed ones (not XML, a DOCTYPE with entities, a name that is not the definition's).
# Each: refused with a message naming the element and the serve option that would allow it (or
# the malformation), serve ends the session cleanly, and lv2 has no domain and no QEMU afterwards.
set -euo pipefail
# shellcheck disable=SC2034  # read by common.sh
HM_TEST_NAME=vm_libvirt_policy
# shellcheck source=libvirt_test.sh
source "$(dirname "$0")/libvirt_test.sh"
[ -x "${HYMIG_TEST_PEER:-}" ] || hm_fail "HYMIG_TEST_PEER is not set (build/release/tests/tools/hymig-test-peer)"

name=hostile
# As libvirt hands it out (what `hymig migrate --domain` sends): with its UUID.
lv_domain_xml "$name" 256 "$(lv_serial_path "$name")" |
  sed "s|<name>$name</name>|<name>$name</name>\n  <uuid>6d1d2a3e-0c44-4b52-9a1e-5f3b1c2d4e5f</uuid>|" >"$HM_TMP/base.xml"

# variant NAME SED-ARGS...: base.xml edited by sed into NAME.xml.
variant() {
  local v=$1
  shift
  sed "$@" "$HM_TMP/base.xml" >"$HM_TMP/$v.xml"
}
dev="    <memballoon model='none'\/>"
variant qemu_args -e "s|<domain type='qemu'>|<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>|" \
  -e "s|</devices>|</devices>\n  <qemu:commandline>\n    <qemu:arg value='-monitor'/>\n    <qemu:arg value='tcp:0.0.0.0:4444,server=on,wait=off'/>\n  </qemu:commandline>|"
variant emulator -e "s|<emulator>.*</emulator>|<emulator>/tmp/evil-qemu</emulator>|"
variant hostdev -e "s|$dev|$dev\n    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x00' slot='0x01' function='0x0'/></source></hostdev>|"
variant block_disk -e "s|$dev|$dev\n    <disk type='block' device='disk'><source dev='/dev/vda'/><target dev='vdb' bus='virtio'/></disk>|"
variant root_fs -e "s|$dev|$dev\n    <filesystem type='mount' accessmode='passthrough'><source dir='/'/><target dir='hostroot'/></filesystem>|"
variant script -e "s|$dev|$dev\n    <interface type='ethernet'><script path='/tmp/evil.sh'/><model type='virtio'/></interface>|"
variant seclabel -e "s|</devices>|</devices>\n  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>|"
printf 'this is no XML <domain' >"$HM_TMP/not_xml.xml"
{
  echo '<?xml version="1.0"?>'
  echo '<!DOCTYPE domain [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
  sed 's|<name>hostile</name>|<name>\&b;</name>|' "$HM_TMP/base.xml"
} >"$HM_TMP/entities.xml"
variant other_name -e "s|<name>hostile</name>|<name>innocent</name>|"

# refused VARIANT REGEX...: the peer's notify of VARIANT.xml is refused with an answer matching
# every REGEX; serve ends the session; lv2 has no such domain and no QEMU.
refused() {
  local v=$1
  shift
  lvh_serve 2 "$HM_TMP/$v.serve.log"
  local serve_pid=$HM_SERVE_PID
  ip netns exec "${LV_NS[1]}" "$HYMIG_TEST_PEER" notify-domain --to "$HM_SERVE_ADDR" --key-file "$HYMIG_KEY_FILE" \
    --xml "$HM_TMP/$v.xml" --name "$name" >"$HM_TMP/$v.answer" 2>&1 || true
  local want
  for want in "$@"; do
    grep -q -E -e "$want" "$HM_TMP/$v.answer" ||
      hm_fail "$v: the answer does not match /$want/: $(cat "$HM_TMP/$v.answer"); serve: $(tail -n 3 "$HM_TMP/$v.serve.log")"
  done
  hm_wait_pid "$serve_pid" 30
  [ "$HM_RC" -eq 1 ] || hm_fail "$v: serve --once exited $HM_RC, expected 1 (a refused session): $(tail -n 3 "$HM_TMP/$v.serve.log")"
  ! lv_domain_defined 2 "$name" || hm_fail "$v: lv2 has a domain '$name' after the refusal"
  [ -z "$(lv_qemus 2)" ] || hm_fail "$v: a QEMU runs at lv2 after the refusal: $(lv_qemus 2)"
  hm_log "$v: refused: $(sed -n 's/^answer: //p' "$HM_TMP/$v.answer" | head -c 300)"
}

refused qemu_args "qemu" "allow-qemu-args"
refused emulator "<emulator>" "/tmp/evil-qemu" "allow-emulator"
refused hostdev "<hostdev>" "allow-hostdev"
refused block_disk "/dev/vda" "allow-path"
refused root_fs "<filesystem>" "allow-path"
refused script "script /tmp/evil.sh" "no option allows"
refused seclabel "seclabel"
refused not_xml "malformed|not well-formed|XML"
refused entities "DOCTYPE|entit"
refused other_name "defines domain 'innocent', not 'hostile'"

# The lane's own domain is still accepted by the same policy: the check is not a blanket refusal.
# (It reaches libvirt, which starts the paused copy; the peer then goes away and serve destroys it.)
lvh_serve 2 "$HM_TMP/accepted.serve.log"
serve_pid=$HM_SERVE_PID
ip netns exec "${LV_NS[1]}" "$HYMIG_TEST_PEER" notify-domain --to "$HM_SERVE_ADDR" --key-file "$HYMIG_KEY_FILE" \
  --xml "$HM_TMP/base.xml" --name "$name" >"$HM_TMP/accepted.answer" 2>&1 || true
grep -q "answer: ready" "$HM_TMP/accepted.answer" ||
  hm_fail "the lane's own domain was not accepted: $(cat "$HM_TMP/accepted.answer"); serve: $(tail -n 3 "$HM_TMP/accepted.serve.log")"
hm_wait_pid "$serve_pid" 60
! lv_domain_defined 2 "$name" || hm_fail "the abandoned copy of '$name' is still defined at lv2"
no_qemu_at_lv2() { [ -z "$(lv_qemus 2)" ]; }
hm_wait_for 30 no_qemu_at_lv2 || hm_fail "the abandoned copy's QEMU still runs at lv2: $(lv_qemus 2)"
hm_log "the lane's own domain: accepted (ready), then cleaned up when the peer left"
exit 0
