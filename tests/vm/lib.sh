# shellcheck shell=bash
# Helpers of the vm lane. Source after tests/lib/common.sh (its cleanup kills every tracked PID and
# removes $HM_TMP, which holds the guests' RAM files: it lives in /dev/shm).
#
#   vm_require                 skip (77) unless QEMU, busybox and the guest kernel can be had;
#                              builds the initramfs; sets VM_KERNEL, VM_INITRD
#   vm_start NAME [--incoming] boots guest NAME (RAM $HM_TMP/NAME.ram, console NAME.serial, QMP
#                              NAME.qmp for hymig and NAME.ctl for the test); --incoming: a
#                              destination waiting in -incoming defer. Sets VM_PID[NAME]
#   vm_ctl NAME CMD [ARGS]     one QMP command on NAME's test socket; prints the JSON answer
#   vm_status NAME             the run state ("running", "inmigrate", ...), "gone" if unreachable
#   vm_last_tick NAME          the last complete tick number on NAME's console (0 if none)
#   vm_wait_ticks NAME N SEC   waits until NAME's console shows tick >= N
#   vm_wait_running_after NAME TICK: waits until NAME ticked two full check passes beyond TICK
#   vm_check_console NAME      every tick line bad=0, ticks +1 each, no BAD/error/oops lines
#   vm_check_handover SRC DST  DST's console continues SRC's counter (no reboot, no tick twice)
#   vm_watch_start             starts hymig-vm-watch on $HM_TMP (console lines with arrival times)
#   vm_blackout_ms SRC DST     guest-visible blackout and console gap of a handover (ms)
#   vm_serve NAME LOG [ARGS]   `hymig serve --once --vm-qmp` for destination NAME (HM_SERVE_*)
#   vm_alive_qemus             names of the guests whose QEMU still runs

VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
declare -A VM_PID=()
VM_APPEND="console=ttyS0 quiet loglevel=3 panic=-1 nokaslr hymig.ws_mib=96 hymig.dirty=256 hymig.check=1024 hymig.period_ms=20"
# A complete tick line: the console's tty ends lines with CR LF, so the CR marks a line QEMU wrote
# whole (the last line of a console may still be arriving, or be cut by a pause).
VM_TICK_RE=$'^HYMIG-GUEST tick=[0-9]+ bad=[0-9]+ pass=[0-9]+ t=[0-9]+\r$'

