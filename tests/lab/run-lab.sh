#!/usr/bin/env bash
# run-lab.sh NAME [--mtu N] [--timeout S] [--args A,B] [--build-dir DIR] [--shell]
#
# Boots hymig's Soft-RoCE lab guest (Debian's stock 6.1 kernel under QEMU TCG, 2 vCPUs, 1 GiB) with
# the initramfs of build-initramfs.sh, runs tests/lab/guest/NAME.sh in it and turns its markers into
# an exit status: 0 every check passed (SKIPs, checks marked not applicable, allowed, but not all); 1 a check failed, or the guest
# gave no verdict (crash, timeout); 77 the lab cannot run here (no QEMU, no kernel package, or every
# check skipped) — the reason is printed.
#
#   NAME           guest script: selftest, verbs_unit, migrate (tests/lab/guest/NAME.sh)
#   --mtu N        veth MTU in the guest (9000: RoCE can use 4096-byte messages)
#   --timeout S    host-side limit for the whole boot (default 900); QEMU is killed by PID after it
#   --args A,B     arguments for the guest script
#   --build-dir D  the CMake build directory with hymig's binaries (default $HYMIG_BUILD_DIR)
#   --shell        interactive guest shell after the setup (no test; Ctrl-a x quits QEMU)
#
# Files (under BUILD_DIR): lab/initramfs.cpio.gz (rebuilt when an input changes), lab/logs/NAME-*.log
# (the serial console, each line prefixed with host seconds since launch), lab-figures.txt (the
# LAB-FIGURE lines, one section per script + MTU + arguments, from its latest run). Environment:
# HYMIG_LAB_CACHE (kernel cache, default BUILD_DIR/lab-cache), HYMIG_LAB_KERNEL_PKG (pin the kernel
# package), HYMIG_LAB_KERNEL_DIR (an unpacked kernel to use as is), HYMIG_LAB_QEMU (the QEMU binary).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
say() { printf 'run-lab: %s\n' "$*"; }
skip() { say "SKIP: $*"; exit 77; }
die() { say "FAIL: $*"; exit 1; }

name="" mtu="" timeout=900 args="" build=${HYMIG_BUILD_DIR:-} shell=0
while [ $# -gt 0 ]; do
  case $1 in
    --mtu) mtu=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --args) args=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --shell) shell=1; shift ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) say "unknown option $1"; exit 2 ;;
    *) [ -z "$name" ] || { say "one NAME only"; exit 2; }; name=$1; shift ;;
  esac
done
[ -n "$name" ] || { say "usage: $0 NAME [--mtu N] [--timeout S] [--args A,B] [--build-dir DIR] [--shell]"; exit 2; }
[ -f "$here/guest/$name.sh" ] || { say "no guest script $here/guest/$name.sh"; exit 2; }
[ -n "$build" ] || { say "no build directory: pass --build-dir DIR or set HYMIG_BUILD_DIR"; exit 2; }
[ -d "$build" ] || die "build directory $build does not exist"
build=$(cd "$build" && pwd)
[[ $timeout =~ ^[0-9]+$ ]] || { say "--timeout takes whole seconds"; exit 2; }

qemu=$(command -v "${HYMIG_LAB_QEMU:-qemu-system-x86_64}") ||
  skip "${HYMIG_LAB_QEMU:-qemu-system-x86_64} is not installed (Debian package qemu-system-x86; scripts/bootstrap.sh installs it)"

