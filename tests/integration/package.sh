#!/usr/bin/env bash
# package (labels integration, ops): `cpack -G DEB` in the build directory makes a .deb that
#   1. says what it is and needs (package hymig, dependencies from dpkg-shlibdeps, the config file a
#      conffile) and holds the binary, the systemd unit, the example config and the man pages;
#   2. installs with dpkg into a scratch root (its own dpkg database; the host is not touched);
#   3. has a unit that `systemd-analyze verify` passes without a word (its man pages looked up in
#      the scratch root, ExecStart pointed at the scratch root's binary: the host has neither);
#   4. runs as the unit runs it: the installed binary, `hymig serve` reading the installed config,
#      tells READY=1 on NOTIFY_SOCKET, receives a migration from the installed binary, and stops on
#      SIGTERM with STOPPING=1 and exit 0;
#   5. starts under a real systemd: this machine's own OS booted in a container (systemd-nspawn
#      --volatile=yes: a fresh /etc, this host's /usr with the package's /usr laid over it, the
#      host's network), the unit as shipped started as the boot's only goal with its hardening and
#      Type=notify; systemd (asked with systemctl inside the container) reports it active, it answers
#      `hymig status`, receives a migration, and `systemctl stop` leaves it inactive with exit status 0.
set -u -o pipefail
HM_TEST_NAME=package
source "$(dirname "$0")/../lib/common.sh"
hm_require_tools
hm_deadline 200
hm_tmpdir
[ "$(id -u)" -eq 0 ] || hm_skip "needs root (dpkg into a scratch root, systemd-nspawn)"
for t in cpack dpkg dpkg-deb systemd-analyze systemd-nspawn; do command -v "$t" >/dev/null || hm_skip "$t is not installed"; done
[ -n "${HYMIG_BUILD_DIR:-}" ] && [ -f "$HYMIG_BUILD_DIR/CPackConfig.cmake" ] || hm_fail "HYMIG_BUILD_DIR must be the configured build directory"
[ -n "${HYMIG_NOTIFY_LISTEN:-}" ] || hm_fail "HYMIG_NOTIFY_LISTEN is not set"

# 1. The package.
(cd "$HYMIG_BUILD_DIR" && cpack -G DEB -B "$HM_TMP/pkg") >"$HM_TMP/cpack.log" 2>&1 || hm_fail "cpack failed: $(tail -n 20 "$HM_TMP/cpack.log")"
deb=$(ls "$HM_TMP"/pkg/hymig_*.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || hm_fail "cpack made no hymig_*.deb: $(tail -n 5 "$HM_TMP/cpack.log")"
info=$(dpkg-deb -I "$deb")
for want in "Package: hymig" "Depends: .*libvirt0" "Depends: .*libsodium" "Recommends: libvirt-daemon-system"; do
  grep -q -E "^ $want" <<<"$info" || hm_fail "the package's control lacks '$want': $info"
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/hymig/hymig.conf ] || hm_fail "hymig.conf is not a conffile"
files=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/hymig ./usr/lib/systemd/system/hymig.service ./etc/hymig/hymig.conf ./usr/share/man/man1/hymig.1 \
  ./usr/share/man/man5/hymig.conf.5; do
  grep -q -x -F "$f" <<<"$files" || hm_fail "the package lacks $f: $files"
done

# 2. Installed into a scratch root.
root=$HM_TMP/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
: >"$root/var/lib/dpkg/status"
dpkg --root="$root" --force-depends --force-script-chrootless -i "$deb" >"$HM_TMP/dpkg.log" 2>&1 ||
  hm_fail "dpkg -i into the scratch root failed: $(cat "$HM_TMP/dpkg.log")"
dpkg --root="$root" -s hymig 2>/dev/null | grep -q "^Status: install ok installed" || hm_fail "dpkg does not list hymig as installed"
bin=$root/usr/bin/hymig
"$bin" --version | grep -q "^hymig " || hm_fail "the installed binary does not run: $("$bin" --version 2>&1)"

# 3. The unit.
unit=$HM_TMP/hymig.service
sed "s|/usr/bin/hymig|$bin|" "$root/usr/lib/systemd/system/hymig.service" >"$unit"
out=$(MANPATH=$root/usr/share/man systemd-analyze verify "$unit" 2>&1) || hm_fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || hm_fail "systemd-analyze verify has something to say: $out"
grep -q -x "Type=notify" "$unit" && grep -q -x "Restart=on-failure" "$unit" || hm_fail "the unit is not Type=notify with Restart=on-failure"

# 4. Run as the unit runs it (ExecStart's command, the installed config), with NOTIFY_SOCKET.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "$bin serve" ] || hm_fail "unexpected ExecStart: $exec_start"
"$bin" keygen "$HM_TMP/unit.key" 2>/dev/null || hm_fail "the installed binary cannot make a key"
"$HYMIG_NOTIFY_LISTEN" "$HM_TMP/notify.sock" "$HM_TMP/notify.txt" &
hm_track_pid $!
cp "$root/etc/hymig/hymig.conf" "$HM_TMP/hymig.conf"
printf 'listen = 127.0.0.1:0\nstore = %s\nkey-file = %s\n' "$HM_TMP/store" "$HM_TMP/unit.key" >>"$HM_TMP/hymig.conf"
HYMIG=$bin HYMIG_CONFIG=$HM_TMP/hymig.conf NOTIFY_SOCKET=$HM_TMP/notify.sock hm_start_serve "$HM_TMP/serve.log"
ready() { grep -q "READY=1" "$HM_TMP/notify.txt" 2>/dev/null; }
hm_wait_for 10 ready || hm_fail "the installed daemon sent no READY=1"
"$HYMIG_TEST_WRITER" --create "$HM_TMP/img" --size 32M --seed 1 2>/dev/null || hm_fail "cannot create a test image"
rc=0
"$bin" migrate --image "file:$HM_TMP/img" --to "$HM_SERVE_ADDR" --key-file "$HM_TMP/unit.key" --report json \
  >"$HM_TMP/m.json" 2>"$HM_TMP/m.err" || rc=$?