vm_require() {
  local v
  command -v qemu-system-x86_64 >/dev/null ||
    hm_skip "qemu-system-x86_64 is not installed (Debian package qemu-system-x86; scripts/bootstrap.sh installs it)"
  command -v jq >/dev/null || hm_skip "jq is not installed (scripts/bootstrap.sh installs it)"
  for v in HYMIG HYMIG_VM_QMP HYMIG_VM_WATCH HYMIG_VM_GUEST_INIT; do
    [ -n "${!v:-}" ] && [ -x "${!v}" ] || hm_fail "$v is not set to an executable: run through ctest (ctest -L vm)"
  done
  [ -x /usr/bin/busybox ] || hm_skip "no /usr/bin/busybox to pack the initramfs (Debian package busybox-static)"
  local cache=${HYMIG_LAB_CACHE:-${HYMIG_BUILD_DIR:?HYMIG_BUILD_DIR is not set}/lab-cache} kdir rc=0
  kdir=$(bash "$VM_LIB_DIR/../lab/fetch-kernel.sh" "$cache") || rc=$?
  [ "$rc" -eq 77 ] && hm_skip "no guest kernel can be had (see fetch-kernel's message above)"
  [ "$rc" -eq 0 ] || hm_fail "fetch-kernel.sh exited $rc"
  VM_KERNEL=$(find "$kdir/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)
  [ -f "$VM_KERNEL" ] || hm_fail "no boot/vmlinuz-* in $kdir"
  # The initramfs: the guest program as /init, nothing else.
  mkdir -p "$HM_TMP/initramfs"
  cp "$HYMIG_VM_GUEST_INIT" "$HM_TMP/initramfs/init"
  (cd "$HM_TMP/initramfs" && find . | LC_ALL=C sort | /usr/bin/busybox cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -1 >"$HM_TMP/initrd.gz" || hm_fail "cannot pack the initramfs"
  VM_INITRD=$HM_TMP/initrd.gz
  hm_log "guest: kernel $VM_KERNEL, initramfs $VM_INITRD ($(stat -c %s "$VM_INITRD") bytes)"
}

vm_start() {
  local name=$1 incoming=${2:-}
  local args=(-accel tcg -cpu max -m 256M
    -object "memory-backend-file,id=pc.ram,size=256M,mem-path=$HM_TMP/$name.ram,share=on"
    -machine pc,memory-backend=pc.ram -nodefaults -display none -no-reboot
    -serial "file:$HM_TMP/$name.serial"
    -qmp "unix:$HM_TMP/$name.qmp,server=on,wait=off"
    -qmp "unix:$HM_TMP/$name.ctl,server=on,wait=off"
    -kernel "$VM_KERNEL" -initrd "$VM_INITRD" -append "$VM_APPEND")
  [ "$incoming" = --incoming ] && args+=(-incoming defer)
  qemu-system-x86_64 "${args[@]}" </dev/null >"$HM_TMP/$name.qemu.log" 2>&1 &
  VM_PID[$name]=$!
  hm_track_pid "${VM_PID[$name]}"
  hm_wait_for 10 test -S "$HM_TMP/$name.ctl" ||
    hm_fail "QEMU $name (pid ${VM_PID[$name]}) opened no QMP socket in 10 s: $(tail -c 2000 "$HM_TMP/$name.qemu.log")"
  hm_log "QEMU $name started (pid ${VM_PID[$name]}${incoming:+, -incoming defer})"
}

vm_ctl() { "$HYMIG_VM_QMP" "$HM_TMP/$1.ctl" "${@:2}"; }

vm_status() {
  local out
  out=$("$HYMIG_VM_QMP" "$HM_TMP/$1.ctl" query-status 2>/dev/null) || { echo gone; return 0; }
  jq -r .status <<<"$out"
}

vm_ticks() { grep -a -E "$VM_TICK_RE" "$HM_TMP/$1.serial" 2>/dev/null | sed -E 's/^HYMIG-GUEST tick=([0-9]+) .*/\1/'; }

vm_last_tick() {
  local t
  t=$(vm_ticks "$1" | tail -n1)
  echo "${t:-0}"
}

vm_first_tick() {
  local t
  t=$(vm_ticks "$1" | head -n1)
  echo "${t:-0}"
}

vm__tick_at_least() { [ "$(vm_last_tick "$1")" -ge "$2" ]; }

vm_wait_ticks() {
  hm_wait_for "$3" vm__tick_at_least "$1" "$2" ||
    hm_fail "guest $1 did not reach tick $2 within $3 s (last tick $(vm_last_tick "$1"), state $(vm_status "$1")); console tail: $(tail -c 600 "$HM_TMP/$1.serial" 2>/dev/null)"
}

vm_pass_at() {  # vm_pass_at NAME TICK: the pass count printed with tick TICK (or the first after it)
  grep -a -E "$VM_TICK_RE" "$HM_TMP/$1.serial" | awk -v t="$2" '{split($2,a,"="); if (a[2] >= t) {split($4,b,"="); print b[2]; exit}}'
}

vm__passes_beyond() {
  local now
  now=$(grep -a -E "$VM_TICK_RE" "$HM_TMP/$1.serial" | tail -n1 | sed -E 's/.* pass=([0-9]+) .*/\1/')
  [ -n "$now" ] && [ "$now" -ge "$2" ]
}

# Every page of the working set checked twice after TICK: a stale page would have shown by then.
vm_wait_running_after() {
  local name=$1 tick=$2 p
  vm_wait_ticks "$name" "$((tick + 1))" 30
  p=$(vm_pass_at "$name" "$tick")
  hm_wait_for 60 vm__passes_beyond "$name" "$((p + 2))" ||
    hm_fail "guest $name did not complete two check passes after tick $tick within 60 s (last tick $(vm_last_tick "$name"))"
}

vm_check_console() {
  local name=$1 f=$HM_TMP/$1.serial bad
  [ -f "$f" ] || return 0
  bad=$(grep -a -n -E 'HYMIG-GUEST (BAD|error)|Kernel panic|Oops|BUG:|general protection|segfault' "$f" | head -n3)
  [ -z "$bad" ] || hm_fail "guest console $name: $bad"
  bad=$(grep -a -E "$VM_TICK_RE" "$f" | grep -v -E ' bad=0 ' | head -n1)
  [ -z "$bad" ] || hm_fail "guest console $name reports bad pages: $bad"
  # Ticks grow by one per line within a console (a split line at either end is not a tick line).
  bad=$(vm_ticks "$name" | awk 'NR > 1 && $1 != prev + 1 {print "tick " prev " then " $1; exit} {prev = $1}')
  [ -z "$bad" ] || hm_fail "guest console $name: counter not continuous: $bad"
}

# The destination continues the source's counter: no reboot (no start line, first tick > 1), the
# first tick follows the last (+2 when the line in between was split across the two consoles).
vm_check_handover() {
  local src=$1 dst=$2 last first
  last=$(vm_last_tick "$src")
  first=$(vm_first_tick "$dst")
  grep -a -q 'HYMIG-GUEST start' "$HM_TMP/$dst.serial" && hm_fail "guest $dst booted afresh (start line) instead of continuing $src"
  [ "$last" -gt 0 ] || hm_fail "guest $src printed no tick"
  [ "$first" -gt "$last" ] && [ "$first" -le $((last + 2)) ] ||
    hm_fail "guest counter not continuous across $src -> $dst: last tick $last at the source, first $first at the destination"
  vm_check_console "$src"
  vm_check_console "$dst"
}

vm_watch_start() {
  "$HYMIG_VM_WATCH" "$HM_TMP" >"$HM_TMP/watch.log" 2>&1 &
  VM_WATCH_PID=$!
  hm_track_pid "$VM_WATCH_PID"
}

# The guest-visible blackout of a handover SRC -> DST, from the watcher's log: host time between the
# arrival of SRC's last and DST's first tick line minus the guest's own time between them (its
# clock stops while it is paused, so what remains is the time it was frozen). Prints
# "BLACKOUT_MS GAP_MS" ("? ?" when a line is missing from the log).
vm_blackout_ms() {
  local src=$1 dst=$2 last first
  last=$(vm_last_tick "$src")
  first=$(vm_first_tick "$dst")
  awk -v s="$src.serial" -v d="$dst.serial" -v l="$last" -v f="$first" '
    $3 == "HYMIG-GUEST" && $7 ~ /^t=/ {split($7, g, "=")}
    $2 == s && $3 == "HYMIG-GUEST" && $4 == "tick=" l {hs = $1; gs = g[2]}
    $2 == d && $3 == "HYMIG-GUEST" && $4 == "tick=" f {hd = $1; gd = g[2]}
    END {if (hs == "" || hd == "") print "? ?"; else printf "%.1f %.1f\n", (hd - hs) - (gd - gs), hd - hs}' "$HM_TMP/watch.log"
}

# The median arrival gap between consecutive tick lines on NAME's console (the tick period).
vm_period_ms() {
  awk -v n="$1.serial" '$2 == n && $3 == "HYMIG-GUEST" && $4 ~ /^tick=/ {if (p != "") print $1 - p; p = $1}' "$HM_TMP/watch.log" |
    sort -n | awk '{a[NR] = $1} END {if (NR) printf "%.1f\n", a[int((NR + 1) / 2)]; else print "?"}'
}

vm_serve() {
  local name=$1 log=$2
  shift 2
  hm_start_serve "$log" --listen 127.0.0.1:0 --store "$HM_TMP/store" --vm-qmp "$HM_TMP/$name.qmp" --once "$@"
}

vm_alive_qemus() {
  local n
  for n in "${!VM_PID[@]}"; do hm_alive "${VM_PID[$n]}" && echo "$n"; done | sort
}

# vm_wait_gone NAME SEC: NAME's QEMU process ends within SEC seconds (reaped here: it is our child).
vm_wait_gone() {
  hm_wait_pid "${VM_PID[$1]}" "$2"
  [ "$HM_RC" -ne 124 ] || hm_fail "QEMU $1 (pid ${VM_PID[$1]}) still runs $2 s later (state $(vm_status "$1"))"
}

# vm_page_sum FILE PAGE: checksum of one 4 KiB page of a RAM file.
vm_page_sum() { dd if="$1" bs=4096 skip="$2" count=1 status=none 2>/dev/null | sha256sum | cut -c1-16; }

# vm_stable_page NAME: a page of NAME's RAM that holds kernel text (the guest boots with nokaslr, so
# the kernel sits at 16 MiB) and does not change for a second: a page no later round resends.
vm_stable_page() {
  local name=$1 p a b zero
  zero=$(head -c 4096 /dev/zero | sha256sum | cut -c1-16)
  for p in 4352 4608 4864 5120 5376; do   # 17, 18, 19, 20, 21 MiB
    a=$(vm_page_sum "$HM_TMP/$name.ram" "$p")
    hm_sleep 1
    b=$(vm_page_sum "$HM_TMP/$name.ram" "$p")
    [ "$a" = "$b" ] && [ "$a" != "$zero" ] && { echo "$p"; return 0; }
  done
  hm_fail "no stable non-zero page found in $name's RAM between 17 and 21 MiB"
}

vm__same_page() { [ "$(vm_page_sum "$1" "$3")" = "$(vm_page_sum "$2" "$3")" ]; }
# vm_wait_page_arrived SRC DST PAGE SEC: DST's RAM file holds SRC's PAGE (the stream got that far).
vm_wait_page_arrived() {
  hm_wait_for "$4" vm__same_page "$HM_TMP/$1.ram" "$HM_TMP/$2.ram" "$3" ||
    hm_fail "page $3 did not reach $2's RAM file within $4 s"
}

# vm_start_bare NAME QEMU-ARGS...: a QEMU without a guest kernel (firmware only) with NAME.qmp and
# NAME.ctl, for tests of what hymig refuses. Sets VM_PID[NAME].
vm_start_bare() {
  local name=$1
  shift
  qemu-system-x86_64 -accel tcg -nodefaults -display none \
    -qmp "unix:$HM_TMP/$name.qmp,server=on,wait=off" -qmp "unix:$HM_TMP/$name.ctl,server=on,wait=off" "$@" \
    </dev/null >"$HM_TMP/$name.qemu.log" 2>&1 &
  VM_PID[$name]=$!
  hm_track_pid "${VM_PID[$name]}"
  hm_wait_for 10 test -S "$HM_TMP/$name.ctl" ||
    hm_fail "QEMU $name (pid ${VM_PID[$name]}) opened no QMP socket in 10 s: $(tail -c 2000 "$HM_TMP/$name.qemu.log")"
}

# vm_shared_ram NAME [SIZE]: the -object/-machine options of a guest whose RAM is $HM_TMP/NAME.ram.
vm_shared_ram() {
  echo "-m ${2:-64M} -object memory-backend-file,id=pc.ram,size=${2:-64M},mem-path=$HM_TMP/$1.ram,share=on -machine pc,memory-backend=pc.ram"
}