# ---- kernel and initramfs (fetch-kernel.sh exits 77 when no kernel can be had) ----
t0=$SECONDS
initrd=$build/lab/initramfs.cpio.gz
rc=0
bash "$here/build-initramfs.sh" "$build" "$initrd" || rc=$?
[ "$rc" -eq 77 ] && skip "no guest kernel (see fetch-kernel's message above)"
[ "$rc" -eq 0 ] || die "build-initramfs.sh exited $rc"
kdir=$(cat "$initrd.kernel")
kernel=$(find "$kdir/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)
[ -f "$kernel" ] || die "no kernel image in $kdir/boot"
say "kernel $kernel, initramfs $initrd (ready in $((SECONDS - t0)) s)"

# clocksource=tsc: the guest otherwise picks hpet, and every clock read (the engine and the RC
# watchdog read the clock often) is an emulated MMIO access under TCG.
append="console=ttyS0 panic=-1 loglevel=4 clocksource=tsc tsc=reliable lab.run=$name"
[ -n "$mtu" ] && append+=" lab.mtu=$mtu"
[ -n "$args" ] && append+=" lab.args=$args"
[ "$shell" = 1 ] && append+=" lab.shell=1"
cmd=("$qemu" -accel tcg -cpu max -smp 2 -m 1G -nographic -no-reboot -nic none
  -kernel "$kernel" -initrd "$initrd" -append "$append")
if [ "$shell" = 1 ]; then
  exec "${cmd[@]}"
fi

mkdir -p "$build/lab/logs"
# Keep the 10 newest serial logs of this script.
find "$build/lab/logs" -maxdepth 1 -name "$name-*.log" -printf '%T@ %p\n' | sort -rn | tail -n +10 | cut -d' ' -f2- |
  xargs -r rm -f --
log=$build/lab/logs/$name-$(date +%Y%m%d-%H%M%S).log
echo "+ ${cmd[*]}" >"$log"
say "booting: ${cmd[*]}"
say "serial log: $log"

# QEMU dies with this script even if it is SIGKILLed (ctest's timeout): parent-death signal.
pdeath=()
command -v setpriv >/dev/null && setpriv --help 2>&1 | grep -q -- --pdeathsig && pdeath=(setpriv --pdeathsig KILL --)
qpid=""
stop_qemu() {
  [ -n "$qpid" ] || return 0
  if kill -0 "$qpid" 2>/dev/null; then
    kill -TERM "$qpid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$qpid" 2>/dev/null
  fi
  wait "$qpid" 2>/dev/null
  qpid=""
}
trap stop_qemu EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every serial line goes to the log and to stdout, prefixed with host seconds since launch.
start_us=${EPOCHREALTIME/./}
"${pdeath[@]}" "${cmd[@]}" </dev/null > >(
  sed -u 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g; s/\r$//' | while IFS= read -r line; do
    e=$((${EPOCHREALTIME/./} - start_us))
    printf '[%4d.%d] %s\n' $((e / 1000000)) $((e % 1000000 / 100000)) "$line"
  done | tee -a "$log"
) 2>&1 &
qpid=$!
timed_out=0 qrc=0
deadline=$((SECONDS + timeout))
while kill -0 "$qpid" 2>/dev/null; do
  if ((SECONDS >= deadline)); then
    timed_out=1
    echo "run-lab: host-side timeout of $timeout s: killing QEMU (pid $qpid)" | tee -a "$log"
    stop_qemu
    qrc=killed
    break
  fi
  sleep 0.5
done
[ -n "$qpid" ] && { wait "$qpid"; qrc=$?; qpid=""; }
sleep 0.2   # let the log writer drain
wall=$(((${EPOCHREALTIME/./} - start_us) / 1000000))

echo
say "QEMU exit $qrc after $wall s; serial log: $log"
grep -a -o -E 'LAB-(BOOT|TIME|FIGURE|RESULT|SUMMARY|DONE) .*' "$log" | sed 's/\r$//; s/^/  /'

# lab-figures.txt: one section per kind of run (script, MTU, arguments), replaced by its latest run.
figures=$(grep -a -o -E 'LAB-FIGURE .*' "$log")
if [ -n "$figures" ]; then
  ffile=$build/lab-figures.txt
  key="## $name mtu=${mtu:-1500}${args:+ args=$args}"
  {
    if [ -f "$ffile" ]; then
      awk -v key="$key" 'BEGIN { skip = 1 } /^## / { skip = ($0 == key || index($0, key " (") == 1) } /^# / { next } !skip' "$ffile"
    fi
    echo "$key ($(date -u +%FT%TZ), $(basename "$kernel"), log $(basename "$log"))"
    echo "$figures"
  } >"$ffile.tmp"
  { echo "# hymig Soft-RoCE lab (QEMU TCG guest): LAB-FIGURE <transport> <loss> <MB/s = image bytes / total seconds>"
    cat "$ffile.tmp"; } >"$ffile"
  rm -f "$ffile.tmp"
  say "figures written to $ffile"
fi

summary=$(grep -a -o -E 'LAB-SUMMARY pass=[0-9]+ fail=[0-9]+ skip=[0-9]+' "$log" | tail -n1)
done_rc=$(grep -a -o -E 'LAB-DONE rc=[0-9]+' "$log" | tail -n1)
[ "$timed_out" = 0 ] || die "the guest gave no verdict within $timeout s (last lines above; raise --timeout?)"
[ -n "$done_rc" ] && [ -n "$summary" ] || die "the guest ended without LAB-SUMMARY/LAB-DONE (QEMU exit $qrc): crash or panic? see $log"
read -r pass fail _ < <(sed -E 's/.*pass=([0-9]+) fail=([0-9]+) skip=([0-9]+)/\1 \2 \3/' <<<"$summary")
if [ "$done_rc" != "LAB-DONE rc=0" ] || [ "$fail" -ne 0 ]; then
  die "$name: $summary, $done_rc"
fi
if [ "$pass" -eq 0 ]; then
  skip "$name: every check skipped ($summary); the SKIP lines above say why"
fi
say "PASS $name: $summary (wall $wall s)"
exit 0