hm_assert_committed "$rc" "$HM_TMP/m.json" "$HM_TMP/m.err" "migration to the installed daemon"
cmp -s "$HM_TMP/img" "$HM_TMP/store/img" || hm_fail "the image that arrived differs from the source"
kill -TERM "$HM_SERVE_PID"
hm_wait_pid "$HM_SERVE_PID" 20
[ "$HM_RC" -eq 0 ] || hm_fail "the installed daemon exited $HM_RC on SIGTERM"
grep -q "STOPPING=1" "$HM_TMP/notify.txt" || hm_fail "no STOPPING=1"

# 5. Under systemd, in a container booted from this host's own OS.
port=$((30000 + $$ % 20000))
while ss -H -ltn "sport = :$port" | grep -q .; do port=$((port + 1)); done
printf 'listen = 127.0.0.1:%s\nallow-synthetic = true\n' "$port" >"$HM_TMP/unit.conf"
systemd-nspawn -D / --volatile=yes --register=no --keep-unit --quiet \
  --overlay-ro="/usr:$root/usr:/usr" \
  --bind-ro="$root/usr/lib/systemd/system/hymig.service:/etc/systemd/system/hymig.service" \
  --bind-ro="$HM_TMP/unit.conf:/etc/hymig/hymig.conf" --bind-ro="$HM_TMP/unit.key:/etc/hymig/cluster.key" \
  --boot -- systemd.firstboot=no --unit=hymig.service </dev/null >"$HM_TMP/boot.log" 2>&1 &
nspawn=$!
hm_track_pid "$nspawn"
# The container's systemd is asked directly (systemctl inside its namespaces), not read from the
# console: nspawn forwards the console through a pseudo-TTY and may exit before the last lines reach
# the log.
init=
# The container's init (a child of nspawn) is tracked too: should the test fail, the cleanup kills it,
# and with it the container, which would outlive a killed nspawn.
# Not just any child of nspawn: its first one forks the container's init and exits, and a PID taken
# in that moment (CI saw it under load) is gone, so every systemctl below failed for 60 s. The init
# is the child that is PID 1 in its own PID namespace (the last field of NSpid).
container_init() {
  local p
  for p in $(pgrep -P "$nspawn"); do
    if awk '/^NSpid:/ { found = NF > 2 && $NF == 1 } END { exit !found }' "/proc/$p/status" 2>/dev/null; then
      init=$p
      return 0
    fi
  done
  return 1
}
in_container() { nsenter -t "$init" -m -u -i -n -p -r -w -- "$@"; }
unit_state() { in_container systemctl show -p ActiveState -p SubState -p Result -p ExecMainStatus hymig.service 2>/dev/null | sort | paste -s -d ' '; }
hm_wait_for 60 container_init || hm_fail "systemd-nspawn started no container: $(tail -n 5 "$HM_TMP/boot.log")"
hm_track_pid "$init"
active() { [ "$(in_container systemctl is-active hymig.service 2>/dev/null)" = active ]; }
hm_wait_for 60 active || hm_fail "systemd did not start hymig.service: $(unit_state); $(sed 's/\x1b\[[0-9;]*m//g' "$HM_TMP/boot.log" | grep -a -i -E 'hymig|fail' | tail -n 8)"
"$bin" status "127.0.0.1:$port" --key-file "$HM_TMP/unit.key" >"$HM_TMP/unit-status.txt" 2>&1 ||
  hm_fail "the unit's daemon does not answer: $(cat "$HM_TMP/unit-status.txt")"
rc=0
"$bin" migrate --image synthetic:size=64M --to "127.0.0.1:$port" --key-file "$HM_TMP/unit.key" --report json \
  >"$HM_TMP/u.json" 2>"$HM_TMP/u.err" || rc=$?
hm_assert_committed "$rc" "$HM_TMP/u.json" "$HM_TMP/u.err" "migration to the unit's daemon"
# Stopped by systemd: SIGTERM, then the daemon's own clean exit (exit status 0, result success).
in_container systemctl stop hymig.service >"$HM_TMP/stop.txt" 2>&1 || hm_fail "systemctl stop hymig.service failed: $(cat "$HM_TMP/stop.txt")"
state=$(unit_state)
[ "$state" = "ActiveState=inactive ExecMainStatus=0 Result=success SubState=dead" ] || hm_fail "hymig.service did not stop cleanly under systemd: $state"
kill -TERM "$nspawn"
hm_wait_pid "$nspawn" 60
[ "$HM_RC" -ne 124 ] || hm_fail "the container did not halt within 60 s on SIGTERM: $(tail -n 5 "$HM_TMP/boot.log")"
hm_alive "$init" && hm_fail "the container's init outlived nspawn"
hm_log "$(basename "$deb") ($(stat -c %s "$deb") bytes): installed, unit verified, daemon ready, migration committed, stopped; under systemd in a container: started, served, stopped"
exit 0
